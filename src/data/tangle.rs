//! Pen tangles: one long stroke that loops and crosses itself, the scribble a user makes when
//! testing a reader with "anything". Two generators, neither a random walk (the held-out
//! scribbles of `examples/not_a_digit.rs` are random walks, so they stay a fair test):
//!
//! - a pen whose bend follows a few slow waves: the heading is the integral of a curvature made
//!   of two or three sines, so the stroke meanders and curls into loops;
//! - a Fourier curve: x and y each a sum of two to five harmonics over most of a period, which
//!   knots itself into loops.
//!
//! A single loop, an 8 or a 6 is one stroke crossing itself once or twice; only paths that cross
//! themselves at least [`FEWEST_CROSSINGS`] times, each closing a loop large enough to stay open
//! under the pen, are kept, so no tangle is a digit written in one stroke.

use super::nondigit::{below, uniform};
use rand_chacha::ChaCha8Rng;
use std::f32::consts::TAU;

/// A digit written in one stroke crosses itself at most twice (an 8 closed over its start).
pub const FEWEST_CROSSINGS: usize = 3;

/// Points of a tangle fitted into a `side`-pixel square with `margin` pixels to spare, or None
/// when the path crosses itself too few times to be no digit: crossings count only where the
/// loop they close spans a sixth of the square (a smaller one fills in under a thick pen).
pub fn tangle(rng: &mut ChaCha8Rng, side: f32, margin: f32) -> Option<Vec<(f32, f32)>> {
    let path = fitted(&if below(rng, 2) == 0 { meander(rng) } else { fourier(rng) }, side, margin);
    (crossings(&path, side / 6.0) >= FEWEST_CROSSINGS).then_some(path)
}

/// A pen that moves a unit each step, turning by a curvature that is a sum of sines of the
/// distance drawn.
fn meander(rng: &mut ChaCha8Rng) -> Vec<(f32, f32)> {
    let steps = 120 + below(rng, 240) as usize;
    let bias = uniform(rng, -0.06, 0.06);
    let waves: Vec<(f32, f32, f32)> = (0..2 + below(rng, 2))
        .map(|_| (uniform(rng, 0.05, 0.2), uniform(rng, 0.01, 0.08), uniform(rng, 0.0, TAU)))
        .collect();
    let (mut x, mut y, mut heading) = (0.0f32, 0.0f32, uniform(rng, 0.0, TAU));
    let mut points = Vec::with_capacity(steps + 1);
    points.push((x, y));
    for s in 0..steps {
        let s = s as f32;
        heading +=
            bias + waves.iter().map(|(amplitude, rate, phase)| amplitude * (rate * s + phase).sin()).sum::<f32>();
        x += heading.cos();
        y += heading.sin();
        points.push((x, y));
    }
    points
}

/// x and y each a sum of harmonics k = 1..=K with amplitudes falling off with k, drawn over 60%
/// to 100% of the period.
fn fourier(rng: &mut ChaCha8Rng) -> Vec<(f32, f32)> {
    let harmonics = 2 + below(rng, 4) as usize;
    let terms: Vec<[f32; 4]> = (1..=harmonics)
        .map(|k| {
            let fall = (k as f32).powf(-0.6);
            [
                uniform(rng, 0.2, 1.0) * fall,
                uniform(rng, 0.0, TAU),
                uniform(rng, 0.2, 1.0) * fall,
                uniform(rng, 0.0, TAU),
            ]
        })
        .collect();
    let (start, span) = (uniform(rng, 0.0, TAU), uniform(rng, 0.6, 1.0) * TAU);
    (0..=240)
        .map(|i| {
            let t = start + span * i as f32 / 240.0;
            terms.iter().enumerate().fold((0.0, 0.0), |(x, y), (k, [ax, px, ay, py])| {
                let k = (k + 1) as f32;
                (x + ax * (k * t + px).cos(), y + ay * (k * t + py).sin())
            })
        })
        .collect()
}

/// How many pairs of non-adjacent segments of the path cross where the loop between them (the
/// path from one to the other) spans at least `smallest_loop` across or down.
pub fn crossings(path: &[(f32, f32)], smallest_loop: f32) -> usize {
    let segments: Vec<_> = path.windows(2).map(|w| (w[0], w[1])).collect();
    let mut count = 0;
    for (i, &a) in segments.iter().enumerate() {
        for (j, &b) in segments.iter().enumerate().skip(i + 2) {
            count += usize::from(cross(a, b) && span(&path[i + 1..=j]) >= smallest_loop);
        }
    }
    count
}

/// The larger side of the points' bounding box.
fn span(points: &[(f32, f32)]) -> f32 {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for &(x, y) in points {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    (x1 - x0).max(y1 - y0)
}

/// Whether two segments cross (each one's ends on opposite sides of the other's line).
fn cross((p, q): ((f32, f32), (f32, f32)), (r, s): ((f32, f32), (f32, f32))) -> bool {
    let side = |a: (f32, f32), b: (f32, f32), c: (f32, f32)| (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0);
    side(p, q, r) * side(p, q, s) < 0.0 && side(r, s, p) * side(r, s, q) < 0.0
}

/// The path scaled (same factor both ways) and moved into [margin, side - margin].
fn fitted(path: &[(f32, f32)], side: f32, margin: f32) -> Vec<(f32, f32)> {
    let (x0, y0) = path.iter().fold((f32::MAX, f32::MAX), |(x0, y0), &(x, y)| (x0.min(x), y0.min(y)));
    let scale = (side - 2.0 * margin) / span(path).max(1e-6);
    path.iter().map(|&(x, y)| (margin + (x - x0) * scale, margin + (y - y0) * scale)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn crossings_are_counted_once_each() {
        let square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)];
        assert_eq!(crossings(&square, 0.0), 0, "a closed ring touches its start but does not cross");
        let figure_eight = [(0.0, 0.0), (2.0, 2.0), (2.0, 0.0), (0.0, 2.0), (0.0, 0.0)];
        assert_eq!(crossings(&figure_eight, 0.0), 1);
        assert_eq!(crossings(&figure_eight, 2.0), 1, "its loop spans 2");
        assert_eq!(crossings(&figure_eight, 2.5), 0, "too small a loop");
        // A pentagram crosses itself five times; drawn without its last edge, three.
        let star: Vec<(f32, f32)> = (0..5).map(|i| (i * 2) as f32 * TAU / 5.0).map(|a| (a.cos(), a.sin())).collect();
        assert_eq!(crossings(&star, 0.0), 3);
    }

    #[test]
    fn tangles_cross_themselves_and_fit_the_square() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let drawn: Vec<_> = (0..200).filter_map(|_| tangle(&mut rng, 64.0, 4.0)).collect();
        assert!(drawn.len() >= 40, "most draws are kept: {}", drawn.len());
        for path in &drawn {
            assert!(crossings(path, 64.0 / 6.0) >= FEWEST_CROSSINGS);
            assert!(path.iter().all(|&(x, y)| (3.99..=60.01).contains(&x) && (3.99..=60.01).contains(&y)));
        }
    }
}
