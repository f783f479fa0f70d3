//! `digitnn serve`: the drawing page and a JSON API over HTTP (axum on tokio).
//!
//! Inference runs on blocking threads, never on the async runtime's, each request with a model
//! taken from a small pool (a network holds scratch buffers, so one request uses one at a time).
//!
//! Every resource a client can hold is bounded (`digitnn::limits`): connections at once, the time
//! to send headers (also how long an idle connection is kept) and a body, the body's size
//! (checked from Content-Length before reading), bodies read at once, and images decoded at once,
//! each within the server's image limits. So many hostile requests together stay under about
//! 1 GiB and cannot keep the server from answering others for long.

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use digitnn::data::image::ImageLimits;
use digitnn::data::image::SIDE;
use digitnn::model::{ModelInfo, Network};
use digitnn::predict::{predict_pixels, prepare_request};
use digitnn::read::line::LineReader;
use digitnn::read::{ReadConfig, Reader, read_bytes};
use digitnn::{EngineConfig, limits};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Request bodies being read at once: each is at most `SERVE_MAX_BODY`, so together at most
/// 128 MiB; the rest wait their turn.
const BODIES_AT_ONCE: usize = 64;

#[derive(clap::Args)]
pub struct Args {
    /// A model file, safetensors or PyTorch .pt [default: digit_model.safetensors if it is in the
    /// working directory, else the built-in reader model]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Seconds a client has to send a request's headers; also how long an idle connection is kept
    #[arg(long, value_name = "SECS", default_value_t = limits::SERVE_HEADER_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Seconds a client has to send a request's body
    #[arg(long, value_name = "SECS", default_value_t = limits::SERVE_BODY_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout: u64,
    /// Connections held at once; more are closed as soon as they are accepted
    #[arg(long, value_name = "N", default_value_t = limits::SERVE_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65536))]
    max_connections: usize,
    /// Answer a digit for every image, never "not a digit" (the behaviour before refusal)
    #[arg(long)]
    always_digit: bool,
    #[command(flatten)]
    engine: super::EngineArgs,
}

/// Idle copies of what an endpoint computes with (a network, a reader), made when all are busy
/// (each holds scratch buffers, so one request uses one at a time).
struct Pool<T> {
    idle: Mutex<Vec<T>>,
    make: Box<dyn Fn() -> Result<T, String> + Send + Sync>,
}

impl<T> Pool<T> {
    fn new(first: T, make: impl Fn() -> Result<T, String> + Send + Sync + 'static) -> Pool<T> {
        Pool { idle: Mutex::new(vec![first]), make: Box::new(make) }
    }

    fn take(&self) -> Result<T, String> {
        if let Some(item) = self.idle.lock().map_err(|_| "model pool poisoned")?.pop() {
            return Ok(item);
        }
        (self.make)()
    }

    fn give_back(&self, item: T) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(item);
        }
    }
}

/// A pool of copies of `network` (its weights and BatchNorm statistics) on `engine`.
fn network_pool(network: Network, info: &ModelInfo, engine: EngineConfig) -> Pool<Network> {
    let (architecture, weights, state) =
        (info.architecture.clone(), network.params().to_vec(), network.state().to_vec());
    Pool::new(network, move || {
        let mut copy = Network::with_engine(architecture.clone(), 0, engine).map_err(|e| e.to_string())?;
        copy.params_mut().copy_from_slice(&weights);
        copy.state_mut().copy_from_slice(&state);
        Ok(copy)
    })
}

struct App {
    /// The model of `/api/predict`, its file's description and its parameter count.
    digits: Pool<Network>,
    info: ModelInfo,
    parameters: usize,
    /// The readers of `/api/read`: the built-in number reader (or `--model` when given) and the
    /// built-in line reader.
    numbers: Pool<Reader>,
    /// Bounds the requests computing at once (the rest wait their turn).
    busy: tokio::sync::Semaphore,
    /// Bounds the request bodies being read at once.
    reading: tokio::sync::Semaphore,
    body_timeout: Duration,
    /// Say "not a digit" where the model finds none.
    refuse: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let engine = args.engine.config()?;
    let (network, info, name) = super::load_model(args.model.as_deref(), engine)?;
    if network.input_len() != SIDE * SIDE {
        anyhow::bail!("{name}: the server needs a model of 28x28 images");
    }
    // With --model, that model reads numbers too; without it, the built-in number reader does.
    let (pieces, pieces_info) = match &args.model {
        Some(_) => {
            let mut copy = Network::with_engine(info.architecture.clone(), 0, engine)?;
            copy.params_mut().copy_from_slice(network.params());
            copy.state_mut().copy_from_slice(network.state());
            (copy, info.clone())
        }
        None => {
            let (reader, reader_info, _) = super::load_number_reader(None, engine)?;
            (reader, reader_info)
        }
    };
    let (mut line, line_info) = digitnn::model::builtin_lines()?;
    line.set_engine(engine)?;
    let pieces_pool = network_pool(pieces, &pieces_info, engine);
    let line_pool = network_pool(line, &line_info, engine);
    let make_reader = move || -> Result<Reader, String> {
        let line = LineReader::new(line_pool.take()?).map_err(|e| e.to_string())?;
        Ok(Reader { pieces: pieces_pool.take()?, line: Some(line) })
    };
    let first_reader = make_reader().map_err(anyhow::Error::msg)?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let app = Arc::new(App {
        parameters: network.parameter_count(),
        digits: network_pool(network, &info, engine),
        info,
        numbers: Pool::new(first_reader, make_reader),
        busy: tokio::sync::Semaphore::new(workers * 2),
        reading: tokio::sync::Semaphore::new(BODIES_AT_ONCE),
        body_timeout: Duration::from_secs(args.body_timeout),
        refuse: !args.always_digit,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let connections =
        Connections { header_timeout: Duration::from_secs(args.header_timeout), max: args.max_connections };
    runtime.block_on(serve(app, args.addr, &name, connections))?;
    Ok(ExitCode::SUCCESS)
}

/// How connections are bounded.
struct Connections {
    header_timeout: Duration,
    max: usize,
}

async fn serve(app: Arc<App>, addr: SocketAddr, model: &str, limits: Connections) -> Result<()> {
    let router = Router::new()
        .route("/", get(|| async { Html(super::web::PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/model", get(model_info))
        .route("/api/predict", post(predict))
        .route("/api/read", post(read))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        eprintln!(
            "warning: listening on {bound}, reachable from other machines; use --addr 127.0.0.1:PORT to keep it local"
        );
    }
    // Scripts and tests read this line to learn the port.
    println!("serving {model} on http://{bound}/");
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors or a connection reset while queued: try again soon.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut ctrl_c => break,
        };
        // Past the connection limit a new connection is closed at once.
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else { continue };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    eprintln!("stopping");
    // Requests in flight get a few seconds to finish.
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
}

async fn model_info(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({
        "architecture": app.info.architecture,
        "parameters": app.parameters,
        "test_accuracy": app.info.test_accuracy,
    }))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Reads a request body: refused at once when its Content-Length is over the limit, cut off
/// when it grows past the limit or takes longer than the body timeout.
async fn read_body(app: &App, headers: &HeaderMap, body: axum::body::Body) -> Result<axum::body::Bytes, Response> {
    let too_large = || {
        let limit = limits::SERVE_MAX_BODY >> 20;
        error(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is larger than the {limit} MiB limit"))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits::SERVE_MAX_BODY as u64) {
        return Err(too_large());
    }
    let Ok(_reading) = app.reading.acquire().await else {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    };
    match tokio::time::timeout(app.body_timeout, axum::body::to_bytes(body, limits::SERVE_MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(error(StatusCode::REQUEST_TIMEOUT, "the request body took too long to arrive")),
    }
}

async fn predict(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Body) -> Response {
    compute(
        app,
        headers,
        body,
        |app| &app.digits,
        |app, network, content_type, body| {
            let pixels = prepare_request(content_type, body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
            let p = predict_pixels(network, &[pixels], app.refuse).map_err(internal)?.remove(0);
            let mut answer = serde_json::to_value(&p).map_err(internal)?;
            answer["input"] = json!(pixels.to_vec());
            Ok(answer)
        },
    )
    .await
}

/// `POST /api/read`: the number in an image (`Content-Type: image/...`), as `digitnn read --json`
/// gives it.
async fn read(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Body) -> Response {
    compute(
        app,
        headers,
        body,
        |app| &app.numbers,
        |_, reader, content_type, body| {
            if !content_type.starts_with("image/") {
                return Err((StatusCode::BAD_REQUEST, "send an image (Content-Type: image/png or image/jpeg)".into()));
            }
            let reading = read_bytes(
                &mut reader.pieces,
                reader.line.as_mut(),
                body,
                ImageLimits::serve(),
                &ReadConfig::default(),
            )
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
            serde_json::to_value(&reading).map_err(internal)
        },
    )
    .await
}

fn internal(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// What an endpoint computes from the app, a network, the Content-Type and the body: its JSON
/// answer, or an error's status and message.
type Work<T> = fn(&App, &mut T, &str, &[u8]) -> Result<Value, (StatusCode, String)>;

/// Reads the body within the limits, then runs `work` on a blocking thread with a network from
/// the pool, answering its JSON or its error.
async fn compute<T: Send + 'static>(
    app: Arc<App>,
    headers: HeaderMap,
    body: axum::body::Body,
    pool: fn(&App) -> &Pool<T>,
    work: Work<T>,
) -> Response {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let body = match read_body(&app, &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(_permit) = app.busy.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let worker = Arc::clone(&app);
    let result = tokio::task::spawn_blocking(move || -> Result<Value, (StatusCode, String)> {
        let mut network = pool(&worker).take().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let answer = work(&worker, &mut network, &content_type, &body);
        pool(&worker).give_back(network);
        answer
    })
    .await;
    match result {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the computation failed"),
    }
}
