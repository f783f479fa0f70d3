//! Layer 4: throughput measured the way `pytorch_seed.py` measures PyTorch, on synthetic
//! MNIST-shaped data: 20 warm-up training steps then 100 timed (batch 32, seed CNN, Adam);
//! inference on batches of 1000 and on single images. The architecture and the engine are
//! part of the configuration.

use crate::data::Dataset;
use crate::data::augment::{AugmentConfig, augment_batch};
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::model::{self, Architecture, Network};
use crate::nn::loss::cross_entropy;
use crate::optim::OptimizerConfig;
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub batch_size: usize,
    pub warmup_steps: usize,
    pub steps: usize,
    pub architecture: Architecture,
    pub engine: EngineConfig,
    /// Augment every training image every step, as `train --augment` does (to measure its cost).
    pub augment: Option<AugmentConfig>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            batch_size: 32,
            warmup_steps: 20,
            steps: 100,
            architecture: Architecture::seed_cnn(),
            engine: EngineConfig::default(),
            augment: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub train_images_per_sec: f64,
    pub train_ms_per_step: f64,
    /// Training FLOPs per second counted as direct convolution (3 x 2 x the multiply-adds of the
    /// layers with weights: 174 MFLOP per image for the seed CNN), whatever algorithm ran:
    /// Winograd needs fewer, so this can pass the machine's fp32 peak.
    pub train_gflops: f64,
    pub infer_batch_images_per_sec: f64,
    pub infer_single_latency_us: f64,
    pub batch_size: usize,
    pub threads: usize,
    /// The engine: instruction set, convolution algorithm and precision asked for.
    pub isa: &'static str,
    pub conv: &'static str,
    pub precision: &'static str,
    /// The layers whose products ran in bf16 (empty in fp32, or where bf16 runs fp32).
    pub bf16_layers: Vec<String>,
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

/// Forward FLOPs of one image: 2 x the multiply-adds of the convolutions and linear layers
/// (outputs x kernel volume, inputs x outputs), from the architecture.
pub fn forward_flops(architecture: &Architecture) -> Result<f64> {
    Ok(2.0 * model::sample_cost(architecture)?.weight_macs as f64)
}

/// Synthetic images of `[channels, height, width]`: a bright random blob in a dark frame, like
/// a digit.
fn synthetic_images(count: usize, [channels, height, width]: [usize; 3]) -> Vec<f32> {
    let mut state = 12345u64;
    let mut images = vec![0.0f32; count * channels * height * width];
    for plane in images.chunks_mut(height * width) {
        for y in height * 3 / 14..height * 11 / 14 {
            for x in width * 2 / 7..width * 5 / 7 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                plane[y * width + x] = (state >> 40) as f32 / (1u64 << 24) as f32;
            }
        }
    }
    images
}

/// Runs the benchmark on the current rayon pool.
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    let mut network = Network::with_engine(config.architecture.clone(), 0, config.engine)?;
    network.check_training_batch(config.batch_size)?;
    let classes = network.classes();
    if classes > 256 {
        return Err(Error::Invalid(format!("bench needs at most 256 classes, the network has {classes}")));
    }
    let (input, image_len) = (config.architecture.input, network.input_len());
    let mut optimizer = OptimizerConfig::default().build(network.parameter_count());
    let batch = config.batch_size;
    let total_steps = config.warmup_steps + config.steps;
    let images = synthetic_images(batch * total_steps.min(64), input);
    // The same images as 8-bit pixels, which augmentation samples from.
    let source = Dataset {
        images: images.iter().map(|&v| (v * 255.0).round() as u8).collect(),
        labels: (0..batch * total_steps.min(64)).map(|i| (i % classes) as u8).collect(),
        rows: input[1],
        cols: input[2],
    };
    if config.augment.is_some() && input[0] != 1 {
        return Err(Error::Invalid("augmentation works on one-channel images".into()));
    }
    let (mut augmented, mut indices) = (Vec::new(), Vec::new());
    let labels: Vec<u8> = (0..batch).map(|i| (i % classes) as u8).collect();
    let mut grad = vec![0.0; batch * classes];
    let mut started = Instant::now();
    for step in 0..total_steps {
        if step == config.warmup_steps {
            started = Instant::now();
            network.set_profiling(true);
        }
        let first = (step % total_steps.min(64)) * batch;
        let inputs = match &config.augment {
            Some(augment) => {
                indices.clear();
                indices.extend(first..first + batch);
                augment_batch(&source, &indices, augment, 0, step, &mut augmented);
                &augmented[..]
            }
            None => &images[first * image_len..(first + batch) * image_len],
        };
        let logits = network.forward(inputs, batch, true);
        cross_entropy(logits, &labels, classes, &mut grad);
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

    let infer_batch = network.inference_batch(1000);
    let test = synthetic_images(infer_batch, input);
    network.forward(&test, infer_batch, false);
    let started = Instant::now();
    for _ in 0..10 {
        network.forward(&test, infer_batch, false);
    }
    let infer_batch_images_per_sec = (10 * infer_batch) as f64 / started.elapsed().as_secs_f64();

    let single = |i: usize| &test[(i % infer_batch) * image_len..][..image_len];
    for i in 0..20 {
        network.forward(single(i), 1, false);
    }
    let started = Instant::now();
    for i in 0..200 {
        network.forward(single(i), 1, false);
    }
    let infer_single_latency_us = started.elapsed().as_secs_f64() / 200.0 * 1e6;

    Ok(BenchReport {
        train_images_per_sec,
        train_ms_per_step: train_seconds / config.steps as f64 * 1e3,
        train_gflops: train_images_per_sec * 3.0 * forward_flops(&config.architecture)? / 1e9,
        infer_batch_images_per_sec,
        infer_single_latency_us,
        batch_size: batch,
        threads: rayon::current_num_threads(),
        isa: config.engine.isa.name(),
        precision: config.engine.precision.name(),
        bf16_layers: network.bf16_layers(),
        conv: config.engine.conv.name(),
        layers_ms,
        other_ms,
        train_peak_rss_mib,
        peak_rss_mib: peak_rss_mib(),
    })
}
