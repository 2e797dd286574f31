//! A built motion dataset's split as scenarios to evaluate (`scenetok compare --dataset`):
//! the generated worlds' scenarios made again from the manifest's plan (the same ids the
//! shards hold), how close each agent to predict comes to an unlabelled obstacle, and,
//! for a dataset built with `--tokens`, the scene tokens from its sidecars.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use ndarray::Array2;
use rayon::prelude::*;

use crate::error::{Error, Location, Result};
use crate::models::motion::dataset::{Footprint, closest_approach};
use crate::models::motion::transformer::{SceneTokenSource, SceneTokenSpec, SceneTokens};
use crate::models::scene_tokens::agent_frame::{AgentPose, FrameElements, POSE_LEN, TokenSelection, tokens_for_agent};
use crate::models::scene_tokens::{FeatureLayout, SceneElements, shard as token_shard};
use crate::pipeline::export::motion_dataset::{DatasetManifest, MANIFEST, Split, obstacle_footprints, token_sidecar};
use crate::pipeline::{Segments, Source};
use crate::scene::{Scenario, Transform};
use crate::sim::generate::{GenerateConfig, segment_motion_scenarios_and_world, segment_name};

/// One split, ready to evaluate.
#[derive(Debug)]
pub struct MotionSplit {
    pub scenarios: Vec<Scenario>,
    /// Per (scenario id, track id) of the generated worlds' agents to predict: the closest
    /// their centre comes to an unlabelled obstacle now or later (m).
    pub obstacle_distance: HashMap<(String, i64), f32>,
    /// The scene tokens (a dataset built with `--tokens`).
    pub tokens: Option<Arc<SidecarTokens>>,
    /// Each generated world's unlabelled obstacles, by segment name.
    pub obstacles: HashMap<String, Vec<Footprint>>,
}

/// Opens `split` of the dataset built under `dir`.
pub fn open_split(dir: &Path, split: Split) -> Result<MotionSplit> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(Location::file(&path), e))?;
    let manifest: DatasetManifest = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(Location::file(&path), "a `scenetok dataset motion` manifest", e.to_string()))?;
    let plan = &manifest.plan;
    let worlds = plan.worlds.get(&split).copied().unwrap_or(0);
    let seed = split.seed(plan.base_seed);
    type World =
        (String, Vec<Scenario>, HashMap<(String, i64), f32>, Option<BTreeMap<u32, SceneElements>>, Vec<Footprint>);
    let built: Vec<World> = (0..worlds)
        .into_par_iter()
        .map(|index| {
            let cfg = GenerateConfig { seed, segments: index + 1, ..plan.world.clone() };
            let (scenarios, world) = segment_motion_scenarios_and_world(&cfg, index, plan.stride);
            let obstacles = obstacle_footprints(&world);
            let mut distance = HashMap::new();
            for s in &scenarios {
                for t in &s.tracks_to_predict {
                    let track = &s.tracks[t.track_index];
                    distance
                        .insert((s.id.clone(), track.id), closest_approach(track, s.current_time_index, &obstacles));
                }
            }
            let name = segment_name(seed, index);
            let elements = match &plan.tokens {
                Some(_) => Some(token_shard::read(&token_sidecar(dir, split, &name))?.1),
                None => None,
            };
            Ok((name, scenarios, distance, elements, obstacles))
        })
        .collect::<Result<_>>()?;
    let mut out = MotionSplit {
        scenarios: Vec::new(),
        obstacle_distance: HashMap::new(),
        tokens: None,
        obstacles: HashMap::new(),
    };
    let mut frames = HashMap::new();
    for (name, scenarios, distance, elements, obstacles) in built {
        out.obstacles.insert(name.clone(), obstacles);
        out.scenarios.extend(scenarios);
        out.obstacle_distance.extend(distance);
        if let Some(e) = elements {
            frames.insert(name, e);
        }
    }
    for (input, s) in &plan.inputs {
        if *s == split {
            out.scenarios.extend(Source::open(input)?.scenarios(&Segments::All, plan.stride)?);
        }
    }
    if let Some(tp) = &plan.tokens {
        let layout = FeatureLayout { image_channels: tp.image_channels, lidar_channels: tp.lidar_channels };
        out.tokens = Some(Arc::new(SidecarTokens { layout, frames }));
    }
    Ok(out)
}

/// Scene tokens from a dataset's sidecars: each window's token frames, in the world frame.
#[derive(Debug)]
pub struct SidecarTokens {
    layout: FeatureLayout,
    /// Segment name → frame index → elements.
    frames: HashMap<String, BTreeMap<u32, SceneElements>>,
}

impl SceneTokenSource for SidecarTokens {
    fn tokens(&self, scenario: &Scenario, track_index: usize, spec: &SceneTokenSpec) -> Result<Option<SceneTokens>> {
        let at = || Location::default().detail(format!("scenario {}", scenario.id));
        let cols = self.layout.columns_for(spec.layout()).ok_or_else(|| {
            Error::invalid(
                at(),
                format!("token features with the model's blocks ({:?})", spec.layout()),
                format!("{:?}", self.layout),
            )
        })?;
        let Some((segment, start)) = scenario.id.rsplit_once('@') else { return Ok(None) };
        let (Some(frames), Ok(start)) = (self.frames.get(segment), start.parse::<usize>()) else { return Ok(None) };
        let now = start + scenario.current_time_index;
        let Some(state) = scenario.tracks.get(track_index).and_then(|t| t.states.get(scenario.current_time_index))
        else {
            return Ok(None);
        };
        if !state.valid {
            return Ok(None);
        }
        let identity = Transform::identity();
        let history: Vec<FrameElements> = spec
            .history
            .iter()
            .filter_map(|&h| {
                let elements = frames.get(&(now.checked_sub(h)? as u32))?;
                Some(FrameElements { elements, vehicle_pose: &identity, age: h as f32 * 0.1 })
            })
            .collect();
        let agent = AgentPose { x: state.x, y: state.y, z: state.z, heading: state.heading as f64 };
        let selection = TokenSelection { max_tokens: spec.max_tokens, range: spec.range, ..TokenSelection::default() }
            .with_kinds(&spec.kinds);
        let Some(full) = tokens_for_agent(&history, agent, selection) else { return Ok(None) };
        let mut tokens = Array2::<f32>::zeros((full.tokens.nrows(), POSE_LEN + cols.len()));
        for (mut row, src) in tokens.rows_mut().into_iter().zip(full.tokens.rows()) {
            for k in 0..POSE_LEN {
                row[k] = src[k];
            }
            for (k, c) in cols.iter().enumerate() {
                row[POSE_LEN + k] = c.map_or(0.0, |c| src[POSE_LEN + c]);
            }
        }
        Ok(Some(SceneTokens { tokens, valid: full.valid }))
    }
}
