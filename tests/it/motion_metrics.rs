//! WOMD motion metrics on the real sample scenario (reference/waymo.md §7 item 4) and on
//! hand-made cases.

use scenetok::eval::motion::*;
use scenetok::io::womd::read_scenarios;
use scenetok::scene::{AgentType, Scenario};

use crate::common;

fn gt_copy(scenario: &Scenario, cfg: &MetricsConfig, copies: usize) -> ScenarioPredictions {
    let predictions = scenario
        .tracks_to_predict
        .iter()
        .map(|t| {
            let track = &scenario.tracks[t.track_index];
            let steps = cfg.prediction_steps();
            let traj = PredictedTrajectory {
                object_id: track.id,
                x: (0..steps).map(|p| track.states[cfg.track_step(p)].x).collect(),
                y: (0..steps).map(|p| track.states[cfg.track_step(p)].y).collect(),
            };
            MultimodalPrediction { joints: vec![JointPrediction { trajectories: vec![traj], confidence: 0.5 }; copies] }
        })
        .collect();
    ScenarioPredictions { scenario_id: scenario.id.clone(), predictions }
}

fn present_types(s: &Scenario) -> Vec<&'static str> {
    s.tracks_to_predict
        .iter()
        .map(|t| match s.tracks[t.track_index].agent_type {
            AgentType::Vehicle => "TYPE_VEHICLE",
            AgentType::Pedestrian => "TYPE_PEDESTRIAN",
            AgentType::Cyclist => "TYPE_CYCLIST",
            _ => "other",
        })
        .collect()
}

#[test]
fn ground_truth_copies_score_perfectly_and_duplicates_hurt_map_not_soft_map() {
    let Some(samples) = common::samples() else { return };
    let scenario = read_scenarios(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap().remove(0);
    let cfg = MetricsConfig::challenge();
    let types = present_types(&scenario);

    let mut one = MotionMetrics::new(cfg.clone()).unwrap();
    one.add(&scenario, &gt_copy(&scenario, &cfg, 1)).unwrap();
    let mut six = MotionMetrics::new(cfg.clone()).unwrap();
    six.add(&scenario, &gt_copy(&scenario, &cfg, 6)).unwrap();
    let (one, six) = (one.finish(), six.finish());
    assert_eq!(one.len(), 9);
    let mut checked = 0;
    for (a, b) in one.iter().zip(&six) {
        if !types.contains(&a.object_type.as_str()) {
            continue;
        }
        checked += 1;
        assert_eq!((a.min_ade, a.min_fde, a.miss_rate), (0.0, 0.0, 0.0), "{a:?}");
        assert_eq!((a.map, a.soft_map), (1.0, 1.0), "{a:?}");
        assert_eq!(b.soft_map, 1.0, "{b:?}");
        assert!(b.map < 1.0, "duplicates must count as false positives: {b:?}");
        assert_eq!((b.min_ade, b.miss_rate), (0.0, 0.0));
    }
    assert!(checked >= 3);
}

#[test]
fn predictions_are_validated_like_upstream() {
    let Some(samples) = common::samples() else { return };
    let scenario = read_scenarios(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap().remove(0);
    let cfg = MetricsConfig::challenge();
    let m = MotionMetrics::new(cfg.clone()).unwrap();
    let good = gt_copy(&scenario, &cfg, 1);
    assert!(m.validate(&scenario, &good).is_ok());

    let mut short = good.clone();
    short.predictions[0].joints[0].trajectories[0].x.pop();
    assert!(m.validate(&scenario, &short).unwrap_err().to_string().contains("expected 16"));

    let mut stranger = good.clone();
    stranger.predictions[0].joints[0].trajectories[0].object_id = -5;
    assert!(m.validate(&scenario, &stranger).unwrap_err().to_string().contains("not in tracks_to_predict"));

    let mut missing = good.clone();
    missing.predictions.pop();
    assert!(m.validate(&scenario, &missing).unwrap_err().to_string().contains("no prediction"));

    let mut wrong_id = good;
    wrong_id.scenario_id = "x".into();
    assert!(m.validate(&scenario, &wrong_id).is_err());
}

#[test]
fn average_precision_envelope_and_tie_rule() {
    // One true positive out of one trajectory, ranked first: AP 1.
    assert_eq!(average_precision(&[(0.9, true), (0.1, false)], 1), 1.0);
    // Ranked second: precision 1/2 at recall 1.
    assert_eq!(average_precision(&[(0.9, false), (0.1, true)], 1), 0.5);
    // Ties put false positives first.
    assert_eq!(average_precision(&[(0.5, true), (0.5, false)], 1), 0.5);
    // Two trajectories, one found: recall 1/2 at precision 1.
    assert_eq!(average_precision(&[(0.8, true)], 2), 0.5);
    assert_eq!(average_precision(&[], 2), 0.0);
}

#[test]
fn config_is_checked() {
    let mut c = MetricsConfig::challenge();
    c.prediction_steps_per_second = 3;
    assert!(MotionMetrics::new(c).is_err());
    let mut c = MetricsConfig::challenge();
    c.step_configurations[0].measurement_step = 16;
    assert!(MotionMetrics::new(c).is_err());
    let c = MetricsConfig::challenge();
    assert_eq!((c.prediction_steps(), c.track_step(5), c.track_step(9), c.track_step(15)), (16, 40, 60, 90));
}

/// Generated v2 data → WOMD-shaped scenarios → baselines → metrics, end to end.
#[test]
fn scenarios_from_a_generated_dataset_evaluate() {
    use scenetok::eval::runner::{evaluate, load_scenarios};
    use scenetok::models::baselines::Baseline;
    use scenetok::sim::generate::{GenerateConfig, Preset, generate};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    (cfg.segments, cfg.frames, cfg.seed, cfg.lidar_div, cfg.camera_div) = (1, 101, 2, [16, 64], 32);
    generate(dir.path(), &cfg, |_, _| {}).unwrap();
    let scenarios = load_scenarios(dir.path(), 10).unwrap();
    assert_eq!(scenarios.len(), 2, "windows at frames 0 and 10 of 101");
    for s in &scenarios {
        assert!(!s.tracks_to_predict.is_empty() && s.tracks_to_predict.len() <= 8);
        assert!(s.tracks.iter().all(|t| t.states.len() == 91));
        let sdc = s.sdc_track_index.unwrap();
        assert!(s.tracks[sdc].states.iter().all(|st| st.valid), "the ego is seen in every frame");
        assert!(!s.map.is_empty());
        // Ground truth through the same conversion scores zero error.
        let cfgm = MetricsConfig::challenge();
        let mut m = MotionMetrics::new(cfgm.clone()).unwrap();
        m.add(s, &gt_copy(s, &cfgm, 1)).unwrap();
        assert!(m.finish().iter().all(|b| b.min_ade == 0.0 && b.miss_rate == 0.0));
    }
    let mut ade = Vec::new();
    for model in [Baseline::ConstantVelocity, Baseline::Ctra, Baseline::LaneFollower] {
        let report = evaluate(&scenarios, model).unwrap();
        assert_eq!(report.breakdowns.len(), 9);
        assert!(report.mean.min_ade > 0.0 && report.mean.min_ade.is_finite());
        ade.push(report.breakdowns[0].min_ade);
    }
    eprintln!("vehicle minADE@3s: constant velocity {:.2}, CTRA {:.2}, lane follower {:.2}", ade[0], ade[1], ade[2]);
    // Vehicles in the synthetic world follow lanes; the map-aware baseline must know it.
    assert!(ade[2] < ade[0] && ade[2] < ade[1], "{ade:?}");
}
