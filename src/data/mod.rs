//! Layer 3: data. IDX files, MNIST (finding, verifying, fetching, loading) and turning
//! arbitrary images into the 28x28 inputs the model expects.

pub mod idx;
pub mod image;
pub mod mnist;

pub use mnist::{Checksums, Dataset, Mnist};
