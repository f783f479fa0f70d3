//! Model files: safetensors with the original's state_dict names (`model.0.weight`, ...) and
//! metadata (architecture, input scaling, format version, recorded test accuracy).
//!
//! Loading checks everything before trusting it: file size, header, names, dtypes, shapes, and
//! that every value is finite. Saving is atomic: a temporary file in the same directory, synced,
//! then renamed over the target, so an interrupted save leaves the previous model intact.

use super::{Architecture, Network};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
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
    let bytes = to_bytes(network, test_accuracy)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io = |e| Error::io(path, e);
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
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

/// Parses safetensors bytes (`path` is only used in messages).
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(Network, ModelInfo)> {
    let fail = |reason: String| model_error(path, reason);
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| fail(format!("not a safetensors model file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if let Some(version) = metadata.get("format_version")
        && version != FORMAT_VERSION
    {
        return Err(fail(format!(
            "model format version {version} is not supported (this build reads {FORMAT_VERSION})"
        )));
    }
    // Files without an architecture (for example a state_dict saved from PyTorch) are taken to be
    // the seed CNN; their names and shapes are still checked below.
    let architecture = match metadata.get("architecture") {
        Some(json) => {
            serde_json::from_str(json).map_err(|e| fail(format!("unreadable architecture in metadata: {e}")))?
        }
        None => Architecture::seed_cnn(),
    };
    let test_accuracy = metadata.get("test_accuracy").and_then(|v| v.parse().ok());
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| fail(format!("corrupt safetensors data ({e})")))?;
    // Every tensor is checked against the architecture before anything is allocated for it, so
    // an architecture that asks for more than the file holds is refused, not allocated.
    let expected = super::parameter_tensors(&architecture).map_err(|e| fail(e.to_string()))?;
    let mut values = Vec::with_capacity(expected.len());
    for t in &expected {
        let view = tensors
            .tensor(&t.name)
            .map_err(|_| fail(format!("tensor {} is missing (is this a model for this network?)", t.name)))?;
        if view.dtype() != Dtype::F32 {
            return Err(fail(format!("tensor {} is {:?}, expected F32", t.name, view.dtype())));
        }
        if view.shape() != t.shape.as_slice() {
            return Err(fail(format!("tensor {} has shape {:?}, expected {:?}", t.name, view.shape(), t.shape)));
        }
        values.push(view);
    }
    let mut names: Vec<String> = tensors.names().into_iter().map(|s| s.to_string()).collect();
    names.retain(|n| !expected.iter().any(|t| t.name == *n));
    if let Some(extra) = names.first() {
        return Err(fail(format!("unexpected tensor {extra} (is this a model for this network?)")));
    }
    let mut network = Network::new(architecture.clone(), 0).map_err(|e| fail(e.to_string()))?;
    for (t, view) in expected.iter().zip(values) {
        let params = &mut network.params_mut()[t.range.clone()];
        for (v, chunk) in params.iter_mut().zip(view.data().chunks_exact(4)) {
            *v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        if let Some(bad) = params.iter().find(|v| !v.is_finite()) {
            return Err(fail(format!("tensor {} holds a non-finite value ({bad})", t.name)));
        }
    }
    Ok((network, ModelInfo { architecture, test_accuracy }))
}

fn model_error(path: &Path, reason: String) -> Error {
    Error::Model { path: path.to_path_buf(), reason }
}
