//! The engine configuration: every choice of how the engine computes, in one value that is given
//! to a network when it is built or loaded and carried down to its layers and kernels. Nothing
//! below the command line reads a flag or an environment variable; a library user picks a path
//! per network, and the tests run every path in one process.
//!
//! ```
//! use digitnn::{ConvAlgorithm, EngineConfig, Isa, Precision, model};
//! let engine = EngineConfig { isa: Isa::Portable, conv: ConvAlgorithm::Direct, precision: Precision::Fp32 };
//! let network = model::Network::with_engine(model::Architecture::seed_cnn(), 0, engine)?;
//! assert_eq!(network.engine(), engine);
//! # Ok::<(), digitnn::Error>(())
//! ```

use crate::error::{Error, Result};
pub use crate::kernels::Isa;
use crate::names::named_enum;
use std::fmt;

/// How 3x3 stride-1 convolutions with at least [`WINOGRAD_MIN_CHANNELS`] input and output
/// channels are computed. Every other convolution is direct (an implicit-im2col GEMM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvAlgorithm {
    /// Winograd with the tile size that needs the fewest multiplications for the image size.
    #[default]
    Auto,
    /// Always the direct method.
    Direct,
    /// Winograd F(2x2, 3x3).
    WinogradF2,
    /// Winograd F(4x4, 3x3).
    WinogradF4,
}

/// Fewer channels than this and Winograd's transforms cost more than the multiplications they
/// save.
pub const WINOGRAD_MIN_CHANNELS: usize = 8;

named_enum!(ConvAlgorithm, "convolution algorithm", [
    Auto => "auto",
    Direct => "direct",
    WinogradF2 => "winograd2",
    WinogradF4 => "winograd4",
]);

/// How the products of the convolutions are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 throughout.
    #[default]
    Fp32,
    /// Mixed precision as PyTorch's autocast: the products of the convolutions where it pays
    /// (Winograd F(2x2) with 64 or more channels under `Auto`, every F(2x2) when forced; see
    /// `nn::Conv2d`) take bf16 inputs and sum in f32; the other layers, weights, gradients, the
    /// optimizer's state, the loss and the softmax stay f32. Runs on the AVX-512 kernels of a CPU
    /// with AVX512-BF16, f32 elsewhere (see [`EngineConfig::runs_bf16`]).
    Bf16,
}

named_enum!(Precision, "precision", [Fp32 => "fp32", Bf16 => "bf16"]);

/// Which kernels a network runs on. `Default` is the fastest this CPU supports, in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineConfig {
    /// The instruction set of every kernel.
    pub isa: Isa,
    /// How eligible 3x3 convolutions are computed.
    pub conv: ConvAlgorithm,
    /// f32, or bf16 products summed in f32.
    pub precision: Precision,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { isa: Isa::best(), conv: ConvAlgorithm::Auto, precision: Precision::Fp32 }
    }
}

impl EngineConfig {
    /// Refuses an instruction set this CPU cannot run. (The kernels would run the portable path
    /// instead; refusing says so rather than measuring the wrong thing.)
    pub fn check(&self) -> Result<()> {
        if !self.isa.is_supported() {
            let supported: Vec<&str> = Isa::supported().into_iter().map(Isa::name).collect();
            return Err(Error::Invalid(format!(
                "this CPU cannot run the {} kernels (it can run: {})",
                self.isa,
                supported.join(", ")
            )));
        }
        Ok(())
    }

    /// Whether the bf16 kernels run: bf16 was asked for, with the AVX-512 kernels, on a CPU with
    /// AVX512-BF16. Otherwise a bf16 configuration computes in f32.
    pub fn runs_bf16(&self) -> bool {
        self.precision == Precision::Bf16 && self.isa == Isa::Avx512 && crate::kernels::bf16::is_supported()
    }

    /// What to tell the user when bf16 was asked for but runs in f32, and why.
    pub fn precision_note(&self) -> Option<String> {
        if self.precision != Precision::Bf16 || self.runs_bf16() {
            return None;
        }
        let why = if !crate::kernels::bf16::is_supported() {
            "this CPU has no AVX512-BF16 (nor do the kernels use AMX yet)".to_string()
        } else {
            format!("the bf16 kernels need the avx512 instruction set, not {}", self.isa)
        };
        Some(format!("note: bf16 runs in fp32 here: {why}"))
    }

    /// Every instruction set this CPU has with every convolution algorithm, in f32, for the test
    /// named `test` (which says on stderr which instruction sets it skips: [`Isa::tested`]).
    #[doc(hidden)]
    pub fn every_supported(test: &str) -> Vec<EngineConfig> {
        Isa::tested(test)
            .into_iter()
            .flat_map(|isa| {
                ConvAlgorithm::ALL.into_iter().map(move |conv| EngineConfig { isa, conv, precision: Precision::Fp32 })
            })
            .collect()
    }

    /// Every convolution algorithm on the bf16 kernels, if this CPU has them (for tests).
    pub fn every_bf16() -> Vec<EngineConfig> {
        ConvAlgorithm::ALL
            .into_iter()
            .map(|conv| EngineConfig { isa: Isa::Avx512, conv, precision: Precision::Bf16 })
            .filter(EngineConfig::runs_bf16)
            .collect()
    }
}

impl fmt::Display for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} kernels, {} convolutions, {}", self.isa, self.conv, self.precision)
    }
}
