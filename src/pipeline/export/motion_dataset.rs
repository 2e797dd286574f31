//! `scenetok dataset motion`: training, validation and test shards from generated worlds
//! (simulated without sensors) and from any v2 dataset or WOMD `Scenario` TFRecords; one
//! shard per world or input file, built in parallel, skipped when already there (an
//! interrupted build resumes), with a manifest of what is where.
//!
//! With a [`TokenPlan`] (`--tokens`), each generated world's shard gets a sidecar of scene
//! elements, `tokens/<split>/<shard>` ([`crate::models::scene_tokens::shard`]): the sensors
//! are simulated for the token frames only (the history frames the plan names), the
//! pipeline makes their elements, and each sample's tokens are those elements in its
//! agent's frame ([`crate::models::scene_tokens::agent_frame`]). The sidecar is written
//! before its shard, so a shard that exists has its tokens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Location, Result};
use crate::io::shard::Shard;
use crate::models::motion::dataset::{
    Footprint, Sample, obstacle_distances, scenario_samples, shard_rows, write_shard,
};
use crate::models::scene_tokens::{SceneElements, shard as token_shard};
use crate::pipeline::{FrameContext, Pipeline, Segments, Source, SourceFrame};
use crate::scene::Scenario;
use crate::sim::agents::AgentWorld;
use crate::sim::generate::{GENERATOR_VERSION, GenerateConfig, SimulatedSegment, segment_name};

/// The three splits. Generated worlds are split by generator seed: a test world is never
/// a training world, and `scenetok generate --seed <the test seed>` writes the same worlds
/// (with sensors) for `scenetok eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }

    /// The generator seed of this split's worlds: `base`, `base + 1`, `base + 2`.
    pub fn seed(self, base: u64) -> u64 {
        base.wrapping_add(self as u64)
    }
}

/// What to build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetPlan {
    /// Worlds per split (generated).
    pub worlds: BTreeMap<Split, usize>,
    /// Generator settings of every world (`seed` is replaced by the split's).
    pub world: GenerateConfig,
    pub base_seed: u64,
    /// Frames between window starts.
    pub stride: usize,
    /// Inputs on disk (v2 dataset folders, WOMD TFRecords) and the split they go to.
    pub inputs: Vec<(PathBuf, Split)>,
    /// Scene tokens for the generated worlds' samples (inputs get none).
    #[serde(default)]
    pub tokens: Option<TokenPlan>,
}

/// How the scene tokens of a dataset are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPlan {
    /// The history frames a sample's tokens come from, as steps before its current one
    /// (`[10, 0]`: 1 s before and now; with a stride of 10 each of those is also another
    /// window's current frame, so a world simulates its sensors once per 10 frames).
    pub history: Vec<usize>,
    /// The sensors simulated for those frames (as `scenetok generate`'s settings).
    pub lidar_div: [usize; 2],
    pub camera_div: u32,
    /// Channels of the image model and of the LiDAR encoder pooled per element (0: none).
    pub image_channels: usize,
    pub lidar_channels: usize,
    /// The decomposition's parameters.
    pub config: String,
}

/// The token sidecar of the shard `name` of `split`.
pub fn token_sidecar(out: &Path, split: Split, name: &str) -> PathBuf {
    out.join("tokens").join(split.name()).join(format!("{name}.parquet"))
}

/// One shard to build.
#[derive(Debug, Clone)]
enum Job {
    World {
        split: Split,
        index: usize,
    },
    /// The `k`th input: its shard is `input{k}-{file name}` (two inputs may share a name).
    Input {
        k: usize,
        path: PathBuf,
        split: Split,
    },
}

/// What a build did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetManifest {
    pub tool: String,
    pub generator_version: String,
    pub plan: DatasetPlan,
    /// Samples per split over every shard there (built now or earlier).
    pub samples: BTreeMap<Split, usize>,
    pub shards: BTreeMap<Split, Vec<PathBuf>>,
    pub shards_built: usize,
    pub shards_skipped: usize,
}

/// The manifest's name in the output folder.
pub const MANIFEST: &str = "dataset_manifest.json";

/// Builds every shard of `plan` under `out/<split>/` that is not there yet; `progress` is
/// called once per shard (built or skipped) with the number of shards. `tokens` is the
/// pipeline that makes scene elements, given exactly when the plan has tokens; with it,
/// shards are built one after the other (the pipeline's stages use every core).
pub fn build(
    out: &Path,
    plan: &DatasetPlan,
    tokens: Option<&mut Pipeline>,
    progress: impl Fn(usize) + Sync,
) -> Result<DatasetManifest> {
    build_part(out, plan, Shard::ALL, tokens, progress)
}

/// Where a build of `part` writes its manifest: [`MANIFEST`] for the whole plan,
/// `dataset_manifest.I-of-N.json` for part I of N.
pub fn manifest_path(out: &Path, part: Shard) -> PathBuf {
    match part.is_all() {
        true => out.join(MANIFEST),
        false => out.join(format!("dataset_manifest.{}-of-{}.json", part.index(), part.count())),
    }
}

/// [`build`] of one part of the work: of the plan's jobs (the worlds of each split in split
/// order, then the inputs), job `k` is part `k mod N`'s. N processes build disjoint files;
/// each writes `dataset_manifest.I-of-N.json`, and a last run of the whole plan (which finds
/// every file built) writes the dataset's [`MANIFEST`].
pub fn build_part(
    out: &Path,
    plan: &DatasetPlan,
    part: Shard,
    tokens: Option<&mut Pipeline>,
    progress: impl Fn(usize) + Sync,
) -> Result<DatasetManifest> {
    plan.world.validate()?;
    if plan.tokens.is_some() != tokens.is_some() {
        return Err(Error::invalid(
            Location::file(out).detail("dataset plan"),
            "a token pipeline exactly when the plan has tokens",
            if tokens.is_some() { "a pipeline without a token plan" } else { "a token plan without a pipeline" },
        ));
    }
    if let Some(tp) = &plan.tokens {
        GenerateConfig { lidar_div: tp.lidar_div, camera_div: tp.camera_div, ..plan.world.clone() }.validate()?;
        if tp.history.is_empty() || tp.history.iter().any(|&h| h > crate::io::v2::motion::HISTORY) {
            return Err(Error::invalid(
                Location::file(out).detail("token history"),
                format!("steps before the current one, 0 to {}", crate::io::v2::motion::HISTORY),
                format!("{:?}", tp.history),
            ));
        }
    }
    let mut jobs = Vec::new();
    for (&split, &n) in &plan.worlds {
        jobs.extend((0..n).map(|index| Job::World { split, index }));
    }
    jobs.extend(plan.inputs.iter().enumerate().map(|(k, (path, split))| Job::Input {
        k,
        path: path.clone(),
        split: *split,
    }));
    let jobs: Vec<Job> = jobs.into_iter().enumerate().filter(|(k, _)| part.keeps(*k)).map(|(_, j)| j).collect();
    for split in Split::ALL {
        let mut dirs = vec![out.join(split.name())];
        if plan.tokens.is_some() {
            dirs.push(out.join("tokens").join(split.name()));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(Location::file(&dir), e))?;
        }
    }
    let total = jobs.len();
    let built: Vec<(Split, PathBuf, bool)> = match tokens {
        Some(pipeline) => jobs
            .iter()
            .map(|job| {
                let r = build_shard(out, plan, job, Some(&mut *pipeline));
                progress(total);
                r
            })
            .collect::<Result<_>>()?,
        None => jobs
            .par_iter()
            .map(|job| {
                let r = build_shard(out, plan, job, None);
                progress(total);
                r
            })
            .collect::<Result<_>>()?,
    };
    let mut samples = BTreeMap::new();
    let mut shards: BTreeMap<Split, Vec<PathBuf>> = BTreeMap::new();
    for (split, path, _) in &built {
        *samples.entry(*split).or_insert(0) += shard_rows(path)?;
        shards.entry(*split).or_default().push(path.strip_prefix(out).unwrap_or(path).to_path_buf());
    }
    let manifest = DatasetManifest {
        tool: format!("scenetok {} dataset motion", env!("CARGO_PKG_VERSION")),
        generator_version: GENERATOR_VERSION.to_string(),
        plan: plan.clone(),
        samples,
        shards,
        shards_built: built.iter().filter(|b| b.2).count(),
        shards_skipped: built.iter().filter(|b| !b.2).count(),
    };
    let path = manifest_path(out, part);
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::invalid(Location::file(&path), "a serialisable manifest", e.to_string()))?;
    crate::io::output::write_file(&path, json.as_bytes())?;
    Ok(manifest)
}

/// Builds one shard unless a complete one is there; returns its split, path and whether
/// it was built now.
fn build_shard(
    out: &Path,
    plan: &DatasetPlan,
    job: &Job,
    tokens: Option<&mut Pipeline>,
) -> Result<(Split, PathBuf, bool)> {
    let (split, name) = match job {
        Job::World { split, index } => (*split, segment_name(split.seed(plan.base_seed), *index)),
        Job::Input { k, path, split } => {
            let stem = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
            (*split, format!("input{k}-{stem}"))
        }
    };
    let path = out.join(split.name()).join(format!("{name}.parquet"));
    let sidecar = match (job, &plan.tokens) {
        (Job::World { .. }, Some(_)) => Some(token_sidecar(out, split, &name)),
        _ => None,
    };
    if path.exists() && sidecar.as_ref().is_none_or(|s| s.exists()) {
        match shard_rows(&path) {
            Ok(_) => return Ok((split, path, false)),
            Err(e) => tracing::warn!("{e}: rebuilding it"),
        }
    }
    let samples = match job {
        Job::World { split, index } => {
            let cfg = GenerateConfig { seed: split.seed(plan.base_seed), segments: *index + 1, ..plan.world.clone() };
            match (&plan.tokens, tokens, &sidecar) {
                (Some(tp), Some(pipeline), Some(sidecar)) => {
                    let cfg = GenerateConfig { lidar_div: tp.lidar_div, camera_div: tp.camera_div, ..cfg };
                    let seg = SimulatedSegment::new(&cfg, *index);
                    let scenarios = seg.motion_scenarios(plan.stride);
                    let frames = token_frames(&scenarios, &tp.history);
                    let elements = simulate_token_frames(&seg, &frames, pipeline, sidecar)?;
                    let layout = crate::models::scene_tokens::FeatureLayout {
                        image_channels: tp.image_channels,
                        lidar_channels: tp.lidar_channels,
                    };
                    token_shard::write(sidecar, layout, &elements)?;
                    world_samples(&scenarios, &seg.world)
                }
                _ => {
                    let (scenarios, world) =
                        crate::sim::generate::segment_motion_scenarios_and_world(&cfg, *index, plan.stride);
                    world_samples(&scenarios, &world)
                }
            }
        }
        Job::Input { path, .. } => {
            Source::open(path)?.scenarios(&Segments::All, plan.stride)?.iter().flat_map(scenario_samples).collect()
        }
    };
    write_shard(&path, &samples)?;
    Ok((split, path, true))
}

/// The samples of a generated world's scenarios, with how close each comes to the world's
/// unlabelled obstacles.
fn world_samples(scenarios: &[Scenario], world: &AgentWorld) -> Vec<Sample> {
    let obstacles = obstacle_footprints(world);
    let mut out = Vec::new();
    for scenario in scenarios {
        let mut samples = scenario_samples(scenario);
        obstacle_distances(&mut samples, scenario, &obstacles);
        out.extend(samples);
    }
    out
}

/// Where a world's unlabelled obstacles stand (they do not move).
pub fn obstacle_footprints(world: &AgentWorld) -> Vec<Footprint> {
    world
        .others
        .iter()
        .filter(|t| t.kind.box_type().is_none())
        .filter_map(|t| {
            let s = t.states.iter().flatten().next()?;
            Some(Footprint { x: s.pos.x, y: s.pos.y, heading: s.heading, length: t.size[0], width: t.size[1] })
        })
        .collect()
}

/// The frames (indices in the segment) whose elements the scenarios' samples need: for
/// each window, its current frame less each of `history`.
pub fn token_frames(scenarios: &[Scenario], history: &[usize]) -> Vec<usize> {
    let mut frames: Vec<usize> = scenarios
        .iter()
        .filter_map(|s| Some(crate::io::v2::motion::window_start(&s.id)? + s.current_time_index))
        .flat_map(|now| history.iter().filter_map(move |&h| now.checked_sub(h)))
        .collect();
    frames.sort_unstable();
    frames.dedup();
    frames
}

/// Simulates the sensors of `frames` and runs the token pipeline on each: their elements in
/// the world frame.
fn simulate_token_frames(
    seg: &SimulatedSegment,
    frames: &[usize],
    pipeline: &mut Pipeline,
    at: &Path,
) -> Result<BTreeMap<u32, SceneElements>> {
    let mut ctx = FrameContext::default();
    let mut out = BTreeMap::new();
    for &f in frames {
        let frame = seg.frame(f, at, |_| {})?;
        let pose = frame.vehicle_pose.unwrap_or_else(crate::scene::Transform::identity);
        let location = Location::file(at).frame(frame.timestamp_micros).detail(format!("segment {}", seg.name));
        // One world being built, not an input read in shards: unit 0.
        ctx.load(SourceFrame { segment: seg.name.clone(), unit: 0, index: f, frame, at: location });
        pipeline.run(&mut ctx)?;
        if let Some(t) = &ctx.tokens {
            out.insert(f as u32, token_shard::to_world(&t.elements, &pose));
        }
    }
    Ok(out)
}
