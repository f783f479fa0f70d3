//! Layer 4: evaluation on a labelled dataset: accuracy, confusion matrix, per-class precision
//! and recall, and every prediction (for error galleries).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::predict::{DIGITS, classify};
use serde::Serialize;

/// Images per forward pass when evaluating: large enough to keep both cores busy, small enough
/// that the seed CNN's activations stay around 100 MB (fewer for larger networks, see
/// `Network::inference_batch`).
const EVAL_BATCH: usize = 250;

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Share of the images whose most likely digit is right (refused or not).
    pub accuracy: f64,
    pub correct: usize,
    pub total: usize,
    /// Images the model said were not digits (`predict::classify` with refusal on).
    pub refused: usize,
    /// Share of the images read right and not refused: what a reader that refuses gets right.
    pub read_right: f64,
    /// `confusion[true][predicted]`, over the digits (the most likely digit of each image).
    pub confusion: Vec<Vec<usize>>,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    /// For every example: the most likely digit and its probability among the digits.
    #[serde(skip)]
    pub predictions: Vec<(u8, f32)>,
}

pub fn evaluate(network: &mut Network, data: &Dataset) -> Result<EvalReport> {
    if data.image_len() != network.input_len() {
        return Err(Error::Invalid(format!("the data's {}x{} images do not fit the model", data.rows, data.cols)));
    }
    evaluate_with(network, &data.labels, |batch, images| data.batch_into(batch, images))
}

/// [`evaluate`] on images that `fill(indices, out)` appends to the empty `out` as the network's
/// input (f32, one image after another) for the examples at `indices`, labelled by `labels`: for
/// images held other than as a [`Dataset`] (the Python package's float arrays).
pub fn evaluate_with(
    network: &mut Network,
    labels: &[u8],
    mut fill: impl FnMut(&[usize], &mut Vec<f32>),
) -> Result<EvalReport> {
    if labels.is_empty() {
        return Err(Error::Invalid("the test set is empty: there is nothing to measure accuracy on".into()));
    }
    network.check_digit_classes()?;
    let (outputs, classes) = (network.classes(), DIGITS);
    if let Some(&label) = labels.iter().find(|&&label| label as usize >= classes) {
        return Err(Error::Invalid(format!("the data has label {label}; digits are labelled 0 to 9")));
    }
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut predictions = Vec::with_capacity(labels.len());
    let (mut refused, mut refused_right) = (0, 0);
    let mut images = Vec::new();
    let indices: Vec<usize> = (0..labels.len()).collect();
    for batch in indices.chunks(network.inference_batch(EVAL_BATCH)) {
        images.clear();
        fill(batch, &mut images);
        if images.len() != batch.len() * network.input_len() {
            return Err(Error::Invalid("the images do not fit the model's input".into()));
        }
        let logits = network.forward(&images, batch.len(), false);
        for (prediction, &i) in classify(logits, outputs, true).zip(batch) {
            predictions.push((prediction.guess as u8, prediction.confidence));
            confusion[labels[i] as usize][prediction.guess] += 1;
            if !prediction.is_digit {
                refused += 1;
                refused_right += usize::from(prediction.guess == labels[i] as usize);
            }
        }
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = (0..classes).map(|c| ratio(confusion[c][c], (0..classes).map(|t| confusion[t][c]).sum())).collect();
    let recall = (0..classes).map(|c| ratio(confusion[c][c], confusion[c].iter().sum())).collect();
    Ok(EvalReport {
        accuracy: ratio(correct, labels.len()),
        correct,
        total: labels.len(),
        refused,
        read_right: ratio(correct - refused_right, labels.len()),
        confusion,
        precision,
        recall,
        predictions,
    })
}
