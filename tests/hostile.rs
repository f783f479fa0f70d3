//! Hostile input, one regression test per finding of the issue "No crash on any input": every
//! input is built here (no large files in git) and each must be refused with a clear error, or
//! handled, without a panic, an abort or unbounded memory.

use digitnn::data::Dataset;
use digitnn::data::image::{ImageLimits, decode, prepare};
use digitnn::limits;
use digitnn::model::{self, Architecture, LayerSpec, Network, pt};
use image::{DynamicImage, GrayImage, Luma};
use std::io::Write;

mod common;
use common::{digitnn, png_claiming, pt_file};
use std::path::Path;
use std::process::{Command, Output};

fn pt_refusal(bytes: &[u8]) -> String {
    pt::read_state_dict(bytes).expect_err("a hostile .pt file was accepted")
}

fn model_refusal(bytes: &[u8]) -> String {
    match model::from_bytes(bytes, Path::new("evil.pt")) {
        Ok(_) => panic!("a hostile model file was accepted"),
        Err(e) => e.to_string(),
    }
}

/// Pickle bytes for a non-negative integer (LONG1, 8 bytes).
fn long(v: u64) -> Vec<u8> {
    let mut p = vec![0x8a, 8];
    p.extend_from_slice(&v.to_le_bytes());
    p
}

/// A one-tensor state_dict: `model.0.bias` viewing FloatStorage "0" of `storage_len` floats with
/// the given size and stride.
fn tensor_pickle(storage_len: u64, size: u64, stride: u64) -> Vec<u8> {
    let mut p = b"\x80\x02ccollections\nOrderedDict\n)R(X\x0c\x00\x00\x00model.0.bias".to_vec();
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
    p.extend_from_slice(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu");
    p.extend_from_slice(&long(storage_len));
    p.extend_from_slice(b"tQK\x00(");
    p.extend_from_slice(&long(size));
    p.extend_from_slice(b"t(");
    p.extend_from_slice(&long(stride));
    p.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)RtRu.");
    p
}

#[test]
fn a_stride_0_tensor_of_huge_size_is_refused_before_allocating() {
    // Finding 1: 2^40 values viewed through stride 0 of a one-float storage.
    let bytes = pt_file(&tensor_pickle(1, 1 << 40, 0), &[("0", &[0; 4])]);
    assert!(pt_refusal(&bytes).contains("more than the limit"), "{}", pt_refusal(&bytes));
    // Through the model loader, names and shapes are checked against the architecture first.
    assert!(model_refusal(&bytes).contains("is missing"), "{}", model_refusal(&bytes));
}

#[test]
fn a_storage_length_that_overflows_is_refused() {
    // Finding 2: storage_len * 4 wraps for lengths >= 2^62.
    for len in [1u64 << 62, u64::MAX >> 1] {
        let bytes = pt_file(&tensor_pickle(len, 32, 1), &[("0", &[0; 128])]);
        let err = pt_refusal(&bytes);
        assert!(err.contains("storage"), "{err}");
    }
}

#[test]
fn deeply_nested_pickles_are_refused_without_overflowing_the_stack() {
    // Finding 3: 100,000 nested lists (EMPTY_LIST ... APPEND) and nested tuples (MARK ... TUPLE).
    let n = 100_000;
    let mut lists = b"\x80\x02".to_vec();
    lists.extend(std::iter::repeat_n(b']', n));
    lists.extend(std::iter::repeat_n(b'a', n - 1));
    lists.push(b'.');
    assert!(pt_refusal(&pt_file(&lists, &[])).contains("nests deeper"));
    let mut tuples = b"\x80\x02".to_vec();
    tuples.extend(std::iter::repeat_n(b'(', n));
    tuples.extend(std::iter::repeat_n(b't', n));
    tuples.push(b'.');
    assert!(pt_refusal(&pt_file(&tuples, &[])).contains("nests deeper"));
}

#[test]
fn a_memo_billion_laughs_shares_instead_of_copying() {
    // Finding 4: each level is a list of ten references to the level below: 10^30 leaves if
    // memo entries were deep-copied. Shared, it builds in microseconds and is refused as not a
    // state_dict.
    let mut p = b"\x80\x02]q\x00".to_vec();
    for level in 0..30u8 {
        p.extend_from_slice(b"](");
        for _ in 0..10 {
            p.extend_from_slice(&[b'h', level]);
        }
        p.extend_from_slice(&[b'e', b'q', level + 1]);
    }
    p.push(b'.');
    let started = std::time::Instant::now();
    assert!(pt_refusal(&pt_file(&p, &[])).contains("not a state_dict"));
    assert!(started.elapsed().as_secs() < 5);
    // Copies forced by appending to a shared list count against the budget.
    let mut copies = b"\x80\x02](".to_vec();
    copies.extend(std::iter::repeat_n(b'N', 60_000));
    copies.extend_from_slice(b"eq\x00");
    for _ in 0..100 {
        copies.extend_from_slice(b"h\x00Na");
    }
    copies.push(b'.');
    assert!(pt_refusal(&pt_file(&copies, &[])).contains("more than"), "{}", pt_refusal(&pt_file(&copies, &[])));
}

#[test]
fn zip_bomb_storages_are_not_inflated() {
    // Finding 5: a storage declaring 2^28 floats for a 32-value tensor is refused from the
    // header; a storage entry that inflates to far more than its tensor needs is read only as
    // far as needed.
    let declared = pt_file(&tensor_pickle(1 << 28, 32, 1), &[("0", &[0; 128])]);
    assert!(pt_refusal(&declared).contains("refusing to read"), "{}", pt_refusal(&declared));

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(&tensor_pickle(32, 32, 1)).unwrap();
    zip.start_file("archive/data/0", deflated).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        zip.write_all(&zeros).unwrap();
    }
    let bomb = zip.finish().unwrap().into_inner();
    let tensors = pt::read_state_dict(&bomb).unwrap();
    assert_eq!(tensors[0].1.values, vec![0.0; 32]);
}

fn small_dataset(classes: u8) -> Dataset {
    let n = 20;
    Dataset {
        images: (0..n * 784).map(|i| (i % 251) as u8).collect(),
        labels: (0..n).map(|i| i as u8 % classes).collect(),
        rows: 28,
        cols: 28,
    }
}

fn seed_like(outputs: usize) -> Architecture {
    let mut architecture = Architecture::seed_cnn();
    architecture.layers[7] = LayerSpec::Linear { in_features: 64 * 22 * 22, out_features: outputs };
    architecture
}

#[test]
fn evaluating_a_model_with_too_few_outputs_is_an_error() {
    // Finding 6: labels up to 9 against 5 outputs indexed out of bounds.
    let mut network = Network::new(seed_like(5), 0).unwrap();
    let err = digitnn::eval::evaluate(&mut network, &small_dataset(10)).unwrap_err().to_string();
    assert!(err.contains("5 outputs"), "{err}");
    let err = digitnn::predict::predict_pixels(&mut network, &[[0; 784]], true).unwrap_err().to_string();
    assert!(err.contains("5 outputs"), "{err}");
    // 11 outputs are the digits and "not a digit"; 12 are neither.
    let mut network = Network::new(seed_like(12), 0).unwrap();
    let err = digitnn::eval::evaluate(&mut network, &small_dataset(10)).unwrap_err().to_string();
    assert!(err.contains("12 outputs"), "{err}");
    // An empty test set is an error, not "0.00%".
    let mut network = Network::new(Architecture::seed_cnn(), 0).unwrap();
    let empty = Dataset { images: vec![], labels: vec![], rows: 28, cols: 28 };
    assert!(digitnn::eval::evaluate(&mut network, &empty).unwrap_err().to_string().contains("empty"));
}

#[test]
fn padding_near_usize_max_is_refused() {
    // Finding 7: `input + 2 * padding` wrapped; with >= 8 channels the Winograd path ran on garbage.
    for (channels, padding) in [(1, usize::MAX / 2), (8, usize::MAX / 2), (8, usize::MAX), (1, 1 << 40)] {
        let architecture = Architecture {
            input: [channels, 28, 28],
            layers: vec![
                LayerSpec::Conv2d { in_channels: channels, out_channels: 8, kernel_size: 3, stride: 1, padding },
                LayerSpec::Flatten,
                LayerSpec::Linear { in_features: 8, out_features: 10 },
            ],
        };
        assert!(Network::new(architecture, 0).is_err(), "padding {padding}");
    }
}

#[test]
fn large_per_batch_activations_shrink_the_batch_and_huge_ones_are_refused() {
    // Finding 8: a network that is small per image but huge per batch of 250.
    let wide = Architecture {
        input: [1, 64, 64],
        layers: vec![
            LayerSpec::Conv2d { in_channels: 1, out_channels: 512, kernel_size: 1, stride: 1, padding: 0 },
            LayerSpec::MaxPool2d { kernel_size: 64, stride: 64 },
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: 512, out_features: 10 },
        ],
    };
    let network = Network::new(wide, 0).unwrap();
    let per_image = network.sample_cost().inference_bytes();
    let batch = network.inference_batch(250);
    assert!(batch < 250 && batch * per_image <= limits::INFERENCE_BATCH_BYTES, "batch {batch} of {per_image} bytes");
    assert!(network.check_training_batch(250).is_err());
    // Past the per-image limit the architecture is refused outright.
    let huge = Architecture {
        input: [1, 2048, 2048],
        layers: vec![
            LayerSpec::Conv2d { in_channels: 1, out_channels: 8, kernel_size: 1, stride: 1, padding: 0 },
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: 8 * 2048 * 2048, out_features: 1 },
        ],
    };
    let err = Network::new(huge, 0).err().expect("refused").to_string();
    assert!(err.contains("MiB of activations per image"), "{err}");
    // So is one that would take minutes of arithmetic per image.
    let slow = Architecture {
        input: [1, 1024, 1024],
        layers: vec![
            LayerSpec::Conv2d { in_channels: 1, out_channels: 1, kernel_size: 512, stride: 1, padding: 0 },
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: 513 * 513, out_features: 10 },
        ],
    };
    assert!(Network::new(slow, 0).err().expect("refused").to_string().contains("multiply-adds"));
}

#[test]
fn images_are_refused_from_their_header_past_the_pixel_limit() {
    // Finding 9: a 16000x16000 grey PNG took 1.5 GB and 11 s to decode.
    let started = std::time::Instant::now();
    let err = decode(&png_claiming(16000, 16000), Path::new("bomb.png"), ImageLimits::default()).unwrap_err();
    assert!(err.to_string().contains("megapixels") && err.to_string().contains("bomb.png"), "{err}");
    assert!(started.elapsed().as_secs() < 2);
    // The server's limit is lower; a photo-sized image is still fine on the command line.
    assert!(decode(&png_claiming(5000, 5000), Path::new("x.png"), ImageLimits::serve()).is_err());
}

#[test]
fn blank_28x28_images_are_refused() {
    for level in [0u8, 127, 255] {
        let blank = DynamicImage::ImageLuma8(GrayImage::from_pixel(28, 28, Luma([level])));
        let err = prepare(&blank, false, Path::new("blank.png")).unwrap_err().to_string();
        assert!(err.contains("blank"), "level {level}: {err}");
    }
    let zeros = format!("{{\"pixels\": [{}]}}", vec!["0"; 784].join(","));
    let err = digitnn::predict::prepare_request("application/json", zeros.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("blank"));
}

#[test]
fn saving_the_same_model_twice_gives_the_same_bytes() {
    let network = Network::new(Architecture::seed_cnn(), 3).unwrap();
    let a = model::to_bytes(&network, Some(0.5)).unwrap();
    let b = model::to_bytes(&network, Some(0.5)).unwrap();
    assert!(a == b, "safetensors bytes differ between two saves");
    let (back, info) = model::from_bytes(&a, Path::new("m.safetensors")).unwrap();
    assert_eq!((back.params(), info.test_accuracy), (network.params(), Some(0.5)));
    assert_eq!(model::to_pt_bytes(&network).unwrap(), model::to_pt_bytes(&network).unwrap());
}

#[test]
fn only_named_architectures_are_written_as_pt() {
    let network = Network::new(seed_like(12), 0).unwrap();
    assert!(model::to_pt_bytes(&network).unwrap_err().to_string().contains("only the named architectures"));
}

fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "succeeded but should not");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    err
}

#[test]
fn the_command_line_refuses_hostile_models_and_flags_early() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let image = path("seven.png");
    GrayImage::from_fn(28, 28, |x, y| Luma([if x == 14 && y > 4 && y < 24 { 255 } else { 0 }])).save(&image).unwrap();

    // Finding 10: a device has no length; reading stops at the model size limit.
    assert!(error_line(&digitnn(&["predict", "--model", "/dev/zero", &image])).contains("limit"));
    // Models that are not 10-class digit models.
    let five = path("five.safetensors");
    model::save(&Network::new(seed_like(5), 0).unwrap(), Path::new(&five), None).unwrap();
    assert!(error_line(&digitnn(&["predict", "--model", &five, &image])).contains("5 outputs"));
    let err = error_line(&digitnn(&["eval", "--model", &five, "--data", &path("nowhere")]));
    assert!(err.contains("5 outputs"), "checked before the data is looked for: {err}");
    assert!(error_line(&digitnn(&["convert", &five, &path("five.pt")])).contains("only the named architectures"));
    assert!(!Path::new(&path("five.pt")).exists());
    // --threads 0 is refused before any data is loaded or fetched.
    let err = error_line(&digitnn(&["train", "--threads", "0", "--data", &path("nowhere")]));
    assert!(err.contains("--threads") && !err.contains("missing"), "{err}");
    // An I/O error names its cause once.
    let err = error_line(&digitnn(&["predict", "--model", &path("absent.safetensors"), &image]));
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    // Converting the same model twice gives identical files.
    let (a, b) = (path("a.safetensors"), path("b.safetensors"));
    model::save(&Network::new(Architecture::seed_cnn(), 1).unwrap(), Path::new(&a), Some(0.9)).unwrap();
    assert!(digitnn(&["convert", &a, &b]).status.success());
    let c = path("c.safetensors");
    assert!(digitnn(&["convert", &a, &c]).status.success());
    assert!(std::fs::read(&b).unwrap() == std::fs::read(&c).unwrap());
}

#[test]
fn an_idx_header_claiming_a_gigabyte_allocates_nothing() {
    // Found by fuzzing: 16 bytes claiming 1024x1024x1024 values made the reader reserve 1 GiB.
    // Under a 700 MB address-space limit that aborted; now it is a "truncated" error.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, dims: &[usize], data: &[u8]| {
        std::fs::write(dir.path().join(name), digitnn::data::idx::encode_idx(dims, data)).unwrap();
    };
    write("train-images-idx3-ubyte", &[1024, 1024, 1024], &[]);
    write("train-labels-idx1-ubyte", &[1], &[1]);
    write("t10k-images-idx3-ubyte", &[1, 28, 28], &[0; 784]);
    write("t10k-labels-idx1-ubyte", &[1], &[1]);
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mnist_model.safetensors");
    let command = format!(
        "ulimit -v 700000 && exec '{}' eval --model '{model}' --data '{}'",
        env!("CARGO_BIN_EXE_digitnn"),
        dir.path().display()
    );
    let o = Command::new("sh").args(["-c", &command]).env("DIGITNN_NO_FETCH", "1").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("truncated") && !err.contains("memory allocation"), "{err}");
}

#[test]
fn an_image_of_width_0_is_refused() {
    // Found by fuzzing: a PNM of width 0 and height 530 panicked in the pixel iterator.
    let pnm = b"P6\n0\n530\n530\n";
    let err = match decode(pnm, Path::new("empty.ppm"), ImageLimits::default()) {
        Ok(image) => prepare(&image, false, Path::new("empty.ppm")).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("empty.ppm"), "{err}");
    let body = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/request/width-0.ppm")).unwrap();
    digitnn::fuzz::request(&body);
}

/// Pixels as the browser build hands them over (a page's script says the width and height):
/// sides past the decoder's, more pixels than the limit, and a buffer that is not width x height
/// RGBA pixels are each refused with a message saying which, before any copy is made.
#[test]
fn pixels_from_a_page_are_checked_before_use() {
    use digitnn::data::image::from_rgba;
    let name = Path::new("page pixels");
    let refusal =
        |w: u32, h: u32, rgba: &[u8]| from_rgba(w, h, rgba, name, ImageLimits::default()).unwrap_err().to_string();
    assert!(refusal(20_000, 10, &[0; 16]).contains("wider or taller than 16384"));
    assert!(refusal(16_000, 16_000, &[0; 16]).contains("megapixels, more than the limit of 48.0"));
    assert!(refusal(10, 10, &[0; 399]).contains("399 bytes are not 10x10 RGBA pixels (400 bytes)"));
    assert!(refusal(10, 10, &[0; 404]).contains("404 bytes"));
    // A picture that passes is read as any other: blank, so nothing to read, and no panic.
    let blank = from_rgba(10, 10, &[255; 400], name, ImageLimits::default()).unwrap();
    assert!(prepare(&blank, false, name).is_err());
}
