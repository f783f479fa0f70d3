//! The training-recipe flags shared by `train` and `compare`: a preset and what overrides it.

use digitnn::data::augment::AugmentConfig;
use digitnn::model::Architecture;
use digitnn::optim::ScheduleKind;
use digitnn::presets::{Overrides, Preset};
use digitnn::train::TrainConfig;

#[derive(clap::Args)]
pub struct RecipeArgs {
    /// A named recipe (seed, seed-plus, best, fast, reader, numbers); the flags below override its settings
    #[arg(long, default_value_t = Preset::default())]
    pub preset: Preset,
    /// seed | fast | best | reader | FILE.json (a list of layers, or {"input": [c, h, w], "layers": [...]})
    /// [default: the preset's]
    #[arg(long)]
    arch: Option<String>,
    /// [default: the preset's; seed: 10]
    #[arg(long)]
    epochs: Option<usize>,
    /// [default: the preset's; seed: 32]
    #[arg(long)]
    batch_size: Option<usize>,
    /// constant | onecycle | cosine | step [default: the preset's; seed: constant]
    #[arg(long)]
    schedule: Option<ScheduleKind>,
    /// Fraction of the steps spent warming the learning rate up [default: the preset's: 0]
    #[arg(long)]
    warmup: Option<f32>,
    /// A fresh random affine transform of every training image every epoch
    #[arg(long)]
    augment: bool,
    /// Turn the preset's augmentation off
    #[arg(long, conflicts_with = "augment")]
    no_augment: bool,
    /// Also an elastic distortion (Simard et al. 2003) of every training image (implies --augment)
    #[arg(long)]
    elastic: bool,
    /// Largest rotation of --augment, degrees
    #[arg(long, value_name = "DEG", default_value_t = AugmentConfig::default().rotation)]
    rotation: f32,
    /// Largest relative change of size of --augment
    #[arg(long, value_name = "FRACTION", default_value_t = AugmentConfig::default().scale)]
    scale: f32,
    /// Largest shift of --augment, pixels
    #[arg(long, value_name = "PIXELS", default_value_t = AugmentConfig::default().translation)]
    translate: f32,
    /// Largest shear of --augment, degrees
    #[arg(long, value_name = "DEG", default_value_t = AugmentConfig::default().shear)]
    shear: f32,
    /// Strength (0 to 1) of --augment's intensity changes: grey background, faint ink, noise
    /// [default: the preset's; seed-plus and best: 1, else 0]
    #[arg(long, value_name = "STRENGTH")]
    intensity: Option<f32>,
    /// Part of the target spread over all classes [default: the preset's; seed: 0]
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Evaluate and save an exponential moving average of the weights with this decay (0.999)
    #[arg(long, value_name = "DECAY")]
    ema: Option<f32>,
    /// Train each epoch on this many images of its shuffled order [default: the preset's; all]
    #[arg(long, value_name = "N")]
    epoch_images: Option<usize>,
    /// Seeds the initial weights, the shuffling and the augmentation
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Keep the files' order every epoch, as the original project did
    #[arg(long)]
    no_shuffle: bool,
}

impl RecipeArgs {
    /// The architecture: `--arch` (a name or a JSON file), else the preset's.
    pub fn architecture(&self) -> anyhow::Result<Architecture> {
        match &self.arch {
            Some(arch) => parse_architecture(arch),
            None => Ok(self.preset.architecture()),
        }
    }

    /// What the explicit flags change of the preset's recipe (not the optimizer: `train`'s own
    /// flags).
    pub fn overrides(&self) -> Overrides {
        let preset = self.preset.train_config();
        let ranges = AugmentConfig {
            rotation: self.rotation,
            scale: self.scale,
            translation: self.translate,
            shear: self.shear,
            // The preset's own elastic distortion is kept (none has one yet); --elastic adds it.
            elastic: preset.augment.and_then(|a| a.elastic),
            elastic_share: preset.augment.map_or(1.0, |a| a.elastic_share),
            intensity: self.intensity.unwrap_or(preset.augment.map_or(0.0, |a| a.intensity)),
            degrade: preset.augment.map_or(0.0, |a| a.degrade),
            reprepare: preset.augment.map_or(0.0, |a| a.reprepare),
        };
        Overrides {
            epochs: self.epochs,
            batch_size: self.batch_size,
            schedule: self.schedule,
            warmup: self.warmup,
            augment: if self.no_augment { Some(false) } else { self.augment.then_some(true) },
            augment_ranges: Some(ranges),
            elastic: self.elastic,
            label_smoothing: self.label_smoothing,
            ema: self.ema,
            epoch_images: self.epoch_images,
            seed: Some(self.seed),
            shuffle: Some(!self.no_shuffle),
            ..Overrides::default()
        }
    }

    /// The preset's recipe with every explicit flag applied (the optimizer is the preset's).
    pub fn config(&self) -> TrainConfig {
        self.preset.config_with(&self.overrides())
    }
}

/// An `--arch` value: a named architecture, or a JSON file of one.
pub fn parse_architecture(arch: &str) -> anyhow::Result<Architecture> {
    if let Some(named) = Architecture::named(arch) {
        return Ok(named);
    }
    let names = Architecture::NAMES.join(", ");
    let text = std::fs::read(arch)
        .map_err(|e| anyhow::anyhow!("--arch {arch}: not one of {names}, and cannot read it as a file: {e}"))?;
    if text.len() > 1 << 20 {
        anyhow::bail!("--arch {arch}: larger than 1 MiB, not an architecture");
    }
    Architecture::from_json(&String::from_utf8_lossy(&text)).map_err(|e| anyhow::anyhow!("--arch {arch}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        recipe: RecipeArgs,
    }

    /// `digitnn train --preset NAME` trains the preset's recipe: with no other flag, the
    /// augmentation the flags rebuild is the preset's own (the reader's damage share included).
    #[test]
    fn a_preset_alone_trains_its_own_augmentation() {
        for preset in Preset::ALL {
            let flags = Flags::parse_from(["train", "--preset", preset.name()]);
            assert_eq!(flags.recipe.config().augment, preset.train_config().augment, "{}", preset.name());
        }
    }
}
