//! The camera-detection head: every camera of the frame through the SparseViT detector at its
//! ratios (a `Heads` stage, after the encoders). It reuses the image stage's decoded images
//! when that stage ran, else decodes them.

use crate::backend::Device;
use crate::error::Result;
use crate::io::v2::{Component, FrameRequest};
use crate::models::det::{DecodeOptions, Detector, Ratios};
use crate::models::image_encoder::RgbView;
use crate::pipeline::context::{CameraDetOutput, FrameContext};
use crate::pipeline::stage::{Stage, StageKind};

/// Cameras → 2-D boxes per camera.
pub struct CameraDetStage {
    det: Detector,
    ratios: Ratios,
    opts: DecodeOptions,
    device: Device,
}

impl CameraDetStage {
    /// `ratios` from the detector's config ([`Ratios::dense`] for the dense backbone).
    pub fn new(det: Detector, ratios: Ratios, device: Device) -> Self {
        CameraDetStage { det, ratios, opts: DecodeOptions::default(), device }
    }
}

impl Stage for CameraDetStage {
    fn kind(&self) -> StageKind {
        StageKind::Heads
    }
    fn name(&self) -> &'static str {
        "camera_det"
    }
    fn request(&self) -> Option<FrameRequest> {
        Some(FrameRequest::only(&[Component::CameraImage, Component::CameraCalibration]).without_second_returns())
    }

    fn run(&mut self, ctx: &mut FrameContext) -> Result<()> {
        let images = ctx.camera_images()?;
        let mut out = CameraDetOutput::default();
        for ((camera, _), rgb) in images.cameras.iter().zip(&images.images) {
            let d = self.det.detect(&self.device, RgbView::from(rgb), &self.ratios, &self.opts)?;
            let (ran, all) =
                d.windows.iter().flatten().fold((0, 0), |a, b| (a.0 + b.kept.len(), a.1 + b.grid.0 * b.grid.1));
            out.cameras.push((*camera, d.detections, ran as f64 / all.max(1) as f64));
        }
        ctx.camera_det = Some(out);
        Ok(())
    }
}
