//! What is known about one frame as it goes through the pipeline: the frame as read, then
//! each stage's output in a slot of its own, filled in [`crate::pipeline::StageKind`] order.
//! A context is reused frame after frame ([`FrameContext::load`]), so stages that keep their
//! buffers in it (decoded images, model outputs, point features) stream without fresh memory.

use std::ops::Range;
use std::time::Duration;

use crate::error::{Location, Result};
use crate::geom::range_image::PointCloud;
use crate::models::image_encoder::{FrameImages, Outputs, PointFeatures, decode_frame_images};
use crate::models::scene_tokens::SceneElements;
use crate::scene::{Frame, LaserName};
use crate::sparse::SparseTensor;

use super::source::SourceFrame;

/// Which return of a laser a cloud holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Return {
    First = 1,
    Second = 2,
}

/// One return of one laser as points, in range-image pixel order.
#[derive(Debug, Clone)]
pub struct LaserCloud {
    pub laser: LaserName,
    pub ret: Return,
    /// Vehicle-frame points, their source pixels and range-image channels.
    pub cloud: PointCloud,
    /// The semantic class of each point from `lidar_segmentation` (−1 where the pixel has
    /// none), when the points stage was asked for labels and the frame has them.
    pub labels: Option<Vec<i32>>,
}

/// The LiDAR encoder's output.
#[derive(Debug, Clone)]
pub struct LidarOutput {
    /// The predicted class of every point, per entry of [`FrameContext::points`] (`None`
    /// for clouds the encoder did not take).
    pub classes: Vec<Option<Vec<i32>>>,
    /// The last decoder level's voxel features (what scene tokens pool).
    pub features: SparseTensor,
    /// The row of `features` holding each point of the encoder's sweep (`None` for points
    /// without a voxel)...
    pub point_voxel: Vec<Option<u32>>,
    /// ...and where each entry of [`FrameContext::points`] lies in that sweep (`None` for
    /// clouds the encoder did not take).
    pub spans: Vec<Option<Range<usize>>>,
    /// Voxel size in metres.
    pub voxel_size: f32,
}

/// The image model's output for the frame's cameras.
#[derive(Debug, Default)]
pub struct ImageOutput {
    /// The decoded images with their camera models, in the batch order.
    pub images: FrameImages,
    /// The model's outputs for the batch.
    pub outputs: Outputs,
    /// The output sampled per point.
    pub map: String,
    /// The image feature of every point, per entry of [`FrameContext::points`].
    pub points: Vec<PointFeatures>,
}

/// The scene elements of a frame.
#[derive(Debug, Clone)]
pub struct TokenOutput {
    /// Over the concatenated first returns of [`TokenOutput::clouds`].
    pub elements: SceneElements,
    /// `(entry of FrameContext::points, its points' range in the concatenation)`.
    pub clouds: Vec<(usize, Range<usize>)>,
}

/// The camera-segmentation head's output.
#[derive(Debug, Clone, Default)]
pub struct CameraSegOutput {
    /// Per camera: name, width, height and the class of every pixel (row-major, full resolution).
    pub cameras: Vec<(crate::scene::CameraName, u32, u32, Vec<u8>)>,
    /// Per camera: pixels SparseRefine refined (0 for the dense model alone).
    pub refined: Vec<usize>,
}

/// The camera-detection head's output.
#[derive(Debug, Clone, Default)]
pub struct CameraDetOutput {
    /// Per camera: its boxes (full-resolution pixels), and the share of windows the backbone ran.
    pub cameras: Vec<(crate::scene::CameraName, Vec<crate::models::det::Detection>, f64)>,
}

/// One frame and every stage's output so far.
#[derive(Debug, Default)]
pub struct FrameContext {
    pub segment: String,
    /// Index of the frame within its segment.
    pub index: usize,
    pub frame: Frame,
    /// Where errors about this frame point.
    pub at: Location,
    /// Points stage: clouds per laser and return.
    pub points: Vec<LaserCloud>,
    /// LiDAR encoder stage.
    pub lidar: Option<LidarOutput>,
    /// Image encoder stage.
    pub image: Option<ImageOutput>,
    /// Scene-token stage.
    pub tokens: Option<TokenOutput>,
    /// Camera-segmentation head.
    pub camera_seg: Option<CameraSegOutput>,
    /// Camera-detection head.
    pub camera_det: Option<CameraDetOutput>,
    /// Motion stage.
    pub motion: Option<super::stages::MotionOutput>,
    /// How long each stage took on this frame, in the order they ran.
    pub times: Vec<(&'static str, Duration)>,
    /// The frame's camera images decoded before the pipeline ran it (the streaming server
    /// decodes the next frame's while this one runs); the image stage and the camera heads
    /// take them instead of decoding.
    pub decoded: Option<FrameImages>,
    /// The last frame's image output, whose memory the image stage reuses.
    spare_image: Option<ImageOutput>,
}

impl FrameContext {
    /// The frame's decoded camera images: the image stage's when it ran, else those decoded
    /// ahead, else decoded now (the camera heads read them either way).
    pub fn camera_images(&self) -> Result<std::borrow::Cow<'_, FrameImages>> {
        match (&self.image, &self.decoded) {
            (Some(image), _) => Ok(std::borrow::Cow::Borrowed(&image.images)),
            (None, Some(images)) => Ok(std::borrow::Cow::Borrowed(images)),
            (None, None) => Ok(std::borrow::Cow::Owned(decode_frame_images(&self.frame, &self.at)?)),
        }
    }

    /// A context for one frame.
    pub fn new(frame: SourceFrame) -> Self {
        let mut ctx = FrameContext::default();
        ctx.load(frame);
        ctx
    }

    /// Replaces the frame, clearing what the stages derived from the last one but keeping
    /// the memory of the buffers they reuse.
    pub fn load(&mut self, frame: SourceFrame) {
        self.segment = frame.segment;
        self.index = frame.index;
        self.frame = frame.frame;
        self.at = frame.at;
        self.points.clear();
        self.lidar = None;
        self.tokens = None;
        self.camera_seg = None;
        self.camera_det = None;
        self.motion = None;
        self.decoded = None;
        if let Some(image) = self.image.take() {
            self.spare_image = Some(image);
        }
        self.times.clear();
    }

    /// The memory of an earlier frame's image output, to be filled anew (or a new one).
    pub fn take_spare_image(&mut self) -> ImageOutput {
        self.spare_image.take().unwrap_or_default()
    }

    /// The frame's location for errors.
    pub fn at_frame(&self) -> Location {
        self.at.clone().frame(self.frame.timestamp_micros)
    }
}
