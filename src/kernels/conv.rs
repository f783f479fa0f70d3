//! Convolution geometry over NHWC images: the offset tables that let [`super::gemm_indexed`] read
//! convolution windows in place, padding helpers, and a naive reference convolution.
//!
//! In NHWC the values of one window tap are `in_c` contiguous floats, so for output pixel q and
//! reduction index k = (kh, kw, c):
//!
//! ```text
//!   x_padded[window_offset[q] + tap_offset[k]]
//! ```
//!
//! is the input value that meets weight k. The same two tables, swapped, give the weight gradient.

/// The shape of one 2-D convolution over a batch of NHWC images (square kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeometry {
    pub fn padded_h(&self) -> usize {
        self.in_h + 2 * self.pad
    }
    pub fn padded_w(&self) -> usize {
        self.in_w + 2 * self.pad
    }
    pub fn out_h(&self) -> usize {
        (self.padded_h() - self.kernel) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.padded_w() - self.kernel) / self.stride + 1
    }
    /// Output pixels per image.
    pub fn out_pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }
    /// Length of the reduction: kernel * kernel * in_c.
    pub fn k_len(&self) -> usize {
        self.kernel * self.kernel * self.in_c
    }

    /// For every output pixel of every image, the offset in the padded input of its window's
    /// top-left value (channel 0).
    pub fn window_offsets(&self, out: &mut Vec<usize>) {
        let (ph, pw, c) = (self.padded_h(), self.padded_w(), self.in_c);
        out.clear();
        for b in 0..self.batch {
            for oh in 0..self.out_h() {
                for ow in 0..self.out_w() {
                    out.push(((b * ph + oh * self.stride) * pw + ow * self.stride) * c);
                }
            }
        }
    }

    /// For every reduction index (kh, kw, c), its offset from the window's top-left value.
    pub fn tap_offsets(&self, out: &mut Vec<usize>) {
        out.clear();
        for kh in 0..self.kernel {
            for kw in 0..self.kernel {
                for c in 0..self.in_c {
                    out.push((kh * self.padded_w() + kw) * self.in_c + c);
                }
            }
        }
    }
}

/// Images whose weight gradients one parallel task sums, in its own partial sum: up to 4 (eight
/// tasks for a batch of 32, enough for two cores to even out when one is slowed), fewer for
/// small batches so both cores work. It depends on the batch size only, so that adding the
/// partials in task order gives the same result on any number of threads.
pub fn images_per_group(batch: usize) -> usize {
    (batch / 2).clamp(1, 4)
}

/// Copies NHWC images `src` [batch, h, w, c] into `dst` with `pad` zeros on every side.
pub fn pad_nhwc(src: &[f32], batch: usize, h: usize, w: usize, c: usize, pad: usize, dst: &mut Vec<f32>) {
    use rayon::prelude::*;
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    dst.resize(batch * ph * pw * c, 0.0);
    // One task per image: this is a pass over megabytes of activations every step.
    dst.par_chunks_mut(ph * pw * c).zip(src.par_chunks(h * w * c)).for_each(|(out, image)| {
        if pad > 0 {
            out[..pad * pw * c].fill(0.0);
            out[(pad + h) * pw * c..].fill(0.0);
        }
        for y in 0..h {
            let row = &mut out[(y + pad) * pw * c..(y + pad + 1) * pw * c];
            row[..pad * c].fill(0.0);
            row[pad * c..(pad + w) * c].copy_from_slice(&image[y * w * c..(y + 1) * w * c]);
            row[(pad + w) * c..].fill(0.0);
        }
    });
}

/// The inverse of [`pad_nhwc`]: the centre of padded images, written over `dst` [batch, h, w, c].
pub fn unpad_nhwc(src: &[f32], batch: usize, h: usize, w: usize, c: usize, pad: usize, dst: &mut [f32]) {
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    for b in 0..batch {
        for y in 0..h {
            let to = ((b * h + y) * w) * c;
            let from = ((b * ph + y + pad) * pw + pad) * c;
            dst[to..to + w * c].copy_from_slice(&src[from..from + w * c]);
        }
    }
}

/// Reference convolution, straight from the definition: x NHWC, weight in PyTorch's OIHW layout,
/// result NHWC. Slow; used by tests to check the fast path.
pub fn conv2d_naive(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let (oh_n, ow_n, k) = (g.out_h(), g.out_w(), g.kernel);
    let mut y = vec![0.0f32; g.batch * oh_n * ow_n * g.out_c];
    for b in 0..g.batch {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                for o in 0..g.out_c {
                    let mut sum = bias[o];
                    for c in 0..g.in_c {
                        for kh in 0..k {
                            for kw in 0..k {
                                let ih = (oh * g.stride + kh) as isize - g.pad as isize;
                                let iw = (ow * g.stride + kw) as isize - g.pad as isize;
                                if ih < 0 || iw < 0 || ih >= g.in_h as isize || iw >= g.in_w as isize {
                                    continue;
                                }
                                let xv = x[((b * g.in_h + ih as usize) * g.in_w + iw as usize) * g.in_c + c];
                                sum += xv * weight[((o * g.in_c + c) * k + kh) * k + kw];
                            }
                        }
                    }
                    y[((b * oh_n + oh) * ow_n + ow) * g.out_c + o] = sum;
                }
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Epilogue, IndexedA, IndexedB, Isa, gemm_indexed};

    #[test]
    fn implicit_im2col_gemm_matches_naive_convolution() {
        for (stride, pad) in [(1, 0), (2, 1), (1, 2)] {
            let g = ConvGeometry { batch: 2, in_h: 7, in_w: 6, in_c: 3, out_c: 5, kernel: 3, stride, pad };
            let x: Vec<f32> = (0..2 * 7 * 6 * 3).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
            let w: Vec<f32> = (0..5 * 3 * 9).map(|i| ((i * 53 % 89) as f32 / 44.0) - 1.0).collect();
            let bias: Vec<f32> = (0..5).map(|i| i as f32 * 0.1).collect();
            // Weight in HWIO: row k = (kh, kw, c), 5 outputs each.
            let mut w_hwio = vec![0.0; 27 * 5];
            for o in 0..5 {
                for c in 0..3 {
                    for t in 0..9 {
                        w_hwio[(t * 3 + c) * 5 + o] = w[(o * 3 + c) * 9 + t];
                    }
                }
            }
            let mut xp = Vec::new();
            pad_nhwc(&x, 2, 7, 6, 3, pad, &mut xp);
            let (mut rows, mut taps) = (Vec::new(), Vec::new());
            g.window_offsets(&mut rows);
            g.tap_offsets(&mut taps);
            let b_k: Vec<usize> = (0..g.k_len()).map(|k| k * 5).collect();
            let want = conv2d_naive(&g, &x, &w, &bias);
            for isa in Isa::tested("implicit_im2col_gemm_matches_naive_convolution") {
                let mut y = vec![0.0; rows.len() * 5];
                gemm_indexed(
                    isa,
                    IndexedA { data: &xp, row: &rows, k_offsets: &taps },
                    IndexedB { data: &w_hwio, k_offsets: &b_k, n: 5 },
                    &mut y,
                    5,
                    Epilogue { bias: Some(&bias), ..Epilogue::OVERWRITE },
                );
                for (a, b) in y.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "{isa:?}: {a} vs {b} (stride {stride}, pad {pad})");
                }
            }
        }
    }

    #[test]
    fn pad_then_unpad_is_identity() {
        let x: Vec<f32> = (0..2 * 3 * 4 * 2).map(|i| i as f32).collect();
        let mut padded = Vec::new();
        pad_nhwc(&x, 2, 3, 4, 2, 2, &mut padded);
        assert_eq!(padded.len(), 2 * 7 * 8 * 2);
        assert_eq!(padded.iter().sum::<f32>(), x.iter().sum::<f32>());
        let mut back = vec![0.0; x.len()];
        unpad_nhwc(&padded, 2, 3, 4, 2, 2, &mut back);
        assert_eq!(back, x);
    }
}
