//! What a motion predictor returns: per agent to predict, up to K modes, each a trajectory
//! sampled at the prediction steps with a confidence, and the horizon those steps cover.
//! Every predictor (the baselines, the learned transformer) produces these; the metrics,
//! the outputs (parquet, the official submission) and the viewer read them.

use serde::{Deserialize, Serialize};

/// When predictions are sampled and how many modes an agent may have. WOMD's challenge
/// ([`PredictionHorizon::WOMD`]): tracks at 10 Hz, 10 history samples before the current
/// one, 80 future samples (8 s), predictions at 2 Hz (16 points, at 0.5 … 8 s), 6 modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictionHorizon {
    /// Track samples per second.
    pub track_steps_per_second: usize,
    /// Prediction samples per second; divides `track_steps_per_second`.
    pub prediction_steps_per_second: usize,
    /// Track samples before the current one (the current step's index).
    pub history_samples: usize,
    /// Track samples after the current one.
    pub future_samples: usize,
    /// Most modes (joint predictions) per agent.
    pub max_modes: usize,
}

impl PredictionHorizon {
    /// The WOMD motion challenge's horizon.
    pub const WOMD: PredictionHorizon = PredictionHorizon {
        track_steps_per_second: 10,
        prediction_steps_per_second: 2,
        history_samples: 10,
        future_samples: 80,
        max_modes: 6,
    };

    /// Points per predicted trajectory (WOMD: 16).
    pub fn prediction_steps(&self) -> usize {
        self.future_samples * self.prediction_steps_per_second / self.track_steps_per_second.max(1)
    }

    /// The track step of prediction step `p` (WOMD: 5p + 15).
    pub fn track_step(&self, p: usize) -> usize {
        (p + 1) * (self.track_steps_per_second / self.prediction_steps_per_second.max(1)) + self.history_samples
    }

    /// Seconds after the current step of prediction step `p` (WOMD: 0.5 (p + 1)).
    pub fn seconds(&self, p: usize) -> f64 {
        (self.track_step(p) - self.history_samples) as f64 / self.track_steps_per_second.max(1) as f64
    }
}

/// One object's predicted positions at the prediction steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedTrajectory {
    pub object_id: i64,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// Trajectories of one or more objects with one confidence (WOMD's `JointTrajectories`);
/// a marginal prediction has one trajectory per joint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointPrediction {
    pub trajectories: Vec<PredictedTrajectory>,
    pub confidence: f64,
}

/// The modes predicted for one object (marginal) or one set of objects (joint).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MultimodalPrediction {
    pub joints: Vec<JointPrediction>,
}

/// Every prediction for one scenario.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScenarioPredictions {
    pub scenario_id: String,
    pub predictions: Vec<MultimodalPrediction>,
}
