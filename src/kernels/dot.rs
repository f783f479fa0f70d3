//! C = A·B^T for a few long rows: every output is a dot product of two contiguous rows. This is
//! the shape of a linear layer over a large input (30976 features into 10 classes), where a GEMM
//! would spend its time transposing B; here both operands stream through once.

use super::gemm::Epilogue;
use super::isa::{self, Isa};
use rayon::prelude::*;

/// `c[i * n + j] (+)= dot(a[i * k ..][..k], b[j * k ..][..k])` for i < m, j < n, then the
/// epilogue. Each dot product is summed in a fixed order, so results do not depend on threads.
pub fn matmul_nt(a: &[f32], b: &[f32], k: usize, c: &mut [f32], epilogue: Epilogue) {
    matmul_nt_with(isa::active(), a, b, k, c, epilogue)
}

/// [`matmul_nt`] on a chosen instruction set.
pub fn matmul_nt_with(isa: Isa, a: &[f32], b: &[f32], k: usize, c: &mut [f32], epilogue: Epilogue) {
    assert!(k > 0 && a.len().is_multiple_of(k) && b.len().is_multiple_of(k), "rows of length k");
    let (m, n) = (a.len() / k, b.len() / k);
    assert_eq!(c.len(), m * n, "C is m x n");
    let isa = if isa.is_supported() { isa } else { Isa::Portable };
    // One task per output value, so that a single image's few outputs still use every core.
    let output = |(index, out): (usize, &mut f32)| {
        let (i, j) = (index / n, index % n);
        let mut sum = dot(isa, &a[i * k..][..k], &b[j * k..][..k]);
        if epilogue.accumulate {
            sum += *out;
        }
        if let Some(bias) = epilogue.bias {
            sum += bias[j];
        }
        *out = if epilogue.relu { sum.max(0.0) } else { sum };
    };
    if m * n * k >= 1 << 18 {
        c.par_iter_mut().enumerate().for_each(output);
    } else {
        c.iter_mut().enumerate().for_each(output);
    }
}

fn dot(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was checked to be supported by this CPU.
        Isa::Avx512 => unsafe { dot_avx512(a, b) },
        _ => dot_portable(a, b),
    }
}

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

/// Four 16-lane accumulators (64 values a step), masked loads for the tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let len = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    unsafe {
        while i + 64 <= len {
            for (v, sum) in acc.iter_mut().enumerate() {
                *sum = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16 * v)), _mm512_loadu_ps(pb.add(i + 16 * v)), *sum);
            }
            i += 64;
        }
        while i < len {
            let mask = ((1u32 << (len - i).min(16)) - 1) as u16;
            acc[0] =
                _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, pa.add(i)), _mm512_maskz_loadu_ps(mask, pb.add(i)), acc[0]);
            i += 16;
        }
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{MatRef, gemm_naive};

    #[test]
    fn every_isa_matches_naive() {
        for isa in Isa::supported() {
            for (m, n, k) in [(1, 1, 1), (3, 10, 100), (32, 10, 30976 / 8), (2, 3, 67)] {
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
