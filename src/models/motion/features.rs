//! The motion transformer's inputs for one agent to predict: its history and its
//! neighbours' (up to [`MAX_AGENTS`]), the map as polylines (up to [`MAX_POLYLINES`] ×
//! [`POLYLINE_POINTS`], nearest first) and, for training, its future, all in the agent's
//! frame at the current step (origin at its position, +x along its heading). Built here, in
//! one place, for the dataset the PyTorch twin trains on and for inference, so the two can
//! never encode a scene differently.

use ndarray::{Array1, Array2, Array3};

use crate::scene::{AgentState, MapFeatureType, Scenario, Track};

/// History steps including the current one (1.1 s at 10 Hz).
pub const HISTORY_STEPS: usize = 11;
/// Future steps (8 s at 10 Hz).
pub const FUTURE_STEPS: usize = 80;
/// Context agents besides the agent to predict.
pub const MAX_AGENTS: usize = 64;
/// Agent slots: the agent to predict first, then its neighbours nearest first.
pub const AGENT_SLOTS: usize = 1 + MAX_AGENTS;
/// Per agent and step: x, y, cos heading, sin heading, vx, vy, length, width.
pub const AGENT_FEATURES: usize = 8;
/// Polyline pieces, nearest first.
pub const MAX_POLYLINES: usize = 256;
/// Points per piece: map features are resampled every [`POINT_SPACING_M`] and cut into pieces
/// of this many points (consecutive pieces share their end points).
pub const POLYLINE_POINTS: usize = 20;
/// Spacing of the resampled map points.
pub const POINT_SPACING_M: f64 = 1.0;
/// Pieces farther than this from the agent are left out (8 s at highway speed is ~250 m;
/// what matters for the first seconds is much nearer).
pub const MAP_RADIUS_M: f64 = 200.0;

/// Where an agent-centred frame sits in the world: the agent's position and heading at the
/// current step. Predictions are mapped back to the world with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentFrame {
    pub x: f64,
    pub y: f64,
    pub heading: f64,
}

impl AgentFrame {
    pub fn of(s: &AgentState) -> AgentFrame {
        AgentFrame { x: s.x, y: s.y, heading: s.heading as f64 }
    }

    /// A world point in this frame.
    pub fn to_local(&self, x: f64, y: f64) -> [f64; 2] {
        let (sin, cos) = self.heading.sin_cos();
        let (dx, dy) = (x - self.x, y - self.y);
        [cos * dx + sin * dy, -sin * dx + cos * dy]
    }

    /// A point of this frame in the world.
    pub fn to_world(&self, x: f64, y: f64) -> [f64; 2] {
        let (sin, cos) = self.heading.sin_cos();
        [self.x + cos * x - sin * y, self.y + sin * x + cos * y]
    }

    /// A world direction (a velocity) in this frame.
    fn rotate_in(&self, vx: f64, vy: f64) -> [f64; 2] {
        let (sin, cos) = self.heading.sin_cos();
        [cos * vx + sin * vy, -sin * vx + cos * vy]
    }
}

/// The map of a scenario cut into pieces once (world frame), so that every agent of the
/// scenario only picks its nearest ones.
#[derive(Debug, Clone)]
pub struct MapPieces {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
struct Piece {
    points: Vec<[f64; 2]>,
    feature_type: MapFeatureType,
    /// The lane it belongs to (traffic signals are per lane).
    lane_id: Option<i64>,
    centre: [f64; 2],
    /// Largest distance of a point from `centre`: a bound that skips far pieces quickly.
    radius: f64,
}

impl MapPieces {
    pub fn new(scenario: &Scenario) -> MapPieces {
        let mut pieces = Vec::new();
        for f in &scenario.map {
            let mut line: Vec<[f64; 2]> = f.polyline.iter().map(|p| [p.x, p.y]).collect();
            if f.feature_type.is_polygon() && line.len() > 2 {
                line.push(line[0]);
            }
            let line = resample(&line, POINT_SPACING_M);
            if line.is_empty() {
                continue;
            }
            let lane_id = (f.feature_type.kind() == crate::scene::MapFeatureKind::Lane).then_some(f.id);
            let mut start = 0;
            loop {
                let end = (start + POLYLINE_POINTS).min(line.len());
                let points = line[start..end].to_vec();
                let n = points.len() as f64;
                let centre =
                    [points.iter().map(|p| p[0]).sum::<f64>() / n, points.iter().map(|p| p[1]).sum::<f64>() / n];
                let radius = points.iter().map(|p| (p[0] - centre[0]).hypot(p[1] - centre[1])).fold(0.0, f64::max);
                pieces.push(Piece { points, feature_type: f.feature_type, lane_id, centre, radius });
                if end == line.len() {
                    break;
                }
                start = end - 1;
            }
        }
        MapPieces { pieces }
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

/// Points every `spacing` along a polyline, its first and last point included; a single
/// point stays one (a stop sign). Non-finite points are dropped.
fn resample(line: &[[f64; 2]], spacing: f64) -> Vec<[f64; 2]> {
    let line: Vec<[f64; 2]> = line.iter().copied().filter(|p| p[0].is_finite() && p[1].is_finite()).collect();
    let Some(&first) = line.first() else { return Vec::new() };
    let mut out = vec![first];
    // Distance walked since the last emitted point.
    let mut carried = 0.0;
    for w in line.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = (b[0] - a[0]).hypot(b[1] - a[1]);
        let mut at = spacing - carried;
        while at <= len {
            let t = at / len;
            out.push([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]);
            at += spacing;
        }
        carried = len - (at - spacing);
    }
    let last = line[line.len() - 1];
    let end = out[out.len() - 1];
    if line.len() > 1 && (last[0] - end[0]).hypot(last[1] - end[1]) > 1e-6 {
        out.push(last);
    }
    out
}

/// The inputs for one agent: what the model reads.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInputs {
    /// [`AGENT_SLOTS`] × [`HISTORY_STEPS`] × [`AGENT_FEATURES`]; zero where not valid.
    pub agents: Array3<f32>,
    /// [`AGENT_SLOTS`] × [`HISTORY_STEPS`].
    pub agent_valid: Array2<bool>,
    /// WOMD `ObjectType` value per slot (0 = empty slot).
    pub agent_type: Array1<u8>,
    /// [`MAX_POLYLINES`] × [`POLYLINE_POINTS`] × 2 (x, y); zero where not valid.
    pub polylines: Array3<f32>,
    /// [`MAX_POLYLINES`] × [`POLYLINE_POINTS`].
    pub point_valid: Array2<bool>,
    /// `MapFeatureType` value per piece (0 for an empty slot, whose points are all invalid).
    pub polyline_type: Array1<u8>,
    /// The lane's `TrafficSignalLaneState` at the current step (0 = unknown or none).
    pub signal: Array1<u8>,
    /// The frame all of it is in.
    pub frame: AgentFrame,
}

/// Where the agent went: [`FUTURE_STEPS`] positions in its frame and their validity.
#[derive(Debug, Clone, PartialEq)]
pub struct FutureTarget {
    pub xy: Array2<f32>,
    pub valid: Array1<bool>,
}

/// Why an agent has no inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    #[error("scenario {scenario}: track index {track} is out of range ({tracks} tracks)")]
    NoSuchTrack { scenario: String, track: usize, tracks: usize },
    #[error(
        "scenario {scenario}: the current step {current} leaves fewer than {HISTORY_STEPS} history steps or is past the {steps} steps of the tracks"
    )]
    BadCurrentStep { scenario: String, current: usize, steps: usize },
    #[error("scenario {scenario}: track {track_id} has no valid state with finite values at the current step")]
    NoCurrentState { scenario: String, track_id: i64 },
}

/// Whether a state can be used: valid and every number finite.
fn usable(s: &AgentState) -> bool {
    s.valid
        && s.x.is_finite()
        && s.y.is_finite()
        && s.heading.is_finite()
        && s.velocity_x.is_finite()
        && s.velocity_y.is_finite()
        && s.length.is_finite()
        && s.width.is_finite()
}

/// The inputs for track `track` of `scenario` (its current state must be usable: see
/// [`FeatureError`]). States that are not valid or hold a NaN count as missing.
pub fn agent_inputs(scenario: &Scenario, map: &MapPieces, track: usize) -> Result<AgentInputs, FeatureError> {
    let current = scenario.current_time_index;
    let target = scenario.tracks.get(track).ok_or_else(|| FeatureError::NoSuchTrack {
        scenario: scenario.id.clone(),
        track,
        tracks: scenario.tracks.len(),
    })?;
    let steps = target.states.len();
    if current + 1 < HISTORY_STEPS || current >= steps {
        return Err(FeatureError::BadCurrentStep { scenario: scenario.id.clone(), current, steps });
    }
    let now = &target.states[current];
    if !usable(now) {
        return Err(FeatureError::NoCurrentState { scenario: scenario.id.clone(), track_id: target.id });
    }
    let frame = AgentFrame::of(now);
    let history = current + 1 - HISTORY_STEPS..=current;

    // Neighbours with a usable history step, nearest (at their latest such step) first.
    let mut neighbours: Vec<(f64, usize)> = scenario
        .tracks
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != track)
        .filter_map(|(i, t)| {
            let s = t.states.get(history.clone())?.iter().rev().find(|s| usable(s))?;
            Some(((s.x - frame.x).hypot(s.y - frame.y), i))
        })
        .collect();
    neighbours.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

    let mut agents = Array3::zeros((AGENT_SLOTS, HISTORY_STEPS, AGENT_FEATURES));
    let mut agent_valid = Array2::from_elem((AGENT_SLOTS, HISTORY_STEPS), false);
    let mut agent_type = Array1::zeros(AGENT_SLOTS);
    let slots = std::iter::once(track).chain(neighbours.iter().map(|&(_, i)| i)).take(AGENT_SLOTS);
    for (slot, i) in slots.enumerate() {
        let t: &Track = &scenario.tracks[i];
        agent_type[slot] = t.agent_type.value() as u8;
        for (k, s) in t.states[history.clone()].iter().enumerate() {
            if !usable(s) {
                continue;
            }
            let [x, y] = frame.to_local(s.x, s.y);
            let h = s.heading as f64 - frame.heading;
            let [vx, vy] = frame.rotate_in(s.velocity_x as f64, s.velocity_y as f64);
            let v = [x, y, h.cos(), h.sin(), vx, vy, s.length as f64, s.width as f64];
            for (f, value) in v.iter().enumerate() {
                agents[[slot, k, f]] = *value as f32;
            }
            agent_valid[[slot, k]] = true;
        }
    }

    let signals: std::collections::HashMap<i64, i32> = scenario
        .dynamic_map_states
        .get(current)
        .map(|states| states.iter().map(|s| (s.lane_id, s.state)).collect())
        .unwrap_or_default();
    let mut nearest: Vec<(f64, usize)> = map
        .pieces
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let bound = (p.centre[0] - frame.x).hypot(p.centre[1] - frame.y) - p.radius;
            if bound > MAP_RADIUS_M {
                return None;
            }
            let d = p.points.iter().map(|q| (q[0] - frame.x).hypot(q[1] - frame.y)).fold(f64::INFINITY, f64::min);
            (d <= MAP_RADIUS_M).then_some((d, i))
        })
        .collect();
    nearest.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut polylines = Array3::zeros((MAX_POLYLINES, POLYLINE_POINTS, 2));
    let mut point_valid = Array2::from_elem((MAX_POLYLINES, POLYLINE_POINTS), false);
    let mut polyline_type = Array1::zeros(MAX_POLYLINES);
    let mut signal = Array1::zeros(MAX_POLYLINES);
    for (slot, &(_, i)) in nearest.iter().take(MAX_POLYLINES).enumerate() {
        let p = &map.pieces[i];
        polyline_type[slot] = p.feature_type.value() as u8;
        signal[slot] = p.lane_id.and_then(|id| signals.get(&id)).map_or(0, |&s| s.clamp(0, 255) as u8);
        for (k, q) in p.points.iter().enumerate() {
            let [x, y] = frame.to_local(q[0], q[1]);
            polylines[[slot, k, 0]] = x as f32;
            polylines[[slot, k, 1]] = y as f32;
            point_valid[[slot, k]] = true;
        }
    }
    Ok(AgentInputs { agents, agent_valid, agent_type, polylines, point_valid, polyline_type, signal, frame })
}

/// Track `track`'s future after the current step, in `frame`: what training regresses.
pub fn future_target(scenario: &Scenario, track: usize, frame: &AgentFrame) -> FutureTarget {
    let mut xy = Array2::zeros((FUTURE_STEPS, 2));
    let mut valid = Array1::from_elem(FUTURE_STEPS, false);
    if let Some(t) = scenario.tracks.get(track) {
        let future = t.states.iter().skip(scenario.current_time_index + 1).take(FUTURE_STEPS);
        for (k, s) in future.enumerate() {
            if s.valid && s.x.is_finite() && s.y.is_finite() {
                let [x, y] = frame.to_local(s.x, s.y);
                xy[[k, 0]] = x as f32;
                xy[[k, 1]] = y as f32;
                valid[k] = true;
            }
        }
    }
    FutureTarget { xy, valid }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{AgentType, MapFeature};
    use nalgebra::vector;

    fn state(x: f64, y: f64, heading: f32, v: f32) -> AgentState {
        AgentState {
            x,
            y,
            z: 0.0,
            length: 4.5,
            width: 2.0,
            height: 1.5,
            heading,
            velocity_x: v * heading.cos(),
            velocity_y: v * heading.sin(),
            valid: true,
        }
    }

    fn scenario(tracks: Vec<Track>, map: Vec<MapFeature>) -> Scenario {
        Scenario {
            id: "s".into(),
            timestamps_seconds: (0..91).map(|i| i as f64 * 0.1).collect(),
            current_time_index: 10,
            sdc_track_index: None,
            tracks,
            tracks_to_predict: Vec::new(),
            objects_of_interest: Vec::new(),
            map,
            dynamic_map_states: Vec::new(),
        }
    }

    fn straight(id: i64, x0: f64, y0: f64, heading: f32, v: f32) -> Track {
        let (s, c) = (heading as f64).sin_cos();
        let states =
            (0..91).map(|i| state(x0 + c * v as f64 * 0.1 * i as f64, y0 + s * v as f64 * 0.1 * i as f64, heading, v));
        Track { id, source_id: id.to_string(), agent_type: AgentType::Vehicle, states: states.collect() }
    }

    #[test]
    fn resampling_keeps_spacing_and_end_points() {
        let r = resample(&[[0.0, 0.0], [2.5, 0.0], [2.5, 2.5]], 1.0);
        assert_eq!(r.first(), Some(&[0.0, 0.0]));
        assert_eq!(r.last(), Some(&[2.5, 2.5]));
        assert_eq!(r.len(), 6, "{r:?}");
        for w in r.windows(2).take(5) {
            let d = (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
            assert!(d <= 1.0 + 1e-9 && d > 0.7, "{d}");
        }
        assert_eq!(resample(&[[3.0, 4.0]], 1.0), vec![[3.0, 4.0]]);
        assert!(resample(&[[f64::NAN, 0.0]], 1.0).is_empty());
    }

    /// The agent's own frame: it sits at the origin heading +x, its past behind it and its
    /// future ahead; a neighbour keeps its distance; map points come nearest first.
    #[test]
    fn everything_is_in_the_agent_frame() {
        let heading = 0.7f32;
        let target = straight(1, 100.0, -50.0, heading, 10.0);
        let other = straight(2, 100.0, -40.0, heading, 10.0);
        let lane: Vec<_> = (0..100).map(|i| vector![100.0 + i as f64 * 0.5, -50.0, 0.0]).collect();
        let far: Vec<_> = (0..10).map(|i| vector![900.0 + i as f64, 0.0, 0.0]).collect();
        let s = scenario(
            vec![other, target],
            vec![
                MapFeature::new(7, MapFeatureType::RoadEdgeBoundary, far),
                MapFeature::new(8, MapFeatureType::LaneSurfaceStreet, lane),
            ],
        );
        let map = MapPieces::new(&s);
        let x = agent_inputs(&s, &map, 1).unwrap();
        let now = &s.tracks[1].states[10];
        assert_eq!((x.frame.x, x.frame.y), (now.x, now.y));
        let cur = x.agents.slice(ndarray::s![0, 10, ..]).to_vec();
        assert!(cur[0].abs() < 1e-4 && cur[1].abs() < 1e-4 && (cur[2] - 1.0).abs() < 1e-6 && cur[3].abs() < 1e-6);
        assert!((cur[4] - 10.0).abs() < 1e-4 && cur[5].abs() < 1e-4, "{cur:?}");
        assert!((x.agents[[0, 0, 0]] + 10.0).abs() < 1e-3, "1 s ago it was 10 m behind");
        assert!(x.agent_valid.slice(ndarray::s![0..2, ..]).iter().all(|&v| v));
        assert!(!x.agent_valid.slice(ndarray::s![2.., ..]).iter().any(|&v| v));
        assert_eq!(x.agent_type.slice(ndarray::s![0..3]).to_vec(), vec![1, 1, 0]);
        let d = x.agents[[1, 10, 0]].hypot(x.agents[[1, 10, 1]]);
        assert!((d - 10.0).abs() < 1e-3, "{d}");
        // Only the lane is within range; 50 m in 1 m steps, 20-point pieces sharing ends.
        assert_eq!(map.len(), 3 + 1);
        assert_eq!(x.polyline_type.iter().filter(|&&t| t != 0).count(), 3);
        assert_eq!(x.polyline_type[0], MapFeatureType::LaneSurfaceStreet.value() as u8);
        assert_eq!(x.point_valid.row(0).iter().filter(|&&v| v).count(), POLYLINE_POINTS);
        let p0 = [x.polylines[[0, 0, 0]] as f64, x.polylines[[0, 0, 1]] as f64];
        let back = x.frame.to_world(p0[0], p0[1]);
        assert!((back[0] - 100.0).abs() < 1e-3 && (back[1] + 50.0).abs() < 1e-3, "{back:?}");
        let fut = future_target(&s, 1, &x.frame);
        assert!(fut.valid.iter().all(|&v| v));
        assert!((fut.xy[[79, 0]] - 80.0).abs() < 1e-3 && fut.xy[[79, 1]].abs() < 1e-3);
    }

    /// NaN or invalid states are missing steps, never numbers; an agent without a current
    /// state is an error naming it; an empty map leaves every polyline slot empty.
    #[test]
    fn missing_and_broken_states() {
        let mut t = straight(1, 0.0, 0.0, 0.0, 5.0);
        t.states[3].x = f64::NAN;
        t.states[4].valid = false;
        let mut u = straight(2, 5.0, 0.0, 0.0, 5.0);
        u.states[10].velocity_x = f32::NAN;
        let s = scenario(vec![t, u], Vec::new());
        let map = MapPieces::new(&s);
        let x = agent_inputs(&s, &map, 0).unwrap();
        assert!(!x.agent_valid[[0, 3]] && !x.agent_valid[[0, 4]] && x.agent_valid[[0, 5]]);
        assert!(x.agents.iter().all(|v| v.is_finite()));
        assert!(!x.point_valid.iter().any(|&v| v));
        // The neighbour's last usable step is 9: it is still a neighbour.
        assert!(x.agent_valid[[1, 9]] && !x.agent_valid[[1, 10]]);
        let e = agent_inputs(&s, &map, 1).unwrap_err();
        assert!(matches!(e, FeatureError::NoCurrentState { track_id: 2, .. }), "{e}");
        assert!(agent_inputs(&s, &map, 5).is_err());
    }
}
