//! The model built into the binary, so that `predict`, `serve` and `eval` work on a fresh clone
//! with no training: the `reader` preset's BatchNorm CNN (`best`'s network and recipe with an
//! eleventh output, "not a digit", trained on generated non-digits and damaged digits besides;
//! see the README for its accuracy and refusals), 0.6 MB. `models/reader.safetensors` is
//! reproduced bit for bit by
//!
//! ```sh
//! digitnn train --preset reader --seed 0 --out models/reader.safetensors
//! ```
//! on MNIST and an AVX-512 CPU (the default kernels there; other instruction sets sum in other
//! orders and give other last bits), with any number of threads.

use super::{ModelInfo, Network, from_bytes};
use crate::error::Result;
use std::path::Path;

const BYTES: &[u8] = include_bytes!("../../models/reader.safetensors");

/// What messages call the built-in model.
pub const BUILTIN_NAME: &str = "the built-in reader model";

/// The built-in model, checked like any model file.
pub fn builtin() -> Result<(Network, ModelInfo)> {
    from_bytes(BYTES, Path::new(BUILTIN_NAME))
}
