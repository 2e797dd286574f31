//! Hooks for model outputs that land with later issues: call these from the pipeline at the
//! frame's time (after [`super::FrameLogger::log_frame`], or after setting the `timestamp`
//! timeline yourself) and the outputs appear beside the inputs, in the same frames.

use rerun::RecordingStream;

use super::{VizError, frame, paths};
use crate::models::scene_tokens::{ElementKind, SceneElements};
use crate::scene::LidarBox;

/// 3-D detections of `model` in the vehicle frame, labelled with class and score:
/// `world/ego/detections/<model>`.
pub fn log_detections(rec: &RecordingStream, model: &str, boxes: &[LidarBox], scores: &[f32]) -> Result<(), VizError> {
    if scores.len() != boxes.len() {
        return Err(VizError::Invalid(format!(
            "detections of {model}: {} boxes but {} scores; expected one score per box",
            boxes.len(),
            scores.len()
        )));
    }
    rec.log(format!("{}/{model}", paths::DETECTIONS), &frame::boxes_3d(boxes, Some(scores)))?;
    Ok(())
}

/// Scene tokens as points in the vehicle frame (one per token, e.g. its BEV cell or the
/// object it encodes), coloured by a scalar per token (e.g. attention or norm, mapped
/// through turbo over its min..max), with an optional label: `world/ego/tokens/<name>`.
pub fn log_scene_tokens(
    rec: &RecordingStream,
    name: &str,
    positions: &[[f32; 3]],
    values: &[f32],
    labels: Option<&[String]>,
) -> Result<(), VizError> {
    if values.len() != positions.len() || labels.is_some_and(|l| l.len() != positions.len()) {
        return Err(VizError::Invalid(format!(
            "scene tokens {name}: {} positions, {} values, {} labels; expected one each per token",
            positions.len(),
            values.len(),
            labels.map_or(positions.len(), |l| l.len())
        )));
    }
    let lut = super::classes::turbo_lut();
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let colors = values.iter().map(|v| {
        let [r, g, b] = lut[(((v - lo) / span).clamp(0.0, 1.0) * 255.0) as usize];
        rerun::Color::from_rgb(r, g, b)
    });
    let mut points = rerun::Points3D::new(positions.iter().copied())
        .with_colors(colors)
        .with_radii([rerun::Radius::new_scene_units(0.4)]);
    if let Some(l) = labels {
        points = points.with_labels(l.iter().cloned()).with_show_labels(false);
    }
    rec.log(format!("{}/{name}", paths::TOKENS), &points)?;
    Ok(())
}

/// A named scalar of a model at the current time: `metrics/<group>/<name>` (losses,
/// latencies, per-frame detection counts…), shown in the metrics time series.
pub fn log_scalar(rec: &RecordingStream, group: &str, name: &str, value: f64) -> Result<(), VizError> {
    rec.log(format!("{}/{group}/{name}", paths::METRICS), &rerun::Scalars::single(value))?;
    Ok(())
}

/// One frame's scene elements in the vehicle frame, under `world/ego/tokens/elements/`:
/// `points` (every point of an element, coloured by its element: agents by box type,
/// objects by a colour of their own, ground tiles in greys), `boxes` (agents and objects
/// with their extent and heading, labelled `kind #id (points)`) and `ground` (tile
/// centres). `xyz` are the points [`SceneElements::assignment`] indexes.
pub fn log_scene_elements(rec: &RecordingStream, xyz: &[[f32; 3]], el: &SceneElements) -> Result<(), VizError> {
    if el.assignment.len() != xyz.len() {
        return Err(VizError::Invalid(format!(
            "scene elements: {} point assignments for {} points; expected one per point",
            el.assignment.len(),
            xyz.len()
        )));
    }
    let lut = super::classes::turbo_lut();
    let color = |e: usize| -> rerun::Color {
        let element = &el.elements[e];
        match (element.kind, element.box_type) {
            (ElementKind::Agent, Some(t)) => {
                let [r, g, b] = super::classes::box_type_color(t);
                rerun::Color::from_rgb(r, g, b)
            }
            (ElementKind::Ground, _) => {
                let g = 90 + (e as u32).wrapping_mul(37) % 80;
                rerun::Color::from_rgb(g as u8, g as u8, g as u8)
            }
            _ => {
                // A spread of hues by element index (golden-ratio steps).
                let [r, g, b] = lut[((e as f32 * 0.618_034).fract() * 255.0) as usize];
                rerun::Color::from_rgb(r, g, b)
            }
        }
    };
    let (positions, colors): (Vec<[f32; 3]>, Vec<rerun::Color>) =
        xyz.iter().zip(&el.assignment).filter_map(|(q, a)| a.map(|e| (*q, color(e as usize)))).unzip();
    let base = format!("{}/elements", paths::TOKENS);
    rec.log(
        format!("{base}/points"),
        &rerun::Points3D::new(positions).with_colors(colors).with_radii([rerun::Radius::new_ui_points(1.5)]),
    )?;
    let solid: Vec<usize> = (0..el.elements.len()).filter(|&e| el.elements[e].kind != ElementKind::Ground).collect();
    let boxes = rerun::Boxes3D::from_centers_and_half_sizes(
        solid.iter().map(|&e| el.elements[e].center),
        solid.iter().map(|&e| el.elements[e].extent.map(|v| v.max(0.05) / 2.0)),
    )
    .with_quaternions(solid.iter().map(|&e| {
        let h = el.elements[e].heading / 2.0;
        rerun::Quaternion::from_xyzw([0.0, 0.0, h.sin(), h.cos()])
    }))
    .with_colors(solid.iter().map(|&e| color(e)))
    .with_labels(solid.iter().map(|&e| {
        let x = &el.elements[e];
        format!("{} #{e} ({})", x.kind.name(), x.points.len())
    }))
    .with_show_labels(false);
    rec.log(format!("{base}/boxes"), &boxes)?;
    let ground: Vec<[f32; 3]> =
        el.elements.iter().filter(|x| x.kind == ElementKind::Ground).map(|x| x.center).collect();
    rec.log(format!("{base}/ground"), &rerun::Points3D::new(ground).with_radii([rerun::Radius::new_scene_units(0.3)]))?;
    Ok(())
}
