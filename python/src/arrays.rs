//! numpy arrays in: images (uint8 0-255 or float32 0-1), labels, tensors of a state_dict. Each is
//! checked (dtype, shape, values) with an error that says what was expected; contiguous float32
//! images are read where they lie.

use digitnn::data::{Dataset, pixel_value};
use digitnn::model::ParamTensor;
use numpy::{PyArrayDescrMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ops::Range;

/// Images from a numpy array, held (borrowed from numpy, or copied when not contiguous) while
/// the engine reads them.
pub enum Images<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>, usize),
    U8(PyReadonlyArrayDyn<'py, u8>, usize),
    CopiedF32(Vec<f32>, usize),
    CopiedU8(Vec<u8>, usize),
}

/// What the engine reads of [`Images`]: plain slices, so that it can run without the GIL.
#[derive(Clone, Copy)]
pub enum View<'a> {
    F32(&'a [f32]),
    U8(&'a [u8]),
}

impl<'py> Images<'py> {
    /// `x` as images for a network with input `[c, h, w]`: shaped (h, w) or (N, h, w) when c is
    /// 1, or (N, c, h, w); uint8, or float32 in [0, 1].
    pub fn from_array(x: &Bound<'py, PyAny>, input: [usize; 3]) -> PyResult<Images<'py>> {
        let array = x.cast::<PyUntypedArray>().map_err(|_| {
            PyTypeError::new_err(format!(
                "images must be a numpy array (uint8 0-255 or float32 0-1), not {}",
                type_name(x)
            ))
        })?;
        let count = image_count(array.shape(), input)?;
        let dtype = array.dtype();
        if dtype.is_equiv_to(&numpy::dtype::<f32>(x.py())) {
            let values: PyReadonlyArrayDyn<f32> = x.extract()?;
            check_unit_range(values.as_array().iter().copied())?;
            // Only a C-ordered array is one image after another in memory (numpy's `as_slice`
            // also accepts Fortran order, whose memory order is not the images').
            return Ok(if values.is_c_contiguous() {
                Images::F32(values, count)
            } else {
                Images::CopiedF32(values.as_array().iter().copied().collect(), count)
            });
        }
        if dtype.is_equiv_to(&numpy::dtype::<u8>(x.py())) {
            let values: PyReadonlyArrayDyn<u8> = x.extract()?;
            return Ok(if values.is_c_contiguous() {
                Images::U8(values, count)
            } else {
                Images::CopiedU8(values.as_array().iter().copied().collect(), count)
            });
        }
        Err(PyTypeError::new_err(format!(
            "images must be uint8 (0-255) or float32 (0-1), not {}; convert with .astype(numpy.float32) / 255 or .astype(numpy.uint8)",
            dtype
        )))
    }

    pub fn count(&self) -> usize {
        match self {
            Images::F32(_, n) | Images::U8(_, n) | Images::CopiedF32(_, n) | Images::CopiedU8(_, n) => *n,
        }
    }

    pub fn view(&self) -> View<'_> {
        match self {
            Images::F32(values, _) => View::F32(values.as_slice().expect("checked C-contiguous")),
            Images::U8(values, _) => View::U8(values.as_slice().expect("checked C-contiguous")),
            Images::CopiedF32(values, _) => View::F32(values),
            Images::CopiedU8(values, _) => View::U8(values),
        }
    }
}

impl<'a> View<'a> {
    /// The images as the network's input, when they already are (float32): read in place.
    pub fn values(self) -> Option<&'a [f32]> {
        match self {
            View::F32(values) => Some(values),
            View::U8(_) => None,
        }
    }

    /// Values per image.
    fn image_len(self, count: usize) -> usize {
        let total = match self {
            View::F32(v) => v.len(),
            View::U8(v) => v.len(),
        };
        total / count.max(1)
    }

    /// Appends images `range` of `count` to `out` as the network's input.
    pub fn fill(self, count: usize, range: Range<usize>, out: &mut Vec<f32>) {
        let len = self.image_len(count);
        match self {
            View::F32(v) => out.extend_from_slice(&v[range.start * len..range.end * len]),
            View::U8(v) => out.extend(v[range.start * len..range.end * len].iter().map(|&p| pixel_value(p))),
        }
    }

    /// Appends the images at `indices` of `count` to `out` as the network's input.
    pub fn fill_indices(self, count: usize, indices: &[usize], out: &mut Vec<f32>) {
        for &i in indices {
            self.fill(count, i..i + 1, out);
        }
    }
}

fn type_name(x: &Bound<PyAny>) -> String {
    x.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "this object".into())
}

/// How many images an array of `shape` holds for a network with input `[c, h, w]`.
fn image_count(shape: &[usize], [c, h, w]: [usize; 3]) -> PyResult<usize> {
    match *shape {
        [sh, sw] if c == 1 && (sh, sw) == (h, w) => Ok(1),
        [n, sh, sw] if c == 1 && (sh, sw) == (h, w) => Ok(n),
        [n, sc, sh, sw] if (sc, sh, sw) == (c, h, w) => Ok(n),
        _ => {
            let single = if c == 1 { format!("({h}, {w}), (N, {h}, {w}) or ") } else { String::new() };
            Err(PyValueError::new_err(format!("images must be shaped {single}(N, {c}, {h}, {w}), not {shape:?}")))
        }
    }
}

/// Float images must hold finite values in [0, 1] (uint8 images are 0-255).
fn check_unit_range(values: impl Iterator<Item = f32>) -> PyResult<()> {
    for (i, v) in values.enumerate() {
        if !(0.0..=1.0).contains(&v) {
            return Err(PyValueError::new_err(format!(
                "float32 images must hold values in [0, 1], found {v} at flat index {i} (divide 0-255 images by 255, or pass uint8)"
            )));
        }
    }
    Ok(())
}

/// Labels: a 1-D array (or sequence) of integers 0-255.
pub fn labels_arg(labels: &Bound<PyAny>) -> PyResult<Vec<u8>> {
    let np = labels.py().import("numpy")?;
    let array = np.call_method1("asarray", (labels,))?;
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    let ndim: usize = array.getattr("ndim")?.extract()?;
    if !matches!(kind.as_str(), "i" | "u") || ndim != 1 {
        return Err(PyTypeError::new_err("labels must be a 1-D array of integers (the digits 0-9)"));
    }
    let values: Vec<i64> = array.call_method1("astype", ("int64",))?.call_method0("tolist")?.extract()?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            u8::try_from(v)
                .map_err(|_| PyValueError::new_err(format!("label {v} at index {i} is not a digit class (0-255)")))
        })
        .collect()
}

/// A labelled dataset from arrays: images as `Images` takes them for 28x28 inputs (float32 ones
/// rounded to 1/255, as MNIST's bytes are), labels as `labels_arg`.
pub fn dataset(x: &Bound<PyAny>, y: &Bound<PyAny>) -> PyResult<Dataset> {
    let images = Images::from_array(x, [1, 28, 28])?;
    let labels = labels_arg(y)?;
    if labels.len() != images.count() {
        return Err(PyValueError::new_err(format!("{} labels for {} images", labels.len(), images.count())));
    }
    let bytes = match images.view() {
        View::U8(v) => v.to_vec(),
        View::F32(v) => v.iter().map(|&p| (p * 255.0).round() as u8).collect(),
    };
    Ok(Dataset { images: bytes, labels, rows: 28, cols: 28 })
}

/// Copies each of `tensors` from `state_dict` into its range of `buffer` (a network's parameters
/// or state), checked as [`tensor_arg`] checks it.
pub fn copy_tensors(state_dict: &Bound<PyDict>, tensors: &[ParamTensor], buffer: &mut [f32]) -> PyResult<()> {
    for tensor in tensors {
        let values = tensor_arg(state_dict, &tensor.name, &tensor.shape)?;
        buffer[tensor.range.clone()].copy_from_slice(&values);
    }
    Ok(())
}

/// `state_dict[name]` as f32 values, checked against the expected shape and values.
fn tensor_arg(state_dict: &Bound<PyDict>, name: &str, shape: &[usize]) -> PyResult<Vec<f32>> {
    let value = state_dict
        .get_item(name)?
        .ok_or_else(|| PyValueError::new_err(format!("the state_dict has no tensor {name}")))?;
    // A torch tensor converts through numpy(); numpy arrays and lists through asarray.
    let value = if value.hasattr("detach")? {
        value.call_method0("detach")?.call_method0("cpu")?.call_method0("numpy")?
    } else {
        value
    };
    let array = value.py().import("numpy")?.call_method1("asarray", (value,))?;
    let got: Vec<usize> = array.getattr("shape")?.extract()?;
    if got != shape {
        return Err(PyValueError::new_err(format!(
            "tensor {name} has shape {got:?}; the architecture needs {shape:?}"
        )));
    }
    let values: Vec<f32> = array
        .call_method1("astype", ("float32",))?
        .call_method1("reshape", (-1,))?
        .call_method0("tolist")?
        .extract()?;
    digitnn::model::check_values(name, &values).map_err(PyValueError::new_err)?;
    Ok(values)
}
