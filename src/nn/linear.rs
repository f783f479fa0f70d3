//! Linear: y = x W^T + b, with W in PyTorch's [out, in] layout.
//!
//! The input is a batch of vectors or, when the network leaves out the Flatten before this
//! layer (decided when it is planned: [`Linear::reading_images`]), a batch of NHWC images.
//! PyTorch flattens in (C, H, W) order, so W's columns are permuted once per pass into the
//! (H, W, C) order of the data instead of moving the (much larger) activations:
//!
//! ```text
//! forward   y[b, o]         = dot(x[b], weight_hwc[o]) + b[o]     weight_hwc = W, columns permuted
//! backward  dW_hwc[out, in] = dy^T[out, B] * x[B, in]             (added to dW un-permuted)
//!           db             += column sums of dy
//!           dx[B, in]       = dy[B, out] * weight_hwc[out, in]
//! ```

use super::{Init, Layer, LayerCost, ParamSpec, Pass, Tensor, relu, shape_error};
use crate::engine::EngineConfig;
use crate::error::Result;
use crate::kernels::layout::{add_hwc_to_chw, chw_to_hwc};
use crate::kernels::{Epilogue, MatRef, gemm, matmul_nt};
use rayon::prelude::*;

#[derive(Debug)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    engine: EngineConfig,
    /// A following ReLU is applied in the output epilogue (and its mask in the backward pass).
    relu: bool,
    /// (pixels, channels) of the NHWC images this layer reads, or (1, in_features) for vectors.
    input: (usize, usize),
    /// W with its columns in the data's order: [out, in].
    weight_hwc: Vec<f32>,
    grad_hwc: Vec<f32>,
    /// The (pixels, channels) layout `weight_hwc` was permuted for.
    permuted_for: Option<(usize, usize)>,
}

impl Linear {
    /// A layer reading vectors of `in_features`.
    pub fn new(in_features: usize, out_features: usize, engine: EngineConfig) -> Self {
        Linear {
            in_features,
            out_features,
            engine,
            relu: false,
            input: (1, in_features),
            weight_hwc: Vec::new(),
            grad_hwc: Vec::new(),
            permuted_for: None,
        }
    }

    /// The same layer with a following ReLU applied in its epilogue (`relu`) or not.
    pub fn with_fused_relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// The same layer reading NHWC images of `pixels` x `channels` (= `in_features`) values
    /// directly, as if a Flatten (to PyTorch's CHW order) came first.
    pub fn reading_images(mut self, pixels: usize, channels: usize) -> Self {
        assert_eq!(pixels * channels, self.in_features, "images of in_features values");
        self.input = (pixels, channels);
        self
    }

    /// Fills `weight_hwc` from W (PyTorch's column order c * pixels + p), one output row a task.
    fn permute_weight(&mut self, weight: &[f32]) {
        let (i, (pixels, channels)) = (self.in_features, self.input);
        self.weight_hwc.resize(weight.len(), 0.0);
        self.weight_hwc.par_chunks_mut(i).zip(weight.par_chunks(i)).for_each(|(hwc, chw)| {
            chw_to_hwc(chw, hwc, pixels, channels);
        });
    }
}

impl Layer for Linear {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input != [self.in_features] {
            return Err(shape_error("Linear", &format!("vectors of {} features", self.in_features), input));
        }
        Ok(vec![self.out_features])
    }

    fn cost(&self, _input: &[usize], _output: &[usize]) -> LayerCost {
        LayerCost { macs: (self.in_features as u64).saturating_mul(self.out_features as u64), ..Default::default() }
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        let (i, o) = (self.in_features, self.out_features);
        vec![
            ParamSpec { name: "weight", shape: vec![o, i], init: Init::FanIn(i) },
            ParamSpec { name: "bias", shape: vec![o], init: Init::FanIn(i) },
        ]
    }

    fn forward(&mut self, params: &[f32], _state: &mut [f32], x: &Tensor, y: &mut Tensor, pass: Pass) {
        let (batch, i, o) = (x.batch(), self.in_features, self.out_features);
        assert_eq!(x.data.len(), batch * i, "Linear input size");
        let (weight, bias) = params.split_at(o * i);
        if pass.params_changed || self.permuted_for != Some(self.input) {
            self.permute_weight(weight);
            self.permuted_for = Some(self.input);
        }
        y.reshape_for(&[batch, o]);
        matmul_nt(
            self.engine.isa,
            &x.data,
            &self.weight_hwc,
            i,
            &mut y.data,
            Epilogue { bias: Some(bias), relu: self.relu, ..Epilogue::OVERWRITE },
        );
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
        if self.relu {
            relu::mask_gradient(&mut dy.data, &y.data);
        }
        // weight_hwc is the forward pass's permuted W, still current.
        let (batch, i, o, isa) = (x.batch(), self.in_features, self.out_features, self.engine.isa);
        let (pixels, channels) = self.input;
        let (grad_weight, grad_bias) = grads.split_at_mut(o * i);
        let dy_matrix = MatRef::row_major(&dy.data, batch, o);
        self.grad_hwc.resize(o * i, 0.0);
        gemm(isa, dy_matrix.t(), MatRef::row_major(&x.data, batch, i), &mut self.grad_hwc, i, Epilogue::OVERWRITE);
        grad_weight.par_chunks_mut(i).zip(self.grad_hwc.par_chunks(i)).for_each(|(chw, hwc)| {
            add_hwc_to_chw(hwc, chw, pixels, channels);
        });
        for row in dy.data.chunks(o) {
            for (gb, &d) in grad_bias.iter_mut().zip(row) {
                *gb += d;
            }
        }
        if let Some(dx) = dx {
            dx.reshape_for(&x.shape);
            gemm(isa, dy_matrix, MatRef::row_major(&self.weight_hwc, o, i), &mut dx.data, i, Epilogue::OVERWRITE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;
    use crate::nn::{Flatten, gradcheck::test_values};

    #[test]
    fn forward_is_x_times_w_transpose_plus_bias() {
        let mut layer = Linear::new(2, 3, EngineConfig::default());
        // W = [[1, 2], [3, 4], [5, 6]], b = [0.5, -1, 0]
        let params = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, -1.0, 0.0];
        let x = Tensor::new(&[1, 2], vec![1.0, -1.0]);
        let mut y = Tensor::default();
        layer.forward(&params, &mut [], &x, &mut y, Pass::INFER);
        assert_eq!(y.data, vec![-0.5, -2.0, -1.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for isa in crate::kernels::Isa::tested("Linear::gradient_matches_finite_differences") {
            check_layer(&mut Linear::new(13, 5, EngineConfig { isa, ..EngineConfig::default() }), &[13], 6);
        }
    }

    /// Reading NHWC images directly must equal Flatten (to PyTorch's CHW order) then Linear.
    #[test]
    fn nhwc_input_equals_flatten_then_linear() {
        let (h, w, c, o) = (3, 2, 4, 5);
        let params = test_values(o * h * w * c + o, 11);
        let x = Tensor::new(&[2, h, w, c], test_values(2 * h * w * c, 12));
        let (mut flat, mut want, mut got) = (Tensor::default(), Tensor::default(), Tensor::default());
        Flatten.forward(&[], &mut [], &x, &mut flat, Pass::INFER);
        let mut via_flatten = Linear::new(h * w * c, o, EngineConfig::default());
        via_flatten.forward(&params, &mut [], &flat, &mut want, Pass::INFER);
        let mut direct = Linear::new(h * w * c, o, EngineConfig::default()).reading_images(h * w, c);
        direct.forward(&params, &mut [], &x, &mut got, Pass::INFER);
        assert_eq!(got.shape, want.shape);
        for (a, b) in got.data.iter().zip(&want.data) {
            assert!((a - b).abs() < 1e-6);
        }
        // And the gradients: dx comes back in NHWC, dW in PyTorch's order.
        let dy = Tensor::new(&want.shape, test_values(want.data.len(), 13));
        let (mut grads_flat, mut grads_direct) = (vec![0.0; params.len()], vec![0.0; params.len()]);
        let (mut dflat, mut dx_flat, mut dx_direct) = (Tensor::default(), Tensor::default(), Tensor::default());
        via_flatten.backward(&params, &mut grads_flat, &flat, &want, &mut dy.clone(), Some(&mut dflat));
        Flatten.backward(&[], &mut [], &x, &flat, &mut dflat, Some(&mut dx_flat));
        direct.backward(&params, &mut grads_direct, &x, &got, &mut dy.clone(), Some(&mut dx_direct));
        for (a, b) in grads_direct.iter().zip(&grads_flat).chain(dx_direct.data.iter().zip(&dx_flat.data)) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn gradient_matches_finite_differences_on_images() {
        let mut layer = Linear::new(2 * 3 * 2, 3, EngineConfig::default()).reading_images(2 * 3, 2);
        check_layer(&mut layer, &[2, 3, 2], 14);
    }
}
