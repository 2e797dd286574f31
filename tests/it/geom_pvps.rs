//! Real-data check of the global-shutter camera model (docs/geometry.md,
//! "Real-data check"): Waymo's `projected_lidar_labels` against our projection of the laser
//! labels in `pvps_data_one_frame.tfrecord`.
//!
//! Waymo made these boxes with the rolling-shutter model; the car is almost stationary in
//! this frame, so the global-shutter model agrees to a fraction of a pixel (the reference
//! measured median 0.14 px, max 0.33 px). scenetok::geom was checked against the same file
//! with a throwaway protobuf dump before the reader existed: 62/62 boxes, median 0.138 px,
//! max 0.327 px; Waymo's boxes are clamped to [0, width] × [0, height], as ours are.

use scenetok::geom::{CameraModel, project_box_to_image};
use scenetok::io::v1::read_frames;

#[test]
fn pvps_projected_boxes_match() {
    let Some(samples) = crate::common::samples() else { return };
    let path = samples.join("v1/pvps_data_one_frame.tfrecord");
    let frames = read_frames(&path).expect("the pvps sample reads");
    assert_eq!(frames.len(), 1, "the pvps sample holds one frame");
    let frame = &frames[0];
    assert!(!frame.projected_lidar_boxes.is_empty(), "the pvps frame has projected laser labels");

    let mut errors = Vec::new();
    for projected in &frame.projected_lidar_boxes {
        let label = frame
            .lidar_boxes
            .iter()
            .find(|b| b.object_id == projected.object_id)
            .unwrap_or_else(|| panic!("projected label {} has no laser label", projected.object_id));
        let calib = frame
            .camera(projected.camera)
            .and_then(|c| c.calibration.as_ref())
            .unwrap_or_else(|| panic!("no calibration for camera {}", projected.camera));
        let model = CameraModel::new(calib);
        let ours = project_box_to_image(&label.bbox, &model)
            .unwrap_or_else(|| panic!("{} on {}: not projectable", projected.object_id, projected.camera));
        // Error of a box: the largest disagreement of its four edges.
        let err = ours.min_max().iter().zip(projected.bbox.min_max()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        errors.push((err, format!("{} on {}", projected.object_id, projected.camera)));
    }
    errors.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = errors[errors.len() / 2].0;
    let (worst, worst_name) = errors.last().map(|(e, n)| (*e, n.clone())).unwrap_or_default();
    eprintln!("{} projected boxes: median error {median:.3} px, max {worst:.3} px ({worst_name})", errors.len());
    assert!(median < 0.5, "median edge error {median} px");
    assert!(worst < 1.0, "box {worst_name} is off by {worst} px");
}
