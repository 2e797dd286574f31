//! The transformer as a [`MotionPredictor`]: inputs for every agent to predict, one batched
//! forward pass per scenario, modes mapped back to the world and sampled at the horizon's
//! prediction steps, confidences by softmax over the mode logits.

use super::MotionTransformer;
use crate::error::{Error, Location, Result};
use crate::models::motion::features::{FUTURE_STEPS, MapPieces, agent_inputs};
use crate::models::motion::{LaneFollower, MotionPredictor};
use crate::scene::Scenario;
use crate::scene::prediction::{
    JointPrediction, MultimodalPrediction, PositionCovariance, PredictedTrajectory, PredictionHorizon,
    ScenarioPredictions,
};

/// The transformer behind the [`MotionPredictor`] contract. An agent whose inputs cannot be
/// built (no usable state at the current step) gets the lane follower's prediction instead,
/// with a warning: the contract promises every agent a prediction.
#[derive(Debug)]
pub struct TransformerPredictor {
    model: MotionTransformer,
    name: String,
}

impl TransformerPredictor {
    pub fn new(model: MotionTransformer) -> Self {
        TransformerPredictor { model, name: "transformer".into() }
    }

    pub fn model(&self) -> &MotionTransformer {
        &self.model
    }
}

impl MotionPredictor for TransformerPredictor {
    fn name(&self) -> &str {
        &self.name
    }

    fn predict(&self, scenario: &Scenario, horizon: &PredictionHorizon) -> Result<ScenarioPredictions> {
        let fits = horizon.track_steps_per_second == 10
            && (1..=FUTURE_STEPS).contains(&horizon.future_samples)
            && horizon.prediction_steps_per_second > 0;
        if !fits {
            return Err(Error::invalid(
                Location::default().detail(format!("scenario {}", scenario.id)),
                "a 10 Hz horizon of at most 80 future steps (what the transformer predicts)",
                format!("{horizon:?}"),
            ));
        }
        let map = MapPieces::new(scenario);
        let mut inputs = Vec::new();
        let mut slot = Vec::with_capacity(scenario.tracks_to_predict.len());
        for t in &scenario.tracks_to_predict {
            match agent_inputs(scenario, &map, t.track_index) {
                Ok(x) => {
                    slot.push(Some(inputs.len()));
                    inputs.push(x);
                }
                Err(e) => {
                    tracing::warn!("{e}: the lane follower predicts it");
                    slot.push(None);
                }
            }
        }
        let out = self.model.forward(&inputs, None)?;
        let fallback =
            if slot.iter().any(Option::is_none) { Some(LaneFollower.predict(scenario, horizon)?) } else { None };
        let modes = out.logits.ncols().min(horizon.max_modes.max(1));
        let mut predictions = Vec::with_capacity(slot.len());
        for (k, s) in slot.iter().enumerate() {
            let Some(i) = *s else {
                let p = fallback.as_ref().and_then(|f| f.predictions.get(k).cloned()).unwrap_or_default();
                predictions.push(p);
                continue;
            };
            let target = &scenario.tracks_to_predict[k];
            let object_id = scenario.tracks[target.track_index].id;
            let frame = inputs[i].frame;
            // Softmax over all modes; the most likely `modes` kept, most likely first.
            let logits = out.logits.row(i);
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
            let sum: f64 = e.iter().sum();
            let mut order: Vec<usize> = (0..e.len()).collect();
            order.sort_by(|&a, &b| e[b].total_cmp(&e[a]).then(a.cmp(&b)));
            let joints = order
                .into_iter()
                .take(modes)
                .map(|j| {
                    let (mut x, mut y, mut covariance) = (Vec::new(), Vec::new(), Vec::new());
                    for p in 0..horizon.prediction_steps() {
                        let t = horizon.track_step(p) - horizon.history_samples - 1;
                        let w = frame.to_world(out.mu[[i, j, t, 0]] as f64, out.mu[[i, j, t, 1]] as f64);
                        x.push(w[0]);
                        y.push(w[1]);
                        let (sx, sy) = (out.sigma[[i, j, t, 0]] as f64, out.sigma[[i, j, t, 1]] as f64);
                        covariance.push(PositionCovariance::rotated(sx, sy, out.rho[[i, j, t]] as f64, frame.heading));
                    }
                    JointPrediction {
                        trajectories: vec![PredictedTrajectory { object_id, x, y, covariance }],
                        confidence: e[j] / sum,
                    }
                })
                .collect();
            predictions.push(MultimodalPrediction { joints });
        }
        Ok(ScenarioPredictions { scenario_id: scenario.id.clone(), predictions })
    }
}
