//! One timestamp of one segment, as the pipeline sees it.

use serde::{Deserialize, Serialize};

use super::enums::{BoxType, CameraName, LaserName};
use super::sensor::{CameraBox, CameraCalibration, LidarBox, LidarCalibration, PanopticLabel, RangeImage, Transform};

/// One LiDAR's data in a frame: range images and everything stored in range-image form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaserFrame {
    pub laser: LaserName,
    pub calibration: Option<LidarCalibration>,
    /// `[H, W, 4]`: range, intensity, elongation, no-label-zone.
    pub return1: Option<RangeImage<f32>>,
    pub return2: Option<RangeImage<f32>>,
    /// `[H, W, 6]` per-pixel vehicle pose (roll, pitch, yaw, x, y, z); TOP only.
    pub pose: Option<RangeImage<f32>>,
    /// `[H, W, 6]` camera projections per return.
    pub camera_projection1: Option<RangeImage<f32>>,
    pub camera_projection2: Option<RangeImage<f32>>,
    /// `[H, W, 2]` instance id and semantic class per return.
    pub segmentation1: Option<RangeImage<i32>>,
    pub segmentation2: Option<RangeImage<i32>>,
}

impl LaserFrame {
    pub fn new(laser: LaserName) -> Self {
        LaserFrame {
            laser,
            calibration: None,
            return1: None,
            return2: None,
            pose: None,
            camera_projection1: None,
            camera_projection2: None,
            segmentation1: None,
            segmentation2: None,
        }
    }
}

/// Ego velocity and shutter timing of a camera image (kept for completeness; the global
/// shutter model ignores the timing).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageMotion {
    pub linear_velocity: [f64; 3],
    pub angular_velocity: [f64; 3],
    pub pose_timestamp: f64,
    pub shutter: f64,
    pub camera_trigger_time: f64,
    pub camera_readout_done_time: f64,
}

/// One camera's data in a frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraFrame {
    pub camera: CameraName,
    pub calibration: Option<CameraCalibration>,
    /// The encoded JPEG as stored; decode with `io::image`.
    pub jpeg: Vec<u8>,
    /// Vehicle → world at the image's pose timestamp.
    pub pose: Option<Transform>,
    pub motion: ImageMotion,
    pub segmentation: Option<PanopticLabel>,
}

/// Per-frame statistics (`stats` component).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FrameStats {
    pub time_of_day: String,
    pub location: String,
    pub weather: String,
    pub lidar_object_counts: Vec<(BoxType, i32)>,
    pub camera_object_counts: Vec<(BoxType, i32)>,
}

/// A camera-object ↔ laser-object link (`camera_to_lidar_box_association`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxAssociation {
    pub camera: CameraName,
    pub camera_object_id: String,
    pub laser_object_id: String,
}

/// One timestamp of one segment, joined from every component on its keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Frame {
    pub segment: String,
    pub timestamp_micros: i64,
    /// Vehicle → world.
    pub vehicle_pose: Option<Transform>,
    pub lasers: Vec<LaserFrame>,
    pub cameras: Vec<CameraFrame>,
    pub lidar_boxes: Vec<LidarBox>,
    pub camera_boxes: Vec<CameraBox>,
    pub projected_lidar_boxes: Vec<CameraBox>,
    pub associations: Vec<BoxAssociation>,
    pub stats: Option<FrameStats>,
}

impl Frame {
    pub fn laser(&self, name: LaserName) -> Option<&LaserFrame> {
        self.lasers.iter().find(|l| l.laser == name)
    }
    pub fn camera(&self, name: CameraName) -> Option<&CameraFrame> {
        self.cameras.iter().find(|c| c.camera == name)
    }
}
