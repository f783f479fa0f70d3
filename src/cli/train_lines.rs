//! `digitnn train-lines`: trains the line reader `read` asks beside the number reader.

use anyhow::Result;
use digitnn::model;
use digitnn::read::train::{LineTrainConfig, train_line_reader};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Directory with the MNIST IDX files (numbers are composed from its training digits only)
    /// [default: $DIGITNN_DATA, else data/mnist]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Steps of one batch each
    #[arg(long, default_value_t = LineTrainConfig::default().steps)]
    steps: usize,
    /// Strips per batch
    #[arg(long, default_value_t = LineTrainConfig::default().batch_size)]
    batch_size: usize,
    /// Peak learning rate (Adam, one-cycle schedule)
    #[arg(long, default_value_t = LineTrainConfig::default().optimizer.lr)]
    lr: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value = "lines.safetensors")]
    out: PathBuf,
    /// Store the weights in bfloat16: half the file (the built-in line reader is stored so, to
    /// keep the browser build small)
    #[arg(long)]
    bf16: bool,
    #[command(flatten)]
    engine: super::EngineArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let default = LineTrainConfig::default();
    let config = LineTrainConfig {
        seed: args.seed,
        steps: args.steps,
        batch_size: args.batch_size,
        optimizer: digitnn::optim::OptimizerConfig { lr: args.lr, ..default.optimizer },
        ..default
    };
    if config.steps == 0 || config.batch_size == 0 {
        anyhow::bail!("--steps and --batch-size must be at least 1");
    }
    let engine = args.engine.config()?;
    digitnn::thread_count(args.threads)?;
    super::check_writable(&args.out)?;
    let data = super::load_data(args.data)?;
    let mut network = config.network()?;
    network.set_engine(engine)?;
    let started = Instant::now();
    let (mut recent, report_every) = (0.0, 500);
    digitnn::with_threads(args.threads, || {
        train_line_reader(&mut network, &data.train, &config, |step, loss| {
            recent += loss;
            if step % report_every == 0 || step == config.steps {
                let seconds = started.elapsed().as_secs_f64();
                let shown = recent / ((step - 1) % report_every + 1) as f32;
                println!("step {step:>6}/{}  loss {shown:.4}  {seconds:.0} s", config.steps);
                recent = 0.0;
            }
            ControlFlow::Continue(())
        })
    })??;
    let storage = if args.bf16 { model::Storage::Bf16 } else { model::Storage::F32 };
    model::save_stored(&network, &args.out, None, storage)?;
    eprintln!("saved {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
