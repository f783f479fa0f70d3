//! ReLU: y = max(x, 0).

use super::{Layer, Pass, Tensor};
use crate::error::Result;
use rayon::prelude::*;

/// The backward pass of a ReLU fused into the layer before it: dy is kept where that layer's
/// output y is positive and zeroed elsewhere, in place.
pub(crate) fn mask_gradient(dy: &mut [f32], y: &[f32]) {
    assert_eq!(dy.len(), y.len(), "gradient and output sizes");
    dy.par_chunks_mut(1 << 14).zip(y.par_chunks(1 << 14)).for_each(|(dy, y)| {
        for (d, &y) in dy.iter_mut().zip(y) {
            if y <= 0.0 {
                *d = 0.0;
            }
        }
    });
}

#[derive(Debug, Default)]
pub struct Relu;

impl Layer for Relu {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, _params: &[f32], _state: &mut [f32], x: &Tensor, y: &mut Tensor, _pass: Pass) {
        y.reshape_for(&x.shape);
        for (out, &v) in y.data.iter_mut().zip(&x.data) {
            *out = v.max(0.0);
        }
    }

    fn backward(
        &mut self,
        _params: &[f32],
        _grads: &mut [f32],
        _x: &Tensor,
        y: &Tensor,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
    ) {
        let Some(dx) = dx else { return };
        dx.reshape_for(&y.shape);
        // The gradient passes where the output is positive (PyTorch's choice at exactly 0: none).
        for ((g, &out), &d) in dx.data.iter_mut().zip(&y.data).zip(&dy.data) {
            *g = if out > 0.0 { d } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn gradient_matches_finite_differences() {
        check_layer(&mut Relu, &[3, 4, 5], 1);
    }
}
