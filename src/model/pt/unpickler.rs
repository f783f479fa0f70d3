//! The safe unpickler of `data.pkl`: a small stack machine for the opcodes a tensor state_dict
//! uses, whose values are shared by reference (`Rc`), bounded in depth and counted against a
//! work budget, so that no pickle can recurse, copy or allocate without bound.

use super::{Fail, MAX_DIMS};
use crate::limits::{MAX_PICKLE_DEPTH, MAX_PICKLE_VALUES};
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub(super) enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildParameter,
    /// `torch.<Dtype>Storage`: the element type's name.
    Storage(Rc<str>),
}

#[derive(Clone, Debug)]
pub(super) struct TensorRef {
    pub(super) storage_key: Rc<str>,
    pub(super) dtype: Rc<str>,
    pub(super) storage_len: usize,
    offset: usize,
    pub(super) size: Vec<usize>,
    stride: Vec<usize>,
}

impl TensorRef {
    pub(super) fn count(&self) -> Option<usize> {
        self.size.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// The values, dense, as f32; `storage` holds `storage_len` float32 or int64 values (by
    /// `dtype`, checked by the caller).
    pub(super) fn materialise(&self, storage: &[u8]) -> Result<Vec<f32>, Fail> {
        let count = self.count().ok_or("size overflows")?;
        if count > 0 {
            let last = self
                .size
                .iter()
                .zip(&self.stride)
                .try_fold(self.offset, |a, (&d, &s)| (d - 1).checked_mul(s).and_then(|x| x.checked_add(a)));
            if last.is_none_or(|last| last >= self.storage_len) {
                return Err("its size and strides reach past the end of its storage".into());
            }
        }
        let long = &*self.dtype == "Long";
        let read = |i: usize| {
            if long {
                i64::from_le_bytes(storage[i * 8..i * 8 + 8].try_into().unwrap()) as f32
            } else {
                f32::from_le_bytes(storage[i * 4..i * 4 + 4].try_into().unwrap())
            }
        };
        let mut values = Vec::with_capacity(count);
        let mut index = vec![0usize; self.size.len()];
        for _ in 0..count {
            let at = self.offset + index.iter().zip(&self.stride).map(|(i, s)| i * s).sum::<usize>();
            values.push(read(at));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.size[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(values)
    }
}

/// A list or tuple, and how deeply it nests. Cloning it copies the items shallowly (they are
/// `Rc`s), which is what `Rc::make_mut` does to a container the memo shares.
#[derive(Clone, Debug, Default)]
pub(super) struct Seq {
    items: Vec<Value>,
    depth: u32,
}

/// A dict as its items in order, and how deeply it nests.
#[derive(Clone, Debug, Default)]
pub(super) struct Map {
    pub(super) items: Vec<(Value, Value)>,
    depth: u32,
}

/// A pickle value. Containers are shared by reference (`Rc`), so the memo and the stack never
/// copy a subtree, and nesting is bounded ([`MAX_PICKLE_DEPTH`]) so building and dropping a
/// value never recurses deeply.
#[derive(Clone, Debug)]
pub(super) enum Value {
    None,
    Bool,
    Int(i64),
    Float,
    Str(Rc<str>),
    Tuple(Rc<Seq>),
    List(Rc<Seq>),
    Dict(Rc<Map>),
    Global(Global),
    Storage { key: Rc<str>, dtype: Rc<str>, len: usize },
    Tensor(Rc<TensorRef>),
    Mark,
}

impl Value {
    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(s) | Value::List(s) => s.depth,
            Value::Dict(m) => m.depth,
            _ => 0,
        }
    }
}

pub(super) struct Unpickler<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    /// Values pushed and container elements stored so far, against [`MAX_PICKLE_VALUES`].
    work: usize,
}

impl<'a> Unpickler<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Unpickler { data, at: 0, stack: Vec::new(), memo: HashMap::new(), work: 0 }
    }

    /// Counts `n` units of work (values or copied elements) against the budget.
    fn charge(&mut self, n: usize) -> Result<(), Fail> {
        self.work = self.work.saturating_add(n);
        if self.work > MAX_PICKLE_VALUES {
            return Err(format!("the pickle builds more than {MAX_PICKLE_VALUES} values; refusing it"));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len()).ok_or("the pickle is truncated")?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Fail> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Fail> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn line(&mut self) -> Result<String, Fail> {
        let rest = &self.data[self.at..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("the pickle is truncated")?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(text)
    }

    fn push(&mut self, v: Value) -> Result<(), Fail> {
        self.charge(1)?;
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, Fail> {
        self.stack.pop().ok_or_else(|| "the pickle pops from an empty stack".into())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, Fail> {
        let mark = self.stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or("the pickle has no MARK")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    /// A tuple of `items`, refused if it would nest too deeply.
    fn tuple(&mut self, items: Vec<Value>) -> Result<Value, Fail> {
        let depth = nested_depth(items.iter().map(Value::depth))?;
        self.charge(items.len())?;
        Ok(Value::Tuple(Rc::new(Seq { items, depth })))
    }

    fn string(&mut self, len: usize) -> Result<Value, Fail> {
        let bytes = self.take(len)?;
        Ok(Value::Str(std::str::from_utf8(bytes).map_err(|_| "a pickle string is not UTF-8")?.into()))
    }

    fn memo_put(&mut self, key: u32) -> Result<(), Fail> {
        let top = self.stack.last().ok_or("the pickle memoizes an empty stack")?.clone();
        self.charge(1)?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), Fail> {
        let v = self.memo.get(&key).cloned().ok_or("the pickle refers to an unknown memo entry")?;
        self.push(v)
    }

    pub(super) fn run(mut self) -> Result<Value, Fail> {
        loop {
            let position = self.at;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.push(Value::Mark)?,
                b'}' => self.push(Value::Dict(Rc::new(Map { items: Vec::new(), depth: 1 })))?,
                b']' => self.push(Value::List(Rc::new(Seq { items: Vec::new(), depth: 1 })))?,
                b')' => self.push(Value::Tuple(Rc::new(Seq { items: Vec::new(), depth: 1 })))?,
                b'N' => self.push(Value::None)?,
                0x88 | 0x89 => self.push(Value::Bool)?,
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as i64;
                    self.push(Value::Int(v))?
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Value::Int(v))?
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    if n > 8 {
                        return Err("an integer in the pickle is too large".into());
                    }
                    let bytes = self.take(n)?;
                    let mut buf = [if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 }; 8];
                    buf[..n].copy_from_slice(bytes);
                    self.push(Value::Int(i64::from_le_bytes(buf)))?
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Value::Float)?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.push(v)?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.push(v)?
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'c' => {
                    let (module, name) = (self.line()?, self.line()?);
                    self.push(Value::Global(global(&module, &name)?))?
                }
                0x93 => {
                    let (Value::Str(name), Value::Str(module)) = (self.pop()?, self.pop()?) else {
                        return Err("STACK_GLOBAL without two strings".into());
                    };
                    self.push(Value::Global(global(&module, &name)?))?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let tuple = self.tuple(items)?;
                    self.push(tuple)?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("the pickle pops from an empty stack".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let tuple = self.tuple(items)?;
                    self.push(tuple)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(persistent_load(pid)?)?
                }
                b'R' => {
                    let (args, callable) = (self.pop()?, self.pop()?);
                    self.push(reduce(callable, args)?)?
                }
                b'b' => {
                    // BUILD: state for the object below it. A state_dict's state is its
                    // `_metadata` (module versions), which a plain tensor dict does not need.
                    self.pop()?;
                    if self.stack.is_empty() {
                        return Err("BUILD on an empty stack".into());
                    }
                }
                b's' => {
                    let (value, key) = (self.pop()?, self.pop()?);
                    self.dict_insert(vec![key, value])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.dict_insert(items)?
                }
                b'a' => {
                    let value = self.pop()?;
                    self.list_extend(vec![value])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.list_extend(items)?
                }
                _ => return Err(format!("unsupported pickle opcode 0x{op:02x} at byte {position}")),
            }
        }
    }

    /// Adds key-value pairs to the dict on top of the stack. A dict shared with the memo is
    /// copied first (its elements are shared, and the copy is charged to the budget).
    fn dict_insert(&mut self, items: Vec<Value>) -> Result<(), Fail> {
        if !items.len().is_multiple_of(2) {
            return Err("a pickle dict has a key without a value".into());
        }
        let depth = nested_depth(items.iter().map(Value::depth))?;
        let copied = match self.stack.last() {
            Some(Value::Dict(dict)) => {
                if Rc::strong_count(dict) > 1 {
                    dict.items.len()
                } else {
                    0
                }
            }
            _ => return Err("the pickle sets items on something that is not a dict".into()),
        };
        self.charge(copied + items.len())?;
        let Some(Value::Dict(dict)) = self.stack.last_mut() else { unreachable!("checked above") };
        let dict = Rc::make_mut(dict);
        dict.depth = dict.depth.max(depth);
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            dict.items.push((k, v));
        }
        Ok(())
    }

    /// Appends to the list on top of the stack (copied first if the memo shares it).
    fn list_extend(&mut self, items: Vec<Value>) -> Result<(), Fail> {
        let depth = nested_depth(items.iter().map(Value::depth))?;
        let copied = match self.stack.last() {
            Some(Value::List(list)) => {
                if Rc::strong_count(list) > 1 {
                    list.items.len()
                } else {
                    0
                }
            }
            _ => return Err("the pickle appends to something that is not a list".into()),
        };
        self.charge(copied + items.len())?;
        let Some(Value::List(list)) = self.stack.last_mut() else { unreachable!("checked above") };
        let list = Rc::make_mut(list);
        list.depth = list.depth.max(depth);
        list.items.extend(items);
        Ok(())
    }
}

/// The depth of a container holding values of these depths, refused past [`MAX_PICKLE_DEPTH`].
fn nested_depth(depths: impl Iterator<Item = u32>) -> Result<u32, Fail> {
    let depth = depths.max().unwrap_or(0) + 1;
    if depth > MAX_PICKLE_DEPTH {
        return Err(format!("the pickle nests deeper than {MAX_PICKLE_DEPTH} levels; refusing it"));
    }
    Ok(depth)
}

/// The only globals a tensor state_dict needs; anything else is refused by name.
fn global(module: &str, name: &str) -> Result<Global, Fail> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
        ("torch", storage) if storage.ends_with("Storage") && storage.len() < 32 => {
            Ok(Global::Storage(storage.trim_end_matches("Storage").into()))
        }
        _ => Err(format!("refusing to load: the pickle names `{module}.{name}`, which a state_dict never needs")),
    }
}

fn persistent_load(pid: Value) -> Result<Value, Fail> {
    let Value::Tuple(items) = pid else { return Err("a persistent id is not a tuple".into()) };
    match items.items.as_slice() {
        [Value::Str(kind), Value::Global(Global::Storage(dtype)), Value::Str(key), _location, Value::Int(len)]
            if &**kind == "storage" && *len >= 0 =>
        {
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || key.is_empty() {
                return Err(format!("storage key {key:?} is not a plain name"));
            }
            Ok(Value::Storage { key: key.clone(), dtype: dtype.clone(), len: *len as usize })
        }
        _ => Err("unsupported persistent id (expected a tensor storage)".into()),
    }
}

fn as_dims(v: &Value) -> Result<Vec<usize>, Fail> {
    let Value::Tuple(items) = v else { return Err("tensor size or stride is not a tuple".into()) };
    if items.items.len() > MAX_DIMS {
        return Err("tensor has too many dimensions".into());
    }
    items
        .items
        .iter()
        .map(|i| match i {
            Value::Int(n) if *n >= 0 => Ok(*n as usize),
            _ => Err("tensor size or stride is not a non-negative integer".into()),
        })
        .collect()
}

fn reduce(callable: Value, args: Value) -> Result<Value, Fail> {
    let Value::Tuple(args) = args else { return Err("REDUCE arguments are not a tuple".into()) };
    match callable {
        Value::Global(Global::OrderedDict) if args.items.is_empty() => {
            Ok(Value::Dict(Rc::new(Map { items: Vec::new(), depth: 1 })))
        }
        Value::Global(Global::RebuildTensor) => match args.items.as_slice() {
            [Value::Storage { key, dtype, len }, Value::Int(offset), size, stride, ..] if *offset >= 0 => {
                let (size, stride) = (as_dims(size)?, as_dims(stride)?);
                if size.len() != stride.len() {
                    return Err("tensor size and stride differ in length".into());
                }
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage_key: key.clone(),
                    dtype: dtype.clone(),
                    storage_len: *len,
                    offset: *offset as usize,
                    size,
                    stride,
                })))
            }
            _ => Err("unexpected arguments to _rebuild_tensor_v2".into()),
        },
        Value::Global(Global::RebuildParameter) => match args.items.first() {
            Some(tensor @ Value::Tensor(_)) => Ok(tensor.clone()),
            _ => Err("unexpected arguments to _rebuild_parameter".into()),
        },
        other => Err(format!("the pickle calls {}, which a state_dict never needs", describe(&other))),
    }
}

/// A short name for a value in messages (never the whole, possibly huge, value).
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Global(_) => "a global with these arguments",
        Value::Tuple(_) | Value::List(_) | Value::Dict(_) => "a container",
        Value::Str(_) => "a string",
        _ => "a value that is not a function",
    }
}
