//! Training-time augmentation: every training image gets a fresh random affine transform
//! (rotation, scale, translation, shear) every epoch, and optionally an elastic distortion
//! (Simard, Steinkraus and Platt, 2003: a random displacement field smoothed by a Gaussian).
//! So the network sees shapes, not the exact pixels of 60,000 images, and learns what carries
//! over to other people's handwriting.
//!
//! Each image's transform comes from a generator seeded by (seed, epoch, image index), so a seed
//! gives the same images whatever the number of threads. Images are sampled bilinearly from the
//! original 8-bit pixels; outside the image is background (0).

use super::Dataset;
use super::degrade::maybe_degrade;
use super::image::{Pixels, SIDE, frame_ink};
use super::nondigit::uniform;
use crate::error::{Error, Result};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;
use std::cell::RefCell;

/// The ranges transforms are drawn from, uniformly, either way. `Default` is a moderate set
/// that keeps digits readable (checked by eye in `train --report`'s `augment.png`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Largest rotation, degrees.
    pub rotation: f32,
    /// Largest relative change of size (0.1: 90% to 110%).
    pub scale: f32,
    /// Largest shift, pixels.
    pub translation: f32,
    /// Largest shear, degrees.
    pub shear: f32,
    /// Elastic distortion: (alpha, sigma), the displacement's scale in pixels and the smoothing
    /// Gaussian's width; None turns it off.
    pub elastic: Option<(f32, f32)>,
    /// Share (0 to 1) of the images given the elastic distortion, when there is one (1: all).
    pub elastic_share: f32,
    /// Strength (0 to 1, 0: off) of the intensity changes given to half of the images: the
    /// background raised to up to 0.3 x strength, the ink lowered to as little as
    /// 1 - 0.45 x strength, and uniform noise of up to 0.35 x strength on every pixel (values in
    /// 0..1), like faint ink on grey or noisy paper.
    pub intensity: f32,
    /// Share (0 to 1) of the images given one damage of `data::degrade` (noise, a line across,
    /// hollow strokes, an uneven or partly inverted background, blur) after the rest.
    pub degrade: f32,
    /// Share (0 to 1) of the 28x28 images first enlarged 1.5 to 4 times (nearest, bilinear,
    /// Catmull-Rom or Lanczos) and framed again as `predict` prepares a file (`image::frame_ink`),
    /// as a user's file of a digit would arrive: the generated non-digits are all framed so, and
    /// a network that never sees a digit framed so learns to take the framing's softer edges as
    /// a sign of a non-digit. (Generated non-digits share the augmentation, so the same share of
    /// them is framed a second time.)
    pub reprepare: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            rotation: 10.0,
            scale: 0.1,
            translation: 2.0,
            shear: 10.0,
            elastic: None,
            elastic_share: 1.0,
            intensity: 0.0,
            degrade: 0.0,
            reprepare: 0.0,
        }
    }
}

impl AugmentConfig {
    /// No change at all: the starting point for a single transform.
    pub const NONE: AugmentConfig = AugmentConfig {
        rotation: 0.0,
        scale: 0.0,
        translation: 0.0,
        shear: 0.0,
        elastic: None,
        elastic_share: 1.0,
        intensity: 0.0,
        degrade: 0.0,
        reprepare: 0.0,
    };

    /// The default ranges with Simard's elastic distortion: alpha 34 and sigma 4 on 28x28, as in
    /// the paper (displacements of about 1.4 pixels, varying smoothly over the digit).
    pub fn with_elastic() -> Self {
        AugmentConfig { elastic: Some((34.0, 4.0)), ..Self::default() }
    }

    pub fn validate(&self) -> Result<()> {
        let ok = |v: f32, most: f32| v.is_finite() && (0.0..=most).contains(&v);
        let elastic_ok = self.elastic.is_none_or(|(alpha, sigma)| ok(alpha, 100.0) && ok(sigma, 20.0) && sigma > 0.0)
            && ok(self.elastic_share, 1.0);
        let ranges_ok = ok(self.rotation, 180.0)
            && ok(self.scale, 0.9)
            && ok(self.translation, 64.0)
            && ok(self.shear, 60.0)
            && ok(self.intensity, 1.0)
            && ok(self.degrade, 1.0)
            && ok(self.reprepare, 1.0);
        if !(ranges_ok && elastic_ok) {
            return Err(Error::Invalid(format!(
                "augmentation ranges out of bounds: {self:?} (rotation <= 180, scale <= 0.9, translation <= 64, shear <= 60, intensity, degrade, reprepare and elastic share <= 1, elastic alpha <= 100 and 0 < sigma <= 20)"
            )));
        }
        Ok(())
    }
}

/// Writes the images `indices` of `data`, each freshly transformed, into `out` as the model's
/// inputs (value / 255), one image after another. Images are done in parallel.
pub fn augment_batch(
    data: &Dataset,
    indices: &[usize],
    config: &AugmentConfig,
    seed: u64,
    epoch: usize,
    out: &mut Vec<f32>,
) {
    let len = data.image_len();
    out.resize(indices.len() * len, 0.0);
    out.par_chunks_mut(len).zip(indices).for_each(|(image, &index)| {
        let mut rng = ChaCha8Rng::seed_from_u64(image_seed(seed, epoch, index));
        let source = &data.images[index * len..(index + 1) * len];
        augment_image(source, data.rows, data.cols, config, &mut rng, image);
    });
}

/// One image through a random transform drawn from `rng`.
pub fn augment_image(
    source: &[u8],
    rows: usize,
    cols: usize,
    config: &AugmentConfig,
    rng: &mut ChaCha8Rng,
    out: &mut [f32],
) {
    assert!(source.len() == rows * cols && out.len() == rows * cols, "image of rows x cols");
    // Drawn only when asked for, so recipes without it keep their random streams.
    let reprepared =
        (config.reprepare > 0.0 && rows == SIDE && cols == SIDE && uniform(rng, 0.0, 1.0) < config.reprepare)
            .then(|| reprepare(source, rng))
            .flatten();
    let source = reprepared.as_ref().map_or(source, |p| &p[..]);
    let affine = Affine::random(config, rng, rows, cols);
    DISPLACEMENT.with(|cell| {
        let mut displacement = cell.borrow_mut();
        // The share's draw, too, only when asked for (a share below 1).
        let elastic =
            config.elastic.filter(|_| config.elastic_share >= 1.0 || uniform(rng, 0.0, 1.0) < config.elastic_share);
        let field = elastic.map(|(alpha, sigma)| {
            elastic_field(rows, cols, alpha, sigma, rng, &mut displacement);
            &displacement.field[..]
        });
        for y in 0..rows {
            for x in 0..cols {
                let p = y * cols + x;
                let (mut fx, mut fy) = (x as f32, y as f32);
                if let Some(field) = field {
                    fx += field[2 * p];
                    fy += field[2 * p + 1];
                }
                let (sx, sy) = affine.source(fx, fy);
                out[p] = bilinear(source, rows, cols, sx, sy) / 255.0;
            }
        }
    });
    if config.intensity > 0.0 {
        change_intensity(out, config.intensity, rng);
    }
    if config.degrade > 0.0 {
        DISPLACEMENT.with(|cell| {
            let scratch = &mut cell.borrow_mut().degrade;
            maybe_degrade(out, cols, config.degrade, rng, scratch);
        });
    }
}

/// `source` (28x28, ink bright) enlarged by a random factor and filter, then framed as `predict`
/// frames a file's ink; None if no ink is left. (The resize allocates: this runs for a share of
/// the images only.)
fn reprepare(source: &[u8], rng: &mut ChaCha8Rng) -> Option<Pixels> {
    use image::imageops::FilterType;
    let small = image::GrayImage::from_raw(SIDE as u32, SIDE as u32, source.to_vec())?;
    let factor = uniform(rng, 1.5, 4.0);
    let filter = [FilterType::Nearest, FilterType::Triangle, FilterType::CatmullRom, FilterType::Lanczos3]
        [(rng.next_u32() % 4) as usize];
    let side = (SIDE as f32 * factor).round() as u32;
    frame_ink(&image::imageops::resize(&small, side, side, filter))
}

/// Half of the images (drawn from `rng`): a raised background, fainter ink and noise (see
/// [`AugmentConfig::intensity`]).
fn change_intensity(values: &mut [f32], strength: f32, rng: &mut ChaCha8Rng) {
    if rng.next_u32() & 1 == 0 {
        return;
    }
    let unit = |rng: &mut ChaCha8Rng| (symmetric(rng) + 1.0) / 2.0;
    let background = 0.3 * strength * unit(rng);
    let ink = 1.0 - 0.45 * strength * unit(rng);
    let noise = 0.35 * strength * unit(rng);
    for v in values {
        *v = (background + (ink - background) * *v + noise * symmetric(rng)).clamp(0.0, 1.0);
    }
}

/// A generator seed for one image in one epoch (SplitMix64 of the three numbers).
pub(crate) fn image_seed(seed: u64, epoch: usize, index: usize) -> u64 {
    let mut z =
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in [-1, 1).
fn symmetric(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
}

/// The inverse of an affine transform about the image's centre: output pixel -> source pixel.
struct Affine {
    /// Rows of the inverse 2x2 matrix.
    inverse: [[f32; 2]; 2],
    centre: (f32, f32),
    shift: (f32, f32),
}

impl Affine {
    fn random(config: &AugmentConfig, rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Affine {
        let angle = (config.rotation * symmetric(rng)).to_radians();
        let scale = 1.0 + config.scale * symmetric(rng);
        let shear = (config.shear * symmetric(rng)).to_radians().tan();
        let shift = (config.translation * symmetric(rng), config.translation * symmetric(rng));
        // Forward: rotate * shear * scale. [[c, -s], [s, c]] * [[1, k], [0, 1]] * scale.
        let (s, c) = angle.sin_cos();
        let forward = [[c * scale, (c * shear - s) * scale], [s * scale, (s * shear + c) * scale]];
        let det = forward[0][0] * forward[1][1] - forward[0][1] * forward[1][0];
        let inverse = [[forward[1][1] / det, -forward[0][1] / det], [-forward[1][0] / det, forward[0][0] / det]];
        Affine { inverse, centre: ((cols as f32 - 1.0) / 2.0, (rows as f32 - 1.0) / 2.0), shift }
    }

    fn source(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.centre.0 - self.shift.0, y - self.centre.1 - self.shift.1);
        let m = &self.inverse;
        (self.centre.0 + m[0][0] * dx + m[0][1] * dy, self.centre.1 + m[1][0] * dx + m[1][1] * dy)
    }
}

/// The 8-bit image at a fractional position, bilinearly; 0 outside.
fn bilinear(image: &[u8], rows: usize, cols: usize, x: f32, y: f32) -> f32 {
    if !(x > -1.0 && y > -1.0 && x < cols as f32 && y < rows as f32) {
        return 0.0;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| {
        if xi < 0.0 || yi < 0.0 || xi >= cols as f32 || yi >= rows as f32 {
            0.0
        } else {
            image[yi as usize * cols + xi as usize] as f32
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Scratch for the elastic displacement field, kept per thread so that training allocates
/// nothing per image.
#[derive(Default)]
struct Displacement {
    /// (dx, dy) per pixel.
    field: Vec<f32>,
    noise: Vec<f32>,
    smoothing: Vec<f32>,
    kernel: Vec<f32>,
    /// The degradations' neighbourhood copies.
    degrade: Vec<f32>,
}

thread_local! {
    static DISPLACEMENT: RefCell<Displacement> = RefCell::new(Displacement::default());
}

/// A random displacement field: uniform in [-1, 1] per pixel and direction, smoothed by a
/// Gaussian of width `sigma` (separable, zero outside the image) and scaled by `alpha`. The noise
/// sits in a zero-bordered buffer so that the smoothing loops have no bounds tests.
fn elastic_field(rows: usize, cols: usize, alpha: f32, sigma: f32, rng: &mut ChaCha8Rng, d: &mut Displacement) {
    let radius = (3.0 * sigma).ceil() as usize;
    d.kernel.clear();
    d.kernel.extend((0..=2 * radius).map(|i| (-((i as f32 - radius as f32).powi(2)) / (2.0 * sigma * sigma)).exp()));
    let total: f32 = d.kernel.iter().sum();
    // Normalised: the two passes together are one 2-D Gaussian of weight 1; alpha scales once.
    d.kernel.iter_mut().for_each(|k| *k /= total);
    // Noise, (dx, dy) per pixel, in a buffer with `radius` zero pixels on every side.
    let (padded_rows, padded_cols) = (rows + 2 * radius, cols + 2 * radius);
    d.noise.clear();
    d.noise.resize(2 * padded_rows * padded_cols, 0.0);
    for y in 0..rows {
        let row = &mut d.noise[2 * ((y + radius) * padded_cols + radius)..][..2 * cols];
        row.iter_mut().for_each(|v| *v = symmetric(rng));
    }
    // Along rows, into `smoothing` (padded_rows x cols, its border rows zero)...
    d.smoothing.clear();
    d.smoothing.resize(2 * padded_rows * cols, 0.0);
    for y in radius..radius + rows {
        let source = &d.noise[2 * y * padded_cols..][..2 * padded_cols];
        for x in 0..cols {
            let (mut dx, mut dy) = (0.0, 0.0);
            for (i, &k) in d.kernel.iter().enumerate() {
                dx += k * source[2 * (x + i)];
                dy += k * source[2 * (x + i) + 1];
            }
            d.smoothing[2 * (y * cols + x)] = dx;
            d.smoothing[2 * (y * cols + x) + 1] = dy;
        }
    }
    // ...then along columns, into `field` (rows x cols).
    d.field.clear();
    d.field.resize(2 * rows * cols, 0.0);
    for (i, &k) in d.kernel.iter().enumerate() {
        for y in 0..rows {
            let source = &d.smoothing[2 * (y + i) * cols..][..2 * cols];
            let target = &mut d.field[2 * y * cols..][..2 * cols];
            for (t, &v) in target.iter_mut().zip(source) {
                *t += k * v;
            }
        }
    }
    d.field.iter_mut().for_each(|v| *v *= alpha);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stroke() -> Vec<u8> {
        // A vertical bar, 4 pixels wide, in the middle of 28x28.
        (0..784).map(|p| if (12..16).contains(&(p % 28)) && (4..24).contains(&(p / 28)) { 255 } else { 0 }).collect()
    }

    #[test]
    fn no_ranges_is_the_identity() {
        let none = AugmentConfig::NONE;
        let mut out = vec![0.0; 784];
        augment_image(&stroke(), 28, 28, &none, &mut ChaCha8Rng::seed_from_u64(1), &mut out);
        let want: Vec<f32> = stroke().iter().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(out, want);
    }

    /// Re-preparing frames the digit as `predict` frames a file: a bar 20 pixels tall stays 20
    /// tall, centred, with softer edges from one draw to the next; a share of 0 draws nothing,
    /// so the random stream of recipes without it is unchanged.
    #[test]
    fn reprepared_digits_are_framed_like_a_users_file() {
        let again = AugmentConfig { reprepare: 1.0, ..AugmentConfig::NONE };
        let mut softened = 0;
        for seed in 0..20 {
            let mut out = vec![0.0; 784];
            augment_image(&stroke(), 28, 28, &again, &mut ChaCha8Rng::seed_from_u64(seed), &mut out);
            let rows = (0..28).filter(|y| out[y * 28..(y + 1) * 28].iter().any(|&v| v > 0.1)).count();
            assert!((19..=21).contains(&rows), "seed {seed}: {rows} rows of ink");
            assert!(out.iter().any(|&v| v > 0.99), "the brightest ink is full white again");
            softened += usize::from(out.iter().any(|&v| v > 0.05 && v < 0.95));
        }
        assert!(softened >= 10, "most draws soften the edges: {softened}");
        let (mut rng, mut affine_only) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
        augment_image(&stroke(), 28, 28, &AugmentConfig::NONE, &mut rng, &mut vec![0.0; 784]);
        Affine::random(&AugmentConfig::NONE, &mut affine_only, 28, 28);
        assert_eq!(rng.next_u32(), affine_only.next_u32(), "nothing drawn but the affine at share 0");
    }

    #[test]
    fn a_shift_moves_the_ink_and_keeps_it() {
        let shift = AugmentConfig { translation: 3.0, ..AugmentConfig::NONE };
        for seed in 0..20 {
            let mut out = vec![0.0; 784];
            augment_image(&stroke(), 28, 28, &shift, &mut ChaCha8Rng::seed_from_u64(seed), &mut out);
            let ink: f32 = out.iter().sum();
            assert!((ink - 80.0).abs() < 0.5, "a shift inside the frame keeps the ink: {ink}");
        }
    }

    #[test]
    fn batches_are_seeded_per_image_and_epoch() {
        let data = Dataset { images: [stroke(), stroke()].concat(), labels: vec![1, 1], rows: 28, cols: 28 };
        let config = AugmentConfig::with_elastic();
        config.validate().unwrap();
        let run = |threads: usize, epoch: usize, indices: &[usize]| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut out = Vec::new();
            pool.install(|| augment_batch(&data, indices, &config, 7, epoch, &mut out));
            out
        };
        assert_eq!(run(1, 1, &[0, 1]), run(2, 1, &[0, 1]));
        let (a, b) = (run(1, 1, &[0, 1]), run(1, 2, &[0, 1]));
        assert_ne!(a, b, "another epoch draws other transforms");
        assert_ne!(a[..784], a[784..], "two images of the same pixels get different transforms");
        assert_eq!(run(1, 1, &[1])[..], a[784..], "an image's transform does not depend on its batch");
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    /// Simard's alpha 34, sigma 4: a smoothed field of about 1.4 pixels (0.58 / sqrt(4 pi sigma^2)
    /// times alpha in the interior, less near the zero border), not alpha squared.
    #[test]
    fn elastic_displacements_have_the_expected_size() {
        let mut d = Displacement::default();
        let (mut sum, mut count) = (0.0f64, 0);
        for seed in 0..20 {
            elastic_field(28, 28, 34.0, 4.0, &mut ChaCha8Rng::seed_from_u64(seed), &mut d);
            sum += d.field.iter().map(|&v| (v * v) as f64).sum::<f64>();
            count += d.field.len();
        }
        let rms = (sum / count as f64).sqrt();
        assert!((0.6..2.5).contains(&rms), "rms displacement {rms}");
    }

    #[test]
    fn the_elastic_share_distorts_that_share_of_the_images() {
        let elastic = |share: f32| AugmentConfig { elastic_share: share, ..AugmentConfig::with_elastic() };
        let plain = AugmentConfig { elastic: None, ..AugmentConfig::default() };
        let image = |config: &AugmentConfig, seed: u64| {
            let mut out = vec![0.0; 784];
            augment_image(&stroke(), 28, 28, config, &mut ChaCha8Rng::seed_from_u64(seed), &mut out);
            out
        };
        let (mut distorted, mut all, mut none) = (0, 0, 0);
        for seed in 0..40 {
            let undistorted = image(&plain, seed);
            distorted += usize::from(image(&elastic(0.5), seed) != undistorted);
            all += usize::from(image(&elastic(1.0), seed) != undistorted);
            none += usize::from(image(&elastic(0.0), seed) != undistorted);
        }
        assert_eq!((all, none), (40, 0), "share 1 distorts every image, share 0 none");
        assert!((10..=30).contains(&distorted), "{distorted} of 40 distorted at share 0.5");
        assert!(elastic(1.5).validate().is_err());
    }

    #[test]
    fn intensity_changes_raise_the_background_of_about_half_the_images() {
        let config = AugmentConfig { intensity: 1.0, ..AugmentConfig::NONE };
        let mut changed = 0;
        for seed in 0..40 {
            let mut out = vec![0.0; 784];
            augment_image(&stroke(), 28, 28, &config, &mut ChaCha8Rng::seed_from_u64(seed), &mut out);
            assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
            if out[..28].iter().any(|&v| v > 0.0) {
                changed += 1;
            }
        }
        assert!((10..=30).contains(&changed), "{changed} of 40 changed");
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        assert!(AugmentConfig { rotation: f32::NAN, ..AugmentConfig::default() }.validate().is_err());
        assert!(AugmentConfig { scale: 2.0, ..AugmentConfig::default() }.validate().is_err());
        assert!(AugmentConfig { elastic: Some((8.0, 0.0)), ..AugmentConfig::default() }.validate().is_err());
        assert!(AugmentConfig { intensity: 1.5, ..AugmentConfig::default() }.validate().is_err());
        assert!(AugmentConfig { degrade: -0.1, ..AugmentConfig::default() }.validate().is_err());
    }
}
