//! `digitnn web OUT_DIR`: the drawing page as a static site that reads in the browser, with no
//! server: `index.html` (the page `serve` serves), `digitnn.js` and `digitnn.wasm` (the library
//! built for WebAssembly by build.rs, with the built-in number reader inside).

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The folder to write (created if missing); its index.html, digitnn.js and digitnn.wasm are replaced
    out_dir: PathBuf,
}

/// The page, shared with `serve`: without digitnn.js beside it, it asks the server.
pub const PAGE: &str = include_str!("../../web/index.html");
/// Where the page takes digitnn.js in, when there is one.
const SCRIPT_MARK: &str = "<!-- digitnn.js -->";
const SCRIPT: &str = include_str!("../../web/digitnn.js");

#[cfg(not(digitnn_no_web))]
const WASM: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/digitnn.wasm")));
#[cfg(digitnn_no_web)]
const WASM: Option<&[u8]> = None;

pub fn run(args: Args) -> Result<ExitCode> {
    let Some(wasm) = WASM else {
        bail!(
            "this digitnn was built without its browser build: run `rustup target add wasm32-unknown-unknown`, then build digitnn again"
        );
    };
    let dir = &args.out_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    let page = PAGE.replacen(SCRIPT_MARK, r#"<script src="digitnn.js"></script>"#, 1);
    let files: [(&str, &[u8]); 3] =
        [("index.html", page.as_bytes()), ("digitnn.js", SCRIPT.as_bytes()), ("digitnn.wasm", wasm)];
    for (name, bytes) in files {
        let path = dir.join(name);
        digitnn::files::write_atomic(&path, bytes).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    println!(
        "wrote {}: index.html, digitnn.js, digitnn.wasm ({} KB, the built-in number reader inside); serve the folder \
         with any static file server, e.g. `python3 -m http.server -d {}`",
        dir.display(),
        wasm.len() / 1000,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
