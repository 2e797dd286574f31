//! What the server runs on each frame and which sensors a frame needs: a preset names the
//! stages and sensors; the frame's required parts and the components a sender should send
//! follow from them.

use crate::io::v2::Component;
use crate::scene::{CameraName, LaserName};

use super::assembler::Part;

/// One stage the stream can run (the pipeline's stages, in their order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize)]
pub enum StageName {
    /// Range images → points.
    Points,
    /// The sparse-conv LiDAR encoder (per-point classes, voxel features).
    Lidar,
    /// The ONNX image model, sampled per point.
    Image,
    /// Scene tokens.
    Tokens,
    /// Motion prediction from the recent frames' tracked boxes.
    Motion,
    /// SparseViT camera detection.
    Detect,
}

/// Named stage and sensor sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Preset {
    /// For 2 CPU cores at 10 Hz: the TOP laser's points, the front camera through SparseViT
    /// (pruned, at a reduced input scale: `scenetok serve` picks them), motion from the
    /// tracked boxes.
    Streaming,
    /// Every laser and camera: points, LiDAR encoder, image model, scene tokens, SparseViT,
    /// motion.
    Full,
}

/// Stages and the sensors they use.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PresetSpec {
    pub stages: Vec<StageName>,
    /// Lasers a frame must have (the others are dropped before the stages run).
    pub lasers: Vec<LaserName>,
    /// Cameras a frame must have (likewise).
    pub cameras: Vec<CameraName>,
}

impl Preset {
    /// Frames in the stages at once (`ServeOptions::in_flight`). The streaming preset's
    /// stages leave a core idle much of a frame (the points and motion are mostly one
    /// thread), so the next frame's run beside the detector: 2 (p99 108 against 125 ms with
    /// 1 in an A/B of 150 s each). The full preset's each fill both cores: a second frame in
    /// them halves the speed of both and doubles the latency (p50 3.5 s against 1.6 s), so 1.
    pub fn in_flight(self) -> usize {
        match self {
            Preset::Streaming => 2,
            Preset::Full => 1,
        }
    }

    pub fn spec(self) -> PresetSpec {
        match self {
            Preset::Streaming => PresetSpec {
                stages: vec![StageName::Points, StageName::Motion, StageName::Detect],
                lasers: vec![LaserName::Top],
                cameras: vec![CameraName::Front],
            },
            Preset::Full => PresetSpec {
                stages: vec![
                    StageName::Points,
                    StageName::Lidar,
                    StageName::Image,
                    StageName::Tokens,
                    StageName::Motion,
                    StageName::Detect,
                ],
                lasers: LaserName::ALL.to_vec(),
                cameras: CameraName::ALL[..5].to_vec(),
            },
        }
    }
}

impl PresetSpec {
    fn uses_lidar(&self) -> bool {
        self.stages.iter().any(|s| matches!(s, StageName::Points | StageName::Lidar | StageName::Tokens))
    }
    /// Whether a stage reads the camera images.
    pub fn uses_cameras(&self) -> bool {
        self.stages.iter().any(|s| matches!(s, StageName::Image | StageName::Detect))
    }
    fn uses_boxes(&self) -> bool {
        self.stages.iter().any(|s| matches!(s, StageName::Tokens | StageName::Motion))
    }

    /// The parts without which a frame does not run. Boxes are not among them (a frame may
    /// have none); they join a frame when they arrive before its required parts.
    pub fn required(&self) -> Vec<Part> {
        let mut out = vec![Part::frame(Component::VehiclePose)];
        if self.uses_lidar() {
            for &l in &self.lasers {
                out.push(Part::laser(Component::Lidar, l));
                out.push(Part::laser(Component::LidarCalibration, l));
            }
            // Only TOP has per-pixel poses (rolling-shutter compensation).
            if self.lasers.contains(&LaserName::Top) {
                out.push(Part::laser(Component::LidarPose, LaserName::Top));
            }
        }
        if self.uses_cameras() {
            for &c in &self.cameras {
                out.push(Part::camera(Component::CameraImage, c));
                out.push(Part::camera(Component::CameraCalibration, c));
            }
        }
        out
    }

    /// Every component a sender should send, in the order it should send them: segment-level
    /// ones first, then per frame the optional parts before the required ones (so they join).
    pub fn components(&self) -> Vec<Component> {
        let mut out = Vec::new();
        if self.uses_lidar() {
            out.push(Component::LidarCalibration);
        }
        if self.uses_cameras() {
            out.push(Component::CameraCalibration);
        }
        if self.stages.contains(&StageName::Motion) {
            out.push(Component::MapFeature);
        }
        if self.uses_boxes() {
            out.push(Component::LidarBox);
        }
        out.push(Component::VehiclePose);
        if self.uses_cameras() {
            out.push(Component::CameraImage);
        }
        if self.uses_lidar() {
            out.push(Component::LidarPose);
            out.push(Component::Lidar);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_needs_top_and_front_only() {
        let s = Preset::Streaming.spec();
        let req = s.required();
        assert!(req.contains(&Part::laser(Component::Lidar, LaserName::Top)));
        assert!(req.contains(&Part::camera(Component::CameraImage, CameraName::Front)));
        assert!(!req.iter().any(|p| p.sensor == super::super::Sensor::Laser(LaserName::Rear)));
        assert!(!req.iter().any(|p| p.component == Component::LidarBox));
        let c = s.components();
        // Boxes before what completes a frame; segment-level parts first.
        let pos = |x| c.iter().position(|&y| y == x).unwrap();
        assert!(pos(Component::LidarBox) < pos(Component::Lidar));
        assert!(pos(Component::LidarCalibration) < pos(Component::LidarBox));
        let full = Preset::Full.spec().required();
        assert_eq!(full.iter().filter(|p| p.component == Component::Lidar).count(), 5);
    }
}
