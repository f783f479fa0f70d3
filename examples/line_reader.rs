//! Trains the line reader and measures it alone, for choosing its recipe (not a benchmark of
//! `read`: bench/read.sh is). Numbers for measuring come from the directory's *test* digits:
//! point it at a validation split (the last 10,000 training digits as "test") while choosing.
//!
//! cargo run --release --example line_reader -- DATA_DIR [--steps N] [--seed S] [--out FILE]
//!     [--lr LR] [--head-kernel K] [--reshape-elastic SHARE] [--model FILE (skip training)] [--count N]

use digitnn::data::image::to_gray;
use digitnn::data::numbers::{self, NumberStyle, Source, Spacing};
use digitnn::data::strip::picture_strips;
use digitnn::data::{Checksums, mnist};
use digitnn::model;
use digitnn::read::line::LineReader;
use digitnn::read::train::{LineTrainConfig, train_line_reader};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::ops::ControlFlow;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let dir = args.first().ok_or("usage: line_reader DATA_DIR [flags]")?;
    let data = mnist::load(dir.as_ref(), Checksums::IfMnist)?;
    let network = match flag("--model") {
        Some(path) => model::load(path.as_ref())?.0,
        None => {
            let mut config = LineTrainConfig::default();
            if let Some(v) = flag("--steps") {
                config.steps = v.parse()?;
            }
            if let Some(v) = flag("--seed") {
                config.seed = v.parse()?;
            }
            if let Some(v) = flag("--lr") {
                config.optimizer.lr = v.parse()?;
            }
            if let Some(v) = flag("--head-kernel") {
                config.head_kernel = v.parse()?;
            }
            if let Some(v) = flag("--reshape-elastic") {
                // The default ranges (no shift: the digit is cut to its ink), with Simard's
                // elastic distortion on this share of the digits.
                let ranges = digitnn::data::augment::AugmentConfig {
                    translation: 0.0,
                    elastic_share: v.parse()?,
                    ..digitnn::data::augment::AugmentConfig::with_elastic()
                };
                config.reshape = Some(ranges);
            }
            let mut network = config.network()?;
            let started = Instant::now();
            let mut recent = 0.0;
            train_line_reader(&mut network, &data.train, &config, |step, loss| {
                recent += loss;
                if step % 200 == 0 {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "step {step}: loss {:.4}, {:.0} strips/s",
                        recent / 200.0,
                        (step * config.batch_size) as f64 / secs
                    );
                    recent = 0.0;
                }
                ControlFlow::Continue(())
            })?;
            if let Some(out) = flag("--out") {
                model::save(&network, out.as_ref(), None)?;
            }
            network
        }
    };
    let mut reader = LineReader::new(network)?;
    let count: usize = flag("--count").map_or(Ok(300), |v| v.parse())?;
    for (name, source, spacing, photo, varied) in [
        ("mnist-gaps", Source::Dataset, Spacing::Gaps, false, false),
        ("mnist-touching", Source::Dataset, Spacing::Touching, false, false),
        ("pen-touching", Source::Pen, Spacing::Touching, false, false),
        ("pen-photo", Source::Pen, Spacing::Gaps, true, false),
        ("varied-touching", Source::Dataset, Spacing::Touching, false, true),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let style = NumberStyle { source, spacing, photo, varied, ..NumberStyle::default() };
        let mut right = 0;
        for _ in 0..count {
            let number = numbers::compose(style, &data.test, &mut rng);
            let mut text = String::new();
            if let Some((strips, _)) = picture_strips(&to_gray(&number.picture), 5000) {
                for strip in strips.iter().flatten() {
                    text.extend(reader.score(strip)?.best_path().iter().map(|s| char::from(b'0' + s.class as u8)));
                }
            }
            right += (text == number.text) as usize;
        }
        println!("{name:<16} {:.1}%", 100.0 * right as f64 / count as f64);
    }
    Ok(())
}
