//! `scenetok bench tokens`: full-size frames through the pipeline up to the scene tokens
//! (range images → points → LiDAR encoder → image model → elements), every stage timed by
//! the pipeline itself, then the token motion model on the frame's agents; the goal is the
//! token extraction (the `tokens` stage, after the encoders) in ≤ 30 ms per frame.
//!
//! The `motion` step: every labelled agent of the frame gets its tokens in its own frame
//! ([`tokens_for_agent`], this frame's elements) and one batched forward pass of the d128
//! transformer with a scene-token slot for them (seeded random weights: the time depends on
//! the shapes, not the values; the agents' history and map inputs are empty tensors of the
//! model's shapes, the scenario's would come from the tracker and the map).

use std::path::{Path, PathBuf};

use super::median;
use crate::backend::Device;
use crate::error::{Error, Location, Result};
use crate::models::image_encoder::{EncoderOptions, ImageEncoder, ModelConfig};
use crate::models::lidar_seg::LidarSegModel;
use crate::models::motion::features::{
    AGENT_FEATURES, AGENT_SLOTS, AgentFrame, AgentInputs, HISTORY_STEPS, MAX_POLYLINES, POLYLINE_POINTS,
};
use crate::models::motion::transformer::{MotionTransformer, TransformerConfig, pad_scene_tokens};
use crate::models::scene_tokens::agent_frame::{AgentPose, FrameElements, POSE_LEN, TokenSelection, tokens_for_agent};
use crate::models::scene_tokens::{ElementKind, SceneElements, TokenConfig};
use crate::pipeline::context::FrameContext;
use crate::pipeline::stages::{ImageStage, LidarStage, PointsStage, TokensStage};
use crate::pipeline::{FrameSelection, Pipeline, Source};
use crate::sim::generate::{GenerateConfig, Preset, generate, generated_by_this_version};
use crate::sparse::layers::RunCtx;

/// What to run.
pub struct TokenBenchOptions {
    /// A dataset (default: generated full-size frames under `work`).
    pub data: Option<PathBuf>,
    pub work: PathBuf,
    /// Timed frames (after one warm-up frame).
    pub frames: usize,
    pub lidar_weights: PathBuf,
    pub image_config: PathBuf,
    pub image: EncoderOptions,
    pub device: Device,
}

/// Medians over the timed frames.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenBench {
    pub frames: usize,
    /// First-return points per frame.
    pub points: f64,
    /// Elements per frame: agents, objects, ground tiles.
    pub elements: [f64; 3],
    pub features: usize,
    /// Per stage, in pipeline order: name and median milliseconds.
    pub stages: Vec<(String, f64)>,
    /// Agents per frame given to the motion model, and their tokens (mean per agent).
    pub motion_agents: f64,
    pub tokens_per_agent: f64,
    /// The median of the per-frame sums.
    pub total_ms: f64,
    pub threads: usize,
}

impl TokenBench {
    /// The tokens stage's median.
    pub fn extraction_ms(&self) -> f64 {
        self.stages.iter().find(|(n, _)| n == "tokens").map_or(0.0, |(_, t)| *t)
    }

    pub fn report(&self) -> String {
        let mut s = format!(
            "scene tokens: {} full-size frames (medians after a warm-up), {} threads\n\
             {:.0} first-return points, {:.1} agents + {:.1} objects + {:.1} ground tiles per frame, \
             {} features per element; motion: {:.1} agents per frame, {:.0} tokens each\n\n{:<10} {:>10} {:>7}\n",
            self.frames,
            self.threads,
            self.points,
            self.elements[0],
            self.elements[1],
            self.elements[2],
            self.features,
            self.motion_agents,
            self.tokens_per_agent,
            "stage",
            "ms",
            "share"
        );
        let sum: f64 = self.stages.iter().map(|(_, t)| t).sum();
        for (name, t) in &self.stages {
            s += &format!("{name:<10} {t:>10.1} {:>6.1}%\n", 100.0 * t / sum.max(1e-12));
        }
        s += &format!("{:<10} {:>10.1}\n", "frame", self.total_ms);
        let x = self.extraction_ms();
        s += &format!(
            "\ntoken extraction {x:.1} ms per frame: goal ≤ 30 ms {}\n",
            if x <= 30.0 { "met" } else { "NOT met" }
        );
        s
    }
}

/// The generated world's seed: cones in view of the first frames (as in
/// tests/it/scene_tokens.rs).
const SEED: u64 = 9;

fn generated(work: &Path, frames: usize) -> Result<PathBuf> {
    let d = work.join("full");
    let manifest_frames = || -> Option<u64> {
        let text = std::fs::read_to_string(d.join("scenetok_manifest.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?.pointer("/settings/frames")?.as_u64()
    };
    let seed = || -> Option<u64> {
        let text = std::fs::read_to_string(d.join("scenetok_manifest.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?.pointer("/settings/seed")?.as_u64()
    };
    if !generated_by_this_version(&d) || manifest_frames() != Some(frames as u64) || seed() != Some(SEED) {
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(|e| Error::io(Location::file(&d), e))?;
        }
        let mut cfg = GenerateConfig::preset(Preset::Full);
        (cfg.segments, cfg.frames, cfg.seed) = (1, frames, SEED);
        generate(&d, &cfg, |_, _| {})?;
    }
    Ok(d)
}

pub fn run(o: &TokenBenchOptions) -> Result<TokenBench> {
    let root = match &o.data {
        Some(d) => d.clone(),
        None => generated(&o.work, o.frames + 1)?,
    };
    let lidar = LidarSegModel::load(&o.lidar_weights, &o.device)?;
    let image = ImageEncoder::load(ModelConfig::load(&o.image_config)?, o.image)?;
    let mut pipeline = Pipeline::new()
        .then(PointsStage::default())?
        .then(LidarStage::new(lidar, RunCtx::default()))?
        .then(ImageStage::new(image, None)?)?
        .then(TokensStage::new(TokenConfig::default()))?;
    let source = Source::open(&root)?;
    let selection = FrameSelection::all().first(Some(o.frames + 1)).request(pipeline.request());
    let mut ctx = FrameContext::default();
    let mut per_stage: Vec<(String, Vec<f64>)> = Vec::new();
    let mut totals = Vec::new();
    let (mut points, mut elements, mut features, mut timed) = (0usize, [0usize; 3], 0, 0);
    let (mut agents, mut agent_tokens) = (0usize, 0usize);
    let mut model: Option<MotionTransformer> = None;
    for (k, frame) in source.frames(&selection)?.enumerate() {
        ctx.load(frame?);
        pipeline.run(&mut ctx)?;
        let mut times: Vec<(String, f64)> =
            ctx.times.iter().map(|(n, d)| (n.to_string(), d.as_secs_f64() * 1e3)).collect();
        if let Some(t) = &ctx.tokens {
            let width = POSE_LEN + t.elements.layout.len();
            if model.as_ref().is_none_or(|m| m.config().scene_dim != width) {
                let cfg = TransformerConfig { scene_dim: width, ..TransformerConfig::D128 };
                model = Some(MotionTransformer::random(cfg, 0, &o.device)?);
            }
            if let Some(m) = &model {
                let pose = ctx.frame.vehicle_pose.unwrap_or_else(crate::scene::Transform::identity);
                let started = std::time::Instant::now();
                let (n, toks) = motion_step(m, &t.elements, &pose, &ctx.frame.lidar_boxes)?;
                times.push(("motion".into(), started.elapsed().as_secs_f64() * 1e3));
                if k > 0 {
                    (agents, agent_tokens) = (agents + n, agent_tokens + toks);
                }
            }
        }
        if k == 0 {
            continue;
        }
        timed += 1;
        let mut total = 0.0;
        for (name, ms) in times {
            total += ms;
            match per_stage.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(ms),
                None => per_stage.push((name, vec![ms])),
            }
        }
        totals.push(total);
        if let Some(t) = &ctx.tokens {
            points += t.elements.assignment.len();
            for kind in [ElementKind::Agent, ElementKind::Object, ElementKind::Ground] {
                elements[kind as usize] += t.elements.count(kind);
            }
            features = t.elements.layout.len();
        }
    }
    if timed == 0 {
        return Err(Error::invalid(Location::file(&root), "at least two frames (one warm-up, one timed)", "fewer"));
    }
    let per = |v: usize| v as f64 / timed as f64;
    Ok(TokenBench {
        frames: timed,
        points: per(points),
        elements: elements.map(per),
        features,
        motion_agents: per(agents),
        tokens_per_agent: agent_tokens as f64 / agents.max(1) as f64,
        stages: per_stage.into_iter().map(|(n, v)| (n, median(v))).collect(),
        total_ms: median(totals),
        threads: rayon::current_num_threads(),
    })
}

/// Tokens for every labelled agent of the frame and one forward pass of `model` over them:
/// returns the agents and their tokens in all.
fn motion_step(
    model: &MotionTransformer,
    elements: &SceneElements,
    pose: &crate::scene::Transform,
    boxes: &[crate::scene::LidarBox],
) -> Result<(usize, usize)> {
    let yaw = pose.yaw();
    let history = [FrameElements { elements, vehicle_pose: pose, age: 0.0 }];
    let mut inputs = Vec::with_capacity(boxes.len());
    let mut tokens = Vec::with_capacity(boxes.len());
    for b in boxes {
        let c = pose.apply(&b.bbox.center);
        let agent = AgentPose { x: c.x, y: c.y, z: c.z, heading: b.bbox.heading + yaw };
        let Some(t) = tokens_for_agent(&history, agent, TokenSelection::default()) else { continue };
        let mut agent_valid = ndarray::Array2::from_elem((AGENT_SLOTS, HISTORY_STEPS), false);
        agent_valid[[0, HISTORY_STEPS - 1]] = true;
        inputs.push(AgentInputs {
            agents: ndarray::Array3::zeros((AGENT_SLOTS, HISTORY_STEPS, AGENT_FEATURES)),
            agent_valid,
            agent_type: ndarray::Array1::zeros(AGENT_SLOTS),
            polylines: ndarray::Array3::zeros((MAX_POLYLINES, POLYLINE_POINTS, 2)),
            point_valid: ndarray::Array2::from_elem((MAX_POLYLINES, POLYLINE_POINTS), false),
            polyline_type: ndarray::Array1::zeros(MAX_POLYLINES),
            signal: ndarray::Array1::zeros(MAX_POLYLINES),
            frame: AgentFrame { x: agent.x, y: agent.y, heading: agent.heading },
        });
        tokens.push(t);
    }
    let total = tokens.iter().map(|t| t.tokens.nrows()).sum();
    let padded = pad_scene_tokens(tokens.into_iter().map(Some).collect(), model.config().scene_dim);
    model.forward(&inputs, Some(&padded))?;
    Ok((inputs.len(), total))
}
