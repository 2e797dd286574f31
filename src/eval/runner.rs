//! The evaluation runner: scenarios from a v2 dataset folder or WOMD TFRecords, a model's
//! predictions, the WOMD metrics, and `metrics.json`.

use std::path::Path;

use serde::Serialize;

use super::motion::{Breakdown, MetricsConfig, MetricsError, MotionMetrics};
use crate::io::v2::Dataset;
use crate::models::baselines::{Baseline, predict};
use crate::scene::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] crate::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("{0}")]
    Other(String),
}

/// Scenarios of a v2 dataset folder (a 9.1 s window every `stride` frames of every segment)
/// or of a WOMD `Scenario` TFRecord file.
pub fn load_scenarios(path: &Path, stride: usize) -> Result<Vec<Scenario>, EvalError> {
    if path.is_dir() {
        let ds = Dataset::open(path)?;
        let mut out = Vec::new();
        let segments: Vec<String> = ds.segments().map(str::to_string).collect();
        for seg in &segments {
            out.extend(crate::io::v2::motion::segment_scenarios(&ds, seg, stride)?);
        }
        Ok(out)
    } else {
        Ok(crate::io::womd::read_scenarios(path)?)
    }
}

/// What `metrics.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub model: Baseline,
    pub scenarios: usize,
    pub predicted_agents: usize,
    pub breakdowns: Vec<Breakdown>,
    /// Means over the breakdowns that had agents (object types present).
    pub mean: Breakdown,
    /// The predictions the metrics were computed on (written separately, not in the JSON).
    #[serde(skip)]
    pub predictions: Vec<super::motion::ScenarioPredictions>,
}

/// Runs a baseline over scenarios and computes the challenge metrics.
pub fn evaluate(scenarios: &[Scenario], model: Baseline) -> Result<EvalReport, EvalError> {
    let cfg = MetricsConfig::challenge();
    let mut metrics = MotionMetrics::new(cfg.clone())?;
    let mut predicted_agents = 0;
    let mut types = std::collections::BTreeSet::new();
    let mut predictions = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        let p = predict(model, s, &cfg);
        predicted_agents += p.predictions.len();
        for t in &s.tracks_to_predict {
            types.insert(format!("TYPE_{}", s.tracks[t.track_index].agent_type.name()));
        }
        metrics.add(s, &p)?;
        predictions.push(p);
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
    Ok(EvalReport { model, scenarios: scenarios.len(), predicted_agents, breakdowns, mean, predictions })
}

impl EvalReport {
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

/// Writes a run's outputs into `out`: `metrics.json`, `predictions.parquet` and the official
/// `submission.binproto`. Returns the metrics path.
pub fn write_run(out: &Path, report: &EvalReport) -> Result<std::path::PathBuf, EvalError> {
    let at = crate::Location::file(out);
    std::fs::create_dir_all(out).map_err(|e| crate::Error::io(at.clone(), e))?;
    let path = out.join("metrics.json");
    let json = serde_json::to_string_pretty(report).map_err(|e| EvalError::Other(format!("metrics JSON: {e}")))?;
    std::fs::write(&path, json).map_err(|e| crate::Error::io(crate::Location::file(&path), e))?;
    super::outputs::write_predictions_parquet(&out.join("predictions.parquet"), &report.predictions)?;
    let method = format!("scenetok-{}", report.model.name());
    let submission = super::outputs::to_submission(&report.predictions, &method)?;
    super::outputs::write_submission(&out.join("submission.binproto"), &submission)?;
    Ok(path)
}
