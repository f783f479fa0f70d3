//! Writes the fuzzers' seed corpora: small valid inputs for each target in `fuzz/`.
//!
//! ```sh
//! cargo run --example fuzz_seeds -- fuzz/corpus
//! ```
//! Rerunning it gives the same files. The fuzzers add what they find beside them (minimised with
//! `cargo +nightly fuzz cmin TARGET` before committing, to keep the corpora small).

use digitnn::data::idx::encode_idx;
use digitnn::model::{self, Architecture, LayerSpec, Network};
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgba, RgbaImage};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)
    };

    // IDX: labels, a few 4x4 images, and 3-D data.
    write("idx", "labels", &encode_idx(&[5], &[0, 1, 2, 3, 9]))?;
    write("idx", "images", &encode_idx(&[2, 4, 4], &(0..32).map(|v| v * 8).collect::<Vec<u8>>()))?;
    write("idx", "empty", &encode_idx(&[0, 28, 28], &[]))?;

    // Models: small architectures with every layer kind, as safetensors.
    for (name, architecture) in small_architectures() {
        let network = Network::new(architecture, 1)?;
        write("model", &format!("{name}.safetensors"), &model::to_bytes(&network, Some(0.5))?)?;
    }

    // .pt: a small state_dict as torch.save lays it out (the unpickler alone is fuzzed).
    let tensors = vec![
        ("model.0.weight".to_string(), model::pt::NamedTensor { shape: vec![2, 1, 2, 2], values: vec![0.5; 8] }),
        ("model.0.bias".to_string(), model::pt::NamedTensor { shape: vec![2], values: vec![-1.0, 1.0] }),
    ];
    write("pt", "state_dict.pt", &model::pt::write_state_dict(&tensors)?)?;
    // With an int64 tensor, as BatchNorm's batch counter is saved.
    let counter =
        ("model.1.num_batches_tracked".to_string(), model::pt::NamedTensor { shape: vec![], values: vec![3.0] });
    let with_counter = [tensors.clone(), vec![counter]].concat();
    write("pt", "batchnorm_counter.pt", &model::pt::write_state_dict(&with_counter)?)?;
    write("model", "state_dict.pt", &model::pt::write_state_dict(&tensors)?)?;

    // Images: a small digit in every format read, with and without alpha.
    let digit =
        GrayImage::from_fn(20, 24, |x, y| Luma([if (8..12).contains(&x) && (3..21).contains(&y) { 20 } else { 235 }]));
    let stroke = |x: u32, y: u32| (6..10).contains(&x) && (3..13).contains(&y);
    let canvas = RgbaImage::from_fn(16, 16, |x, y| if stroke(x, y) { Rgba([0, 0, 0, 255]) } else { Rgba([0; 4]) });
    for (ext, format) in [
        ("png", ImageFormat::Png),
        ("jpg", ImageFormat::Jpeg),
        ("gif", ImageFormat::Gif),
        ("bmp", ImageFormat::Bmp),
        ("webp", ImageFormat::WebP),
        ("tiff", ImageFormat::Tiff),
        ("pgm", ImageFormat::Pnm),
    ] {
        // Not every encoder writes 8-bit gray (GIF does not): those get RGBA.
        let gray = DynamicImage::ImageLuma8(digit.clone());
        let bytes = encoded(&gray, format).or_else(|_| encoded(&DynamicImage::ImageRgba8(gray.to_rgba8()), format))?;
        write("image", &format!("digit.{ext}"), &bytes)?;
    }
    write("image", "canvas.png", &encoded(&DynamicImage::ImageRgba8(canvas), ImageFormat::Png)?)?;

    // Requests: the first byte picks the Content-Type (see digitnn::fuzz::request).
    let pixels: Vec<String> = (0..784).map(|i| if (i % 28) / 4 == 3 { "255".into() } else { "0".into() }).collect();
    let json = format!("{{\"pixels\": [{}]}}", pixels.join(","));
    write("request", "pixels.json", &[&[0u8][..], json.as_bytes()].concat())?;
    let png = encoded(&DynamicImage::ImageLuma8(digit), ImageFormat::Png)?;
    write("request", "digit.png", &[&[1u8][..], &png].concat())?;

    // Numbers for `read`: pen digits with a comma, touching digits as a JPEG, a field of specks
    // (more marks than a number has), and a long thin line.
    use digitnn::data::numbers::{Spacing, pen_number};
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
    write("read", "comma.png", &encoded(&pen_number("2,09", Spacing::Gaps, &mut rng), ImageFormat::Png)?)?;
    let touching = pen_number("4711", Spacing::Touching, &mut rng).to_rgb8();
    write("read", "touching.jpg", &encoded(&DynamicImage::ImageRgb8(touching), ImageFormat::Jpeg)?)?;
    let specks = GrayImage::from_fn(300, 300, |x, y| Luma([if x % 5 < 2 && y % 5 < 2 { 0 } else { 255 }]));
    write("read", "specks.png", &encoded(&DynamicImage::ImageLuma8(specks), ImageFormat::Png)?)?;
    let line = GrayImage::from_fn(4000, 12, |x, y| Luma([if (x / 7) % 3 == 0 && y > 2 && y < 10 { 0 } else { 255 }]));
    write("read", "line.png", &encoded(&DynamicImage::ImageLuma8(line), ImageFormat::Png)?)?;

    // Pixels for the browser build: width and height (u16 LE), then RGBA. A pen number, a canvas
    // drawing with its ink in alpha, and headers that lie about the pixels that follow.
    let rgba = |picture: &RgbaImage| -> Vec<u8> {
        let (w, h) = (picture.width() as u16, picture.height() as u16);
        [&w.to_le_bytes()[..], &h.to_le_bytes(), picture.as_raw()].concat()
    };
    write("pixels", "number.rgba", &rgba(&pen_number("209", Spacing::Gaps, &mut rng).to_rgba8()))?;
    let drawn =
        RgbaImage::from_fn(60, 40, |x, y| Rgba([0, 0, 0, if (x as i32 - 30).abs() < 3 && y > 5 { 255 } else { 0 }]));
    write("pixels", "alpha.rgba", &rgba(&drawn))?;
    write("pixels", "short.rgba", &[&60u16.to_le_bytes()[..], &40u16.to_le_bytes(), &[255; 100]].concat())?;
    write("pixels", "huge.rgba", &[&u16::MAX.to_le_bytes()[..], &u16::MAX.to_le_bytes(), &[0; 16]].concat())?;
    write("pixels", "empty.rgba", &[0; 4])?;
    write("pixels", "one.rgba", &[1, 0, 1, 0, 255, 255, 255, 255])?;
    println!("wrote the seed corpora under {}", root.display());
    Ok(())
}

/// Architectures of a few thousand parameters covering every layer kind and option.
fn small_architectures() -> Vec<(&'static str, Architecture)> {
    let conv = |i, o, k, stride, padding| LayerSpec::Conv2d {
        in_channels: i,
        out_channels: o,
        kernel_size: k,
        stride,
        padding,
    };
    vec![
        (
            "conv_relu_linear",
            Architecture {
                input: [1, 8, 8],
                layers: vec![conv(1, 2, 3, 1, 0), LayerSpec::Relu, LayerSpec::Flatten, linear(72, 10)],
            },
        ),
        (
            "winograd_pool_dropout",
            Architecture {
                input: [1, 12, 12],
                layers: vec![
                    conv(1, 8, 3, 1, 1),
                    LayerSpec::Relu,
                    conv(8, 8, 3, 1, 1),
                    LayerSpec::Relu,
                    LayerSpec::MaxPool2d { kernel_size: 2, stride: 2 },
                    LayerSpec::Dropout { p: 0.25 },
                    LayerSpec::Flatten,
                    linear(288, 10),
                ],
            },
        ),
        (
            // One BatchNorm folds into its convolution, the other (after pooling) does not.
            "batchnorm",
            Architecture {
                input: [1, 6, 6],
                layers: vec![
                    conv(1, 2, 3, 1, 1),
                    LayerSpec::BatchNorm2d { num_features: 2, eps: 1e-5, momentum: 0.1 },
                    LayerSpec::Relu,
                    LayerSpec::MaxPool2d { kernel_size: 2, stride: 2 },
                    LayerSpec::BatchNorm2d { num_features: 2, eps: 1e-3, momentum: 0.2 },
                    LayerSpec::Flatten,
                    linear(18, 10),
                ],
            },
        ),
        (
            "strided",
            Architecture { input: [2, 9, 7], layers: vec![conv(2, 3, 3, 2, 1), LayerSpec::Flatten, linear(60, 10)] },
        ),
    ]
}

fn linear(in_features: usize, out_features: usize) -> LayerSpec {
    LayerSpec::Linear { in_features, out_features }
}

fn encoded(image: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), format)?;
    Ok(bytes)
}
