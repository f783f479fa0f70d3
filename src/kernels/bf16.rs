//! Mixed precision: products of bf16 values summed in f32, as PyTorch's autocast computes
//! convolutions and linear layers in bf16.
//!
//! A bf16 value is the upper half of an f32 (8 exponent bits, 7 mantissa bits); rounding an f32 to
//! it keeps about 3 significant decimal digits. The hardware multiplies *pairs*: AVX512-BF16's
//! `VDPBF16PS` adds `a.lo * b.lo + a.hi * b.hi` to each f32 lane, where every 32-bit lane of `a`
//! and `b` holds two bf16 values that are neighbours along the reduction. So the GEMM here reads
//! `u32` elements, each a pair along k, through the same offset tables as the f32 GEMM
//! (`kernels::gemm`), and its operands are prepared by two conversions:
//!
//! ```text
//!   to_bf16_rows:    a row of f32 -> its bf16 values, neighbours paired   (pairs along a row)
//!   interleave_rows: two rows r0, r1 -> u32[j] = (r0[j], r1[j])           (pairs across rows)
//! ```
//!
//! A row of odd length gets a zero as the last pair's upper half, so padding adds nothing.
//! Every conversion rounds to nearest even (`VCVTNEPS2BF16`), and every path here needs
//! AVX512-BF16: without it the engine runs f32 (see `EngineConfig::resolved`). AMX tiles are not
//! written yet: the machine this was built on has no AMX (see the README).

// The micro-kernel indexes its register tile by row and vector on purpose, as the f32 one.
#![allow(clippy::needless_range_loop)]

use super::gemm::{self, Epilogue, IndexedA, IndexedB, Kernel, Tile};
use super::isa::Isa;

/// Whether this CPU multiplies bf16 pairs (AVX512-BF16, with the AVX-512F, BW and VL that every
/// such CPU has).
pub fn is_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The nearest bf16 value (ties to even), as an f32: what the bf16 kernels see of `x`. NaN stays
/// NaN. The reference for the tests; the kernels convert with the instruction.
pub fn round(x: f32) -> f32 {
    f32::from_bits(u32::from(to_bits(x)) << 16)
}

/// The bf16 bits nearest to `x` (ties to even), as `VCVTNEPS2BF16` gives them: subnormal inputs
/// become zero of the same sign.
pub fn to_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_subnormal() {
        return ((bits >> 16) & 0x8000) as u16;
    }
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// Panics unless this CPU has the bf16 kernels: asking for them elsewhere is a bug in the caller
/// (the engine configuration resolves bf16 to f32 on such CPUs).
fn require() {
    assert!(is_supported(), "bf16 kernels called on a CPU without AVX512-BF16");
}

/// Pairs of bf16 values per row of `len` values.
pub fn pairs(len: usize) -> usize {
    len.div_ceil(2)
}

/// `dst` = the rows of `src` (each `row_len` f32) in bf16, neighbours paired: each row becomes
/// `pairs(row_len)` u32 values, the last upper half zero when `row_len` is odd.
pub fn to_bf16_rows(src: &[f32], row_len: usize, dst: &mut [u32]) {
    require();
    assert!(row_len > 0 && src.len().is_multiple_of(row_len), "rows of equal length");
    let rows = src.len() / row_len;
    assert!(dst.len() >= rows * pairs(row_len), "destination too short");
    // SAFETY: the CPU has the instructions (checked above); lengths checked above.
    unsafe { x86::to_bf16_rows(src, row_len, dst) }
}

/// `dst[j] = (r0[j], r1[j])` in bf16 for j < r0.len(); a missing `r1` gives zeros.
pub fn interleave_rows(r0: &[f32], r1: Option<&[f32]>, dst: &mut [u32]) {
    require();
    assert!(r1.is_none_or(|r1| r1.len() == r0.len()) && dst.len() >= r0.len(), "row lengths");
    // SAFETY: as above.
    unsafe { x86::interleave_rows(r0, r1, dst) }
}

/// `dst` (`pairs(k) x n` u32) = the k x n row-major matrix `src` with rows paired: the B operand
/// of a product that reduces over its rows.
pub fn pair_rows(src: &[f32], k: usize, n: usize, dst: &mut [u32]) {
    assert!(src.len() >= k * n && dst.len() >= pairs(k) * n, "matrix sizes");
    for (p, out) in dst.chunks_mut(n.max(1)).enumerate().take(pairs(k)) {
        let r0 = &src[2 * p * n..(2 * p + 1) * n];
        let r1 = (2 * p + 1 < k).then(|| &src[(2 * p + 1) * n..(2 * p + 2) * n]);
        interleave_rows(r0, r1, out);
    }
}

/// C (+)= A·B where A and B hold bf16 pairs along k (so `k_offsets` count pairs), summed in
/// f32, split between the current rayon pool's threads. Offsets are checked as for
/// [`gemm::gemm_indexed`]; panics on a CPU without AVX512-BF16.
pub fn gemm_indexed(a: IndexedA<u32>, b: IndexedB<u32>, c: &mut [f32], ldc: usize, epilogue: Epilogue) {
    require();
    gemm::gemm_checked(Isa::Avx512, a, b, c, ldc, epilogue, true)
}

/// [`gemm_indexed`] on the calling thread only.
pub fn gemm_indexed_serial(a: IndexedA<u32>, b: IndexedB<u32>, c: &mut [f32], ldc: usize, epilogue: Epilogue) {
    require();
    gemm::gemm_checked(Isa::Avx512, a, b, c, ldc, epilogue, false)
}

impl gemm::Element for u32 {
    /// Six rows by up to four vectors of 16 columns, as the f32 AVX-512 kernel: 24 accumulators.
    fn kernel(_isa: Isa, n: usize) -> Kernel<u32> {
        let run: gemm::KernelFn<u32> = match n.div_ceil(16).clamp(1, 4) {
            1 => micro_kernel::<6, 1>,
            2 => micro_kernel::<6, 2>,
            3 => micro_kernel::<6, 3>,
            _ => micro_kernel::<6, 4>,
        };
        Kernel { mr: 6, nr: 16 * n.div_ceil(16).clamp(1, 4), run }
    }
}

fn micro_kernel<const MR: usize, const NV: usize>(_isa: Isa, tile: &Tile<u32>) {
    require();
    // SAFETY: the CPU has the instructions (checked above); the tile's offsets were checked by
    // `gemm_checked` (see `Tile`).
    unsafe { x86::micro_kernel::<MR, NV>(tile) }
}

/// Never called: `require` fails first on other targets.
#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    use super::super::gemm::Tile;
    pub(super) unsafe fn to_bf16_rows(_: &[f32], _: usize, _: &mut [u32]) {
        unreachable!()
    }
    pub(super) unsafe fn interleave_rows(_: &[f32], _: Option<&[f32]>, _: &mut [u32]) {
        unreachable!()
    }
    pub(super) unsafe fn micro_kernel<const MR: usize, const NV: usize>(_: &Tile<u32>) {
        unreachable!()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::gemm::Tile;
    use std::arch::x86_64::*;

    fn mask(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as u16
    }

    /// 16 (masked) f32 from `p` to 16 bf16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn load_bf16(p: *const f32, n: usize) -> __m256i {
        unsafe { std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask(n), p))) }
    }

    /// # Safety
    /// AVX512-BF16; `dst` holds `rows * pairs(row_len)` values (checked by the caller).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn to_bf16_rows(src: &[f32], row_len: usize, dst: &mut [u32]) {
        let pairs = row_len.div_ceil(2);
        for (row, out) in src.chunks_exact(row_len).zip(dst.chunks_mut(pairs)) {
            // Stored as u16 values: an odd row's last upper half is never stored, so the last
            // pair is cleared first.
            out[pairs - 1] = 0;
            let out16 = out.as_mut_ptr() as *mut i16;
            for start in (0..row_len).step_by(16) {
                let n = (row_len - start).min(16);
                unsafe {
                    let v = load_bf16(row.as_ptr().add(start), n);
                    _mm256_mask_storeu_epi16(out16.add(start), mask(n), v);
                }
            }
        }
    }

    /// # Safety
    /// AVX512-BF16; lengths checked by the caller.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn interleave_rows(r0: &[f32], r1: Option<&[f32]>, dst: &mut [u32]) {
        for start in (0..r0.len()).step_by(16) {
            let n = (r0.len() - start).min(16);
            unsafe {
                let lo = _mm512_cvtepu16_epi32(load_bf16(r0.as_ptr().add(start), n));
                let hi = match r1 {
                    Some(r1) => _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(load_bf16(r1.as_ptr().add(start), n))),
                    None => _mm512_setzero_si512(),
                };
                _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(start) as *mut i32, mask(n), _mm512_or_si512(lo, hi));
            }
        }
    }

    /// The f32 micro-kernel (`gemm::MicroKernel`) with pairs: one `VDPBF16PS` per row and
    /// vector per step of two k.
    ///
    /// # Safety
    /// AVX512-BF16; the tile's offsets checked (see `Tile`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn micro_kernel<const MR: usize, const NV: usize>(t: &Tile<u32>) {
        let mut masks = [0u16; NV];
        for (v, m) in masks.iter_mut().enumerate() {
            *m = mask(t.valid_cols.saturating_sub(v * 16));
        }
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        unsafe {
            for p in 0..t.k {
                let a_off = *t.a_k.add(p);
                let b_row = t.b.add(*t.b_k.add(p));
                let mut b = [_mm512_setzero_si512(); NV];
                for v in 0..NV {
                    b[v] = _mm512_maskz_loadu_epi32(masks[v], b_row.wrapping_add(v * 16) as *const i32);
                }
                for r in 0..MR {
                    let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(*t.rows[r].add(a_off) as i32));
                    for v in 0..NV {
                        acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, std::mem::transmute::<__m512i, __m512bh>(b[v]));
                    }
                }
            }
            for (r, acc_row) in acc.iter().enumerate().take(t.valid_rows) {
                let c_row = t.c.add(r * t.ldc);
                for v in 0..NV {
                    let c = c_row.wrapping_add(v * 16);
                    let mut sum = acc_row[v];
                    if t.accumulate {
                        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(masks[v], c));
                    }
                    if !t.bias.is_null() {
                        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(masks[v], t.bias.wrapping_add(v * 16)));
                    }
                    if t.relu {
                        sum = _mm512_max_ps(sum, _mm512_setzero_ps());
                    }
                    _mm512_mask_storeu_ps(c, masks[v], sum);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernels::gemm::{MatRef, gemm_naive};
    use crate::kernels::test_values as random;

    /// Whether the tests can run; if not, says so by name on stderr (not captured by the test
    /// harness), so that a machine without the path never passes it silently.
    pub(crate) fn available(test: &str) -> bool {
        if !is_supported() {
            let line = format!("SKIPPED {test}: this CPU has no AVX512-BF16 (the bf16 path runs f32 there)\n");
            std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes()).unwrap();
        }
        is_supported()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round(1.0), 1.0);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(round(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(round(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2.0 * 2f32.powi(-7));
        assert_eq!(round(-2.5e-40), -0.0);
        assert!(round(f32::NAN).is_nan());
        assert_eq!(round(f32::INFINITY), f32::INFINITY);
        assert_eq!(round(f32::MAX), f32::INFINITY, "the largest f32 rounds up past bf16's range");
    }

    /// The conversions agree with the scalar reference, odd lengths and the zero padding included.
    #[test]
    fn conversions_match_the_reference() {
        if !available("bf16 conversions") {
            return;
        }
        let mut values = random(3 * 37, 9);
        values[5] = 1.0 + 2f32.powi(-8);
        values[6] = 1e-39;
        let mut pairs_out = vec![u32::MAX; 3 * pairs(37)];
        to_bf16_rows(&values, 37, &mut pairs_out);
        for (row, out) in values.chunks(37).zip(pairs_out.chunks(pairs(37))) {
            for (j, &x) in row.iter().enumerate() {
                let half = (out[j / 2] >> (16 * (j % 2))) as u16;
                assert_eq!(half, to_bits(x), "{x}");
            }
            assert_eq!(out[18] >> 16, 0, "padding");
        }
        let (r0, r1) = (&values[..37], &values[37..74]);
        let mut inter = vec![u32::MAX; 37];
        interleave_rows(r0, Some(r1), &mut inter);
        for j in 0..37 {
            assert_eq!(inter[j], u32::from(to_bits(r0[j])) | u32::from(to_bits(r1[j])) << 16);
        }
        interleave_rows(r0, None, &mut inter);
        assert!(inter.iter().zip(r0).all(|(&v, &x)| v == u32::from(to_bits(x))));
    }

    /// Row-major A (m x k) and B (k x n) in pairs along k, with the tables the GEMM reads them
    /// through.
    struct Paired {
        a: Vec<u32>,
        b: Vec<u32>,
        rows: Vec<usize>,
        a_k: Vec<usize>,
        b_k: Vec<usize>,
        n: usize,
    }

    impl Paired {
        fn new(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Paired {
            let mut a_pairs = vec![0; m * pairs(k).max(1)];
            if k > 0 {
                to_bf16_rows(a, k, &mut a_pairs);
            }
            let mut b_pairs = vec![0; pairs(k) * n];
            pair_rows(b, k, n, &mut b_pairs);
            Paired {
                a: a_pairs,
                b: b_pairs,
                rows: (0..m).map(|i| i * pairs(k)).collect(),
                a_k: (0..pairs(k)).collect(),
                b_k: (0..pairs(k)).map(|p| p * n).collect(),
                n,
            }
        }

        fn gemm(&self, c: &mut [f32], ldc: usize, epilogue: Epilogue) {
            gemm_indexed(
                IndexedA { data: &self.a, row: &self.rows, k_offsets: &self.a_k },
                IndexedB { data: &self.b, k_offsets: &self.b_k, n: self.n },
                c,
                ldc,
                epilogue,
            );
        }
    }

    /// The bf16 GEMM against the f32 reference on bf16-rounded inputs: their products are exact
    /// in f32, so the two differ only by the order and rounding of the sums, at most about
    /// k ulps of the sum of |products| per element.
    #[test]
    fn gemm_matches_f32_on_rounded_inputs() {
        if !available("bf16 GEMM") {
            return;
        }
        for &(m, n, k) in &[(1, 1, 1), (5, 7, 3), (6, 16, 9), (13, 33, 17), (7, 64, 0), (37, 70, 129), (64, 10, 300)] {
            let a: Vec<f32> = random(m * k, 1).into_iter().map(round).collect();
            let b: Vec<f32> = random(k * n, 2).into_iter().map(round).collect();
            let bias = random(n, 3);
            let paired = Paired::new(&a, &b, m, n, k);
            for epilogue in [Epilogue::OVERWRITE, Epilogue { accumulate: true, bias: Some(&bias), relu: true }] {
                let ldc = n + 3;
                let start = random(m * ldc, 4);
                let (mut want, mut got) = (start.clone(), start.clone());
                gemm_naive(MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n), &mut want, ldc, epilogue);
                paired.gemm(&mut got, ldc, epilogue);
                for i in 0..m {
                    for j in 0..n {
                        // |start| and |bias| are below 1: the epilogue's additions count as two more.
                        let scale: f32 = (0..k).map(|p| (a[i * k + p] * b[p * n + j]).abs()).sum::<f32>() + 2.0;
                        let tol = (k as f32 + 2.0) * f32::EPSILON * scale;
                        let (g, w) = (got[i * ldc + j], want[i * ldc + j]);
                        assert!((g - w).abs() <= tol, "{m}x{n}x{k} ({i}, {j}): {g} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn threads_do_not_change_results() {
        if !available("bf16 GEMM threads") {
            return;
        }
        let (m, n, k) = (100, 70, 400);
        let paired = Paired::new(&random(m * k, 5), &random(k * n, 6), m, n, k);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut c = vec![0.0; m * n];
            pool.install(|| paired.gemm(&mut c, n, Epilogue::OVERWRITE));
            c
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
    }
}
