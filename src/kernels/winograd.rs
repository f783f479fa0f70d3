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
//! weights stay in the core's caches. The 2-D transforms are written once, generic over the
//! algorithm's 1-D transforms and over a small vector type (AVX-512, AVX2, portable, a scalar
//! for leftover channels). Layouts: `U` is `[ξ][in][out]`, `Uᵀ` is `[ξ][out][in]`, band buffers
//! are `[ξ][tile][channel]`.

// The transforms index tile positions by number on purpose: fixed-length loops are what the
// compiler unrolls.
#![allow(clippy::needless_range_loop)]

use super::conv::images_per_group;
use super::gemm::{Epilogue, IndexedA, IndexedB, gemm_indexed_serial_with};
use super::isa::{self, Isa};
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// About how many transformed values (tiles x a²) a forward band holds: V and M of a band then
/// take ~0.25 MiB each at 64 channels, and one image has bands enough for two cores.
const BAND_POINTS: usize = 1024;
/// The same for the backward pass, which runs whole images per task: its weight-gradient GEMMs
/// sum over the band's tiles, and a short sum spends its time loading and storing the result.
const BACKWARD_BAND_POINTS: usize = 2048;

/// One Winograd algorithm F(M x M, 3x3) with patches of A = M + 2: the kernel transform G
/// and the four one-dimensional transforms, written out so that multiplications by 0 and ±1
/// never happen. Each 2-D transform applies one of them to every column, then to every row.
trait Algorithm<const M: usize, const A: usize> {
    /// G (A x 3), the kernel transform.
    const G: [[f32; 3]; A];
    /// Bᵀ d, the input transform.
    fn input<V: Lanes>(d: [V; A]) -> [V; A];
    /// Aᵀ m, the output transform.
    fn output<V: Lanes>(m: [V; A]) -> [V; M];
    /// A e, the output transform's transpose (backward).
    fn grad_output<V: Lanes>(e: [V; M]) -> [V; A];
    /// B e, the input transform's transpose (backward).
    fn grad_input<V: Lanes>(e: [V; A]) -> [V; A];
}

/// F(2x2, 3x3): Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], Aᵀ = [1 1 1 0; 0 1 -1 -1].
struct F2;

impl Algorithm<2, 4> for F2 {
    const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

    #[inline(always)]
    fn input<V: Lanes>([d0, d1, d2, d3]: [V; 4]) -> [V; 4] {
        [d0.sub(d2), d1.add(d2), d2.sub(d1), d1.sub(d3)]
    }
    #[inline(always)]
    fn output<V: Lanes>([m0, m1, m2, m3]: [V; 4]) -> [V; 2] {
        [m0.add(m1).add(m2), m1.sub(m2).sub(m3)]
    }
    #[inline(always)]
    fn grad_output<V: Lanes>([e0, e1]: [V; 2]) -> [V; 4] {
        [e0, e0.add(e1), e0.sub(e1), e1.neg()]
    }
    #[inline(always)]
    fn grad_input<V: Lanes>([e0, e1, e2, e3]: [V; 4]) -> [V; 4] {
        [e0, e1.sub(e2).add(e3), e1.add(e2).sub(e0), e3.neg()]
    }
}

/// F(4x4, 3x3) with the points 0, ±1, ±2 and ∞ (Lavin and Gray, 2016):
///
/// ```text
///        [4  0 -5  0  1  0]
///        [0 -4 -4  1  1  0]        [1  1  1  1  1  0]
///   Bᵀ = [0  4 -4 -1  1  0]   Aᵀ = [0  1 -1  2 -2  0]
///        [0 -2 -1  2  1  0]        [0  1  1  4  4  0]
///        [0  2 -1 -2  1  0]        [0  1 -1  8 -8  1]
///        [0  4  0 -5  0  1]
/// ```
struct F4;

impl Algorithm<4, 6> for F4 {
    const G: [[f32; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input<V: Lanes>([d0, d1, d2, d3, d4, d5]: [V; 6]) -> [V; 6] {
        let (a, b) = (d4.sub(d2.scale(4.0)), d3.sub(d1.scale(4.0)));
        let (c, e) = (d4.sub(d2), d3.sub(d1).scale(2.0));
        [
            d0.scale(4.0).sub(d2.scale(5.0)).add(d4),
            a.add(b),
            a.sub(b),
            c.add(e),
            c.sub(e),
            d1.scale(4.0).sub(d3.scale(5.0)).add(d5),
        ]
    }
    #[inline(always)]
    fn output<V: Lanes>([m0, m1, m2, m3, m4, m5]: [V; 6]) -> [V; 4] {
        let (s12, d12, s34, d34) = (m1.add(m2), m1.sub(m2), m3.add(m4), m3.sub(m4));
        [m0.add(s12).add(s34), d12.add(d34.scale(2.0)), s12.add(s34.scale(4.0)), d12.add(d34.scale(8.0)).add(m5)]
    }
    #[inline(always)]
    fn grad_output<V: Lanes>([e0, e1, e2, e3]: [V; 4]) -> [V; 6] {
        let (s02, s13) = (e0.add(e2), e1.add(e3));
        let (p, q) = (e0.add(e2.scale(4.0)), e1.scale(2.0).add(e3.scale(8.0)));
        [e0, s02.add(s13), s02.sub(s13), p.add(q), p.sub(q), e3]
    }
    #[inline(always)]
    fn grad_input<V: Lanes>([e0, e1, e2, e3, e4, e5]: [V; 6]) -> [V; 6] {
        // The columns of Bᵀ.
        let (d12, d34) = (e2.sub(e1), e4.sub(e3));
        let (s12, s34) = (e1.add(e2), e3.add(e4));
        [
            e0.scale(4.0),
            d12.scale(4.0).add(d34.scale(2.0)).add(e5.scale(4.0)),
            e0.scale(-5.0).sub(s12.scale(4.0)).sub(s34),
            d34.scale(-2.0).sub(d12).sub(e5.scale(5.0)),
            e0.add(s12).add(s34),
            e5,
        ]
    }
}

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

/// A convolution shape with its tile size, bands and the offset tables its GEMMs read through.
#[derive(Debug)]
pub struct WinogradPlan {
    geometry: WinogradGeometry,
    isa: Isa,
    tile: TileSize,
    /// Transformed positions per tile (a²).
    points: usize,
    /// Tiles per row and column of the output.
    tiles_w: usize,
    tiles_h: usize,
    /// How the forward and the backward pass cut an image into bands of tile rows.
    forward_bands: Bands,
    backward_bands: Bands,
    /// `t * in_c` and `t * out_c` for each tile of the larger band.
    tiles_in: Vec<usize>,
    tiles_out: Vec<usize>,
    /// `0..in_c` and `0..out_c`.
    in_channels: Vec<usize>,
    out_channels: Vec<usize>,
    /// `i * out_c` (rows of U[ξ]) and `o * in_c` (rows of Uᵀ[ξ]).
    rows_of_u: Vec<usize>,
    rows_of_ut: Vec<usize>,
}

impl WinogradPlan {
    /// The plan with the tile size that needs the fewest multiplications, on the best ISA.
    pub fn new(geometry: WinogradGeometry) -> Self {
        Self::with(geometry, TileSize::best_for(geometry.out_h(), geometry.out_w()), isa::active())
    }

    /// A plan with a chosen tile size and instruction set (the tests run every combination).
    pub fn with(geometry: WinogradGeometry, tile: TileSize, isa: Isa) -> Self {
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
            tile,
            points,
            tiles_w,
            tiles_h,
            forward_bands,
            backward_bands,
            tiles_in: (0..band_tiles).map(|t| t * g.in_c).collect(),
            tiles_out: (0..band_tiles).map(|t| t * g.out_c).collect(),
            in_channels: (0..g.in_c).collect(),
            out_channels: (0..g.out_c).collect(),
            rows_of_u: (0..g.in_c).map(|i| i * g.out_c).collect(),
            rows_of_ut: (0..g.out_c).map(|o| o * g.in_c).collect(),
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
    pub fn forward(&self, x: &[f32], u: &[f32], bias: &[f32], relu: bool, y: &mut [f32]) {
        let g = self.geometry;
        assert_eq!(x.len(), g.batch * g.in_len(), "input size");
        assert_eq!(y.len(), g.batch * g.out_len(), "output size");
        assert_eq!(u.len(), self.transformed_weight_len(), "transformed weight size");
        assert_eq!(bias.len(), g.out_c, "bias size");
        match self.tile {
            TileSize::F2 => self.forward_with::<F2, 2, 4>(x, u, bias, relu, y),
            TileSize::F4 => self.forward_with::<F4, 4, 6>(x, u, bias, relu, y),
        }
    }

    fn forward_with<T: Algorithm<M, A>, const M: usize, const A: usize>(
        &self,
        x: &[f32],
        u: &[f32],
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
                    for xi in 0..self.points {
                        gemm_indexed_serial_with(
                            self.isa,
                            IndexedA {
                                data: &s.v[xi * stride * cin..],
                                row: &self.tiles_in[..tiles],
                                k_offsets: &self.in_channels,
                            },
                            IndexedB { data: &u[xi * cin * cout..], k_offsets: &self.rows_of_u, n: cout },
                            &mut s.m[xi * stride * cout..],
                            cout,
                            Epilogue::OVERWRITE,
                        );
                    }
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
        ut: Option<&[f32]>,
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
                assert_eq!(ut.len(), u_len, "transposed transformed weight size");
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
                    for xi in 0..self.points {
                        // dU[ξ] (in x out) += V[ξ]ᵀ · dM[ξ], the reduction running over tiles.
                        gemm_indexed_serial_with(
                            self.isa,
                            IndexedA {
                                data: &s.v[xi * stride * cin..],
                                row: &self.in_channels,
                                k_offsets: &self.tiles_in[..tiles],
                            },
                            IndexedB { data: &s.m[xi * stride * cout..], k_offsets: &self.tiles_out[..tiles], n: cout },
                            &mut grad_u[xi * cin * cout..],
                            cout,
                            if first_band { Epilogue::OVERWRITE } else { Epilogue::ACCUMULATE },
                        );
                    }
                    first_band = false;
                    let (Some(ut), Some(dx)) = (inputs.ut, dx.as_deref_mut()) else { continue };
                    // dV overwrites V, which this band no longer needs.
                    for xi in 0..self.points {
                        gemm_indexed_serial_with(
                            self.isa,
                            IndexedA {
                                data: &s.m[xi * stride * cout..],
                                row: &self.tiles_out[..tiles],
                                k_offsets: &self.out_channels,
                            },
                            IndexedB { data: &ut[xi * cout * cin..], k_offsets: &self.rows_of_ut, n: cin },
                            &mut s.v[xi * stride * cin..],
                            cin,
                            Epilogue::OVERWRITE,
                        );
                    }
                    let dx_image = &mut dx[n * g.in_len()..(n + 1) * g.in_len()];
                    grad_input_transform::<T, M, A>(self.isa, &g, &s.v, rows, stride, dx_image);
                }
            }
        });
    }
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
    ut: Option<&'a [f32]>,
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

/// (G g Gᵀ) for one 3x3 kernel g, into `out` [ξ].
fn transform_kernel<T: Algorithm<M, A>, const M: usize, const A: usize>(g: &[f32], out: &mut [f32]) {
    // G g (A x 3), then (G g) Gᵀ (A x A).
    let mut gg = [[0.0f32; 3]; A];
    for a in 0..A {
        for c in 0..3 {
            gg[a][c] = T::G[a][0] * g[c] + T::G[a][1] * g[3 + c] + T::G[a][2] * g[6 + c];
        }
    }
    for a in 0..A {
        for b in 0..A {
            out[a * A + b] = gg[a][0] * T::G[b][0] + gg[a][1] * T::G[b][1] + gg[a][2] * T::G[b][2];
        }
    }
}

/// grad += Gᵀ dU G for one kernel, dU given as [ξ].
fn kernel_gradient<T: Algorithm<M, A>, const M: usize, const A: usize>(grad_u: &[f32], grad: &mut [f32]) {
    // Gᵀ dU (3 x A), then (Gᵀ dU) G (3x3).
    let mut t = [[0.0f32; A]; 3];
    for r in 0..3 {
        for b in 0..A {
            t[r][b] = (0..A).map(|a| T::G[a][r] * grad_u[a * A + b]).sum();
        }
    }
    for r in 0..3 {
        for c in 0..3 {
            grad[r * 3 + c] += (0..A).map(|b| t[r][b] * T::G[b][c]).sum::<f32>();
        }
    }
}

/// The few vector operations the transforms need, on `LANES` channels at once. Implemented for
/// AVX-512 and AVX2 registers, for a plain array (the portable path) and for a single `f32`
/// (the channels left over when a count is not a whole number of vectors).
trait Lanes: Copy {
    const LANES: usize;
    /// # Safety
    /// `LANES` values must be readable at `p`, and the CPU must have the instruction set.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `LANES` values must be writable at `p`, and the CPU must have the instruction set.
    unsafe fn store(self, p: *mut f32);
    fn zero() -> Self;
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn scale(self, factor: f32) -> Self;
    fn neg(self) -> Self {
        Self::zero().sub(self)
    }
    fn relu(self) -> Self;
    /// Self where `y` > 0, zero elsewhere: the ReLU's backward.
    fn where_positive(self, y: Self) -> Self;
}

impl Lanes for f32 {
    const LANES: usize = 1;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { *p = self }
    }
    #[inline(always)]
    fn zero() -> Self {
        0.0
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self + other
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        self - other
    }
    #[inline(always)]
    fn scale(self, factor: f32) -> Self {
        self * factor
    }
    #[inline(always)]
    fn relu(self) -> Self {
        self.max(0.0)
    }
    #[inline(always)]
    fn where_positive(self, y: Self) -> Self {
        if y > 0.0 { self } else { 0.0 }
    }
}

/// The portable path: eight lanes in plain Rust, which compilers vectorise for any target.
#[derive(Clone, Copy)]
struct Portable([f32; 8]);

impl Lanes for Portable {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Portable(unsafe { std::ptr::read_unaligned(p as *const [f32; 8]) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 8], self.0) }
    }
    #[inline(always)]
    fn zero() -> Self {
        Portable([0.0; 8])
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] + other.0[l]))
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] - other.0[l]))
    }
    #[inline(always)]
    fn scale(self, factor: f32) -> Self {
        Portable(self.0.map(|v| v * factor))
    }
    #[inline(always)]
    fn relu(self) -> Self {
        Portable(self.0.map(|v| v.max(0.0)))
    }
    #[inline(always)]
    fn where_positive(self, y: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l].where_positive(y.0[l])))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    // SAFETY (every block below): these run only inside functions compiled for, and called on,
    // a CPU with the instruction set (see `multiversion!`).
    impl Lanes for __m512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self) }
        }
        #[inline(always)]
        fn zero() -> Self {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            unsafe { _mm512_add_ps(self, other) }
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            unsafe { _mm512_sub_ps(self, other) }
        }
        #[inline(always)]
        fn scale(self, factor: f32) -> Self {
            unsafe { _mm512_mul_ps(self, _mm512_set1_ps(factor)) }
        }
        #[inline(always)]
        fn relu(self) -> Self {
            unsafe { _mm512_max_ps(self, _mm512_setzero_ps()) }
        }
        #[inline(always)]
        fn where_positive(self, y: Self) -> Self {
            unsafe { _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, _mm512_setzero_ps()), self) }
        }
    }

    impl Lanes for __m256 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self) }
        }
        #[inline(always)]
        fn zero() -> Self {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            unsafe { _mm256_add_ps(self, other) }
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            unsafe { _mm256_sub_ps(self, other) }
        }
        #[inline(always)]
        fn scale(self, factor: f32) -> Self {
            unsafe { _mm256_mul_ps(self, _mm256_set1_ps(factor)) }
        }
        #[inline(always)]
        fn relu(self) -> Self {
            unsafe { _mm256_max_ps(self, _mm256_setzero_ps()) }
        }
        #[inline(always)]
        fn where_positive(self, y: Self) -> Self {
            unsafe { _mm256_and_ps(self, _mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_setzero_ps())) }
        }
    }
}

/// Compiles a transform for AVX-512, AVX2 and plain Rust, and calls the one the plan chose.
macro_rules! multiversion {
    ($name:ident => $generic:ident($($arg:ident: $ty:ty),*)) => {
        fn $name<T: Algorithm<M, A>, const M: usize, const A: usize>(isa: Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::x86_64::{__m256, __m512};
                #[target_feature(enable = "avx512f")]
                fn avx512<T: Algorithm<M, A>, const M: usize, const A: usize>($($arg: $ty),*) {
                    $generic::<__m512, T, M, A>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<T: Algorithm<M, A>, const M: usize, const A: usize>($($arg: $ty),*) {
                    $generic::<__m256, T, M, A>($($arg),*)
                }
                match isa {
                    // SAFETY: plans hold only an instruction set this CPU supports.
                    Isa::Avx512 => return unsafe { avx512::<T, M, A>($($arg),*) },
                    Isa::Avx2 => return unsafe { avx2::<T, M, A>($($arg),*) },
                    Isa::Portable => {}
                }
            }
            let _ = isa;
            $generic::<Portable, T, M, A>($($arg),*)
        }
    };
}

multiversion!(input_transform => input_transform_with(
    g: &WinogradGeometry, x: &[f32], rows: Range<usize>, stride: usize, v: &mut [f32]));
multiversion!(output_transform => output_transform_with(
    g: &WinogradGeometry, m: &[f32], rows: Range<usize>, stride: usize, out: Output));
multiversion!(grad_output_transform => grad_output_transform_with(
    g: &WinogradGeometry, dy: GradOutput, rows: Range<usize>, stride: usize, dm: &mut [f32], grad_bias: &mut [f32]));
multiversion!(grad_input_transform => grad_input_transform_with(
    g: &WinogradGeometry, dv: &[f32], rows: Range<usize>, stride: usize, dx: &mut [f32]));

/// `f` (a 1-D transform from N_IN to N_OUT vectors) applied to every column of an
/// N_IN x N_IN block of vectors, then to every row of the result. A macro, not a function
/// taking `f`: a call through a function parameter may not be inlined into the vector-ISA
/// functions, and then neither are the vector operations in it (nor in `array::from_fn`
/// closures, hence the loops).
macro_rules! separable {
    ($x:expr, $f:path, $n_in:expr, $n_out:expr) => {{
        let x = $x;
        let mut t = [[V::zero(); $n_in]; $n_out];
        for j in 0..$n_in {
            let mut column = [V::zero(); $n_in];
            for i in 0..$n_in {
                column[i] = x[i][j];
            }
            let column = $f(column);
            for r in 0..$n_out {
                t[r][j] = column[r];
            }
        }
        let mut result = [[V::zero(); $n_out]; $n_out];
        for r in 0..$n_out {
            result[r] = $f(t[r]);
        }
        result
    }};
}

/// Calls `f(tile, ty, tx)` for every tile of the band, `tile` counting from 0.
#[inline(always)]
fn for_each_tile(tiles_w: usize, rows: Range<usize>, mut f: impl FnMut(usize, usize, usize)) {
    let mut tile = 0;
    for ty in rows {
        for tx in 0..tiles_w {
            f(tile, ty, tx);
            tile += 1;
        }
    }
}

/// Calls `f` with every channel offset: whole vectors of V first, then single channels.
#[inline(always)]
fn for_each_chunk<V: Lanes>(channels: usize, mut vector: impl FnMut(usize), mut single: impl FnMut(usize)) {
    let whole = channels - channels % V::LANES;
    for c0 in (0..whole).step_by(V::LANES) {
        vector(c0);
    }
    for c0 in whole..channels {
        single(c0);
    }
}

/// Tiles per output row for tile size M.
fn tiles_w<const M: usize>(g: &WinogradGeometry) -> usize {
    g.out_w().div_ceil(M)
}

/// The band's tiles must fit in `stride` tiles and its blocks in a buffer of `len` values.
fn check_band<const M: usize, const A: usize>(
    g: &WinogradGeometry,
    rows: &Range<usize>,
    stride: usize,
    channels: usize,
    len: usize,
) {
    assert!(rows.end <= g.out_h().div_ceil(M) && rows.len() * tiles_w::<M>(g) <= stride, "band past the plan");
    assert!(A * A * stride * channels <= len, "band buffer too small");
}

/// V = Bᵀ d B for every tile of the band and every input channel, into v[ξ][tile][channel].
#[inline(always)]
fn input_transform_with<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    g: &WinogradGeometry,
    x: &[f32],
    rows: Range<usize>,
    stride: usize,
    v: &mut [f32],
) {
    assert_eq!(x.len(), g.in_len(), "image size");
    check_band::<M, A>(g, &rows, stride, g.in_c, v.len());
    let c = g.in_c;
    for_each_tile(tiles_w::<M>(g), rows, |tile, ty, tx| {
        prefetch_patch::<M, A>(g, x, ty, tx + PREFETCH_TILES);
        let patch = g.patch::<M, A>(ty, tx);
        let out = v[tile * c..].as_mut_ptr();
        // SAFETY: patch offsets lie in the image and the band's blocks in v (both checked above).
        for_each_chunk::<V>(
            c,
            |c0| unsafe { input_tile::<V, T, M, A>(x, &patch, c0, out, stride * c) },
            |c0| unsafe { input_tile::<f32, T, M, A>(x, &patch, c0, out, stride * c) },
        );
    });
}

/// How many tiles ahead the input transform asks for the patch it will need.
const PREFETCH_TILES: usize = 2;

/// Asks the CPU to start loading the input that tile (ty, tx) will read: the columns it adds to
/// its left neighbour's patch, or, past the end of a row, the first patch of the next row. The
/// first touch of each input pixel otherwise stalls on memory.
#[inline(always)]
fn prefetch_patch<const M: usize, const A: usize>(g: &WinogradGeometry, x: &[f32], ty: usize, tx: usize) {
    let tiles_w = tiles_w::<M>(g);
    let (ty, tx, columns) = if tx < tiles_w { (ty, tx, A - M..A) } else { (ty + 1, tx - tiles_w, 0..A) };
    for r in 0..A {
        for c in columns.clone() {
            let (Some(y), Some(col)) = ((M * ty + r).checked_sub(g.pad), (M * tx + c).checked_sub(g.pad)) else {
                continue;
            };
            if y < g.in_h && col < g.in_w {
                prefetch(&x[(y * g.in_w + col) * g.in_c..][..g.in_c]);
            }
        }
    }
}

/// The same for the output pixels of tile (ty, tx), in an image `data` of the output's shape.
#[inline(always)]
fn prefetch_outputs<const M: usize>(g: &WinogradGeometry, data: &[f32], ty: usize, tx: usize) {
    let tiles_w = tiles_w::<M>(g);
    let (ty, tx) = if tx < tiles_w { (ty, tx) } else { (ty + 1, tx - tiles_w) };
    for y in (M * ty..M * ty + M).filter(|&y| y < g.out_h()) {
        let columns = (M * tx).min(g.out_w())..(M * tx + M).min(g.out_w());
        prefetch(&data[(y * g.out_w() + columns.start) * g.out_c..(y * g.out_w() + columns.end) * g.out_c]);
    }
}

/// Asks the CPU to start loading `values` into the L1 cache (a hint; nothing on other targets).
#[inline(always)]
fn prefetch(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in values.chunks(16) {
        // SAFETY: a prefetch is only a hint, and the address lies inside the slice.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

#[inline(always)]
unsafe fn input_tile<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    x: &[f32],
    patch: &[[Option<usize>; A]; A],
    c0: usize,
    out: *mut f32,
    xi_step: usize,
) {
    unsafe {
        let mut d = [[V::zero(); A]; A];
        for r in 0..A {
            for c in 0..A {
                if let Some(at) = patch[r][c] {
                    d[r][c] = V::load(x.as_ptr().add(at + c0));
                }
            }
        }
        let transformed = separable!(&d, T::input::<V>, A, A);
        for (r, row) in transformed.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                value.store(out.add((r * A + c) * xi_step + c0));
            }
        }
    }
}

/// The A x A block of vectors at channel c0 of one tile in a [ξ][tile][channel] buffer.
#[inline(always)]
unsafe fn load_block<V: Lanes, const A: usize>(block: *const f32, xi_step: usize, c0: usize) -> [[V; A]; A] {
    let mut e = [[V::zero(); A]; A];
    for r in 0..A {
        for c in 0..A {
            e[r][c] = unsafe { V::load(block.add((r * A + c) * xi_step + c0)) };
        }
    }
    e
}

/// Where a band's outputs go, with the bias and ReLU to apply.
struct Output<'a> {
    bias: &'a [f32],
    relu: bool,
    /// The band's output rows.
    y: &'a mut [f32],
}

/// Y = Aᵀ M A (+ bias, ReLU) for every tile of the band.
#[inline(always)]
fn output_transform_with<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    g: &WinogradGeometry,
    m: &[f32],
    rows: Range<usize>,
    stride: usize,
    out: Output,
) {
    check_band::<M, A>(g, &rows, stride, g.out_c, m.len());
    let c = g.out_c;
    let first_row = M * rows.start;
    let band_pixels = (M * rows.len()).min(g.out_h() - first_row) * g.out_w();
    assert!(out.y.len() >= band_pixels * c && out.bias.len() == c, "band output size");
    let (bias, relu, y) = (out.bias, out.relu, out.y.as_mut_ptr());
    for_each_tile(tiles_w::<M>(g), rows, |tile, ty, tx| {
        let outputs =
            g.outputs::<M>(ty, tx).map(|row| row.map(|p| p.map(|(oy, ox)| ((oy - first_row) * g.out_w() + ox) * c)));
        let m = m[tile * c..].as_ptr();
        // SAFETY: the band's blocks in m and its pixels in y were checked above.
        for_each_chunk::<V>(
            c,
            |c0| unsafe { output_tile::<V, T, M, A>(m, stride * c, bias, relu, c0, &outputs, y) },
            |c0| unsafe { output_tile::<f32, T, M, A>(m, stride * c, bias, relu, c0, &outputs, y) },
        );
    });
}

#[inline(always)]
unsafe fn output_tile<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    m: *const f32,
    xi_step: usize,
    bias: &[f32],
    relu: bool,
    c0: usize,
    outputs: &[[Option<usize>; M]; M],
    y: *mut f32,
) {
    unsafe {
        let e = load_block::<V, A>(m, xi_step, c0);
        let b = V::load(bias.as_ptr().add(c0));
        let values = separable!(&e, T::output::<V>, A, M);
        for i in 0..M {
            for j in 0..M {
                if let Some(at) = outputs[i][j] {
                    let value = values[i][j].add(b);
                    let value = if relu { value.relu() } else { value };
                    value.store(y.add(at + c0));
                }
            }
        }
    }
}

/// One image's output gradient, and the ReLU output that masks it (if the ReLU was fused).
#[derive(Clone, Copy)]
struct GradOutput<'a> {
    dy: &'a [f32],
    relu_output: Option<&'a [f32]>,
}

/// dM = A dY Aᵀ for every tile of the band, into dm[ξ][tile][channel], and the bias gradient
/// (the sum of dY) added into `grad_bias`.
#[inline(always)]
fn grad_output_transform_with<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    g: &WinogradGeometry,
    dy: GradOutput,
    rows: Range<usize>,
    stride: usize,
    dm: &mut [f32],
    grad_bias: &mut [f32],
) {
    assert_eq!(dy.dy.len(), g.out_len(), "output gradient size");
    assert!(dy.relu_output.is_none_or(|y| y.len() == g.out_len()), "output size");
    assert_eq!(grad_bias.len(), g.out_c, "bias gradient size");
    check_band::<M, A>(g, &rows, stride, g.out_c, dm.len());
    let c = g.out_c;
    for_each_tile(tiles_w::<M>(g), rows, |tile, ty, tx| {
        prefetch_outputs::<M>(g, dy.dy, ty, tx + PREFETCH_TILES);
        if let Some(y) = dy.relu_output {
            prefetch_outputs::<M>(g, y, ty, tx + PREFETCH_TILES);
        }
        let outputs = g.outputs::<M>(ty, tx).map(|row| row.map(|p| p.map(|(oy, ox)| (oy * g.out_w() + ox) * c)));
        let out = dm[tile * c..].as_mut_ptr();
        let grad_bias = grad_bias.as_mut_ptr();
        // SAFETY: output offsets lie in dy (and y), the band's blocks in dm (checked above).
        for_each_chunk::<V>(
            c,
            |c0| unsafe { grad_output_tile::<V, T, M, A>(dy, &outputs, c0, out, stride * c, grad_bias) },
            |c0| unsafe { grad_output_tile::<f32, T, M, A>(dy, &outputs, c0, out, stride * c, grad_bias) },
        );
    });
}

#[inline(always)]
unsafe fn grad_output_tile<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    dy: GradOutput,
    outputs: &[[Option<usize>; M]; M],
    c0: usize,
    out: *mut f32,
    xi_step: usize,
    grad_bias: *mut f32,
) {
    unsafe {
        let mut e = [[V::zero(); M]; M];
        for i in 0..M {
            for j in 0..M {
                let Some(at) = outputs[i][j] else { continue };
                let d = V::load(dy.dy.as_ptr().add(at + c0));
                e[i][j] = match dy.relu_output {
                    Some(y) => d.where_positive(V::load(y.as_ptr().add(at + c0))),
                    None => d,
                };
            }
        }
        let mut bias_sum = V::load(grad_bias.add(c0));
        for row in &e {
            for &value in row {
                bias_sum = bias_sum.add(value);
            }
        }
        bias_sum.store(grad_bias.add(c0));
        let transformed = separable!(&e, T::grad_output::<V>, M, A);
        for (r, row) in transformed.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                value.store(out.add((r * A + c) * xi_step + c0));
            }
        }
    }
}

/// dd = B dV Bᵀ for every tile of the band, added into the input patches of `dx` (whole image).
#[inline(always)]
fn grad_input_transform_with<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    g: &WinogradGeometry,
    dv: &[f32],
    rows: Range<usize>,
    stride: usize,
    dx: &mut [f32],
) {
    assert_eq!(dx.len(), g.in_len(), "input gradient size");
    check_band::<M, A>(g, &rows, stride, g.in_c, dv.len());
    let c = g.in_c;
    for_each_tile(tiles_w::<M>(g), rows, |tile, ty, tx| {
        let patch = g.patch::<M, A>(ty, tx);
        let dv = dv[tile * c..].as_ptr();
        let dx = dx.as_mut_ptr();
        // SAFETY: patch offsets lie in dx and the band's blocks in dv (checked above).
        for_each_chunk::<V>(
            c,
            |c0| unsafe { grad_input_tile::<V, T, M, A>(dv, stride * c, c0, &patch, dx) },
            |c0| unsafe { grad_input_tile::<f32, T, M, A>(dv, stride * c, c0, &patch, dx) },
        );
    });
}

#[inline(always)]
unsafe fn grad_input_tile<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    dv: *const f32,
    xi_step: usize,
    c0: usize,
    patch: &[[Option<usize>; A]; A],
    dx: *mut f32,
) {
    unsafe {
        let e = load_block::<V, A>(dv, xi_step, c0);
        let dd = separable!(&e, T::grad_input::<V>, A, A);
        for r in 0..A {
            for c in 0..A {
                if let Some(at) = patch[r][c] {
                    let target = dx.add(at + c0);
                    V::load(target).add(dd[r][c]).store(target);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{ConvGeometry, conv2d_naive};
    use crate::kernels::test_values as values;

    fn direct(g: &WinogradGeometry) -> ConvGeometry {
        ConvGeometry {
            batch: g.batch,
            in_h: g.in_h,
            in_w: g.in_w,
            in_c: g.in_c,
            out_c: g.out_c,
            kernel: 3,
            stride: 1,
            pad: g.pad,
        }
    }

    /// The direct convolution's gradients: dw (OIHW), dbias, dx.
    fn naive_backward(g: &WinogradGeometry, x: &[f32], weight: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (cin, cout) = (g.in_c, g.out_c);
        let mut dw = vec![0.0f32; cout * cin * 9];
        let mut db = vec![0.0f32; cout];
        let mut dx = vec![0.0f32; x.len()];
        for b in 0..g.batch {
            for oy in 0..g.out_h() {
                for ox in 0..g.out_w() {
                    for o in 0..cout {
                        let d = dy[((b * g.out_h() + oy) * g.out_w() + ox) * cout + o];
                        db[o] += d;
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let (Some(iy), Some(ix)) = ((oy + kh).checked_sub(g.pad), (ox + kw).checked_sub(g.pad))
                                else {
                                    continue;
                                };
                                if iy >= g.in_h || ix >= g.in_w {
                                    continue;
                                }
                                for i in 0..cin {
                                    let at = ((b * g.in_h + iy) * g.in_w + ix) * cin + i;
                                    let w = (o * cin + i) * 9 + kh * 3 + kw;
                                    dw[w] += x[at] * d;
                                    dx[at] += weight[w] * d;
                                }
                            }
                        }
                    }
                }
            }
        }
        (dw, db, dx)
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what} length");
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= 2e-5 * scale, "{what}[{i}]: {a} vs {b}");
        }
    }

    fn every_path() -> Vec<(Isa, TileSize)> {
        Isa::supported().into_iter().flat_map(|isa| [(isa, TileSize::F2), (isa, TileSize::F4)]).collect()
    }

    /// Odd and even sizes, padding, channel counts that are and are not whole vectors, and
    /// bands that split an image; every instruction set the CPU has.
    const SHAPES: [WinogradGeometry; 4] = [
        WinogradGeometry { batch: 2, in_h: 8, in_w: 8, in_c: 16, out_c: 32, pad: 0 },
        WinogradGeometry { batch: 3, in_h: 7, in_w: 6, in_c: 3, out_c: 5, pad: 1 },
        WinogradGeometry { batch: 1, in_h: 26, in_w: 26, in_c: 32, out_c: 64, pad: 0 },
        WinogradGeometry { batch: 2, in_h: 5, in_w: 9, in_c: 20, out_c: 17, pad: 2 },
    ];

    #[test]
    fn forward_matches_direct_convolution() {
        for (isa, tile) in every_path() {
            for g in SHAPES {
                let plan = WinogradPlan::with(g, tile, isa);
                let x = values(g.batch * g.in_len(), 1);
                let weight = values(g.out_c * g.in_c * 9, 2);
                let bias = values(g.out_c, 3);
                let mut u = Vec::new();
                plan.transform_weight(&weight, &mut u, &mut Vec::new());
                let mut y = vec![f32::NAN; g.batch * g.out_len()];
                plan.forward(&x, &u, &bias, false, &mut y);
                let want = conv2d_naive(&direct(&g), &x, &weight, &bias);
                assert_close(&y, &want, &format!("{isa:?} {tile:?} {g:?} y"));
                plan.forward(&x, &u, &bias, true, &mut y);
                let want: Vec<f32> = want.iter().map(|v| v.max(0.0)).collect();
                assert_close(&y, &want, &format!("{isa:?} {tile:?} {g:?} relu(y)"));
            }
        }
    }

    #[test]
    fn backward_matches_direct_gradients() {
        for (isa, tile) in every_path() {
            for g in SHAPES {
                for relu in [false, true] {
                    let plan = WinogradPlan::with(g, tile, isa);
                    let x = values(g.batch * g.in_len(), 4);
                    let weight = values(g.out_c * g.in_c * 9, 5);
                    let bias = values(g.out_c, 6);
                    let dy = values(g.batch * g.out_len(), 7);
                    let (mut u, mut ut) = (Vec::new(), Vec::new());
                    plan.transform_weight(&weight, &mut u, &mut Vec::new());
                    plan.transpose_transformed(&u, &mut ut);
                    // With a fused ReLU the gradient flows only where the output is positive.
                    let mut y = vec![0.0; g.batch * g.out_len()];
                    plan.forward(&x, &u, &bias, true, &mut y);
                    let relu_output = relu.then_some(&y[..]);
                    let dy_through_relu: Vec<f32> =
                        dy.iter().zip(&y).map(|(&d, &y)| if relu && y <= 0.0 { 0.0 } else { d }).collect();
                    let (mut grad_u, mut grad_bias) = (vec![0.0; plan.transformed_weight_len()], vec![0.0; g.out_c]);
                    let mut dx = vec![f32::NAN; x.len()];
                    let mut partials = Vec::new();
                    let gradients = (&mut grad_u[..], &mut grad_bias[..], Some(&mut dx[..]));
                    plan.backward(
                        &x,
                        &dy,
                        relu_output,
                        Some(&ut),
                        &mut partials,
                        gradients.0,
                        gradients.1,
                        gradients.2,
                    );
                    let mut grad_weight = vec![0.0; weight.len()];
                    plan.weight_gradient(&grad_u, &mut grad_weight);
                    let (want_dw, want_db, want_dx) = naive_backward(&g, &x, &weight, &dy_through_relu);
                    let what = format!("{isa:?} {tile:?} {g:?} relu {relu}");
                    assert_close(&grad_weight, &want_dw, &format!("{what} dw"));
                    assert_close(&grad_bias, &want_db, &format!("{what} dbias"));
                    assert_close(&dx, &want_dx, &format!("{what} dx"));
                }
            }
        }
    }

    #[test]
    fn every_thread_count_gives_the_same_bits() {
        let g = WinogradGeometry { batch: 10, in_h: 12, in_w: 10, in_c: 16, out_c: 24, pad: 1 };
        let plan = WinogradPlan::new(g);
        let x = values(g.batch * g.in_len(), 7);
        let dy = values(g.batch * g.out_len(), 8);
        let weight = values(g.out_c * g.in_c * 9, 9);
        let (mut u, mut ut) = (Vec::new(), Vec::new());
        plan.transform_weight(&weight, &mut u, &mut Vec::new());
        plan.transpose_transformed(&u, &mut ut);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut y = vec![0.0; g.batch * g.out_len()];
                plan.forward(&x, &u, &weight[..g.out_c], true, &mut y);
                let mut dx = vec![0.0; x.len()];
                let (mut grad_u, mut grad_bias) = (vec![0.0; plan.transformed_weight_len()], vec![0.0; g.out_c]);
                plan.backward(
                    &x,
                    &dy,
                    Some(&y),
                    Some(&ut),
                    &mut Vec::new(),
                    &mut grad_u,
                    &mut grad_bias,
                    Some(&mut dx),
                );
                (y, dx, grad_u)
            })
        };
        // Forward bands are independent and the backward pass sums fixed groups of images in a
        // fixed order, so every thread count gives the same bits.
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
    }
}
