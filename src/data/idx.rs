//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed, read with every check:
//! magic number, element type, dimensions, exact length. The SHA-256 of the raw (uncompressed)
//! bytes is computed while reading, for MNIST's checksums.

use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// No IDX file this tool reads comes near this many data bytes; larger claims are refused before
/// anything is allocated.
pub const MAX_IDX_BYTES: usize = crate::limits::MAX_IDX_BYTES;

/// An array of unsigned bytes from an IDX file.
#[derive(Debug)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
    /// SHA-256 of the raw file content, lower-case hex.
    pub sha256: String,
}

/// Reads an IDX file of unsigned bytes (type 0x08), gzip-compressed or not.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut file = BufReader::new(file);
    let gzip = {
        use std::io::BufRead;
        file.fill_buf().map_err(|e| Error::io(path, e))?.starts_with(&[0x1f, 0x8b])
    };
    let reader: Box<dyn Read> = if gzip { Box::new(GzDecoder::new(file)) } else { Box::new(file) };
    parse_idx(reader, path)
}

/// Parses IDX content from any reader (`path` names the source in errors).
pub fn parse_idx(reader: impl Read, path: &Path) -> Result<Idx> {
    let fail = |reason: String| Error::Idx { path: path.to_path_buf(), reason };
    let read_error = |e: std::io::Error| fail(format!("read failed: {e}"));
    let mut reader = HashingReader { inner: reader, hasher: Sha256::new() };
    let mut magic = [0u8; 4];
    read_full(&mut reader, &mut magic).map_err(read_error)?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(fail(format!("bad magic number {magic:02x?} (expected 00 00 08 0N)")));
    }
    if magic[2] != 0x08 {
        return Err(fail(format!("element type 0x{:02x} is not supported (only unsigned bytes, 0x08)", magic[2])));
    }
    let ndim = magic[3] as usize;
    if !(1..=4).contains(&ndim) {
        return Err(fail(format!("{ndim} dimensions is not supported (1 to 4)")));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let mut d = [0u8; 4];
        read_full(&mut reader, &mut d).map_err(|_| fail("file ends inside the header".into()))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_IDX_BYTES);
    let Some(count) = count else {
        return Err(fail(format!("dimensions {dims:?} are larger than any dataset this tool reads")));
    };
    // The header is not trusted with the allocation: the buffer grows as data actually arrives,
    // so a 16-byte file claiming 1 GiB costs nothing (found by fuzzing).
    let mut data = Vec::with_capacity(count.min(1 << 20));
    (&mut reader).take(count as u64).read_to_end(&mut data).map_err(read_error)?;
    if data.len() < count {
        return Err(fail(format!("truncated: dimensions {dims:?} need {count} bytes of data, found {}", data.len())));
    }
    let mut extra = [0u8; 1];
    if reader.read(&mut extra).map_err(read_error)? > 0 {
        return Err(fail(format!("trailing bytes after the {count} bytes that dimensions {dims:?} describe")));
    }
    let sha256 = hex(&reader.hasher.finalize());
    Ok(Idx { dims, data, sha256 })
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<()> {
    reader.read_exact(buf)
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The bytes of an IDX file holding `dims` and `data` (for tests and tools that write datasets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn parse(bytes: &[u8]) -> Result<Idx> {
        parse_idx(bytes, Path::new("test.idx"))
    }

    #[test]
    fn reads_raw_and_gzip() {
        let bytes = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let idx = parse(&bytes).unwrap();
        assert_eq!((idx.dims.clone(), idx.data.clone()), (vec![2, 3], vec![1, 2, 3, 4, 5, 6]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gz");
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&bytes).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let from_gz = read_idx(&path).unwrap();
        assert_eq!(from_gz.data, idx.data);
        // The checksum is of the raw content, whichever way it is stored.
        assert_eq!(from_gz.sha256, hex(&Sha256::digest(&bytes)));
    }

    #[test]
    fn refuses_broken_files_with_a_reason() {
        let good = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "read failed"),
            (vec![1, 2, 8, 1, 0, 0, 0, 1, 0], "bad magic"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], "element type"),
            (vec![0, 0, 8, 9], "dimensions is not supported"),
            (vec![0, 0, 8, 2, 0, 0, 0], "inside the header"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![0]].concat(), "trailing"),
            (vec![0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 9], "larger than any"),
        ];
        for (bytes, want) in cases {
            let err = parse(&bytes).expect_err(want).to_string();
            assert!(err.contains(want) && err.contains("test.idx"), "{err} should say {want}");
        }
    }

    #[test]
    fn a_gzip_bomb_is_cut_off_at_the_declared_size() {
        // A header declaring 10 bytes, followed by 50 MB of zeros: refused without reading it all.
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&encode_idx(&[10], &[0; 10])).unwrap();
        gz.write_all(&vec![0u8; 50 << 20]).unwrap();
        let err = parse_idx(flate2::read::GzDecoder::new(&gz.finish().unwrap()[..]), Path::new("bomb.gz")).unwrap_err();
        assert!(err.to_string().contains("trailing"));
    }
}
