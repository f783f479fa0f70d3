//! MaxPool2d over NHWC activations (no padding); the gradient goes to the first maximum of each
//! window, as in PyTorch. The work is `kernels::pool`'s, one image per task. A ReLU after it is
//! applied in the same pass (`with_fused_relu`), as convolutions apply theirs, forward and
//! backward.

use super::{Layer, LayerCost, Pass, Tensor, shape_error};
use crate::error::Result;
use crate::kernels::Isa;
use crate::kernels::pool::{Pool, max_pool, max_pool_backward};
use rayon::prelude::*;

#[derive(Debug)]
pub struct MaxPool2d {
    pub kernel_size: usize,
    pub stride: usize,
    isa: Isa,
    /// The following ReLU is applied here.
    relu: bool,
}

impl MaxPool2d {
    pub fn new(kernel_size: usize, stride: usize, isa: Isa) -> Self {
        MaxPool2d { kernel_size, stride, isa, relu: false }
    }

    /// The same layer with a following ReLU applied in its pass (`relu`) or not.
    pub fn with_fused_relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    fn out_len(&self, n: usize) -> usize {
        (n - self.kernel_size) / self.stride + 1
    }

    fn pool(&self, x: &Tensor) -> Pool {
        let (height, width, channels) = (x.shape[1], x.shape[2], x.shape[3]);
        Pool { height, width, channels, kernel: self.kernel_size, stride: self.stride }
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
        LayerCost { macs: (values as u64).saturating_mul(window), ..Default::default() }
    }

    fn forward(&mut self, _params: &[f32], _state: &mut [f32], x: &Tensor, y: &mut Tensor, _pass: Pass) {
        let pool = self.pool(x);
        let batch = x.shape[0];
        y.reshape_for(&[batch, pool.out_height(), pool.out_width(), pool.channels]);
        let (image_in, image_out) = (x.data.len() / batch.max(1), y.data.len() / batch.max(1));
        let (isa, relu) = (self.isa, self.relu);
        y.data.par_chunks_mut(image_out.max(1)).zip(x.data.par_chunks(image_in.max(1))).for_each(|(y, x)| {
            max_pool(isa, pool, relu, x, y);
        });
    }

    fn backward(
        &mut self,
        _params: &[f32],
        _grads: &mut [f32],
        x: &Tensor,
        y: &Tensor,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
    ) {
        let Some(dx) = dx else { return };
        let pool = self.pool(x);
        let batch = x.shape[0];
        dx.reshape_for(&x.shape);
        let (image_in, image_out) = (x.data.len() / batch.max(1), y.data.len() / batch.max(1));
        let (isa, relu) = (self.isa, self.relu);
        dx.data
            .par_chunks_mut(image_in.max(1))
            .zip(x.data.par_chunks(image_in.max(1)))
            .zip(y.data.par_chunks(image_out.max(1)).zip(dy.data.par_chunks(image_out.max(1))))
            .for_each(|((dx, x), (y, dy))| max_pool_backward(isa, pool, relu, x, y, dy, dx));
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
        MaxPool2d::new(2, 2, Isa::Portable).forward(&[], &mut [], &x, &mut y, Pass::INFER);
        assert_eq!((y.shape, y.data), (vec![1, 1, 1, 1], vec![4.0]));
    }

    /// A fused ReLU: forward and backward equal those of max-pool then ReLU.
    #[test]
    fn fused_relu_equals_pool_then_relu() {
        let x = Tensor::new(&[2, 6, 6, 5], crate::kernels::test_values(2 * 6 * 6 * 5, 3));
        for isa in Isa::tested("MaxPool2d::fused_relu_equals_pool_then_relu") {
            let (mut plain, mut fused) = (MaxPool2d::new(2, 2, isa), MaxPool2d::new(2, 2, isa).with_fused_relu(true));
            let (mut y, mut y_fused, mut relu_y) = (Tensor::default(), Tensor::default(), Tensor::default());
            plain.forward(&[], &mut [], &x, &mut y, Pass::TRAIN);
            fused.forward(&[], &mut [], &x, &mut y_fused, Pass::TRAIN);
            super::super::Relu.forward(&[], &mut [], &y, &mut relu_y, Pass::TRAIN);
            assert_eq!(y_fused, relu_y, "{isa}");
            let dy = Tensor::new(&y.shape, crate::kernels::test_values(y.data.len(), 4));
            let mut dy_through_relu = Tensor::default();
            super::super::Relu.backward(&[], &mut [], &y, &relu_y, &mut dy.clone(), Some(&mut dy_through_relu));
            let (mut dx, mut dx_fused) = (Tensor::default(), Tensor::default());
            plain.backward(&[], &mut [], &x, &y, &mut dy_through_relu, Some(&mut dx));
            fused.backward(&[], &mut [], &x, &y_fused, &mut dy.clone(), Some(&mut dx_fused));
            assert_eq!(dx, dx_fused, "{isa}");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for isa in Isa::tested("MaxPool2d::gradient_matches_finite_differences") {
            check_layer(&mut MaxPool2d::new(2, 2, isa), &[4, 6, 3], 9);
            check_layer(&mut MaxPool2d::new(3, 1, isa), &[5, 4, 2], 10);
        }
    }
}
