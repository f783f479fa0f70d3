//! Helpers shared by the integration tests (each test file uses some of them).
#![allow(dead_code)]

use image::{GrayImage, Luma};
use std::io::Write;
use std::process::{Command, Output};

/// Runs the digitnn binary with fetching forbidden, and fails the test if it panicked.
pub fn digitnn(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_digitnn"))
        .args(args)
        .env("DIGITNN_NO_FETCH", "1")
        .env_remove("DIGITNN_DATA")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "digitnn {args:?} panicked: {stderr}");
    output
}

/// A zip laid out as torch.save writes it, with the given pickle and storages.
pub fn pt_file(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
    for (name, data) in storages {
        zip.start_file(format!("archive/data/{name}"), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A PNG whose header claims `w` x `h` pixels, with the data of a 1x1 image: a decompression
/// bomb's header without its size.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = Vec::new();
    GrayImage::from_pixel(1, 1, Luma([0]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    png
}
