//! ReLU: y = max(x, 0).

use super::{Layer, Pass, Tensor};
use crate::error::Result;

#[derive(Debug, Default)]
pub struct Relu;

impl Layer for Relu {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, _params: &[f32], x: &Tensor, y: &mut Tensor, _pass: Pass) {
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
        dy: &Tensor,
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
