//! A line of writing as the line reader sees it (`read::line`): a strip [`STRIP_HEIGHT`] pixels
//! tall, the line's digits scaled to [`DIGIT_HEIGHT`] (as MNIST frames a digit in 20 of its 28
//! rows), centred on the line, as wide as the line; only the line's own marks and their faint
//! edges. Training strips ([`line_sample`]) are made from composed numbers through the very same
//! steps as `read` takes on a picture (ink, marks, lines, strip), so the reader meets at run time
//! what it learnt on.

use super::Dataset;
use super::augment::AugmentConfig;
use super::image::to_gray;
use super::ink;
use super::marks::{self, Labels, Line};
use super::nondigit::{below, uniform};
use super::numbers::{self, NumberStyle, Source, Spacing};
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma};
use rand_chacha::ChaCha8Rng;

/// Rows of a strip.
pub const STRIP_HEIGHT: usize = 32;
/// How tall a line's digits (its `Line::height`) are made in a strip.
pub const DIGIT_HEIGHT: f32 = 20.0;
/// The widest strip made (about 100 digits; its activations stay well inside
/// `limits::MAX_BYTES_PER_SAMPLE`). A longer line is read by cuts alone.
pub const MAX_STRIP_WIDTH: usize = 2048;

/// A line's strip: `pixels` row by row, 0 (paper) to 1 (ink), and where it lies on the ink
/// image it came from: strip column `c` is ink column `left + c / scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct Strip {
    pub pixels: Vec<f32>,
    pub width: usize,
    pub left: f32,
    pub top: f32,
    pub scale: f32,
}

impl Strip {
    /// The ink image's columns (first, one past last) that strip columns `from..to` cover.
    pub fn ink_columns(&self, from: usize, to: usize) -> (f32, f32) {
        (self.left + from as f32 / self.scale, self.left + to as f32 / self.scale)
    }

    /// The strip placed at `offset` columns into a strip `width` wide, paper elsewhere (a
    /// training batch's fixed width).
    pub fn padded_into(&self, width: usize, offset: usize, out: &mut [f32]) {
        assert!(offset + self.width <= width && out.len() == width * STRIP_HEIGHT);
        out.fill(0.0);
        for (row, pixels) in self.pixels.chunks(self.width).enumerate() {
            out[row * width + offset..row * width + offset + self.width].copy_from_slice(pixels);
        }
    }
}

/// The strip of `line` (its marks in `labels`, found on `ink`), its digits scaled to
/// `digit_height`. None when the line would be wider than [`MAX_STRIP_WIDTH`].
pub fn line_strip(ink: &GrayImage, labels: &Labels, line: &Line, digit_height: f32) -> Option<Strip> {
    let marks: Vec<_> = line.marks.iter().map(|&i| labels.marks[i]).collect();
    let mut in_line = vec![false; labels.marks.len() + 1];
    for &i in &line.marks {
        in_line[i + 1] = true;
    }
    // The line's middle: halfway between the top and bottom of its digit-sized marks.
    let tall = marks.iter().filter(|m| m.height() as f32 >= 0.5 * line.height);
    let (top, bottom) = tall.fold((u32::MAX, 0), |(t, b), m| (t.min(m.y0), b.max(m.y1)));
    let (top, bottom) = if top > bottom { (marks[0].y0, marks[0].y1) } else { (top, bottom) };
    let middle = (top + bottom + 1) as f32 / 2.0;
    let scale = digit_height / line.height.max(1.0);
    let margin = 0.25 * line.height;
    let left = marks.iter().map(|m| m.x0).min()? as f32 - margin;
    let right = marks.iter().map(|m| m.x1).max()? as f32 + 1.0 + margin;
    let width = ((right - left) * scale).ceil() as usize;
    if width > MAX_STRIP_WIDTH {
        return None;
    }
    let rows_in_ink = STRIP_HEIGHT as f32 / scale;
    let strip_top = middle - rows_in_ink / 2.0;
    let (crop_w, crop_h) = ((right - left).ceil() as u32, rows_in_ink.ceil() as u32);
    let (ink_w, ink_h) = ink.dimensions();
    let crop = GrayImage::from_fn(crop_w.max(1), crop_h.max(1), |cx, cy| {
        let (x, y) = (left.floor() as i64 + cx as i64, strip_top.floor() as i64 + cy as i64);
        if x < 0 || y < 0 || x >= ink_w as i64 || y >= ink_h as i64 {
            return Luma([0]);
        }
        let (x, y) = (x as u32, y as u32);
        let label = labels.labels[(y * labels.width + x) as usize] as usize;
        // The line's marks, and unlabelled faint ink (their soft edges); other lines' marks not.
        Luma([if label == 0 || in_line[label] { ink.get_pixel(x, y)[0] } else { 0 }])
    });
    let resized = imageops::resize(&crop, width.max(1) as u32, STRIP_HEIGHT as u32, FilterType::Triangle);
    let pixels = resized.pixels().map(|p| p[0] as f32 / 255.0).collect();
    Some(Strip { pixels, width: width.max(1), left: left.floor(), top: strip_top.floor(), scale })
}

/// The strips of every line of a picture's ink, top to bottom (None for a line too wide), with
/// the lines and the marks; None when there is no ink or more than `max_marks` marks.
pub fn picture_strips(gray: &GrayImage, max_marks: usize) -> Option<(Vec<Option<Strip>>, ink::Ink)> {
    let ink = ink::separate(gray)?;
    let labels = marks::label(&ink.image, max_marks)?;
    let (lines, _) = marks::lines(&labels);
    let strips = lines.iter().map(|line| line_strip(&ink.image, &labels, line, DIGIT_HEIGHT)).collect();
    Some((strips, ink))
}

/// One training strip for the line reader and its digits: a number of 1 to 6 digits composed
/// from `digits` (MNIST's training digits) or drawn with a pen, touching seven times in ten,
/// photographed on paper one time in eight, with a mark that is no digit between two digits one
/// time in five (a comma, full stop or dash, or a letter, symbol, scribble or shape), or (one time
/// in twenty, and one in forty) only such marks and no digit, half the numbers with wider size,
/// baseline and pen changes (`NumberStyle::varied`); then ink, marks, the line and its strip as
/// `read` makes them, the digit height drawn from 18-22 pixels so the reader tolerates a
/// misjudged line height. None when the picture did not come out as one line no wider than
/// `max_width`.
pub fn line_sample(
    digits: &Dataset,
    max_width: usize,
    reshape: Option<AugmentConfig>,
    rng: &mut ChaCha8Rng,
) -> Option<(Strip, Vec<u8>)> {
    let style = NumberStyle {
        source: if below(rng, 10) < 7 { Source::Dataset } else { Source::Pen },
        spacing: if below(rng, 10) < 7 { Spacing::Touching } else { Spacing::Gaps },
        photo: below(rng, 8) == 0,
        digits: (1, 6),
        punctuation: below(rng, 5) < 2,
        non_digits: true,
        varied: below(rng, 2) == 0,
        reshape,
    };
    let number = if below(rng, 20) == 0 {
        // Marks that are no digits, alone: the reader must read nothing there.
        let marks: String = (0..1 + below(rng, 4)).map(|_| char::from(b",.-"[below(rng, 3) as usize])).collect();
        numbers::Number { picture: numbers::pen_number(&marks, Spacing::Gaps, rng), text: String::new() }
    } else if below(rng, 40) == 0 {
        // A letter, symbol, scribble or shape alone.
        let canvas = numbers::non_digit(digits, 40.0, rng);
        numbers::Number { picture: numbers::on_white(&canvas), text: String::new() }
    } else {
        numbers::compose(style, digits, rng)
    };
    let ink = ink::separate(&to_gray(&number.picture))?;
    let labels = marks::label(&ink.image, 1_000)?;
    let (lines, _) = marks::lines(&labels);
    let [line] = &lines[..] else { return None };
    let strip = line_strip(&ink.image, &labels, line, uniform(rng, 18.0, 22.0))?;
    (strip.width <= max_width).then(|| (strip, number.text.bytes().map(|c| c - b'0').collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn a_line_becomes_a_strip_of_its_own_ink() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Two lines: each strip holds its own digits and none of the other line's ink.
        let top = numbers::pen_number("12", Spacing::Gaps, &mut rng).to_luma8();
        let bottom = numbers::pen_number("3456", Spacing::Gaps, &mut rng).to_luma8();
        let mut page = GrayImage::from_pixel(bottom.width(), top.height() + bottom.height(), Luma([255]));
        imageops::replace(&mut page, &top, 0, 0);
        imageops::replace(&mut page, &bottom, 0, top.height() as i64);
        let (strips, _) = picture_strips(&page, 1000).unwrap();
        assert_eq!(strips.len(), 2);
        let widths: Vec<usize> = strips.iter().map(|s| s.as_ref().unwrap().width).collect();
        assert!(widths[1] > widths[0] * 3 / 2, "{widths:?}");
        for strip in strips.iter().flatten() {
            assert_eq!(strip.pixels.len(), strip.width * STRIP_HEIGHT);
            assert!(strip.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
            // Ink in the middle rows, none in the top and bottom rows (other lines' marks).
            let row_ink = |r: usize| strip.pixels[r * strip.width..(r + 1) * strip.width].iter().sum::<f32>();
            assert!(row_ink(STRIP_HEIGHT / 2) > 1.0 && row_ink(0) < 0.5 && row_ink(STRIP_HEIGHT - 1) < 0.5);
        }
    }

    #[test]
    fn training_samples_are_seeded_and_fit_their_width() {
        let digits = Dataset {
            images: (0..10 * 784)
                .map(|i| if (i % 784) / 28 % 20 > 5 && i % 28 > 10 && i % 28 < 16 { 255 } else { 0 })
                .collect(),
            labels: (0..10).collect(),
            rows: 28,
            cols: 28,
        };
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20).filter_map(|_| line_sample(&digits, 192, None, &mut rng)).collect::<Vec<_>>()
        };
        let samples = draw(9);
        assert!(samples.len() >= 10, "{} of 20 draws made a strip", samples.len());
        assert!(samples.iter().all(|(s, text)| s.width <= 192 && text.len() <= 6 && text.iter().all(|&d| d < 10)));
        assert_eq!(samples, draw(9));
    }
}
