//! The motion stage for a stream of frames: each segment's last 1.1 s of tracked boxes
//! (`lidar_box` ids, placed in the world with `vehicle_pose`) become a WOMD-shaped scenario
//! whose current step is this frame, and the motion model predicts its agents' next 8 s.
//! The map comes from the segment's `map_feature` rows, shared by whoever received them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::io::v2::motion::{FUTURE, HISTORY, TrackBuilder, agents_to_predict};
use crate::io::v2::{Component, FrameRequest};
use crate::models::motion::MotionPredictor;
use crate::pipeline::context::FrameContext;
use crate::pipeline::stage::{Stage, StageKind};
use crate::scene::prediction::PredictionHorizon;
use crate::scene::{AgentState, AgentType, LidarBox, MapFeature, Scenario, Transform};

/// Each segment's map, as received (shared between the receiver and this stage).
pub type SegmentMaps = Arc<Mutex<HashMap<String, Arc<Vec<MapFeature>>>>>;

/// One agent's predicted futures.
#[derive(Debug, Clone)]
pub struct AgentForecast {
    /// `key.laser_object_id` of its boxes.
    pub object_id: String,
    pub agent_type: AgentType,
    /// Modes: probability and world-frame positions at the prediction steps (2 Hz, 8 s).
    pub modes: Vec<(f32, Vec<[f32; 2]>)>,
}

/// The motion stage's output.
#[derive(Debug, Clone, Default)]
pub struct MotionOutput {
    pub agents: Vec<AgentForecast>,
    /// Frames of history the scenario had (at most 11).
    pub history_frames: usize,
}

/// A frame's timestamp, pose and boxes: one step of history.
struct Step {
    timestamp: i64,
    pose: Transform,
    boxes: Vec<LidarBox>,
}

/// Boxes of the last frames → motion predictions for the current one.
pub struct MotionStage {
    predictor: Box<dyn MotionPredictor>,
    maps: SegmentMaps,
    history: BTreeMap<String, VecDeque<Step>>,
    /// At least this many valid history steps (current included) for an agent to be predicted.
    min_history: usize,
}

impl MotionStage {
    pub fn new(predictor: Box<dyn MotionPredictor>, maps: SegmentMaps) -> Self {
        MotionStage { predictor, maps, history: BTreeMap::new(), min_history: 5 }
    }
}

impl Stage for MotionStage {
    fn kind(&self) -> StageKind {
        StageKind::Motion
    }
    fn name(&self) -> &'static str {
        "motion"
    }
    fn request(&self) -> Option<FrameRequest> {
        Some(FrameRequest::only(&[Component::LidarBox, Component::VehiclePose]).without_second_returns())
    }

    fn run(&mut self, ctx: &mut FrameContext) -> Result<()> {
        let pose = ctx.frame.vehicle_pose.ok_or_else(|| {
            Error::invalid(ctx.at_frame(), "a vehicle_pose row (boxes are in the vehicle frame)", "none")
        })?;
        let steps = self.history.entry(ctx.segment.clone()).or_default();
        // A frame not after the last one (a replay that started over) begins a new history.
        if steps.back().is_some_and(|s| s.timestamp >= ctx.frame.timestamp_micros) {
            steps.clear();
        }
        if steps.len() == HISTORY + 1 {
            steps.pop_front();
        }
        steps.push_back(Step { timestamp: ctx.frame.timestamp_micros, pose, boxes: ctx.frame.lidar_boxes.clone() });
        let map = self.maps.lock().unwrap_or_else(|p| p.into_inner()).get(&ctx.segment).cloned();
        let scenario =
            scenario_of(&ctx.segment, steps, map.as_deref().map_or(&[][..], |m| m.as_slice()), self.min_history);
        let mut out = MotionOutput { agents: Vec::new(), history_frames: steps.len() };
        if !scenario.tracks_to_predict.is_empty() {
            let predictions = self.predictor.predict(&scenario, &PredictionHorizon::WOMD)?;
            for (target, p) in scenario.tracks_to_predict.iter().zip(&predictions.predictions) {
                let track = &scenario.tracks[target.track_index];
                let modes = p
                    .joints
                    .iter()
                    .filter_map(|j| {
                        let t = j.trajectories.first()?;
                        Some((j.confidence as f32, t.x.iter().zip(&t.y).map(|(x, y)| [*x as f32, *y as f32]).collect()))
                    })
                    .collect();
                out.agents.push(AgentForecast {
                    object_id: track.source_id.clone(),
                    agent_type: track.agent_type,
                    modes,
                });
            }
        }
        ctx.motion = Some(out);
        Ok(())
    }
}

/// The scenario whose current step is the last of `steps` (history padded with invalid states
/// in front when shorter than 1.1 s; no future). Agents valid now with at least `min_history`
/// valid steps are predicted ([`agents_to_predict`]).
fn scenario_of(segment: &str, steps: &VecDeque<Step>, map: &[MapFeature], min_history: usize) -> Scenario {
    let mut builder = TrackBuilder::default();
    for s in steps {
        builder.push(s.timestamp, s.pose, &s.boxes);
    }
    let (timestamps, mut tracks) = builder.finish();
    let pad = HISTORY + 1 - timestamps.len();
    for t in &mut tracks {
        let mut states = vec![AgentState::default(); pad];
        states.append(&mut t.states);
        states.resize(HISTORY + 1 + FUTURE, AgentState::default());
        t.states = states;
    }
    let now = timestamps.last().copied().unwrap_or_default();
    // Seconds from the window's first step, 10 Hz (what the window scenarios of a dataset hold).
    let timestamps_seconds = (0..HISTORY + 1 + FUTURE).map(|i| i as f64 * 0.1).collect();
    let needed = min_history.min(timestamps.len());
    let tracks_to_predict = agents_to_predict(&tracks, HISTORY, |s| {
        s[HISTORY].valid && s[..=HISTORY].iter().filter(|x| x.valid).count() >= needed
    });
    Scenario {
        id: format!("{segment}@{now}"),
        timestamps_seconds,
        current_time_index: HISTORY,
        sdc_track_index: tracks.iter().position(|t| t.id == 0),
        tracks,
        tracks_to_predict,
        objects_of_interest: Vec::new(),
        map: map.to_vec(),
        dynamic_map_states: Vec::new(),
    }
}
