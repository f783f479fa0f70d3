//! digitnn in the browser: the library's reading and prediction, compiled to WebAssembly with the
//! built-in number reader inside, behind a small C ABI that `digitnn.js` wraps as
//! `window.digitnn`.
//!
//! This crate is an edge, as the CLI and the Python package are: it computes nothing itself.
//! The browser decodes image files (PNG, JPEG, and whatever else it reads) and hands over RGBA
//! pixels; the library prepares and reads them with the same code as the command line. Pixels
//! come in through memory the caller takes from [`digitnn_alloc`]; every call answers one JSON
//! text (the answer, or `{"error": "..."}`), read through [`digitnn_answer_ptr`] and
//! [`digitnn_answer_len`].
//!
//! Two models: the number reader and the line reader (`digitnn read`'s), and the number reader
//! predicts single digits too. The digit reader (`digitnn predict`'s) would add 1.3 MB more of
//! weights (0.7 MB in bfloat16); see the README's browser section for what that changes.
//!
//! The ABI is written by hand rather than with wasm-bindgen: five functions of bytes in and JSON
//! out need no generated glue, and the build then needs nothing but `cargo` and the
//! `wasm32-unknown-unknown` target (no version-locked `wasm-bindgen` CLI).

use digitnn::data::image::{ImageLimits, SIDE, from_rgba, prepare};
use digitnn::model::{self, ModelInfo};
use digitnn::predict::predict_pixels;
use digitnn::read::{ReadConfig, Reader, read_image};
use digitnn::{ConvAlgorithm, EngineConfig, Isa};
use image::DynamicImage;
use serde_json::{Value, json};
use std::alloc::Layout;
use std::cell::RefCell;
use std::path::Path;

/// The largest input a caller may hand over: the RGBA pixels of the command line's largest
/// image ([`ImageLimits::default`], 48 million pixels; a phone's photo has about 12).
pub const MAX_INPUT_BYTES: usize = digitnn::limits::MAX_IMAGE_PIXELS as usize * 4;

/// Inputs are allocated with this alignment, so that `digitnn_logits` can read them as f32.
const ALIGN: usize = 16;

/// The built-in number reader (loaded on first use) and the last answer.
struct State {
    model: Option<(Reader, ModelInfo)>,
    answer: Vec<u8>,
}

thread_local! {
    // WebAssembly here is single-threaded: one state, borrowed by one call at a time.
    static STATE: RefCell<State> = const { RefCell::new(State { model: None, answer: Vec::new() }) };
}

/// `len` bytes for the caller to fill, aligned for f32; null when `len` is 0 or over
/// [`MAX_INPUT_BYTES`]. Every function that takes a buffer frees it.
#[unsafe(no_mangle)]
pub extern "C" fn digitnn_alloc(len: usize) -> *mut u8 {
    if len == 0 || len > MAX_INPUT_BYTES {
        return std::ptr::null_mut();
    }
    // SAFETY: the layout has a non-zero size.
    unsafe { std::alloc::alloc(Layout::from_size_align(len, ALIGN).expect("a small aligned layout")) }
}

/// Takes back a buffer from [`digitnn_alloc`] as a byte slice for `f`, then frees it.
///
/// # Safety
/// `ptr` and `len` must come from one `digitnn_alloc` call, not yet freed.
unsafe fn consume<R>(ptr: *mut u8, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
    // SAFETY: the caller's contract; null only when `len` was refused, handled by the callers.
    let result = f(unsafe { std::slice::from_raw_parts(ptr, len) });
    unsafe { std::alloc::dealloc(ptr, Layout::from_size_align(len, ALIGN).expect("a small aligned layout")) };
    result
}

/// Where the last answer's UTF-8 JSON lies.
#[unsafe(no_mangle)]
pub extern "C" fn digitnn_answer_ptr() -> *const u8 {
    STATE.with_borrow(|state| state.answer.as_ptr())
}

/// The last answer's length in bytes.
#[unsafe(no_mangle)]
pub extern "C" fn digitnn_answer_len() -> usize {
    STATE.with_borrow(|state| state.answer.len())
}

/// Stores `result` as the answer: 0 for a value, 1 for `{"error": ...}`.
fn answer(state: &mut State, result: Result<Value, String>) -> u32 {
    let (value, code) = match result {
        Ok(value) => (value, 0),
        Err(message) => (json!({ "error": message }), 1),
    };
    state.answer = serde_json::to_vec(&value).unwrap_or_else(|_| br#"{"error":"unprintable answer"}"#.to_vec());
    code
}

fn with_model(f: impl FnOnce(&mut Reader, &ModelInfo) -> Result<Value, String>) -> u32 {
    STATE.with_borrow_mut(|state| {
        if state.model.is_none() {
            let loaded = model::builtin_numbers().and_then(|(pieces, info)| Ok((Reader::with_pieces(pieces)?, info)));
            match loaded {
                Ok(loaded) => state.model = Some(loaded),
                Err(e) => return answer(state, Err(e.to_string())),
            }
        }
        let (reader, info) = state.model.as_mut().expect("loaded above");
        let result = f(reader, info);
        answer(state, result)
    })
}

/// Runs `f` on the image in a buffer of `width * height` RGBA pixels, then frees the buffer.
///
/// # Safety
/// `ptr` and `len` must come from one `digitnn_alloc` call, not yet freed, or `ptr` be null.
unsafe fn on_pixels(
    ptr: *mut u8,
    len: usize,
    width: u32,
    height: u32,
    f: impl FnOnce(&mut Reader, &DynamicImage) -> Result<Value, String>,
) -> u32 {
    if ptr.is_null() {
        let refused =
            format!("{width}x{height} is more pixels than the limit of {} million", MAX_INPUT_BYTES / 4_000_000);
        return STATE.with_borrow_mut(|state| answer(state, Err(refused)));
    }
    // SAFETY: the caller's contract.
    unsafe {
        consume(ptr, len, |rgba| {
            with_model(|reader, _| {
                let picture = from_rgba(width, height, rgba, Path::new("the image"), ImageLimits::default())
                    .map_err(|e| e.to_string())?;
                f(reader, &picture)
            })
        })
    }
}

/// Reads the number in an image of `width * height` RGBA pixels: the object one line of
/// `digitnn read --json` prints, without its `path`. Frees the buffer.
///
/// # Safety
/// `ptr` and `len` must come from one `digitnn_alloc` call, not yet freed, or `ptr` be null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn digitnn_read(ptr: *mut u8, len: usize, width: u32, height: u32) -> u32 {
    // SAFETY: the caller's contract.
    unsafe {
        on_pixels(ptr, len, width, height, |reader, picture| {
            let reading = read_image(&mut reader.pieces, reader.line.as_mut(), picture, &ReadConfig::default())
                .map_err(|e| e.to_string())?;
            serde_json::to_value(&reading).map_err(|e| e.to_string())
        })
    }
}

/// Predicts the one digit in an image of `width * height` RGBA pixels: the object one line of
/// `digitnn predict --json` prints, without its `path`, and with `input`, the 28x28 image the
/// model saw (784 values 0-255, row by row). Frees the buffer.
///
/// # Safety
/// As [`digitnn_read`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn digitnn_predict(ptr: *mut u8, len: usize, width: u32, height: u32) -> u32 {
    // SAFETY: the caller's contract.
    unsafe {
        on_pixels(ptr, len, width, height, |reader, picture| {
            let (pixels, _) = prepare(picture, false, Path::new("the image")).map_err(|e| e.to_string())?;
            let prediction = predict_pixels(&mut reader.pieces, &[pixels], true).map_err(|e| e.to_string())?.remove(0);
            let mut value = serde_json::to_value(&prediction).map_err(|e| e.to_string())?;
            value["input"] = json!(pixels.to_vec());
            Ok(value)
        })
    }
}

/// What the page shows of the model: as `digitnn serve`'s `/api/model`.
#[unsafe(no_mangle)]
pub extern "C" fn digitnn_model() -> u32 {
    with_model(|reader, info| {
        Ok(json!({
            "architecture": info.architecture,
            "parameters": reader.pieces.parameter_count(),
            "test_accuracy": info.test_accuracy,
        }))
    })
}

/// For tests: the logits of `len / (784 * 4)` prepared 28x28 images (f32, 0-1, row by row) on the
/// portable kernels (`simd` 0) or SIMD128 (1), with convolution algorithm `conv` (an index into
/// `ConvAlgorithm::ALL`), as `{"logits": [...]}`. Frees the buffer.
///
/// # Safety
/// As [`digitnn_read`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn digitnn_logits(ptr: *mut u8, len: usize, simd: u32, conv: u32) -> u32 {
    let image_bytes = SIDE * SIDE * 4;
    if ptr.is_null() || !len.is_multiple_of(image_bytes) {
        return STATE.with_borrow_mut(|state| answer(state, Err("send whole 28x28 f32 images".into())));
    }
    // SAFETY: the caller's contract; the buffer is aligned for f32 (ALIGN) and holds whole f32s.
    unsafe {
        consume(ptr, len, |bytes| {
            let images = std::slice::from_raw_parts(bytes.as_ptr() as *const f32, len / 4);
            with_model(|reader, _| {
                let network = &mut reader.pieces;
                let isa = if simd == 1 { Isa::Simd128 } else { Isa::Portable };
                let conv = *ConvAlgorithm::ALL.get(conv as usize).ok_or("no such convolution algorithm")?;
                network.set_engine(EngineConfig { isa, conv, ..EngineConfig::default() }).map_err(|e| e.to_string())?;
                let logits = network.forward(images, len / image_bytes, false).to_vec();
                network.set_engine(EngineConfig::default()).map_err(|e| e.to_string())?;
                Ok(json!({ "logits": logits }))
            })
        })
    }
}

/// For tests: checks every vector operation of SIMD128 against plain f32 arithmetic (the same
/// check `cargo test` runs on the native instruction sets); traps on a difference, answers
/// `{"checked": [...]}` with the instruction sets checked.
#[unsafe(no_mangle)]
pub extern "C" fn digitnn_check_kernels() -> u32 {
    digitnn::kernels::check_every_isa("the wasm kernels");
    let checked: Vec<&str> = Isa::supported().into_iter().map(Isa::name).collect();
    STATE.with_borrow_mut(|state| answer(state, Ok(json!({ "checked": checked }))))
}
