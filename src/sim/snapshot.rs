//! What the sensors see at one instant: static geometry (triangles with materials) and the
//! dynamic and unlabelled objects, all in world coordinates. The agent simulation produces
//! snapshots; the LiDAR and camera models consume them.

use std::sync::Arc;

use nalgebra::Vector3;

use crate::scene::{Box3d, BoxType, CameraSegClass, LidarSegClass};

pub type P3 = Vector3<f64>;

/// Surface properties shared by the LiDAR (class, reflectivity) and the cameras (class, colour).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Material {
    pub lidar_class: LidarSegClass,
    pub camera_class: CameraSegClass,
    /// LiDAR intensity of a head-on return, 0..1.
    pub reflectivity: f32,
    /// Albedo for rendering, sRGB.
    pub color: [u8; 3],
}

/// One triangle of the static world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Triangle {
    pub v: [P3; 3],
    pub material: Material,
}

/// Everything that does not move during a segment: ground (road, lane markings, sidewalks,
/// curbs, grass), buildings, vegetation, poles, signs.
#[derive(Debug, Clone, Default)]
pub struct StaticWorld {
    pub triangles: Vec<Triangle>,
}

/// What kind of thing an object is; decides its shape, material and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Car,
    Truck,
    Bus,
    Pedestrian,
    Cyclist,
    /// Unlabelled obstacles: no box label, no map entry; only the sensors show them.
    Cone,
    Debris,
    StalledTruck,
    Barrier,
}

impl ObjectKind {
    /// The 3-D box label type; `None` for unlabelled obstacles.
    pub fn box_type(self) -> Option<BoxType> {
        match self {
            ObjectKind::Car | ObjectKind::Truck | ObjectKind::Bus => Some(BoxType::Vehicle),
            ObjectKind::Pedestrian => Some(BoxType::Pedestrian),
            ObjectKind::Cyclist => Some(BoxType::Cyclist),
            ObjectKind::Cone | ObjectKind::Debris | ObjectKind::StalledTruck | ObjectKind::Barrier => None,
        }
    }
    pub fn lidar_class(self) -> LidarSegClass {
        match self {
            ObjectKind::Car => LidarSegClass::Car,
            ObjectKind::Truck | ObjectKind::StalledTruck => LidarSegClass::Truck,
            ObjectKind::Bus => LidarSegClass::Bus,
            ObjectKind::Pedestrian => LidarSegClass::Pedestrian,
            ObjectKind::Cyclist => LidarSegClass::Bicyclist,
            ObjectKind::Cone | ObjectKind::Barrier => LidarSegClass::ConstructionCone,
            ObjectKind::Debris => LidarSegClass::OtherGround,
        }
    }
    pub fn camera_class(self) -> CameraSegClass {
        match self {
            ObjectKind::Car => CameraSegClass::Car,
            ObjectKind::Truck | ObjectKind::StalledTruck => CameraSegClass::Truck,
            ObjectKind::Bus => CameraSegClass::Bus,
            ObjectKind::Pedestrian => CameraSegClass::Pedestrian,
            ObjectKind::Cyclist => CameraSegClass::Cyclist,
            ObjectKind::Cone | ObjectKind::Barrier => CameraSegClass::ConstructionConePole,
            ObjectKind::Debris => CameraSegClass::Static,
        }
    }
}

/// A moving agent or a static obstacle at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneObject {
    /// `key.laser_object_id` for labelled objects; a stable id for obstacles too.
    pub id: String,
    /// Instance id (1-based, unique in the segment) for segmentation labels.
    pub instance: u32,
    pub kind: ObjectKind,
    /// World frame.
    pub bbox: Box3d,
    /// World-frame velocity and acceleration.
    pub velocity: P3,
    pub acceleration: P3,
    pub color: [u8; 3],
}

impl SceneObject {
    pub fn labelled(&self) -> bool {
        self.kind.box_type().is_some()
    }
}

/// The world at one timestamp.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub timestamp_micros: i64,
    pub static_world: Arc<StaticWorld>,
    /// Every object except the ego vehicle.
    pub objects: Vec<SceneObject>,
    /// The ego vehicle's pose: vehicle → world (x forward, y left, z up; origin at the rear
    /// axle centre on the ground, as Waymo's vehicle frame).
    pub ego_pose: crate::scene::Transform,
}
