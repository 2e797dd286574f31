//! Motion prediction: the [`MotionPredictor`] contract and the baselines every learned model
//! must beat. A predictor sees a [`Scenario`] (agent tracks up to the current step, the map)
//! and fills the [`PredictionHorizon`] for each of its `tracks_to_predict`; the evaluation
//! runner, the viewer and the outputs take any `&dyn MotionPredictor`.

pub mod dataset;
pub mod features;
mod kinematic;
mod lane_follower;
pub mod training;
pub mod transformer;

pub use kinematic::{ConstantVelocity, Ctra};
pub use lane_follower::LaneFollower;

use crate::error::Result;
use crate::scene::Scenario;
use crate::scene::prediction::{PredictionHorizon, ScenarioPredictions};

/// Something that predicts where agents go.
pub trait MotionPredictor: Send + Sync {
    /// The name used on the command line, in outputs and reports.
    fn name(&self) -> &str;

    /// One [`crate::scene::prediction::MultimodalPrediction`] per entry of the scenario's
    /// `tracks_to_predict`, in that order, each with at most `horizon.max_modes` modes of
    /// `horizon.prediction_steps()` points. Fails only where the model itself cannot run
    /// (weights, device); an agent without a valid current state still gets a prediction.
    fn predict(&self, scenario: &Scenario, horizon: &PredictionHorizon) -> Result<ScenarioPredictions>;

    /// How a learned model's weights were trained (the report draws it); `None` for the
    /// baselines and for weights without the record.
    fn training_curve(&self) -> Option<&training::TrainingCurve> {
        None
    }
}

/// The baselines, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Baseline {
    /// Constant velocity: one mode.
    ConstantVelocity,
    /// Constant turn rate and acceleration: six modes (the estimate, then braking,
    /// accelerating, turning left and right, and stopping), decreasing confidence.
    Ctra,
    /// Follows the map's lanes: one mode per branch of the lane graph ahead, plus speed
    /// variants; CTRA off the lanes.
    LaneFollower,
}

impl Baseline {
    pub const ALL: [Baseline; 3] = [Baseline::ConstantVelocity, Baseline::Ctra, Baseline::LaneFollower];

    /// The name used on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::ConstantVelocity => "constant-velocity",
            Baseline::Ctra => "ctra",
            Baseline::LaneFollower => "lane-follower",
        }
    }

    /// The predictor.
    pub fn predictor(self) -> Box<dyn MotionPredictor> {
        match self {
            Baseline::ConstantVelocity => Box::new(ConstantVelocity),
            Baseline::Ctra => Box::new(Ctra),
            Baseline::LaneFollower => Box::new(LaneFollower),
        }
    }
}

/// Every motion model `scenetok eval --model` runs: the baselines and the transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum MotionModel {
    ConstantVelocity,
    Ctra,
    LaneFollower,
    /// The learned transformer (weights: `data/weights/motion_transformer.safetensors` or
    /// `--weights`).
    Transformer,
}

impl MotionModel {
    /// The predictor; the transformer's weights are read from `weights` onto `device`.
    pub fn load(self, weights: &std::path::Path, device: &crate::backend::Device) -> Result<Box<dyn MotionPredictor>> {
        Ok(match self {
            MotionModel::ConstantVelocity => Baseline::ConstantVelocity.predictor(),
            MotionModel::Ctra => Baseline::Ctra.predictor(),
            MotionModel::LaneFollower => Baseline::LaneFollower.predictor(),
            MotionModel::Transformer => {
                let model = transformer::MotionTransformer::load(weights, device)?;
                Box::new(transformer::TransformerPredictor::new(model))
            }
        })
    }
}
