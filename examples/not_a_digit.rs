//! How well models tell digits from things that are not digits, and whether they still read
//! damaged digits: the table of the README's "Not a digit" section.
//!
//! usage:
//!   cargo run --release --example not_a_digit -- table [--threshold T] MNIST_DIR FASHION_DIR FONT_DIR MODEL...
//!   cargo run --release --example not_a_digit -- gallery MNIST_DIR FONT_DIR OUT.png
//!   cargo run --release --example not_a_digit -- validation MNIST_DIR MODEL FIRST
//!
//! `validation` prints the share of MNIST's training digits from index FIRST on that a model
//! refuses at each threshold: with a model trained on the first FIRST digits only
//! (`train --limit FIRST`), that is how `predict::NOT_DIGIT_THRESHOLD` was set, on digits that
//! model never saw and without the test set.
//!
//! MODEL: a model file, or `builtin`. FONT_DIR: a folder searched for .ttf/.otf files, whose
//! typefaces must not be DejaVu (the one training draws glyphs from): on Debian,
//! /usr/share/fonts/truetype with fonts-liberation2, fonts-freefont-ttf and fonts-noto-core
//! installed (DejaVu files are skipped). FASHION_DIR: Fashion-MNIST's IDX files (Debian's
//! dataset-fashion-mnist: /usr/share/datasets/fashion-mnist).
//!
//! Held out from training, and made here rather than in the library so that no training code
//! shares them: letters and symbols in other typefaces, drawn dark on white and prepared as
//! `digitnn predict` prepares an image; pen scribbles from a random walk (training's scribbles are
//! Bézier curves and tangles); Fashion-MNIST's test set (pictures of clothes, never used in
//! training or to tune anything); MNIST test digits damaged in ways training does not damage
//! them; and digits as a user's files hold them (MNIST's test digits enlarged 2x and 3x before
//! preparation, digits drawn with a pen). Every set is drawn from a fixed seed.
//!
//! For each model and score, a threshold is set where 0.5% of MNIST's test digits are refused,
//! and each set's refusal rate at that threshold is reported with the AUROC (digits against the
//! set). That threshold is a measurement, not what the reader uses: the reader refuses when its
//! `not_digit` passes `predict::NOT_DIGIT_THRESHOLD`, fixed beforehand, and the last columns
//! show what that rule does.

use ab_glyph::{Font, FontVec, PxScale, point};
use digitnn::data::corrupt::Corruption;
use digitnn::data::image::{Pixels, SIDE, prepare};
use digitnn::data::nondigit::{self, Canvas, Kind};
use digitnn::data::numbers::{self, Spacing};
use digitnn::data::{Checksums, Dataset, idx, mnist};
use digitnn::model::{self, Network};
use digitnn::predict::{LOW_CONFIDENCE, NOT_DIGIT_THRESHOLD, classify};
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, Luma};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

type Error = Box<dyn std::error::Error>;

/// Letters and symbols for the held-out typefaces: every printable ASCII character but the
/// digits and those a digit resembles (O, o, D, Q, I, l, i, j, |, S, s, Z, z, B, b, G, g, q, the
/// slashes, brackets, apostrophes and commas).
const HELD_OUT_GLYPHS: &str = "ACEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy?!@#%&*+=<>~^{}$:;.-_\"";

fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// Dark ink on white paper, as a user's file would hold it, prepared as `predict` prepares it.
fn as_users_image(canvas: &Canvas) -> Option<Pixels> {
    let paper = GrayImage::from_fn(canvas.width as u32, canvas.height as u32, |x, y| {
        let ink = canvas.ink[y as usize * canvas.width + x as usize].clamp(0.0, 1.0);
        Luma([(255.0 - 235.0 * ink).round() as u8])
    });
    prepare(&DynamicImage::ImageLuma8(paper), false, Path::new("generated")).ok().map(|(pixels, _)| pixels)
}

/// The typefaces under `dir` that are not DejaVu.
fn held_out_fonts(dir: &Path) -> Result<Vec<FontVec>, Error> {
    let mut paths = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let name = path.to_string_lossy().to_lowercase();
            if path.is_dir() {
                pending.push(path);
            } else if (name.ends_with(".ttf") || name.ends_with(".otf")) && !name.contains("dejavu") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    let fonts: Vec<FontVec> = paths.iter().filter_map(|p| FontVec::try_from_vec(std::fs::read(p).ok()?).ok()).collect();
    if fonts.is_empty() {
        return Err(format!("no fonts other than DejaVu under {}", dir.display()).into());
    }
    Ok(fonts)
}

/// Letters and symbols of the held-out typefaces, drawn large, dark on white.
fn letters(fonts: &[FontVec], count: usize, rng: &mut ChaCha8Rng) -> Vec<Pixels> {
    let glyphs: Vec<char> = HELD_OUT_GLYPHS.chars().collect();
    let mut out = Vec::new();
    while out.len() < count {
        let font = &fonts[rng.next_u32() as usize % fonts.len()];
        let c = glyphs[rng.next_u32() as usize % glyphs.len()];
        if font.glyph_id(c).0 == 0 {
            continue;
        }
        let size = uniform(rng, 48.0, 90.0);
        let glyph = font.glyph_id(c).with_scale_and_position(PxScale::from(size), point(16.0, size + 8.0));
        let Some(outlined) = font.outline_glyph(glyph) else { continue };
        let bounds = outlined.px_bounds();
        let side = 140;
        let mut canvas = Canvas::new(side, side);
        outlined.draw(|x, y, coverage| {
            let (px, py) = (bounds.min.x as i64 + x as i64, bounds.min.y as i64 + y as i64);
            if px >= 0 && py >= 0 && (px as usize) < side && (py as usize) < side {
                canvas.ink[py as usize * side + px as usize] = coverage;
            }
        });
        out.extend(as_users_image(&canvas));
    }
    out
}

/// Pen scribbles: a random walk whose direction turns a little each step, with a round pen.
fn scribbles(count: usize, rng: &mut ChaCha8Rng) -> Vec<Pixels> {
    let mut out = Vec::new();
    while out.len() < count {
        let side = 128.0;
        let mut canvas = Canvas::new(side as usize, side as usize);
        let (mut x, mut y) = (uniform(rng, 30.0, 98.0), uniform(rng, 30.0, 98.0));
        let mut heading = uniform(rng, 0.0, std::f32::consts::TAU);
        let mut turn = 0.0f32;
        let mut points = vec![(x, y)];
        for _ in 0..40 + rng.next_u32() % 80 {
            turn = (turn + uniform(rng, -0.25, 0.25)).clamp(-0.5, 0.5);
            heading += turn;
            x = (x + 4.0 * heading.cos()).clamp(4.0, side - 4.0);
            y = (y + 4.0 * heading.sin()).clamp(4.0, side - 4.0);
            points.push((x, y));
        }
        canvas.stroke(&points, uniform(rng, 3.0, 10.0), 1.0);
        out.extend(as_users_image(&canvas));
    }
    out
}

/// Ways of damaging a digit that training never uses (`data::degrade` makes others).
const DAMAGES: [&str; 6] = ["grain", "scratch", "outline", "shadow", "smear", "checker"];

/// MNIST test digits, each damaged by `damage` (one of [`DAMAGES`]).
fn damaged(test: &Dataset, damage: &str, rng: &mut ChaCha8Rng) -> Dataset {
    let mut images = test.images.clone();
    for image in images.chunks_mut(SIDE * SIDE) {
        let original: Vec<f32> = image.iter().map(|&p| p as f32 / 255.0).collect();
        let mut v = original.clone();
        let at = |x: i64, y: i64, v: &[f32]| {
            if x < 0 || y < 0 || x >= SIDE as i64 || y >= SIDE as i64 { 0.0 } else { v[y as usize * SIDE + x as usize] }
        };
        match damage {
            // Exponential grain, brighter and sparser than training's noise.
            "grain" => v.iter_mut().for_each(|p| *p += -0.12 * uniform(rng, 1e-6, 1.0).ln() - 0.06),
            // A curved scratch: an arc of a large circle through the frame.
            "scratch" => {
                let (cx, cy, r) = (uniform(rng, -20.0, 48.0), uniform(rng, -40.0, -5.0), uniform(rng, 25.0, 55.0));
                for (i, p) in v.iter_mut().enumerate() {
                    let (x, y) = ((i % SIDE) as f32 - cx, (i / SIDE) as f32 - cy);
                    if ((x * x + y * y).sqrt() - r).abs() < 1.0 {
                        *p = p.max(0.9);
                    }
                }
            }
            // The edge of the ink: where it crosses half brightness (a Sobel magnitude).
            "outline" => {
                for (i, p) in v.iter_mut().enumerate() {
                    let (x, y) = ((i % SIDE) as i64, (i / SIDE) as i64);
                    let gx = at(x + 1, y, &original) - at(x - 1, y, &original);
                    let gy = at(x, y + 1, &original) - at(x, y - 1, &original);
                    *p = (gx * gx + gy * gy).sqrt();
                }
            }
            // Light in waves across the page.
            "shadow" => {
                let (f, phase) = (uniform(rng, 0.2, 0.6), uniform(rng, 0.0, 6.3));
                for (i, p) in v.iter_mut().enumerate() {
                    *p += 0.25 * (1.0 + ((i % SIDE) as f32 * f + (i / SIDE) as f32 * f * 0.5 + phase).sin());
                }
            }
            // Motion blur: the mean of five pixels along a diagonal.
            "smear" => {
                for (i, p) in v.iter_mut().enumerate() {
                    let (x, y) = ((i % SIDE) as i64, (i / SIDE) as i64);
                    *p = (-2..=2).map(|d| at(x + d, y + d, &original)).sum::<f32>() / 5.0;
                }
            }
            // Inverted in a checkerboard of 14-pixel squares, one square in two.
            _ => {
                for (i, p) in v.iter_mut().enumerate() {
                    if ((i % SIDE) / 14 + (i / SIDE) / 14) % 2 == 1 {
                        *p = 1.0 - *p;
                    }
                }
            }
        }
        for (out, p) in image.iter_mut().zip(v) {
            *out = (p.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    Dataset { images, ..test.clone() }
}

/// MNIST test digits written dark on light, enlarged `factor` times with `filter` (1: as they
/// are), prepared as `predict` prepares a file; a digit preparation finds no ink in counts as
/// read wrong.
fn enlarged(test: &Dataset, factor: u32, filter: FilterType) -> Dataset {
    let images: Vec<Pixels> = pixels_of(test)
        .iter()
        .map(|p| {
            let paper = GrayImage::from_fn(28, 28, |x, y| Luma([255 - p[y as usize * SIDE + x as usize]]));
            let big = image::imageops::resize(&paper, 28 * factor, 28 * factor, filter);
            prepare(&DynamicImage::ImageLuma8(big), false, Path::new("d")).map_or([0; SIDE * SIDE], |r| r.0)
        })
        .collect();
    Dataset { images: images.concat(), ..test.clone() }
}

/// Digits drawn with a pen (`numbers::pen_number`, as the number bench draws them), prepared.
fn pen_digits(count: usize, rng: &mut ChaCha8Rng) -> Dataset {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    while labels.len() < count {
        let digit = (rng.next_u32() % 10) as u8;
        let picture = numbers::pen_number(&digit.to_string(), Spacing::Gaps, rng);
        if let Ok((pixels, _)) = prepare(&picture, false, Path::new("pen")) {
            images.extend(pixels);
            labels.push(digit);
        }
    }
    Dataset { images, labels, rows: SIDE, cols: SIDE }
}

/// Every image's logits.
fn logits(network: &mut Network, images: &[Pixels]) -> Vec<f32> {
    let mut out = Vec::new();
    let batch = network.inference_batch(500);
    let mut input = Vec::new();
    for chunk in images.chunks(batch) {
        input.clear();
        input.extend(chunk.iter().flat_map(|p| p.iter().map(|&v| v as f32 / 255.0)));
        out.extend_from_slice(network.forward(&input, chunk.len(), false));
    }
    out
}

fn pixels_of(data: &Dataset) -> Vec<Pixels> {
    data.images.chunks(SIDE * SIDE).map(|c| c.try_into().expect("28x28 images")).collect()
}

/// The share of `score` above `threshold`.
fn above(scores: &[f32], threshold: f32) -> f64 {
    scores.iter().filter(|&&s| s > threshold).count() as f64 / scores.len() as f64
}

/// P(a non-digit scores higher than a digit), ties counted half.
fn auroc(digits: &[f32], others: &[f32]) -> f64 {
    let mut all: Vec<(f32, bool)> =
        digits.iter().map(|&s| (s, false)).chain(others.iter().map(|&s| (s, true))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0f64, 0);
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j + 1) as f64 / 2.0;
        rank_sum += rank * all[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let (n, m) = (others.len() as f64, digits.len() as f64);
    (rank_sum - n * (n + 1.0) / 2.0) / (n * m)
}

/// The scores a model offers for "not a digit", higher meaning less like a digit.
fn scores(logits: &[f32], classes: usize) -> Vec<(&'static str, Vec<f32>)> {
    let predictions: Vec<_> = classify(logits, classes, true).collect();
    let energy = logits
        .chunks(classes)
        .map(|row| {
            let max = row[..10].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            -(max + row[..10].iter().map(|v| (v - max).exp()).sum::<f32>().ln())
        })
        .collect();
    let mut out = vec![("not_digit", predictions.iter().map(|p| p.not_digit).collect()), ("energy", energy)];
    if classes == 11 {
        // The largest digit probability of the 11-way softmax: low when the model either finds
        // no digit or cannot choose between digits.
        out.push(("1 - max digit", predictions.iter().map(|p| 1.0 - p.confidence * (1.0 - p.not_digit)).collect()));
    }
    out
}

/// `eval`'s figures for `data` with "not a digit" refused above `threshold`.
fn report_at(network: &mut Network, data: &Dataset, threshold: f32) -> String {
    let predictions: Vec<_> = classify(&logits(network, &pixels_of(data)), 11, true).collect();
    let right = |p: &&digitnn::predict::Prediction, label: u8| p.guess == label as usize;
    let read = predictions.iter().zip(&data.labels).filter(|(p, l)| right(p, **l)).count();
    let refused = predictions.iter().filter(|p| p.not_digit > threshold).count();
    let kept_right =
        predictions.iter().zip(&data.labels).filter(|(p, l)| p.not_digit <= threshold && right(p, **l)).count();
    let share = |n: usize| 100.0 * n as f64 / data.len() as f64;
    format!(
        "read {:.2}%, refused {:.2}%, read right and not refused {:.2}%",
        share(read),
        share(refused),
        share(kept_right)
    )
}

fn load(name: &str) -> Result<Network, Error> {
    Ok(if name == "builtin" { model::builtin()?.0 } else { model::load(Path::new(name))?.0 })
}

fn table(args: &[String]) -> Result<(), Error> {
    // `--threshold T` first: the reader's rule refuses above T rather than at the built-in
    // threshold (to compare a model whose scores run higher at the same share of digits refused).
    let (rule_at, args) = match args {
        [flag, value, rest @ ..] if flag == "--threshold" => (Some(value.parse::<f32>()?), rest),
        _ => (None, args),
    };
    let [mnist_dir, fashion_dir, font_dir, models @ ..] = args else {
        return Err("usage: not_a_digit table [--threshold T] MNIST_DIR FASHION_DIR FONT_DIR MODEL...".into());
    };
    let test = mnist::load(Path::new(mnist_dir), Checksums::IfMnist)?.test;
    let fashion = {
        let dir = Path::new(fashion_dir);
        let file =
            ["t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"].iter().map(|f| dir.join(f)).find(|p| p.exists());
        let idx = idx::read_idx(&file.ok_or("no t10k-images-idx3-ubyte(.gz) in FASHION_DIR")?)?;
        idx.data.chunks(SIDE * SIDE).map(|c| c.try_into().expect("28x28")).collect::<Vec<Pixels>>()
    };
    let fonts = held_out_fonts(Path::new(font_dir))?;
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    // The test digits as a user's files would hold them (dark on light), prepared as `predict`
    // prepares a file.
    let prepared_test = enlarged(&test, 1, FilterType::Nearest);
    let inverted = pixels_of(&prepared_test);
    let mut sets: Vec<(String, Vec<Pixels>)> = vec![
        (format!("letters and symbols, {} held-out typefaces", fonts.len()), letters(&fonts, 2000, &mut rng)),
        ("pen scribbles (random walk)".into(), scribbles(2000, &mut rng)),
        ("Fashion-MNIST test set".into(), fashion),
    ];
    let train_digits = mnist::load(Path::new(mnist_dir), Checksums::IfMnist)?.train;
    for kind in Kind::ALL {
        let made = (0..500).map(|_| nondigit::generate(kind, &train_digits, &mut rng)).collect();
        sets.push((format!("trained kind: {} (new draws)", kind.name()), made));
    }
    let mut damaged_sets: Vec<(String, Dataset)> =
        DAMAGES.iter().map(|d| (format!("MNIST test, {d}"), damaged(&test, d, &mut rng))).collect();
    // Digits as a user's files hold them: MNIST's enlarged (appended after the damages so that
    // their draws are unchanged), and pen-drawn digits.
    for (factor, filter, name) in [
        (2, FilterType::Triangle, "bilinear"),
        (3, FilterType::Triangle, "bilinear"),
        (3, FilterType::Nearest, "nearest"),
    ] {
        damaged_sets.push((
            format!("MNIST test, enlarged {factor}x ({name}), dark on light, prepared"),
            enlarged(&test, factor, filter),
        ));
    }
    damaged_sets.push(("pen-drawn digits (1,000), prepared".into(), pen_digits(1000, &mut rng)));

    println!("| model | score | set | refused at 0.5% of digits refused | AUROC | refused by the reader's rule |");
    println!("|---|---|---|---|---|---|");
    for name in models {
        let mut network = load(name)?;
        let classes = network.classes();
        let digit_logits = logits(&mut network, &pixels_of(&test));
        let inverted_logits = logits(&mut network, &inverted);
        let set_logits: Vec<Vec<f32>> = sets.iter().map(|(_, images)| logits(&mut network, images)).collect();
        for (s, (score, digit_scores)) in scores(&digit_logits, classes).into_iter().enumerate() {
            let mut sorted = digit_scores.clone();
            sorted.sort_by(f32::total_cmp);
            let threshold = sorted[(sorted.len() as f64 * 0.995) as usize];
            let rule_threshold =
                if classes == 11 { rule_at.unwrap_or(NOT_DIGIT_THRESHOLD) } else { 1.0 - LOW_CONFIDENCE };
            let rule = |scores: &[f32]| {
                if score == "not_digit" { format!("{:.2}%", 100.0 * above(scores, rule_threshold)) } else { "".into() }
            };
            println!(
                "| {name} | {score} | MNIST test digits (refused) | {:.2}% | | {} |",
                100.0 * above(&digit_scores, threshold),
                rule(&digit_scores)
            );
            let inverted_scores = &scores(&inverted_logits, classes)[s].1;
            println!(
                "| {name} | {score} | MNIST test digits, dark on light, prepared (refused) | {:.2}% | | {} |",
                100.0 * above(inverted_scores, threshold),
                rule(inverted_scores)
            );
            for ((set, _), logits) in sets.iter().zip(&set_logits) {
                let set_scores = &scores(logits, classes)[s].1;
                println!(
                    "| {name} | {score} | {set} | {:.2}% | {:.4} | {} |",
                    100.0 * above(set_scores, threshold),
                    auroc(&digit_scores, set_scores),
                    rule(set_scores)
                );
            }
        }
        // Damaged digits: read right (most likely digit) and refused by the reader's rule.
        let report = |data: &Dataset, network: &mut Network| -> Result<String, Error> {
            if let (Some(threshold), 11) = (rule_at, classes) {
                return Ok(report_at(network, data, threshold));
            }
            let r = digitnn::eval::evaluate(network, data)?;
            Ok(format!(
                "read {:.2}%, refused {:.2}%, read right and not refused {:.2}%",
                100.0 * r.accuracy,
                100.0 * r.refused as f64 / r.total as f64,
                100.0 * r.read_right
            ))
        };
        println!("| {name} | | MNIST test digits | {} | | |", report(&test, &mut network)?);
        println!(
            "| {name} | | MNIST test digits, dark on light, prepared | {} | | |",
            report(&prepared_test, &mut network)?
        );
        for (set, data) in &damaged_sets {
            println!("| {name} | | {set} | {} | | |", report(data, &mut network)?);
        }
    }
    Ok(())
}

/// A grid of what training's generator draws and what the held-out sets hold, one row each.
fn gallery(args: &[String]) -> Result<(), Error> {
    let [mnist_dir, font_dir, out] = args else {
        return Err("usage: not_a_digit gallery MNIST_DIR FONT_DIR OUT.png".into());
    };
    let digits = mnist::load(Path::new(mnist_dir), Checksums::IfMnist)?.train;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let columns = 16;
    let mut rows: Vec<Vec<Pixels>> =
        Kind::ALL.iter().map(|&k| (0..columns).map(|_| nondigit::generate(k, &digits, &mut rng)).collect()).collect();
    rows.push(letters(&held_out_fonts(Path::new(font_dir))?, columns, &mut rng));
    rows.push(scribbles(columns, &mut rng));
    let test = mnist::load(Path::new(mnist_dir), Checksums::IfMnist)?.test;
    let first = Dataset {
        images: test.images[..columns * SIDE * SIDE].to_vec(),
        labels: test.labels[..columns].to_vec(),
        ..test
    };
    for damage in DAMAGES {
        rows.push(pixels_of(&damaged(&first, damage, &mut rng)));
    }
    let cell = SIDE as u32 + 2;
    let mut sheet = GrayImage::from_pixel(cell * columns as u32, cell * rows.len() as u32, Luma([128]));
    for (r, row) in rows.iter().enumerate() {
        for (c, pixels) in row.iter().enumerate() {
            for (i, &v) in pixels.iter().enumerate() {
                sheet.put_pixel(c as u32 * cell + (i % SIDE) as u32, r as u32 * cell + (i / SIDE) as u32, Luma([v]));
            }
        }
    }
    let big =
        image::imageops::resize(&sheet, sheet.width() * 2, sheet.height() * 2, image::imageops::FilterType::Nearest);
    big.save(PathBuf::from(out))?;
    Ok(())
}

fn validation(args: &[String]) -> Result<(), Error> {
    let [mnist_dir, model, first] = args else {
        return Err("usage: not_a_digit validation MNIST_DIR MODEL FIRST".into());
    };
    let train = mnist::load(Path::new(mnist_dir), Checksums::IfMnist)?.train;
    let first: usize = first.parse()?;
    if first >= train.len() {
        return Err(format!("FIRST must be below the {} training digits", train.len()).into());
    }
    let held_out = Dataset {
        images: train.images[first * train.image_len()..].to_vec(),
        labels: train.labels[first..].to_vec(),
        ..train
    };
    let held = pixels_of(&held_out);
    let labels = &held_out.labels;
    let mut network = load(model)?;
    let classes = network.classes();
    let predictions: Vec<_> = classify(&logits(&mut network, &held), classes, false).collect();
    let right = predictions.iter().zip(labels).filter(|(p, l)| p.guess == **l as usize).count();
    println!("{} held-out training digits, {:.2}% read right", held.len(), 100.0 * right as f64 / held.len() as f64);
    println!("| threshold on not_digit | refused | read right and not refused |");
    println!("|---|---|---|");
    for threshold in [0.02f32, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5] {
        let refused = predictions.iter().filter(|p| p.not_digit > threshold).count();
        let kept_right =
            predictions.iter().zip(labels).filter(|(p, l)| p.not_digit <= threshold && p.guess == **l as usize).count();
        println!(
            "| {threshold} | {:.2}% | {:.2}% |",
            100.0 * refused as f64 / held.len() as f64,
            100.0 * kept_right as f64 / held.len() as f64
        );
    }
    // The robustness table's corruptions (bench/robustness.sh) on the held-out digits, to choose
    // a recipe without MNIST's test digits: the most likely digit, refused or not.
    let mut line = String::from("corrupted held-out digits read right:");
    for corruption in Corruption::ALL.into_iter().filter(|&c| c != Corruption::Photo) {
        let images = pixels_of(&corruption.apply(&held_out));
        let scores = logits(&mut network, &images);
        let right = classify(&scores, classes, false).zip(labels).filter(|(p, l)| p.guess == **l as usize).count();
        line += &format!(" {} {:.2}%", corruption.name(), 100.0 * right as f64 / images.len() as f64);
    }
    println!("{line}");
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("table") => table(&args[1..]),
        Some("gallery") => gallery(&args[1..]),
        Some("validation") => validation(&args[1..]),
        _ => {
            Err("usage: not_a_digit table MNIST_DIR FASHION_DIR FONT_DIR MODEL... | gallery MNIST_DIR FONT_DIR OUT.png"
                .into())
        }
    }
}
