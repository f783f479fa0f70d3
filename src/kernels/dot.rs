//! C = A·B^T for a few long rows: every output is a dot product of two contiguous rows. This is
//! the shape of a linear layer over a large input (30976 features into 10 classes), where a GEMM
//! would spend its time transposing B; here both operands stream through once.

use super::SendPtr;
use super::gemm::Epilogue;
use super::isa::{self, Isa};
use rayon::prelude::*;
use std::ops::Range;

/// `c[i * n + j] (+)= dot(a[i * k ..][..k], b[j * k ..][..k])` for i < m, j < n, then the
/// epilogue. Each dot product is summed in a fixed order, so results do not depend on threads.
pub fn matmul_nt(a: &[f32], b: &[f32], k: usize, c: &mut [f32], epilogue: Epilogue) {
    matmul_nt_with(isa::active(), a, b, k, c, epilogue)
}

/// Rows of A, and at most this many rows of B, that one task multiplies together: every value
/// loaded then feeds several products, where one dot product at a time is bound by loads.
const A_BLOCK: usize = 2;
const MAX_B_BLOCK: usize = 8;

/// [`matmul_nt`] on a chosen instruction set.
pub fn matmul_nt_with(isa: Isa, a: &[f32], b: &[f32], k: usize, c: &mut [f32], epilogue: Epilogue) {
    assert!(k > 0 && a.len().is_multiple_of(k) && b.len().is_multiple_of(k), "rows of length k");
    let (m, n) = (a.len() / k, b.len() / k);
    assert_eq!(c.len(), m * n, "C is m x n");
    if let Some(bias) = epilogue.bias {
        assert!(bias.len() >= n, "bias is shorter than a row of C");
    }
    if m == 0 || n == 0 {
        return;
    }
    let isa = if isa.is_supported() { isa } else { Isa::Portable };
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
    let mut sums = [[0.0; MAX_B_BLOCK]; A_BLOCK];
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // Rows and columns past the block repeat its last one; their sums are not used.
            let a_rows: [&[f32]; A_BLOCK] = std::array::from_fn(|r| &a[(rows.start + r).min(rows.end - 1) * k..][..k]);
            let b_rows: [&[f32]; MAX_B_BLOCK] =
                std::array::from_fn(|s| &b[(cols.start + s).min(cols.end - 1) * k..][..k]);
            // SAFETY: the ISA was checked to be supported by this CPU.
            match cols.len() {
                1 => unsafe { x86::dots_avx512::<1>(a_rows, &b_rows, &mut sums) },
                2 => unsafe { x86::dots_avx512::<2>(a_rows, &b_rows, &mut sums) },
                3 => unsafe { x86::dots_avx512::<3>(a_rows, &b_rows, &mut sums) },
                4 => unsafe { x86::dots_avx512::<4>(a_rows, &b_rows, &mut sums) },
                5 => unsafe { x86::dots_avx512::<5>(a_rows, &b_rows, &mut sums) },
                6 => unsafe { x86::dots_avx512::<6>(a_rows, &b_rows, &mut sums) },
                7 => unsafe { x86::dots_avx512::<7>(a_rows, &b_rows, &mut sums) },
                _ => unsafe { x86::dots_avx512::<8>(a_rows, &b_rows, &mut sums) },
            }
        }
        _ => {
            for (r, i) in rows.enumerate() {
                for (s, j) in cols.clone().enumerate() {
                    sums[r][s] = dot_portable(&a[i * k..][..k], &b[j * k..][..k]);
                }
            }
        }
    }
    sums
}

type Sums = [[f32; MAX_B_BLOCK]; A_BLOCK];

/// 16 running sums, added pairwise at the end.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (a_chunks, b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..16 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut width = 8;
    while width > 0 {
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
        width /= 2;
    }
    lanes[0] + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{A_BLOCK, MAX_B_BLOCK, Sums};
    use std::arch::x86_64::*;

    /// A_BLOCK x NB dot products in one pass over k: one 16-lane running sum each, a masked
    /// load for the tail, each sum reduced across lanes at the end.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dots_avx512<const NB: usize>(
        a_rows: [&[f32]; A_BLOCK],
        b_rows: &[&[f32]; MAX_B_BLOCK],
        sums: &mut Sums,
    ) {
        let k = a_rows[0].len();
        let mut acc = [[_mm512_setzero_ps(); NB]; A_BLOCK];
        let mut i = 0;
        unsafe {
            while i < k {
                let mask = if k - i >= 16 { u16::MAX } else { ((1u32 << (k - i)) - 1) as u16 };
                let a: [__m512; A_BLOCK] =
                    std::array::from_fn(|r| _mm512_maskz_loadu_ps(mask, a_rows[r].as_ptr().add(i)));
                for s in 0..NB {
                    let b = _mm512_maskz_loadu_ps(mask, b_rows[s].as_ptr().add(i));
                    for r in 0..A_BLOCK {
                        acc[r][s] = _mm512_fmadd_ps(a[r], b, acc[r][s]);
                    }
                }
                i += 16;
            }
        }
        for r in 0..A_BLOCK {
            for s in 0..NB {
                sums[r][s] = _mm512_reduce_add_ps(acc[r][s]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{MatRef, gemm_naive};

    #[test]
    fn every_isa_matches_naive() {
        for isa in Isa::supported() {
            for (m, n, k) in [(1, 1, 1), (3, 10, 100), (32, 10, 30976 / 8), (2, 3, 67), (5, 17, 33), (1, 10, 30976)] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
                let b: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 89) as f32 / 44.0) - 1.0).collect();
                let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 1.0).collect();
                let epilogue = Epilogue { bias: Some(&bias), relu: true, ..Epilogue::OVERWRITE };
                let mut want = vec![0.0; m * n];
                gemm_naive(MatRef::row_major(&a, m, k), MatRef::row_major(&b, n, k).t(), &mut want, n, epilogue);
                let mut got = vec![0.0; m * n];
                matmul_nt_with(isa, &a, &b, k, &mut got, epilogue);
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
