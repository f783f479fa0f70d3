//! Layer 2: the layers of a network and the loss. One file per layer, each with its forward pass,
//! its backward pass, its parameters and a gradient check against finite differences.
//!
//! Activations are NHWC (`[batch, height, width, channels]`) inside the engine, because then a
//! convolution window's values for one tap are contiguous and the GEMM can read them in place.
//! Parameters keep PyTorch's layouts (OIHW convolution weights, `[out, in]` linear weights), so
//! model files, optimizers and reference values need no conversion.
//!
//! What the network's planner decides for a layer is given to it when it is built, and kept in
//! its fields: the engine configuration (instruction set, convolution algorithm), whether it
//! applies the following ReLU itself (`with_fused_relu` on Conv2d and Linear), and for a Linear
//! right after an elided Flatten, that it reads NHWC images (`Linear::reading_images`).

mod batchnorm;
mod columns;
mod conv2d;
pub mod ctc;
mod dropout;
mod flatten;
mod linear;
pub mod loss;
mod maxpool;
pub(crate) mod relu;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use batchnorm::{BatchNorm2d, BatchNorm2dConfig};
pub use columns::Columns;
pub use conv2d::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use linear::Linear;
pub use maxpool::MaxPool2d;
pub use relu::Relu;

use crate::error::{Error, Result};

/// A batch of values and its shape, batch first. Buffers are reused from step to step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: &[usize], data: Vec<f32>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "shape does not match data");
        Tensor { shape: shape.to_vec(), data }
    }

    /// Sets the shape, growing the buffer if needed (contents are unspecified afterwards).
    pub fn reshape_for(&mut self, shape: &[usize]) {
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        self.data.resize(shape.iter().product(), 0.0);
    }

    pub fn batch(&self) -> usize {
        self.shape[0]
    }
}

/// What kind of forward pass this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// Training behaviour (dropout, BatchNorm's batch statistics) and keeping what backward needs.
    pub train: bool,
    /// The parameters may differ from the previous pass, so anything a layer derived from them
    /// (rearranged weights) must be derived again.
    pub params_changed: bool,
}

impl Pass {
    pub const TRAIN: Pass = Pass { train: true, params_changed: true };
    pub const INFER: Pass = Pass { train: false, params_changed: true };
}

/// A tensor a layer owns: its name in the state_dict (`weight`, `bias`, `running_mean`), its
/// PyTorch shape and how PyTorch initialises it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// How a tensor starts, as PyTorch's default initialisation does it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform in +-1/sqrt(fan_in) (convolution and linear weights and biases).
    FanIn(usize),
    /// Every value the same (BatchNorm's weight 1, bias 0, running variance 1).
    Constant(f32),
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-sample cost of a layer (see [`Layer::cost`]); scratch counts 4-byte values (an 8-byte
/// index counts twice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerCost {
    pub macs: u64,
    /// Scratch kept by a forward pass.
    pub scratch: usize,
    /// Further scratch kept by a backward pass.
    pub backward_scratch: usize,
}

/// One layer. A layer gets its own slice of the network's flat parameter (and gradient) buffer,
/// laid out as its `param_specs` in order.
pub trait Layer: Send {
    /// The output shape for one sample (without the batch), or an error if the input cannot go in.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    fn param_specs(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// The layer's state besides its learnable parameters, saved with the model (PyTorch's
    /// buffers: BatchNorm's running statistics). A training pass may update it.
    fn state_specs(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// What one sample costs this layer, given its input and output shapes: multiply-adds and the
    /// scratch values it keeps beyond its output. Used to budget memory and time before anything
    /// is allocated (see `crate::limits`).
    fn cost(&self, _input: &[usize], output: &[usize]) -> LayerCost {
        LayerCost { macs: output.iter().product::<usize>() as u64, ..LayerCost::default() }
    }

    /// Whether the layer's products run in bf16 for a sample of shape `input` (on its engine).
    fn bf16_products(&self, _input: &[usize]) -> bool {
        false
    }

    /// y = layer(x). `state` is the layer's slice of the network's state (see `state_specs`).
    fn forward(&mut self, params: &[f32], state: &mut [f32], x: &Tensor, y: &mut Tensor, pass: Pass);

    /// Adds the parameter gradients into `grads` and, when `dx` is given, writes dL/dx there.
    /// `x` and `y` are the input and output of the last forward pass. The layer may overwrite
    /// `dy` (a layer with a fused ReLU masks it in place).
    fn backward(
        &mut self,
        params: &[f32],
        grads: &mut [f32],
        x: &Tensor,
        y: &Tensor,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
    );
}

fn shape_error(layer: &str, want: &str, input: &[usize]) -> Error {
    Error::Invalid(format!("{layer} expects {want}, got a sample of shape {input:?}"))
}
