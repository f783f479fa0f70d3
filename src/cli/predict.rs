//! `digitnn predict`.

use anyhow::Result;
use digitnn::predict::{Prediction, predict_pixels, prepare_file};
use rayon::prelude::*;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A model file, safetensors or PyTorch .pt [default: digit_model.safetensors if it is in the
    /// working directory, else the built-in reader model]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Image files (any format the `image` crate reads)
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Use the pixels as they are: no inversion, cropping or centring (needs 28x28 images)
    #[arg(long)]
    raw: bool,
    /// One JSON object per image per line
    #[arg(long)]
    json: bool,
    /// Answer a digit for every image, never "not a digit" (the behaviour before refusal)
    #[arg(long)]
    always_digit: bool,
    /// Worker threads [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    engine: super::EngineArgs,
}

#[derive(Serialize)]
struct Line<'a> {
    path: &'a str,
    #[serde(flatten)]
    prediction: &'a Prediction,
}

/// One image's line of text: the digit, or "not a digit" with the best guess beside it.
pub fn describe(p: &Prediction) -> String {
    let probabilities: Vec<String> = p.probabilities.iter().map(|v| format!("{v:.3}")).collect();
    let verdict = match p.digit {
        Some(digit) => format!("{digit} ({:.1}%)", p.confidence * 100.0),
        None => {
            format!("not a digit ({:.1}%; best guess {} at {:.1}%)", p.not_digit * 100.0, p.guess, p.confidence * 100.0)
        }
    };
    format!("{verdict}  [{}]", probabilities.join(" "))
}

/// Images per forward pass.
const CHUNK: usize = 256;

pub fn run(args: Args) -> Result<ExitCode> {
    digitnn::thread_count(args.threads)?;
    let engine = args.engine.config()?;
    let (mut network, _, _) = super::load_model(args.model.as_deref(), engine)?;
    let mut failures = 0;
    digitnn::with_threads(args.threads, || -> Result<()> {
        let mut out = std::io::stdout().lock();
        for paths in args.images.chunks(CHUNK) {
            let prepared: Vec<_> = paths.par_iter().map(|p| prepare_file(p, args.raw)).collect();
            let good: Vec<_> = prepared.iter().filter_map(|r| r.as_ref().ok().map(|(pixels, _)| *pixels)).collect();
            let mut predictions = predict_pixels(&mut network, &good, !args.always_digit)?.into_iter();
            for (path, result) in paths.iter().zip(&prepared) {
                if let Err(e) = result {
                    eprintln!("error: {e}");
                    failures += 1;
                    continue;
                }
                let p = predictions.next().expect("one prediction per prepared image");
                let path = path.display().to_string();
                if args.json {
                    writeln!(out, "{}", serde_json::to_string(&Line { path: &path, prediction: &p })?)?;
                } else {
                    writeln!(out, "{path}: {}", describe(&p))?;
                }
            }
        }
        Ok(())
    })??;
    Ok(super::images_done(failures, args.images.len()))
}
