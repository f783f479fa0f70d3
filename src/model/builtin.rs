//! The model built into the binary, so that `predict`, `serve` and `eval` work on a fresh clone
//! with no training: the `best` preset's BatchNorm CNN (geometric and intensity augmentation,
//! OneCycle, label smoothing, 20 epochs; 99.73% on MNIST's test set), 0.6 MB.
//! `models/best.safetensors` is reproduced bit for bit by
//!
//! ```sh
//! digitnn train --preset best --seed 0 --out models/best.safetensors
//! ```
//! on MNIST and an AVX-512 CPU (the default kernels there; other instruction sets sum in other
//! orders and give other last bits), with any number of threads.

use super::{ModelInfo, Network, from_bytes};
use crate::error::Result;
use std::path::Path;

const BYTES: &[u8] = include_bytes!("../../models/best.safetensors");

/// What messages call the built-in model.
pub const BUILTIN_NAME: &str = "the built-in best model";

/// The built-in model, checked like any model file.
pub fn builtin() -> Result<(Network, ModelInfo)> {
    from_bytes(BYTES, Path::new(BUILTIN_NAME))
}
