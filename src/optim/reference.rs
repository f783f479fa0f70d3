//! Every optimizer against the values PyTorch recorded in tests/fixtures/optimizers.json
//! (made by scripts/make_fixtures.py).

use super::{OptimizerConfig, OptimizerKind};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    initial: Vec<f32>,
    grads: Vec<Vec<f32>>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    optimizer: String,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    params_after_each_step: Vec<Vec<f32>>,
}

#[test]
fn every_optimizer_matches_pytorch() {
    let text = include_str!("../../tests/fixtures/optimizers.json");
    let fixture: Fixture = serde_json::from_str(text).unwrap();
    let mut seen = std::collections::HashSet::new();
    for case in &fixture.cases {
        let kind: OptimizerKind = case.optimizer.parse().unwrap();
        seen.insert(kind);
        let config = OptimizerConfig {
            kind,
            lr: case.lr,
            momentum: case.momentum,
            weight_decay: case.weight_decay,
            ..Default::default()
        };
        let mut optimizer = config.build(fixture.initial.len());
        let mut params = fixture.initial.clone();
        for (step, (grad, want)) in fixture.grads.iter().zip(&case.params_after_each_step).enumerate() {
            optimizer.step(&mut params, grad);
            for (i, (got, want)) in params.iter().zip(want).enumerate() {
                assert!(
                    (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{} (lr {}, wd {}) step {} param {i}: {got} vs PyTorch {want}",
                    case.optimizer,
                    case.lr,
                    case.weight_decay,
                    step + 1
                );
            }
        }
    }
    assert_eq!(seen.len(), OptimizerKind::ALL.len(), "every optimizer has reference values");
}
