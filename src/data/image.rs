//! Turning an image file into the 28x28 input the model expects, the way MNIST itself was made:
//! grayscale, light digit on dark background (the paper's level removed), cropped to the digit,
//! a pen thinner than MNIST's thickened to its stroke width, scaled to fit 20x20 keeping its
//! aspect ratio, and centred by centre of mass in 28x28.
//!
//! How each step was chosen is measured by `digitnn eval --corrupt photo` (MNIST test digits
//! photographed on paper with pens from thin to thick, then prepared here): see the README.
//!
//! A 28x28 image with a dark background is taken as already MNIST-like and used as is (that is
//! what the original project expects); `raw` skips every step but the grayscale conversion.

use crate::error::{Error, Result};
use crate::limits;
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, GrayImage, ImageDecoder, ImageReader, Limits, Luma};
use std::path::Path;

/// The side of a model input.
pub const SIDE: usize = 28;
/// The side of the box MNIST scaled digits into.
const DIGIT_BOX: f32 = 20.0;
/// Images larger than this on either side are refused before decoding.
const MAX_SIDE: u32 = 16_384;

/// What decoding one image may cost, checked from the image's header before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_pixels: u64,
    pub max_decoded_bytes: u64,
}

impl Default for ImageLimits {
    /// The command line's limits (see `crate::limits`).
    fn default() -> Self {
        ImageLimits { max_pixels: limits::MAX_IMAGE_PIXELS, max_decoded_bytes: limits::MAX_IMAGE_DECODED_BYTES }
    }
}

impl ImageLimits {
    /// Refuses a `w` x `h` image over the pixel limit, saying by how much.
    pub fn check_pixels(&self, w: u32, h: u32) -> std::result::Result<(), String> {
        let pixels = w as u64 * h as u64;
        if pixels > self.max_pixels {
            return Err(format!(
                "{w}x{h} is {:.1} megapixels, more than the limit of {:.1}",
                pixels as f64 / 1e6,
                self.max_pixels as f64 / 1e6
            ));
        }
        Ok(())
    }

    /// The server's, smaller: several requests are decoded at once.
    pub fn serve() -> Self {
        ImageLimits { max_pixels: limits::SERVE_IMAGE_PIXELS, max_decoded_bytes: limits::SERVE_IMAGE_DECODED_BYTES }
    }
}

/// A prepared 28x28 grayscale image, 0 = background, 255 = ink.
pub type Pixels = [u8; SIDE * SIDE];

/// How an image was turned into model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preparation {
    /// Used as is: already 28x28 with a dark background (or `raw` was asked for).
    AsIs,
    /// Cropped, scaled and centred like MNIST (`inverted`: the background was light).
    MnistStyle { inverted: bool },
}

/// Decodes an image file with bounded size and memory.
pub fn open(path: &Path) -> Result<DynamicImage> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().map_err(|e| Error::io(path, e))?.is_dir() {
        return Err(Error::Image { path: path.to_path_buf(), reason: "is a directory, not an image".into() });
    }
    let reader = ImageReader::new(std::io::BufReader::new(file));
    decode_bounded(reader, path, ImageLimits::default())
}

/// Decodes an image from bytes already in memory (`name` is used in messages).
pub fn decode(bytes: &[u8], name: &Path, limits: ImageLimits) -> Result<DynamicImage> {
    decode_bounded(ImageReader::new(std::io::Cursor::new(bytes)), name, limits)
}

/// An image from decoded pixels: `width * height` RGBA pixels, 8 bits each, row by row (what a
/// browser's canvas gives), checked against `limits` (`name` is used in messages).
pub fn from_rgba(width: u32, height: u32, rgba: &[u8], name: &Path, limits: ImageLimits) -> Result<DynamicImage> {
    let fail = |reason: String| Error::Image { path: name.to_path_buf(), reason };
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(fail(format!("{width}x{height} is wider or taller than {MAX_SIDE} pixels")));
    }
    limits.check_pixels(width, height).map_err(fail)?;
    let expected = width as u64 * height as u64 * 4;
    if rgba.len() as u64 != expected {
        return Err(fail(format!("{} bytes are not {width}x{height} RGBA pixels ({expected} bytes)", rgba.len())));
    }
    let image = image::RgbaImage::from_raw(width, height, rgba.to_vec()).expect("the length was checked");
    Ok(DynamicImage::ImageRgba8(image))
}

/// Reads the header, refuses an image whose pixels or decoded bytes pass `bounds`, then decodes
/// it with the decoder's own allocation limit set as well.
fn decode_bounded<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    name: &Path,
    bounds: ImageLimits,
) -> Result<DynamicImage> {
    let fail = |reason: String| Error::Image { path: name.to_path_buf(), reason };
    let mut reader = reader.with_guessed_format().map_err(|e| fail(e.to_string()))?;
    if reader.format().is_none() {
        return Err(fail("not an image in a format this tool reads (PNG, JPEG, GIF, BMP, WebP, TIFF, PNM)".into()));
    }
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(MAX_SIDE);
    decoder_limits.max_image_height = Some(MAX_SIDE);
    decoder_limits.max_alloc = Some(bounds.max_decoded_bytes);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(|e| fail(format!("cannot decode image: {e}")))?;
    let (w, h) = decoder.dimensions();
    bounds.check_pixels(w, h).map_err(fail)?;
    if decoder.total_bytes() > bounds.max_decoded_bytes {
        return Err(fail(format!(
            "{w}x{h} decodes to {} MiB, more than the limit of {} MiB",
            limits::mib(decoder.total_bytes()),
            limits::mib(bounds.max_decoded_bytes)
        )));
    }
    // A phone's photo is stored sideways with an EXIF note to turn it: turned upright here, as
    // browsers show it (and decode it for the browser build).
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut decoded = DynamicImage::from_decoder(decoder).map_err(|e| fail(format!("cannot decode image: {e}")))?;
    decoded.apply_orientation(orientation);
    Ok(decoded)
}

/// Grayscale with "ink" where the picture is: a drawing on a transparent background (a canvas
/// export) has its ink in the alpha channel; otherwise alpha is ignored. Reads the image pixel
/// by pixel, so a large photo costs one byte per pixel here, not a full RGBA copy.
pub fn to_gray(image: &DynamicImage) -> GrayImage {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        // The image crate's pixel iterator misbehaves on an empty image (found by fuzzing a PNM
        // of width 0): there is nothing to convert.
        return GrayImage::new(w, h);
    }
    let ink_in_alpha = image.color().has_alpha() && {
        let transparent = image.pixels().filter(|(_, _, p)| p[3] < 128).count() as u64;
        transparent * 10 > w as u64 * h as u64 / 4
    };
    let mut gray = GrayImage::new(w, h);
    for (x, y, p) in image.pixels() {
        let [r, g, b, a] = p.0;
        let value = if ink_in_alpha {
            // Light-on-dark already: opaque strokes are ink.
            a
        } else {
            ((2126 * r as u32 + 7152 * g as u32 + 722 * b as u32) / 10_000) as u8
        };
        gray.put_pixel(x, y, Luma([value]));
    }
    gray
}

/// Prepares an image for the model (see the module docs).
pub fn prepare(image: &DynamicImage, raw: bool, name: &Path) -> Result<(Pixels, Preparation)> {
    let fail = |reason: String| Error::Image { path: name.to_path_buf(), reason };
    let gray = to_gray(image);
    let (w, h) = gray.dimensions();
    if w == 0 || h == 0 {
        return Err(fail("the image is empty".into()));
    }
    let is_mnist_size = (w as usize, h as usize) == (SIDE, SIDE);
    if raw {
        if !is_mnist_size {
            return Err(fail(format!("a raw input (used as is) must be a {SIDE}x{SIDE} image, this one is {w}x{h}")));
        }
        return Ok((to_pixels(&gray), Preparation::AsIs));
    }
    let background = border_mean(&gray);
    let inverted = background >= 128.0;
    let ink = ink_image(&gray, inverted);
    // A blank image (one level everywhere, at any size) holds no digit to read.
    let Some((x0, y0, x1, y1)) = bounding_box(&ink) else {
        return Err(fail("no digit found: the image is blank".into()));
    };
    if is_mnist_size && !inverted {
        return Ok((to_pixels(&gray), Preparation::AsIs));
    }
    Ok((frame(&ink, (x0, y0, x1, y1)), Preparation::MnistStyle { inverted }))
}

/// Light-on-dark ink placed as MNIST placed its digits (see the module docs): cropped, its pen
/// brought to MNIST's width, scaled into the 20x20 box and centred by mass. None when nothing in
/// it is bright enough to be ink. What `prepare` does after finding the ink; the generated
/// non-digits of training (`data::nondigit`) are framed by it too, so they look as a user's
/// image would after preparation.
pub fn frame_ink(ink: &GrayImage) -> Option<Pixels> {
    bounding_box(ink).map(|bounds| frame(ink, bounds))
}

fn frame(ink: &GrayImage, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> Pixels {
    let crop = normalise_stroke(image::imageops::crop_imm(ink, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image());
    let scale = DIGIT_BOX / crop.width().max(crop.height()) as f32;
    let (sw, sh) = (
        ((crop.width() as f32 * scale).round() as u32).clamp(1, DIGIT_BOX as u32),
        ((crop.height() as f32 * scale).round() as u32).clamp(1, DIGIT_BOX as u32),
    );
    let mut scaled = image::imageops::resize(&crop, sw, sh, FilterType::Triangle);
    // Scaling down averages thin strokes into grey: the brightest ink is made full white again,
    // as MNIST's strokes are.
    let peak = scaled.pixels().map(|p| p[0]).max().unwrap_or(0).max(1) as f32;
    for p in scaled.pixels_mut() {
        p[0] = (p[0] as f32 * 255.0 / peak).round().min(255.0) as u8;
    }
    centre_by_mass(&scaled)
}

/// MNIST's pen: its strokes are about 0.13 of the digit's larger side wide (the test set's
/// median of 2 * area / boundary pixels of the ink above half brightness; 5% are under 0.10).
const MNIST_STROKE: f32 = 0.13;
const THINNEST_STROKE: f32 = 0.10;

/// The width of the strokes of a cropped digit as a fraction of its larger side (see
/// [`MNIST_STROKE`]).
fn stroke_width(crop: &GrayImage) -> f32 {
    let (w, h) = crop.dimensions();
    let inked = |x: i64, y: i64| {
        x >= 0 && y >= 0 && x < w as i64 && y < h as i64 && crop.get_pixel(x as u32, y as u32)[0] >= 128
    };
    let (mut area, mut boundary) = (0u64, 0u64);
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            if inked(x, y) {
                area += 1;
                if !(inked(x - 1, y) && inked(x + 1, y) && inked(x, y - 1) && inked(x, y + 1)) {
                    boundary += 1;
                }
            }
        }
    }
    2.0 * area as f32 / boundary.max(1) as f32 / w.max(h) as f32
}

/// A digit written with a thinner pen than MNIST's (a fine pen photographed large) is thickened
/// to MNIST's stroke width before it is scaled down; otherwise its strokes would fade to faint
/// lines a fraction of a pixel wide. Thick strokes are left alone (MNIST has them too). The
/// thickening runs on the crop scaled to at most [`STROKE_WORK_SIDE`] pixels, so its cost is
/// bounded whatever the photo's size (a wide stroke at full size would cost the radius per pixel).
fn normalise_stroke(crop: GrayImage) -> GrayImage {
    let width = stroke_width(&crop);
    if width >= THINNEST_STROKE {
        return crop;
    }
    let side = crop.width().max(crop.height());
    let work = if side > STROKE_WORK_SIDE {
        let scale = STROKE_WORK_SIDE as f32 / side as f32;
        let (w, h) = ((crop.width() as f32 * scale).round().max(1.0), (crop.height() as f32 * scale).round().max(1.0));
        image::imageops::resize(&crop, w as u32, h as u32, FilterType::Triangle)
    } else {
        crop
    };
    let radius = ((MNIST_STROKE - width) * work.width().max(work.height()) as f32 / 2.0).round();
    if radius < 1.0 {
        return work;
    }
    dilate(&work, radius as u32)
}

/// The largest side at which a thin pen is thickened: 8 times the 20-pixel box the digit is
/// scaled into, so the thickened strokes are still smooth after that.
const STROKE_WORK_SIDE: u32 = 160;

/// Each pixel the brightest of the square of side 2 * radius + 1 around it, on an image grown
/// by `radius` on every side.
fn dilate(image: &GrayImage, radius: u32) -> GrayImage {
    let mut padded = GrayImage::new(image.width() + 2 * radius, image.height() + 2 * radius);
    image::imageops::replace(&mut padded, image, radius as i64, radius as i64);
    extreme_filter(&padded, radius, true)
}

/// Each pixel the brightest (`max`) or darkest of the square of side 2 * radius + 1 around it,
/// within the image (a separable filter: rows, then columns). Each pass costs three comparisons
/// per pixel whatever the radius (van Herk and Gil-Werman: running extremes forward and back
/// within blocks of the window's length), where comparing the whole window costs 2 * radius + 1:
/// the reader's paper estimate closes with a radius of tens of pixels. Equal to comparing the
/// whole window (`extreme_filter_naive` in the tests).
pub(crate) fn extreme_filter(image: &GrayImage, radius: u32, max: bool) -> GrayImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut filter = Extremes { radius: radius as usize, max, ..Extremes::default() };
    let mut rows = vec![0u8; w * h];
    for (source, target) in image.as_raw().chunks_exact(w.max(1)).zip(rows.chunks_exact_mut(w.max(1))) {
        filter.run(source, target);
    }
    let (mut column, mut filtered) = (vec![0u8; h], vec![0u8; h]);
    let mut out = GrayImage::new(w as u32, h as u32);
    let raw: &mut [u8] = &mut out;
    for x in 0..w {
        column.iter_mut().enumerate().for_each(|(y, v)| *v = rows[y * w + x]);
        filter.run(&column, &mut filtered);
        filtered.iter().enumerate().for_each(|(y, &v)| raw[y * w + x] = v);
    }
    out
}

/// The running extremes of [`extreme_filter`] along one row or column, with their buffers.
#[derive(Default)]
struct Extremes {
    radius: usize,
    max: bool,
    forward: Vec<u8>,
    backward: Vec<u8>,
}

impl Extremes {
    /// `out[i]` = the extreme of `values[i - radius ..= i + radius]` (clipped to the ends).
    fn run(&mut self, values: &[u8], out: &mut [u8]) {
        let (n, r) = (values.len(), self.radius);
        let window = 2 * r + 1;
        // The values padded by `r` on each side with what never wins, to whole blocks.
        let padded = (n + 2 * r).div_ceil(window) * window;
        let none = if self.max { 0 } else { u8::MAX };
        let value = |i: usize| if i < r || i >= r + n { none } else { values[i - r] };
        let pick = |a: u8, b: u8| if self.max { a.max(b) } else { a.min(b) };
        self.forward.resize(padded, 0);
        self.backward.resize(padded, 0);
        for i in 0..padded {
            self.forward[i] = if i % window == 0 { value(i) } else { pick(self.forward[i - 1], value(i)) };
        }
        for i in (0..padded).rev() {
            self.backward[i] = if i % window == window - 1 { value(i) } else { pick(self.backward[i + 1], value(i)) };
        }
        // The window i..i + window - 1 (padded) spans at most two blocks.
        for (i, target) in out.iter_mut().enumerate().take(n) {
            *target = pick(self.backward[i], self.forward[i + window - 1]);
        }
    }
}

fn to_pixels(gray: &GrayImage) -> Pixels {
    let mut pixels = [0u8; SIDE * SIDE];
    pixels.copy_from_slice(gray.as_raw());
    pixels
}

/// Mean of the outermost pixels: the background's brightness.
fn border_mean(gray: &GrayImage) -> f32 {
    let (w, h) = gray.dimensions();
    let (mut sum, mut count) = (0u64, 0u64);
    for (x, y, p) in gray.enumerate_pixels() {
        if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
            sum += p[0] as u64;
            count += 1;
        }
    }
    sum as f32 / count as f32
}

/// Ink as bright-on-dark, with the background level subtracted and the contrast stretched, so a
/// photo of grey paper gives a black background like MNIST's.
fn ink_image(gray: &GrayImage, invert: bool) -> GrayImage {
    let ink = |v: u8| if invert { 255 - v } else { v };
    let mut border: Vec<u8> = Vec::new();
    let (w, h) = gray.dimensions();
    for (x, y, p) in gray.enumerate_pixels() {
        if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
            border.push(ink(p[0]));
        }
    }
    border.sort_unstable();
    let background = border[border.len() * 9 / 10] as f32;
    let peak = gray.pixels().map(|p| ink(p[0])).max().unwrap_or(0) as f32;
    let range = (peak - background).max(1.0);
    GrayImage::from_fn(w, h, |x, y| {
        let v = (ink(gray.get_pixel(x, y)[0]) as f32 - background) / range;
        Luma([(v.clamp(0.0, 1.0) * 255.0).round() as u8])
    })
}

/// The smallest box holding every pixel with real ink (over a quarter of full brightness).
fn bounding_box(ink: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let mut bounds: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in ink.enumerate_pixels() {
        if p[0] >= 64 {
            bounds = Some(match bounds {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    bounds
}

/// Places the digit in a 28x28 image so its centre of mass is at the centre, as MNIST did.
fn centre_by_mass(digit: &GrayImage) -> Pixels {
    let (w, h) = digit.dimensions();
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in digit.enumerate_pixels() {
        let v = p[0] as f64;
        mass += v;
        mx += v * x as f64;
        my += v * y as f64;
    }
    let centre = SIDE as f64 / 2.0;
    let place = |com: f64, len: u32| -> i64 {
        let offset = (centre - 0.5 - com).round() as i64;
        offset.clamp(0, (SIDE as u32 - len) as i64)
    };
    let (cx, cy) = if mass > 0.0 { (mx / mass, my / mass) } else { (w as f64 / 2.0, h as f64 / 2.0) };
    let (ox, oy) = (place(cx, w), place(cy, h));
    let mut pixels = [0u8; SIDE * SIDE];
    for (x, y, p) in digit.enumerate_pixels() {
        pixels[(oy as usize + y as usize) * SIDE + ox as usize + x as usize] = p[0];
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every window compared whole: the reference for [`extreme_filter`].
    fn extreme_filter_naive(image: &GrayImage, radius: u32, max: bool) -> GrayImage {
        let pass = |source: &GrayImage, horizontal: bool| {
            let (w, h) = source.dimensions();
            GrayImage::from_fn(w, h, |x, y| {
                let (at, len) = if horizontal { (x, w) } else { (y, h) };
                let range = at.saturating_sub(radius)..(at + radius + 1).min(len);
                let values =
                    range.map(|i| if horizontal { source.get_pixel(i, y)[0] } else { source.get_pixel(x, i)[0] });
                Luma([if max { values.max() } else { values.min() }.unwrap_or(0)])
            })
        };
        pass(&pass(image, true), false)
    }

    #[test]
    fn extreme_filter_matches_comparing_every_window() {
        let mut state = 12345u32;
        for (w, h) in [(1, 1), (7, 3), (40, 23), (3, 50)] {
            let image = GrayImage::from_fn(w, h, |_, _| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                Luma([(state >> 16) as u8])
            });
            for radius in [0, 1, 2, 5, 30] {
                for max in [true, false] {
                    let fast = extreme_filter(&image, radius, max);
                    assert_eq!(fast, extreme_filter_naive(&image, radius, max), "{w}x{h} radius {radius} max {max}");
                }
            }
        }
    }
    use image::{Rgba, RgbaImage};

    /// A dark "1": a vertical bar on a light background, at any size and position.
    fn bar_on_paper(w: u32, h: u32, x0: u32, x1: u32, y0: u32, y1: u32) -> DynamicImage {
        let img =
            GrayImage::from_fn(w, h, |x, y| Luma([if x >= x0 && x < x1 && y >= y0 && y < y1 { 20 } else { 230 }]));
        DynamicImage::ImageLuma8(img)
    }

    fn centre_of_mass(p: &Pixels) -> (f64, f64) {
        let (mut m, mut x, mut y) = (0.0, 0.0, 0.0);
        for (i, &v) in p.iter().enumerate() {
            m += v as f64;
            x += v as f64 * (i % SIDE) as f64;
            y += v as f64 * (i / SIDE) as f64;
        }
        (x / m, y / m)
    }

    #[test]
    fn a_large_photo_is_prepared_like_mnist() {
        let image = bar_on_paper(300, 400, 40, 80, 30, 230);
        let (pixels, how) = prepare(&image, false, Path::new("x.png")).unwrap();
        assert_eq!(how, Preparation::MnistStyle { inverted: true });
        // Inverted: the bar is bright, the rest dark; it spans 20 rows (the 20x20 box).
        let rows_with_ink = (0..SIDE).filter(|y| pixels[y * SIDE..(y + 1) * SIDE].iter().any(|&v| v > 128)).count();
        assert_eq!(rows_with_ink, 20);
        assert_eq!(pixels[0], 0);
        let (cx, cy) = centre_of_mass(&pixels);
        assert!((cx - 13.5).abs() <= 1.0 && (cy - 13.5).abs() <= 1.0, "centre of mass {cx}, {cy}");
    }

    /// Columns of a prepared image with bright ink in its middle row.
    fn bright_columns(p: &Pixels) -> usize {
        (0..SIDE).filter(|x| p[14 * SIDE + x] > 128).count()
    }

    #[test]
    fn a_thin_pen_is_thickened_to_mnists_stroke_and_a_thick_one_is_kept() {
        // A "1" 300 pixels tall written with a 3-pixel pen: 0.2 pixels wide once scaled to 20.
        let thin = bar_on_paper(400, 400, 200, 203, 50, 350);
        let (pixels, _) = prepare(&thin, false, Path::new("thin.png")).unwrap();
        assert!((2..=4).contains(&bright_columns(&pixels)), "{} columns", bright_columns(&pixels));
        // A 60-pixel pen is as thick as MNIST's thick ones (0.2 of the height): left alone.
        let thick = bar_on_paper(400, 400, 170, 230, 50, 350);
        let crop = image::imageops::crop_imm(&ink_image(&to_gray(&thick), true), 170, 50, 60, 300).to_image();
        assert_eq!(normalise_stroke(crop.clone()), crop);
        let (pixels, _) = prepare(&thick, false, Path::new("thick.png")).unwrap();
        assert!((3..=5).contains(&bright_columns(&pixels)), "{} columns", bright_columns(&pixels));
    }

    #[test]
    fn dilation_grows_ink_by_the_radius() {
        let dot = GrayImage::from_fn(5, 5, |x, y| Luma([if (x, y) == (2, 2) { 200 } else { 0 }]));
        let grown = dilate(&dot, 2);
        assert_eq!(grown.dimensions(), (9, 9));
        assert_eq!(grown.pixels().filter(|p| p[0] == 200).count(), 25);
        assert_eq!(grown.get_pixel(1, 1)[0], 0);
    }

    #[test]
    fn a_dark_28x28_image_is_used_as_is_and_a_light_one_is_prepared() {
        let dark = GrayImage::from_fn(28, 28, |x, y| Luma([if x == 3 && y == 3 { 255 } else { 0 }]));
        let (pixels, how) = prepare(&DynamicImage::ImageLuma8(dark.clone()), false, Path::new("d.png")).unwrap();
        assert_eq!((how, pixels.as_slice()), (Preparation::AsIs, dark.as_raw().as_slice()));
        let light = bar_on_paper(28, 28, 2, 6, 2, 10);
        let (_, how) = prepare(&light, false, Path::new("l.png")).unwrap();
        assert_eq!(how, Preparation::MnistStyle { inverted: true });
    }

    #[test]
    fn raw_skips_preparation_and_needs_28x28() {
        let light = bar_on_paper(28, 28, 2, 6, 2, 10);
        let (pixels, how) = prepare(&light, true, Path::new("l.png")).unwrap();
        assert_eq!((how, pixels[0]), (Preparation::AsIs, 230));
        let err = prepare(&bar_on_paper(30, 30, 2, 6, 2, 10), true, Path::new("big.png")).unwrap_err();
        assert!(err.to_string().contains("raw input (used as is) must be a 28x28 image"));
    }

    #[test]
    fn a_canvas_drawing_with_ink_in_alpha_is_read() {
        // Black strokes on a fully transparent background, as a browser canvas exports.
        let img = RgbaImage::from_fn(100, 100, |x, y| {
            if (45..55).contains(&x) && (10..90).contains(&y) { Rgba([0, 0, 0, 255]) } else { Rgba([0, 0, 0, 0]) }
        });
        let (pixels, _) = prepare(&DynamicImage::ImageRgba8(img), false, Path::new("c.png")).unwrap();
        assert!(pixels.iter().filter(|&&v| v > 200).count() > 20);
    }

    #[test]
    fn blank_and_broken_images_are_errors() {
        let blank = DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 50, Luma([255])));
        assert!(prepare(&blank, false, Path::new("b.png")).unwrap_err().to_string().contains("blank"));
        let err = decode(b"not an image at all", Path::new("n.png"), ImageLimits::default()).unwrap_err().to_string();
        assert!(err.contains("n.png"), "{err}");
        let mut png = Vec::new();
        bar_on_paper(10, 10, 1, 2, 1, 2)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let err = decode(&png[..png.len() / 2], Path::new("t.png"), ImageLimits::default()).unwrap_err().to_string();
        assert!(err.contains("t.png") && err.contains("decode"), "{err}");
    }
}
