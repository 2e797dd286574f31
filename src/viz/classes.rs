//! Class colours and the `AnnotationContext`s that name them: the 23 LiDAR segmentation
//! classes, the 29 camera panoptic classes, the box types and the WOMD agent types.
//!
//! Colours follow the Cityscapes-like palette most driving tools use (road purple, sidewalk
//! pink, vegetation olive, sky blue, cars dark blue, people red) so recordings look familiar;
//! the same semantic class has the same colour in LiDAR and camera views.

use rerun::datatypes::{AnnotationInfo, ClassDescription, Rgba32};

use crate::scene::{AgentType, BoxType, CameraSegClass, LidarSegClass};

type Rgb = [u8; 3];

/// Colour of a LiDAR segmentation class.
pub fn lidar_class_color(c: LidarSegClass) -> Rgb {
    use LidarSegClass::*;
    match c {
        Undefined => [90, 90, 90],
        Car => [0, 0, 142],
        Truck => [0, 0, 70],
        Bus => [0, 60, 100],
        OtherVehicle => [0, 80, 160],
        Motorcyclist => [255, 60, 0],
        Bicyclist => [255, 0, 0],
        Pedestrian => [220, 20, 60],
        Sign => [220, 220, 0],
        TrafficLight => [250, 170, 30],
        Pole => [153, 153, 153],
        ConstructionCone => [255, 120, 0],
        Bicycle => [119, 11, 32],
        Motorcycle => [0, 0, 230],
        Building => [70, 70, 70],
        Vegetation => [107, 142, 35],
        TreeTrunk => [120, 80, 40],
        Curb => [190, 153, 153],
        Road => [128, 64, 128],
        LaneMarker => [255, 255, 255],
        OtherGround => [81, 0, 81],
        Walkable => [152, 251, 152],
        Sidewalk => [244, 35, 232],
    }
}

/// Colour of a camera panoptic class.
pub fn camera_class_color(c: CameraSegClass) -> Rgb {
    use CameraSegClass::*;
    match c {
        Undefined => [0, 0, 0],
        EgoVehicle => [40, 40, 40],
        Car => [0, 0, 142],
        Truck => [0, 0, 70],
        Bus => [0, 60, 100],
        OtherLargeVehicle => [0, 80, 160],
        Bicycle => [119, 11, 32],
        Motorcycle => [0, 0, 230],
        Trailer => [0, 0, 110],
        Pedestrian => [220, 20, 60],
        Cyclist => [255, 0, 0],
        Motorcyclist => [255, 60, 0],
        Bird => [165, 42, 42],
        GroundAnimal => [200, 120, 60],
        ConstructionConePole => [255, 120, 0],
        Pole => [153, 153, 153],
        PedestrianObject => [250, 0, 200],
        Sign => [220, 220, 0],
        TrafficLight => [250, 170, 30],
        Building => [70, 70, 70],
        Road => [128, 64, 128],
        LaneMarker => [255, 255, 255],
        RoadMarker => [200, 200, 128],
        Sidewalk => [244, 35, 232],
        Vegetation => [107, 142, 35],
        Sky => [70, 130, 180],
        Ground => [81, 0, 81],
        Dynamic => [111, 74, 0],
        Static => [110, 110, 110],
    }
}

/// Colour of a box type (3-D and 2-D labels).
pub fn box_type_color(t: BoxType) -> Rgb {
    match t {
        BoxType::Unknown => [160, 160, 160],
        BoxType::Vehicle => [255, 200, 0],
        BoxType::Pedestrian => [255, 60, 90],
        BoxType::Sign => [0, 220, 220],
        BoxType::Cyclist => [60, 200, 60],
    }
}

/// Colour of a WOMD agent type (tracks, histories, predictions).
pub fn agent_type_color(t: AgentType) -> Rgb {
    match t {
        AgentType::Unset => [160, 160, 160],
        AgentType::Vehicle => box_type_color(BoxType::Vehicle),
        AgentType::Pedestrian => box_type_color(BoxType::Pedestrian),
        AgentType::Cyclist => box_type_color(BoxType::Cyclist),
        AgentType::Other => [180, 120, 255],
    }
}

fn context(classes: impl Iterator<Item = (i64, &'static str, Rgb)>) -> rerun::AnnotationContext {
    rerun::AnnotationContext::new(classes.map(|(id, name, [r, g, b])| {
        ClassDescription::from(AnnotationInfo {
            id: id as u16,
            label: Some(name.into()),
            color: Some(Rgba32::from_rgb(r, g, b)),
        })
    }))
}

/// The 23 LiDAR segmentation classes (class id = `Segmentation.Type` value).
pub fn lidar_classes() -> rerun::AnnotationContext {
    context(LidarSegClass::ALL.iter().map(|c| (c.value(), c.name(), lidar_class_color(*c))))
}

/// The 29 camera panoptic classes (class id = `CameraSegmentation.Type` value).
pub fn camera_classes() -> rerun::AnnotationContext {
    context(CameraSegClass::ALL.iter().map(|c| (c.value(), c.name(), camera_class_color(*c))))
}

/// The box types (class id = `Label.Type` value).
pub fn box_types() -> rerun::AnnotationContext {
    context(BoxType::ALL.iter().map(|t| (t.value(), t.name(), box_type_color(*t))))
}

/// The WOMD agent types (class id = `Track.ObjectType` value).
pub fn agent_types() -> rerun::AnnotationContext {
    context(AgentType::ALL.iter().map(|t| (t.value(), t.name(), agent_type_color(*t))))
}

/// A 256-entry turbo colormap (Google's polynomial approximation), for intensities.
pub fn turbo_lut() -> [[u8; 3]; 256] {
    let mut lut = [[0u8; 3]; 256];
    for (i, out) in lut.iter_mut().enumerate() {
        let x = i as f64 / 255.0;
        let r = 0.13572138
            + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))));
        let g =
            0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))));
        let b = 0.10667330
            + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))));
        *out = [r, g, b].map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8);
    }
    lut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_distinct_enough_colour_and_a_name() {
        let colours: std::collections::BTreeSet<Rgb> =
            LidarSegClass::ALL.iter().map(|c| lidar_class_color(*c)).collect();
        assert_eq!(colours.len(), 23, "lidar class colours must be distinct");
        let colours: std::collections::BTreeSet<Rgb> =
            CameraSegClass::ALL.iter().map(|c| camera_class_color(*c)).collect();
        assert_eq!(colours.len(), 29, "camera class colours must be distinct");
    }

    #[test]
    fn turbo_runs_blue_green_red() {
        let lut = turbo_lut();
        assert!(lut[0].iter().all(|c| *c < 50), "starts dark");
        assert!(lut[30][2] > 200 && lut[30][0] < 100, "then blue");
        assert!(lut[255][0] > lut[255][2], "high end is red");
        assert!(lut[128][1] > 200, "middle is green-yellow");
    }
}
