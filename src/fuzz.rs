//! The entry points the fuzzers drive (`fuzz/`, with `cargo +nightly fuzz`), one per reader of
//! untrusted bytes. Each takes any bytes and must return without panicking, aborting, hanging or
//! allocating past `crate::limits`; errors are the expected outcome for most inputs. The corpora
//! under `fuzz/corpus/` are replayed through these same functions by an ordinary `cargo test`
//! (tests/fuzz_corpus.rs), so every crash a fuzzer found stays fixed on stable Rust.

use crate::data::idx::parse_idx;
use crate::data::image::{ImageLimits, decode, prepare};
use crate::model::from_bytes;
use std::path::Path;

/// An IDX file, raw (gzip is the `flate2` crate's to fuzz).
pub fn idx(bytes: &[u8]) {
    let _ = parse_idx(bytes, Path::new("fuzz.idx"));
}

/// A model file (safetensors with its architecture, or `.pt`); one that loads is also run on one
/// blank image, as `predict` would run it.
pub fn model(bytes: &[u8]) {
    if let Ok((mut network, _)) = from_bytes(bytes, Path::new("fuzz.model")) {
        let input = vec![0.0; network.input_len()];
        let logits = network.forward(&input, 1, false);
        assert_eq!(logits.len(), network.classes());
    }
}

/// A PyTorch `.pt` file through the safe unpickler alone (no architecture to check against).
#[cfg(feature = "pytorch")]
pub fn pt(bytes: &[u8]) {
    let _ = crate::model::pt::read_state_dict(bytes);
}

/// An image file decoded within the server's limits and prepared as `predict` prepares it.
pub fn image(bytes: &[u8]) {
    if let Ok(decoded) = decode(bytes, Path::new("fuzz.img"), ImageLimits::serve()) {
        let _ = prepare(&decoded, false, Path::new("fuzz.img"));
    }
}

/// A request body to `serve`'s predict endpoint: the first byte picks the Content-Type.
pub fn request(bytes: &[u8]) {
    let Some((&kind, body)) = bytes.split_first() else { return };
    let content_type = match kind % 4 {
        0 => "application/json",
        1 => "image/png",
        2 => "image/jpeg",
        _ => "text/plain",
    };
    let _ = crate::predict::prepare_request(content_type, body);
}

/// Pixels as the browser build takes them from a page's script: the first four bytes are the
/// width and height (little-endian u16 each), the rest RGBA pixels; checked, then read as a
/// number and prepared as a digit, as `digitnn_read` and `digitnn_predict` do (web/src/lib.rs).
pub fn pixels(bytes: &[u8]) {
    if bytes.len() < 4 {
        return;
    }
    let (width, height) = (u16::from_le_bytes([bytes[0], bytes[1]]), u16::from_le_bytes([bytes[2], bytes[3]]));
    let name = Path::new("fuzz.rgba");
    let Ok(picture) =
        crate::data::image::from_rgba(width.into(), height.into(), &bytes[4..], name, ImageLimits::default())
    else {
        return;
    };
    let _ = prepare(&picture, false, name);
    with_number_reader(|reader| {
        if let Ok(reading) = crate::read::read_image(
            &mut reader.pieces,
            reader.line.as_mut(),
            &picture,
            &crate::read::ReadConfig::default(),
        ) {
            assert_eq!(reading.digits.len(), reading.text.chars().filter(char::is_ascii_digit).count());
        }
    });
}

/// Runs `f` with the built-in number and line readers, made once per process.
fn with_number_reader(f: impl FnOnce(&mut crate::read::Reader)) {
    use std::sync::Mutex;
    static READER: Mutex<Option<crate::read::Reader>> = Mutex::new(None);
    let mut reader = READER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let reader = reader.get_or_insert_with(|| crate::read::Reader::builtin().expect("the built-in models load"));
    f(reader)
}

/// A picture of a number read as `POST /api/read` reads it: decoded within the server's limits,
/// then ink, marks, pieces, the search and the line reader, with the built-in models.
pub fn read(bytes: &[u8]) {
    with_number_reader(|reader| {
        let config = crate::read::ReadConfig::default();
        if let Ok(reading) =
            crate::read::read_bytes(&mut reader.pieces, reader.line.as_mut(), bytes, ImageLimits::serve(), &config)
        {
            assert_eq!(reading.digits.len(), reading.text.chars().filter(char::is_ascii_digit).count());
        }
    });
}
