//! Max-pooling of one NHWC image (no padding): the forward pass over the SIMD layer, channels
//! in vectors, and the backward pass, which finds each window's maximum again rather than
//! storing where it was. PyTorch's rules throughout: the first of equal maxima takes the
//! gradient, and a NaN wins its window.
//!
//! Storing the maximum's index costs 8 bytes written per output and read back; finding it again
//! reads the window beside dx, which the backward pass writes anyway, and leaves both passes
//! branch-free and in vectors.

use super::isa::Isa;
use super::simd::{self, Lanes, SimdTask};

/// An image's geometry and the pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl Pool {
    pub fn out_height(&self) -> usize {
        (self.height - self.kernel) / self.stride + 1
    }

    pub fn out_width(&self) -> usize {
        (self.width - self.kernel) / self.stride + 1
    }

    fn check(&self, x: usize, y: usize) {
        assert!(self.kernel > 0 && self.stride > 0 && self.height >= self.kernel && self.width >= self.kernel);
        assert_eq!(x, self.height * self.width * self.channels, "max-pool input size");
        assert_eq!(y, self.out_height() * self.out_width() * self.channels, "max-pool output size");
    }

    /// Where window element (ky, kx) of output (oy, ox) starts in x.
    fn at(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> usize {
        ((oy * self.stride + ky) * self.width + ox * self.stride + kx) * self.channels
    }
}

/// y = the maximum of each window of x, per channel; with `relu`, max(that, 0) (a NaN
/// becoming 0, as ReLU makes it).
pub fn max_pool(isa: Isa, pool: Pool, relu: bool, x: &[f32], y: &mut [f32]) {
    pool.check(x.len(), y.len());
    simd::run(isa, Forward { pool, relu, x, y });
}

struct Forward<'a> {
    pool: Pool,
    relu: bool,
    x: &'a [f32],
    y: &'a mut [f32],
}

impl SimdTask for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Forward { pool, relu, x, y } = self;
        let c = pool.channels;
        for oy in 0..pool.out_height() {
            for ox in 0..pool.out_width() {
                let out = (oy * pool.out_width() + ox) * c;
                for c0 in (0..c).step_by(V::LANES) {
                    window_max::<V>(pool, relu, x, &mut y[out..out + c], oy, ox, c0);
                }
            }
        }
    }
}

/// Channels c0.. of output (oy, ox), a vector's worth or the channels left, into `out` (the
/// output pixel's channels).
#[inline(always)]
fn window_max<V: Lanes>(pool: Pool, relu: bool, x: &[f32], out: &mut [f32], oy: usize, ox: usize, c0: usize) {
    assert!(c0 < pool.channels && out.len() == pool.channels);
    let mask = V::mask(pool.channels - c0);
    let load = |ky, kx| {
        let at = pool.at(oy, ox, ky, kx) + c0;
        assert!(at + (pool.channels - c0).min(V::LANES) <= x.len());
        // SAFETY: the masked lanes at..at + min(LANES, channels - c0) lie in x (checked
        // above); the instruction set is the one `simd::run` chose.
        unsafe { V::load_masked(x.as_ptr().add(at), mask) }
    };
    let mut best = load(0, 0);
    for ky in 0..pool.kernel {
        for kx in 0..pool.kernel {
            if ky + kx > 0 {
                best = best.take_max(load(ky, kx));
            }
        }
    }
    if relu {
        best = best.relu();
    }
    // SAFETY: the masked lanes c0..min(c0 + LANES, channels) lie in out.
    unsafe { best.store_masked(out.as_mut_ptr().add(c0), mask) }
}

/// dx = dy routed back to where each window's maximum came from (dx is overwritten; windows
/// that overlap add up, in the order of the outputs). `y` is this pool's output for `x`, with
/// the ReLU applied when `relu` (as `max_pool` made it): then dy counts only where y > 0, the
/// ReLU's backward in the same pass.
pub fn max_pool_backward(isa: Isa, pool: Pool, relu: bool, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
    pool.check(x.len(), y.len());
    assert_eq!((dx.len(), dy.len()), (x.len(), y.len()), "max-pool gradient sizes");
    // Windows that tile x (stride = kernel, the usual 2x2 pool) hold each element of x at most
    // once: each is then written once, with no zeroing pass before and no read of dx, which
    // halves the memory traffic of this memory-bound pass. Only what no window covers is zeroed.
    let tiled = pool.stride == pool.kernel;
    if tiled {
        zero_uncovered(pool, dx);
    } else {
        dx.fill(0.0);
    }
    simd::run(isa, Backward { pool, tiled, relu, x, y, dy, dx });
}

/// Zeroes the rows and columns of dx that no window covers (stride = kernel).
fn zero_uncovered(pool: Pool, dx: &mut [f32]) {
    let (row, c) = (pool.width * pool.channels, pool.channels);
    let (rows, cols) = (pool.out_height() * pool.stride, pool.out_width() * pool.stride);
    for (y, dx_row) in dx.chunks_mut(row).enumerate() {
        let uncovered = if y < rows { cols * c } else { 0 };
        dx_row[uncovered..].fill(0.0);
    }
}

struct Backward<'a> {
    pool: Pool,
    /// Windows tile x: each element of dx is written once, not accumulated.
    tiled: bool,
    relu: bool,
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
}

impl SimdTask for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Backward { pool, tiled, relu, x, y, dy, dx } = self;
        for oy in 0..pool.out_height() {
            for ox in 0..pool.out_width() {
                for c0 in (0..pool.channels).step_by(V::LANES) {
                    route_back::<V>(pool, tiled, relu, x, y, dy, dx, oy, ox, c0);
                }
            }
        }
    }
}

/// Channels c0.. of output (oy, ox), a vector's worth or the channels left: the window is
/// scanned in order and dy added where x first equals the maximum (branch-free: `left` is 1 in
/// the lanes not yet routed). With `tiled`, dx there is not read but written as 0 plus what is
/// routed (the same bits as adding to the zeroed dx: -0.0 becomes +0.0 either way); with
/// `relu`, dy is taken as 0 where y is not positive.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn route_back<V: Lanes>(
    pool: Pool,
    tiled: bool,
    relu: bool,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    oy: usize,
    ox: usize,
    c0: usize,
) {
    let lanes = (pool.channels - c0).min(V::LANES);
    let mask = V::mask(lanes);
    let out = (oy * pool.out_width() + ox) * pool.channels + c0;
    assert!(c0 < pool.channels && out + lanes <= y.len() && y.len() == dy.len() && x.len() == dx.len());
    // SAFETY (every access below): the masked lanes of the output lie in y and dy (checked
    // above), each window element's in x and dx (checked in the loop); the instruction set is
    // the one `simd::run` chose.
    let (max, grad) =
        unsafe { (V::load_masked(y.as_ptr().add(out), mask), V::load_masked(dy.as_ptr().add(out), mask)) };
    let grad = if relu { grad.where_positive(max) } else { grad };
    let mut left = V::splat(1.0);
    for ky in 0..pool.kernel {
        for kx in 0..pool.kernel {
            let at = pool.at(oy, ox, ky, kx) + c0;
            assert!(at + lanes <= x.len());
            unsafe {
                let hit = V::load_masked(x.as_ptr().add(at), mask).equal_mask(max).mul(left);
                let before = if tiled { V::splat(0.0) } else { V::load_masked(dx.as_ptr().add(at), mask) };
                let routed = before.add(grad.where_positive(hit));
                routed.store_masked(dx.as_mut_ptr().add(at), mask);
                left = left.sub(hit);
            }
        }
    }
}

/// The reference: each window scanned in order, the first maximum (or first NaN) taken and its
/// index kept, the gradient sent there.
#[cfg(test)]
pub(crate) fn max_pool_naive(pool: Pool, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let c = pool.channels;
    let (mut y, mut dx) = (vec![0.0; pool.out_height() * pool.out_width() * c], vec![0.0; x.len()]);
    for oy in 0..pool.out_height() {
        for ox in 0..pool.out_width() {
            for ch in 0..c {
                let mut best = (f32::NEG_INFINITY, usize::MAX);
                for k in 0..pool.kernel * pool.kernel {
                    let at = pool.at(oy, ox, k / pool.kernel, k % pool.kernel) + ch;
                    let v = x[at];
                    if k == 0 || v > best.0 || (v.is_nan() && !best.0.is_nan()) {
                        best = (v, at);
                    }
                }
                let out = (oy * pool.out_width() + ox) * c + ch;
                y[out] = best.0;
                dx[best.1] += dy[out];
            }
        }
    }
    (y, dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values;

    #[test]
    fn every_isa_matches_naive() {
        let pools = [
            Pool { height: 24, width: 24, channels: 24, kernel: 2, stride: 2 },
            // Tiling windows with a row and a column no window covers.
            Pool { height: 7, width: 9, channels: 20, kernel: 2, stride: 2 },
            Pool { height: 8, width: 7, channels: 5, kernel: 3, stride: 3 },
            Pool { height: 7, width: 9, channels: 37, kernel: 3, stride: 2 },
            Pool { height: 5, width: 4, channels: 3, kernel: 3, stride: 1 },
        ];
        for isa in Isa::tested("pool::every_isa_matches_naive") {
            for (i, pool) in pools.into_iter().enumerate() {
                let mut x = test_values(pool.height * pool.width * pool.channels, i as u64);
                // Ties (quantised values, zeros of both signs) and NaNs, which the rules decide.
                for (j, v) in x.iter_mut().enumerate() {
                    *v = (*v * 4.0).round() / 4.0;
                    if j % 97 == 5 {
                        *v = f32::NAN;
                    } else if j % 13 == 0 {
                        *v = -0.0;
                    }
                }
                let dy = test_values(pool.out_height() * pool.out_width() * pool.channels, 50 + i as u64);
                let (want_y, want_dx) = max_pool_naive(pool, &x, &dy);
                let mut y = vec![0.0; want_y.len()];
                max_pool(isa, pool, false, &x, &mut y);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&y), bits(&want_y), "{isa} {pool:?}: forward");
                let mut dx = vec![1.0; x.len()];
                max_pool_backward(isa, pool, false, &x, &y, &dy, &mut dx);
                assert_eq!(bits(&dx), bits(&want_dx), "{isa} {pool:?}: backward");
                // With the ReLU fused: max(y, 0) (NaN to 0, as f32::max makes it), and the
                // gradient only where that is positive.
                let mut relu_y = vec![0.0; want_y.len()];
                max_pool(isa, pool, true, &x, &mut relu_y);
                assert_eq!(bits(&relu_y), bits(&want_y.iter().map(|v| v.max(0.0)).collect::<Vec<_>>()), "{isa}: relu");
                let masked: Vec<f32> = dy.iter().zip(&relu_y).map(|(&d, &y)| if y > 0.0 { d } else { 0.0 }).collect();
                let want_relu_dx = max_pool_naive(pool, &x, &masked).1;
                let mut relu_dx = vec![1.0; x.len()];
                max_pool_backward(isa, pool, true, &x, &relu_y, &dy, &mut relu_dx);
                assert_eq!(bits(&relu_dx), bits(&want_relu_dx), "{isa} {pool:?}: backward through the relu");
            }
        }
    }
}
