//! Connectionist temporal classification (CTC) loss, PyTorch's `ctc_loss`: the negative log of
//! the probability that a sequence of per-step scores spells a target, summed over every
//! alignment (each target symbol held for one or more steps, with the blank between and around
//! them, and always between two equal symbols). The line reader (`read::line`) learns with it.
//!
//! Scores come class-major, `[classes][steps]`, as a network ending in `Columns`, a 1x1
//! convolution and `Flatten` leaves them (PyTorch's `[n, classes, 1, steps]` flattened).
//! Forward and backward variables are kept in log space, in f64.

/// Reusable buffers for [`Ctc::loss`], so training allocates nothing per sample.
#[derive(Debug, Default)]
pub struct Ctc {
    log_probs: Vec<f64>,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    extended: Vec<usize>,
}

fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// The fewest steps that can spell `target`: one per symbol, and a blank between equal neighbours.
pub fn min_steps(target: &[u8]) -> usize {
    target.len() + target.windows(2).filter(|w| w[0] == w[1]).count()
}

impl Ctc {
    /// -log p(target | scores) for one sequence; writes d loss / d scores into `grad` (same
    /// layout), scaled by `scale`. A target the steps cannot spell (see [`min_steps`]) gives
    /// infinity and a zero gradient, as PyTorch's `zero_infinity=True`.
    pub fn loss(
        &mut self,
        scores: &[f32],
        classes: usize,
        blank: usize,
        target: &[u8],
        scale: f32,
        grad: &mut [f32],
    ) -> f64 {
        let steps = scores.len() / classes;
        assert_eq!(scores.len(), classes * steps, "scores are [classes][steps]");
        assert_eq!(grad.len(), scores.len());
        assert!(target.iter().all(|&c| (c as usize) < classes && c as usize != blank), "target symbol out of range");
        if steps == 0 || min_steps(target) > steps {
            grad.fill(0.0);
            return f64::INFINITY;
        }
        self.forward(scores, classes, blank, target);
        let s_len = self.extended.len();
        let at = |t: usize, k: usize| t * classes + k;
        // beta[t][s]: log-probability of steps t.. given extended symbol s at step t (inclusive).
        self.beta.clear();
        self.beta.resize(steps * s_len, f64::NEG_INFINITY);
        let last = (steps - 1) * s_len;
        self.beta[last + s_len - 1] = self.log_probs[at(steps - 1, blank)];
        if s_len > 1 {
            self.beta[last + s_len - 2] = self.log_probs[at(steps - 1, self.extended[s_len - 2])];
        }
        for t in (0..steps - 1).rev() {
            for s in 0..s_len {
                let mut sum = self.beta[(t + 1) * s_len + s];
                if s + 1 < s_len {
                    sum = log_add(sum, self.beta[(t + 1) * s_len + s + 1]);
                }
                if s + 2 < s_len && self.extended[s] != blank && self.extended[s] != self.extended[s + 2] {
                    sum = log_add(sum, self.beta[(t + 1) * s_len + s + 2]);
                }
                self.beta[t * s_len + s] = sum + self.log_probs[at(t, self.extended[s])];
            }
        }
        let log_p = log_add(
            self.alpha[last + s_len - 1],
            if s_len > 1 { self.alpha[last + s_len - 2] } else { f64::NEG_INFINITY },
        );
        if !log_p.is_finite() {
            grad.fill(0.0);
            return f64::INFINITY;
        }
        // d(-log p)/d score[k][t] = softmax[t][k] - (sum over s with symbol k of alpha*beta / y[t][k]) / p.
        for t in 0..steps {
            for k in 0..classes {
                let mut held = f64::NEG_INFINITY;
                for s in (0..s_len).filter(|&s| self.extended[s] == k) {
                    held = log_add(held, self.alpha[t * s_len + s] + self.beta[t * s_len + s]);
                }
                let log_y = self.log_probs[at(t, k)];
                let posterior = (held - log_y - log_p).exp();
                grad[k * steps + t] = scale * (log_y.exp() - posterior) as f32;
            }
        }
        -log_p
    }

    /// log p(target | scores) alone: the forward pass, without the backward pass and gradient
    /// [`Ctc::loss`] computes (scoring a reading needs no gradient). Minus infinity when the
    /// steps cannot spell the target.
    pub fn log_prob(&mut self, scores: &[f32], classes: usize, blank: usize, target: &[u8]) -> f64 {
        let steps = scores.len() / classes;
        if steps == 0 || min_steps(target) > steps {
            return f64::NEG_INFINITY;
        }
        self.forward(scores, classes, blank, target);
        let s_len = self.extended.len();
        let last = (steps - 1) * s_len;
        log_add(self.alpha[last + s_len - 1], if s_len > 1 { self.alpha[last + s_len - 2] } else { f64::NEG_INFINITY })
    }

    /// The log-softmax, the extended target (blanks around and between its symbols) and the
    /// forward variables alpha.
    fn forward(&mut self, scores: &[f32], classes: usize, blank: usize, target: &[u8]) {
        let steps = scores.len() / classes;
        self.log_softmax(scores, classes, steps);
        // The target with blanks around and between its symbols.
        self.extended.clear();
        self.extended.push(blank);
        for &c in target {
            self.extended.extend([c as usize, blank]);
        }
        let s_len = self.extended.len();
        let at = |t: usize, k: usize| t * classes + k;
        // alpha[t][s]: log-probability of the first t+1 steps ending at extended symbol s.
        self.alpha.clear();
        self.alpha.resize(steps * s_len, f64::NEG_INFINITY);
        self.alpha[0] = self.log_probs[at(0, blank)];
        if s_len > 1 {
            self.alpha[1] = self.log_probs[at(0, self.extended[1])];
        }
        for t in 1..steps {
            for s in 0..s_len {
                let mut sum = self.alpha[(t - 1) * s_len + s];
                if s >= 1 {
                    sum = log_add(sum, self.alpha[(t - 1) * s_len + s - 1]);
                }
                if s >= 2 && self.extended[s] != blank && self.extended[s] != self.extended[s - 2] {
                    sum = log_add(sum, self.alpha[(t - 1) * s_len + s - 2]);
                }
                self.alpha[t * s_len + s] = sum + self.log_probs[at(t, self.extended[s])];
            }
        }
    }

    /// Per-step log-softmax of class-major `scores`, kept step-major.
    fn log_softmax(&mut self, scores: &[f32], classes: usize, steps: usize) {
        self.log_probs.clear();
        self.log_probs.resize(steps * classes, 0.0);
        for t in 0..steps {
            let row = (0..classes).map(|k| scores[k * steps + t] as f64);
            let max = row.clone().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = row.clone().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
            for (k, v) in row.enumerate() {
                self.log_probs[t * classes + k] = v - log_sum;
            }
        }
    }
}

/// A symbol the best path reads: which, the steps it spans, and its confidence (the highest
/// probability the symbol has at any of those steps).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Symbol {
    pub class: usize,
    pub first: usize,
    pub last: usize,
    pub confidence: f32,
}

/// The best path: the most likely class at each step, repeats merged and blanks dropped.
pub fn greedy_decode(scores: &[f32], classes: usize, blank: usize) -> Vec<Symbol> {
    let steps = scores.len() / classes;
    let mut read: Vec<Symbol> = Vec::new();
    let mut previous = blank;
    for t in 0..steps {
        let score = |k: usize| scores[k * steps + t];
        let max = (0..classes).map(score).fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = (0..classes).map(|k| (score(k) - max).exp()).sum();
        let best = (0..classes).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap_or(blank);
        let p = (score(best) - max).exp() / sum;
        match read.last_mut() {
            _ if best == blank => {}
            Some(symbol) if previous == best => {
                symbol.last = t;
                symbol.confidence = symbol.confidence.max(p);
            }
            _ => read.push(Symbol { class: best, first: t, last: t, confidence: p }),
        }
        previous = best;
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values;

    /// The probability of a target, by listing every path of 3 steps over {a, b, blank}.
    #[test]
    fn loss_is_the_sum_over_every_alignment() {
        let (classes, steps, blank) = (3, 3, 2);
        let scores: Vec<f32> = test_values(classes * steps, 1).iter().map(|v| 2.0 * v).collect();
        let prob = |t: usize, k: usize| {
            let sum: f64 = (0..classes).map(|j| (scores[j * steps + t] as f64).exp()).sum();
            (scores[k * steps + t] as f64).exp() / sum
        };
        for target in [vec![0u8], vec![0, 1], vec![1, 1], vec![]] {
            let mut total = 0.0;
            for path in 0..classes.pow(steps as u32) {
                let symbols: Vec<usize> = (0..steps).map(|t| path / classes.pow(t as u32) % classes).collect();
                let mut spelled: Vec<u8> = Vec::new();
                for t in 0..steps {
                    if symbols[t] != blank && (t == 0 || symbols[t - 1] != symbols[t]) {
                        spelled.push(symbols[t] as u8);
                    }
                }
                if spelled == target {
                    total += (0..steps).map(|t| prob(t, symbols[t])).product::<f64>();
                }
            }
            let mut grad = vec![0.0; scores.len()];
            let loss = Ctc::default().loss(&scores, classes, blank, &target, 1.0, &mut grad);
            assert!((loss + total.ln()).abs() < 1e-9, "{target:?}: {loss} vs {}", -total.ln());
        }
    }

    #[test]
    fn the_forward_pass_alone_gives_the_loss() {
        let scores: Vec<f32> = test_values(4 * 6, 4).iter().map(|v| 3.0 * v).collect();
        let mut ctc = Ctc::default();
        for target in [vec![1u8, 1, 0], vec![2], vec![], vec![0, 0, 0, 0]] {
            let mut grad = vec![0.0; scores.len()];
            let loss = ctc.loss(&scores, 4, 3, &target, 1.0, &mut grad);
            assert_eq!(ctc.log_prob(&scores, 4, 3, &target), -loss, "{target:?}");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (classes, steps, blank) = (4, 6, 3);
        let scores: Vec<f32> = test_values(classes * steps, 2).iter().map(|v| 3.0 * v).collect();
        let target = [1u8, 1, 0];
        let mut ctc = Ctc::default();
        let mut grad = vec![0.0; scores.len()];
        ctc.loss(&scores, classes, blank, &target, 1.0, &mut grad);
        let mut scratch = vec![0.0; scores.len()];
        for i in 0..scores.len() {
            let h = 1e-3;
            let mut moved = scores.clone();
            moved[i] += h;
            let up = ctc.loss(&moved, classes, blank, &target, 1.0, &mut scratch);
            moved[i] -= 2.0 * h;
            let down = ctc.loss(&moved, classes, blank, &target, 1.0, &mut scratch);
            let numeric = (up - down) / (2.0 * h as f64);
            assert!((numeric - grad[i] as f64).abs() < 1e-3, "score {i}: {numeric} vs {}", grad[i]);
        }
    }

    #[test]
    fn a_target_too_long_for_the_steps_is_infinite_with_no_gradient() {
        let scores = vec![0.5; 3 * 2];
        let mut grad = vec![1.0; 6];
        assert_eq!(min_steps(&[0, 0]), 3);
        assert!(Ctc::default().loss(&scores, 3, 2, &[0, 0], 1.0, &mut grad).is_infinite());
        assert!(grad.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn greedy_decoding_merges_repeats_and_drops_blanks() {
        // Steps read a a blank a b b blank (blank = 2): "aab".
        let best = [0, 0, 2, 0, 1, 1, 2];
        let (classes, steps) = (3, best.len());
        let mut scores = vec![0.0; classes * steps];
        for (t, &k) in best.iter().enumerate() {
            scores[k * steps + t] = 5.0;
        }
        let read: Vec<(usize, usize, usize)> =
            greedy_decode(&scores, classes, 2).iter().map(|s| (s.class, s.first, s.last)).collect();
        assert_eq!(read, vec![(0, 0, 1), (0, 3, 3), (1, 4, 5)]);
    }
}
