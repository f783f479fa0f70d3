//! Architectures: a network as a list of layers (like `nn.Sequential`), serialisable, with the
//! named ones and the planner's per-layer decisions (fused ReLUs, elided Flattens).

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::nn::{
    BatchNorm2d, BatchNorm2dConfig, Columns, Conv2d, Conv2dConfig, Dropout, Flatten, Layer, Linear, MaxPool2d, Relu,
};
use serde::{Deserialize, Serialize};

/// One layer of an architecture, named and parameterised as in `torch.nn`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        padding: usize,
    },
    Relu,
    MaxPool2d {
        kernel_size: usize,
        stride: usize,
    },
    Flatten,
    /// Each column of the image as one position of a sequence (`nn::Columns`): PyTorch's
    /// `x.reshape(n, c * h, 1, w)`, for a line reader's per-column scores.
    Columns,
    Linear {
        in_features: usize,
        out_features: usize,
    },
    Dropout {
        p: f32,
    },
    /// PyTorch's `nn.BatchNorm2d(num_features, eps, momentum)`; eps and momentum may be left out.
    #[serde(rename = "batch_norm2d")]
    BatchNorm2d {
        num_features: usize,
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default = "default_momentum")]
        momentum: f32,
    },
}

fn default_eps() -> f32 {
    BatchNorm2dConfig::default().eps
}

fn default_momentum() -> f32 {
    BatchNorm2dConfig::default().momentum
}

/// A network: its input (channels, height, width) and its layers in order, like `nn.Sequential`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub input: [usize; 3],
    pub layers: Vec<LayerSpec>,
}

impl Architecture {
    /// The original project's CNN: three 3x3 convolutions with ReLU, then one linear layer.
    pub fn seed_cnn() -> Self {
        let conv = |i, o| LayerSpec::Conv2d { in_channels: i, out_channels: o, kernel_size: 3, stride: 1, padding: 0 };
        Architecture {
            input: [1, 28, 28],
            layers: vec![
                conv(1, 32),
                LayerSpec::Relu,
                conv(32, 64),
                LayerSpec::Relu,
                conv(64, 64),
                LayerSpec::Relu,
                LayerSpec::Flatten,
                LayerSpec::Linear { in_features: 64 * 22 * 22, out_features: 10 },
            ],
        }
    }

    /// The network of the `fast` preset (the fastest published MNIST recipe's): Conv(1->24, 5x5),
    /// max-pool 2, ReLU, Conv(24->32, 3x3), max-pool 2, ReLU, Linear(800->256), ReLU,
    /// Linear(256->10).
    pub fn fast_cnn() -> Self {
        let conv =
            |i, o, k| LayerSpec::Conv2d { in_channels: i, out_channels: o, kernel_size: k, stride: 1, padding: 0 };
        let pool = LayerSpec::MaxPool2d { kernel_size: 2, stride: 2 };
        Architecture {
            input: [1, 28, 28],
            layers: vec![
                conv(1, 24, 5),
                pool.clone(),
                LayerSpec::Relu,
                conv(24, 32, 3),
                pool,
                LayerSpec::Relu,
                LayerSpec::Flatten,
                LayerSpec::Linear { in_features: 800, out_features: 256 },
                LayerSpec::Relu,
                LayerSpec::Linear { in_features: 256, out_features: 10 },
            ],
        }
    }

    /// The network of the `best` preset: three stages of padded 3x3 convolutions with
    /// BatchNorm and ReLU (32, 64 and 128 channels; two convolutions in each of the first two),
    /// each stage ending in a 2x2 max-pool, then dropout and one linear layer (28x28 -> 14 -> 7
    /// -> 3). About 160k parameters and 22 M multiply-adds per image.
    pub fn best_cnn() -> Self {
        Self::batchnorm_cnn(Self::BEST_WIDTHS, 10)
    }

    /// The channels of `best`'s three stages.
    pub const BEST_WIDTHS: [usize; 3] = [32, 64, 128];

    /// `best`'s network half as wide again (48, 96 and 192 channels) with an eleventh output,
    /// "not a digit" (`data::nondigit::NOT_A_DIGIT`): the network of the `reader` preset. About
    /// 330k parameters and 49 M multiply-adds per image. The extra width pays for the second
    /// task: at `best`'s width the reader read fewer digits than `best` did (docs/not_a_digit.md,
    /// variant 8).
    pub fn reader_cnn() -> Self {
        Self::batchnorm_cnn([48, 96, 192], crate::data::nondigit::CLASSES)
    }

    /// `best`'s shape with `widths` channels in its three stages and `outputs` scores.
    pub fn batchnorm_cnn(widths: [usize; 3], outputs: usize) -> Self {
        let mut layers = Vec::new();
        let mut stage = |convs: &[(usize, usize)]| {
            for &(i, o) in convs {
                layers.push(LayerSpec::Conv2d {
                    in_channels: i,
                    out_channels: o,
                    kernel_size: 3,
                    stride: 1,
                    padding: 1,
                });
                layers.push(LayerSpec::BatchNorm2d {
                    num_features: o,
                    eps: default_eps(),
                    momentum: default_momentum(),
                });
                layers.push(LayerSpec::Relu);
            }
            layers.push(LayerSpec::MaxPool2d { kernel_size: 2, stride: 2 });
        };
        let [a, b, c] = widths;
        stage(&[(1, a), (a, a)]);
        stage(&[(a, b), (b, b)]);
        stage(&[(b, c)]);
        // Dropout before the Flatten (it is elementwise) so the Linear reads the pooled images
        // directly and the Flatten costs nothing.
        layers.extend([
            LayerSpec::Dropout { p: 0.25 },
            LayerSpec::Flatten,
            LayerSpec::Linear { in_features: c * 3 * 3, out_features: outputs },
        ]);
        Architecture { input: [1, 28, 28], layers }
    }

    /// The line reader's network (`read::line`) for strips `width` columns wide: padded 3x3
    /// convolutions with BatchNorm and ReLU (32 channels, max-pool 2, 48, max-pool 2, 64, 64) to
    /// 8 rows of 64 channels every 4 columns, each such column stacked into 512 values
    /// (`columns`), then a 1x1 convolution (a linear layer per column: 512 -> 128) and, with a
    /// `head_kernel` of k > 1, two kxk ones over that one-row sequence of columns (128 -> 128 ->
    /// 11: with k = 3 each step's scores see 42 strip columns, about two digits, where the
    /// convolutions before see 26, about one); with 1, one 1x1 convolution 128 -> 11. Then
    /// `flatten`: 11 scores (the digits, then the CTC blank) for every 4 columns of the strip,
    /// class-major. Its parameters do not depend on `width`, so one model reads any width. (A kxk
    /// kernel on one row spends k - 1 of its rows on padding: PyTorch's Conv2d, ONNX and every
    /// file format take it as it is, where a 1xk kernel would need a new layer everywhere.)
    pub fn line_cnn(width: usize, head_kernel: usize) -> Self {
        let conv = |i, o, k: usize| LayerSpec::Conv2d {
            in_channels: i,
            out_channels: o,
            kernel_size: k,
            stride: 1,
            padding: k / 2,
        };
        let bn = |c| LayerSpec::BatchNorm2d { num_features: c, eps: default_eps(), momentum: default_momentum() };
        let pool = LayerSpec::MaxPool2d { kernel_size: 2, stride: 2 };
        let mut layers = Vec::new();
        for (i, o, pooled) in [(1, 32, true), (32, 48, true), (48, 64, false), (64, 64, false)] {
            layers.extend([conv(i, o, 3), bn(o), LayerSpec::Relu]);
            if pooled {
                layers.push(pool.clone());
            }
        }
        let rows = crate::data::strip::STRIP_HEIGHT / 4;
        layers.extend([LayerSpec::Columns, conv(64 * rows, 128, 1), LayerSpec::Relu]);
        if head_kernel > 1 {
            layers.extend([conv(128, 128, head_kernel), LayerSpec::Relu]);
        }
        layers.extend([conv(128, crate::read::line::SYMBOLS, head_kernel), LayerSpec::Flatten]);
        Architecture { input: [1, crate::data::strip::STRIP_HEIGHT, width], layers }
    }

    /// The named architectures, by name.
    pub const NAMES: [&'static str; 4] = ["seed", "fast", "best", "reader"];

    /// A named architecture (see [`Architecture::NAMES`]).
    pub fn named(name: &str) -> Option<Self> {
        match name.trim() {
            "seed" => Some(Self::seed_cnn()),
            "fast" => Some(Self::fast_cnn()),
            "best" => Some(Self::best_cnn()),
            "reader" => Some(Self::reader_cnn()),
            _ => None,
        }
    }

    /// An architecture from JSON: an object `{"input": [c, h, w], "layers": [...]}`, or just the
    /// list of layers (like `nn.Sequential`) for 1x28x28 images. Each layer is an object such as
    /// `{"type": "conv2d", "in_channels": 1, "out_channels": 32, "kernel_size": 3, "stride": 1,
    /// "padding": 0}`, `{"type": "relu"}`, `{"type": "max_pool2d", "kernel_size": 2, "stride": 2}`,
    /// `{"type": "flatten"}`, `{"type": "linear", "in_features": 800, "out_features": 10}`,
    /// `{"type": "dropout", "p": 0.5}`, `{"type": "batch_norm2d", "num_features": 32}`. The result is checked by building its plan.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Invalid(format!("not JSON: {e}")))?;
        let architecture = if value.is_array() {
            let layers =
                serde_json::from_value(value).map_err(|e| Error::Invalid(format!("not a list of layers: {e}")))?;
            Architecture { input: [1, 28, 28], layers }
        } else {
            serde_json::from_value(value).map_err(|e| Error::Invalid(format!("not an architecture: {e}")))?
        };
        super::plan::Plan::new(&architecture, 0, EngineConfig::default())?;
        Ok(architecture)
    }

    /// Builds layer `index` with what the planner decided for it: the engine, whether it
    /// applies the ReLU after it (`fused_relu`), and for a Linear after an elided Flatten, the
    /// `[h, w, c]` images it reads directly.
    pub(super) fn build_layer(
        &self,
        index: usize,
        seed: u64,
        engine: EngineConfig,
        reads_images: Option<&[usize]>,
    ) -> Result<Box<dyn Layer>> {
        let spec = &self.layers[index];
        let fused_relu = self.fuses_relu(index);
        Ok(match *spec {
            LayerSpec::Conv2d { in_channels, out_channels, kernel_size, stride, padding } => {
                if in_channels == 0 || out_channels == 0 || kernel_size == 0 || stride == 0 {
                    return Err(Error::Invalid(format!("invalid convolution {spec:?}")));
                }
                let config = Conv2dConfig { in_channels, out_channels, kernel_size, stride, padding };
                Box::new(Conv2d::new(config, engine).with_fused_relu(fused_relu))
            }
            LayerSpec::Relu => Box::new(Relu),
            LayerSpec::MaxPool2d { kernel_size, stride } => {
                Box::new(MaxPool2d::new(kernel_size, stride, engine.isa).with_fused_relu(fused_relu))
            }
            LayerSpec::Flatten => Box::new(Flatten),
            LayerSpec::Columns => Box::new(Columns),
            LayerSpec::Linear { in_features, out_features } => {
                if in_features == 0 || out_features == 0 {
                    return Err(Error::Invalid(format!("invalid linear layer {spec:?}")));
                }
                let linear = Linear::new(in_features, out_features, engine).with_fused_relu(fused_relu);
                match reads_images {
                    Some(&[h, w, c]) if h * w * c == in_features => Box::new(linear.reading_images(h * w, c)),
                    _ => Box::new(linear),
                }
            }
            LayerSpec::Dropout { p } => {
                if !(0.0..1.0).contains(&p) {
                    return Err(Error::Invalid(format!("dropout probability {p} is not in [0, 1)")));
                }
                Box::new(Dropout::new(p, seed))
            }
            LayerSpec::BatchNorm2d { num_features, eps, momentum } => {
                if num_features == 0 || !(eps > 0.0 && eps.is_finite()) || !(0.0..=1.0).contains(&momentum) {
                    return Err(Error::Invalid(format!("invalid batch normalisation {spec:?}")));
                }
                let config = BatchNorm2dConfig { num_features, eps, momentum };
                Box::new(BatchNorm2d::new(config, engine).with_fused_relu(fused_relu))
            }
        })
    }

    /// Layer `index` applies the ReLU that follows it in its own epilogue (convolutions, linear
    /// layers and batch normalisations do), so the ReLU costs no pass over memory.
    pub(super) fn fuses_relu(&self, index: usize) -> bool {
        matches!(
            self.layers[index],
            LayerSpec::Conv2d { .. }
                | LayerSpec::Linear { .. }
                | LayerSpec::BatchNorm2d { .. }
                | LayerSpec::MaxPool2d { .. }
        ) && self.layers.get(index + 1) == Some(&LayerSpec::Relu)
    }

    /// Layer `index` is a Flatten left out because the Linear after it reads NHWC images.
    pub(super) fn elides_flatten(&self, index: usize) -> bool {
        self.layers[index] == LayerSpec::Flatten && matches!(self.layers.get(index + 1), Some(LayerSpec::Linear { .. }))
    }
}
