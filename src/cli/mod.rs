//! Argument parsing and dispatch. No math and no file formats here: each subcommand module turns
//! arguments into library calls and results into text or JSON.

mod bench;
mod compare;
mod convert;
mod data;
mod eval;
mod predict;
mod read;
mod recipe;
mod serve;
mod train;
mod train_lines;
mod web;

use anyhow::Result;
use clap::{Parser, Subcommand};
use digitnn::data::{Checksums, Mnist, mnist};
use digitnn::model::{self, Architecture, ModelInfo, Network};
use digitnn::read::line::LineReader;
use digitnn::report::{self, RunHistory};
use digitnn::train::{EpochStats, TrainConfig, TrainEvent, train};
use digitnn::{ConvAlgorithm, EngineConfig, Isa, Precision};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Train, evaluate and run a handwritten-digit CNN on the CPU.
#[derive(Parser)]
#[command(name = "digitnn", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the seed CNN on MNIST (fetched and verified if missing) and save it.
    Train(train::Args),
    /// Accuracy, confusion matrix and per-digit precision/recall on the MNIST test set.
    Eval(eval::Args),
    /// Print the digit in each image.
    Predict(predict::Args),
    /// Read the number in each image: several digits, touching or not, left to right.
    Read(read::Args),
    /// Train the line reader `read` asks beside the number reader, on numbers composed from
    /// MNIST's training digits.
    TrainLines(train_lines::Args),
    /// Manage the dataset.
    Data {
        #[command(subcommand)]
        command: data::Command,
    },
    /// Measure training and inference speed (synthetic data; the seed CNN unless --arch).
    Bench(bench::Args),
    /// Convert a model between safetensors and PyTorch .pt (both ways).
    Convert(convert::ConvertArgs),
    /// Export a model to another format (ONNX).
    Export(convert::ExportArgs),
    /// Serve a drawing page and a JSON prediction API over HTTP.
    Serve(serve::Args),
    /// Train once per optimizer from the same start and draw the loss and accuracy curves.
    Compare(compare::Args),
    /// Write the drawing page as a static site that reads in the browser (WebAssembly, no server).
    Web(web::Args),
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Read(args) => read::run(args),
        Command::TrainLines(args) => train_lines::run(args),
        Command::Data { command } => data::run(command),
        Command::Bench(args) => bench::run(args),
        Command::Convert(args) => convert::convert(args),
        Command::Export(args) => convert::export(args),
        Command::Serve(args) => serve::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Web(args) => web::run(args),
    }
}

/// An error as the command line says it: a setting the library refused is named by its flag.
pub fn phrase(error: &anyhow::Error) -> String {
    use digitnn::Setting;
    let setting = error.chain().find_map(|cause| match cause.downcast_ref::<digitnn::Error>() {
        Some(digitnn::Error::Setting { setting, value, reason }) => Some((*setting, value, reason)),
        _ => None,
    });
    let Some((setting, value, reason)) = setting else { return format!("{error:#}") };
    let flag = match setting {
        Setting::Epochs => "--epochs",
        Setting::BatchSize => "--batch-size",
        Setting::LearningRate => "--lr",
        Setting::Momentum => "--momentum",
        Setting::WeightDecay => "--weight-decay",
        Setting::Warmup => "--warmup",
        Setting::LabelSmoothing => "--label-smoothing",
        Setting::Ema => "--ema",
        Setting::Threads => "--threads",
        Setting::EpochImages => "--epoch-images",
        // Set by presets only: no flag of their own.
        Setting::NotDigits | Setting::NumberPieces => return format!("{error:#}"),
    };
    format!("{flag} {value}: {reason}")
}

/// The default model file.
const DEFAULT_MODEL: &str = "digit_model.safetensors";

/// The engine flags of every subcommand that runs a network. Their defaults come from the
/// library's `EngineConfig::default()`; the environment variables, if set, replace them.
#[derive(clap::Args, Clone, Copy, Debug)]
struct EngineArgs {
    /// Kernels' instruction set: auto (the best this CPU has), avx512, avx2 or portable
    #[arg(long, env = "DIGITNN_ISA", default_value = "auto", value_parser = parse_isa)]
    isa: IsaFlag,
    /// How 3x3 convolutions with 8+ channels run: auto, direct, winograd2 or winograd4
    #[arg(long, env = "DIGITNN_CONV", default_value_t = EngineConfig::default().conv)]
    conv: ConvAlgorithm,
    /// fp32, or bf16 (products of bf16 values summed in fp32, as PyTorch's autocast; runs fp32
    /// on a CPU without AVX512-BF16, and says so)
    #[arg(long, env = "DIGITNN_PRECISION", default_value_t = EngineConfig::default().precision)]
    precision: Precision,
}

/// `--isa`: a named instruction set, or None for `auto`.
#[derive(Clone, Copy, Debug)]
struct IsaFlag(Option<Isa>);

fn parse_isa(name: &str) -> std::result::Result<IsaFlag, String> {
    if name.trim().eq_ignore_ascii_case("auto") {
        Ok(IsaFlag(None))
    } else {
        name.parse().map(|isa| IsaFlag(Some(isa))).map_err(|e: digitnn::Error| e.to_string())
    }
}

impl EngineArgs {
    /// The configuration, refused if this CPU cannot run it. Says once (here) when bf16 was
    /// asked for but runs in fp32.
    fn config(&self) -> Result<EngineConfig> {
        let isa = self.isa.0.unwrap_or_else(Isa::best);
        let engine = EngineConfig { isa, conv: self.conv, precision: self.precision };
        engine.check()?;
        if let Some(note) = engine.precision_note() {
            eprintln!("{note}");
        }
        Ok(engine)
    }
}

/// The model a command runs: `--model` if given, else `digit_model.safetensors` if it is in the
/// working directory, else the built-in one; on `engine`, checked to read digits. Says which on
/// stderr, and returns its name for messages.
fn load_model(arg: Option<&Path>, engine: EngineConfig) -> Result<(Network, ModelInfo, String)> {
    let path = arg.map(Path::to_path_buf).or_else(|| Some(PathBuf::from(DEFAULT_MODEL)).filter(|p| p.exists()));
    load_or_builtin(path.as_deref(), engine, model::builtin, model::BUILTIN_NAME)
}

/// The model `read` runs: `--model` if given, else the built-in number reader (a model trained
/// on single digits reads touching digits worse).
fn load_number_reader(arg: Option<&Path>, engine: EngineConfig) -> Result<(Network, ModelInfo, String)> {
    load_or_builtin(arg, engine, model::builtin_numbers, model::BUILTIN_NUMBERS_NAME)
}

/// The line model `read` asks: a file, checked to be a line model, on `engine`.
fn load_line_model(path: &Path, engine: EngineConfig) -> Result<LineReader> {
    let (mut network, _) = model::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    network.set_engine(engine)?;
    LineReader::new(network).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The built-in line reader on `engine`.
fn load_line_model_builtin(engine: EngineConfig) -> Result<LineReader> {
    let (mut network, _) = model::builtin_lines()?;
    network.set_engine(engine)?;
    Ok(LineReader::new(network)?)
}

fn load_or_builtin(
    path: Option<&Path>,
    engine: EngineConfig,
    builtin: fn() -> digitnn::Result<(Network, ModelInfo)>,
    builtin_name: &str,
) -> Result<(Network, ModelInfo, String)> {
    let (mut network, info, name) = match path {
        Some(path) => {
            let (network, info) = model::load(path)?;
            (network, info, path.display().to_string())
        }
        None => {
            let (network, info) = builtin()?;
            (network, info, builtin_name.to_string())
        }
    };
    network.set_engine(engine)?;
    network.check_digit_classes().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let accuracy = info.test_accuracy.map(|a| format!(" ({:.2}% on its test set)", a * 100.0)).unwrap_or_default();
    eprintln!("model: {name}{accuracy}");
    if engine.runs_bf16() {
        let layers = network.bf16_layers();
        let layers = if layers.is_empty() { "none".to_string() } else { layers.join(", ") };
        eprintln!("bf16 products in: {layers} (the other layers' in fp32)");
    }
    Ok((network, info, name))
}

/// The exit code of a command over image files: failure, with a count, if any could not be read
/// (each was reported as it failed; the others were still done).
fn images_done(failures: usize, total: usize) -> ExitCode {
    if failures == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!("{failures} of {total} images could not be read");
    ExitCode::FAILURE
}

/// The data directory and how strictly to check it: the built-in default must hold MNIST; a
/// directory the user named may hold another dataset in the same format.
fn data_dir(arg: Option<PathBuf>) -> (PathBuf, Checksums) {
    mnist::location(arg.or_else(|| std::env::var_os("DIGITNN_DATA").filter(|v| !v.is_empty()).map(PathBuf::from)))
}

/// Loads the dataset, fetching MNIST first when the files are not there.
fn load_data(arg: Option<PathBuf>) -> Result<Mnist> {
    let (dir, checksums) = data_dir(arg);
    let no_fetch = std::env::var_os("DIGITNN_NO_FETCH").is_some_and(|v| !v.is_empty());
    let sources = (!no_fetch).then(mnist::Sources::default);
    let data = mnist::load_or_fetch(&dir, checksums, sources.as_ref(), &mut |line| eprintln!("  {line}"))?;
    if data.mnist_files.is_empty() {
        eprintln!("note: {} is not MNIST (checksums differ); using it as another IDX dataset", dir.display());
    } else if !data.is_mnist {
        eprintln!(
            "note: in {}, only {} match MNIST's checksums; the other files are used as they are",
            dir.display(),
            data.mnist_files.join(", ")
        );
    }
    Ok(data)
}

/// Whether to draw progress bars: only for a person watching a terminal.
fn interactive(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// Fails early, before hours of training, if `path` cannot be written.
fn check_writable(path: &Path) -> Result<()> {
    let dir = digitnn::files::parent_dir(path);
    if path.is_dir() {
        anyhow::bail!("{}: is a directory", path.display());
    }
    tempfile::NamedTempFile::new_in(dir).map_err(|e| anyhow::anyhow!("{}: cannot write there: {e}", dir.display()))?;
    Ok(())
}

/// What to train and on what: the network, the recipe, the engine and the threads.
struct Job<'a> {
    architecture: &'a Architecture,
    config: &'a TrainConfig,
    engine: EngineConfig,
    threads: Option<usize>,
}

/// Trains `job`, with a progress bar on a terminal (its label starts with `prefix`) and `print`
/// called after every epoch; returns the network and the run for reports.
fn run_training(
    data: &Mnist,
    job: Job,
    prefix: &str,
    json: bool,
    mut print: impl FnMut(&EpochStats) -> std::io::Result<()> + Send,
) -> Result<(Network, Vec<f32>, Vec<EpochStats>)> {
    let Job { architecture, config, engine, threads } = job;
    let bar = training_bar(json);
    let mut step_losses = Vec::new();
    let mut output = Ok(());
    let (network, history) = digitnn::with_threads(threads, || {
        let mut network = Network::with_engine(architecture.clone(), config.seed, engine)?;
        let history = train(&mut network, &data.train, &data.test, config, |event| match event {
            TrainEvent::Step { epoch, step, steps, loss } => {
                step_losses.push(loss);
                show_step(&bar, || format!("{prefix}epoch {epoch}/{}", config.epochs), step, steps, loss);
            }
            TrainEvent::Epoch(stats) => {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                if output.is_ok() {
                    output = print(stats);
                }
            }
        })?;
        Ok::<_, digitnn::Error>((network, history))
    })??;
    output?;
    Ok((network, step_losses, history))
}

/// loss.png, loss.svg and results.csv for `runs`, in `dir`.
fn write_run_report(dir: &Path, runs: &[RunHistory]) -> Result<()> {
    report::loss_chart(runs, &dir.join("loss.png"), &dir.join("loss.svg"))?;
    digitnn::model::write_atomic(&dir.join("results.csv"), report::results_csv(runs).as_bytes())?;
    Ok(())
}

/// A progress bar for training on a terminal (`None` when not interactive).
fn training_bar(json: bool) -> Option<indicatif::ProgressBar> {
    interactive(json).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} steps  loss {msg}  elapsed {elapsed}  eta {eta}",
            )
            .unwrap()
            .progress_chars("=> "),
        );
        bar
    })
}

/// Moves the bar for one training step; `label` says what is running ("epoch 2/10").
fn show_step(
    bar: &Option<indicatif::ProgressBar>,
    label: impl FnOnce() -> String,
    step: usize,
    steps: usize,
    loss: f32,
) {
    let Some(bar) = bar else { return };
    if step == 1 {
        bar.reset();
        bar.set_length(steps as u64);
        bar.set_prefix(label());
        bar.set_message("-");
    }
    if step.is_multiple_of(16) || step == steps {
        bar.set_position(step as u64);
        bar.set_message(format!("{loss:.4}"));
    }
}

/// Creates `dir` if needed and checks a file can be written in it, before any training starts.
fn prepare_output_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: cannot create the directory: {e}", dir.display()))?;
    check_writable(&dir.join("probe"))
}
