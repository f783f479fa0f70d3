//! Layer 1: pure functions on slices. The GEMM (with implicit im2col through offset tables), the
//! conv geometry that builds those tables, Winograd convolution for 3x3 kernels, the dot-product
//! kernel of the linear layer, the CHW <-> HWC permutations, and the bf16 conversions and GEMM
//! micro-kernel of mixed precision (`bf16`, AVX512-BF16 only). Every other kernel is written once
//! over the SIMD layer (`simd`) and takes the instruction set (`Isa`) as an argument. Each fast
//! path has a naive reference beside it and tests comparing the two on every instruction set
//! this CPU has.

pub mod bf16;
pub mod channels;
pub mod conv;
pub mod dot;
pub mod gemm;
pub mod isa;
pub mod layout;
pub mod pool;
pub(crate) mod simd;
#[doc(hidden)]
pub use simd::check_every_isa;
pub mod winograd;

pub use dot::matmul_nt;
pub use gemm::{Epilogue, IndexedA, IndexedB, MatRef, gemm, gemm_indexed, gemm_indexed_serial, gemm_naive};
pub use isa::Isa;

/// The base address of an output that parallel tasks share, each writing only its own disjoint
/// part (a GEMM's tiles, a block of dot products).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: only a base address; every user writes disjoint elements from each task.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole Send wrapper, not the field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Deterministic pseudo-random values in [-1, 1) for tests (a 64-bit linear congruential
/// generator), shared by the kernel and layer tests.
#[cfg(test)]
pub(crate) fn test_values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
