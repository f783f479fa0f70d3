//! `digitnn convert` and `digitnn export`.

use anyhow::{Result, bail};
use digitnn::model;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// A model file, safetensors or PyTorch .pt (recognised by content)
    input: PathBuf,
    /// The file to write: .safetensors, or .pt / .pth for PyTorch's torch.load
    output: PathBuf,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Write an ONNX model (opset 13; input `image` [N,1,28,28], output `logits` [N,10])
    #[arg(long, value_name = "FILE")]
    onnx: PathBuf,
    #[arg(long, default_value = super::DEFAULT_MODEL)]
    model: PathBuf,
}

fn extension(path: &Path) -> String {
    path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

pub fn convert(args: ConvertArgs) -> Result<ExitCode> {
    let to_pytorch = match extension(&args.output).as_str() {
        "pt" | "pth" => true,
        "safetensors" => false,
        _ => bail!("{}: choose the format by extension: .safetensors, .pt or .pth", args.output.display()),
    };
    let (network, info) = model::load(&args.input)?;
    if to_pytorch {
        model::write_atomic(&args.output, &model::to_pt_bytes(&network)?)?;
    } else {
        model::save(&network, &args.output, info.test_accuracy)?;
    }
    eprintln!("wrote {} ({} parameters)", args.output.display(), network.parameter_count());
    Ok(ExitCode::SUCCESS)
}

pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let (mut network, _) = model::load(&args.model)?;
    model::write_atomic(&args.onnx, &model::onnx::export(&mut network))?;
    eprintln!("wrote {}", args.onnx.display());
    Ok(ExitCode::SUCCESS)
}
