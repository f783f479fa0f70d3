//! `digitnn._digitnn`, the Python package's native module: a thin layer over the digitnn
//! library. numpy arrays come in (read in place where they are contiguous float32) and go out;
//! the GIL is released while the engine runs; the library's errors become Python exceptions with
//! the same messages as the command line's (see `error`). No math and no file formats here.

mod arrays;
mod pictures;

use arrays::{Images, labels_arg};
use digitnn::data::image::prepare;
use digitnn::data::{Dataset, Mnist, mnist};
use digitnn::eval::evaluate_with;
use digitnn::model::{self, Architecture, Network};
use digitnn::predict::{Prediction, classify, infer_in_batches, infer_slice_in_batches, predict_pixels, prepare_file};
use digitnn::presets::{Overrides, Preset};
use digitnn::read::line::LineReader;
use digitnn::read::{ReadConfig, read_image};
use digitnn::train::{EpochStats, TrainEvent, train_until};
use digitnn::{ConvAlgorithm, EngineConfig, Error, Isa, Precision};
use numpy::{PyArray1, PyArray2, PyArrayMethods, ToPyArray};
use pictures::{is_picture, picture_arg};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The library's error as a Python exception: files that cannot be read or fetched are
/// `OSError`, a stopped training `KeyboardInterrupt`, everything else (bad values, corrupt or
/// hostile files) `ValueError`; the message is the command line's.
fn error(e: Error) -> PyErr {
    // A setting the library refused is named by its keyword argument.
    if let Error::Setting { setting, value, reason } = &e {
        use digitnn::Setting;
        let keyword = match setting {
            Setting::Epochs => "epochs",
            Setting::BatchSize => "batch_size",
            Setting::LearningRate => "lr",
            Setting::Momentum => "momentum",
            Setting::WeightDecay => "weight_decay",
            Setting::Warmup => "warmup",
            Setting::LabelSmoothing => "label_smoothing",
            Setting::Ema => "ema",
            Setting::Threads => "threads",
            Setting::NotDigits | Setting::NumberPieces | Setting::EpochImages => setting.name(),
        };
        return PyValueError::new_err(format!("{keyword}={value}: {reason}"));
    }
    match e {
        Error::Io { .. } | Error::Fetch(_) => PyOSError::new_err(e.to_string()),
        Error::Stopped => PyKeyboardInterrupt::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A name the library knows (`"avx512"`, `"winograd2"`, `"bf16"`, ...) as its value, or a
/// `ValueError` listing the names.
fn parse<T: std::str::FromStr<Err = Error>>(name: &str) -> PyResult<T> {
    name.parse().map_err(error)
}

/// The engine from the keyword arguments (None: the library's default), refused if this CPU
/// cannot run it; a `RuntimeWarning` when bf16 runs in fp32 here.
fn engine(py: Python, isa: Option<&str>, conv: Option<&str>, precision: Option<&str>) -> PyResult<EngineConfig> {
    let default = EngineConfig::default();
    let isa = match isa {
        None | Some("auto") => Isa::best(),
        Some(name) => parse(name)?,
    };
    let conv: ConvAlgorithm = conv.map(parse).transpose()?.unwrap_or(default.conv);
    let precision: Precision = precision.map(parse).transpose()?.unwrap_or(default.precision);
    let engine = EngineConfig { isa, conv, precision };
    engine.check().map_err(error)?;
    if let Some(note) = engine.precision_note() {
        PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &std::ffi::CString::new(note)?, 1)?;
    }
    Ok(engine)
}

/// A trained or loaded network. Methods release the GIL while the engine runs; one model can be
/// used from several Python threads (they take turns).
#[pyclass(module = "digitnn", name = "Model")]
struct Model {
    network: Mutex<Network>,
    /// The line reader `read` asks beside this model (the built-in one, loaded on first use).
    line: Mutex<Option<LineReader>>,
    /// The test accuracy recorded in its file or by training, saved with it.
    test_accuracy: Option<f64>,
    /// The threads the engine runs on. A call from Python's thread enters them once, through
    /// `install`; without it, every parallel loop of every layer would hand its work from
    /// Python's thread (not one of rayon's) to the global pool and wait: measured 94 us per
    /// single-image prediction instead of about 71.
    pool: rayon::ThreadPool,
}

impl Model {
    fn new(network: Network, test_accuracy: Option<f64>) -> PyResult<Model> {
        let threads = digitnn::thread_count(None).map_err(error)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| PyOSError::new_err(format!("cannot start {threads} threads: {e}")))?;
        Ok(Model { network: Mutex::new(network), line: Mutex::new(None), test_accuracy, pool })
    }

    /// Runs `f` on the model's threads with the GIL released.
    fn engine_call<R: Send>(&self, py: Python, f: impl FnOnce() -> R + Send) -> R {
        py.detach(|| self.pool.install(f))
    }

    fn network(&self) -> std::sync::MutexGuard<'_, Network> {
        // A panic while holding the lock is a bug in the library; the network is still usable.
        self.network.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logits of `x` (see `predict`), `classes` per image.
    fn run(&self, py: Python, x: &Bound<PyAny>) -> PyResult<(Vec<f32>, usize)> {
        let input = self.network().architecture.input;
        let images = Images::from_array(x, input)?;
        let (view, count) = (images.view(), images.count());
        self.engine_call(py, || {
            let mut network = self.network();
            let mut logits = Vec::with_capacity(count * network.classes());
            let take = |_, out: &[f32]| logits.extend_from_slice(out);
            match view.values() {
                Some(values) => infer_slice_in_batches(&mut network, values, take),
                None => infer_in_batches(&mut network, count, |range, out| view.fill(count, range, out), take),
            }
            .map_err(error)?;
            Ok((logits, network.classes()))
        })
    }
}

/// Digits (int64, one per image, -1 for "not a digit") and probabilities (float32, one row of
/// 10 per image).
type Predictions<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray2<f32>>);

/// What `predict` returns for a refused image instead of a digit.
const NOT_A_DIGIT: i64 = -1;

fn predictions<'py>(py: Python<'py>, found: impl Iterator<Item = Prediction>) -> PyResult<Predictions<'py>> {
    let (mut digits, mut probabilities) = (Vec::new(), Vec::new());
    for prediction in found {
        digits.push(prediction.digit.map_or(NOT_A_DIGIT, |d| d as i64));
        probabilities.extend(prediction.probabilities);
    }
    let rows = digits.len();
    Ok((digits.to_pyarray(py), probabilities.to_pyarray(py).reshape([rows, 10])?))
}

#[pymethods]
impl Model {
    /// Loads a model file: safetensors (digitnn's, or any with the seed CNN's tensors) or a
    /// PyTorch `.pt` state_dict, recognised by content. Hostile or corrupt files raise
    /// `ValueError` without being run.
    #[staticmethod]
    #[pyo3(signature = (path, *, isa=None, conv=None, precision=None))]
    fn load(
        py: Python,
        path: PathBuf,
        isa: Option<&str>,
        conv: Option<&str>,
        precision: Option<&str>,
    ) -> PyResult<Model> {
        let engine = engine(py, isa, conv, precision)?;
        let (network, info) = py.detach(|| model::load_with(&path, engine)).map_err(error)?;
        Model::new(network, info.test_accuracy)
    }

    /// A model built into digitnn: `"reader"` (the default: the `reader` preset, `best`'s network
    /// half as wide again with a "not a digit" output, what `digitnn predict` uses) or
    /// `"numbers"` (the number reader `digitnn read` uses: the same recipe at `best`'s width,
    /// trained on pieces of numbers besides).
    #[staticmethod]
    #[pyo3(signature = (name="reader", *, isa=None, conv=None, precision=None))]
    fn builtin(
        py: Python,
        name: &str,
        isa: Option<&str>,
        conv: Option<&str>,
        precision: Option<&str>,
    ) -> PyResult<Model> {
        let engine = engine(py, isa, conv, precision)?;
        let (mut network, info) = match name {
            "reader" => model::builtin(),
            "numbers" => model::builtin_numbers(),
            _ => return Err(PyValueError::new_err(format!("no built-in model {name:?}: \"reader\" or \"numbers\""))),
        }
        .map_err(error)?;
        network.set_engine(engine).map_err(error)?;
        Model::new(network, info.test_accuracy)
    }

    /// A model of architecture `arch` (a name: "seed", "fast", "best", "reader"; or a list of layers as
    /// in `train --arch FILE.json`) holding the tensors of `state_dict` (names and shapes as
    /// PyTorch's `state_dict()`; every tensor must be there).
    #[staticmethod]
    #[pyo3(signature = (arch, state_dict, *, isa=None, conv=None, precision=None))]
    fn from_state_dict(
        py: Python,
        arch: &Bound<PyAny>,
        state_dict: &Bound<PyDict>,
        isa: Option<&str>,
        conv: Option<&str>,
        precision: Option<&str>,
    ) -> PyResult<Model> {
        let engine = engine(py, isa, conv, precision)?;
        let mut network = Network::with_engine(architecture_arg(arch)?, 0, engine).map_err(error)?;
        let expected = network.tensors().len() + network.state_tensors().len();
        if state_dict.len() != expected {
            return Err(PyValueError::new_err(format!(
                "the state_dict has {} tensors; this architecture has {expected}",
                state_dict.len()
            )));
        }
        let (params, state) = (network.tensors().to_vec(), network.state_tensors().to_vec());
        arrays::copy_tensors(state_dict, &params, network.params_mut())?;
        arrays::copy_tensors(state_dict, &state, network.state_mut())?;
        Model::new(network, None)
    }

    /// Saves the model: `.safetensors`, or `.pt` / `.pth` for PyTorch's `torch.load`; atomically.
    fn save(&self, py: Python, path: PathBuf) -> PyResult<()> {
        py.detach(|| model::save_as(&self.network(), &path, self.test_accuracy)).map_err(error)
    }

    /// The digit in each image and the 10 probabilities: `x` is a numpy array, uint8 (0-255) or
    /// float32 (0-1), light digits on a dark background as in MNIST, shaped (28, 28),
    /// (N, 28, 28) or (N, 1, 28, 28). Returns `(digits, probabilities)`: int64 of shape (N,),
    /// -1 where the image is not a digit, and float32 of shape (N, 10), each digit's probability
    /// if it is one (N = 1 for a single image). `refuse=False` answers a digit for every image.
    ///
    /// `x` may also be one picture as `read` takes it (a path, a PIL image, a grey or colour
    /// array of another size): prepared as `digitnn predict` prepares an image file (N = 1).
    #[pyo3(signature = (x, *, refuse=true))]
    fn predict<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>, refuse: bool) -> PyResult<Predictions<'py>> {
        if is_picture(x)? {
            let picture = picture_arg(x)?;
            let found = self.engine_call(py, || {
                let (pixels, _) = prepare(&picture.decode()?, false, "picture".as_ref())?;
                predict_pixels(&mut self.network(), &[pixels], refuse)
            });
            return predictions(py, found.map_err(error)?.into_iter());
        }
        let (logits, classes) = self.run(py, x)?;
        if !(10..=11).contains(&classes) {
            return Err(PyValueError::new_err(format!("the model has {classes} outputs; a digit model has 10 or 11")));
        }
        predictions(py, classify(&logits, classes, refuse))
    }

    /// How likely each image is not a digit at all (float32 of shape (N,)): the "not a digit"
    /// output's probability for a model that has one (the built-in model does), 1 - the top
    /// digit's probability for a 10-output model. `predict` refuses an image above 0.1 (a
    /// 10-output model above 0.5).
    fn not_digit<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (logits, classes) = self.run(py, x)?;
        if !(10..=11).contains(&classes) {
            return Err(PyValueError::new_err(format!("the model has {classes} outputs; a digit model has 10 or 11")));
        }
        let scores: Vec<f32> = classify(&logits, classes, true).map(|p| p.not_digit).collect();
        Ok(scores.to_pyarray(py))
    }

    /// The raw scores before the softmax, float32 of shape (N, 10), or (N, 11) with "not a
    /// digit" last, for `x` as `predict` takes it.
    fn logits<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (logits, classes) = self.run(py, x)?;
        let rows = logits.len() / classes.max(1);
        logits.to_pyarray(py).reshape([rows, classes])
    }

    /// Reads image files (PNG, JPEG, ...) and prepares them as `digitnn predict` does (dark ink
    /// on light paper or the reverse, cropped, centred, scaled into 20x20 of 28x28), then
    /// predicts: `(digits, probabilities)` as `predict` returns them.
    #[pyo3(signature = (paths, *, refuse=true))]
    fn predict_images<'py>(&self, py: Python<'py>, paths: Vec<PathBuf>, refuse: bool) -> PyResult<Predictions<'py>> {
        let found = self.engine_call(py, || {
            let pixels =
                paths.iter().map(|path| prepare_file(path, false).map(|(p, _)| p)).collect::<Result<Vec<_>, _>>()?;
            predict_pixels(&mut self.network(), &pixels, refuse)
        });
        predictions(py, found.map_err(error)?.into_iter())
    }

    /// The number in a picture: a path, a PIL image, or a numpy array of any size, grey (H, W)
    /// or colour (H, W, 3 or 4), uint8 0-255 or float 0-1, dark ink on light paper or the
    /// reverse. Returns a dict as one line of `digitnn read --json`: `text` (the digits left to
    /// right, lines joined by a newline; "" when none), `confidence`, `digits` (each a dict of
    /// `digit`, `confidence`, `box` [x, y, width, height] in the picture's pixels, `line`),
    /// `skipped` (marks read as not digits) and, when nothing was read, `message`.
    fn read<'py>(&self, py: Python<'py>, picture: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let picture = picture_arg(picture)?;
        let reading = self.engine_call(py, || {
            let picture = picture.decode()?;
            let mut line = self.line.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if line.is_none() {
                *line = Some(LineReader::new(model::builtin_lines()?.0)?);
            }
            read_image(&mut self.network(), line.as_mut(), &picture, &ReadConfig::default())
        });
        let json = serde_json::to_string(&reading.map_err(error)?).map_err(|e| PyValueError::new_err(e.to_string()))?;
        py.import("json")?.call_method1("loads", (json,))
    }

    /// Accuracy on labelled images (`images` as `predict` takes them, `labels` integers 0-9):
    /// a dict with `accuracy`, `correct`, `total`, `refused` (images said not to be digits),
    /// `read_right` (share right and not refused), `confusion` (int64 10x10, `[true][predicted]`),
    /// `precision` and `recall` (per digit), as `digitnn eval` reports them.
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        labels: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let input = self.network().architecture.input;
        let images = Images::from_array(images, input)?;
        let labels = labels_arg(labels)?;
        if labels.len() != images.count() {
            return Err(PyValueError::new_err(format!("{} labels for {} images", labels.len(), images.count())));
        }
        let (view, count) = (images.view(), images.count());
        let report = self.engine_call(py, || {
            evaluate_with(&mut self.network(), &labels, |batch, out| view.fill_indices(count, batch, out))
        });
        let report = report.map_err(error)?;
        let dict = PyDict::new(py);
        dict.set_item("accuracy", report.accuracy)?;
        dict.set_item("correct", report.correct)?;
        dict.set_item("total", report.total)?;
        dict.set_item("refused", report.refused)?;
        dict.set_item("read_right", report.read_right)?;
        let confusion: Vec<i64> = report.confusion.iter().flatten().map(|&n| n as i64).collect();
        let classes = report.confusion.len();
        dict.set_item("confusion", confusion.to_pyarray(py).reshape([classes, classes])?)?;
        dict.set_item("precision", report.precision)?;
        dict.set_item("recall", report.recall)?;
        Ok(dict)
    }

    /// Every tensor under PyTorch's names (`model.0.weight`, ..., BatchNorm's `running_mean`,
    /// `running_var` and `num_batches_tracked`), as new numpy arrays (float32; the batch
    /// counters int64): `torch_model.load_state_dict({k: torch.from_numpy(v) ...})` takes it.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let network = self.network();
        let dict = PyDict::new(py);
        let tensors = network.tensors().iter().map(|t| (t, &network.params()[t.range.clone()]));
        let state = network.state_tensors().iter().map(|t| (t, &network.state()[t.range.clone()]));
        for (tensor, values) in tensors.chain(state) {
            let array = if model::is_batch_counter(&tensor.name) {
                let counts: Vec<i64> = values.iter().map(|&v| v as i64).collect();
                counts.to_pyarray(py).reshape(tensor.shape.clone())?.into_any()
            } else {
                values.to_pyarray(py).reshape(tensor.shape.clone())?.into_any()
            };
            dict.set_item(&tensor.name, array)?;
        }
        Ok(dict)
    }

    /// Runs on other kernels from now on (same names as the command line's flags).
    #[pyo3(signature = (*, isa=None, conv=None, precision=None))]
    fn set_engine(&self, py: Python, isa: Option<&str>, conv: Option<&str>, precision: Option<&str>) -> PyResult<()> {
        let engine = engine(py, isa, conv, precision)?;
        self.network().set_engine(engine).map_err(error)
    }

    /// The layers, as the JSON list `train --arch FILE.json` reads (a str).
    #[getter]
    fn architecture(&self) -> PyResult<String> {
        serde_json::to_string(&self.network().architecture).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The engine it runs on, e.g. "avx512 kernels, auto convolutions, fp32".
    #[getter]
    fn engine(&self) -> String {
        self.network().engine().to_string()
    }

    /// The layers whose products run in bf16 (empty in fp32).
    #[getter]
    fn bf16_layers(&self) -> Vec<String> {
        self.network().bf16_layers()
    }

    #[getter]
    fn parameter_count(&self) -> usize {
        self.network().parameter_count()
    }

    /// The test accuracy recorded in its file or by training (None if unknown).
    #[getter]
    fn test_accuracy(&self) -> Option<f64> {
        self.test_accuracy
    }

    fn __repr__(&self) -> String {
        let network = self.network();
        let accuracy = self.test_accuracy.map(|a| format!(", {:.2}% on its test set", a * 100.0)).unwrap_or_default();
        format!("<digitnn.Model: {} parameters, {}{accuracy}>", network.parameter_count(), network.engine())
    }
}

/// Downloads with Python's own `urllib` (the package leaves out the library's HTTP client),
/// reading one byte past the library's download limit, which the library then enforces.
fn download(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    Python::attach(|py| {
        let request = py.import("urllib.request")?;
        let options = PyDict::new(py);
        options.set_item("timeout", timeout.as_secs_f64())?;
        let response = request.call_method("urlopen", (url,), Some(&options))?;
        let body: Vec<u8> = response.call_method1("read", (digitnn::limits::MAX_DOWNLOAD_BYTES + 1,))?.extract()?;
        response.call_method0("close")?;
        Ok::<_, PyErr>(body)
    })
    .map_err(|e| e.to_string())
}

/// The downloader MNIST's fetching uses, for the tests: the body at `url`, or OSError.
#[pyfunction]
#[pyo3(name = "_download")]
fn download_for_tests(py: Python, url: &str, timeout: f64) -> PyResult<Vec<u8>> {
    let timeout = Duration::from_secs_f64(timeout);
    py.detach(|| download(url, timeout)).map_err(PyOSError::new_err)
}

/// `arch`: a name, or a list of layers (dicts), or its JSON text.
fn architecture_arg(arch: &Bound<PyAny>) -> PyResult<Architecture> {
    if let Ok(name) = arch.cast::<PyString>() {
        let name = name.to_str()?;
        if let Some(named) = Architecture::named(name) {
            return Ok(named);
        }
        if name.trim_start().starts_with(['[', '{']) {
            return Architecture::from_json(name).map_err(error);
        }
        let names = Architecture::NAMES.join(", ");
        return Err(PyValueError::new_err(format!(
            "unknown architecture '{name}' (expected one of: {names}, or a list of layers)"
        )));
    }
    let json = arch.py().import("json")?.call_method1("dumps", (arch,))?;
    Architecture::from_json(json.extract::<&str>()?).map_err(error)
}

/// The training and test sets: MNIST from `$DIGITNN_DATA` or `data/mnist` (fetched and verified
/// if missing, as `digitnn train` does), a directory of IDX files, or four arrays.
fn data_arg(py: Python, data: Option<&Bound<PyAny>>) -> PyResult<Mnist> {
    let dir = |named: Option<PathBuf>| -> PyResult<Mnist> {
        let (path, checksums) = mnist::location(named);
        let no_fetch = std::env::var_os("DIGITNN_NO_FETCH").is_some_and(|v| !v.is_empty());
        let sources = (!no_fetch).then(|| mnist::Sources { download: Some(download), ..mnist::Sources::default() });
        let mut log = |line: &str| eprintln!("{line}");
        py.detach(|| mnist::load_or_fetch(&path, checksums, sources.as_ref(), &mut log)).map_err(error)
    };
    match data {
        None => dir(std::env::var_os("DIGITNN_DATA").filter(|v| !v.is_empty()).map(PathBuf::from)),
        Some(data) => match data.extract::<PathBuf>() {
            Ok(path) => dir(Some(path)),
            Err(_) => {
                let (x_train, y_train, x_test, y_test): (Bound<PyAny>, Bound<PyAny>, Bound<PyAny>, Bound<PyAny>) =
                    data.extract().map_err(|_| {
                        PyTypeError::new_err(
                            "data must be None, a directory, or (x_train, y_train, x_test, y_test) arrays",
                        )
                    })?;
                let train = arrays::dataset(&x_train, &y_train)?;
                let test = arrays::dataset(&x_test, &y_test)?;
                Ok(Mnist { train, test, is_mnist: false, mnist_files: Vec::new() })
            }
        },
    }
}

/// One epoch's figures as a dict with the fields of `digitnn train --json`.
fn epoch_dict<'py>(py: Python<'py>, stats: &EpochStats) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(stats).map_err(|e| PyValueError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (json,))
}

/// Trains a model as `digitnn train` does and returns `(model, history)`, history being one dict
/// per epoch (`epoch`, `train_loss`, `last_batch_loss`, `test_accuracy`, `seconds`,
/// `images_per_sec`). `data`: None for MNIST (fetched and verified into `$DIGITNN_DATA` or
/// `data/mnist` if missing), a directory of IDX files, or `(x_train, y_train, x_test, y_test)`
/// arrays (images uint8, or float32 0-1 rounded to 1/255). `preset` is a named recipe that
/// the other arguments override; `on_epoch(stats)` is called after each epoch. Ctrl-C (or an
/// exception from `on_epoch`) stops training after the current step and raises.
#[pyfunction]
#[pyo3(signature = (data=None, *, preset="seed", arch=None, epochs=None, batch_size=None, optimizer=None,
    lr=None, momentum=None, weight_decay=None, schedule=None, warmup=None, augment=None, elastic=false,
    label_smoothing=None, ema=None, seed=0, shuffle=true, limit=None, threads=None, isa=None, conv=None,
    precision=None, on_epoch=None))]
#[allow(clippy::too_many_arguments)]
fn train<'py>(
    py: Python<'py>,
    data: Option<&Bound<'py, PyAny>>,
    preset: &str,
    arch: Option<&Bound<'py, PyAny>>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    optimizer: Option<&str>,
    lr: Option<f32>,
    momentum: Option<f32>,
    weight_decay: Option<f32>,
    schedule: Option<&str>,
    warmup: Option<f32>,
    augment: Option<bool>,
    elastic: bool,
    label_smoothing: Option<f32>,
    ema: Option<f32>,
    seed: u64,
    shuffle: bool,
    limit: Option<usize>,
    threads: Option<usize>,
    isa: Option<&str>,
    conv: Option<&str>,
    precision: Option<&str>,
    on_epoch: Option<Py<PyAny>>,
) -> PyResult<(Model, Bound<'py, PyList>)> {
    let preset: Preset = parse(preset)?;
    let architecture = match arch {
        Some(arch) => architecture_arg(arch)?,
        None => preset.architecture(),
    };
    // The preset's recipe with every argument given applied, as `digitnn train`'s flags apply
    // to `--preset`.
    let overrides = Overrides {
        epochs,
        batch_size,
        optimizer: optimizer.map(parse).transpose()?,
        lr,
        momentum,
        weight_decay,
        schedule: schedule.map(parse).transpose()?,
        warmup,
        augment,
        elastic,
        label_smoothing,
        ema,
        seed: Some(seed),
        shuffle: Some(shuffle),
        ..Overrides::default()
    };
    let config = preset.config_with(&overrides);
    config.validate().map_err(error)?;
    let engine = engine(py, isa, conv, precision)?;
    digitnn::thread_count(threads).map_err(error)?;
    let mut data = data_arg(py, data)?;
    if let Some(limit) = limit {
        data.train.truncate(limit);
    }
    // Training runs on a thread of its own with the GIL released, while this thread (Python's
    // main thread, the only one that sees Ctrl-C) checks for signals every 20 ms and asks the
    // training to stop after its current step if one came. `on_epoch` runs on the training
    // thread, taking the GIL for the call; its exceptions stop training too.
    let stop = AtomicBool::new(false);
    let mut stopped_by: Option<PyErr> = None;
    let mut callback_error: Option<PyErr> = None;
    let trained = py.detach(|| {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                digitnn::with_threads(threads, || {
                    let mut network = Network::with_engine(architecture, config.seed, engine)?;
                    let history = train_until(&mut network, &data.train, &data.test, &config, |event| {
                        if let (TrainEvent::Epoch(stats), Some(callback)) = (event, &on_epoch) {
                            let called = Python::attach(|py| callback.call1(py, (epoch_dict(py, stats)?,)).map(drop));
                            if let Err(e) = called {
                                callback_error = Some(e);
                                return ControlFlow::Break(());
                            }
                        }
                        if stop.load(Ordering::Relaxed) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                    })?;
                    Ok::<_, Error>((network, history))
                })
            });
            while !worker.is_finished() {
                std::thread::sleep(Duration::from_millis(20));
                if stopped_by.is_none()
                    && let Err(e) = Python::attach(|py| py.check_signals())
                {
                    stopped_by = Some(e);
                    stop.store(true, Ordering::Relaxed);
                }
            }
            worker.join().expect("the training thread does not panic")
        })
    });
    if let Some(e) = stopped_by.or(callback_error) {
        return Err(e);
    }
    let (network, history) = trained.map_err(error)?.map_err(error)?;
    let test_accuracy = history.last().map(|stats| stats.test_accuracy);
    let epochs = PyList::empty(py);
    for stats in &history {
        epochs.append(epoch_dict(py, stats)?)?;
    }
    Ok((Model::new(network, test_accuracy)?, epochs))
}

/// MNIST as four numpy arrays `(x_train, y_train, x_test, y_test)`: images uint8 (N, 28, 28),
/// labels uint8 (N,); read from `data_dir` (default `$DIGITNN_DATA`, else `data/mnist`) and
/// fetched there and verified first if missing, as the command line does.
#[pyfunction]
#[pyo3(signature = (data_dir=None))]
fn mnist_arrays(py: Python, data_dir: Option<PathBuf>) -> PyResult<Bound<PyAny>> {
    let path = data_dir.map(|p| PathBuf::from(&p).into_pyobject(py)).transpose()?;
    let data = data_arg(py, path.as_ref().map(|p| p.as_any()))?;
    let arrays = |set: &Dataset| -> PyResult<(Bound<PyAny>, Bound<PyAny>)> {
        let images = set.images.to_pyarray(py).reshape([set.len(), set.rows, set.cols])?;
        Ok((images.into_any(), set.labels.to_pyarray(py).into_any()))
    };
    let (x_train, y_train) = arrays(&data.train)?;
    let (x_test, y_test) = arrays(&data.test)?;
    Ok((x_train, y_train, x_test, y_test).into_pyobject(py)?.into_any())
}

#[pymodule]
fn _digitnn(module: &Bound<PyModule>) -> PyResult<()> {
    module.add_class::<Model>()?;
    module.add_function(wrap_pyfunction!(train, module)?)?;
    module.add_function(wrap_pyfunction!(mnist_arrays, module)?)?;
    module.add_function(wrap_pyfunction!(download_for_tests, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The rule `predict` applies, so callers of `not_digit` can apply it themselves.
    module.add("NOT_DIGIT_THRESHOLD", digitnn::predict::NOT_DIGIT_THRESHOLD)?;
    module.add("LOW_CONFIDENCE", digitnn::predict::LOW_CONFIDENCE)?;
    Ok(())
}
