//! Training-time degradations: what happens to real digits between the pen and the model (noise,
//! a line or a mark across, hollow strokes, uneven or partly inverted backgrounds, blur), given to
//! a share of the training images so that a model which can say "not a digit" still reads
//! digits that are merely damaged. Applied after the geometric augmentation, to the model's
//! input (values in [0, 1], light ink on dark), with the image's own generator.
//!
//! The corruptions of `eval --corrupt` and the held-out ones of `examples/not_a_digit.rs` are
//! made differently (other noise, other marks, other lighting), so they measure what carries
//! over rather than what was trained.

use super::nondigit::uniform;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;

/// One kind of damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Gaussian-like noise (the sum of three uniform draws) of up to 0.35 either way.
    Noise,
    /// Pepper and salt: up to 12% of the pixels set to black or white.
    Speckle,
    /// One to three straight lines across the frame, thin to bold.
    Lines,
    /// The strokes hollowed: only their outline kept, as an outlined font draws them.
    Hollow,
    /// A background that brightens across the frame (light falling across a page).
    Gradient,
    /// The picture inverted on one side of a straight cut.
    PartInverted,
    /// A 3x3 box blur, one to three times.
    Blur,
    /// Light that varies smoothly and at random over the frame (a coarse random grid,
    /// interpolated), added to everything.
    Lighting,
    /// Motion blur: the mean along a straight line of 3 to 7 pixels in any direction, with the
    /// ink sometimes fainter too.
    Smear,
}

impl Damage {
    pub const ALL: [Damage; 9] = [
        Damage::Noise,
        Damage::Speckle,
        Damage::Lines,
        Damage::Hollow,
        Damage::Gradient,
        Damage::PartInverted,
        Damage::Blur,
        Damage::Lighting,
        Damage::Smear,
    ];
}

/// With probability `share`, one damage drawn at random applied to `image` (`side` x `side`).
/// `scratch` holds a copy for the neighbourhood operations (kept by the caller, so nothing is
/// allocated per image once it has grown).
pub fn maybe_degrade(image: &mut [f32], side: usize, share: f32, rng: &mut ChaCha8Rng, scratch: &mut Vec<f32>) {
    if share <= 0.0 || uniform(rng, 0.0, 1.0) >= share {
        return;
    }
    let damage = Damage::ALL[(rng.next_u32() as usize) % Damage::ALL.len()];
    degrade(image, side, damage, rng, scratch);
}

/// `damage` applied to `image` (`side` x `side`, values in [0, 1]).
pub fn degrade(image: &mut [f32], side: usize, damage: Damage, rng: &mut ChaCha8Rng, scratch: &mut Vec<f32>) {
    debug_assert_eq!(image.len(), side * side);
    match damage {
        Damage::Noise => {
            let sigma = uniform(rng, 0.08, 0.35);
            for v in image.iter_mut() {
                let n = (uniform(rng, -1.0, 1.0) + uniform(rng, -1.0, 1.0) + uniform(rng, -1.0, 1.0)) / 3.0;
                *v += 1.7 * sigma * n;
            }
        }
        Damage::Speckle => {
            let density = uniform(rng, 0.02, 0.12);
            for v in image.iter_mut() {
                let r = uniform(rng, 0.0, 1.0);
                if r < density / 2.0 {
                    *v = 0.0;
                } else if r < density {
                    *v = 1.0;
                }
            }
        }
        Damage::Lines => {
            for _ in 0..1 + rng.next_u32() % 3 {
                line_across(image, side, rng);
            }
        }
        Damage::Hollow => {
            // The stroke thickened by a pixel, minus that thickened stroke thinned again: a rim
            // one pixel wide on each side, nothing inside.
            let len = image.len();
            scratch.resize(2 * len, 0.0);
            let (thick, core) = scratch.split_at_mut(len);
            neighbourhood_into(image, side, thick, f32::max);
            neighbourhood_into(thick, side, core, f32::min);
            for ((v, &t), &c) in image.iter_mut().zip(thick.iter()).zip(core.iter()) {
                *v = t - c;
            }
        }
        Damage::Gradient => {
            let angle = uniform(rng, 0.0, std::f32::consts::TAU);
            let strength = uniform(rng, 0.2, 0.6);
            let (nx, ny) = (angle.cos(), angle.sin());
            for (i, v) in image.iter_mut().enumerate() {
                let (x, y) = ((i % side) as f32 / side as f32 - 0.5, (i / side) as f32 / side as f32 - 0.5);
                *v += strength * (0.5 + x * nx + y * ny).clamp(0.0, 1.0);
            }
        }
        Damage::PartInverted => {
            let angle = uniform(rng, 0.0, std::f32::consts::TAU);
            let offset = uniform(rng, -0.3, 0.3) * side as f32;
            let (nx, ny) = (angle.cos(), angle.sin());
            let c = side as f32 / 2.0;
            for (i, v) in image.iter_mut().enumerate() {
                let (x, y) = ((i % side) as f32 - c, (i / side) as f32 - c);
                if x * nx + y * ny > offset {
                    *v = 1.0 - v.clamp(0.0, 1.0);
                }
            }
        }
        Damage::Blur => {
            scratch.resize(image.len(), 0.0);
            for _ in 0..1 + rng.next_u32() % 3 {
                neighbourhood_into(image, side, scratch, |a, b| a + b);
                image.iter_mut().zip(scratch.iter()).for_each(|(v, &s)| *v = s / 9.0);
            }
        }
        Damage::Lighting => {
            const CELLS: usize = 4;
            let mut grid = [0.0f32; (CELLS + 1) * (CELLS + 1)];
            let strength = uniform(rng, 0.2, 0.6);
            grid.iter_mut().for_each(|g| *g = strength * uniform(rng, 0.0, 1.0));
            for (i, v) in image.iter_mut().enumerate() {
                let scale = CELLS as f32 / side as f32;
                let (gx, gy) = ((i % side) as f32 * scale, (i / side) as f32 * scale);
                let (ix, iy) = ((gx as usize).min(CELLS - 1), (gy as usize).min(CELLS - 1));
                let (tx, ty) = (gx - ix as f32, gy - iy as f32);
                let at = |x: usize, y: usize| grid[y * (CELLS + 1) + x];
                *v += (at(ix, iy) * (1.0 - tx) + at(ix + 1, iy) * tx) * (1.0 - ty)
                    + (at(ix, iy + 1) * (1.0 - tx) + at(ix + 1, iy + 1) * tx) * ty;
            }
        }
        Damage::Smear => {
            let angle = uniform(rng, 0.0, std::f32::consts::PI);
            let (dx, dy) = (angle.cos(), angle.sin());
            let reach = 1 + (rng.next_u32() % 3) as i32;
            let ink = if rng.next_u32().is_multiple_of(2) { uniform(rng, 0.5, 0.9) } else { 1.0 };
            scratch.resize(image.len(), 0.0);
            for (i, out) in scratch.iter_mut().enumerate() {
                let (x, y) = ((i % side) as f32, (i / side) as f32);
                let mut sum = 0.0;
                for step in -reach..=reach {
                    let (sx, sy) = ((x + step as f32 * dx).round(), (y + step as f32 * dy).round());
                    if sx >= 0.0 && sy >= 0.0 && (sx as usize) < side && (sy as usize) < side {
                        sum += image[sy as usize * side + sx as usize];
                    }
                }
                *out = ink * sum / (2 * reach + 1) as f32;
            }
            image.copy_from_slice(scratch);
        }
    }
    image.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
}

/// A straight line between two points on the frame's edges.
fn line_across(image: &mut [f32], side: usize, rng: &mut ChaCha8Rng) {
    let s = side as f32;
    let edge_point = |rng: &mut ChaCha8Rng| {
        let t = uniform(rng, 0.0, s);
        match rng.next_u32() % 4 {
            0 => (t, 0.0),
            1 => (t, s),
            2 => (0.0, t),
            _ => (s, t),
        }
    };
    let ((ax, ay), (bx, by)) = (edge_point(rng), edge_point(rng));
    let (half, level) = (uniform(rng, 0.4, 1.6), uniform(rng, 0.5, 1.0));
    let (dx, dy) = (bx - ax, by - ay);
    let length = (dx * dx + dy * dy).sqrt().max(1e-3);
    for (i, v) in image.iter_mut().enumerate() {
        let (px, py) = ((i % side) as f32 + 0.5 - ax, (i / side) as f32 + 0.5 - ay);
        let distance = (px * dy - py * dx).abs() / length;
        let coverage = (half - distance + 0.5).clamp(0.0, 1.0) * level;
        *v = v.max(coverage);
    }
}

/// `out[p]` = `combine` folded over the 3x3 neighbourhood of p (inside the frame).
fn neighbourhood_into(image: &[f32], side: usize, out: &mut [f32], combine: impl Fn(f32, f32) -> f32) {
    for y in 0..side {
        for x in 0..side {
            let mut acc = image[y * side + x];
            let mut first = true;
            for ny in y.saturating_sub(1)..(y + 2).min(side) {
                for nx in x.saturating_sub(1)..(x + 2).min(side) {
                    let v = image[ny * side + nx];
                    acc = if first { v } else { combine(acc, v) };
                    first = false;
                }
            }
            out[y * side + x] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn bar() -> Vec<f32> {
        (0..784).map(|p| if (11..17).contains(&(p % 28)) && (4..24).contains(&(p / 28)) { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn every_damage_changes_the_image_and_keeps_values_in_range() {
        let mut scratch = Vec::new();
        for damage in Damage::ALL {
            for seed in 0..5 {
                let mut image = bar();
                degrade(&mut image, 28, damage, &mut ChaCha8Rng::seed_from_u64(seed), &mut scratch);
                assert!(image.iter().all(|v| (0.0..=1.0).contains(v)), "{damage:?}");
                assert_ne!(image, bar(), "{damage:?} seed {seed}");
            }
        }
    }

    #[test]
    fn hollow_keeps_the_outline_and_empties_the_core() {
        let mut image = bar();
        degrade(&mut image, 28, Damage::Hollow, &mut ChaCha8Rng::seed_from_u64(0), &mut Vec::new());
        assert_eq!(image[14 * 28 + 13], 0.0, "the middle of a 6-pixel stroke is emptied");
        assert_eq!(image[14 * 28 + 11], 0.0, "so is its edge");
        assert_eq!(image[14 * 28 + 10], 1.0, "a pixel just outside the stroke is outline");
        assert_eq!(image[14 * 28 + 17], 1.0, "on both sides");
        assert_eq!(image[14 * 28 + 2], 0.0, "far from the stroke stays background");
    }

    #[test]
    fn the_share_decides_how_many_are_degraded() {
        let mut scratch = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let changed = (0..400)
            .filter(|_| {
                let mut image = bar();
                maybe_degrade(&mut image, 28, 0.25, &mut rng, &mut scratch);
                image != bar()
            })
            .count();
        assert!((60..=140).contains(&changed), "{changed} of 400");
        let mut image = bar();
        maybe_degrade(&mut image, 28, 0.0, &mut rng, &mut scratch);
        assert_eq!(image, bar());
    }
}
