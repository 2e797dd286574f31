//! The map-aware baseline: follow the lanes. An agent is matched to the lane it is on; the
//! lane graph is walked forward to enumerate where it may go at each branch; modes are those
//! paths driven at its current speed, plus braking and speeding-up on the likeliest path.
//! Agents off every lane (pedestrians, parking lots) fall back to CTRA.

use std::collections::BTreeMap;

use super::MotionPredictor;
use super::kinematic::ctra_agent;
use crate::error::Result;
use crate::geom::polyline::{P2, Polyline, wrap};
use crate::scene::prediction::{
    JointPrediction, MultimodalPrediction, PredictedTrajectory, PredictionHorizon, ScenarioPredictions,
};
use crate::scene::{AgentType, MapFeatureKind, Scenario};

/// Follows the map's lanes: one mode per branch of the lane graph ahead, plus speed
/// variants; CTRA off the lanes and for pedestrians.
#[derive(Debug, Clone, Copy, Default)]
pub struct LaneFollower;

impl MotionPredictor for LaneFollower {
    fn name(&self) -> &str {
        "lane-follower"
    }
    fn predict(&self, scenario: &Scenario, horizon: &PredictionHorizon) -> Result<ScenarioPredictions> {
        Ok(predict(scenario, horizon))
    }
}

/// Paths explored per agent (each branch is one path).
const MAX_PATHS: usize = 4;
/// An agent belongs to a lane within this distance and heading difference.
const MATCH_DISTANCE: f64 = 2.5;
const MATCH_HEADING: f64 = 0.7;

struct Lane {
    path: Polyline,
    exits: Vec<i64>,
}

/// Predicts every track to predict of a scenario with up to six lane-following modes.
fn predict(scenario: &Scenario, cfg: &PredictionHorizon) -> ScenarioPredictions {
    let lanes: BTreeMap<i64, Lane> = scenario
        .map
        .iter()
        .filter(|f| f.feature_type.kind() == MapFeatureKind::Lane && f.polyline.len() >= 2)
        .map(|f| {
            (
                f.id,
                Lane {
                    path: Polyline::new(f.polyline.iter().map(|p| P2::new(p.x, p.y)).collect()),
                    exits: f.exit_lanes.clone(),
                },
            )
        })
        .collect();
    let current = scenario.current_time_index;
    let predictions = scenario
        .tracks_to_predict
        .iter()
        .map(|t| {
            let track = &scenario.tracks[t.track_index];
            let fallback = || ctra_agent(track, current, cfg);
            let Some(now) = track.states.get(current).filter(|s| s.valid) else { return fallback() };
            if track.agent_type == AgentType::Pedestrian {
                return fallback();
            }
            let pos = P2::new(now.x, now.y);
            let speed = (now.velocity_x as f64).hypot(now.velocity_y as f64);
            let heading =
                if speed > 0.5 { (now.velocity_y as f64).atan2(now.velocity_x as f64) } else { now.heading as f64 };
            let horizon = speed * 8.5 + 15.0;
            let paths = lane_paths(&lanes, &pos, heading, horizon);
            if paths.is_empty() {
                return fallback();
            }
            modes(&paths, &pos, speed, cfg, track.id)
        })
        .collect();
    ScenarioPredictions { scenario_id: scenario.id.clone(), predictions }
}

/// Paths along the lane graph from the lane the agent is on, each long enough for the
/// horizon, as polylines starting at the agent's projection.
fn lane_paths(lanes: &BTreeMap<i64, Lane>, pos: &P2, heading: f64, horizon: f64) -> Vec<Polyline> {
    let mut best: Option<(f64, i64, f64)> = None;
    for (id, lane) in lanes {
        let (s, d) = lane.path.project(pos);
        if d.abs() < MATCH_DISTANCE
            && wrap(lane.path.heading_at(s) - heading).abs() < MATCH_HEADING
            && best.is_none_or(|(bd, _, _)| d.abs() < bd)
        {
            best = Some((d.abs(), *id, s));
        }
    }
    let Some((_, start, s0)) = best else { return Vec::new() };
    // Depth-first over exits; each stack entry is a chain of lane ids and its length.
    let mut out = Vec::new();
    let mut stack = vec![(vec![start], lanes[&start].path.length() - s0)];
    while let Some((chain, length)) = stack.pop() {
        if out.len() >= MAX_PATHS {
            break;
        }
        let last = chain[chain.len() - 1];
        let exits: Vec<i64> =
            lanes[&last].exits.iter().copied().filter(|e| lanes.contains_key(e) && !chain.contains(e)).collect();
        if length >= horizon || exits.is_empty() || chain.len() > 12 {
            let mut pts: Vec<P2> = lanes[&chain[0]].path.slice(s0, f64::INFINITY).points().to_vec();
            for id in &chain[1..] {
                pts.extend_from_slice(&lanes[id].path.points()[1..]);
            }
            out.push(Polyline::new(pts));
            continue;
        }
        // Push in reverse so the first exit (often straight on) is explored first.
        for e in exits.iter().rev() {
            let mut next = chain.clone();
            next.push(*e);
            stack.push((next, length + lanes[e].path.length()));
        }
    }
    out
}

fn roll(path: &Polyline, start: &P2, speed: f64, accel: f64, cfg: &PredictionHorizon, id: i64) -> PredictedTrajectory {
    let (s0, d) = path.project(start);
    let steps = cfg.prediction_steps();
    let (mut xs, mut ys) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for p in 0..steps {
        let t = cfg.seconds(p);
        // Speed changes stop at standstill rather than reversing.
        let travel = if accel < 0.0 && speed + accel * t < 0.0 {
            speed * speed / (-2.0 * accel)
        } else {
            speed * t + 0.5 * accel * t * t
        };
        let (q, h) = path.pose_at(s0 + travel.max(0.0));
        // Drift back to the lane centre over ~2 s.
        let lateral = d * (-t / 2.0).exp();
        xs.push(q.x - h.sin() * lateral);
        ys.push(q.y + h.cos() * lateral);
    }
    PredictedTrajectory { object_id: id, x: xs, y: ys, covariance: Vec::new() }
}

fn modes(paths: &[Polyline], start: &P2, speed: f64, cfg: &PredictionHorizon, id: i64) -> MultimodalPrediction {
    let mut joints = Vec::new();
    let share = 0.6 / paths.len() as f64;
    for p in paths {
        joints.push(JointPrediction { trajectories: vec![roll(p, start, speed, 0.0, cfg, id)], confidence: share });
    }
    let main = &paths[0];
    for (accel, conf) in [(-1.5, 0.15), (1.0, 0.1), (-3.0, 0.1), (0.5, 0.05)] {
        if joints.len() >= cfg.max_modes {
            break;
        }
        joints.push(JointPrediction { trajectories: vec![roll(main, start, speed, accel, cfg, id)], confidence: conf });
    }
    joints.truncate(cfg.max_modes);
    MultimodalPrediction { joints }
}
