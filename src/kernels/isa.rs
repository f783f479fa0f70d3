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
    /// WebAssembly SIMD128 (4 lanes of f32). A wasm module either has it or not: it is compiled
    /// in with `-C target-feature=+simd128` (every current browser and Node runs it).
    Simd128,
}

named_enum!(Isa, "instruction set", [Portable => "portable", Avx2 => "avx2", Avx512 => "avx512", Simd128 => "simd128"]);

impl Isa {
    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every path this CPU can run, best last.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_supported()).collect()
    }

    /// Every path this CPU can run, for a test that loops over them: the paths it cannot run are
    /// named on stderr (which the test harness does not capture), so that a machine without one
    /// never passes its test silently.
    #[doc(hidden)]
    pub fn tested(test: &str) -> Vec<Isa> {
        for isa in Isa::ALL.into_iter().filter(|isa| !isa.is_supported()) {
            let why = match isa {
                Isa::Simd128 => "it runs only in a wasm32 build with simd128 (tests/web.rs runs it under Node)",
                _ => "this CPU does not have it",
            };
            let line = format!("SKIPPED {test} on {isa}: {why}\n");
            std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes()).ok();
        }
        Isa::supported()
    }

    /// The fastest path this CPU can run.
    pub fn best() -> Isa {
        *Isa::supported().last().unwrap_or(&Isa::Portable)
    }
}
