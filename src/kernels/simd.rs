//! The one SIMD layer every kernel is written against.
//!
//! A kernel body is written once, generic over a vector type `V: Lanes` (the GEMM's micro-kernel,
//! the dot products, the Winograd transforms), as a [`SimdTask`]. [`run`] then calls it with the
//! vector type of the chosen instruction set, inside a function compiled for that instruction
//! set, so that every `#[inline(always)]` vector operation below becomes one instruction:
//!
//! | [`Isa`]    | `V`                  | lanes | multiply-add            |
//! |------------|----------------------|-------|-------------------------|
//! | `Avx512`   | `__m512`             | 16    | fused (`vfmadd`)        |
//! | `Avx2`     | `__m256`             | 8     | fused (`vfmadd`)        |
//! | `Simd128`  | `wasm::F32x4`        | 4     | `a * b + c`, two roundings (wasm has no fused one outside relaxed SIMD) |
//! | `Portable` | [`Portable`] (8 f32) | 8     | `a * b + c`, two roundings |
//!
//! The portable type is a plain array that compilers vectorise for any target (SSE2 on a
//! baseline x86-64, NEON on aarch64). Its multiply-add is not fused because `f32::mul_add`
//! without hardware FMA is a slow library call. A single `f32` is a `Lanes` too, for the
//! channels left over when a count is not a whole number of vectors.
//!
//! [`run`] checks at run time that the CPU has the instruction set (and falls back to the
//! portable path if not), so no caller can make it execute an instruction the CPU lacks. On
//! WebAssembly the check is made when the module is compiled: SIMD128 is there only in a build
//! with `-C target-feature=+simd128`, as the browser build (`web/`) is.

// Lanes are indexed by number on purpose: fixed-length loops over arrays are what compilers
// turn into vector instructions.
#![allow(clippy::needless_range_loop)]

use super::isa::Isa;

/// The vector operations the kernels need, on `LANES` f32 values at once.
pub(crate) trait Lanes: Copy {
    const LANES: usize;
    /// A lane mask for the first `n` lanes (`n <= LANES`), for the ragged edges of a matrix.
    type Mask: Copy;

    /// # Safety
    /// `LANES` values must be readable at `p`, and the CPU must have the instruction set.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `LANES` values must be writable at `p`, and the CPU must have the instruction set.
    unsafe fn store(self, p: *mut f32);
    fn mask(n: usize) -> Self::Mask;
    /// The lanes in `mask` from `p`, zero elsewhere. Nothing outside the mask is read, so `p`
    /// may point past the end of an allocation when the mask is empty (compute it with
    /// `wrapping_add`).
    ///
    /// # Safety
    /// The masked lanes must be readable at `p`, and the CPU must have the instruction set.
    unsafe fn load_masked(p: *const f32, mask: Self::Mask) -> Self;
    /// Stores the lanes in `mask`; nothing outside it is written.
    ///
    /// # Safety
    /// The masked lanes must be writable at `p`, and the CPU must have the instruction set.
    unsafe fn store_masked(self, p: *mut f32, mask: Self::Mask);
    fn zero() -> Self;
    fn splat(value: f32) -> Self;
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn scale(self, factor: f32) -> Self;
    /// self * other, lane by lane (rounded once, as the scalar product).
    fn mul(self, other: Self) -> Self;
    /// self * b + c (fused on the SIMD paths, see the module docs).
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn neg(self) -> Self {
        Self::zero().sub(self)
    }
    fn relu(self) -> Self;
    /// Self where `y` > 0, zero elsewhere: the ReLU's backward.
    fn where_positive(self, y: Self) -> Self;
    /// The sum of the lanes, in a fixed order.
    fn reduce_add(self) -> f32;
    /// `v` in the lanes where it beats self (is greater, or is NaN where self is not), self
    /// elsewhere: the step of a running maximum that keeps the first of equal values and lets a
    /// NaN through, as PyTorch's max-pool does.
    fn take_max(self, v: Self) -> Self;
    /// 1.0 in the lanes where self equals `other` (or both are NaN), 0.0 elsewhere.
    fn equal_mask(self, other: Self) -> Self;
}

/// A kernel body generic over the vector type; see [`run`].
pub(crate) trait SimdTask {
    type Output;
    /// Runs the task with vectors of type `V`. Implementations are `#[inline(always)]`, so that
    /// they are compiled inside [`run`]'s per-instruction-set functions.
    fn run<V: Lanes>(self) -> Self::Output;
}

/// Runs `task` with the vector type of `isa`, or of the portable path if this CPU lacks `isa`.
#[inline(always)]
pub(crate) fn run<T: SimdTask>(isa: Isa, task: T) -> T::Output {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each function is called only on a CPU that has its instruction set.
        if isa == Isa::Avx512 && isa.is_supported() {
            return unsafe { x86::on_avx512(task) };
        }
        if isa == Isa::Avx2 && isa.is_supported() {
            return unsafe { x86::on_avx2(task) };
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if isa == Isa::Simd128 {
        return task.run::<wasm::F32x4>();
    }
    let _ = isa;
    task.run::<Portable>()
}

impl Lanes for f32 {
    const LANES: usize = 1;
    type Mask = bool;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { *p = self }
    }
    #[inline(always)]
    fn mask(n: usize) -> bool {
        n > 0
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, mask: bool) -> Self {
        if mask { unsafe { *p } } else { 0.0 }
    }
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, mask: bool) {
        if mask {
            unsafe { *p = self }
        }
    }
    #[inline(always)]
    fn zero() -> Self {
        0.0
    }
    #[inline(always)]
    fn splat(value: f32) -> Self {
        value
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
    fn mul(self, other: Self) -> Self {
        self * other
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    #[inline(always)]
    fn relu(self) -> Self {
        self.max(0.0)
    }
    #[inline(always)]
    fn where_positive(self, y: Self) -> Self {
        if y > 0.0 { self } else { 0.0 }
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        self
    }
    #[inline(always)]
    fn take_max(self, v: Self) -> Self {
        if v > self || (v.is_nan() && !self.is_nan()) { v } else { self }
    }
    #[inline(always)]
    fn equal_mask(self, other: Self) -> Self {
        if self == other || (self.is_nan() && other.is_nan()) { 1.0 } else { 0.0 }
    }
}

/// The portable path's vector: eight lanes in plain Rust.
#[derive(Clone, Copy)]
pub(crate) struct Portable([f32; 8]);

impl Portable {
    #[inline(always)]
    fn zip(self, other: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let mut out = [0.0; 8];
        for l in 0..8 {
            out[l] = f(self.0[l], other.0[l]);
        }
        Portable(out)
    }
}

impl Lanes for Portable {
    const LANES: usize = 8;
    type Mask = usize;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Portable(unsafe { std::ptr::read_unaligned(p as *const [f32; 8]) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 8], self.0) }
    }
    #[inline(always)]
    fn mask(n: usize) -> usize {
        n.min(8)
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, n: usize) -> Self {
        if n == 8 {
            return unsafe { Self::load(p) };
        }
        let mut out = [0.0; 8];
        for (l, value) in out.iter_mut().enumerate().take(n) {
            *value = unsafe { *p.add(l) };
        }
        Portable(out)
    }
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, n: usize) {
        if n == 8 {
            return unsafe { self.store(p) };
        }
        for (l, &value) in self.0.iter().enumerate().take(n) {
            unsafe { *p.add(l) = value };
        }
    }
    #[inline(always)]
    fn zero() -> Self {
        Portable([0.0; 8])
    }
    #[inline(always)]
    fn splat(value: f32) -> Self {
        Portable([value; 8])
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self.zip(other, |a, b| a + b)
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        self.zip(other, |a, b| a - b)
    }
    #[inline(always)]
    fn scale(self, factor: f32) -> Self {
        Portable(self.0.map(|v| v * factor))
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        self.zip(other, |a, b| a * b)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        let mut out = [0.0; 8];
        for l in 0..8 {
            out[l] = self.0[l] * b.0[l] + c.0[l];
        }
        Portable(out)
    }
    #[inline(always)]
    fn relu(self) -> Self {
        Portable(self.0.map(|v| v.max(0.0)))
    }
    #[inline(always)]
    fn where_positive(self, y: Self) -> Self {
        self.zip(y, |v, y| v.where_positive(y))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let v = self.0;
        ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
    }
    #[inline(always)]
    fn take_max(self, v: Self) -> Self {
        self.zip(v, |current, v| current.take_max(v))
    }
    #[inline(always)]
    fn equal_mask(self, other: Self) -> Self {
        self.zip(other, |a, b| a.equal_mask(b))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lanes, SimdTask};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn on_avx512<T: SimdTask>(task: T) -> T::Output {
        task.run::<__m512>()
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn on_avx2<T: SimdTask>(task: T) -> T::Output {
        task.run::<__m256>()
    }

    // SAFETY (every `unsafe` block below): these run only inside `on_avx512` / `on_avx2`, on a CPU
    // with the instruction set; memory access is the caller's contract, as the trait says.
    impl Lanes for __m512 {
        const LANES: usize = 16;
        type Mask = __mmask16;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self) }
        }
        #[inline(always)]
        fn mask(n: usize) -> __mmask16 {
            ((1u32 << n.min(16)) - 1) as u16
        }
        #[inline(always)]
        unsafe fn load_masked(p: *const f32, mask: __mmask16) -> Self {
            unsafe { _mm512_maskz_loadu_ps(mask, p) }
        }
        #[inline(always)]
        unsafe fn store_masked(self, p: *mut f32, mask: __mmask16) {
            unsafe { _mm512_mask_storeu_ps(p, mask, self) }
        }
        #[inline(always)]
        fn zero() -> Self {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        fn splat(value: f32) -> Self {
            unsafe { _mm512_set1_ps(value) }
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
        fn mul(self, other: Self) -> Self {
            unsafe { _mm512_mul_ps(self, other) }
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            unsafe { _mm512_fmadd_ps(self, b, c) }
        }
        #[inline(always)]
        fn relu(self) -> Self {
            unsafe { _mm512_max_ps(self, _mm512_setzero_ps()) }
        }
        #[inline(always)]
        fn where_positive(self, y: Self) -> Self {
            unsafe { _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, _mm512_setzero_ps()), self) }
        }
        #[inline(always)]
        fn reduce_add(self) -> f32 {
            unsafe { _mm512_reduce_add_ps(self) }
        }
        #[inline(always)]
        fn take_max(self, v: Self) -> Self {
            unsafe {
                let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, self);
                let v_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                let self_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self, self);
                _mm512_mask_blend_ps(greater | (v_nan & !self_nan), self, v)
            }
        }
        #[inline(always)]
        fn equal_mask(self, other: Self) -> Self {
            unsafe {
                let equal = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self, other);
                let both_nan =
                    _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self, self) & _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(other, other);
                _mm512_maskz_mov_ps(equal | both_nan, _mm512_set1_ps(1.0))
            }
        }
    }

    impl Lanes for __m256 {
        const LANES: usize = 8;
        type Mask = __m256i;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self) }
        }
        #[inline(always)]
        fn mask(n: usize) -> __m256i {
            unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
        }
        #[inline(always)]
        unsafe fn load_masked(p: *const f32, mask: __m256i) -> Self {
            unsafe { _mm256_maskload_ps(p, mask) }
        }
        #[inline(always)]
        unsafe fn store_masked(self, p: *mut f32, mask: __m256i) {
            unsafe { _mm256_maskstore_ps(p, mask, self) }
        }
        #[inline(always)]
        fn zero() -> Self {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn splat(value: f32) -> Self {
            unsafe { _mm256_set1_ps(value) }
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
        fn mul(self, other: Self) -> Self {
            unsafe { _mm256_mul_ps(self, other) }
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            unsafe { _mm256_fmadd_ps(self, b, c) }
        }
        #[inline(always)]
        fn relu(self) -> Self {
            unsafe { _mm256_max_ps(self, _mm256_setzero_ps()) }
        }
        #[inline(always)]
        fn where_positive(self, y: Self) -> Self {
            unsafe { _mm256_and_ps(self, _mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_setzero_ps())) }
        }
        #[inline(always)]
        fn reduce_add(self) -> f32 {
            unsafe {
                let half = _mm_add_ps(_mm256_castps256_ps128(self), _mm256_extractf128_ps::<1>(self));
                let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
                _mm_cvtss_f32(_mm_add_ss(quarter, _mm_movehdup_ps(quarter)))
            }
        }
        #[inline(always)]
        fn take_max(self, v: Self) -> Self {
            unsafe {
                let greater = _mm256_cmp_ps::<_CMP_GT_OQ>(v, self);
                let v_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
                let self_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(self, self);
                _mm256_blendv_ps(self, v, _mm256_or_ps(greater, _mm256_andnot_ps(self_nan, v_nan)))
            }
        }
        #[inline(always)]
        fn equal_mask(self, other: Self) -> Self {
            unsafe {
                let equal = _mm256_cmp_ps::<_CMP_EQ_OQ>(self, other);
                let both_nan = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(self, self),
                    _mm256_cmp_ps::<_CMP_UNORD_Q>(other, other),
                );
                _mm256_and_ps(_mm256_or_ps(equal, both_nan), _mm256_set1_ps(1.0))
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm {
    use super::Lanes;
    use core::arch::wasm32::*;

    /// Four f32 lanes of a WebAssembly `v128`.
    #[derive(Clone, Copy)]
    pub(crate) struct F32x4(v128);

    // SAFETY (every `unsafe` block below): the module is compiled with simd128, so the
    // instructions exist; memory access is the caller's contract, as the trait says.
    impl Lanes for F32x4 {
        const LANES: usize = 4;
        type Mask = usize;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            F32x4(unsafe { v128_load(p as *const v128) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { v128_store(p as *mut v128, self.0) }
        }
        #[inline(always)]
        fn mask(n: usize) -> usize {
            n.min(4)
        }
        #[inline(always)]
        unsafe fn load_masked(p: *const f32, n: usize) -> Self {
            if n == 4 {
                return unsafe { Self::load(p) };
            }
            let mut lanes = [0.0f32; 4];
            for (l, value) in lanes.iter_mut().enumerate().take(n) {
                *value = unsafe { *p.add(l) };
            }
            F32x4(f32x4(lanes[0], lanes[1], lanes[2], lanes[3]))
        }
        #[inline(always)]
        unsafe fn store_masked(self, p: *mut f32, n: usize) {
            if n == 4 {
                return unsafe { self.store(p) };
            }
            let mut lanes = [0.0f32; 4];
            unsafe { v128_store(lanes.as_mut_ptr() as *mut v128, self.0) };
            for (l, &value) in lanes.iter().enumerate().take(n) {
                unsafe { *p.add(l) = value };
            }
        }
        #[inline(always)]
        fn zero() -> Self {
            F32x4(f32x4_splat(0.0))
        }
        #[inline(always)]
        fn splat(value: f32) -> Self {
            F32x4(f32x4_splat(value))
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            F32x4(f32x4_add(self.0, other.0))
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            F32x4(f32x4_sub(self.0, other.0))
        }
        #[inline(always)]
        fn scale(self, factor: f32) -> Self {
            F32x4(f32x4_mul(self.0, f32x4_splat(factor)))
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            F32x4(f32x4_mul(self.0, other.0))
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            F32x4(f32x4_add(f32x4_mul(self.0, b.0), c.0))
        }
        #[inline(always)]
        fn relu(self) -> Self {
            // pmax(0, v) is `0 < v ? v : 0`: NaN becomes 0, as x86's max(v, 0) makes it.
            F32x4(f32x4_pmax(f32x4_splat(0.0), self.0))
        }
        #[inline(always)]
        fn where_positive(self, y: Self) -> Self {
            F32x4(v128_and(self.0, f32x4_gt(y.0, f32x4_splat(0.0))))
        }
        #[inline(always)]
        fn reduce_add(self) -> f32 {
            let v = self.0;
            (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<2>(v))
                + (f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<3>(v))
        }
        #[inline(always)]
        fn take_max(self, v: Self) -> Self {
            let greater = f32x4_gt(v.0, self.0);
            let (v_nan, self_nan) = (f32x4_ne(v.0, v.0), f32x4_ne(self.0, self.0));
            F32x4(v128_bitselect(v.0, self.0, v128_or(greater, v128_andnot(v_nan, self_nan))))
        }
        #[inline(always)]
        fn equal_mask(self, other: Self) -> Self {
            let both_nan = v128_and(f32x4_ne(self.0, self.0), f32x4_ne(other.0, other.0));
            F32x4(v128_and(v128_or(f32x4_eq(self.0, other.0), both_nan), f32x4_splat(1.0)))
        }
    }
}

/// Checks every vector operation of every instruction set this build can run against plain f32
/// arithmetic, panicking on the first difference. The unit test below runs it natively; the
/// browser build exports it so that tests/web.rs runs it on SIMD128 under Node.
#[doc(hidden)]
pub fn check_every_isa(test: &str) {
    Check.run::<f32>();
    for isa in Isa::tested(test) {
        run(isa, Check);
    }
}

struct Check;

impl SimdTask for Check {
    type Output = ();
    #[inline(always)]
    fn run<V: Lanes>(self) {
        let n = V::LANES;
        let a: Vec<f32> = (0..n).map(|l| l as f32 - 3.5).collect();
        let b: Vec<f32> = (0..n).map(|l| 0.25 * l as f32 + 1.0).collect();
        let c: Vec<f32> = (0..n).map(|l| if l % 3 == 0 { -1.0 } else { 2.0 }).collect();
        // SAFETY: every vector read or written lies in a slice of LANES values.
        unsafe {
            let (va, vb, vc) = (V::load(a.as_ptr()), V::load(b.as_ptr()), V::load(c.as_ptr()));
            let get = |v: V| {
                let mut out = vec![0.0f32; n];
                v.store(out.as_mut_ptr());
                out
            };
            let each = |f: &dyn Fn(usize) -> f32| (0..n).map(f).collect::<Vec<f32>>();
            assert_eq!(get(va.add(vb)), each(&|l| a[l] + b[l]));
            assert_eq!(get(va.sub(vb)), each(&|l| a[l] - b[l]));
            assert_eq!(get(va.scale(3.0)), each(&|l| a[l] * 3.0));
            assert_eq!(get(va.mul_add(vb, vc)), each(&|l| a[l] * b[l] + c[l]));
            assert_eq!(get(va.neg()), each(&|l| -a[l]));
            assert_eq!(get(va.relu()), each(&|l| a[l].max(0.0)));
            assert_eq!(get(vb.where_positive(va)), each(&|l| if a[l] > 0.0 { b[l] } else { 0.0 }));
            assert_eq!(get(V::splat(1.5)), vec![1.5; n]);
            assert_eq!(va.reduce_add(), a.iter().sum::<f32>());
            // A running maximum: ties keep the first (0.0 against -0.0 included), NaN wins once.
            let nan_or = |l: usize, x: f32| if l % 4 == 1 { f32::NAN } else { x };
            let p: Vec<f32> = (0..n).map(|l| nan_or(l, if l % 3 == 0 { -0.0 } else { b[l] })).collect();
            let q: Vec<f32> = (0..n)
                .map(|l| {
                    if l % 5 == 2 {
                        f32::NAN
                    } else if l % 3 == 0 {
                        0.0
                    } else {
                        c[l]
                    }
                })
                .collect();
            let got = get(V::load(p.as_ptr()).take_max(V::load(q.as_ptr())));
            for l in 0..n {
                let want = p[l].take_max(q[l]);
                assert_eq!(got[l].to_bits(), want.to_bits(), "take_max lane {l}: {} {}", p[l], q[l]);
            }
            let got = get(V::load(p.as_ptr()).equal_mask(V::load(q.as_ptr())));
            let same = get(V::load(p.as_ptr()).equal_mask(V::load(p.as_ptr())));
            for l in 0..n {
                let equal = p[l] == q[l] || (p[l].is_nan() && q[l].is_nan());
                assert_eq!((got[l], same[l]), (if equal { 1.0 } else { 0.0 }, 1.0), "equal_mask lane {l}");
            }
            for count in 0..=n {
                let mask = V::mask(count);
                let loaded = get(V::load_masked(a.as_ptr(), mask));
                assert_eq!(loaded, each(&|l| if l < count { a[l] } else { 0.0 }));
                let mut out = vec![9.0f32; n];
                vb.store_masked(out.as_mut_ptr(), mask);
                assert_eq!(out, each(&|l| if l < count { b[l] } else { 9.0 }));
            }
            // An empty mask reads and writes nothing, wherever it points.
            let nowhere = a.as_ptr().wrapping_add(usize::MAX / 8);
            assert_eq!(get(V::load_masked(nowhere, V::mask(0))), vec![0.0; n]);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_vector_type_computes_like_f32() {
        super::check_every_isa("every_vector_type_computes_like_f32");
    }
}
