//! Layer 2: optimizers, one file per family, each following PyTorch's formulation step for step
//! so that tests can compare against values recorded from PyTorch (`scripts/make_fixtures.py`).
//! They work on the network's flat parameter and gradient buffers.

mod adam;
pub mod schedule;
mod sgd;

pub use adam::Adam;
pub use schedule::{Schedule, ScheduleKind};
pub use sgd::Sgd;

use crate::error::{Error, Result, Setting};
use crate::names::named_enum;

/// Updates parameters from their gradients.
pub trait Optimizer: Send {
    fn step(&mut self, params: &mut [f32], grads: &[f32]);
    /// Sets the learning rate of the following steps (a schedule calls it before each step).
    fn set_lr(&mut self, lr: f32);
}

/// The optimizers the command line offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptimizerKind {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    AdamW,
}

named_enum!(OptimizerKind, "optimizer", [
    Adam => "adam",
    Nesterov => "nesterov",
    Momentum => "momentum",
    Sgd => "sgd",
    AdamW => "adamw",
]);

impl OptimizerKind {
    /// The learning rate used unless told otherwise: Adam's 1e-3 is the original project's; plain
    /// and momentum SGD need a larger step to learn as much in the same epochs.
    pub fn default_lr(self) -> f32 {
        match self {
            OptimizerKind::Adam | OptimizerKind::AdamW => 1e-3,
            OptimizerKind::Sgd | OptimizerKind::Momentum | OptimizerKind::Nesterov => 1e-2,
        }
    }

    /// PyTorch's default weight decay: 0.01 for AdamW (its point), none for the others.
    pub fn default_weight_decay(self) -> f32 {
        if self == OptimizerKind::AdamW { 1e-2 } else { 0.0 }
    }
}

/// Everything needed to build an optimizer. `Default` is the seed recipe: Adam, lr 1e-3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// For momentum and Nesterov.
    pub momentum: f32,
    /// L2 penalty added to the gradient (decoupled for AdamW, as in PyTorch).
    pub weight_decay: f32,
    pub betas: (f32, f32),
    pub eps: f32,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }
}

impl OptimizerConfig {
    /// `kind` with its default learning rate and weight decay.
    pub fn recommended(kind: OptimizerKind) -> Self {
        OptimizerConfig { kind, lr: kind.default_lr(), weight_decay: kind.default_weight_decay(), ..Self::default() }
    }

    /// This configuration for `kind`: itself if it is `kind` already, else `kind`'s
    /// recommended settings (a preset's learning rate is tuned for its own optimizer).
    pub fn switched_to(self, kind: OptimizerKind) -> Self {
        if kind == self.kind { self } else { Self::recommended(kind) }
    }

    /// Checks the numbers a user can get wrong.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::setting(Setting::LearningRate, self.lr, "must be more than 0"));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::setting(Setting::Momentum, self.momentum, "must be in [0, 1)"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::setting(Setting::WeightDecay, self.weight_decay, "must be 0 or more"));
        }
        Ok(())
    }

    pub fn build(&self, n_params: usize) -> Box<dyn Optimizer> {
        match self.kind {
            OptimizerKind::Sgd => Box::new(Sgd::new(n_params, self.lr, 0.0, false, self.weight_decay)),
            OptimizerKind::Momentum => Box::new(Sgd::new(n_params, self.lr, self.momentum, false, self.weight_decay)),
            OptimizerKind::Nesterov => Box::new(Sgd::new(n_params, self.lr, self.momentum, true, self.weight_decay)),
            OptimizerKind::Adam => Box::new(Adam::new(n_params, self, false)),
            OptimizerKind::AdamW => Box::new(Adam::new(n_params, self, true)),
        }
    }
}

#[cfg(test)]
mod reference;
