//! Mergeable motion evaluations: a shard's result (`eval --partial`) holds, per scenario, what
//! the run's outputs are computed from (the metrics' samples, step-error sums, trajectory
//! types, predictions, times) and its candidate example scenes; [`MotionPartial::merge`]
//! puts the shards' scenarios back in the input's order ([`ScenarioKey`]), so the merged
//! run's metrics are the single process's, bit for bit, whatever the shard rule or the order
//! the partials are given in. A single process goes through the same path with one partial.
//!
//! Only wall times differ between a merged and a single run: each scenario keeps the times
//! it took where it ran.
//!
//! Every kind of partial (motion here; LiDAR segmentation, camera segmentation and detection
//! beside their evaluations) is written and read by the helpers at the end: JSON or
//! MessagePack ([`Encoding`]), the shard-set check of a merge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::motion::{Breakdown, MetricsConfig, MotionMetrics, ScenarioPredictions, ScenarioSamples};
use super::report::ReportData;
use super::report::data::{
    EXAMPLE_RADIUS_M, SceneView, StepSums, add_step_sums, scenario_step_sums, scene_rank, scene_view, step_errors_from,
    trajectory_type_histogram,
};
use super::run::{EvalError, EvalReport, StageLatency};
use crate::io::shard::Shard;
use crate::models::motion::MotionPredictor;
use crate::models::motion::training::TrainingCurve;
use crate::pipeline::StageTimes;
use crate::pipeline::source::ScenarioKey;
use crate::scene::Scenario;

/// What a partial file starts with; another value is refused.
pub const FORMAT: &str = "scenetok-motion-partial/1";
/// Example scenes a report draws.
pub const REPORT_SCENES: usize = 4;

/// One scenario's share of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub key: ScenarioKey,
    pub scenario_id: String,
    /// The types of its agents to predict (`TYPE_VEHICLE`, …): the breakdowns that had agents.
    pub object_types: BTreeSet<String>,
    pub trajectory_types: BTreeMap<String, usize>,
    pub step_sums: StepSums,
    pub samples: ScenarioSamples,
    /// Wall time of the model and of the metrics on it, where it ran.
    pub model_s: f64,
    pub metrics_s: f64,
    pub predictions: ScenarioPredictions,
}

/// A scene a report may draw: the lowest [`scene_rank`]s of each shard are candidates, and
/// the lowest of all candidates are the whole run's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneCandidate {
    pub rank: u64,
    pub key: ScenarioKey,
    pub view: SceneView,
}

/// A shard's evaluation, or a whole one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotionPartial {
    pub format: String,
    pub model: String,
    /// The data as given on the command line (the same on every shard).
    pub data: String,
    pub shard: Shard,
    /// In key order.
    pub records: Vec<ScenarioRecord>,
    pub scenes: Vec<SceneCandidate>,
    /// How the model's weights were trained (learned models whose weights carry it).
    #[serde(default)]
    pub training: Option<TrainingCurve>,
}

impl MotionPartial {
    /// Runs `model` on a shard's scenarios and keeps what the run's outputs need; `tick` after
    /// every scenario.
    pub fn evaluate<'a>(
        scenarios: impl IntoIterator<Item = (ScenarioKey, &'a Scenario)>,
        model: &dyn MotionPredictor,
        data: &str,
        shard: Shard,
        mut tick: impl FnMut(),
    ) -> Result<MotionPartial, EvalError> {
        let cfg = MetricsConfig::challenge();
        let horizon = cfg.horizon();
        let metrics = MotionMetrics::new(cfg.clone())?;
        let mut records = Vec::new();
        let mut scenes = Vec::new();
        for (key, s) in scenarios {
            let t = std::time::Instant::now();
            let predictions = model.predict(s, &horizon)?;
            let model_s = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let samples = metrics
                .samples(s, &predictions)
                .map_err(|cause| EvalError::ScenarioMetrics { data: data.to_string(), cause })?;
            let metrics_s = t.elapsed().as_secs_f64();
            if !s.tracks_to_predict.is_empty() {
                scenes.push((scene_rank(&s.id), key, s, records.len()));
            }
            records.push(ScenarioRecord {
                key,
                scenario_id: s.id.clone(),
                object_types: s
                    .tracks_to_predict
                    .iter()
                    .map(|t| format!("TYPE_{}", s.tracks[t.track_index].agent_type.name()))
                    .collect(),
                trajectory_types: trajectory_type_histogram(std::slice::from_ref(s)),
                step_sums: scenario_step_sums(s, &predictions, &cfg),
                samples,
                model_s,
                metrics_s,
                predictions,
            });
            tick();
        }
        scenes.sort_by_key(|(rank, key, _, _)| (*rank, *key));
        let scenes = scenes
            .into_iter()
            .take(REPORT_SCENES)
            .map(|(rank, key, s, i)| SceneCandidate {
                rank,
                key,
                view: scene_view(s, &records[i].predictions, &cfg, EXAMPLE_RADIUS_M),
            })
            .collect();
        records.sort_by_key(|r| r.key);
        Ok(MotionPartial {
            format: FORMAT.into(),
            model: model.name().into(),
            data: data.into(),
            shard,
            records,
            scenes,
            training: model.training_curve().cloned(),
        })
    }

    /// The whole run from its shards' partials (`names` say where each came from, for
    /// errors): every shard `0..N` of one `N` exactly once, the same model and data, no
    /// scenario twice.
    pub fn merge(parts: Vec<(String, MotionPartial)>) -> Result<MotionPartial, EvalError> {
        let bad = |m: String| EvalError::Other(m);
        check_shard_set(
            parts.iter().map(|(name, p)| (name.as_str(), format!("model {} on {}", p.model, p.data), p.shard)),
        )?;
        let Some((_, first)) = parts.first() else { return Err(bad("no partial results to merge".into())) };
        let (model, data, training) = (first.model.clone(), first.data.clone(), first.training.clone());
        let mut records = Vec::new();
        let mut scenes = Vec::new();
        for (_, p) in parts {
            records.extend(p.records);
            scenes.extend(p.scenes);
        }
        in_input_order(&mut records, |r| r.key, |r| format!("scenario {} ({:?})", r.scenario_id, r.key))?;
        scenes.sort_by_key(|c| (c.rank, c.key));
        scenes.truncate(REPORT_SCENES);
        Ok(MotionPartial { format: FORMAT.into(), model, data, shard: Shard::ALL, records, scenes, training })
    }

    /// The run's metrics and report data.
    pub fn report(self) -> Result<EvalReport, EvalError> {
        let cfg = MetricsConfig::challenge();
        let mut metrics = MotionMetrics::new(cfg.clone())?;
        let mut types = BTreeSet::new();
        let mut trajectory_types = BTreeMap::new();
        let mut step_sums = StepSums::new();
        let mut times = StageTimes::default();
        let mut predicted_agents = 0;
        for r in &self.records {
            metrics.absorb(&r.samples);
            types.extend(r.object_types.iter().cloned());
            for (t, n) in &r.trajectory_types {
                *trajectory_types.entry(t.clone()).or_insert(0) += n;
            }
            add_step_sums(&mut step_sums, &r.step_sums);
            times.record("model", Duration::from_secs_f64(r.model_s));
            times.record("metrics", Duration::from_secs_f64(r.metrics_s));
            predicted_agents += r.predictions.predictions.len();
        }
        let breakdowns = metrics.finish();
        let present: Vec<&Breakdown> = breakdowns.iter().filter(|b| types.contains(&b.object_type)).collect();
        let n = present.len().max(1) as f64;
        let avg = |f: fn(&Breakdown) -> f64| present.iter().map(|b| f(b)).sum::<f64>() / n;
        let mean = Breakdown {
            object_type: "MEAN".into(),
            measurement_step: 0,
            min_ade: avg(|b| b.min_ade),
            min_fde: avg(|b| b.min_fde),
            miss_rate: avg(|b| b.miss_rate),
            overlap_rate: avg(|b| b.overlap_rate),
            map: avg(|b| b.map),
            soft_map: avg(|b| b.soft_map),
        };
        let mut scenes = self.scenes;
        scenes.sort_by_key(|c| c.key);
        let report_data = ReportData {
            // Nanosecond resolution: exact through the JSON round trip.
            latency_samples_ms: times
                .stages()
                .map(|s| (s.to_string(), times.samples(s).iter().map(|v| (v * 1e6).round() / 1e6).collect()))
                .collect(),
            scenes: scenes.into_iter().map(|c| c.view).collect(),
            training: self.training,
        };
        Ok(EvalReport {
            model: self.model,
            data: self.data,
            scenarios: self.records.len(),
            predicted_agents,
            breakdowns,
            mean,
            trajectory_types,
            step_errors: step_errors_from(step_sums, &cfg),
            latency: times.stats().into_iter().map(|(stage, stats)| StageLatency { stage, stats }).collect(),
            predictions: self.records.into_iter().map(|r| r.predictions).collect(),
            report_data,
        })
    }

    /// Writes the partial (JSON for a `.json` name, else MessagePack: [`Encoding`]), whole or not at all.
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        write_partial(path, self)
    }

    /// Reads a partial written by [`write`](Self::write).
    pub fn read(path: &Path) -> Result<MotionPartial, EvalError> {
        read_partial(path, FORMAT, |p: &MotionPartial| &p.format)
    }
}

/// Checks that `parts` (file name, what it is a partial of, its shard) are every shard `0..N`
/// of one `N` exactly once, all of the same thing (model and data): what any merge needs.
pub fn check_shard_set<'a>(parts: impl IntoIterator<Item = (&'a str, String, Shard)>) -> Result<(), EvalError> {
    let bad = |m: String| EvalError::Other(m);
    let parts: Vec<(&str, String, Shard)> = parts.into_iter().collect();
    let Some((first_name, what, first_shard)) = parts.first() else {
        return Err(bad("no partial results to merge".into()));
    };
    let count = first_shard.count();
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    for (name, other, shard) in &parts {
        if other != what {
            return Err(bad(format!("{name}: expected a partial of {what} (as {first_name}), found {other}")));
        }
        if shard.count() != count {
            return Err(bad(format!("{name}: expected a shard of {count} (as {first_name}), found shard {shard}")));
        }
        if let Some(previous) = seen.insert(shard.index(), name) {
            return Err(bad(format!("{name}: shard {shard} is also {previous}")));
        }
    }
    if let Some(missing) = (0..count).find(|i| !seen.contains_key(i)) {
        return Err(bad(format!("expected every shard of {count}, shard {missing}/{count} is missing")));
    }
    Ok(())
}

/// Sorts the units of every shard (scenarios, frames, images) back into input order by `key`;
/// a unit in two shards (partials of different shard rules or inputs) is an error naming it
/// (`describe`).
pub fn in_input_order<T, K: Ord>(
    units: &mut [T],
    key: impl Fn(&T) -> K,
    describe: impl Fn(&T) -> String,
) -> Result<(), EvalError> {
    units.sort_by_key(&key);
    match units.windows(2).find(|w| key(&w[0]) == key(&w[1])) {
        Some(w) => Err(EvalError::Other(format!(
            "{} is in two shards: partials of different shard rules or inputs",
            describe(&w[0])
        ))),
        None => Ok(()),
    }
}

/// How a partial is stored. JSON is readable and what `.json` names get; MessagePack (every
/// other name, e.g. `.msgpack`) holds the same fields in binary: on WOMD scenarios a quarter
/// fewer bytes and a merge 1.6× as fast (README, "Scale-out").
/// Both keep every number exact (f64 and f32 as their bits); a reader tells them apart by
/// the first byte, so one merge may take both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    MessagePack,
}

impl Encoding {
    /// By the file name: `.json` is JSON, any other MessagePack.
    pub fn for_path(path: &Path) -> Encoding {
        match path.extension() {
            Some(e) if e.eq_ignore_ascii_case("json") => Encoding::Json,
            _ => Encoding::MessagePack,
        }
    }

    /// By the bytes: a JSON object starts with `{` (after white space); a MessagePack map
    /// never does.
    pub fn of_bytes(bytes: &[u8]) -> Encoding {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Encoding::Json,
            _ => Encoding::MessagePack,
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| format!("JSON: {e}")),
            Encoding::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| format!("MessagePack: {e}")),
        }
    }
}

/// Writes a partial, whole or not at all, in the encoding its name asks for
/// ([`Encoding::for_path`]); every number exact.
pub fn write_partial<T: Serialize>(path: &Path, partial: &T) -> Result<(), EvalError> {
    let failed = |e: String| EvalError::Other(format!("{}: {e}", path.display()));
    let bytes = match Encoding::for_path(path) {
        Encoding::Json => serde_json::to_vec(partial).map_err(|e| failed(format!("JSON: {e}")))?,
        // Field names kept: the file says what it holds, like the JSON.
        Encoding::MessagePack => rmp_serde::to_vec_named(partial).map_err(|e| failed(format!("MessagePack: {e}")))?,
    };
    crate::io::output::write_file(path, &bytes)?;
    Ok(())
}

/// The `format` a partial file says it has (`None` when it is not a JSON or MessagePack map
/// with one).
pub fn format_of(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        format: String,
    }
    Encoding::of_bytes(bytes).decode::<Head>(bytes).ok().map(|h| h.format)
}

/// Reads a partial of `format` (JSON or MessagePack); another format, or bytes that do not
/// parse, are an error naming the file and what was expected.
pub fn read_partial<T: serde::de::DeserializeOwned>(
    path: &Path,
    format: &str,
    format_field: impl Fn(&T) -> &String,
) -> Result<T, EvalError> {
    let at = || crate::Location::file(path);
    let bytes = std::fs::read(path).map_err(|e| crate::Error::io(at(), e))?;
    let found = match Encoding::of_bytes(&bytes).decode::<T>(&bytes) {
        Ok(p) if format_field(&p) == format => return Ok(p),
        Ok(p) => format!("format {}", format_field(&p)),
        // Another format's file says which it is; otherwise the parser's own error.
        Err(e) => match format_of(&bytes) {
            Some(f) if f != format => format!("format {f}"),
            _ => e,
        },
    };
    Err(crate::Error::invalid(at(), format!("a partial result ({format}) as JSON or MessagePack"), found).into())
}
