//! The Waymo enumerations scenetok reads and writes, with their exact numeric values
//! (docs/formats.md#enums, #womd-enums). Files may store them as integers of any width or as
//! their names; both parse here, and an unknown value is an error, never a silent default.

use serde::{Deserialize, Serialize};

/// Defines a fieldless enum with its Waymo numeric value and canonical name.
macro_rules! waymo_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $label:literal { $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every variant, in value order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];
            /// What this enum is called in error messages.
            pub const KIND: &'static str = $label;

            /// The numeric value used in the files.
            pub fn value(self) -> i64 {
                match self { $( $name::$variant => $value ),+ }
            }

            /// The canonical (proto) name, without the `TYPE_` style prefix.
            pub fn name(self) -> &'static str {
                match self { $( $name::$variant => $text ),+ }
            }

            /// The variant for a numeric value, or `None` when the value is not defined.
            pub fn from_value(v: i64) -> Option<Self> {
                match v { $( $value => Some($name::$variant), )+ _ => None }
            }

            /// The variant for a name; accepts the canonical name with or without a
            /// `TYPE_`/`LANE_`-style prefix, in any case.
            pub fn from_name(s: &str) -> Option<Self> {
                let up = s.trim().to_ascii_uppercase();
                Self::ALL.iter().copied().find(|v| {
                    let n = v.name();
                    up == n || up.strip_suffix(n).is_some_and(|p| p.ends_with('_'))
                })
            }

            /// A human-readable list of the accepted values, for error messages.
            pub fn expected() -> String {
                let items: Vec<String> = Self::ALL.iter().map(|v| format!("{}={}", v.value(), v.name())).collect();
                format!("{} ({})", Self::KIND, items.join(", "))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.name()) }
        }
    };
}

waymo_enum! {
    /// A LiDAR of the Waymo vehicle. `UNKNOWN = 0` is not a valid key and is rejected.
    LaserName, "laser name" {
        Top = 1 => "TOP", Front = 2 => "FRONT", SideLeft = 3 => "SIDE_LEFT",
        SideRight = 4 => "SIDE_RIGHT", Rear = 5 => "REAR",
    }
}

waymo_enum! {
    /// A camera. The v2 perception set uses 1-5; the v1 protos add 6-8 (end-to-end and
    /// WOMD camera data).
    CameraName, "camera name" {
        Front = 1 => "FRONT", FrontLeft = 2 => "FRONT_LEFT", FrontRight = 3 => "FRONT_RIGHT",
        SideLeft = 4 => "SIDE_LEFT", SideRight = 5 => "SIDE_RIGHT",
        RearLeft = 6 => "REAR_LEFT", Rear = 7 => "REAR", RearRight = 8 => "REAR_RIGHT",
    }
}

waymo_enum! {
    /// `Label.Type`, the class of a 3-D or 2-D box.
    BoxType, "box type" {
        Unknown = 0 => "UNKNOWN", Vehicle = 1 => "VEHICLE", Pedestrian = 2 => "PEDESTRIAN",
        Sign = 3 => "SIGN", Cyclist = 4 => "CYCLIST",
    }
}

waymo_enum! {
    /// Detection / tracking difficulty of a label.
    DifficultyLevel, "difficulty level" {
        Unknown = 0 => "UNKNOWN", Level1 = 1 => "LEVEL_1", Level2 = 2 => "LEVEL_2",
    }
}

waymo_enum! {
    /// `CameraCalibration.rolling_shutter_direction`. scenetok projects as a global shutter.
    RollingShutterDirection, "rolling shutter direction" {
        Unknown = 0 => "UNKNOWN", TopToBottom = 1 => "TOP_TO_BOTTOM", LeftToRight = 2 => "LEFT_TO_RIGHT",
        BottomToTop = 3 => "BOTTOM_TO_TOP", RightToLeft = 4 => "RIGHT_TO_LEFT", GlobalShutter = 5 => "GLOBAL_SHUTTER",
    }
}

waymo_enum! {
    /// WOMD `Track.object_type`.
    AgentType, "agent type" {
        Unset = 0 => "UNSET", Vehicle = 1 => "VEHICLE", Pedestrian = 2 => "PEDESTRIAN",
        Cyclist = 3 => "CYCLIST", Other = 4 => "OTHER",
    }
}

waymo_enum! {
    /// LiDAR semantic segmentation classes (`Segmentation.Type`, 23 classes).
    LidarSegClass, "LiDAR segmentation class" {
        Undefined = 0 => "UNDEFINED", Car = 1 => "CAR", Truck = 2 => "TRUCK", Bus = 3 => "BUS",
        OtherVehicle = 4 => "OTHER_VEHICLE", Motorcyclist = 5 => "MOTORCYCLIST", Bicyclist = 6 => "BICYCLIST",
        Pedestrian = 7 => "PEDESTRIAN", Sign = 8 => "SIGN", TrafficLight = 9 => "TRAFFIC_LIGHT", Pole = 10 => "POLE",
        ConstructionCone = 11 => "CONSTRUCTION_CONE", Bicycle = 12 => "BICYCLE", Motorcycle = 13 => "MOTORCYCLE",
        Building = 14 => "BUILDING", Vegetation = 15 => "VEGETATION", TreeTrunk = 16 => "TREE_TRUNK", Curb = 17 => "CURB",
        Road = 18 => "ROAD", LaneMarker = 19 => "LANE_MARKER", OtherGround = 20 => "OTHER_GROUND",
        Walkable = 21 => "WALKABLE", Sidewalk = 22 => "SIDEWALK",
    }
}

waymo_enum! {
    /// Camera panoptic segmentation classes (`CameraSegmentation.Type`, 29 classes).
    CameraSegClass, "camera segmentation class" {
        Undefined = 0 => "UNDEFINED", EgoVehicle = 1 => "EGO_VEHICLE", Car = 2 => "CAR", Truck = 3 => "TRUCK",
        Bus = 4 => "BUS", OtherLargeVehicle = 5 => "OTHER_LARGE_VEHICLE", Bicycle = 6 => "BICYCLE",
        Motorcycle = 7 => "MOTORCYCLE", Trailer = 8 => "TRAILER", Pedestrian = 9 => "PEDESTRIAN",
        Cyclist = 10 => "CYCLIST", Motorcyclist = 11 => "MOTORCYCLIST", Bird = 12 => "BIRD",
        GroundAnimal = 13 => "GROUND_ANIMAL", ConstructionConePole = 14 => "CONSTRUCTION_CONE_POLE",
        Pole = 15 => "POLE", PedestrianObject = 16 => "PEDESTRIAN_OBJECT", Sign = 17 => "SIGN",
        TrafficLight = 18 => "TRAFFIC_LIGHT", Building = 19 => "BUILDING", Road = 20 => "ROAD",
        LaneMarker = 21 => "LANE_MARKER", RoadMarker = 22 => "ROAD_MARKER", Sidewalk = 23 => "SIDEWALK",
        Vegetation = 24 => "VEGETATION", Sky = 25 => "SKY", Ground = 26 => "GROUND", Dynamic = 27 => "DYNAMIC",
        Static = 28 => "STATIC",
    }
}

waymo_enum! {
    /// The kind and sub-type of a map feature, flattened into one code as WOMD's
    /// `roadgraph_samples/type` does (values 1-3, 6-13, 15-19 are WOMD's); scenetok adds
    /// `LANE_UNDEFINED = 0`, `ROAD_LINE_UNKNOWN = 5`, `ROAD_EDGE_UNKNOWN = 14`, `DRIVEWAY = 20`.
    /// This is the `[MapFeatureComponent].type` column of scenetok's map extension.
    MapFeatureType, "map feature type" {
        LaneUndefined = 0 => "LANE_UNDEFINED", LaneFreeway = 1 => "LANE_FREEWAY",
        LaneSurfaceStreet = 2 => "LANE_SURFACE_STREET", LaneBikeLane = 3 => "LANE_BIKE_LANE",
        RoadLineUnknown = 5 => "ROAD_LINE_UNKNOWN",
        RoadLineBrokenSingleWhite = 6 => "ROAD_LINE_BROKEN_SINGLE_WHITE",
        RoadLineSolidSingleWhite = 7 => "ROAD_LINE_SOLID_SINGLE_WHITE",
        RoadLineSolidDoubleWhite = 8 => "ROAD_LINE_SOLID_DOUBLE_WHITE",
        RoadLineBrokenSingleYellow = 9 => "ROAD_LINE_BROKEN_SINGLE_YELLOW",
        RoadLineBrokenDoubleYellow = 10 => "ROAD_LINE_BROKEN_DOUBLE_YELLOW",
        RoadLineSolidSingleYellow = 11 => "ROAD_LINE_SOLID_SINGLE_YELLOW",
        RoadLineSolidDoubleYellow = 12 => "ROAD_LINE_SOLID_DOUBLE_YELLOW",
        RoadLinePassingDoubleYellow = 13 => "ROAD_LINE_PASSING_DOUBLE_YELLOW",
        RoadEdgeUnknown = 14 => "ROAD_EDGE_UNKNOWN", RoadEdgeBoundary = 15 => "ROAD_EDGE_BOUNDARY",
        RoadEdgeMedian = 16 => "ROAD_EDGE_MEDIAN", StopSign = 17 => "STOP_SIGN", Crosswalk = 18 => "CROSSWALK",
        SpeedBump = 19 => "SPEED_BUMP", Driveway = 20 => "DRIVEWAY",
    }
}

/// The broad kind of a map feature (the `MapFeature.feature_data` oneof).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MapFeatureKind {
    Lane,
    RoadLine,
    RoadEdge,
    StopSign,
    Crosswalk,
    SpeedBump,
    Driveway,
}

impl MapFeatureKind {
    /// The WOMD oneof field name (`lane`, `road_line`, …).
    pub fn name(self) -> &'static str {
        match self {
            MapFeatureKind::Lane => "lane",
            MapFeatureKind::RoadLine => "road_line",
            MapFeatureKind::RoadEdge => "road_edge",
            MapFeatureKind::StopSign => "stop_sign",
            MapFeatureKind::Crosswalk => "crosswalk",
            MapFeatureKind::SpeedBump => "speed_bump",
            MapFeatureKind::Driveway => "driveway",
        }
    }
}

impl MapFeatureType {
    pub fn kind(self) -> MapFeatureKind {
        use MapFeatureType::*;
        match self {
            LaneUndefined | LaneFreeway | LaneSurfaceStreet | LaneBikeLane => MapFeatureKind::Lane,
            RoadLineUnknown
            | RoadLineBrokenSingleWhite
            | RoadLineSolidSingleWhite
            | RoadLineSolidDoubleWhite
            | RoadLineBrokenSingleYellow
            | RoadLineBrokenDoubleYellow
            | RoadLineSolidSingleYellow
            | RoadLineSolidDoubleYellow
            | RoadLinePassingDoubleYellow => MapFeatureKind::RoadLine,
            RoadEdgeUnknown | RoadEdgeBoundary | RoadEdgeMedian => MapFeatureKind::RoadEdge,
            StopSign => MapFeatureKind::StopSign,
            Crosswalk => MapFeatureKind::Crosswalk,
            SpeedBump => MapFeatureKind::SpeedBump,
            Driveway => MapFeatureKind::Driveway,
        }
    }

    /// Polygons (crosswalk, speed bump, driveway) are implicitly closed.
    pub fn is_polygon(self) -> bool {
        matches!(self.kind(), MapFeatureKind::Crosswalk | MapFeatureKind::SpeedBump | MapFeatureKind::Driveway)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_names_round_trip() {
        for l in LaserName::ALL {
            assert_eq!(LaserName::from_value(l.value()), Some(*l));
            assert_eq!(LaserName::from_name(l.name()), Some(*l));
        }
        assert_eq!(LaserName::from_value(0), None);
        assert_eq!(CameraName::from_name("FRONT"), Some(CameraName::Front));
        assert_eq!(CameraName::from_name("front_left"), Some(CameraName::FrontLeft));
        assert_eq!(BoxType::from_name("TYPE_CYCLIST"), Some(BoxType::Cyclist));
        assert_eq!(LidarSegClass::ALL.len(), 23);
        assert_eq!(CameraSegClass::ALL.len(), 29);
        assert_eq!(CameraSegClass::from_value(25), Some(CameraSegClass::Sky));
        // A suffix match must stop at an underscore: "LEFT" is not "SIDE_LEFT".
        assert_eq!(LaserName::from_name("LEFT"), None);
        assert!(LaserName::expected().contains("1=TOP"));
    }

    #[test]
    fn map_feature_kinds() {
        assert_eq!(MapFeatureType::RoadEdgeMedian.kind(), MapFeatureKind::RoadEdge);
        assert!(MapFeatureType::Crosswalk.is_polygon());
        assert!(!MapFeatureType::LaneFreeway.is_polygon());
    }
}
