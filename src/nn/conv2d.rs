//! Conv2d over NHWC activations, as implicit-im2col GEMMs (see `kernels::conv`).
//!
//! ```text
//! forward   y[q, o]      = bias[o] + sum_k x_pad[window[q] + tap[k]] * w_hwio[k, o]
//! backward  dw_hwio[k, o] = sum_q x_pad[window[q] + tap[k]] * dy[q, o]     (the tables swap roles)
//!           dx            = full convolution of dy with the flipped kernel  (stride 1)
//!                           or dy * w_hwio^T scattered back through the tables (any stride)
//! ```
//! where q runs over every output pixel of the batch and k over (kh, kw, in_channel).
//!
//! 3x3 stride-1 convolutions with enough channels use Winograd F(2x2, 3x3) or F(4x4, 3x3) instead
//! (`kernels::winograd`): the same results to rounding, with 2.25x to 4x fewer multiplications.
//! The engine configuration's [`ConvAlgorithm`] decides (off, forced tile size, or the best one).
//!
//! With a fused ReLU (set when the network is planned) the output epilogue applies it, and the
//! backward pass masks dy where the output is zero before using it.

use super::{Init, Layer, LayerCost, ParamSpec, Pass, Tensor, relu, shape_error};
#[cfg(test)]
use crate::engine::Precision;
use crate::engine::{ConvAlgorithm, EngineConfig, WINOGRAD_MIN_CHANNELS};
use crate::error::Result;
use crate::kernels::conv::{ConvGeometry, images_per_group, pad_nhwc, unpad_nhwc};
use crate::kernels::winograd::{TileSize, Transformed, WinogradGeometry, WinogradPlan};
use crate::kernels::{Epilogue, IndexedA, IndexedB, Isa, MatRef, gemm, gemm_indexed};
use rayon::prelude::*;

/// Hyper-parameters of a convolution (square kernel), PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig { in_channels: 1, out_channels: 1, kernel_size: 3, stride: 1, padding: 0 }
    }
}

/// A convolution layer and the scratch buffers it reuses from step to step.
#[derive(Debug)]
pub struct Conv2d {
    pub config: Conv2dConfig,
    engine: EngineConfig,
    /// A following ReLU is applied in the output epilogue (and its mask in the backward pass).
    relu: bool,
    geometry: Option<ConvGeometry>,
    /// Offset tables for the current geometry (see `kernels::conv`).
    windows: Vec<usize>,
    taps: Vec<usize>,
    /// `k * out_channels` for each k: the rows of `weight_hwio`.
    weight_rows: Vec<usize>,
    /// `q * out_channels` for each output pixel q: the rows of dy.
    dy_rows: Vec<usize>,
    /// The weight rearranged to [kh][kw][in][out], refreshed every forward pass.
    weight_hwio: Vec<f32>,
    x_padded: Vec<f32>,
    /// One weight-gradient partial per parallel task, summed in a fixed order for determinism.
    grad_partials: Vec<f32>,
    dx_plan: DxPlan,
    /// Set for 3x3 stride-1 convolutions with enough channels to pay for the transforms.
    winograd: Option<Winograd>,
}

/// The Winograd plan and its transformed weights.
#[derive(Debug)]
struct Winograd {
    plan: WinogradPlan,
    /// U = G g Gᵀ, refreshed when the parameters change; Uᵀ derived from it when dx is needed.
    u: Vec<f32>,
    ut: Vec<f32>,
    ut_stale: bool,
    /// The GEMMs take bf16 inputs: the engine runs bf16 and the tile is F(2x2) (F(4x4) keeps
    /// f32 products, see `WinogradPlan::new`).
    bf16: bool,
    /// U and Uᵀ paired in bf16, when `bf16`.
    u_pairs: Vec<u32>,
    ut_pairs: Vec<u32>,
    grad_u: Vec<f32>,
    partials: Vec<f32>,
    scratch: Vec<f32>,
}

/// Buffers for the input gradient.
#[derive(Debug, Default)]
struct DxPlan {
    /// Stride 1: dy padded by kernel-1, the flipped kernel [kh][kw][out][in], and its tables.
    dy_padded: Vec<f32>,
    weight_flipped: Vec<f32>,
    rows: Vec<usize>,
    taps: Vec<usize>,
    weight_rows: Vec<usize>,
    /// Any stride: the gradient of every window value, scattered back into a padded image.
    columns: Vec<f32>,
    dx_padded: Vec<f32>,
}

impl Conv2d {
    pub fn new(config: Conv2dConfig, engine: EngineConfig) -> Self {
        Conv2d {
            config,
            engine,
            relu: false,
            geometry: None,
            windows: Vec::new(),
            taps: Vec::new(),
            weight_rows: Vec::new(),
            dy_rows: Vec::new(),
            weight_hwio: Vec::new(),
            x_padded: Vec::new(),
            grad_partials: Vec::new(),
            dx_plan: DxPlan::default(),
            winograd: None,
        }
    }

    /// The same layer with a following ReLU applied in its epilogue (`relu`) or not.
    pub fn with_fused_relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// The Winograd tile size the engine's algorithm picks for this convolution on images of
    /// `in_h` x `in_w` (plus padding), or None for the direct method.
    pub fn winograd_tile(&self, in_h: usize, in_w: usize) -> Option<TileSize> {
        let c = &self.config;
        // Output sides, saturating: a model file may ask for any padding (planning refuses the
        // absurd ones before a layer runs, but this is public).
        let out = |n: usize| n.saturating_add(c.padding.saturating_mul(2)).checked_sub(2);
        let fits = c.kernel_size == 3 && c.stride == 1 && c.in_channels.min(c.out_channels) >= WINOGRAD_MIN_CHANNELS;
        let (Some(out_h), Some(out_w)) = (out(in_h), out(in_w)) else { return None };
        match self.engine.conv {
            _ if !fits || out_h == 0 || out_w == 0 => None,
            ConvAlgorithm::Direct => None,
            ConvAlgorithm::Auto if self.bf16_pays() => Some(TileSize::F2),
            ConvAlgorithm::Auto => Some(TileSize::best_for(out_h, out_w)),
            ConvAlgorithm::WinogradF2 => Some(TileSize::F2),
            ConvAlgorithm::WinogradF4 => Some(TileSize::F4),
        }
    }

    fn isa(&self) -> Isa {
        self.engine.isa
    }

    /// With a bf16 engine, whether `Auto` picks F(2x2) with bf16 products over F(4x4) with f32
    /// ones (F(4x4) is too inaccurate in bf16, see `WinogradPlan::new`). F(2x2) needs 1.8x the
    /// multiplications at twice the rate, and 1.8x the transform work, which grows with the
    /// channels while the products grow with their square: measured per layer of the seed CNN
    /// (training step, batch 32, AVX512-BF16 on 2 Zen 5 cores), 32 -> 64 channels took 2.9 ms
    /// in F(2x2)-bf16 against 2.5 ms in F(4x4)-f32, 64 -> 64 took 4.0 against 4.3 to 4.4.
    fn bf16_pays(&self) -> bool {
        let c = &self.config;
        self.bf16_channels() && c.in_channels.min(c.out_channels) >= 64
    }

    /// bf16 products need the engine to run them and channels in whole pairs.
    fn bf16_channels(&self) -> bool {
        let c = &self.config;
        self.engine.runs_bf16() && c.in_channels.is_multiple_of(2) && c.out_channels.is_multiple_of(2)
    }

    fn weight_len(&self) -> usize {
        let c = &self.config;
        c.out_channels * c.in_channels * c.kernel_size * c.kernel_size
    }

    /// Rebuilds the offset tables when the batch or image size changes.
    fn prepare(&mut self, x: &Tensor) -> ConvGeometry {
        let c = self.config;
        let g = ConvGeometry {
            batch: x.shape[0],
            in_h: x.shape[1],
            in_w: x.shape[2],
            in_c: c.in_channels,
            out_c: c.out_channels,
            kernel: c.kernel_size,
            stride: c.stride,
            pad: c.padding,
        };
        if self.geometry != Some(g) {
            g.window_offsets(&mut self.windows);
            g.tap_offsets(&mut self.taps);
            self.weight_rows = (0..g.k_len()).map(|k| k * g.out_c).collect();
            self.dy_rows = (0..self.windows.len()).map(|q| q * g.out_c).collect();
            self.geometry = Some(g);
            if g.stride == 1 {
                self.plan_full_convolution(&g);
            }
            let bf16_channels = self.bf16_channels();
            self.winograd = self.winograd_tile(g.in_h, g.in_w).map(|tile| {
                let bf16 = bf16_channels && tile == TileSize::F2;
                Winograd {
                    plan: WinogradPlan::new(
                        WinogradGeometry {
                            batch: g.batch,
                            in_h: g.in_h,
                            in_w: g.in_w,
                            in_c: g.in_c,
                            out_c: g.out_c,
                            pad: g.pad,
                        },
                        tile,
                        self.isa(),
                        bf16,
                    ),
                    bf16,
                    u: Vec::new(),
                    ut: Vec::new(),
                    ut_stale: true,
                    u_pairs: Vec::new(),
                    ut_pairs: Vec::new(),
                    grad_u: Vec::new(),
                    partials: Vec::new(),
                    scratch: Vec::new(),
                }
            });
        }
        g
    }

    /// Tables for dx as a stride-1 convolution of dy (padded by kernel-1) with the flipped kernel,
    /// evaluated only at the unpadded input pixels.
    fn plan_full_convolution(&mut self, g: &ConvGeometry) {
        let k = g.kernel;
        let (dh, dw) = (g.out_h() + 2 * (k - 1), g.out_w() + 2 * (k - 1));
        let plan = &mut self.dx_plan;
        plan.rows.clear();
        for b in 0..g.batch {
            for y in 0..g.in_h {
                for x in 0..g.in_w {
                    plan.rows.push(((b * dh + y + g.pad) * dw + x + g.pad) * g.out_c);
                }
            }
        }
        plan.taps.clear();
        for kh in 0..k {
            for kw in 0..k {
                plan.taps.extend((0..g.out_c).map(|o| (kh * dw + kw) * g.out_c + o));
            }
        }
        plan.weight_rows = (0..k * k * g.out_c).map(|r| r * g.in_c).collect();
    }

    /// OIHW (PyTorch) to [kh][kw][in][out], the layout the GEMM reads rows of.
    fn refresh_weight_hwio(&mut self, weight: &[f32]) {
        let c = self.config;
        let (k, cin, cout) = (c.kernel_size, c.in_channels, c.out_channels);
        self.weight_hwio.resize(weight.len(), 0.0);
        for o in 0..cout {
            for i in 0..cin {
                for t in 0..k * k {
                    self.weight_hwio[(t * cin + i) * cout + o] = weight[(o * cin + i) * k * k + t];
                }
            }
        }
    }

    /// The input with its zero border (the input itself when there is no padding).
    fn padded_input<'a>(&'a self, x: &'a Tensor) -> &'a [f32] {
        if self.config.padding == 0 { &x.data } else { &self.x_padded }
    }

    fn backward_weight(&mut self, g: &ConvGeometry, grads: &mut [f32], x: &Tensor, dy: &Tensor) {
        let (k_len, cout, pixels) = (g.k_len(), g.out_c, g.out_pixels());
        // Each task sums the weight and bias gradients of a fixed group of images into its own
        // partial ([k_len * cout] weights then [cout] biases); partials are added in task order,
        // so the result does not depend on the thread count.
        let partial_len = k_len * cout + cout;
        let images_per_task = images_per_group(g.batch);
        let tasks = g.batch.div_ceil(images_per_task);
        self.grad_partials.resize(tasks * partial_len, 0.0);
        let x_padded = if g.pad == 0 { &x.data } else { &self.x_padded };
        let (taps, windows, dy_rows, isa) = (&self.taps, &self.windows, &self.dy_rows, self.isa());
        self.grad_partials.par_chunks_mut(partial_len).enumerate().for_each(|(task, partial)| {
            partial.fill(0.0);
            let (weight_part, bias_part) = partial.split_at_mut(k_len * cout);
            for b in task * images_per_task..((task + 1) * images_per_task).min(g.batch) {
                let images = b * pixels..(b + 1) * pixels;
                gemm_indexed(
                    isa,
                    IndexedA { data: x_padded, row: taps, k_offsets: &windows[images.clone()] },
                    IndexedB { data: &dy.data, k_offsets: &dy_rows[images], n: cout },
                    weight_part,
                    cout,
                    Epilogue::ACCUMULATE,
                );
                for row in dy.data[b * pixels * cout..(b + 1) * pixels * cout].chunks(cout) {
                    for (gb, &d) in bias_part.iter_mut().zip(row) {
                        *gb += d;
                    }
                }
            }
        });
        let (grad_weight, grad_bias) = grads.split_at_mut(self.weight_len());
        let (kk, cin) = (g.kernel * g.kernel, g.in_c);
        for partial in self.grad_partials.chunks(partial_len) {
            for o in 0..cout {
                for i in 0..cin {
                    for t in 0..kk {
                        grad_weight[(o * cin + i) * kk + t] += partial[(t * cin + i) * cout + o];
                    }
                }
            }
            for (gb, &p) in grad_bias.iter_mut().zip(&partial[k_len * cout..]) {
                *gb += p;
            }
        }
    }

    /// Stride 1: dx is a convolution of the padded dy with the flipped, transposed kernel.
    fn backward_input_full(&mut self, g: &ConvGeometry, weight: &[f32], dy: &Tensor, dx: &mut Tensor) {
        let (k, cin, cout, isa) = (g.kernel, g.in_c, g.out_c, self.isa());
        let plan = &mut self.dx_plan;
        pad_nhwc(&dy.data, g.batch, g.out_h(), g.out_w(), cout, k - 1, &mut plan.dy_padded);
        plan.weight_flipped.resize(weight.len(), 0.0);
        for kh in 0..k {
            for kw in 0..k {
                let source_tap = (k - 1 - kh) * k + (k - 1 - kw);
                for o in 0..cout {
                    for i in 0..cin {
                        plan.weight_flipped[((kh * k + kw) * cout + o) * cin + i] =
                            weight[(o * cin + i) * k * k + source_tap];
                    }
                }
            }
        }
        gemm_indexed(
            isa,
            IndexedA { data: &plan.dy_padded, row: &plan.rows, k_offsets: &plan.taps },
            IndexedB { data: &plan.weight_flipped, k_offsets: &plan.weight_rows, n: cin },
            &mut dx.data,
            cin,
            Epilogue::OVERWRITE,
        );
    }

    /// Any stride: the gradient of every window value, then added back where the value came from.
    fn backward_input_scatter(&mut self, g: &ConvGeometry, dy: &Tensor, dx: &mut Tensor) {
        let (k_len, cout) = (g.k_len(), g.out_c);
        let q = self.windows.len();
        let isa = self.isa();
        let plan = &mut self.dx_plan;
        plan.columns.resize(q * k_len, 0.0);
        gemm(
            isa,
            MatRef::row_major(&dy.data, q, cout),
            MatRef::row_major(&self.weight_hwio, k_len, cout).t(),
            &mut plan.columns,
            k_len,
            Epilogue::OVERWRITE,
        );
        plan.dx_padded.clear();
        plan.dx_padded.resize(g.batch * g.padded_h() * g.padded_w() * g.in_c, 0.0);
        for (window, column) in self.windows.iter().zip(plan.columns.chunks(k_len)) {
            for (tap, &v) in self.taps.iter().zip(column) {
                plan.dx_padded[window + tap] += v;
            }
        }
        unpad_nhwc(&plan.dx_padded, g.batch, g.in_h, g.in_w, g.in_c, g.pad, &mut dx.data);
    }
}

impl Layer for Conv2d {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let c = &self.config;
        // Checked: a model file may ask for any padding, and `input + 2 * padding` must not wrap.
        let padded = |n: usize| c.padding.checked_mul(2).and_then(|p| p.checked_add(n));
        let out = |n: usize| padded(n).filter(|&p| p >= c.kernel_size).map(|p| (p - c.kernel_size) / c.stride + 1);
        let (oh, ow) = match input {
            [h, w, ch] if *ch == c.in_channels && c.kernel_size > 0 && c.stride > 0 => (out(*h), out(*w)),
            _ => (None, None),
        };
        let (Some(oh), Some(ow)) = (oh, ow) else {
            let want = format!(
                "images with {} channels of at least {}x{} pixels after padding",
                c.in_channels, c.kernel_size, c.kernel_size
            );
            return Err(shape_error("Conv2d", &want, input));
        };
        Ok(vec![oh, ow, c.out_channels])
    }

    fn cost(&self, input: &[usize], output: &[usize]) -> LayerCost {
        let c = &self.config;
        let sat = |a: usize, b: usize| a.saturating_mul(b);
        let out_pixels = sat(output[0], output[1]);
        let k_len = sat(sat(c.kernel_size, c.kernel_size), c.in_channels);
        let padded = |n: usize| n.saturating_add(c.padding.saturating_mul(2));
        let x_padded = if c.padding == 0 { 0 } else { sat(sat(padded(input[0]), padded(input[1])), input[2]) };
        // Offset tables: one usize (two values) per output pixel, for windows and dy rows.
        let tables = sat(out_pixels, 4);
        let dx = if c.stride == 1 {
            let grown = |n: usize| n.saturating_add(2 * (c.kernel_size - 1));
            sat(sat(grown(output[0]), grown(output[1])), c.out_channels)
        } else {
            sat(out_pixels, k_len).saturating_add(x_padded)
        };
        LayerCost {
            macs: (out_pixels as u64).saturating_mul(c.out_channels as u64).saturating_mul(k_len as u64),
            scratch: x_padded.saturating_add(tables),
            backward_scratch: dx,
        }
    }

    fn bf16_products(&self, input: &[usize]) -> bool {
        self.bf16_channels() && input.len() == 3 && self.winograd_tile(input[0], input[1]) == Some(TileSize::F2)
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        let c = &self.config;
        let fan_in = c.in_channels * c.kernel_size * c.kernel_size;
        vec![
            ParamSpec {
                name: "weight",
                shape: vec![c.out_channels, c.in_channels, c.kernel_size, c.kernel_size],
                init: Init::FanIn(fan_in),
            },
            ParamSpec { name: "bias", shape: vec![c.out_channels], init: Init::FanIn(fan_in) },
        ]
    }

    fn forward(&mut self, params: &[f32], _state: &mut [f32], x: &Tensor, y: &mut Tensor, pass: Pass) {
        let g = self.prepare(x);
        let (weight, bias) = params.split_at(self.weight_len());
        y.reshape_for(&[g.batch, g.out_h(), g.out_w(), g.out_c]);
        if let Some(w) = &mut self.winograd {
            let bf16 = w.bf16;
            if pass.params_changed || w.u.is_empty() {
                w.plan.transform_weight(weight, &mut w.u, &mut w.scratch);
                if bf16 {
                    w.plan.pair_transformed(&w.u, false, &mut w.u_pairs);
                }
                w.ut_stale = true;
            }
            let u = if bf16 { Transformed::Bf16(&w.u_pairs) } else { Transformed::F32(&w.u) };
            w.plan.forward(&x.data, u, bias, self.relu, &mut y.data);
            return;
        }
        if pass.params_changed || self.weight_hwio.len() != weight.len() {
            self.refresh_weight_hwio(weight);
        }
        if g.pad > 0 {
            pad_nhwc(&x.data, g.batch, g.in_h, g.in_w, g.in_c, g.pad, &mut self.x_padded);
        }
        gemm_indexed(
            self.isa(),
            IndexedA { data: self.padded_input(x), row: &self.windows, k_offsets: &self.taps },
            IndexedB { data: &self.weight_hwio, k_offsets: &self.weight_rows, n: g.out_c },
            &mut y.data,
            g.out_c,
            Epilogue { bias: Some(bias), relu: self.relu, ..Epilogue::OVERWRITE },
        );
    }

    fn backward(
        &mut self,
        params: &[f32],
        grads: &mut [f32],
        x: &Tensor,
        y: &Tensor,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
    ) {
        let g = self.prepare(x);
        let weight_len = self.weight_len();
        if let Some(w) = &mut self.winograd {
            // The forward pass left U for these weights.
            let bf16 = w.bf16;
            if dx.is_some() && w.ut_stale {
                w.plan.transpose_transformed(&w.u, &mut w.ut);
                if bf16 {
                    w.plan.pair_transformed(&w.ut, true, &mut w.ut_pairs);
                }
                w.ut_stale = false;
            }
            let ut = if bf16 { Transformed::Bf16(&w.ut_pairs) } else { Transformed::F32(&w.ut) };
            w.grad_u.resize(w.u.len(), 0.0);
            let (grad_weight, grad_bias) = grads.split_at_mut(weight_len);
            let dx = dx.map(|dx| {
                dx.reshape_for(&x.shape);
                &mut dx.data[..]
            });
            // The transform of dy masks it where the fused ReLU's output is zero.
            let relu_output = self.relu.then_some(&y.data[..]);
            w.plan.backward(
                &x.data,
                &dy.data,
                relu_output,
                dx.is_some().then_some(ut),
                &mut w.partials,
                &mut w.grad_u,
                grad_bias,
                dx,
            );
            w.plan.weight_gradient(&w.grad_u, grad_weight);
            return;
        }
        if self.relu {
            relu::mask_gradient(&mut dy.data, &y.data);
        }
        // The forward pass left x_padded and weight_hwio for this x and these weights.
        self.backward_weight(&g, grads, x, dy);
        let Some(dx) = dx else { return };
        dx.reshape_for(&x.shape);
        if g.stride == 1 {
            self.backward_input_full(&g, &params[..self.weight_len()], dy, dx);
        } else {
            self.backward_input_scatter(&g, dy, dx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::conv2d_naive;
    use crate::nn::gradcheck::{check_layer, check_smooth_layer, test_values};

    #[test]
    fn forward_matches_naive_convolution() {
        let config = Conv2dConfig { in_channels: 3, out_channels: 17, kernel_size: 3, stride: 2, padding: 1 };
        for engine in EngineConfig::every_supported("Conv2d::forward_matches_naive_convolution") {
            let mut conv = Conv2d::new(config, engine);
            let params = test_values(17 * 3 * 9 + 17, 7);
            let x = Tensor::new(&[2, 9, 8, 3], test_values(2 * 9 * 8 * 3, 8));
            let mut y = Tensor::default();
            conv.forward(&params, &mut [], &x, &mut y, Pass::INFER);
            let g = conv.geometry.unwrap();
            let want = conv2d_naive(&g, &x.data, &params[..17 * 27], &params[17 * 27..]);
            assert_eq!(y.shape, vec![2, 5, 4, 17]);
            for (a, b) in y.data.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{engine}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences_stride_1() {
        let config = Conv2dConfig { in_channels: 2, out_channels: 3, kernel_size: 3, stride: 1, padding: 0 };
        for isa in Isa::tested("Conv2d::gradient_matches_finite_differences_stride_1") {
            let engine = EngineConfig { isa, ..EngineConfig::default() };
            check_layer(&mut Conv2d::new(config, engine), &[6, 5, 2], 3);
        }
    }

    #[test]
    fn gradient_matches_finite_differences_padded() {
        let config = Conv2dConfig { in_channels: 2, out_channels: 4, kernel_size: 3, stride: 1, padding: 1 };
        check_layer(&mut Conv2d::new(config, EngineConfig::default()), &[5, 4, 2], 4);
    }

    /// Every algorithm on every instruction set: 7x6 inputs give 5x4 outputs (F(4x4,3x3) when
    /// the algorithm picks), the padded 5x6 ones 5x6 (F(2x2,3x3)).
    #[test]
    fn gradient_matches_finite_differences_every_algorithm() {
        let config = Conv2dConfig { in_channels: 8, out_channels: 8, kernel_size: 3, stride: 1, padding: 0 };
        for engine in EngineConfig::every_supported("Conv2d::gradient_matches_finite_differences_every_algorithm") {
            for (config, shape) in [(config, [7, 6, 8]), (Conv2dConfig { padding: 1, ..config }, [5, 6, 8])] {
                let mut conv = Conv2d::new(config, engine);
                check_smooth_layer(&mut conv, &shape, 6);
                let want = match engine.conv {
                    ConvAlgorithm::Direct => None,
                    ConvAlgorithm::WinogradF2 => Some(TileSize::F2),
                    ConvAlgorithm::WinogradF4 => Some(TileSize::F4),
                    ConvAlgorithm::Auto => Some(if config.padding == 0 { TileSize::F4 } else { TileSize::F2 }),
                };
                assert_eq!(conv.winograd_tile(shape[0], shape[1]), want, "{engine}");
                assert_eq!(conv.winograd.is_some(), want.is_some(), "{engine}");
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences_strided() {
        let config = Conv2dConfig { in_channels: 3, out_channels: 2, kernel_size: 3, stride: 2, padding: 1 };
        check_layer(&mut Conv2d::new(config, EngineConfig::default()), &[7, 6, 3], 5);
    }

    /// A fused ReLU: forward equals conv then ReLU, backward equals ReLU's backward then conv's,
    /// on the direct and the Winograd path.
    #[test]
    fn fused_relu_equals_conv_then_relu() {
        let config = Conv2dConfig { in_channels: 8, out_channels: 9, kernel_size: 3, stride: 1, padding: 1 };
        let params = test_values(9 * 8 * 9 + 9, 21);
        let x = Tensor::new(&[2, 6, 5, 8], test_values(2 * 6 * 5 * 8, 22));
        for engine in EngineConfig::every_supported("Conv2d::fused_relu_equals_conv_then_relu") {
            let (mut plain, mut fused) =
                (Conv2d::new(config, engine), Conv2d::new(config, engine).with_fused_relu(true));
            let (mut y, mut y_fused, mut relu_y) = (Tensor::default(), Tensor::default(), Tensor::default());
            plain.forward(&params, &mut [], &x, &mut y, Pass::TRAIN);
            fused.forward(&params, &mut [], &x, &mut y_fused, Pass::TRAIN);
            super::super::Relu.forward(&[], &mut [], &y, &mut relu_y, Pass::TRAIN);
            assert_eq!(y_fused, relu_y, "{engine}");
            let dy = Tensor::new(&y.shape, test_values(y.data.len(), 23));
            let mut dy_through_relu = Tensor::default();
            super::super::Relu.backward(&[], &mut [], &y, &relu_y, &mut dy.clone(), Some(&mut dy_through_relu));
            let (mut grads, mut grads_fused) = (vec![0.0; params.len()], vec![0.0; params.len()]);
            let (mut dx, mut dx_fused) = (Tensor::default(), Tensor::default());
            plain.backward(&params, &mut grads, &x, &y, &mut dy_through_relu, Some(&mut dx));
            fused.backward(&params, &mut grads_fused, &x, &y_fused, &mut dy.clone(), Some(&mut dx_fused));
            for (a, b) in grads.iter().zip(&grads_fused).chain(dx.data.iter().zip(&dx_fused.data)) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{engine}: {a} vs {b}");
            }
        }
    }

    /// bf16 products against the direct f32 convolution on the same inputs: F(2x2) in bf16 where
    /// `Auto` picks it (64 channels) and where it is forced; everything within 1% of the largest
    /// value (the rounding of V and U, see the Winograd tests; measured: at most 0.5%), and the
    /// layer really ran bf16.
    #[test]
    fn bf16_matches_f32_within_its_rounding() {
        let engines = EngineConfig::every_bf16();
        if engines.is_empty() {
            crate::kernels::bf16::tests::available("Conv2d in bf16");
            return;
        }
        let cases = [(64, 64, ConvAlgorithm::Auto, 1), (8, 10, ConvAlgorithm::WinogradF2, 0)];
        for (cin, cout, conv, padding) in cases {
            let config = Conv2dConfig { in_channels: cin, out_channels: cout, kernel_size: 3, stride: 1, padding };
            let engine = EngineConfig { conv, ..engines[0] };
            let params = test_values(cout * cin * 9 + cout, 31);
            let x = Tensor::new(&[2, 7, 6, cin], test_values(2 * 7 * 6 * cin, 32));
            let run = |engine: EngineConfig| {
                // No fused ReLU: its mask would differ where bf16 moves an output across zero.
                let mut layer = Conv2d::new(config, engine);
                let mut y = Tensor::default();
                layer.forward(&params, &mut [], &x, &mut y, Pass::TRAIN);
                let mut dy = Tensor::new(&y.shape, test_values(y.data.len(), 33));
                let (mut grads, mut dx) = (vec![0.0; params.len()], Tensor::default());
                layer.backward(&params, &mut grads, &x, &y, &mut dy, Some(&mut dx));
                let ran_bf16 = layer.winograd.as_ref().is_some_and(|w| w.bf16);
                (y.data, grads, dx.data, ran_bf16)
            };
            let (want_y, want_grads, want_dx, _) =
                run(EngineConfig { precision: Precision::Fp32, conv: ConvAlgorithm::Direct, ..engine });
            let (y, grads, dx, ran_bf16) = run(engine);
            assert!(ran_bf16, "{engine}: {cin} -> {cout} channels did not run bf16");
            for (what, got, want) in [("y", &y, &want_y), ("grads", &grads, &want_grads), ("dx", &dx, &want_dx)] {
                let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                for (a, b) in got.iter().zip(want.iter()) {
                    assert!((a - b).abs() <= 0.01 * scale, "{engine} {cin}->{cout} {what}: {a} vs {b}");
                }
            }
        }
    }
}
