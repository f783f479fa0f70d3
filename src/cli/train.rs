//! `digitnn train`.

use anyhow::Result;
use digitnn::model::{self, Architecture, Network};
use digitnn::optim::{OptimizerConfig, OptimizerKind};
use digitnn::train::{EpochStats, TrainConfig, TrainEvent, train};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Directory with the MNIST IDX files [default: $DIGITNN_DATA, else data/mnist]
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// adam | adamw | sgd | momentum | nesterov
    #[arg(long, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Learning rate [default: 1e-3 for adam and adamw, 0.01 for sgd, momentum and nesterov]
    #[arg(long)]
    lr: Option<f32>,
    /// Momentum for momentum and nesterov
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Seeds the initial weights and the shuffling
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep the files' order every epoch, as the original project did
    #[arg(long)]
    no_shuffle: bool,
    /// Worker threads [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    /// Train on the first N training images only
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value = super::DEFAULT_MODEL)]
    out: PathBuf,
    /// One JSON object per epoch on stdout, no progress bar
    #[arg(long)]
    json: bool,
}

/// The learning rate each optimizer gets unless told otherwise: Adam's 1e-3 is the original's;
/// plain and momentum SGD need a larger step to make progress in the same epochs.
pub fn default_lr(kind: OptimizerKind) -> f32 {
    match kind {
        OptimizerKind::Adam | OptimizerKind::AdamW => 1e-3,
        OptimizerKind::Sgd | OptimizerKind::Momentum | OptimizerKind::Nesterov => 1e-2,
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let optimizer = OptimizerConfig {
        kind: args.optimizer,
        lr: args.lr.unwrap_or(default_lr(args.optimizer)),
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        ..OptimizerConfig::default()
    };
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer,
        seed: args.seed,
        shuffle: !args.no_shuffle,
    };
    config.validate()?;
    if args.limit == Some(0) {
        anyhow::bail!("--limit must be at least 1");
    }
    super::check_writable(&args.out)?;
    let mut data = super::load_data(args.data)?;
    if let Some(limit) = args.limit {
        data.train.truncate(limit);
    }
    let json = args.json;
    let bar = super::interactive(json).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps  loss {msg}  {per_sec}  eta {eta}",
            )
            .unwrap()
            .progress_chars("=> "),
        );
        bar
    });
    let mut output_error = None;
    let network_and_history = digitnn::with_threads(args.threads, || {
        let mut network = Network::new(Architecture::seed_cnn(), config.seed)?;
        let history = train(&mut network, &data.train, &data.test, &config, |event| match event {
            TrainEvent::Step { epoch, step, steps, loss } => {
                if let Some(bar) = &bar {
                    if step == 1 {
                        bar.reset();
                        bar.set_length(steps as u64);
                        bar.set_prefix(format!("{epoch}/{}", config.epochs));
                    }
                    if step % 16 == 0 || step == steps {
                        bar.set_position(step as u64);
                        bar.set_message(format!("{loss:.4}"));
                    }
                }
            }
            TrainEvent::Epoch(stats) => {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                if let Err(e) = print_epoch(stats, config.epochs, json) {
                    output_error.get_or_insert(e);
                }
            }
        })?;
        Ok::<_, digitnn::Error>((network, history))
    })?;
    let (network, history) = network_and_history?;
    if let Some(e) = output_error {
        return Err(e.into());
    }
    let accuracy = history.last().map(|s| s.test_accuracy);
    model::save(&network, &args.out, accuracy)?;
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
