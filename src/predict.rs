//! Layer 4: predicting the digit in images.

use crate::data::image::{self, Pixels, Preparation};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::nn::loss::{argmax, softmax};
use serde::Serialize;
use std::ops::Range;
use std::path::Path;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Prediction {
    pub digit: usize,
    pub confidence: f32,
    pub probabilities: Vec<f32>,
}

/// Predictions for prepared 28x28 images (0-255, light on dark), in batches whose activations
/// fit the inference budget (`limits::INFERENCE_BATCH_BYTES`).
pub fn predict_pixels(network: &mut Network, images: &[Pixels]) -> Result<Vec<Prediction>> {
    if network.input_len() != image::SIDE * image::SIDE {
        return Err(Error::Invalid(format!(
            "the model takes {:?} inputs, not 28x28 images",
            network.architecture.input
        )));
    }
    network.check_digit_classes()?;
    let mut predictions = Vec::with_capacity(images.len());
    let fill = |range: Range<usize>, input: &mut Vec<f32>| {
        input.extend(images[range].iter().flat_map(|p| p.iter().map(|&v| crate::data::pixel_value(v))));
    };
    infer_in_batches(network, images.len(), fill, |_, logits| predictions.extend(classify(logits, 10)))?;
    Ok(predictions)
}

/// The prediction for each row of `logits` (one row of `classes` logits per image).
pub fn classify(logits: &[f32], classes: usize) -> impl Iterator<Item = Prediction> + '_ {
    logits.chunks(classes).map(|row| {
        let mut probabilities = vec![0.0; row.len()];
        softmax(row, &mut probabilities);
        let (digit, confidence) = argmax(&probabilities);
        Prediction { digit, confidence, probabilities }
    })
}

/// Runs `count` inputs through `network` for inference, in batches whose activations fit the
/// inference budget: `fill(range, out)` appends inputs `range` (f32, `network.input_len()` values
/// each, CHW) to the empty `out`, and `take(range, logits)` gets their logits. For inputs held
/// other than as image files: the Python package's arrays.
pub fn infer_in_batches(
    network: &mut Network,
    count: usize,
    mut fill: impl FnMut(Range<usize>, &mut Vec<f32>),
    mut take: impl FnMut(Range<usize>, &[f32]),
) -> Result<()> {
    let mut input = Vec::new();
    for range in batches(network, count) {
        input.clear();
        fill(range.clone(), &mut input);
        if input.len() != range.len() * network.input_len() {
            return Err(misfit(network));
        }
        take(range.clone(), network.forward(&input, range.len(), false));
    }
    Ok(())
}

/// [`infer_in_batches`] on inputs already in memory (`network.input_len()` f32 values per input,
/// CHW): each batch is read where it lies, without a copy.
pub fn infer_slice_in_batches(
    network: &mut Network,
    inputs: &[f32],
    mut take: impl FnMut(Range<usize>, &[f32]),
) -> Result<()> {
    let len = network.input_len();
    if len == 0 || !inputs.len().is_multiple_of(len) {
        return Err(misfit(network));
    }
    for range in batches(network, inputs.len() / len) {
        take(range.clone(), network.forward(&inputs[range.start * len..range.end * len], range.len(), false));
    }
    Ok(())
}

/// `0..count` in batches of the size whose activations fit the inference budget.
fn batches(network: &Network, count: usize) -> impl Iterator<Item = Range<usize>> + use<> {
    let batch = network.inference_batch(count.max(1));
    (0..count).step_by(batch).map(move |start| start..(start + batch).min(count))
}

fn misfit(network: &Network) -> Error {
    Error::Invalid(format!("the inputs do not fit the model's {:?} input", network.architecture.input))
}

/// Reads and prepares one image file (see `data::image` for the steps; `raw` skips them).
pub fn prepare_file(path: &Path, raw: bool) -> Result<(Pixels, Preparation)> {
    let decoded = image::open(path)?;
    image::prepare(&decoded, raw, path)
}

/// A request body as `digitnn serve` takes it: an image (`Content-Type: image/...`), decoded
/// within the server's limits, or JSON `{"pixels": [784 numbers 0..255]}`; prepared as
/// `digitnn predict` prepares an image file.
pub fn prepare_request(content_type: &str, body: &[u8]) -> Result<Pixels> {
    let name = Path::new("request body");
    let invalid = |reason: String| Error::Invalid(reason);
    if content_type.starts_with("image/") {
        let decoded = image::decode(body, name, image::ImageLimits::serve())?;
        return image::prepare(&decoded, false, name).map(|(pixels, _)| pixels);
    }
    if !content_type.starts_with("application/json") {
        return Err(invalid(
            "send an image (Content-Type: image/png or image/jpeg) or JSON {\"pixels\": [784 numbers]}".into(),
        ));
    }
    #[derive(serde::Deserialize)]
    struct PixelsRequest {
        pixels: Vec<f64>,
    }
    let request: PixelsRequest = serde_json::from_slice(body).map_err(|e| invalid(format!("bad JSON: {e}")))?;
    if request.pixels.len() != image::SIDE * image::SIDE {
        return Err(invalid(format!("expected {} pixels, got {}", image::SIDE * image::SIDE, request.pixels.len())));
    }
    if let Some(bad) = request.pixels.iter().find(|v| !(0.0..=255.0).contains(*v)) {
        return Err(invalid(format!("pixel value {bad} is outside 0..255")));
    }
    let raw: Vec<u8> = request.pixels.iter().map(|v| v.round() as u8).collect();
    let side = image::SIDE as u32;
    let gray = ::image::GrayImage::from_raw(side, side, raw).expect("784 pixels make a 28x28 image");
    image::prepare(&::image::DynamicImage::ImageLuma8(gray), false, name).map(|(pixels, _)| pixels)
}
