//! Line charts as SVG (the `plotters` crate, SVG backend only: no system font libraries needed).

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// One line of a chart.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed-looking (thin, no markers): a bound or a formula rather than a measurement.
    pub reference: bool,
}

/// A chart that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x7f, 0x7f, 0x7f),
];

fn bounds(series: &[Series], pick: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let vals = series.iter().flat_map(|s| s.points.iter().map(&pick)).filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi { (1.0, 10.0) } else { (lo, hi) }
}

/// Writes a chart with a logarithmic x axis and a logarithmic (`log_y`) or linear y axis.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    series: &[Series],
) -> Result<(), PlotError> {
    let (x0, x1) = bounds(series, |p| p.0);
    let (y0, y1) = bounds(series, |p| p.1);
    let (xa, xb) = (x0 / 1.3, x1 * 1.3);
    let fx = |v: f64| (v.ln() - xa.ln()) / (xb.ln() - xa.ln());
    if log_y {
        let (ya, yb) = (y0 / 2.0, y1 * 2.0);
        let legend = legend_corner(series, fx, |v| (v.ln() - ya.ln()) / (yb.ln() - ya.ln()));
        draw(path, [title, x_label, y_label], (xa..xb).log_scale(), (ya..yb).log_scale(), series, legend)
    } else {
        let yb = (y1 * 1.1).max(1e-9);
        let legend = legend_corner(series, fx, |v| v / yb);
        draw(path, [title, x_label, y_label], (xa..xb).log_scale(), 0.0..yb, series, legend)
    }
}

/// The corner where the legend hides the least of the lines: each line is sampled along its segments in
/// chart coordinates (0..1 both ways, through the axes' scales `fx`, `fy`), and the corner box with the fewest
/// samples wins (upper left on a tie).
fn legend_corner(series: &[Series], fx: impl Fn(f64) -> f64, fy: impl Fn(f64) -> f64) -> SeriesLabelPosition {
    const W: f64 = 0.55;
    const H: f64 = 0.3;
    let mut samples = Vec::new();
    for s in series {
        let pts: Vec<(f64, f64)> =
            s.points.iter().filter(|p| p.0 > 0.0 && p.1.is_finite()).map(|p| (fx(p.0), fy(p.1))).collect();
        samples.extend(pts.iter().copied());
        for w in pts.windows(2) {
            for k in 1..20 {
                let t = f64::from(k) / 20.0;
                samples.push((w[0].0 + (w[1].0 - w[0].0) * t, w[0].1 + (w[1].1 - w[0].1) * t));
            }
        }
    }
    let corners = [
        (SeriesLabelPosition::UpperLeft, 0.0, 1.0 - H),
        (SeriesLabelPosition::UpperRight, 1.0 - W, 1.0 - H),
        (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
        (SeriesLabelPosition::LowerRight, 1.0 - W, 0.0),
    ];
    let hidden =
        |x0: f64, y0: f64| samples.iter().filter(|(x, y)| *x >= x0 && *x <= x0 + W && *y >= y0 && *y <= y0 + H).count();
    let mut best = (SeriesLabelPosition::UpperLeft, usize::MAX);
    for (pos, x0, y0) in corners {
        let n = hidden(x0, y0);
        if n < best.1 {
            best = (pos, n);
        }
    }
    best.0
}

/// `labels`: title, x axis, y axis.
fn draw<X, Y>(
    path: &Path,
    labels: [&str; 3],
    x: X,
    y: Y,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<(), PlotError>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let [title, x_label, y_label] = labels;
    let err = |e: &dyn std::fmt::Display| PlotError { path: path.display().to_string(), message: e.to_string() };
    let root = SVGBackend::new(path, (760, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    // Plain numbers ("1000", "2.5"), and no minor grid lines: on log axes they crowd into grey bands.
    let number = |v: &f64| if v.abs() >= 10.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&number)
        .y_label_formatter(&number)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(|e| err(&e))?;
    for (k, s) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let width = if s.reference { 1 } else { 2 };
        let points: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(width)))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        if !s.reference {
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled()))).map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
