//! Layer 1: pure functions on slices. The GEMM (with implicit im2col through offset tables), the
//! conv geometry that builds those tables, Winograd convolution for 3x3 kernels, the dot-product
//! kernel of the linear layer, and run-time SIMD dispatch. Each fast path has a naive
//! reference beside it and tests comparing the two.

pub mod conv;
pub mod dot;
pub mod gemm;
pub mod isa;
pub mod winograd;

pub use dot::matmul_nt;
pub use gemm::{Epilogue, IndexedA, IndexedB, MatRef, gemm, gemm_indexed, gemm_naive};
pub use isa::Isa;
