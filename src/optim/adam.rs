//! Adam and AdamW as `torch.optim.Adam` / `AdamW` compute them (single-tensor path):
//!
//! ```text
//! AdamW: p *= 1 - lr * weight_decay          Adam: g = grad + weight_decay * p
//! m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g^2
//! p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```

use super::{Optimizer, OptimizerConfig};

pub struct Adam {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    step: i32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    /// `decoupled` selects AdamW's weight decay.
    pub fn new(n_params: usize, config: &OptimizerConfig, decoupled: bool) -> Self {
        Adam {
            lr: config.lr,
            beta1: config.betas.0,
            beta2: config.betas.1,
            eps: config.eps,
            weight_decay: config.weight_decay,
            decoupled,
            step: 0,
            m: vec![0.0; n_params],
            v: vec![0.0; n_params],
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        self.step += 1;
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        // PyTorch computes the bias corrections in double precision from Python floats.
        let correction1 = 1.0 - (b1 as f64).powi(self.step);
        let correction2_sqrt = (1.0 - (b2 as f64).powi(self.step)).sqrt() as f32;
        let step_size = (self.lr as f64 / correction1) as f32;
        let decay = 1.0 - self.lr * wd;
        for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            let g = if self.decoupled {
                *p *= decay;
                g
            } else if wd != 0.0 {
                g + wd * *p
            } else {
                g
            };
            *m += (1.0 - b1) * (g - *m);
            *v = *v * b2 + (1.0 - b2) * g * g;
            let denom = v.sqrt() / correction2_sqrt + eps;
            // addcdiv: p + (-step_size * m) / denom, in that order.
            *p += (-step_size * *m) / denom;
        }
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
}
