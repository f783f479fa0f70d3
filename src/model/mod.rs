//! Layer 3: the network. An [`Architecture`] (a list of layers, serialisable) becomes a
//! [`Network`]: the layers, one flat parameter buffer, one flat gradient buffer, and the
//! activation buffers reused from step to step. The seed CNN is [`Architecture::seed_cnn`].

mod builtin;
mod io;
pub mod onnx;
pub mod pt;

pub use builtin::{BUILTIN_NAME, builtin};
pub use io::{ModelInfo, from_bytes, load, load_with, save, to_bytes, to_pt_bytes, write_atomic};

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::kernels::layout::chw_to_hwc;
use crate::limits;
use crate::nn::{Conv2d, Conv2dConfig, Dropout, Flatten, Layer, Linear, MaxPool2d, ParamSpec, Pass, Relu, Tensor};
use crate::optim::Optimizer;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One layer of an architecture, named and parameterised as in `torch.nn`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    Conv2d { in_channels: usize, out_channels: usize, kernel_size: usize, stride: usize, padding: usize },
    Relu,
    MaxPool2d { kernel_size: usize, stride: usize },
    Flatten,
    Linear { in_features: usize, out_features: usize },
    Dropout { p: f32 },
}

/// A network: its input (channels, height, width) and its layers in order, like `nn.Sequential`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub input: [usize; 3],
    pub layers: Vec<LayerSpec>,
}

impl Architecture {
    /// The original project's CNN: three 3x3 convolutions with ReLU, then one linear layer.
    pub fn seed_cnn() -> Self {
        let conv = |i, o| LayerSpec::Conv2d { in_channels: i, out_channels: o, kernel_size: 3, stride: 1, padding: 0 };
        Architecture {
            input: [1, 28, 28],
            layers: vec![
                conv(1, 32),
                LayerSpec::Relu,
                conv(32, 64),
                LayerSpec::Relu,
                conv(64, 64),
                LayerSpec::Relu,
                LayerSpec::Flatten,
                LayerSpec::Linear { in_features: 64 * 22 * 22, out_features: 10 },
            ],
        }
    }

    /// Builds layer `index` with what the planner decided for it: the engine, whether it
    /// applies the ReLU after it (`fused_relu`), and for a Linear after an elided Flatten, the
    /// `[h, w, c]` images it reads directly.
    /// The network of the `fast` preset (the fastest published MNIST recipe's): Conv(1->24, 5x5),
    /// max-pool 2, ReLU, Conv(24->32, 3x3), max-pool 2, ReLU, Linear(800->256), ReLU,
    /// Linear(256->10).
    pub fn fast_cnn() -> Self {
        let conv =
            |i, o, k| LayerSpec::Conv2d { in_channels: i, out_channels: o, kernel_size: k, stride: 1, padding: 0 };
        let pool = LayerSpec::MaxPool2d { kernel_size: 2, stride: 2 };
        Architecture {
            input: [1, 28, 28],
            layers: vec![
                conv(1, 24, 5),
                pool.clone(),
                LayerSpec::Relu,
                conv(24, 32, 3),
                pool,
                LayerSpec::Relu,
                LayerSpec::Flatten,
                LayerSpec::Linear { in_features: 800, out_features: 256 },
                LayerSpec::Relu,
                LayerSpec::Linear { in_features: 256, out_features: 10 },
            ],
        }
    }

    /// A named architecture (`seed`, `fast`).
    pub fn named(name: &str) -> Option<Self> {
        match name.trim() {
            "seed" => Some(Self::seed_cnn()),
            "fast" => Some(Self::fast_cnn()),
            _ => None,
        }
    }

    /// An architecture from JSON: an object `{"input": [c, h, w], "layers": [...]}`, or just the
    /// list of layers (like `nn.Sequential`) for 1x28x28 images. Each layer is an object such as
    /// `{"type": "conv2d", "in_channels": 1, "out_channels": 32, "kernel_size": 3, "stride": 1,
    /// "padding": 0}`, `{"type": "relu"}`, `{"type": "max_pool2d", "kernel_size": 2, "stride": 2}`,
    /// `{"type": "flatten"}`, `{"type": "linear", "in_features": 800, "out_features": 10}`,
    /// `{"type": "dropout", "p": 0.5}`. The result is checked by building its plan.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Invalid(format!("not JSON: {e}")))?;
        let architecture = if value.is_array() {
            let layers =
                serde_json::from_value(value).map_err(|e| Error::Invalid(format!("not a list of layers: {e}")))?;
            Architecture { input: [1, 28, 28], layers }
        } else {
            serde_json::from_value(value).map_err(|e| Error::Invalid(format!("not an architecture: {e}")))?
        };
        Plan::new(&architecture, 0, EngineConfig::default())?;
        Ok(architecture)
    }

    fn build_layer(
        &self,
        index: usize,
        seed: u64,
        engine: EngineConfig,
        reads_images: Option<&[usize]>,
    ) -> Result<Box<dyn Layer>> {
        let spec = &self.layers[index];
        let fused_relu = self.fuses_relu(index);
        Ok(match *spec {
            LayerSpec::Conv2d { in_channels, out_channels, kernel_size, stride, padding } => {
                if in_channels == 0 || out_channels == 0 || kernel_size == 0 || stride == 0 {
                    return Err(Error::Invalid(format!("invalid convolution {spec:?}")));
                }
                let config = Conv2dConfig { in_channels, out_channels, kernel_size, stride, padding };
                Box::new(Conv2d::new(config, engine).with_fused_relu(fused_relu))
            }
            LayerSpec::Relu => Box::new(Relu),
            LayerSpec::MaxPool2d { kernel_size, stride } => Box::new(MaxPool2d::new(kernel_size, stride)),
            LayerSpec::Flatten => Box::new(Flatten),
            LayerSpec::Linear { in_features, out_features } => {
                if in_features == 0 || out_features == 0 {
                    return Err(Error::Invalid(format!("invalid linear layer {spec:?}")));
                }
                let linear = Linear::new(in_features, out_features, engine).with_fused_relu(fused_relu);
                match reads_images {
                    Some(&[h, w, c]) if h * w * c == in_features => Box::new(linear.reading_images(h * w, c)),
                    _ => Box::new(linear),
                }
            }
            LayerSpec::Dropout { p } => {
                if !(0.0..1.0).contains(&p) {
                    return Err(Error::Invalid(format!("dropout probability {p} is not in [0, 1)")));
                }
                Box::new(Dropout::new(p, seed))
            }
        })
    }

    /// Layer `index` applies the ReLU that follows it in its own epilogue (convolutions and
    /// linear layers do), so the ReLU costs no pass over memory.
    fn fuses_relu(&self, index: usize) -> bool {
        matches!(self.layers[index], LayerSpec::Conv2d { .. } | LayerSpec::Linear { .. })
            && self.layers.get(index + 1) == Some(&LayerSpec::Relu)
    }

    /// Layer `index` is a Flatten left out because the Linear after it reads NHWC images.
    fn elides_flatten(&self, index: usize) -> bool {
        self.layers[index] == LayerSpec::Flatten && matches!(self.layers.get(index + 1), Some(LayerSpec::Linear { .. }))
    }
}

/// A named parameter tensor: its state_dict name (`model.{layer}.{weight|bias}`), PyTorch shape,
/// and where it lives in the flat buffers.
#[derive(Clone, Debug)]
pub struct ParamTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub range: Range<usize>,
}

/// What one sample costs a network of this architecture, without allocating it.
pub fn sample_cost(architecture: &Architecture) -> Result<SampleCost> {
    Ok(Plan::new(architecture, 0, EngineConfig::default())?.cost)
}

/// The named parameter tensors of an architecture, without allocating them.
pub fn parameter_tensors(architecture: &Architecture) -> Result<Vec<ParamTensor>> {
    Ok(Plan::new(architecture, 0, EngineConfig::default())?.tensors)
}

/// The layers of an architecture, checked, with their parameters laid out.
struct Plan {
    layers: Vec<Box<dyn Layer>>,
    steps: Vec<Step>,
    tensors: Vec<ParamTensor>,
    layer_params: Vec<Range<usize>>,
    total: usize,
    classes: usize,
    cost: SampleCost,
}

/// What one sample costs a network, computed from the architecture before anything is
/// allocated. Values are 4 bytes each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleCost {
    /// Multiply-adds of a forward pass (every layer's work, elementwise ones included).
    pub macs: u64,
    /// Multiply-adds of the layers with weights (convolutions, linear layers) as the direct
    /// method computes them: the usual FLOP count of a network, halved.
    pub weight_macs: u64,
    /// The input and every layer's output.
    pub activations: usize,
    /// Scratch kept by forward passes, and further by backward passes.
    pub scratch: usize,
    pub backward_scratch: usize,
}

impl SampleCost {
    /// Bytes one sample needs while predicting.
    pub fn inference_bytes(&self) -> usize {
        self.activations.saturating_add(self.scratch).saturating_mul(4)
    }

    /// Refuses a training batch whose activations would not fit [`limits::TRAINING_BATCH_BYTES`].
    pub fn check_training_batch(&self, batch: usize) -> Result<()> {
        let per_sample = self.training_bytes().max(1);
        let most = limits::TRAINING_BATCH_BYTES / per_sample;
        if batch > most {
            return Err(Error::Invalid(format!(
                "--batch-size {batch} would need about {} MiB of activations for this network, more than the {} MiB limit; use at most {most}",
                limits::mib((batch as u64).saturating_mul(per_sample as u64)),
                limits::mib(limits::TRAINING_BATCH_BYTES as u64)
            )));
        }
        Ok(())
    }

    /// Bytes one sample needs while training: activations and their gradients, and scratch.
    pub fn training_bytes(&self) -> usize {
        let values =
            self.activations.saturating_mul(2).saturating_add(self.scratch).saturating_add(self.backward_scratch);
        values.saturating_mul(4)
    }
}

impl Plan {
    fn new(architecture: &Architecture, seed: u64, engine: EngineConfig) -> Result<Plan> {
        let [c, h, w] = architecture.input;
        if [c, h, w].iter().any(|&d| d == 0 || d > limits::MAX_INPUT_SIDE)
            || architecture.layers.len() > limits::MAX_LAYERS
        {
            return Err(Error::Invalid(format!(
                "unsupported architecture: input {:?} with {} layers",
                architecture.input,
                architecture.layers.len()
            )));
        }
        let mut shape = vec![h, w, c];
        // The shape before the previous layer (what an elided Flatten took in).
        let mut previous_shape = shape.clone();
        let mut plan = Plan {
            layers: Vec::new(),
            steps: Vec::new(),
            tensors: Vec::new(),
            layer_params: Vec::new(),
            total: 0,
            classes: 0,
            cost: SampleCost { activations: c * h * w, ..SampleCost::default() },
        };
        let mut outputs = Vec::with_capacity(architecture.layers.len());
        for index in 0..architecture.layers.len() {
            let flattened = (index > 0 && architecture.elides_flatten(index - 1)).then_some(&previous_shape[..]);
            let layer_seed = seed.wrapping_add(1000 + index as u64);
            let layer = architecture.build_layer(index, layer_seed, engine, flattened)?;
            let output = layer.output_shape(&shape).map_err(|e| Error::Invalid(format!("layer {index}: {e}")))?;
            let values = output.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
            let cost = layer.cost(&shape, &output);
            plan.cost.macs = plan.cost.macs.saturating_add(cost.macs);
            if !layer.param_specs().is_empty() {
                plan.cost.weight_macs = plan.cost.weight_macs.saturating_add(cost.macs);
            }
            // Counted for every layer here (a bound); recounted below for the layers that run.
            plan.cost.activations = plan.cost.activations.saturating_add(values);
            outputs.push(values);
            plan.cost.scratch = plan.cost.scratch.saturating_add(cost.scratch);
            plan.cost.backward_scratch = plan.cost.backward_scratch.saturating_add(cost.backward_scratch);
            if plan.cost.inference_bytes() > limits::MAX_BYTES_PER_SAMPLE {
                return Err(Error::Invalid(format!(
                    "layer {index} (output {output:?}) takes the network past {} MiB of activations per image, the limit",
                    limits::mib(limits::MAX_BYTES_PER_SAMPLE as u64)
                )));
            }
            if plan.cost.macs > limits::MAX_MACS_PER_SAMPLE {
                return Err(Error::Invalid(format!(
                    "layer {index} takes the network past {} million multiply-adds per image, the limit",
                    limits::MAX_MACS_PER_SAMPLE / 1_000_000
                )));
            }
            previous_shape = std::mem::replace(&mut shape, output);
            let start = plan.total;
            for ParamSpec { name, shape, .. } in layer.param_specs() {
                let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
                if len > limits::MAX_PARAMETERS || plan.total + len > limits::MAX_PARAMETERS {
                    return Err(Error::Invalid(format!(
                        "layer {index} takes the network past {} parameters, the limit",
                        limits::MAX_PARAMETERS
                    )));
                }
                plan.tensors.push(ParamTensor {
                    name: format!("model.{index}.{name}"),
                    shape,
                    range: plan.total..plan.total + len,
                });
                plan.total += len;
            }
            plan.layer_params.push(start..plan.total);
            plan.layers.push(layer);
        }
        if shape.len() != 1 {
            return Err(Error::Invalid(format!(
                "the network must end in a vector of class scores, not shape {shape:?}"
            )));
        }
        plan.classes = shape[0];
        plan.steps = Step::schedule(architecture);
        // A fused ReLU and an elided Flatten allocate nothing.
        plan.cost.activations = c * h * w + plan.steps.iter().map(|step| outputs[step.layer]).sum::<usize>();
        Ok(plan)
    }
}

fn layer_name(index: usize, spec: &LayerSpec) -> String {
    let kind = match spec {
        LayerSpec::Conv2d { .. } => "conv2d",
        LayerSpec::Relu => "relu",
        LayerSpec::MaxPool2d { .. } => "maxpool2d",
        LayerSpec::Flatten => "flatten",
        LayerSpec::Linear { .. } => "linear",
        LayerSpec::Dropout { .. } => "dropout",
    };
    format!("{index}:{kind}")
}

/// One layer as the network runs it. A ReLU fused into the layer before it, and a Flatten left
/// out before a Linear (which reads NHWC images directly), get no step: neither costs a pass
/// over memory (see `Architecture::fuses_relu` and `Architecture::elides_flatten`).
#[derive(Clone, Copy, Debug)]
struct Step {
    layer: usize,
    /// The layer applies the following ReLU itself.
    relu: bool,
}

impl Step {
    fn schedule(architecture: &Architecture) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut i = 0;
        while i < architecture.layers.len() {
            if architecture.elides_flatten(i) {
                i += 1;
                continue;
            }
            let relu = architecture.fuses_relu(i);
            steps.push(Step { layer: i, relu });
            i += if relu { 2 } else { 1 };
        }
        steps
    }
}

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
        let n = plan.steps.len();
        let mut network = Network {
            engine,
            seed,
            classes: plan.classes,
            cost: plan.cost,
            params: vec![0.0; plan.total],
            grads: vec![0.0; plan.total],
            params_changed: true,
            profile: None,
            acts: (0..=n).map(|_| Tensor::default()).collect(),
            grad_acts: (0..=n).map(|_| Tensor::default()).collect(),
            architecture,
            layers: plan.layers,
            tensors: plan.tensors,
            layer_params: plan.layer_params,
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
        self.engine = engine;
        self.params_changed = true;
        Ok(())
    }

    fn initialise(&mut self, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (layer, range) in self.layers.iter().zip(&self.layer_params) {
            let mut offset = range.start;
            for spec in layer.param_specs() {
                let bound = 1.0 / (spec.fan_in as f32).sqrt();
                for p in &mut self.params[offset..offset + spec.len()] {
                    let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
                    *p = (2.0 * unit - 1.0) * bound;
                }
                offset += spec.len();
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
        &mut self.params
    }

    /// dLoss/dparams from the last backward pass, laid out as the parameters.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// Updates the parameters from the gradients of the last backward pass.
    pub fn apply(&mut self, optimizer: &mut dyn Optimizer) {
        optimizer.step(&mut self.params, &self.grads);
        self.params_changed = true;
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

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Refuses a network that does not give one score per digit (predicting and evaluating
    /// digits need exactly 10).
    pub fn check_digit_classes(&self) -> Result<()> {
        if self.classes != 10 {
            return Err(Error::Invalid(format!(
                "the model has {} outputs; a digit model has 10 (one per digit)",
                self.classes
            )));
        }
        Ok(())
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
    /// [batch, classes]. `train` keeps what backward needs and turns on dropout.
    pub fn forward(&mut self, images: &[f32], batch: usize, train: bool) -> &[f32] {
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
            let started = self.profile.is_some().then(std::time::Instant::now);
            self.layers[step.layer].forward(params, &before[s], &mut after[0], pass);
            if let (Some(profile), Some(started)) = (&mut self.profile, started) {
                profile[s][0] += started.elapsed().as_secs_f64();
            }
        }
        &self.acts[self.steps.len()].data
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
mod tests;
