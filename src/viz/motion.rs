//! Logging motion scenarios and what models made of them: agents as boxes, their histories,
//! the ground-truth futures of the agents to predict, each model's K modes (opacity by
//! probability) and the metrics (per scenario as scalars, the challenge breakdown as a table).
//!
//! Scenarios play one after another on the `scenario_time` timeline (seconds), each starting
//! where the previous one ended plus a one-second gap, so one recording holds many.

use std::collections::HashMap;

use rerun::RecordingStream;

use super::paths;
use super::{VizError, classes, map};
use crate::eval::motion::{MetricsConfig, ScenarioPredictions};
use crate::eval::runner::EvalReport;
use crate::scene::{AgentState, Scenario};

/// The timeline of motion recordings (seconds since the first scenario's first step).
pub const TIMELINE: &str = "scenario_time";
/// A second timeline: the scenario's index.
pub const SCENARIO_TIMELINE: &str = "scenario";
/// Steps of history drawn behind each agent (1 s at 10 Hz, WOMD's history).
const HISTORY_STEPS: usize = 10;

/// One model's output over the same scenarios: predictions (matched to scenarios by id) and,
/// when known, its evaluation report.
#[derive(Debug, Clone, Copy)]
pub struct MotionRun<'a> {
    pub model: &'a str,
    pub predictions: &'a [ScenarioPredictions],
    pub report: Option<&'a EvalReport>,
}

impl<'a> MotionRun<'a> {
    /// A run from an evaluation report (which carries its predictions).
    pub fn from_report(report: &'a EvalReport) -> Self {
        MotionRun { model: &report.model, predictions: &report.predictions, report: Some(report) }
    }
}

/// What [`record_motion`] logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MotionCounts {
    pub scenarios: usize,
    pub steps: usize,
    pub predicted_agents: usize,
    pub modes: usize,
}

/// Logs scenarios and every run's predictions and metrics into `rec`.
pub fn record_motion(
    rec: &RecordingStream,
    scenarios: &[Scenario],
    runs: &[MotionRun],
) -> Result<MotionCounts, VizError> {
    rec.log_static(paths::WORLD, &rerun::ViewCoordinates::RIGHT_HAND_Z_UP())?;
    rec.log_static(paths::MOTION, &classes::agent_types())?;
    let cfg = MetricsConfig::challenge();
    let mut counts = MotionCounts::default();
    let mut offset = 0.0;
    for (k, scenario) in scenarios.iter().enumerate() {
        let t0 = scenario.timestamps_seconds.first().copied().unwrap_or(0.0);
        let at = |step: usize| offset + scenario.timestamps_seconds.get(step).map_or(step as f64 * 0.1, |t| t - t0);
        rec.set_time_sequence(SCENARIO_TIMELINE, k as i64);
        rec.set_duration_secs(TIMELINE, at(0));
        map::log_map(rec, &format!("{}/map", paths::MOTION), &scenario.map, false)?;
        log_ground_truth_futures(rec, scenario)?;
        rec.log(format!("{}/predictions", paths::MOTION), &rerun::Clear::recursive())?;
        let steps = scenario.tracks.iter().map(|t| t.states.len()).max().unwrap_or(0);
        for step in 0..steps {
            rec.set_duration_secs(TIMELINE, at(step));
            log_agents(rec, scenario, step)?;
            if step == scenario.current_time_index {
                for run in runs {
                    let Some(p) = run.predictions.iter().find(|p| p.scenario_id == scenario.id) else { continue };
                    let (agents, modes) = log_predictions(rec, scenario, run.model, p)?;
                    counts.predicted_agents += agents;
                    counts.modes += modes;
                    if let Some((ade, fde)) = scenario_errors(scenario, p, &cfg) {
                        let m = format!("{}/{}", paths::METRICS, run.model);
                        rec.log(format!("{m}/minADE"), &rerun::Scalars::single(ade))?;
                        rec.log(format!("{m}/minFDE"), &rerun::Scalars::single(fde))?;
                    }
                }
            }
        }
        counts.steps += steps;
        counts.scenarios += 1;
        offset = at(steps.saturating_sub(1)) + 1.0;
    }
    // One document for every model: the text view shows one document at a time.
    let tables: Vec<String> = runs.iter().filter_map(|r| r.report.map(summary_markdown)).collect();
    if !tables.is_empty() {
        rec.log_static(format!("{}/summary", paths::METRICS), &rerun::TextDocument::from_markdown(tables.join("\n")))?;
    }
    Ok(counts)
}

fn xyz(s: &AgentState) -> [f32; 3] {
    [s.x as f32, s.y as f32, s.z as f32]
}

fn log_agents(rec: &RecordingStream, scenario: &Scenario, step: usize) -> Result<(), VizError> {
    let predicted: Vec<usize> = scenario.tracks_to_predict.iter().map(|t| t.track_index).collect();
    let valid: Vec<(usize, &AgentState)> = scenario
        .tracks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.states.get(step).filter(|s| s.valid).map(|s| (i, s)))
        .collect();
    let label = |i: usize| {
        let t = &scenario.tracks[i];
        let role = if Some(i) == scenario.sdc_track_index {
            " (SDC)"
        } else if predicted.contains(&i) {
            " (to predict)"
        } else {
            ""
        };
        format!("{} {}{role}", t.agent_type.name(), t.id)
    };
    rec.log(
        format!("{}/agents", paths::MOTION),
        &rerun::Boxes3D::from_centers_and_half_sizes(
            valid.iter().map(|(_, s)| [s.x as f32, s.y as f32, (s.z + s.height as f64 / 2.0) as f32]),
            valid.iter().map(|(_, s)| [s.length / 2.0, s.width / 2.0, s.height / 2.0]),
        )
        .with_quaternions(valid.iter().map(|(_, s)| {
            let (sn, c) = (s.heading / 2.0).sin_cos();
            rerun::Quaternion::from_xyzw([0.0, 0.0, sn, c])
        }))
        .with_class_ids(
            valid.iter().map(|(i, _)| rerun::components::ClassId::from(scenario.tracks[*i].agent_type.value() as u16)),
        )
        .with_labels(valid.iter().map(|(i, _)| label(*i)))
        .with_show_labels(false),
    )?;
    let histories: Vec<(usize, Vec<[f32; 3]>)> = valid
        .iter()
        .map(|(i, _)| {
            let from = step.saturating_sub(HISTORY_STEPS);
            (*i, scenario.tracks[*i].states[from..=step].iter().filter(|s| s.valid).map(xyz).collect::<Vec<_>>())
        })
        .filter(|(_, pts)| pts.len() >= 2)
        .collect();
    rec.log(
        format!("{}/history", paths::MOTION),
        &rerun::LineStrips3D::new(histories.iter().map(|(_, p)| p.clone()))
            .with_class_ids(
                histories
                    .iter()
                    .map(|(i, _)| rerun::components::ClassId::from(scenario.tracks[*i].agent_type.value() as u16)),
            )
            .with_radii([rerun::Radius::new_scene_units(0.15)]),
    )?;
    Ok(())
}

fn log_ground_truth_futures(rec: &RecordingStream, scenario: &Scenario) -> Result<(), VizError> {
    let now = scenario.current_time_index;
    let futures: Vec<(i64, Vec<[f32; 3]>)> = scenario
        .tracks_to_predict
        .iter()
        .filter_map(|t| scenario.tracks.get(t.track_index))
        .map(|t| (t.id, t.states.iter().skip(now).filter(|s| s.valid).map(xyz).collect::<Vec<_>>()))
        .filter(|(_, p)| p.len() >= 2)
        .collect();
    rec.log(
        format!("{}/future_gt", paths::MOTION),
        &rerun::LineStrips3D::new(futures.iter().map(|(_, p)| p.clone()))
            .with_colors([rerun::Color::from_rgb(40, 220, 120)])
            .with_radii([rerun::Radius::new_scene_units(0.2)])
            .with_labels(futures.iter().map(|(id, _)| format!("ground truth {id}")))
            .with_show_labels(false),
    )?;
    Ok(())
}

/// Prediction steps between two drawn uncertainty ellipses, and points per ellipse.
const ELLIPSE_EVERY: usize = 4;
const ELLIPSE_POINTS: usize = 25;

/// Logs one model's modes (and their position uncertainty where the model gives one) for
/// one scenario; returns (agents, modes).
fn log_predictions(
    rec: &RecordingStream,
    scenario: &Scenario,
    model: &str,
    p: &ScenarioPredictions,
) -> Result<(usize, usize), VizError> {
    let now = scenario.current_time_index;
    let by_id: HashMap<i64, &crate::scene::Track> = scenario.tracks.iter().map(|t| (t.id, t)).collect();
    let mut strips = Vec::new();
    let mut colors = Vec::new();
    let mut labels = Vec::new();
    let (mut ellipses, mut ellipse_colors) = (Vec::new(), Vec::new());
    let mut agents = 0;
    for mp in &p.predictions {
        // Opacity by probability: confidences normalised over the agent's modes.
        let total: f64 = mp.joints.iter().map(|j| j.confidence.max(0.0)).sum();
        agents += 1;
        for (mode, joint) in mp.joints.iter().enumerate() {
            let prob = if total > 0.0 { joint.confidence.max(0.0) / total } else { 1.0 / mp.joints.len() as f64 };
            for traj in &joint.trajectories {
                let Some(track) = by_id.get(&traj.object_id) else { continue };
                let Some(start) = track.states.get(now).filter(|s| s.valid) else { continue };
                let z = start.z as f32;
                let mut pts = vec![xyz(start)];
                pts.extend(traj.x.iter().zip(&traj.y).map(|(x, y)| [*x as f32, *y as f32, z]));
                strips.push(pts);
                let [r, g, b] = classes::agent_type_color(track.agent_type);
                let alpha = (40.0 + 215.0 * prob).round() as u8;
                let color = rerun::Color::from_unmultiplied_rgba(r, g, b, alpha);
                colors.push(color);
                labels.push(format!("{model} {} mode {mode} p={prob:.2}", traj.object_id));
                // 1-σ ellipses at every fourth prediction step (2, 4, 6, 8 s on WOMD's).
                let at = traj.x.iter().zip(&traj.y).zip(&traj.covariance).enumerate();
                for (_, ((x, y), c)) in at.filter(|(p, _)| (p + 1) % ELLIPSE_EVERY == 0) {
                    let ring = c.ellipse(*x, *y, 1.0, ELLIPSE_POINTS);
                    ellipses.push(ring.into_iter().map(|[x, y]| [x as f32, y as f32, z]).collect::<Vec<_>>());
                    ellipse_colors.push(color);
                }
            }
        }
    }
    let n = strips.len();
    rec.log(
        format!("{}/predictions/{model}", paths::MOTION),
        &rerun::LineStrips3D::new(strips)
            .with_colors(colors)
            .with_labels(labels)
            .with_show_labels(false)
            .with_radii([rerun::Radius::new_scene_units(0.12)]),
    )?;
    if !ellipses.is_empty() {
        rec.log(
            format!("{}/predictions/{model}/uncertainty", paths::MOTION),
            &rerun::LineStrips3D::new(ellipses)
                .with_colors(ellipse_colors)
                .with_radii([rerun::Radius::new_scene_units(0.05)]),
        )?;
    }
    Ok((agents, n))
}

/// Mean over the predicted agents of minADE and minFDE (over modes) against the valid
/// ground truth at the prediction steps; `None` when nothing could be compared.
pub fn scenario_errors(scenario: &Scenario, p: &ScenarioPredictions, cfg: &MetricsConfig) -> Option<(f64, f64)> {
    let by_id: HashMap<i64, &crate::scene::Track> = scenario.tracks.iter().map(|t| (t.id, t)).collect();
    let (mut ade_sum, mut fde_sum, mut n) = (0.0, 0.0, 0usize);
    for mp in &p.predictions {
        let mut best: Option<(f64, f64)> = None;
        for joint in &mp.joints {
            for traj in &joint.trajectories {
                let Some(track) = by_id.get(&traj.object_id) else { continue };
                let mut errs = Vec::new();
                for (k, (x, y)) in traj.x.iter().zip(&traj.y).enumerate() {
                    if let Some(gt) = track.states.get(cfg.track_step(k)).filter(|s| s.valid) {
                        errs.push((x - gt.x).hypot(y - gt.y));
                    }
                }
                let (Some(&last), false) = (errs.last(), errs.is_empty()) else { continue };
                let ade = errs.iter().sum::<f64>() / errs.len() as f64;
                best = Some(match best {
                    Some((a, f)) => (a.min(ade), f.min(last)),
                    None => (ade, last),
                });
            }
        }
        if let Some((a, f)) = best {
            ade_sum += a;
            fde_sum += f;
            n += 1;
        }
    }
    (n > 0).then(|| (ade_sum / n as f64, fde_sum / n as f64))
}

fn summary_markdown(report: &EvalReport) -> String {
    let mut s = format!(
        "## {} — WOMD challenge metrics\n\n{} scenarios, {} agents predicted\n\n| type | step | minADE | minFDE | MR | OR | mAP | soft mAP |\n|---|---|---|---|---|---|---|---|\n",
        report.model, report.scenarios, report.predicted_agents
    );
    for b in report.breakdowns.iter().chain(std::iter::once(&report.mean)) {
        s += &format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            b.object_type, b.measurement_step, b.min_ade, b.min_fde, b.miss_rate, b.overlap_rate, b.map, b.soft_map
        );
    }
    s
}
