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
    let mut sorted = contrast.clone();
    sorted.sort_unstable_by(f32::total_cmp);
    // Most of a picture is paper: its median contrast is the paper's grain, and a margin over it
    // keeps the grain out. The strongest ink (ignoring a few outliers) becomes full brightness.
    let floor = sorted[sorted.len() / 2] + GRAIN;
    let peak = sorted[(sorted.len() - 1) - sorted.len() / 2000];
    if peak - floor < MIN_INK_CONTRAST {
        return None;
    }
    let (ww, wh) = work.dimensions();
    let image = GrayImage::from_fn(ww, wh, |x, y| {
        let c = contrast[(y * ww + x) as usize];
        Luma([(((c - floor) / (peak - floor)).clamp(0.0, 1.0) * 255.0).round() as u8])
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
/// the paper's own edges, such as a shadow's, where they are. Run on the picture scaled down to
/// about 128 pixels on its smaller side, then scaled back: its cost is bounded.
fn paper_levels(lightness: &GrayImage) -> GrayImage {
    let (w, h) = lightness.dimensions();
    let factor = (w.min(h) / PAPER_SIDE).max(1);
    let small = if factor > 1 {
        image::imageops::resize(lightness, w.div_ceil(factor), h.div_ceil(factor), FilterType::Triangle)
    } else {
        lightness.clone()
    };
    let radius = (small.width().min(small.height()) / 10).max(2);
    let closed = extreme_filter(&extreme_filter(&small, radius, true), radius, false);
    if factor > 1 { image::imageops::resize(&closed, w, h, FilterType::Triangle) } else { closed }
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
