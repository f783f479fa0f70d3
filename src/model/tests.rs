//! The seed CNN against PyTorch (tests/fixtures/seed_cnn.safetensors, from
//! scripts/make_fixtures.py), and model-file round trips and refusals.

use super::*;
use crate::engine::ConvAlgorithm;
use crate::nn::loss::cross_entropy;
use crate::optim::OptimizerConfig;
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/seed_cnn.safetensors");

fn fixture() -> HashMap<String, Vec<f32>> {
    read_fixture(FIXTURE)
}

/// Every tensor of a fixture file (float32) by name.
pub(super) fn read_fixture(bytes: &[u8]) -> HashMap<String, Vec<f32>> {
    let tensors = SafeTensors::deserialize(bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            (name, values)
        })
        .collect()
}

fn seed_cnn_with_pytorch_weights(f: &HashMap<String, Vec<f32>>, engine: EngineConfig) -> Network {
    let mut network = Network::with_engine(Architecture::seed_cnn(), 0, engine).unwrap();
    for t in network.tensors().to_vec() {
        network.params_mut()[t.range].copy_from_slice(&f[&t.name]);
    }
    network
}

/// One training step's forward and backward passes on the fixture's batch of 4 images: returns
/// the logits and the loss, and leaves the gradients in the network.
pub(super) fn step_on_fixture(network: &mut Network, f: &HashMap<String, Vec<f32>>) -> (Vec<f32>, f32) {
    let labels: Vec<u8> = f["labels"].iter().map(|&l| l as u8).collect();
    let logits = network.forward(&f["input"], 4, true).to_vec();
    let mut grad_logits = vec![0.0; logits.len()];
    let loss = cross_entropy(&logits, &labels, 10, &mut grad_logits);
    network.backward(&grad_logits);
    (logits, loss)
}

pub(super) fn assert_close(what: &str, got: &[f32], want: &[f32], abs: f32, rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= abs + rel * w.abs(), "{what}[{i}]: {g} vs PyTorch {w}");
    }
}

/// On every instruction set and convolution algorithm this CPU has.
#[test]
fn seed_cnn_logits_match_pytorch() {
    let f = fixture();
    for engine in EngineConfig::every_supported("seed_cnn_logits_match_pytorch") {
        let mut network = seed_cnn_with_pytorch_weights(&f, engine);
        let logits = network.forward(&f["input"], 4, false).to_vec();
        assert_close(&format!("logits on {engine}"), &logits, &f["logits"], 1e-5, 0.0);
    }
}

/// In bf16 (the algorithms that run bf16 products: `Auto` for the 64-channel convolution,
/// F(2x2) for both 3x3 ones) the logits stay within 1% of the largest of PyTorch's f32 logits:
/// each product's inputs are rounded to 8 significant bits (relative error 2^-9). Gradients go
/// through ReLU masks that flip where bf16 moves an output across zero, so single values move
/// more (measured: up to 8% of the largest); their direction is checked, cosine >= 0.995
/// (measured: 0.998 or more).
#[test]
fn seed_cnn_in_bf16_stays_within_its_rounding_of_pytorch() {
    let engines: Vec<EngineConfig> = EngineConfig::every_bf16()
        .into_iter()
        .filter(|e| matches!(e.conv, ConvAlgorithm::Auto | ConvAlgorithm::WinogradF2))
        .collect();
    if engines.is_empty() {
        crate::kernels::bf16::tests::available("the seed CNN in bf16");
    }
    let f = fixture();
    for engine in engines {
        let mut network = seed_cnn_with_pytorch_weights(&f, engine);
        let (logits, _) = step_on_fixture(&mut network, &f);
        let scale = f["logits"].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_close(&format!("logits on {engine}"), &logits, &f["logits"], 0.01 * scale, 0.0);
        assert_ne!(logits, f["logits"], "{engine}: bf16 gave f32's logits exactly (did it run?)");
        for t in network.tensors().to_vec() {
            let (got, want) = (&network.grads()[t.range], &f[&format!("grad.{}", t.name)]);
            let dot: f64 = got.iter().zip(want.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let norm = |v: &[f32]| v.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>().sqrt();
            let cosine = dot / (norm(got) * norm(want));
            assert!(cosine >= 0.995, "grad of {} on {engine}: cosine {cosine} with PyTorch's", t.name);
        }
    }
}

#[test]
fn seed_cnn_gradients_and_adam_step_match_pytorch() {
    for engine in EngineConfig::every_supported("seed_cnn_gradients_and_adam_step_match_pytorch") {
        gradients_and_adam_step_match_pytorch(engine);
    }
}

fn gradients_and_adam_step_match_pytorch(engine: EngineConfig) {
    let f = fixture();
    let mut network = seed_cnn_with_pytorch_weights(&f, engine);
    let (_, loss) = step_on_fixture(&mut network, &f);
    assert!((loss - f["loss"][0]).abs() < 1e-5, "loss {loss} vs PyTorch {}", f["loss"][0]);
    for t in network.tensors().to_vec() {
        let want = &f[&format!("grad.{}", t.name)];
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_close(&format!("grad of {} on {engine}", t.name), &network.grads()[t.range], want, 1e-4 * scale, 1e-3);
    }
    let mut adam = OptimizerConfig::default().build(network.parameter_count());
    network.apply(adam.as_mut());
    for t in network.tensors().to_vec() {
        // Adam's first step moves each parameter by lr * g / (|g| + eps): about lr * sign(g), so
        // this checks the sign of every gradient. Where |g| is near eps (1e-8) the step depends
        // on g's last digits, so those few get a looser bound (still below lr).
        let grads = &f[&format!("grad.{}", t.name)];
        let want = &f[&format!("adam1.{}", t.name)];
        for (i, ((got, want), g)) in network.params()[t.range].iter().zip(want).zip(grads).enumerate() {
            let tolerance = if g.abs() > 1e-5 { 2e-6 } else { 5e-4 };
            assert!(
                (got - want).abs() <= tolerance,
                "Adam step of {}[{i}] on {engine}: {got} vs PyTorch {want}",
                t.name
            );
        }
    }
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let a = Network::new(Architecture::seed_cnn(), 7).unwrap();
    let b = Network::new(Architecture::seed_cnn(), 7).unwrap();
    let c = Network::new(Architecture::seed_cnn(), 8).unwrap();
    assert_eq!(a.params(), b.params());
    assert_ne!(a.params(), c.params());
    // PyTorch's default bound for conv1: 1/sqrt(9).
    let conv1 = &a.params()[a.tensors()[0].range.clone()];
    assert!(conv1.iter().all(|v| v.abs() <= 1.0 / 3.0) && conv1.iter().any(|v| v.abs() > 0.3));
}

#[test]
fn seed_cnn_has_the_original_names_and_shapes() {
    let network = Network::new(Architecture::seed_cnn(), 0).unwrap();
    let names: Vec<_> = network.tensors().iter().map(|t| (t.name.as_str(), t.shape.clone())).collect();
    assert_eq!(
        names,
        vec![
            ("model.0.weight", vec![32, 1, 3, 3]),
            ("model.0.bias", vec![32]),
            ("model.2.weight", vec![64, 32, 3, 3]),
            ("model.2.bias", vec![64]),
            ("model.4.weight", vec![64, 64, 3, 3]),
            ("model.4.bias", vec![64]),
            ("model.7.weight", vec![10, 30976]),
            ("model.7.bias", vec![10]),
        ]
    );
    assert_eq!(network.parameter_count(), 365_514);
}

#[test]
fn save_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut network = Network::new(Architecture::seed_cnn(), 3).unwrap();
    save(&network, &path, Some(0.9876)).unwrap();
    let (mut loaded, info) = load(&path).unwrap();
    assert_eq!(loaded.params(), network.params());
    assert_eq!(info.test_accuracy, Some(0.9876));
    let image: Vec<f32> = (0..784).map(|i| (i % 7) as f32 / 7.0).collect();
    assert_eq!(loaded.forward(&image, 1, false), network.forward(&image, 1, false));
    // Only the model file is left: the temporary file was renamed over it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_pytorch_state_dict_without_metadata_loads_as_the_seed_cnn() {
    let f = fixture();
    let network = seed_cnn_with_pytorch_weights(&f, EngineConfig::default());
    let bytes = to_bytes(&network, None).unwrap();
    // Re-serialise without any metadata, as safetensors.torch.save_file(state_dict) would.
    let parsed = SafeTensors::deserialize(&bytes).unwrap();
    let plain = safetensors::serialize(parsed.tensors(), None).unwrap();
    let (loaded, info) = from_bytes(&plain, Path::new("plain.safetensors")).unwrap();
    assert_eq!(loaded.params(), network.params());
    assert_eq!(info.architecture, Architecture::seed_cnn());
}

fn load_error(bytes: &[u8]) -> String {
    match from_bytes(bytes, Path::new("bad.safetensors")) {
        Ok(_) => panic!("a bad model file was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_model_files_are_refused_with_a_reason() {
    let network = Network::new(Architecture::seed_cnn(), 0).unwrap();
    let good = to_bytes(&network, None).unwrap();
    assert!(load_error(&good[..good.len() / 2]).contains("bad.safetensors"));
    assert!(load_error(b"").contains("not a safetensors or .pt"));
    assert!(load_error(&[0xff; 64]).contains("not a safetensors or .pt"));

    // Wrong shape: a model with a different linear layer.
    let mut other = Architecture::seed_cnn();
    other.layers[7] = LayerSpec::Linear { in_features: 30976, out_features: 5 };
    let wrong = to_bytes(&Network::new(other, 0).unwrap(), None).unwrap();
    let parsed = SafeTensors::deserialize(&wrong).unwrap();
    let no_metadata = safetensors::serialize(parsed.tensors(), None).unwrap();
    assert!(load_error(&no_metadata).contains("shape"), "{}", load_error(&no_metadata));

    // A NaN in the weights.
    let mut poisoned = Network::new(Architecture::seed_cnn(), 0).unwrap();
    poisoned.params_mut()[5] = f32::NAN;
    assert!(load_error(&to_bytes(&poisoned, None).unwrap()).contains("non-finite"));

    // An architecture asking for far more parameters than the file holds.
    let mut huge = Architecture::seed_cnn();
    let tensors = SafeTensors::deserialize(&good).unwrap();
    for (out_features, reason) in [(1000, "shape"), (100_000, "parameters, the limit")] {
        huge.layers[7] = LayerSpec::Linear { in_features: 30976, out_features };
        let meta = HashMap::from([("architecture".to_string(), serde_json::to_string(&huge).unwrap())]);
        let lying = safetensors::serialize(tensors.tensors(), Some(meta)).unwrap();
        assert!(load_error(&lying).contains(reason), "{}", load_error(&lying));
    }
}

#[test]
fn training_is_deterministic_for_a_seed_whatever_the_thread_count() {
    for engine in EngineConfig::every_supported("training_is_deterministic_for_a_seed_whatever_the_thread_count")
        .into_iter()
        .chain(EngineConfig::every_bf16())
    {
        training_is_deterministic_on(engine);
    }
}

fn training_is_deterministic_on(engine: EngineConfig) {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut network = Network::with_engine(Architecture::seed_cnn(), 1, engine).unwrap();
            let mut adam = OptimizerConfig::default().build(network.parameter_count());
            let images: Vec<f32> = (0..9 * 784).map(|i| ((i * 31) % 255) as f32 / 255.0).collect();
            for _ in 0..2 {
                let logits = network.forward(&images, 9, true).to_vec();
                let mut grad = vec![0.0; logits.len()];
                cross_entropy(&logits, &[1, 2, 3, 4, 5, 6, 7, 8, 9], 10, &mut grad);
                network.backward(&grad);
                network.apply(adam.as_mut());
            }
            network.params().to_vec()
        })
    };
    // Nine images: three groups in the weight-gradient sums, split unevenly between threads.
    let serial = run(1);
    assert!(serial == run(2) && serial == run(3), "{engine}: the thread count changed the weights");
}

/// The whole network, with every layer kind and both fusions (conv+ReLU, linear+ReLU) and the
/// elided Flatten, against finite differences of the loss.
#[test]
fn network_gradients_match_finite_differences() {
    let architecture = Architecture {
        input: [1, 6, 6],
        layers: vec![
            LayerSpec::Conv2d { in_channels: 1, out_channels: 3, kernel_size: 3, stride: 1, padding: 1 },
            LayerSpec::Relu,
            LayerSpec::MaxPool2d { kernel_size: 2, stride: 2 },
            LayerSpec::Dropout { p: 0.0 },
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: 27, out_features: 7 },
            LayerSpec::Relu,
            LayerSpec::Linear { in_features: 7, out_features: 4 },
        ],
    };
    check_network_gradients(architecture, 3);
}

/// The same with a padded convolution wide enough for Winograd (8x8 outputs: F(4x4, 3x3)) behind
/// a direct one, its ReLU fused and its mask applied inside the Winograd backward pass.
#[test]
fn network_gradients_match_finite_differences_with_winograd() {
    let architecture = Architecture {
        input: [1, 8, 8],
        layers: vec![
            LayerSpec::Conv2d { in_channels: 1, out_channels: 8, kernel_size: 3, stride: 1, padding: 1 },
            LayerSpec::Relu,
            LayerSpec::Conv2d { in_channels: 8, out_channels: 8, kernel_size: 3, stride: 1, padding: 1 },
            LayerSpec::Relu,
            LayerSpec::MaxPool2d { kernel_size: 2, stride: 2 },
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: 128, out_features: 4 },
        ],
    };
    check_network_gradients(architecture, 5);
}

/// Every third parameter's gradient from backward against a central difference of the loss on
/// two images, on every engine.
fn check_network_gradients(architecture: Architecture, seed: u64) {
    for engine in EngineConfig::every_supported("check_network_gradients") {
        check_network_gradients_on(architecture.clone(), seed, engine);
    }
}

fn check_network_gradients_on(architecture: Architecture, seed: u64, engine: EngineConfig) {
    let [c, h, w] = architecture.input;
    let mut network = Network::with_engine(architecture, seed, engine).unwrap();
    let images: Vec<f32> = (0..2 * c * h * w).map(|i| ((i * 29 % 37) as f32 / 18.0) - 1.0).collect();
    let labels = [1u8, 3];
    let classes = network.classes();
    let loss_of = |network: &mut Network| {
        let logits = network.forward(&images, 2, true).to_vec();
        let mut grad = vec![0.0; logits.len()];
        (cross_entropy(&logits, &labels, classes, &mut grad), grad)
    };
    let (_, grad_logits) = loss_of(&mut network);
    network.backward(&grad_logits);
    let analytic = network.grads().to_vec();
    let eps = 1e-3f32;
    for i in (0..network.parameter_count()).step_by(3) {
        let saved = network.params()[i];
        network.params_mut()[i] = saved + eps;
        let plus = loss_of(&mut network).0;
        network.params_mut()[i] = saved - eps;
        let minus = loss_of(&mut network).0;
        network.params_mut()[i] = saved;
        let numeric = (plus - minus) / (2.0 * eps);
        assert!(
            (numeric - analytic[i]).abs() <= 2e-3 + 5e-2 * numeric.abs(),
            "{engine}, param {i}: {numeric} vs {}",
            analytic[i]
        );
    }
}

#[test]
fn architectures_by_name_and_from_json() {
    assert_eq!(Architecture::named("seed"), Some(Architecture::seed_cnn()));
    assert_eq!(Network::new(Architecture::named("fast").unwrap(), 0).unwrap().classes(), 10);
    assert_eq!(Architecture::named("huge"), None);
    // A bare list of layers (nn.Sequential) is for 1x28x28 images.
    let list = r#"[{"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "stride": 1, "padding": 1},
                   {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2, "stride": 2},
                   {"type": "flatten"}, {"type": "linear", "in_features": 784, "out_features": 10}]"#;
    let parsed = Architecture::from_json(list).unwrap();
    assert_eq!((parsed.input, parsed.layers.len()), ([1, 28, 28], 5));
    let object = serde_json::to_string(&Architecture::seed_cnn()).unwrap();
    assert_eq!(Architecture::from_json(&object).unwrap(), Architecture::seed_cnn());
    for (bad, why) in [
        ("[{\"type\": \"lstm\"}]", "not a list of layers"),
        ("{\"layers\": 3}", "not an architecture"),
        ("nonsense", "not JSON"),
        (r#"[{"type": "linear", "in_features": 5, "out_features": 10}]"#, "Linear expects"),
    ] {
        let err = Architecture::from_json(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

/// bfloat16 files: half the bytes of the values, each rounded to the nearest bfloat16 (ties to
/// even), loaded back as float32; the batch counter stays exact.
#[test]
fn a_bf16_file_holds_the_rounded_values() {
    let mut network = Network::new(Architecture::best_cnn(), 3).unwrap();
    network.params_mut()[0] = 1.0 + 3.0 / 256.0; // halfway between two bfloat16s: rounds to even
    let full = to_bytes(&network, None).unwrap();
    let half = to_bytes_stored(&network, None, Storage::Bf16).unwrap();
    assert!(half.len() * 10 < full.len() * 6, "{} vs {} bytes", half.len(), full.len());
    let (loaded, _) = from_bytes(&half, std::path::Path::new("half.safetensors")).unwrap();
    assert_eq!(loaded.params()[0], 1.0 + 4.0 / 256.0);
    for (&a, &b) in network.params().iter().zip(loaded.params()) {
        assert!((a - b).abs() <= a.abs() / 256.0, "{a} became {b}");
        assert_eq!(b.to_bits() & 0xffff, 0, "{b} is not a bfloat16");
    }
    assert_eq!(network.state(), loaded.state(), "the running statistics here are bfloat16 already");
}
