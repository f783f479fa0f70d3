//! ONNX export: the network as an ONNX model (opset 13) with input `image` [N, 1, 28, 28] float
//! and output `logits` [N, classes], the batch dimension left dynamic.
//!
//! Only the few protobuf messages an exported CNN needs are declared here (with prost), using
//! the field numbers of onnx.proto.

use super::{LayerSpec, Network};
use prost::Message;

const OPSET: i64 = 13;
/// IR version 7 goes with opset 13.
const IR_VERSION: i64 = 7;
const FLOAT: i32 = 1;
/// ONNX's TensorProto data type for 64-bit integers (a Reshape's shape).
const INT64: i32 = 7;
const ATTRIBUTE_FLOAT: i32 = 1;
const ATTRIBUTE_INT: i32 = 2;
const ATTRIBUTE_INTS: i32 = 7;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(float, tag = "2")]
    f: f32,
    #[prost(int64, tag = "3")]
    i: i64,
    #[prost(int64, repeated, packed = "false", tag = "8")]
    ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    value: Option<DimensionValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum DimensionValue {
    #[prost(int64, tag = "1")]
    Value(i64),
    #[prost(string, tag = "2")]
    Param(String),
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: values.iter().map(|&v| v as i64).collect(),
        r#type: ATTRIBUTE_INTS,
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: value, r#type: ATTRIBUTE_FLOAT, ..Default::default() }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: value, r#type: ATTRIBUTE_INT, ..Default::default() }
}

fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => DimensionValue::Value(*v as i64),
                None => DimensionValue::Param("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto { elem_type: FLOAT, shape: Some(TensorShapeProto { dim }) }),
        }),
    }
}

/// The network as the bytes of an ONNX model file: the network inference runs, with each
/// BatchNorm after a convolution folded into it (see [`Network::for_inference`]).
pub fn export(network: &mut Network) -> Vec<u8> {
    let network = network.for_inference();
    let [c, h, w] = network.architecture.input;
    let mut nodes = Vec::new();
    let tensor = |t: &super::ParamTensor, values: &[f32]| TensorProto {
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: FLOAT,
        name: t.name.clone(),
        raw_data: values[t.range.clone()].iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    let mut initializer: Vec<TensorProto> = network.tensors().iter().map(|t| tensor(t, network.params())).collect();
    // ONNX's BatchNormalization takes the running statistics, not the batch count.
    initializer.extend(
        network
            .state_tensors()
            .iter()
            .filter(|t| !t.name.ends_with("num_batches_tracked"))
            .map(|t| tensor(t, network.state())),
    );
    let last = network.architecture.layers.len();
    let mut current = "image".to_string();
    for (index, spec) in network.architecture.layers.iter().enumerate() {
        let output = if index + 1 == last { "logits".to_string() } else { format!("layer{index}") };
        let param = |name: &str| format!("model.{index}.{name}");
        let (op_type, inputs, attribute) = match *spec {
            LayerSpec::Conv2d { kernel_size, stride, padding, .. } => (
                "Conv",
                vec![current.clone(), param("weight"), param("bias")],
                vec![
                    ints("kernel_shape", &[kernel_size, kernel_size]),
                    ints("strides", &[stride, stride]),
                    ints("pads", &[padding; 4]),
                ],
            ),
            LayerSpec::Relu => ("Relu", vec![current.clone()], vec![]),
            LayerSpec::MaxPool2d { kernel_size, stride } => (
                "MaxPool",
                vec![current.clone()],
                vec![ints("kernel_shape", &[kernel_size, kernel_size]), ints("strides", &[stride, stride])],
            ),
            LayerSpec::Flatten => ("Flatten", vec![current.clone()], vec![int("axis", 1)]),
            LayerSpec::Columns => {
                // [n, c, h, w] -> [n, c * h, 1, w]: 0 keeps an input dimension, -1 takes the rest.
                let shape = format!("columns{index}.shape");
                initializer.push(TensorProto {
                    dims: vec![4],
                    data_type: INT64,
                    name: shape.clone(),
                    raw_data: [0i64, -1, 1, 0].iter().flat_map(|v| v.to_le_bytes()).collect(),
                });
                ("Reshape", vec![current.clone(), shape], vec![])
            }
            LayerSpec::Linear { .. } => {
                ("Gemm", vec![current.clone(), param("weight"), param("bias")], vec![int("transB", 1)])
            }
            // Inference: dropout is the identity.
            LayerSpec::Dropout { .. } => ("Identity", vec![current.clone()], vec![]),
            LayerSpec::BatchNorm2d { eps, .. } => (
                "BatchNormalization",
                ["weight", "bias", "running_mean", "running_var"].iter().fold(vec![current.clone()], |mut v, n| {
                    v.push(param(n));
                    v
                }),
                vec![float("epsilon", eps)],
            ),
        };
        nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: format!("{index}_{}", op_type.to_lowercase()),
            op_type: op_type.into(),
            attribute,
        });
        current = output;
    }
    initializer.sort_by(|a, b| a.name.cmp(&b.name));
    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "digitnn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "digitnn".into(),
            initializer,
            input: vec![value_info("image", &[None, Some(c), Some(h), Some(w)])],
            output: vec![value_info("logits", &[None, Some(network.classes())])],
        }),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
    };
    model.encode_to_vec()
}
