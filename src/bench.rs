//! Layer 4: throughput measured the way `pytorch_seed.py` measures PyTorch, on synthetic
//! MNIST-shaped data: 20 warm-up training steps then 100 timed (batch 32, seed CNN, Adam);
//! inference on batches of 1000 and on single images.

use crate::error::Result;
use crate::kernels::isa;
use crate::model::{Architecture, Network};
use crate::nn::loss::cross_entropy;
use crate::optim::OptimizerConfig;
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub batch_size: usize,
    pub warmup_steps: usize,
    pub steps: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig { batch_size: 32, warmup_steps: 20, steps: 100 }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub train_images_per_sec: f64,
    pub train_ms_per_step: f64,
    /// Training FLOPs per second counted as direct convolution (174 MFLOP per image), whatever
    /// algorithm ran: Winograd needs fewer, so this can pass the machine's fp32 peak.
    pub train_gflops: f64,
    pub infer_batch_images_per_sec: f64,
    pub infer_single_latency_us: f64,
    pub batch_size: usize,
    pub threads: usize,
    pub isa: &'static str,
    /// Milliseconds per training step in each layer: (layer, forward, backward).
    pub layers_ms: Vec<(String, f64, f64)>,
    /// Milliseconds per training step outside the layers (loss, optimizer, batching).
    pub other_ms: f64,
    /// The process's peak resident memory in MiB after training, before any inference (Linux only).
    pub train_peak_rss_mib: Option<f64>,
    /// The process's peak resident memory in MiB at the end, batch-1000 inference included.
    pub peak_rss_mib: Option<f64>,
}

/// VmHWM from /proc/self/status: the most memory this process has held.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Forward multiply-adds of the seed CNN for one image, times 2 for FLOPs: convolutions
/// (outputs x kernel volume) plus the linear layer. Training costs three times the forward pass.
pub fn seed_cnn_forward_flops() -> f64 {
    let conv = |out_pixels: f64, cout: f64, k: f64| 2.0 * out_pixels * cout * k;
    conv(26.0 * 26.0, 32.0, 9.0)
        + conv(24.0 * 24.0, 64.0, 288.0)
        + conv(22.0 * 22.0, 64.0, 576.0)
        + 2.0 * 30976.0 * 10.0
}

/// Synthetic images: a bright random blob in a dark frame, like a digit.
fn synthetic_images(count: usize) -> Vec<f32> {
    let mut state = 12345u64;
    let mut images = vec![0.0f32; count * 784];
    for image in images.chunks_mut(784) {
        for y in 6..22 {
            for x in 8..20 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                image[y * 28 + x] = (state >> 40) as f32 / (1u64 << 24) as f32;
            }
        }
    }
    images
}

/// Runs the benchmark on the current rayon pool.
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    let mut network = Network::new(Architecture::seed_cnn(), 0)?;
    let mut optimizer = OptimizerConfig::default().build(network.parameter_count());
    let batch = config.batch_size;
    let total_steps = config.warmup_steps + config.steps;
    let images = synthetic_images(batch * total_steps.min(64));
    let labels: Vec<u8> = (0..batch).map(|i| (i % 10) as u8).collect();
    let mut grad = vec![0.0; batch * 10];
    let mut started = Instant::now();
    for step in 0..total_steps {
        if step == config.warmup_steps {
            started = Instant::now();
            network.set_profiling(true);
        }
        let at = (step % total_steps.min(64)) * batch * 784;
        let logits = network.forward(&images[at..at + batch * 784], batch, true);
        cross_entropy(logits, &labels, 10, &mut grad);
        network.backward(&grad);
        network.apply(optimizer.as_mut());
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let per_step = |seconds: f64| seconds / config.steps as f64 * 1e3;
    let layers_ms: Vec<_> = network.profile().into_iter().map(|(n, f, b)| (n, per_step(f), per_step(b))).collect();
    let other_ms = per_step(train_seconds) - layers_ms.iter().map(|(_, f, b)| f + b).sum::<f64>();
    network.set_profiling(false);
    let train_peak_rss_mib = peak_rss_mib();
    let train_images_per_sec = (config.steps * batch) as f64 / train_seconds;

    let test = synthetic_images(1000);
    network.forward(&test, 1000, false);
    let started = Instant::now();
    for _ in 0..10 {
        network.forward(&test, 1000, false);
    }
    let infer_batch_images_per_sec = 10_000.0 / started.elapsed().as_secs_f64();

    for i in 0..20 {
        network.forward(&test[i * 784..(i + 1) * 784], 1, false);
    }
    let started = Instant::now();
    for i in 0..200 {
        let at = (i % 1000) * 784;
        network.forward(&test[at..at + 784], 1, false);
    }
    let infer_single_latency_us = started.elapsed().as_secs_f64() / 200.0 * 1e6;

    Ok(BenchReport {
        train_images_per_sec,
        train_ms_per_step: train_seconds / config.steps as f64 * 1e3,
        train_gflops: train_images_per_sec * 3.0 * seed_cnn_forward_flops() / 1e9,
        infer_batch_images_per_sec,
        infer_single_latency_us,
        batch_size: batch,
        threads: rayon::current_num_threads(),
        isa: isa::active().name(),
        layers_ms,
        other_ms,
        train_peak_rss_mib,
        peak_rss_mib: peak_rss_mib(),
    })
}
