//! Winograd F(2x2, 3x3): 3x3 stride-1 convolutions over NHWC images with 2.25x fewer
//! multiplications than the direct method (16 products per 2x2 outputs instead of 36).
//!
//! Each 2x2 block of output pixels (a *tile*) comes from the 4x4 input patch under it:
//!
//! ```text
//!   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        g: 3x3 kernel, d: 4x4 patch, Y: 2x2 outputs
//! ```
//!
//! Summed over channels, every one of the 16 transformed positions ξ is one GEMM:
//! `M[ξ](tile, o) = Σ_i V[ξ](tile, i) · U[ξ](i, o)` with `V = Bᵀ d B` and `U = G g Gᵀ`.
//! The backward pass is that formula differentiated, not a second convolution, so the weight
//! and input gradients share one transform of dy:
//!
//! ```text
//!   dM = A dY Aᵀ                   (4x4 per tile and output channel)
//!   dU[ξ] = V[ξ]ᵀ · dM[ξ]          summed over tiles;  dg = Gᵀ dU G
//!   dV[ξ] = dM[ξ] · U[ξ]ᵀ          dd = B dV Bᵀ, added into the (overlapping) input patches
//! ```
//!
//! Tiles are processed in bands of about [`BAND_TILES`] so that a band's V, M and the weights
//! stay in the core's caches; the transforms are plain Rust compiled three times (AVX-512,
//! AVX2, portable) and vectorised over channels by the compiler. Layouts: `U` is
//! [ξ][in][out], `Uᵀ` is [ξ][out][in], band buffers are [ξ][tile][channel].

// The transforms index lanes and tile positions by number on purpose: fixed-length loops over
// lanes are what the compiler turns into vector instructions.
#![allow(clippy::needless_range_loop)]

use super::gemm::{Epilogue, IndexedA, IndexedB, gemm_indexed_serial_with};
use super::isa::{self, Isa};
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// Transformed positions per tile (4x4).
const POINTS: usize = 16;
/// About how many tiles a band holds: V and M of a band then take ~0.5 MiB at 64 channels.
pub const BAND_TILES: usize = 64;

/// G (4x3), the kernel transform.
const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

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
    fn tiles_h(&self) -> usize {
        self.out_h().div_ceil(2)
    }
    fn tiles_w(&self) -> usize {
        self.out_w().div_ceil(2)
    }
    fn in_len(&self) -> usize {
        self.in_h * self.in_w * self.in_c
    }
    fn out_len(&self) -> usize {
        self.out_h() * self.out_w() * self.out_c
    }

    /// Where each value of tile (ty, tx)'s 4x4 input patch sits in its image (None: padding).
    fn patch(&self, ty: usize, tx: usize) -> [Option<usize>; POINTS] {
        std::array::from_fn(|p| {
            let y = (2 * ty + p / 4).checked_sub(self.pad).filter(|&y| y < self.in_h)?;
            let x = (2 * tx + p % 4).checked_sub(self.pad).filter(|&x| x < self.in_w)?;
            Some((y * self.in_w + x) * self.in_c)
        })
    }

    /// The output pixels of tile (ty, tx) as (row, column), None past the right or bottom edge.
    fn outputs(&self, ty: usize, tx: usize) -> [Option<(usize, usize)>; 4] {
        std::array::from_fn(|p| {
            let (y, x) = (2 * ty + p / 2, 2 * tx + p % 2);
            (y < self.out_h() && x < self.out_w()).then_some((y, x))
        })
    }
}

/// A convolution shape with its bands and the offset tables its GEMMs read through.
#[derive(Debug)]
pub struct WinogradPlan {
    geometry: WinogradGeometry,
    isa: Isa,
    /// Tile rows per band, and the most tiles a band holds (the stride between ξ blocks).
    band_rows: usize,
    band_tiles: usize,
    /// `t * in_c` and `t * out_c` for each tile of a band.
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
    pub fn new(geometry: WinogradGeometry) -> Self {
        Self::with_isa(geometry, isa::active())
    }

    /// A plan on a chosen instruction set (the tests run every path the CPU has).
    pub fn with_isa(geometry: WinogradGeometry, isa: Isa) -> Self {
        let g = geometry;
        assert!(g.in_h + 2 * g.pad >= 3 && g.in_w + 2 * g.pad >= 3, "image smaller than the kernel");
        let band_rows = BAND_TILES.div_ceil(g.tiles_w()).clamp(1, g.tiles_h());
        let band_tiles = band_rows * g.tiles_w();
        WinogradPlan {
            geometry,
            isa: if isa.is_supported() { isa } else { Isa::Portable },
            band_rows,
            band_tiles,
            tiles_in: (0..band_tiles).map(|t| t * g.in_c).collect(),
            tiles_out: (0..band_tiles).map(|t| t * g.out_c).collect(),
            in_channels: (0..g.in_c).collect(),
            out_channels: (0..g.out_c).collect(),
            rows_of_u: (0..g.in_c).map(|i| i * g.out_c).collect(),
            rows_of_ut: (0..g.out_c).map(|o| o * g.in_c).collect(),
        }
    }

    pub fn geometry(&self) -> WinogradGeometry {
        self.geometry
    }

    /// Length of U, Uᵀ and their gradient.
    pub fn transformed_weight_len(&self) -> usize {
        POINTS * self.geometry.in_c * self.geometry.out_c
    }

    fn bands(&self) -> usize {
        self.geometry.tiles_h().div_ceil(self.band_rows)
    }

    fn band(&self, band: usize) -> Range<usize> {
        let start = band * self.band_rows;
        start..(start + self.band_rows).min(self.geometry.tiles_h())
    }

    /// y = relu?(conv(x, g) + bias) with `u` from [`transform_weight`]; x and y are NHWC.
    pub fn forward(&self, x: &[f32], u: &[f32], bias: &[f32], relu: bool, y: &mut [f32]) {
        let g = self.geometry;
        let (cin, cout) = (g.in_c, g.out_c);
        assert_eq!(x.len(), g.batch * g.in_len(), "input size");
        assert_eq!(y.len(), g.batch * g.out_len(), "output size");
        assert_eq!(u.len(), self.transformed_weight_len(), "transformed weight size");
        assert_eq!(bias.len(), cout, "bias size");
        let band_len = 2 * self.band_rows * g.out_w() * cout;
        // Bands write disjoint rows of the output, so images and their bands run in parallel.
        y.par_chunks_mut(g.out_len()).zip(x.par_chunks(g.in_len())).for_each(|(y_image, x_image)| {
            y_image.par_chunks_mut(band_len).enumerate().for_each(|(band, y_band)| {
                with_scratch(|s| {
                    let rows = self.band(band);
                    let tiles = rows.len() * g.tiles_w();
                    s.v.resize(POINTS * self.band_tiles * cin, 0.0);
                    s.m.resize(POINTS * self.band_tiles * cout, 0.0);
                    input_transform(self.isa, &g, x_image, rows.clone(), self.band_tiles, &mut s.v);
                    for xi in 0..POINTS {
                        gemm_indexed_serial_with(
                            self.isa,
                            IndexedA {
                                data: &s.v[xi * self.band_tiles * cin..],
                                row: &self.tiles_in[..tiles],
                                k_offsets: &self.in_channels,
                            },
                            IndexedB { data: &u[xi * cin * cout..], k_offsets: &self.rows_of_u, n: cout },
                            &mut s.m[xi * self.band_tiles * cout..],
                            cout,
                            Epilogue::OVERWRITE,
                        );
                    }
                    output_transform(self.isa, &g, &s.m, rows, self.band_tiles, bias, relu, y_band);
                })
            });
        });
    }

    /// The gradients of [`WinogradPlan::forward`] given dy. With `relu_output` (the y of a
    /// forward pass with ReLU) dy counts only where y > 0, so the ReLU's backward costs no pass.
    ///
    /// Writes dLoss/dU into `grad_u` ([ξ][in][out], turn it into the kernel's gradient with
    /// [`weight_gradient`]) and adds the bias gradient into `grad_bias`; with `ut` (from
    /// [`transpose_transformed`]) also writes dx. The weight gradient is summed per group of
    /// images (a parallel task each) into its own part of `partials`, and the parts are added in
    /// order: the groups depend on the batch size only, so results do not depend on threads.
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
            self.backward_images(x, dy, relu_output, ut, images, part, dx_part);
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
        grad_u.fill(0.0);
        for part in partials.chunks(part_len) {
            add_into(grad_u, &part[..u_len]);
            add_into(grad_bias, &part[u_len..]);
        }
    }

    /// One task of [`WinogradPlan::backward`]: `images` summed into `part` (dU then dbias).
    #[allow(clippy::too_many_arguments)]
    fn backward_images(
        &self,
        x: &[f32],
        dy: &[f32],
        relu_output: Option<&[f32]>,
        ut: Option<&[f32]>,
        images: Range<usize>,
        part: &mut [f32],
        mut dx: Option<&mut [f32]>,
    ) {
        let g = self.geometry;
        let (cin, cout, stride) = (g.in_c, g.out_c, self.band_tiles);
        part.fill(0.0);
        if let Some(dx) = dx.as_deref_mut() {
            dx.fill(0.0);
        }
        let (grad_u, grad_bias) = part.split_at_mut(POINTS * cin * cout);
        with_scratch(|s| {
            s.v.resize(POINTS * stride * cin, 0.0);
            s.m.resize(POINTS * stride * cout, 0.0);
            for (n, image) in images.enumerate() {
                let x_image = &x[image * g.in_len()..(image + 1) * g.in_len()];
                let dy_image = &dy[image * g.out_len()..(image + 1) * g.out_len()];
                let y_image = relu_output.map(|y| &y[image * g.out_len()..(image + 1) * g.out_len()]);
                for band in 0..self.bands() {
                    let rows = self.band(band);
                    let tiles = rows.len() * g.tiles_w();
                    input_transform(self.isa, &g, x_image, rows.clone(), stride, &mut s.v);
                    let dy = GradOutput { dy: dy_image, relu_output: y_image };
                    grad_output_transform(self.isa, &g, dy, rows.clone(), stride, &mut s.m, grad_bias);
                    for xi in 0..POINTS {
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
                            Epilogue::ACCUMULATE,
                        );
                    }
                    let (Some(ut), Some(dx)) = (ut, dx.as_deref_mut()) else { continue };
                    // dV overwrites V, which this band no longer needs.
                    for xi in 0..POINTS {
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
                    grad_input_transform(self.isa, &g, &s.v, rows, stride, dx_image);
                }
            }
        });
    }
}

/// Images whose weight gradients one task sums: up to 4 (eight tasks for a batch of 32, enough
/// for two cores to even out when one is slowed), fewer for small batches so both cores work.
fn images_per_group(batch: usize) -> usize {
    (batch / 2).clamp(1, 4)
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

/// U[ξ][i][o] = (G g Gᵀ)[ξ] for the PyTorch-layout (OIHW) 3x3 kernel.
pub fn transform_weight(weight: &[f32], in_c: usize, out_c: usize, u: &mut Vec<f32>) {
    transform_weight_into(weight, in_c, out_c, u, |i, o| i * out_c + o);
}

fn transform_weight_into(
    weight: &[f32],
    in_c: usize,
    out_c: usize,
    u: &mut Vec<f32>,
    index: impl Fn(usize, usize) -> usize,
) {
    assert_eq!(weight.len(), out_c * in_c * 9, "3x3 kernel size");
    u.resize(POINTS * in_c * out_c, 0.0);
    let plane = in_c * out_c;
    for o in 0..out_c {
        for i in 0..in_c {
            let g = &weight[(o * in_c + i) * 9..][..9];
            // G g (4x3), then (G g) Gᵀ (4x4).
            let gg: [[f32; 3]; 4] = std::array::from_fn(|a| {
                std::array::from_fn(|c| G[a][0] * g[c] + G[a][1] * g[3 + c] + G[a][2] * g[6 + c])
            });
            for a in 0..4 {
                for b in 0..4 {
                    let value = gg[a][0] * G[b][0] + gg[a][1] * G[b][1] + gg[a][2] * G[b][2];
                    u[(a * 4 + b) * plane + index(i, o)] = value;
                }
            }
        }
    }
}

/// Uᵀ from U: the 16 [in][out] matrices transposed to [out][in].
pub fn transpose_transformed(u: &[f32], in_c: usize, out_c: usize, ut: &mut Vec<f32>) {
    assert_eq!(u.len(), POINTS * in_c * out_c, "transformed weight size");
    ut.resize(u.len(), 0.0);
    for (u, ut) in u.chunks(in_c * out_c).zip(ut.chunks_mut(in_c * out_c)) {
        for i in 0..in_c {
            for o in 0..out_c {
                ut[o * in_c + i] = u[i * out_c + o];
            }
        }
    }
}

/// grad_weight (OIHW) += Gᵀ dU G, the kernel's gradient from the transformed one.
pub fn weight_gradient(grad_u: &[f32], in_c: usize, out_c: usize, grad_weight: &mut [f32]) {
    assert_eq!(grad_u.len(), POINTS * in_c * out_c, "transformed weight gradient size");
    assert_eq!(grad_weight.len(), out_c * in_c * 9, "3x3 kernel size");
    let plane = in_c * out_c;
    for o in 0..out_c {
        for i in 0..in_c {
            let d = |a: usize, b: usize| grad_u[(a * 4 + b) * plane + i * out_c + o];
            // Gᵀ dU (3x4), then (Gᵀ dU) G (3x3).
            let t: [[f32; 4]; 3] = std::array::from_fn(|r| {
                std::array::from_fn(|b| G[0][r] * d(0, b) + G[1][r] * d(1, b) + G[2][r] * d(2, b) + G[3][r] * d(3, b))
            });
            let gw = &mut grad_weight[(o * in_c + i) * 9..][..9];
            for r in 0..3 {
                for c in 0..3 {
                    gw[r * 3 + c] += t[r][0] * G[0][c] + t[r][1] * G[1][c] + t[r][2] * G[2][c] + t[r][3] * G[3][c];
                }
            }
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
        #[allow(clippy::too_many_arguments)]
        fn $name(isa: Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::x86_64::{__m256, __m512};
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) {
                    $generic::<__m512>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) {
                    $generic::<__m256>($($arg),*)
                }
                match isa {
                    // SAFETY: plans hold only an instruction set this CPU supports.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    Isa::Portable => {}
                }
            }
            let _ = isa;
            $generic::<Portable>($($arg),*)
        }
    };
}

multiversion!(input_transform => input_transform_with(
    g: &WinogradGeometry, x: &[f32], rows: Range<usize>, stride: usize, v: &mut [f32]));
multiversion!(output_transform => output_transform_with(
    g: &WinogradGeometry, m: &[f32], rows: Range<usize>, stride: usize, bias: &[f32], relu: bool, y: &mut [f32]));
multiversion!(grad_output_transform => grad_output_transform_with(
    g: &WinogradGeometry, dy: GradOutput, rows: Range<usize>, stride: usize, dm: &mut [f32], grad_bias: &mut [f32]));
multiversion!(grad_input_transform => grad_input_transform_with(
    g: &WinogradGeometry, dv: &[f32], rows: Range<usize>, stride: usize, dx: &mut [f32]));

/// Calls `f(tile, ty, tx)` for every tile of the band, `tile` counting from 0.
#[inline(always)]
fn for_each_tile(g: &WinogradGeometry, rows: Range<usize>, mut f: impl FnMut(usize, usize, usize)) {
    let mut tile = 0;
    for ty in rows {
        for tx in 0..g.tiles_w() {
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

/// The last tile of a band whose buffers start at `stride`-tile blocks must fit `len` values.
fn check_band(g: &WinogradGeometry, rows: &Range<usize>, stride: usize, channels: usize, len: usize) {
    assert!(rows.end <= g.tiles_h() && rows.len() * g.tiles_w() <= stride, "band past the plan");
    assert!(POINTS * stride * channels <= len, "band buffer too small");
}

/// V = Bᵀ d B for every tile of the band and every input channel, into v[ξ][tile][channel].
#[inline(always)]
fn input_transform_with<V: Lanes>(g: &WinogradGeometry, x: &[f32], rows: Range<usize>, stride: usize, v: &mut [f32]) {
    assert_eq!(x.len(), g.in_len(), "image size");
    check_band(g, &rows, stride, g.in_c, v.len());
    let c = g.in_c;
    for_each_tile(g, rows, |tile, ty, tx| {
        prefetch_patch_columns(g, x, ty, tx + PREFETCH_TILES);
        let patch = g.patch(ty, tx);
        let out = v[tile * c..].as_mut_ptr();
        // SAFETY: patch offsets lie in the image and the band's blocks in v (both checked above).
        for_each_chunk::<V>(
            c,
            |c0| unsafe { input_tile::<V>(x, &patch, c0, out, stride * c) },
            |c0| unsafe { input_tile::<f32>(x, &patch, c0, out, stride * c) },
        );
    });
}

/// How many tiles ahead the input transform asks for the patch it will need.
const PREFETCH_TILES: usize = 2;

/// Asks the CPU to start loading the two patch columns that tile (ty, tx) adds to its left
/// neighbour's: the first touch of each input pixel otherwise stalls on memory.
#[inline(always)]
fn prefetch_patch_columns(g: &WinogradGeometry, x: &[f32], ty: usize, tx: usize) {
    #[cfg(target_arch = "x86_64")]
    for p in [2, 3, 6, 7, 10, 11, 14, 15] {
        let (Some(y), Some(col)) = ((2 * ty + p / 4).checked_sub(g.pad), (2 * tx + p % 4).checked_sub(g.pad)) else {
            continue;
        };
        if y < g.in_h && col < g.in_w {
            let pixel = &x[(y * g.in_w + col) * g.in_c..][..g.in_c];
            for line in pixel.chunks(16) {
                // SAFETY: a prefetch is only a hint; the address lies inside x.
                unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (g, x, ty, tx);
}

#[inline(always)]
unsafe fn input_tile<V: Lanes>(x: &[f32], patch: &[Option<usize>; POINTS], c0: usize, out: *mut f32, xi_step: usize) {
    unsafe {
        let d = |p: usize| patch[p].map_or(V::zero(), |at| V::load(x.as_ptr().add(at + c0)));
        // t = Bᵀ d, by columns of the patch.
        let mut t = [[V::zero(); 4]; 4];
        for col in 0..4 {
            let (d0, d1, d2, d3) = (d(col), d(4 + col), d(8 + col), d(12 + col));
            t[0][col] = d0.sub(d2);
            t[1][col] = d1.add(d2);
            t[2][col] = d2.sub(d1);
            t[3][col] = d1.sub(d3);
        }
        // V = t B, by rows.
        for (r, t) in t.iter().enumerate() {
            let at = |b: usize| out.add((r * 4 + b) * xi_step + c0);
            t[0].sub(t[2]).store(at(0));
            t[1].add(t[2]).store(at(1));
            t[2].sub(t[1]).store(at(2));
            t[1].sub(t[3]).store(at(3));
        }
    }
}

/// Y = Aᵀ M A (+ bias, ReLU) for every tile of the band; `y` holds the band's output rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_transform_with<V: Lanes>(
    g: &WinogradGeometry,
    m: &[f32],
    rows: Range<usize>,
    stride: usize,
    bias: &[f32],
    relu: bool,
    y: &mut [f32],
) {
    check_band(g, &rows, stride, g.out_c, m.len());
    let c = g.out_c;
    let band_pixels = (2 * rows.len()).min(g.out_h() - 2 * rows.start) * g.out_w();
    assert!(y.len() >= band_pixels * c && bias.len() == c, "band output size");
    let first_row = 2 * rows.start;
    for_each_tile(g, rows, |tile, ty, tx| {
        let outputs = g.outputs(ty, tx).map(|p| p.map(|(oy, ox)| ((oy - first_row) * g.out_w() + ox) * c));
        let m = m[tile * c..].as_ptr();
        let y = y.as_mut_ptr();
        // SAFETY: the band's blocks in m and its pixels in y were checked above.
        for_each_chunk::<V>(
            c,
            |c0| unsafe { output_tile::<V>(m, stride * c, bias, relu, c0, &outputs, y) },
            |c0| unsafe { output_tile::<f32>(m, stride * c, bias, relu, c0, &outputs, y) },
        );
    });
}

#[inline(always)]
unsafe fn output_tile<V: Lanes>(
    m: *const f32,
    xi_step: usize,
    bias: &[f32],
    relu: bool,
    c0: usize,
    outputs: &[Option<usize>; 4],
    y: *mut f32,
) {
    unsafe {
        let e = |xi: usize| V::load(m.add(xi * xi_step + c0));
        let b = V::load(bias.as_ptr().add(c0));
        // s = Aᵀ M (2x4), by columns.
        let mut s = [[V::zero(); 4]; 2];
        for col in 0..4 {
            let (e0, e1, e2, e3) = (e(col), e(4 + col), e(8 + col), e(12 + col));
            s[0][col] = e0.add(e1).add(e2);
            s[1][col] = e1.sub(e2).sub(e3);
        }
        for (r, s) in s.iter().enumerate() {
            let pair = [s[0].add(s[1]).add(s[2]).add(b), s[1].sub(s[2]).sub(s[3]).add(b)];
            for (j, value) in pair.into_iter().enumerate() {
                if let Some(at) = outputs[r * 2 + j] {
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
fn grad_output_transform_with<V: Lanes>(
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
    check_band(g, &rows, stride, g.out_c, dm.len());
    let c = g.out_c;
    for_each_tile(g, rows, |tile, ty, tx| {
        let outputs = g.outputs(ty, tx).map(|p| p.map(|(oy, ox)| (oy * g.out_w() + ox) * c));
        let out = dm[tile * c..].as_mut_ptr();
        let grad_bias = grad_bias.as_mut_ptr();
        // SAFETY: output offsets lie in dy (and y), the band's blocks in dm (checked above).
        for_each_chunk::<V>(
            c,
            |c0| unsafe { grad_output_tile::<V>(dy, &outputs, c0, out, stride * c, grad_bias) },
            |c0| unsafe { grad_output_tile::<f32>(dy, &outputs, c0, out, stride * c, grad_bias) },
        );
    });
}

#[inline(always)]
unsafe fn grad_output_tile<V: Lanes>(
    dy: GradOutput,
    outputs: &[Option<usize>; 4],
    c0: usize,
    out: *mut f32,
    xi_step: usize,
    grad_bias: *mut f32,
) {
    unsafe {
        let e: [V; 4] = std::array::from_fn(|p| {
            outputs[p].map_or(V::zero(), |at| {
                let d = V::load(dy.dy.as_ptr().add(at + c0));
                match dy.relu_output {
                    Some(y) => d.where_positive(V::load(y.as_ptr().add(at + c0))),
                    None => d,
                }
            })
        });
        let bias_sum = V::load(grad_bias.add(c0)).add(e[0].add(e[1]).add(e[2].add(e[3])));
        bias_sum.store(grad_bias.add(c0));
        // r = A dY (4x2), then dM = r Aᵀ (4x4).
        let r = [
            [e[0], e[1]],
            [e[0].add(e[2]), e[1].add(e[3])],
            [e[0].sub(e[2]), e[1].sub(e[3])],
            [e[2].neg(), e[3].neg()],
        ];
        for (i, r) in r.iter().enumerate() {
            let at = |b: usize| out.add((i * 4 + b) * xi_step + c0);
            r[0].store(at(0));
            r[0].add(r[1]).store(at(1));
            r[0].sub(r[1]).store(at(2));
            r[1].neg().store(at(3));
        }
    }
}

/// dd = B dV Bᵀ for every tile of the band, added into the input patches of `dx` (whole image).
#[inline(always)]
fn grad_input_transform_with<V: Lanes>(
    g: &WinogradGeometry,
    dv: &[f32],
    rows: Range<usize>,
    stride: usize,
    dx: &mut [f32],
) {
    assert_eq!(dx.len(), g.in_len(), "input gradient size");
    check_band(g, &rows, stride, g.in_c, dv.len());
    let c = g.in_c;
    for_each_tile(g, rows, |tile, ty, tx| {
        let patch = g.patch(ty, tx);
        let dv = dv[tile * c..].as_ptr();
        let dx = dx.as_mut_ptr();
        // SAFETY: patch offsets lie in dx and the band's blocks in dv (checked above).
        for_each_chunk::<V>(
            c,
            |c0| unsafe { grad_input_tile::<V>(dv, stride * c, c0, &patch, dx) },
            |c0| unsafe { grad_input_tile::<f32>(dv, stride * c, c0, &patch, dx) },
        );
    });
}

#[inline(always)]
unsafe fn grad_input_tile<V: Lanes>(
    dv: *const f32,
    xi_step: usize,
    c0: usize,
    patch: &[Option<usize>; POINTS],
    dx: *mut f32,
) {
    unsafe {
        let e = |xi: usize| V::load(dv.add(xi * xi_step + c0));
        // p = B dV, by columns: the transpose of the input transform's Bᵀ d.
        let mut p = [[V::zero(); 4]; 4];
        for col in 0..4 {
            let (e0, e1, e2, e3) = (e(col), e(4 + col), e(8 + col), e(12 + col));
            p[0][col] = e0;
            p[1][col] = e1.sub(e2).add(e3);
            p[2][col] = e1.add(e2).sub(e0);
            p[3][col] = e3.neg();
        }
        // dd = p Bᵀ, by rows, added where each patch value came from.
        for (r, p) in p.iter().enumerate() {
            let dd = [p[0], p[1].sub(p[2]).add(p[3]), p[1].add(p[2]).sub(p[0]), p[3].neg()];
            for (col, value) in dd.into_iter().enumerate() {
                if let Some(at) = patch[r * 4 + col] {
                    let target = dx.add(at + c0);
                    V::load(target).add(value).store(target);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{ConvGeometry, conv2d_naive};

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

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
        for isa in Isa::supported() {
            for g in SHAPES {
                let plan = WinogradPlan::with_isa(g, isa);
                let x = values(g.batch * g.in_len(), 1);
                let weight = values(g.out_c * g.in_c * 9, 2);
                let bias = values(g.out_c, 3);
                let mut u = Vec::new();
                transform_weight(&weight, g.in_c, g.out_c, &mut u);
                let mut y = vec![f32::NAN; g.batch * g.out_len()];
                plan.forward(&x, &u, &bias, false, &mut y);
                let want = conv2d_naive(&direct(&g), &x, &weight, &bias);
                assert_close(&y, &want, &format!("{isa:?} {g:?} y"));
                plan.forward(&x, &u, &bias, true, &mut y);
                let want: Vec<f32> = want.iter().map(|v| v.max(0.0)).collect();
                assert_close(&y, &want, &format!("{isa:?} {g:?} relu(y)"));
            }
        }
    }

    #[test]
    fn backward_matches_direct_gradients() {
        for isa in Isa::supported() {
            for g in SHAPES {
                for relu in [false, true] {
                    let plan = WinogradPlan::with_isa(g, isa);
                    let x = values(g.batch * g.in_len(), 4);
                    let weight = values(g.out_c * g.in_c * 9, 5);
                    let bias = values(g.out_c, 6);
                    let dy = values(g.batch * g.out_len(), 7);
                    let (mut u, mut ut) = (Vec::new(), Vec::new());
                    transform_weight(&weight, g.in_c, g.out_c, &mut u);
                    transpose_transformed(&u, g.in_c, g.out_c, &mut ut);
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
                    weight_gradient(&grad_u, g.in_c, g.out_c, &mut grad_weight);
                    let (want_dw, want_db, want_dx) = naive_backward(&g, &x, &weight, &dy_through_relu);
                    let what = format!("{isa:?} {g:?} relu {relu}");
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
        transform_weight(&weight, g.in_c, g.out_c, &mut u);
        transpose_transformed(&u, g.in_c, g.out_c, &mut ut);
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
