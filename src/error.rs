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
        "{path}: SHA-256 {actual} does not match MNIST's {expected}; the file is corrupt or not MNIST (delete it and fetch MNIST again)"
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
    /// A setting out of its range. `setting` is the library's name for it (a [`Setting`]); the
    /// command line and Python say it in their own words (`--batch-size`, `batch_size=`).
    #[error("{} {value}: {reason}", setting.name())]
    Setting { setting: Setting, value: String, reason: String },
    /// The caller stopped training (see `train::train_until`).
    #[error("training stopped")]
    Stopped,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The settings whose values the library checks, for [`Error::Setting`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Epochs,
    BatchSize,
    LearningRate,
    Momentum,
    WeightDecay,
    Warmup,
    LabelSmoothing,
    Ema,
    NotDigits,
    NumberPieces,
    EpochImages,
    Threads,
}

impl Setting {
    /// The library's name for the setting, as messages say it.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Epochs => "epochs",
            Setting::BatchSize => "batch size",
            Setting::LearningRate => "learning rate",
            Setting::Momentum => "momentum",
            Setting::WeightDecay => "weight decay",
            Setting::Warmup => "warmup",
            Setting::LabelSmoothing => "label smoothing",
            Setting::Ema => "EMA decay",
            Setting::NotDigits => "share of non-digits",
            Setting::NumberPieces => "share of number pieces",
            Setting::EpochImages => "images per epoch",
            Setting::Threads => "threads",
        }
    }
}

impl Error {
    /// A setting out of range: its `value` and what it must be.
    pub fn setting(setting: Setting, value: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Setting { setting, value: value.to_string(), reason: reason.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), cause: source }
    }
}
