//! Entity paths of scenetok recordings, in one place so the blueprint, the tests and other
//! modules agree. The tree follows the transform tree: `world` (Waymo world frame, z up) →
//! `world/ego` (the vehicle; `vehicle_pose`) → `world/ego/lidar/<LASER>` and
//! `world/ego/cameras/<CAMERA>` (extrinsics).

use crate::scene::{CameraName, LaserName};

pub const WORLD: &str = "world";
/// The vehicle frame: `Transform3D` world_from_vehicle per frame.
pub const EGO: &str = "world/ego";
/// 3-D labels (`lidar_box`), vehicle frame.
pub const BOXES: &str = "world/ego/boxes";
/// Detections of a model (hook): `world/ego/detections/<model>`.
pub const DETECTIONS: &str = "world/ego/detections";
/// Past positions of every labelled object, world frame.
pub const TRACKS: &str = "world/tracks";
/// Map features, world frame: `world/map/<kind>`.
pub const MAP: &str = "world/map";
/// Range images as depth images (a 2-D space of their own).
pub const RANGE_IMAGES: &str = "range_images";
/// Per-frame and per-scenario numbers: `metrics/...` scalars.
pub const METRICS: &str = "metrics";
/// Motion scenarios: agents, histories, ground-truth futures and predictions, world frame.
pub const MOTION: &str = "world/motion";
/// Scene tokens (hook): `world/ego/tokens/<name>`.
pub const TOKENS: &str = "world/ego/tokens";

/// `world/ego/lidar/<LASER>`: the laser's extrinsic.
pub fn laser(l: LaserName) -> String {
    format!("{EGO}/lidar/{}", l.name())
}

/// `world/ego/points/<LASER>` (or `<LASER>_return2`): the points of one return. They live
/// under the vehicle, not under the laser, because the range-image conversion already puts
/// them in the vehicle frame (it applies the extrinsic and the per-pixel pose).
pub fn points(l: LaserName, second_return: bool) -> String {
    format!("{EGO}/points/{}{}", l.name(), if second_return { "_return2" } else { "" })
}

/// `world/ego/cameras/<CAMERA>`: extrinsic (`Transform3D`) and intrinsics (`Pinhole`).
pub fn camera(c: CameraName) -> String {
    format!("{EGO}/cameras/{}", c.name())
}

/// `range_images/<LASER>`.
pub fn range_image(l: LaserName) -> String {
    format!("{RANGE_IMAGES}/{}", l.name())
}
