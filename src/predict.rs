//! Layer 4: predicting the digit in images.

use crate::data::image::{self, Pixels, Preparation};
use crate::data::nondigit::NOT_A_DIGIT;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::nn::loss::{argmax, softmax};
use serde::Serialize;
use std::ops::Range;
use std::path::Path;

/// What a model says of one image: a digit, or "not a digit".
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Prediction {
    /// The digit read; None when the image was refused as not a digit.
    pub digit: Option<usize>,
    pub is_digit: bool,
    /// The most likely digit, refused or not, and its probability among the digits.
    pub guess: usize,
    pub confidence: f32,
    /// How likely the image is not a digit at all: the "not a digit" output's probability for
    /// an 11-output model; 1 - confidence for a 10-output one, which has no such output.
    pub not_digit: f32,
    /// Each digit's probability, given that the image is a digit (they sum to 1).
    pub probabilities: Vec<f32>,
}

/// An 11-output model refuses an image whose "not a digit" probability passes this. Set on digits
/// the model never saw, without MNIST's test set: the reader recipe trained on MNIST's first
/// 55,000 training digits refuses 0.28% of the other 5,000 at 0.07 (0.16% at 0.1, 0.44% at
/// 0.05), the share the narrower reader before it refused at 0.1;
/// `cargo run --release --example not_a_digit -- validation` prints that table.
pub const NOT_DIGIT_THRESHOLD: f32 = 0.07;

/// A 10-output model, which has no "not a digit" output, refuses an image when no digit gets
/// this much probability (its `not_digit` is 1 - confidence).
pub const LOW_CONFIDENCE: f32 = 0.5;

/// Predictions for prepared 28x28 images (0-255, light on dark), in batches whose activations
/// fit the inference budget (`limits::INFERENCE_BATCH_BYTES`). `refuse`: say "not a digit" where
/// the model finds none (see [`classify`]); false gives every image its most likely digit.
pub fn predict_pixels(network: &mut Network, images: &[Pixels], refuse: bool) -> Result<Vec<Prediction>> {
    if network.input_len() != image::SIDE * image::SIDE {
        return Err(Error::Invalid(format!(
            "the model takes {:?} inputs, not 28x28 images",
            network.architecture.input
        )));
    }
    network.check_digit_classes()?;
    let classes = network.classes();
    let mut predictions = Vec::with_capacity(images.len());
    let fill = |range: Range<usize>, input: &mut Vec<f32>| {
        input.extend(images[range].iter().flat_map(|p| p.iter().map(|&v| crate::data::pixel_value(v))));
    };
    infer_in_batches(network, images.len(), fill, |_, logits| predictions.extend(classify(logits, classes, refuse)))?;
    Ok(predictions)
}

/// The prediction for each row of `logits` (one row of `classes` logits per image: 10 digits,
/// then "not a digit" if there are 11). With `refuse`, an 11-output model refuses an image whose
/// "not a digit" probability passes [`NOT_DIGIT_THRESHOLD`]; a 10-output model one whose most
/// likely digit gets less than [`LOW_CONFIDENCE`].
pub fn classify(logits: &[f32], classes: usize, refuse: bool) -> impl Iterator<Item = Prediction> + '_ {
    logits.chunks(classes).map(move |row| {
        let mut all = vec![0.0; row.len()];
        softmax(row, &mut all);
        let digits = row.len().min(DIGITS);
        let digit_mass: f32 = all[..digits].iter().sum();
        let probabilities: Vec<f32> = all[..digits].iter().map(|p| p / digit_mass.max(f32::MIN_POSITIVE)).collect();
        let (guess, confidence) = argmax(&probabilities);
        let (not_digit, threshold) = if row.len() > DIGITS {
            (all[NOT_A_DIGIT], NOT_DIGIT_THRESHOLD)
        } else {
            (1.0 - confidence, 1.0 - LOW_CONFIDENCE)
        };
        let is_digit = !(refuse && not_digit > threshold);
        Prediction { digit: is_digit.then_some(guess), is_digit, guess, confidence, not_digit, probabilities }
    })
}

/// The outputs that are digits (the first ten of any digit model).
pub const DIGITS: usize = 10;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// An 11-output model refuses where "not a digit" passes NOT_DIGIT_THRESHOLD and keeps its
    /// guess; a 10-output model refuses where no digit gets half; `refuse: false`
    /// never refuses.
    #[test]
    fn classify_refuses_by_the_not_a_digit_probability() {
        let mut eleven = [0.0f32; 33];
        eleven[3] = 2.0; // image 0: a clear 3
        eleven[10] = -1.0;
        eleven[11 + 4] = 1.0; // image 1: "not a digit" wins, 4 is the best guess
        eleven[11 + 10] = 5.0;
        eleven[22 + 2] = 6.0; // image 2: a 2, yet "not a digit" at 12%: past the threshold
        eleven[22 + 10] = 4.0;
        let got: Vec<Prediction> = classify(&eleven, 11, true).collect();
        assert_eq!((got[0].digit, got[0].is_digit, got[0].guess), (Some(3), true, 3));
        assert!(got[0].not_digit < 0.1, "{}", got[0].not_digit);
        assert_eq!((got[1].digit, got[1].is_digit, got[1].guess), (None, false, 4));
        assert!(got[1].not_digit > 0.9);
        assert!(got[2].not_digit > NOT_DIGIT_THRESHOLD && got[2].not_digit < 0.2, "{}", got[2].not_digit);
        assert_eq!((got[2].digit, got[2].guess), (None, 2));
        for p in &got {
            assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5, "digit probabilities sum to 1");
            assert_eq!(p.probabilities.len(), 10);
        }
        let kept: Vec<Prediction> = classify(&eleven, 11, false).collect();
        assert_eq!((kept[1].digit, kept[1].is_digit), (Some(4), true));
        assert_eq!(kept[1].not_digit, got[1].not_digit, "the score is reported either way");

        let mut ten = [0.0f32; 20];
        ten[7] = 6.0; // image 0: 7 with 97%
        let got: Vec<Prediction> = classify(&ten, 10, true).collect();
        assert_eq!(got[0].digit, Some(7));
        assert_eq!(got[1].digit, None, "uniform logits: no digit gets half");
        assert!((got[1].not_digit - 0.9).abs() < 1e-5);
    }
}
