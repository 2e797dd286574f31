//! The evaluation runner: scenarios from a v2 dataset folder or WOMD TFRecords, a model's
//! predictions, the WOMD metrics, and `metrics.json`.

use std::path::Path;

use serde::Serialize;

use super::partial::MotionPartial;
pub use super::run::{EvalError, EvalReport, StageLatency};
use crate::io::shard::Shard;
use crate::models::motion::MotionPredictor;
use crate::pipeline::source::ScenarioKey;
use crate::pipeline::{Segments, Source};
use crate::scene::Scenario;

/// Scenarios of a v2 dataset folder (a 9.1 s window every `stride` frames of every segment)
/// or of a WOMD `Scenario` TFRecord file.
pub fn load_scenarios(path: &Path, stride: usize) -> Result<Vec<Scenario>, EvalError> {
    Ok(Source::open(path)?.scenarios(&Segments::All, stride)?)
}

/// Runs a predictor over scenarios and computes the challenge metrics; `data` names the input.
pub fn evaluate(scenarios: &[Scenario], model: &dyn MotionPredictor, data: &str) -> Result<EvalReport, EvalError> {
    evaluate_with_progress(scenarios, model, data, || {})
}

/// [`evaluate`], calling `tick` after every scenario (a progress bar).
pub fn evaluate_with_progress(
    scenarios: &[Scenario],
    model: &dyn MotionPredictor,
    data: &str,
    tick: impl FnMut(),
) -> Result<EvalReport, EvalError> {
    let keyed = scenarios.iter().enumerate().map(|(i, s)| (ScenarioKey::new(0, i), s));
    MotionPartial::evaluate(keyed, model, data, Shard::ALL, tick)?.report()
}

/// The file that marks a folder as a run's: [`write_run`] replaces only such a folder (or
/// an empty one).
pub const RUN_MARKER: &str = "metrics.json";

/// Checks, before any work, that [`write_run`] may write `out`: not one of the inputs, not a
/// folder holding one, and new, empty or an earlier run's folder.
pub fn check_run_folder(out: &Path, inputs: &[&Path]) -> Result<(), EvalError> {
    crate::io::output::refuse_input(out, inputs)?;
    crate::io::output::replaceable(out, RUN_MARKER)?;
    Ok(())
}

/// Writes a run's outputs into `out`: `metrics.json`, `report_data.json`, `predictions.parquet`,
/// the official `submission.binproto`, `report.html` and `report.md`. The folder is replaced
/// as a whole once every file is written: it never mixes two runs, and a failure leaves the
/// previous run as it was. Returns the metrics path.
pub fn write_run(out: &Path, report: &EvalReport) -> Result<std::path::PathBuf, EvalError> {
    let pending = crate::io::output::PendingDir::new(out, RUN_MARKER)?;
    let dir = pending.path();
    crate::io::output::write_file(&dir.join("metrics.json"), pretty(report)?.as_bytes())?;
    crate::io::output::write_file(&dir.join("report_data.json"), compact(&report.report_data)?.as_bytes())?;
    super::outputs::write_predictions_parquet(&dir.join("predictions.parquet"), &report.predictions)?;
    let method = format!("scenetok-{}", report.model);
    let submission = super::outputs::to_submission(&report.predictions, &method)?;
    super::outputs::write_submission(&dir.join("submission.binproto"), &submission)?;
    super::report::write_report(dir, report, &report.report_data)?;
    pending.commit()?;
    Ok(out.join("metrics.json"))
}

fn pretty<T: Serialize>(v: &T) -> Result<String, EvalError> {
    serde_json::to_string_pretty(v).map_err(|e| EvalError::Other(format!("JSON: {e}")))
}

fn compact<T: Serialize>(v: &T) -> Result<String, EvalError> {
    serde_json::to_string(v).map_err(|e| EvalError::Other(format!("JSON: {e}")))
}
