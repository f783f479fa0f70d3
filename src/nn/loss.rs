//! Softmax and cross-entropy loss (PyTorch's `CrossEntropyLoss`, mean over the batch).

/// Mean cross-entropy of `logits` [batch, classes] against `labels`; writes dLoss/dlogits into
/// `grad` (softmax minus one-hot, divided by the batch size).
pub fn cross_entropy(logits: &[f32], labels: &[u8], classes: usize, grad: &mut [f32]) -> f32 {
    cross_entropy_smoothed(logits, labels, classes, 0.0, grad)
}

/// [`cross_entropy`] against targets with `smoothing` of the probability spread evenly over all
/// classes, as PyTorch's `CrossEntropyLoss(label_smoothing=...)`:
///
/// ```text
/// loss = (1 - s) * -log p[label] + s * mean_j(-log p[j])      dloss/dlogit[j] = p[j] - target[j]
/// target[j] = (1 - s) * onehot[j] + s / classes
/// ```
pub fn cross_entropy_smoothed(logits: &[f32], labels: &[u8], classes: usize, smoothing: f32, grad: &mut [f32]) -> f32 {
    let batch = labels.len();
    assert_eq!(logits.len(), batch * classes);
    assert_eq!(grad.len(), logits.len());
    let mut total = 0.0f64;
    for ((row, g), &label) in logits.chunks(classes).zip(grad.chunks_mut(classes)).zip(labels) {
        let label = label as usize;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
        let log_sum = sum.ln() + max;
        total += (1.0 - smoothing as f64) * (log_sum - row[label]) as f64;
        if smoothing != 0.0 {
            let mean_logit = row.iter().map(|&v| v as f64).sum::<f64>() / classes as f64;
            total += smoothing as f64 * (log_sum as f64 - mean_logit);
        }
        for (j, (gj, &v)) in g.iter_mut().zip(row).enumerate() {
            let p = (v - log_sum).exp();
            let target = (1.0 - smoothing) * if j == label { 1.0 } else { 0.0 } + smoothing / classes as f32;
            *gj = (p - target) / batch as f32;
        }
    }
    (total / batch as f64) as f32
}

/// Softmax of one row of logits, written to `out`.
pub fn softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, &v) in out.iter_mut().zip(logits) {
        *o = (v - max).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// The index and value of the largest entry (the first, on ties).
pub fn argmax(values: &[f32]) -> (usize, f32) {
    values.iter().copied().enumerate().fold((0, f32::NEG_INFINITY), |best, v| if v.1 > best.1 { v } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        // logits [0, ln 3] for label 1: p = [1/4, 3/4], loss = -ln(3/4).
        let logits = [0.0, 3f32.ln()];
        let mut grad = [0.0; 2];
        let loss = cross_entropy(&logits, &[1], 2, &mut grad);
        assert!((loss - (4.0f32 / 3.0).ln()).abs() < 1e-6);
        assert!((grad[0] - 0.25).abs() < 1e-6 && (grad[1] + 0.25).abs() < 1e-6);
        // Label smoothing 0.2 (PyTorch's definition): 0.8 * -ln(3/4) + 0.2 * mean(-ln(1/4), -ln(3/4)),
        // targets [0.1, 0.9].
        let loss = cross_entropy_smoothed(&logits, &[1], 2, 0.2, &mut grad);
        let want = 0.8 * (4.0f32 / 3.0).ln() + 0.2 * (4f32.ln() + (4.0f32 / 3.0).ln()) / 2.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        assert!((grad[0] - 0.15).abs() < 1e-6 && (grad[1] + 0.15).abs() < 1e-6);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let logits: Vec<f32> = (0..30).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
        let labels = [3u8, 0, 9];
        for smoothing in [0.0, 0.1] {
            let loss = |logits: &[f32], grad: &mut [f32]| cross_entropy_smoothed(logits, &labels, 10, smoothing, grad);
            let mut grad = vec![0.0; 30];
            loss(&logits, &mut grad);
            let mut scratch = vec![0.0; 30];
            for i in 0..30 {
                let (mut plus, mut minus) = (logits.clone(), logits.clone());
                plus[i] += 1e-2;
                minus[i] -= 1e-2;
                let numeric = (loss(&plus, &mut scratch) - loss(&minus, &mut scratch)) / 2e-2;
                assert!((numeric - grad[i]).abs() < 1e-3, "smoothing {smoothing}, {i}: {numeric} vs {}", grad[i]);
            }
        }
    }

    #[test]
    fn large_logits_do_not_overflow() {
        let mut grad = [0.0; 2];
        let loss = cross_entropy(&[1000.0, 0.0], &[0], 2, &mut grad);
        assert!(loss.abs() < 1e-6 && grad.iter().all(|g| g.is_finite()));
        let mut p = [0.0; 2];
        softmax(&[1000.0, 1000.0], &mut p);
        assert_eq!(p, [0.5, 0.5]);
    }
}
