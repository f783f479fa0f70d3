//! C = A·B^T for a few long rows: every output is a dot product of two contiguous rows. This is
//! the shape of a linear layer over a large input (30976 features into 10 classes), where a GEMM
//! would spend its time transposing B; here both operands stream through once.

// The dot kernel indexes its register blocks by row and column on purpose: fully unrolled
// constant loops are what keeps the accumulators in registers.
#![allow(clippy::needless_range_loop)]

use super::SendPtr;
use super::gemm::Epilogue;
use super::isa::Isa;
use super::simd::{self, Lanes, SimdTask};
use rayon::prelude::*;
use std::ops::Range;

/// Rows of A, and at most this many rows of B, that one task multiplies together: every value
/// loaded then feeds several products, where one dot product at a time is bound by loads.
const A_BLOCK: usize = 2;
const MAX_B_BLOCK: usize = 8;

/// `c[i * n + j] (+)= dot(a[i * k ..][..k], b[j * k ..][..k])` for i < m, j < n, then the
/// epilogue, on `isa` (the portable path if this CPU lacks it). Each dot product is summed in a
/// fixed order, so results do not depend on threads.
pub fn matmul_nt(isa: Isa, a: &[f32], b: &[f32], k: usize, c: &mut [f32], epilogue: Epilogue) {
    assert!(k > 0 && a.len().is_multiple_of(k) && b.len().is_multiple_of(k), "rows of length k");
    let (m, n) = (a.len() / k, b.len() / k);
    assert_eq!(c.len(), m * n, "C is m x n");
    if let Some(bias) = epilogue.bias {
        assert!(bias.len() >= n, "bias is shorter than a row of C");
    }
    if m == 0 || n == 0 {
        return;
    }
    // Blocks of B rows of nearly equal size, so that one image's 10 outputs split 5 + 5.
    let b_block = n.div_ceil(n.div_ceil(MAX_B_BLOCK));
    let b_blocks = n.div_ceil(b_block);
    let tasks = m.div_ceil(A_BLOCK) * b_blocks;
    let c_ptr = SendPtr(c.as_mut_ptr());
    let task = |task: usize| {
        let (rows, cols) = (task / b_blocks * A_BLOCK, task % b_blocks * b_block);
        let (rows, cols) = (rows..(rows + A_BLOCK).min(m), cols..(cols + b_block).min(n));
        let sums = dots(isa, a, b, k, rows.clone(), cols.clone());
        for (r, i) in rows.enumerate() {
            for (s, j) in cols.clone().enumerate() {
                // SAFETY: tasks cover disjoint (row, column) blocks of C, which is m x n.
                let out = unsafe { &mut *c_ptr.get().add(i * n + j) };
                let mut sum = sums[r][s];
                if epilogue.accumulate {
                    sum += *out;
                }
                if let Some(bias) = epilogue.bias {
                    sum += bias[j];
                }
                *out = if epilogue.relu { sum.max(0.0) } else { sum };
            }
        }
    };
    if m * n * k >= 1 << 18 {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

/// The dot products of A's `rows` with B's `cols` (at most A_BLOCK x MAX_B_BLOCK).
fn dots(isa: Isa, a: &[f32], b: &[f32], k: usize, rows: Range<usize>, cols: Range<usize>) -> Sums {
    // Rows and columns past the block repeat its last one; their sums are not used.
    let mut a_rows = [&a[..0]; A_BLOCK];
    for (r, row) in a_rows.iter_mut().enumerate() {
        *row = &a[(rows.start + r).min(rows.end - 1) * k..][..k];
    }
    let mut b_rows = [&b[..0]; MAX_B_BLOCK];
    for (s, row) in b_rows.iter_mut().enumerate() {
        *row = &b[(cols.start + s).min(cols.end - 1) * k..][..k];
    }
    match cols.len() {
        1 => simd::run(isa, Dots::<1> { a_rows, b_rows }),
        2 => simd::run(isa, Dots::<2> { a_rows, b_rows }),
        3 => simd::run(isa, Dots::<3> { a_rows, b_rows }),
        4 => simd::run(isa, Dots::<4> { a_rows, b_rows }),
        5 => simd::run(isa, Dots::<5> { a_rows, b_rows }),
        6 => simd::run(isa, Dots::<6> { a_rows, b_rows }),
        7 => simd::run(isa, Dots::<7> { a_rows, b_rows }),
        _ => simd::run(isa, Dots::<8> { a_rows, b_rows }),
    }
}

type Sums = [[f32; MAX_B_BLOCK]; A_BLOCK];

/// A_BLOCK x NB dot products of rows of equal length in one pass: one vector of running sums
/// each, a masked load for the tail, each sum reduced across lanes at the end.
struct Dots<'a, const NB: usize> {
    a_rows: [&'a [f32]; A_BLOCK],
    b_rows: [&'a [f32]; MAX_B_BLOCK],
}

impl<const NB: usize> SimdTask for Dots<'_, NB> {
    type Output = Sums;

    #[inline(always)]
    fn run<V: Lanes>(self) -> Sums {
        let k = self.a_rows[0].len();
        assert!(self.a_rows.iter().chain(&self.b_rows[..NB]).all(|row| row.len() == k), "rows of length k");
        let mut acc = [[V::zero(); NB]; A_BLOCK];
        let mut i = 0;
        while i < k {
            let mask = V::mask(k - i);
            let mut a = [V::zero(); A_BLOCK];
            // SAFETY: the masked lanes are i..min(i + LANES, k), inside every row (checked above).
            for r in 0..A_BLOCK {
                a[r] = unsafe { V::load_masked(self.a_rows[r].as_ptr().add(i), mask) };
            }
            for s in 0..NB {
                let b = unsafe { V::load_masked(self.b_rows[s].as_ptr().add(i), mask) };
                for r in 0..A_BLOCK {
                    acc[r][s] = a[r].mul_add(b, acc[r][s]);
                }
            }
            i += V::LANES;
        }
        let mut sums = [[0.0; MAX_B_BLOCK]; A_BLOCK];
        for r in 0..A_BLOCK {
            for s in 0..NB {
                sums[r][s] = acc[r][s].reduce_add();
            }
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{MatRef, gemm_naive};

    #[test]
    fn every_isa_matches_naive() {
        for isa in Isa::tested("dot::every_isa_matches_naive") {
            for (m, n, k) in [(1, 1, 1), (3, 10, 100), (32, 10, 30976 / 8), (2, 3, 67), (5, 17, 33), (1, 10, 30976)] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
                let b: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 89) as f32 / 44.0) - 1.0).collect();
                let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 1.0).collect();
                let epilogue = Epilogue { bias: Some(&bias), relu: true, ..Epilogue::OVERWRITE };
                let mut want = vec![0.0; m * n];
                gemm_naive(MatRef::row_major(&a, m, k), MatRef::row_major(&b, n, k).t(), &mut want, n, epilogue);
                let mut got = vec![0.0; m * n];
                matmul_nt(isa, &a, &b, k, &mut got, epilogue);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * (k as f32).sqrt() * (1.0 + w.abs()),
                        "{isa:?} {m}x{n}x{k}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
