//! Layer 3: data. IDX files, MNIST (finding, verifying, fetching, loading) and turning
//! arbitrary images into the 28x28 inputs the model expects.

pub mod augment;
pub mod corrupt;
pub mod cuts;
pub mod degrade;
pub mod fetch;
pub mod idx;
pub mod image;
pub mod ink;
pub mod marks;
pub mod mnist;
pub mod nondigit;
pub mod numbers;
pub mod strip;
pub mod tangle;

pub use mnist::{Checksums, Dataset, Mnist};

/// A pixel as the model sees it: scaled to [0, 1] as the original does (value / 255, no
/// normalisation).
#[inline]
pub fn pixel_value(pixel: u8) -> f32 {
    pixel as f32 / 255.0
}
