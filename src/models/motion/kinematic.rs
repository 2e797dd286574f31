//! Kinematic baselines: constant velocity, and constant turn rate and acceleration (CTRA)
//! with six modes around its estimate.

use super::MotionPredictor;
use crate::error::Result;
use crate::scene::prediction::{
    JointPrediction, MultimodalPrediction, PredictedTrajectory, PredictionHorizon, ScenarioPredictions,
};
use crate::scene::{AgentState, Scenario, Track};

/// Constant velocity: one mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConstantVelocity;

/// Constant turn rate and acceleration: six modes (the estimate, then braking,
/// accelerating, turning left and right, and stopping), decreasing confidence.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctra;

impl MotionPredictor for ConstantVelocity {
    fn name(&self) -> &str {
        "constant-velocity"
    }
    fn predict(&self, scenario: &Scenario, horizon: &PredictionHorizon) -> Result<ScenarioPredictions> {
        Ok(predict(scenario, horizon, |m| vec![(roll(m, 0.0, 0.0, horizon), 1.0)]))
    }
}

impl MotionPredictor for Ctra {
    fn name(&self) -> &str {
        "ctra"
    }
    fn predict(&self, scenario: &Scenario, horizon: &PredictionHorizon) -> Result<ScenarioPredictions> {
        Ok(predict(scenario, horizon, |m| ctra_modes(m, horizon)))
    }
}

/// CTRA's six modes and their confidences.
fn ctra_modes(m: &Motion, horizon: &PredictionHorizon) -> Vec<(Vec<(f64, f64)>, f64)> {
    vec![
        (roll(m, m.yaw_rate, m.accel, horizon), 0.4),
        (roll(m, m.yaw_rate, m.accel - 1.5, horizon), 0.15),
        (roll(m, m.yaw_rate, m.accel + 1.0, horizon), 0.15),
        (roll(m, m.yaw_rate + 0.15, m.accel, horizon), 0.1),
        (roll(m, m.yaw_rate - 0.15, m.accel, horizon), 0.1),
        (roll(m, 0.0, -3.0, horizon), 0.1),
    ]
}

/// CTRA's prediction of one agent (the lane follower's fallback off the lanes).
pub(super) fn ctra_agent(track: &Track, current: usize, horizon: &PredictionHorizon) -> MultimodalPrediction {
    let m = motion(track, current, 1.0 / horizon.track_steps_per_second.max(1) as f64).unwrap_or_default();
    to_prediction(track.id, ctra_modes(&m, horizon), horizon)
}

/// Heading, speed, turn rate and acceleration at the current step, from the history.
#[derive(Debug, Clone, Copy, Default)]
struct Motion {
    x: f64,
    y: f64,
    heading: f64,
    speed: f64,
    yaw_rate: f64,
    accel: f64,
}

fn motion(track: &Track, current: usize, dt: f64) -> Option<Motion> {
    let now: &AgentState = track.states.get(current).filter(|s| s.valid)?;
    let speed = (now.velocity_x as f64).hypot(now.velocity_y as f64);
    // The velocity's direction when moving (boxes of pedestrians turn freely), else the box heading.
    let heading = if speed > 0.5 { (now.velocity_y as f64).atan2(now.velocity_x as f64) } else { now.heading as f64 };
    let back = (1..=5).rev().find(|k| current >= *k && track.states[current - k].valid);
    let (yaw_rate, accel) = match back {
        Some(k) => {
            let past = &track.states[current - k];
            let past_speed = (past.velocity_x as f64).hypot(past.velocity_y as f64);
            let past_heading = if past_speed > 0.5 {
                (past.velocity_y as f64).atan2(past.velocity_x as f64)
            } else {
                past.heading as f64
            };
            let t = k as f64 * dt;
            let dh = crate::geom::normalize_angle(heading - past_heading);
            ((dh / t).clamp(-0.6, 0.6), ((speed - past_speed) / t).clamp(-4.0, 3.0))
        }
        None => (0.0, 0.0),
    };
    Some(Motion { x: now.x, y: now.y, heading, speed, yaw_rate, accel })
}

/// Rolls a motion forward to the prediction steps: `(x, y)` per step.
fn roll(m: &Motion, yaw_rate: f64, accel: f64, horizon: &PredictionHorizon) -> Vec<(f64, f64)> {
    let dt = 1.0 / horizon.track_steps_per_second.max(1) as f64;
    let steps = horizon.prediction_steps();
    let (mut x, mut y, mut h, mut v) = (m.x, m.y, m.heading, m.speed);
    let mut out = Vec::with_capacity(steps);
    let mut k = horizon.history_samples;
    for p in 0..steps {
        while k < horizon.track_step(p) {
            v = (v + accel * dt).max(0.0);
            h += yaw_rate * dt;
            x += v * h.cos() * dt;
            y += v * h.sin() * dt;
            k += 1;
        }
        out.push((x, y));
    }
    out
}

/// Modes `(points, confidence)` of one object as a marginal prediction.
fn to_prediction(id: i64, modes: Vec<(Vec<(f64, f64)>, f64)>, horizon: &PredictionHorizon) -> MultimodalPrediction {
    MultimodalPrediction {
        joints: modes
            .into_iter()
            .take(horizon.max_modes)
            .map(|(pts, confidence)| JointPrediction {
                trajectories: vec![PredictedTrajectory {
                    object_id: id,
                    x: pts.iter().map(|p| p.0).collect(),
                    y: pts.iter().map(|p| p.1).collect(),
                    covariance: Vec::new(),
                }],
                confidence,
            })
            .collect(),
    }
}

/// Every track to predict, each from its motion at the current step (zero motion at the
/// origin when the current state is invalid: the metrics skip such agents).
fn predict(
    scenario: &Scenario,
    horizon: &PredictionHorizon,
    modes: impl Fn(&Motion) -> Vec<(Vec<(f64, f64)>, f64)>,
) -> ScenarioPredictions {
    let current = scenario.current_time_index;
    let predictions = scenario
        .tracks_to_predict
        .iter()
        .map(|t| {
            let track = &scenario.tracks[t.track_index];
            let m = motion(track, current, 1.0 / horizon.track_steps_per_second.max(1) as f64).unwrap_or_default();
            to_prediction(track.id, modes(&m), horizon)
        })
        .collect();
    ScenarioPredictions { scenario_id: scenario.id.clone(), predictions }
}
