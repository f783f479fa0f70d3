//! Interop with PyTorch and ONNX: the original's `.pt` state_dict runs here and gives PyTorch's
//! logits; digitnn's models convert to `.pt` and export to ONNX, which an independent runtime
//! (tract) runs to the same logits; hostile `.pt` files are refused.
//! Fixtures come from scripts/make_fixtures.py (PyTorch); no PyTorch is needed here.

use digitnn::model::{self, Architecture, Network};
use safetensors::SafeTensors;
use std::io::Write;

mod common;
use common::pt_file;
use std::path::Path;
use tract_onnx::prelude::*;

const FIXTURE: &[u8] = include_bytes!("fixtures/seed_cnn.safetensors");
const PT_FIXTURE: &[u8] = include_bytes!("fixtures/seed_cnn.pt");

fn fixture(name: &str) -> Vec<f32> {
    let tensors = SafeTensors::deserialize(FIXTURE).unwrap();
    tensors.tensor(name).unwrap().data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tolerance, "{what}[{i}]: {g} vs PyTorch {w}");
    }
}

#[test]
fn the_originals_pt_file_gives_pytorchs_logits() {
    let (mut network, info) = model::from_bytes(PT_FIXTURE, Path::new("digit_model.pt")).unwrap();
    assert_eq!(info.architecture, Architecture::seed_cnn());
    let logits = network.forward(&fixture("input"), 4, false).to_vec();
    assert_close("logits", &logits, &fixture("logits"), 1e-5);
}

#[test]
fn pt_round_trip_keeps_every_weight() {
    let network = Network::new(Architecture::seed_cnn(), 9).unwrap();
    let bytes = model::to_pt_bytes(&network).unwrap();
    let (back, _) = model::from_bytes(&bytes, Path::new("x.pt")).unwrap();
    assert_eq!(back.params(), network.params());
}

/// The logits tract computes for an exported ONNX model on a batch of 4 images.
fn run_onnx(onnx: &[u8], input: Vec<f32>) -> Vec<f32> {
    let runnable = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .with_input_fact(0, f32::fact([4, 1, 28, 28]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::Array4::from_shape_vec((4, 1, 28, 28), input).unwrap();
    let outputs = runnable.run(tvec!(Tensor::from(input).into())).unwrap();
    outputs[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
}

#[test]
fn onnx_export_runs_in_tract_with_pytorchs_logits() {
    let (mut network, _) = model::from_bytes(PT_FIXTURE, Path::new("digit_model.pt")).unwrap();
    let logits = run_onnx(&model::onnx::export(&mut network), fixture("input"));
    assert_close("ONNX logits", &logits, &fixture("logits"), 1e-5);
}

/// A BatchNorm network (PyTorch's `best` state_dict, running statistics far from their initial
/// values): its ONNX export, with each BatchNorm folded into its convolution, runs in tract to
/// digitnn's evaluation logits; and its `.pt` and safetensors round trips predict the same.
#[test]
fn best_model_round_trips_through_onnx_pt_and_safetensors() {
    let (mut network, info) = model::from_bytes(include_bytes!("fixtures/best_cnn.pt"), Path::new("best.pt")).unwrap();
    assert_eq!(info.architecture, Architecture::best_cnn());
    assert_round_trips(&mut network);
}

/// The built-in model, whose eleventh output says "not a digit": the `.pt` file is read back as
/// the `reader` architecture (a state_dict names no architecture: its shapes say which), and
/// every format keeps the eleven logits.
#[test]
fn the_builtin_models_not_a_digit_output_survives_every_format() {
    let (mut network, info) = model::builtin().unwrap();
    assert_eq!(info.architecture, Architecture::reader_cnn());
    assert_eq!(network.classes(), 11);
    assert_round_trips(&mut network);
    let (back, info) = model::from_bytes(&model::to_pt_bytes(&network).unwrap(), Path::new("m.pt")).unwrap();
    assert_eq!((info.architecture, back.classes()), (Architecture::reader_cnn(), 11));
}

/// ONNX (run by tract), `.pt` and safetensors give back `network`'s evaluation logits.
fn assert_round_trips(network: &mut Network) {
    let input = fixture("input");
    let want = network.forward(&input, 4, false).to_vec();
    assert_close("ONNX logits", &run_onnx(&model::onnx::export(network), input.clone()), &want, 1e-5);
    for (bytes, name) in
        [(model::to_pt_bytes(network).unwrap(), "m.pt"), (model::to_bytes(network, None).unwrap(), "m.safetensors")]
    {
        let (mut back, _) = model::from_bytes(&bytes, Path::new(name)).unwrap();
        assert_eq!(back.forward(&input, 4, false), &want[..], "{name}");
    }
}

/// A one-tensor state_dict pickle: `name` -> FloatStorage `0` of `numel` floats viewed as `size`.
fn tensor_pickle(name: &str, numel: u8, size: &[u8], storage_type: &str) -> Vec<u8> {
    let mut p = b"\x80\x02ccollections\nOrderedDict\n)R(".to_vec();
    p.push(b'X');
    p.extend_from_slice(&(name.len() as u32).to_le_bytes());
    p.extend_from_slice(name.as_bytes());
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage");
    p.extend_from_slice(format!("ctorch\n{storage_type}\n").as_bytes());
    p.extend_from_slice(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK");
    p.push(numel);
    p.extend_from_slice(b"tQK\x00(");
    for &d in size {
        p.extend_from_slice(&[b'K', d]);
    }
    p.extend_from_slice(b"t(");
    let mut stride = 1u8;
    let mut strides = Vec::new();
    for &d in size.iter().rev() {
        strides.push(stride);
        stride = stride.saturating_mul(d);
    }
    for s in strides.iter().rev() {
        p.extend_from_slice(&[b'K', *s]);
    }
    p.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)RtRu.");
    p
}

fn refusal(bytes: &[u8]) -> String {
    match model::from_bytes(bytes, Path::new("evil.pt")) {
        Ok(_) => panic!("a hostile .pt file was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_and_broken_pt_files_are_refused() {
    // A pickle that names os.system: refused by name, nothing is run.
    let evil = pt_file(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idR.", &[]);
    let err = refusal(&evil);
    assert!(err.contains("os.system") && err.contains("evil.pt"), "{err}");
    let builtins = pt_file(b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.", &[]);
    assert!(refusal(&builtins).contains("builtins.eval"));

    // A truncated archive, and one with no pickle.
    assert!(refusal(&PT_FIXTURE[..PT_FIXTURE.len() / 2]).contains("zip"));
    assert!(refusal(&pt_file(b"", &[])).contains("truncated"));
    let no_pickle = {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("archive/other", zip::write::SimpleFileOptions::default()).unwrap();
        zip.finish().unwrap().into_inner()
    };
    assert!(refusal(&no_pickle).contains("data.pkl"));

    // A storage shorter than its tensor, and strides that reach past the storage (the reader
    // alone: a one-tensor file is refused by the model loader before storages are read).
    let unpickled = |bytes: &[u8]| model::pt::read_state_dict(bytes).expect_err("refused");
    let short = pt_file(&tensor_pickle("model.0.bias", 32, &[32], "FloatStorage"), &[("0", &[0; 31 * 4])]);
    assert!(unpickled(&short).contains("holds 124 bytes"), "{}", unpickled(&short));
    let past = pt_file(&tensor_pickle("model.0.bias", 16, &[32], "FloatStorage"), &[("0", &[0; 16 * 4])]);
    assert!(unpickled(&past).contains("past the end"), "{}", unpickled(&past));

    // Another dtype, a wrong shape for the architecture, a missing tensor.
    let doubles = pt_file(&tensor_pickle("model.0.bias", 32, &[32], "DoubleStorage"), &[("0", &[0; 32 * 8])]);
    assert!(unpickled(&doubles).contains("float32"), "{}", unpickled(&doubles));
    let wrong_shape = pt_file(&tensor_pickle("model.0.weight", 16, &[16], "FloatStorage"), &[("0", &[0; 16 * 4])]);
    assert!(refusal(&wrong_shape).contains("shape"), "{}", refusal(&wrong_shape));
    let only_bias = pt_file(&tensor_pickle("model.0.bias", 32, &[32], "FloatStorage"), &[("0", &[0; 32 * 4])]);
    assert!(refusal(&only_bias).contains("missing"), "{}", refusal(&only_bias));

    // An opcode a state_dict never uses, and a pickle that only pushes.
    assert!(refusal(&pt_file(b"\x80\x02I12\n.", &[])).contains("unsupported pickle opcode"));
    assert!(refusal(&pt_file(&[b'('; 4000], &[])).contains("truncated"));
}

#[test]
fn a_zip_bomb_is_refused_without_inflating_it() {
    // data.pkl deflates to 2 GiB of zeros: refused from its declared size.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    zip.start_file("archive/data.pkl", options).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..2048 {
        zip.write_all(&zeros).unwrap();
    }
    let bomb = zip.finish().unwrap().into_inner();
    assert!(bomb.len() < 8 << 20, "the bomb itself is small ({} bytes)", bomb.len());
    let err = refusal(&bomb);
    assert!(err.contains("more than the limit"), "{err}");
}
