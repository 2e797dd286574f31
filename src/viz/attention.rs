//! Where a token model looked ([`crate::eval::attention`]): one agent's predicted modes and
//! the attention of its most likely mode to each scene token, in the world frame with the
//! map, the agent's past and true future and the unlabelled obstacles; logged to rerun
//! (`scenetok viz --dataset …`) and drawn as an SVG for reports.

use plotters::prelude::*;
use rerun::RecordingStream;

use super::VizError;
pub use crate::eval::attention::{AgentAttention, AttendedToken, agent_attention};
use crate::models::motion::dataset::Footprint;
use crate::models::scene_tokens::ElementKind;
use crate::scene::MapFeatureKind;

/// Light blue-grey (little attention) to red (the most), readable on white and dark grounds.
fn heat(v: f32) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    let mix = |a: f32, b: f32| (a + (b - a) * v).round() as u8;
    [mix(170.0, 230.0), mix(185.0, 20.0), mix(215.0, 20.0)]
}

/// The weights scaled for colour: the largest is 1.
fn normalised(tokens: &[AttendedToken]) -> Vec<f32> {
    let max = tokens.iter().map(|t| t.weight).fold(0.0f32, f32::max).max(1e-12);
    tokens.iter().map(|t| t.weight / max).collect()
}

fn corners(o: &Footprint) -> Vec<[f64; 2]> {
    let (s, c) = o.heading.sin_cos();
    let (l, w) = (o.length / 2.0, o.width / 2.0);
    [(l, w), (-l, w), (-l, -w), (l, -w), (l, w)]
        .iter()
        .map(|&(u, v)| [o.x + c * u - s * v, o.y + s * u + c * v])
        .collect()
}

/// Logs the view under `attention/` (static).
pub fn log_attention(rec: &RecordingStream, a: &AgentAttention) -> Result<(), VizError> {
    super::map::log_map(rec, "attention/map", &a.scenario.map, true)?;
    let track = &a.scenario.tracks[a.track_index];
    let cur = a.scenario.current_time_index;
    let z = track.states[cur].z as f32;
    let strip = |pts: Vec<[f64; 2]>| pts.into_iter().map(|p| [p[0] as f32, p[1] as f32, z]).collect::<Vec<_>>();
    let valid = |r: std::ops::Range<usize>| -> Vec<[f64; 2]> {
        track.states[r].iter().filter(|s| s.valid).map(|s| [s.x, s.y]).collect()
    };
    rec.log_static(
        "attention/agent/history",
        &rerun::LineStrips3D::new([strip(valid(0..cur + 1))]).with_colors([rerun::Color::from_rgb(40, 90, 220)]),
    )?;
    rec.log_static(
        "attention/agent/future",
        &rerun::LineStrips3D::new([strip(valid(cur..track.states.len()))])
            .with_colors([rerun::Color::from_rgb(40, 170, 60)]),
    )?;
    for (j, (conf, path)) in a.modes.iter().enumerate() {
        rec.log_static(
            format!("attention/agent/mode_{j}"),
            &rerun::LineStrips3D::new([strip(path.clone())])
                .with_colors([if j == 0 {
                    rerun::Color::from_rgb(220, 30, 30)
                } else {
                    rerun::Color::from_rgb(240, 150, 150)
                }])
                .with_labels([format!("mode {j}: {conf:.2}")]),
        )?;
    }
    let w = normalised(&a.tokens);
    rec.log_static(
        "attention/tokens",
        &rerun::Points3D::new(a.tokens.iter().map(|t| [t.xyz[0] as f32, t.xyz[1] as f32, t.xyz[2] as f32]))
            .with_colors(w.iter().map(|&v| {
                let [r, g, b] = heat(v);
                rerun::Color::from_rgb(r, g, b)
            }))
            .with_radii(w.iter().map(|&v| 0.3 + 1.2 * v.sqrt()))
            .with_labels(a.tokens.iter().map(|t| format!("{} {:.1} s: {:.4}", t.kind.name(), t.age, t.weight))),
    )?;
    if !a.obstacles.is_empty() {
        rec.log_static(
            "attention/obstacles",
            &rerun::LineStrips3D::new(a.obstacles.iter().map(|o| strip(corners(o))))
                .with_colors([rerun::Color::from_rgb(0, 0, 0)]),
        )?;
    }
    Ok(())
}

/// The view as an SVG: a bird's-eye square of `half` metres around the agent.
pub fn attention_svg(a: &AgentAttention, half: f64) -> Result<String, VizError> {
    let fail = |e: &dyn std::fmt::Display| VizError::Invalid(format!("drawing the attention view: {e}"));
    let track = &a.scenario.tracks[a.track_index];
    let cur = a.scenario.current_time_index;
    let now = &track.states[cur];
    let (x0, y0) = (now.x, now.y);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let title = format!(
            "track {} of window {}: {} scene tokens, {:.0}% of the top mode's attention",
            track.id,
            a.scenario.id.rsplit_once('@').map_or(a.scenario.id.as_str(), |(_, s)| s),
            a.tokens.len(),
            100.0 * a.scene_share
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(x0 - half..x0 + half, y0 - half..y0 + half)
            .map_err(|e| fail(&e))?;
        chart.configure_mesh().disable_mesh().x_desc("x (m)").y_desc("y (m)").draw().map_err(|e| fail(&e))?;
        let inside = |p: &[f64; 2]| (p[0] - x0).abs() <= half && (p[1] - y0).abs() <= half;
        for f in &a.scenario.map {
            let kind = f.feature_type.kind();
            let style = match kind {
                MapFeatureKind::Lane => RGBColor(210, 210, 210).stroke_width(1),
                MapFeatureKind::RoadEdge => RGBColor(90, 90, 90).stroke_width(2),
                MapFeatureKind::RoadLine => RGBColor(170, 170, 170).stroke_width(1),
                _ => continue,
            };
            let pts: Vec<(f64, f64)> =
                f.polyline.iter().map(|p| [p.x, p.y]).filter(inside).map(|p| (p[0], p[1])).collect();
            if pts.len() >= 2 {
                chart.draw_series(std::iter::once(PathElement::new(pts, style))).map_err(|e| fail(&e))?;
            }
        }
        for o in &a.obstacles {
            let pts: Vec<(f64, f64)> = corners(o).into_iter().map(|p| (p[0], p[1])).collect();
            if pts.iter().any(|p| inside(&[p.0, p.1])) {
                chart
                    .draw_series(std::iter::once(Polygon::new(pts, RGBColor(30, 30, 30).filled())))
                    .map_err(|e| fail(&e))?;
            }
        }
        let w = normalised(&a.tokens);
        let mut order: Vec<usize> = (0..a.tokens.len()).collect();
        order.sort_by(|&p, &q| w[p].total_cmp(&w[q]));
        for &i in &order {
            let t = &a.tokens[i];
            if !inside(&[t.xyz[0], t.xyz[1]]) {
                continue;
            }
            let [r, g, b] = heat(w[i]);
            let size = (3.0 + 9.0 * w[i].sqrt()) as i32;
            let style = RGBColor(r, g, b).filled();
            let at = (t.xyz[0], t.xyz[1]);
            match t.kind {
                ElementKind::Ground => chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(at.0 - 1.5, at.1 - 1.5), (at.0 + 1.5, at.1 + 1.5)],
                        style,
                    )))
                    .map_err(|e| fail(&e))?,
                ElementKind::Object => chart
                    .draw_series(std::iter::once(Cross::new(at, size, RGBColor(r, g, b).stroke_width(2))))
                    .map_err(|e| fail(&e))?,
                ElementKind::Agent => {
                    chart.draw_series(std::iter::once(Circle::new(at, size, style))).map_err(|e| fail(&e))?
                }
            };
        }
        let path = |r: std::ops::Range<usize>| -> Vec<(f64, f64)> {
            track.states[r].iter().filter(|s| s.valid).map(|s| (s.x, s.y)).filter(|p| inside(&[p.0, p.1])).collect()
        };
        chart
            .draw_series(std::iter::once(PathElement::new(path(0..cur + 1), RGBColor(40, 90, 220).stroke_width(3))))
            .map_err(|e| fail(&e))?
            .label("history")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(40, 90, 220).stroke_width(3)));
        chart
            .draw_series(std::iter::once(PathElement::new(
                path(cur..track.states.len()),
                RGBColor(40, 170, 60).stroke_width(3),
            )))
            .map_err(|e| fail(&e))?
            .label("true future")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(40, 170, 60).stroke_width(3)));
        for (j, (conf, pts)) in a.modes.iter().enumerate().rev() {
            let pts: Vec<(f64, f64)> = pts.iter().filter(|p| inside(p)).map(|p| (p[0], p[1])).collect();
            let colour = if j == 0 { RGBColor(220, 30, 30) } else { RGBColor(240, 160, 160) };
            let s = chart
                .draw_series(std::iter::once(PathElement::new(pts, colour.stroke_width(if j == 0 { 3 } else { 1 }))))
                .map_err(|e| fail(&e))?;
            if j == 0 {
                s.label(format!("most likely mode ({conf:.2})"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(3)));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}
