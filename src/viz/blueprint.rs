//! The viewer layouts scenetok sends with its recordings, built with the rerun SDK's
//! blueprint API (`rerun::blueprint`, present in the Rust SDK since 0.36): no Python needed.
//! `scenetok viz --write-blueprints viz/` writes them as `.rbl` files too (committed under
//! `viz/`), for recordings made without one or to reset a layout: `rerun rec.rrd viz/perception.rbl`.

use rerun::blueprint::components::PanelState;
use rerun::blueprint::{
    Blueprint, Horizontal, Spatial2DView, Spatial3DView, Tabs, TextDocumentView, TimePanel, TimeSeriesView, Vertical,
};
use rerun::blueprint::{BlueprintPanel, SelectionPanel};

use super::paths;
use crate::scene::{CameraName, LaserName};

/// Cameras left to right as they sit on the car, for the row of camera views.
pub const CAMERA_ROW: [CameraName; 5] =
    [CameraName::SideLeft, CameraName::FrontLeft, CameraName::Front, CameraName::FrontRight, CameraName::SideRight];

/// Perception layout: the five cameras in a row on top (each with the 3-D boxes and the TOP
/// points projected through its pinhole), the 3-D view below (following the vehicle) with the metrics time series and the range images
/// beside it. Timeline: the frame timestamp.
pub fn perception() -> Blueprint {
    let cameras = CAMERA_ROW.map(|c| {
        let origin = paths::camera(c);
        Spatial2DView::new(c.name())
            .with_origin(origin.as_str())
            // The 3-D labels and the TOP points, projected through the camera's pinhole.
            .with_contents([
                "$origin/**".to_string(),
                format!("{}/**", paths::BOXES),
                paths::points(LaserName::Top, false),
            ])
            .into()
    });
    let ranges = LaserName::ALL
        .iter()
        .map(|l| Spatial2DView::new(format!("range {}", l.name())).with_origin(paths::range_image(*l).as_str()).into());
    // Origin at the vehicle: the view follows the car, as driving viewers do.
    let view_3d = Spatial3DView::new("3D").with_origin(paths::EGO).with_contents([
        "/world/**",
        // The camera images are shown in their own views; in 3-D they would hide the scene.
        "- /world/ego/cameras/**/image",
        "- /world/ego/cameras/**/segmentation",
    ]);
    let side =
        Vertical::new([TimeSeriesView::new("metrics").with_origin(paths::METRICS).into(), Tabs::new(ranges).into()]);
    let root = Vertical::new([
        Horizontal::new(cameras).into(),
        Horizontal::new([view_3d.into(), side.into()]).with_column_shares([3.0, 1.0]).into(),
    ])
    .with_row_shares([1.0, 2.5]);
    Blueprint::new(root)
        .with_time_panel(TimePanel::new().with_timeline(super::frame::TIMELINE))
        // The side panels start collapsed: the views need the room.
        .with_blueprint_panel(BlueprintPanel::new().with_state(PanelState::Collapsed))
        .with_selection_panel(SelectionPanel::new().with_state(PanelState::Collapsed))
}

/// Motion layout: the scenario in 3-D, the per-scenario metrics and each model's challenge
/// table. Timeline: scenario time.
pub fn motion() -> Blueprint {
    let view_3d = Spatial3DView::new("scenario").with_origin(paths::WORLD);
    let side = Vertical::new([
        TimeSeriesView::new("metrics").with_origin(paths::METRICS).into(),
        TextDocumentView::new("summary").with_origin(format!("{}/summary", paths::METRICS).as_str()).into(),
    ]);
    Blueprint::new(Horizontal::new([view_3d.into(), side.into()]).with_column_shares([3.0, 1.0]))
        .with_time_panel(TimePanel::new().with_timeline(super::motion::TIMELINE))
        .with_blueprint_panel(BlueprintPanel::new().with_state(PanelState::Collapsed))
        .with_selection_panel(SelectionPanel::new().with_state(PanelState::Collapsed))
}
