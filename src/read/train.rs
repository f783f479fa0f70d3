//! Training the line reader (`read::line`): batches of strips of numbers composed on the fly from
//! a dataset's digits and pen drawings (`data::strip::line_sample`), the CTC loss, Adam with a
//! one-cycle schedule. Every sample is drawn from its own seed (the run's, the step, its place in
//! the batch), so a run is the same on any number of threads.

use crate::data::Dataset;
use crate::data::augment::AugmentConfig;
use crate::data::strip::{STRIP_HEIGHT, Strip, line_sample};
use crate::error::{Error, Result};
use crate::model::{Architecture, Network};
use crate::nn::ctc::Ctc;
use crate::optim::{OptimizerConfig, Schedule, ScheduleKind};
use crate::read::line::{BLANK, SYMBOLS};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rayon::prelude::*;
use std::ops::ControlFlow;

/// How the line reader is trained. `Default` is the built-in line reader's recipe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineTrainConfig {
    pub seed: u64,
    pub steps: usize,
    pub batch_size: usize,
    /// The strips' width in training (a number wider than this is drawn again).
    pub width: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    /// Each dataset digit of a training number first transformed within these ranges
    /// (`NumberStyle::reshape`); None: as the dataset has it.
    pub reshape: Option<AugmentConfig>,
    /// The kernel of the convolutions over the steps at the end (`Architecture::line_cnn`). 3,
    /// each step seeing its neighbours, read a little more of the validation split than the
    /// built-in 1, but is not built in: docs/read.md says why.
    pub head_kernel: usize,
}

impl Default for LineTrainConfig {
    fn default() -> Self {
        LineTrainConfig {
            seed: 0,
            steps: 24_000,
            batch_size: 32,
            width: 192,
            optimizer: OptimizerConfig { lr: 2e-3, ..OptimizerConfig::default() },
            schedule: Schedule { kind: ScheduleKind::OneCycle, warmup: 0.0 },
            reshape: None,
            head_kernel: 1,
        }
    }
}

impl LineTrainConfig {
    /// A fresh line model for this configuration's strips.
    pub fn network(&self) -> Result<Network> {
        Network::new(Architecture::line_cnn(self.width, self.head_kernel), self.seed)
    }
}

/// Trains `network` (a line model, `Architecture::line_cnn(config.width)`) on numbers made from
/// `digits`. `on_step` sees each step's number (from 1) and mean loss, and may stop the run
/// ([`Error::Stopped`]).
pub fn train_line_reader(
    network: &mut Network,
    digits: &Dataset,
    config: &LineTrainConfig,
    mut on_step: impl FnMut(usize, f32) -> ControlFlow<()>,
) -> Result<()> {
    config.optimizer.validate()?;
    if digits.is_empty() {
        return Err(Error::Invalid("the training set is empty".into()));
    }
    if network.architecture.input != [1, STRIP_HEIGHT, config.width] {
        return Err(Error::Invalid(format!(
            "the network takes {:?} strips, the training {}x{}",
            network.architecture.input, STRIP_HEIGHT, config.width
        )));
    }
    network.check_training_batch(config.batch_size)?;
    let mut optimizer = config.optimizer.build(network.parameter_count());
    let sample_len = STRIP_HEIGHT * config.width;
    let mut images = vec![0.0; config.batch_size * sample_len];
    let mut grad = Vec::new();
    let mut ctc = Ctc::default();
    for step in 0..config.steps {
        let samples: Vec<(Strip, Vec<u8>, usize)> =
            (0..config.batch_size).into_par_iter().map(|i| sample(digits, config, step, i)).collect();
        for ((strip, _, offset), image) in samples.iter().zip(images.chunks_mut(sample_len)) {
            strip.padded_into(config.width, *offset, image);
        }
        let scores = network.forward(&images, config.batch_size, true);
        grad.resize(scores.len(), 0.0);
        let per_sample = scores.len() / config.batch_size;
        let mut loss = 0.0;
        let scale = 1.0 / config.batch_size as f32;
        for (i, (_, text, _)) in samples.iter().enumerate() {
            let range = i * per_sample..(i + 1) * per_sample;
            let l = ctc.loss(&scores[range.clone()], SYMBOLS, BLANK, text, scale, &mut grad[range]);
            loss += if l.is_finite() { l } else { 0.0 };
        }
        let loss = (loss / config.batch_size as f64) as f32;
        if !loss.is_finite() {
            return Err(Error::Invalid(format!("training diverged (loss {loss}) at step {}", step + 1)));
        }
        network.backward(&grad);
        optimizer.set_lr(config.optimizer.lr * config.schedule.factor(step, config.steps));
        network.apply(optimizer.as_mut());
        if on_step(step + 1, loss).is_break() {
            return Err(Error::Stopped);
        }
    }
    Ok(())
}

/// Sample `index` of step `step`: its strip, its digits and where in the batch's width it goes.
fn sample(digits: &Dataset, config: &LineTrainConfig, step: usize, index: usize) -> (Strip, Vec<u8>, usize) {
    let seed = config.seed ^ ((step as u64) << 20) ^ index as u64 ^ 0x11e5_7a1d;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    loop {
        if let Some((strip, text)) = line_sample(digits, config.width, config.reshape, &mut rng) {
            let slack = (config.width - strip.width).min(16);
            let offset = crate::data::nondigit::below(&mut rng, slack as u32 + 1) as usize;
            return (strip, text, offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few square "digits" as a dataset: enough to compose numbers from.
    fn tiny_digits() -> Dataset {
        let mut images = Vec::new();
        for class in 0..10u8 {
            images.extend((0..784).map(|i| {
                let (x, y) = (i % 28, i / 28);
                if (6..22).contains(&y) && (10 + class as usize / 3..16 + class as usize % 4).contains(&x) {
                    255
                } else {
                    0
                }
            }));
        }
        Dataset { images, labels: (0..10).collect(), rows: 28, cols: 28 }
    }

    /// The same seed gives the same weights on any number of threads, and the loss falls.
    #[test]
    fn line_training_is_seeded_whatever_the_thread_count() {
        let digits = tiny_digits();
        let config = LineTrainConfig { steps: 3, batch_size: 3, width: 96, ..LineTrainConfig::default() };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut network = config.network().unwrap();
                let mut losses = Vec::new();
                train_line_reader(&mut network, &digits, &config, |_, loss| {
                    losses.push(loss);
                    ControlFlow::Continue(())
                })
                .unwrap();
                (network.params().to_vec(), losses)
            })
        };
        let (serial, losses) = run(1);
        assert_eq!(losses.len(), 3);
        assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
        assert!(serial == run(2).0, "the thread count changed the weights");
    }

    #[test]
    fn a_network_of_another_width_is_refused() {
        let config = LineTrainConfig { width: 96, ..LineTrainConfig::default() };
        let mut network = LineTrainConfig::default().network().unwrap();
        let err = train_line_reader(&mut network, &tiny_digits(), &config, |_, _| ControlFlow::Continue(()));
        assert!(err.unwrap_err().to_string().contains("strips"));
    }
}
