//! The synthetic world (`scenetok generate`): a procedural road network, agents with
//! behaviour, and (later) the sensors that observe them, written as a Waymo v2 dataset.

pub mod agents;
pub mod bvh;
pub mod camera;
pub mod generate;
pub mod lidar;
pub mod raster;
pub mod raster_scene;
pub mod road;
pub mod snapshot;
pub mod static_world;
