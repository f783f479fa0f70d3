//! Folding a BatchNorm into the convolution before it, for inference and export. With
//! `s = bn.weight / sqrt(bn.running_var + bn.eps)`, per output channel o:
//!
//! ```text
//! bn(conv(x)) = conv'(x),   conv'.weight[o] = conv.weight[o] * s[o]
//!                           conv'.bias[o]   = (conv.bias[o] - bn.running_mean[o]) * s[o] + bn.bias[o]
//! ```
//!
//! (PyTorch's `torch.nn.utils.fusion.fuse_conv_bn_eval` computes the same.) The folded network
//! has the same layers without those BatchNorms, so inference makes one pass fewer over memory
//! per BatchNorm; a BatchNorm after anything else stays and runs its inference pass.

use super::{Architecture, LayerSpec, Network};
use std::ops::Range;

/// The network whose parameters and state are folded.
pub(super) struct Source<'a> {
    pub architecture: &'a Architecture,
    pub params: &'a [f32],
    pub state: &'a [f32],
    pub layer_params: &'a [Range<usize>],
    pub layer_state: &'a [Range<usize>],
}

/// Layer `index` is a BatchNorm2d directly after a convolution with its number of channels.
fn folds_into_previous(architecture: &Architecture, index: usize) -> bool {
    let LayerSpec::BatchNorm2d { num_features, .. } = architecture.layers[index] else { return false };
    index > 0
        && matches!(architecture.layers[index - 1], LayerSpec::Conv2d { out_channels, .. } if out_channels == num_features)
}

/// The architecture without the BatchNorms that fold into the convolution before them, or None
/// if there is none.
pub(super) fn folded_architecture(architecture: &Architecture) -> Option<Architecture> {
    let keep: Vec<LayerSpec> = (0..architecture.layers.len())
        .filter(|&i| !folds_into_previous(architecture, i))
        .map(|i| architecture.layers[i].clone())
        .collect();
    (keep.len() < architecture.layers.len()).then_some(Architecture { input: architecture.input, layers: keep })
}

/// Writes the source's parameters and state, folded, into `folded` (a network of
/// `folded_architecture(source.architecture)`).
pub(super) fn fold_into(source: Source, folded: &mut Network) {
    let layers = &source.architecture.layers;
    let mut target = 0;
    for index in 0..layers.len() {
        if folds_into_previous(source.architecture, index) {
            continue;
        }
        let params = &source.params[source.layer_params[index].clone()];
        let to = folded.layer_params[target].clone();
        folded.params_mut()[to.clone()].copy_from_slice(params);
        let state_to = folded.layer_state[target].clone();
        folded.state_mut()[state_to].copy_from_slice(&source.state[source.layer_state[index].clone()]);
        if index + 1 < layers.len() && folds_into_previous(source.architecture, index + 1) {
            let LayerSpec::BatchNorm2d { eps, .. } = layers[index + 1] else { unreachable!("checked") };
            let bn_params = &source.params[source.layer_params[index + 1].clone()];
            let bn_state = &source.state[source.layer_state[index + 1].clone()];
            fold_batch_norm(&mut folded.params_mut()[to], bn_params, bn_state, eps);
        }
        target += 1;
    }
}

/// Folds one BatchNorm (`bn_params` = weight, bias; `bn_state` = running mean, running
/// variance, batches tracked) into a convolution's `[weight (out-major), bias]`.
fn fold_batch_norm(conv: &mut [f32], bn_params: &[f32], bn_state: &[f32], eps: f32) {
    let channels = bn_params.len() / 2;
    let (bn_weight, bn_bias) = bn_params.split_at(channels);
    let (mean, rest) = bn_state.split_at(channels);
    let var = &rest[..channels];
    let (weight, bias) = conv.split_at_mut(conv.len() - channels);
    let per_channel = weight.len() / channels;
    for o in 0..channels {
        let s = bn_weight[o] / (var[o] + eps).sqrt();
        for w in &mut weight[o * per_channel..(o + 1) * per_channel] {
            *w *= s;
        }
        bias[o] = (bias[o] - mean[o]) * s + bn_bias[o];
    }
}
