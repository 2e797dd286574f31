//! `scenetok viz --data PATH`: what PATH holds (a v2 dataset folder, a v1 `Frame` TFRecord
//! or a WOMD `Scenario` TFRecord) and the recording made of it.

use std::path::{Path, PathBuf};

use super::{Layout, MotionRun, RecordSummary, VizError, VizOptions, VizSink};
use crate::eval::runner::evaluate;
use crate::io::v2::Dataset;
use crate::models::baselines::Baseline;

/// The kind of input behind a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Dataset(PathBuf),
    V1Frames(PathBuf),
    Scenarios(PathBuf),
}

/// Looks at a path: a folder is a v2 dataset; a TFRecord is a WOMD `Scenario` file when its
/// first record parses as a scenario with tracks, else a v1 `Frame` file.
pub fn detect(path: &Path) -> Result<Input, VizError> {
    if path.is_dir() {
        return Ok(Input::Dataset(path.to_path_buf()));
    }
    if !path.exists() {
        return Err(VizError::Invalid(format!(
            "{}: not found; expected a v2 dataset folder or a .tfrecord (v1 Frame or WOMD Scenario)",
            path.display()
        )));
    }
    match crate::io::womd::open_scenarios(path)?.next() {
        Some(Ok(s)) if !s.tracks.is_empty() => Ok(Input::Scenarios(path.to_path_buf())),
        _ => Ok(Input::V1Frames(path.to_path_buf())),
    }
}

/// What [`record_path`] logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathSummary {
    pub input: Option<String>,
    pub frames: Option<RecordSummary>,
    pub motion: Option<super::MotionCounts>,
}

/// Records what `path` holds to `sink`. `models` are motion baselines run on the scenarios
/// of the input (WOMD scenarios, or windows every `stride` frames of the v2 segment) whose
/// predictions and metrics join the recording.
pub fn record_path(
    path: &Path,
    opts: &VizOptions,
    sink: &VizSink,
    models: &[Baseline],
    stride: usize,
) -> Result<PathSummary, VizError> {
    let input = detect(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "scenetok".into());
    let mut summary = PathSummary::default();
    match input {
        Input::Dataset(dir) => {
            let ds = Dataset::open(&dir)?;
            let rec = super::open_recording(&name, sink, Layout::Perception)?;
            let frames = super::record_dataset(&ds, opts, &rec)?;
            if !models.is_empty() {
                let scenarios = crate::io::v2::motion::segment_scenarios(&ds, &frames.segment, stride)?;
                summary.motion = Some(record_models(&rec, &scenarios, models, path)?);
            }
            summary.input = Some(format!("v2 dataset, segment {}", frames.segment));
            summary.frames = Some(frames);
            rec.flush_blocking()?;
        }
        Input::V1Frames(file) => {
            let rec = super::open_recording(&name, sink, Layout::Perception)?;
            let frames = super::record_frames(crate::io::v1::open_frames(&file)?, opts, &rec)?;
            summary.input = Some(format!("v1 Frame TFRecord, segment {}", frames.segment));
            summary.frames = Some(frames);
            rec.flush_blocking()?;
        }
        Input::Scenarios(file) => {
            let scenarios = crate::io::womd::read_scenarios(&file)?;
            let rec = super::open_recording(&name, sink, Layout::Motion)?;
            summary.motion = Some(record_models(&rec, &scenarios, models, path)?);
            summary.input = Some(format!("WOMD Scenario TFRecord, {} scenario(s)", scenarios.len()));
            rec.flush_blocking()?;
        }
    }
    Ok(summary)
}

fn record_models(
    rec: &rerun::RecordingStream,
    scenarios: &[crate::scene::Scenario],
    models: &[Baseline],
    data: &Path,
) -> Result<super::MotionCounts, VizError> {
    let mut reports = Vec::with_capacity(models.len());
    let data = data.display().to_string();
    for &m in models {
        reports.push(
            evaluate(scenarios, m, &data).map_err(|e| VizError::Invalid(format!("evaluating {}: {e}", m.name())))?,
        );
    }
    let runs: Vec<MotionRun> = reports.iter().map(MotionRun::from_report).collect();
    super::record_motion(rec, scenarios, &runs)
}
