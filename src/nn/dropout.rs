//! Dropout: in training, zeroes each value with probability p and scales the rest by 1/(1-p);
//! at inference, the identity. Masks come from a seeded generator, so runs are reproducible.

use super::{Layer, LayerCost, Pass, Tensor};
use crate::error::Result;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

#[derive(Debug)]
pub struct Dropout {
    pub p: f32,
    rng: ChaCha8Rng,
    /// 0 or 1/(1-p) for each value of the last training forward pass.
    scale: Vec<f32>,
}

impl Dropout {
    pub fn new(p: f32, seed: u64) -> Self {
        Dropout { p, rng: ChaCha8Rng::seed_from_u64(seed), scale: Vec::new() }
    }
}

impl Layer for Dropout {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    fn cost(&self, _input: &[usize], output: &[usize]) -> LayerCost {
        let values = output.iter().product::<usize>();
        LayerCost { macs: values as u64, scratch: values, ..Default::default() }
    }

    fn forward(&mut self, _params: &[f32], _state: &mut [f32], x: &Tensor, y: &mut Tensor, pass: Pass) {
        y.reshape_for(&x.shape);
        self.scale.resize(x.data.len(), 1.0);
        if !pass.train || self.p == 0.0 {
            self.scale.fill(1.0);
            y.data.copy_from_slice(&x.data);
            return;
        }
        let keep = 1.0 / (1.0 - self.p);
        for ((out, &v), s) in y.data.iter_mut().zip(&x.data).zip(&mut self.scale) {
            let u = (self.rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
            *s = if u < self.p { 0.0 } else { keep };
            *out = v * *s;
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
        for ((g, &d), &s) in dx.data.iter_mut().zip(&dy.data).zip(&self.scale) {
            *g = d * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dropout is linear for a fixed mask, so dx must equal mask * dy exactly; finite differences
    /// would draw a new mask each pass, so the check is direct.
    #[test]
    fn gradient_is_the_mask_of_the_forward_pass() {
        let mut layer = Dropout::new(0.5, 3);
        let x = Tensor::new(&[1, 1000], (0..1000).map(|i| i as f32 + 1.0).collect());
        let mut y = Tensor::default();
        layer.forward(&[], &mut [], &x, &mut y, Pass::TRAIN);
        let dy = Tensor::new(&[1, 1000], vec![1.0; 1000]);
        let mut dx = Tensor::default();
        layer.backward(&[], &mut [], &x, &y, &mut dy.clone(), Some(&mut dx));
        let dropped = y.data.iter().filter(|&&v| v == 0.0).count();
        assert!((400..600).contains(&dropped), "dropped {dropped} of 1000");
        for i in 0..1000 {
            assert_eq!(dx.data[i] * x.data[i], y.data[i]);
            assert!(dx.data[i] == 0.0 || dx.data[i] == 2.0);
        }
    }

    #[test]
    fn inference_is_identity() {
        let mut layer = Dropout::new(0.5, 3);
        let x = Tensor::new(&[1, 4], vec![1.0, 2.0, 3.0, 4.0]);
        let mut y = Tensor::default();
        layer.forward(&[], &mut [], &x, &mut y, Pass::INFER);
        assert_eq!(y.data, x.data);
    }
}
