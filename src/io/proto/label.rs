//! v1 box labels (`label.proto`).

/// An upright box. For 3-D labels: vehicle frame, `length` along x, `width` along y. For
/// image labels (axis-aligned 2-D): pixels, `length` is the extent along u, `width` along v.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct LabelBox {
    #[prost(double, optional, tag = "1")]
    pub center_x: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub center_y: Option<f64>,
    #[prost(double, optional, tag = "3")]
    pub center_z: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub width: Option<f64>,
    #[prost(double, optional, tag = "5")]
    pub length: Option<f64>,
    #[prost(double, optional, tag = "6")]
    pub height: Option<f64>,
    #[prost(double, optional, tag = "7")]
    pub heading: Option<f64>,
}

/// `Label.Metadata`: object motion, vehicle frame.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct LabelMetadata {
    #[prost(double, optional, tag = "1")]
    pub speed_x: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub speed_y: Option<f64>,
    #[prost(double, optional, tag = "3")]
    pub accel_x: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub accel_y: Option<f64>,
    #[prost(double, optional, tag = "5")]
    pub speed_z: Option<f64>,
    #[prost(double, optional, tag = "6")]
    pub accel_z: Option<f64>,
}

/// `Label.Association`: the laser object a camera label belongs to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelAssociation {
    #[prost(string, optional, tag = "1")]
    pub laser_object_id: Option<String>,
}

/// A 3-D (laser) or 2-D (camera) object label.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(message, optional, tag = "1")]
    pub r#box: Option<LabelBox>,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<LabelMetadata>,
    /// `Label.Type`: UNKNOWN=0, VEHICLE=1, PEDESTRIAN=2, SIGN=3, CYCLIST=4.
    #[prost(int32, optional, tag = "3")]
    pub r#type: Option<i32>,
    #[prost(string, optional, tag = "4")]
    pub id: Option<String>,
    /// `Label.DifficultyLevel`: UNKNOWN=0, LEVEL_1=1, LEVEL_2=2.
    #[prost(int32, optional, tag = "5")]
    pub detection_difficulty_level: Option<i32>,
    #[prost(int32, optional, tag = "6")]
    pub tracking_difficulty_level: Option<i32>,
    #[prost(int32, optional, tag = "7")]
    pub num_lidar_points_in_box: Option<i32>,
    #[prost(message, optional, tag = "10")]
    pub association: Option<LabelAssociation>,
    #[prost(int32, optional, tag = "13")]
    pub num_top_lidar_points_in_box: Option<i32>,
}
