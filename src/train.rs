//! Layer 4: training as a library function. The seed recipe is `TrainConfig::default()`.

use crate::data::Dataset;
use crate::data::augment::{AugmentConfig, augment_batch, augment_image, image_seed};
use crate::data::cuts::GroupLimits;
use crate::data::image::SIDE;
use crate::data::{nondigit, numbers};
use crate::error::{Error, Result, Setting};
use crate::eval::evaluate;
use crate::model::Network;
use crate::nn::loss::cross_entropy_smoothed;
use crate::optim::{OptimizerConfig, Schedule};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use std::ops::ControlFlow;
use std::time::Instant;

/// The largest batch accepted: the seed CNN's activations for it take about 2.5 GB.
pub const MAX_BATCH: usize = 4096;

/// How to train. `Default` is the original project's recipe (with shuffling, seeded).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    /// Seeds the initial weights, the shuffling and dropout.
    pub seed: u64,
    /// Shuffle the training set every epoch; `false` keeps the files' order, as the original did.
    pub shuffle: bool,
    /// A fresh random transform of every training image every epoch; None trains on the images
    /// as they are (the seed recipe).
    pub augment: Option<AugmentConfig>,
    /// How the learning rate (the optimizer's `lr` is its peak) changes over the steps.
    pub schedule: Schedule,
    /// Part of the target probability spread over all classes (0: plain cross-entropy).
    pub label_smoothing: f32,
    /// Keep an exponential moving average of the weights with this decay, evaluate and return
    /// it instead of the last weights; None: off. Only the parameters are averaged: BatchNorm's
    /// running statistics are the trained network's.
    pub ema: Option<f32>,
    /// Generated non-digits (`data::nondigit`) added to every batch, as a share of its digits,
    /// labelled "not a digit" (the last of the network's 11 outputs); 0: none, as for a 10-output
    /// network. They get the same augmentation as the digits.
    pub not_digits: f32,
    /// Runs of pieces of numbers composed from the training digits, cut as `read` cuts them
    /// (`data::numbers::segment_sample`), added to every batch as a share of its digits: labelled
    /// with the digit a run holds, or "not a digit" for a digit's part or two digits together, so
    /// that the model scores `read`'s search well. 0: none. Needs an 11-output network.
    pub number_pieces: f32,
    /// Train each epoch on this many images, the first of the epoch's (shuffled) order; None:
    /// all of them. A fraction of an epoch, for the race to 99% (`--preset sprint`).
    pub epoch_images: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 32,
            optimizer: OptimizerConfig::default(),
            seed: 0,
            shuffle: true,
            augment: None,
            schedule: Schedule::default(),
            label_smoothing: 0.0,
            ema: None,
            not_digits: 0.0,
            number_pieces: 0.0,
            epoch_images: None,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::setting(Setting::Epochs, 0, "must be at least 1"));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(Error::setting(
                Setting::BatchSize,
                self.batch_size,
                format!("must be between 1 and {MAX_BATCH}"),
            ));
        }
        if !(self.label_smoothing.is_finite() && (0.0..1.0).contains(&self.label_smoothing)) {
            return Err(Error::setting(Setting::LabelSmoothing, self.label_smoothing, "must be in [0, 1)"));
        }
        if self.ema.is_some_and(|decay| !(decay.is_finite() && (0.0..1.0).contains(&decay))) {
            return Err(Error::setting(Setting::Ema, self.ema.unwrap_or(0.0), "must be a decay in [0, 1)"));
        }
        if !(self.not_digits.is_finite() && (0.0..=1.0).contains(&self.not_digits)) {
            return Err(Error::setting(Setting::NotDigits, self.not_digits, "must be in [0, 1]"));
        }
        if !(self.number_pieces.is_finite() && (0.0..=1.0).contains(&self.number_pieces)) {
            return Err(Error::setting(Setting::NumberPieces, self.number_pieces, "must be in [0, 1]"));
        }
        if self.epoch_images == Some(0) {
            return Err(Error::setting(Setting::EpochImages, 0, "must be at least 1"));
        }
        if let Some(augment) = &self.augment {
            augment.validate()?;
        }
        self.schedule.validate()?;
        self.optimizer.validate()
    }
}

/// What one epoch did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    /// Mean of the batch losses over the epoch.
    pub train_loss: f64,
    pub last_batch_loss: f64,
    pub test_accuracy: f64,
    /// Training time of the epoch (evaluation not included).
    pub seconds: f64,
    pub images_per_sec: f64,
}

/// Progress reported while training.
pub enum TrainEvent<'a> {
    /// A training step finished: `step` of `steps` in `epoch` (1-based), with its loss.
    Step { epoch: usize, step: usize, steps: usize, loss: f32 },
    /// An epoch finished and was evaluated on the test set.
    Epoch(&'a EpochStats),
}

/// Trains `network` in place on `train`, evaluating on `test` after every epoch. Runs on the
/// current rayon pool (see [`crate::with_threads`]).
pub fn train(
    network: &mut Network,
    train: &Dataset,
    test: &Dataset,
    config: &TrainConfig,
    mut on_event: impl FnMut(TrainEvent),
) -> Result<Vec<EpochStats>> {
    train_until(network, train, test, config, |event| {
        on_event(event);
        ControlFlow::Continue(())
    })
}

/// [`train`] that `on_event` can stop after any step or epoch by returning `Break` (a Ctrl-C
/// seen by a caller, say): it then returns [`Error::Stopped`], the network holding the weights
/// of the last step taken.
pub fn train_until(
    network: &mut Network,
    train: &Dataset,
    test: &Dataset,
    config: &TrainConfig,
    mut on_event: impl FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<Vec<EpochStats>> {
    config.validate()?;
    if train.is_empty() {
        return Err(Error::Invalid("the training set is empty".into()));
    }
    if test.is_empty() {
        return Err(Error::Invalid("the test set is empty: accuracy could not be measured after each epoch".into()));
    }
    network.check_training_batch(config.batch_size.min(train.len()))?;
    if train.image_len() != network.input_len() {
        return Err(Error::Invalid(format!(
            "the data's {}x{} images do not fit the network's {:?} input",
            train.rows, train.cols, network.architecture.input
        )));
    }
    let extras = config.not_digits + config.number_pieces;
    let outliers = (extras > 0.0).then(|| Outliers::new(network, config, train)).transpose()?;
    let mut optimizer = config.optimizer.build(network.parameter_count());
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x005e_ed0f_da7a);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut images, mut labels, mut grad_logits) = (Vec::new(), Vec::new(), Vec::new());
    let per_epoch = config.epoch_images.map_or(train.len(), |n| n.min(train.len()));
    let steps = per_epoch.div_ceil(config.batch_size);
    let total_steps = steps * config.epochs;
    let mut ema = Ema::new(config.ema, network.params());
    let mut history = Vec::new();
    for epoch in 1..=config.epochs {
        if config.shuffle {
            shuffle(&mut order, &mut rng);
        }
        let started = Instant::now();
        let (mut loss_sum, mut last_loss) = (0.0f64, 0.0f32);
        for (step, indices) in order[..per_epoch].chunks(config.batch_size).enumerate() {
            match &config.augment {
                Some(augment) => augment_batch(train, indices, augment, config.seed, epoch, &mut images),
                None => train.batch_into(indices, &mut images),
            }
            labels.clear();
            labels.extend(indices.iter().map(|&i| train.labels[i]));
            if let Some(outliers) = &outliers {
                outliers.add_to_batch(indices.len(), epoch, step, &mut images, &mut labels);
            }
            let classes = network.classes();
            let logits = network.forward(&images, labels.len(), true);
            grad_logits.resize(logits.len(), 0.0);
            let loss = cross_entropy_smoothed(logits, &labels, classes, config.label_smoothing, &mut grad_logits);
            if !loss.is_finite() {
                return Err(Error::Invalid(format!(
                    "training diverged (loss {loss}) in epoch {epoch}; try a smaller learning rate"
                )));
            }
            network.backward(&grad_logits);
            // (The constant schedule's factor is exactly 1, so the seed recipe's steps are unchanged.)
            let done = (epoch - 1) * steps + step;
            optimizer.set_lr(config.optimizer.lr * config.schedule.factor(done, total_steps));
            network.apply(optimizer.as_mut());
            ema.update(network.params());
            loss_sum += loss as f64;
            last_loss = loss;
            if on_event(TrainEvent::Step { epoch, step: step + 1, steps, loss }).is_break() {
                return Err(Error::Stopped);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let test_accuracy = ema.with_average(network, |network| evaluate(network, test))?.accuracy;
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / steps as f64,
            last_batch_loss: last_loss as f64,
            test_accuracy,
            seconds,
            images_per_sec: per_epoch as f64 / seconds,
        };
        let flow = on_event(TrainEvent::Epoch(&stats));
        history.push(stats);
        if flow.is_break() {
            ema.keep_average(network);
            return Err(Error::Stopped);
        }
    }
    ema.keep_average(network);
    Ok(history)
}

/// The generated non-digits and number pieces of a batch (see [`TrainConfig::not_digits`] and
/// [`TrainConfig::number_pieces`]).
struct Outliers<'a> {
    digits: &'a Dataset,
    share: f32,
    /// Of the extra images, the share that are number pieces.
    pieces: f32,
    augment: Option<AugmentConfig>,
    seed: u64,
}

impl<'a> Outliers<'a> {
    fn new(network: &Network, config: &TrainConfig, digits: &'a Dataset) -> Result<Self> {
        if network.classes() != nondigit::CLASSES {
            return Err(Error::Invalid(format!(
                "training with non-digits needs a network with {} outputs (the digits and \"not a digit\"), this one has {}",
                nondigit::CLASSES,
                network.classes()
            )));
        }
        if (digits.rows, digits.cols) != (SIDE, SIDE) {
            return Err(Error::Invalid("training with non-digits needs 28x28 images".into()));
        }
        let share = config.not_digits + config.number_pieces;
        let batch = (config.batch_size as f32 * (1.0 + share)).ceil() as usize;
        network.check_training_batch(batch)?;
        let pieces = config.number_pieces / share;
        // They share the digits' augmentation, the elastic distortion included: a reader trained
        // with it on digits alone learnt to take its smooth look for a sign of a digit
        // (docs/not_a_digit.md, variant 9).
        Ok(Outliers { digits, share, pieces, augment: config.augment, seed: config.seed })
    }

    /// Appends the extra images of step `step` of `epoch` to a batch of `count` digits.
    fn add_to_batch(&self, count: usize, epoch: usize, step: usize, images: &mut Vec<f32>, labels: &mut Vec<u8>) {
        let extra = (count as f32 * self.share).round() as usize;
        let start = images.len();
        images.resize(start + extra * SIDE * SIDE, 0.0);
        let first_label = labels.len();
        labels.resize(first_label + extra, nondigit::NOT_A_DIGIT as u8);
        let limits = GroupLimits::default();
        images[start..].par_chunks_mut(SIDE * SIDE).zip(labels[first_label..].par_iter_mut()).enumerate().for_each(
            |(j, (out, label))| {
                let mut rng = ChaCha8Rng::seed_from_u64(image_seed(self.seed ^ OUTLIER_SEED, epoch, step * 4096 + j));
                // (No draw at all without number pieces: the reader recipe's batches stay as they were.)
                let piece = self.pieces > 0.0 && (rng.next_u32() as f32 / u32::MAX as f32) < self.pieces;
                let sample = piece.then(|| numbers::segment_sample(self.digits, &limits, &mut rng)).flatten();
                let pixels = match sample {
                    Some((pixels, piece_label)) => {
                        *label = piece_label;
                        pixels
                    }
                    None => nondigit::generate(nondigit::Kind::random(&mut rng), self.digits, &mut rng),
                };
                match &self.augment {
                    Some(augment) => augment_image(&pixels, SIDE, SIDE, augment, &mut rng, out),
                    None => out.iter_mut().zip(pixels).for_each(|(o, p)| *o = crate::data::pixel_value(p)),
                }
            },
        );
    }
}

/// Mixed into the generated non-digits' seeds so they draw apart from the digits' transforms.
const OUTLIER_SEED: u64 = 0x6e6f_6e64_6967_6974;

/// The exponential moving average of the weights, when asked for: after step t,
/// `average = d * average + (1 - d) * weights` with `d = min(decay, (1 + t) / (10 + t))`, so that
/// the first steps' random weights fade quickly (timm's ModelEmaV2 warm-up).
struct Ema {
    decay: Option<f32>,
    average: Vec<f32>,
    steps: u32,
}

impl Ema {
    fn new(decay: Option<f32>, params: &[f32]) -> Ema {
        Ema { decay, average: if decay.is_some() { params.to_vec() } else { Vec::new() }, steps: 0 }
    }

    fn update(&mut self, params: &[f32]) {
        let Some(decay) = self.decay else { return };
        self.steps += 1;
        let d = decay.min((1.0 + self.steps as f32) / (10.0 + self.steps as f32));
        for (a, &p) in self.average.iter_mut().zip(params) {
            *a = d * *a + (1.0 - d) * p;
        }
    }

    /// Runs `f` on the network with the averaged weights, then puts the trained ones back.
    fn with_average<R>(&mut self, network: &mut Network, f: impl FnOnce(&mut Network) -> R) -> R {
        if self.decay.is_none() {
            return f(network);
        }
        let trained = network.params().to_vec();
        network.params_mut().copy_from_slice(&self.average);
        let result = f(network);
        network.params_mut().copy_from_slice(&trained);
        result
    }

    /// Leaves the averaged weights in the network (what is saved).
    fn keep_average(&self, network: &mut Network) {
        if self.decay.is_some() {
            network.params_mut().copy_from_slice(&self.average);
        }
    }
}

/// Fisher-Yates with an unbiased bounded draw.
fn shuffle(order: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..order.len()).rev() {
        let bound = (i + 1) as u64;
        let zone = u64::MAX - u64::MAX % bound;
        let j = loop {
            let r = rng.next_u64();
            if r < zone {
                break (r % bound) as usize;
            }
        };
        order.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The average follows the weights with the warm-up decay min(d, (1 + t) / (10 + t)), and is
    /// what evaluation sees and what is left in the network.
    #[test]
    fn ema_averages_the_weights() {
        let mut network = Network::new(crate::model::Architecture::fast_cnn(), 0).unwrap();
        let start = network.params().to_vec();
        let mut ema = Ema::new(Some(0.5), network.params());
        network.params_mut().iter_mut().for_each(|p| *p += 1.0);
        ema.update(network.params());
        // t = 1: d = min(0.5, 2 / 11), so the average moved 9/11 of the way.
        let seen = ema.with_average(&mut network, |n| n.params()[0]);
        assert!((seen - (start[0] + 9.0 / 11.0)).abs() < 1e-6, "{seen} vs {}", start[0]);
        assert_eq!(network.params()[0], start[0] + 1.0, "the trained weights are put back");
        ema.keep_average(&mut network);
        assert!((network.params()[0] - (start[0] + 9.0 / 11.0)).abs() < 1e-6);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, &mut ChaCha8Rng::seed_from_u64(1));
        shuffle(&mut b, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        a.sort();
        assert_eq!(a, (0..100).collect::<Vec<_>>());
    }

    /// `train_until` stops where the callback says, with `Error::Stopped`, after exactly that many
    /// steps (the weights match a run stopped by its own length).
    #[test]
    fn training_stops_when_the_callback_says() {
        let images: Vec<u8> = (0..40 * 784).map(|i| (i * 7 % 256) as u8).collect();
        let data = Dataset { images, labels: (0..40).map(|i| (i % 10) as u8).collect(), rows: 28, cols: 28 };
        let config = TrainConfig { epochs: 2, batch_size: 8, shuffle: false, ..TrainConfig::default() };
        let mut network = Network::new(crate::model::Architecture::fast_cnn(), 0).unwrap();
        let mut steps = 0;
        let result = train_until(&mut network, &data, &data, &config, |event| {
            if let TrainEvent::Step { .. } = event {
                steps += 1;
            }
            if steps == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        assert!(matches!(result, Err(Error::Stopped)), "{result:?}");
        assert_eq!(steps, 3);
        let mut three_steps = Network::new(crate::model::Architecture::fast_cnn(), 0).unwrap();
        let short = Dataset { images: data.images[..24 * 784].to_vec(), labels: data.labels[..24].to_vec(), ..data };
        let config = TrainConfig { epochs: 1, ..config };
        train(&mut three_steps, &short, &data, &config, |_| {}).unwrap();
        assert_eq!(network.params(), three_steps.params());
    }

    /// `epoch_images` trains each epoch on the first images of its order: unshuffled, 20 of 40
    /// images in batches of 8 are 3 steps an epoch, the same weights as training on those 20.
    #[test]
    fn an_epoch_can_be_a_part_of_the_training_set() {
        let images: Vec<u8> = (0..40 * 784).map(|i| (i * 5 % 256) as u8).collect();
        let data = Dataset { images, labels: (0..40).map(|i| (i % 10) as u8).collect(), rows: 28, cols: 28 };
        let config =
            TrainConfig { epochs: 2, batch_size: 8, shuffle: false, epoch_images: Some(20), ..TrainConfig::default() };
        let mut network = Network::new(crate::model::Architecture::fast_cnn(), 0).unwrap();
        let mut steps = 0;
        train(&mut network, &data, &data, &config, |event| {
            if let TrainEvent::Step { steps: per_epoch, .. } = event {
                assert_eq!(per_epoch, 3);
                steps += 1;
            }
        })
        .unwrap();
        assert_eq!(steps, 6);
        let first =
            Dataset { images: data.images[..20 * 784].to_vec(), labels: data.labels[..20].to_vec(), ..data.clone() };
        let mut on_first = Network::new(crate::model::Architecture::fast_cnn(), 0).unwrap();
        train(&mut on_first, &first, &data, &TrainConfig { epoch_images: None, ..config.clone() }, |_| {}).unwrap();
        assert_eq!(network.params(), on_first.params());
        let zero = TrainConfig { epoch_images: Some(0), ..config };
        assert!(zero.validate().unwrap_err().to_string().contains("images per epoch 0"));
    }
}
