//! PyTorch `.pt` state_dicts (`torch.save(model.state_dict(), path)`): a zip archive holding
//! `<prefix>/data.pkl`, a pickle, and the raw tensor storages under `<prefix>/data/<key>`.
//!
//! The reader is a safe unpickler: it interprets only the opcodes a tensor state_dict uses and
//! knows only the globals that build one (`collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter` and the storage types).
//! Any other global is refused by name; nothing named by the file is ever imported or called.
//! Sizes are checked before anything is allocated, so a hostile file cannot ask for unbounded
//! memory. The writer produces files that `torch.load(path, weights_only=True)` accepts.
//!
//! This file reads the archive and writes it; `unpickler.rs` interprets the pickle.

mod unpickler;

use crate::limits::{MAX_PARAMETERS, MAX_PICKLE_BYTES};
use crate::model::is_batch_counter;
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use unpickler::{TensorRef, Unpickler, Value};

/// A tensor from a state_dict: its shape and values, dense in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

const MAX_DIMS: usize = 8;

type Fail = String;

/// A `.pt` state_dict whose pickle has been read: the tensors' names, element types and shapes
/// are known, their storages not yet read. A caller checks the names and shapes first (against
/// an architecture), so a file that does not fit is refused before any storage is decompressed.
pub struct StateDict<'a> {
    archive: zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
    prefix: String,
    entries: Vec<(String, TensorRef)>,
}

impl<'a> StateDict<'a> {
    /// Opens the archive and runs the safe unpickler over `data.pkl`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Fail> {
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a valid zip archive ({e})"))?;
        let pickle_name = archive
            .file_names()
            .filter_map(|n| n.ok())
            .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .map(|n| n.into_owned())
            .ok_or("no data.pkl in the archive: not a torch.save file")?;
        let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
        if let Ok(order) = read_entry(&mut archive, &format!("{prefix}byteorder"), 64)
            && order.trim_ascii() != b"little"
        {
            return Err("big-endian tensor storages are not supported".into());
        }
        let pickle = read_entry(&mut archive, &pickle_name, MAX_PICKLE_BYTES)?;
        let root = Unpickler::new(&pickle).run()?;
        let Value::Dict(items) = root else { return Err("the pickle is not a state_dict (a dict of tensors)".into()) };
        let mut entries = Vec::with_capacity(items.items.len());
        for (key, value) in &items.items {
            let Value::Str(name) = key else { return Err("a state_dict key is not a string".into()) };
            let Value::Tensor(tensor) = value else { return Err(format!("entry {name} is not a tensor")) };
            entries.push((name.to_string(), TensorRef::clone(tensor)));
        }
        Ok(StateDict { archive, prefix, entries })
    }

    /// Each tensor's name, element type (safetensors' names: `F32` for torch.float32, `I64`
    /// for torch.int64, else the storage's name) and shape, in the file's order.
    pub fn layout(&self) -> impl Iterator<Item = (&str, &str, &[usize])> {
        self.entries.iter().map(|(name, t)| {
            let dtype = match &*t.dtype {
                "Float" => "F32",
                "Long" => "I64",
                other => other,
            };
            (name.as_str(), dtype, t.size.as_slice())
        })
    }

    /// Reads every tensor's values. The total is budgeted before anything is decompressed: at
    /// most [`MAX_PARAMETERS`] values, and storages of at most twice the tensors' bytes (a
    /// state_dict's storages are the tensors themselves).
    pub fn read_tensors(mut self) -> Result<Vec<(String, NamedTensor)>, Fail> {
        let mut values_total = 0usize;
        let mut storage_bytes: HashMap<&str, usize> = HashMap::new();
        for (name, tensor) in &self.entries {
            let Some(element) = element_bytes(&tensor.dtype) else {
                return Err(format!(
                    "tensor {name} is {}Storage; only float32 and int64 tensors are supported",
                    tensor.dtype
                ));
            };
            let count = tensor.count().ok_or_else(|| format!("tensor {name}: its size overflows"))?;
            values_total = values_total.saturating_add(count);
            let bytes =
                tensor.storage_len.checked_mul(element).ok_or_else(|| format!("tensor {name}: storage too large"))?;
            storage_bytes.insert(&tensor.storage_key, bytes);
        }
        if values_total > MAX_PARAMETERS {
            return Err(format!("the tensors hold {values_total} values, more than the limit of {MAX_PARAMETERS}"));
        }
        let stored: usize = storage_bytes.values().fold(0usize, |a, &b| a.saturating_add(b));
        if stored > values_total.saturating_mul(8).saturating_add(1 << 16) {
            return Err(format!(
                "the storages declare {stored} bytes for {values_total} values; refusing to read that much"
            ));
        }
        let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
        let mut tensors = Vec::with_capacity(self.entries.len());
        for (name, tensor) in std::mem::take(&mut self.entries) {
            if !storages.contains_key(&*tensor.storage_key) {
                let entry = format!("{}data/{}", self.prefix, tensor.storage_key);
                let element = element_bytes(&tensor.dtype).expect("checked above");
                let data = read_storage(&mut self.archive, &entry, tensor.storage_len * element)?;
                storages.insert(tensor.storage_key.to_string(), data);
            }
            let values =
                tensor.materialise(&storages[&*tensor.storage_key]).map_err(|e| format!("tensor {name}: {e}"))?;
            tensors.push((name, NamedTensor { shape: tensor.size.clone(), values }));
        }
        Ok(tensors)
    }
}

/// Bytes per element of the storage types a state_dict of digitnn's layers holds (int64: the
/// BatchNorm's `num_batches_tracked`).
fn element_bytes(dtype: &str) -> Option<usize> {
    match dtype {
        "Float" => Some(4),
        "Long" => Some(8),
        _ => None,
    }
}

/// Reads every tensor of a `.pt` state_dict (see [`StateDict`] to check shapes first).
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<(String, NamedTensor)>, Fail> {
    StateDict::parse(bytes)?.read_tensors()
}

/// Reads a whole zip entry of at most `limit` bytes, never trusting its declared size: at most
/// `limit + 1` bytes are decompressed, so a zip bomb that lies about its size is caught there.
fn read_entry<R: Read + Seek>(archive: &mut zip::ZipArchive<R>, name: &str, limit: u64) -> Result<Vec<u8>, Fail> {
    let entry = archive.by_name(name).map_err(|_| format!("the archive has no {name}"))?;
    if entry.size() > limit {
        return Err(format!("{name} is {} bytes, more than the limit of {limit}", entry.size()));
    }
    let declared = entry.size();
    let mut data = Vec::with_capacity(declared as usize);
    entry.take(limit + 1).read_to_end(&mut data).map_err(|e| format!("cannot read {name}: {e}"))?;
    if data.len() as u64 != declared {
        return Err(format!("{name}: content does not match its declared size"));
    }
    Ok(data)
}

/// Reads the first `needed` bytes of a storage entry (decompressing no more than that).
fn read_storage<R: Read + Seek>(archive: &mut zip::ZipArchive<R>, name: &str, needed: usize) -> Result<Vec<u8>, Fail> {
    let entry = archive.by_name(name).map_err(|_| format!("the archive has no {name}"))?;
    if entry.size() < needed as u64 {
        return Err(format!("{name} holds {} bytes, its header says {needed}", entry.size()));
    }
    let mut data = Vec::with_capacity(needed);
    entry.take(needed as u64).read_to_end(&mut data).map_err(|e| format!("cannot read {name}: {e}"))?;
    if data.len() != needed {
        return Err(format!("{name}: content is shorter than its declared size"));
    }
    Ok(data)
}

/// Writes a state_dict that `torch.load(path, weights_only=True)` reads (contiguous; float32,
/// except `num_batches_tracked`, int64 as in PyTorch).
pub fn write_state_dict(tensors: &[(String, NamedTensor)]) -> Result<Vec<u8>, Fail> {
    let mut pickle = Pickle(Vec::new());
    pickle.0.extend_from_slice(&[0x80, 2]);
    pickle.global("collections", "OrderedDict");
    pickle.0.extend_from_slice(b")R(");
    for (key, (name, tensor)) in tensors.iter().enumerate() {
        pickle.string(name);
        pickle.global("torch._utils", "_rebuild_tensor_v2");
        pickle.0.extend_from_slice(b"((");
        pickle.string("storage");
        pickle.global("torch", if is_batch_counter(name) { "LongStorage" } else { "FloatStorage" });
        pickle.string(&key.to_string());
        pickle.string("cpu");
        pickle.int(tensor.values.len());
        pickle.0.extend_from_slice(b"tQ");
        pickle.int(0);
        pickle.tuple(&tensor.shape);
        let mut strides = vec![1usize; tensor.shape.len()];
        for d in (0..tensor.shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * tensor.shape[d + 1];
        }
        pickle.tuple(&strides);
        pickle.0.push(0x89);
        pickle.global("collections", "OrderedDict");
        pickle.0.extend_from_slice(b")RtR");
    }
    pickle.0.extend_from_slice(b"u.");

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    // Stored (uncompressed) and 64-byte aligned, as torch writes them.
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).with_alignment(64);
    let mut add = |name: &str, data: &[u8]| -> Result<(), Fail> {
        zip.start_file(format!("archive/{name}"), options).map_err(|e| e.to_string())?;
        zip.write_all(data).map_err(|e| e.to_string())
    };
    add("data.pkl", &pickle.0)?;
    add("byteorder", b"little")?;
    for (key, (name, tensor)) in tensors.iter().enumerate() {
        let bytes: Vec<u8> = if is_batch_counter(name) {
            tensor.values.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect()
        } else {
            tensor.values.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        add(&format!("data/{key}"), &bytes)?;
    }
    add("version", b"3\n")?;
    Ok(zip.finish().map_err(|e| e.to_string())?.into_inner())
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn string(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: usize) {
        self.0.push(b'J');
        self.0.extend_from_slice(&(v as i32).to_le_bytes());
    }
    fn tuple(&mut self, values: &[usize]) {
        self.0.push(b'(');
        for &v in values {
            self.int(v);
        }
        self.0.push(b't');
    }
}
