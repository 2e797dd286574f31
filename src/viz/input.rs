//! `scenetok viz --data PATH`: what PATH holds (a v2 dataset folder, a v1 `Frame` TFRecord
//! or a WOMD `Scenario` TFRecord) and the recording made of it.

use std::path::Path;

use super::{Layout, MotionRun, RecordSummary, VizError, VizOptions, VizSink};
use crate::eval::runner::evaluate;
use crate::io::detect::InputKind;
use crate::models::motion::MotionPredictor;
use crate::pipeline::{Segments, Source};

/// What [`record_path`] logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathSummary {
    pub input: Option<String>,
    pub frames: Option<RecordSummary>,
    pub motion: Option<super::MotionCounts>,
}

/// Records what `path` holds to `sink`. `models` are motion predictors (baselines or the
/// transformer) run on the scenarios of the input (WOMD scenarios, or windows every `stride` frames of the v2 segment) whose
/// predictions and metrics join the recording.
pub fn record_path(
    path: &Path,
    opts: &VizOptions,
    sink: &VizSink,
    models: &[Box<dyn MotionPredictor>],
    stride: usize,
) -> Result<PathSummary, VizError> {
    let source = Source::open(path)?.allow_missing_pose(opts.allow_missing_pose);
    if let VizSink::Save(out) = sink {
        crate::io::output::refuse_input(out, &[path])?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "scenetok".into());
    let mut summary = PathSummary::default();
    match source.kind() {
        InputKind::V2Dataset | InputKind::V1Frames => {
            let rec = super::open_recording(&name, sink, Layout::Perception)?;
            let frames = super::record_source(&source, opts, &rec)?;
            if !models.is_empty() {
                if source.kind() == InputKind::V1Frames {
                    return Err(VizError::Invalid(format!(
                        "{}: --model needs motion scenarios (a v2 dataset or WOMD scenarios); a v1 Frame file has none",
                        path.display()
                    )));
                }
                let scenarios = source.scenarios(&Segments::Named(frames.segment.clone()), stride)?;
                summary.motion = Some(record_models(&rec, &scenarios, models, path)?);
            }
            let kind = if source.kind() == InputKind::V2Dataset { "v2 dataset" } else { "v1 Frame TFRecord" };
            summary.input = Some(format!("{kind}, segment {}", frames.segment));
            summary.frames = Some(frames);
            rec.finish()?;
        }
        InputKind::WomdScenarios => {
            let scenarios = source.scenarios(&Segments::All, stride)?;
            let rec = super::open_recording(&name, sink, Layout::Motion)?;
            summary.motion = Some(record_models(&rec, &scenarios, models, path)?);
            summary.input = Some(format!("WOMD Scenario TFRecord, {} scenario(s)", scenarios.len()));
            rec.finish()?;
        }
        InputKind::V2ComponentFile => {
            return Err(VizError::Invalid(format!("{}: a lone v2 component file holds no frames", path.display())));
        }
    }
    Ok(summary)
}

fn record_models(
    rec: &rerun::RecordingStream,
    scenarios: &[crate::scene::Scenario],
    models: &[Box<dyn MotionPredictor>],
    data: &Path,
) -> Result<super::MotionCounts, VizError> {
    let mut reports = Vec::with_capacity(models.len());
    let data = data.display().to_string();
    for m in models {
        reports.push(
            evaluate(scenarios, m.as_ref(), &data)
                .map_err(|e| VizError::Invalid(format!("evaluating {}: {e}", m.name())))?,
        );
    }
    let runs: Vec<MotionRun> = reports.iter().map(MotionRun::from_report).collect();
    super::record_motion(rec, scenarios, &runs)
}
