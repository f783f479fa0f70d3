//! SGD, with optional momentum and Nesterov momentum, as `torch.optim.SGD` (dampening 0):
//!
//! ```text
//! g = grad + weight_decay * p
//! buf = g on the first step, else momentum * buf + g
//! p -= lr * (nesterov ? g + momentum * buf : buf)        (plain SGD: p -= lr * g)
//! ```

use super::Optimizer;

pub struct Sgd {
    lr: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    buffer: Vec<f32>,
    started: bool,
}

impl Sgd {
    pub fn new(n_params: usize, lr: f32, momentum: f32, nesterov: bool, weight_decay: f32) -> Self {
        let buffer = if momentum > 0.0 { vec![0.0; n_params] } else { Vec::new() };
        Sgd { lr, momentum, nesterov, weight_decay, buffer, started: false }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let (lr, momentum, wd) = (self.lr, self.momentum, self.weight_decay);
        if momentum == 0.0 {
            for (p, &g) in params.iter_mut().zip(grads) {
                *p -= lr * (g + wd * *p);
            }
            return;
        }
        for ((p, &g), buf) in params.iter_mut().zip(grads).zip(&mut self.buffer) {
            let g = if wd != 0.0 { g + wd * *p } else { g };
            *buf = if self.started { momentum * *buf + g } else { g };
            let update = if self.nesterov { g + momentum * *buf } else { *buf };
            *p -= lr * update;
        }
        self.started = true;
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
}
