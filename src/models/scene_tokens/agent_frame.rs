//! Scene elements as one agent's tokens: the elements of the history frames, in the agent's
//! frame at the current step, selected under a cap, each a row the motion transformer
//! projects (its scene-token slot).
//!
//! A token row is `[x, y, z] · 0.1` (the centre in the agent's frame, scaled like the agent
//! histories' positions), `cos Δh, sin Δh` (the element's heading relative to the agent's),
//! the age of its frame in seconds, then the element's pose-free features
//! ([`super::FeatureLayout`]): [`POSE_LEN`] + `layout.len()` values.
//!
//! **Drop rule**: elements of the selected kinds whose centre lies within `range` of the
//! agent, at most `max_tokens`: agents first, then objects, then ground tiles; within a kind
//! the newest frame first, then the nearest to the agent.

use ndarray::Array2;

use super::{ElementKind, SceneElements};
use crate::models::motion::transformer::SceneTokens;
use crate::scene::Transform;

/// Values before the element's features in a token row.
pub const POSE_LEN: usize = 6;
/// Position scale (as the transformer's agent inputs).
const POSITION_SCALE: f32 = 0.1;

/// One history frame's elements and where the frame was.
#[derive(Debug, Clone, Copy)]
pub struct FrameElements<'a> {
    pub elements: &'a SceneElements,
    /// Vehicle → world at the frame.
    pub vehicle_pose: &'a Transform,
    /// Seconds before the current step (0 for the current frame).
    pub age: f32,
}

/// The agent at the current step, world frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentPose {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub heading: f64,
}

/// The cap, the range and the kinds of [`tokens_for_agent`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenSelection {
    /// At most this many tokens per agent (512).
    pub max_tokens: usize,
    /// Only elements whose centre is within this of the agent, metres (60).
    pub range: f64,
    /// Which kinds of element become tokens (all three; a model trained on objects only
    /// leaves out the agents, which its boxes give, and the ground, which its map gives).
    pub kinds: [bool; 3],
}

impl TokenSelection {
    /// Only these kinds (none given: all).
    pub fn with_kinds(self, kinds: &[ElementKind]) -> Self {
        let mut keep = [kinds.is_empty(); 3];
        for &k in kinds {
            keep[k as usize] = true;
        }
        TokenSelection { kinds: keep, ..self }
    }

    fn keeps(&self, kind: ElementKind) -> bool {
        self.kinds[kind as usize]
    }
}

impl Default for TokenSelection {
    fn default() -> Self {
        TokenSelection { max_tokens: 512, range: 60.0, kinds: [true; 3] }
    }
}

/// The agent's tokens (every row valid), or `None` when no element qualifies (the model
/// then runs without the slot) or the frames disagree on the feature layout.
pub fn tokens_for_agent(frames: &[FrameElements<'_>], agent: AgentPose, sel: TokenSelection) -> Option<SceneTokens> {
    let layout = frames.first()?.elements.layout;
    if frames.iter().any(|f| f.elements.layout != layout) {
        return None;
    }
    let (s, c) = agent.heading.sin_cos();
    // Candidates: (kind, age, distance, frame, element, agent-frame centre, relative heading).
    let mut picked = Vec::new();
    for (k, f) in frames.iter().enumerate() {
        let yaw = f.vehicle_pose.yaw();
        for (e, el) in f.elements.elements.iter().enumerate() {
            let local = nalgebra::Vector3::new(el.center[0] as f64, el.center[1] as f64, el.center[2] as f64);
            let w = f.vehicle_pose.apply(&local);
            let (dx, dy) = (w.x - agent.x, w.y - agent.y);
            let (ax, ay) = (c * dx + s * dy, -s * dx + c * dy);
            let dist = (ax * ax + ay * ay).sqrt();
            // NaN centres fail the test too.
            if dist.is_nan() || dist > sel.range || !sel.keeps(el.kind) {
                continue;
            }
            let rel = el.heading as f64 + yaw - agent.heading;
            picked.push((el.kind, f.age, dist, k, e, [ax, ay, w.z - agent.z], rel));
        }
    }
    picked.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.total_cmp(&b.2)));
    picked.truncate(sel.max_tokens);
    if picked.is_empty() {
        return None;
    }
    let width = POSE_LEN + layout.len();
    let mut tokens = Array2::<f32>::zeros((picked.len(), width));
    for (row, &(_, age, _, k, e, p, rel)) in tokens.rows_mut().into_iter().zip(&picked) {
        let row = row.into_slice()?;
        let el = &frames[k].elements.elements[e];
        row[..3].copy_from_slice(&p.map(|v| v as f32 * POSITION_SCALE));
        row[3] = rel.cos() as f32;
        row[4] = rel.sin() as f32;
        row[5] = age;
        let n = el.features.len().min(layout.len());
        row[POSE_LEN..POSE_LEN + n].copy_from_slice(&el.features[..n]);
    }
    let n = picked.len();
    Some(SceneTokens { tokens, valid: vec![true; n] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::pose::transform_from_rpy_xyz;
    use crate::models::scene_tokens::{Element, ElementKind, FeatureLayout};

    fn element(kind: ElementKind, center: [f32; 3], heading: f32, tag: f32) -> Element {
        let layout = FeatureLayout { image_channels: 0, lidar_channels: 0 };
        let mut features = vec![0.0; layout.len()];
        features[3] = tag;
        Element {
            kind,
            object_id: None,
            box_type: None,
            points: vec![],
            center,
            heading,
            extent: [1.0; 3],
            distance: (center[0] * center[0] + center[1] * center[1]).sqrt(),
            features,
        }
    }

    fn frame(elements: Vec<Element>) -> SceneElements {
        SceneElements {
            elements,
            assignment: vec![],
            ground: vec![],
            dropped: 0,
            layout: FeatureLayout { image_channels: 0, lidar_channels: 0 },
            plane: [0.0; 3],
        }
    }

    #[test]
    fn elements_land_in_the_agent_frame_with_their_age() {
        // The vehicle at (100, 50) facing +y; an object 10 m ahead of it (vehicle x = 10) is
        // at world (100, 60). The agent at (100, 40) facing +x: the object is 20 m to its left.
        let pose = transform_from_rpy_xyz(0.0, 0.0, std::f64::consts::FRAC_PI_2, 100.0, 50.0, 2.0);
        let now = frame(vec![element(ElementKind::Object, [10.0, 0.0, 0.5], 0.3, 7.0)]);
        let frames = [FrameElements { elements: &now, vehicle_pose: &pose, age: 0.5 }];
        let agent = AgentPose { x: 100.0, y: 40.0, z: 2.0, heading: 0.0 };
        let t = tokens_for_agent(&frames, agent, TokenSelection::default()).unwrap();
        assert_eq!(t.tokens.shape(), &[1, POSE_LEN + FeatureLayout::GEOMETRY + 2]);
        let r = t.tokens.row(0);
        assert!((r[0] - 0.0).abs() < 1e-5 && (r[1] - 2.0).abs() < 1e-5 && (r[2] - 0.05).abs() < 1e-5, "{r:?}");
        // Heading 0.3 in the vehicle frame, the vehicle turned by 90°: 0.3 + π/2 for the agent.
        let rel = 0.3f32 + std::f32::consts::FRAC_PI_2;
        assert!((r[3] - rel.cos()).abs() < 1e-5 && (r[4] - rel.sin()).abs() < 1e-5);
        assert_eq!(r[5], 0.5);
        assert_eq!(r[POSE_LEN + 3], 7.0);
        assert_eq!(t.valid, vec![true]);
    }

    #[test]
    fn the_cap_keeps_agents_then_objects_then_ground_newest_and_nearest_first() {
        let id = Transform::identity();
        let now = frame(vec![
            element(ElementKind::Ground, [1.0, 0.0, 0.0], 0.0, 1.0),
            element(ElementKind::Object, [30.0, 0.0, 0.0], 0.0, 2.0),
            element(ElementKind::Object, [5.0, 0.0, 0.0], 0.0, 3.0),
            element(ElementKind::Agent, [50.0, 0.0, 0.0], 0.0, 4.0),
            // Beyond the range: never a token.
            element(ElementKind::Agent, [90.0, 0.0, 0.0], 0.0, 5.0),
        ]);
        let before = frame(vec![element(ElementKind::Object, [2.0, 0.0, 0.0], 0.0, 6.0)]);
        let frames = [
            FrameElements { elements: &before, vehicle_pose: &id, age: 1.0 },
            FrameElements { elements: &now, vehicle_pose: &id, age: 0.0 },
        ];
        let agent = AgentPose { x: 0.0, y: 0.0, z: 0.0, heading: 0.0 };
        let tags = |sel: TokenSelection| -> Vec<f32> {
            let t = tokens_for_agent(&frames, agent, sel).unwrap();
            t.tokens.rows().into_iter().map(|r| r[POSE_LEN + 3]).collect()
        };
        assert_eq!(tags(TokenSelection::default()), vec![4.0, 3.0, 2.0, 6.0, 1.0]);
        assert_eq!(tags(TokenSelection { max_tokens: 3, ..TokenSelection::default() }), vec![4.0, 3.0, 2.0]);
        // Objects only: the cap then counts objects alone.
        let objects = TokenSelection::default().with_kinds(&[ElementKind::Object]);
        assert_eq!(tags(objects), vec![3.0, 2.0, 6.0]);
        assert_eq!(tags(TokenSelection { max_tokens: 2, ..objects }), vec![3.0, 2.0]);
        assert_eq!(TokenSelection::default().with_kinds(&[]), TokenSelection::default());
        // Nothing in range: no tokens, the model's no-token path.
        let far = AgentPose { x: 1000.0, ..agent };
        assert!(tokens_for_agent(&frames, far, TokenSelection::default()).is_none());
        assert!(tokens_for_agent(&[], agent, TokenSelection::default()).is_none());
    }
}
