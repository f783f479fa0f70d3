//! Run-time choice of the instruction set the kernels use.
//!
//! The best path the CPU supports is picked once, at first use. `DIGITNN_ISA=portable|avx2|avx512`
//! forces a path (for tests and for measuring); asking for one the CPU lacks falls back to the best
//! available, so a forced setting can never make the program crash on an older CPU.

use std::sync::OnceLock;

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

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

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
        [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|isa| isa.is_supported()).collect()
    }

    fn best() -> Isa {
        *Isa::supported().last().unwrap_or(&Isa::Portable)
    }

    fn from_name(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "portable" => Some(Isa::Portable),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }
}

/// The path in use for this process.
pub fn active() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| match std::env::var("DIGITNN_ISA").ok().as_deref().and_then(Isa::from_name) {
        Some(isa) if isa.is_supported() => isa,
        _ => Isa::best(),
    })
}
