//! Geometry: range image ⇄ points (docs/geometry.md), global-shutter camera
//! projection, boxes.
//!
//! Conventions: all math is f64; bulk point storage is f32 (see [`PointCloud`]). Frames
//! follow Waymo: vehicle x forward, y left, z up; LiDAR and camera extrinsics map sensor →
//! vehicle; the camera frame is x forward (optical axis), y left, z up.

pub mod boxes;
pub mod camera;
mod chunk_chain;
pub mod error;
pub mod polyline;
pub mod pose;
pub mod range_image;

pub use boxes::{
    OrientedRect, bev_iou, convex_polygon_intersection, intersection_area, iou_3d, polygon_area, transform_box,
};
pub use camera::{CameraModel, Projection, project_box_to_image};
pub use error::GeomError;
pub use pose::{normalize_angle, rigid_transform, rotation_from_rpy, rotation_of, transform_from_rpy_xyz};
pub use range_image::{
    LaserPoints, PointCloud, azimuths, gather_pixels, inclinations, laser_frame_to_points, points_to_range_image,
    range_image_to_cartesian, range_image_to_points, range_image_to_points_into,
};
