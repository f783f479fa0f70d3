//! `digitnn serve`: the drawing page and a JSON API over HTTP (axum on tokio).
//!
//! Inference runs on blocking threads, never on the async runtime's, each request with a model
//! taken from a small pool (a network holds scratch buffers, so one request uses one at a time).

use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes_body::Body;
use digitnn::data::image::{self as digit_image, Pixels, SIDE};
use digitnn::model::{ModelInfo, Network};
use digitnn::predict::predict_pixels;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// Request bodies over this size are answered 413.
const MAX_BODY: usize = 2 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// A model file, safetensors or PyTorch .pt
    #[arg(long, default_value = super::DEFAULT_MODEL)]
    model: PathBuf,
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
}

struct App {
    /// Idle networks, each with the model's weights.
    pool: Mutex<Vec<Network>>,
    weights: Vec<f32>,
    info: ModelInfo,
    /// Bounds the requests computing at once (the rest wait their turn).
    busy: tokio::sync::Semaphore,
}

impl App {
    fn take_network(&self) -> Result<Network, String> {
        if let Some(network) = self.pool.lock().map_err(|_| "model pool poisoned")?.pop() {
            return Ok(network);
        }
        let mut network = Network::new(self.info.architecture.clone(), 0).map_err(|e| e.to_string())?;
        network.params_mut().copy_from_slice(&self.weights);
        Ok(network)
    }

    fn give_back(&self, network: Network) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(network);
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let (network, info) = digitnn::model::load(&args.model)?;
    if network.input_len() != SIDE * SIDE {
        anyhow::bail!("{}: the server needs a model of 28x28 images", args.model.display());
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let app = Arc::new(App {
        weights: network.params().to_vec(),
        pool: Mutex::new(vec![network]),
        info,
        busy: tokio::sync::Semaphore::new(workers * 2),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(app, args.addr, &args.model))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(app: Arc<App>, addr: SocketAddr, model: &Path) -> Result<()> {
    let router = Router::new()
        .route("/", get(|| async { Html(include_str!("serve/index.html")) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/model", get(model_info))
        .route("/api/predict", post(predict))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        eprintln!(
            "warning: listening on {bound}, reachable from other machines; use --addr 127.0.0.1:PORT to keep it local"
        );
    }
    // Scripts and tests read this line to learn the port.
    println!("serving {} on http://{bound}/", model.display());
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping");
        })
        .await?;
    Ok(())
}

async fn model_info(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({
        "architecture": app.info.architecture,
        "parameters": app.weights.len(),
        "test_accuracy": app.info.test_accuracy,
    }))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

#[derive(Deserialize)]
struct PixelsRequest {
    pixels: Vec<f64>,
}

/// Turns the request body into a prepared 28x28 image, as `digitnn predict` would.
fn prepare(content_type: &str, body: &[u8]) -> Result<Pixels, String> {
    let name = Path::new("request body");
    if content_type.starts_with("image/") {
        let decoded = digit_image::decode(body, name).map_err(|e| e.to_string())?;
        return digit_image::prepare(&decoded, false, name).map(|(p, _)| p).map_err(|e| e.to_string());
    }
    if !content_type.starts_with("application/json") {
        return Err("send an image (Content-Type: image/png or image/jpeg) or JSON {\"pixels\": [784 numbers]}".into());
    }
    let request: PixelsRequest = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    if request.pixels.len() != SIDE * SIDE {
        return Err(format!("expected {} pixels, got {}", SIDE * SIDE, request.pixels.len()));
    }
    if let Some(bad) = request.pixels.iter().find(|v| !(0.0..=255.0).contains(*v)) {
        return Err(format!("pixel value {bad} is outside 0..255"));
    }
    let raw: Vec<u8> = request.pixels.iter().map(|v| v.round() as u8).collect();
    let gray = image::GrayImage::from_raw(SIDE as u32, SIDE as u32, raw).ok_or("bad pixel buffer")?;
    digit_image::prepare(&image::DynamicImage::ImageLuma8(gray), false, name).map(|(p, _)| p).map_err(|e| e.to_string())
}

async fn predict(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let Ok(_permit) = app.busy.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let worker = Arc::clone(&app);
    let result = tokio::task::spawn_blocking(move || -> Result<Value, (StatusCode, String)> {
        let pixels = prepare(&content_type, &body.0).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        let mut network = worker.take_network().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let prediction = predict_pixels(&mut network, &[pixels]);
        worker.give_back(network);
        let p = prediction.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?.remove(0);
        Ok(json!({
            "digit": p.digit,
            "confidence": p.confidence,
            "probabilities": p.probabilities,
            "input": pixels.to_vec(),
        }))
    })
    .await;
    match result {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "prediction failed"),
    }
}

/// The raw request body (axum's `Bytes` extractor, with its size limit).
mod bytes_body {
    use axum::extract::{FromRequest, Request};
    use axum::response::Response;

    pub struct Body(pub axum::body::Bytes);

    impl<S: Send + Sync> FromRequest<S> for Body {
        type Rejection = Response;
        async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
            match axum::body::Bytes::from_request(req, state).await {
                Ok(bytes) => Ok(Body(bytes)),
                Err(rejection) => {
                    let status = rejection.status();
                    Err(super::error(status, rejection.body_text()))
                }
            }
        }
    }
}
