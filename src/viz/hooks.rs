//! Hooks for model outputs that land with later issues: call these from the pipeline at the
//! frame's time (after [`super::FrameLogger::log_frame`], or after setting the `timestamp`
//! timeline yourself) and the outputs appear beside the inputs, in the same frames.

use rerun::RecordingStream;

pub use super::elements::log_scene_elements;
use super::{VizError, frame, paths};
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
