//! The engine configuration: every choice of how the engine computes, in one value that is given
//! to a network when it is built or loaded and carried down to its layers and kernels. Nothing
//! below the command line reads a flag or an environment variable; a library user picks a path
//! per network, and the tests run every path in one process.
//!
//! ```
//! use digitnn::{ConvAlgorithm, EngineConfig, Isa, model};
//! let engine = EngineConfig { isa: Isa::Portable, conv: ConvAlgorithm::Direct };
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

/// Which kernels a network runs on. `Default` is the fastest this CPU supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineConfig {
    /// The instruction set of every kernel.
    pub isa: Isa,
    /// How eligible 3x3 convolutions are computed.
    pub conv: ConvAlgorithm,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { isa: Isa::best(), conv: ConvAlgorithm::Auto }
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

    /// Every instruction set this CPU has with every convolution algorithm (for tests).
    pub fn every_supported() -> Vec<EngineConfig> {
        Isa::supported()
            .into_iter()
            .flat_map(|isa| ConvAlgorithm::ALL.into_iter().map(move |conv| EngineConfig { isa, conv }))
            .collect()
    }
}

impl fmt::Display for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} kernels, {} convolutions", self.isa, self.conv)
    }
}
