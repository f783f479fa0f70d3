//! Corrupted copies of a dataset, to measure how a model holds up on digits unlike MNIST's
//! clean, centred, evenly inked ones (`digitnn eval --corrupt NAME`). Each corruption is
//! deterministic: random ones are seeded per image.

use super::Dataset;
use super::augment::{AugmentConfig, augment_image};
use crate::names::named_enum;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;

/// One way of spoiling a digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// Rotated by up to 25 degrees either way.
    Rotate,
    /// Moved by up to 4 pixels either way (part of the digit may leave the frame).
    Shift,
    /// Scaled to 70% to 130%.
    Scale,
    /// Simard's elastic distortion at twice the training strength (alpha 68, sigma 4).
    Elastic,
    /// A 3x3 Gaussian blur, twice.
    Blur,
    /// A thicker pen: each pixel takes the brightest of its 3x3 neighbourhood.
    Thick,
    /// A thinner pen: each pixel takes the darkest of its plus-shaped neighbourhood.
    Thin,
    /// Uniform noise of up to 80 levels either way on every pixel.
    Noise,
    /// Faint ink on a grey background: values squeezed into 60..160.
    Contrast,
    /// A photo of the digit written on paper, then prepared as `digitnn predict` prepares
    /// photos: drawn 3 to 8 times larger with a pen from thin to thick, dark ink on light paper
    /// with a shadow across it and grain, placed anywhere on a larger page (sometimes touching
    /// its edge). Measures the image preparation and the model together.
    Photo,
}

named_enum!(Corruption, "corruption", [
    Rotate => "rotate",
    Shift => "shift",
    Scale => "scale",
    Elastic => "elastic",
    Blur => "blur",
    Thick => "thick",
    Thin => "thin",
    Noise => "noise",
    Contrast => "contrast",
    Photo => "photo",
]);

impl Corruption {
    /// The dataset with every image corrupted (labels unchanged).
    pub fn apply(self, data: &Dataset) -> Dataset {
        let len = data.image_len();
        let mut images = vec![0u8; data.images.len()];
        images
            .par_chunks_mut(len.max(1))
            .zip(data.images.par_chunks(len.max(1)))
            .enumerate()
            .for_each(|(index, (out, image))| self.apply_image(image, data.rows, data.cols, index as u64, out));
        Dataset { images, labels: data.labels.clone(), rows: data.rows, cols: data.cols }
    }

    fn apply_image(self, image: &[u8], rows: usize, cols: usize, index: u64, out: &mut [u8]) {
        let mut rng = ChaCha8Rng::seed_from_u64(index ^ SEED);
        let geometric = |config: AugmentConfig, rng: &mut ChaCha8Rng, out: &mut [u8]| {
            let mut values = vec![0.0f32; image.len()];
            augment_image(image, rows, cols, &config, rng, &mut values);
            for (o, v) in out.iter_mut().zip(values) {
                *o = (v * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        };
        let none = AugmentConfig::NONE;
        match self {
            Corruption::Rotate => geometric(AugmentConfig { rotation: 25.0, ..none }, &mut rng, out),
            Corruption::Shift => geometric(AugmentConfig { translation: 4.0, ..none }, &mut rng, out),
            Corruption::Scale => geometric(AugmentConfig { scale: 0.3, ..none }, &mut rng, out),
            Corruption::Elastic => geometric(AugmentConfig { elastic: Some((68.0, 4.0)), ..none }, &mut rng, out),
            Corruption::Blur => {
                let once = neighbourhood(image, rows, cols, gaussian);
                out.copy_from_slice(&neighbourhood(&once, rows, cols, gaussian));
            }
            Corruption::Thick => out.copy_from_slice(&neighbourhood(image, rows, cols, |v| *v.iter().max().unwrap())),
            Corruption::Thin => out.copy_from_slice(&neighbourhood(image, rows, cols, |v| {
                [v[1], v[3], v[4], v[5], v[7]].into_iter().min().unwrap()
            })),
            Corruption::Noise => {
                for (o, &v) in out.iter_mut().zip(image) {
                    let noise = (rng.next_u32() % 161) as i32 - 80;
                    *o = (v as i32 + noise).clamp(0, 255) as u8;
                }
            }
            Corruption::Contrast => {
                for (o, &v) in out.iter_mut().zip(image) {
                    *o = (60 + v as u32 * 100 / 255) as u8;
                }
            }
            Corruption::Photo => {
                let photo = photograph(image, rows, cols, &mut rng);
                // A photo with no ink left (a very thin pen on a faint digit) reads as blank.
                match super::image::prepare(&photo, false, std::path::Path::new("photo")) {
                    Ok((pixels, _)) if pixels.len() == out.len() => out.copy_from_slice(&pixels),
                    _ => out.fill(0),
                }
            }
        }
    }
}

/// The digit as a photo of it written on paper (see [`Corruption::Photo`]).
fn photograph(image: &[u8], rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> ::image::DynamicImage {
    let mut uniform = |lo: f32, hi: f32| lo + (hi - lo) * (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    let scale = uniform(3.0, 8.0);
    // The pen: where the upscaled digit passes this level is ink. A high level keeps only the
    // strokes' cores (a thin pen); a low one takes their blurred edges too (a thick pen).
    let pen = uniform(0.08, 0.85);
    let (paper, ink) = (uniform(150.0, 245.0), uniform(0.0, 90.0));
    let shadow = (uniform(-60.0, 60.0), uniform(-60.0, 60.0));
    let digit_w = cols as f32 * scale;
    let digit_h = rows as f32 * scale;
    let margins = [uniform(0.0, 0.8), uniform(0.0, 0.8), uniform(0.0, 0.8), uniform(0.0, 0.8)];
    let width = (digit_w * (1.0 + margins[0] + margins[1])) as u32;
    let height = (digit_h * (1.0 + margins[2] + margins[3])) as u32;
    let (left, top) = (digit_w * margins[0], digit_h * margins[2]);
    let at = |y: isize, x: isize| {
        if y < 0 || x < 0 || y >= rows as isize || x >= cols as isize {
            0.0
        } else {
            image[y as usize * cols + x as usize] as f32 / 255.0
        }
    };
    let seed = rng.next_u64();
    let mut grain = ChaCha8Rng::seed_from_u64(seed);
    let photo = ::image::GrayImage::from_fn(width, height, |x, y| {
        // Bilinear sample of the digit at this point.
        let (u, v) = ((x as f32 - left) / scale - 0.5, (y as f32 - top) / scale - 0.5);
        let (u0, v0) = (u.floor(), v.floor());
        let (fu, fv) = (u - u0, v - v0);
        let (u0, v0) = (u0 as isize, v0 as isize);
        let value = (1.0 - fv) * ((1.0 - fu) * at(v0, u0) + fu * at(v0, u0 + 1))
            + fv * ((1.0 - fu) * at(v0 + 1, u0) + fu * at(v0 + 1, u0 + 1));
        // A soft edge a tenth wide around the pen's level.
        let coverage = ((value - pen) / 0.1 + 0.5).clamp(0.0, 1.0);
        let light = paper + shadow.0 * (x as f32 / width as f32 - 0.5) + shadow.1 * (y as f32 / height as f32 - 0.5);
        let noise = (grain.next_u32() % 21) as f32 - 10.0;
        ::image::Luma([(light * (1.0 - coverage) + ink * coverage + noise).clamp(0.0, 255.0) as u8])
    });
    ::image::DynamicImage::ImageLuma8(photo)
}

/// Mixed into the image index to seed the random corruptions.
const SEED: u64 = 0xC022_0517_1234_5678;

/// The 3x3 Gaussian (weights 1 2 1 / 2 4 2 / 1 2 1, over 16) of a neighbourhood.
fn gaussian(values: &[u8; 9]) -> u8 {
    let weights = [1, 2, 1, 2, 4, 2, 1, 2, 1];
    (values.iter().zip(weights).map(|(&v, w)| v as u32 * w).sum::<u32>() / 16) as u8
}

/// Each pixel replaced by `f` of its 3x3 neighbourhood (row by row; 0 outside the image). Also
/// the number generator's heavier and finer pens (`data::numbers`).
pub(crate) fn neighbourhood<T: Copy + Default>(
    image: &[T],
    rows: usize,
    cols: usize,
    f: impl Fn(&[T; 9]) -> T,
) -> Vec<T> {
    let at = |y: isize, x: isize| {
        if y < 0 || x < 0 || y >= rows as isize || x >= cols as isize {
            T::default()
        } else {
            image[y as usize * cols + x as usize]
        }
    };
    let mut out = vec![T::default(); image.len()];
    for y in 0..rows as isize {
        for x in 0..cols as isize {
            let mut values = [T::default(); 9];
            for (k, value) in values.iter_mut().enumerate() {
                *value = at(y + k as isize / 3 - 1, x + k as isize % 3 - 1);
            }
            out[y as usize * cols + x as usize] = f(&values);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot() -> Dataset {
        // One 5x5 image: a bright pixel in the middle.
        let mut images = vec![0u8; 25];
        images[12] = 200;
        Dataset { images, labels: vec![3], rows: 5, cols: 5 }
    }

    #[test]
    fn pixel_corruptions_do_what_they_say() {
        let data = dot();
        let thick = Corruption::Thick.apply(&data);
        assert_eq!(thick.images.iter().filter(|&&v| v == 200).count(), 9);
        assert!(Corruption::Thin.apply(&data).images.iter().all(|&v| v == 0));
        let contrast = Corruption::Contrast.apply(&data);
        assert_eq!((contrast.images[0], contrast.images[12]), (60, 138));
        let blur = Corruption::Blur.apply(&data);
        assert!(blur.images[12] < 200 && blur.images[11] > 0);
        assert_eq!(Corruption::Noise.apply(&data).labels, vec![3]);
    }

    #[test]
    fn every_corruption_is_deterministic_and_named() {
        let data = dot();
        for corruption in Corruption::ALL {
            assert_eq!(corruption.apply(&data), corruption.apply(&data), "{corruption}");
            assert_eq!(corruption.name().parse::<Corruption>().unwrap(), corruption);
        }
    }
}
