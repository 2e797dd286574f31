//! The transformer as a [`MotionPredictor`]: inputs for every agent to predict, one batched
//! forward pass per scenario, modes mapped back to the world and sampled at the horizon's
//! prediction steps, confidences by softmax over the mode logits.

use std::sync::Arc;

use super::{MotionTransformer, SceneTokenSource, SceneTokens};
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
/// with a warning: the contract promises every agent a prediction. A model trained with
/// scene tokens gets them from a [`SceneTokenSource`] ([`TransformerPredictor::with_tokens`]);
/// without one it runs its no-token path, with a warning.
#[derive(Debug)]
pub struct TransformerPredictor {
    model: MotionTransformer,
    name: String,
    tokens: Option<Arc<dyn SceneTokenSource>>,
    /// Whether the no-token warning was given.
    warned: std::sync::atomic::AtomicBool,
}

impl TransformerPredictor {
    pub fn new(model: MotionTransformer) -> Self {
        let name = match model.scene_spec() {
            Some(s) if s.kinds.is_empty() => format!("transformer+tokens({})", s.features),
            Some(s) => {
                let kinds: Vec<&str> = s.kinds.iter().map(|k| k.name()).collect();
                format!("transformer+tokens({}; {})", s.features, kinds.join("+"))
            }
            None => "transformer".into(),
        };
        TransformerPredictor { model, name, tokens: None, warned: Default::default() }
    }

    /// Where a token model's scene tokens come from.
    pub fn with_tokens(mut self, source: Arc<dyn SceneTokenSource>) -> Self {
        self.tokens = Some(source);
        self
    }

    /// The scene tokens of the agents in `inputs` (their track indices), padded to one count
    /// (at least 1; padding rows are not valid); `None` for a model without tokens.
    fn scene_tokens(&self, scenario: &Scenario, tracks: &[usize]) -> Result<Option<Vec<SceneTokens>>> {
        let width = self.model.config().scene_dim;
        if width == 0 {
            return Ok(None);
        }
        let at = || Location::default().detail(format!("scenario {}", scenario.id));
        let (Some(source), Some(spec)) = (&self.tokens, self.model.scene_spec()) else {
            // The slot is optional: without a source the model runs its no-token path (what a
            // scene with no element in range gets too).
            if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "{}: a model with a scene-token slot run without scene tokens (no token source)",
                    self.name
                );
            }
            return Ok(None);
        };
        let per_agent =
            tracks.iter().map(|&t| source.tokens(scenario, t, spec)).collect::<Result<Vec<Option<SceneTokens>>>>()?;
        if let Some(t) = per_agent.iter().flatten().find(|t| t.tokens.ncols() != width) {
            return Err(Error::invalid(at(), format!("{width} values per token"), t.tokens.ncols().to_string()));
        }
        Ok(Some(super::pad_scene_tokens(per_agent, width)))
    }

    pub fn model(&self) -> &MotionTransformer {
        &self.model
    }
}

impl MotionPredictor for TransformerPredictor {
    fn name(&self) -> &str {
        &self.name
    }

    fn training_curve(&self) -> Option<&crate::models::motion::training::TrainingCurve> {
        self.model.training_curve()
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
        let mut tracks = Vec::new();
        let mut slot = Vec::with_capacity(scenario.tracks_to_predict.len());
        for t in &scenario.tracks_to_predict {
            match agent_inputs(scenario, &map, t.track_index) {
                Ok(x) => {
                    slot.push(Some(inputs.len()));
                    inputs.push(x);
                    tracks.push(t.track_index);
                }
                Err(e) => {
                    tracing::warn!("{e}: the lane follower predicts it");
                    slot.push(None);
                }
            }
        }
        let scene = self.scene_tokens(scenario, &tracks)?;
        let out = self.model.forward(&inputs, scene.as_deref())?;
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
