//! The image stage: the frame's cameras through the image model in one batch, and one
//! output sampled for every point of the points stage (the MoST per-point image feature).

use crate::error::{Error, Result};
use crate::io::v2::{Component, FrameRequest};
use crate::models::image_encoder::{ImageEncoder, RgbView, decode_frame_images_into, point_features_into};
use crate::pipeline::context::FrameContext;
use crate::pipeline::stage::{Stage, StageKind};

/// Cameras → model outputs → a feature per point.
pub struct ImageStage {
    encoder: ImageEncoder,
    /// The spatial output sampled per point.
    map: String,
}

impl ImageStage {
    /// Samples `map` (default: the model config's `sample`); an output that is not a feature
    /// map or patch tokens of the model is an error naming the config.
    pub fn new(encoder: ImageEncoder, map: Option<String>) -> Result<Self> {
        let map = map.unwrap_or_else(|| encoder.config().sample.clone());
        match encoder.config().output(&map) {
            Some(o) if o.is_spatial() => Ok(ImageStage { encoder, map }),
            _ => Err(Error::invalid(
                crate::error::Location::file(&encoder.config().path),
                "the name of a feature_map or patch_tokens output",
                map,
            )),
        }
    }

    /// The channels of each point's feature.
    pub fn channels(&self) -> usize {
        self.encoder.config().output(&self.map).map_or(0, |o| o.channels)
    }

    pub fn encoder(&self) -> &ImageEncoder {
        &self.encoder
    }
}

impl Stage for ImageStage {
    fn kind(&self) -> StageKind {
        StageKind::ImageFeatures
    }
    fn name(&self) -> &'static str {
        "image"
    }
    fn request(&self) -> Option<FrameRequest> {
        Some(FrameRequest::only(&[Component::CameraImage, Component::CameraCalibration]).without_second_returns())
    }

    fn run(&mut self, ctx: &mut FrameContext) -> Result<()> {
        // The last frame's buffers: same-sized images decode, and outputs and per-point
        // features fill, without fresh pages (which cost as much as the sampling itself).
        let mut out = ctx.take_spare_image();
        match ctx.decoded.take() {
            Some(images) => out.images = images,
            None => decode_frame_images_into(&ctx.frame, &ctx.at, &mut out.images)?,
        }
        if out.images.images.is_empty() {
            return Err(Error::invalid(ctx.at_frame(), "at least one camera image with its calibration", "none"));
        }
        let views: Vec<RgbView<'_>> = out.images.images.iter().map(RgbView::from).collect();
        self.encoder.encode_into(&views, &mut out.outputs)?;
        out.map.clone_from(&self.map);
        let fmap = out.outputs.map(&self.map).ok_or_else(|| {
            Error::invalid(ctx.at_frame(), "the name of a spatial output of the model", self.map.clone())
        })?;
        out.points.resize_with(ctx.points.len(), Default::default);
        for (cloud, features) in ctx.points.iter().zip(&mut out.points) {
            point_features_into(&cloud.cloud.xyz, &out.images.cameras, fmap, features)?;
        }
        ctx.image = Some(out);
        Ok(())
    }
}
