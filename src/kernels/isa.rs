//! The instruction sets the kernels are written for, and which of them this CPU can run.
//!
//! Nothing here is global: the engine configuration (`crate::EngineConfig`) names the instruction
//! set, and every kernel takes it as an argument. A kernel asked for one the CPU lacks runs the
//! portable path instead (see `kernels::simd`), so no setting can make the program execute an
//! instruction the CPU does not have.

use crate::names::named_enum;

/// One implementation of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust, no architecture intrinsics: builds and runs on every target.
    Portable,
    /// x86-64 AVX2 + FMA (8 lanes of f32).
    Avx2,
    /// x86-64 AVX-512F (16 lanes of f32).
    Avx512,
}

named_enum!(Isa, "instruction set", [Portable => "portable", Avx2 => "avx2", Avx512 => "avx512"]);

impl Isa {
    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run, best last.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_supported()).collect()
    }

    /// The fastest path this CPU can run.
    pub fn best() -> Isa {
        *Isa::supported().last().unwrap_or(&Isa::Portable)
    }
}
