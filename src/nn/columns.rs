//! Columns: each column of an image becomes one position of a sequence, its pixels of every row
//! stacked as channels, for a line reader that scores every column (`read::line`). NHWC
//! `[h, w, c]` in, `[1, w, c * h]` out, channel `c * h + row` as PyTorch's
//! `x.reshape(n, c * h, 1, w)` numbers them on NCHW tensors, so a model file means the same in
//! both (`scripts/make_fixtures.py` builds the PyTorch twin).

use super::{Layer, Pass, Tensor, shape_error};
use crate::error::Result;

#[derive(Debug, Default)]
pub struct Columns;

impl Layer for Columns {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match *input {
            [h, w, c] => Ok(vec![1, w, c * h]),
            _ => Err(shape_error("Columns", "images", input)),
        }
    }

    fn forward(&mut self, _params: &[f32], _state: &mut [f32], x: &Tensor, y: &mut Tensor, _pass: Pass) {
        let [batch, h, w, c] = x.shape[..] else { unreachable!("planned as images") };
        y.reshape_for(&[batch, 1, w, c * h]);
        let sample = h * w * c;
        for (image, columns) in x.data.chunks(sample).zip(y.data.chunks_mut(sample)) {
            for (row, pixels) in image.chunks(w * c).enumerate() {
                for (column, pixel) in pixels.chunks(c).enumerate() {
                    let out = &mut columns[column * c * h..(column + 1) * c * h];
                    for (channel, &value) in pixel.iter().enumerate() {
                        out[channel * h + row] = value;
                    }
                }
            }
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
        let [_, h, w, c] = x.shape[..] else { unreachable!("planned as images") };
        dx.reshape_for(&x.shape);
        let sample = h * w * c;
        for (image, columns) in dx.data.chunks_mut(sample).zip(dy.data.chunks(sample)) {
            for (row, pixels) in image.chunks_mut(w * c).enumerate() {
                for (column, pixel) in pixels.chunks_mut(c).enumerate() {
                    let from = &columns[column * c * h..(column + 1) * c * h];
                    for (channel, value) in pixel.iter_mut().enumerate() {
                        *value = from[channel * h + row];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn stacks_each_column_channel_major() {
        // 2 rows, 1 column, 2 channels: NHWC [r0: a0 a1 | r1: b0 b1] -> one column [a0 b0 a1 b1].
        let x = Tensor::new(&[1, 2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let mut y = Tensor::default();
        Columns.forward(&[], &mut [], &x, &mut y, Pass::INFER);
        assert_eq!(y.shape, vec![1, 1, 1, 4]);
        assert_eq!(y.data, vec![1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        check_layer(&mut Columns, &[3, 4, 2], 5);
    }
}
