//! The streaming sensor pipeline: sensor data in over Arrow Flight, frames assembled from their
//! components, the pipeline run on each within a deadline, results out as Arrow streams.
//!
//! ```text
//! DoPut (v2 component batches) ─► assembler ─► frame queue ─► stage ─► stage ─► … ─► results hub
//!            │ rejected, counted        │ incomplete: rejected    │ full: oldest dropped          ├► DoGet subscribers
//!            ▼                          ▼                         ▼                               ├► parquet parts
//!          stats ◄────────────────────────────────────────────────────────────────────────────── └► rerun
//! ```
//!
//! **Protocol.** Every `DoPut` stream carries record batches in the v2 component schemas
//! (docs/formats.md), read as tolerantly as a parquet file. A batch's component is named by
//! the stream's descriptor path (`["lidar"]`, `["camera_image"]`, …), else by the schema
//! metadata key `scenetok.component`, else recognised from its column names. One stream may
//! carry several components (a new schema message switches component: scenetok's own `replay`
//! sends one such stream per segment, frame after frame), or one stream per component may be
//! used (pyarrow's `do_put`). Per-segment components (`lidar_calibration`,
//! `camera_calibration`, `map_feature`) are sent before the frames that need them.
//!
//! **Frames.** Rows are grouped by `(segment, timestamp)`, joining an open frame within the
//! tolerance. A frame is complete when every part its preset requires is there (e.g. `lidar`
//! of laser TOP, `camera_image` of FRONT, the calibrations); other components join a frame only
//! if they arrive before that. A frame still incomplete after the timeout is rejected, as is a
//! row older than the newest frame already dispatched (out of order) or too far ahead of its
//! segment's clock (from the future), and one that does not decode (a range image of the wrong
//! length, an unknown enum); every rejection is counted by reason and logged, and the stream goes on.
//!
//! **Load.** Complete frames wait in a bounded queue; when it is full the oldest waiting frame
//! is dropped (the receiver never blocks) and counted. Each stage runs on its own thread with
//! a bounded queue before the next: a slow stage makes the earlier ones wait, which backs
//! frames up into the front queue, so the frames dropped are always ones not yet started. Results go to each subscriber through
//! its own bounded buffer; a subscriber that does not keep up loses results, counted, and never
//! stalls the pipeline. Every frame ends exactly once as processed (on time or late), dropped or
//! rejected, so `received = processed + dropped + rejected` once the server is idle.

pub mod assembler;
pub mod hub;
pub mod presets;
pub mod queue;
pub mod replay;
pub mod results;
pub mod server;
mod service;
mod shared;
pub mod stats;
pub mod wire;

pub use assembler::{Arrived, Assembler, AssemblyConfig, Event, Part, Sensor};
pub use presets::Preset;
pub use queue::FrameQueue;
pub use results::FrameResult;
pub use server::{FrameSink, ServeOptions, Server};
pub use service::ResultsTicket;
pub use stats::{DropReason, FrameTimes, RejectReason, Stats, StatsReport};
