//! Agent tracks and the map: what motion prediction reads. WOMD `Scenario`s and v2 datasets
//! (tracks from `lidar_box`, map from `map_feature`) both become these types.

use nalgebra::Vector3;
use serde::{Deserialize, Serialize};

use super::enums::{AgentType, DifficultyLevel, MapFeatureType};

/// One agent's state at one step, world frame.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentState {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub length: f32,
    pub width: f32,
    pub height: f32,
    /// Radians, counter-clockwise from +x, in [-π, π).
    pub heading: f32,
    pub velocity_x: f32,
    pub velocity_y: f32,
    pub valid: bool,
}

/// An agent over the whole scenario; `states` is aligned with the scenario's timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// WOMD track id; for v2 data, a number assigned per `laser_object_id`.
    pub id: i64,
    /// The id in the source: the WOMD id as text, or the v2 `laser_object_id`.
    pub source_id: String,
    pub agent_type: AgentType,
    pub states: Vec<AgentState>,
}

/// An agent whose future must be predicted (`tracks_to_predict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictionTarget {
    /// Index into `Scenario::tracks`.
    pub track_index: usize,
    pub difficulty: DifficultyLevel,
}

/// A map feature: lane centre, road line, road edge, stop sign, or a polygon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapFeature {
    pub id: i64,
    pub feature_type: MapFeatureType,
    /// Polyline points (world frame); a polygon's points, implicitly closed; a stop sign's
    /// single position.
    pub polyline: Vec<Vector3<f64>>,
    /// Lanes: connectivity and speed limit (empty / `None` for other kinds).
    pub entry_lanes: Vec<i64>,
    pub exit_lanes: Vec<i64>,
    pub left_neighbors: Vec<i64>,
    pub right_neighbors: Vec<i64>,
    pub speed_limit_mph: Option<f64>,
    /// Stop signs: the lanes they control.
    pub controlled_lanes: Vec<i64>,
}

impl MapFeature {
    pub fn new(id: i64, feature_type: MapFeatureType, polyline: Vec<Vector3<f64>>) -> Self {
        MapFeature {
            id,
            feature_type,
            polyline,
            entry_lanes: Vec::new(),
            exit_lanes: Vec::new(),
            left_neighbors: Vec::new(),
            right_neighbors: Vec::new(),
            speed_limit_mph: None,
            controlled_lanes: Vec::new(),
        }
    }
}

/// Traffic-signal state of one lane at one step (WOMD `TrafficSignalLaneState`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignalState {
    pub lane_id: i64,
    /// `LANE_STATE_*` value: 0 UNKNOWN … 8 FLASHING_CAUTION.
    pub state: i32,
    pub stop_point: Vector3<f64>,
}

/// A motion scenario: tracks on a common time base, the map, and what to predict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub id: String,
    pub timestamps_seconds: Vec<f64>,
    pub current_time_index: usize,
    pub sdc_track_index: Option<usize>,
    pub tracks: Vec<Track>,
    pub tracks_to_predict: Vec<PredictionTarget>,
    /// Track ids (not indices) of objects of interest.
    pub objects_of_interest: Vec<i64>,
    pub map: Vec<MapFeature>,
    /// One entry per step.
    pub dynamic_map_states: Vec<Vec<SignalState>>,
}
