//! Single-precision matrix multiply, C (+)= A·B, the engine's one heavy kernel.
//!
//! Written by hand because it is the heart of the product: convolutions in NHWC layout become a GEMM
//! whose A operand is read *in place* from the activations through offset tables ("implicit
//! im2col"), so no patch matrix is ever materialised or packed:
//!
//! ```text
//!   A(i, k) = a[a_row[i] + a_k[k]]      (one offset per output row, one per reduction step)
//!   B(k, :) = b[b_k[k] .. b_k[k] + n]   (a contiguous row of n values per reduction step)
//!   C(i, j) = c[i * ldc + j]
//! ```
//!
//! An ordinary strided matrix is the special case `a_row[i] = i * rs`, `a_k[k] = k * cs`.
//! The micro-kernel keeps an MR x (NV * lanes) tile of C in registers for the whole reduction,
//! broadcasting one A value per row and loading NV vectors of B per step. Each element of C is
//! summed in the order k = 0, 1, 2, ... whatever the tiling or thread count, so results are
//! bit-identical for any number of threads.

// The micro-kernels index their register tiles by row and vector on purpose: fully unrolled
// constant loops are what keeps the accumulators in registers.
#![allow(clippy::needless_range_loop)]

use super::SendPtr;
use super::isa::Isa;
use super::simd::{self, Lanes, SimdTask};
use rayon::prelude::*;
use std::cell::RefCell;

/// Multiply-adds below which a GEMM runs on one thread: handing work to a second thread costs
/// microseconds, about what one core needs for a million multiply-adds (a single image's first
/// convolution is a fifth of that).
const PARALLEL_MIN_WORK: usize = 1 << 20;

/// The largest number of rows any micro-kernel handles.
pub(crate) const MAX_MR: usize = 8;

/// What happens to a tile of C once the products are summed.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Add to C's previous contents instead of overwriting them.
    pub accumulate: bool,
    /// Add `bias[j]` to column j.
    pub bias: Option<&'a [f32]>,
    /// Clamp the result at zero.
    pub relu: bool,
}

impl Epilogue<'_> {
    pub const OVERWRITE: Epilogue<'static> = Epilogue { accumulate: false, bias: None, relu: false };
    pub const ACCUMULATE: Epilogue<'static> = Epilogue { accumulate: true, bias: None, relu: false };
}

/// The A operand of [`gemm_indexed`]: element (i, k) is `data[row[i] + k_offsets[k]]`. The
/// bf16 GEMM ([`super::bf16`]) reads `u32` elements, each a pair of bf16 values along k.
#[derive(Clone, Copy)]
pub struct IndexedA<'a, T = f32> {
    pub data: &'a [T],
    pub row: &'a [usize],
    pub k_offsets: &'a [usize],
}

/// The B operand of [`gemm_indexed`]: row k is `data[k_offsets[k] .. k_offsets[k] + n]`.
#[derive(Clone, Copy)]
pub struct IndexedB<'a, T = f32> {
    pub data: &'a [T],
    pub k_offsets: &'a [usize],
    pub n: usize,
}

/// A read-only strided matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The same data seen as the transpose.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(last < self.data.len(), "matrix view runs past its data");
        }
    }
}

/// C (+)= A·B with A and B given through offset tables (see the module docs), on `isa` (the
/// portable path if this CPU lacks it), split between the current rayon pool's threads.
///
/// Panics if an offset would read outside `a` or `b`, or write outside `c`: those are bugs in the
/// caller, never consequences of user input.
pub fn gemm_indexed(isa: Isa, a: IndexedA, b: IndexedB, c: &mut [f32], ldc: usize, epilogue: Epilogue) {
    gemm_checked(isa, a, b, c, ldc, epilogue, true)
}

/// [`gemm_indexed`] on the calling thread only, for callers that already split their work
/// between threads (each Winograd band runs a small GEMM per transformed position).
pub fn gemm_indexed_serial(isa: Isa, a: IndexedA, b: IndexedB, c: &mut [f32], ldc: usize, epilogue: Epilogue) {
    gemm_checked(isa, a, b, c, ldc, epilogue, false)
}

/// The element types the GEMM reads, each with its micro-kernels: `f32`, and `u32` holding a
/// pair of bf16 values along k (see [`super::bf16`]).
pub(crate) trait Element: Copy + Send + Sync + 'static {
    /// The micro-kernel for a C with `n` columns on `isa` (which the CPU has).
    fn kernel(isa: Isa, n: usize) -> Kernel<Self>;
}

impl Element for f32 {
    fn kernel(isa: Isa, n: usize) -> Kernel<f32> {
        choose_kernel(isa, n)
    }
}

pub(crate) fn gemm_checked<T: Element>(
    isa: Isa,
    a: IndexedA<T>,
    b: IndexedB<T>,
    c: &mut [f32],
    ldc: usize,
    epilogue: Epilogue,
    parallel: bool,
) {
    let (m, n, k) = (a.row.len(), b.n, a.k_offsets.len());
    assert_eq!(k, b.k_offsets.len(), "A and B disagree on the reduction length");
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "C is too small");
    if let Some(bias) = epilogue.bias {
        assert!(bias.len() >= n, "bias is shorter than a row of C");
    }
    if k > 0 {
        let a_max = a.row.iter().max().unwrap() + a.k_offsets.iter().max().unwrap();
        assert!(a_max < a.data.len(), "A offsets run past its data");
        assert!(b.k_offsets.iter().max().unwrap() + n <= b.data.len(), "B offsets run past its data");
    }
    let isa = if isa.is_supported() { isa } else { Isa::Portable };
    let plan = Plan::new(isa, a, b, ldc, epilogue);
    if parallel {
        plan.run(c, m, n, k);
    } else {
        let kernel = plan.kernel;
        plan.run_block(SendPtr(c.as_mut_ptr()), 0..m.div_ceil(kernel.mr), 0..n.div_ceil(kernel.nr));
    }
}

/// C (+)= A·B for plain strided matrices; `c` is row-major with leading dimension `ldc`.
pub fn gemm(isa: Isa, a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, epilogue: Epilogue) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    a.check();
    b.check();
    // Scratch is taken out of the thread-local cell while in use, so a nested call made by a
    // work-stealing rayon thread finds it empty and allocates its own instead of panicking.
    let mut s = SCRATCH.with(|cell| cell.take());
    s.a_row.clear();
    s.a_row.extend((0..a.rows).map(|i| i * a.row_stride));
    s.a_k.clear();
    s.a_k.extend((0..a.cols).map(|p| p * a.col_stride));
    // B rows must be contiguous: copy B when its columns are strided (the transposed case).
    let (b_data, b_row_stride): (&[f32], usize) = if b.col_stride == 1 || b.cols <= 1 {
        (b.data, b.row_stride)
    } else {
        s.b_copy.clear();
        s.b_copy.reserve(b.rows * b.cols);
        for p in 0..b.rows {
            s.b_copy.extend((0..b.cols).map(|j| b.at(p, j)));
        }
        (&s.b_copy, b.cols)
    };
    s.b_k.clear();
    s.b_k.extend((0..b.rows).map(|p| p * b_row_stride));
    gemm_indexed(
        isa,
        IndexedA { data: a.data, row: &s.a_row, k_offsets: &s.a_k },
        IndexedB { data: b_data, k_offsets: &s.b_k, n: b.cols },
        c,
        ldc,
        epilogue,
    );
    SCRATCH.with(|cell| cell.replace(s));
}

/// The reference: three loops, summing in the same k order as the fast paths.
pub fn gemm_naive(a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, epilogue: Epilogue) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut sum = 0.0f32;
            for p in 0..a.cols {
                sum += a.at(i, p) * b.at(p, j);
            }
            let out = &mut c[i * ldc + j];
            if epilogue.accumulate {
                sum += *out;
            }
            if let Some(bias) = epilogue.bias {
                sum += bias[j];
            }
            if epilogue.relu {
                sum = sum.max(0.0);
            }
            *out = sum;
        }
    }
}

#[derive(Default)]
struct Scratch {
    a_row: Vec<usize>,
    a_k: Vec<usize>,
    b_k: Vec<usize>,
    b_copy: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Everything a micro-kernel needs for one tile, as raw pointers. Built only by
/// `Plan::run_block`, after `gemm_checked` checked every offset against the slices' lengths:
/// the rows' values at `a_k[p]`, B's row `b_k[p]` for `valid_cols` columns, and C's
/// `valid_rows` x `valid_cols` block (and as many bias values) are in bounds for every p < k.
pub(crate) struct Tile<T = f32> {
    pub(crate) rows: [*const T; MAX_MR],
    pub(crate) a_k: *const usize,
    pub(crate) b: *const T,
    pub(crate) b_k: *const usize,
    pub(crate) k: usize,
    pub(crate) c: *mut f32,
    pub(crate) ldc: usize,
    pub(crate) valid_rows: usize,
    pub(crate) valid_cols: usize,
    pub(crate) accumulate: bool,
    pub(crate) bias: *const f32,
    pub(crate) relu: bool,
}

/// A micro-kernel for one instruction set: runs one tile (see `MicroKernel`).
pub(crate) type KernelFn<T> = fn(Isa, &Tile<T>);

/// A micro-kernel and the tile it covers.
#[derive(Clone, Copy)]
pub(crate) struct Kernel<T = f32> {
    pub(crate) mr: usize,
    pub(crate) nr: usize,
    pub(crate) run: KernelFn<T>,
}

/// The micro-kernel on `isa` for an MR x (NV vectors) tile.
fn micro_kernel<const MR: usize, const NV: usize>(isa: Isa, tile: &Tile) {
    simd::run(isa, MicroKernel::<MR, NV>(tile))
}

/// Chooses the widest tile that the columns fill, so a narrow C (n = 10, 32) wastes few lanes.
/// Six rows of accumulators plus the B vectors fit the 16 (AVX2, SSE, and the x86 registers a
/// browser maps wasm's `v128` to) or 32 (AVX-512) vector registers; the portable path's 8-lane
/// vectors take two registers each on SSE2 and NEON.
fn choose_kernel(isa: Isa, n: usize) -> Kernel {
    let (lanes, max_vectors) = match isa {
        Isa::Portable => return Kernel { mr: PORTABLE_MR, nr: 8, run: micro_kernel::<PORTABLE_MR, 1> },
        Isa::Avx512 => (16, 4),
        Isa::Avx2 => (8, 2),
        Isa::Simd128 => (4, 2),
    };
    let vectors = n.div_ceil(lanes).clamp(1, max_vectors);
    let run: KernelFn<f32> = match vectors {
        1 => micro_kernel::<6, 1>,
        2 => micro_kernel::<6, 2>,
        3 => micro_kernel::<6, 3>,
        _ => micro_kernel::<6, 4>,
    };
    Kernel { mr: 6, nr: lanes * vectors, run }
}

/// Rows of the portable tile: 4 x 8 lanes keeps 8 accumulators plus B and A in SSE2's 16
/// registers (6 rows spilled to memory every step; 2 x 16 measured the same as 4 x 8).
const PORTABLE_MR: usize = 4;

struct Plan<'a, T> {
    isa: Isa,
    kernel: Kernel<T>,
    a: IndexedA<'a, T>,
    b: IndexedB<'a, T>,
    ldc: usize,
    epilogue: Epilogue<'a>,
}

impl<'a, T: Element> Plan<'a, T> {
    fn new(isa: Isa, a: IndexedA<'a, T>, b: IndexedB<'a, T>, ldc: usize, epilogue: Epilogue<'a>) -> Self {
        Plan { isa, kernel: T::kernel(isa, b.n), a, b, ldc, epilogue }
    }

    /// Splits the tiles between rayon's threads when there is enough work to be worth it:
    /// by row blocks when there are plenty, otherwise by column panels.
    fn run(&self, c: &mut [f32], m: usize, n: usize, k: usize) {
        let c_ptr = SendPtr(c.as_mut_ptr());
        let threads = rayon::current_num_threads();
        let row_tiles = m.div_ceil(self.kernel.mr);
        let col_tiles = n.div_ceil(self.kernel.nr);
        let work = m * n * k.max(1);
        if threads == 1 || work < PARALLEL_MIN_WORK || row_tiles * col_tiles < 2 {
            self.run_block(c_ptr, 0..row_tiles, 0..col_tiles);
        } else if row_tiles >= 2 * threads || row_tiles >= col_tiles {
            let tasks = (threads * 4).min(row_tiles);
            (0..tasks).into_par_iter().for_each(|t| {
                self.run_block(c_ptr, split(row_tiles, tasks, t), 0..col_tiles);
            });
        } else {
            let tasks = (threads * 4).min(col_tiles);
            (0..tasks).into_par_iter().for_each(|t| {
                self.run_block(c_ptr, 0..row_tiles, split(col_tiles, tasks, t));
            });
        }
    }

    fn run_block(&self, c: SendPtr, row_tiles: std::ops::Range<usize>, col_tiles: std::ops::Range<usize>) {
        let (m, n) = (self.a.row.len(), self.b.n);
        let Kernel { mr, nr, run } = self.kernel;
        let k = self.a.k_offsets.len();
        for tile_i in row_tiles {
            let i0 = tile_i * mr;
            let valid_rows = mr.min(m - i0);
            let mut rows = [std::ptr::null::<T>(); MAX_MR];
            for (r, row) in rows.iter_mut().enumerate().take(mr) {
                // Rows past the end repeat the last valid row; their results are not stored.
                let i = i0 + r.min(valid_rows - 1);
                *row = self.a.data.as_ptr().wrapping_add(self.a.row[i]);
            }
            for tile_j in col_tiles.clone() {
                let j0 = tile_j * nr;
                let tile = Tile {
                    rows,
                    a_k: self.a.k_offsets.as_ptr(),
                    b: self.b.data.as_ptr().wrapping_add(j0),
                    b_k: self.b.k_offsets.as_ptr(),
                    k,
                    c: c.0.wrapping_add(i0 * self.ldc + j0),
                    ldc: self.ldc,
                    valid_rows,
                    valid_cols: nr.min(n - j0),
                    accumulate: self.epilogue.accumulate,
                    bias: self.epilogue.bias.map_or(std::ptr::null(), |b| b[j0..].as_ptr()),
                    relu: self.epilogue.relu,
                };
                // This task owns rows i0.. of C in its column range.
                run(self.isa, &tile);
            }
        }
    }
}

/// The `part`-th of `parts` nearly equal contiguous pieces of 0..len.
fn split(len: usize, parts: usize, part: usize) -> std::ops::Range<usize> {
    len * part / parts..len * (part + 1) / parts
}

/// The micro-kernel: keeps an MR x NV-vector tile of C in registers for the whole reduction,
/// broadcasting one A value per row and loading NV vectors of B per step, masked at the right
/// edge (a fully masked vector's address may lie past the end of B or C, so it is computed with
/// `wrapping_add` and never dereferenced).
struct MicroKernel<'a, const MR: usize, const NV: usize>(&'a Tile);

impl<const MR: usize, const NV: usize> SimdTask for MicroKernel<'_, MR, NV> {
    type Output = ();

    #[inline(always)]
    fn run<V: Lanes>(self) {
        let t = self.0;
        let mut masks = [V::mask(0); NV];
        for (v, mask) in masks.iter_mut().enumerate() {
            *mask = V::mask(t.valid_cols.saturating_sub(v * V::LANES));
        }
        let mut acc = [[V::zero(); NV]; MR];
        // SAFETY: the tile's offsets were checked (see `Tile`); masked lanes are never accessed.
        unsafe {
            for p in 0..t.k {
                let a_off = *t.a_k.add(p);
                let b_row = t.b.add(*t.b_k.add(p));
                let mut b = [V::zero(); NV];
                for v in 0..NV {
                    b[v] = V::load_masked(b_row.wrapping_add(v * V::LANES), masks[v]);
                }
                for r in 0..MR {
                    let a = V::splat(*t.rows[r].add(a_off));
                    for v in 0..NV {
                        acc[r][v] = a.mul_add(b[v], acc[r][v]);
                    }
                }
            }
            for (r, acc_row) in acc.iter().enumerate().take(t.valid_rows) {
                let c_row = t.c.add(r * t.ldc);
                for v in 0..NV {
                    let c = c_row.wrapping_add(v * V::LANES);
                    let mut sum = acc_row[v];
                    if t.accumulate {
                        sum = sum.add(V::load_masked(c, masks[v]));
                    }
                    if !t.bias.is_null() {
                        sum = sum.add(V::load_masked(t.bias.wrapping_add(v * V::LANES), masks[v]));
                    }
                    if t.relu {
                        sum = sum.relu();
                    }
                    sum.store_masked(c, masks[v]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as random;

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: {g} vs {w}");
        }
    }

    /// Every path, every edge shape (ragged rows and columns, k = 0), every epilogue.
    #[test]
    fn every_isa_matches_naive() {
        let shapes = [(1, 1, 1), (5, 7, 3), (6, 16, 9), (13, 33, 17), (7, 64, 0), (37, 70, 129), (64, 10, 300)];
        for isa in Isa::tested("gemm::every_isa_matches_naive") {
            for &(m, n, k) in &shapes {
                for transpose_b in [false, true] {
                    let a_data = random(m * k, 1);
                    let b_data = random(k * n, 2);
                    let bias = random(n, 3);
                    let a = MatRef::row_major(&a_data, m, k);
                    let b = if transpose_b {
                        MatRef::row_major(&b_data, n, k).t()
                    } else {
                        MatRef::row_major(&b_data, k, n)
                    };
                    for epilogue in [Epilogue::OVERWRITE, Epilogue { accumulate: true, bias: Some(&bias), relu: true }]
                    {
                        let start = random(m * (n + 3), 4);
                        let mut want = start.clone();
                        let mut got = start.clone();
                        gemm_naive(a, b, &mut want, n + 3, epilogue);
                        gemm(isa, a, b, &mut got, n + 3, epilogue);
                        assert_close(&got, &want, 1e-5 * (k as f32).sqrt().max(1.0));
                    }
                }
            }
        }
    }

    /// Large enough to cross PARALLEL_MIN_WORK, so that 2 and 3 threads really split it (by
    /// rows here, by columns for the wide shape).
    #[test]
    fn threads_do_not_change_results() {
        for (m, n, k) in [(100, 70, 200), (6, 700, 300)] {
            assert!(m * n * k >= PARALLEL_MIN_WORK);
            let a_data = random(m * k, 5);
            let b_data = random(k * n, 6);
            for isa in Isa::tested("gemm::threads_do_not_change_results") {
                let run = |threads| {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let mut c = vec![0.0; m * n];
                    let (a, b) = (MatRef::row_major(&a_data, m, k), MatRef::row_major(&b_data, k, n));
                    pool.install(|| gemm(isa, a, b, &mut c, n, Epilogue::OVERWRITE));
                    c
                };
                let serial = run(1);
                assert_eq!(serial, run(2), "{isa:?} {m}x{n}x{k}");
                assert_eq!(serial, run(3), "{isa:?} {m}x{n}x{k}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "A offsets run past its data")]
    fn offsets_are_bounds_checked() {
        let data = [1.0f32; 4];
        let mut c = [0.0f32; 4];
        gemm_indexed(
            Isa::Portable,
            IndexedA { data: &data, row: &[0, 3], k_offsets: &[0, 1] },
            IndexedB { data: &data, k_offsets: &[0, 2], n: 2 },
            &mut c,
            2,
            Epilogue::OVERWRITE,
        );
    }
}
