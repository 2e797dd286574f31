//! What a report is drawn from beyond the metric tables: displacement error at every prediction
//! step, the trajectory-type mix, latency samples and a few example scenes. Computed once at
//! evaluation time and stored beside `metrics.json` (`report_data.json`), so a report can be
//! redrawn from a run folder alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::eval::motion::{MetricsConfig, ScenarioPredictions};
use crate::scene::trajectory_type::classify;
use crate::scene::{MapFeatureKind, Scenario};

/// Mean over agents of the smallest displacement among the modes, at each prediction step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepErrors {
    pub object_type: String,
    pub seconds: Vec<f64>,
    /// `None` (JSON `null`) at steps where no agent of the type had a valid ground truth.
    pub mean_min_de: Vec<Option<f64>>,
    pub agents: Vec<usize>,
}

/// A map feature drawn in a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapLine {
    /// `lane`, `road_line`, `road_edge`, `crosswalk`, `stop_sign`, `speed_bump`, `driveway`.
    pub kind: String,
    pub closed: bool,
    pub points: Vec<[f64; 2]>,
}

/// One predicted agent in a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub object_id: i64,
    pub object_type: String,
    pub history: Vec<[f64; 2]>,
    pub ground_truth: Vec<[f64; 2]>,
    /// (probability, positions at the prediction steps); probabilities normalised to sum 1.
    pub modes: Vec<(f64, Vec<[f64; 2]>)>,
}

/// One scene for the BEV drawing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneView {
    pub scenario_id: String,
    pub map: Vec<MapLine>,
    /// Every other valid agent at the current step: x, y, heading, length, width.
    pub others: Vec<[f64; 5]>,
    pub agents: Vec<AgentView>,
}

/// Everything `report.html` draws that `metrics.json` does not hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportData {
    pub latency_samples_ms: BTreeMap<String, Vec<f64>>,
    pub scenes: Vec<SceneView>,
    /// The learning curve of the evaluated weights, where they carry one.
    #[serde(default)]
    pub training: Option<crate::models::motion::training::TrainingCurve>,
}

/// Scene coordinates are kept to the centimetre (and probabilities to 1e-6): small files, and
/// values that survive the JSON round trip exactly, so a redrawn report is the same page.
fn cm(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn cm_xy(x: f64, y: f64) -> [f64; 2] {
    [cm(x), cm(y)]
}

/// Per object type, the sum of min-over-modes displacements and the number of agents at each
/// prediction step.
pub type StepSums = BTreeMap<String, (Vec<f64>, Vec<usize>)>;

/// Per-type step errors over all scenarios (agents with valid ground truth at a step only).
pub fn step_errors(
    scenarios: &[Scenario],
    predictions: &[ScenarioPredictions],
    cfg: &MetricsConfig,
) -> Vec<StepErrors> {
    let mut sums = StepSums::new();
    for (s, p) in scenarios.iter().zip(predictions) {
        add_step_sums(&mut sums, &scenario_step_sums(s, p, cfg));
    }
    step_errors_from(sums, cfg)
}

/// One scenario's [`StepSums`]. Totals add scenarios' sums in their order, so a merged run
/// adds the same numbers in the same order as one process.
pub fn scenario_step_sums(s: &Scenario, p: &ScenarioPredictions, cfg: &MetricsConfig) -> StepSums {
    let steps = cfg.prediction_steps();
    let mut sums = StepSums::new();
    for (target, pred) in s.tracks_to_predict.iter().zip(&p.predictions) {
        let track = &s.tracks[target.track_index];
        let entry = sums
            .entry(format!("TYPE_{}", track.agent_type.name()))
            .or_insert_with(|| (vec![0.0; steps], vec![0; steps]));
        for step in 0..steps {
            let Some(gt) = track.states.get(cfg.track_step(step)).filter(|g| g.valid) else { continue };
            let best = pred
                .joints
                .iter()
                .filter_map(|j| j.trajectories.first())
                .filter_map(|t| Some((t.x.get(step)? - gt.x).hypot(t.y.get(step)? - gt.y)))
                .fold(f64::INFINITY, f64::min);
            if best.is_finite() {
                entry.0[step] += best;
                entry.1[step] += 1;
            }
        }
    }
    sums
}

/// Adds one scenario's sums to a total.
pub fn add_step_sums(total: &mut StepSums, one: &StepSums) {
    for (t, (sum, n)) in one {
        let e = total.entry(t.clone()).or_insert_with(|| (vec![0.0; sum.len()], vec![0; n.len()]));
        e.0.iter_mut().zip(sum).for_each(|(a, b)| *a += b);
        e.1.iter_mut().zip(n).for_each(|(a, b)| *a += b);
    }
}

/// The means of a total.
pub fn step_errors_from(sums: StepSums, cfg: &MetricsConfig) -> Vec<StepErrors> {
    let steps = cfg.prediction_steps();
    let dt = 1.0 / cfg.prediction_steps_per_second as f64;
    sums.into_iter()
        .map(|(object_type, (sum, n))| StepErrors {
            object_type,
            seconds: (0..steps).map(|i| (i + 1) as f64 * dt).collect(),
            mean_min_de: sum.iter().zip(&n).map(|(s, &n)| (n > 0).then(|| s / n as f64)).collect(),
            agents: n,
        })
        .collect()
}

/// Trajectory types of the agents to predict (WOMD classification of their ground truth).
pub fn trajectory_type_histogram(scenarios: &[Scenario]) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for s in scenarios {
        for t in &s.tracks_to_predict {
            let name = classify(&s.tracks[t.track_index].states, s.current_time_index).map_or("INVALID", |t| t.name());
            *h.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    h
}

/// The scene of one scenario: map features within `radius` m of the predicted agents' current
/// positions, their history, ground truth and modes, and the other agents at the current step.
pub fn scene_view(s: &Scenario, p: &ScenarioPredictions, cfg: &MetricsConfig, radius: f64) -> SceneView {
    let current = s.current_time_index;
    let centres: Vec<[f64; 2]> = s
        .tracks_to_predict
        .iter()
        .filter_map(|t| s.tracks[t.track_index].states.get(current).filter(|st| st.valid).map(|st| [st.x, st.y]))
        .collect();
    let near = |x: f64, y: f64| centres.iter().any(|c| (c[0] - x).hypot(c[1] - y) <= radius);
    let map = s
        .map
        .iter()
        .filter(|f| f.polyline.iter().any(|q| near(q.x, q.y)))
        .map(|f| {
            let kind = f.feature_type.kind();
            MapLine {
                kind: kind.name().to_string(),
                closed: matches!(
                    kind,
                    MapFeatureKind::Crosswalk | MapFeatureKind::SpeedBump | MapFeatureKind::Driveway
                ),
                points: f.polyline.iter().map(|q| cm_xy(q.x, q.y)).collect(),
            }
        })
        .collect();
    let predicted: std::collections::BTreeSet<usize> = s.tracks_to_predict.iter().map(|t| t.track_index).collect();
    let others = s
        .tracks
        .iter()
        .enumerate()
        .filter(|(i, _)| !predicted.contains(i))
        .filter_map(|(_, t)| t.states.get(current).filter(|st| st.valid && near(st.x, st.y)))
        .map(|st| {
            [cm(st.x), cm(st.y), (st.heading as f64 * 1e4).round() / 1e4, cm(st.length as f64), cm(st.width as f64)]
        })
        .collect();
    let agents = s
        .tracks_to_predict
        .iter()
        .zip(&p.predictions)
        .map(|(t, pred)| {
            let track = &s.tracks[t.track_index];
            let xy = |range: std::ops::Range<usize>| -> Vec<[f64; 2]> {
                track.states[range.start.min(track.states.len())..range.end.min(track.states.len())]
                    .iter()
                    .filter(|st| st.valid)
                    .map(|st| cm_xy(st.x, st.y))
                    .collect()
            };
            let total: f64 = pred.joints.iter().map(|j| j.confidence.max(0.0)).sum();
            let modes = pred
                .joints
                .iter()
                .filter_map(|j| {
                    let t = j.trajectories.first()?;
                    let prob = if total > 0.0 { j.confidence.max(0.0) / total } else { 1.0 / pred.joints.len() as f64 };
                    let prob = (prob * 1e6).round() / 1e6;
                    Some((prob, t.x.iter().zip(&t.y).map(|(&x, &y)| cm_xy(x, y)).collect()))
                })
                .collect();
            AgentView {
                object_id: track.id,
                object_type: format!("TYPE_{}", track.agent_type.name()),
                history: xy(0..current + 1),
                ground_truth: xy(current..cfg.track_step(cfg.prediction_steps() - 1) + 1),
                modes,
            }
        })
        .collect();
    SceneView { scenario_id: s.id.clone(), map, others, agents }
}

/// Up to `n` example scenes: of the scenarios with agents to predict, those whose
/// [`scene_rank`] is lowest, drawn in the input's order. A rank of the scenario alone (not
/// its place in the input) picks the same scenes from a whole run and from merged shards.
pub fn example_scenes(
    scenarios: &[Scenario],
    predictions: &[ScenarioPredictions],
    cfg: &MetricsConfig,
    n: usize,
) -> Vec<SceneView> {
    let mut ranked: Vec<(u64, usize)> = (0..scenarios.len())
        .filter(|&i| !scenarios[i].tracks_to_predict.is_empty())
        .map(|i| (scene_rank(&scenarios[i].id), i))
        .collect();
    ranked.sort();
    let mut chosen: Vec<usize> = ranked.into_iter().take(n).map(|(_, i)| i).collect();
    chosen.sort();
    chosen.into_iter().map(|i| scene_view(&scenarios[i], &predictions[i], cfg, EXAMPLE_RADIUS_M)).collect()
}

/// How far from the predicted agents an example scene's map reaches.
pub const EXAMPLE_RADIUS_M: f64 = 60.0;

/// A scenario's rank for [`example_scenes`]: FNV-1a of its id, a spread-out order that does
/// not depend on where the scenario sits in the input.
pub fn scene_rank(scenario_id: &str) -> u64 {
    scenario_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}
