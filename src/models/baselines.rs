//! Motion baselines, the bar every learned model must clear: constant velocity, and
//! constant turn rate and acceleration (CTRA) with six modes around its estimate.

use crate::eval::motion::{
    JointPrediction, MetricsConfig, MultimodalPrediction, PredictedTrajectory, ScenarioPredictions,
};
use crate::scene::{AgentState, Scenario, Track};

/// The baselines, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Baseline {
    /// Constant velocity: one mode.
    ConstantVelocity,
    /// Constant turn rate and acceleration: six modes (the estimate, then braking,
    /// accelerating, turning left and right, and stopping), decreasing confidence.
    Ctra,
    /// Follows the map's lanes: one mode per branch of the lane graph ahead, plus speed
    /// variants ([`super::lane_follower`]); CTRA off the lanes.
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
}

/// Heading, speed, turn rate and acceleration at the current step, from the history.
#[derive(Debug, Clone, Copy)]
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

/// Rolls a motion forward to the prediction steps.
fn roll(m: &Motion, yaw_rate: f64, accel: f64, cfg: &MetricsConfig, id: i64) -> PredictedTrajectory {
    let dt = 0.1;
    let steps = cfg.prediction_steps();
    let (mut x, mut y, mut h, mut v) = (m.x, m.y, m.heading, m.speed);
    let (mut xs, mut ys) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    let mut k = cfg.track_history_samples;
    for p in 0..steps {
        while k < cfg.track_step(p) {
            v = (v + accel * dt).max(0.0);
            h += yaw_rate * dt;
            x += v * h.cos() * dt;
            y += v * h.sin() * dt;
            k += 1;
        }
        xs.push(x);
        ys.push(y);
    }
    PredictedTrajectory { object_id: id, x: xs, y: ys }
}

/// Predicts every track to predict of a scenario.
pub fn predict(baseline: Baseline, scenario: &Scenario, cfg: &MetricsConfig) -> ScenarioPredictions {
    if baseline == Baseline::LaneFollower {
        return super::lane_follower::predict(scenario, cfg);
    }
    let current = scenario.current_time_index;
    let predictions = scenario
        .tracks_to_predict
        .iter()
        .map(|t| {
            let track = &scenario.tracks[t.track_index];
            let m = motion(track, current, 0.1).unwrap_or(Motion {
                x: 0.0,
                y: 0.0,
                heading: 0.0,
                speed: 0.0,
                yaw_rate: 0.0,
                accel: 0.0,
            });
            let joints = match baseline {
                Baseline::ConstantVelocity => vec![(roll(&m, 0.0, 0.0, cfg, track.id), 1.0)],
                Baseline::Ctra | Baseline::LaneFollower => vec![
                    (roll(&m, m.yaw_rate, m.accel, cfg, track.id), 0.4),
                    (roll(&m, m.yaw_rate, m.accel - 1.5, cfg, track.id), 0.15),
                    (roll(&m, m.yaw_rate, m.accel + 1.0, cfg, track.id), 0.15),
                    (roll(&m, m.yaw_rate + 0.15, m.accel, cfg, track.id), 0.1),
                    (roll(&m, m.yaw_rate - 0.15, m.accel, cfg, track.id), 0.1),
                    (roll(&m, 0.0, -3.0, cfg, track.id), 0.1),
                ],
            };
            MultimodalPrediction {
                joints: joints
                    .into_iter()
                    .map(|(t, c)| JointPrediction { trajectories: vec![t], confidence: c })
                    .collect(),
            }
        })
        .collect();
    ScenarioPredictions { scenario_id: scenario.id.clone(), predictions }
}
