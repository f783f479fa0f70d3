//! The library's one error type. Every message is a single line that names the file or value at
//! fault, so the CLI can print it as is.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is part of the message and deliberately not a `source`: `{:#}` would print it twice.
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{path}: not a valid IDX file: {reason}")]
    Idx { path: PathBuf, reason: String },
    #[error(
        "{path}: SHA-256 {actual} does not match MNIST's {expected}; the file is corrupt or not MNIST (delete it and run `digitnn data fetch`)"
    )]
    Checksum { path: PathBuf, expected: String, actual: String },
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("could not get MNIST: {0}")]
    Fetch(String),
    #[error("{0}")]
    Invalid(String),
    /// The caller stopped training (see `train::train_until`).
    #[error("training stopped")]
    Stopped,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), cause: source }
    }
}
