//! Per-channel passes over NHWC data, one row of `c` channel values per pixel: what BatchNorm
//! does to every pixel. Each is vectorised across the channels (whole vectors, then single
//! channels) and does, lane by lane, exactly the operations of the naive reference beside it in
//! the same order (no fused multiply-add), so every instruction set gives the reference's bits:
//! a model trained before these kernels existed is reproduced bit for bit.

use super::isa::Isa;
use super::simd::{self, Lanes, SimdTask};

/// `sum[ch] += x - pivot[ch]` and `sum_squares[ch] += (x - pivot[ch])^2` over every row of `x`,
/// rows in order.
pub fn shifted_sums(isa: Isa, x: &[f32], pivot: &[f32], sum: &mut [f32], sum_squares: &mut [f32]) {
    let c = check_rows(x.len(), pivot.len());
    assert!(sum.len() == c && sum_squares.len() == c, "one sum per channel");
    simd::run(
        isa,
        OnChannels(Sums { kind: SumKind::Shifted, a: x, b: x, reference: pivot, first: sum, second: sum_squares }),
    )
}

/// `sum_dy[ch] += dy` and `sum_dy_centred[ch] += dy * (x - mean[ch])` over every row, rows in
/// order (BatchNorm's backward sums).
pub fn centred_sums(isa: Isa, dy: &[f32], x: &[f32], mean: &[f32], sum_dy: &mut [f32], sum_dy_centred: &mut [f32]) {
    let c = check_rows(x.len(), mean.len());
    assert!(dy.len() == x.len() && sum_dy.len() == c && sum_dy_centred.len() == c, "sizes");
    simd::run(
        isa,
        OnChannels(Sums {
            kind: SumKind::Centred,
            a: dy,
            b: x,
            reference: mean,
            first: sum_dy,
            second: sum_dy_centred,
        }),
    )
}

/// `y = x * scale[ch] + shift[ch]`, then `max(y, 0)` with `relu`.
pub fn scale_shift(isa: Isa, x: &[f32], y: &mut [f32], scale: &[f32], shift: &[f32], relu: bool) {
    check_rows(x.len(), scale.len());
    assert!(y.len() == x.len() && shift.len() == scale.len(), "sizes");
    simd::run(isa, OnChannels(ScaleShift { x, y, scale, shift, relu }))
}

/// BatchNorm's input gradient: `dx = gain[ch] * (dy - mean_dy[ch] - (x - mean[ch]) * slope[ch])`.
pub struct InputGradient<'a> {
    pub gain: &'a [f32],
    pub mean_dy: &'a [f32],
    pub mean: &'a [f32],
    pub slope: &'a [f32],
}

/// `dx` from `dy` and `x` as [`InputGradient`] says.
pub fn input_gradient(isa: Isa, dx: &mut [f32], dy: &[f32], x: &[f32], per_channel: &InputGradient) {
    let c = check_rows(x.len(), per_channel.gain.len());
    let p = per_channel;
    assert!(dx.len() == x.len() && dy.len() == x.len(), "sizes");
    assert!(p.mean_dy.len() == c && p.mean.len() == c && p.slope.len() == c, "one value per channel");
    simd::run(isa, OnChannels(Gradient { dx, dy, x, p }))
}

/// Rows of `c` values: returns `c`; panics on sizes that are bugs in the caller.
fn check_rows(len: usize, c: usize) -> usize {
    assert!(c > 0 && len.is_multiple_of(c), "rows of {c} channels");
    c
}

/// A pass over rows of channels, written once for a chunk of `W::LANES` channels.
trait PerChannel {
    fn channels(&self) -> usize;
    /// Channels c0..c0 + W::LANES of every row.
    fn chunk<W: Lanes>(&mut self, c0: usize);
}

/// Runs a [`PerChannel`] pass on whole vectors of channels, then on the channels left over one
/// at a time (as `f32`).
struct OnChannels<T>(T);

impl<T: PerChannel> SimdTask for OnChannels<T> {
    type Output = ();

    #[inline(always)]
    fn run<V: Lanes>(mut self) {
        let c = self.0.channels();
        let whole = c - c % V::LANES;
        for c0 in (0..whole).step_by(V::LANES) {
            self.0.chunk::<V>(c0);
        }
        for c0 in whole..c {
            self.0.chunk::<f32>(c0);
        }
    }
}

#[derive(Clone, Copy)]
enum SumKind {
    /// first += a - reference, second += (a - reference)^2
    Shifted,
    /// first += a, second += a * (b - reference)
    Centred,
}

struct Sums<'a> {
    kind: SumKind,
    a: &'a [f32],
    b: &'a [f32],
    reference: &'a [f32],
    first: &'a mut [f32],
    second: &'a mut [f32],
}

impl PerChannel for Sums<'_> {
    fn channels(&self) -> usize {
        self.reference.len()
    }

    /// The two sums stay in registers over every row.
    #[inline(always)]
    fn chunk<W: Lanes>(&mut self, c0: usize) {
        let c = self.reference.len();
        // SAFETY: c0 + W::LANES <= c (see `OnChannels`), and every row holds c values (checked by
        // the public functions).
        unsafe {
            let reference = W::load(self.reference.as_ptr().add(c0));
            let mut first = W::load(self.first.as_ptr().add(c0));
            let mut second = W::load(self.second.as_ptr().add(c0));
            for row in (0..self.a.len()).step_by(c) {
                let a = W::load(self.a.as_ptr().add(row + c0));
                match self.kind {
                    SumKind::Shifted => {
                        let d = a.sub(reference);
                        first = first.add(d);
                        second = second.add(d.mul(d));
                    }
                    SumKind::Centred => {
                        let b = W::load(self.b.as_ptr().add(row + c0));
                        first = first.add(a);
                        second = second.add(a.mul(b.sub(reference)));
                    }
                }
            }
            first.store(self.first.as_mut_ptr().add(c0));
            second.store(self.second.as_mut_ptr().add(c0));
        }
    }
}

struct ScaleShift<'a> {
    x: &'a [f32],
    y: &'a mut [f32],
    scale: &'a [f32],
    shift: &'a [f32],
    relu: bool,
}

impl PerChannel for ScaleShift<'_> {
    fn channels(&self) -> usize {
        self.scale.len()
    }

    #[inline(always)]
    fn chunk<W: Lanes>(&mut self, c0: usize) {
        let c = self.scale.len();
        // SAFETY: as in `Sums::chunk`.
        unsafe {
            let (a, b) = (W::load(self.scale.as_ptr().add(c0)), W::load(self.shift.as_ptr().add(c0)));
            for row in (0..self.x.len()).step_by(c) {
                let y = W::load(self.x.as_ptr().add(row + c0)).mul(a).add(b);
                let y = if self.relu { y.relu() } else { y };
                y.store(self.y.as_mut_ptr().add(row + c0));
            }
        }
    }
}

struct Gradient<'a> {
    dx: &'a mut [f32],
    dy: &'a [f32],
    x: &'a [f32],
    p: &'a InputGradient<'a>,
}

impl PerChannel for Gradient<'_> {
    fn channels(&self) -> usize {
        self.p.gain.len()
    }

    #[inline(always)]
    fn chunk<W: Lanes>(&mut self, c0: usize) {
        let p = self.p;
        let c = p.gain.len();
        // SAFETY: as in `Sums::chunk`.
        unsafe {
            let gain = W::load(p.gain.as_ptr().add(c0));
            let mean_dy = W::load(p.mean_dy.as_ptr().add(c0));
            let mean = W::load(p.mean.as_ptr().add(c0));
            let slope = W::load(p.slope.as_ptr().add(c0));
            for row in (0..self.x.len()).step_by(c) {
                let dy = W::load(self.dy.as_ptr().add(row + c0));
                let x = W::load(self.x.as_ptr().add(row + c0));
                let dx = gain.mul(dy.sub(mean_dy).sub(x.sub(mean).mul(slope)));
                dx.store(self.dx.as_mut_ptr().add(row + c0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as random;

    /// Channel counts that are and are not whole vectors, and a few rows.
    const SHAPES: [(usize, usize); 5] = [(1, 3), (5, 4), (16, 2), (37, 6), (64, 5)];

    #[test]
    fn every_isa_gives_the_references_bits() {
        for isa in Isa::tested("every_isa_gives_the_references_bits") {
            for (c, rows) in SHAPES {
                let (x, dy) = (random(c * rows, 1), random(c * rows, 2));
                let (k, a, b, s) = (random(c, 3), random(c, 4), random(c, 5), random(c, 6));
                let (mut s1, mut q1) = (random(c, 7), random(c, 8));
                let (mut s2, mut q2) = (s1.clone(), q1.clone());
                shifted_sums(isa, &x, &k, &mut s1, &mut q1);
                let (mut t1, mut u1) = (s1.clone(), q1.clone());
                let (mut t2, mut u2) = (s1.clone(), q1.clone());
                centred_sums(isa, &dy, &x, &k, &mut t1, &mut u1);
                for row in x.chunks(c) {
                    for ch in 0..c {
                        let d = row[ch] - k[ch];
                        s2[ch] += d;
                        q2[ch] += d * d;
                    }
                }
                for (row, dy_row) in x.chunks(c).zip(dy.chunks(c)) {
                    for ch in 0..c {
                        t2[ch] += dy_row[ch];
                        u2[ch] += dy_row[ch] * (row[ch] - k[ch]);
                    }
                }
                assert_eq!((s1, q1, t1, u1), (s2, q2, t2, u2), "{isa} {c} sums");
                for relu in [false, true] {
                    let mut y = vec![f32::NAN; x.len()];
                    scale_shift(isa, &x, &mut y, &a, &b, relu);
                    let want: Vec<f32> = (0..x.len())
                        .map(|i| {
                            let v = x[i] * a[i % c] + b[i % c];
                            if relu { v.max(0.0) } else { v }
                        })
                        .collect();
                    assert_eq!(y, want, "{isa} {c} scale_shift relu {relu}");
                }
                let mut dx = vec![f32::NAN; x.len()];
                let per_channel = InputGradient { gain: &a, mean_dy: &b, mean: &k, slope: &s };
                input_gradient(isa, &mut dx, &dy, &x, &per_channel);
                let want: Vec<f32> =
                    (0..x.len()).map(|i| a[i % c] * (dy[i] - b[i % c] - (x[i] - k[i % c]) * s[i % c])).collect();
                assert_eq!(dx, want, "{isa} {c} input_gradient");
            }
        }
    }
}
