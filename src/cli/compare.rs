//! `digitnn compare`: the seed CNN trained once per optimizer, from the same initial weights and
//! the same data order, then charts and tables of the runs.

use anyhow::{Result, bail};
use digitnn::model::write_atomic;
use digitnn::optim::{OptimizerConfig, OptimizerKind};
use digitnn::report::{self, RunHistory};
use digitnn::train::TrainConfig;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Comma-separated: adam, adamw, sgd, momentum, nesterov
    #[arg(long, default_value = "adam,nesterov,momentum,sgd,adamw")]
    optimizers: String,
    /// One learning rate for all, or one per optimizer (comma-separated) [default: 1e-3 for adam
    /// and adamw, as the original; 0.01 for sgd, momentum and nesterov, which need a larger step
    /// to learn as much in a few epochs]. AdamW uses PyTorch's default weight decay, 0.01; momentum
    /// and nesterov use momentum 0.9
    #[arg(long)]
    lr: Option<String>,
    #[command(flatten)]
    recipe: super::recipe::RecipeArgs,
    /// Directory with the MNIST IDX files [default: $DIGITNN_DATA, else data/mnist]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Train on the first N training images only
    #[arg(long)]
    limit: Option<usize>,
    /// Worker threads [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    /// Where to write loss.png, loss.svg, results.csv and summary.md
    #[arg(long, default_value = "compare")]
    out: PathBuf,
    /// One JSON object per epoch (with its optimizer) on stdout, no progress bar
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    engine: super::EngineArgs,
}

/// Parses the optimizer list and learning rates; every mistake is reported before training.
fn configs(args: &Args) -> Result<Vec<OptimizerConfig>> {
    let kinds: Vec<OptimizerKind> = args
        .optimizers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if kinds.is_empty() {
        bail!("--optimizers is empty: name at least one of adam, adamw, sgd, momentum, nesterov");
    }
    let rates: Vec<f32> = match &args.lr {
        None => kinds.iter().map(|k| k.default_lr()).collect(),
        Some(list) => {
            let parsed: Vec<f32> = list
                .split(',')
                .map(|v| v.trim().parse::<f32>().map_err(|_| anyhow::anyhow!("--lr: '{v}' is not a number")))
                .collect::<Result<_>>()?;
            match parsed.len() {
                1 => vec![parsed[0]; kinds.len()],
                n if n == kinds.len() => parsed,
                n => bail!("--lr has {n} values for {} optimizers: give one, or one per optimizer", kinds.len()),
            }
        }
    };
    let configs: Vec<OptimizerConfig> = kinds
        .into_iter()
        .zip(rates)
        .map(|(kind, lr)| OptimizerConfig { lr, ..OptimizerConfig::recommended(kind) })
        .collect();
    for c in &configs {
        c.validate()?;
    }
    Ok(configs)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let optimizers = configs(&args)?;
    // The same seed gives every optimizer the same initial weights, data order and augmentation.
    let base = args.recipe.config();
    base.validate()?;
    let engine = args.engine.config()?;
    digitnn::thread_count(args.threads)?;
    let architecture = args.recipe.architecture()?;
    digitnn::model::sample_cost(&architecture)?.check_training_batch(base.batch_size)?;
    if args.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    super::prepare_output_dir(&args.out)?;
    let mut data = super::load_data(args.data.clone())?;
    if let Some(limit) = args.limit {
        data.train.truncate(limit);
    }
    let mut runs = Vec::new();
    for optimizer in optimizers {
        // The same seed gives every optimizer the same initial weights and data order.
        let config = TrainConfig { optimizer, ..base.clone() };
        let name = format!("{} (lr {})", optimizer.kind, optimizer.lr);
        let job = super::Job { architecture: &architecture, config: &config, engine, threads: args.threads };
        let (_, step_losses, epochs) = super::run_training(&data, job, &format!("{name} "), args.json, |stats| {
            print_epoch(&optimizer, stats, config.epochs, args.json)
        })?;
        runs.push(RunHistory { name, step_losses, epochs });
    }
    super::write_run_report(&args.out, &runs)?;
    let summary = format!(
        "# Optimizer comparison\n\nSeed CNN, {} epochs, batch {}, seed {}, same initial weights and data order for every optimizer.\n\n{}",
        base.epochs,
        base.batch_size,
        base.seed,
        report::summary_markdown(&runs)
    );
    write_atomic(&args.out.join("summary.md"), summary.as_bytes())?;
    eprintln!("wrote loss.png, loss.svg, results.csv and summary.md in {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn print_epoch(
    optimizer: &OptimizerConfig,
    stats: &digitnn::train::EpochStats,
    epochs: usize,
    json: bool,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(stats).unwrap_or_default();
        value["optimizer"] = optimizer.kind.name().into();
        value["lr"] = optimizer.lr.into();
        writeln!(out, "{value}")
    } else {
        writeln!(
            out,
            "{:<9} epoch {:>2}/{epochs}  train loss {:.5}  test accuracy {:.2}%  {:.1} s",
            optimizer.kind.name(),
            stats.epoch,
            stats.train_loss,
            stats.test_accuracy * 100.0,
            stats.seconds
        )
    }
}
