//! The command-line tool as a user runs it: real files in a temporary directory, the real binary.
//! The data is a small synthetic IDX dataset (no network, no MNIST needed).

use digitnn::data::idx::encode_idx;
use image::{GrayImage, Luma};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::digitnn;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A bright 10x10 square whose position encodes the class, on a dark 28x28 background, with a
/// little deterministic noise: learnable in a few small epochs.
fn synthetic_digit(class: u8, variant: usize) -> Vec<u8> {
    let (x0, y0) = (2 + (class as usize % 5) * 4, 3 + (class as usize / 5) * 12);
    (0..784)
        .map(|i| {
            let (x, y) = (i % 28, i / 28);
            let noise = ((i * 31 + variant * 17) % 23) as u8;
            if x >= x0 && x < x0 + 10 && y >= y0 && y < y0 + 10 { 230 + noise } else { noise }
        })
        .collect()
}

fn write_dataset(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (images_name, labels_name, count) in [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", train),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", test),
    ] {
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        let images: Vec<u8> = labels.iter().enumerate().flat_map(|(i, &c)| synthetic_digit(c, i)).collect();
        std::fs::write(dir.join(images_name), encode_idx(&[count, 28, 28], &images)).unwrap();
        std::fs::write(dir.join(labels_name), encode_idx(&[count], &labels)).unwrap();
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        write_dataset(&root.join("data"), 300, 50);
        Setup { _dir: dir, root }
    }
    fn path(&self, name: &str) -> String {
        self.root.join(name).to_string_lossy().into_owned()
    }
    fn train(&self, out: &str, extra: &[&str]) -> Output {
        let (data, out) = (self.path("data"), self.path(out));
        let mut args = vec!["train", "--data", &data, "--batch-size", "16", "--threads", "2", "--out", &out, "--json"];
        args.extend_from_slice(extra);
        digitnn(&args)
    }
}

#[test]
fn train_eval_predict_end_to_end() {
    let s = Setup::new();
    let trained = s.train("model.safetensors", &["--epochs", "3"]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let epochs: Vec<Value> = stdout(&trained).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(epochs.len(), 3);
    for key in ["epoch", "train_loss", "last_batch_loss", "test_accuracy", "seconds", "images_per_sec"] {
        assert!(epochs[2].get(key).is_some(), "missing {key}");
    }
    assert!(epochs[2]["test_accuracy"].as_f64().unwrap() >= 0.9, "{}", stdout(&trained));
    assert!(stderr(&trained).contains("not MNIST"));

    let model = s.path("model.safetensors");
    let eval = digitnn(&["eval", "--model", &model, "--data", &s.path("data"), "--json"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let report: Value = serde_json::from_str(stdout(&eval).trim()).unwrap();
    assert_eq!(report["total"], 50);
    assert!(report["refused"].as_u64().is_some_and(|n| n <= 50), "eval reports refusals: {report}");
    assert!(report["read_right"].as_f64().is_some_and(|r| r <= report["accuracy"].as_f64().unwrap()));
    assert_eq!(report["confusion"].as_array().unwrap().len(), 10);
    for corruption in ["rotate", "elastic", "thick", "contrast"] {
        let o = digitnn(&["eval", "--model", &model, "--data", &s.path("data"), "--corrupt", corruption, "--json"]);
        assert!(o.status.success(), "{corruption}: {}", stderr(&o));
        let corrupted: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(corrupted["total"], 50);
    }
    let o = digitnn(&["eval", "--model", &model, "--data", &s.path("data"), "--corrupt", "fog"]);
    assert!(!o.status.success() && stderr(&o).contains("unknown corruption 'fog'"), "{}", stderr(&o));
    let text = digitnn(&["eval", "--model", &model, "--data", &s.path("data")]);
    assert!(stdout(&text).contains("confusion matrix") && stdout(&text).contains("precision"));
    assert!(stdout(&text).contains("refused as not a digit"), "{}", stdout(&text));

    // Three 28x28 digits as PNG files (light on dark, used as is) and one that is not an image.
    let mut paths = Vec::new();
    for class in [2u8, 7, 9] {
        let path = s.path(&format!("digit{class}.png"));
        GrayImage::from_raw(28, 28, synthetic_digit(class, 1000)).unwrap().save(&path).unwrap();
        paths.push(path);
    }
    let predicted = digitnn(&["predict", "--model", &model, "--json", &paths[0], &paths[1], &paths[2]]);
    assert!(predicted.status.success(), "{}", stderr(&predicted));
    let digits: Vec<u64> = stdout(&predicted)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["probabilities"].as_array().unwrap().len(), 10);
            v["digit"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(digits, vec![2, 7, 9]);

    // Every engine the flags can name gives the same digits (and the portable path exists on
    // every CPU); the environment variable is the flag's default.
    for engine in [["--isa", "portable"], ["--conv", "direct"], ["--conv", "winograd2"]] {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let args = [&["predict", "--model", &model][..], &engine[..], &paths[..]].concat();
        let o = digitnn(&args);
        assert!(o.status.success(), "{engine:?}: {}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), 3, "{engine:?}");
    }
    let by_env = std::process::Command::new(env!("CARGO_BIN_EXE_digitnn"))
        .args(["predict", "--model", &model, &paths[1]])
        .env("DIGITNN_ISA", "portable")
        .output()
        .unwrap();
    assert!(stdout(&by_env).contains(": 7 ("), "{}{}", stdout(&by_env), stderr(&by_env));

    // One unreadable image among good ones: reported, the others still predicted, exit non-zero.
    let junk = s.path("junk.png");
    std::fs::write(&junk, b"this is not a png").unwrap();
    let mixed = digitnn(&["predict", "--model", &model, &paths[0], &junk, &paths[1]]);
    assert!(!mixed.status.success());
    assert_eq!(stdout(&mixed).lines().count(), 2, "{}", stdout(&mixed));
    assert!(stderr(&mixed).contains("junk.png"));
}

#[test]
fn same_seed_and_threads_give_identical_model_files() {
    let s = Setup::new();
    for out in ["a.safetensors", "b.safetensors"] {
        assert!(s.train(out, &["--epochs", "1", "--seed", "5"]).status.success());
    }
    let weights = |name: &str| digitnn::model::load(Path::new(&s.path(name))).unwrap().0.params().to_vec();
    assert!(weights("a.safetensors") == weights("b.safetensors"), "two runs with the same seed and threads differ");
    assert!(s.train("c.safetensors", &["--epochs", "1", "--seed", "6"]).status.success());
    assert!(weights("a.safetensors") != weights("c.safetensors"));
}

/// Every bad input gives a one-line error and a non-zero exit (checked for panics in `digitnn`).
#[test]
fn bad_input_is_a_clear_error() {
    let s = Setup::new();
    let data = s.path("data");
    let one_line_error = |o: &Output, needle: &str| {
        assert!(!o.status.success(), "succeeded but should not: {needle}");
        let err = stderr(o);
        assert!(err.contains(needle), "'{err}' should mention '{needle}'");
        assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    };

    // Missing data with fetching forbidden, a corrupt IDX file.
    let o = digitnn(&["train", "--data", &s.path("nowhere"), "--out", &s.path("m.safetensors")]);
    one_line_error(&o, "missing");
    let bad = s.path("bad");
    write_dataset(Path::new(&bad), 20, 10);
    let labels = Path::new(&bad).join("t10k-labels-idx1-ubyte");
    std::fs::write(&labels, &std::fs::read(&labels).unwrap()[..12]).unwrap();
    one_line_error(&digitnn(&["train", "--data", &bad, "--out", &s.path("m.safetensors")]), "truncated");

    // Nonsense flags and values.
    let o = digitnn(&["train", "--optimizer", "rmsprop"]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
    assert!(stderr(&o).contains("unknown optimizer"));
    assert_eq!(digitnn(&["train", "--epochs", "many"]).status.code(), Some(2));
    assert_eq!(digitnn(&["frobnicate"]).status.code(), Some(2));
    one_line_error(&digitnn(&["train", "--data", &data, "--epochs", "0"]), "--epochs");
    one_line_error(&digitnn(&["train", "--data", &data, "--batch-size", "100000"]), "--batch-size");
    one_line_error(&digitnn(&["bench", "--batch-size", "0"]), "--batch-size");
    one_line_error(
        &digitnn(&["train", "--data", &data, "--lr=-1", "--out", &s.path("m.safetensors")]),
        "--lr -1: must be more than 0",
    );
    one_line_error(
        &digitnn(&["train", "--data", &data, "--threads", "0", "--out", &s.path("m.safetensors")]),
        "--threads",
    );
    one_line_error(
        &digitnn(&["train", "--data", &data, "--out", &s.path("no/such/dir/m.safetensors")]),
        "cannot write",
    );

    // Model files: missing, not a model, the wrong shape.
    let image = s.path("digit.png");
    GrayImage::from_pixel(28, 28, Luma([0])).save(&image).unwrap();
    one_line_error(&digitnn(&["predict", "--model", &s.path("absent.safetensors"), &image]), "absent.safetensors");
    let garbage = s.path("garbage.safetensors");
    std::fs::write(&garbage, vec![7u8; 1000]).unwrap();
    one_line_error(&digitnn(&["predict", "--model", &garbage, &image]), "not a safetensors");
    one_line_error(&digitnn(&["eval", "--model", &garbage, "--data", &data]), "garbage.safetensors");

    // Images: empty, blank, missing.
    assert!(s.train("m.safetensors", &["--epochs", "1", "--limit", "20"]).status.success());
    let model = s.path("m.safetensors");
    let empty = s.path("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let o = digitnn(&["predict", "--model", &model, &empty]);
    assert!(!o.status.success() && stderr(&o).contains("empty.png"));
    let blank = s.path("blank.png");
    GrayImage::from_pixel(50, 40, Luma([255])).save(&blank).unwrap();
    let o = digitnn(&["predict", "--model", &model, &blank]);
    assert!(!o.status.success() && stderr(&o).contains("blank"));
    let o = digitnn(&["predict", "--model", &model, &s.path("nope.png")]);
    assert!(!o.status.success() && stderr(&o).contains("nope.png"));
    for (flag, value) in [("--isa", "sse9"), ("--conv", "fft")] {
        let o = digitnn(&["predict", "--model", &model, flag, value, &s.path("nope.png")]);
        assert!(!o.status.success() && stderr(&o).contains(value), "{flag} {value}: {}", stderr(&o));
    }
}

#[test]
fn bench_reports_json() {
    let o = digitnn(&["bench", "--json", "--steps", "2", "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    for key in ["train_images_per_sec", "infer_batch_images_per_sec", "infer_single_latency_us", "threads"] {
        assert!(report[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {report}");
    }
    assert_eq!(report["threads"], 1);
    assert_eq!(report["isa"], digitnn::Isa::best().name());
    // (The slow paths are left to the predict test: bench's inference part runs 10,000 images.)
    let winograd2 = digitnn(&["bench", "--json", "--steps", "1", "--threads", "1", "--conv", "winograd2", "--augment"]);
    let report: Value = serde_json::from_str(stdout(&winograd2).trim()).unwrap();
    assert_eq!(report["conv"].as_str(), Some("winograd2"));
}

#[test]
fn convert_both_ways_and_export_onnx() {
    let s = Setup::new();
    assert!(s.train("m.safetensors", &["--epochs", "1", "--limit", "40"]).status.success());
    let (st, pt, back, onnx) = (s.path("m.safetensors"), s.path("m.pt"), s.path("back.safetensors"), s.path("m.onnx"));
    assert!(digitnn(&["convert", &st, &pt]).status.success());
    assert!(std::fs::read(&pt).unwrap().starts_with(b"PK"), "a .pt file is a zip archive");
    assert!(digitnn(&["convert", &pt, &back]).status.success());
    let weights = |p: &str| digitnn::model::load(Path::new(p)).unwrap().0.params().to_vec();
    assert!(weights(&st) == weights(&back));
    // The .pt file is recognised by content, whatever its name.
    let renamed = s.path("model.bin");
    std::fs::copy(&pt, &renamed).unwrap();
    let image = s.path("digit.png");
    GrayImage::from_raw(28, 28, synthetic_digit(4, 7)).unwrap().save(&image).unwrap();
    let a = digitnn(&["predict", "--model", &renamed, "--json", &image]);
    let b = digitnn(&["predict", "--model", &st, "--json", &image]);
    assert!(a.status.success() && stdout(&a).replace(&renamed, "") == stdout(&b).replace(&st, ""));
    assert!(digitnn(&["eval", "--model", &pt, "--data", &s.path("data")]).status.success());

    assert!(digitnn(&["export", "--onnx", &onnx, "--model", &pt]).status.success());
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1_400_000);
    let o = digitnn(&["convert", &st, &s.path("m.txt")]);
    assert!(!o.status.success() && stderr(&o).contains(".safetensors, .pt or .pth"));
    // bfloat16: half the file, every weight within a 256th of itself, and still a model.
    let half = s.path("half.safetensors");
    assert!(digitnn(&["convert", &st, &half, "--bf16"]).status.success());
    let (full_len, half_len) = (std::fs::metadata(&st).unwrap().len(), std::fs::metadata(&half).unwrap().len());
    assert!(half_len * 10 < full_len * 6, "{half_len} vs {full_len} bytes");
    for (a, b) in weights(&st).iter().zip(weights(&half)) {
        assert!((a - b).abs() <= a.abs() / 256.0, "{a} became {b}");
    }
    assert!(digitnn(&["predict", "--model", &half, &image]).status.success());
    let o = digitnn(&["convert", &st, &pt, "--bf16"]);
    assert!(!o.status.success() && stderr(&o).contains("safetensors files only"), "{}", stderr(&o));
}

#[test]
fn compare_and_reports_write_readable_pictures() {
    let s = Setup::new();
    let (data, out) = (s.path("data"), s.path("cmp"));
    let o = digitnn(&[
        "compare",
        "--data",
        &data,
        "--optimizers",
        "adam,sgd",
        "--epochs",
        "2",
        "--limit",
        "64",
        "--out",
        &out,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let epochs: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        epochs.iter().map(|e| e["optimizer"].as_str().unwrap()).collect::<Vec<_>>(),
        ["adam", "adam", "sgd", "sgd"]
    );
    let csv = std::fs::read_to_string(Path::new(&out).join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    assert!(csv.starts_with("optimizer,epoch,train_loss"));
    let summary = std::fs::read_to_string(Path::new(&out).join("summary.md")).unwrap();
    assert!(summary.contains("| adam (lr 0.001) |") && summary.contains("| sgd (lr 0.01) |"), "{summary}");
    let png = image::open(Path::new(&out).join("loss.png")).unwrap();
    assert_eq!((png.width(), png.height()), digitnn::report::CHART_SIZE);
    assert!(std::fs::read_to_string(Path::new(&out).join("loss.svg")).unwrap().starts_with("<svg"));

    let report = s.path("train-report");
    assert!(s.train("m.safetensors", &["--epochs", "1", "--limit", "64", "--report", &report]).status.success());
    assert!(image::open(Path::new(&report).join("loss.png")).is_ok());
    assert_eq!(std::fs::read_to_string(Path::new(&report).join("results.csv")).unwrap().lines().count(), 2);

    let eval_report = s.path("eval-report");
    let o = digitnn(&["eval", "--model", &s.path("m.safetensors"), "--data", &data, "--report", &eval_report]);
    assert!(o.status.success(), "{}", stderr(&o));
    let confusion = image::open(Path::new(&eval_report).join("confusion.png")).unwrap();
    assert_eq!((confusion.width(), confusion.height()), (720, 700));
    assert!(image::open(Path::new(&eval_report).join("errors.png")).is_ok());
}

#[test]
fn compare_refuses_bad_arguments_before_training() {
    let s = Setup::new();
    let data = s.path("data");
    for (args, needle) in [
        (vec!["--optimizers", "adam,rmsprop"], "unknown optimizer 'rmsprop'"),
        (vec!["--optimizers", ""], "--optimizers is empty"),
        (vec!["--optimizers", " , "], "--optimizers is empty"),
        (vec!["--optimizers", "adam,sgd", "--lr", "0.1,0.2,0.3"], "3 values for 2 optimizers"),
        (vec!["--lr", "fast"], "not a number"),
        (vec!["--out", "/proc/digitnn-cannot-write-here"], "cannot create"),
    ] {
        let mut all = vec!["compare", "--data", &data, "--epochs", "1"];
        all.extend(args);
        let o = digitnn(&all);
        assert!(!o.status.success(), "{all:?}");
        assert!(stderr(&o).contains(needle), "{all:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "no training ran: {}", stdout(&o));
    }
}

/// The recipe flags beyond the original: augmentation (with elastic distortion), a schedule with
/// warm-up, label smoothing and a weight average; seeded, so thread counts give the same bits;
/// `augment.png` drawn; the seed-plus preset runs; bad values refused before training.
#[test]
fn augmented_training_is_seeded_and_reported() {
    let s = Setup::new();
    let recipe = [
        "--epochs",
        "2",
        "--limit",
        "96",
        "--augment",
        "--elastic",
        "--schedule",
        "onecycle",
        "--warmup",
        "0.2",
        "--label-smoothing",
        "0.1",
        "--ema",
        "0.9",
    ];
    let report = s.path("augmented");
    let mut first = recipe.to_vec();
    first.extend(["--report", &report]);
    let o = s.train("a.safetensors", &first);
    assert!(o.status.success(), "{}", stderr(&o));
    let grid = image::open(Path::new(&report).join("augment.png")).unwrap();
    assert!(grid.width() > 100 && grid.height() > 100);
    // The same recipe on one thread (Setup::train uses two).
    let (data, out) = (s.path("data"), s.path("b.safetensors"));
    let mut one_thread = vec!["train", "--data", &data, "--batch-size", "16", "--threads", "1", "--out", &out];
    one_thread.extend(recipe);
    let o = digitnn(&one_thread);
    assert!(o.status.success(), "{}", stderr(&o));
    let weights = |name: &str| digitnn::model::load(Path::new(&s.path(name))).unwrap().0.params().to_vec();
    assert!(weights("a.safetensors") == weights("b.safetensors"), "augmented training depends on threads");

    let o = s.train("plus.safetensors", &["--preset", "seed-plus", "--epochs", "1", "--limit", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.train("fast.safetensors", &["--preset", "fast", "--limit", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let arch = s.path("tiny.json");
    std::fs::write(&arch, r#"[{"type": "flatten"}, {"type": "linear", "in_features": 784, "out_features": 10}]"#)
        .unwrap();
    let o = s.train("tiny.safetensors", &["--arch", &arch, "--epochs", "1", "--limit", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tiny = digitnn::model::load(Path::new(&s.path("tiny.safetensors"))).unwrap().0;
    assert_eq!(tiny.parameter_count(), 7850);

    for (flag, value) in [
        ("--label-smoothing", "1.5"),
        ("--ema", "2"),
        ("--schedule", "linear"),
        ("--warmup", "1"),
        ("--rotation", "500"),
        ("--preset", "best-ever"),
        ("--arch", "no-such-architecture.json"),
    ] {
        let o = s.train("bad.safetensors", &["--augment", flag, value]);
        assert!(!o.status.success(), "{flag} {value}");
        assert!(stderr(&o).contains(flag.trim_start_matches("--")) || stderr(&o).contains(value), "{}", stderr(&o));
        assert!(stdout(&o).is_empty(), "no training ran for {flag} {value}");
    }
}

/// With no --model: digit_model.safetensors in the working directory if there is one, else the
/// built-in model; either way the command says which.
#[test]
fn predict_and_eval_use_the_builtin_model_on_a_fresh_checkout() {
    let s = Setup::new();
    let seven = s.path("seven.png");
    GrayImage::from_raw(28, 28, synthetic_digit(7, 3)).unwrap().save(&seven).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_digitnn"))
            .args(args)
            .current_dir(&s.root)
            .env("DIGITNN_NO_FETCH", "1")
            .env_remove("DIGITNN_DATA")
            .output()
            .unwrap()
    };
    let o = run(&["predict", &seven]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("model: the built-in reader model"), "{}", stderr(&o));
    let o = run(&["eval", "--data", &s.path("data"), "--json"]);
    assert!(o.status.success() && stderr(&o).contains("built-in"), "{}", stderr(&o));

    assert!(s.train("digit_model.safetensors", &["--epochs", "1", "--limit", "32"]).status.success());
    let o = run(&["predict", &seven]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("model: digit_model.safetensors"), "{}", stderr(&o));
}

/// `train-lines` writes a line model that `read --line-model` takes; a digit model is refused
/// as a line model with one line, and `--cuts-only` reads without one.
#[test]
fn train_lines_makes_a_line_model_read_takes() {
    let s = Setup::new();
    let out = s.path("lines.safetensors");
    let trained =
        digitnn(&["train-lines", "--data", &s.path("data"), "--steps", "3", "--batch-size", "4", "--out", &out]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    assert!(stdout(&trained).contains("step      3/3"), "{}", stdout(&trained));
    let picture = s.path("number.png");
    let mut rng = <rand_chacha::ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(1);
    digitnn::data::numbers::pen_number("42", digitnn::data::numbers::Spacing::Gaps, &mut rng).save(&picture).unwrap();
    let read = digitnn(&["read", "--line-model", &out, "--json", &picture]);
    assert!(read.status.success(), "{}", stderr(&read));
    let reading: Value = serde_json::from_str(stdout(&read).trim()).unwrap();
    assert!(reading["text"].is_string(), "{reading}");
    let cuts = digitnn(&["read", "--cuts-only", &picture]);
    assert!(cuts.status.success() && stdout(&cuts).contains(": 42"), "{}", stdout(&cuts));

    let digit_model = s.path("digits.safetensors");
    assert!(s.train("digits.safetensors", &["--epochs", "1"]).status.success());
    let refused = digitnn(&["read", "--line-model", &digit_model, &picture]);
    assert!(!refused.status.success(), "a digit model was taken as a line model");
    let message = stderr(&refused);
    let errors: Vec<&str> = message.lines().filter(|l| l.starts_with("error")).collect();
    assert!(errors.len() == 1 && errors[0].contains("not a line model"), "{message}");
    let bad = digitnn(&["train-lines", "--data", &s.path("data"), "--steps", "0", "--out", &out]);
    assert!(!bad.status.success() && stderr(&bad).contains("--steps"), "{}", stderr(&bad));
}
