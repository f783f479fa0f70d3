//! Winograd convolution F(m x m, 3x3) for m = 2 or 4: 3x3 stride-1 convolutions over NHWC images
//! with fewer multiplications than the direct method (per output pixel 9 become 4 for m = 2,
//! 2.25 for m = 4).
//!
//! Each m x m block of output pixels (a *tile*) comes from the a x a input patch under it
//! (a = m + 2):
//!
//! ```text
//!   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        g: 3x3 kernel, d: a x a patch, Y: m x m outputs
//! ```
//!
//! Summed over channels, every one of the a² transformed positions ξ is one GEMM:
//! `M[ξ](tile, o) = Σ_i V[ξ](tile, i) · U[ξ](i, o)` with `V = Bᵀ d B` and `U = G g Gᵀ`.
//! The backward pass is that formula differentiated, not a second convolution, so the weight
//! and input gradients share one transform of dy:
//!
//! ```text
//!   dM = A dY Aᵀ                   (a x a per tile and output channel)
//!   dU[ξ] = V[ξ]ᵀ · dM[ξ]          summed over tiles;  dg = Gᵀ dU G
//!   dV[ξ] = dM[ξ] · U[ξ]ᵀ          dd = B dV Bᵀ, added into the (overlapping) input patches
//! ```
//!
//! Tiles are processed in bands of about 1024 / a² tiles so that a band's V, M and the
//! weights stay in the core's caches. Layouts: `U` is `[ξ][in][out]`, `Uᵀ` is `[ξ][out][in]`,
//! band buffers are `[ξ][tile][channel]`.
//!
//! With bf16 products (`kernels::bf16`) the transforms stay f32 and only the GEMMs' inputs are
//! rounded: a band's V and dM are converted once per band, paired along channels for the
//! forward and input-gradient GEMMs and across neighbouring tiles for the weight gradient,
//! whose sum runs over tiles; U and Uᵀ are paired along their rows once per weight update.
//!
//! The files: this one plans a convolution and runs its passes band by band; `algorithm.rs`
//! holds F(2x2,3x3) and F(4x4,3x3) (the matrices and their 1-D transforms); `transforms.rs` the
//! 2-D transforms of a band, written once over the SIMD layer's vector type
//! (`kernels::simd`); `tests.rs` compares everything with the direct convolution.

// Tile positions are indexed by number on purpose: fixed-length loops are what the compiler
// unrolls.
#![allow(clippy::needless_range_loop)]

mod algorithm;
#[cfg(test)]
mod tests;
mod transforms;

use super::bf16;
use super::conv::images_per_group;
use super::gemm::{Epilogue, IndexedA, IndexedB, gemm_indexed_serial};
use super::isa::Isa;
use algorithm::{Algorithm, F2, F4, kernel_gradient, transform_kernel};
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;
use transforms::{GradOutput, Output, grad_input_transform, grad_output_transform, input_transform, output_transform};

/// About how many transformed values (tiles x a²) a forward band holds: V and M of a band then
/// take ~0.25 MiB each at 64 channels, and one image has bands enough for two cores.
const BAND_POINTS: usize = 1024;
/// The same for the backward pass, which runs whole images per task: its weight-gradient GEMMs
/// sum over the band's tiles, and a short sum spends its time loading and storing the result.
const BACKWARD_BAND_POINTS: usize = 2048;

/// The output tile size m: 2 or 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileSize {
    F2,
    F4,
}

impl TileSize {
    pub fn m(self) -> usize {
        match self {
            TileSize::F2 => 2,
            TileSize::F4 => 4,
        }
    }
    fn a(self) -> usize {
        self.m() + 2
    }

    /// The tile with fewer multiplications per output pixel, counting those of tiles that stick
    /// out past the image (22 outputs are 11 tiles of 2 but 6 tiles of 4, two outputs wasted).
    pub fn best_for(out_h: usize, out_w: usize) -> TileSize {
        let cost = |t: TileSize| out_h.div_ceil(t.m()) * out_w.div_ceil(t.m()) * t.a() * t.a();
        if cost(TileSize::F4) < cost(TileSize::F2) { TileSize::F4 } else { TileSize::F2 }
    }
}

/// The shape of one 3x3 stride-1 convolution over a batch of NHWC images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WinogradGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_c: usize,
    /// Zeros on every side of the input.
    pub pad: usize,
}

impl WinogradGeometry {
    pub fn out_h(&self) -> usize {
        self.in_h + 2 * self.pad - 2
    }
    pub fn out_w(&self) -> usize {
        self.in_w + 2 * self.pad - 2
    }
    fn in_len(&self) -> usize {
        self.in_h * self.in_w * self.in_c
    }
    fn out_len(&self) -> usize {
        self.out_h() * self.out_w() * self.out_c
    }

    /// Where each value of tile (ty, tx)'s A x A input patch sits in its image (None: padding).
    /// (Loops rather than `array::from_fn`, whose closures were not inlined: a call per value.)
    #[inline(always)]
    fn patch<const M: usize, const A: usize>(&self, ty: usize, tx: usize) -> [[Option<usize>; A]; A] {
        let mut patch = [[None; A]; A];
        for r in 0..A {
            let Some(y) = (M * ty + r).checked_sub(self.pad).filter(|&y| y < self.in_h) else { continue };
            for c in 0..A {
                if let Some(x) = (M * tx + c).checked_sub(self.pad).filter(|&x| x < self.in_w) {
                    patch[r][c] = Some((y * self.in_w + x) * self.in_c);
                }
            }
        }
        patch
    }

    /// The output pixels of tile (ty, tx) as (row, column), None past the right or bottom edge.
    #[inline(always)]
    fn outputs<const M: usize>(&self, ty: usize, tx: usize) -> [[Option<(usize, usize)>; M]; M] {
        let mut outputs = [[None; M]; M];
        for i in 0..M {
            for j in 0..M {
                let (y, x) = (M * ty + i, M * tx + j);
                if y < self.out_h() && x < self.out_w() {
                    outputs[i][j] = Some((y, x));
                }
            }
        }
        outputs
    }
}

/// A transformed weight (U or Uᵀ) as the GEMMs read it: f32, or bf16 pairs from
/// [`WinogradPlan::pair_transformed`] for a plan with bf16 products.
#[derive(Clone, Copy, Debug)]
pub enum Transformed<'a> {
    F32(&'a [f32]),
    Bf16(&'a [u32]),
}

/// A convolution shape with its tile size, bands and the offset tables its GEMMs read through.
#[derive(Debug)]
pub struct WinogradPlan {
    geometry: WinogradGeometry,
    isa: Isa,
    /// The GEMMs take bf16 inputs (see the module docs).
    bf16: bool,
    tile: TileSize,
    /// Transformed positions per tile (a²).
    points: usize,
    /// Tiles per row and column of the output.
    tiles_w: usize,
    tiles_h: usize,
    /// How the forward and the backward pass cut an image into bands of tile rows.
    forward_bands: Bands,
    backward_bands: Bands,
    /// The offset tables of the f32 GEMMs, and of the bf16 ones (counting pairs of channels).
    tables: Tables,
    pairs: Tables,
}

/// Offset tables for a plan's GEMMs, in units of `in_units` per row of input channels and
/// `out_units` per row of output channels (the channels themselves, or bf16 pairs of them).
#[derive(Debug)]
struct Tables {
    /// `t * in_units` and `t * out_units` for each tile of the larger band.
    tiles_in: Vec<usize>,
    tiles_out: Vec<usize>,
    /// `0..in_units` and `0..out_units`.
    in_channels: Vec<usize>,
    out_channels: Vec<usize>,
    /// `i * out_c` for each row unit of U[ξ] (in x out), `o * in_c` for each of Uᵀ[ξ].
    rows_of_u: Vec<usize>,
    rows_of_ut: Vec<usize>,
}

impl Tables {
    /// A's row and channel offsets and W's row offsets for one of `band_products`' products.
    fn for_product(&self, product: Product) -> (&[usize], &[usize], &[usize]) {
        match product {
            Product::Forward => (&self.tiles_in, &self.in_channels, &self.rows_of_u),
            Product::InputGradient => (&self.tiles_out, &self.out_channels, &self.rows_of_ut),
        }
    }

    fn new(band_tiles: usize, g: &WinogradGeometry, in_units: usize, out_units: usize) -> Tables {
        Tables {
            tiles_in: (0..band_tiles).map(|t| t * in_units).collect(),
            tiles_out: (0..band_tiles).map(|t| t * out_units).collect(),
            in_channels: (0..in_units).collect(),
            out_channels: (0..out_units).collect(),
            rows_of_u: (0..in_units).map(|i| i * g.out_c).collect(),
            rows_of_ut: (0..out_units).map(|o| o * g.in_c).collect(),
        }
    }
}

impl WinogradPlan {
    /// A plan with a tile size (see [`TileSize::best_for`]) and instruction set (the portable path
    /// if this CPU lacks it), its GEMMs in f32 or, with `bf16_products`, on bf16 inputs (which
    /// needs a CPU with AVX512-BF16, and F(2x2)).
    ///
    /// F(4x4) is refused with bf16 products: its transforms amplify the rounding of V and U. On
    /// a 26x26x32 -> 64 convolution of inputs in [-1, 1) the largest error was 1.8 (8% of the
    /// largest output) against 0.098 for F(2x2) and 0.056 for the direct convolution on
    /// bf16-rounded inputs.
    pub fn new(geometry: WinogradGeometry, tile: TileSize, isa: Isa, bf16_products: bool) -> Self {
        assert!(!(bf16_products && tile == TileSize::F4), "F(4x4, 3x3) is too inaccurate with bf16 products");
        let g = geometry;
        assert!(g.in_h + 2 * g.pad >= 3 && g.in_w + 2 * g.pad >= 3, "image smaller than the kernel");
        let (m, points) = (tile.m(), tile.a() * tile.a());
        let (tiles_h, tiles_w) = (g.out_h().div_ceil(m), g.out_w().div_ceil(m));
        let forward_bands = Bands::new(tiles_h, tiles_w, BAND_POINTS / points);
        let backward_bands = Bands::new(tiles_h, tiles_w, BACKWARD_BAND_POINTS / points);
        let band_tiles = forward_bands.tiles.max(backward_bands.tiles);
        WinogradPlan {
            geometry,
            isa: if isa.is_supported() { isa } else { Isa::Portable },
            bf16: bf16_products,
            pairs: Tables::new(band_tiles, &g, bf16::pairs(g.in_c), bf16::pairs(g.out_c)),
            tile,
            points,
            tiles_w,
            tiles_h,
            forward_bands,
            backward_bands,
            tables: Tables::new(band_tiles, &g, g.in_c, g.out_c),
        }
    }

    /// Length of U, Uᵀ and their gradient.
    pub fn transformed_weight_len(&self) -> usize {
        self.points * self.geometry.in_c * self.geometry.out_c
    }

    /// `U[ξ][i][o] = (G g Gᵀ)[ξ]` for the PyTorch-layout (OIHW) 3x3 kernel. `scratch` holds the
    /// kernels transformed in OIHW order (one output channel per task) before they are laid out.
    pub fn transform_weight(&self, weight: &[f32], u: &mut Vec<f32>, scratch: &mut Vec<f32>) {
        let g = self.geometry;
        let (plane, points) = (g.in_c * g.out_c, self.points);
        assert_eq!(weight.len(), g.out_c * g.in_c * 9, "3x3 kernel size");
        scratch.resize(self.transformed_weight_len(), 0.0);
        scratch.par_chunks_mut(g.in_c * points).zip(weight.par_chunks(g.in_c * 9)).for_each(|(out, kernels)| {
            for (out, kernel) in out.chunks_mut(points).zip(kernels.chunks(9)) {
                match self.tile {
                    TileSize::F2 => transform_kernel::<F2, 2, 4>(kernel, out),
                    TileSize::F4 => transform_kernel::<F4, 4, 6>(kernel, out),
                }
            }
        });
        u.resize(self.transformed_weight_len(), 0.0);
        u.par_chunks_mut(plane).enumerate().for_each(|(xi, u)| {
            for i in 0..g.in_c {
                for o in 0..g.out_c {
                    u[i * g.out_c + o] = scratch[(o * g.in_c + i) * points + xi];
                }
            }
        });
    }

    /// Uᵀ from U: the `[in][out]` matrices transposed to `[out][in]`.
    pub fn transpose_transformed(&self, u: &[f32], ut: &mut Vec<f32>) {
        let (cin, cout) = (self.geometry.in_c, self.geometry.out_c);
        assert_eq!(u.len(), self.transformed_weight_len(), "transformed weight size");
        ut.resize(u.len(), 0.0);
        for (u, ut) in u.chunks(cin * cout).zip(ut.chunks_mut(cin * cout)) {
            for i in 0..cin {
                for o in 0..cout {
                    ut[o * cin + i] = u[i * cout + o];
                }
            }
        }
    }

    /// U (or, `transposed`, Uᵀ from [`WinogradPlan::transpose_transformed`]) with its rows
    /// paired in bf16, for the GEMMs of a plan with bf16 products.
    pub fn pair_transformed(&self, u: &[f32], transposed: bool, pairs: &mut Vec<u32>) {
        let (cin, cout) = (self.geometry.in_c, self.geometry.out_c);
        assert_eq!(u.len(), self.transformed_weight_len(), "transformed weight size");
        let (rows, cols) = if transposed { (cout, cin) } else { (cin, cout) };
        let plane = bf16::pairs(rows) * cols;
        pairs.resize(self.points * plane, 0);
        for (u, out) in u.chunks(cin * cout).zip(pairs.chunks_mut(plane)) {
            bf16::pair_rows(u, rows, cols, out);
        }
    }

    /// grad_weight (OIHW) += Gᵀ dU G, the kernel's gradient from the transformed one; one
    /// output channel per task.
    pub fn weight_gradient(&self, grad_u: &[f32], grad_weight: &mut [f32]) {
        let g = self.geometry;
        let (plane, points) = (g.in_c * g.out_c, self.points);
        assert_eq!(grad_u.len(), self.transformed_weight_len(), "transformed weight gradient size");
        assert_eq!(grad_weight.len(), g.out_c * g.in_c * 9, "3x3 kernel size");
        grad_weight.par_chunks_mut(g.in_c * 9).enumerate().for_each(|(o, grads)| {
            for (i, grad) in grads.chunks_mut(9).enumerate() {
                let mut transformed = [0.0f32; 36];
                for (xi, value) in transformed[..points].iter_mut().enumerate() {
                    *value = grad_u[xi * plane + i * g.out_c + o];
                }
                match self.tile {
                    TileSize::F2 => kernel_gradient::<F2, 2, 4>(&transformed[..points], grad),
                    TileSize::F4 => kernel_gradient::<F4, 4, 6>(&transformed[..points], grad),
                }
            }
        });
    }

    /// y = relu?(conv(x, g) + bias) with `u` from [`WinogradPlan::transform_weight`]; x and y
    /// are NHWC.
    pub fn forward(&self, x: &[f32], u: Transformed, bias: &[f32], relu: bool, y: &mut [f32]) {
        let g = self.geometry;
        assert_eq!(x.len(), g.batch * g.in_len(), "input size");
        assert_eq!(y.len(), g.batch * g.out_len(), "output size");
        self.check_transformed(u, false);
        assert_eq!(bias.len(), g.out_c, "bias size");
        match self.tile {
            TileSize::F2 => self.forward_with::<F2, 2, 4>(x, u, bias, relu, y),
            TileSize::F4 => self.forward_with::<F4, 4, 6>(x, u, bias, relu, y),
        }
    }

    /// Panics unless `u` has the plan's precision and U's (or Uᵀ's) size.
    fn check_transformed(&self, u: Transformed, transposed: bool) {
        let (rows, cols) = if transposed {
            (self.geometry.out_c, self.geometry.in_c)
        } else {
            (self.geometry.in_c, self.geometry.out_c)
        };
        match u {
            Transformed::F32(u) => {
                assert!(!self.bf16, "a bf16 plan reads paired weights");
                assert_eq!(u.len(), self.transformed_weight_len(), "transformed weight size");
            }
            Transformed::Bf16(u) => {
                assert!(self.bf16, "an f32 plan reads f32 weights");
                assert_eq!(u.len(), self.points * bf16::pairs(rows) * cols, "paired transformed weight size");
            }
        }
    }

    fn forward_with<T: Algorithm<M, A>, const M: usize, const A: usize>(
        &self,
        x: &[f32],
        u: Transformed,
        bias: &[f32],
        relu: bool,
        y: &mut [f32],
    ) {
        let g = self.geometry;
        let bands = self.forward_bands;
        let (cin, cout, stride) = (g.in_c, g.out_c, bands.tiles);
        let band_len = M * bands.rows * g.out_w() * cout;
        // Bands write disjoint rows of the output, so images and their bands run in parallel.
        y.par_chunks_mut(g.out_len()).zip(x.par_chunks(g.in_len())).for_each(|(y_image, x_image)| {
            y_image.par_chunks_mut(band_len).enumerate().for_each(|(band, y_band)| {
                with_scratch(|s| {
                    let rows = bands.range(band, self.tiles_h);
                    let tiles = rows.len() * self.tiles_w;
                    s.v.resize(self.points * stride * cin, 0.0);
                    s.m.resize(self.points * stride * cout, 0.0);
                    input_transform::<T, M, A>(self.isa, &g, x_image, rows.clone(), stride, &mut s.v);
                    self.band_products(Product::Forward, &s.v, u, &mut s.m, &mut s.pairs_a, stride, tiles);
                    let out = Output { bias, relu, y: y_band };
                    output_transform::<T, M, A>(self.isa, &g, &s.m, rows, stride, out);
                })
            });
        });
    }

    /// The gradients of [`WinogradPlan::forward`] given dy. With `relu_output` (the y of a
    /// forward pass with ReLU) dy counts only where y > 0, so the ReLU's backward costs no pass.
    ///
    /// Writes dLoss/dU into `grad_u` (`[ξ][in][out]`, turn it into the kernel's gradient with
    /// [`WinogradPlan::weight_gradient`]) and adds the bias gradient into `grad_bias`; with `ut`
    /// (from [`WinogradPlan::transpose_transformed`]) also writes dx. The weight gradient is
    /// summed per group of images (a parallel task each) into its own part of `partials`, and
    /// the parts are added in order: the groups depend on the batch size only, so results do
    /// not depend on threads.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[f32],
        dy: &[f32],
        relu_output: Option<&[f32]>,
        ut: Option<Transformed>,
        partials: &mut Vec<f32>,
        grad_u: &mut [f32],
        grad_bias: &mut [f32],
        dx: Option<&mut [f32]>,
    ) {
        let g = self.geometry;
        let u_len = self.transformed_weight_len();
        assert_eq!(x.len(), g.batch * g.in_len(), "input size");
        assert_eq!(dy.len(), g.batch * g.out_len(), "output gradient size");
        assert!(relu_output.is_none_or(|y| y.len() == dy.len()), "output size");
        assert_eq!(grad_u.len(), u_len, "transformed weight gradient size");
        assert_eq!(grad_bias.len(), g.out_c, "bias gradient size");
        let part_len = u_len + g.out_c;
        let images_per_task = images_per_group(g.batch);
        let tasks = g.batch.div_ceil(images_per_task);
        partials.resize(tasks * part_len, 0.0);
        let task = |(task, (part, dx_part)): (usize, (&mut [f32], Option<&mut [f32]>))| {
            let first = task * images_per_task;
            let images = first..(first + images_per_task).min(g.batch);
            let inputs = BackwardInputs { x, dy, relu_output, ut };
            match self.tile {
                TileSize::F2 => self.backward_images::<F2, 2, 4>(inputs, images, part, dx_part),
                TileSize::F4 => self.backward_images::<F4, 4, 6>(inputs, images, part, dx_part),
            }
        };
        match dx {
            Some(dx) => {
                assert_eq!(dx.len(), x.len(), "input gradient size");
                let ut = ut.expect("the input gradient needs the transposed transformed weight");
                self.check_transformed(ut, true);
                let dx_parts = dx.par_chunks_mut(images_per_task * g.in_len()).map(Some);
                partials.par_chunks_mut(part_len).zip(dx_parts).enumerate().for_each(task);
            }
            None => {
                partials.par_chunks_mut(part_len).map(|part| (part, None)).enumerate().for_each(task);
            }
        }
        // The parts are added in task order for every value, in parallel over the values.
        let parts = &*partials;
        grad_u.par_chunks_mut(1 << 12).enumerate().for_each(|(chunk, sum)| {
            let start = chunk << 12;
            sum.copy_from_slice(&parts[start..start + sum.len()]);
            for part in parts.chunks(part_len).skip(1) {
                add_into(sum, &part[start..start + sum.len()]);
            }
        });
        for part in parts.chunks(part_len) {
            add_into(grad_bias, &part[u_len..]);
        }
    }

    /// One task of [`WinogradPlan::backward`]: `images` summed into `part` (dU then dbias).
    fn backward_images<T: Algorithm<M, A>, const M: usize, const A: usize>(
        &self,
        inputs: BackwardInputs,
        images: Range<usize>,
        part: &mut [f32],
        mut dx: Option<&mut [f32]>,
    ) {
        let g = self.geometry;
        let bands = self.backward_bands;
        let (cin, cout, stride) = (g.in_c, g.out_c, bands.tiles);
        if let Some(dx) = dx.as_deref_mut() {
            dx.fill(0.0);
        }
        let (grad_u, grad_bias) = part.split_at_mut(self.points * cin * cout);
        grad_bias.fill(0.0);
        // The first band's GEMMs overwrite the task's dU, the later ones add to it.
        let mut first_band = true;
        with_scratch(|s| {
            s.v.resize(self.points * stride * cin, 0.0);
            s.m.resize(self.points * stride * cout, 0.0);
            for (n, image) in images.enumerate() {
                let x_image = image_of(inputs.x, image, g.in_len());
                let dy = GradOutput {
                    dy: image_of(inputs.dy, image, g.out_len()),
                    relu_output: inputs.relu_output.map(|y| image_of(y, image, g.out_len())),
                };
                for band in 0..bands.count(self.tiles_h) {
                    let rows = bands.range(band, self.tiles_h);
                    let tiles = rows.len() * self.tiles_w;
                    input_transform::<T, M, A>(self.isa, &g, x_image, rows.clone(), stride, &mut s.v);
                    grad_output_transform::<T, M, A>(self.isa, &g, dy, rows.clone(), stride, &mut s.m, grad_bias);
                    let epilogue = if first_band { Epilogue::OVERWRITE } else { Epilogue::ACCUMULATE };
                    self.weight_gemms(s, grad_u, stride, tiles, epilogue);
                    first_band = false;
                    let (Some(ut), Some(dx)) = (inputs.ut, dx.as_deref_mut()) else { continue };
                    // dV overwrites V, which this band no longer needs.
                    self.band_products(Product::InputGradient, &s.m, ut, &mut s.v, &mut s.pairs_a, stride, tiles);
                    let dx_image = &mut dx[n * g.in_len()..(n + 1) * g.in_len()];
                    grad_input_transform::<T, M, A>(self.isa, &g, &s.v, rows, stride, dx_image);
                }
            }
        });
    }
}

impl WinogradPlan {
    /// C[ξ] = A[ξ] · W[ξ] for each position ξ of a band of `tiles` tiles, `stride` tiles apart
    /// per ξ: the forward products (A = V, W = U, C = M) or the input gradient's (A = dM,
    /// W = Uᵀ, C = dV). In bf16, A's rows are converted into `pairs` first.
    #[allow(clippy::too_many_arguments)]
    fn band_products(
        &self,
        product: Product,
        a: &[f32],
        w: Transformed,
        c: &mut [f32],
        pairs: &mut Vec<u32>,
        stride: usize,
        tiles: usize,
    ) {
        let g = self.geometry;
        // Reduction length k and output width n.
        let (k, n) = match product {
            Product::Forward => (g.in_c, g.out_c),
            Product::InputGradient => (g.out_c, g.in_c),
        };
        for xi in 0..self.points {
            let a = &a[xi * stride * k..(xi * stride + tiles) * k];
            let c = &mut c[xi * stride * n..];
            match w {
                Transformed::F32(w) => {
                    let (rows, channels, w_rows) = self.tables.for_product(product);
                    gemm_indexed_serial(
                        self.isa,
                        IndexedA { data: a, row: &rows[..tiles], k_offsets: channels },
                        IndexedB { data: &w[xi * k * n..], k_offsets: w_rows, n },
                        c,
                        n,
                        Epilogue::OVERWRITE,
                    )
                }
                Transformed::Bf16(w) => {
                    pairs.resize(tiles * bf16::pairs(k), 0);
                    bf16::to_bf16_rows(a, k, pairs);
                    let (rows, channels, w_rows) = self.pairs.for_product(product);
                    bf16::gemm_indexed_serial(
                        IndexedA { data: pairs, row: &rows[..tiles], k_offsets: channels },
                        IndexedB { data: &w[xi * bf16::pairs(k) * n..], k_offsets: w_rows, n },
                        c,
                        n,
                        Epilogue::OVERWRITE,
                    )
                }
            }
        }
    }

    /// dU[ξ] (in x out) (+)= V[ξ]ᵀ · dM[ξ] for each position ξ, the sum running over the band's
    /// tiles (in bf16: over pairs of neighbouring tiles).
    fn weight_gemms(&self, s: &mut Scratch, grad_u: &mut [f32], stride: usize, tiles: usize, epilogue: Epilogue) {
        let (cin, cout) = (self.geometry.in_c, self.geometry.out_c);
        for xi in 0..self.points {
            let grad = &mut grad_u[xi * cin * cout..];
            let (v, dm) = (&s.v[xi * stride * cin..], &s.m[xi * stride * cout..]);
            if !self.bf16 {
                gemm_indexed_serial(
                    self.isa,
                    IndexedA { data: v, row: &self.tables.in_channels, k_offsets: &self.tables.tiles_in[..tiles] },
                    IndexedB { data: dm, k_offsets: &self.tables.tiles_out[..tiles], n: cout },
                    grad,
                    cout,
                    epilogue,
                );
                continue;
            }
            let tile_pairs = bf16::pairs(tiles);
            s.pairs_a.resize(tile_pairs * cin, 0);
            s.pairs_b.resize(tile_pairs * cout, 0);
            for p in 0..tile_pairs {
                let (t0, t1) = (2 * p, (2 * p + 1 < tiles).then_some(2 * p + 1));
                let (va, vb) = (row_of(v, t0, cin), t1.map(|t| row_of(v, t, cin)));
                bf16::interleave_rows(va, vb, &mut s.pairs_a[p * cin..(p + 1) * cin]);
                let (ma, mb) = (row_of(dm, t0, cout), t1.map(|t| row_of(dm, t, cout)));
                bf16::interleave_rows(ma, mb, &mut s.pairs_b[p * cout..(p + 1) * cout]);
            }
            bf16::gemm_indexed_serial(
                IndexedA {
                    data: &s.pairs_a,
                    row: &self.tables.in_channels,
                    k_offsets: &self.tables.tiles_in[..tile_pairs],
                },
                IndexedB { data: &s.pairs_b, k_offsets: &self.tables.tiles_out[..tile_pairs], n: cout },
                grad,
                cout,
                epilogue,
            );
        }
    }
}

/// Which of the band's two products with a transformed weight `band_products` computes.
#[derive(Clone, Copy)]
enum Product {
    Forward,
    InputGradient,
}

/// Row `t` of rows of `len` values.
fn row_of(data: &[f32], t: usize, len: usize) -> &[f32] {
    &data[t * len..(t + 1) * len]
}

/// Image `image` of a batch of images of `len` values each.
fn image_of(data: &[f32], image: usize, len: usize) -> &[f32] {
    &data[image * len..(image + 1) * len]
}

/// A cut of an image's tile rows into bands of nearly equal height (so that one image's bands
/// even out between cores).
#[derive(Clone, Copy, Debug)]
struct Bands {
    /// Tile rows per band, and the most tiles a band holds (the stride between ξ blocks).
    rows: usize,
    tiles: usize,
}

impl Bands {
    fn new(tiles_h: usize, tiles_w: usize, target_tiles: usize) -> Bands {
        let bands = tiles_h.div_ceil(target_tiles.div_ceil(tiles_w).max(1));
        let rows = tiles_h.div_ceil(bands);
        Bands { rows, tiles: rows * tiles_w }
    }

    fn count(&self, tiles_h: usize) -> usize {
        tiles_h.div_ceil(self.rows)
    }

    fn range(&self, band: usize, tiles_h: usize) -> Range<usize> {
        let start = band * self.rows;
        start..(start + self.rows).min(tiles_h)
    }
}

/// What the backward pass reads: the forward input, dy, the fused ReLU's output, Uᵀ.
#[derive(Clone, Copy)]
struct BackwardInputs<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    relu_output: Option<&'a [f32]>,
    ut: Option<Transformed<'a>>,
}

fn add_into(sum: &mut [f32], values: &[f32]) {
    for (s, &v) in sum.iter_mut().zip(values) {
        *s += v;
    }
}

/// Per-thread band buffers, kept between calls so that steady-state training allocates nothing.
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    /// A GEMM's operands in bf16 pairs (bf16 plans only).
    pairs_a: Vec<u32>,
    pairs_b: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch, taken out of its cell so that a nested call on the same
/// thread (rayon may steal work while waiting) gets a fresh one instead of a borrow panic.
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut scratch = SCRATCH.with(|cell| cell.take());
    let result = f(&mut scratch);
    SCRATCH.with(|cell| cell.replace(scratch));
    result
}
