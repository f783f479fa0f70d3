//! BatchNorm2d over NHWC activations, as PyTorch's `nn.BatchNorm2d` (learnable weight and bias,
//! running statistics tracked). Per channel, over the M = batch * height * width values:
//!
//! ```text
//! training   mean = sum x / M,   var = sum (x - mean)^2 / M,   inv_std = 1 / sqrt(var + eps)
//!            y = (x - mean) * inv_std * weight + bias
//!            running_mean = (1 - momentum) * running_mean + momentum * mean
//!            running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
//!            num_batches_tracked += 1
//! inference  y = (x - running_mean) / sqrt(running_var + eps) * weight + bias
//! backward   x_hat = (x - mean) * inv_std
//!            dweight = sum dy * x_hat,   dbias = sum dy
//!            dx = weight * inv_std * (dy - (dbias + x_hat * dweight) / M)
//! ```
//!
//! The running statistics are the layer's state (see `Layer::state_specs`), saved under
//! PyTorch's names. At inference the network folds a BatchNorm that follows a convolution into
//! that convolution's weights (`model::fold`), so this layer's inference pass only runs where
//! there is nothing to fold into.
//!
//! Sums run over fixed blocks of pixels in parallel (f32 within a block, f64 across blocks) and
//! add up in block order, so the result does not depend on the number of threads.

use super::{Init, Layer, ParamSpec, Pass, Tensor, relu, shape_error};
use crate::engine::EngineConfig;
use crate::error::Result;
use crate::kernels::Isa;
use crate::kernels::channels::{self, InputGradient};
use rayon::prelude::*;

/// Hyper-parameters of a BatchNorm2d, PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm2dConfig {
    pub num_features: usize,
    pub eps: f32,
    pub momentum: f32,
}

impl Default for BatchNorm2dConfig {
    fn default() -> Self {
        BatchNorm2dConfig { num_features: 1, eps: 1e-5, momentum: 0.1 }
    }
}

/// Pixels per block of the parallel sums.
const BLOCK_PIXELS: usize = 512;

#[derive(Debug)]
pub struct BatchNorm2d {
    pub config: BatchNorm2dConfig,
    /// The instruction set of its per-pixel passes (`kernels::channels`).
    isa: Isa,
    /// A following ReLU is applied in the output pass (and its mask in the backward pass).
    relu: bool,
    /// Mean and 1/sqrt(var + eps) of the last training batch, per channel.
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// y = x * scale + shift, per channel, for the current pass.
    scale: Vec<f32>,
    shift: Vec<f32>,
    /// Per block of pixels, two sums per channel, and their totals (see `block_sums`).
    partials: Vec<f32>,
    sums: Vec<(f64, f64)>,
    /// Per-channel scratch reused from step to step: the pivot the statistics' sums subtract,
    /// the batch variance, and in the backward pass mean(dy) and the slope of the x_hat term.
    pivot: Vec<f32>,
    variance: Vec<f64>,
    mean_dy: Vec<f32>,
    slope: Vec<f32>,
}

impl BatchNorm2d {
    pub fn new(config: BatchNorm2dConfig, engine: EngineConfig) -> Self {
        BatchNorm2d {
            config,
            isa: engine.isa,
            relu: false,
            mean: Vec::new(),
            inv_std: Vec::new(),
            scale: Vec::new(),
            shift: Vec::new(),
            partials: Vec::new(),
            sums: Vec::new(),
            pivot: Vec::new(),
            variance: Vec::new(),
            mean_dy: Vec::new(),
            slope: Vec::new(),
        }
    }

    /// The same layer with a following ReLU applied in its output pass (`relu`) or not.
    pub fn with_fused_relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// Batch statistics of x (training): sets `mean`, `inv_std` and `variance`. The sums are
    /// of x - k, k being the first pixel's value per channel (close to the mean of typical
    /// activations), so that var = E[(x-k)^2] - E[x-k]^2 does not cancel badly.
    fn batch_statistics(&mut self, x: &[f32]) {
        let c = self.config.num_features;
        let pixels = (x.len() / c).max(1) as f64;
        self.pivot.clear();
        self.pivot.extend_from_slice(x.get(..c).unwrap_or(&[]));
        self.pivot.resize(c, 0.0);
        let (pivot, isa) = (&self.pivot, self.isa);
        block_sums(x.len() / c, c, &mut self.partials, &mut self.sums, |range, sum, sum_squares| {
            channels::shifted_sums(isa, &x[range.start * c..range.end * c], pivot, sum, sum_squares);
        });
        self.variance.clear();
        self.mean.clear();
        self.inv_std.clear();
        for (&(sum, sum_squares), &k) in self.sums.iter().zip(pivot) {
            let mean_shifted = sum / pixels;
            let var = (sum_squares / pixels - mean_shifted * mean_shifted).max(0.0);
            self.mean.push((mean_shifted + k as f64) as f32);
            self.inv_std.push((1.0 / (var + self.config.eps as f64).sqrt()) as f32);
            self.variance.push(var);
        }
    }

    fn update_running_statistics(&self, state: &mut [f32], pixels: usize) {
        let c = self.config.num_features;
        let m = self.config.momentum;
        let (running_mean, rest) = state.split_at_mut(c);
        let (running_var, batches) = rest.split_at_mut(c);
        let unbiased = if pixels > 1 { pixels as f64 / (pixels - 1) as f64 } else { 1.0 };
        for ch in 0..c {
            running_mean[ch] = (1.0 - m) * running_mean[ch] + m * self.mean[ch];
            running_var[ch] = (1.0 - m) * running_var[ch] + m * (self.variance[ch] * unbiased) as f32;
        }
        batches[0] += 1.0;
    }
}

/// Two per-channel sums over `pixels` pixels into `total`: `add(pixels, sum, other_sum)` adds a
/// range of pixels into two f32 accumulators of `c` values. Blocks of [`BLOCK_PIXELS`] run in
/// parallel into `partials`; the blocks' sums are added in order, in f64. Both buffers are
/// reused from step to step.
fn block_sums(
    pixels: usize,
    c: usize,
    partials: &mut Vec<f32>,
    total: &mut Vec<(f64, f64)>,
    add: impl Fn(std::ops::Range<usize>, &mut [f32], &mut [f32]) + Sync,
) {
    partials.clear();
    partials.resize(pixels.div_ceil(BLOCK_PIXELS) * 2 * c, 0.0);
    partials.par_chunks_mut(2 * c).enumerate().for_each(|(block, sums)| {
        let start = block * BLOCK_PIXELS;
        let (first, second) = sums.split_at_mut(c);
        add(start..(start + BLOCK_PIXELS).min(pixels), first, second);
    });
    total.clear();
    total.resize(c, (0.0, 0.0));
    for sums in partials.chunks_exact(2 * c) {
        for (ch, t) in total.iter_mut().enumerate() {
            t.0 += sums[ch] as f64;
            t.1 += sums[c + ch] as f64;
        }
    }
}

/// y = x * scale[ch] + shift[ch] (then max(y, 0) with `relu`) over NHWC data, a block of pixels
/// per task.
fn scale_and_shift(isa: Isa, x: &[f32], y: &mut [f32], scale: &[f32], shift: &[f32], relu: bool) {
    let c = scale.len();
    y.par_chunks_mut(BLOCK_PIXELS * c).zip(x.par_chunks(BLOCK_PIXELS * c)).for_each(|(y, x)| {
        channels::scale_shift(isa, x, y, scale, shift, relu);
    });
}

impl Layer for BatchNorm2d {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let c = self.config.num_features;
        if input.len() != 3 || input[2] != c {
            return Err(shape_error("BatchNorm2d", &format!("images with {c} channels"), input));
        }
        Ok(input.to_vec())
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        let c = self.config.num_features;
        vec![
            ParamSpec { name: "weight", shape: vec![c], init: Init::Constant(1.0) },
            ParamSpec { name: "bias", shape: vec![c], init: Init::Constant(0.0) },
        ]
    }

    fn state_specs(&self) -> Vec<ParamSpec> {
        let c = self.config.num_features;
        vec![
            ParamSpec { name: "running_mean", shape: vec![c], init: Init::Constant(0.0) },
            ParamSpec { name: "running_var", shape: vec![c], init: Init::Constant(1.0) },
            ParamSpec { name: "num_batches_tracked", shape: vec![], init: Init::Constant(0.0) },
        ]
    }

    fn forward(&mut self, params: &[f32], state: &mut [f32], x: &Tensor, y: &mut Tensor, pass: Pass) {
        let c = self.config.num_features;
        let (weight, bias) = params.split_at(c);
        y.reshape_for(&x.shape);
        if pass.train {
            self.batch_statistics(&x.data);
            self.update_running_statistics(state, x.data.len() / c);
        } else {
            let (running_mean, rest) = state.split_at(c);
            self.mean.clear();
            self.mean.extend_from_slice(running_mean);
            self.inv_std.clear();
            self.inv_std.extend(rest[..c].iter().map(|&var| 1.0 / (var + self.config.eps).sqrt()));
        }
        self.scale.clear();
        self.scale.extend(weight.iter().zip(&self.inv_std).map(|(w, s)| w * s));
        self.shift.clear();
        self.shift.extend((0..c).map(|ch| bias[ch] - self.mean[ch] * self.scale[ch]));
        scale_and_shift(self.isa, &x.data, &mut y.data, &self.scale, &self.shift, self.relu);
    }

    fn backward(
        &mut self,
        _params: &[f32],
        grads: &mut [f32],
        x: &Tensor,
        y: &Tensor,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
    ) {
        let c = self.config.num_features;
        let pixels = x.data.len() / c;
        if self.relu {
            relu::mask_gradient(&mut dy.data, &y.data);
        }
        let (mean, inv_std, isa) = (&self.mean[..], &self.inv_std[..], self.isa);
        let dy_values = &dy.data;
        // Sums of dy and of dy * (x - mean); dweight = the latter * inv_std.
        block_sums(pixels, c, &mut self.partials, &mut self.sums, |range, sum_dy, sum_dy_centred| {
            let (dy, x) = (&dy_values[range.start * c..range.end * c], &x.data[range.start * c..range.end * c]);
            channels::centred_sums(isa, dy, x, mean, sum_dy, sum_dy_centred);
        });
        let sums = &self.sums;
        let (dweight, dbias) = grads.split_at_mut(c);
        for ch in 0..c {
            dweight[ch] += (sums[ch].1 * inv_std[ch] as f64) as f32;
            dbias[ch] += sums[ch].0 as f32;
        }
        let Some(dx) = dx else { return };
        dx.reshape_for(&x.shape);
        // dx = weight * inv_std * (dy - mean(dy) - (x - mean) * inv_std * mean(dy * x_hat))
        // weight * inv_std is the training pass's `scale`.
        let n = pixels.max(1) as f64;
        self.mean_dy.clear();
        self.mean_dy.extend(sums.iter().map(|s| (s.0 / n) as f32));
        self.slope.clear();
        self.slope.extend((0..c).map(|ch| (sums[ch].1 / n * (inv_std[ch] as f64).powi(2)) as f32));
        let per_channel = InputGradient { gain: &self.scale, mean_dy: &self.mean_dy, mean, slope: &self.slope };
        let block = BLOCK_PIXELS * c;
        dx.data
            .par_chunks_mut(block)
            .zip(dy.data.par_chunks(block))
            .zip(x.data.par_chunks(block))
            .for_each(|((dx, dy), x)| channels::input_gradient(isa, dx, dy, x, &per_channel));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Relu;
    use crate::nn::gradcheck::{check_layer, test_values};

    fn layer(c: usize) -> BatchNorm2d {
        BatchNorm2d::new(BatchNorm2dConfig { num_features: c, ..Default::default() }, EngineConfig::default())
    }

    #[test]
    fn gradient_matches_finite_differences() {
        check_layer(&mut layer(3), &[4, 5, 3], 21);
        check_layer(&mut layer(1), &[3, 3, 1], 22);
    }

    /// Training normalises each channel to mean 0, variance 1 (then weight and bias); the running
    /// statistics move by `momentum` towards the batch's, with the unbiased variance.
    #[test]
    fn training_normalises_and_tracks_statistics() {
        let c = 2;
        let x = Tensor::new(&[2, 2, 1, c], vec![1.0, 10.0, 3.0, 20.0, 5.0, 30.0, 7.0, 40.0]);
        let mut state = vec![0.0, 0.0, 1.0, 1.0, 0.0];
        let mut y = Tensor::default();
        layer(c).forward(&[1.0, 2.0, 0.0, 1.0], &mut state, &x, &mut y, Pass::TRAIN);
        // Channel 0: 1, 3, 5, 7 -> mean 4, var 5. Channel 1: 10..40 -> mean 25, var 125.
        let want0 = [-3.0, -1.0, 1.0, 3.0].map(|v: f32| v / (5.0f32 + 1e-5).sqrt());
        for (i, w) in want0.iter().enumerate() {
            assert!((y.data[i * 2] - w).abs() < 1e-6);
            assert!((y.data[i * 2 + 1] - (2.0 * w + 1.0)).abs() < 1e-5);
        }
        let unbiased = [5.0 * 4.0 / 3.0, 125.0 * 4.0 / 3.0];
        let want_state = [0.4, 2.5, 0.9 + 0.1 * unbiased[0], 0.9 + 0.1 * unbiased[1], 1.0];
        for (got, want) in state.iter().zip(want_state) {
            assert!((got - want).abs() < 1e-4, "state {state:?}, want {want_state:?}");
        }
    }

    #[test]
    fn inference_uses_the_running_statistics() {
        let x = Tensor::new(&[1, 1, 2, 1], vec![3.0, 5.0]);
        let mut state = vec![1.0, 4.0, 7.0];
        let mut y = Tensor::default();
        let mut bn = layer(1);
        bn.forward(&[3.0, 0.5], &mut state, &x, &mut y, Pass::INFER);
        let s = 3.0 / (4.0f32 + 1e-5).sqrt();
        for (got, want) in y.data.iter().zip([2.0 * s + 0.5, 4.0 * s + 0.5]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert_eq!(state, vec![1.0, 4.0, 7.0], "inference leaves the state alone");
    }

    #[test]
    fn fused_relu_equals_batchnorm_then_relu() {
        let shape = [3, 4, 4, 5];
        let x = Tensor::new(&shape, test_values(240, 4));
        let params = test_values(10, 5);
        let dy_values = test_values(240, 6);
        let mut state = vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let (mut plain, mut fused) = (layer(5), layer(5).with_fused_relu(true));
        let (mut y, mut y_fused, mut relu_y) = (Tensor::default(), Tensor::default(), Tensor::default());
        plain.forward(&params, &mut state, &x, &mut y, Pass::TRAIN);
        fused.forward(&params, &mut state, &x, &mut y_fused, Pass::TRAIN);
        Relu.forward(&[], &mut [], &y, &mut relu_y, Pass::TRAIN);
        assert_eq!(y_fused.data, relu_y.data);

        let mut dy = Tensor::new(&shape, dy_values);
        let mut d_relu = Tensor::default();
        Relu.backward(&[], &mut [], &y, &relu_y, &mut dy.clone(), Some(&mut d_relu));
        let (mut grads, mut grads_fused) = (vec![0.0; 10], vec![0.0; 10]);
        let (mut dx, mut dx_fused) = (Tensor::default(), Tensor::default());
        plain.backward(&params, &mut grads, &x, &y, &mut d_relu, Some(&mut dx));
        fused.backward(&params, &mut grads_fused, &x, &y_fused, &mut dy, Some(&mut dx_fused));
        assert_eq!((grads, dx.data), (grads_fused, dx_fused.data));
    }

    /// Block sums are added in a fixed order, so a batch large enough for several blocks gives
    /// the same bits on one thread and on many.
    #[test]
    fn threads_do_not_change_results() {
        let shape = [4, 24, 24, 8];
        let len = shape.iter().product();
        let x = Tensor::new(&shape, test_values(len, 7));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut state = [vec![0.0; 8], vec![1.0; 8], vec![0.0]].concat();
                let mut y = Tensor::default();
                let mut bn = layer(8);
                bn.forward(&test_values(16, 8), &mut state, &x, &mut y, Pass::TRAIN);
                let mut grads = vec![0.0; 16];
                let mut dx = Tensor::default();
                let mut dy = Tensor::new(&shape, test_values(len, 9));
                bn.backward(&test_values(16, 8), &mut grads, &x, &y, &mut dy, Some(&mut dx));
                (y.data, state, grads, dx.data)
            })
        };
        assert_eq!(run(1), run(2));
    }
}
