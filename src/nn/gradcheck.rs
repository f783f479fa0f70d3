//! Test helper: compares a layer's analytic gradients with central finite differences of the
//! scalar loss L = sum(r * y) for a fixed random r.

use super::{Init, Layer, Pass, Tensor};

pub(crate) use crate::kernels::test_values;

/// Distinct values spread evenly over (-1, 1) in shuffled order: no two closer than 2/len and none
/// near 0, so kinks (ReLU at 0, ties in max-pooling) stay further away than the step.
fn separated_values(len: usize, seed: u64) -> Vec<f32> {
    let keys = test_values(len, seed);
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut values = vec![0.0; len];
    for (rank, &i) in order.iter().enumerate() {
        values[i] = -1.0 + 2.0 * (rank as f32 + 0.5) / len as f32;
    }
    values
}

fn loss(layer: &mut dyn Layer, params: &[f32], x: &Tensor, r: &[f32]) -> f64 {
    let mut y = Tensor::default();
    layer.forward(params, &mut initial_state(layer), x, &mut y, Pass::TRAIN);
    y.data.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// The layer's state as PyTorch initialises it (every state tensor starts constant).
fn initial_state(layer: &dyn Layer) -> Vec<f32> {
    let mut state = Vec::new();
    for spec in layer.state_specs() {
        let Init::Constant(value) = spec.init else { panic!("state {} starts random", spec.name) };
        state.extend(std::iter::repeat_n(value, spec.len()));
    }
    state
}

/// At most `count` indices spread over 0..len.
fn sample(len: usize, count: usize) -> Vec<usize> {
    if len <= count { (0..len).collect() } else { (0..count).map(|i| i * len / count).collect() }
}

/// Checks d L / d x and d L / d params for a batch of two samples of `sample_shape`.
pub(crate) fn check_layer(layer: &mut dyn Layer, sample_shape: &[usize], seed: u64) {
    check_layer_with_step(layer, sample_shape, seed, None)
}

/// [`check_layer`] with the input step of a layer without kinks: 1e-2 instead of a step below the
/// spacing of the inputs. Winograd F(4x4, 3x3) rounds its outputs more coarsely than direct
/// convolution (its transforms scale by up to 8 and 1/24), and a tiny step would magnify that
/// rounding in the difference quotient.
pub(crate) fn check_smooth_layer(layer: &mut dyn Layer, sample_shape: &[usize], seed: u64) {
    check_layer_with_step(layer, sample_shape, seed, Some(1e-2))
}

fn check_layer_with_step(layer: &mut dyn Layer, sample_shape: &[usize], seed: u64, x_step: Option<f32>) {
    let mut shape = vec![2];
    shape.extend_from_slice(sample_shape);
    let len: usize = shape.iter().product();
    let mut x = Tensor::new(&shape, separated_values(len, seed));
    let n_params: usize = layer.param_specs().iter().map(|p| p.len()).sum();
    let mut params: Vec<f32> = test_values(n_params, seed + 1).iter().map(|v| v * 0.5).collect();

    let mut y = Tensor::default();
    layer.forward(&params, &mut initial_state(layer), &x, &mut y, Pass::TRAIN);
    let r = test_values(y.data.len(), seed + 2);
    let mut dy = Tensor::new(&y.shape, r.clone());
    let mut grads = vec![0.0f32; n_params];
    let mut dx = Tensor::default();
    layer.backward(&params, &mut grads, &x, &y, &mut dy, Some(&mut dx));
    assert_eq!(dx.shape, x.shape, "dx has the input's shape");

    let eps = x_step.unwrap_or((0.5 / len as f32).min(1e-2));
    let check = |what: &str, i: usize, numeric: f64, analytic: f32| {
        let tolerance = 2e-3 + 2e-2 * numeric.abs();
        assert!(
            (numeric - analytic as f64).abs() <= tolerance,
            "{what}[{i}]: finite difference {numeric}, backward {analytic}"
        );
    };
    for i in sample(len, 200) {
        let saved = x.data[i];
        x.data[i] = saved + eps;
        let plus = loss(layer, &params, &x, &r);
        x.data[i] = saved - eps;
        let minus = loss(layer, &params, &x, &r);
        x.data[i] = saved;
        check("dx", i, (plus - minus) / (2.0 * eps as f64), dx.data[i]);
    }
    let eps = 1e-2f32;
    for i in sample(n_params, 200) {
        let saved = params[i];
        params[i] = saved + eps;
        let plus = loss(layer, &params, &x, &r);
        params[i] = saved - eps;
        let minus = loss(layer, &params, &x, &r);
        params[i] = saved;
        check("dparam", i, (plus - minus) / (2.0 * eps as f64), grads[i]);
    }
}
