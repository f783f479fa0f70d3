//! `digitnn eval`.

use anyhow::Result;
use digitnn::data::corrupt::Corruption;
use digitnn::eval::evaluate;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A model file, safetensors or PyTorch .pt [default: digit_model.safetensors if it is in the
    /// working directory, else the built-in reader model]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Directory with the MNIST IDX files [default: $DIGITNN_DATA, else data/mnist]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Worker threads [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    /// One JSON object: accuracy, confusion matrix, precision and recall
    #[arg(long)]
    json: bool,
    /// Also draw confusion.png (heat map) and errors.png (misclassified digits) into DIR
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Evaluate on corrupted test digits: rotate, shift, scale, elastic, blur, thick, thin, noise
    /// or contrast (bench/robustness.sh runs them all)
    #[arg(long, value_name = "NAME")]
    corrupt: Option<Corruption>,
    #[command(flatten)]
    engine: super::EngineArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    digitnn::thread_count(args.threads)?;
    let engine = args.engine.config()?;
    if let Some(dir) = &args.report {
        super::prepare_output_dir(dir)?;
    }
    let (mut network, _, _) = super::load_model(args.model.as_deref(), engine)?;
    let mut data = super::load_data(args.data)?;
    if let Some(corruption) = args.corrupt {
        data.test = corruption.apply(&data.test);
    }
    let report = digitnn::with_threads(args.threads, || evaluate(&mut network, &data.test))??;
    if let Some(dir) = &args.report {
        digitnn::report::confusion_png(&report, &dir.join("confusion.png"))?;
        let shown = digitnn::report::errors_png(&report, &data.test, &dir.join("errors.png"), 100)?;
        eprintln!("wrote confusion.png and errors.png ({shown} misclassified digits) in {}", dir.display());
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "test accuracy {:.2}% ({} of {})", report.accuracy * 100.0, report.correct, report.total)?;
    writeln!(
        out,
        "refused as not a digit: {} ({:.2}%); read right and not refused: {:.2}%",
        report.refused,
        report.refused as f64 * 100.0 / report.total as f64,
        report.read_right * 100.0
    )?;
    writeln!(out, "\nconfusion matrix (rows: true digit, columns: predicted)")?;
    write!(out, "     ")?;
    for c in 0..report.confusion.len() {
        write!(out, "{c:>6}")?;
    }
    writeln!(out)?;
    for (t, row) in report.confusion.iter().enumerate() {
        write!(out, "{t:>5}")?;
        for count in row {
            write!(out, "{count:>6}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "\ndigit  precision  recall")?;
    for (c, (p, r)) in report.precision.iter().zip(&report.recall).enumerate() {
        writeln!(out, "{c:>5}  {:>8.2}%  {:>6.2}%", p * 100.0, r * 100.0)?;
    }
    Ok(ExitCode::SUCCESS)
}
