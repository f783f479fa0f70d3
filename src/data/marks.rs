//! The marks on a page of ink: connected strokes, sorted into lines (`data::cuts` then cuts each
//! line into pieces).

use image::GrayImage;

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

/// A line of writing: its marks (indices into `Labels::marks`) and the height of its digits.
pub struct Line {
    pub marks: Vec<usize>,
    pub height: f32,
}

/// Marks whose box is smaller than this share of the line's height on both sides, and whose
/// area is tiny, are specks: grain, dust, a JPEG block. They are not read at all.
const SPECK: f32 = 0.2;

/// The lines of writing, top to bottom: marks grouped by how their rows overlap (a mark joins a
/// line when half its height lies in the line's rows, or when it is small and just above or
/// below one of the line's marks), each line's digit height the median
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
        let joined = rows.iter_mut().find(|(top, bottom, members)| {
            let overlap = (m.y1.min(*bottom) as i64 - m.y0.max(*top) as i64 + 1).max(0) as u32;
            // A small mark just above or below a mark of the line joins it too: a 5's flag, the
            // bar of a 7 written apart.
            let tall = (*bottom - *top + 1) as f32;
            let gap = (m.y0 as i64 - *bottom as i64).max(*top as i64 - m.y1 as i64) as f32;
            let attached = (m.height() as f32) < 0.6 * tall
                && gap <= 0.25 * tall
                && members.iter().any(|&j| marks[j].x0 <= m.x1 && m.x0 <= marks[j].x1);
            overlap * 2 >= m.height() || attached
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

/// Joins lines that are one line of writing whose marks drift up and down (a digit written
/// higher or lower than its neighbours, a number written uphill), which `lines` can split where a
/// mark lies less than half in its neighbours' rows. Two lines join when no mark of one shares
/// more than a third of its columns with a mark of the other (lines stacked on a page share
/// columns), and a mark of one lies beside a mark of the other: within a line height to its side,
/// with rows in common for a quarter of the shorter's height. The joined line's digit height is
/// taken again. For reading; the training data's numbers are one line by construction, and are
/// kept as `lines` finds them, as the built-in models learnt on them. A picture of more than
/// [`MOST_LINES_JOINED`] lines is left as it is (the work grows with the square of the lines).
pub fn join_drifting(labels: &Labels, lines: &mut Vec<Line>) {
    if lines.len() > MOST_LINES_JOINED {
        return;
    }
    let marks = &labels.marks;
    let rows = |line: &Line| {
        line.marks.iter().fold((u32::MAX, 0), |(top, bottom), &i| (top.min(marks[i].y0), bottom.max(marks[i].y1)))
    };
    let beside = |a: &Mark, b: &Mark, height: f32| {
        let shared_rows = a.y1.min(b.y1) as i64 - a.y0.max(b.y0) as i64 + 1;
        let apart = a.x0.max(b.x0) as i64 - a.x1.min(b.x1) as i64 - 1;
        shared_rows as f32 >= 0.25 * a.height().min(b.height()) as f32 && (apart as f32) < height
    };
    let share_columns = |a: &Mark, b: &Mark| {
        let shared = a.x1.min(b.x1) as i64 - a.x0.max(b.x0) as i64 + 1;
        shared as f32 * 3.0 > a.width().min(b.width()) as f32
    };
    let joinable = |a: &Line, b: &Line| {
        let ((a_top, a_bottom), (b_top, b_bottom)) = (rows(a), rows(b));
        if a_top > b_bottom || b_top > a_bottom {
            return false;
        }
        let height = a.height.max(b.height);
        let pairs = || a.marks.iter().flat_map(|&i| b.marks.iter().map(move |&j| (&marks[i], &marks[j])));
        !pairs().any(|(m, n)| share_columns(m, n)) && pairs().any(|(m, n)| beside(m, n, height))
    };
    let mut i = 0;
    while i < lines.len() {
        let joined = (i + 1..lines.len()).find(|&j| joinable(&lines[i], &lines[j]));
        match joined {
            Some(j) => {
                let other = lines.remove(j);
                lines[i].marks.extend(other.marks);
                lines[i].height = typical_height(marks, &lines[i].marks).unwrap_or(lines[i].height);
            }
            None => i += 1,
        }
    }
}

/// The most lines `join_drifting` looks at: far more than a picture of numbers has.
pub const MOST_LINES_JOINED: usize = 100;

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

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

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

    /// Bars 3 wide and 10 high at (left column, top row).
    fn bars(at: &[(u32, u32)]) -> Labels {
        let ink = GrayImage::from_fn(60, 50, |x, y| {
            let inked = at.iter().any(|&(left, top)| (left..left + 3).contains(&x) && (top..top + 10).contains(&y));
            Luma([if inked { 255 } else { 0 }])
        });
        label(&ink, 20).unwrap()
    }

    #[test]
    fn a_line_whose_marks_drift_is_joined_and_stacked_lines_are_not() {
        // Each bar 6 rows lower than the one before: less than half of it lies beside the one
        // before, so `lines` splits the line; side by side, it is one.
        let labels = bars(&[(0, 0), (6, 6), (12, 12), (18, 18)]);
        let (mut found, _) = lines(&labels);
        assert!(found.len() > 1);
        join_drifting(&labels, &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].marks.len(), 4);
        // Lines one above the other stay two: with no rows in common, or with a mark below
        // another's arch, in its columns; so do marks far apart whose rows meet.
        let stacked = bars(&[(0, 0), (6, 0), (0, 12), (6, 12)]);
        let far = bars(&[(0, 0), (45, 6)]);
        let arch = GrayImage::from_fn(30, 30, |x, y| {
            let arch = x < 20 && (y == 0 || ((x == 0 || x == 19) && y < 10));
            let below = (8..11).contains(&x) && (6..16).contains(&y);
            Luma([if arch || below { 255 } else { 0 }])
        });
        let arch = label(&arch, 20).unwrap();
        for labels in [stacked, far, arch] {
            let (mut found, _) = lines(&labels);
            assert_eq!(found.len(), 2);
            join_drifting(&labels, &mut found);
            assert_eq!(found.len(), 2, "{:?}", labels.marks);
        }
    }
}
