//! Cutting a line of writing into pieces for `read`'s search: more pieces than digits, so that
//! each digit is one run of neighbouring pieces. A cut is a path from the line's top to its
//! bottom that crosses as little ink as it can: through a gap where digits stand apart, around a
//! stroke where one digit leans over its neighbour without touching, and through the thinnest
//! stroke where two digits touch. Paths start near each column where the line's ink is thin (a
//! gap, or a local minimum of ink per column) and wander at most a third of the line's height
//! sideways; they never cross.

use super::marks::{Labels, Line};
use image::{GrayImage, Luma};

/// The cuts of one line: each a column per row (`top..=bottom`), the first column on its right.
/// The first cut runs down the line's left edge, the last down its right edge.
pub struct Cuts {
    top: u32,
    bottom: u32,
    paths: Vec<Vec<u32>>,
    /// Which marks belong to the line (by label).
    in_line: Vec<bool>,
}

/// Cuts start at least this far apart (a share of the line's height)...
const MIN_PIECE: f32 = 0.12;
/// ...and wander at most this far from where they start.
const WANDER: f32 = 0.33;
/// What a path pays: 1 for each stroke it enters (so it runs along where two digits meet rather
/// than through the middle of one, across its top and bottom), this per pixel of ink it runs
/// through, and [`STEP_COST`] per column it steps sideways.
const INSIDE_COST: f32 = 0.1;
const STEP_COST: f32 = 0.05;

impl Cuts {
    /// The pieces between neighbouring cuts.
    pub fn pieces(&self) -> usize {
        self.paths.len() - 1
    }

    /// The ink of pieces `first..=last`, cropped to its box (x, y, width, height): the line's
    /// marks between the cuts, with the faint edge beside them (unlabelled ink next to a kept
    /// pixel) so strokes keep their soft edges. None when there is no ink there.
    pub fn crop(&self, ink: &GrayImage, labels: &Labels, first: usize, last: usize) -> Option<(GrayImage, [u32; 4])> {
        let (left, right) = (&self.paths[first], &self.paths[last + 1]);
        let member = |x: u32, y: u32| {
            let row = (y - self.top) as usize;
            let label = labels.labels[(y * labels.width + x) as usize];
            x >= left[row] && x < right[row] && label != 0 && self.in_line[label as usize]
        };
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for y in self.top..=self.bottom {
            let row = (y - self.top) as usize;
            for x in left[row]..right[row] {
                if member(x, y) {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        if x0 > x1 {
            return None;
        }
        let (w, h) = ink.dimensions();
        let image = GrayImage::from_fn(x1 - x0 + 1, y1 - y0 + 1, |cx, cy| {
            let (x, y) = (cx + x0, cy + y0);
            let value = ink.get_pixel(x, y)[0];
            let keep = if labels.labels[(y * labels.width + x) as usize] != 0 {
                member(x, y)
            } else {
                value > 0
                    && [(1i64, 0i64), (-1, 0), (0, 1), (0, -1)].iter().any(|(dx, dy)| {
                        let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                        nx >= 0
                            && ny >= self.top as i64
                            && ny <= self.bottom as i64
                            && nx < w as i64
                            && ny < h as i64
                            && member(nx as u32, ny as u32)
                    })
            };
            Luma([if keep { value } else { 0 }])
        });
        Some((image, [x0, y0, x1 - x0 + 1, y1 - y0 + 1]))
    }
}

/// The cuts of `line` (see the module docs).
pub fn cut(ink: &GrayImage, labels: &Labels, line: &Line) -> Cuts {
    let mut in_line = vec![false; labels.marks.len() + 1];
    for &i in &line.marks {
        in_line[i + 1] = true;
    }
    let marks = line.marks.iter().map(|&i| labels.marks[i]);
    let top = marks.clone().map(|m| m.y0).min().unwrap_or(0);
    let bottom = marks.clone().map(|m| m.y1).max().unwrap_or(0);
    let left = marks.clone().map(|m| m.x0).min().unwrap_or(0);
    let right = marks.map(|m| m.x1 + 1).max().unwrap_or(0);
    let rows = (bottom - top + 1) as usize;
    // The line's ink, 0..1, in its box (other lines' marks left out).
    let width = (right - left) as usize;
    let mut weight = vec![0.0f32; rows * width];
    for y in top..=bottom {
        for x in left..right {
            let label = labels.labels[(y * labels.width + x) as usize];
            if label != 0 && in_line[label as usize] {
                weight[(y - top) as usize * width + (x - left) as usize] = ink.get_pixel(x, y)[0] as f32 / 255.0;
            }
        }
    }
    let starts = start_columns(&weight, width, rows, (MIN_PIECE * line.height).max(2.0) as usize);
    let wander = (WANDER * line.height).max(1.0) as usize;
    let mut paths: Vec<Vec<u32>> = vec![vec![left; rows]];
    for start in starts {
        let mut path = cheapest_path(&weight, width, rows, start, wander);
        // Never crossing the cut before it.
        let previous = paths.last().expect("the left edge is there");
        for (x, &p) in path.iter_mut().zip(previous) {
            *x = (*x + left).max(p);
        }
        if &path != previous {
            paths.push(path);
        }
    }
    paths.push(vec![right; rows]);
    let mut cuts = Cuts { top, bottom, paths, in_line };
    drop_empty_pieces(&mut cuts, ink, labels);
    cuts
}

/// Where cuts start: the middle of every run of empty columns between ink, and the local minima
/// of the ink per column (smoothed over three columns, a flat valley at its middle), the
/// thinnest first, each at least `spacing` from the line's ends and from the others.
fn start_columns(weight: &[f32], width: usize, rows: usize, spacing: usize) -> Vec<usize> {
    let column: Vec<f32> = (0..width).map(|x| (0..rows).map(|y| weight[y * width + x]).sum()).collect();
    let smooth: Vec<f32> =
        (0..width).map(|i| column[i.saturating_sub(1)] + column[i] + column[(i + 1).min(width - 1)]).collect();
    let mut chosen: Vec<usize> = Vec::new();
    // Gaps: runs of empty columns.
    let mut x = 0;
    while x < width {
        if column[x] == 0.0 {
            let start = x;
            while x < width && column[x] == 0.0 {
                x += 1;
            }
            if start > 0 && x < width {
                chosen.push((start + x) / 2);
            }
        }
        x += 1;
    }
    let mut minima: Vec<usize> = Vec::new();
    let mut i = 1;
    while i + 1 < width {
        let mut end = i;
        while end + 1 < width && smooth[end + 1] == smooth[i] {
            end += 1;
        }
        if smooth[i] < smooth[i - 1] && end + 1 < width && smooth[i] < smooth[end + 1] {
            minima.push((i + end) / 2);
        }
        i = end + 1;
    }
    minima.retain(|&i| i >= spacing && width - i >= spacing);
    minima.sort_by(|&a, &b| smooth[a].total_cmp(&smooth[b]).then(a.cmp(&b)));
    for i in minima {
        if chosen.iter().all(|&c| c.abs_diff(i) >= spacing) {
            chosen.push(i);
        }
    }
    // Between those, more starts wherever a stretch longer than a digit's half has none.
    chosen.sort_unstable();
    let mut filled = Vec::with_capacity(chosen.len());
    let mut previous = 0;
    for &c in chosen.iter().chain([width].iter()) {
        let mut at = previous + 2 * spacing;
        while at + spacing <= c {
            filled.push(at);
            at += spacing * 2;
        }
        if c < width {
            filled.push(c);
        }
        previous = c;
    }
    filled
}

/// The path from the top row to the bottom one, one column per row, starting and staying within
/// `wander` columns of `start` and moving at most one column a row, that costs least (see
/// [`INSIDE_COST`]). Columns are relative to the line's box.
fn cheapest_path(weight: &[f32], width: usize, rows: usize, start: usize, wander: usize) -> Vec<u32> {
    let lo = start.saturating_sub(wander);
    let hi = (start + wander).min(width - 1);
    let band = hi - lo + 1;
    let mut cost = vec![0.0f32; rows * band];
    let mut from = vec![0u8; rows * band];
    for b in 0..band {
        // A slight pull towards the start column, so a path in open paper runs straight down it.
        cost[b] = weight[lo + b] + 1e-3 * (lo + b).abs_diff(start) as f32;
    }
    for y in 1..rows {
        for b in 0..band {
            let here = weight[y * width + lo + b];
            let mut best = (f32::INFINITY, 1u8);
            for step in 0..3u8 {
                let prev = b as i64 + step as i64 - 1;
                if prev < 0 || prev >= band as i64 {
                    continue;
                }
                let before = weight[(y - 1) * width + lo + prev as usize];
                // Entering a stroke costs 1; running on inside it, a little per pixel.
                let entering = (here - before).max(0.0);
                let c = cost[(y - 1) * band + prev as usize]
                    + entering
                    + INSIDE_COST * here
                    + if step == 1 { 0.0 } else { STEP_COST };
                if c < best.0 {
                    best = (c, step);
                }
            }
            cost[y * band + b] = best.0;
            from[y * band + b] = best.1;
        }
    }
    let last = &cost[(rows - 1) * band..];
    let mut b = (0..band).min_by(|&i, &j| last[i].total_cmp(&last[j]).then(i.cmp(&j))).unwrap_or(0);
    let mut path = vec![0u32; rows];
    for y in (0..rows).rev() {
        path[y] = (lo + b) as u32;
        if y > 0 {
            b = (b as i64 + from[y * band + b] as i64 - 1) as usize;
        }
    }
    path
}

/// Removes cuts that leave no ink between them and the next.
fn drop_empty_pieces(cuts: &mut Cuts, ink: &GrayImage, labels: &Labels) {
    let mut i = 0;
    while i + 1 < cuts.paths.len() && cuts.paths.len() > 2 {
        if cuts.crop(ink, labels, i, i).is_none() {
            // The empty piece's right cut goes (or its left one, for the last piece).
            let remove = if i + 2 < cuts.paths.len() { i + 1 } else { i };
            cuts.paths.remove(remove);
            if remove == i {
                break;
            }
        } else {
            i += 1;
        }
    }
}

/// Which runs of neighbouring pieces may be one digit (shares of the line's height).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupLimits {
    /// The most pieces in one digit (a digit in several strokes, or cut too often).
    pub max_pieces: usize,
    /// The widest a digit may be.
    pub max_width: f32,
    /// The shortest a digit may be: shorter marks are never read as digits.
    pub min_height: f32,
    /// A run with a gap of empty columns wider than this is never one digit.
    pub max_gap: f32,
}

impl Default for GroupLimits {
    /// What `read` uses.
    fn default() -> Self {
        GroupLimits { max_pieces: 6, max_width: 1.6, min_height: 0.45, max_gap: 0.3 }
    }
}

/// A run of neighbouring pieces, `first..=last`: its ink (cropped), box (x, y, width, height),
/// widest gap of empty columns (a share of the line's height), and whether it may be one digit.
pub struct Group {
    pub first: usize,
    pub last: usize,
    pub image: GrayImage,
    pub bounds: [u32; 4],
    pub gap: f32,
    pub could_be_digit: bool,
}

/// Every run of pieces the reader considers, ordered by first piece: each single piece (to be
/// read or skipped), and longer runs while they are no wider than a digit.
pub fn groups(ink: &GrayImage, labels: &Labels, cuts: &Cuts, line_height: f32, limits: &GroupLimits) -> Vec<Group> {
    let mut groups = Vec::new();
    for first in 0..cuts.pieces() {
        for last in first..(first + limits.max_pieces).min(cuts.pieces()) {
            let Some((image, bounds)) = cuts.crop(ink, labels, first, last) else { continue };
            if last > first && bounds[2] as f32 > limits.max_width * line_height {
                break;
            }
            let gap = widest_gap(&image) as f32 / line_height;
            let could_be_digit = bounds[3] as f32 >= limits.min_height * line_height && gap <= limits.max_gap;
            groups.push(Group { first, last, image, bounds, gap, could_be_digit });
        }
    }
    groups
}

/// The widest run of columns without ink between inked columns.
fn widest_gap(image: &GrayImage) -> u32 {
    let (w, h) = image.dimensions();
    let inked: Vec<bool> = (0..w).map(|x| (0..h).any(|y| image.get_pixel(x, y)[0] >= 64)).collect();
    let (mut widest, mut run) = (0, 0);
    for &i in &inked {
        if i {
            widest = widest.max(run);
            run = 0;
        } else {
            run += 1;
        }
    }
    widest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::marks::{label, lines};

    /// Two rings side by side that touch: one mark. A cut runs between them where they meet
    /// (not through the middle of one, across its top and bottom), so a run holds each ring.
    #[test]
    fn touching_rings_are_cut_where_they_touch() {
        let ring = |x: f32, y: f32, cx: f32| ((x - cx).powi(2) / 100.0 + (y - 20.0).powi(2) / 300.0 - 1.0).abs() < 0.25;
        let ink = GrayImage::from_fn(60, 40, |x, y| {
            let (x, y) = (x as f32, y as f32);
            Luma([if ring(x, y, 18.0) || ring(x, y, 38.0) { 255 } else { 0 }])
        });
        let labels = label(&ink, 10).unwrap();
        assert_eq!(labels.marks.len(), 1, "the rings touch");
        let (found, _) = lines(&labels);
        let cuts = cut(&ink, &labels, &found[0]);
        let all = groups(&ink, &labels, &cuts, found[0].height, &GroupLimits::default());
        // The rings cross between x 27 and 29: a run holds the left one up to there, another the
        // right one from there.
        let spans: Vec<(u32, u32)> =
            all.iter().filter(|g| g.could_be_digit).map(|g| (g.bounds[0], g.bounds[0] + g.bounds[2])).collect();
        assert!(spans.iter().any(|&(x0, x1)| x0 <= 8 && (26..=31).contains(&x1)), "{spans:?}");
        assert!(spans.iter().any(|&(x0, x1)| (24..=30).contains(&x0) && x1 >= 48), "{spans:?}");
    }

    /// A stroke leaning over its neighbour without touching it: the cut goes around it, so
    /// neither piece holds part of the other.
    #[test]
    fn a_cut_goes_around_a_leaning_stroke() {
        // A "/" from (34, 0) down to (18, 33), and a bar at x 16..18 above its lower end: no
        // column separates them.
        let ink = GrayImage::from_fn(60, 40, |x, y| {
            let slash = (x as f32 - (34.0 - y as f32 * 0.5)).abs() < 1.5 && y < 34;
            let bar = (16..19).contains(&x) && y < 14;
            Luma([if slash || bar { 255 } else { 0 }])
        });
        let labels = label(&ink, 10).unwrap();
        assert_eq!(labels.marks.len(), 2);
        let (bar, slash) = (labels.marks[0], labels.marks[1]);
        assert!(bar.x1 >= slash.x0 && bar.x0 <= slash.x1, "their columns overlap");
        let (found, _) = lines(&labels);
        let cuts = cut(&ink, &labels, &found[0]);
        let all = groups(&ink, &labels, &cuts, found[0].height, &GroupLimits::default());
        let areas: Vec<u32> = labels.marks.iter().map(|m| m.area).collect();
        // Some single run holds exactly each mark's ink.
        for area in areas {
            assert!(
                all.iter().any(|g| g.image.pixels().filter(|p| p[0] == 255).count() as u32 == area),
                "no run holds exactly a mark of {area} pixels"
            );
        }
    }
}
