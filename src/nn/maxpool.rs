//! MaxPool2d over NHWC activations (no padding); the gradient goes to the first maximum of each
//! window, as in PyTorch.

use super::{Layer, LayerCost, Pass, Tensor, shape_error};
use crate::error::Result;
use rayon::prelude::*;

#[derive(Debug)]
pub struct MaxPool2d {
    pub kernel_size: usize,
    pub stride: usize,
    /// For each output value, the index in x of the maximum it took (from the last forward pass).
    argmax: Vec<usize>,
}

impl MaxPool2d {
    pub fn new(kernel_size: usize, stride: usize) -> Self {
        MaxPool2d { kernel_size, stride, argmax: Vec::new() }
    }

    fn out_len(&self, n: usize) -> usize {
        (n - self.kernel_size) / self.stride + 1
    }
}

impl Layer for MaxPool2d {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let k = self.kernel_size;
        if input.len() != 3 || k == 0 || self.stride == 0 || input[0] < k || input[1] < k {
            return Err(shape_error("MaxPool2d", &format!("images of at least {k}x{k} pixels"), input));
        }
        Ok(vec![self.out_len(input[0]), self.out_len(input[1]), input[2]])
    }

    fn cost(&self, _input: &[usize], output: &[usize]) -> LayerCost {
        let values = output.iter().product::<usize>();
        let window = self.kernel_size.saturating_mul(self.kernel_size) as u64;
        // The argmax of every output is a usize: two values.
        LayerCost {
            macs: (values as u64).saturating_mul(window),
            scratch: values.saturating_mul(2),
            ..Default::default()
        }
    }

    fn forward(&mut self, _params: &[f32], _state: &mut [f32], x: &Tensor, y: &mut Tensor, _pass: Pass) {
        let (batch, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (oh, ow) = (self.out_len(h), self.out_len(w));
        y.reshape_for(&[batch, oh, ow, c]);
        self.argmax.resize(y.data.len(), 0);
        let (k, stride) = (self.kernel_size, self.stride);
        // One image per task; within a pixel the channels are contiguous, so every comparison
        // runs over a row of c values (vectorised).
        let image_out = oh * ow * c;
        y.data.par_chunks_mut(image_out).zip(self.argmax.par_chunks_mut(image_out)).enumerate().for_each(
            |(b, (y, argmax))| {
                for py in 0..oh {
                    for px in 0..ow {
                        let out = (py * ow + px) * c;
                        let (y, argmax) = (&mut y[out..out + c], &mut argmax[out..out + c]);
                        for ky in 0..k {
                            for kx in 0..k {
                                let at = ((b * h + py * stride + ky) * w + px * stride + kx) * c;
                                let window = &x.data[at..at + c];
                                let first = ky == 0 && kx == 0;
                                for (ch, ((y, arg), &v)) in y.iter_mut().zip(argmax.iter_mut()).zip(window).enumerate()
                                {
                                    // The first maximum wins ties; a NaN wins (PyTorch propagates it).
                                    if first || v > *y || (v.is_nan() && !y.is_nan()) {
                                        *y = v;
                                        *arg = at + ch;
                                    }
                                }
                            }
                        }
                    }
                }
            },
        );
    }

    fn backward(
        &mut self,
        _params: &[f32],
        _grads: &mut [f32],
        x: &Tensor,
        _y: &Tensor,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
    ) {
        let Some(dx) = dx else { return };
        dx.reshape_for(&x.shape);
        dx.data.fill(0.0);
        for (&i, &d) in self.argmax.iter().zip(&dy.data) {
            dx.data[i] += d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn takes_the_maximum_of_each_window() {
        let x = Tensor::new(&[1, 2, 2, 1], vec![1.0, 4.0, 3.0, 2.0]);
        let mut y = Tensor::default();
        MaxPool2d::new(2, 2).forward(&[], &mut [], &x, &mut y, Pass::INFER);
        assert_eq!((y.shape, y.data), (vec![1, 1, 1, 1], vec![4.0]));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        check_layer(&mut MaxPool2d::new(2, 2), &[4, 6, 3], 9);
        check_layer(&mut MaxPool2d::new(3, 1), &[5, 4, 2], 10);
    }
}
