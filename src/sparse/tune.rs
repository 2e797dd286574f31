//! The sparse autotuner (docs/sparse-conv.md): layers that share a kernel map form
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

use serde::{Deserialize, Serialize};

use super::layers::{LayerStat, RunCtx};
use super::tensor::{KmapKey, SparseTensor};
use crate::backend::Dataflow;
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
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::decode(Location::file(&path), "JSON", e))?;
        crate::io::output::write_file(&path, json.as_bytes())?;
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

/// A network run, as the tuner and benchmarks call it.
pub type Forward<'a> = dyn Fn(&SparseTensor, &RunCtx) -> Result<()> + Sync + 'a;

/// Times `forward` on fresh copies of `inputs` (caches cleared, as upstream) for every
/// candidate and returns the best dataflow per kernel-map group, on the inputs' device.
///
/// The candidates are timed interleaved, `reps` rounds of every candidate on every input
/// (after one warm-up run), and a group's time for a candidate is its fastest round: on a
/// shared machine a burst of other work then slows one round of every candidate rather than
/// every round of one candidate, and the minimum drops the burst. Timing candidates one
/// after another with a mean let such bursts pick the wrong dataflow.
pub fn tune(
    inputs: &[SparseTensor],
    candidates: &[Dataflow],
    reps: usize,
    forward: &Forward<'_>,
) -> Result<Vec<GroupChoice>> {
    let mut cands = vec![Dataflow::DEFAULT];
    cands.extend(candidates.iter().copied().filter(|d| *d != Dataflow::DEFAULT));
    // One round of one candidate over every input: per group, (ms per input, layers per input).
    let round = |df: Dataflow| -> Result<BTreeMap<KmapKey, (f64, usize)>> {
        let mut ctx = RunCtx::with_default(df).with_stats();
        for x in inputs {
            forward(&x.fresh()?, &ctx)?;
        }
        let stats: Vec<LayerStat> = ctx.take_stats();
        let n = inputs.len().max(1) as f64;
        let mut per: BTreeMap<KmapKey, (f64, usize)> = BTreeMap::new();
        for s in stats {
            if let Some(k) = s.key {
                let e = per.entry(k).or_default();
                e.0 += s.seconds * 1e3 / n;
                e.1 += 1;
            }
        }
        per.values_mut().for_each(|v| v.1 = (v.1 as f64 / n).round() as usize);
        Ok(per)
    };
    if let Some(x) = inputs.first() {
        forward(&x.fresh()?, &RunCtx::with_default(cands[cands.len() - 1]))?;
    }
    // Per candidate, per group: the fastest round.
    let mut fastest: Vec<BTreeMap<KmapKey, (f64, usize)>> = vec![BTreeMap::new(); cands.len()];
    for _ in 0..reps.max(1) {
        for (c, &df) in cands.iter().enumerate() {
            for (k, (ms, layers)) in round(df)? {
                let e = fastest[c].entry(k).or_insert((f64::INFINITY, layers));
                e.0 = e.0.min(ms);
            }
        }
    }
    let default = &fastest[0];
    Ok(default
        .iter()
        .map(|(key, &(default_ms, layers))| {
            let (dataflow, ms) = cands
                .iter()
                .zip(&fastest)
                .filter_map(|(df, f)| f.get(key).map(|v| (*df, v.0)))
                .fold((Dataflow::DEFAULT, default_ms), |b, c| if c.1 < b.1 { c } else { b });
            GroupChoice { key: *key, layers, dataflow, ms, default_ms }
        })
        .collect())
}
