//! Digits as people photograph or draw them (large, off-centre, dark ink on grey paper, colour
//! JPEG with noise; light ink on a transparent canvas) must be prepared like MNIST and read
//! correctly by a model digitnn trained on MNIST (tests/fixtures/mnist_model.safetensors, one
//! epoch: `digitnn train --epochs 1 --seed 0`).

use digitnn::data::image::{Preparation, decode, prepare};
use digitnn::predict::predict_pixels;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use std::path::Path;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mnist_model.safetensors");

/// Strokes of a digit in a unit box (x right, y down), as polylines.
fn strokes(digit: u8) -> Vec<Vec<(f32, f32)>> {
    match digit {
        0 => vec![
            (0..=24)
                .map(|i| {
                    let a = i as f32 / 24.0 * std::f32::consts::TAU;
                    (0.5 + 0.32 * a.sin(), 0.5 - 0.45 * a.cos())
                })
                .collect(),
        ],
        1 => vec![vec![(0.4, 0.2), (0.55, 0.05), (0.55, 0.95)]],
        4 => vec![vec![(0.6, 0.05), (0.15, 0.65), (0.85, 0.65)], vec![(0.6, 0.3), (0.6, 0.95)]],
        7 => vec![vec![(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)]],
        _ => unreachable!(),
    }
}

/// Distance from p to the segment a-b.
fn distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy).max(1e-9)).clamp(0.0, 1.0);
    ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
}

/// How much ink covers pixel (x, y) for a digit drawn in the box at (left, top) of side `size`.
fn ink(digit: u8, x: u32, y: u32, left: f32, top: f32, size: f32, pen: f32) -> f32 {
    let p = ((x as f32 - left) / size, (y as f32 - top) / size);
    let d = strokes(digit).iter().flat_map(|s| s.windows(2).map(|w| distance(p, w[0], w[1]))).fold(f32::MAX, f32::min);
    (1.0 - (d * size - pen).max(0.0)).clamp(0.0, 1.0)
}

/// A colour photo of a digit written on grey paper: 640x480, off-centre, noisy, JPEG.
fn photo(digit: u8) -> Vec<u8> {
    let mut noise = 12345u32 + digit as u32;
    let img = RgbImage::from_fn(640, 480, |x, y| {
        noise = noise.wrapping_mul(1664525).wrapping_add(1013904223);
        let grain = (noise >> 24) as f32 / 255.0 * 16.0 - 8.0;
        let paper = 190.0 + x as f32 * 0.05 + grain;
        let v = paper * (1.0 - 0.85 * ink(digit, x, y, 330.0, 90.0, 260.0, 11.0));
        Rgb([(v * 0.95) as u8, v as u8, (v * 0.9) as u8])
    });
    let mut jpeg = Vec::new();
    DynamicImage::ImageRgb8(img).write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg).unwrap();
    jpeg
}

/// A canvas export: light strokes on a fully transparent background, PNG.
fn canvas(digit: u8) -> Vec<u8> {
    let img = RgbaImage::from_fn(300, 300, |x, y| {
        let a = ink(digit, x, y, 40.0, 40.0, 220.0, 9.0);
        Rgba([255, 255, 255, (a * 255.0) as u8])
    });
    let mut png = Vec::new();
    DynamicImage::ImageRgba8(img).write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png).unwrap();
    png
}

/// Every photo and canvas drawing, prepared like MNIST, read by `network` as its digit.
fn reads_every_picture(network: &mut digitnn::model::Network, model: &str) {
    for digit in [0u8, 1, 4, 7] {
        for (kind, bytes) in [("photo", photo(digit)), ("canvas", canvas(digit))] {
            let name = format!("{kind} of {digit}");
            let decoded = decode(&bytes, Path::new(&name), Default::default()).unwrap();
            let (pixels, how) = prepare(&decoded, false, Path::new(&name)).unwrap();
            assert!(matches!(how, Preparation::MnistStyle { .. }), "{name}: {how:?}");
            let p = predict_pixels(network, &[pixels], true).unwrap().remove(0);
            assert_eq!(p.digit, Some(digit as usize), "{model}, {name}: read as {:?} ({:.2})", p.digit, p.confidence);
        }
    }
}

#[test]
fn photos_and_canvas_drawings_are_read_correctly() {
    let (mut network, _) = digitnn::model::load(Path::new(MODEL)).unwrap();
    reads_every_picture(&mut network, "one-epoch model");
}

/// The model built into the binary (models/reader.safetensors) loads, records its accuracy,
/// and reads the same pictures (none refused as not a digit).
#[test]
fn the_builtin_model_reads_photos_and_drawings() {
    let (mut network, info) = digitnn::model::builtin().unwrap();
    assert!(info.test_accuracy.is_some_and(|a| a > 0.99), "{:?}", info.test_accuracy);
    reads_every_picture(&mut network, digitnn::model::BUILTIN_NAME);
}
