//! The models built into the binary, so that `predict`, `read`, `serve` and `eval` work on a fresh clone
//! with no training: the `reader` preset's BatchNorm CNN (`best`'s network half as wide again and
//! `best`'s recipe, with an eleventh output, "not a digit", trained 30 epochs on generated
//! non-digits and damaged digits besides; see the README for its accuracy and refusals), 1.3 MB.
//! `models/reader.safetensors` is reproduced bit for bit by
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

const NUMBERS_BYTES: &[u8] = include_bytes!("../../models/numbers.safetensors");

/// What messages call the built-in number reader.
pub const BUILTIN_NUMBERS_NAME: &str = "the built-in number reader";

/// The built-in number reader, the model `read` uses by default: the `numbers` preset (the
/// `reader` recipe with runs of pieces of composed numbers besides, cut as `read` cuts them).
/// `models/numbers.safetensors` is reproduced bit for bit, as the reader is, by
/// `digitnn train --preset numbers --seed 0 --bf16 --out models/numbers.safetensors` (stored in
/// bfloat16 so that the browser build, which embeds it with the line reader, stays small; as
/// stored it reads 99.59% of MNIST's test digits and refuses 1.55%).
/// For single digits the reader is the better choice: it refuses fewer of them.
pub fn builtin_numbers() -> Result<(Network, ModelInfo)> {
    from_bytes(NUMBERS_BYTES, Path::new(BUILTIN_NUMBERS_NAME))
}

const LINES_BYTES: &[u8] = include_bytes!("../../models/lines.safetensors");

/// What messages call the built-in line reader.
pub const BUILTIN_LINES_NAME: &str = "the built-in line reader";

/// The built-in line reader (`read::line`), which `read` asks beside the number reader, 0.6 MB:
/// `models/lines.safetensors` is reproduced bit for bit, as the reader is, by
/// `digitnn train-lines --seed 0 --bf16 --out models/lines.safetensors` (on MNIST's training
/// digits; bfloat16 as the number reader).
pub fn builtin_lines() -> Result<(Network, ModelInfo)> {
    from_bytes(LINES_BYTES, Path::new(BUILTIN_LINES_NAME))
}
