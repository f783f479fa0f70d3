//! The browser build: `digitnn web` writes the static site, and its WebAssembly module computes
//! what the native library computes. Under Node (tests/browser/wasm.mjs): the SIMD128 kernels'
//! self-check, logits on SIMD128 and on the portable kernels against native ones, and numbers
//! read and digits predicted against the native reader on the same pixels. In headless Chromium
//! (tests/browser/web.mjs): the site served from loopback, drawn on and uploaded to, against the
//! command line's answers.
//!
//! Needs node (and for the browser test Chromium and `npm ci` in tests/browser); a test that
//! cannot run says SKIPPED by name, and fails in CI instead.

use digitnn::ConvAlgorithm;
use digitnn::data::image::{ImageLimits, from_rgba, prepare};
use digitnn::data::numbers::{self, Spacing};
use digitnn::predict::predict_pixels;
use digitnn::read::{ReadConfig, Reader, read_image};
use image::DynamicImage;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::digitnn;

/// The goal for the module with its model inside (burn's MNIST demo: 1.87 MB).
const MAX_WASM_BYTES: u64 = 1_500_000;

/// Whether the tools are here; if not, says SKIPPED by name (and fails in CI, which has them).
fn tools_present(test: &str, needs: &[(&str, bool)]) -> bool {
    let missing: Vec<&str> = needs.iter().filter(|(_, present)| !present).map(|(name, _)| *name).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test} cannot run in CI: missing {}", missing.join(", "));
    let line = format!("SKIPPED {test}: missing {}\n", missing.join(", "));
    std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes()).unwrap();
    false
}

fn node_present() -> bool {
    Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// The static site as `digitnn web DIR` writes it; None (after saying SKIPPED for `test`) where
/// this digitnn was built without its browser build (no wasm32 target: build.rs warned).
fn site(test: &str) -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let output = digitnn(&["web", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("built without its browser build") {
        let line = format!("SKIPPED {test}: {}", stderr.trim_start_matches("error: "));
        std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes()).unwrap();
        return None;
    }
    assert!(output.status.success(), "digitnn web failed: {stderr}");
    Some(dir)
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Numbers drawn with a pen (with gaps and touching) and single digits, as RGBA pictures.
fn pictures() -> Vec<(String, DynamicImage)> {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut out = Vec::new();
    for (i, text) in ["209", "314159", "7", "0", "4.50", "88"].iter().enumerate() {
        let spacing = if i % 2 == 0 { Spacing::Gaps } else { Spacing::Touching };
        out.push((format!("n{i}"), DynamicImage::ImageRgba8(numbers::pen_number(text, spacing, &mut rng).to_rgba8())));
    }
    out
}

#[test]
fn the_site_holds_the_page_script_and_module() {
    let Some(dir) = site("the_site_holds_the_page_script_and_module") else { return };
    let page = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(page.contains(r#"<script src="digitnn.js"></script>"#), "the page does not load digitnn.js");
    let script = std::fs::read_to_string(dir.path().join("digitnn.js")).unwrap();
    assert!(script.contains("window.digitnn"));
    let wasm = std::fs::read(dir.path().join("digitnn.wasm")).unwrap();
    assert_eq!(&wasm[..4], b"\0asm", "digitnn.wasm is not a WebAssembly module");
    assert!(wasm.len() as u64 <= MAX_WASM_BYTES, "digitnn.wasm is {} bytes, over {MAX_WASM_BYTES}", wasm.len());
    // Nothing fetched from outside: no URL but the page's own files.
    assert!(!page.contains("http://") && !page.contains("https://") && !script.contains("https://"));
}

#[test]
fn a_folder_that_cannot_be_written_is_refused_clearly() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let output = digitnn(&["web", file.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: ") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn the_wasm_module_computes_what_the_native_library_does() {
    if !tools_present("the_wasm_module_computes_what_the_native_library_does", &[("node", node_present())]) {
        return;
    }
    let Some(dir) = site("the_wasm_module_computes_what_the_native_library_does") else { return };
    let inputs = tempfile::tempdir().unwrap();
    let mut reader = Reader::builtin().unwrap();

    // Images the model takes: pen digits and numbers prepared as predict prepares them.
    let pictures = pictures();
    let mut images = Vec::new();
    for (_, picture) in &pictures {
        let (pixels, _) = prepare(picture, false, Path::new("picture")).unwrap();
        images.extend(pixels.iter().map(|&v| digitnn::data::pixel_value(v)));
    }
    let bytes: Vec<u8> = images.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(inputs.path().join("images.f32"), bytes).unwrap();
    let mut listing = Vec::new();
    for (name, picture) in &pictures {
        std::fs::write(inputs.path().join(format!("{name}.rgba")), picture.to_rgba8().as_raw()).unwrap();
        listing.push(serde_json::json!({ "name": name, "width": picture.width(), "height": picture.height() }));
    }
    std::fs::write(inputs.path().join("pictures.json"), serde_json::to_string(&listing).unwrap()).unwrap();

    let output = Command::new("node")
        .arg(browser_dir().join("wasm.mjs"))
        .arg(dir.path())
        .arg(inputs.path())
        .arg(ConvAlgorithm::ALL.len().to_string())
        .output()
        .expect("node runs");
    assert!(output.status.success(), "wasm.mjs failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).expect("wasm.mjs prints JSON");

    // Hostile callers get an error each, and the module goes on answering.
    let hostile = &result["hostile"];
    assert_eq!(hostile["huge_alloc"], 0, "an allocation past the limit was granted");
    assert!(hostile["short"]["error"].as_str().unwrap().contains("16 bytes are not 10x10 RGBA pixels"), "{hostile}");
    assert!(hostile["wide"]["error"].as_str().unwrap().contains("wider or taller"), "{hostile}");
    assert!(hostile["null_read"]["error"].as_str().unwrap().contains("more pixels than the limit"), "{hostile}");

    // The SIMD128 kernels passed the same per-operation check the native ones pass.
    assert_eq!(result["checked"], serde_json::json!(["portable", "simd128"]), "{}", result["checked"]);

    // Logits within 1e-5 of native ones, on both wasm paths with every convolution algorithm.
    let native = reader.pieces.forward(&images, pictures.len(), false).to_vec();
    for path in ["portable", "simd128"] {
        for (a, conv) in ConvAlgorithm::ALL.into_iter().enumerate() {
            let wasm: Vec<f32> = serde_json::from_value(result["logits"][path][a].clone()).unwrap();
            assert_eq!(wasm.len(), native.len(), "{path} {conv}");
            let worst = wasm.iter().zip(&native).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            eprintln!("wasm {path} {conv}: logits at most {worst:e} from native");
            assert!(worst <= 1e-5, "{path} {conv}: logits differ from native by {worst}");
        }
    }

    // The same readings and predictions as the native library on the same pixels.
    for (i, (name, picture)) in pictures.iter().enumerate() {
        let rgba = picture.to_rgba8();
        let same =
            from_rgba(rgba.width(), rgba.height(), rgba.as_raw(), Path::new(name), ImageLimits::default()).unwrap();
        let reading = read_image(&mut reader.pieces, reader.line.as_mut(), &same, &ReadConfig::default()).unwrap();
        let wasm = &result["read"][i];
        assert_eq!(wasm["text"], reading.text.as_str(), "{name}: {wasm}");
        let boxes = |digits: &Value| digits.as_array().unwrap().iter().map(|d| d["box"].clone()).collect::<Vec<_>>();
        assert_eq!(boxes(&wasm["digits"]), boxes(&serde_json::to_value(&reading).unwrap()["digits"]), "{name}");
        let confidence = wasm["confidence"].as_f64().unwrap();
        assert!(
            (confidence - reading.confidence as f64).abs() < 1e-4,
            "{name}: {confidence} vs {}",
            reading.confidence
        );

        let (pixels, _) = prepare(&same, false, Path::new(name)).unwrap();
        let prediction = predict_pixels(&mut reader.pieces, &[pixels], true).unwrap().remove(0);
        let wasm = &result["predict"][i];
        assert_eq!(wasm["guess"], prediction.guess, "{name}: {wasm}");
        assert_eq!(wasm["is_digit"], prediction.is_digit, "{name}: {wasm}");
        assert_eq!(wasm["input"], serde_json::json!(pixels.to_vec()), "{name}: the 28x28 input differs");
    }
}

/// The static site served from loopback in headless Chromium (tests/browser/web.mjs): digits
/// drawn, a number written and a photo uploaded on the page, and the JS API called on files;
/// each answer equal to the command line's for the same file. Prints the timings the README
/// reports (no assertions on them: speed lives in benchmarks).
#[test]
fn the_static_site_reads_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let present = [
        ("node", node_present()),
        ("Chromium (apt-get install chromium)", Path::new(&chromium).exists()),
        ("playwright-core (npm ci in tests/browser)", browser_dir().join("node_modules/playwright-core").exists()),
    ];
    if !tools_present("the_static_site_reads_in_a_real_browser", &present) {
        return;
    }
    let Some(dir) = site("the_static_site_reads_in_a_real_browser") else { return };
    let samples = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let number = samples.path().join("number.png");
    numbers::pen_number("314159", Spacing::Gaps, &mut rng).save(&number).unwrap();
    let digit = samples.path().join("digit.png");
    numbers::pen_number("6", Spacing::Gaps, &mut rng).save(&digit).unwrap();
    // More pictures, read by the browser's decoder and by the image crate's: JPEGs (whose
    // decoders may differ in the last bits) and a grey PNG, touching digits among them.
    let mut more = Vec::new();
    for (i, (text, spacing)) in
        [("4711", Spacing::Touching), ("2090", Spacing::Gaps), ("386", Spacing::Touching)].iter().enumerate()
    {
        let picture = numbers::pen_number(text, *spacing, &mut rng);
        let path = samples.path().join(format!("more{i}.{}", if i == 2 { "png" } else { "jpg" }));
        match i {
            2 => picture.to_luma8().save(&path).unwrap(),
            _ => picture.to_rgb8().save(&path).unwrap(),
        }
        more.push(path);
    }

    let cli = |args: &[&str]| -> Value {
        let output = digitnn(args);
        assert!(output.status.success(), "digitnn {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let read = cli(&["read", "--json", number.to_str().unwrap()]);
    let numbers_model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/numbers.safetensors");
    let predict = cli(&["predict", "--json", "--model", numbers_model.to_str().unwrap(), digit.to_str().unwrap()]);

    let screenshot = samples.path().join("web.png");
    let output = Command::new("node")
        .arg(browser_dir().join("web.mjs"))
        .args([dir.path(), &number, &digit, &screenshot])
        .args(&more)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let result: Value = serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("web.mjs printed no result: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    eprintln!("{stdout}");
    assert!(output.status.success() && result["ok"] == true, "the page failed: {stdout}");

    // The photo uploaded on the page and the JS API read what the command line reads.
    assert_eq!(result["uploaded"], read["text"], "{stdout}");
    assert_eq!(result["read"]["text"], read["text"]);
    for (wasm, native) in result["read"]["digits"].as_array().unwrap().iter().zip(read["digits"].as_array().unwrap()) {
        assert_eq!((&wasm["digit"], &wasm["box"]), (&native["digit"], &native["box"]), "{wasm} vs {native}");
        let (a, b) = (wasm["confidence"].as_f64().unwrap(), native["confidence"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-4, "confidence {a} vs {b}");
    }
    assert_eq!(result["read"]["digits"].as_array().unwrap().len(), read["digits"].as_array().unwrap().len());
    for field in ["digit", "guess", "is_digit"] {
        assert_eq!(result["predict"][field], predict[field], "{field}: {} vs {predict}", result["predict"]);
    }
    let (a, b) = (result["predict"]["confidence"].as_f64().unwrap(), predict["confidence"].as_f64().unwrap());
    assert!((a - b).abs() < 1e-4, "confidence {a} vs {b}");
    for (i, path) in more.iter().enumerate() {
        let native = cli(&["read", "--json", path.to_str().unwrap()]);
        let wasm = &result["more"][i];
        assert_eq!(wasm["text"], native["text"], "{}: {wasm} vs {native}", path.display());
        let boxes = |r: &Value| r["digits"].as_array().unwrap().iter().map(|d| d["box"].clone()).collect::<Vec<_>>();
        assert_eq!(boxes(wasm), boxes(&native), "{}", path.display());
    }
}
