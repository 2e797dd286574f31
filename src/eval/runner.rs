//! The evaluation runner: scenarios from a v2 dataset folder or WOMD TFRecords, a model's
//! predictions, the WOMD metrics, and `metrics.json`.

use std::path::Path;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::motion::{Breakdown, MetricsError};
use super::partial::MotionPartial;
use super::report::data::StepErrors;
use super::report::{ReportData, ReportError};
use crate::io::shard::Shard;
use crate::models::motion::MotionPredictor;
use crate::pipeline::source::ScenarioKey;
use crate::pipeline::timing::LatencyStats;
use crate::pipeline::{Segments, Source};
use crate::scene::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] crate::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A scenario the metrics refuse, with the input it came from.
    #[error("{data}: {cause}")]
    ScenarioMetrics { data: String, cause: MetricsError },
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{0}")]
    Other(String),
}

/// Scenarios of a v2 dataset folder (a 9.1 s window every `stride` frames of every segment)
/// or of a WOMD `Scenario` TFRecord file.
pub fn load_scenarios(path: &Path, stride: usize) -> Result<Vec<Scenario>, EvalError> {
    Ok(Source::open(path)?.scenarios(&Segments::All, stride)?)
}

/// Latency of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLatency {
    pub stage: String,
    pub stats: LatencyStats,
}

/// What `metrics.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// The model's name.
    pub model: String,
    /// What was evaluated (the data path as given).
    pub data: String,
    pub scenarios: usize,
    pub predicted_agents: usize,
    pub breakdowns: Vec<Breakdown>,
    /// Means over the breakdowns that had agents (object types present).
    pub mean: Breakdown,
    /// WOMD trajectory types of the agents to predict.
    pub trajectory_types: BTreeMap<String, usize>,
    /// Mean min-over-modes displacement at every prediction step, per object type.
    pub step_errors: Vec<StepErrors>,
    /// Per-scenario wall time of each stage.
    pub latency: Vec<StageLatency>,
    /// The predictions the metrics were computed on (written separately, not in the JSON).
    #[serde(skip)]
    pub predictions: Vec<super::motion::ScenarioPredictions>,
    /// What the report draws beyond these numbers (`report_data.json`).
    #[serde(skip)]
    pub report_data: ReportData,
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
    let keyed: Vec<(ScenarioKey, Scenario)> =
        scenarios.iter().enumerate().map(|(i, s)| (ScenarioKey::new(0, i), s.clone())).collect();
    MotionPartial::evaluate(&keyed, model, data, Shard::ALL, tick)?.report()
}

impl EvalReport {
    /// The object types that had agents to predict (the breakdowns worth showing).
    pub fn object_types(&self) -> Vec<String> {
        let mut t: Vec<String> = self.step_errors.iter().map(|e| e.object_type.clone()).collect();
        t.sort();
        t
    }

    pub fn table(&self) -> String {
        let mut s = format!(
            "{} scenarios, {} agents predicted\n{:<16} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
            self.scenarios, self.predicted_agents, "type", "step", "minADE", "minFDE", "MR", "OR", "mAP", "softmAP"
        );
        for b in self.breakdowns.iter().chain(std::iter::once(&self.mean)) {
            s += &format!(
                "{:<16} {:>4} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}\n",
                b.object_type, b.measurement_step, b.min_ade, b.min_fde, b.miss_rate, b.overlap_rate, b.map, b.soft_map
            );
        }
        s
    }
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
