//! Separating ink from paper in a picture of a number, locally: a photo's paper is lit unevenly
//! (a shadow across the page), so one threshold for the whole image loses the digits on its
//! dark side. Each region's paper level is measured on its own and ink is what is darker than
//! its own paper.

use super::image::extreme_filter;
use image::imageops::FilterType;
use image::{GrayImage, Luma};

/// The picture is read at a size where its smaller side is at most this...
const WORK_SIDE: u32 = 512;
/// ...and its area at most this: enough for a number that fills a tenth of a phone photo's
/// height, and a bound on the reading's time and memory whatever the photo's size.
const WORK_PIXELS: f64 = 4_000_000.0;

/// Ink found in a picture, light on dark (0 = paper, 255 = the darkest ink), at the working
/// size; `scale` is working size / original size (at most 1).
pub struct Ink {
    pub image: GrayImage,
    pub scale: f32,
}

/// The ink of a grayscale picture: scaled to the working size, then each pixel's contrast with
/// its region's paper, stretched so the strongest ink is 255. None when the picture holds no
/// ink at all (one level everywhere, or differences no larger than grain).
pub fn separate(gray: &GrayImage) -> Option<Ink> {
    let (w, h) = gray.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    let by_side = WORK_SIDE as f64 / w.min(h) as f64;
    let by_area = (WORK_PIXELS / (w as f64 * h as f64)).sqrt();
    let scale = by_side.min(by_area).min(1.0);
    let work = if scale < 1.0 {
        let (sw, sh) = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
        image::imageops::resize(gray, sw, sh, FilterType::Triangle)
    } else {
        gray.clone()
    };
    let dark_paper = is_paper_dark(&work);
    let lightness = GrayImage::from_fn(work.width(), work.height(), |x, y| {
        let v = work.get_pixel(x, y)[0];
        Luma([if dark_paper { 255 - v } else { v }])
    });
    let paper = paper_levels(&lightness);
    let contrast: Vec<f32> = lightness
        .pixels()
        .zip(paper.pixels())
        .map(|(v, level)| {
            let level = level[0] as f32;
            ((level - v[0] as f32) / level.max(16.0)).max(0.0)
        })
        .collect();
    // Most of a picture is paper: its median contrast is the paper's grain, and a margin over it
    // keeps the grain out. The strongest ink (ignoring a few outliers) becomes full brightness.
    // (Two selections rather than a sort: the same values, in linear time.)
    let mut order = contrast.clone();
    let n = order.len();
    let floor = *order.select_nth_unstable_by(n / 2, f32::total_cmp).1 + GRAIN;
    let peak = *order.select_nth_unstable_by((n - 1) - n / 2000, f32::total_cmp).1;
    if peak - floor < MIN_INK_CONTRAST {
        return None;
    }
    let (ww, wh) = work.dimensions();
    let image = GrayImage::from_fn(ww, wh, |x, y| {
        let c = contrast[(y * ww + x) as usize];
        Luma([to_level(((c - floor) / (peak - floor)).clamp(0.0, 1.0) * 255.0)])
    });
    Some(Ink { image, scale: scale as f32 })
}

/// Contrast with the paper that is taken as grain, not ink.
const GRAIN: f32 = 0.08;
/// Ink must be at least this much darker than its paper (relative to the paper's lightness).
const MIN_INK_CONTRAST: f32 = 0.12;

/// Whether the paper is darker than the ink (light strokes on a dark ground). Ink is the
/// minority of each region: in blocks of the picture, the levels far from the block's median
/// lie on the ink's side. A border's mean would be fooled by a shadow over half the page.
fn is_paper_dark(work: &GrayImage) -> bool {
    let (w, h) = work.dimensions();
    let block = (w.min(h) / 4).max(8);
    let (columns, rows) = (w.div_ceil(block) as usize, h.div_ceil(block) as usize);
    let mut histograms = vec![[0u32; 256]; columns * rows];
    for (x, y, p) in work.enumerate_pixels() {
        histograms[(y / block) as usize * columns + (x / block) as usize][p[0] as usize] += 1;
    }
    let (mut darker, mut lighter) = (0.0f32, 0.0f32);
    for histogram in &histograms {
        let median = percentile(histogram, 0.5);
        darker += median - percentile(histogram, 0.02);
        lighter += percentile(histogram, 0.98) - median;
    }
    lighter > darker
}

/// The paper's lightness at every pixel: a morphological closing (the brightest level within a
/// radius, then the darkest of those), which removes strokes narrower than the radius and keeps
/// the paper's own edges, such as a shadow's, where they are. Run on the picture shrunk to about
/// 128 pixels on its smaller side (block means), then grown back (bilinear): its cost is bounded,
/// and the paper's levels are smooth enough that neither step needs a finer filter.
fn paper_levels(lightness: &GrayImage) -> GrayImage {
    let (w, h) = lightness.dimensions();
    let factor = (w.min(h) / PAPER_SIDE).max(1);
    let small = if factor > 1 { shrink(lightness, factor) } else { lightness.clone() };
    let radius = (small.width().min(small.height()) / 10).max(2);
    let closed = extreme_filter(&extreme_filter(&small, radius, true), radius, false);
    if factor > 1 { grow(&closed, factor, w, h) } else { closed }
}

/// A level in 0..=255 to the nearest byte. (`f32::round` is a library call on baseline x86-64
/// and wasm, costing a tenth of a reading; for non-negative values this is the same but for ties
/// within a rounding error.)
fn to_level(value: f32) -> u8 {
    (value + 0.5) as u8
}

/// The mean of each `factor` x `factor` block (the last row and column of blocks cut short).
fn shrink(image: &GrayImage, factor: u32) -> GrayImage {
    let (w, h) = image.dimensions();
    let (sw, sh) = (w.div_ceil(factor), h.div_ceil(factor));
    let mut sums = vec![0u32; (sw * sh) as usize];
    let mut counts = vec![0u32; (sw * sh) as usize];
    for (x, y, p) in image.enumerate_pixels() {
        let block = ((y / factor) * sw + x / factor) as usize;
        sums[block] += p[0] as u32;
        counts[block] += 1;
    }
    GrayImage::from_fn(sw, sh, |x, y| {
        let block = (y * sw + x) as usize;
        Luma([to_level(sums[block] as f32 / counts[block] as f32)])
    })
}

/// `small` (block means of `factor`, as [`shrink`] makes them) grown back to `w` x `h`, each
/// block's value at its centre and bilinear between centres.
fn grow(small: &GrayImage, factor: u32, w: u32, h: u32) -> GrayImage {
    // For each output column (row): the two source columns (rows) around it and the weight of
    // the second.
    let taps = |out: u32, source: u32| -> Vec<(u32, u32, f32)> {
        (0..out)
            .map(|x| {
                let at = ((x as f32 + 0.5) / factor as f32 - 0.5).clamp(0.0, (source - 1) as f32);
                let first = at as u32;
                (first, (first + 1).min(source - 1), at - first as f32)
            })
            .collect()
    };
    let (columns, rows) = (taps(w, small.width()), taps(h, small.height()));
    let level = |x: u32, y: u32| small.get_pixel(x, y)[0] as f32;
    GrayImage::from_fn(w, h, |x, y| {
        let ((x0, x1, tx), (y0, y1, ty)) = (columns[x as usize], rows[y as usize]);
        let top = level(x0, y0) * (1.0 - tx) + level(x1, y0) * tx;
        let bottom = level(x0, y1) * (1.0 - tx) + level(x1, y1) * tx;
        Luma([to_level(top * (1.0 - ty) + bottom * ty)])
    })
}

/// The side the paper is measured at.
const PAPER_SIDE: u32 = 128;

/// The level below which `fraction` of a histogram's counts lie.
fn percentile(histogram: &[u32; 256], fraction: f32) -> f32 {
    let total: u32 = histogram.iter().sum();
    let target = (total as f32 * fraction).ceil() as u32;
    let mut seen = 0;
    for (level, &count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= target.max(1) {
            return level as f32;
        }
    }
    255.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Block means and their bilinear growth: a ramp comes back within a level of itself (the
    /// paper's levels are that smooth), sizes that are not multiples of the factor included.
    #[test]
    fn shrinking_and_growing_keep_smooth_levels() {
        let (w, h) = (103, 37);
        let ramp = GrayImage::from_fn(w, h, |x, y| Luma([(x + y) as u8]));
        let small = shrink(&ramp, 4);
        assert_eq!(small.dimensions(), (26, 10));
        assert_eq!(small.get_pixel(0, 0)[0], 3, "the mean of 0..=6 over the first 4x4 block");
        let back = grow(&small, 4, w, h);
        assert_eq!(back.dimensions(), (w, h));
        for (x, y, p) in back.enumerate_pixels() {
            // Away from the edges, where the last block is cut short and levels are held flat.
            if (2..w - 4).contains(&x) && (2..h - 4).contains(&y) {
                assert!((p[0] as i32 - (x + y) as i32).abs() <= 1, "{x},{y}: {}", p[0]);
            }
        }
        let flat = GrayImage::from_pixel(50, 50, Luma([200]));
        assert!(grow(&shrink(&flat, 3), 3, 50, 50).pixels().all(|p| p[0] == 200));
    }

    /// Two dark bars on paper lit from the left: the right one, on paper darker than the left
    /// bar's ink, is found as well as the left one.
    #[test]
    fn ink_is_found_on_both_sides_of_a_shadow() {
        let (w, h) = (300, 100);
        let gray = GrayImage::from_fn(w, h, |x, y| {
            let paper = 240.0 - 180.0 * x as f32 / w as f32;
            let inked = (30..40).contains(&y) || (60..70).contains(&y);
            let bar = (40..50).contains(&x) || (250..260).contains(&x);
            Luma([if inked && bar { (paper * 0.35) as u8 } else { paper as u8 }])
        });
        // One global level cannot split them: the right edge's paper is darker than the left ink.
        assert!(gray.get_pixel(299, 10)[0] < gray.get_pixel(45, 35)[0]);
        let ink = separate(&gray).expect("ink");
        assert_eq!(ink.scale, 1.0);
        for (x, y) in [(45, 35), (255, 65)] {
            assert!(ink.image.get_pixel(x, y)[0] > 200, "ink at {x},{y}");
        }
        for (x, y) in [(10, 10), (150, 50), (290, 90), (200, 35)] {
            // Paper stays well under the level at which `read` takes a pixel as ink (64).
            assert!(ink.image.get_pixel(x, y)[0] < 32, "paper at {x},{y}: {}", ink.image.get_pixel(x, y)[0]);
        }
    }

    #[test]
    fn a_blank_or_grainy_picture_has_no_ink() {
        assert!(separate(&GrayImage::from_pixel(50, 40, Luma([200]))).is_none());
        let grain = GrayImage::from_fn(64, 64, |x, y| Luma([200 + ((x * 7 + y * 13) % 9) as u8]));
        assert!(separate(&grain).is_none());
    }

    #[test]
    fn a_large_picture_is_read_at_a_bounded_size() {
        let big = GrayImage::from_fn(4000, 3000, |x, _| Luma([if (1000..1100).contains(&x) { 0 } else { 255 }]));
        let ink = separate(&big).expect("ink");
        assert_eq!(ink.image.height(), WORK_SIDE);
        assert!((ink.scale - 512.0 / 3000.0).abs() < 1e-6);
    }
}
