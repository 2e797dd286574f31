//! The evaluation runner: scenarios from a v2 dataset folder or WOMD TFRecords, a model's
//! predictions, the WOMD metrics, and `metrics.json`.

use std::path::Path;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::motion::{Breakdown, MetricsConfig, MetricsError, MotionMetrics};
use super::report::data::{StepErrors, example_scenes, step_errors, trajectory_type_histogram};
use super::report::{ReportData, ReportError};
use crate::models::motion::MotionPredictor;
use crate::pipeline::timing::{LatencyStats, StageTimes};
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

/// Example scenes drawn in a report.
const REPORT_SCENES: usize = 4;

/// Runs a predictor over scenarios and computes the challenge metrics; `data` names the input.
pub fn evaluate(scenarios: &[Scenario], model: &dyn MotionPredictor, data: &str) -> Result<EvalReport, EvalError> {
    evaluate_with_progress(scenarios, model, data, || {})
}

/// [`evaluate`], calling `tick` after every scenario (a progress bar).
pub fn evaluate_with_progress(
    scenarios: &[Scenario],
    model: &dyn MotionPredictor,
    data: &str,
    mut tick: impl FnMut(),
) -> Result<EvalReport, EvalError> {
    let cfg = MetricsConfig::challenge();
    let horizon = cfg.horizon();
    let mut metrics = MotionMetrics::new(cfg.clone())?;
    let mut predicted_agents = 0;
    let mut types = std::collections::BTreeSet::new();
    let mut predictions = Vec::with_capacity(scenarios.len());
    let mut times = StageTimes::default();
    for s in scenarios {
        let p = times.time("model", || model.predict(s, &horizon))?;
        predicted_agents += p.predictions.len();
        for t in &s.tracks_to_predict {
            types.insert(format!("TYPE_{}", s.tracks[t.track_index].agent_type.name()));
        }
        times
            .time("metrics", || metrics.add(s, &p))
            .map_err(|cause| EvalError::ScenarioMetrics { data: data.to_string(), cause })?;
        predictions.push(p);
        tick();
    }
    let breakdowns = metrics.finish();
    let present: Vec<&Breakdown> = breakdowns.iter().filter(|b| types.contains(&b.object_type)).collect();
    let n = present.len().max(1) as f64;
    let avg = |f: fn(&Breakdown) -> f64| present.iter().map(|b| f(b)).sum::<f64>() / n;
    let mean = Breakdown {
        object_type: "MEAN".into(),
        measurement_step: 0,
        min_ade: avg(|b| b.min_ade),
        min_fde: avg(|b| b.min_fde),
        miss_rate: avg(|b| b.miss_rate),
        overlap_rate: avg(|b| b.overlap_rate),
        map: avg(|b| b.map),
        soft_map: avg(|b| b.soft_map),
    };
    let report_data = ReportData {
        // Nanosecond resolution: exact through the JSON round trip.
        latency_samples_ms: times
            .stages()
            .map(|s| (s.to_string(), times.samples(s).iter().map(|v| (v * 1e6).round() / 1e6).collect()))
            .collect(),
        scenes: example_scenes(scenarios, &predictions, &cfg, REPORT_SCENES),
    };
    Ok(EvalReport {
        model: model.name().to_string(),
        data: data.to_string(),
        scenarios: scenarios.len(),
        predicted_agents,
        breakdowns,
        mean,
        trajectory_types: trajectory_type_histogram(scenarios),
        step_errors: step_errors(scenarios, &predictions, &cfg),
        latency: times.stats().into_iter().map(|(stage, stats)| StageLatency { stage, stats }).collect(),
        predictions,
        report_data,
    })
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
