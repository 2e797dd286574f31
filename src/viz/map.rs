//! Map features as line strips, one entity per kind (`world/map/lanes`, `road_lines`,
//! `road_edges`, `crosswalks`, `speed_bumps`, `driveways`) and stop signs as points, so
//! each kind can be toggled in the viewer.

use rerun::RecordingStream;

use super::VizError;
use crate::scene::{MapFeature, MapFeatureKind, MapFeatureType};

/// The entity name of a map feature kind under `world/map`.
pub fn kind_name(kind: MapFeatureKind) -> &'static str {
    match kind {
        MapFeatureKind::Lane => "lanes",
        MapFeatureKind::RoadLine => "road_lines",
        MapFeatureKind::RoadEdge => "road_edges",
        MapFeatureKind::StopSign => "stop_signs",
        MapFeatureKind::Crosswalk => "crosswalks",
        MapFeatureKind::SpeedBump => "speed_bumps",
        MapFeatureKind::Driveway => "driveways",
    }
}

fn color(t: MapFeatureType) -> [u8; 3] {
    use MapFeatureType::*;
    match t {
        LaneUndefined | LaneFreeway | LaneSurfaceStreet => [90, 130, 180],
        LaneBikeLane => [60, 170, 90],
        RoadLineBrokenSingleYellow
        | RoadLineBrokenDoubleYellow
        | RoadLineSolidSingleYellow
        | RoadLineSolidDoubleYellow
        | RoadLinePassingDoubleYellow => [240, 200, 40],
        RoadLineUnknown | RoadLineBrokenSingleWhite | RoadLineSolidSingleWhite | RoadLineSolidDoubleWhite => {
            [230, 230, 230]
        }
        RoadEdgeUnknown | RoadEdgeBoundary | RoadEdgeMedian => [200, 90, 60],
        StopSign => [230, 30, 30],
        Crosswalk => [200, 200, 255],
        SpeedBump => [255, 150, 0],
        Driveway => [150, 110, 200],
    }
}

/// Logs the map under `root` (`world/map` for datasets). Static when `static_` (a dataset's
/// map holds for the whole segment); otherwise at the current time (one map per scenario).
pub fn log_map(rec: &RecordingStream, root: &str, features: &[MapFeature], static_: bool) -> Result<usize, VizError> {
    let kinds = [
        MapFeatureKind::Lane,
        MapFeatureKind::RoadLine,
        MapFeatureKind::RoadEdge,
        MapFeatureKind::Crosswalk,
        MapFeatureKind::SpeedBump,
        MapFeatureKind::Driveway,
    ];
    let log = |path: String, a: &dyn rerun::AsComponents| {
        if static_ { rec.log_static(path, a) } else { rec.log(path, a) }
    };
    let mut logged = 0;
    for kind in kinds {
        let of_kind: Vec<&MapFeature> =
            features.iter().filter(|f| f.feature_type.kind() == kind && f.polyline.len() >= 2).collect();
        if of_kind.is_empty() {
            continue;
        }
        let strips = of_kind.iter().map(|f| {
            let mut pts: Vec<[f32; 3]> = f.polyline.iter().map(|p| [p.x as f32, p.y as f32, p.z as f32]).collect();
            if f.feature_type.is_polygon()
                && let Some(first) = pts.first().copied()
            {
                pts.push(first);
            }
            pts
        });
        let radius = if kind == MapFeatureKind::Lane { 0.08 } else { 0.12 };
        log(
            format!("{root}/{}", kind_name(kind)),
            &rerun::LineStrips3D::new(strips)
                .with_colors(of_kind.iter().map(|f| {
                    let [r, g, b] = color(f.feature_type);
                    rerun::Color::from_rgb(r, g, b)
                }))
                .with_radii([rerun::Radius::new_scene_units(radius)])
                .with_labels(of_kind.iter().map(|f| format!("{} {}", f.feature_type.name(), f.id)))
                .with_show_labels(false),
        )?;
        logged += of_kind.len();
    }
    let stops: Vec<&MapFeature> = features
        .iter()
        .filter(|f| f.feature_type.kind() == MapFeatureKind::StopSign && !f.polyline.is_empty())
        .collect();
    if !stops.is_empty() {
        log(
            format!("{root}/{}", kind_name(MapFeatureKind::StopSign)),
            &rerun::Points3D::new(stops.iter().map(|f| {
                let p = f.polyline[0];
                [p.x as f32, p.y as f32, p.z as f32]
            }))
            .with_colors([rerun::Color::from_rgb(230, 30, 30)])
            .with_radii([rerun::Radius::new_scene_units(0.5)])
            .with_labels(stops.iter().map(|f| format!("STOP {}", f.id)))
            .with_show_labels(false),
        )?;
        logged += stops.len();
    }
    Ok(logged)
}
