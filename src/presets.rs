//! Layer 4: named training recipes, each an architecture and a [`TrainConfig`]. The command
//! line's `--preset NAME` starts from one and its explicit flags override it.
//!
//! | preset      | what |
//! |-------------|------|
//! | `seed`      | the original project's recipe, exactly (`digitnn train` with no flags) |
//! | `seed-plus` | the same network trained to generalise: augmentation, OneCycle, label smoothing |

use crate::data::augment::AugmentConfig;
use crate::model::Architecture;
use crate::names::named_enum;
use crate::optim::{OptimizerConfig, Schedule, ScheduleKind};
use crate::train::TrainConfig;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preset {
    #[default]
    Seed,
    SeedPlus,
}

named_enum!(Preset, "preset", [Seed => "seed", SeedPlus => "seed-plus"]);

impl Preset {
    pub fn architecture(self) -> Architecture {
        Architecture::seed_cnn()
    }

    pub fn train_config(self) -> TrainConfig {
        match self {
            Preset::Seed => TrainConfig::default(),
            Preset::SeedPlus => TrainConfig {
                batch_size: 64,
                optimizer: OptimizerConfig { lr: 2e-3, ..OptimizerConfig::default() },
                augment: Some(AugmentConfig::default()),
                schedule: Schedule { kind: ScheduleKind::OneCycle, warmup: 0.0 },
                label_smoothing: 0.1,
                ..TrainConfig::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_the_original_recipe_and_every_preset_is_valid() {
        assert_eq!(Preset::default().train_config().augment, None);
        assert_eq!(Preset::Seed.train_config().schedule, Schedule::default());
        for preset in Preset::ALL {
            preset.train_config().validate().unwrap();
            assert_eq!(preset.name().parse::<Preset>().unwrap(), preset);
        }
    }
}
