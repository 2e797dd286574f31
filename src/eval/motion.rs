//! WOMD motion metrics exactly as upstream's `motion_metrics.cc` computes them
//! (docs/motion-metrics.md): minADE, minFDE, miss rate, overlap rate, mAP and soft mAP
//! per object type and measurement step, with upstream's sample rules and quirks.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::geom::{OrientedRect, intersection_area};
pub use crate::scene::prediction::{
    JointPrediction, MultimodalPrediction, PredictedTrajectory, PredictionHorizon, ScenarioPredictions,
};
use crate::scene::trajectory_type::{TrajectoryType, classify};
use crate::scene::{AgentType, Scenario, Track};

/// One measurement step with its miss thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepConfig {
    /// Index into the prediction's steps (challenge: 5, 9, 15 = 3, 5, 8 s).
    pub measurement_step: usize,
    pub lateral_miss_threshold: f64,
    pub longitudinal_miss_threshold: f64,
}

/// `MotionMetricsConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsConfig {
    pub track_steps_per_second: usize,
    pub prediction_steps_per_second: usize,
    pub track_history_samples: usize,
    pub track_future_samples: usize,
    pub speed_lower_bound: f64,
    pub speed_upper_bound: f64,
    pub speed_scale_lower: f64,
    pub speed_scale_upper: f64,
    pub step_configurations: Vec<StepConfig>,
    pub max_predictions: usize,
}

impl MetricsConfig {
    /// `GetChallengeConfig()`.
    pub fn challenge() -> Self {
        let step = |m, lat, lon| StepConfig {
            measurement_step: m,
            lateral_miss_threshold: lat,
            longitudinal_miss_threshold: lon,
        };
        MetricsConfig {
            track_steps_per_second: 10,
            prediction_steps_per_second: 2,
            track_history_samples: 10,
            track_future_samples: 80,
            speed_lower_bound: 1.4,
            speed_upper_bound: 11.0,
            speed_scale_lower: 0.5,
            speed_scale_upper: 1.0,
            step_configurations: vec![step(5, 1.0, 2.0), step(9, 1.8, 3.6), step(15, 3.0, 6.0)],
            max_predictions: 6,
        }
    }

    /// The horizon a predictor must fill for these metrics.
    pub fn horizon(&self) -> PredictionHorizon {
        PredictionHorizon {
            track_steps_per_second: self.track_steps_per_second,
            prediction_steps_per_second: self.prediction_steps_per_second,
            history_samples: self.track_history_samples,
            future_samples: self.track_future_samples,
            max_modes: self.max_predictions,
        }
    }

    /// Prediction steps per trajectory (challenge: 16).
    pub fn prediction_steps(&self) -> usize {
        self.horizon().prediction_steps()
    }

    /// The track step of prediction step `p` (challenge: 5p + 15).
    pub fn track_step(&self, p: usize) -> usize {
        self.horizon().track_step(p)
    }

    fn validate(&self) -> Result<(), MetricsError> {
        let (t, p) = (self.track_steps_per_second, self.prediction_steps_per_second);
        if p == 0 || p > t || t % p != 0 {
            return Err(MetricsError::Config(format!("prediction rate {p} must divide the track rate {t}")));
        }
        // Upstream's `ValidateConfig` accepts a measurement step equal to the number of
        // prediction steps (16), which would then index one past the end of every
        // trajectory (and track step 95 of 91): scenetok rejects it.
        for s in &self.step_configurations {
            if s.measurement_step >= self.prediction_steps() {
                return Err(MetricsError::Config(format!(
                    "measurement step {} outside the {} prediction steps",
                    s.measurement_step,
                    self.prediction_steps()
                )));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("metrics config: {0}")]
    Config(String),
    #[error("scenario {scenario}: {message}")]
    Invalid { scenario: String, message: String },
}

/// The (confidence, true positive) samples of one trajectory-type bucket and its number of
/// ground-truth trajectories, the recall denominator (upstream's `PredictionStats`).
/// Confidences are kept at float32 precision, as upstream's `PredictionSample` holds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct PrBucket {
    pub samples: Vec<(f64, bool)>,
    pub num_trajectories: usize,
}

/// One point of a precision/recall curve (upstream's `PrSample`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrSample {
    pub precision: f64,
    pub recall: f64,
}

/// Per trajectory type: its samples and trajectory count.
type ApSamples = BTreeMap<TrajectoryType, PrBucket>;

/// The samples of one (object type, measurement step) breakdown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
struct Bucket {
    min_ade: Vec<f64>,
    min_fde: Vec<f64>,
    miss: Vec<f64>,
    overlap: Vec<f64>,
    map: ApSamples,
    soft_map: ApSamples,
}

/// Accumulates scenarios; [`MotionMetrics::finish`] gives the breakdowns.
#[derive(Debug, Clone)]
pub struct MotionMetrics {
    config: MetricsConfig,
    buckets: BTreeMap<(u8, usize), Bucket>,
}

/// One scenario's samples for every breakdown it touches: what [`MotionMetrics::add`] appends.
/// Kept per scenario, shards' results merge exactly: the samples are appended in the
/// scenarios' order whichever process computed them, so means and APs are the same bits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ScenarioSamples {
    /// (object type priority, measurement step) and its samples, in key order.
    buckets: Vec<((u8, usize), Bucket)>,
}

/// The AP of one mAP bucket (object type, measurement step, trajectory type): WOMD's mAP is
/// the mean of these over the buckets with predictions, so with few agents one bucket (a
/// handful of turning cyclists) moves it as much as a big one; these say where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BucketAp {
    pub object_type: String,
    pub measurement_step: usize,
    pub trajectory_type: TrajectoryType,
    /// Agents of this trajectory type with a prediction (the recall denominator).
    pub trajectories: usize,
    /// True positives: agents whose highest-confidence matching mode matched.
    pub true_positives: usize,
    pub average_precision: f64,
}

/// One `MotionMetricsBundle`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Breakdown {
    pub object_type: String,
    pub measurement_step: usize,
    pub min_ade: f64,
    pub min_fde: f64,
    pub miss_rate: f64,
    pub overlap_rate: f64,
    pub map: f64,
    pub soft_map: f64,
}

fn type_priority(t: AgentType) -> u8 {
    match t {
        AgentType::Unset => 0,
        AgentType::Other => 1,
        AgentType::Vehicle => 2,
        AgentType::Pedestrian => 3,
        AgentType::Cyclist => 4,
    }
}

fn type_name(priority: u8) -> &'static str {
    ["TYPE_UNSET", "TYPE_OTHER", "TYPE_VEHICLE", "TYPE_PEDESTRIAN", "TYPE_CYCLIST"][priority as usize]
}

/// The mAP bucket order, which differs from the enum's.
fn map_priority(t: TrajectoryType) -> u8 {
    match t {
        TrajectoryType::Stationary => 0,
        TrajectoryType::Straight => 1,
        TrajectoryType::StraightRight => 2,
        TrajectoryType::StraightLeft => 3,
        TrajectoryType::RightTurn => 4,
        TrajectoryType::LeftTurn => 5,
        TrajectoryType::LeftUTurn => 6,
        TrajectoryType::RightUTurn => 7,
    }
}

impl MotionMetrics {
    pub fn new(config: MetricsConfig) -> Result<Self, MetricsError> {
        config.validate()?;
        Ok(MotionMetrics { config, buckets: BTreeMap::new() })
    }

    /// Whether a prediction of `object_type` has been added, i.e. whether the breakdown has
    /// stats at all. Waymo's TF op reports every metric of a breakdown without stats as -1;
    /// [`finish`](Self::finish) gives zeros there.
    pub fn has_stats(&self, object_type: AgentType, measurement_step: usize) -> bool {
        self.buckets.contains_key(&(type_priority(object_type), measurement_step))
    }

    /// The mAP buckets (soft mAP's with `soft`) of one breakdown so far, indexed by
    /// `TrajectoryType as usize` like upstream's `pr_buckets`; `None` when no prediction of
    /// that object type has been added (upstream then has no stats for the type).
    pub fn pr_buckets(&self, object_type: AgentType, measurement_step: usize, soft: bool) -> Option<[PrBucket; 8]> {
        let b = self.buckets.get(&(type_priority(object_type), measurement_step))?;
        let mut out: [PrBucket; 8] = Default::default();
        for (t, bucket) in if soft { &b.soft_map } else { &b.map } {
            out[*t as usize] = bucket.clone();
        }
        Some(out)
    }

    /// Every mAP bucket with predictions so far (not soft mAP's), by object type, measurement
    /// step and trajectory type; [`finish`](Self::finish)'s mAP is the mean of a breakdown's.
    pub fn bucket_aps(&self) -> Vec<BucketAp> {
        let mut out = Vec::new();
        for (&(object_type, measurement_step), b) in &self.buckets {
            for (&trajectory_type, bucket) in b.map.iter().filter(|(_, k)| !k.samples.is_empty()) {
                out.push(BucketAp {
                    object_type: type_name(object_type).into(),
                    measurement_step,
                    trajectory_type,
                    trajectories: bucket.num_trajectories,
                    true_positives: bucket.samples.iter().filter(|s| s.1).count(),
                    average_precision: average_precision(&bucket.samples, bucket.num_trajectories),
                });
            }
        }
        out
    }

    /// Checks predictions against the scenario as upstream's `ComputeMetricsStats` does.
    pub fn validate(&self, scenario: &Scenario, predictions: &ScenarioPredictions) -> Result<(), MetricsError> {
        let bad = |message: String| MetricsError::Invalid { scenario: scenario.id.clone(), message };
        if predictions.scenario_id != scenario.id {
            return Err(bad(format!("predictions are for scenario {:?}", predictions.scenario_id)));
        }
        // Upstream takes the current step from its config, not from the scenario: a scenario
        // whose current step is elsewhere would be scored against the wrong future.
        if scenario.current_time_index != self.config.track_history_samples {
            return Err(bad(format!(
                "current_time_index {}, but these metrics measure from step {} (1 s of history at 10 Hz)",
                scenario.current_time_index, self.config.track_history_samples
            )));
        }
        let steps = self.config.prediction_steps();
        let expected_states = self.config.track_history_samples + self.config.track_future_samples + 1;
        let to_predict: std::collections::BTreeSet<i64> =
            scenario.tracks_to_predict.iter().map(|t| scenario.tracks[t.track_index].id).collect();
        for t in &scenario.tracks_to_predict {
            let track = &scenario.tracks[t.track_index];
            if track.states.len() != expected_states {
                return Err(bad(format!(
                    "track {} has {} states, expected {expected_states}",
                    track.id,
                    track.states.len()
                )));
            }
        }
        let mut predicted = std::collections::BTreeSet::new();
        for m in &predictions.predictions {
            let mut objects: Option<Vec<i64>> = None;
            for j in &m.joints {
                let mut ids: Vec<i64> = j.trajectories.iter().map(|t| t.object_id).collect();
                ids.sort_unstable();
                for t in &j.trajectories {
                    if t.x.len() != steps || t.y.len() != steps {
                        return Err(bad(format!(
                            "object {} has a trajectory of {} points, expected {steps}",
                            t.object_id,
                            t.x.len()
                        )));
                    }
                    if let Some(p) = t.x.iter().chain(&t.y).position(|v| !v.is_finite()) {
                        return Err(bad(format!(
                            "object {} has a non-finite predicted coordinate at step {}",
                            t.object_id,
                            p % steps.max(1)
                        )));
                    }
                    if !j.confidence.is_finite() {
                        return Err(bad(format!("object {} has a non-finite confidence", t.object_id)));
                    }
                    if !to_predict.contains(&t.object_id) {
                        return Err(bad(format!("object {} is not in tracks_to_predict", t.object_id)));
                    }
                }
                match &objects {
                    None => objects = Some(ids),
                    Some(o) if *o != ids => {
                        return Err(bad("joint predictions of one prediction cover different objects".into()));
                    }
                    Some(_) => {}
                }
            }
            predicted.extend(objects.unwrap_or_default());
        }
        if predicted != to_predict {
            let missing: Vec<_> = to_predict.difference(&predicted).collect();
            return Err(bad(format!("no prediction for tracks_to_predict {missing:?}")));
        }
        Ok(())
    }

    /// Validates and accumulates one scenario.
    pub fn add(&mut self, scenario: &Scenario, predictions: &ScenarioPredictions) -> Result<(), MetricsError> {
        let samples = self.samples(scenario, predictions)?;
        self.absorb(&samples);
        Ok(())
    }

    /// Appends one scenario's samples (from [`samples`](Self::samples)).
    pub fn absorb(&mut self, samples: &ScenarioSamples) {
        for (key, b) in &samples.buckets {
            let into = self.buckets.entry(*key).or_default();
            into.min_ade.extend_from_slice(&b.min_ade);
            into.min_fde.extend_from_slice(&b.min_fde);
            into.miss.extend_from_slice(&b.miss);
            into.overlap.extend_from_slice(&b.overlap);
            for (from, to) in [(&b.map, &mut into.map), (&b.soft_map, &mut into.soft_map)] {
                for (tt, pr) in from {
                    let e = to.entry(*tt).or_default();
                    e.samples.extend_from_slice(&pr.samples);
                    e.num_trajectories += pr.num_trajectories;
                }
            }
        }
    }

    /// One scenario's samples, validated as [`add`](Self::add) does, without adding them.
    pub fn samples(
        &self,
        scenario: &Scenario,
        predictions: &ScenarioPredictions,
    ) -> Result<ScenarioSamples, MetricsError> {
        let mut buckets: BTreeMap<(u8, usize), Bucket> = BTreeMap::new();
        self.validate(scenario, predictions)?;
        let by_id: BTreeMap<i64, &Track> = scenario.tracks.iter().map(|t| (t.id, t)).collect();
        let current = self.config.track_history_samples;
        for m in &predictions.predictions {
            // Upstream returns here, skipping every later prediction of the scenario.
            let Some(first) = m.joints.first() else { break };
            if first.trajectories.is_empty() {
                break;
            }
            let object_type = first
                .trajectories
                .iter()
                .filter_map(|t| by_id.get(&t.object_id))
                .map(|t| type_priority(t.agent_type))
                .max()
                .unwrap_or(0);
            let k = m.joints.len().min(self.config.max_predictions);
            let joints = &m.joints[..k];
            let trajectory_type = first
                .trajectories
                .iter()
                .filter_map(|t| by_id.get(&t.object_id).and_then(|tr| classify(&tr.states, current)))
                .max_by_key(|t| map_priority(*t))
                .map(|t| if t == TrajectoryType::RightUTurn { TrajectoryType::RightTurn } else { t });
            let last_step = self.config.step_configurations.iter().map(|s| s.measurement_step).max().unwrap_or(0);
            let first_overlap = first_overlap(&self.config, &m.joints, scenario, &by_id, last_step);
            for step in self.config.step_configurations.clone() {
                let bucket = buckets.entry((object_type, step.measurement_step)).or_default();
                let s = step.measurement_step;
                // minADE / minFDE over the first K joints, input order.
                let ade: Vec<f64> =
                    joints.iter().filter_map(|j| joint_mean(j, &by_id, |t, tr| ade(&self.config, t, tr, s))).collect();
                if let Some(m) = ade.iter().copied().reduce(f64::min) {
                    bucket.min_ade.push(m);
                }
                let fde: Vec<f64> =
                    joints.iter().filter_map(|j| joint_mean(j, &by_id, |t, tr| disp(&self.config, t, tr, s))).collect();
                if let Some(m) = fde.iter().copied().reduce(f64::min) {
                    bucket.min_fde.push(m);
                }
                let matches: Vec<Option<bool>> =
                    joints.iter().map(|j| is_match(&self.config, j, &by_id, &step)).collect();
                if matches.contains(&Some(true)) {
                    bucket.miss.push(0.0);
                } else if matches.iter().any(|m| m.is_some()) {
                    bucket.miss.push(1.0);
                }
                bucket.overlap.push(if first_overlap.is_some_and(|f| f <= s) { 1.0 } else { 0.0 });
                if let Some(tt) = trajectory_type {
                    // Upstream's confidences are float32. It sorts with std::sort, whose order
                    // among equal confidences is unspecified; that order changes neither the
                    // multiset of samples nor the count, and a stable sort is deterministic.
                    let conf = |j: usize| joints[j].confidence as f32;
                    let mut order: Vec<usize> = (0..k).collect();
                    order.sort_by(|&a, &b| conf(b).total_cmp(&conf(a)));
                    let (mut found, mut taken) = (false, false);
                    let map = bucket.map.entry(tt).or_default();
                    let mut soft = Vec::new();
                    for &j in &order {
                        let Some(tp) = matches[j] else { continue };
                        map.samples.push((conf(j) as f64, !found && tp));
                        if !(tp && found) {
                            soft.push((conf(j) as f64, tp));
                        }
                        found |= tp;
                        taken = true;
                    }
                    if taken {
                        map.num_trajectories += 1;
                        let e = bucket.soft_map.entry(tt).or_default();
                        e.samples.extend(soft);
                        e.num_trajectories += 1;
                    }
                }
            }
        }
        Ok(ScenarioSamples { buckets: buckets.into_iter().collect() })
    }

    /// The breakdowns for vehicles, pedestrians and cyclists at each measurement step
    /// (a breakdown without stats has zeros: the C++ library has no bundle for it, the TF op
    /// -1 for each metric; see [`has_stats`](Self::has_stats)).
    pub fn finish(&self) -> Vec<Breakdown> {
        let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
        let mut out = Vec::new();
        for object_type in [2u8, 3, 4] {
            for step in &self.config.step_configurations {
                let b = self.buckets.get(&(object_type, step.measurement_step)).cloned().unwrap_or_default();
                out.push(Breakdown {
                    object_type: type_name(object_type).into(),
                    measurement_step: step.measurement_step,
                    min_ade: mean(&b.min_ade),
                    min_fde: mean(&b.min_fde),
                    miss_rate: mean(&b.miss),
                    overlap_rate: mean(&b.overlap),
                    map: mean_ap(&b.map),
                    soft_map: mean_ap(&b.soft_map),
                });
            }
        }
        out
    }
}

/// Upstream's `ValidateChallengePredictions` (`motion_metrics_utils.cc`), for predictions
/// converted from a challenge submission: `submission_type` (a
/// [`submission_type`](crate::io::proto::submission::submission_type) value) must be
/// `MOTION_PREDICTION`, where every joint prediction holds one trajectory, or
/// `INTERACTION_PREDICTION`, where there is at most one MultimodalPrediction and every joint
/// prediction holds two.
pub fn validate_challenge_predictions(
    predictions: &ScenarioPredictions,
    submission_type: i32,
) -> Result<(), MetricsError> {
    use crate::io::proto::submission::submission_type::{INTERACTION_PREDICTION, MOTION_PREDICTION};
    let bad = |message: String| MetricsError::Invalid { scenario: predictions.scenario_id.clone(), message };
    let interactive = match submission_type {
        MOTION_PREDICTION => false,
        INTERACTION_PREDICTION => true,
        other => return Err(bad(format!("invalid submission type {other}"))),
    };
    if interactive && predictions.predictions.len() > 1 {
        return Err(bad("an interactive submission must have a single MultimodalPrediction".into()));
    }
    let expected = if interactive { 2 } else { 1 };
    for m in &predictions.predictions {
        for j in &m.joints {
            if j.trajectories.len() != expected {
                return Err(bad(format!(
                    "a joint prediction of {} trajectories; a {} submission predicts {expected} object(s) per joint \
                     prediction",
                    j.trajectories.len(),
                    if interactive { "interaction" } else { "motion" }
                )));
            }
        }
    }
    Ok(())
}

/// Mean of per-object values over a joint; `None` if any object's is `None`.
fn joint_mean(
    j: &JointPrediction,
    by_id: &BTreeMap<i64, &Track>,
    f: impl Fn(&PredictedTrajectory, &Track) -> Option<f64>,
) -> Option<f64> {
    let mut sum = 0.0;
    for t in &j.trajectories {
        sum += f(t, by_id.get(&t.object_id)?)?;
    }
    (!j.trajectories.is_empty()).then(|| sum / j.trajectories.len() as f64)
}

fn disp(c: &MetricsConfig, t: &PredictedTrajectory, track: &Track, p: usize) -> Option<f64> {
    let gt = track.states.get(c.track_step(p)).filter(|s| s.valid)?;
    Some((t.x[p] - gt.x).hypot(t.y[p] - gt.y))
}

fn ade(c: &MetricsConfig, t: &PredictedTrajectory, track: &Track, s: usize) -> Option<f64> {
    let d: Vec<f64> = (0..=s).filter_map(|p| disp(c, t, track, p)).collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

/// `IsMatch`: every object within its speed-scaled lateral and longitudinal thresholds;
/// `None` if any object's ground truth is invalid at the step.
fn is_match(c: &MetricsConfig, j: &JointPrediction, by_id: &BTreeMap<i64, &Track>, step: &StepConfig) -> Option<bool> {
    let s = step.measurement_step;
    let mut all = true;
    for t in &j.trajectories {
        let track = by_id.get(&t.object_id)?;
        let gt = track.states.get(c.track_step(s)).filter(|g| g.valid)?;
        let (dx, dy) = (t.x[s] - gt.x, t.y[s] - gt.y);
        let (sin, cos) = (-(gt.heading as f64)).sin_cos();
        let (lon, lat) = (dx * cos - dy * sin, dx * sin + dy * cos);
        let now = track.states.get(c.track_history_samples)?;
        let v = (now.velocity_x as f64).hypot(now.velocity_y as f64);
        let scale = if v < c.speed_lower_bound {
            c.speed_scale_lower
        } else if v > c.speed_upper_bound {
            c.speed_scale_upper
        } else {
            c.speed_scale_lower
                + (c.speed_scale_upper - c.speed_scale_lower) * (v - c.speed_lower_bound)
                    / (c.speed_upper_bound - c.speed_lower_bound)
        };
        if (lat / scale).abs() > step.lateral_miss_threshold || (lon / scale).abs() > step.longitudinal_miss_threshold {
            all = false;
        }
    }
    Some(all)
}

/// The joint `ComputeOverlapRate` checks: upstream's `GetNormalizedConfidences` (float32,
/// normalised over *all* joint predictions, `1/n` each if they sum to 0), then cut or
/// zero-padded to the first `k`, and the index of the first maximum. Normalising over all of
/// them rather than the first `k` only matters when the two sums differ in sign or zeroness
/// (e.g. negative scores). The zero padding (fewer than `k` joints) could only win if no
/// normalised value were positive, which finite confidences rule out (they sum to 1); should it
/// happen, upstream would read past its joints and scenetok counts no overlap.
fn most_likely_joint(joints: &[JointPrediction], k: usize) -> usize {
    let n = joints.len();
    let sum = joints.iter().fold(0.0f32, |s, j| s + j.confidence as f32);
    let nominal = 1.0f32 / n as f32;
    let normalized = |i: usize| {
        if i >= n {
            0.0
        } else if sum == 0.0 {
            nominal
        } else {
            joints[i].confidence as f32 / sum
        }
    };
    let mut best = 0;
    for i in 1..k {
        if normalized(i) > normalized(best) {
            best = i;
        }
    }
    best
}

/// `ComputeOverlapRate` for the most likely joint, for every measurement step at once: the
/// first prediction step (≤ `max_step`) at which a predicted box overlaps a ground-truth box of
/// another agent valid at the current step. Upstream's overlap at step s is 1 iff this is ≤ s.
fn first_overlap(
    c: &MetricsConfig,
    joints: &[JointPrediction],
    scenario: &Scenario,
    by_id: &BTreeMap<i64, &Track>,
    max_step: usize,
) -> Option<usize> {
    let current = c.track_history_samples;
    let joint = joints.get(most_likely_joint(joints, c.max_predictions))?;
    let candidates: Vec<&Track> =
        scenario.tracks.iter().filter(|t| t.states.get(current).is_some_and(|s| s.valid)).collect();
    let mut first: Option<usize> = None;
    for t in &joint.trajectories {
        let Some(track) = by_id.get(&t.object_id) else { continue };
        let last = t.x.len().saturating_sub(1);
        for p in 0..=max_step.min(first.unwrap_or(usize::MAX).saturating_sub(1)) {
            let angle = |a: usize, b: usize| (t.y[b] - t.y[a]).atan2(t.x[b] - t.x[a]);
            let heading = if p == 0 {
                angle(0, 1)
            } else if p == last {
                angle(last - 1, last)
            } else {
                let (a, b) = (angle(p, p + 1), angle(p - 1, p));
                (a.sin() + b.sin()).atan2(a.cos() + b.cos())
            };
            let ts = c.track_step(p);
            let size = track.states.get(ts).copied().unwrap_or_default();
            let pred = OrientedRect {
                center_x: t.x[p],
                center_y: t.y[p],
                length: size.length as f64,
                width: size.width as f64,
                heading,
            };
            for other in &candidates {
                if other.id == t.object_id {
                    continue;
                }
                let Some(g) = other.states.get(ts).filter(|g| g.valid) else { continue };
                let gt = OrientedRect {
                    center_x: g.x,
                    center_y: g.y,
                    length: g.length as f64,
                    width: g.width as f64,
                    heading: g.heading as f64,
                };
                if intersection_area(&pred, &gt) > 0.0 {
                    first = Some(p);
                    break;
                }
            }
            if first == Some(p) {
                break;
            }
        }
    }
    first
}

/// Mean AP over trajectory-type buckets that have samples.
fn mean_ap(buckets: &ApSamples) -> f64 {
    let aps: Vec<f64> = buckets
        .values()
        .filter(|b| !b.samples.is_empty())
        .map(|b| average_precision(&b.samples, b.num_trajectories))
        .collect();
    if aps.is_empty() { 0.0 } else { aps.iter().sum::<f64>() / aps.len() as f64 }
}

/// Upstream's `ComputePrCurve`: the (confidence, true positive) samples sorted by confidence,
/// highest first, false positives first among equal confidences; then per sample the
/// cumulative precision and the recall against `total_gt_count` trajectories.
pub fn pr_curve(samples: &[(f64, bool)], total_gt_count: usize) -> Vec<PrSample> {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut tp = 0.0;
    s.iter()
        .enumerate()
        .map(|(i, (_, t))| {
            tp += *t as u8 as f64;
            PrSample { precision: tp / (i + 1) as f64, recall: tp / total_gt_count as f64 }
        })
        .collect()
}

/// Upstream's AP (`ComputeMeanAveragePrecision` of one bucket): the precision envelope of
/// [`pr_curve`] integrated from the highest recall down.
pub fn average_precision(samples: &[(f64, bool)], num_trajectories: usize) -> f64 {
    if samples.is_empty() || num_trajectories == 0 {
        return 0.0;
    }
    let pr = pr_curve(samples, num_trajectories);
    let mut highest = pr[pr.len() - 1];
    let mut area = 0.0;
    for p in pr.iter().rev() {
        if p.precision > highest.precision {
            area += highest.precision * (highest.recall - p.recall);
            highest = *p;
        }
    }
    area + highest.recall * highest.precision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joints(confidences: &[f64]) -> Vec<JointPrediction> {
        confidences.iter().map(|&confidence| JointPrediction { trajectories: Vec::new(), confidence }).collect()
    }

    #[test]
    fn most_likely_joint_normalises_over_all_joints() {
        assert_eq!(most_likely_joint(&joints(&[0.1, 0.5, 0.2]), 6), 1);
        // All zero: 1/n each, the first wins.
        assert_eq!(most_likely_joint(&joints(&[0.0, 0.0, 0.0]), 6), 0);
        // The first six sum to −21 but all seven to 9: upstream divides by 9, which keeps the
        // order (joint 0 first); dividing by −21 would reverse it (joint 5).
        assert_eq!(most_likely_joint(&joints(&[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, 30.0]), 6), 0);
        // Only the first K are candidates even when a later one is larger.
        assert_eq!(most_likely_joint(&joints(&[0.1, 0.2, 0.7]), 2), 1);
        // Float32: confidences equal at float32 precision tie, and the first wins.
        assert_eq!(most_likely_joint(&joints(&[0.3, 0.3 + 1e-12]), 6), 0);
    }
}
