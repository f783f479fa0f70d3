//! Model files: safetensors (or PyTorch `.pt` state_dicts, see `pt`) with the original's state_dict names (`model.0.weight`, ...) and
//! metadata (architecture, input scaling, format version, recorded test accuracy).
//!
//! Loading checks everything before trusting it: file size, header, names, dtypes, shapes, and
//! that every value is finite. Saving is atomic: a temporary file in the same directory, synced,
//! then renamed over the target, so an interrupted save leaves the previous model intact.

use super::{Architecture, Network};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// The format version this build writes and reads.
const FORMAT_VERSION: &str = "1";
/// No model this tool makes comes near this; larger files are refused before being read.
const MAX_MODEL_BYTES: u64 = 1 << 30;

/// What a model file says about itself besides its tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub architecture: Architecture,
    /// Test-set accuracy recorded when the model was saved, if any.
    pub test_accuracy: Option<f64>,
}

/// Saves the network's parameters and metadata to `path`, atomically.
pub fn save(network: &Network, path: &Path, test_accuracy: Option<f64>) -> Result<()> {
    write_atomic(path, &to_bytes(network, test_accuracy)?)
}

/// The safetensors bytes for a network.
pub fn to_bytes(network: &Network, test_accuracy: Option<f64>) -> Result<Vec<u8>> {
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
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = network
        .tensors()
        .iter()
        .map(|t| {
            let bytes = network.params()[t.range.clone()].iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.name.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(|e| Error::Invalid(e.to_string()))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Invalid(e.to_string()))
}

/// Loads a model file: the network with its parameters, and what the file says about itself.
pub fn load(path: &Path) -> Result<(Network, ModelInfo)> {
    let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if size > MAX_MODEL_BYTES {
        return Err(model_error(path, format!("file is {size} bytes, larger than any model this tool reads")));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes, path)
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

/// A `.pt` state_dict is the seed CNN's: PyTorch files carry no architecture.
fn from_pt(bytes: &[u8], path: &Path) -> Result<(Network, ModelInfo)> {
    let tensors =
        super::pt::read_state_dict(bytes).map_err(|reason| model_error(path, format!("PyTorch file: {reason}")))?;
    let file_tensors = tensors
        .into_iter()
        .map(|(name, t)| {
            (name, FileTensor { dtype: "F32".into(), shape: t.shape, values: FileValues::Decoded(t.values) })
        })
        .collect();
    let architecture = Architecture::seed_cnn();
    let network = assemble(&architecture, file_tensors, path)?;
    Ok((network, ModelInfo { architecture, test_accuracy: None }))
}

/// Checks a file's tensors against the architecture (names, dtypes, shapes, finite values) and
/// builds the network. Every tensor is checked before the network is allocated, so an
/// architecture that asks for more than the file holds is refused, not allocated.
fn assemble(architecture: &Architecture, mut tensors: Vec<(String, FileTensor)>, path: &Path) -> Result<Network> {
    let fail = |reason: String| model_error(path, reason);
    let expected = super::parameter_tensors(architecture).map_err(|e| fail(e.to_string()))?;
    let mut found = Vec::with_capacity(expected.len());
    for t in &expected {
        let at = tensors
            .iter()
            .position(|(name, _)| *name == t.name)
            .ok_or_else(|| fail(format!("tensor {} is missing (is this a model for this network?)", t.name)))?;
        let (_, tensor) = tensors.swap_remove(at);
        if tensor.dtype != "F32" {
            return Err(fail(format!("tensor {} is {}, expected F32", t.name, tensor.dtype)));
        }
        if tensor.shape != t.shape {
            return Err(fail(format!("tensor {} has shape {:?}, expected {:?}", t.name, tensor.shape, t.shape)));
        }
        found.push(tensor);
    }
    if let Some((extra, _)) = tensors.first() {
        return Err(fail(format!("unexpected tensor {extra} (is this a model for this network?)")));
    }
    let mut network = Network::new(architecture.clone(), 0).map_err(|e| fail(e.to_string()))?;
    for (t, tensor) in expected.iter().zip(found) {
        let params = &mut network.params_mut()[t.range.clone()];
        match tensor.values {
            FileValues::LittleEndian(bytes) => {
                for (v, chunk) in params.iter_mut().zip(bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                }
            }
            FileValues::Decoded(values) => params.copy_from_slice(&values),
        }
        if let Some(bad) = params.iter().find(|v| !v.is_finite()) {
            return Err(fail(format!("tensor {} holds a non-finite value ({bad})", t.name)));
        }
    }
    Ok(network)
}

/// The network's parameters as a PyTorch `.pt` state_dict (loadable with
/// `torch.load(path, weights_only=True)` and `load_state_dict` of the original model).
pub fn to_pt_bytes(network: &Network) -> Result<Vec<u8>> {
    let tensors: Vec<_> = network
        .tensors()
        .iter()
        .map(|t| {
            let values = network.params()[t.range.clone()].to_vec();
            (t.name.clone(), super::pt::NamedTensor { shape: t.shape.clone(), values })
        })
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
