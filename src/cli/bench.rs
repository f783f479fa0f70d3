//! `digitnn bench`.

use anyhow::Result;
use digitnn::bench::{BenchConfig, run as run_bench};
use digitnn::data::augment::AugmentConfig;
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// One JSON object with the figures
    #[arg(long)]
    json: bool,
    /// Worker threads [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = BenchConfig::default().batch_size)]
    batch_size: usize,
    /// Timed training steps (after the warm-up steps)
    #[arg(long, default_value_t = BenchConfig::default().steps)]
    steps: usize,
    /// Augment every training image every step (affine), as `train --augment` does
    #[arg(long)]
    augment: bool,
    /// With --augment: also the elastic distortion
    #[arg(long)]
    elastic: bool,
    /// seed | fast | best | FILE.json: the network to measure
    #[arg(long, default_value = "seed")]
    arch: String,
    #[command(flatten)]
    engine: super::EngineArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if !(1..=digitnn::train::MAX_BATCH).contains(&args.batch_size) || !(1..=100_000).contains(&args.steps) {
        anyhow::bail!("--batch-size must be 1 to {} and --steps 1 to 100000", digitnn::train::MAX_BATCH);
    }
    digitnn::thread_count(args.threads)?;
    let engine = args.engine.config()?;
    let architecture = super::recipe::parse_architecture(&args.arch)?;
    digitnn::model::sample_cost(&architecture)?.check_training_batch(args.batch_size)?;
    let augment = match (args.augment, args.elastic) {
        (_, true) => Some(AugmentConfig::with_elastic()),
        (true, false) => Some(AugmentConfig::default()),
        (false, false) => None,
    };
    let config = BenchConfig {
        batch_size: args.batch_size,
        steps: args.steps,
        architecture,
        engine,
        augment,
        ..BenchConfig::default()
    };
    let report = digitnn::with_threads(args.threads, || run_bench(&config))??;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        let augmented = if config.augment.is_some() { ", augmented images" } else { "" };
        writeln!(
            out,
            "{} network, {} threads, {} kernels, {} convolutions, {}{augmented}",
            args.arch, report.threads, report.isa, report.conv, report.precision
        )?;
        if config.engine.runs_bf16() {
            let layers = if report.bf16_layers.is_empty() { "none".to_string() } else { report.bf16_layers.join(", ") };
            writeln!(out, "bf16 products in: {layers} (the other layers' in fp32)")?;
        }
        writeln!(
            out,
            "train (batch {}): {:.0} images/s, {:.1} ms/step, {:.0} GFLOP/s (as direct convolution)",
            report.batch_size, report.train_images_per_sec, report.train_ms_per_step, report.train_gflops
        )?;
        writeln!(out, "infer (batch 1000): {:.0} images/s", report.infer_batch_images_per_sec)?;
        writeln!(out, "infer (single image): {:.0} us/image", report.infer_single_latency_us)?;
        if let (Some(train), Some(all)) = (report.train_peak_rss_mib, report.peak_rss_mib) {
            writeln!(out, "peak memory (RSS): {train:.0} MiB training, {all:.0} MiB with batch-1000 inference")?;
        }
        writeln!(out, "\ntraining step by layer (ms):   forward  backward")?;
        for (name, forward, backward) in &report.layers_ms {
            writeln!(out, "  {name:<22}{forward:>10.2}{backward:>10.2}")?;
        }
        writeln!(out, "  {:<22}{:>10.2}", "other", report.other_ms)?;
    }
    Ok(ExitCode::SUCCESS)
}
