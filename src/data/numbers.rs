//! Pictures of handwritten numbers with their text, made from single digits: MNIST's (cut to
//! their ink) or drawn with a pen from strokes, side by side with gaps, or touching and
//! overlapping their neighbours, with size and baseline changes; optionally photographed on
//! paper (uneven light, grey paper, blur, grain, JPEG). For measuring `read`
//! (`examples/read_numbers.rs`) and its tests; seeded, so each picture is reproducible.

use super::Dataset;
use super::augment::{AugmentConfig, augment_image};
use super::corrupt;
use super::cuts::{self, Group, GroupLimits};
use super::image::{Pixels, frame_ink};
use super::marks;
use super::nondigit::{Canvas, Kind, NOT_A_DIGIT, below, uniform};
use image::{DynamicImage, GrayImage, Luma};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// Where the digits come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Digits of a dataset (MNIST's), cut to their ink.
    Dataset,
    /// Digits drawn with a pen from strokes, each one slanted, squeezed and wobbled its own way.
    Pen,
}

/// How neighbouring digits sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing {
    /// Apart, by a tenth to half a digit's height.
    Gaps,
    /// Their boxes touching or overlapping by up to 30% of the narrower one's width; half the
    /// time each digit is also pushed left until its ink meets its neighbour's.
    Touching,
}

/// A picture of a number and the number.
pub struct Number {
    pub picture: DynamicImage,
    pub text: String,
}

/// How a number is made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NumberStyle {
    pub source: Source,
    pub spacing: Spacing,
    /// Photographed on paper rather than a clean dark-on-white file.
    pub photo: bool,
    /// Digits per number, at least and at most.
    pub digits: (usize, usize),
    /// Half the time, a comma, full stop or dash written between two of the digits (not part
    /// of the text: a reader should skip it).
    pub punctuation: bool,
    /// With `punctuation`, half of those marks are instead a letter or symbol (from the training
    /// typefaces), a scribble or a shape (`data::nondigit`), a half to a whole digit tall.
    pub non_digits: bool,
    /// Wider changes: each digit's size from 0.75 to 1.3 (else 0.85 to 1.15), baselines
    /// wandering a fifth of the digit height (else a tenth), and a dataset digit's strokes
    /// thickened or thinned two times in three, as a heavier or finer pen would write it.
    pub varied: bool,
    /// Each dataset digit first given a random transform drawn from these ranges (rotation,
    /// size, shear, elastic distortion), as a classifier's training digits are: more writers
    /// than the dataset has, for training. None: the digits as the dataset has them.
    pub reshape: Option<AugmentConfig>,
}

impl Default for NumberStyle {
    /// Two to six dataset digits apart, in a clean file, nothing between them, sizes and pens
    /// as the dataset has them.
    fn default() -> Self {
        NumberStyle {
            source: Source::Dataset,
            spacing: Spacing::Gaps,
            photo: false,
            digits: (2, 6),
            punctuation: false,
            non_digits: false,
            varied: false,
            reshape: None,
        }
    }
}

/// A number of `style`, its digits drawn from `digits` (for `Source::Dataset`) at random.
pub fn compose(style: NumberStyle, digits: &Dataset, rng: &mut ChaCha8Rng) -> Number {
    let (least, most) = style.digits;
    let count = least + below(rng, (most - least + 1) as u32) as usize;
    let mut text = String::new();
    let mut glyphs = Vec::with_capacity(count);
    // Digits are made this tall, then scaled by each one's own size change.
    let height = match style.source {
        Source::Dataset => 20.0,
        Source::Pen => 40.0,
    };
    for _ in 0..count {
        let (digit, glyph) = match style.source {
            Source::Dataset => {
                let index = below(rng, digits.len() as u32) as usize;
                let glyph = match &style.reshape {
                    Some(ranges) => cut_to_ink(&reshaped(digits, index, ranges, rng), digits.cols),
                    None => cut_to_ink(digits.image(index), digits.cols),
                };
                (digits.labels[index], if style.varied { change_pen(&glyph, rng) } else { glyph })
            }
            Source::Pen => {
                let digit = below(rng, 10) as u8;
                (digit, pen_digit(digit, height, rng))
            }
        };
        text.push(char::from(b'0' + digit));
        let size = if style.varied { uniform(rng, 0.75, 1.3) } else { uniform(rng, 0.85, 1.15) };
        glyphs.push(rescale(&glyph, size));
    }
    if style.punctuation && count >= 2 && below(rng, 2) == 0 {
        let at = 1 + below(rng, (count - 1) as u32) as usize;
        let glyph = if style.non_digits && below(rng, 2) == 0 {
            non_digit(digits, height, rng)
        } else {
            mark(b",.-"[below(rng, 3) as usize], height)
        };
        glyphs.insert(at, glyph);
    }
    let drift = if style.varied { 0.2 } else { 0.1 };
    let ink = lay_out_placed(&glyphs, height, style.spacing, drift, rng).0;
    let picture = if style.photo { photograph(&ink, rng) } else { on_white(&ink) };
    Number { picture, text }
}

/// `text` written with a pen, dark on white: digits as [`pen_digit`] draws them, and ',' '.'
/// '-' as the small marks they are, on the digits' baseline or across their middle. For tests
/// and demonstrations of a particular number.
pub fn pen_number(text: &str, spacing: Spacing, rng: &mut ChaCha8Rng) -> DynamicImage {
    let height = 40.0;
    let glyphs: Vec<Canvas> = text
        .bytes()
        .map(|c| match c {
            b'0'..=b'9' => pen_digit(c - b'0', height, rng),
            _ => mark(c, height),
        })
        .collect();
    on_white(&lay_out(&glyphs, height, spacing, rng))
}

/// A letter or symbol, a scribble or a shape (`nondigit::generate`), its ink a half to a whole
/// `height` tall.
pub fn non_digit(digits: &Dataset, height: f32, rng: &mut ChaCha8Rng) -> Canvas {
    let kind = [Kind::Glyph, Kind::Scribble, Kind::Shape][below(rng, 3) as usize];
    let pixels = super::nondigit::generate(kind, digits, rng);
    let ink = cut_to_ink(&pixels, 28);
    let tall = ink.height.max(ink.width).max(1) as f32;
    rescale(&ink, uniform(rng, 0.5, 1.0) * height / tall)
}

/// A comma, full stop or dash on a canvas as tall as a digit, where it sits beside digits.
fn mark(c: u8, height: f32) -> Canvas {
    let pen = 0.1 * height;
    let mut canvas = Canvas::new((0.4 * height) as usize, (height + 2.0 * pen) as usize);
    let points: &[(f32, f32)] = match c {
        b',' => &[(0.55, 0.88), (0.5, 1.0), (0.3, 1.12)],
        b'.' => &[(0.45, 0.95), (0.5, 0.97)],
        _ => &[(0.1, 0.55), (0.9, 0.55)],
    };
    let points: Vec<(f32, f32)> = points.iter().map(|&(x, y)| (x * 0.4 * height, pen + y * height)).collect();
    canvas.stroke(&points, pen, 1.0);
    canvas
}

/// Digits side by side on one canvas (ink 0..1), each shifted up or down a little.
fn lay_out(glyphs: &[Canvas], height: f32, spacing: Spacing, rng: &mut ChaCha8Rng) -> Canvas {
    lay_out_placed(glyphs, height, spacing, 0.1, rng).0
}

/// [`lay_out`], each glyph's middle up to `drift` digit heights off the line's, with where each
/// digit was placed (its left and top on the canvas).
fn lay_out_placed(
    glyphs: &[Canvas],
    height: f32,
    spacing: Spacing,
    drift: f32,
    rng: &mut ChaCha8Rng,
) -> (Canvas, Vec<(usize, usize)>) {
    let margin = (height * 0.4) as usize;
    let rows = (height * 1.6) as usize + 2 * margin;
    let width: usize = glyphs.iter().map(|g| g.width + (height * 0.6) as usize).sum::<usize>() + 2 * margin;
    let mut canvas = Canvas::new(width, rows);
    // The rightmost ink of each row so far (None: nothing yet).
    let mut right: Vec<Option<usize>> = vec![None; rows];
    let mut x_end = margin;
    let mut placed = Vec::with_capacity(glyphs.len());
    let mut last_width = 0;
    for glyph in glyphs {
        let top = ((rows - glyph.height) as f32 / 2.0 + uniform(rng, -drift, drift) * height).max(0.0) as usize;
        let top = top.min(rows.saturating_sub(glyph.height));
        let left_profile: Vec<Option<usize>> =
            (0..glyph.height).map(|y| (0..glyph.width).find(|&x| glyph.ink[y * glyph.width + x] >= 0.25)).collect();
        let x = match spacing {
            Spacing::Gaps => x_end + (uniform(rng, 0.1, 0.5) * height) as usize,
            Spacing::Touching => {
                // The boxes touch or overlap; half the time the ink is pushed into contact.
                let overlap = (uniform(rng, 0.0, 0.3) * glyph.width.min(last_width) as f32) as i64;
                let boxes = x_end as i64 - overlap;
                let touch = (0..glyph.height)
                    .filter_map(|y| Some(right[top + y]? as i64 + 1 - left_profile[y]? as i64))
                    .max()
                    .unwrap_or(boxes);
                (if below(rng, 2) == 0 { boxes } else { boxes.min(touch) }).max(0) as usize
            }
        };
        for y in 0..glyph.height {
            for gx in 0..glyph.width {
                let v = glyph.ink[y * glyph.width + gx];
                if x + gx < width && v > 0.0 {
                    let cell = &mut canvas.ink[(top + y) * width + x + gx];
                    *cell = cell.max(v);
                    if v >= 0.25 {
                        right[top + y] = Some(right[top + y].map_or(x + gx, |r| r.max(x + gx)));
                    }
                }
            }
        }
        x_end = x_end.max(x + glyph.width);
        last_width = glyph.width;
        placed.push((x, top));
    }
    let used = (x_end + margin).min(width);
    let mut trimmed = Canvas::new(used, rows);
    for y in 0..rows {
        trimmed.ink[y * used..(y + 1) * used].copy_from_slice(&canvas.ink[y * width..y * width + used]);
    }
    (trimmed, placed)
}

/// One training sample for the recogniser the reader searches with: a number of 2 to 4 of
/// `digits` composed (touching seven times in ten, else apart), cut into pieces as `read` cuts
/// it, and one run of pieces the reader would consider, framed as it frames them. Labelled with
/// the digit it holds when it holds nearly all of one digit's ink and little of its neighbours'
/// (so the model learns to read a digit with a neighbour's stroke across it), "not a digit"
/// ([`NOT_A_DIGIT`]) when it holds a part of a digit or most of two. Runs between the two are
/// not used: None after a few draws finds none.
pub fn segment_sample(digits: &Dataset, limits: &GroupLimits, rng: &mut ChaCha8Rng) -> Option<(Pixels, u8)> {
    let count = 2 + below(rng, 3) as usize;
    let spacing = if below(rng, 10) < 7 { Spacing::Touching } else { Spacing::Gaps };
    let mut labels_of = Vec::with_capacity(count);
    let glyphs: Vec<Canvas> = (0..count)
        .map(|_| {
            let index = below(rng, digits.len() as u32) as usize;
            labels_of.push(digits.labels[index]);
            rescale(&cut_to_ink(digits.image(index), digits.cols), uniform(rng, 0.85, 1.15))
        })
        .collect();
    let number = CutNumber::new(glyphs, spacing, rng)?;
    let groups: Vec<Group> = number.groups(limits).into_iter().filter(|g| g.could_be_digit).collect();
    for _ in 0..8 {
        let group = groups.get(below(rng, groups.len() as u32) as usize)?;
        let held = held_ink(group, &number.glyphs, &number.placed);
        let (best, coverage) = (0..count)
            .map(|k| (k, held[k] / number.totals[k]))
            .fold((0, 0.0f32), |b, (k, c)| if c > b.1 { (k, c) } else { b });
        let label = if is_clean(&held, &number.totals, best) {
            labels_of[best]
        } else if coverage < 0.6 || foreign(&held, best) > 0.5 {
            NOT_A_DIGIT as u8
        } else {
            continue;
        };
        return frame_ink(&group.image).map(|pixels| (pixels, label));
    }
    None
}

/// Digits laid out as a number, its ink cut into pieces as `read` cuts it (its longest line).
struct CutNumber {
    glyphs: Vec<Canvas>,
    /// Where each digit was placed, and the ink each has in all.
    placed: Vec<(usize, usize)>,
    totals: Vec<f32>,
    ink: GrayImage,
    labels: marks::Labels,
    line_height: f32,
    cuts: cuts::Cuts,
}

impl CutNumber {
    fn new(glyphs: Vec<Canvas>, spacing: Spacing, rng: &mut ChaCha8Rng) -> Option<CutNumber> {
        let (canvas, placed) = lay_out_placed(&glyphs, 20.0, spacing, 0.1, rng);
        let ink = canvas.to_gray();
        let labels = marks::label(&ink, 1_000)?;
        let (lines, _) = marks::lines(&labels);
        let line = lines.iter().max_by_key(|l| l.marks.len())?;
        let cuts = cuts::cut(&ink, &labels, line);
        let totals = glyphs.iter().map(|g| g.ink.iter().sum::<f32>().max(1e-3)).collect();
        Some(CutNumber { line_height: line.height, glyphs, placed, totals, ink, labels, cuts })
    }

    fn groups(&self, limits: &GroupLimits) -> Vec<Group> {
        cuts::groups(&self.ink, &self.labels, &self.cuts, self.line_height, limits)
    }
}

/// Whether a run holding `held` of each digit's ink is digit `k`, cleanly: at least 85% of its
/// ink, and at most 30% of the run's ink another digit's.
fn is_clean(held: &[f32], totals: &[f32], k: usize) -> bool {
    held[k] / totals[k] >= 0.85 && foreign(held, k) <= 0.3
}

/// The share of a run's ink that is not digit `k`'s.
fn foreign(held: &[f32], k: usize) -> f32 {
    1.0 - held[k] / held.iter().sum::<f32>().max(1e-3)
}

/// Each digit's ink inside a run's own pixels.
fn held_ink(group: &Group, glyphs: &[Canvas], placed: &[(usize, usize)]) -> Vec<f32> {
    let mut held = vec![0.0f32; glyphs.len()];
    for (cx, cy, p) in group.image.enumerate_pixels() {
        if p[0] == 0 {
            continue;
        }
        let (x, y) = ((group.bounds[0] + cx) as usize, (group.bounds[1] + cy) as usize);
        for (k, h) in held.iter_mut().enumerate() {
            let ((gx, gy), g) = (placed[k], &glyphs[k]);
            if x >= gx && y >= gy && x - gx < g.width && y - gy < g.height {
                *h += g.ink[(y - gy) * g.width + x - gx];
            }
        }
    }
    held
}

/// (Diagnostic) Whether some split of a composed number's pieces into runs gives each digit, in
/// order, a run [`segment_sample`] would label with it: what a perfect recogniser could read
/// through `read`'s cuts.
pub fn cuts_allow(digits: &Dataset, spacing: Spacing, limits: &GroupLimits, rng: &mut ChaCha8Rng) -> bool {
    let count = 2 + below(rng, 5) as usize;
    let glyphs: Vec<Canvas> = (0..count)
        .map(|_| {
            let index = below(rng, digits.len() as u32) as usize;
            rescale(&cut_to_ink(digits.image(index), digits.cols), uniform(rng, 0.85, 1.15))
        })
        .collect();
    let Some(number) = CutNumber::new(glyphs, spacing, rng) else { return false };
    // reach[p][k]: the first p pieces can be split so that digits 0..k are read.
    let pieces = number.cuts.pieces();
    let mut reach = vec![vec![false; count + 1]; pieces + 1];
    reach[0][0] = true;
    for g in number.groups(limits) {
        let held = held_ink(&g, &number.glyphs, &number.placed);
        for k in 0..=count {
            if !reach[g.first][k] {
                continue;
            }
            if k < count && g.could_be_digit && is_clean(&held, &number.totals, k) {
                reach[g.last + 1][k + 1] = true;
            }
            // A single piece holding little of any digit may be skipped.
            if g.first == g.last && held.iter().zip(&number.totals).all(|(h, t)| h / t < 0.15) {
                reach[g.last + 1][k] = true;
            }
        }
    }
    reach[pieces][count]
}

/// Dataset image `index` through a random transform of `ranges` (`augment::augment_image`).
fn reshaped(digits: &Dataset, index: usize, ranges: &AugmentConfig, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = vec![0.0; digits.image_len()];
    augment_image(digits.image(index), digits.rows, digits.cols, ranges, rng, &mut out);
    out.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect()
}

/// A dataset image cut to the box of its ink, as a canvas.
fn cut_to_ink(image: &[u8], cols: usize) -> Canvas {
    let rows = image.len() / cols;
    let inked = |x: usize, y: usize| image[y * cols + x] > 0;
    let xs: Vec<usize> = (0..cols).filter(|&x| (0..rows).any(|y| inked(x, y))).collect();
    let ys: Vec<usize> = (0..rows).filter(|&y| (0..cols).any(|x| inked(x, y))).collect();
    let (Some(&x0), Some(&x1), Some(&y0), Some(&y1)) = (xs.first(), xs.last(), ys.first(), ys.last()) else {
        return Canvas::new(1, 1);
    };
    let mut canvas = Canvas::new(x1 - x0 + 1, y1 - y0 + 1);
    for y in y0..=y1 {
        for x in x0..=x1 {
            canvas.ink[(y - y0) * canvas.width + x - x0] = image[y * cols + x] as f32 / 255.0;
        }
    }
    canvas
}

/// `glyph` as a heavier or finer pen would write it: thickened by a pixel all round (one time
/// in three) or half that (one in seven), thinned (one in six), else as it is. The same 3x3
/// neighbourhoods as `eval --corrupt thick|thin` (`corrupt::neighbourhood`), on a canvas a pixel
/// larger all round for thickening.
fn change_pen(glyph: &Canvas, rng: &mut ChaCha8Rng) -> Canvas {
    match below(rng, 42) {
        0..14 => thicken(glyph),
        14..20 => {
            // Halfway between the glyph and its thickening.
            let mut half = thicken(glyph);
            for (cell, original) in half.ink.iter_mut().zip(padded(glyph).ink) {
                *cell = (*cell + original) / 2.0;
            }
            half
        }
        20..27 => thin(glyph),
        _ => glyph.clone(),
    }
}

/// `glyph` with one pixel of paper all round.
fn padded(glyph: &Canvas) -> Canvas {
    let mut out = Canvas::new(glyph.width + 2, glyph.height + 2);
    for (y, row) in glyph.ink.chunks(glyph.width).enumerate() {
        let at = (y + 1) * out.width + 1;
        out.ink[at..at + glyph.width].copy_from_slice(row);
    }
    out
}

/// Each pixel the most ink of its 3x3 neighbourhood, on a canvas one pixel larger all round.
fn thicken(glyph: &Canvas) -> Canvas {
    let mut out = padded(glyph);
    out.ink = corrupt::neighbourhood(&out.ink, out.height, out.width, |v| v.iter().fold(0.0f32, |a, &b| a.max(b)));
    out
}

/// Each pixel halfway to the least ink of itself and its four neighbours: strokes lose their
/// soft edges and grow finer, without breaking.
fn thin(glyph: &Canvas) -> Canvas {
    let mut out = glyph.clone();
    out.ink = corrupt::neighbourhood(&glyph.ink, glyph.height, glyph.width, |v| {
        let least = [v[1], v[3], v[4], v[5], v[7]].into_iter().fold(1.0f32, f32::min);
        (v[4] + least) / 2.0
    });
    out
}

/// A canvas scaled by `factor` (bilinear).
fn rescale(canvas: &Canvas, factor: f32) -> Canvas {
    let (w, h) = (
        ((canvas.width as f32 * factor).round() as usize).max(1),
        ((canvas.height as f32 * factor).round() as usize).max(1),
    );
    let gray = canvas.to_gray();
    let scaled = image::imageops::resize(&gray, w as u32, h as u32, image::imageops::FilterType::Triangle);
    let mut out = Canvas::new(w, h);
    for (i, p) in scaled.pixels().enumerate() {
        out.ink[i] = p[0] as f32 / 255.0;
    }
    out
}

/// The pen strokes of each digit in a unit box (y down).
pub fn strokes(digit: u8, flag_apart: bool) -> Vec<Vec<(f32, f32)>> {
    let ring = |cx: f32, cy: f32, rx: f32, ry: f32| -> Vec<(f32, f32)> {
        (0..=24)
            .map(|i| {
                let a = i as f32 / 24.0 * std::f32::consts::TAU;
                (cx + rx * a.sin(), cy - ry * a.cos())
            })
            .collect()
    };
    let tail = |from: (f32, f32), points: &[(f32, f32)]| -> Vec<(f32, f32)> {
        let mut all = vec![from];
        all.extend_from_slice(points);
        all
    };
    match digit {
        0 => vec![ring(0.5, 0.5, 0.32, 0.46)],
        1 => vec![vec![(0.35, 0.22), (0.55, 0.04), (0.55, 0.96)]],
        2 => vec![vec![
            (0.2, 0.28),
            (0.3, 0.1),
            (0.5, 0.04),
            (0.72, 0.12),
            (0.78, 0.3),
            (0.68, 0.5),
            (0.2, 0.95),
            (0.85, 0.95),
        ]],
        3 => vec![vec![
            (0.2, 0.14),
            (0.45, 0.04),
            (0.7, 0.12),
            (0.72, 0.32),
            (0.45, 0.48),
            (0.75, 0.62),
            (0.78, 0.82),
            (0.5, 0.96),
            (0.2, 0.88),
        ]],
        4 => vec![vec![(0.6, 0.04), (0.12, 0.66), (0.88, 0.66)], vec![(0.62, 0.32), (0.62, 0.96)]],
        5 => {
            let body = tail(
                if flag_apart { (0.3, 0.16) } else { (0.3, 0.06) },
                &[(0.25, 0.46), (0.55, 0.4), (0.78, 0.55), (0.78, 0.8), (0.55, 0.96), (0.2, 0.88)],
            );
            if flag_apart {
                vec![vec![(0.45, 0.02), (0.85, 0.02)], body]
            } else {
                vec![vec![(0.82, 0.04), (0.3, 0.04)], body]
            }
        }
        6 => vec![vec![
            (0.7, 0.04),
            (0.4, 0.25),
            (0.25, 0.6),
            (0.3, 0.88),
            (0.5, 0.96),
            (0.72, 0.85),
            (0.75, 0.65),
            (0.55, 0.52),
            (0.28, 0.62),
        ]],
        7 => vec![vec![(0.15, 0.06), (0.85, 0.06), (0.4, 0.96)]],
        8 => vec![ring(0.5, 0.27, 0.22, 0.23), ring(0.5, 0.73, 0.28, 0.23)],
        _ => vec![ring(0.48, 0.3, 0.25, 0.26), vec![(0.73, 0.3), (0.68, 0.96)]],
    }
}

/// `digit` drawn with a pen about `height` pixels tall: slanted, narrowed, its points wobbled,
/// a pen from fine to heavy, a 5's flag sometimes lifted off.
pub fn pen_digit(digit: u8, height: f32, rng: &mut ChaCha8Rng) -> Canvas {
    let slant = uniform(rng, -0.3, 0.3);
    let aspect = uniform(rng, 0.55, 0.9);
    let pen = uniform(rng, 0.06, 0.15) * height;
    let flag_apart = below(rng, 3) == 0;
    let pad = pen;
    let width = (height * (aspect + slant.abs()) + 2.0 * pad).ceil() as usize + 1;
    let mut canvas = Canvas::new(width, (height + 2.0 * pad).ceil() as usize + 1);
    let shift = if slant < 0.0 { -slant * height } else { 0.0 };
    for stroke in strokes(digit, flag_apart) {
        let points: Vec<(f32, f32)> = stroke
            .iter()
            .map(|&(x, y)| {
                let (x, y) = (x + uniform(rng, -0.03, 0.03), y + uniform(rng, -0.03, 0.03));
                (pad + shift + x * aspect * height + slant * (1.0 - y) * height, pad + y * height)
            })
            .collect();
        canvas.stroke(&points, pen, 1.0);
    }
    canvas
}

/// Dark ink on white, as a scanned or drawn file.
pub fn on_white(ink: &Canvas) -> DynamicImage {
    let gray = GrayImage::from_fn(ink.width as u32, ink.height as u32, |x, y| {
        Luma([255 - (ink.ink[y as usize * ink.width + x as usize].clamp(0.0, 1.0) * 255.0).round() as u8])
    });
    DynamicImage::ImageLuma8(gray)
}

/// The number written on paper and photographed: enlarged 1.5 to 3 times, ink of some darkness
/// on grey to white paper lit unevenly (a gradient and, half the time, a shadow's edge across
/// the page), blurred, grain, then saved as a JPEG of middling quality and read back.
fn photograph(ink: &Canvas, rng: &mut ChaCha8Rng) -> DynamicImage {
    let scale = uniform(rng, 1.5, 3.0);
    let (w, h) = ((ink.width as f32 * scale) as u32, (ink.height as f32 * scale) as u32);
    let enlarged = image::imageops::resize(&Canvas::to_gray(ink), w, h, image::imageops::FilterType::Triangle);
    let blur = uniform(rng, 0.0, 1.5);
    let enlarged = if blur > 0.3 { image::imageops::blur(&enlarged, blur) } else { enlarged };
    let (paper, ink_level) = (uniform(rng, 150.0, 245.0), uniform(rng, 0.0, 80.0));
    let gradient = (uniform(rng, -60.0, 60.0), uniform(rng, -40.0, 40.0));
    // A shadow's edge: a line across the page, darker on one side.
    let shadow = (below(rng, 2) == 0).then(|| {
        let angle = uniform(rng, 0.0, std::f32::consts::PI);
        (angle.cos(), angle.sin(), uniform(rng, 0.3, 0.7), uniform(rng, 0.5, 0.75))
    });
    let mut grain = ChaCha8Rng::seed_from_u64(rng.next_u64());
    let photo = GrayImage::from_fn(w, h, |x, y| {
        let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
        let mut light = paper + gradient.0 * (u - 0.5) + gradient.1 * (v - 0.5);
        if let Some((cx, cy, at, darkness)) = shadow
            && (u - 0.5) * cx + (v - 0.5) * cy + 0.5 > at
        {
            light *= darkness;
        }
        let coverage = enlarged.get_pixel(x, y)[0] as f32 / 255.0;
        let level = light * (1.0 - coverage) + ink_level.min(light) * coverage;
        let noise = (grain.next_u32() % 17) as f32 - 8.0;
        Luma([(level + noise).clamp(0.0, 255.0) as u8])
    });
    let quality = 50 + below(rng, 41) as u8;
    jpeg_round_trip(photo, quality)
}

/// The photo as a JPEG of `quality` decodes. (A build without image files, the browser's, has no
/// JPEG codec and never makes training data: there the photo is left as it is.)
#[cfg(feature = "image-files")]
fn jpeg_round_trip(photo: GrayImage, quality: u8) -> DynamicImage {
    let mut jpeg = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality);
    DynamicImage::ImageLuma8(photo.clone()).write_with_encoder(encoder).expect("encoding a JPEG in memory cannot fail");
    image::load_from_memory(&jpeg).unwrap_or(DynamicImage::ImageLuma8(photo))
}

#[cfg(not(feature = "image-files"))]
fn jpeg_round_trip(photo: GrayImage, _quality: u8) -> DynamicImage {
    DynamicImage::ImageLuma8(photo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    /// Pen digits, framed, as a small dataset.
    fn pen_digits() -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        for i in 0..50u8 {
            let digit = i % 10;
            images.extend(pen_digit(digit, 20.0, &mut rng).framed().expect("ink"));
            labels.push(digit);
        }
        Dataset { images, labels, rows: 28, cols: 28 }
    }

    #[test]
    fn numbers_are_composed_with_their_text() {
        let digits = pen_digits();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (source, spacing, photo, varied) in [
            (Source::Dataset, Spacing::Gaps, false, false),
            (Source::Dataset, Spacing::Touching, true, false),
            (Source::Pen, Spacing::Touching, false, false),
            (Source::Dataset, Spacing::Touching, false, true),
            (Source::Pen, Spacing::Gaps, false, true),
        ] {
            let style = NumberStyle { source, spacing, photo, varied, ..NumberStyle::default() };
            let number = compose(style, &digits, &mut rng);
            assert!((2..=6).contains(&number.text.len()) && number.text.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    /// Reshaping draws a new shape for each digit, keeps the text, and with no transform at all
    /// leaves the digit exactly as the dataset has it.
    #[test]
    fn reshaped_digits_keep_their_text_and_change_their_shape() {
        let digits = pen_digits();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        assert_eq!(reshaped(&digits, 3, &AugmentConfig::NONE, &mut rng), digits.image(3));
        let ranges = AugmentConfig { translation: 0.0, ..AugmentConfig::with_elastic() };
        let changed = reshaped(&digits, 3, &ranges, &mut rng);
        assert_ne!(changed, digits.image(3));
        assert!(changed.iter().filter(|&&v| v > 128).count() > 20, "the digit's ink is kept");
        let plain = NumberStyle { spacing: Spacing::Touching, ..NumberStyle::default() };
        let reshape = NumberStyle { reshape: Some(ranges), ..plain };
        let (a, b) = (compose(plain, &digits, &mut rng.clone()), compose(reshape, &digits, &mut rng.clone()));
        // The count and the first digit are drawn before any reshaping.
        assert_eq!((a.text.len(), &a.text[..1]), (b.text.len(), &b.text[..1]));
        assert_ne!(a.picture, b.picture);
    }

    #[test]
    fn a_pen_can_be_made_heavier_or_finer() {
        // A stroke 2 pixels wide with soft edges, across a 7x7 glyph.
        let mut glyph = Canvas::new(7, 7);
        for y in 0..7 {
            glyph.ink[y * 7 + 2] = 0.5;
            glyph.ink[y * 7 + 3] = 1.0;
            glyph.ink[y * 7 + 4] = 1.0;
            glyph.ink[y * 7 + 5] = 0.5;
        }
        let total = |c: &Canvas| c.ink.iter().sum::<f32>();
        let heavier = thicken(&glyph);
        assert_eq!((heavier.width, heavier.height), (9, 9));
        assert!(total(&heavier) > 1.5 * total(&glyph));
        let finer = thin(&glyph);
        assert!(total(&finer) < total(&glyph));
        // The stroke's core stays inked on every row: thinning does not break it.
        assert!((0..7).all(|y| finer.ink[y * 7 + 3] >= 0.5 && finer.ink[y * 7 + 4] >= 0.5));
    }

    /// (Diagnostic, needs MNIST in data/mnist) How often `read`'s cuts allow the right split.
    #[test]
    #[ignore]
    fn how_often_the_cuts_allow_the_right_split() {
        let mnist = crate::data::mnist::load("data/mnist".as_ref(), crate::data::Checksums::Require).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for spacing in [Spacing::Gaps, Spacing::Touching] {
            let allowed =
                (0..500).filter(|_| cuts_allow(&mnist.train, spacing, &GroupLimits::default(), &mut rng)).count();
            eprintln!("{spacing:?}: {allowed} of 500");
        }
    }

    /// The recogniser's samples hold digits and non-digits (parts, pairs), each framed 28x28.
    #[test]
    fn segment_samples_are_digits_or_not() {
        let digits = pen_digits();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let samples: Vec<(Pixels, u8)> =
            (0..300).filter_map(|_| segment_sample(&digits, &GroupLimits::default(), &mut rng)).collect();
        let refused = samples.iter().filter(|(_, l)| *l as usize == NOT_A_DIGIT).count();
        eprintln!("{} samples of 300, {refused} not digits", samples.len());
        assert!(samples.len() >= 240, "{} of 300 draws gave a sample", samples.len());
        assert!(refused * 5 >= samples.len() && refused * 5 <= samples.len() * 4, "{refused} of {}", samples.len());
        assert!(samples.iter().all(|(p, _)| p.iter().any(|&v| v > 200)));
    }
}
