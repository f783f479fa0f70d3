//! `digitnn train`.

use anyhow::Result;
use digitnn::model;
use digitnn::optim::OptimizerKind;
use digitnn::presets::Overrides;
use digitnn::report::RunHistory;
use digitnn::train::{EpochStats, TrainConfig};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Directory with the MNIST IDX files [default: $DIGITNN_DATA, else data/mnist]
    #[arg(long)]
    data: Option<PathBuf>,
    /// adam | adamw | sgd | momentum | nesterov [default: the preset's; seed: adam]
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// Learning rate, the peak of a schedule [default: the preset's; seed: 1e-3 for adam and
    /// adamw, 0.01 for sgd, momentum and nesterov]
    #[arg(long)]
    lr: Option<f32>,
    /// Momentum for momentum and nesterov
    #[arg(long, default_value_t = TrainConfig::default().optimizer.momentum)]
    momentum: f32,
    /// Weight decay [default: 0.01 for adamw, as PyTorch; 0 for the others]
    #[arg(long)]
    weight_decay: Option<f32>,
    #[command(flatten)]
    recipe: super::recipe::RecipeArgs,
    /// Worker threads [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    /// Train on the first N training images only
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value = super::DEFAULT_MODEL)]
    out: PathBuf,
    /// Store the weights in bfloat16: half the file (the built-in number reader is stored so)
    #[arg(long)]
    bf16: bool,
    /// One JSON object per epoch on stdout, no progress bar
    #[arg(long)]
    json: bool,
    /// Also write loss.png, loss.svg (loss and accuracy curves), results.csv and, when
    /// augmenting, augment.png (a grid of augmented training images) into DIR
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    #[command(flatten)]
    engine: super::EngineArgs,
}

impl Args {
    /// The recipe with the optimizer flags applied.
    fn config(&self) -> TrainConfig {
        let overrides = Overrides {
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: Some(self.momentum),
            weight_decay: self.weight_decay,
            ..self.recipe.overrides()
        };
        self.recipe.preset.config_with(&overrides)
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = args.config();
    config.validate()?;
    let engine = args.engine.config()?;
    digitnn::thread_count(args.threads)?;
    let architecture = args.recipe.architecture()?;
    model::sample_cost(&architecture)?.check_training_batch(config.batch_size)?;
    if args.limit == Some(0) {
        anyhow::bail!("--limit must be at least 1");
    }
    super::check_writable(&args.out)?;
    if let Some(dir) = &args.report {
        super::prepare_output_dir(dir)?;
    }
    let mut data = super::load_data(args.data)?;
    if let Some(limit) = args.limit {
        data.train.truncate(limit);
    }
    let json = args.json;
    let job = super::Job { architecture: &architecture, config: &config, engine, threads: args.threads };
    let (network, step_losses, history) =
        super::run_training(&data, job, "", json, |stats| print_epoch(stats, config.epochs, json))?;
    let accuracy = history.last().map(|s| s.test_accuracy);
    if let Some(dir) = &args.report {
        let run = RunHistory { name: config.optimizer.kind.to_string(), step_losses, epochs: history };
        super::write_run_report(dir, &[run])?;
        let mut written = "loss.png, loss.svg and results.csv".to_string();
        if let Some(augment) = &config.augment {
            digitnn::report::augment_png(&data.train, augment, config.seed, &dir.join("augment.png"))?;
            written = "loss.png, loss.svg, results.csv and augment.png".into();
        }
        eprintln!("wrote {written} in {}", dir.display());
    }
    let storage = if args.bf16 { model::Storage::Bf16 } else { model::Storage::F32 };
    model::save_stored(&network, &args.out, accuracy, storage)?;
    eprintln!("saved {} (test accuracy {:.2}%)", args.out.display(), accuracy.unwrap_or(0.0) * 100.0);
    Ok(ExitCode::SUCCESS)
}

fn print_epoch(stats: &EpochStats, epochs: usize, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(stats).unwrap_or_default())
    } else {
        writeln!(
            out,
            "epoch {:>2}/{epochs}  train loss {:.5}  last batch {:.5}  test accuracy {:.2}%  {:.1} s  {:.0} images/s",
            stats.epoch,
            stats.train_loss,
            stats.last_batch_loss,
            stats.test_accuracy * 100.0,
            stats.seconds,
            stats.images_per_sec
        )
    }
}
