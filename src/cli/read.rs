//! `digitnn read`.

use anyhow::Result;
use digitnn::read::{ReadConfig, Reader, Reading, read_file};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The model the search over cuts asks, safetensors or PyTorch .pt [default: the built-in
    /// number reader]
    #[arg(long)]
    model: Option<PathBuf>,
    /// The line model (from `digitnn train-lines`) [default: the built-in line reader]
    #[arg(long)]
    line_model: Option<PathBuf>,
    /// Read by cuts only, without a line model
    #[arg(long, conflicts_with = "line_model")]
    cuts_only: bool,
    /// Image files, each holding a number (one line of digits, or several lines)
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One JSON object per image per line
    #[arg(long)]
    json: bool,
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
    reading: &'a Reading,
}

/// One image's line of text: the number, then each digit's confidence and what was skipped.
pub fn describe(r: &Reading) -> String {
    if r.digits.is_empty() {
        return format!("(nothing read: {})", r.message.as_deref().unwrap_or("no digits"));
    }
    let digits: Vec<String> = r.digits.iter().map(|d| format!("{} {:.1}%", d.digit, d.confidence * 100.0)).collect();
    let skipped = match r.skipped.len() {
        0 => String::new(),
        1 => "; 1 mark skipped as not a digit".into(),
        n => format!("; {n} marks skipped as not digits"),
    };
    format!("{}  ({}{skipped})", r.text.replace('\n', " / "), digits.join(", "))
}

pub fn run(args: Args) -> Result<ExitCode> {
    digitnn::thread_count(args.threads)?;
    let engine = args.engine.config()?;
    let (pieces, _, _) = super::load_number_reader(args.model.as_deref(), engine)?;
    let line = match (&args.line_model, args.cuts_only) {
        (_, true) => None,
        (Some(path), _) => Some(super::load_line_model(path, engine)?),
        (None, _) => Some(super::load_line_model_builtin(engine)?),
    };
    let mut reader = Reader { pieces, line };
    let config = ReadConfig::default();
    let mut failures = 0;
    digitnn::with_threads(args.threads, || -> Result<()> {
        let mut out = std::io::stdout().lock();
        for path in &args.images {
            let reading = match read_file(&mut reader.pieces, reader.line.as_mut(), path, &config) {
                Ok(reading) => reading,
                Err(e) => {
                    eprintln!("error: {e}");
                    failures += 1;
                    continue;
                }
            };
            let path = path.display().to_string();
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&Line { path: &path, reading: &reading })?)?;
            } else {
                writeln!(out, "{path}: {}", describe(&reading))?;
            }
        }
        Ok(())
    })??;
    Ok(super::images_done(failures, args.images.len()))
}
