//! Motion scenarios from a v2 dataset: agent tracks from `lidar_box` tracking ids placed in
//! the world frame with `vehicle_pose`, the ego (SDC) from `vehicle_pose` itself, the map
//! from scenetok's `map_feature`, cut into WOMD-shaped windows (10 history steps, the
//! current step, 80 future steps at 10 Hz).

use std::collections::BTreeMap;

use super::dataset::{Dataset, FrameRequest};
use super::schema::Component;
use crate::error::Result;
use crate::scene::{
    AgentState, AgentType, BoxType, DifficultyLevel, LidarBox, MapFeature, PredictionTarget, Scenario, Track, Transform,
};

/// WOMD's window: 10 history steps, the current one, 80 future ones.
pub const HISTORY: usize = 10;
pub const FUTURE: usize = 80;
pub const WINDOW: usize = HISTORY + 1 + FUTURE;
/// At most this many agents to predict per scenario (WOMD: up to 8).
pub const MAX_TO_PREDICT: usize = 8;

/// What to do with a frame that has no `vehicle_pose`: its boxes are in the vehicle frame
/// and cannot be placed in the world without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingPose {
    /// An error naming the segment and frame (the default: an identity pose would put the
    /// ego at the world origin and every metric would be silently wrong).
    #[default]
    Error,
    /// The identity pose, with a warning counting the frames (`--allow-missing`).
    Identity,
}

/// The tracks of a whole segment, one state per frame, and the frame timestamps.
pub fn segment_tracks(ds: &Dataset, segment: &str, missing: MissingPose) -> Result<(Vec<i64>, Vec<Track>)> {
    let request = FrameRequest::only(&[Component::LidarBox, Component::VehiclePose]);
    let mut tracks = TrackBuilder::default();
    let mut without_pose = 0;
    for frame in ds.frames(segment, &request)? {
        let frame = frame?;
        let pose = match (frame.vehicle_pose, missing) {
            (Some(p), _) => p,
            (None, MissingPose::Identity) => {
                without_pose += 1;
                Transform::identity()
            }
            (None, MissingPose::Error) => {
                let file = ds.file_path(segment, Component::VehiclePose).unwrap_or_else(|| ds.root().to_path_buf());
                return Err(crate::Error::invalid(
                    crate::Location::file(file).frame(frame.timestamp_micros).detail(format!("segment {segment}")),
                    "a vehicle_pose row for every frame (boxes are in the vehicle frame; --allow-missing uses the identity pose)",
                    "none",
                ));
            }
        };
        tracks.push(frame.timestamp_micros, pose, &frame.lidar_boxes);
    }
    if without_pose > 0 {
        tracing::warn!(
            "segment {segment}: {without_pose} of {} frames have no vehicle_pose; their boxes are placed as if the vehicle stood at the world origin",
            tracks.timestamps.len()
        );
    }
    Ok(tracks.finish())
}

/// Agent tracks built frame by frame from `lidar_box` labels (vehicle frame) and the frame's
/// pose: what [`segment_tracks`] reads from a dataset, and what the generator's labels give
/// without writing one (`scenetok dataset motion`).
#[derive(Debug, Default)]
pub struct TrackBuilder {
    timestamps: Vec<i64>,
    by_object: BTreeMap<String, (AgentType, Vec<(usize, AgentState)>)>,
    ego: Vec<Transform>,
}

impl TrackBuilder {
    /// Adds the next frame: its timestamp, `world_from_vehicle` and its boxes (signs and
    /// unknown objects are not agents and are skipped).
    pub fn push(&mut self, timestamp_micros: i64, pose: Transform, boxes: &[LidarBox]) {
        let i = self.timestamps.len();
        self.timestamps.push(timestamp_micros);
        let yaw = pose.yaw();
        let (sin, cos) = yaw.sin_cos();
        self.ego.push(pose);
        for b in boxes {
            let agent_type = match b.kind {
                BoxType::Vehicle => AgentType::Vehicle,
                BoxType::Pedestrian => AgentType::Pedestrian,
                BoxType::Cyclist => AgentType::Cyclist,
                BoxType::Sign | BoxType::Unknown => continue,
            };
            let c = pose.apply(&b.bbox.center);
            let state = AgentState {
                x: c.x,
                y: c.y,
                z: c.z,
                length: b.bbox.size.x as f32,
                width: b.bbox.size.y as f32,
                height: b.bbox.size.z as f32,
                heading: crate::geom::normalize_angle(b.bbox.heading + yaw) as f32,
                velocity_x: (cos * b.speed.x - sin * b.speed.y) as f32,
                velocity_y: (sin * b.speed.x + cos * b.speed.y) as f32,
                valid: true,
            };
            self.by_object.entry(b.object_id.clone()).or_insert((agent_type, Vec::new())).1.push((i, state));
        }
    }

    /// The frame timestamps and the tracks: the ego (id 0; positions from the poses,
    /// velocities by finite differences) first, then every labelled object by id.
    pub fn finish(self) -> (Vec<i64>, Vec<Track>) {
        let TrackBuilder { timestamps, by_object, ego } = self;
        let n = timestamps.len();
        let mut tracks = Vec::with_capacity(by_object.len() + 1);
        let mut states = vec![AgentState::default(); n];
        for (i, pose) in ego.iter().enumerate() {
            let t = pose.translation();
            let prev = if i > 0 { ego[i - 1].translation() } else { t };
            let dt = if i > 0 { seconds_between(timestamps[i - 1], timestamps[i]) } else { 1.0 };
            states[i] = AgentState {
                x: t.x,
                y: t.y,
                z: t.z,
                length: 4.8,
                width: 2.1,
                height: 1.8,
                heading: pose.yaw() as f32,
                velocity_x: ((t.x - prev.x) / dt) as f32,
                velocity_y: ((t.y - prev.y) / dt) as f32,
                valid: true,
            };
        }
        if n > 1 {
            states[0].velocity_x = states[1].velocity_x;
            states[0].velocity_y = states[1].velocity_y;
        }
        tracks.push(Track { id: 0, source_id: "ego".into(), agent_type: AgentType::Vehicle, states });
        for (k, (id, (agent_type, seen))) in by_object.into_iter().enumerate() {
            let mut states = vec![AgentState::default(); n];
            for (i, s) in seen {
                states[i] = s;
            }
            tracks.push(Track { id: k as i64 + 1, source_id: id, agent_type, states });
        }
        (timestamps, tracks)
    }
}

/// WOMD-shaped scenarios of one segment: a window every `stride` frames. Agents to
/// predict are valid at the current step, at ≥ 5 history steps and at the last step,
/// moving ones first, at most [`MAX_TO_PREDICT`].
pub fn segment_scenarios(ds: &Dataset, segment: &str, stride: usize, missing: MissingPose) -> Result<Vec<Scenario>> {
    let (timestamps, tracks) = segment_tracks(ds, segment, missing)?;
    let map = ds.read_map(segment)?;
    let cut = window_scenarios(segment, &timestamps, &tracks, &map, stride);
    if let Some(i) = cut.first_irregular {
        // Windows count time in frames (10 history frames = 1 s): across a gap every velocity
        // and horizon would be silently wrong. Skip those; with none left, say why.
        let at = crate::Location::file(ds.root()).frame(timestamps[i]).detail(format!("segment {segment}"));
        let found = format!(
            "{} s from the frame before (timestamp {} µs)",
            seconds_between(timestamps[i - 1], timestamps[i]),
            timestamps[i - 1]
        );
        if cut.windows > 0 && cut.skipped == cut.windows {
            return Err(crate::Error::invalid(
                at,
                "frames 0.1 s apart (10 Hz) over at least one 9.1 s window: motion windows count time in frames",
                found,
            ));
        }
        if cut.skipped > 0 {
            tracing::warn!(
                "{at}: {} of {} windows skipped: frames not 0.1 s apart ({found})",
                cut.skipped,
                cut.windows
            );
        }
    }
    Ok(cut.scenarios)
}

/// What [`window_scenarios`] cut from a segment.
#[derive(Debug, Clone)]
pub struct Windows {
    pub scenarios: Vec<Scenario>,
    /// Windows that fit in the segment, and those skipped for crossing a gap in time.
    pub windows: usize,
    pub skipped: usize,
    /// The first frame not 0.1 s after the one before, if any.
    pub first_irregular: Option<usize>,
}

/// Cuts a segment's tracks into WOMD-shaped scenarios (see [`segment_scenarios`]); windows
/// with no agent to predict are left out.
pub fn window_scenarios(
    segment: &str,
    timestamps: &[i64],
    tracks: &[Track],
    map: &[MapFeature],
    stride: usize,
) -> Windows {
    // Frames after a gap (or a corrupt timestamp): windows across one are skipped.
    let irregular: Vec<usize> = (1..timestamps.len())
        .filter(|&i| !FRAME_SPACING_S.contains(&seconds_between(timestamps[i - 1], timestamps[i])))
        .collect();
    let mut out =
        Windows { scenarios: Vec::new(), windows: 0, skipped: 0, first_irregular: irregular.first().copied() };
    let mut start = 0;
    while start + WINDOW <= timestamps.len() {
        out.windows += 1;
        if irregular.iter().any(|&i| i > start && i < start + WINDOW) {
            out.skipped += 1;
            start += stride.max(1);
            continue;
        }
        let window: Vec<Track> = tracks
            .iter()
            .map(|t| Track { states: t.states[start..start + WINDOW].to_vec(), ..t.clone() })
            .filter(|t| t.states.iter().any(|s| s.valid))
            .collect();
        let t0 = timestamps[start];
        let tracks_to_predict = agents_to_predict(&window, HISTORY, |s| {
            s[HISTORY].valid && s[WINDOW - 1].valid && s[..HISTORY].iter().filter(|x| x.valid).count() >= 5
        });
        if !tracks_to_predict.is_empty() {
            out.scenarios.push(Scenario {
                id: format!("{segment}@{start}"),
                timestamps_seconds: timestamps[start..start + WINDOW].iter().map(|&t| seconds_between(t0, t)).collect(),
                current_time_index: HISTORY,
                sdc_track_index: window.iter().position(|t| t.id == 0),
                tracks: window,
                tracks_to_predict,
                objects_of_interest: Vec::new(),
                map: map.to_vec(),
                dynamic_map_states: Vec::new(),
            });
        }
        start += stride.max(1);
    }
    out
}

/// The agents to predict: every track but the ego whose states `eligible` accepts, moving ones
/// first (speed at step `current`, then track order), at most [`MAX_TO_PREDICT`].
pub fn agents_to_predict(
    tracks: &[Track],
    current: usize,
    eligible: impl Fn(&[AgentState]) -> bool,
) -> Vec<PredictionTarget> {
    let mut candidates: Vec<(f32, usize)> = tracks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.id != 0 && eligible(&t.states))
        .map(|(i, t)| (-(t.states[current].velocity_x.hypot(t.states[current].velocity_y)), i))
        .collect();
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    candidates
        .iter()
        .take(MAX_TO_PREDICT)
        .map(|&(_, i)| PredictionTarget { track_index: i, difficulty: DifficultyLevel::Level1 })
        .collect()
}

/// The frame (index in its segment) where a window scenario starts: its id is
/// `{segment}@{start}`; `None` for another id.
pub fn window_start(scenario_id: &str) -> Option<usize> {
    scenario_id.rsplit_once('@').and_then(|(_, s)| s.parse().ok())
}

/// The spacing of consecutive frames that counts as 10 Hz (Waymo's timestamps jitter by a
/// few milliseconds).
const FRAME_SPACING_S: std::ops::RangeInclusive<f64> = 0.05..=0.15;

/// Seconds from `a` to `b` (microseconds): exact in i128, so timestamps anywhere in i64's
/// range (a corrupt file's, say) cannot overflow.
fn seconds_between(a: i64, b: i64) -> f64 {
    (b as i128 - a as i128) as f64 * 1e-6
}
