//! Pictures in, for `read` and `predict`: a file path, a PIL image, or a numpy array of any
//! size, grey (H, W) or colour (H, W, 3 or 4), uint8 0-255 or float 0-1, as a photo or a scan
//! holds it (dark ink on light paper or the reverse). They are prepared by the library exactly as
//! the command line prepares an image file.

use digitnn::data::image::{self as prepare};
use image::{DynamicImage, GrayImage, RgbImage, RgbaImage};
use numpy::{PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;

/// A picture to prepare: decoded from a file, or built from an array's pixels.
pub enum Picture {
    File(PathBuf),
    Pixels(DynamicImage),
}

impl Picture {
    /// Decodes a file (within the command line's limits) or hands over the pixels.
    pub fn decode(self) -> digitnn::Result<DynamicImage> {
        match self {
            Picture::File(path) => prepare::open(&path),
            Picture::Pixels(picture) => Ok(picture),
        }
    }
}

/// Whether `x` is a picture rather than model input: a path, a PIL image, or an array shaped
/// as a picture (2-D and not 28x28, or (H, W, 3 or 4)). A 28x28 array, or a stack of them, is
/// model input as before: light digits on dark, used as they are.
pub fn is_picture(x: &Bound<PyAny>) -> PyResult<bool> {
    if x.extract::<PathBuf>().is_ok() || is_pil(x)? {
        return Ok(true);
    }
    Ok(x.cast::<PyUntypedArray>().is_ok_and(|a| {
        let shape = a.shape();
        (shape.len() == 2 && shape != [prepare::SIDE, prepare::SIDE]) || (shape.len() == 3 && matches!(shape[2], 3 | 4))
    }))
}

fn is_pil(x: &Bound<PyAny>) -> PyResult<bool> {
    Ok(x.hasattr("getbands")? && x.hasattr("mode")?)
}

/// `x` (see the module docs) as a picture.
pub fn picture_arg(x: &Bound<PyAny>) -> PyResult<Picture> {
    if let Ok(path) = x.extract::<PathBuf>() {
        return Ok(Picture::File(path));
    }
    let array = if is_pil(x)? { x.py().import("numpy")?.call_method1("asarray", (x,))? } else { x.clone() };
    let untyped = array.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err("a picture must be a path, a PIL image or a numpy array (H, W) or (H, W, 3 or 4)")
    })?;
    let shape = untyped.shape().to_vec();
    let (height, width, channels) = match shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c] if matches!(c, 1 | 3 | 4) => (h, w, c),
        _ => return Err(PyValueError::new_err(format!("a picture is shaped (H, W) or (H, W, 3 or 4), not {shape:?}"))),
    };
    if height == 0 || width == 0 {
        return Err(PyValueError::new_err("the picture is empty"));
    }
    let (w, h) = (u32::try_from(width).unwrap_or(u32::MAX), u32::try_from(height).unwrap_or(u32::MAX));
    prepare::ImageLimits::default().check_pixels(w, h).map_err(PyValueError::new_err)?;
    let bytes = to_bytes(&array)?;
    let picture = match channels {
        1 => GrayImage::from_raw(w, h, bytes).map(DynamicImage::ImageLuma8),
        3 => RgbImage::from_raw(w, h, bytes).map(DynamicImage::ImageRgb8),
        _ => RgbaImage::from_raw(w, h, bytes).map(DynamicImage::ImageRgba8),
    };
    picture.map(Picture::Pixels).ok_or_else(|| PyValueError::new_err("the pixels do not fill the picture's shape"))
}

/// The array's values as bytes, row after row: uint8 as they are, floats in [0, 1] scaled to 255.
fn to_bytes(array: &Bound<PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(values) = array.extract::<PyReadonlyArrayDyn<u8>>() {
        return Ok(values.as_array().iter().copied().collect());
    }
    let values: PyReadonlyArrayDyn<f64> = array
        .call_method1("astype", ("float64",))
        .and_then(|a| a.extract())
        .map_err(|_| PyTypeError::new_err("a picture's pixels must be uint8 0-255 or floats 0-1"))?;
    let values = values.as_array();
    if let Some(bad) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(PyValueError::new_err(format!("a float picture's pixels must be in [0, 1], found {bad}")));
    }
    Ok(values.iter().map(|v| (v * 255.0).round() as u8).collect())
}
