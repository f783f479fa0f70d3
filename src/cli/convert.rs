//! `digitnn convert` and `digitnn export`.

use anyhow::{Result, bail};
use digitnn::model;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// A model file, safetensors or PyTorch .pt (recognised by content)
    input: PathBuf,
    /// The file to write: .safetensors, or .pt / .pth for PyTorch's torch.load
    output: PathBuf,
    /// Store the values in bfloat16 (safetensors only): half the file, 8 bits of mantissa
    #[arg(long)]
    bf16: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Write an ONNX model (opset 13; input `image` [N,1,28,28], output `logits` [N,10])
    #[arg(long, value_name = "FILE")]
    onnx: PathBuf,
    #[arg(long, default_value = super::DEFAULT_MODEL)]
    model: PathBuf,
}

pub fn convert(args: ConvertArgs) -> Result<ExitCode> {
    // The output's extension is checked before the input is read (save_as checks it again).
    let known = ["safetensors", "pt", "pth"];
    let extension = args.output.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    if !extension.as_ref().is_some_and(|e| known.contains(&e.as_str())) {
        bail!("{}: choose the format by extension: .safetensors, .pt or .pth", args.output.display());
    }
    if args.bf16 && extension.as_deref() != Some("safetensors") {
        bail!("--bf16 writes safetensors files only");
    }
    let (network, info) = model::load(&args.input)?;
    if args.bf16 {
        model::save_stored(&network, &args.output, info.test_accuracy, model::Storage::Bf16)?;
    } else {
        model::save_as(&network, &args.output, info.test_accuracy)?;
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
