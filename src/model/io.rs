//! Model files: safetensors (or PyTorch `.pt` state_dicts, see `pt`) with the original's state_dict names (`model.0.weight`, ...) and
//! metadata (architecture, input scaling, format version, recorded test accuracy).
//!
//! Loading checks everything before trusting it: file size, header, names, dtypes, shapes, and
//! that every value is finite. Saving is atomic: a temporary file in the same directory, synced,
//! then renamed over the target, so an interrupted save leaves the previous model intact.

use super::{Architecture, Network, ParamTensor};
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::limits::{MAX_MODEL_FILE_BYTES, mib};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The format version this build writes and reads.
const FORMAT_VERSION: &str = "1";

/// What a model file says about itself besides its tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub architecture: Architecture,
    /// Test-set accuracy recorded when the model was saved, if any.
    pub test_accuracy: Option<f64>,
}

/// How a model file stores its values (BatchNorm's batch counter is always int64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// float32: the values exactly.
    #[default]
    F32,
    /// bfloat16, rounded to nearest (ties to even): half the bytes, 8 bits of mantissa. For a
    /// model whose size matters more than its last bits (the browser build embeds the line
    /// reader so); loading widens the values back to float32.
    Bf16,
}

/// Saves the network's parameters and metadata to `path`, atomically.
pub fn save(network: &Network, path: &Path, test_accuracy: Option<f64>) -> Result<()> {
    save_stored(network, path, test_accuracy, Storage::F32)
}

/// [`save`] with the values stored as `storage` says.
pub fn save_stored(network: &Network, path: &Path, test_accuracy: Option<f64>, storage: Storage) -> Result<()> {
    write_atomic(path, &to_bytes_stored(network, test_accuracy, storage)?)
}

/// Saves to `path` in the format its extension names: `.safetensors`, or `.pt` / `.pth` for
/// PyTorch's `torch.load` (which keeps no test accuracy); atomically.
pub fn save_as(network: &Network, path: &Path, test_accuracy: Option<f64>) -> Result<()> {
    let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "pt" | "pth" => write_atomic(path, &to_pt_bytes(network)?),
        "safetensors" => save(network, path, test_accuracy),
        _ => Err(Error::Invalid(format!(
            "{}: choose the format by extension: .safetensors, .pt or .pth",
            path.display()
        ))),
    }
}

/// The safetensors bytes for a network.
pub fn to_bytes(network: &Network, test_accuracy: Option<f64>) -> Result<Vec<u8>> {
    to_bytes_stored(network, test_accuracy, Storage::F32)
}

/// The bfloat16 nearest `value` (ties to even), as its bits. For finite values (model files hold
/// no others).
fn bf16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The safetensors bytes for a network, its values stored as `storage` says.
pub fn to_bytes_stored(network: &Network, test_accuracy: Option<f64>, storage: Storage) -> Result<Vec<u8>> {
    let architecture = serde_json::to_string(&network.architecture).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut metadata = HashMap::from([
        ("format".to_string(), "digitnn".to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("architecture".to_string(), architecture),
        ("input_scaling".to_string(), "pixel/255, no normalisation; light digit on dark background".to_string()),
        ("parameters".to_string(), network.parameter_count().to_string()),
        ("created_by".to_string(), format!("digitnn {}", env!("CARGO_PKG_VERSION"))),
    ]);
    if let Some(accuracy) = test_accuracy {
        metadata.insert("test_accuracy".to_string(), format!("{accuracy:.6}"));
    }
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = named_values(network)
        .map(|(t, values)| {
            let (dtype, bytes) = if is_batch_counter(&t.name) {
                (Dtype::I64, values.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect())
            } else if storage == Storage::Bf16 {
                (Dtype::BF16, values.iter().flat_map(|&v| bf16_bits(v).to_le_bytes()).collect())
            } else {
                (Dtype::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect())
            };
            (t.name.clone(), dtype, t.shape.clone(), bytes)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let view = TensorView::new(*dtype, shape.clone(), bytes).map_err(|e| Error::Invalid(e.to_string()))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Invalid(e.to_string()))?;
    canonical_header(bytes)
}

/// Every tensor of the network with its values: the parameters, then the state.
fn named_values(network: &Network) -> impl Iterator<Item = (&ParamTensor, &[f32])> {
    let params = network.tensors().iter().map(|t| (t, &network.params()[t.range.clone()]));
    params.chain(network.state_tensors().iter().map(|t| (t, &network.state()[t.range.clone()])))
}

/// Rewrites a safetensors file's JSON header with its keys sorted. The safetensors crate writes
/// the metadata from a `HashMap`, so two saves of the same model would differ in byte order;
/// sorted, the same model always gives the same bytes (easy to compare and cache).
fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    use std::collections::BTreeMap;
    let invalid = |e: &dyn std::fmt::Display| Error::Invalid(format!("safetensors header: {e}"));
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + len]).map_err(|e| invalid(&e))?;
    let sorted: BTreeMap<&String, serde_json::Value> = header
        .iter()
        .map(|(key, value)| {
            let value = match value.as_object() {
                Some(object) if key == "__metadata__" => {
                    serde_json::to_value(object.iter().collect::<BTreeMap<_, _>>())
                }
                _ => Ok(value.clone()),
            };
            value.map(|v| (key, v))
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| invalid(&e))?;
    let mut text = serde_json::to_vec(&sorted).map_err(|e| invalid(&e))?;
    // Data stays 8-byte aligned, as the format asks: pad the header with spaces.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    Ok(out)
}

/// Loads a model file: the network with its parameters, and what the file says about itself.
/// At most [`MAX_MODEL_FILE_BYTES`] are read, whatever the file claims to be (a device such as
/// `/dev/zero` has no length to check beforehand).
pub fn load(path: &Path) -> Result<(Network, ModelInfo)> {
    let too_large =
        || model_error(path, format!("larger than {} MiB, the limit for a model file", mib(MAX_MODEL_FILE_BYTES)));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
    if metadata.is_dir() {
        return Err(model_error(path, "is a directory, not a model file".into()));
    }
    if metadata.len() > MAX_MODEL_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_MODEL_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_MODEL_FILE_BYTES {
        return Err(too_large());
    }
    from_bytes(&bytes, path)
}

/// [`load`], with the network on `engine` instead of the default one.
pub fn load_with(path: &Path, engine: EngineConfig) -> Result<(Network, ModelInfo)> {
    let (mut network, info) = load(path)?;
    network.set_engine(engine)?;
    Ok((network, info))
}

/// Parses a model file's bytes, safetensors or a PyTorch `.pt` state_dict, recognised by content
/// (`path` is only used in messages).
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(Network, ModelInfo)> {
    if bytes.starts_with(b"PK\x03\x04") { from_pt(bytes, path) } else { from_safetensors(bytes, path) }
}

/// A tensor as a file holds it, before it is checked against the architecture.
struct FileTensor<'a> {
    dtype: String,
    shape: Vec<usize>,
    values: FileValues<'a>,
}

enum FileValues<'a> {
    LittleEndian(&'a [u8]),
    #[cfg_attr(not(feature = "pytorch"), allow(dead_code))]
    Decoded(Vec<f32>),
}

fn from_safetensors(bytes: &[u8], path: &Path) -> Result<(Network, ModelInfo)> {
    let fail = |reason: String| model_error(path, reason);
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| fail(format!("not a safetensors or .pt model file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if let Some(version) = metadata.get("format_version")
        && version != FORMAT_VERSION
    {
        return Err(fail(format!(
            "model format version {version} is not supported (this build reads {FORMAT_VERSION})"
        )));
    }
    // Files without an architecture (for example a state_dict saved from PyTorch) are taken to be
    // the seed CNN; their names and shapes are still checked.
    let architecture = match metadata.get("architecture") {
        Some(json) => {
            serde_json::from_str(json).map_err(|e| fail(format!("unreadable architecture in metadata: {e}")))?
        }
        None => Architecture::seed_cnn(),
    };
    let test_accuracy = metadata.get("test_accuracy").and_then(|v| v.parse().ok());
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| fail(format!("corrupt safetensors data ({e})")))?;
    let file_tensors = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let tensor = FileTensor {
                dtype: format!("{:?}", view.dtype()),
                shape: view.shape().to_vec(),
                values: FileValues::LittleEndian(view.data()),
            };
            (name, tensor)
        })
        .collect();
    let network = assemble(&architecture, file_tensors, path)?;
    Ok((network, ModelInfo { architecture, test_accuracy }))
}

/// A tensor PyTorch keeps as int64 (and so digitnn's files too): BatchNorm's batch counter.
pub fn is_batch_counter(name: &str) -> bool {
    name.ends_with(".num_batches_tracked")
}

/// A `.pt` state_dict carries no architecture: it is taken to be the named architecture whose
/// tensors (names, types, shapes) it holds exactly, the seed CNN's if none. Its layout is
/// checked before any storage is decompressed.
#[cfg(feature = "pytorch")]
fn from_pt(bytes: &[u8], path: &Path) -> Result<(Network, ModelInfo)> {
    let fail = |reason: String| model_error(path, format!("PyTorch file: {reason}"));
    let state_dict = super::pt::StateDict::parse(bytes).map_err(fail)?;
    let matches = |architecture: &Architecture| {
        let expected = expected_tensors(architecture).map_err(|e| fail(e.to_string()))?;
        check_layout(&expected, state_dict.layout()).map_err(fail)
    };
    let architecture = Architecture::NAMES
        .iter()
        .filter_map(|name| Architecture::named(name))
        .find(|architecture| matches(architecture).is_ok())
        .unwrap_or_else(Architecture::seed_cnn);
    // Reports what does not fit, against the seed CNN when nothing did.
    matches(&architecture)?;
    let tensors = state_dict.read_tensors().map_err(fail)?;
    let file_tensors = tensors
        .into_iter()
        .map(|(name, t)| {
            (name, FileTensor { dtype: "F32".into(), shape: t.shape, values: FileValues::Decoded(t.values) })
        })
        .collect();
    let network = assemble(&architecture, file_tensors, path)?;
    Ok((network, ModelInfo { architecture, test_accuracy: None }))
}

/// The tensors a file of this architecture holds: the parameters, then the state.
#[cfg_attr(not(feature = "pytorch"), allow(dead_code))]
fn expected_tensors(architecture: &Architecture) -> Result<Vec<ParamTensor>> {
    let (params, state) = super::file_tensors(architecture)?;
    Ok(params.into_iter().chain(state).collect())
}

/// Checks that a file's tensors (name, dtype, shape) are exactly the architecture's: float32 or
/// bfloat16, except BatchNorm's batch counter (int64 as PyTorch writes it, or float32).
fn check_layout<'a>(
    expected: &[ParamTensor],
    found: impl Iterator<Item = (&'a str, &'a str, &'a [usize])>,
) -> std::result::Result<(), String> {
    let found: HashMap<&str, (&str, &[usize])> = found.map(|(name, dtype, shape)| (name, (dtype, shape))).collect();
    for t in expected {
        let Some(&(dtype, shape)) = found.get(t.name.as_str()) else {
            return Err(format!("tensor {} is missing (is this a model for this network?)", t.name));
        };
        if !(dtype == "F32" || dtype == "BF16" || (dtype == "I64" && is_batch_counter(&t.name))) {
            return Err(format!("tensor {} is {dtype}, expected F32 (or BF16)", t.name));
        }
        if shape != t.shape.as_slice() {
            return Err(format!("tensor {} has shape {shape:?}, expected {:?}", t.name, t.shape));
        }
    }
    if let Some(extra) = found.keys().filter(|name| !expected.iter().any(|t| t.name == **name)).min() {
        return Err(format!("unexpected tensor {extra} (is this a model for this network?)"));
    }
    Ok(())
}

/// Checks a file's tensors against the architecture (names, dtypes, shapes, finite values) and
/// builds the network. Every tensor is checked before the network is allocated, so an
/// architecture that asks for more than the file holds is refused, not allocated.
fn assemble(architecture: &Architecture, tensors: Vec<(String, FileTensor)>, path: &Path) -> Result<Network> {
    let fail = |reason: String| model_error(path, reason);
    let (params, state) = super::file_tensors(architecture).map_err(|e| fail(e.to_string()))?;
    let n_params = params.len();
    let expected: Vec<ParamTensor> = params.into_iter().chain(state).collect();
    check_layout(&expected, tensors.iter().map(|(n, t)| (n.as_str(), t.dtype.as_str(), t.shape.as_slice())))
        .map_err(fail)?;
    let mut by_name: HashMap<String, FileTensor> = tensors.into_iter().collect();
    let mut network = Network::new(architecture.clone(), 0).map_err(|e| fail(e.to_string()))?;
    for (i, t) in expected.iter().enumerate() {
        let tensor = by_name.remove(&t.name).expect("checked by check_layout");
        let values = if i < n_params {
            &mut network.params_mut()[t.range.clone()]
        } else {
            &mut network.state_mut()[t.range.clone()]
        };
        match tensor.values {
            FileValues::LittleEndian(bytes) if tensor.dtype == "I64" => {
                for (v, chunk) in values.iter_mut().zip(bytes.chunks_exact(8)) {
                    *v = i64::from_le_bytes(chunk.try_into().expect("8 bytes")) as f32;
                }
            }
            FileValues::LittleEndian(bytes) if tensor.dtype == "BF16" => {
                for (v, chunk) in values.iter_mut().zip(bytes.chunks_exact(2)) {
                    *v = f32::from_bits((u16::from_le_bytes([chunk[0], chunk[1]]) as u32) << 16);
                }
            }
            FileValues::LittleEndian(bytes) => {
                for (v, chunk) in values.iter_mut().zip(bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                }
            }
            FileValues::Decoded(decoded) => values.copy_from_slice(&decoded),
        }
        check_values(&t.name, values).map_err(fail)?;
    }
    Ok(network)
}

/// Refuses values a tensor named `name` must not hold, wherever they come from (a file, or the
/// Python package's arrays): anything not finite, and a negative running variance
/// (sqrt(running_var + eps) must be real and positive).
pub fn check_values(name: &str, values: &[f32]) -> std::result::Result<(), String> {
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(format!("tensor {name} holds a non-finite value ({bad})"));
    }
    if name.ends_with(".running_var")
        && let Some(bad) = values.iter().find(|&&v| v < 0.0)
    {
        return Err(format!("tensor {name} holds a negative variance ({bad})"));
    }
    Ok(())
}

#[cfg(not(feature = "pytorch"))]
fn from_pt(_bytes: &[u8], path: &Path) -> Result<(Network, ModelInfo)> {
    Err(model_error(path, NO_PYTORCH.into()))
}

#[cfg(not(feature = "pytorch"))]
const NO_PYTORCH: &str = "a PyTorch .pt file: this build reads and writes safetensors only (the `pytorch` feature)";

#[cfg(not(feature = "pytorch"))]
pub fn to_pt_bytes(_network: &Network) -> Result<Vec<u8>> {
    Err(Error::Invalid(NO_PYTORCH.into()))
}

/// The network's parameters as a PyTorch `.pt` state_dict (loadable with
/// `torch.load(path, weights_only=True)` and `load_state_dict` of the original model).
#[cfg(feature = "pytorch")]
pub fn to_pt_bytes(network: &Network) -> Result<Vec<u8>> {
    // A .pt state_dict carries no architecture; this tool recognises the named ones by layout.
    if !Architecture::NAMES.iter().any(|name| Architecture::named(name).as_ref() == Some(&network.architecture)) {
        return Err(Error::Invalid(format!(
            "only the named architectures ({}) can be written as .pt (a PyTorch state_dict carries no architecture); use .safetensors",
            Architecture::NAMES.join(", ")
        )));
    }
    let tensors: Vec<_> = named_values(network)
        .map(|(t, values)| (t.name.clone(), super::pt::NamedTensor { shape: t.shape.clone(), values: values.to_vec() }))
        .collect();
    super::pt::write_state_dict(&tensors).map_err(Error::Invalid)
}

/// Writes bytes to `path` atomically (see [`crate::files::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}

fn model_error(path: &Path, reason: String) -> Error {
    Error::Model { path: path.to_path_buf(), reason }
}
