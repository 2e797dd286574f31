//! The declared schema of every v2 component scenetok reads and writes: column names and
//! Arrow types exactly as docs/formats.md#component-schemas (the package's own `Component.schema()`),
//! plus scenetok's `map_feature` extension. One table serves the writer (which writes these
//! types), the tolerant reader (which converts whatever it finds to them) and `inspect`
//! (which reports every deviation).

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The declared type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Str,
    Bin,
    Bool,
    I8,
    I32,
    I64,
    F32,
    F64,
    ListI8,
    ListI32,
    ListI64,
    ListF32,
    ListF64,
    ListBool,
    /// `fixed_size_list<double>[16]`: a row-major 4×4 transform.
    Transform,
    /// `fixed_size_list<int32>[3]`: a range image shape `[H, W, C]`.
    Shape,
}

impl ColType {
    pub fn data_type(self) -> DataType {
        let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
        match self {
            ColType::Str => DataType::Utf8,
            ColType::Bin => DataType::Binary,
            ColType::Bool => DataType::Boolean,
            ColType::I8 => DataType::Int8,
            ColType::I32 => DataType::Int32,
            ColType::I64 => DataType::Int64,
            ColType::F32 => DataType::Float32,
            ColType::F64 => DataType::Float64,
            ColType::ListI8 => list(DataType::Int8),
            ColType::ListI32 => list(DataType::Int32),
            ColType::ListI64 => list(DataType::Int64),
            ColType::ListF32 => list(DataType::Float32),
            ColType::ListF64 => list(DataType::Float64),
            ColType::ListBool => list(DataType::Boolean),
            ColType::Transform => DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float64, true)), 16),
            ColType::Shape => DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Int32, true)), 3),
        }
    }
}

/// Which Waymo enum an integer column holds; such columns may also be stored as names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumKind {
    Laser,
    Camera,
    BoxType,
    Difficulty,
    RollingShutter,
    MapFeatureType,
}

impl EnumKind {
    /// The numeric value for a name as found in a file, or `None`.
    pub fn parse_name(self, s: &str) -> Option<i64> {
        use crate::scene::*;
        match self {
            EnumKind::Laser => LaserName::from_name(s).map(|v| v.value()),
            EnumKind::Camera => CameraName::from_name(s).map(|v| v.value()),
            EnumKind::BoxType => BoxType::from_name(s).map(|v| v.value()),
            EnumKind::Difficulty => DifficultyLevel::from_name(s).map(|v| v.value()),
            EnumKind::RollingShutter => RollingShutterDirection::from_name(s).map(|v| v.value()),
            EnumKind::MapFeatureType => MapFeatureType::from_name(s).map(|v| v.value()),
        }
        .or_else(|| s.trim().parse::<i64>().ok())
    }
    pub fn expected(self) -> String {
        use crate::scene::*;
        match self {
            EnumKind::Laser => LaserName::expected(),
            EnumKind::Camera => CameraName::expected(),
            EnumKind::BoxType => BoxType::expected(),
            EnumKind::Difficulty => DifficultyLevel::expected(),
            EnumKind::RollingShutter => RollingShutterDirection::expected(),
            EnumKind::MapFeatureType => MapFeatureType::expected(),
        }
    }
}

/// One declared column.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub ty: ColType,
    /// A file without a required column is rejected; optional ones read as null.
    pub required: bool,
    pub enum_kind: Option<EnumKind>,
}

const fn req(name: &'static str, ty: ColType) -> ColumnSpec {
    ColumnSpec { name, ty, required: true, enum_kind: None }
}
const fn opt(name: &'static str, ty: ColType) -> ColumnSpec {
    ColumnSpec { name, ty, required: false, enum_kind: None }
}
const fn req_enum(name: &'static str, kind: EnumKind) -> ColumnSpec {
    ColumnSpec { name, ty: ColType::I8, required: true, enum_kind: Some(kind) }
}
const fn opt_enum(name: &'static str, kind: EnumKind) -> ColumnSpec {
    ColumnSpec { name, ty: ColType::I8, required: false, enum_kind: Some(kind) }
}

/// The key column names.
pub mod key {
    pub const SEGMENT: &str = "key.segment_context_name";
    pub const TIMESTAMP: &str = "key.frame_timestamp_micros";
    pub const LASER: &str = "key.laser_name";
    pub const CAMERA: &str = "key.camera_name";
    pub const LASER_OBJECT: &str = "key.laser_object_id";
    pub const CAMERA_OBJECT: &str = "key.camera_object_id";
    pub const MAP_FEATURE: &str = "key.map_feature_id";
}

use ColType::*;
use EnumKind as E;

const SEG: ColumnSpec = req(key::SEGMENT, Str);
const TS: ColumnSpec = req(key::TIMESTAMP, I64);
const LASER: ColumnSpec = req_enum(key::LASER, E::Laser);
const CAMERA: ColumnSpec = req_enum(key::CAMERA, E::Camera);
const LASER_OBJ: ColumnSpec = req(key::LASER_OBJECT, Str);
const CAMERA_OBJ: ColumnSpec = req(key::CAMERA_OBJECT, Str);

macro_rules! range_image_cols {
    ($comp:literal, $ty:expr, $req1:ident) => {
        [
            $req1(concat!("[", $comp, "].range_image_return1.values"), $ty),
            $req1(concat!("[", $comp, "].range_image_return1.shape"), Shape),
            opt(concat!("[", $comp, "].range_image_return2.values"), $ty),
            opt(concat!("[", $comp, "].range_image_return2.shape"), Shape),
        ]
    };
}

const LIDAR_RI: [ColumnSpec; 4] = range_image_cols!("LiDARComponent", ListF32, req);
const LIDAR_COLS: [ColumnSpec; 7] = [SEG, TS, LASER, LIDAR_RI[0], LIDAR_RI[1], LIDAR_RI[2], LIDAR_RI[3]];

const LIDAR_CALIB_COLS: [ColumnSpec; 6] = [
    SEG,
    LASER,
    req("[LiDARCalibrationComponent].extrinsic.transform", Transform),
    opt("[LiDARCalibrationComponent].beam_inclination.min", F64),
    opt("[LiDARCalibrationComponent].beam_inclination.max", F64),
    opt("[LiDARCalibrationComponent].beam_inclination.values", ListF64),
];

const LIDAR_POSE_COLS: [ColumnSpec; 5] = [
    SEG,
    TS,
    LASER,
    req("[LiDARPoseComponent].range_image_return1.values", ListF32),
    req("[LiDARPoseComponent].range_image_return1.shape", Shape),
];

const LCP_RI: [ColumnSpec; 4] = range_image_cols!("LiDARCameraProjectionComponent", ListF32, req);
const LIDAR_CAMERA_PROJECTION_COLS: [ColumnSpec; 7] = [SEG, TS, LASER, LCP_RI[0], LCP_RI[1], LCP_RI[2], LCP_RI[3]];

const LSEG_RI: [ColumnSpec; 4] = range_image_cols!("LiDARSegmentationLabelComponent", ListI32, req);
const LIDAR_SEGMENTATION_COLS: [ColumnSpec; 7] = [SEG, TS, LASER, LSEG_RI[0], LSEG_RI[1], LSEG_RI[2], LSEG_RI[3]];

const CAMERA_IMAGE_COLS: [ColumnSpec; 15] = [
    SEG,
    TS,
    CAMERA,
    req("[CameraImageComponent].image", Bin),
    opt("[CameraImageComponent].pose.transform", Transform),
    opt("[CameraImageComponent].velocity.linear_velocity.x", F32),
    opt("[CameraImageComponent].velocity.linear_velocity.y", F32),
    opt("[CameraImageComponent].velocity.linear_velocity.z", F32),
    opt("[CameraImageComponent].velocity.angular_velocity.x", F64),
    opt("[CameraImageComponent].velocity.angular_velocity.y", F64),
    opt("[CameraImageComponent].velocity.angular_velocity.z", F64),
    opt("[CameraImageComponent].pose_timestamp", F64),
    opt("[CameraImageComponent].rolling_shutter_params.shutter", F64),
    opt("[CameraImageComponent].rolling_shutter_params.camera_trigger_time", F64),
    opt("[CameraImageComponent].rolling_shutter_params.camera_readout_done_time", F64),
];

const CAMERA_CALIB_COLS: [ColumnSpec; 15] = [
    SEG,
    CAMERA,
    req("[CameraCalibrationComponent].intrinsic.f_u", F64),
    req("[CameraCalibrationComponent].intrinsic.f_v", F64),
    req("[CameraCalibrationComponent].intrinsic.c_u", F64),
    req("[CameraCalibrationComponent].intrinsic.c_v", F64),
    opt("[CameraCalibrationComponent].intrinsic.k1", F64),
    opt("[CameraCalibrationComponent].intrinsic.k2", F64),
    opt("[CameraCalibrationComponent].intrinsic.p1", F64),
    opt("[CameraCalibrationComponent].intrinsic.p2", F64),
    opt("[CameraCalibrationComponent].intrinsic.k3", F64),
    req("[CameraCalibrationComponent].extrinsic.transform", Transform),
    req("[CameraCalibrationComponent].width", I32),
    req("[CameraCalibrationComponent].height", I32),
    opt_enum("[CameraCalibrationComponent].rolling_shutter_direction", E::RollingShutter),
];

const CAMERA_SEG_COLS: [ColumnSpec; 10] = [
    SEG,
    TS,
    CAMERA,
    req("[CameraSegmentationLabelComponent].panoptic_label_divisor", I32),
    req("[CameraSegmentationLabelComponent].panoptic_label", Bin),
    opt("[CameraSegmentationLabelComponent].instance_id_to_global_id_mapping.local_instance_ids", ListI32),
    opt("[CameraSegmentationLabelComponent].instance_id_to_global_id_mapping.global_instance_ids", ListI32),
    opt("[CameraSegmentationLabelComponent].instance_id_to_global_id_mapping.is_tracked", ListBool),
    opt("[CameraSegmentationLabelComponent].sequence_id", Str),
    opt("[CameraSegmentationLabelComponent].num_cameras_covered", Bin),
];

const LIDAR_BOX_COLS: [ColumnSpec; 21] = [
    SEG,
    TS,
    LASER_OBJ,
    req("[LiDARBoxComponent].box.center.x", F64),
    req("[LiDARBoxComponent].box.center.y", F64),
    req("[LiDARBoxComponent].box.center.z", F64),
    req("[LiDARBoxComponent].box.size.x", F64),
    req("[LiDARBoxComponent].box.size.y", F64),
    req("[LiDARBoxComponent].box.size.z", F64),
    req("[LiDARBoxComponent].box.heading", F64),
    req_enum("[LiDARBoxComponent].type", E::BoxType),
    opt("[LiDARBoxComponent].num_lidar_points_in_box", I64),
    opt("[LiDARBoxComponent].num_top_lidar_points_in_box", I64),
    opt("[LiDARBoxComponent].speed.x", F64),
    opt("[LiDARBoxComponent].speed.y", F64),
    opt("[LiDARBoxComponent].speed.z", F64),
    opt("[LiDARBoxComponent].acceleration.x", F64),
    opt("[LiDARBoxComponent].acceleration.y", F64),
    opt("[LiDARBoxComponent].acceleration.z", F64),
    opt_enum("[LiDARBoxComponent].difficulty_level.detection", E::Difficulty),
    opt_enum("[LiDARBoxComponent].difficulty_level.tracking", E::Difficulty),
];

const CAMERA_BOX_COLS: [ColumnSpec; 11] = [
    SEG,
    TS,
    CAMERA,
    CAMERA_OBJ,
    req("[CameraBoxComponent].box.center.x", F64),
    req("[CameraBoxComponent].box.center.y", F64),
    req("[CameraBoxComponent].box.size.x", F64),
    req("[CameraBoxComponent].box.size.y", F64),
    req_enum("[CameraBoxComponent].type", E::BoxType),
    opt_enum("[CameraBoxComponent].difficulty_level.detection", E::Difficulty),
    opt_enum("[CameraBoxComponent].difficulty_level.tracking", E::Difficulty),
];

const PROJECTED_BOX_COLS: [ColumnSpec; 9] = [
    SEG,
    TS,
    CAMERA,
    LASER_OBJ,
    req("[ProjectedLiDARBoxComponent].box.center.x", F64),
    req("[ProjectedLiDARBoxComponent].box.center.y", F64),
    req("[ProjectedLiDARBoxComponent].box.size.x", F64),
    req("[ProjectedLiDARBoxComponent].box.size.y", F64),
    req_enum("[ProjectedLiDARBoxComponent].type", E::BoxType),
];

const ASSOCIATION_COLS: [ColumnSpec; 5] = [SEG, TS, CAMERA, CAMERA_OBJ, LASER_OBJ];

const VEHICLE_POSE_COLS: [ColumnSpec; 3] =
    [SEG, TS, req("[VehiclePoseComponent].world_from_vehicle.transform", Transform)];

const STATS_COLS: [ColumnSpec; 9] = [
    SEG,
    TS,
    opt("[StatsComponent].time_of_day", Str),
    opt("[StatsComponent].location", Str),
    opt("[StatsComponent].weather", Str),
    opt("[StatsComponent].lidar_object_counts.types", ListI8),
    opt("[StatsComponent].lidar_object_counts.counts", ListI32),
    opt("[StatsComponent].camera_object_counts.types", ListI8),
    opt("[StatsComponent].camera_object_counts.counts", ListI32),
];

/// Human keypoints on camera images: not used by the models, read so that real files
/// of this component can be inspected (the types here follow the other components' rules:
/// double for coordinates; the upstream sample stores float and int32).
const CAMERA_HKP_COLS: [ColumnSpec; 12] = [
    SEG,
    TS,
    CAMERA,
    CAMERA_OBJ,
    opt("[CameraHumanKeypointsComponent].camera_keypoints[*].type", ListI32),
    opt("[CameraHumanKeypointsComponent].camera_keypoints[*].keypoint_2d.location_px.x", ListF64),
    opt("[CameraHumanKeypointsComponent].camera_keypoints[*].keypoint_2d.location_px.y", ListF64),
    opt("[CameraHumanKeypointsComponent].camera_keypoints[*].keypoint_2d.visibility.is_occluded", ListBool),
    opt("[CameraHumanKeypointsComponent].camera_keypoints[*].keypoint_3d.location_m.x", ListF64),
    opt("[CameraHumanKeypointsComponent].camera_keypoints[*].keypoint_3d.location_m.y", ListF64),
    opt("[CameraHumanKeypointsComponent].camera_keypoints[*].keypoint_3d.location_m.z", ListF64),
    opt("[CameraHumanKeypointsComponent].camera_keypoints[*].keypoint_3d.visibility.is_occluded", ListBool),
];

/// scenetok's map extension (not part of Waymo v2): one row per map feature of a segment.
const MAP_FEATURE_COLS: [ColumnSpec; 12] = [
    SEG,
    req(key::MAP_FEATURE, I64),
    req_enum("[MapFeatureComponent].type", E::MapFeatureType),
    req("[MapFeatureComponent].polyline.x", ListF64),
    req("[MapFeatureComponent].polyline.y", ListF64),
    req("[MapFeatureComponent].polyline.z", ListF64),
    opt("[MapFeatureComponent].entry_lanes", ListI64),
    opt("[MapFeatureComponent].exit_lanes", ListI64),
    opt("[MapFeatureComponent].left_neighbors", ListI64),
    opt("[MapFeatureComponent].right_neighbors", ListI64),
    opt("[MapFeatureComponent].speed_limit_mph", F64),
    opt("[MapFeatureComponent].controlled_lanes", ListI64),
];

/// A v2 component: one folder of one parquet file per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Lidar,
    LidarCalibration,
    LidarPose,
    LidarSegmentation,
    LidarCameraProjection,
    CameraImage,
    CameraCalibration,
    CameraSegmentation,
    LidarBox,
    CameraBox,
    ProjectedLidarBox,
    CameraToLidarBoxAssociation,
    VehiclePose,
    Stats,
    CameraHkp,
    MapFeature,
}

impl Component {
    pub const ALL: &'static [Component] = &[
        Component::Lidar,
        Component::LidarCalibration,
        Component::LidarPose,
        Component::LidarSegmentation,
        Component::LidarCameraProjection,
        Component::CameraImage,
        Component::CameraCalibration,
        Component::CameraSegmentation,
        Component::LidarBox,
        Component::CameraBox,
        Component::ProjectedLidarBox,
        Component::CameraToLidarBoxAssociation,
        Component::VehiclePose,
        Component::Stats,
        Component::CameraHkp,
        Component::MapFeature,
    ];

    /// The folder name (`TAG_BY_COMPONENT`).
    pub fn tag(self) -> &'static str {
        match self {
            Component::Lidar => "lidar",
            Component::LidarCalibration => "lidar_calibration",
            Component::LidarPose => "lidar_pose",
            Component::LidarSegmentation => "lidar_segmentation",
            Component::LidarCameraProjection => "lidar_camera_projection",
            Component::CameraImage => "camera_image",
            Component::CameraCalibration => "camera_calibration",
            Component::CameraSegmentation => "camera_segmentation",
            Component::LidarBox => "lidar_box",
            Component::CameraBox => "camera_box",
            Component::ProjectedLidarBox => "projected_lidar_box",
            Component::CameraToLidarBoxAssociation => "camera_to_lidar_box_association",
            Component::VehiclePose => "vehicle_pose",
            Component::Stats => "stats",
            Component::CameraHkp => "camera_hkp",
            Component::MapFeature => "map_feature",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Component> {
        Component::ALL.iter().copied().find(|c| c.tag() == tag)
    }

    /// The declared columns, in the order the writer writes them.
    pub fn columns(self) -> &'static [ColumnSpec] {
        match self {
            Component::Lidar => &LIDAR_COLS,
            Component::LidarCalibration => &LIDAR_CALIB_COLS,
            Component::LidarPose => &LIDAR_POSE_COLS,
            Component::LidarSegmentation => &LIDAR_SEGMENTATION_COLS,
            Component::LidarCameraProjection => &LIDAR_CAMERA_PROJECTION_COLS,
            Component::CameraImage => &CAMERA_IMAGE_COLS,
            Component::CameraCalibration => &CAMERA_CALIB_COLS,
            Component::CameraSegmentation => &CAMERA_SEG_COLS,
            Component::LidarBox => &LIDAR_BOX_COLS,
            Component::CameraBox => &CAMERA_BOX_COLS,
            Component::ProjectedLidarBox => &PROJECTED_BOX_COLS,
            Component::CameraToLidarBoxAssociation => &ASSOCIATION_COLS,
            Component::VehiclePose => &VEHICLE_POSE_COLS,
            Component::Stats => &STATS_COLS,
            Component::CameraHkp => &CAMERA_HKP_COLS,
            Component::MapFeature => &MAP_FEATURE_COLS,
        }
    }

    pub fn column(self, name: &str) -> Option<&'static ColumnSpec> {
        self.columns().iter().find(|c| c.name == name)
    }

    /// Calibrations and the map have one row per sensor / feature, not per frame.
    pub fn is_per_frame(self) -> bool {
        !matches!(self, Component::LidarCalibration | Component::CameraCalibration | Component::MapFeature)
    }

    /// Rows that hold whole images: written a frame per row group so a reader holds
    /// one frame of them at a time.
    pub fn is_bulky(self) -> bool {
        matches!(
            self,
            Component::Lidar
                | Component::LidarPose
                | Component::LidarSegmentation
                | Component::LidarCameraProjection
                | Component::CameraImage
                | Component::CameraSegmentation
        )
    }

    /// The declared Arrow schema (all fields nullable, as pyarrow writes them).
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            Component::ALL
                .iter()
                .map(|c| {
                    let fields: Vec<Field> =
                        c.columns().iter().map(|s| Field::new(s.name, s.ty.data_type(), true)).collect();
                    Arc::new(Schema::new(fields))
                })
                .collect()
        });
        let idx = Component::ALL.iter().position(|c| *c == self).unwrap_or(0);
        all[idx].clone()
    }

    /// Guesses the component of a file from its column prefixes (for a file outside a
    /// dataset folder).
    pub fn guess_from_columns<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Component> {
        let names: Vec<&str> = names.into_iter().collect();
        // Count matching non-key columns; on a tie prefer the component with fewer columns.
        Component::ALL
            .iter()
            .copied()
            .map(|c| {
                let hits =
                    c.columns().iter().filter(|s| !s.name.starts_with("key.") && names.contains(&s.name)).count();
                (c, hits)
            })
            .filter(|(_, hits)| *hits > 0)
            .max_by_key(|(c, hits)| (*hits, std::cmp::Reverse(c.columns().len())))
            .map(|(c, _)| c)
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_schemas_are_well_formed() {
        for c in Component::ALL {
            assert_eq!(Component::from_tag(c.tag()), Some(*c));
            let s = c.schema();
            assert_eq!(s.fields().len(), c.columns().len());
            assert_eq!(s.field(0).name(), key::SEGMENT);
        }
        assert_eq!(Component::Lidar.schema().field_with_name(key::LASER).unwrap().data_type(), &DataType::Int8);
    }

    #[test]
    fn guesses_component_from_columns() {
        let names: Vec<&str> = Component::VehiclePose.columns().iter().map(|c| c.name).collect();
        assert_eq!(Component::guess_from_columns(names), Some(Component::VehiclePose));
        let names: Vec<&str> = Component::CameraBox.columns().iter().map(|c| c.name).collect();
        assert_eq!(Component::guess_from_columns(names), Some(Component::CameraBox));
        assert_eq!(Component::guess_from_columns(["key.segment_context_name", "x"]), None);
    }
}
