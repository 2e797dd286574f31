//! What one motion evaluation run computes (`metrics.json`, and what its other files are
//! written from), and how it fails: made by [`partial`](super::partial), written by
//! [`runner`](super::runner), drawn by [`report`](super::report).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::motion::{Breakdown, MetricsError};
use super::report::data::StepErrors;
use super::report::{ReportData, ReportError};
use crate::pipeline::timing::LatencyStats;

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
