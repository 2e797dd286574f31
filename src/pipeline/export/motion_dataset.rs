//! `scenetok dataset motion`: training, validation and test shards from generated worlds
//! (simulated without sensors) and from any v2 dataset or WOMD `Scenario` TFRecords; one
//! shard per world or input file, built in parallel, skipped when already there (an
//! interrupted build resumes), with a manifest of what is where.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Location, Result};
use crate::models::motion::dataset::{scenario_samples, shard_rows, write_shard};
use crate::pipeline::{Segments, Source};
use crate::sim::generate::{GENERATOR_VERSION, GenerateConfig, segment_motion_scenarios, segment_name};

/// The three splits. Generated worlds are split by generator seed: a test world is never
/// a training world, and `scenetok generate --seed <the test seed>` writes the same worlds
/// (with sensors) for `scenetok eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
/// called once per shard (built or skipped) with the number of shards.
pub fn build(out: &Path, plan: &DatasetPlan, progress: impl Fn(usize) + Sync) -> Result<DatasetManifest> {
    plan.world.validate()?;
    let mut jobs = Vec::new();
    for (&split, &n) in &plan.worlds {
        jobs.extend((0..n).map(|index| Job::World { split, index }));
    }
    jobs.extend(plan.inputs.iter().enumerate().map(|(k, (path, split))| Job::Input {
        k,
        path: path.clone(),
        split: *split,
    }));
    for split in Split::ALL {
        let dir = out.join(split.name());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(Location::file(&dir), e))?;
    }
    let total = jobs.len();
    let built: Vec<(Split, PathBuf, bool)> = jobs
        .par_iter()
        .map(|job| {
            let r = build_shard(out, plan, job);
            progress(total);
            r
        })
        .collect::<Result<_>>()?;
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
    let path = out.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::invalid(Location::file(&path), "a serialisable manifest", e.to_string()))?;
    crate::io::output::write_file(&path, json.as_bytes())?;
    Ok(manifest)
}

/// Builds one shard unless a complete one is there; returns its split, path and whether
/// it was built now.
fn build_shard(out: &Path, plan: &DatasetPlan, job: &Job) -> Result<(Split, PathBuf, bool)> {
    let (split, name) = match job {
        Job::World { split, index } => (*split, segment_name(split.seed(plan.base_seed), *index)),
        Job::Input { k, path, split } => {
            let stem = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
            (*split, format!("input{k}-{stem}"))
        }
    };
    let path = out.join(split.name()).join(format!("{name}.parquet"));
    if path.exists() {
        match shard_rows(&path) {
            Ok(_) => return Ok((split, path, false)),
            Err(e) => tracing::warn!("{e}: rebuilding it"),
        }
    }
    let scenarios = match job {
        Job::World { split, index } => {
            let cfg = GenerateConfig { seed: split.seed(plan.base_seed), segments: *index + 1, ..plan.world.clone() };
            segment_motion_scenarios(&cfg, *index, plan.stride)
        }
        Job::Input { path, .. } => Source::open(path)?.scenarios(&Segments::All, plan.stride)?,
    };
    let samples: Vec<_> = scenarios.iter().flat_map(scenario_samples).collect();
    write_shard(&path, &samples)?;
    Ok((split, path, true))
}
