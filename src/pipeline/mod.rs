//! The per-frame pipeline. A [`Source`] opens any input (a v2 dataset folder, a v1 `Frame`
//! TFRecord, a WOMD `Scenario` TFRecord) and yields frames (or motion scenarios); a
//! [`Pipeline`] runs its [`Stage`]s on each frame in [`StageKind`] order (points → LiDAR
//! features → image features → tokens → motion → heads), each filling its slot of the
//! [`FrameContext`], with every stage's wall time recorded ([`timing`]). Commands and
//! evaluations build the pipeline they need and read the context.
//!
//! ```text
//! Source ─► SourceFrame ─► FrameContext ─► points ─► lidar ─► image ─► … ─► consumer
//! ```

pub mod context;
pub mod export;
pub mod motion_split;
pub mod source;
pub mod stage;
pub mod stages;
pub mod timing;

pub use context::{FrameContext, ImageOutput, LaserCloud, LidarOutput, Return};
pub use source::{FrameSelection, Frames, Segments, Source, SourceFrame};
pub use stage::{Pipeline, Stage, StageKind};
pub use timing::{LatencyStats, StageTimes};
