//! The line reader: a network that reads a whole line of writing at once, no cuts needed. The
//! line's strip (`data::strip`) goes through convolutions that score every 4 columns as one of
//! the ten digits or the blank (`Architecture::line_cnn`); the best path, repeats merged and
//! blanks dropped, is the number (`nn::ctc::greedy_decode`). It learnt with the CTC loss on
//! composed numbers (`read::train`), so it never had to be told where one digit ends: it reads
//! overlapping digits that no cut from top to bottom can separate.

use super::{ReadConfig, ReadDigit, Skipped};
use crate::data::marks::{Labels, Line};
use crate::data::strip::{STRIP_HEIGHT, Strip};
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::model::{Architecture, LayerSpec, Network};
use crate::nn::ctc::{Ctc, Symbol, greedy_decode};
use image::GrayImage;

/// Scores per step: the ten digits, then the blank.
pub const SYMBOLS: usize = 11;
/// The CTC blank's index among the scores.
pub const BLANK: usize = 10;
/// Strip columns per step (the network's two 2x2 max-pools).
pub const COLUMNS_PER_STEP: usize = 4;
/// Strips are read at widths rounded up to a multiple of this, so a few planned networks serve
/// every line.
const WIDTH_STEP: usize = 32;
/// Networks kept planned for recent widths.
const KEPT_WIDTHS: usize = 8;

/// What the line model says of a strip: a score for each symbol every 4 columns (class-major).
pub struct LineScores {
    scores: Vec<f32>,
}

impl LineScores {
    /// The symbols the best path reads, each with the steps it spans.
    pub fn best_path(&self) -> Vec<Symbol> {
        greedy_decode(&self.scores, SYMBOLS, BLANK)
    }

    /// The log-probability the line model gives the strip's spelling `digits` (summed over every
    /// alignment); minus infinity when the strip is too short to spell them.
    pub fn log_prob(&self, digits: &[u8]) -> f64 {
        Ctc::default().log_prob(&self.scores, SYMBOLS, BLANK, digits)
    }
}

/// The digit heights a line is read at besides `data::strip::DIGIT_HEIGHT` when more views are
/// asked for (the ends of the training range).
pub const OTHER_VIEW_HEIGHTS: [f32; 2] = [18.0, 22.0];

/// The probability the first view must give its own reading, when it agrees with the cut
/// search, for the other views not to be read (`read_line`).
pub const SURE_ENOUGH: f64 = 0.9;

/// A line seen by the line model at one or more digit heights: a strip and scores for each.
pub struct LineViews {
    pub strips: Vec<Strip>,
    pub scores: Vec<LineScores>,
}

impl LineViews {
    /// The line's strips at `heights` and the model's scores for them; None when the line is too
    /// wide for a strip ([`crate::data::strip::MAX_STRIP_WIDTH`]).
    pub fn new(
        reader: &mut LineReader,
        ink: &GrayImage,
        labels: &Labels,
        line: &Line,
        heights: &[f32],
    ) -> Result<Option<LineViews>> {
        let mut views = LineViews { strips: Vec::new(), scores: Vec::new() };
        Ok(views.add(reader, ink, labels, line, heights)?.then_some(views))
    }

    /// Adds the views at `heights`; false (and nothing added) when the line is too wide.
    pub fn add(
        &mut self,
        reader: &mut LineReader,
        ink: &GrayImage,
        labels: &Labels,
        line: &Line,
        heights: &[f32],
    ) -> Result<bool> {
        let strips: Option<Vec<Strip>> =
            heights.iter().map(|&h| crate::data::strip::line_strip(ink, labels, line, h)).collect();
        let Some(strips) = strips else { return Ok(false) };
        for strip in strips {
            self.scores.push(reader.score(&strip)?);
            self.strips.push(strip);
        }
        Ok(true)
    }

    /// The mean over the views of the log-probability of `digits`.
    pub fn log_prob(&self, digits: &[u8]) -> f64 {
        self.scores.iter().map(|s| s.log_prob(digits)).sum::<f64>() / self.scores.len().max(1) as f64
    }

    /// Of the views' best paths, the one whose digits all views together find likeliest, and
    /// which view it came from.
    pub fn best_path(&self) -> (usize, Vec<Symbol>) {
        let mut paths: Vec<Vec<Symbol>> = self.scores.iter().map(LineScores::best_path).collect();
        let likelihood = |p: &[Symbol]| self.log_prob(&p.iter().map(|s| s.class as u8).collect::<Vec<u8>>());
        let scored: Vec<f64> = paths.iter().map(|p| likelihood(p)).collect();
        let best = (0..paths.len()).max_by(|&a, &b| scored[a].total_cmp(&scored[b])).unwrap_or(0);
        (best, if paths.is_empty() { Vec::new() } else { paths.swap_remove(best) })
    }
}

/// A line model (`Architecture::line_cnn`'s shape at any width), planned again for each strip
/// width it meets.
pub struct LineReader {
    /// The engine the model was loaded on, which every width runs on.
    engine: EngineConfig,
    /// What inference runs, whatever the width: the layers with each BatchNorm folded into its
    /// convolution, their parameters and state (planned at a new width without folding again).
    inference: (Vec<LayerSpec>, Vec<f32>, Vec<f32>),
    planned: Vec<(usize, Network)>,
}

impl LineReader {
    /// Refuses a network that is not a line model: strips of [`STRIP_HEIGHT`] rows in, ending in
    /// [`SYMBOLS`] scores per column, and readable at other widths.
    pub fn new(model: Network) -> Result<Self> {
        let [channels, rows, width] = model.architecture.input;
        let is_line_model = channels == 1
            && rows == STRIP_HEIGHT
            && model.architecture.layers.contains(&LayerSpec::Columns)
            && model.architecture.layers.last() == Some(&LayerSpec::Flatten)
            && model.classes() == SYMBOLS * (width / COLUMNS_PER_STEP);
        if !is_line_model {
            return Err(Error::Invalid(format!(
                "not a line model: it takes {:?} images and gives {} scores; a line model takes 1x{STRIP_HEIGHT}xW strips and gives {SYMBOLS} scores every {COLUMNS_PER_STEP} columns",
                model.architecture.input,
                model.classes()
            )));
        }
        let (engine, mut model) = (model.engine(), model);
        let folded = model.for_inference();
        let inference = (folded.architecture.layers.clone(), folded.params().to_vec(), folded.state().to_vec());
        Ok(LineReader { engine, inference, planned: Vec::new() })
    }

    /// The line model's scores for `strip`: every 4 columns, each digit and the blank.
    pub fn score(&mut self, strip: &Strip) -> Result<LineScores> {
        let width = strip.width.div_ceil(WIDTH_STEP).max(1) * WIDTH_STEP;
        let network = self.network_for(width)?;
        let mut input = vec![0.0; width * STRIP_HEIGHT];
        strip.padded_into(width, 0, &mut input);
        let scores = network.forward(&input, 1, false);
        // Steps beyond the strip's own columns read padding: leave them out.
        let steps = scores.len() / SYMBOLS;
        let used = strip.width.div_ceil(COLUMNS_PER_STEP).min(steps);
        let mut kept = Vec::with_capacity(used * SYMBOLS);
        for class in scores.chunks(steps) {
            kept.extend_from_slice(&class[..used]);
        }
        Ok(LineScores { scores: kept })
    }

    fn network_for(&mut self, width: usize) -> Result<&mut Network> {
        if let Some(i) = self.planned.iter().position(|(w, _)| *w == width) {
            return Ok(&mut self.planned[i].1);
        }
        let (layers, params, state) = &self.inference;
        let architecture = Architecture { input: [1, STRIP_HEIGHT, width], layers: layers.clone() };
        let mut network = Network::with_engine(architecture, 0, self.engine)?;
        network.params_mut().copy_from_slice(params);
        network.state_mut().copy_from_slice(state);
        if self.planned.len() == KEPT_WIDTHS {
            self.planned.remove(0);
        }
        self.planned.push((width, network));
        Ok(&mut self.planned.last_mut().expect("just pushed").1)
    }
}

/// The digits of a line read by the line model, with their boxes on the ink image, and the
/// line's marks no digit was read on (commas, dashes, strokes). Each digit's box is the line's
/// ink between the midpoints to its neighbours' steps; a mark is skipped when no digit's steps
/// fall on its columns.
pub fn locate(
    symbols: &[Symbol],
    strip: &Strip,
    ink: &GrayImage,
    labels: &Labels,
    line: &Line,
) -> (Vec<ReadDigit>, Vec<Skipped>) {
    let spans: Vec<(f32, f32)> = symbols
        .iter()
        .map(|s| strip.ink_columns(s.first * COLUMNS_PER_STEP, (s.last + 1) * COLUMNS_PER_STEP))
        .collect();
    let centres: Vec<f32> = spans.iter().map(|(a, b)| (a + b) / 2.0).collect();
    let mut in_line = vec![false; labels.marks.len() + 1];
    for &i in &line.marks {
        in_line[i + 1] = true;
    }
    let (x_min, x_max) =
        line.marks.iter().fold((u32::MAX, 0), |(a, b), &i| (a.min(labels.marks[i].x0), b.max(labels.marks[i].x1)));
    let (y_min, y_max) =
        line.marks.iter().fold((u32::MAX, 0), |(a, b), &i| (a.min(labels.marks[i].y0), b.max(labels.marks[i].y1)));
    let mut digits = Vec::with_capacity(symbols.len());
    for (i, symbol) in symbols.iter().enumerate() {
        let from = if i == 0 { x_min as f32 } else { (centres[i - 1] + centres[i]) / 2.0 };
        let to = if i + 1 == symbols.len() { x_max as f32 + 1.0 } else { (centres[i] + centres[i + 1]) / 2.0 };
        let (from, to) = (from.max(0.0) as u32, (to.max(0.0) as u32).min(ink.width()));
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for y in y_min..=y_max.min(ink.height().saturating_sub(1)) {
            for x in from..to {
                let label = labels.labels[(y * labels.width + x) as usize] as usize;
                if label != 0 && in_line[label] {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        let bounds = if x0 <= x1 {
            [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
        } else {
            let (a, b) = spans[i];
            [a.max(0.0) as u32, y_min, ((b - a).max(1.0)) as u32, y_max - y_min + 1]
        };
        digits.push(ReadDigit { digit: symbol.class, confidence: symbol.confidence, bounds, line: 0 });
    }
    let skipped = line
        .marks
        .iter()
        .map(|&i| labels.marks[i])
        .filter(|m| !spans.iter().any(|&(a, b)| a < (m.x1 + 1) as f32 && b > m.x0 as f32))
        .map(|m| Skipped { bounds: [m.x0, m.y0, m.width(), m.height()], not_digit: None })
        .collect();
    (digits, skipped)
}

/// Most digits where the two readers agree on the count but not every digit that are weighed
/// one by one (2^n readings are scored); beyond it the counts rule.
const MOST_DIFFERENCES: usize = 6;

/// How likely each reader finds a reading of a line, as log-probabilities: the line model's
/// (`LineViews::log_prob`) and the piece model's (the cut search's best split that spells it).
pub struct Scores<'a> {
    pub line: &'a dyn Fn(&[u8]) -> f64,
    pub pieces: &'a dyn Fn(&[u8]) -> f64,
}

/// One reading of a line from the line model's and the cut search's: the cut search's where they
/// agree, where it reads no digit, or where both read one digit. Elsewhere the reading for which
/// the line model's log-probability plus `config.pieces_weight` times the piece model's (below
/// its own best by at most `config.pieces_floor`, or `config.apart_floor` where the line model
/// reads fewer digits than the cuts and the cuts' digits stand apart) is largest, among the two
/// readings and, where they read as many digits, every mix of their differing digits (a product
/// of the two experts); the line model's own reading must win by `config.line_margin` nats. A
/// mix keeps the cut search's boxes.
/// Returns the digits, and whether they are the line model's reading (else the cut search's
/// segmentation, whose skipped marks go with it).
pub fn combine(
    scores: &Scores,
    by_line: Vec<ReadDigit>,
    by_cuts: Vec<ReadDigit>,
    config: &ReadConfig,
) -> (Vec<ReadDigit>, bool) {
    let text = |digits: &[ReadDigit]| digits.iter().map(|d| d.digit as u8).collect::<Vec<u8>>();
    let (line_text, cuts_text) = (text(&by_line), text(&by_cuts));
    // The piece model knows "not a digit", the line model does not: where the cut search reads
    // no digit at all, the marks are none.
    // A lone digit is what the piece model reads best (it learnt on single digits), and `read`
    // should answer for it as `predict` does.
    if line_text == cuts_text || cuts_text.is_empty() || (cuts_text.len() == 1 && line_text.len() == 1) {
        return (by_cuts, false);
    }
    let best_by_pieces = (scores.pieces)(&cuts_text);
    let floor = if line_text.len() < cuts_text.len() && stand_apart(&by_cuts) {
        config.apart_floor
    } else {
        config.pieces_floor
    };
    let joint = |digits: &[u8]| {
        let pieces = ((scores.pieces)(digits) - best_by_pieces).max(-floor as f64);
        (scores.line)(digits) + config.pieces_weight as f64 * pieces
    };
    let differ: Vec<usize> =
        (0..line_text.len().min(cuts_text.len())).filter(|&i| line_text[i] != cuts_text[i]).collect();
    if line_text.len() != cuts_text.len() || differ.len() > MOST_DIFFERENCES {
        let line_wins = joint(&line_text) > joint(&cuts_text) + config.line_margin as f64;
        return if line_wins { (by_line, true) } else { (by_cuts, false) };
    }
    let (mut best, mut best_score) = (0usize, f64::NEG_INFINITY);
    let mut candidate = cuts_text.clone();
    for mask in 0..1usize << differ.len() {
        for (bit, &i) in differ.iter().enumerate() {
            candidate[i] = if mask >> bit & 1 == 1 { line_text[i] } else { cuts_text[i] };
        }
        let score = joint(&candidate);
        if score > best_score {
            (best, best_score) = (mask, score);
        }
    }
    let mut chosen = by_cuts;
    for (bit, &i) in differ.iter().enumerate() {
        if best >> bit & 1 == 1 {
            chosen[i].digit = by_line[i].digit;
            chosen[i].confidence = by_line[i].confidence;
        }
    }
    (chosen, false)
}

/// Whether empty columns separate each digit's box from the next one's (digits in reading order).
fn stand_apart(digits: &[ReadDigit]) -> bool {
    digits.windows(2).all(|pair| pair[0].bounds[0] + pair[0].bounds[2] < pair[1].bounds[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores whose best path spells `steps` (one symbol per step, BLANK for a blank), each
    /// step's symbol `margin` above the others.
    fn scores(steps: &[usize], margin: f32) -> LineScores {
        let mut scores = vec![0.0; SYMBOLS * steps.len()];
        for (t, &k) in steps.iter().enumerate() {
            scores[k * steps.len() + t] = margin;
        }
        LineScores { scores }
    }

    fn digits(text: &[usize]) -> Vec<ReadDigit> {
        text.iter().map(|&d| ReadDigit { digit: d, confidence: 0.9, bounds: [d as u32, 0, 1, 1], line: 0 }).collect()
    }

    fn read(digits: &[ReadDigit]) -> Vec<usize> {
        digits.iter().map(|d| d.digit).collect()
    }

    /// A piece model that reads `per_digit[i][d]` for digit d at position i, and cannot spell a
    /// reading of another length.
    fn pieces_reading(per_digit: &[Vec<f64>]) -> impl Fn(&[u8]) -> f64 + '_ {
        move |text: &[u8]| {
            if text.len() != per_digit.len() {
                return f64::NEG_INFINITY;
            }
            text.iter().zip(per_digit).map(|(&d, p)| p[d as usize].ln()).sum()
        }
    }

    /// A piece model sure of `text` (0.99 for each digit).
    fn sure_of(text: &[usize]) -> Vec<Vec<f64>> {
        text.iter().map(|&d| (0..10).map(|k| if k == d { 0.99 } else { 0.001 }).collect()).collect()
    }

    #[test]
    fn the_best_path_and_the_probability_of_a_spelling() {
        let s = scores(&[BLANK, 3, 3, BLANK, 3, 5], 6.0);
        let path: Vec<usize> = s.best_path().iter().map(|s| s.class).collect();
        assert_eq!(path, [3, 3, 5]);
        assert!(s.log_prob(&[3, 3, 5]) > s.log_prob(&[3, 5]) + 3.0);
        assert_eq!(s.log_prob(&[1, 1, 1, 1]), f64::NEG_INFINITY, "too many for six steps");
    }

    #[test]
    fn combining_takes_the_cuts_where_they_agree_or_read_nothing() {
        let config = ReadConfig::default();
        let s = scores(&[4, BLANK, 2], 6.0);
        let pieces = sure_of(&[4, 2]);
        let both = Scores { line: &|t| s.log_prob(t), pieces: &pieces_reading(&pieces) };
        let (chosen, from_line) = combine(&both, digits(&[4, 2]), digits(&[4, 2]), &config);
        assert_eq!((read(&chosen), from_line), (vec![4, 2], false));
        let (chosen, from_line) = combine(&both, digits(&[4, 2]), Vec::new(), &config);
        assert!(chosen.is_empty() && !from_line, "marks the piece model calls no digits stay unread");
    }

    #[test]
    fn combining_counts_digits_by_both_models() {
        // The cuts kept two touching digits as one "4", and no split of them spells "42"; the
        // line model reads "42" clearly: the piece model cannot veto it.
        let s = scores(&[4, BLANK, 2], 6.0);
        let pieces = sure_of(&[4]);
        let config = ReadConfig { pieces_floor: 5.0, ..ReadConfig::default() };
        let both = Scores { line: &|t| s.log_prob(t), pieces: &pieces_reading(&pieces) };
        let (chosen, from_line) = combine(&both, digits(&[4, 2]), digits(&[4]), &config);
        assert_eq!((read(&chosen), from_line), (vec![4, 2], true));
        // Where the line model hesitates between one digit and two, the piece model sure of one
        // decides.
        let mut unsure = scores(&[4, BLANK, 2], 1.0);
        unsure.scores[4 * 3 + 2] = 1.0;
        let both = Scores { line: &|t| unsure.log_prob(t), pieces: &pieces_reading(&pieces) };
        assert!(unsure.log_prob(&[4, 2]) > unsure.log_prob(&[4]), "the line model alone would read 42");
        let (chosen, from_line) = combine(&both, digits(&[4, 2]), digits(&[4]), &config);
        assert_eq!((read(&chosen), from_line), (vec![4], false));
    }

    #[test]
    fn the_piece_model_keeps_a_digit_that_stands_apart() {
        // The line model drops the small second 2 of "9220"; the piece model reads it, and could
        // skip it only at a cost of 3 nats.
        let line = |t: &[u8]| match t {
            [9, 2, 0] => -0.1,
            [9, 2, 2, 0] => -2.5,
            _ => f64::NEG_INFINITY,
        };
        let pieces = |t: &[u8]| match t {
            [9, 2, 2, 0] => -0.5,
            [9, 2, 0] => -3.5,
            _ => f64::NEG_INFINITY,
        };
        let both = Scores { line: &line, pieces: &pieces };
        let boxes = |width: u32| -> Vec<ReadDigit> {
            digits(&[9, 2, 2, 0])
                .into_iter()
                .enumerate()
                .map(|(i, d)| ReadDigit { bounds: [10 * i as u32, 0, width, 12], ..d })
                .collect()
        };
        let config = ReadConfig::default();
        assert!(config.apart_floor > 3.0 && config.pieces_floor < 2.4);
        let (chosen, from_line) = combine(&both, digits(&[9, 2, 0]), boxes(8), &config);
        assert_eq!((read(&chosen), from_line), (vec![9, 2, 2, 0], false), "apart: the cuts' count stands");
        let (chosen, from_line) = combine(&both, digits(&[9, 2, 0]), boxes(10), &config);
        assert_eq!((read(&chosen), from_line), (vec![9, 2, 0], true), "touching: the floor lets the line model win");
    }

    #[test]
    fn combining_weighs_each_differing_digit_by_both_models() {
        // The line model slightly prefers 7 in the middle; the piece model is sure of 1.
        let mut s = scores(&[3, BLANK, 7, BLANK, 5], 6.0);
        let (one, middle, steps) = (1, 2, 5);
        s.scores[one * steps + middle] = 5.5;
        let mut pieces = vec![vec![0.1; 10]; 3];
        pieces[1] = sure_of(&[1])[0].clone();
        let cuts = digits(&[3, 1, 5]);
        let both = Scores { line: &|t| s.log_prob(t), pieces: &pieces_reading(&pieces) };
        let (chosen, from_line) = combine(&both, digits(&[3, 7, 5]), cuts.clone(), &ReadConfig::default());
        assert_eq!((read(&chosen), from_line), (vec![3, 1, 5], false));
        assert_eq!(chosen[1].bounds, cuts[1].bounds, "the cut search's boxes are kept");
        // Where the piece model is unsure, the line model's clear preference wins.
        s.scores[one * steps + middle] = 0.0;
        let unsure = vec![vec![0.1; 10]; 3];
        let both = Scores { line: &|t| s.log_prob(t), pieces: &pieces_reading(&unsure) };
        let (chosen, _) = combine(&both, digits(&[3, 7, 5]), cuts, &ReadConfig::default());
        assert_eq!(read(&chosen), [3, 7, 5]);
    }
}
