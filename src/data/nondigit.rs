//! Generated images that are not digits, for training a model to say "not a digit" (outlier
//! exposure: Hendrycks, Mazeika and Dietterich, 2019, with the outliers made here instead of
//! taken from another dataset). Each kind is drawn as a user's image of it would look once
//! prepared (`data::image`): strokes and glyphs on a larger canvas, then cropped, scaled and
//! centred like a digit; textures and noise filling a 28x28 frame as they would be used as is.
//!
//! What is left out on purpose, because it would teach the model to refuse real digits: marks
//! that look like a digit once scaled (O, l, I, S, Z, B, g, q, b, G and the like, a single straight
//! stroke, a ring, a slash, a comma or an apostrophe, which become a 0 or a 1 in a 20x20 box).
//!
//! Every image comes from the generator it is given, so a seed gives the same images on any
//! number of threads.

use super::Dataset;
use super::image::{Pixels, SIDE, frame_ink};
use ab_glyph::{Font, FontRef, PxScale, point};
use image::{GrayImage, Luma};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;
use std::sync::OnceLock;

/// The output of a model that says "not a digit": after the ten digits.
pub const NOT_A_DIGIT: usize = 10;
/// The outputs of such a model.
pub const CLASSES: usize = 11;

/// A kind of non-digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A letter or symbol that resembles no digit, from one of the DejaVu typefaces.
    Glyph,
    /// Two to five pen strokes joined into a scribble.
    Scribble,
    /// One long stroke looping and crossing itself three times or more (`data::tangle`).
    Tangle,
    /// A triangle, star, cross, arrow, square or hatching, outlined or filled.
    Shape,
    /// An object-like silhouette with a texture filling most of the frame.
    Texture,
    /// Noise: uniform, speckle or smooth random blobs.
    Noise,
    /// Part of a digit: one side of a cut through a training digit.
    DigitPiece,
    /// Two training digits side by side, apart, touching or overlapping.
    DigitPair,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Glyph,
        Kind::Scribble,
        Kind::Tangle,
        Kind::Shape,
        Kind::Texture,
        Kind::Noise,
        Kind::DigitPiece,
        Kind::DigitPair,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Glyph => "glyph",
            Kind::Scribble => "scribble",
            Kind::Tangle => "tangle",
            Kind::Shape => "shape",
            Kind::Texture => "texture",
            Kind::Noise => "noise",
            Kind::DigitPiece => "digit-piece",
            Kind::DigitPair => "digit-pair",
        }
    }

    /// How often each kind is drawn in training, out of [`Kind::TOTAL_WEIGHT`].
    fn weight(self) -> u32 {
        match self {
            Kind::Glyph => 4,
            Kind::Scribble => 3,
            Kind::Tangle => 3,
            Kind::Shape => 2,
            Kind::Texture => 2,
            Kind::Noise => 1,
            Kind::DigitPiece => 2,
            Kind::DigitPair => 2,
        }
    }

    const TOTAL_WEIGHT: u32 = 19;

    /// A kind drawn by its training weight.
    pub fn random(rng: &mut ChaCha8Rng) -> Kind {
        let mut pick = rng.next_u32() % Kind::TOTAL_WEIGHT;
        for kind in Kind::ALL {
            if pick < kind.weight() {
                return kind;
            }
            pick -= kind.weight();
        }
        Kind::Glyph
    }
}

/// Letters and symbols that no digit resembles once scaled into a 20x20 box.
pub const GLYPHS: &str = "ACEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy?@#%&*+=<>~^{}$€£¥§¶÷×±λμπΣΩΦΨΔΓΛΠ:;.-_\"";

/// The typefaces glyphs are drawn from in training: every DejaVu face the `dejavu` crate carries.
fn training_fonts() -> &'static [FontRef<'static>] {
    static FONTS: OnceLock<Vec<FontRef<'static>>> = OnceLock::new();
    FONTS.get_or_init(|| {
        use dejavu::{sans, sans_condensed, sans_mono, serif, serif_condensed};
        [
            sans::regular(),
            sans::bold(),
            sans::oblique(),
            sans::bold_oblique(),
            sans::extra_light(),
            sans_condensed::regular(),
            sans_condensed::bold_oblique(),
            sans_mono::regular(),
            sans_mono::bold(),
            serif::regular(),
            serif::bold(),
            serif::italic(),
            serif_condensed::bold_italic(),
        ]
        .into_iter()
        .map(|bytes| FontRef::try_from_slice(bytes).expect("the dejavu crate's fonts parse"))
        .collect()
    })
}

/// One non-digit of `kind` as a prepared 28x28 image (0 background, 255 ink). `digits` supplies
/// the digits cut or paired (the training set: never the test set).
pub fn generate(kind: Kind, digits: &Dataset, rng: &mut ChaCha8Rng) -> Pixels {
    // A draw that leaves no ink (a glyph the font lacks, a piece with nothing in it) is drawn again.
    for _ in 0..32 {
        let drawn = match kind {
            Kind::Glyph => {
                let fonts = training_fonts();
                let font = &fonts[(rng.next_u32() as usize) % fonts.len()];
                let pick = (rng.next_u32() as usize) % GLYPHS.chars().count();
                glyph(font, GLYPHS.chars().nth(pick).expect("pick < count"), rng)
            }
            Kind::Scribble => scribble(rng),
            Kind::Tangle => tangle(rng),
            Kind::Shape => shape(rng),
            Kind::Texture => Some(texture(rng)),
            Kind::Noise => Some(noise(rng)),
            Kind::DigitPiece => digit_piece(digits, rng),
            Kind::DigitPair => digit_pair(digits, rng),
        };
        if let Some(pixels) = drawn {
            return pixels;
        }
    }
    noise(rng)
}

/// A uniform draw in [lo, hi) (24 bits of one draw; every generator in `data` uses it).
pub(crate) fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// A draw from 0..n.
pub(crate) fn below(rng: &mut ChaCha8Rng, n: u32) -> u32 {
    rng.next_u32() % n.max(1)
}

/// A grid of ink values in [0, 1] to draw on.
#[derive(Clone)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub ink: Vec<f32>,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas { width, height, ink: vec![0.0; width * height] }
    }

    /// A polyline drawn with a round pen `width` pixels wide, anti-aliased (coverage from the
    /// distance to the nearest segment), `level` at full coverage.
    pub fn stroke(&mut self, points: &[(f32, f32)], width: f32, level: f32) {
        let half = width / 2.0;
        for pair in points.windows(2) {
            let ((ax, ay), (bx, by)) = (pair[0], pair[1]);
            let x0 = (ax.min(bx) - half - 1.0).floor().max(0.0) as usize;
            let y0 = (ay.min(by) - half - 1.0).floor().max(0.0) as usize;
            let x1 = ((ax.max(bx) + half + 1.0).ceil().max(0.0) as usize).min(self.width);
            let y1 = ((ay.max(by) + half + 1.0).ceil().max(0.0) as usize).min(self.height);
            let (dx, dy) = (bx - ax, by - ay);
            let length2 = (dx * dx + dy * dy).max(1e-6);
            for y in y0..y1 {
                for x in x0..x1 {
                    let (px, py) = (x as f32 + 0.5 - ax, y as f32 + 0.5 - ay);
                    let t = ((px * dx + py * dy) / length2).clamp(0.0, 1.0);
                    let distance = ((px - t * dx).powi(2) + (py - t * dy).powi(2)).sqrt();
                    let coverage = (half - distance + 0.5).clamp(0.0, 1.0) * level;
                    let cell = &mut self.ink[y * self.width + x];
                    *cell = cell.max(coverage);
                }
            }
        }
    }

    /// A filled polygon (even-odd rule, sampled at pixel centres) at `level`.
    pub fn fill(&mut self, polygon: &[(f32, f32)], level: f32) {
        for y in 0..self.height {
            let cy = y as f32 + 0.5;
            for x in 0..self.width {
                let cx = x as f32 + 0.5;
                let mut inside = false;
                for (i, &(ax, ay)) in polygon.iter().enumerate() {
                    let (bx, by) = polygon[(i + 1) % polygon.len()];
                    if (ay > cy) != (by > cy) && cx < ax + (cy - ay) / (by - ay) * (bx - ax) {
                        inside = !inside;
                    }
                }
                if inside {
                    let cell = &mut self.ink[y * self.width + x];
                    *cell = cell.max(level);
                }
            }
        }
    }

    pub fn to_gray(&self) -> GrayImage {
        GrayImage::from_fn(self.width as u32, self.height as u32, |x, y| {
            Luma([(self.ink[y as usize * self.width + x as usize].clamp(0.0, 1.0) * 255.0).round() as u8])
        })
    }

    /// Cropped, scaled and centred as a user's image is prepared; None when it holds no ink.
    pub fn framed(&self) -> Option<Pixels> {
        frame_ink(&self.to_gray())
    }
}

/// A glyph of `font`, drawn at a random size and pen weight, then framed. None if the font has
/// no outline for it.
pub fn glyph(font: &FontRef<'_>, character: char, rng: &mut ChaCha8Rng) -> Option<Pixels> {
    let side = 96;
    // Stretched or squeezed sideways, for typefaces wider or narrower than these.
    let size = uniform(rng, 36.0, 56.0);
    let scale = PxScale { x: size * uniform(rng, 0.6, 1.4), y: size };
    let glyph = font.glyph_id(character).with_scale_and_position(scale, point(4.0, size + 4.0));
    let outlined = font.outline_glyph(glyph)?;
    let bounds = outlined.px_bounds();
    let mut canvas = Canvas::new(side, side);
    outlined.draw(|x, y, coverage| {
        let (px, py) = (bounds.min.x as i64 + x as i64, bounds.min.y as i64 + y as i64);
        if px >= 0 && py >= 0 && (px as usize) < side && (py as usize) < side {
            canvas.ink[py as usize * side + px as usize] = coverage;
        }
    });
    // A heavier pen for some: each pixel the brightest of its neighbours, once or twice.
    for _ in 0..below(rng, 3) {
        canvas.ink = dilated(&canvas.ink, side, side);
    }
    canvas.framed()
}

/// Each pixel the brightest of its 3x3 neighbourhood.
fn dilated(ink: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![0.0; ink.len()];
    for y in 0..height {
        for x in 0..width {
            let mut best = 0.0f32;
            for ny in y.saturating_sub(1)..(y + 2).min(height) {
                for nx in x.saturating_sub(1)..(x + 2).min(width) {
                    best = best.max(ink[ny * width + nx]);
                }
            }
            out[y * width + x] = best;
        }
    }
    out
}

/// Points along a cubic Bézier curve.
fn bezier(p: [(f32, f32); 4], steps: usize, out: &mut Vec<(f32, f32)>) {
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let u = 1.0 - t;
        let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
        out.push((
            a * p[0].0 + b * p[1].0 + c * p[2].0 + d * p[3].0,
            a * p[0].1 + b * p[1].1 + c * p[2].1 + d * p[3].1,
        ));
    }
}

/// A scribble with one pen: Bézier curves chained (each from where the last ended, or from
/// anywhere), a smooth curve through 5 to 9 random points, a row of loops (cursive e's and l's
/// run together), a zigzag, or a spiral. Random
/// walks are left out: the held-out measurement (`examples/not_a_digit.rs`) draws its scribbles
/// that way.
fn scribble(rng: &mut ChaCha8Rng) -> Option<Pixels> {
    let side = 64.0;
    let mut canvas = Canvas::new(side as usize, side as usize);
    let width = uniform(rng, 2.0, 7.0);
    let mut points = Vec::new();
    match below(rng, 8) {
        3 | 4 => {
            // Catmull-Rom through random points: one long pen path.
            let knots: Vec<(f32, f32)> = (0..5 + below(rng, 5))
                .map(|_| (uniform(rng, 4.0, side - 4.0), uniform(rng, 4.0, side - 4.0)))
                .collect();
            for i in 0..knots.len() - 1 {
                let p = |j: usize| knots[j.min(knots.len() - 1)];
                let (p0, p1, p2, p3) = (p(i.saturating_sub(1)), p(i), p(i + 1), p(i + 2));
                let control = [
                    p1,
                    (p1.0 + (p2.0 - p0.0) / 6.0, p1.1 + (p2.1 - p0.1) / 6.0),
                    (p2.0 - (p3.0 - p1.0) / 6.0, p2.1 - (p3.1 - p1.1) / 6.0),
                    p2,
                ];
                bezier(control, 16, &mut points);
            }
        }
        0 => {
            // Loops along a line: x advances while a circle turns.
            let (loops, radius) = (2 + below(rng, 4), uniform(rng, 5.0, 12.0));
            let (y, step) = (uniform(rng, 20.0, 44.0), uniform(rng, 0.6, 1.4) * radius);
            let slant = uniform(rng, -0.4, 0.4);
            for i in 0..=loops * 24 {
                let a = i as f32 / 24.0 * std::f32::consts::TAU;
                let (dx, dy) = (radius * a.sin(), -radius * a.cos());
                points.push((6.0 + step * i as f32 / 24.0 * 1.5 + dx + slant * dy, y + dy));
            }
        }
        1 => {
            // A zigzag of 3 to 8 strokes.
            let (teeth, height) = (3 + below(rng, 6), uniform(rng, 15.0, 45.0));
            let y0 = uniform(rng, 6.0, side - 6.0 - height);
            for i in 0..=teeth {
                let x = 6.0 + i as f32 * (side - 12.0) / teeth as f32 + uniform(rng, -3.0, 3.0);
                points.push((x, if i % 2 == 0 { y0 } else { y0 + height }));
            }
        }
        2 => {
            // A spiral of 1.5 to 3 turns.
            let turns = uniform(rng, 1.5, 3.0);
            let start = uniform(rng, 0.0, std::f32::consts::TAU);
            for i in 0..=(turns * 32.0) as usize {
                let t = i as f32 / 32.0;
                let r = 2.0 + 26.0 * t / turns;
                let a = start + t * std::f32::consts::TAU;
                points.push((32.0 + r * a.cos(), 32.0 + r * a.sin()));
            }
        }
        _ => {
            let mut at = (uniform(rng, 8.0, 56.0), uniform(rng, 8.0, 56.0));
            for _ in 0..2 + below(rng, 5) {
                let mut control = [at, (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)];
                for c in &mut control[1..] {
                    *c = (uniform(rng, 4.0, side - 4.0), uniform(rng, 4.0, side - 4.0));
                }
                let start = points.len();
                bezier(control, 24, &mut points);
                canvas.stroke(&points[start..], width, 1.0);
                at = if below(rng, 3) == 0 { (uniform(rng, 8.0, 56.0), uniform(rng, 8.0, 56.0)) } else { control[3] };
            }
            points.clear();
        }
    }
    canvas.stroke(&points, width, 1.0);
    if is_line_like(&canvas) {
        return None;
    }
    canvas.framed()
}

/// A pen tangle (`data::tangle`) drawn with a pen 2 to 5.5 pixels wide on a 64-pixel square.
fn tangle(rng: &mut ChaCha8Rng) -> Option<Pixels> {
    let path = super::tangle::tangle(rng, 64.0, 4.0)?;
    let mut canvas = Canvas::new(64, 64);
    canvas.stroke(&path, uniform(rng, 2.0, 5.5), 1.0);
    canvas.framed()
}

/// A regular polygon or star with `corners` points about (cx, cy).
fn star(cx: f32, cy: f32, radius: f32, inner: f32, corners: usize, turn: f32) -> Vec<(f32, f32)> {
    let points = if inner < 1.0 { corners * 2 } else { corners };
    (0..points)
        .map(|i| {
            let r = if inner < 1.0 && i % 2 == 1 { radius * inner } else { radius };
            let angle = turn + i as f32 * std::f32::consts::TAU / points as f32;
            (cx + r * angle.cos(), cy + r * angle.sin())
        })
        .collect()
}

fn shape(rng: &mut ChaCha8Rng) -> Option<Pixels> {
    let side = 64.0;
    let mut canvas = Canvas::new(side as usize, side as usize);
    let (c, r, turn) = (side / 2.0, uniform(rng, 18.0, 28.0), uniform(rng, 0.0, std::f32::consts::TAU));
    let pen = uniform(rng, 2.0, 6.0);
    let outline = |canvas: &mut Canvas, polygon: &[(f32, f32)]| {
        let mut closed = polygon.to_vec();
        closed.push(polygon[0]);
        canvas.stroke(&closed, pen, 1.0);
    };
    match below(rng, 6) {
        // Triangles, squares and pentagons; stars of 4 to 7 points.
        0 | 1 => {
            let polygon = match below(rng, 2) {
                0 => star(c, c, r, 1.0, 3 + below(rng, 3) as usize, turn),
                _ => star(c, c, r, uniform(rng, 0.35, 0.6), 4 + below(rng, 4) as usize, turn),
            };
            if below(rng, 2) == 0 { canvas.fill(&polygon, 1.0) } else { outline(&mut canvas, &polygon) }
        }
        // A cross or an asterisk.
        2 => {
            for arm in 0..2 + below(rng, 3) {
                let angle = turn + arm as f32 * std::f32::consts::PI / 3.0;
                let (dx, dy) = (r * angle.cos(), r * angle.sin());
                canvas.stroke(&[(c - dx, c - dy), (c + dx, c + dy)], pen, 1.0);
            }
        }
        // An arrow.
        3 => {
            let (dx, dy) = (r * turn.cos(), r * turn.sin());
            let tip = (c + dx, c + dy);
            canvas.stroke(&[(c - dx, c - dy), tip], pen, 1.0);
            for side_turn in [2.5f32, -2.5] {
                let a = turn + side_turn;
                canvas.stroke(&[tip, (tip.0 + 0.5 * r * a.cos(), tip.1 + 0.5 * r * a.sin())], pen, 1.0);
            }
        }
        // Hatching or a grid.
        4 => {
            let lines = 3 + below(rng, 4);
            let both = below(rng, 2) == 0;
            for i in 0..lines {
                let at = 8.0 + i as f32 * 48.0 / (lines - 1) as f32;
                canvas.stroke(&[(at, 6.0), (at + uniform(rng, -6.0, 6.0), 58.0)], pen, 1.0);
                if both {
                    canvas.stroke(&[(6.0, at), (58.0, at + uniform(rng, -6.0, 6.0))], pen, 1.0);
                }
            }
        }
        // A square, outlined with a cross inside, or filled: a ring alone would be a 0.
        _ => {
            let square = star(c, c, r, 1.0, 4, turn);
            if below(rng, 2) == 0 {
                canvas.fill(&square, 1.0);
            } else {
                outline(&mut canvas, &square);
                canvas.stroke(&[square[0], square[2]], pen, 1.0);
                canvas.stroke(&[square[1], square[3]], pen, 1.0);
            }
        }
    }
    canvas.framed()
}

/// An object-like silhouette (ellipses and rectangles joined) filling most of a 28x28 frame,
/// filled with stripes, a gradient or grain, as pictures of objects are used as is.
fn texture(rng: &mut ChaCha8Rng) -> Pixels {
    let s = SIDE as f32;
    let mut mask = Canvas::new(SIDE, SIDE);
    for _ in 0..1 + below(rng, 3) {
        let (cx, cy) = (uniform(rng, 8.0, 20.0), uniform(rng, 8.0, 20.0));
        let (rx, ry) = (uniform(rng, 5.0, 13.0), uniform(rng, 5.0, 13.0));
        let polygon: Vec<(f32, f32)> = if below(rng, 2) == 0 {
            star(cx, cy, 1.0, 1.0, 24, 0.0).into_iter().map(|(x, y)| (cx + (x - cx) * rx, cy + (y - cy) * ry)).collect()
        } else {
            vec![(cx - rx, cy - ry), (cx + rx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)]
        };
        mask.fill(&polygon, 1.0);
    }
    let base = uniform(rng, 0.3, 1.0);
    let pattern = below(rng, 4);
    let (period, angle) = (uniform(rng, 2.0, 7.0), uniform(rng, 0.0, std::f32::consts::PI));
    let mut out = [0u8; SIDE * SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (fx, fy) = (x as f32 / s, y as f32 / s);
            let texture = match pattern {
                0 => 1.0,
                1 => 0.6 + 0.4 * ((x as f32 * angle.cos() + y as f32 * angle.sin()) / period).sin(),
                2 => 0.5 + 0.5 * (fx * angle.cos() + fy * angle.sin()),
                _ => uniform(rng, 0.4, 1.0),
            };
            out[y * SIDE + x] = (mask.ink[y * SIDE + x] * base * texture * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Uniform noise, sparse speckle, or smooth blobs (a coarse random grid, interpolated), as is.
fn noise(rng: &mut ChaCha8Rng) -> Pixels {
    let mut out = [0u8; SIDE * SIDE];
    match below(rng, 3) {
        0 => out.iter_mut().for_each(|p| *p = (rng.next_u32() % 256) as u8),
        1 => {
            let density = uniform(rng, 0.03, 0.3);
            out.iter_mut().for_each(|p| *p = if uniform(rng, 0.0, 1.0) < density { 255 } else { 0 });
        }
        _ => {
            let cells = 3 + below(rng, 4) as usize;
            let grid: Vec<f32> = (0..(cells + 1) * (cells + 1)).map(|_| uniform(rng, -0.6, 1.0)).collect();
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let (gx, gy) = (x as f32 * cells as f32 / SIDE as f32, y as f32 * cells as f32 / SIDE as f32);
                    let (ix, iy) = (gx as usize, gy as usize);
                    let (tx, ty) = (gx - ix as f32, gy - iy as f32);
                    let at = |i: usize, j: usize| grid[j * (cells + 1) + i];
                    let v = (at(ix, iy) * (1.0 - tx) + at(ix + 1, iy) * tx) * (1.0 - ty)
                        + (at(ix, iy + 1) * (1.0 - tx) + at(ix + 1, iy + 1) * tx) * ty;
                    out[y * SIDE + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    out
}

/// A random training digit as a canvas of its own size.
fn random_digit(digits: &Dataset, rng: &mut ChaCha8Rng) -> Option<Canvas> {
    if digits.is_empty() {
        return None;
    }
    let image = digits.image(below(rng, digits.len() as u32) as usize);
    let ink = image.iter().map(|&p| p as f32 / 255.0).collect();
    Some(Canvas { width: digits.cols, height: digits.rows, ink })
}

/// One side of a straight cut through a digit near its centre, holding 15% to 40% of its ink,
/// framed: a piece seen on its own. (Left where it was, it would be a damaged digit, which the
/// model must still read.)
fn digit_piece(digits: &Dataset, rng: &mut ChaCha8Rng) -> Option<Pixels> {
    let mut digit = random_digit(digits, rng)?;
    let total: f32 = digit.ink.iter().sum();
    let angle = uniform(rng, 0.0, std::f32::consts::TAU);
    let (nx, ny) = (angle.cos(), angle.sin());
    let (cx, cy) =
        (digit.width as f32 / 2.0 + uniform(rng, -3.0, 3.0), digit.height as f32 / 2.0 + uniform(rng, -3.0, 3.0));
    let width = digit.width;
    for (i, v) in digit.ink.iter_mut().enumerate() {
        let (x, y) = ((i % width) as f32 - cx, (i / width) as f32 - cy);
        if x * nx + y * ny < 0.0 {
            *v = 0.0;
        }
    }
    let kept: f32 = digit.ink.iter().sum();
    if !(0.15 * total..=0.4 * total).contains(&kept) || is_line_like(&digit) || is_narrow(&digit) {
        return None;
    }
    digit.framed()
}

/// Ink spread along one line only (its second moment across under a seventh of that along):
/// a single stroke, which is a 1 once framed, so it is never drawn as a non-digit.
fn is_line_like(canvas: &Canvas) -> bool {
    let (mut m, mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in canvas.ink.iter().enumerate() {
        let (x, y, v) = ((i % canvas.width) as f64, (i / canvas.width) as f64, v as f64);
        m += v;
        sx += v * x;
        sy += v * y;
        sxx += v * x * x;
        syy += v * y * y;
        sxy += v * x * y;
    }
    if m <= 0.0 {
        return true;
    }
    let (cx, cy) = (sx / m, sy / m);
    let (a, b, c) = (sxx / m - cx * cx, sxy / m - cx * cy, syy / m - cy * cy);
    let root = (((a - c) / 2.0).powi(2) + b * b).sqrt();
    let (major, minor) = ((a + c) / 2.0 + root, (a + c) / 2.0 - root);
    minor < major / 7.0
}

/// Ink in a box under 45% as wide as it is tall: framed, any such piece reads as a 1.
fn is_narrow(canvas: &Canvas) -> bool {
    let (mut x0, mut x1, mut y0, mut y1) = (usize::MAX, 0, usize::MAX, 0);
    for (i, _) in canvas.ink.iter().enumerate().filter(|(_, v)| **v >= 0.25) {
        let (x, y) = (i % canvas.width, i / canvas.width);
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    x0 > x1 || ((x1 - x0 + 1) as f32) < 0.45 * (y1 - y0 + 1) as f32
}

/// Two digits side by side, from a gap of 6 pixels to an overlap of 8, framed together.
fn digit_pair(digits: &Dataset, rng: &mut ChaCha8Rng) -> Option<Pixels> {
    let (a, b) = (random_digit(digits, rng)?, random_digit(digits, rng)?);
    let offset = (a.width as i64 + below(rng, 15) as i64 - 8).max(4) as usize;
    let mut canvas = Canvas::new(offset + b.width, a.height.max(b.height));
    for (source, at) in [(&a, 0), (&b, offset)] {
        for y in 0..source.height {
            for x in 0..source.width {
                let cell = &mut canvas.ink[y * canvas.width + at + x];
                *cell = cell.max(source.ink[y * source.width + x]);
            }
        }
    }
    canvas.framed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn digits() -> Dataset {
        // Two thick "digits": a ring and a bar, enough to cut and pair.
        let ring: Vec<u8> = (0..784)
            .map(|p| {
                let (x, y) = ((p % 28) as f32 - 13.5, (p / 28) as f32 - 13.5);
                if (6.0..9.0).contains(&(x * x + y * y).sqrt()) { 255 } else { 0 }
            })
            .collect();
        let bar: Vec<u8> = (0..784)
            .map(|p| if (12..16).contains(&(p % 28)) && (4..24).contains(&(p / 28)) { 255 } else { 0 })
            .collect();
        Dataset { images: [ring, bar].concat(), labels: vec![0, 1], rows: 28, cols: 28 }
    }

    /// Every kind gives images with ink, deterministic for a seed, and different draws differ.
    #[test]
    fn every_kind_draws_ink_and_is_seeded() {
        let digits = digits();
        for kind in Kind::ALL {
            let draw = |seed| generate(kind, &digits, &mut ChaCha8Rng::seed_from_u64(seed));
            let (a, b) = (draw(1), draw(2));
            assert_eq!(a, draw(1), "{}: seeded", kind.name());
            assert_ne!(a, b, "{}: two seeds, two images", kind.name());
            let inked = a.iter().filter(|&&v| v >= 64).count();
            assert!(inked >= 4, "{}: {inked} inked pixels", kind.name());
        }
    }

    /// Framed kinds sit in the 20x20 box as prepared images do.
    #[test]
    fn framed_kinds_fit_the_digit_box() {
        let digits = digits();
        for kind in [Kind::Glyph, Kind::Scribble, Kind::Tangle, Kind::Shape] {
            for seed in 0..10 {
                let pixels = generate(kind, &digits, &mut ChaCha8Rng::seed_from_u64(seed));
                let rows = (0..SIDE).filter(|y| pixels[y * SIDE..(y + 1) * SIDE].iter().any(|&v| v > 0)).count();
                let cols = (0..SIDE).filter(|x| (0..SIDE).any(|y| pixels[y * SIDE + x] > 0)).count();
                assert!(rows <= 20 && cols <= 20, "{} seed {seed}: {cols}x{rows}", kind.name());
                assert!(
                    rows.max(cols) >= 14,
                    "{} seed {seed}: the larger side nearly fills the box, {cols}x{rows}",
                    kind.name()
                );
            }
        }
    }

    #[test]
    fn every_glyph_has_an_outline_in_every_training_font() {
        for (f, font) in training_fonts().iter().enumerate() {
            for c in GLYPHS.chars() {
                assert!(font.outline_glyph(font.glyph_id(c).with_scale(40.0)).is_some(), "font {f} lacks {c:?}");
            }
        }
    }

    #[test]
    fn a_single_stroke_is_line_like_and_a_cross_is_not() {
        let mut canvas = Canvas::new(64, 64);
        canvas.stroke(&[(20.0, 8.0), (30.0, 56.0)], 4.0, 1.0);
        assert!(is_line_like(&canvas), "a slanted bar would be framed as a 1");
        canvas.stroke(&[(8.0, 30.0), (56.0, 34.0)], 4.0, 1.0);
        assert!(!is_line_like(&canvas));
    }

    #[test]
    fn kinds_are_drawn_by_weight() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts = [0usize; Kind::ALL.len()];
        assert_eq!(Kind::ALL.iter().map(|k| k.weight()).sum::<u32>(), Kind::TOTAL_WEIGHT);
        for _ in 0..19_000 {
            let kind = Kind::random(&mut rng);
            counts[Kind::ALL.iter().position(|&k| k == kind).unwrap()] += 1;
        }
        for (kind, count) in Kind::ALL.iter().zip(counts) {
            let expected = kind.weight() as usize * 1000;
            assert!(count.abs_diff(expected) < expected / 5 + 60, "{}: {count} vs {expected}", kind.name());
        }
    }
}
