//! How well `read` reads numbers, beside the textbook pipeline (one global threshold, connected
//! components left to right, each framed and read by the same model).
//!
//! cargo run --release --example read_numbers -- MNIST_DIR [--split test|train] [--count N]
//!     [--seed S] [--model FILE] [--line-model FILE] [--method cuts|line|both] [--compare]
//!     [--digit-cost C] [--skip-cost C] [--line-margin M] [--pieces-weight W] [--pieces-floor F] [--apart-floor F] [--sets a,b,...]
//!     [--save DIR] [--write-samples DIR] [--any-data]
//!
//! `read` runs the built-in number reader and line reader (or `--model`, `--line-model`); the
//! textbook pipeline and `predict` run the built-in reader, as the command line does. Numbers of
//! 2 to 6 digits are composed (`digitnn::data::numbers`) from MNIST's test digits (the report)
//! or its training digits (`--split train`), and from pen drawings. Prints, per set, the share
//! of numbers read whole and the digit accuracy (1 - edit distance / length) for both
//! pipelines (`--compare`: also each of `read`'s two readers alone, and how often either is
//! right), then single digits beside `predict` and the time to read a 6-digit number on one
//! thread. `--any-data` takes a directory of IDX files that are not MNIST's own (a validation
//! split: the last 10,000 training digits as "test", for choosing settings).

use digitnn::data::numbers::{self, NumberStyle, Source, Spacing};
use digitnn::data::{Checksums, mnist};
use digitnn::model::{self, Network};
use digitnn::predict::predict_pixels;
use digitnn::read::line::LineReader;
use digitnn::read::{self, Method, ReadConfig, Reader};
use image::{DynamicImage, GrayImage, Luma};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let dir = args.first().ok_or("usage: read_numbers MNIST_DIR [flags]")?;
    let split = flag("--split").unwrap_or("test".into());
    let count: usize = flag("--count").map_or(Ok(500), |v| v.parse())?;
    let seed: u64 = flag("--seed").map_or(Ok(2026), |v| v.parse())?;
    let mut config = ReadConfig::default();
    if let Some(v) = flag("--digit-cost") {
        config.digit_cost = v.parse()?;
    }
    if let Some(v) = flag("--skip-cost") {
        config.skip_cost = v.parse()?;
    }
    let checksums = if args.iter().any(|a| a == "--any-data") { Checksums::IfMnist } else { Checksums::Require };
    let mnist = mnist::load(dir.as_ref(), checksums)?;
    if let Some(out) = flag("--write-samples") {
        return write_samples(out.as_ref(), &mnist.test);
    }
    let digits = if split == "train" { mnist.train } else { mnist.test };
    // `read`'s model (the built-in number reader unless --model), and `predict`'s (the built-in
    // reader), which the textbook pipeline and the single digits use, as the CLI would.
    let pieces = match flag("--model") {
        Some(path) => model::load(path.as_ref())?.0,
        None => model::builtin_numbers()?.0,
    };
    let line = match flag("--line-model") {
        Some(path) => model::load(path.as_ref())?.0,
        None => model::builtin_lines()?.0,
    };
    let mut reader = Reader { pieces, line: Some(LineReader::new(line)?) };
    if let Some(v) = flag("--method") {
        config.method = match v.as_str() {
            "cuts" => Method::Cuts,
            "line" => Method::Line,
            _ => Method::Both,
        };
    }
    if let Some(v) = flag("--pieces-weight") {
        config.pieces_weight = v.parse()?;
    }
    if let Some(v) = flag("--pieces-floor") {
        config.pieces_floor = v.parse()?;
    }
    if let Some(v) = flag("--apart-floor") {
        config.apart_floor = v.parse()?;
    }
    if let Some(v) = flag("--line-margin") {
        config.line_margin = v.parse()?;
    }
    if args.iter().any(|a| a == "--one-view") {
        config.line_views = false;
    }
    let compare = args.iter().any(|a| a == "--compare");
    let mut predictor = model::builtin()?.0;
    let sets = [
        ("mnist-gaps", Source::Dataset, Spacing::Gaps, false, false),
        ("mnist-touching", Source::Dataset, Spacing::Touching, false, false),
        ("pen-gaps", Source::Pen, Spacing::Gaps, false, false),
        ("pen-touching", Source::Pen, Spacing::Touching, false, false),
        ("pen-photo", Source::Pen, Spacing::Gaps, true, false),
        // Wider size and baseline changes, strokes thickened or thinned (`NumberStyle::varied`).
        ("varied-gaps", Source::Dataset, Spacing::Gaps, false, true),
        ("varied-touching", Source::Dataset, Spacing::Touching, false, true),
    ];
    let wanted = flag("--sets");
    println!("{split} digits, {count} numbers of 2-6 digits per set, seed {seed}, {config:?}");
    println!("{:<16} {:>12} {:>12} {:>12} {:>12}", "set", "read whole", "read digits", "textbook", "tb digits");
    for (set_index, (name, source, spacing, photo, varied)) in sets.into_iter().enumerate() {
        if wanted.as_ref().is_some_and(|w| !w.split(',').any(|s| s == name)) {
            continue;
        }
        let style = NumberStyle { source, spacing, photo, varied, ..NumberStyle::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (set_index as u64) << 32);
        let (mut whole, mut digit_score, mut tb_whole, mut tb_digits) = (0usize, 0.0f64, 0usize, 0.0f64);
        let (mut alone_right, mut either, mut oracle) = ([0usize; 2], [false; 2], 0usize);
        for i in 0..count {
            let number = numbers::compose(style, &digits, &mut rng);
            let reading = read::read_image(&mut reader.pieces, reader.line.as_mut(), &number.picture, &config)?;
            if compare {
                for (k, method) in [Method::Cuts, Method::Line].into_iter().enumerate() {
                    let alone = ReadConfig { method, ..config };
                    let text =
                        read::read_image(&mut reader.pieces, reader.line.as_mut(), &number.picture, &alone)?.text;
                    alone_right[k] += (text == number.text) as usize;
                    either[k] = text == number.text;
                }
                oracle += (either[0] || either[1]) as usize;
            }
            let baseline = textbook(&mut predictor, &number.picture)?;
            whole += (reading.text == number.text) as usize;
            digit_score += digit_accuracy(&reading.text, &number.text);
            tb_whole += (baseline == number.text) as usize;
            tb_digits += digit_accuracy(&baseline, &number.text);
            if let Some(dir) = flag("--save")
                && reading.text != number.text
            {
                let path = format!("{dir}/{name}-{i}-{}-read-{}.png", number.text, reading.text);
                number.picture.save(path)?;
            }
        }
        let pct = |n: f64| 100.0 * n / count as f64;
        println!(
            "{name:<16} {:>11.1}% {:>11.1}% {:>11.1}% {:>11.1}%",
            pct(whole as f64),
            pct(digit_score),
            pct(tb_whole as f64),
            pct(tb_digits)
        );
        if compare {
            println!(
                "{:<16} cuts alone {:.1}%, line alone {:.1}%, either right {:.1}%",
                "",
                pct(alone_right[0] as f64),
                pct(alone_right[1] as f64),
                pct(oracle as f64)
            );
        }
    }
    single_digits(&mut reader, &mut predictor, &digits, count, &config)?;
    time_six_digits(&mut reader, &digits, &config)?;
    Ok(())
}

/// Single digits, each enlarged three times and written dark on white: how often `read` answers
/// what `predict` answers, of those `predict` reads (the rest it refuses as not digits).
fn single_digits(
    reader: &mut Reader,
    predictor: &mut Network,
    digits: &digitnn::data::Dataset,
    count: usize,
    config: &ReadConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut same, mut refused) = (0, 0);
    for i in 0..count {
        let pixels = digits.image(i);
        let small = GrayImage::from_fn(28, 28, |x, y| Luma([255 - pixels[(y * 28 + x) as usize]]));
        let picture =
            DynamicImage::ImageLuma8(image::imageops::resize(&small, 84, 84, image::imageops::FilterType::Triangle));
        let (prepared, _) = digitnn::data::image::prepare(&picture, false, "digit".as_ref())?;
        let predicted =
            predict_pixels(predictor, &[prepared], true)?[0].digit.map(|d| d.to_string()).unwrap_or_default();
        if predicted.is_empty() {
            refused += 1;
            continue;
        }
        let text = read::read_image(&mut reader.pieces, reader.line.as_mut(), &picture, config)?.text;
        if text != predicted {
            eprintln!("single digit {i} (label {}): predict {predicted:?}, read {text:?}", digits.labels[i]);
        }
        same += (text == predicted) as usize;
    }
    let read = count - refused;
    println!(
        "single digits: read answers as predict does for {same} of the {read} predict reads ({:.2}%; {refused} refused)",
        100.0 * same as f64 / read.max(1) as f64
    );
    Ok(())
}

/// The README's and docs/read.md's sample pictures: a pen number with a comma, MNIST test digits
/// touching, and a pen number photographed on paper.
fn write_samples(dir: &std::path::Path, digits: &digitnn::data::Dataset) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(2095);
    numbers::pen_number("20,95", Spacing::Gaps, &mut rng).save(dir.join("pen.png"))?;
    let touching = NumberStyle { spacing: Spacing::Touching, digits: (5, 5), ..NumberStyle::default() };
    numbers::compose(touching, digits, &mut rng).picture.save(dir.join("touching.png"))?;
    let photo = NumberStyle { source: Source::Pen, photo: true, digits: (6, 6), ..NumberStyle::default() };
    numbers::compose(photo, digits, &mut rng).picture.to_rgb8().save(dir.join("photo.jpg"))?;
    println!("wrote pen.png, touching.png and photo.jpg in {}", dir.display());
    Ok(())
}

/// 1 - edit distance / the true number's length (at least 0).
fn digit_accuracy(read: &str, truth: &str) -> f64 {
    let (a, b): (Vec<char>, Vec<char>) = (read.chars().collect(), truth.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut diagonal = row[0];
        row[0] = i;
        for j in 1..=b.len() {
            let up = row[j];
            row[j] = (row[j] + 1).min(row[j - 1] + 1).min(diagonal + (a[i - 1] != b[j - 1]) as usize);
            diagonal = up;
        }
    }
    (1.0 - row[b.len()] as f64 / b.len() as f64).max(0.0)
}

/// The textbook pipeline: Otsu's global threshold, connected components (specks under 2% of
/// the largest's area dropped), left to right by their left edge, each framed as `predict`
/// frames a digit and given its most likely digit.
fn textbook(network: &mut Network, picture: &DynamicImage) -> Result<String, digitnn::Error> {
    let gray = digitnn::data::image::to_gray(picture);
    let (w, h) = gray.dimensions();
    let border: Vec<u8> = gray
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x == w - 1 || *y == h - 1)
        .map(|p| p.2[0])
        .collect();
    let light_paper = border.iter().map(|&v| v as u32).sum::<u32>() >= 128 * border.len() as u32;
    let ink = GrayImage::from_fn(w, h, |x, y| {
        let v = gray.get_pixel(x, y)[0];
        Luma([if light_paper { 255 - v } else { v }])
    });
    let level = otsu(&ink);
    let binary = GrayImage::from_fn(w, h, |x, y| Luma([if ink.get_pixel(x, y)[0] > level { 255 } else { 0 }]));
    let Some(labels) = digitnn::data::marks::label(&binary, 100_000) else { return Ok(String::new()) };
    let largest = labels.marks.iter().map(|m| m.area).max().unwrap_or(0);
    let mut kept: Vec<usize> = (0..labels.marks.len()).filter(|&i| labels.marks[i].area * 50 >= largest).collect();
    kept.sort_by_key(|&i| labels.marks[i].x0);
    let images: Vec<_> = kept
        .iter()
        .filter_map(|&i| {
            let m = labels.marks[i];
            let crop = GrayImage::from_fn(m.width(), m.height(), |x, y| {
                let (px, py) = (m.x0 + x, m.y0 + y);
                let own = labels.labels[(py * w + px) as usize] == i as u32 + 1;
                Luma([if own { ink.get_pixel(px, py)[0] } else { 0 }])
            });
            digitnn::data::image::frame_ink(&crop)
        })
        .collect();
    let predictions = predict_pixels(network, &images, false)?;
    Ok(predictions.iter().map(|p| char::from(b'0' + p.guess as u8)).collect())
}

/// Otsu's threshold: the level that best splits the histogram into two classes.
fn otsu(image: &GrayImage) -> u8 {
    let mut histogram = [0u64; 256];
    for p in image.pixels() {
        histogram[p[0] as usize] += 1;
    }
    let total: u64 = histogram.iter().sum();
    let sum: f64 = histogram.iter().enumerate().map(|(i, &c)| i as f64 * c as f64).sum();
    let (mut weight_below, mut sum_below, mut best, mut level) = (0u64, 0.0f64, 0.0f64, 0u8);
    for (t, &c) in histogram.iter().enumerate() {
        weight_below += c;
        sum_below += t as f64 * c as f64;
        let weight_above = total - weight_below;
        if weight_below == 0 || weight_above == 0 {
            continue;
        }
        let (mean_below, mean_above) = (sum_below / weight_below as f64, (sum - sum_below) / weight_above as f64);
        let between = weight_below as f64 * weight_above as f64 * (mean_below - mean_above).powi(2);
        if between > best {
            (best, level) = (between, t as u8);
        }
    }
    level
}

/// Median time to read a 6-digit number (MNIST digits, touching) on one thread, and numbers per
/// second over a set of 200 on all threads.
fn time_six_digits(
    reader: &mut Reader,
    digits: &digitnn::data::Dataset,
    config: &ReadConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let style = NumberStyle { spacing: Spacing::Touching, digits: (6, 6), ..NumberStyle::default() };
    let pictures: Vec<_> = (0..200).map(|_| numbers::compose(style, digits, &mut rng).picture).collect();
    let one_thread = digitnn::with_threads(Some(1), || -> Result<Vec<f64>, digitnn::Error> {
        let mut times = Vec::new();
        for picture in pictures.iter().take(50) {
            let start = Instant::now();
            read::read_image(&mut reader.pieces, reader.line.as_mut(), picture, config)?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(times)
    })??;
    let mut times = one_thread;
    times.sort_by(f64::total_cmp);
    let start = Instant::now();
    for picture in &pictures {
        read::read_image(&mut reader.pieces, reader.line.as_mut(), picture, config)?;
    }
    let rate = pictures.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "6-digit number: {:.2} ms median on one thread; {rate:.0} numbers/s on all threads",
        times[times.len() / 2]
    );
    Ok(())
}
