//! `scenetok bench tokens`: full-size frames through the pipeline up to the scene tokens
//! (range images → points → LiDAR encoder → image model → elements), every stage timed by
//! the pipeline itself; the goal is the token extraction (the `tokens` stage, after the
//! encoders) in ≤ 30 ms per frame.

use std::path::{Path, PathBuf};

use super::median;
use crate::backend::Device;
use crate::error::{Error, Location, Result};
use crate::models::image_encoder::{EncoderOptions, ImageEncoder, ModelConfig};
use crate::models::lidar_seg::LidarSegModel;
use crate::models::scene_tokens::{ElementKind, TokenConfig};
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
             {} features per element\n\n{:<10} {:>10} {:>7}\n",
            self.frames,
            self.threads,
            self.points,
            self.elements[0],
            self.elements[1],
            self.elements[2],
            self.features,
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
    for (k, frame) in source.frames(&selection)?.enumerate() {
        ctx.load(frame?);
        pipeline.run(&mut ctx)?;
        if k == 0 {
            continue;
        }
        timed += 1;
        let mut total = 0.0;
        for (name, d) in &ctx.times {
            let ms = d.as_secs_f64() * 1e3;
            total += ms;
            match per_stage.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(ms),
                None => per_stage.push((name.to_string(), vec![ms])),
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
        stages: per_stage.into_iter().map(|(n, v)| (n, median(v))).collect(),
        total_ms: median(totals),
        threads: rayon::current_num_threads(),
    })
}
