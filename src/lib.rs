//! digitnn: train, evaluate and run a handwritten-digit CNN on the CPU.
//!
//! The crate is built in layers, each using only those above it in this list:
//! `kernels` (GEMM, convolution tables, the SIMD layer) and `engine` (which kernels a network
//! runs on: [`EngineConfig`]), `nn` and `optim` (layers, loss, optimizers), `model` and `data` (network definition and files, datasets and images), then
//! `train`, `eval`, `predict` and `bench`, the library functions the command-line tool is built on.
//!
//! ```no_run
//! use digitnn::{data, model, train};
//! let mnist = data::mnist::load("data/mnist".as_ref(), data::Checksums::Require)?;
//! let mut network = model::Network::new(model::Architecture::seed_cnn(), 0)?;
//! let config = train::TrainConfig { epochs: 1, ..Default::default() };
//! train::train(&mut network, &mnist.train, &mnist.test, &config, |_| {})?;
//! model::save(&network, "digit_model.safetensors".as_ref(), None)?;
//! # Ok::<(), digitnn::Error>(())
//! ```

pub mod bench;
pub mod data;
pub mod engine;
pub mod error;
pub mod eval;
pub mod files;
pub mod fuzz;
pub mod kernels;
pub mod limits;
pub mod model;
mod names;
pub mod nn;
pub mod optim;
pub mod predict;
pub mod presets;
pub mod read;
#[cfg(feature = "charts")]
pub mod report;
pub mod train;

pub use engine::{ConvAlgorithm, EngineConfig, Isa, Precision};
pub use error::{Error, Result, Setting};

/// The number of threads `threads` asks for (all cores when `None`), refused when 0 or absurd.
/// The CLI checks it before loading anything, so a bad value fails at once.
pub fn thread_count(threads: Option<usize>) -> Result<usize> {
    match threads {
        Some(0) => Err(Error::setting(error::Setting::Threads, 0, "must be at least 1")),
        Some(n) if n > 1024 => Err(Error::setting(error::Setting::Threads, n, "is more than digitnn supports (1024)")),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// Runs `f` on a pool of `threads` threads (all cores when `None`). Results depend only on the
/// seed and the thread count.
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    let threads = thread_count(threads)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {threads} threads: {e}")))?;
    Ok(pool.install(f))
}
