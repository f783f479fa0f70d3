//! Layer 4: reading a handwritten number, several digits in one picture, touching or not.
//!
//! How: ink is separated from paper region by region (`data::ink`), the marks are found and
//! grouped into lines (`data::marks`), and each line is cut into pieces by paths from top to
//! bottom that cross as little ink as they can (`data::cuts`): more pieces than digits. Then
//! segmentation by recognition: every run of a few neighbouring pieces that could be one digit is
//! framed as `predict` frames a digit and read by the model in one batch, and a dynamic
//! programme chooses how to split the line into digits and skipped marks so that the product of
//! the model's probabilities is largest (a run with a gap of empty columns inside pays
//! [`ReadConfig::gap_cost`]). The model's "not a digit" output is what makes a digit's half, two
//! digits together, a comma or a dash score badly as a digit. Beside the cuts, the line reader
//! (`line`) reads the whole line with no cuts at all, which is what reads overlapping digits;
//! `line::combine` makes one reading of the two. docs/read.md has the details and the
//! measurements.

pub mod line;
pub mod train;

use crate::data::cuts::{self, Cuts, GroupLimits};
use crate::data::image::{Pixels, frame_ink, to_gray};
use crate::data::ink;
use crate::data::marks::{self, Labels, Line};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::predict::{Prediction, predict_pixels};
use image::DynamicImage;
use line::LineReader;
use serde::Serialize;

/// How the reader searches. `Default` is what the CLI, the server and Python use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReadConfig {
    /// What each digit read costs, in nats of log-probability: the higher, the fewer and wider
    /// the digits the search prefers (negative: each digit earns it). Set on numbers composed
    /// from MNIST's training digits (`examples/read_numbers.rs --split train`).
    pub digit_cost: f32,
    /// What skipping a mark as "not a digit" costs beyond the log of its "not a digit"
    /// probability.
    pub skip_cost: f32,
    /// What a gap of empty columns inside a would-be digit costs, per line height: separate
    /// marks side by side are separate digits far more often than one digit in pieces.
    pub gap_cost: f32,
    /// Which runs of pieces may be one digit.
    pub groups: GroupLimits,
    /// The most marks a picture may hold (specks included); more is refused as not a number.
    pub max_marks: usize,
    /// The most pieces the picture's lines may be cut into together, which bounds the model's
    /// work (a few runs per piece are read); more is refused as not a picture of numbers.
    pub max_pieces: usize,
    /// Which readers read each line.
    pub method: Method,
    /// With both readers, where they read different numbers of digits: how much likelier (in
    /// nats, by the line model) the line model's reading must be than the cut search's to be
    /// taken.
    pub line_margin: f32,
    /// With both readers, where they differ: the weight of the piece model's log-probability of
    /// a reading (its best split of the cuts that spells it) beside the line model's.
    pub pieces_weight: f32,
    /// With both readers, where they differ: the most a reading loses (in nats, before
    /// `pieces_weight`) for the piece model finding it less likely than its own best reading.
    /// Where digits touch, no split of the cuts may spell the right number, so the piece model
    /// may not veto the line model outright. Weight 1 and floor 1.5 were chosen on a validation
    /// split (docs/read.md).
    pub pieces_floor: f32,
    /// The floor instead, where the line model reads fewer digits than the cut search and every
    /// digit the cut search read stands apart from the next (empty columns between their boxes):
    /// there no touching hides the right split from the cuts, and the line model's habit of
    /// dropping a small or thin digit among large ones is what the floor would let through.
    /// 6 was chosen on the validation split (docs/read.md; 3, 6 and no floor read alike).
    pub apart_floor: f32,
    /// Where the line model's reading at the usual digit height and the cut search's differ, read
    /// the line again at two more digit heights (`line::OTHER_VIEW_HEIGHTS`) and average the
    /// three views' log-probabilities.
    pub line_views: bool,
}

/// How each line is read: by cuts and the piece model's search, by the line model alone, or by
/// both (where they differ, the reading the models are surer of).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    Cuts,
    Line,
    #[default]
    Both,
}

/// The models that read numbers, owned together: the piece model the search over cuts asks (a
/// digit model with a "not a digit" output), and the line model (`read::line`; None: cuts only).
/// `read_image(&mut r.pieces, r.line.as_mut(), ...)`.
pub struct Reader {
    pub pieces: Network,
    pub line: Option<LineReader>,
}

impl Reader {
    /// The built-in number reader and line reader.
    pub fn builtin() -> Result<Reader> {
        let line = LineReader::new(crate::model::builtin_lines()?.0)?;
        Ok(Reader { pieces: crate::model::builtin_numbers()?.0, line: Some(line) })
    }

    /// `pieces` with the built-in line reader.
    pub fn with_pieces(pieces: Network) -> Result<Reader> {
        Ok(Reader { pieces, line: Some(LineReader::new(crate::model::builtin_lines()?.0)?) })
    }
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            digit_cost: 0.0,
            skip_cost: 1.0,
            gap_cost: 15.0,
            groups: GroupLimits::default(),
            max_marks: 5_000,
            max_pieces: 600,
            method: Method::default(),
            line_margin: 0.0,
            pieces_weight: 1.0,
            pieces_floor: 1.5,
            apart_floor: 6.0,
            line_views: true,
        }
    }
}

/// One digit read: which, how sure among the digits, and where (x, y, width, height in the
/// picture's pixels).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReadDigit {
    pub digit: usize,
    pub confidence: f32,
    #[serde(rename = "box")]
    pub bounds: [u32; 4],
    /// Which line of the picture, from 0 at the top.
    pub line: usize,
}

/// A mark that was not read as a digit (a comma, a dash, a stray stroke).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Skipped {
    #[serde(rename = "box")]
    pub bounds: [u32; 4],
    /// The model's "not a digit" probability for it; absent for a mark too small to be a digit.
    pub not_digit: Option<f32>,
}

/// What a picture says: the number on each line (lines joined by '\n'), the digits left to right
/// with their boxes, what was skipped, and a message when nothing could be read.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Reading {
    pub text: String,
    /// The product of the digits' confidences (0 when nothing was read).
    pub confidence: f32,
    pub digits: Vec<ReadDigit>,
    pub skipped: Vec<Skipped>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Reading {
    fn nothing(message: &str) -> Reading {
        Reading {
            text: String::new(),
            confidence: 0.0,
            digits: Vec::new(),
            skipped: Vec::new(),
            message: Some(message.into()),
        }
    }
}

/// Reads the number in an image file (decoded within `data::image`'s limits).
pub fn read_file(
    pieces: &mut Network,
    line: Option<&mut LineReader>,
    path: &std::path::Path,
    config: &ReadConfig,
) -> Result<Reading> {
    read_image(pieces, line, &crate::data::image::open(path)?, config)
}

/// Reads the number in an image file's bytes already in memory (a request body), decoded within
/// `limits`.
pub fn read_bytes(
    pieces: &mut Network,
    line: Option<&mut LineReader>,
    bytes: &[u8],
    limits: crate::data::image::ImageLimits,
    config: &ReadConfig,
) -> Result<Reading> {
    let picture = crate::data::image::decode(bytes, std::path::Path::new("request body"), limits)?;
    read_image(pieces, line, &picture, config)
}

/// Reads the number in a picture (any size, grey or colour, dark ink on light paper or the
/// reverse). A picture with nothing readable gives an empty `text` and a `message`; an error
/// only for a picture that cannot be a number (more than `max_marks` marks or `max_pieces` pieces, or a model that does
/// not read 28x28 digits).
pub fn read_image(
    pieces: &mut Network,
    mut line_reader: Option<&mut LineReader>,
    picture: &DynamicImage,
    config: &ReadConfig,
) -> Result<Reading> {
    let gray = to_gray(picture);
    let Some(ink) = ink::separate(&gray) else { return Ok(Reading::nothing("no ink found: the picture is blank")) };
    let Some(labels) = marks::label(&ink.image, config.max_marks) else {
        return Err(Error::Invalid(format!(
            "more than {} separate marks: this is not a picture of a number (is it a photo of a textured surface?)",
            config.max_marks
        )));
    };
    let (mut lines, low) = marks::lines(&labels);
    marks::join_drifting(&labels, &mut lines);
    let to_picture = |b: [u32; 4]| -> [u32; 4] {
        let s = ink.scale;
        let (x, y) = ((b[0] as f32 / s).floor() as u32, (b[1] as f32 / s).floor() as u32);
        let (w, h) = (((b[2] as f32 / s).ceil() as u32).max(1), ((b[3] as f32 / s).ceil() as u32).max(1));
        [x, y, w.min(gray.width() - x.min(gray.width())), h.min(gray.height() - y.min(gray.height()))]
    };
    let mut reading =
        Reading { text: String::new(), confidence: 1.0, digits: Vec::new(), skipped: Vec::new(), message: None };
    for i in low {
        let m = labels.marks[i];
        reading.skipped.push(Skipped { bounds: to_picture([m.x0, m.y0, m.width(), m.height()]), not_digit: None });
    }
    let cut_lines: Vec<Cuts> = lines.iter().map(|line| cuts::cut(&ink.image, &labels, line)).collect();
    let piece_count: usize = cut_lines.iter().map(Cuts::pieces).sum();
    if piece_count > config.max_pieces {
        return Err(Error::Invalid(format!(
            "the writing is cut into {piece_count} pieces, more than the {} a picture of numbers may have",
            config.max_pieces
        )));
    }
    let mut texts = Vec::new();
    for (line, cuts) in lines.iter().zip(&cut_lines) {
        let (digits, skipped) = read_line(pieces, line_reader.as_deref_mut(), &ink.image, &labels, line, cuts, config)?;
        let number: String = digits.iter().map(|d| char::from(b'0' + d.digit as u8)).collect();
        if !number.is_empty() {
            texts.push(number);
        }
        let line_index = texts.len().saturating_sub(1);
        for d in digits {
            reading.confidence *= d.confidence;
            reading.digits.push(ReadDigit { bounds: to_picture(d.bounds), line: line_index, ..d });
        }
        reading.skipped.extend(skipped.into_iter().map(|s| Skipped { bounds: to_picture(s.bounds), ..s }));
    }
    reading.text = texts.join("\n");
    if reading.digits.is_empty() {
        reading.confidence = 0.0;
        reading.message = Some("no digits found: the marks here do not read as digits".into());
    }
    Ok(reading)
}

/// One line's digits and skipped marks, by `config.method`.
fn read_line(
    pieces: &mut Network,
    line_reader: Option<&mut LineReader>,
    ink: &image::GrayImage,
    labels: &Labels,
    line: &Line,
    cuts: &Cuts,
    config: &ReadConfig,
) -> Result<(Vec<ReadDigit>, Vec<Skipped>)> {
    let Some(line_reader) = line_reader.filter(|_| config.method != Method::Cuts) else {
        return Ok(search(pieces, ink, labels, line, cuts, config)?.best(config));
    };
    let middle = [crate::data::strip::DIGIT_HEIGHT];
    let other: &[f32] = if config.line_views { &line::OTHER_VIEW_HEIGHTS } else { &[] };
    if config.method == Method::Line {
        let Some(mut views) = line::LineViews::new(line_reader, ink, labels, line, &middle)? else {
            return Ok(search(pieces, ink, labels, line, cuts, config)?.best(config));
        };
        views.add(line_reader, ink, labels, line, other)?;
        let (view, path) = views.best_path();
        return Ok(line::locate(&path, &views.strips[view], ink, labels, line));
    }
    let cut_search = search(pieces, ink, labels, line, cuts, config)?;
    let (cuts_digits, cuts_skipped) = cut_search.best(config);
    if cuts_digits.is_empty() {
        // Marks the piece model calls no digits stay unread (see `line::combine`), so the line
        // reader's work on them would be wasted: a page of noise costs the cuts alone.
        return Ok((cuts_digits, cuts_skipped));
    }
    let Some(mut views) = line::LineViews::new(line_reader, ink, labels, line, &middle)? else {
        return Ok((cuts_digits, cuts_skipped));
    };
    // The other views are read only where the middle one and the cuts disagree, or where the
    // middle one is unsure of its own reading: most lines cost one view (the same readings as
    // reading all three always, on the validation split; 6.5 ms rather than 7.3 for 6 digits).
    let cut_text: Vec<u8> = cuts_digits.iter().map(|d| d.digit as u8).collect();
    let line_text: Vec<u8> = views.best_path().1.iter().map(|s| s.class as u8).collect();
    if line_text != cut_text || views.log_prob(&line_text) < line::SURE_ENOUGH.ln() {
        views.add(line_reader, ink, labels, line, other)?;
    }
    let (view, path) = views.best_path();
    let (line_digits, line_skipped) = line::locate(&path, &views.strips[view], ink, labels, line);
    let scores = line::Scores {
        line: &|digits: &[u8]| views.log_prob(digits),
        pieces: &|digits: &[u8]| cut_search.log_prob(digits, config),
    };
    Ok(match line::combine(&scores, line_digits, cuts_digits, config) {
        (digits, true) => (digits, line_skipped),
        (digits, false) => (digits, cuts_skipped),
    })
}

/// A run of pieces that may be one digit, and what the model says of it.
struct Candidate {
    first: usize,
    last: usize,
    bounds: [u32; 4],
    /// What reading it as one digit costs beyond its log-probability (its gaps).
    penalty: f32,
    prediction: Option<Prediction>,
}

/// What the piece model says of every run of a line's pieces that may be one digit: from it the
/// best split of the line into digits and skipped marks (`best`), and how likely any other
/// reading is (`log_prob`).
struct CutSearch {
    candidates: Vec<Candidate>,
    pieces: usize,
}

impl CutSearch {
    /// The best split of the line's pieces into digits and skipped marks (see the module docs).
    fn best(&self, config: &ReadConfig) -> (Vec<ReadDigit>, Vec<Skipped>) {
        best_split(&self.candidates, self.pieces, config)
    }

    /// The score of the best split that spells `digits` (by the same measure as `best`'s, whose
    /// own reading scores highest); minus infinity when no split of the cuts spells them.
    fn log_prob(&self, digits: &[u8], config: &ReadConfig) -> f64 {
        spelling_score(&self.candidates, self.pieces, digits, config)
    }
}

/// Reads every run of the line's pieces that may be one digit, in one batch.
fn search(
    network: &mut Network,
    ink: &image::GrayImage,
    labels: &Labels,
    line: &Line,
    cuts: &Cuts,
    config: &ReadConfig,
) -> Result<CutSearch> {
    let mut candidates = Vec::new();
    let mut images: Vec<Pixels> = Vec::new();
    for group in cuts::groups(ink, labels, cuts, line.height, &config.groups) {
        let framed = if group.could_be_digit { frame_ink(&group.image) } else { None };
        let has_image = framed.is_some();
        images.extend(framed);
        let candidate = Candidate {
            first: group.first,
            last: group.last,
            bounds: group.bounds,
            penalty: config.gap_cost * group.gap,
            prediction: None,
        };
        candidates.push((candidate, has_image));
    }
    let mut predictions = predict_pixels(network, &images, true)?.into_iter();
    let candidates: Vec<Candidate> = candidates
        .into_iter()
        .map(|(c, has_image)| Candidate { prediction: if has_image { predictions.next() } else { None }, ..c })
        .collect();
    Ok(CutSearch { candidates, pieces: cuts.pieces() })
}

/// What the search keeps for each number of pieces consumed: the best score, and the step that
/// reached it (a candidate read as a digit, or one piece skipped).
#[derive(Clone, Copy)]
enum Step {
    Digit(usize),
    Skip(usize),
}

/// What reading candidate `c` as `digit` scores (None: its pieces were not read as a digit).
fn digit_score(c: &Candidate, digit: Option<usize>, config: &ReadConfig) -> Option<f32> {
    let p = c.prediction.as_ref()?;
    let probability = digit.map_or(p.confidence, |d| p.probabilities.get(d).copied().unwrap_or(0.0));
    Some(((1.0 - p.not_digit) * probability).max(1e-12).ln() - config.digit_cost - c.penalty)
}

/// What skipping candidate `c`, a single piece, scores.
fn skip_score(c: &Candidate, config: &ReadConfig) -> f32 {
    c.prediction.as_ref().map_or(1.0, |p| p.not_digit).max(1e-12).ln() - config.skip_cost
}

/// `best_split`'s search held to readings that spell `digits`: the best score, by pieces consumed
/// and digits spelled.
fn spelling_score(candidates: &[Candidate], pieces: usize, digits: &[u8], config: &ReadConfig) -> f64 {
    let spelt = digits.len() + 1;
    let mut best = vec![f64::NEG_INFINITY; (pieces + 1) * spelt];
    best[0] = 0.0;
    for c in candidates {
        for j in 0..spelt {
            let from = best[c.first * spelt + j];
            if from == f64::NEG_INFINITY {
                continue;
            }
            if let Some(score) = digits.get(j).and_then(|&d| digit_score(c, Some(d as usize), config)) {
                let to = &mut best[(c.last + 1) * spelt + j + 1];
                *to = to.max(from + score as f64);
            }
            if c.first == c.last {
                let to = &mut best[(c.first + 1) * spelt + j];
                *to = to.max(from + skip_score(c, config) as f64);
            }
        }
    }
    best[pieces * spelt + digits.len()]
}

fn best_split(candidates: &[Candidate], pieces: usize, config: &ReadConfig) -> (Vec<ReadDigit>, Vec<Skipped>) {
    let mut best = vec![f32::NEG_INFINITY; pieces + 1];
    let mut step: Vec<Option<Step>> = vec![None; pieces + 1];
    best[0] = 0.0;
    // Candidates come ordered by their first piece, so every way into `first` is known when
    // the search reaches them.
    for (index, c) in candidates.iter().enumerate() {
        let from = best[c.first];
        if from == f32::NEG_INFINITY {
            continue;
        }
        if let Some(score) = digit_score(c, None, config).map(|s| from + s)
            && score > best[c.last + 1]
        {
            best[c.last + 1] = score;
            step[c.last + 1] = Some(Step::Digit(index));
        }
        if c.first == c.last {
            let score = from + skip_score(c, config);
            if score > best[c.first + 1] {
                best[c.first + 1] = score;
                step[c.first + 1] = Some(Step::Skip(index));
            }
        }
    }
    let (mut digits, mut skipped) = (Vec::new(), Vec::new());
    let mut at = pieces;
    while at > 0 {
        let Some(s) = step[at] else { break };
        match s {
            Step::Digit(i) => {
                let c = &candidates[i];
                let p = c.prediction.as_ref().expect("a digit step has a prediction");
                digits.push(ReadDigit { digit: p.guess, confidence: p.confidence, bounds: c.bounds, line: 0 });
                at = c.first;
            }
            Step::Skip(i) => {
                let c = &candidates[i];
                skipped.push(Skipped { bounds: c.bounds, not_digit: c.prediction.as_ref().map(|p| p.not_digit) });
                at = c.first;
            }
        }
    }
    digits.reverse();
    skipped.reverse();
    (digits, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::classify;

    /// A candidate over pieces `first..=last` whose logits favour `digit` by `margin` (11 outputs,
    /// "not a digit" last; `digit` 10 for a run the model calls no digit).
    fn candidate(first: usize, last: usize, digit: usize, margin: f32) -> Candidate {
        let mut logits = [0.0f32; 11];
        logits[digit] = margin;
        let prediction = classify(&logits, 11, true).next();
        Candidate { first, last, bounds: [first as u32, 0, 1, 1], penalty: 0.0, prediction }
    }

    /// Three pieces: a clear 1, then a 0 cut in two, and what the model says of each run.
    fn one_and_a_split_zero() -> [Candidate; 6] {
        [
            candidate(0, 0, 1, 9.0),
            candidate(0, 1, 10, 6.0),
            candidate(0, 2, 10, 8.0),
            candidate(1, 1, 7, 2.0),
            candidate(1, 2, 0, 9.0),
            candidate(2, 2, 1, 2.0),
        ]
    }

    /// The search reads "10": not the two halves of the 0 as digits, not all three pieces
    /// together, which the model calls no digit.
    #[test]
    fn the_search_reads_the_most_likely_split() {
        let candidates = one_and_a_split_zero();
        let (digits, skipped) = best_split(&candidates, 3, &ReadConfig::default());
        assert_eq!(digits.iter().map(|d| d.digit).collect::<Vec<_>>(), [1, 0]);
        assert_eq!(digits[1].bounds[0], 1, "the 0 spans pieces 1 and 2");
        assert!(skipped.is_empty());
        // A piece the model calls no digit is skipped, and a gap inside a run costs it.
        let with_mark = [candidate(0, 0, 4, 9.0), candidate(1, 1, 10, 9.0), candidate(2, 2, 2, 9.0)];
        let (digits, skipped) = best_split(&with_mark, 3, &ReadConfig::default());
        assert_eq!((digits.len(), skipped.len()), (2, 1));
        let mut gapped = [candidate(0, 0, 1, 5.0), candidate(0, 1, 4, 9.0), candidate(1, 1, 1, 5.0)];
        gapped[1].penalty = 0.2 * ReadConfig::default().gap_cost;
        let (digits, _) = best_split(&gapped, 2, &ReadConfig::default());
        assert_eq!(digits.iter().map(|d| d.digit).collect::<Vec<_>>(), [1, 1]);
    }

    /// The search held to a spelling scores the best split that spells it: the free search's
    /// reading at the sum of its digits' scores, another reading lower, an impossible one never.
    #[test]
    fn a_spelling_scores_its_best_split() {
        let candidates = one_and_a_split_zero();
        let config = ReadConfig::default();
        let score = |digits: &[u8]| spelling_score(&candidates, 3, digits, &config);
        let read = digit_score(&candidates[0], Some(1), &config).unwrap()
            + digit_score(&candidates[4], Some(0), &config).unwrap();
        assert!((score(&[1, 0]) - read as f64).abs() < 1e-6);
        let three =
            [(0, 1), (3, 7), (5, 1)].map(|(c, d)| digit_score(&candidates[c], Some(d), &config).unwrap() as f64);
        assert!((score(&[1, 7, 1]) - three.iter().sum::<f64>()).abs() < 1e-5, "three digits: one piece each");
        assert!(score(&[1, 7, 1]) < score(&[1, 0]) && score(&[1, 6]) < score(&[1, 0]));
        assert_eq!(score(&[1, 1, 1, 1]), f64::NEG_INFINITY, "four digits from three pieces");
    }
}
