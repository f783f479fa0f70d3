//! Linear: y = x W^T + b, with W in PyTorch's [out, in] layout.
//!
//! ```text
//! forward   y[B, out]   = x[B, in] * W^T[in, out] + b
//! backward  dW[out, in] += dy^T[out, B] * x[B, in];  db += column sums of dy;  dx = dy * W
//! ```

use super::{Layer, ParamSpec, Tensor, shape_error};
use crate::error::Result;
use crate::kernels::{Epilogue, MatRef, gemm};

#[derive(Debug)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
}

impl Linear {
    pub fn new(in_features: usize, out_features: usize) -> Self {
        Linear { in_features, out_features }
    }
}

impl Layer for Linear {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input != [self.in_features] {
            return Err(shape_error("Linear", &format!("vectors of {} features", self.in_features), input));
        }
        Ok(vec![self.out_features])
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        let (i, o) = (self.in_features, self.out_features);
        vec![
            ParamSpec { name: "weight", shape: vec![o, i], fan_in: i },
            ParamSpec { name: "bias", shape: vec![o], fan_in: i },
        ]
    }

    fn forward(&mut self, params: &[f32], x: &Tensor, y: &mut Tensor, _train: bool) {
        let (batch, i, o) = (x.batch(), self.in_features, self.out_features);
        let (weight, bias) = params.split_at(o * i);
        y.reshape_for(&[batch, o]);
        gemm(
            MatRef::row_major(&x.data, batch, i),
            MatRef::row_major(weight, o, i).t(),
            &mut y.data,
            o,
            Epilogue { bias: Some(bias), ..Epilogue::OVERWRITE },
        );
    }

    fn backward(
        &mut self,
        params: &[f32],
        grads: &mut [f32],
        x: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
        dx: Option<&mut Tensor>,
    ) {
        let (batch, i, o) = (x.batch(), self.in_features, self.out_features);
        let (grad_weight, grad_bias) = grads.split_at_mut(o * i);
        let dy_matrix = MatRef::row_major(&dy.data, batch, o);
        gemm(dy_matrix.t(), MatRef::row_major(&x.data, batch, i), grad_weight, i, Epilogue::ACCUMULATE);
        for row in dy.data.chunks(o) {
            for (gb, &d) in grad_bias.iter_mut().zip(row) {
                *gb += d;
            }
        }
        if let Some(dx) = dx {
            dx.reshape_for(&x.shape);
            gemm(dy_matrix, MatRef::row_major(&params[..o * i], o, i), &mut dx.data, i, Epilogue::OVERWRITE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn forward_is_x_times_w_transpose_plus_bias() {
        let mut layer = Linear::new(2, 3);
        // W = [[1, 2], [3, 4], [5, 6]], b = [0.5, -1, 0]
        let params = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, -1.0, 0.0];
        let x = Tensor::new(&[1, 2], vec![1.0, -1.0]);
        let mut y = Tensor::default();
        layer.forward(&params, &x, &mut y, false);
        assert_eq!(y.data, vec![-0.5, -2.0, -1.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        check_layer(&mut Linear::new(13, 5), &[13], 6);
    }
}
