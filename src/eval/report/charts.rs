//! The report's charts and bird's-eye scenes, drawn with `plotters` into SVG strings that the
//! HTML embeds inline (the report stays one self-contained file).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::SceneView;

/// A drawing failure (plotters' backend error, stringified).
#[derive(Debug, thiserror::Error)]
#[error("drawing {what}: {message}")]
pub struct ChartError {
    pub what: String,
    pub message: String,
}

type Drawing<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Series colours, distinguishable and readable on white.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The i-th series colour.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn draw<F>(what: &str, size: (u32, u32), f: F) -> Result<String, ChartError>
where
    F: FnOnce(&Drawing<'_>) -> Result<(), Box<dyn std::error::Error>>,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| ChartError { what: what.to_string(), message: e.to_string() };
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        f(&root).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 { (lo - 0.5, hi + 0.5) } else { (lo, hi + 0.05 * (hi - lo)) }
}

/// Lines, one per named series of (x, y) points; NaN points are skipped. The y axis starts at
/// zero, or below it where a value is negative (a Gaussian NLL can be).
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<String, ChartError> {
    let pts = || series.iter().flat_map(|s| s.1.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let (x0, x1) =
        padded(pts().map(|p| p.0).fold(f64::INFINITY, f64::min), pts().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max));
    let y_min = pts().map(|p| p.1).fold(0.0, f64::min);
    let (_, y1) = padded(y_min, pts().map(|p| p.1).fold(0.0, f64::max));
    let y0 = if y_min < 0.0 { y_min - 0.05 * (y1 - y_min) } else { 0.0 };
    draw(title, (520, 320), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).light_line_style(WHITE.mix(0.0)).draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            let c = colour(i);
            let pts: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()?;
        }
        Ok(())
    })
}

/// Horizontal bars, one per (label, value), labelled at their ends.
pub fn bar_chart(title: &str, x_desc: &str, bars: &[(String, f64)]) -> Result<String, ChartError> {
    let n = bars.len().max(1);
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let height = 70 + 26 * n as u32;
    draw(title, (520, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(10)
            // Room right of the longest bar for its label.
            .build_cartesian_2d(0.0..top * 1.9, 0.0..n as f64)?;
        chart.configure_mesh().disable_y_mesh().y_labels(0).x_desc(x_desc).draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let y = (n - 1 - i) as f64;
            Rectangle::new([(0.0, y + 0.15), (b.1, y + 0.85)], colour(0).mix(0.8).filled())
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let y = (n - 1 - i) as f64;
            Text::new(format!("{} ({})", b.0, b.1), (b.1 + top * 0.02, y + 0.7), ("sans-serif", 12).into_font())
        }))?;
        Ok(())
    })
}

/// A histogram of samples over `bins` equal bins.
pub fn histogram(title: &str, x_desc: &str, samples: &[f64], bins: usize) -> Result<String, ChartError> {
    let finite: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if finite.is_empty() {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in &finite {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    draw(title, (520, 280), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(lo..hi, 0.0..top)?;
        chart.configure_mesh().x_desc(x_desc).y_desc("count").disable_x_mesh().draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x = lo + i as f64 * width;
            Rectangle::new([(x, 0.0), (x + width, c as f64)], colour(4).mix(0.75).filled())
        }))?;
        Ok(())
    })
}

/// The map colour and width of a map feature kind.
fn map_style(kind: &str) -> ShapeStyle {
    match kind {
        "lane" => RGBColor(170, 170, 170).stroke_width(1),
        "road_edge" => RGBColor(40, 40, 40).stroke_width(2),
        "road_line" => RGBColor(200, 170, 40).stroke_width(1),
        "crosswalk" => RGBColor(120, 120, 200).stroke_width(1),
        "stop_sign" => RGBColor(220, 0, 0).stroke_width(3),
        _ => RGBColor(150, 120, 90).stroke_width(1),
    }
}

/// A bird's-eye view of one scene: map, other agents, each predicted agent's history (blue),
/// ground-truth future (green) and modes (orange, opacity by probability).
pub fn bev_scene(scene: &SceneView) -> Result<String, ChartError> {
    let focus: Vec<[f64; 2]> = scene
        .agents
        .iter()
        .flat_map(|a| a.history.iter().chain(&a.ground_truth).chain(a.modes.iter().flat_map(|m| m.1.iter())))
        .copied()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for p in &focus {
        (x0, x1, y0, y1) = (x0.min(p[0]), x1.max(p[0]), y0.min(p[1]), y1.max(p[1]));
    }
    if focus.is_empty() {
        (x0, x1, y0, y1) = (-50.0, 50.0, -50.0, 50.0);
    }
    // A square view (metres are metres both ways) with a margin.
    let half = ((x1 - x0).max(y1 - y0) / 2.0 + 15.0).max(20.0);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let title = format!("scenario {}", scene.scenario_id);
    draw(&title, (460, 460), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&title, ("sans-serif", 13))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(cx - half..cx + half, cy - half..cy + half)?;
        chart.configure_mesh().disable_mesh().x_desc("x (m)").y_desc("y (m)").draw()?;
        for line in &scene.map {
            let mut pts: Vec<(f64, f64)> = line.points.iter().map(|p| (p[0], p[1])).collect();
            if line.closed && pts.len() > 2 {
                pts.push(pts[0]);
            }
            if pts.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(pts[0], 3, map_style(&line.kind).filled())))?;
            } else {
                chart.draw_series(std::iter::once(PathElement::new(pts, map_style(&line.kind))))?;
            }
        }
        for o in &scene.others {
            let (s, c) = o[2].sin_cos();
            let corners: Vec<(f64, f64)> = [(1.0, 1.0), (1.0, -1.0), (-1.0, -1.0), (-1.0, 1.0)]
                .iter()
                .map(|(a, b)| {
                    let (dx, dy) = (a * o[3] / 2.0, b * o[4] / 2.0);
                    (o[0] + c * dx - s * dy, o[1] + s * dx + c * dy)
                })
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(corners, RGBColor(120, 120, 120).mix(0.5).filled())))?;
        }
        let orange = RGBColor(255, 127, 14);
        for a in &scene.agents {
            let best = a.modes.iter().map(|m| m.0).fold(0.0, f64::max).max(1e-9);
            for (p, pts) in &a.modes {
                let alpha = 0.15 + 0.85 * p / best;
                let line: Vec<(f64, f64)> = pts.iter().map(|q| (q[0], q[1])).collect();
                chart.draw_series(std::iter::once(PathElement::new(line, orange.mix(alpha).stroke_width(2))))?;
            }
            let gt: Vec<(f64, f64)> = a.ground_truth.iter().map(|q| (q[0], q[1])).collect();
            chart.draw_series(std::iter::once(PathElement::new(gt, RGBColor(44, 160, 44).stroke_width(2))))?;
            let hist: Vec<(f64, f64)> = a.history.iter().map(|q| (q[0], q[1])).collect();
            if let Some(&last) = hist.last() {
                chart.draw_series(std::iter::once(Circle::new(last, 4, RGBColor(31, 119, 180).filled())))?;
            }
            chart.draw_series(std::iter::once(PathElement::new(hist, RGBColor(31, 119, 180).stroke_width(3))))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_text() {
        let svg = line_chart("minADE", "s", "m", &[("VEHICLE".into(), vec![(3.0, 1.0), (5.0, 2.0), (8.0, f64::NAN)])])
            .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("minADE") && svg.contains("VEHICLE"));
        let svg = bar_chart("types", "agents", &[("STRAIGHT".into(), 4.0), ("LEFT_TURN".into(), 1.0)]).unwrap();
        assert!(svg.contains("STRAIGHT") && svg.contains("<rect"));
        let svg = histogram("latency", "ms", &[1.0, 2.0, 2.5, 9.0], 5).unwrap();
        assert!(svg.matches("<rect").count() >= 5);
        // A negative value (a Gaussian NLL) gets an axis below zero.
        let svg = line_chart("loss", "step", "nll", &[("loss".into(), vec![(50.0, 2.0), (100.0, -1.5)])]).unwrap();
        assert!(svg.contains("-1.0"), "no negative tick");
        // Degenerate inputs still draw.
        histogram("empty", "ms", &[], 5).unwrap();
        line_chart("none", "s", "m", &[]).unwrap();
    }
}
