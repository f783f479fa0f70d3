//! A BatchNorm network (the `best` architecture) against PyTorch (tests/fixtures/best_cnn.*,
//! from scripts/make_fixtures.py): training-mode logits, gradients and running statistics,
//! evaluation-mode logits through the folded network, and file round trips; and the `reader`
//! network's eleventh output, "not a digit" (tests/fixtures/reader_cnn.safetensors).

use super::tests::{assert_close, read_fixture, step_on_fixture};
use super::*;
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/best_cnn.safetensors");
const PT_FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/best_cnn.pt");

fn fixture() -> HashMap<String, Vec<f32>> {
    read_fixture(FIXTURE)
}

/// The best architecture with its dropout off, as the fixture was recorded.
fn recorded_architecture() -> Architecture {
    without_dropout(Architecture::best_cnn())
}

fn without_dropout(mut architecture: Architecture) -> Architecture {
    for layer in &mut architecture.layers {
        if let LayerSpec::Dropout { p } = layer {
            *p = 0.0;
        }
    }
    architecture
}

fn network_with_pytorch_state(f: &HashMap<String, Vec<f32>>, engine: EngineConfig) -> Network {
    with_pytorch_state(recorded_architecture(), f, engine)
}

fn with_pytorch_state(architecture: Architecture, f: &HashMap<String, Vec<f32>>, engine: EngineConfig) -> Network {
    let mut network = Network::with_engine(architecture, 0, engine).unwrap();
    for t in network.tensors().to_vec() {
        network.params_mut()[t.range].copy_from_slice(&f[&t.name]);
    }
    for t in network.state_tensors().to_vec() {
        network.state_mut()[t.range].copy_from_slice(&f[&t.name]);
    }
    network
}

/// The reader's eleventh output on every engine: training-mode logits, the loss with label
/// smoothing 0.1 over 11 classes with one image labelled "not a digit", and the last layer's
/// gradients, against PyTorch's `CrossEntropyLoss(label_smoothing=0.1)`.
#[test]
fn the_not_a_digit_output_matches_pytorch() {
    const READER: &[u8] = include_bytes!("../../tests/fixtures/reader_cnn.safetensors");
    let metadata = SafeTensors::read_metadata(READER).unwrap().1.metadata().clone().unwrap();
    let layers: Vec<LayerSpec> = serde_json::from_str(&metadata["architecture"]).unwrap();
    assert_eq!(layers, without_dropout(Architecture::reader_cnn()).layers);
    let f = read_fixture(READER);
    let labels: Vec<u8> = f["labels"].iter().map(|&l| l as u8).collect();
    assert!(labels.contains(&(crate::data::nondigit::NOT_A_DIGIT as u8)));
    for engine in EngineConfig::every_supported("the_not_a_digit_output_matches_pytorch") {
        let mut network = with_pytorch_state(without_dropout(Architecture::reader_cnn()), &f, engine);
        let logits = network.forward(&f["input"], 4, true).to_vec();
        assert_close(&format!("reader logits on {engine}"), &logits, &f["logits"], 1e-5, 0.0);
        let mut grad_logits = vec![0.0; logits.len()];
        let loss = crate::nn::loss::cross_entropy_smoothed(&logits, &labels, 11, 0.1, &mut grad_logits);
        assert!((loss - f["loss"][0]).abs() < 1e-5, "loss {loss} vs PyTorch {}", f["loss"][0]);
        network.backward(&grad_logits);
        let head: Vec<_> = network.tensors().iter().rev().take(2).cloned().collect();
        for t in head {
            let want = &f[&format!("grad.{}", t.name)];
            assert_close(&format!("{} gradient on {engine}", t.name), &network.grads()[t.range], want, 1e-5, 1e-4);
        }
    }
}

#[test]
fn the_fixture_is_the_best_architecture() {
    let metadata = SafeTensors::read_metadata(FIXTURE).unwrap().1.metadata().clone().unwrap();
    let layers: Vec<LayerSpec> = serde_json::from_str(&metadata["architecture"]).unwrap();
    assert_eq!(layers, recorded_architecture().layers);
}

/// On every instruction set and convolution algorithm this CPU has: training-mode logits, loss,
/// gradients and running statistics, then evaluation-mode logits (the folded network) with the
/// updated statistics.
#[test]
fn batchnorm_network_matches_pytorch_in_training_and_evaluation() {
    let f = fixture();
    for engine in EngineConfig::every_supported("batchnorm_network_matches_pytorch_in_training_and_evaluation") {
        let mut network = network_with_pytorch_state(&f, engine);
        let (logits, loss) = step_on_fixture(&mut network, &f);
        assert_close(&format!("training logits on {engine}"), &logits, &f["logits"], 1e-5, 0.0);
        assert!((loss - f["loss"][0]).abs() < 1e-5, "loss {loss} vs PyTorch {}", f["loss"][0]);
        for t in network.tensors().to_vec() {
            let want = &f[&format!("grad.{}", t.name)];
            let got = &network.grads()[t.range];
            assert_close(&format!("grad of {} on {engine}", t.name), got, want, 1e-5, 0.0);
        }
        for t in network.state_tensors().to_vec() {
            let want = &f[&format!("trained.{}", t.name)];
            assert_close(&format!("{} on {engine}", t.name), &network.state()[t.range], want, 1e-5, 1e-5);
        }
        let eval_logits = network.forward(&f["input"], 4, false).to_vec();
        assert_close(&format!("evaluation logits on {engine}"), &eval_logits, &f["eval_logits"], 1e-5, 0.0);
    }
}

#[test]
fn folding_removes_every_batchnorm_after_a_convolution() {
    let mut network = Network::new(Architecture::best_cnn(), 0).unwrap();
    let folded = network.for_inference();
    assert!(!folded.architecture.layers.iter().any(|l| matches!(l, LayerSpec::BatchNorm2d { .. })));
    assert!(folded.state().is_empty());
    // A BatchNorm after a pooling layer has nothing to fold into and stays.
    let mut architecture = Architecture::fast_cnn();
    architecture.layers.insert(2, LayerSpec::BatchNorm2d { num_features: 24, eps: 1e-5, momentum: 0.1 });
    let mut network = Network::new(architecture.clone(), 0).unwrap();
    assert_eq!(network.for_inference().architecture, architecture);
}

#[test]
fn pytorch_pt_file_loads_as_the_best_architecture_with_its_state() {
    let f = fixture();
    let (network, info) = from_bytes(PT_FIXTURE, Path::new("best.pt")).unwrap();
    assert_eq!(info.architecture, Architecture::best_cnn());
    for t in network.tensors() {
        assert_eq!(&network.params()[t.range.clone()], &f[&t.name][..], "{}", t.name);
    }
    for t in network.state_tensors() {
        assert_eq!(&network.state()[t.range.clone()], &f[&t.name][..], "{}", t.name);
    }
    assert_eq!(network.state().last(), Some(&7.0), "num_batches_tracked read as int64");
}

/// safetensors and .pt files keep every parameter and every running statistic, and the loaded
/// network predicts the same.
#[test]
fn batchnorm_network_round_trips_through_safetensors_and_pt() {
    let f = fixture();
    let mut network = network_with_pytorch_state(&f, EngineConfig::default());
    network.forward(&f["input"], 4, true);
    network.set_engine(EngineConfig::default()).unwrap();
    let mut best = Network::new(Architecture::best_cnn(), 0).unwrap();
    best.params_mut().copy_from_slice(network.params());
    best.state_mut().copy_from_slice(network.state());
    let want = best.forward(&f["input"], 4, false).to_vec();
    let safetensors = to_bytes(&best, None).unwrap();
    let pt = to_pt_bytes(&best).unwrap();
    for (bytes, name) in [(&safetensors, "m.safetensors"), (&pt, "m.pt")] {
        let (mut back, info) = from_bytes(bytes, Path::new(name)).unwrap();
        assert_eq!(info.architecture, Architecture::best_cnn(), "{name}");
        assert_eq!((back.params(), back.state()), (best.params(), best.state()), "{name}");
        assert_eq!(back.forward(&f["input"], 4, false), &want[..], "{name}");
    }
    let header = SafeTensors::deserialize(&safetensors).unwrap();
    let counter = header.tensor("model.1.num_batches_tracked").unwrap();
    assert_eq!((counter.dtype(), counter.shape()), (safetensors::Dtype::I64, &[][..]));
    assert_eq!(i64::from_le_bytes(counter.data().try_into().unwrap()), 8);
}

#[test]
fn a_negative_running_variance_is_refused() {
    let mut network = Network::new(Architecture::best_cnn(), 0).unwrap();
    let t = network.state_tensors().iter().find(|t| t.name.ends_with("running_var")).unwrap().clone();
    network.state_mut()[t.range.start] = -1.0;
    let bytes = to_bytes(&network, None).unwrap();
    let error = from_bytes(&bytes, Path::new("m.safetensors")).err().unwrap().to_string();
    assert!(error.contains("negative variance"), "{error}");
}
