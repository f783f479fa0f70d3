//! Flatten: NHWC images to vectors in PyTorch's (C, H, W) order, so that the next Linear layer's
//! weights mean the same as in a PyTorch model.

use super::{Layer, Pass, Tensor};
use crate::error::Result;
use crate::kernels::layout::{chw_to_hwc, hwc_to_chw};

#[derive(Debug, Default)]
pub struct Flatten;

impl Layer for Flatten {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![input.iter().product()])
    }

    fn forward(&mut self, _params: &[f32], _state: &mut [f32], x: &Tensor, y: &mut Tensor, _pass: Pass) {
        let batch = x.batch();
        let features: usize = x.shape[1..].iter().product();
        y.reshape_for(&[batch, features]);
        if x.shape.len() != 4 {
            y.data.copy_from_slice(&x.data);
            return;
        }
        let (pixels, channels) = (x.shape[1] * x.shape[2], x.shape[3]);
        for (hwc, chw) in x.data.chunks(features).zip(y.data.chunks_mut(features)) {
            hwc_to_chw(hwc, chw, pixels, channels);
        }
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
        if x.shape.len() != 4 {
            dx.data.copy_from_slice(&dy.data);
            return;
        }
        let (pixels, channels) = (x.shape[1] * x.shape[2], x.shape[3]);
        let features = pixels * channels;
        for (chw, hwc) in dy.data.chunks(features).zip(dx.data.chunks_mut(features)) {
            chw_to_hwc(chw, hwc, pixels, channels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn flattens_in_channel_major_order() {
        // One image, 1x2 pixels, 2 channels: NHWC [a0 a1 | b0 b1] -> CHW [a0 b0 | a1 b1].
        let x = Tensor::new(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let mut y = Tensor::default();
        Flatten.forward(&[], &mut [], &x, &mut y, Pass::INFER);
        assert_eq!(y.shape, vec![1, 4]);
        assert_eq!(y.data, vec![1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        check_layer(&mut Flatten, &[3, 2, 4], 2);
    }
}
