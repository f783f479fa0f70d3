//! A line reader's network (convolutions, BatchNorm, max-pool, `columns`, 1x1 and 3x3 convolutions,
//! flatten) and its CTC loss against PyTorch (tests/fixtures/line_cnn.safetensors, from
//! scripts/make_fixtures.py): per-column scores, each strip's loss and its gradient with respect
//! to the scores, and the parameter gradients of the mean loss, on every engine; and its ONNX
//! export's Reshape.

use super::tests::{assert_close, read_fixture};
use super::*;
use crate::nn::ctc::Ctc;
use safetensors::SafeTensors;

const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/line_cnn.safetensors");
const BLANK: usize = 10;

fn recorded_architecture() -> Architecture {
    let metadata = SafeTensors::read_metadata(FIXTURE).unwrap().1.metadata().clone().unwrap();
    serde_json::from_str(&metadata["architecture"]).unwrap()
}

#[test]
fn line_network_and_ctc_loss_match_pytorch() {
    let f = read_fixture(FIXTURE);
    let targets: Vec<Vec<u8>> =
        f["targets"].chunks(4).map(|row| row.iter().filter(|&&d| d >= 0.0).map(|&d| d as u8).collect()).collect();
    for engine in EngineConfig::every_supported("line_network_and_ctc_loss_match_pytorch") {
        let mut network = Network::with_engine(recorded_architecture(), 0, engine).unwrap();
        for t in network.tensors().to_vec() {
            network.params_mut()[t.range].copy_from_slice(&f[&t.name]);
        }
        for t in network.state_tensors().to_vec() {
            network.state_mut()[t.range].copy_from_slice(&f[&t.name]);
        }
        let scores = network.forward(&f["input"], 4, true).to_vec();
        assert_close(&format!("scores on {engine}"), &scores, &f["scores"], 1e-5, 1e-5);
        let classes = 11;
        let per_strip = scores.len() / 4;
        let mut ctc = Ctc::default();
        let mut grad = vec![0.0; scores.len()];
        for (i, target) in targets.iter().enumerate() {
            let strip = i * per_strip..(i + 1) * per_strip;
            let loss = ctc.loss(&scores[strip.clone()], classes, BLANK, target, 1.0, &mut grad[strip.clone()]);
            let want = f["losses"][i] as f64;
            assert!((loss - want).abs() < 1e-4 * (1.0 + want), "strip {i}: loss {loss} vs PyTorch {want}");
            assert_close(
                &format!("strip {i} score gradient"),
                &grad[strip.clone()],
                &f["grad.scores"][strip],
                1e-5,
                1e-4,
            );
        }
        grad.iter_mut().for_each(|g| *g /= 4.0);
        network.backward(&grad);
        for t in network.tensors().to_vec() {
            let want = &f[&format!("grad.{}", t.name)];
            assert_close(&format!("grad of {} on {engine}", t.name), &network.grads()[t.range], want, 1e-5, 1e-3);
        }
    }
}

#[test]
fn onnx_export_reshapes_columns() {
    let mut network = Network::new(recorded_architecture(), 0).unwrap();
    let bytes = onnx::export(&mut network);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Reshape"), "the columns layer exports as a Reshape");
}
