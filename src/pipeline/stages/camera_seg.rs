//! The camera-segmentation head: the frame's cameras through the dense model at its scale and,
//! with a refiner, SparseRefine on the uncertain pixels (a `Heads` stage, after the encoders).
//! It reuses the image stage's decoded images when that stage ran, else decodes them.

use crate::error::{Error, Result};
use crate::io::v2::{Component, FrameRequest};
use crate::models::image_encoder::RgbView;
use crate::models::seg::refiner::{Refiner, refine_image};
use crate::models::seg::{DenseSegModel, Entropy, selector::select};
use crate::pipeline::context::{CameraSegOutput, FrameContext};
use crate::pipeline::stage::{Stage, StageKind};
use crate::sparse::layers::RunCtx;

/// Cameras → full-resolution classes per camera.
pub struct CameraSegStage {
    dense: DenseSegModel,
    /// The refiner and its τ (SparseRefine), or none (the dense model alone).
    refiner: Option<(Refiner, f32)>,
    run: RunCtx,
}

impl CameraSegStage {
    /// The dense model alone.
    pub fn dense(dense: DenseSegModel) -> Self {
        CameraSegStage { dense, refiner: None, run: RunCtx::default() }
    }
    /// SparseRefine: `dense` at its (low) scale, `refiner` on the pixels whose entropy is
    /// above the refiner's τ. A refiner without a τ in its weights is an error.
    pub fn sparse_refine(dense: DenseSegModel, refiner: Refiner) -> Result<Self> {
        let tau = refiner.tau.ok_or_else(|| {
            Error::invalid(
                crate::error::Location::default().detail("refiner"),
                "a `tau` in the weights' metadata",
                "none",
            )
        })?;
        Ok(CameraSegStage { dense, refiner: Some((refiner, tau)), run: RunCtx::default() })
    }
}

impl Stage for CameraSegStage {
    fn kind(&self) -> StageKind {
        StageKind::Heads
    }
    fn name(&self) -> &'static str {
        "camera_seg"
    }
    fn request(&self) -> Option<FrameRequest> {
        Some(FrameRequest::only(&[Component::CameraImage, Component::CameraCalibration]).without_second_returns())
    }

    fn run(&mut self, ctx: &mut FrameContext) -> Result<()> {
        let images = ctx.camera_images()?;
        let mut out = CameraSegOutput::default();
        if images.images.is_empty() {
            ctx.camera_seg = Some(out);
            return Ok(());
        }
        let views: Vec<RgbView<'_>> = images.images.iter().map(RgbView::from).collect();
        let entropy = self.refiner.as_ref().map_or(Entropy::None, |(_, tau)| Entropy::Above(*tau));
        let (dense, _) = self.dense.run(&views, entropy)?;
        for (((camera, _), rgb), d) in images.cameras.iter().zip(&images.images).zip(&dense) {
            let classes = d.full_classes();
            let (classes, refined) = match &self.refiner {
                Some((refiner, tau)) => {
                    let sel = select(d, *tau);
                    (refine_image(refiner, d, &classes, rgb, &sel, &self.run)?.0, sel.len())
                }
                None => (classes, 0),
            };
            out.cameras.push((*camera, d.width as u32, d.height as u32, classes));
            out.refined.push(refined);
        }
        ctx.camera_seg = Some(out);
        Ok(())
    }
}
