//! WOMD `Scenario` (`protos/scenario.proto`, package `waymo.open_dataset`).

use super::map::{MapFeature, TrafficSignalLaneState};

/// One agent's box and velocity at one step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectState {
    #[prost(double, optional, tag = "2")]
    pub center_x: Option<f64>,
    #[prost(double, optional, tag = "3")]
    pub center_y: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub center_z: Option<f64>,
    #[prost(float, optional, tag = "5")]
    pub length: Option<f32>,
    #[prost(float, optional, tag = "6")]
    pub width: Option<f32>,
    #[prost(float, optional, tag = "7")]
    pub height: Option<f32>,
    #[prost(float, optional, tag = "8")]
    pub heading: Option<f32>,
    #[prost(float, optional, tag = "9")]
    pub velocity_x: Option<f32>,
    #[prost(float, optional, tag = "10")]
    pub velocity_y: Option<f32>,
    #[prost(bool, optional, tag = "11")]
    pub valid: Option<bool>,
}

/// One agent over the scenario.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Track {
    #[prost(int32, optional, tag = "1")]
    pub id: Option<i32>,
    /// `Track.ObjectType`: UNSET=0, VEHICLE=1, PEDESTRIAN=2, CYCLIST=3, OTHER=4.
    #[prost(int32, optional, tag = "2")]
    pub object_type: Option<i32>,
    #[prost(message, repeated, tag = "3")]
    pub states: Vec<ObjectState>,
}

/// Traffic-signal states at one step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DynamicMapState {
    #[prost(message, repeated, tag = "1")]
    pub lane_states: Vec<TrafficSignalLaneState>,
}

/// A track that must be predicted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequiredPrediction {
    /// Index into `Scenario.tracks`.
    #[prost(int32, optional, tag = "1")]
    pub track_index: Option<i32>,
    /// `RequiredPrediction.DifficultyLevel`: NONE=0, LEVEL_1=1, LEVEL_2=2.
    #[prost(int32, optional, tag = "2")]
    pub difficulty: Option<i32>,
}

/// A WOMD scenario: 91 steps of tracks, the map and the prediction targets.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Scenario {
    #[prost(double, repeated, packed = "false", tag = "1")]
    pub timestamps_seconds: Vec<f64>,
    #[prost(message, repeated, tag = "2")]
    pub tracks: Vec<Track>,
    /// Track ids (not indices).
    #[prost(int32, repeated, packed = "false", tag = "4")]
    pub objects_of_interest: Vec<i32>,
    #[prost(string, optional, tag = "5")]
    pub scenario_id: Option<String>,
    #[prost(int32, optional, tag = "6")]
    pub sdc_track_index: Option<i32>,
    #[prost(message, repeated, tag = "7")]
    pub dynamic_map_states: Vec<DynamicMapState>,
    #[prost(message, repeated, tag = "8")]
    pub map_features: Vec<MapFeature>,
    #[prost(int32, optional, tag = "10")]
    pub current_time_index: Option<i32>,
    #[prost(message, repeated, tag = "11")]
    pub tracks_to_predict: Vec<RequiredPrediction>,
    /// WOMD v1.2+: the LiDAR of the history steps (merged in from the separate LiDAR files).
    #[prost(message, repeated, tag = "12")]
    pub compressed_frame_laser_data: Vec<super::womd_sensors::CompressedFrameLaserData>,
    /// WOMD v1.2.1+: the camera tokens of the history steps.
    #[prost(message, repeated, tag = "13")]
    pub frame_camera_tokens: Vec<super::womd_sensors::FrameCameraTokens>,
}
