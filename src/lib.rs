//! digitnn: train, evaluate and run a handwritten-digit CNN on the CPU.
//!
//! The crate is built in layers, each using only those above it in this list:
//! `kernels` (GEMM, convolution tables, SIMD dispatch), `nn` and `optim` (layers, loss,
//! optimizers), `model` and `data` (network definition and files, datasets and images), then
//! `train`, `eval` and `predict`, the library functions the command-line tool is built on.

pub mod error;
pub mod kernels;
pub mod nn;
pub mod optim;
pub mod model;
pub mod data;

pub use error::{Error, Result};
