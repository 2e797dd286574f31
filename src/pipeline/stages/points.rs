//! The points stage: every selected laser's range images → vehicle-frame points (ego-motion
//! compensated where the laser has a per-pixel pose), optionally with the semantic label of
//! each point's pixel.

use crate::error::{Error, Result};
use crate::geom::range_image::{gather_pixels, range_image_to_points};
use crate::io::v2::{Component, FrameRequest};
use crate::pipeline::context::{FrameContext, LaserCloud, Return};
use crate::pipeline::stage::{Stage, StageKind};
use crate::scene::LaserName;

/// Range images → points.
#[derive(Debug, Clone, Default)]
pub struct PointsStage {
    /// Only these lasers (all when empty).
    pub lasers: Vec<LaserName>,
    /// Also the second returns.
    pub second_returns: bool,
    /// Attach `lidar_segmentation` labels (the clouds of lasers without labels get none).
    pub labels: bool,
}

impl PointsStage {
    /// First returns of `lasers` (all when empty).
    pub fn first_returns(lasers: &[LaserName]) -> Self {
        PointsStage { lasers: lasers.to_vec(), ..Default::default() }
    }
    pub fn with_second_returns(mut self) -> Self {
        self.second_returns = true;
        self
    }
    pub fn with_labels(mut self) -> Self {
        self.labels = true;
        self
    }
}

impl Stage for PointsStage {
    fn kind(&self) -> StageKind {
        StageKind::Points
    }
    fn name(&self) -> &'static str {
        "points"
    }
    fn request(&self) -> Option<FrameRequest> {
        let mut c = vec![Component::Lidar, Component::LidarCalibration, Component::LidarPose, Component::VehiclePose];
        if self.labels {
            c.push(Component::LidarSegmentation);
        }
        let r = FrameRequest::only(&c);
        Some(if self.second_returns { r } else { r.without_second_returns() })
    }

    fn run(&mut self, ctx: &mut FrameContext) -> Result<()> {
        let pose = ctx.frame.vehicle_pose;
        let mut clouds = Vec::new();
        for laser in &ctx.frame.lasers {
            if !self.lasers.is_empty() && !self.lasers.contains(&laser.laser) {
                continue;
            }
            let at = || ctx.at_frame().detail(format!("laser {}", laser.laser.name()));
            let returns = [
                (Return::First, &laser.return1, &laser.segmentation1),
                (Return::Second, &laser.return2, &laser.segmentation2),
            ];
            for (ret, image, seg) in returns {
                let Some(image) = image else { continue };
                if ret == Return::Second && !self.second_returns {
                    continue;
                }
                let calib = laser.calibration.as_ref().ok_or_else(|| {
                    Error::invalid(at(), "a lidar_calibration row for the laser (range images need it)", "none")
                })?;
                // Return 2 uses the return-1 pixel pose (Waymo stores only one).
                let cloud = range_image_to_points(image, calib, laser.pose.as_ref(), pose.as_ref())
                    .map_err(|e| Error::invalid(at(), "a convertible range image", e.to_string()))?;
                let labels = match seg.as_ref().filter(|_| self.labels) {
                    Some(seg) => {
                        let px = gather_pixels(seg, &cloud).map_err(|e| {
                            Error::invalid(at(), "a segmentation image of the range image's size", e.to_string())
                        })?;
                        Some(px.chunks_exact(seg.channels).map(|p| p[1]).collect())
                    }
                    None => None,
                };
                clouds.push(LaserCloud { laser: laser.laser, ret, cloud, labels });
            }
        }
        ctx.points.extend(clouds);
        Ok(())
    }
}
