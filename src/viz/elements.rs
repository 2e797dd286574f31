//! Scene elements in a recording: one frame's decomposition (points by element, agents and
//! objects as boxes, ground tiles) under `world/ego/tokens/elements/`.

use rerun::RecordingStream;

use super::{VizError, paths};
use crate::geom::range_image::INTENSITY;
use crate::geom::range_image_to_points;
use crate::models::scene_tokens::{ElementKind, SceneElements, TokenConfig, TokenInput, extract};
use crate::scene::Frame;

/// The frame's scene elements from its first returns and boxes (no encoder features: this
/// shows the decomposition); returns how many.
pub fn log_frame_elements(rec: &RecordingStream, frame: &Frame) -> Result<usize, VizError> {
    let (mut xyz, mut intensity) = (Vec::new(), Vec::new());
    for l in &frame.lasers {
        let (Some(image), Some(calib)) = (&l.return1, &l.calibration) else { continue };
        let cloud = range_image_to_points(image, calib, l.pose.as_ref(), frame.vehicle_pose.as_ref())?;
        xyz.extend_from_slice(&cloud.xyz);
        intensity.extend((0..cloud.len()).map(|i| cloud.feature(i).get(INTENSITY).copied().unwrap_or(f32::NAN)));
    }
    let input = TokenInput { xyz: &xyz, intensity: &intensity, image: None, lidar: None, boxes: &frame.lidar_boxes };
    let elements = extract(&input, &TokenConfig::default());
    log_scene_elements(rec, &xyz, &elements)?;
    Ok(elements.elements.len())
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
