//! Layer 3: the network. An [`Architecture`] (a list of layers, serialisable) becomes a
//! [`Network`]: the layers, one flat parameter buffer, one flat gradient buffer, one flat state
//! buffer (BatchNorm's running statistics), and the activation buffers reused from step to step.
//! The seed CNN is [`Architecture::seed_cnn`].
//!
//! `architecture.rs` defines the layer lists, `plan.rs` builds and checks them and lays out
//! their tensors, `fold.rs` folds BatchNorm into convolutions for inference, `io.rs`, `pt/` and
//! `onnx.rs` read and write files.

mod architecture;
mod builtin;
mod fold;
mod io;
pub mod onnx;
mod plan;
#[cfg(feature = "pytorch")]
pub mod pt;

pub use architecture::{Architecture, LayerSpec};
pub use builtin::{BUILTIN_LINES_NAME, BUILTIN_NAME, BUILTIN_NUMBERS_NAME, builtin, builtin_lines, builtin_numbers};
pub use io::{
    ModelInfo, Storage, check_values, from_bytes, is_batch_counter, load, load_with, save, save_as, save_stored,
    to_bytes, to_bytes_stored, to_pt_bytes, write_atomic,
};
pub use plan::{ParamTensor, SampleCost, file_tensors, parameter_tensors, sample_cost};

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::kernels::layout::chw_to_hwc;
use crate::limits;
use crate::nn::{Init, Layer, Pass, Tensor};
use crate::optim::Optimizer;
use plan::{Plan, Step, layer_name};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use std::ops::Range;

/// A network ready to run: layers, parameters, gradients and reusable activations.
pub struct Network {
    pub architecture: Architecture,
    engine: EngineConfig,
    /// The seed the network was built with (dropout's masks depend on it).
    seed: u64,
    layers: Vec<Box<dyn Layer>>,
    /// Every parameter, layer by layer, in PyTorch's layouts.
    params: Vec<f32>,
    /// dLoss/dparams from the last backward pass, laid out as `params`.
    grads: Vec<f32>,
    /// The parameters may have changed since the last forward pass.
    params_changed: bool,
    /// State besides the parameters (BatchNorm's running statistics), layer by layer.
    state: Vec<f32>,
    state_tensors: Vec<ParamTensor>,
    layer_state: Vec<Range<usize>>,
    /// For inference, this network with every BatchNorm folded into the convolution before it
    /// (None when there is none), and whether it is older than the parameters or state.
    folded: Option<Box<Network>>,
    folded_stale: bool,
    /// Seconds spent in each step's forward and backward passes, when profiling.
    profile: Option<Vec<[f64; 2]>>,
    tensors: Vec<ParamTensor>,
    layer_params: Vec<Range<usize>>,
    steps: Vec<Step>,
    /// acts[0] is the input (NHWC), acts[s + 1] the output of step s.
    acts: Vec<Tensor>,
    /// Gradients of the activations, indexed as `acts`.
    grad_acts: Vec<Tensor>,
    classes: usize,
    cost: SampleCost,
}

impl Network {
    /// Builds the network on the default engine (the fastest this CPU supports) and initialises
    /// it as PyTorch does by default: every weight and bias uniform in +-1/sqrt(fan_in), drawn
    /// from a generator seeded with `seed`.
    pub fn new(architecture: Architecture, seed: u64) -> Result<Self> {
        Self::with_engine(architecture, seed, EngineConfig::default())
    }

    /// [`Network::new`] on a chosen engine (refused if this CPU cannot run it).
    pub fn with_engine(architecture: Architecture, seed: u64, engine: EngineConfig) -> Result<Self> {
        engine.check()?;
        let plan = Plan::new(&architecture, seed, engine)?;
        let folded = match fold::folded_architecture(&architecture) {
            Some(folded) => Some(Box::new(Network::with_engine(folded, seed, engine)?)),
            None => None,
        };
        let n = plan.steps.len();
        let mut network = Network {
            engine,
            seed,
            classes: plan.classes,
            cost: plan.cost,
            params: vec![0.0; plan.params.total],
            grads: vec![0.0; plan.params.total],
            params_changed: true,
            state: vec![0.0; plan.state.total],
            state_tensors: plan.state.tensors,
            layer_state: plan.state.layers,
            folded,
            folded_stale: true,
            profile: None,
            acts: (0..=n).map(|_| Tensor::default()).collect(),
            grad_acts: (0..=n).map(|_| Tensor::default()).collect(),
            architecture,
            layers: plan.layers,
            tensors: plan.params.tensors,
            layer_params: plan.params.layers,
            steps: plan.steps,
        };
        network.initialise(seed);
        Ok(network)
    }

    /// The engine the network runs on.
    pub fn engine(&self) -> EngineConfig {
        self.engine
    }

    /// Moves the network to another engine, keeping its parameters (layers are planned again).
    pub fn set_engine(&mut self, engine: EngineConfig) -> Result<()> {
        engine.check()?;
        let plan = Plan::new(&self.architecture, self.seed, engine)?;
        self.layers = plan.layers;
        if let Some(folded) = &mut self.folded {
            folded.set_engine(engine)?;
        }
        self.engine = engine;
        self.params_changed = true;
        Ok(())
    }

    /// PyTorch's default initialisation: weights and biases uniform in +-1/sqrt(fan_in) from a
    /// generator seeded with `seed`, in state_dict order; constants (BatchNorm's weights 1 and
    /// biases 0, its running statistics) draw nothing.
    fn initialise(&mut self, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let buffers = [(&self.tensors, &mut self.params), (&self.state_tensors, &mut self.state)];
        for (tensors, values) in buffers {
            for t in tensors {
                for p in &mut values[t.range.clone()] {
                    *p = match t.init {
                        Init::FanIn(fan_in) => {
                            let bound = 1.0 / (fan_in as f32).sqrt();
                            let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
                            (2.0 * unit - 1.0) * bound
                        }
                        Init::Constant(value) => value,
                    };
                }
            }
        }
    }

    /// Every parameter, layer by layer, in PyTorch's layouts (see [`Network::tensors`]).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Mutable access to the parameters (for loading them).
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.params_changed = true;
        self.folded_stale = true;
        &mut self.params
    }

    /// The state besides the parameters (BatchNorm's running statistics), layer by layer (see
    /// [`Network::state_tensors`]); empty for a network without BatchNorm.
    pub fn state(&self) -> &[f32] {
        &self.state
    }

    /// Mutable access to the state (for loading it).
    pub fn state_mut(&mut self) -> &mut [f32] {
        self.folded_stale = true;
        &mut self.state
    }

    /// The named state tensors (`model.{layer}.running_mean`, ...), in state_dict order.
    pub fn state_tensors(&self) -> &[ParamTensor] {
        &self.state_tensors
    }

    /// dLoss/dparams from the last backward pass, laid out as the parameters.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// Updates the parameters from the gradients of the last backward pass.
    pub fn apply(&mut self, optimizer: &mut dyn Optimizer) {
        optimizer.step(&mut self.params, &self.grads);
        self.params_changed = true;
        self.folded_stale = true;
    }

    /// Starts (or stops) timing each layer's forward and backward passes.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| vec![[0.0; 2]; self.steps.len()]);
    }

    /// Seconds spent so far in each executed layer while profiling: (name, forward, backward).
    /// A fused ReLU is counted with its layer; an elided Flatten does not appear.
    pub fn profile(&self) -> Vec<(String, f64, f64)> {
        let Some(profile) = &self.profile else { return Vec::new() };
        self.steps
            .iter()
            .zip(profile)
            .map(|(step, [forward, backward])| {
                let spec = &self.architecture.layers[step.layer];
                let name = format!("{}{}", layer_name(step.layer, spec), if step.relu { "+relu" } else { "" });
                (name, *forward, *backward)
            })
            .collect()
    }

    /// The layers whose products run in bf16 on this network's engine, named as in
    /// [`Network::profile`] (none unless the engine runs bf16; see `Conv2d` for which do).
    pub fn bf16_layers(&self) -> Vec<String> {
        let [c, h, w] = self.architecture.input;
        let mut shape = vec![h, w, c];
        let mut names = Vec::new();
        for (i, (layer, spec)) in self.layers.iter().zip(&self.architecture.layers).enumerate() {
            if layer.bf16_products(&shape) {
                names.push(layer_name(i, spec));
            }
            // The network was planned from these shapes, so every layer accepts its input.
            shape = layer.output_shape(&shape).unwrap_or_default();
        }
        names
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Refuses a network that does not give one score per digit (predicting and evaluating
    /// digits need 10, or 11 with "not a digit" last).
    pub fn check_digit_classes(&self) -> Result<()> {
        if !(10..=crate::data::nondigit::CLASSES).contains(&self.classes) {
            return Err(Error::Invalid(format!(
                "the model has {} outputs; a digit model has 10 (one per digit), or 11 (and \"not a digit\")",
                self.classes
            )));
        }
        Ok(())
    }

    /// The model has a "not a digit" output (`data::nondigit::NOT_A_DIGIT`).
    pub fn knows_non_digits(&self) -> bool {
        self.classes == crate::data::nondigit::CLASSES
    }

    /// What one sample costs this network (memory and multiply-adds).
    pub fn sample_cost(&self) -> SampleCost {
        self.cost
    }

    /// The largest batch up to `wanted` whose inference activations fit
    /// [`limits::INFERENCE_BATCH_BYTES`] (at least 1: one sample always fits, see `Plan::new`).
    pub fn inference_batch(&self, wanted: usize) -> usize {
        (limits::INFERENCE_BATCH_BYTES / self.cost.inference_bytes().max(1)).clamp(1, wanted.max(1))
    }

    /// Refuses a training batch whose activations would not fit [`limits::TRAINING_BATCH_BYTES`].
    pub fn check_training_batch(&self, batch: usize) -> Result<()> {
        self.cost.check_training_batch(batch)
    }

    /// Values in one input image.
    pub fn input_len(&self) -> usize {
        self.architecture.input.iter().product()
    }

    pub fn parameter_count(&self) -> usize {
        self.params.len()
    }

    /// The named parameter tensors, in state_dict order.
    pub fn tensors(&self) -> &[ParamTensor] {
        &self.tensors
    }

    /// Runs a batch of images (NCHW, `batch * input_len` values) and returns the logits
    /// [batch, classes]. `train` keeps what backward needs, turns on dropout and makes
    /// BatchNorm use (and track) the batch's statistics. Inference runs the folded network
    /// when there is one (see [`Network::for_inference`]).
    pub fn forward(&mut self, images: &[f32], batch: usize, train: bool) -> &[f32] {
        if !train && self.folded.is_some() {
            return self.for_inference().forward(images, batch, false);
        }
        self.folded_stale |= train;
        let pass = Pass { train, params_changed: self.params_changed };
        self.params_changed = false;
        assert_eq!(images.len(), batch * self.input_len(), "image buffer size");
        let [c, h, w] = self.architecture.input;
        let input = &mut self.acts[0];
        input.reshape_for(&[batch, h, w, c]);
        for (chw, hwc) in images.chunks(c * h * w).zip(input.data.chunks_mut(c * h * w)) {
            chw_to_hwc(chw, hwc, h * w, c);
        }
        for (s, step) in self.steps.iter().enumerate() {
            let (before, after) = self.acts.split_at_mut(s + 1);
            let params = &self.params[self.layer_params[step.layer].clone()];
            let state = &mut self.state[self.layer_state[step.layer].clone()];
            let started = self.profile.is_some().then(std::time::Instant::now);
            self.layers[step.layer].forward(params, state, &before[s], &mut after[0], pass);
            if let (Some(profile), Some(started)) = (&mut self.profile, started) {
                profile[s][0] += started.elapsed().as_secs_f64();
            }
        }
        &self.acts[self.steps.len()].data
    }

    /// The network that inference runs: this one, or where BatchNorm follows a convolution,
    /// the network with the two folded into one convolution (see `fold.rs`), brought up to date
    /// with the parameters and state. Export writes this network.
    pub fn for_inference(&mut self) -> &mut Network {
        if self.folded.is_none() {
            return self;
        }
        let folded = self.folded.as_deref_mut().expect("checked above");
        if self.folded_stale {
            let source = fold::Source {
                architecture: &self.architecture,
                params: &self.params,
                state: &self.state,
                layer_params: &self.layer_params,
                layer_state: &self.layer_state,
            };
            fold::fold_into(source, folded);
            self.folded_stale = false;
        }
        folded
    }

    /// Back-propagates dLoss/dlogits through the last forward pass; overwrites `grads`.
    pub fn backward(&mut self, grad_logits: &[f32]) {
        let n = self.steps.len();
        self.grads.fill(0.0);
        let last = &mut self.grad_acts[n];
        last.reshape_for(&self.acts[n].shape);
        last.data.copy_from_slice(grad_logits);
        for s in (0..n).rev() {
            let step = self.steps[s];
            let started = self.profile.is_some().then(std::time::Instant::now);
            let range = self.layer_params[step.layer].clone();
            let (grad_before, grad_after) = self.grad_acts.split_at_mut(s + 1);
            let dy = &mut grad_after[0];
            // The first layer's input gradient is never needed.
            let dx = if s > 0 { Some(&mut grad_before[s]) } else { None };
            self.layers[step.layer].backward(
                &self.params[range.clone()],
                &mut self.grads[range],
                &self.acts[s],
                &self.acts[s + 1],
                dy,
                dx,
            );
            if let (Some(profile), Some(started)) = (&mut self.profile, started) {
                profile[s][1] += started.elapsed().as_secs_f64();
            }
        }
    }
}

#[cfg(test)]
mod batchnorm_tests;
#[cfg(test)]
mod line_tests;
#[cfg(test)]
mod tests;
