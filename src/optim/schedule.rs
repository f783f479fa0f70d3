//! Learning-rate schedules: the factor the base learning rate is multiplied by at each step.
//!
//! ```text
//! constant  1
//! cosine    0.5 (1 + cos(pi t))                          t: 0 -> 1 over the steps after warm-up
//! step      1, then 0.1 from half-way, 0.01 from three quarters
//! onecycle  1/25 -> 1 over the warm-up (30% of the steps unless set), then cosine to 1/25e4,
//!           as torch.optim.lr_scheduler.OneCycleLR with its defaults (without its cycling of
//!           the momentum or Adam's beta1)
//! ```
//! A warm-up (a fraction of all steps) raises the factor linearly from 1/25 first; onecycle's own
//! rise is a cosine.

use crate::error::{Error, Result, Setting};
use crate::names::named_enum;
use std::f32::consts::PI;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScheduleKind {
    /// The seed recipe: the same learning rate throughout.
    #[default]
    Constant,
    OneCycle,
    Cosine,
    Step,
}

named_enum!(ScheduleKind, "schedule", [
    Constant => "constant",
    OneCycle => "onecycle",
    Cosine => "cosine",
    Step => "step",
]);

/// A schedule and its warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    /// The fraction of all steps spent warming up (onecycle: its rise; 0 means its default 0.3).
    pub warmup: f32,
}

/// What the learning rate starts from and onecycle ends at, relative to its peak (PyTorch's
/// OneCycleLR: div_factor 25, final_div_factor 1e4).
const START: f32 = 1.0 / 25.0;
const END: f32 = START / 1e4;

impl Schedule {
    pub fn validate(&self) -> Result<()> {
        if !(self.warmup.is_finite() && (0.0..1.0).contains(&self.warmup)) {
            return Err(Error::setting(Setting::Warmup, self.warmup, "must be a fraction of the steps in [0, 1)"));
        }
        Ok(())
    }

    /// The factor for step `step` (0-based) of `total`.
    pub fn factor(&self, step: usize, total: usize) -> f32 {
        let t = step as f32 / total.max(1) as f32;
        let warmup = if self.kind == ScheduleKind::OneCycle && self.warmup == 0.0 { 0.3 } else { self.warmup };
        let cosine = |from: f32, to: f32, t: f32| to + (from - to) * 0.5 * (1.0 + (PI * t.clamp(0.0, 1.0)).cos());
        if t < warmup {
            let rise = t / warmup;
            return if self.kind == ScheduleKind::OneCycle {
                cosine(START, 1.0, rise)
            } else {
                START + (1.0 - START) * rise
            };
        }
        let after = if warmup < 1.0 { (t - warmup) / (1.0 - warmup) } else { 1.0 };
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Cosine => cosine(1.0, 0.0, after),
            ScheduleKind::OneCycle => cosine(1.0, END, after),
            ScheduleKind::Step if after >= 0.75 => 0.01,
            ScheduleKind::Step if after >= 0.5 => 0.1,
            ScheduleKind::Step => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_have_their_shapes() {
        let at = |kind, warmup, step| Schedule { kind, warmup }.factor(step, 100);
        assert_eq!(at(ScheduleKind::Constant, 0.0, 0), 1.0);
        assert_eq!(at(ScheduleKind::Constant, 0.0, 99), 1.0);
        assert!((at(ScheduleKind::Constant, 0.1, 0) - START).abs() < 1e-6);
        assert!((at(ScheduleKind::Constant, 0.1, 5) - (START + 1.0) / 2.0).abs() < 1e-6);
        assert_eq!(at(ScheduleKind::Cosine, 0.0, 0), 1.0);
        assert!((at(ScheduleKind::Cosine, 0.0, 50) - 0.5).abs() < 1e-6);
        assert!(at(ScheduleKind::Cosine, 0.0, 99) < 1e-3);
        assert_eq!((at(ScheduleKind::Step, 0.0, 49), at(ScheduleKind::Step, 0.0, 50)), (1.0, 0.1));
        assert_eq!(at(ScheduleKind::Step, 0.0, 80), 0.01);
        // OneCycle: 1/25 at the start, 1 after 30% (or the warm-up given), then down to 1/25e4.
        assert!((at(ScheduleKind::OneCycle, 0.0, 0) - START).abs() < 1e-6);
        assert!((at(ScheduleKind::OneCycle, 0.0, 30) - 1.0).abs() < 1e-6);
        assert!((at(ScheduleKind::OneCycle, 0.25, 25) - 1.0).abs() < 1e-6);
        assert!(at(ScheduleKind::OneCycle, 0.0, 99) < 1e-3);
        assert!((Schedule { kind: ScheduleKind::OneCycle, warmup: 0.0 }.factor(100, 100) - END).abs() < 1e-9);
    }
}
