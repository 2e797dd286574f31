//! Where a token model looks: one agent's predicted modes and the attention of its most
//! likely mode to each of its scene tokens ([`MotionTransformer::forward_with_attention`],
//! attention rollout), with the tokens back in the world frame; and over the obstacle subset
//! of a dataset split, whether the obstacle an agent passes is among its tokens and how much
//! of the attention it gets (what `scenetok compare` reports for a token model).

use crate::models::motion::dataset::{Footprint, closest_approach};
use crate::models::motion::features::{MapPieces, agent_inputs};
use crate::models::motion::transformer::{MotionTransformer, SceneTokenSource};
use crate::models::scene_tokens::ElementKind;
use crate::models::scene_tokens::agent_frame::POSE_LEN;
use crate::scene::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum AttentionError {
    #[error(transparent)]
    Data(#[from] crate::Error),
    #[error("{0}")]
    Invalid(String),
}

/// One scene token and the weight the most likely mode gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttendedToken {
    /// Centre, world frame.
    pub xyz: [f64; 3],
    pub kind: ElementKind,
    /// Seconds before the current step.
    pub age: f32,
    pub weight: f32,
}

/// One agent's prediction and where it looked.
#[derive(Debug, Clone)]
pub struct AgentAttention {
    pub scenario: Scenario,
    pub track_index: usize,
    /// Modes, most likely first: confidence and world positions at each future step.
    pub modes: Vec<(f64, Vec<[f64; 2]>)>,
    pub tokens: Vec<AttendedToken>,
    /// The most likely mode's attention on the scene tokens together (the rest is on the
    /// agents and the map).
    pub scene_share: f32,
    pub obstacles: Vec<Footprint>,
}

/// Runs `model` on agent `track_index` of `scenario` with its tokens from `source`.
pub fn agent_attention(
    model: &MotionTransformer,
    source: &dyn SceneTokenSource,
    scenario: &Scenario,
    track_index: usize,
    obstacles: Vec<Footprint>,
) -> Result<AgentAttention, AttentionError> {
    let spec = model
        .scene_spec()
        .ok_or_else(|| AttentionError::Invalid("the attention view needs a model trained with scene tokens".into()))?;
    let inputs = agent_inputs(scenario, &MapPieces::new(scenario), track_index)
        .map_err(|e| AttentionError::Invalid(format!("scenario {}: {e}", scenario.id)))?;
    let tokens = source.tokens(scenario, track_index, spec)?.ok_or_else(|| {
        AttentionError::Invalid(format!("scenario {} track index {track_index}: no scene token in range", scenario.id))
    })?;
    let (out, attention) =
        model.forward_with_attention(std::slice::from_ref(&inputs), Some(std::slice::from_ref(&tokens)))?;
    let a = &attention[0];
    let logits = out.logits.row(0);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let sum: f64 = e.iter().sum();
    let mut order: Vec<usize> = (0..e.len()).collect();
    order.sort_by(|&x, &y| e[y].total_cmp(&e[x]));
    let frame = inputs.frame;
    let modes = order
        .iter()
        .map(|&j| {
            let path = (0..out.mu.dim().2)
                .map(|t| frame.to_world(out.mu[[0, j, t, 0]] as f64, out.mu[[0, j, t, 1]] as f64))
                .collect();
            (e[j] / sum, path)
        })
        .collect();
    let weights = a.scene(order[0]);
    let state = &scenario.tracks[track_index].states[scenario.current_time_index];
    let tokens: Vec<AttendedToken> = tokens
        .tokens
        .rows()
        .into_iter()
        .zip(&tokens.valid)
        .zip(&weights)
        .filter(|((_, valid), _)| **valid)
        .map(|((row, _), &weight)| {
            let [x, y] = frame.to_world(row[0] as f64 * 10.0, row[1] as f64 * 10.0);
            let kind = match (0..3).max_by(|&p, &q| row[POSE_LEN + p].total_cmp(&row[POSE_LEN + q])) {
                Some(0) => ElementKind::Agent,
                Some(1) => ElementKind::Object,
                _ => ElementKind::Ground,
            };
            AttendedToken { xyz: [x, y, state.z + row[2] as f64 * 10.0], kind, age: row[5], weight }
        })
        .collect();
    Ok(AgentAttention {
        scenario: scenario.clone(),
        track_index,
        modes,
        scene_share: weights.iter().sum(),
        tokens,
        obstacles,
    })
}

/// Over agents that pass an obstacle: whether its points are among their tokens and what
/// share of the most likely mode's attention those tokens get.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ObstacleAttention {
    /// Agents looked at (those within `pass` of an obstacle, with tokens).
    pub agents: usize,
    /// Of them, those with an open-set object token within `seen` of the obstacle's footprint.
    pub seen: usize,
    /// Means over the agents: the top mode's attention on all scene tokens, on the obstacle's
    /// object tokens, and the share of the tokens those are (what uniform attention over the
    /// scene tokens would give them, times the scene share).
    pub scene_share: f64,
    pub obstacle_share: f64,
    pub obstacle_token_share: f64,
}

impl ObstacleAttention {
    /// How many times more attention the obstacle's tokens get than their share of the
    /// scene tokens would give them.
    pub fn lift(&self) -> f64 {
        let uniform = self.obstacle_token_share * self.scene_share;
        if uniform > 0.0 { self.obstacle_share / uniform } else { f64::NAN }
    }
}

/// [`ObstacleAttention`] over every agent to predict of `scenarios` that comes within `pass`
/// metres of one of its world's obstacles (`obstacles(scenario)`); an object token within
/// `seen` metres of such an obstacle's footprint counts as the obstacle's.
pub fn obstacle_attention<'a>(
    model: &MotionTransformer,
    source: &dyn SceneTokenSource,
    scenarios: &[Scenario],
    obstacles: impl Fn(&Scenario) -> &'a [Footprint],
    pass: f32,
    seen: f64,
) -> Result<ObstacleAttention, AttentionError> {
    if model.scene_spec().is_none() {
        return Err(AttentionError::Invalid("obstacle attention needs a model trained with scene tokens".into()));
    }
    let mut out = ObstacleAttention::default();
    for s in scenarios {
        let all = obstacles(s);
        for t in &s.tracks_to_predict {
            let track = &s.tracks[t.track_index];
            let near: Vec<Footprint> = all
                .iter()
                .filter(|o| closest_approach(track, s.current_time_index, std::slice::from_ref(o)) <= pass)
                .copied()
                .collect();
            if near.is_empty() {
                continue;
            }
            let view = match agent_attention(model, source, s, t.track_index, Vec::new()) {
                Ok(v) => v,
                // No token in range, or no usable current state: not looked at.
                Err(AttentionError::Invalid(_)) => continue,
                Err(e) => return Err(e),
            };
            let is_obstacle = |tok: &AttendedToken| {
                tok.kind == ElementKind::Object && near.iter().any(|o| o.distance(tok.xyz[0], tok.xyz[1]) <= seen)
            };
            let (n, w) = view
                .tokens
                .iter()
                .filter(|t| is_obstacle(t))
                .fold((0usize, 0.0f64), |(n, w), t| (n + 1, w + t.weight as f64));
            out.agents += 1;
            out.seen += usize::from(n > 0);
            out.scene_share += view.scene_share as f64;
            out.obstacle_share += w;
            out.obstacle_token_share += n as f64 / view.tokens.len().max(1) as f64;
        }
    }
    let k = out.agents.max(1) as f64;
    out.scene_share /= k;
    out.obstacle_share /= k;
    out.obstacle_token_share /= k;
    Ok(out)
}
