//! Layer 4: pictures and tables of training and evaluation, drawn in Rust (plotters, with the
//! DejaVu Sans font embedded so PNGs need no system fonts).

use crate::data::Dataset;
use crate::data::augment::{AugmentConfig, augment_batch};
use crate::error::{Error, Result};
use crate::eval::EvalReport;
use crate::train::EpochStats;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Once;

/// One training run: its label, every step's loss and the per-epoch figures.
#[derive(Clone, Debug, Default)]
pub struct RunHistory {
    pub name: String,
    pub step_losses: Vec<f32>,
    pub epochs: Vec<EpochStats>,
}

/// Chart size in pixels.
pub const CHART_SIZE: (u32, u32) = (1200, 500);
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: cannot draw: {e}", path.display()))
}

/// Exponential moving average, as training-loss plots usually show.
fn smooth(values: &[f32], weight: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    let mut current = values.first().copied().unwrap_or(0.0);
    for &v in values {
        current = weight * current + (1.0 - weight) * v;
        out.push(current);
    }
    out
}

/// Training loss against step (smoothed, raw as a faint line; log scale) and test accuracy
/// against epoch, one colour per run, written as PNG and SVG.
pub fn loss_chart(runs: &[RunHistory], png: &Path, svg: &Path) -> Result<()> {
    register_font();
    {
        let root = BitMapBackend::new(png, CHART_SIZE).into_drawing_area();
        draw_loss_chart(&root, runs).map_err(|e| draw_error(png, e))?;
        root.present().map_err(|e| draw_error(png, e))?;
    }
    let root = SVGBackend::new(svg, CHART_SIZE).into_drawing_area();
    draw_loss_chart(&root, runs).map_err(|e| draw_error(svg, e))?;
    root.present().map_err(|e| draw_error(svg, e))?;
    Ok(())
}

type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_loss_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, runs: &[RunHistory]) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(CHART_SIZE.0 * 3 / 5);
    let steps = runs.iter().map(|r| r.step_losses.len()).max().unwrap_or(1).max(2);
    let positive = runs.iter().flat_map(|r| r.step_losses.iter()).copied().filter(|v| *v > 0.0);
    // Losses below 1e-4 are drawn at the floor: the interesting part is above it.
    let low = positive.clone().fold(f32::INFINITY, f32::min).clamp(1e-4, 0.01);
    let high = positive.fold(0.0f32, f32::max).max(1.0);
    let mut chart = ChartBuilder::on(&left)
        .caption("training loss", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0..steps, (low..high).log_scale())?;
    chart.configure_mesh().x_desc("step").y_desc("loss (log scale)").label_style(("sans-serif", 14)).draw()?;
    let points = |values: &[f32]| {
        // At most ~2,000 points a line: a chart is a few hundred pixels wide.
        let every = values.len().div_ceil(2000).max(1);
        values.iter().enumerate().step_by(every).map(|(s, &v)| (s, v.max(low))).collect::<Vec<_>>()
    };
    // Raw losses first, faint, so that every smoothed line is drawn over all of them.
    for (i, run) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart.draw_series(LineSeries::new(points(&run.step_losses), colour.mix(0.08)))?;
    }
    for (i, run) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        // Average over about a fiftieth of the run, so short and long runs both read smoothly.
        let weight = 1.0 - 1.0 / (run.step_losses.len() as f32 / 50.0).max(1.0);
        chart
            .draw_series(LineSeries::new(points(&smooth(&run.step_losses, weight)), colour.stroke_width(2)))?
            .label(run.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;

    let epochs = runs.iter().map(|r| r.epochs.len()).max().unwrap_or(1).max(1);
    let accuracies = runs.iter().flat_map(|r| r.epochs.iter().map(|e| e.test_accuracy * 100.0));
    let lowest = accuracies.fold(100.0f64, f64::min).min(99.0).floor() - 0.5;
    let mut chart = ChartBuilder::on(&right)
        .caption("test accuracy", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..epochs as f64 + 0.5, lowest.max(0.0)..100.0)?;
    let whole = |x: &f64| if (x - x.round()).abs() < 1e-6 { format!("{}", x.round()) } else { String::new() };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy (%)")
        .x_labels(2 * epochs + 2)
        .x_label_formatter(&whole)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, run) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<_> = run.epochs.iter().map(|e| (e.epoch as f64, e.test_accuracy * 100.0)).collect();
        chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    }
    Ok(())
}

/// Per-epoch figures as CSV: optimizer, epoch, train loss, test accuracy, seconds.
pub fn results_csv(runs: &[RunHistory]) -> String {
    let mut csv = String::from("optimizer,epoch,train_loss,last_batch_loss,test_accuracy,seconds\n");
    for run in runs {
        for e in &run.epochs {
            let _ = writeln!(
                csv,
                "{},{},{:.6},{:.6},{:.4},{:.2}",
                run.name, e.epoch, e.train_loss, e.last_batch_loss, e.test_accuracy, e.seconds
            );
        }
    }
    csv
}

/// A Markdown table: final loss, best and final test accuracy, and time per run.
pub fn summary_markdown(runs: &[RunHistory]) -> String {
    let mut md = String::from(
        "| optimizer | final train loss | final last-batch loss | best test accuracy | final test accuracy | time (s) |\n|---|---|---|---|---|---|\n",
    );
    for run in runs {
        let Some(last) = run.epochs.last() else { continue };
        let best = run.epochs.iter().map(|e| e.test_accuracy).fold(0.0, f64::max);
        let seconds: f64 = run.epochs.iter().map(|e| e.seconds).sum();
        let _ = writeln!(
            md,
            "| {} | {:.5} | {:.5} | {:.2}% | {:.2}% | {:.0} |",
            run.name,
            last.train_loss,
            last.last_batch_loss,
            best * 100.0,
            last.test_accuracy * 100.0,
            seconds
        );
    }
    md
}

/// A labelled heat map of the confusion matrix (rows: true digit, columns: predicted).
pub fn confusion_png(report: &EvalReport, path: &Path) -> Result<()> {
    register_font();
    let root = BitMapBackend::new(path, (720, 700)).into_drawing_area();
    draw_confusion(&root, report).map_err(|e| draw_error(path, e))?;
    root.present().map_err(|e| draw_error(path, e))
}

fn draw_confusion<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, report: &EvalReport) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let n = report.confusion.len();
    let caption = format!("confusion matrix: test accuracy {:.2}%", report.accuracy * 100.0);
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0..n, 0..n)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted digit")
        .y_desc("true digit")
        .x_labels(n)
        .y_labels(n)
        .x_label_offset(30)
        .y_label_offset(-30)
        .label_style(("sans-serif", 16))
        .x_label_formatter(&|v| if *v < n { v.to_string() } else { String::new() })
        .y_label_formatter(&|v| if *v < n { (n - 1 - v).to_string() } else { String::new() })
        .draw()?;
    // Colour by the share of the true digit's examples, on a square-root scale so that the few
    // errors stand out beside the large diagonal.
    for (t, row) in report.confusion.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        for (p, &count) in row.iter().enumerate() {
            let share = (count as f64 / total).sqrt();
            let shade = (255.0 * (1.0 - share)) as u8;
            let fill = if t == p { RGBColor(shade, shade, 255) } else { RGBColor(255, shade, shade) };
            let y = n - 1 - t;
            chart.draw_series(std::iter::once(Rectangle::new([(p, y), (p + 1, y + 1)], fill.filled())))?;
            let text_colour = if share > 0.6 { WHITE } else { BLACK };
            let style = ("sans-serif", 15).into_font().color(&text_colour);
            let label = EmptyElement::at((p, y + 1)) + Text::new(count.to_string(), (22, 20), style);
            chart.plotting_area().draw(&label)?;
        }
    }
    Ok(())
}

/// A grid of misclassified test digits, worst (most confident) first, each captioned with the
/// true digit, the prediction and its confidence. At most `limit` digits.
pub fn errors_png(report: &EvalReport, data: &Dataset, path: &Path, limit: usize) -> Result<usize> {
    register_font();
    let mut errors: Vec<(usize, u8, f32)> = report
        .predictions
        .iter()
        .enumerate()
        .filter(|(i, (predicted, _))| *predicted != data.labels[*i])
        .map(|(i, &(predicted, confidence))| (i, predicted, confidence))
        .collect();
    errors.sort_by(|a, b| b.2.total_cmp(&a.2));
    errors.truncate(limit);
    let columns = 10u32;
    let rows = (errors.len() as u32).div_ceil(columns).max(1);
    let (cell_w, cell_h, scale) = (96u32, 116u32, 3u32);
    let size = (columns * cell_w, rows * cell_h + 40);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let draw = || -> DrawResult<BitMapBackend> {
        root.fill(&WHITE)?;
        let title = format!("{} misclassified test digits, most confident first (true -> predicted)", errors.len());
        root.draw(&Text::new(title, (10, 10), ("sans-serif", 18)))?;
        for (k, &(i, predicted, confidence)) in errors.iter().enumerate() {
            let (cx, cy) = ((k as u32 % columns) * cell_w, (k as u32 / columns) * cell_h + 40);
            let (x0, y0) = (cx as i32 + 6, cy as i32 + 4);
            for (p, &v) in data.image(i).iter().enumerate() {
                let (x, y) = ((p % data.cols) as i32, (p / data.cols) as i32);
                let shade = 255 - v;
                let s = scale as i32;
                let pixel = Rectangle::new(
                    [(x0 + x * s, y0 + y * s), (x0 + x * s + s, y0 + y * s + s)],
                    RGBColor(shade, shade, shade).filled(),
                );
                root.draw(&pixel)?;
            }
            let caption = format!("{} -> {} {:.0}%", data.labels[i], predicted, confidence * 100.0);
            root.draw(&Text::new(caption, (x0, y0 + 28 * scale as i32 + 2), ("sans-serif", 14)))?;
        }
        Ok(())
    };
    draw().map_err(|e| draw_error(path, e))?;
    root.present().map_err(|e| draw_error(path, e))?;
    Ok(errors.len())
}

/// augment.png: what `--augment` shows the network. Each column is one training image (the
/// first of each digit); the top row is the image as it is, the rows below it are what epochs 1
/// to 8 make of it. Dark ink on white, 3x enlarged.
pub fn augment_png(data: &Dataset, config: &AugmentConfig, seed: u64, path: &Path) -> Result<()> {
    const EPOCHS: usize = 8;
    const SCALE: usize = 3;
    let mut columns: Vec<usize> = (0..10u8).filter_map(|d| data.labels.iter().position(|&l| l == d)).collect();
    if columns.is_empty() {
        columns = (0..data.len().min(10)).collect();
    }
    let (cell_w, cell_h) = (data.cols * SCALE + 4, data.rows * SCALE + 4);
    let (width, height) = (columns.len().max(1) * cell_w, (EPOCHS + 1) * cell_h);
    let mut canvas = image::GrayImage::from_pixel(width as u32, height as u32, image::Luma([255]));
    let mut paint = |column: usize, row: usize, pixels: &[f32]| {
        for (p, &v) in pixels.iter().enumerate() {
            let shade = 255 - (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            let (x, y) = (column * cell_w + 2 + (p % data.cols) * SCALE, row * cell_h + 2 + (p / data.cols) * SCALE);
            for dy in 0..SCALE {
                for dx in 0..SCALE {
                    canvas.put_pixel((x + dx) as u32, (y + dy) as u32, image::Luma([shade]));
                }
            }
        }
    };
    let mut augmented = Vec::new();
    for (column, &index) in columns.iter().enumerate() {
        let original: Vec<f32> = data.image(index).iter().map(|&v| crate::data::pixel_value(v)).collect();
        paint(column, 0, &original);
        for epoch in 1..=EPOCHS {
            augment_batch(data, &[index], config, seed, epoch, &mut augmented);
            paint(column, epoch, &augmented);
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    canvas.write_to(&mut bytes, image::ImageFormat::Png).map_err(|e| draw_error(path, e))?;
    crate::model::write_atomic(path, &bytes.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, offset: f32) -> RunHistory {
        RunHistory {
            name: name.into(),
            step_losses: (0..200).map(|s| 2.3 / (1.0 + s as f32 * 0.1) + offset).collect(),
            epochs: (1..=3)
                .map(|e| EpochStats {
                    epoch: e,
                    train_loss: 0.5 / e as f64,
                    last_batch_loss: 0.4 / e as f64,
                    test_accuracy: 0.95 + 0.01 * e as f64,
                    seconds: 10.0,
                    images_per_sec: 100.0,
                })
                .collect(),
        }
    }

    #[test]
    fn charts_and_tables_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let runs = [run("adam", 0.0), run("nesterov", 0.05)];
        let (png, svg) = (dir.path().join("loss.png"), dir.path().join("loss.svg"));
        loss_chart(&runs, &png, &svg).unwrap();
        let decoded = image::open(&png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), CHART_SIZE);
        // Not blank: the lines and labels put many colours on the page.
        let rgb = decoded.to_rgb8();
        let mut colours: Vec<_> = rgb.pixels().map(|p| p.0).collect();
        colours.sort();
        colours.dedup();
        assert!(colours.len() > 20, "{} colours", colours.len());
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.contains("nesterov") && text.contains("test accuracy"));
        let csv = results_csv(&runs);
        assert_eq!(csv.lines().count(), 1 + 6);
        assert!(csv.lines().nth(4).unwrap().starts_with("nesterov,1,"));
        let md = summary_markdown(&runs);
        assert!(md.contains("| adam | 0.16667 |") && md.contains("98.00%"), "{md}");
    }
}
