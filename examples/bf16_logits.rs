//! How far bf16 products move a model's logits from fp32's on the MNIST test set: the largest
//! and mean absolute difference, the share of images whose digit changes, and both accuracies.
//!
//! usage: cargo run --release --example bf16_logits -- [MNIST_DIR=data/mnist] [MODEL]
//! (MODEL: a .safetensors or .pt file; default the built-in model.) Needs a CPU with AVX512-BF16
//! for bf16 to run at all; elsewhere it says so and both columns are fp32.

use digitnn::data::{Checksums, Dataset, mnist};
use digitnn::model::{self, Network};
use digitnn::predict::classify;
use digitnn::{EngineConfig, Precision};
use std::path::Path;

fn logits(network: &mut Network, test: &Dataset) -> Vec<f32> {
    let batch = network.inference_batch(1000);
    let (mut images, mut out) = (Vec::new(), Vec::new());
    let indices: Vec<usize> = (0..test.len()).collect();
    for chunk in indices.chunks(batch) {
        test.batch_into(chunk, &mut images);
        out.extend_from_slice(network.forward(&images, chunk.len(), false));
    }
    out
}

/// The digit each row of logits picks.
fn digits(logits: &[f32]) -> Vec<usize> {
    classify(logits, 10, false).map(|prediction| prediction.guess).collect()
}

fn accuracy(digits: &[usize], labels: &[u8]) -> f64 {
    let right = digits.iter().zip(labels).filter(|&(&d, &label)| d == usize::from(label)).count();
    right as f64 / labels.len() as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map_or("data/mnist", String::as_str);
    let test = mnist::load(Path::new(dir), Checksums::IfMnist)?.test;
    let (mut network, _) = match args.get(2) {
        Some(path) => model::load(Path::new(path))?,
        None => model::builtin()?,
    };
    let fp32 = EngineConfig::default();
    let bf16 = EngineConfig { precision: Precision::Bf16, ..fp32 };
    if let Some(note) = bf16.precision_note() {
        eprintln!("{note}");
    }
    network.set_engine(fp32)?;
    let want = logits(&mut network, &test);
    network.set_engine(bf16)?;
    println!("bf16 products in: {:?}", network.bf16_layers());
    let got = logits(&mut network, &test);
    let differences: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
    let largest = differences.iter().fold(0.0f32, |m, &d| m.max(d));
    let mean = differences.iter().map(|&d| f64::from(d)).sum::<f64>() / differences.len() as f64;
    let spread = want.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let (got_digits, want_digits) = (digits(&got), digits(&want));
    let changed = got_digits.iter().zip(&want_digits).filter(|(a, b)| a != b).count();
    println!("logits |bf16 - fp32|: largest {largest:.4}, mean {mean:.5} (largest |logit| {spread:.1})");
    println!("digits changed: {changed} of {}", test.len());
    let (fp32, bf16) = (accuracy(&want_digits, &test.labels), accuracy(&got_digits, &test.labels));
    println!("accuracy: fp32 {:.2}%, bf16 {:.2}%", fp32 * 100.0, bf16 * 100.0);
    Ok(())
}
