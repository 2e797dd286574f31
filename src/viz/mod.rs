//! Visualisation in rerun: every input (v2 datasets, v1 `Frame`s, WOMD `Scenario`s) and every
//! output (motion predictions, metrics; detections and scene tokens through the hooks in
//! [`hooks`]) logged on rerun's conventions, with a blueprint that lays out the views.
//!
//! Entry points: [`record_source`] (a v2 dataset or a v1 TFRecord through the pipeline's
//! source, streamed frame by frame: a segment is never held in memory), [`record_frames`]
//! (any frame iterator), and [`record_motion`] (scenarios with predictions and metrics). Open a recording with
//! [`open_recording`] on a [`VizSink`]; entity paths are in [`paths`].

pub mod attention;
pub mod blueprint;
pub mod classes;
pub mod elements;
pub mod frame;
pub mod hooks;
pub mod input;
#[cfg(feature = "serve")]
pub mod live;
pub mod map;
pub mod motion;
pub mod paths;
pub mod refine;
pub mod sparsevit;

use std::ops::Range;
use std::path::{Path, PathBuf};

use rerun::RecordingStream;

pub use frame::{FrameCounts, FrameLogger, PointColors};
pub use motion::{MotionCounts, MotionRun, record_motion};

use crate::io::v2::FrameRequest;
use crate::pipeline::{FrameSelection, Segments, Source};
use crate::scene::Frame;

/// The rerun application id of scenetok recordings (blueprints apply per application id).
pub const APP_ID: &str = "scenetok";

#[derive(Debug, thiserror::Error)]
pub enum VizError {
    #[error(transparent)]
    Data(#[from] crate::Error),
    #[error(transparent)]
    Geom(#[from] crate::geom::GeomError),
    #[error("rerun: {0}")]
    Rerun(#[from] rerun::RecordingStreamError),
    #[error("rerun: {0}")]
    Flush(#[from] rerun::sink::SinkFlushError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Attention(#[from] crate::eval::attention::AttentionError),
}

impl VizError {
    /// Names `input` in an error about a frame that did not know its file (the frame logger
    /// sees frames, not where they came from).
    pub fn in_file(self, input: &Path) -> Self {
        match self {
            VizError::Data(e) => VizError::Data(e.in_file(input)),
            VizError::Invalid(m) => VizError::Invalid(format!("{}, {m}", input.display())),
            other => other,
        }
    }
}

/// What to log and how.
#[derive(Debug, Clone, PartialEq)]
pub struct VizOptions {
    /// The segment to show (default: the first).
    pub segment: Option<String>,
    /// Frame indices within the segment (default: all).
    pub frames: Option<Range<usize>>,
    pub point_colors: PointColors,
    /// Point radius in UI points.
    pub point_radius: f32,
    pub second_returns: bool,
    pub range_images: bool,
    pub cameras: bool,
    pub segmentation: bool,
    /// Positions drawn behind each labelled object (frames; 0 = none).
    pub track_history: usize,
    /// Motion scenarios of a v2 dataset use the identity pose where a frame has no
    /// `vehicle_pose` (with a warning) instead of failing.
    pub allow_missing_pose: bool,
    /// Also break each frame into scene elements (geometry only: no encoder runs) and log
    /// them ([`hooks::log_scene_elements`]).
    pub tokens: bool,
}

impl Default for VizOptions {
    fn default() -> Self {
        VizOptions {
            segment: None,
            frames: None,
            point_colors: PointColors::Intensity,
            point_radius: 1.0,
            second_returns: false,
            range_images: true,
            cameras: true,
            segmentation: true,
            track_history: 20,
            allow_missing_pose: false,
            tokens: false,
        }
    }
}

/// Where a recording goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VizSink {
    /// An `.rrd` file.
    Save(PathBuf),
    /// A viewer started for it (`rerun` on PATH, else the source tree's `.venv/bin/rerun`
    /// from the setup script).
    Spawn,
    /// A running viewer or server: `host:port` or a `rerun+http://…/proxy` URL.
    Connect(String),
}

/// Which layout to send with a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Perception,
    Motion,
}

impl Layout {
    pub fn blueprint(self) -> rerun::blueprint::Blueprint {
        match self {
            Layout::Perception => blueprint::perception(),
            Layout::Motion => blueprint::motion(),
        }
    }
}

/// An open recording. Log to it as to a [`RecordingStream`] (it derefs to one); end it with
/// [`Recording::finish`], which flushes it and, for a saved `.rrd`, moves the complete file
/// into place. A recording dropped without `finish` (an error on the way) leaves no partial
/// file and whatever was at the path before untouched.
pub struct Recording {
    stream: RecordingStream,
    file: Option<crate::io::output::PendingFile>,
}

impl std::ops::Deref for Recording {
    type Target = RecordingStream;
    fn deref(&self) -> &RecordingStream {
        &self.stream
    }
}

impl Recording {
    /// Flushes everything logged, closes the stream and puts a saved recording in place.
    pub fn finish(self) -> Result<(), VizError> {
        self.stream.flush_blocking()?;
        drop(self.stream);
        if let Some(f) = self.file {
            f.commit()?;
        }
        Ok(())
    }
}

/// Opens a recording on `sink`, with the layout's blueprint sent first (made active).
pub fn open_recording(name: &str, sink: &VizSink, layout: Layout) -> Result<Recording, VizError> {
    let builder = rerun::RecordingStreamBuilder::new(APP_ID).recording_name(name).with_blueprint(layout.blueprint());
    Ok(match sink {
        VizSink::Save(path) => {
            let file = crate::io::output::PendingFile::new(path)?;
            Recording { stream: builder.save(file.path())?, file: Some(file) }
        }
        VizSink::Spawn => {
            let mut opts = rerun::SpawnOptions::default();
            let venv = crate::locate::in_source_tree(".venv/bin/rerun");
            if let Some(venv) = venv.filter(|v| !on_path("rerun") && v.exists()) {
                opts.executable_path = Some(venv.to_string_lossy().into_owned());
            }
            Recording { stream: builder.spawn_opts(&opts)?, file: None }
        }
        VizSink::Connect(addr) => {
            let url = if addr.contains("://") { addr.clone() } else { format!("rerun+http://{addr}/proxy") };
            Recording { stream: builder.connect_grpc_opts(url)?, file: None }
        }
    })
}

fn on_path(exe: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(exe).is_file()))
}

/// Writes the layouts as `.rbl` blueprint files into `dir` (`perception.rbl`, `motion.rbl`).
pub fn write_blueprints(dir: &Path) -> Result<Vec<PathBuf>, VizError> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(crate::Location::file(dir), e))?;
    let mut out = Vec::new();
    for (name, layout) in [("perception.rbl", Layout::Perception), ("motion.rbl", Layout::Motion)] {
        let path = dir.join(name);
        let file = crate::io::output::PendingFile::new(&path)?;
        // The stream's own (empty) blueprint store carries no properties; the layout goes into the
        // store `send` creates, with the command that makes it active.
        let rec = rerun::RecordingStreamBuilder::new(APP_ID).blueprint().send_properties(false).save(file.path())?;
        layout
            .blueprint()
            .send(&rec, rerun::blueprint::BlueprintActivation { make_active: true, make_default: true })?;
        rec.flush_blocking()?;
        drop(rec);
        file.commit()?;
        out.push(path);
    }
    Ok(out)
}

/// What [`record_source`] / [`record_frames`] logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordSummary {
    pub segment: String,
    pub frames: usize,
    pub points: usize,
    pub images: usize,
    pub panoptic_labels: usize,
    pub lidar_boxes: usize,
    pub map_features: usize,
    /// Scene elements (with [`VizOptions::tokens`]).
    pub elements: usize,
}

impl RecordSummary {
    fn add(&mut self, c: &FrameCounts) {
        self.frames += 1;
        self.points += c.points.values().sum::<usize>();
        self.images += c.cameras;
        self.panoptic_labels += c.panoptic_labels;
        self.lidar_boxes += c.lidar_boxes;
        self.elements += c.elements;
    }
}

/// Parses `A..B`, `A..`, `..B` or `N` (one frame) into frame indices.
pub fn parse_frame_range(s: &str) -> Result<Range<usize>, String> {
    let num = |t: &str, default: usize| -> Result<usize, String> {
        if t.is_empty() { Ok(default) } else { t.trim().parse().map_err(|_| format!("`{t}` is not a frame index")) }
    };
    let r = match s.split_once("..") {
        Some((a, b)) => num(a, 0)?..num(b, usize::MAX)?,
        None => {
            let n = num(s, 0)?;
            n..n.checked_add(1).ok_or_else(|| format!("frame `{s}` is past the last possible index"))?
        }
    };
    if r.start >= r.end {
        return Err(format!("frame range `{s}` is empty; expected A..B with A < B"));
    }
    Ok(r)
}

/// Logs one segment of an input (a v2 dataset or a v1 `Frame` TFRecord): the map (static,
/// v2 only), then every selected frame, read and logged one at a time through the
/// pipeline's [`Source`], so memory holds one frame.
pub fn record_source(source: &Source, opts: &VizOptions, rec: &RecordingStream) -> Result<RecordSummary, VizError> {
    let mut request = FrameRequest::all();
    if !opts.second_returns {
        request = request.without_second_returns();
    }
    let selection = FrameSelection {
        segments: Segments::named_or(opts.segment.clone(), Segments::First),
        frames: opts.frames.clone(),
        request,
    };
    let mut frames = source.frames(&selection)?.peekable();
    // The first frame's own error, not one about the segment it would have named.
    if matches!(frames.peek(), Some(Err(_)))
        && let Some(Err(e)) = frames.next()
    {
        return Err(e.into());
    }
    let segment = match frames.peek() {
        Some(Ok(f)) => f.segment.clone(),
        _ => {
            let range = match &opts.frames {
                None => "at all".to_string(),
                Some(r) if r.end == usize::MAX => format!("in range {}..", r.start),
                Some(r) => format!("in range {}..{}", r.start, r.end),
            };
            return Err(VizError::Invalid(format!(
                "{}: no frame {range}{}",
                source.path().display(),
                opts.segment.as_ref().map(|s| format!(" of segment {s}")).unwrap_or_default()
            )));
        }
    };
    let map = source.map(&segment)?;
    let map_features = if map.is_empty() { 0 } else { map::log_map(rec, paths::MAP, &map, true)? };
    let mut summary =
        record_frames(frames.map(|f| f.map(|f| f.frame)), opts, rec).map_err(|e| e.in_file(source.path()))?;
    summary.map_features = map_features;
    Ok(summary)
}

/// Logs frames from any iterator, one at a time (the static parts first).
pub fn record_frames(
    frames: impl IntoIterator<Item = crate::Result<Frame>>,
    opts: &VizOptions,
    rec: &RecordingStream,
) -> Result<RecordSummary, VizError> {
    let mut logger = FrameLogger::new(opts);
    logger.log_static(rec)?;
    let mut summary = RecordSummary::default();
    for frame in frames {
        let frame = frame?;
        if summary.segment.is_empty() {
            summary.segment = frame.segment.clone();
        }
        summary.add(&logger.log_frame(rec, &frame)?);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ranges() {
        assert_eq!(parse_frame_range("3..7"), Ok(3..7));
        assert_eq!(parse_frame_range("..4"), Ok(0..4));
        assert_eq!(parse_frame_range("5"), Ok(5..6));
        assert_eq!(parse_frame_range("2..").map(|r| r.start), Ok(2));
        assert!(parse_frame_range("7..3").is_err());
        assert!(parse_frame_range("a..b").unwrap_err().contains("not a frame index"));
        assert!(parse_frame_range("18446744073709551615").is_err());
    }
}
