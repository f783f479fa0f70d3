//! Replays the fuzzers' corpora (fuzz/corpus/TARGET/*: the generated seeds, what the fuzzers
//! kept, and every input that once crashed) through the same entry points the fuzzers drive, on
//! stable Rust: an input that panics here fails the test and names the file.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            panic!("{} made the {target} target panic", file.display());
        }
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn idx_corpus() {
    replay("idx", digitnn::fuzz::idx);
}

#[test]
fn model_corpus() {
    replay("model", digitnn::fuzz::model);
}

#[test]
fn pt_corpus() {
    replay("pt", digitnn::fuzz::pt);
}

#[test]
fn image_corpus() {
    replay("image", digitnn::fuzz::image);
}

#[test]
fn request_corpus() {
    replay("request", digitnn::fuzz::request);
}

#[test]
fn read_corpus() {
    replay("read", digitnn::fuzz::read);
}

#[test]
fn pixels_corpus() {
    replay("pixels", digitnn::fuzz::pixels);
}
