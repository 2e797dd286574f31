//! WOMD map features (`protos/map.proto`).

/// A point in metres; the origin is arbitrary per scenario.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct MapPoint {
    #[prost(double, optional, tag = "1")]
    pub x: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub y: Option<f64>,
    #[prost(double, optional, tag = "3")]
    pub z: Option<f64>,
}

/// The state of the signal controlling one lane.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrafficSignalLaneState {
    /// Map feature id of the controlled lane.
    #[prost(int64, optional, tag = "1")]
    pub lane: Option<i64>,
    /// `TrafficSignalLaneState.State`: LANE_STATE_UNKNOWN=0 … LANE_STATE_FLASHING_CAUTION=8.
    #[prost(int32, optional, tag = "2")]
    pub state: Option<i32>,
    #[prost(message, optional, tag = "3")]
    pub stop_point: Option<MapPoint>,
}

/// A stretch of a lane bordered by one road line or road edge.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BoundarySegment {
    #[prost(int32, optional, tag = "1")]
    pub lane_start_index: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub lane_end_index: Option<i32>,
    #[prost(int64, optional, tag = "3")]
    pub boundary_feature_id: Option<i64>,
    /// `RoadLine.RoadLineType`.
    #[prost(int32, optional, tag = "4")]
    pub boundary_type: Option<i32>,
}

/// An adjacent lane going the same direction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LaneNeighbor {
    #[prost(int64, optional, tag = "1")]
    pub feature_id: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    pub self_start_index: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub self_end_index: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    pub neighbor_start_index: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    pub neighbor_end_index: Option<i32>,
    #[prost(message, repeated, tag = "6")]
    pub boundaries: Vec<BoundarySegment>,
}

/// A lane centre line with its connectivity.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LaneCenter {
    #[prost(double, optional, tag = "1")]
    pub speed_limit_mph: Option<f64>,
    /// `LaneCenter.LaneType`: UNDEFINED=0, FREEWAY=1, SURFACE_STREET=2, BIKE_LANE=3.
    #[prost(int32, optional, tag = "2")]
    pub r#type: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub interpolating: Option<bool>,
    #[prost(message, repeated, tag = "8")]
    pub polyline: Vec<MapPoint>,
    #[prost(int64, repeated, packed = "true", tag = "9")]
    pub entry_lanes: Vec<i64>,
    #[prost(int64, repeated, packed = "true", tag = "10")]
    pub exit_lanes: Vec<i64>,
    #[prost(message, repeated, tag = "11")]
    pub left_neighbors: Vec<LaneNeighbor>,
    #[prost(message, repeated, tag = "12")]
    pub right_neighbors: Vec<LaneNeighbor>,
    #[prost(message, repeated, tag = "13")]
    pub left_boundaries: Vec<BoundarySegment>,
    #[prost(message, repeated, tag = "14")]
    pub right_boundaries: Vec<BoundarySegment>,
}

/// A painted road line.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RoadLine {
    /// `RoadLine.RoadLineType`: UNKNOWN=0 … PASSING_DOUBLE_YELLOW=8.
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "2")]
    pub polyline: Vec<MapPoint>,
}

/// A physical road boundary.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RoadEdge {
    /// `RoadEdge.RoadEdgeType`: UNKNOWN=0, ROAD_EDGE_BOUNDARY=1, ROAD_EDGE_MEDIAN=2.
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "2")]
    pub polyline: Vec<MapPoint>,
}

/// A stop sign and the lanes it controls.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StopSign {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub lane: Vec<i64>,
    #[prost(message, optional, tag = "2")]
    pub position: Option<MapPoint>,
}

/// A closed polygon (crosswalk, speed bump, driveway all share this shape).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Polygon {
    #[prost(message, repeated, tag = "1")]
    pub polygon: Vec<MapPoint>,
}

/// `Crosswalk { repeated MapPoint polygon = 1; }`
pub type Crosswalk = Polygon;
/// `SpeedBump { repeated MapPoint polygon = 1; }`
pub type SpeedBump = Polygon;
/// `Driveway { repeated MapPoint polygon = 1; }`
pub type Driveway = Polygon;

/// The `MapFeature.feature_data` oneof.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FeatureData {
    #[prost(message, tag = "3")]
    Lane(LaneCenter),
    #[prost(message, tag = "4")]
    RoadLine(RoadLine),
    #[prost(message, tag = "5")]
    RoadEdge(RoadEdge),
    #[prost(message, tag = "7")]
    StopSign(StopSign),
    #[prost(message, tag = "8")]
    Crosswalk(Crosswalk),
    #[prost(message, tag = "9")]
    SpeedBump(SpeedBump),
    #[prost(message, tag = "10")]
    Driveway(Driveway),
}

/// One static map feature. `feature_data` is `None` when the file holds a kind this
/// decoder does not know (prost skips unknown tags), which the converter reports.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MapFeature {
    #[prost(int64, optional, tag = "1")]
    pub id: Option<i64>,
    #[prost(oneof = "FeatureData", tags = "3, 4, 5, 7, 8, 9, 10")]
    pub feature_data: Option<FeatureData>,
}
