//! Planning: an architecture's layers built and checked, their parameters and state laid out in
//! flat buffers, and what one sample costs, before anything large is allocated.

use super::{Architecture, LayerSpec};
use crate::engine::EngineConfig;
use crate::error::{Error, Result, Setting};
use crate::limits;
use crate::nn::{Init, Layer, ParamSpec};
use std::ops::Range;

/// A named tensor of a network: its state_dict name (`model.{layer}.{weight|bias|running_mean|...}`),
/// PyTorch shape, how it starts, and where it lives in its flat buffer.
#[derive(Clone, Debug)]
pub struct ParamTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub range: Range<usize>,
}

/// Named tensors laid out one after another in one flat buffer, layer by layer.
#[derive(Clone, Debug, Default)]
pub struct TensorLayout {
    pub tensors: Vec<ParamTensor>,
    /// Each layer's range of the buffer.
    pub layers: Vec<Range<usize>>,
    pub total: usize,
}

impl TensorLayout {
    /// Lays out layer `index`'s tensors after the others; `others` values are already laid out
    /// elsewhere and count against the same limit.
    fn push_layer(&mut self, index: usize, specs: Vec<ParamSpec>, others: usize) -> Result<()> {
        let start = self.total;
        for ParamSpec { name, shape, init } in specs {
            let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
            if len > limits::MAX_PARAMETERS || self.total + others + len > limits::MAX_PARAMETERS {
                return Err(Error::Invalid(format!(
                    "layer {index} takes the network past {} parameters, the limit",
                    limits::MAX_PARAMETERS
                )));
            }
            let range = self.total..self.total + len;
            self.tensors.push(ParamTensor { name: format!("model.{index}.{name}"), shape, init, range });
            self.total += len;
        }
        self.layers.push(start..self.total);
        Ok(())
    }
}

/// What one sample costs a network of this architecture, without allocating it.
pub fn sample_cost(architecture: &Architecture) -> Result<SampleCost> {
    Ok(Plan::new(architecture, 0, EngineConfig::default())?.cost)
}

/// The named parameter tensors of an architecture, without allocating them.
pub fn parameter_tensors(architecture: &Architecture) -> Result<Vec<ParamTensor>> {
    Ok(Plan::new(architecture, 0, EngineConfig::default())?.params.tensors)
}

/// The named tensors a model file of this architecture holds: the parameters, then the state
/// (BatchNorm's running statistics), without allocating them.
pub fn file_tensors(architecture: &Architecture) -> Result<(Vec<ParamTensor>, Vec<ParamTensor>)> {
    let plan = Plan::new(architecture, 0, EngineConfig::default())?;
    Ok((plan.params.tensors, plan.state.tensors))
}

/// The layers of an architecture, checked, with their parameters and state laid out.
pub(super) struct Plan {
    pub(super) layers: Vec<Box<dyn Layer>>,
    pub(super) steps: Vec<Step>,
    pub(super) params: TensorLayout,
    pub(super) state: TensorLayout,
    pub(super) classes: usize,
    pub(super) cost: SampleCost,
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
            return Err(Error::setting(
                Setting::BatchSize,
                batch,
                format!(
                    "would need about {} MiB of activations for this network, more than the {} MiB limit; use at most {most}",
                    limits::mib((batch as u64).saturating_mul(per_sample as u64)),
                    limits::mib(limits::TRAINING_BATCH_BYTES as u64)
                ),
            ));
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
    pub(super) fn new(architecture: &Architecture, seed: u64, engine: EngineConfig) -> Result<Plan> {
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
            params: TensorLayout::default(),
            state: TensorLayout::default(),
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
            if matches!(architecture.layers[index], LayerSpec::Conv2d { .. } | LayerSpec::Linear { .. }) {
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
            plan.params.push_layer(index, layer.param_specs(), plan.state.total)?;
            plan.state.push_layer(index, layer.state_specs(), plan.params.total)?;
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

pub(super) fn layer_name(index: usize, spec: &LayerSpec) -> String {
    let kind = match spec {
        LayerSpec::Conv2d { .. } => "conv2d",
        LayerSpec::Relu => "relu",
        LayerSpec::MaxPool2d { .. } => "maxpool2d",
        LayerSpec::Flatten => "flatten",
        LayerSpec::Columns => "columns",
        LayerSpec::Linear { .. } => "linear",
        LayerSpec::Dropout { .. } => "dropout",
        LayerSpec::BatchNorm2d { .. } => "batchnorm2d",
    };
    format!("{index}:{kind}")
}

/// One layer as the network runs it. A ReLU fused into the layer before it, and a Flatten left
/// out before a Linear (which reads NHWC images directly), get no step: neither costs a pass
/// over memory (see `Architecture::fuses_relu` and `Architecture::elides_flatten`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Step {
    pub(super) layer: usize,
    /// The layer applies the following ReLU itself.
    pub(super) relu: bool,
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
