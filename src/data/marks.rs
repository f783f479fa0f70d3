//! The marks on a page of ink: connected strokes, sorted into lines, and cut where a stroke may
//! hold several touching digits. Cutting here is generous (more cuts than digits): the search
//! in `read` puts pieces back together by what the model reads in them.

use image::{GrayImage, Luma};

/// Ink at least this bright (of 255) belongs to a mark, as `data::image` finds a digit's box.
const INK: u8 = 64;

/// One connected mark: its box (inclusive) and its area in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub area: u32,
}

impl Mark {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0 + 1
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0 + 1
    }
}

/// Every pixel's mark (0 = none, else 1 + the index into `marks`).
pub struct Labels {
    pub labels: Vec<u32>,
    pub width: u32,
    pub marks: Vec<Mark>,
}

/// The connected marks (8-neighbours) of `ink`. None when there are more than `max_marks`
/// (counted before specks are set aside): a bound on the work a picture can cause.
pub fn label(ink: &GrayImage, max_marks: usize) -> Option<Labels> {
    let (w, h) = ink.dimensions();
    let at = |x: u32, y: u32| ink.get_pixel(x, y)[0] >= INK;
    // Union-find over provisional labels, one pass in raster order.
    let mut parent: Vec<u32> = vec![0];
    let mut labels = vec![0u32; (w * h) as usize];
    fn root(parent: &mut [u32], mut a: u32) -> u32 {
        while parent[a as usize] != a {
            parent[a as usize] = parent[parent[a as usize] as usize];
            a = parent[a as usize];
        }
        a
    }
    for y in 0..h {
        for x in 0..w {
            if !at(x, y) {
                continue;
            }
            let index = (y * w + x) as usize;
            let mut found = 0u32;
            let neighbours = [(-1i64, 0i64), (-1, -1), (0, -1), (1, -1)];
            for (dx, dy) in neighbours {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 {
                    continue;
                }
                let other = labels[(ny as u32 * w + nx as u32) as usize];
                if other == 0 {
                    continue;
                }
                if found == 0 {
                    found = other;
                } else {
                    let (a, b) = (root(&mut parent, found), root(&mut parent, other));
                    if a != b {
                        parent[a.max(b) as usize] = a.min(b);
                    }
                }
            }
            if found == 0 {
                found = parent.len() as u32;
                parent.push(found);
            }
            labels[index] = found;
        }
    }
    // Final labels 1..=n in order of first appearance, and each mark's box and area.
    let mut final_label = vec![0u32; parent.len()];
    let mut marks: Vec<Mark> = Vec::new();
    for (index, label) in labels.iter_mut().enumerate() {
        if *label == 0 {
            continue;
        }
        let r = root(&mut parent, *label) as usize;
        if final_label[r] == 0 {
            if marks.len() == max_marks {
                return None;
            }
            let (x, y) = ((index as u32) % w, (index as u32) / w);
            marks.push(Mark { x0: x, y0: y, x1: x, y1: y, area: 0 });
            final_label[r] = marks.len() as u32;
        }
        *label = final_label[r];
        let (x, y) = ((index as u32) % w, (index as u32) / w);
        let m = &mut marks[*label as usize - 1];
        (m.x0, m.y0, m.x1, m.y1) = (m.x0.min(x), m.y0.min(y), m.x1.max(x), m.y1.max(y));
        m.area += 1;
    }
    Some(Labels { labels, width: w, marks })
}

/// A part of one mark: its columns `x0..x1` (exclusive), the whole mark or a slice of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub mark: u32,
    pub x0: u32,
    pub x1: u32,
    /// The box of the mark's ink within those columns (inclusive).
    pub top: u32,
    pub bottom: u32,
}

/// A line of writing: its marks (indices into `Labels::marks`) and the height of its digits.
pub struct Line {
    pub marks: Vec<usize>,
    pub height: f32,
}

/// Marks whose box is smaller than this share of the line's height on both sides, and whose
/// area is tiny, are specks: grain, dust, a JPEG block. They are not read at all.
const SPECK: f32 = 0.2;

/// The lines of writing, top to bottom: marks grouped by how their rows overlap (a mark joins a
/// line when half its height lies in the line's rows), each line's digit height the median
/// height of its larger marks. Specks (by the height of the page's larger marks) are left out,
/// and so are lines of small marks only (under [`LOW_LINE`] of that height): returned second.
pub fn lines(labels: &Labels) -> (Vec<Line>, Vec<usize>) {
    let marks = &labels.marks;
    let all: Vec<usize> = (0..marks.len()).collect();
    let Some(page_height) = typical_height(marks, &all) else { return (Vec::new(), Vec::new()) };
    let mut order: Vec<usize> = all.into_iter().filter(|&i| !is_speck(&marks[i], page_height)).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(marks[i].area));
    // (top, bottom, marks) of each line, growing from its largest marks.
    let mut rows: Vec<(u32, u32, Vec<usize>)> = Vec::new();
    for &i in &order {
        let m = &marks[i];
        let joined = rows.iter_mut().find(|(top, bottom, _)| {
            let overlap = (m.y1.min(*bottom) as i64 - m.y0.max(*top) as i64 + 1).max(0) as u32;
            overlap * 2 >= m.height()
        });
        match joined {
            Some((top, bottom, members)) => {
                if m.height() as f32 >= LOW_LINE * page_height {
                    (*top, *bottom) = ((*top).min(m.y0), (*bottom).max(m.y1));
                }
                members.push(i);
            }
            None => rows.push((m.y0, m.y1, vec![i])),
        }
    }
    rows.sort_by_key(|(top, _, _)| *top);
    let (mut found, mut low) = (Vec::new(), Vec::new());
    for (_, _, members) in rows {
        let height = typical_height(marks, &members).unwrap_or(0.0);
        if height < LOW_LINE * page_height {
            low.extend(members);
        } else {
            found.push(Line { marks: members, height });
        }
    }
    (found, low)
}

/// A line whose marks are all shorter than this share of the page's digit height holds no digit
/// (a row of dots, a comma fallen below the line).
const LOW_LINE: f32 = 0.4;

/// The median height of the marks among `members` with at least a fifth of the largest's area.
fn typical_height(marks: &[Mark], members: &[usize]) -> Option<f32> {
    let largest = members.iter().map(|&i| marks[i].area).max()?;
    let mut heights: Vec<u32> =
        members.iter().filter(|&&i| marks[i].area * 5 >= largest).map(|&i| marks[i].height()).collect();
    heights.sort_unstable();
    Some(heights[heights.len() / 2] as f32)
}

fn is_speck(mark: &Mark, line_height: f32) -> bool {
    let small = SPECK * line_height;
    (mark.width() as f32) < small && (mark.height() as f32) < small && (mark.area as f32) < small * small
}

/// Marks at least this wide (a share of the line's height) may hold several digits and are cut.
const CUT_FROM_WIDTH: f32 = 0.45;
/// The narrowest piece a cut leaves, as a share of the line's height.
const MIN_PIECE: f32 = 0.2;

/// The pieces of a line's marks, left to right: narrow marks whole, wider ones cut at the
/// columns where their ink is thinnest (each local minimum of the ink per column, at least
/// [`MIN_PIECE`] of the height apart).
pub fn pieces(labels: &Labels, line: &Line) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for &i in &line.marks {
        let mark = labels.marks[i];
        let cuts = if (mark.width() as f32) < CUT_FROM_WIDTH * line.height {
            Vec::new()
        } else {
            cut_columns(labels, i as u32 + 1, &mark, (MIN_PIECE * line.height).max(2.0) as u32)
        };
        let mut start = mark.x0;
        for end in cuts.into_iter().chain([mark.x1 + 1]) {
            if let Some(piece) = piece(labels, i as u32 + 1, start, end) {
                pieces.push(piece);
            }
            start = end;
        }
    }
    pieces.sort_by_key(|p| (p.x0, p.x1));
    pieces
}

/// The columns at which to cut a mark: local minima of its ink per column (smoothed over three
/// columns), the thinnest first, each at least `spacing` from the mark's ends and other cuts.
fn cut_columns(labels: &Labels, label: u32, mark: &Mark, spacing: u32) -> Vec<u32> {
    let width = mark.width() as usize;
    let mut counts = vec![0u32; width];
    for y in mark.y0..=mark.y1 {
        for x in mark.x0..=mark.x1 {
            if labels.labels[(y * labels.width + x) as usize] == label {
                counts[(x - mark.x0) as usize] += 1;
            }
        }
    }
    let smooth: Vec<u32> =
        (0..width).map(|i| counts[i.saturating_sub(1)] + counts[i] + counts[(i + 1).min(width - 1)]).collect();
    // Local minima; a flat valley counts once, at its middle.
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
    minima.retain(|&i| i as u32 >= spacing && (width - i) as u32 >= spacing);
    minima.sort_by_key(|&i| (smooth[i], i));
    let mut chosen: Vec<usize> = Vec::new();
    for i in minima {
        if chosen.iter().all(|&c| c.abs_diff(i) as u32 >= spacing) {
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    chosen.into_iter().map(|i| mark.x0 + i as u32).collect()
}

/// The piece of mark `label` in columns `x0..x1`, None if it has no ink there.
fn piece(labels: &Labels, label: u32, x0: u32, x1: u32) -> Option<Piece> {
    let mark = labels.marks[label as usize - 1];
    let rows =
        (mark.y0..=mark.y1).filter(|&y| (x0..x1).any(|x| labels.labels[(y * labels.width + x) as usize] == label));
    let (mut top, mut bottom) = (u32::MAX, 0);
    for y in rows {
        (top, bottom) = (top.min(y), bottom.max(y));
    }
    (top <= bottom).then_some(Piece { mark: label, x0, x1, top, bottom })
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
        GroupLimits { max_pieces: 5, max_width: 1.6, min_height: 0.45, max_gap: 0.3 }
    }
}

/// A run of neighbouring pieces, `first..=last`: its box (x, y, width, height), its widest gap
/// of empty columns (a share of the line's height), and whether it may be one digit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Group {
    pub first: usize,
    pub last: usize,
    pub bounds: [u32; 4],
    pub gap: f32,
    pub could_be_digit: bool,
}

/// Every run of pieces the reader considers, ordered by first piece: each single piece (to be
/// read or skipped), and longer runs while they are no wider than a digit.
pub fn groups(pieces: &[Piece], line_height: f32, limits: &GroupLimits) -> Vec<Group> {
    let mut groups = Vec::new();
    for first in 0..pieces.len() {
        for last in first..(first + limits.max_pieces).min(pieces.len()) {
            let run = &pieces[first..=last];
            let x0 = run.iter().map(|p| p.x0).min().unwrap_or(0);
            let x1 = run.iter().map(|p| p.x1).max().unwrap_or(0);
            let y0 = run.iter().map(|p| p.top).min().unwrap_or(0);
            let y1 = run.iter().map(|p| p.bottom).max().unwrap_or(0);
            let bounds = [x0, y0, x1 - x0, y1 - y0 + 1];
            if last > first && bounds[2] as f32 > limits.max_width * line_height {
                break;
            }
            let gap = widest_gap(run) as f32 / line_height;
            let could_be_digit = bounds[3] as f32 >= limits.min_height * line_height && gap <= limits.max_gap;
            groups.push(Group { first, last, bounds, gap, could_be_digit });
        }
    }
    groups
}

/// The widest run of columns inside a group of pieces that none of them covers.
fn widest_gap(group: &[Piece]) -> u32 {
    let mut spans: Vec<(u32, u32)> = group.iter().map(|p| (p.x0, p.x1)).collect();
    spans.sort_unstable();
    let mut reach = spans[0].1;
    let mut widest = 0;
    for &(x0, x1) in &spans[1..] {
        widest = widest.max(x0.saturating_sub(reach));
        reach = reach.max(x1);
    }
    widest
}

/// The ink of a group of pieces, cropped to their box, light on dark: each piece's own mark in
/// its own columns, with the faint edge around it (unlabelled ink beside a member pixel) so its
/// strokes keep their soft edges.
pub fn crop(ink: &GrayImage, labels: &Labels, group: &[Piece]) -> (GrayImage, [u32; 4]) {
    let x0 = group.iter().map(|p| p.x0).min().unwrap_or(0);
    let x1 = group.iter().map(|p| p.x1).max().unwrap_or(0);
    let y0 = group.iter().map(|p| p.top).min().unwrap_or(0);
    let y1 = group.iter().map(|p| p.bottom).max().unwrap_or(0);
    let (w, h) = ink.dimensions();
    let member = |x: i64, y: i64| {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            return false;
        }
        let label = labels.labels[(y as u32 * labels.width + x as u32) as usize];
        label != 0 && group.iter().any(|p| p.mark == label && (p.x0..p.x1).contains(&(x as u32)))
    };
    let (cx0, cy0) = (x0.saturating_sub(1), y0.saturating_sub(1));
    let (cx1, cy1) = ((x1 + 1).min(w), (y1 + 2).min(h));
    let image = GrayImage::from_fn(cx1 - cx0, cy1 - cy0, |cx, cy| {
        let (x, y) = ((cx + cx0) as i64, (cy + cy0) as i64);
        let value = ink.get_pixel(x as u32, y as u32)[0];
        let own = labels.labels[(y as u32 * labels.width + x as u32) as usize];
        let keep = if own != 0 {
            member(x, y)
        } else {
            value > 0 && [(1, 0), (-1, 0), (0, 1), (0, -1)].iter().any(|(dx, dy)| member(x + dx, y + dy))
        };
        Luma([if keep { value } else { 0 }])
    });
    (image, [x0, y0, x1 - x0, y1 - y0 + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(rows: &[&str]) -> GrayImage {
        GrayImage::from_fn(rows[0].len() as u32, rows.len() as u32, |x, y| {
            Luma([if rows[y as usize].as_bytes()[x as usize] == b'#' { 255 } else { 0 }])
        })
    }

    #[test]
    fn marks_are_labelled_with_their_boxes_and_areas() {
        let ink = picture(&["##...#", ".#..#.", "...#..", "......", "#....."]);
        let labels = label(&ink, 10).unwrap();
        assert_eq!(labels.marks.len(), 3);
        assert_eq!(labels.marks[0], Mark { x0: 0, y0: 0, x1: 1, y1: 1, area: 3 });
        // The diagonal joins through corners.
        assert_eq!(labels.marks[1], Mark { x0: 3, y0: 0, x1: 5, y1: 2, area: 3 });
        assert_eq!(labels.marks[2].area, 1);
        assert!(label(&ink, 2).is_none(), "a third mark passes the limit");
    }

    /// A "U" whose arms meet at the bottom, like two touching digits, is one mark; it is cut at
    /// its thinnest columns, between the arms.
    #[test]
    fn a_wide_mark_is_cut_where_its_ink_is_thinnest() {
        let mut rows = vec!["##......##"; 9];
        rows.push("##########");
        let ink = picture(&rows);
        let labels = label(&ink, 10).unwrap();
        let (all, low) = lines(&labels);
        assert_eq!((all.len(), low.len()), (1, 0));
        assert_eq!(all[0].height, 10.0);
        let pieces = pieces(&labels, &all[0]);
        assert!(pieces.len() >= 2, "{pieces:?}");
        assert_eq!(pieces[0].x0, 0);
        assert!(pieces.iter().all(|p| p.x1 - p.x0 >= 1));
        assert_eq!(pieces.last().unwrap().x1, 10);
        let (image, bounds) = crop(&ink, &labels, &pieces);
        assert_eq!(bounds, [0, 0, 10, 10]);
        assert_eq!(image.pixels().filter(|p| p[0] == 255).count(), 9 * 4 + 10);
    }

    #[test]
    fn lines_are_found_top_to_bottom_and_specks_left_out() {
        // Two lines of two bars each, 10 high; a speck; a low dash below the second line.
        let ink = GrayImage::from_fn(40, 40, |x, y| {
            let bar = (x % 10 < 2) && x < 20;
            let inked = (bar && (y < 10 || (14..24).contains(&y)))
                || (x == 30 && y == 11)
                || ((20..26).contains(&x) && y == 30);
            Luma([if inked { 255 } else { 0 }])
        });
        let labels = label(&ink, 20).unwrap();
        assert_eq!(labels.marks.len(), 6);
        let (all, low) = lines(&labels);
        assert_eq!(all.len(), 2, "the speck is no line");
        assert_eq!((all[0].marks.len(), all[1].marks.len()), (2, 2));
        assert!(all[0].marks.iter().all(|&i| labels.marks[i].y0 == 0));
        assert_eq!(low.len(), 1, "the dash is a low line");
    }
}
