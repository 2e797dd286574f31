//! The sparse autotuner (reference/algorithms.md §A.4): layers that share a kernel map form
//! one group (the map key); every candidate dataflow is timed on real inputs and the fastest
//! per group is kept, stored per (network, device, input scale) and reused at load.
//!
//! One deviation from upstream, for speed: instead of one end-to-end run per (group,
//! candidate), each run sets *every* group to the same candidate and reads the per-group
//! time from the layer statistics. Groups are independent (upstream's own assumption), so
//! the argmin per group is the same; the shared per-group costs (pair list, bitmask sort)
//! fall inside the group's first layer and are counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::dataflow::{ConvBackend, Dataflow};
use super::layers::{LayerStat, RunCtx};
use super::tensor::{KmapKey, SparseTensor};
use crate::error::{Error, Location, Result};

/// One group's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupChoice {
    pub key: KmapKey,
    pub layers: usize,
    pub dataflow: Dataflow,
    /// Mean milliseconds of the group per input with the chosen / the default dataflow.
    pub ms: f64,
    pub default_ms: f64,
}

/// A stored tuning: what was tuned, where, and the choice per group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneRecord {
    pub network: String,
    pub device: String,
    pub scale: String,
    pub groups: Vec<GroupChoice>,
}

impl TuneRecord {
    /// The file of a tuning under `dir`.
    pub fn path(dir: &Path, network: &str, device: &str, scale: &str) -> PathBuf {
        dir.join(format!("{network}__{device}__{scale}.json"))
    }
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = Self::path(dir, &self.network, &self.device, &self.scale);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(Location::file(dir), e))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::decode(Location::file(&path), "JSON", e))?;
        std::fs::write(&path, json).map_err(|e| Error::io(Location::file(&path), e))?;
        Ok(path)
    }
    /// The stored tuning for this (network, device, scale), if any.
    pub fn load(dir: &Path, network: &str, device: &str, scale: &str) -> Result<Option<Self>> {
        let path = Self::path(dir, network, device, scale);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(Location::file(&path), e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| Error::decode(Location::file(&path), "tuning record", e))
    }
    /// The choices as a run context's map.
    pub fn choices(&self) -> BTreeMap<KmapKey, Dataflow> {
        self.groups.iter().map(|g| (g.key, g.dataflow)).collect()
    }
}

/// Times `forward` on fresh copies of `inputs` (caches cleared, as upstream) for every
/// candidate and returns the best dataflow per kernel-map group. `reps` runs per input and
/// candidate after one warm-up run.
pub fn tune(
    backend: &dyn ConvBackend,
    inputs: &[SparseTensor],
    candidates: &[Dataflow],
    reps: usize,
    forward: &(dyn Fn(&SparseTensor, &RunCtx<'_>) + Sync),
) -> Vec<GroupChoice> {
    let time = |df: Dataflow| -> BTreeMap<KmapKey, (f64, usize)> {
        let ctx = RunCtx { backend, choices: BTreeMap::new(), default: df, stats: None };
        forward(&fresh(&inputs[0]), &ctx);
        let ctx = RunCtx { stats: Some(Mutex::new(Vec::new())), ..ctx };
        for _ in 0..reps.max(1) {
            for x in inputs {
                forward(&fresh(x), &ctx);
            }
        }
        let stats: Vec<LayerStat> =
            ctx.stats.map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).unwrap_or_default();
        let runs = (reps.max(1) * inputs.len()) as f64;
        let mut per: BTreeMap<KmapKey, (f64, usize)> = BTreeMap::new();
        for s in stats {
            if let Some(k) = s.key {
                let e = per.entry(k).or_default();
                e.0 += s.seconds * 1e3 / runs;
                e.1 += 1;
            }
        }
        per.values_mut().for_each(|v| v.1 = (v.1 as f64 / runs).round() as usize);
        per
    };
    let default = time(Dataflow::DEFAULT);
    let mut best: BTreeMap<KmapKey, (Dataflow, f64)> =
        default.iter().map(|(k, (ms, _))| (*k, (Dataflow::DEFAULT, *ms))).collect();
    for &df in candidates.iter().filter(|d| **d != Dataflow::DEFAULT) {
        for (k, (ms, _)) in time(df) {
            if let Some(b) = best.get_mut(&k)
                && ms < b.1
            {
                *b = (df, ms);
            }
        }
    }
    best.into_iter()
        .map(|(key, (dataflow, ms))| GroupChoice {
            key,
            layers: default[&key].1,
            dataflow,
            ms,
            default_ms: default[&key].0,
        })
        .collect()
}

/// A copy of a stride-1 tensor with an empty cache.
pub fn fresh(x: &SparseTensor) -> SparseTensor {
    SparseTensor::new(x.coords.to_vec(), x.feats.clone(), x.channels, x.range)
}
