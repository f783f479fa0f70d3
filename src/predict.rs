//! Layer 4: predicting the digit in images.

use crate::data::image::{self, Pixels, Preparation};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::nn::loss::{argmax, softmax};
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Prediction {
    pub digit: usize,
    pub confidence: f32,
    pub probabilities: Vec<f32>,
}

/// Predictions for prepared 28x28 images (0-255, light on dark), in one batch.
pub fn predict_pixels(network: &mut Network, images: &[Pixels]) -> Result<Vec<Prediction>> {
    if network.input_len() != image::SIDE * image::SIDE {
        return Err(Error::Invalid(format!(
            "the model takes {:?} inputs, not 28x28 images",
            network.architecture.input
        )));
    }
    let input: Vec<f32> = images.iter().flat_map(|p| p.iter().map(|&v| crate::data::pixel_value(v))).collect();
    let classes = network.classes();
    let logits = network.forward(&input, images.len(), false);
    Ok(logits
        .chunks(classes)
        .map(|row| {
            let mut probabilities = vec![0.0; classes];
            softmax(row, &mut probabilities);
            let (digit, confidence) = argmax(&probabilities);
            Prediction { digit, confidence, probabilities }
        })
        .collect())
}

/// Reads and prepares one image file (see `data::image` for the steps; `raw` skips them).
pub fn prepare_file(path: &Path, raw: bool) -> Result<(Pixels, Preparation)> {
    let decoded = image::open(path)?;
    image::prepare(&decoded, raw, path)
}
