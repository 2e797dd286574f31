//! WOMD motion metrics on the real sample scenario (docs/motion-metrics.md#sanity-checks-on-real-data) and on
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
                covariance: Vec::new(),
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
    use scenetok::models::motion::Baseline;
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
        let report = evaluate(&scenarios, model.predictor().as_ref(), "generated").unwrap();
        assert_eq!(report.breakdowns.len(), 9);
        assert!(report.mean.min_ade > 0.0 && report.mean.min_ade.is_finite());
        ade.push(report.breakdowns[0].min_ade);
        // A breakdown's mAP is the mean AP of its trajectory-type buckets.
        let mut m = MotionMetrics::new(MetricsConfig::challenge()).unwrap();
        let h = MetricsConfig::challenge().horizon();
        for s in &scenarios {
            m.add(s, &model.predictor().predict(s, &h).unwrap()).unwrap();
        }
        let buckets = m.bucket_aps();
        let scored: Vec<_> = m.finish().into_iter().filter(|b| b.map > 0.0).collect();
        assert!(!scored.is_empty());
        for b in scored {
            let aps: Vec<f64> = buckets
                .iter()
                .filter(|k| k.object_type == b.object_type && k.measurement_step == b.measurement_step)
                .map(|k| k.average_precision)
                .collect();
            assert!((aps.iter().sum::<f64>() / aps.len() as f64 - b.map).abs() < 1e-12, "{b:?}: {aps:?}");
        }
        assert!(buckets.iter().all(|k| k.true_positives <= k.trajectories && k.trajectories > 0));
    }
    eprintln!("vehicle minADE@3s: constant velocity {:.2}, CTRA {:.2}, lane follower {:.2}", ade[0], ade[1], ade[2]);
    // Vehicles in the synthetic world follow lanes; the map-aware baseline must know it.
    assert!(ade[2] < ade[0] && ade[2] < ade[1], "{ade:?}");
}

// ---------------------------------------------------------------------------------------
// Hand-computed cases with the numbers of upstream's motion_metrics_test.cc (joint
// predictions of two vehicles; 10 Hz predictions, no history, 4 future steps).

// Upstream's literal values (0.78539816, 3.14159) are kept as they are.
#[allow(clippy::approx_constant, clippy::excessive_precision)]
mod upstream_cases {
    use scenetok::eval::motion::*;
    use scenetok::scene::trajectory_type::TrajectoryType;
    use scenetok::scene::{AgentState, AgentType, DifficultyLevel, PredictionTarget, Scenario, Track};

    fn state(x: f64, y: f64, heading: f32, vx: f32, vy: f32) -> AgentState {
        AgentState { x, y, heading, velocity_x: vx, velocity_y: vy, valid: true, ..Default::default() }
    }

    fn scenario() -> Scenario {
        let diag = 0.785_398_16;
        let one = (0..5).map(|i| {
            let p = 2.0 + 2.0 * i as f64;
            if i == 0 { state(p, p, diag, 20.0, 20.0) } else { state(p, p, diag, 0.0, 0.0) }
        });
        let two = (0..5).map(|i| {
            let x = -1.0 - i as f64;
            if i == 0 { state(x, 0.0, 3.14159, -10.0, 0.0) } else { state(x, 0.0, 3.14159, 0.0, 0.0) }
        });
        let track = |id, states: Vec<AgentState>| Track {
            id,
            source_id: id.to_string(),
            agent_type: AgentType::Vehicle,
            states,
        };
        Scenario {
            id: "test".into(),
            timestamps_seconds: vec![0.1, 0.2, 0.3, 0.4, 0.5],
            current_time_index: 0,
            sdc_track_index: None,
            tracks: vec![track(1, one.collect()), track(2, two.collect())],
            tracks_to_predict: (0..2)
                .map(|i| PredictionTarget { track_index: i, difficulty: DifficultyLevel::Level1 })
                .collect(),
            objects_of_interest: Vec::new(),
            map: Vec::new(),
            dynamic_map_states: Vec::new(),
        }
    }

    fn config() -> MetricsConfig {
        MetricsConfig {
            track_steps_per_second: 10,
            prediction_steps_per_second: 10,
            track_history_samples: 0,
            track_future_samples: 4,
            speed_lower_bound: 1.4,
            speed_upper_bound: 11.0,
            speed_scale_lower: 1.0,
            speed_scale_upper: 1.0,
            step_configurations: vec![StepConfig {
                measurement_step: 3,
                lateral_miss_threshold: 1.0,
                longitudinal_miss_threshold: 2.0,
            }],
            max_predictions: 6,
        }
    }

    fn joint(one: ([f64; 4], [f64; 4]), two: ([f64; 4], [f64; 4])) -> ScenarioPredictions {
        let t = |id, (x, y): ([f64; 4], [f64; 4])| PredictedTrajectory {
            object_id: id,
            x: x.to_vec(),
            y: y.to_vec(),
            covariance: Vec::new(),
        };
        ScenarioPredictions {
            scenario_id: "test".into(),
            predictions: vec![MultimodalPrediction {
                joints: vec![JointPrediction { trajectories: vec![t(1, one), t(2, two)], confidence: 0.5 }],
            }],
        }
    }

    const ONE: ([f64; 4], [f64; 4]) = ([4.0, 6.0, 8.0, 10.0], [4.0, 6.0, 8.0, 10.0]);
    const TWO: ([f64; 4], [f64; 4]) = ([-2.0, -3.0, -4.0, -5.0], [0.0; 4]);

    fn miss_and_map(cfg: &MetricsConfig, s: &Scenario, p: &ScenarioPredictions) -> (f64, f64) {
        let mut m = MotionMetrics::new(cfg.clone()).unwrap();
        m.add(s, p).unwrap();
        let b = &m.finish()[0];
        assert_eq!((b.object_type.as_str(), b.measurement_step), ("TYPE_VEHICLE", 3));
        (b.miss_rate, b.map)
    }

    /// `ComputeMissRateNoMisses`.
    #[test]
    fn no_misses() {
        assert_eq!(miss_and_map(&config(), &scenario(), &joint(ONE, TWO)), (0.0, 1.0));
    }

    /// `ComputeMissRateLateral_2`, `ComputeMissRateLateral_1`, `ComputeMissRateLongitudinal_2`,
    /// `ComputeMissRateLongitudinal_1`, `ComputeNoMissLongitudinal_1`.
    #[test]
    fn lateral_and_longitudinal_misses() {
        let cases = [
            (joint(ONE, (TWO.0, [1.01; 4])), (1.0, 0.0)),
            (joint(([4.0, 6.0, 8.0, 9.292], [4.0, 6.0, 8.0, 10.708]), TWO), (1.0, 0.0)),
            (joint(ONE, ([-2.0, -3.0, -4.0, -7.01], [0.0; 4])), (1.0, 0.0)),
            (joint(([4.0, 6.0, 8.0, 11.415], [4.0, 6.0, 8.0, 11.415]), TWO), (1.0, 0.0)),
            (joint(([4.0, 6.0, 8.0, 11.414], [4.0, 6.0, 8.0, 11.414]), TWO), (0.0, 1.0)),
        ];
        for (i, (p, expected)) in cases.iter().enumerate() {
            assert_eq!(miss_and_map(&config(), &scenario(), p), *expected, "case {i}");
        }
    }

    /// `ComputeVelocityScalingLatitudinal`.
    #[test]
    fn velocity_scaling_lateral() {
        let mut cfg = config();
        (cfg.speed_scale_lower, cfg.speed_scale_upper, cfg.speed_lower_bound, cfg.speed_upper_bound) =
            (0.5, 1.0, 1.0, 3.0);
        let p = joint(ONE, (TWO.0, [0.0, 0.0, 0.0, 0.75]));
        let mut s = scenario();
        assert_eq!(miss_and_map(&cfg, &s, &p), (0.0, 1.0));
        for (vx, miss) in [(0.0, 1.0), (1.9999, 1.0), (2.001, 0.0)] {
            s.tracks[1].states[0].velocity_x = vx;
            s.tracks[1].states[0].velocity_y = 0.0;
            assert_eq!(miss_and_map(&cfg, &s, &p).0, miss, "speed {vx}");
        }
    }

    /// `ComputeVelocityScalingLongitudinal`: object 2 ends 1.5 m short along its heading; the
    /// 2 m threshold holds at speed 10 (scale 1), not at rest (scale 0.5: 3 m), and the speed
    /// where 1.5 / scale = 2 is 2 m/s.
    #[test]
    fn velocity_scaling_longitudinal() {
        let mut cfg = config();
        (cfg.speed_scale_lower, cfg.speed_scale_upper, cfg.speed_lower_bound, cfg.speed_upper_bound) =
            (0.5, 1.0, 1.0, 3.0);
        let p = joint(ONE, ([-2.0, -3.0, -4.0, -6.5], [0.0; 4]));
        let mut s = scenario();
        assert_eq!(miss_and_map(&cfg, &s, &p), (0.0, 1.0));
        s.tracks[1].states[0].velocity_y = 0.0;
        for (vx, miss) in [(0.0, 1.0), (1.9999, 1.0), (2.001, 0.0)] {
            s.tracks[1].states[0].velocity_x = vx;
            assert_eq!(miss_and_map(&cfg, &s, &p).0, miss, "speed {vx}");
        }
    }

    /// (object 1's (x, y), object 2's (x, y), confidence).
    type Joint = (([f64; 4], [f64; 4]), ([f64; 4], [f64; 4]), f64);

    fn two_joints(a: Joint, b: Joint) -> ScenarioPredictions {
        let mut p = joint(a.0, a.1);
        p.predictions[0].joints[0].confidence = a.2;
        let second = joint(b.0, b.1).predictions[0].joints[0].clone();
        p.predictions[0].joints.push(JointPrediction { confidence: b.2, ..second });
        p
    }

    const FAR_TWO: ([f64; 4], [f64; 4]) = ([-2.0, -3.0, -4.0, -7.01], [0.0; 4]);

    /// `ComputeNoMissLateral_2`, `TwoJointPredictionsNoMiss`, `TwoJointPredictionsMiss`.
    #[test]
    fn no_miss_lateral_and_two_joint_cases() {
        let lateral_ok = joint(([4.0, 6.0, 8.0, 9.294], [4.0, 6.0, 8.0, 10.706]), TWO);
        assert_eq!(miss_and_map(&config(), &scenario(), &lateral_ok), (0.0, 1.0));
        // The confident joint misses, the second hits: no miss, mAP 0.5.
        let p = two_joints((ONE, FAR_TWO, 0.8), (ONE, TWO, 0.5));
        assert_eq!(miss_and_map(&config(), &scenario(), &p), (0.0, 0.5));
        // Both miss.
        let p = two_joints((ONE, FAR_TWO, 0.8), (([4.0, 6.0, 8.0, 14.0], [4.0, 6.0, 8.0, 14.0]), TWO, 0.5));
        assert_eq!(miss_and_map(&config(), &scenario(), &p), (1.0, 0.0));
    }

    /// `TwoJointPredictionsObjectAndTrajectoryTypes`, with its bucket counts.
    #[test]
    fn object_and_trajectory_types_come_from_the_highest_priority_object() {
        let mut s = scenario();
        for st in &mut s.tracks[0].states {
            (st.x, st.y, st.velocity_x, st.velocity_y) = (0.0, 0.0, 0.0, 0.0);
        }
        s.tracks[1].agent_type = AgentType::Pedestrian;
        let still = ([0.0; 4], [0.0; 4]);
        let p = two_joints((still, FAR_TWO, 0.8), (still, TWO, 0.5));
        let mut m = MotionMetrics::new(config()).unwrap();
        m.add(&s, &p).unwrap();
        let out = m.finish();
        let ped = out.iter().find(|b| b.object_type == "TYPE_PEDESTRIAN").unwrap();
        assert_eq!((ped.miss_rate, ped.map), (0.0, 0.5));
        let veh = out.iter().find(|b| b.object_type == "TYPE_VEHICLE").unwrap();
        assert_eq!((veh.min_ade, veh.miss_rate, veh.map), (0.0, 0.0, 0.0), "no vehicle breakdown");
        // Upstream: no stats at all for vehicles; the STATIONARY bucket (object 1's type)
        // has no trajectory and the STRAIGHT bucket (object 2's, higher priority) has one.
        assert!(m.pr_buckets(AgentType::Vehicle, 3, false).is_none());
        let buckets = m.pr_buckets(AgentType::Pedestrian, 3, false).unwrap();
        assert_eq!(buckets[TrajectoryType::Stationary as usize].num_trajectories, 0);
        assert_eq!(buckets[TrajectoryType::Straight as usize].num_trajectories, 1);
        // The confident joint misses, the other matches: one false, then one true positive.
        assert_eq!(buckets[TrajectoryType::Straight as usize].samples, vec![(0.8f32 as f64, false), (0.5, true)]);
        let total: usize = buckets.iter().map(|b| b.num_trajectories).sum();
        assert_eq!(total, 1);
        // The same bucket as `bucket_aps` gives it: one trajectory, one true positive, AP 0.5.
        let aps = m.bucket_aps();
        let ap = aps.iter().find(|b| b.object_type == "TYPE_PEDESTRIAN" && b.measurement_step == 3).unwrap();
        assert_eq!((ap.trajectory_type, ap.trajectories, ap.true_positives), (TrajectoryType::Straight, 1, 1));
        assert_eq!(ap.average_precision, 0.5);
        assert!(aps.iter().all(|b| b.object_type == "TYPE_PEDESTRIAN"));
    }

    /// `InvalidJointPredictions`, `MissingObjectPredictions`.
    #[test]
    fn inconsistent_or_unknown_objects_are_errors() {
        let mut p = two_joints((ONE, FAR_TWO, 0.8), (([4.0, 6.0, 8.0, 14.0], [4.0, 6.0, 8.0, 14.0]), TWO, 0.5));
        p.predictions[0].joints[1].trajectories[1].object_id = 1;
        assert!(MotionMetrics::new(config()).unwrap().add(&scenario(), &p).is_err());
        let mut p = joint(ONE, FAR_TWO);
        p.predictions[0].joints[0].trajectories[0].object_id = 3;
        p.predictions[0].joints[0].trajectories[1].object_id = 4;
        assert!(MotionMetrics::new(config()).unwrap().add(&scenario(), &p).is_err());
    }

    /// `ComputeMinADE`.
    #[test]
    fn min_ade_and_min_fde() {
        let p = two_joints(
            (([4.0, 6.0, 8.0, 10.0], [0.0; 4]), ([0.0; 4], [2.0, 3.0, 4.0, 5.0]), 0.5),
            (([14.0, 16.0, 18.0, 20.0], [0.0; 4]), ([0.0; 4], [22.0, 23.0, 24.0, 25.0]), 0.5),
        );
        let mut m = MotionMetrics::new(config()).unwrap();
        m.add(&scenario(), &p).unwrap();
        let b = &m.finish()[0];
        assert!((b.min_ade - 5.97487).abs() < 1e-4, "{}", b.min_ade);
        assert!((b.min_fde - 8.53553).abs() < 1e-4, "{}", b.min_fde);
    }

    /// `ComputeMeanAveragePrecision`, `ComputeMeanAveragePrecisionEqualConfidences`.
    #[test]
    fn average_precision_cases() {
        let s = [(0.3, true), (0.7, true), (0.4, false), (0.8, true), (0.5, false), (0.2, false)];
        assert!((average_precision(&s, 4) - 0.65).abs() < 1e-4);
        let s = [(0.8, true), (0.5, false), (0.5, true), (0.5, true), (0.5, false), (0.5, false)];
        assert!((average_precision(&s, 6) - 1.0 / 3.0).abs() < 1e-4);
    }

    fn assert_curve(curve: &[PrSample], expected: &[(f64, f64)]) {
        assert_eq!(curve.len(), expected.len());
        for (i, (c, &(recall, precision))) in curve.iter().zip(expected).enumerate() {
            assert!((c.precision - precision).abs() < 1e-5, "sample {i}: precision {} vs {precision}", c.precision);
            assert!((c.recall - recall).abs() < 1e-5, "sample {i}: recall {} vs {recall}", c.recall);
        }
    }

    /// `ComputePrCurve` (expected values as upstream writes them: (recall, precision)).
    #[test]
    fn pr_curve_sorts_by_confidence() {
        let s = [(0.3, true), (0.7, false), (0.4, true), (0.8, true), (0.5, false), (0.2, true)];
        let expected = [
            (1.0 / 6.0, 1.0),
            (1.0 / 6.0, 0.5),
            (1.0 / 6.0, 1.0 / 3.0),
            (1.0 / 3.0, 0.5),
            (0.5, 3.0 / 5.0),
            (2.0 / 3.0, 2.0 / 3.0),
        ];
        assert_curve(&pr_curve(&s, s.len()), &expected);
    }

    /// `ComputePrCurveEqualConfidences`: among equal confidences false positives come first.
    #[test]
    fn pr_curve_puts_false_positives_first_on_ties() {
        let s = [(0.8, true), (0.5, false), (0.5, true), (0.5, true), (0.5, false), (0.5, false)];
        let expected = [
            (1.0 / 6.0, 1.0),
            (1.0 / 6.0, 0.5),
            (1.0 / 6.0, 1.0 / 3.0),
            (1.0 / 6.0, 1.0 / 4.0),
            (1.0 / 3.0, 2.0 / 5.0),
            (0.5, 0.5),
        ];
        assert_curve(&pr_curve(&s, s.len()), &expected);
    }

    /// Not an upstream test: upstream's confidences are float32 (`JointTrajectories.confidence`,
    /// `PredictionSample`), so two that differ only beyond float32 precision tie, and the false
    /// positive sorts first.
    #[test]
    fn confidences_tie_at_float32_precision() {
        let p = two_joints((ONE, TWO, 0.5 + 1e-12), (ONE, FAR_TWO, 0.5));
        assert_eq!(miss_and_map(&config(), &scenario(), &p), (0.0, 0.5));
    }
}

/// Other cases of upstream's motion_metrics_utils_test.cc.
mod upstream_utils_cases {
    use scenetok::eval::motion::*;
    use scenetok::io::proto::submission::submission_type::{INTERACTION_PREDICTION, MOTION_PREDICTION, UNKNOWN};

    fn empty_trajectory() -> PredictedTrajectory {
        PredictedTrajectory { object_id: 0, x: Vec::new(), y: Vec::new(), covariance: Vec::new() }
    }

    fn one_joint(trajectories: usize) -> MultimodalPrediction {
        let trajectories = (0..trajectories).map(|_| empty_trajectory()).collect();
        MultimodalPrediction { joints: vec![JointPrediction { trajectories, confidence: 0.0 }] }
    }

    /// `ValidateChallengePredictionsJoint`.
    #[test]
    fn validate_challenge_predictions_joint() {
        let mut p = ScenarioPredictions { scenario_id: String::new(), predictions: vec![one_joint(2)] };
        assert!(validate_challenge_predictions(&p, INTERACTION_PREDICTION).is_ok());
        p.predictions[0].joints[0].trajectories.push(empty_trajectory());
        assert!(validate_challenge_predictions(&p, INTERACTION_PREDICTION).is_err());
        // Not in upstream's test, but in its function: one MultimodalPrediction only.
        let two = ScenarioPredictions { scenario_id: String::new(), predictions: vec![one_joint(2), one_joint(2)] };
        assert!(validate_challenge_predictions(&two, INTERACTION_PREDICTION).is_err());
    }

    /// `ValidateChallengePredictionsSingle`.
    #[test]
    fn validate_challenge_predictions_single() {
        let mut p = ScenarioPredictions { scenario_id: String::new(), predictions: vec![one_joint(1), one_joint(1)] };
        assert!(validate_challenge_predictions(&p, MOTION_PREDICTION).is_ok());
        p.predictions[0].joints[0].trajectories.push(empty_trajectory());
        assert!(validate_challenge_predictions(&p, MOTION_PREDICTION).is_err());
        // Not in upstream's test, but in its function: the type must be one of the two.
        let ok = ScenarioPredictions { scenario_id: String::new(), predictions: vec![one_joint(1)] };
        assert!(validate_challenge_predictions(&ok, UNKNOWN).is_err());
    }

    /// `PredictionToTrackStep` and `CurrentTrackStep` (5 history samples).
    #[test]
    fn prediction_to_track_step() {
        let mut c = MetricsConfig::challenge();
        c.track_history_samples = 5;
        assert_eq!(c.track_step(1), 15);
        assert_eq!(c.horizon().history_samples, 5);
    }
}

/// Trajectory types with the point sets of upstream's motion_metrics_utils_test.cc: each must
/// classify the same at every rotation (current step 1; headings and velocities from the
/// point deltas at 10 Hz, the last state copying the one before).
mod upstream_trajectory_types {
    use scenetok::scene::AgentState;
    use scenetok::scene::trajectory_type::{TrajectoryType, TrajectoryType::*, classify};

    fn track(points: &[(f64, f64)], angle: f64) -> Vec<AgentState> {
        let (s, c) = angle.sin_cos();
        let pts: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (c * x - s * y, s * x + c * y)).collect();
        let mut states: Vec<AgentState> =
            pts.iter().map(|&(x, y)| AgentState { x, y, valid: true, ..Default::default() }).collect();
        for i in 0..pts.len() {
            let (dx, dy) = if i + 1 < pts.len() {
                (pts[i + 1].0 - pts[i].0, pts[i + 1].1 - pts[i].1)
            } else {
                (pts[i].0 - pts[i - 1].0, pts[i].1 - pts[i - 1].1)
            };
            states[i].heading = dy.atan2(dx) as f32;
            states[i].velocity_x = (dx * 10.0) as f32;
            states[i].velocity_y = (dy * 10.0) as f32;
        }
        states
    }

    fn check(points: &[(f64, f64)], expected: TrajectoryType) {
        let mut angle = -std::f64::consts::PI;
        while angle <= std::f64::consts::PI {
            assert_eq!(classify(&track(points, angle), 1), Some(expected), "rotated by {angle}");
            angle += std::f64::consts::PI / 32.0;
        }
        for angle in [0.52, -1.0] {
            assert_eq!(classify(&track(points, angle), 1), Some(expected));
        }
    }

    #[test]
    fn every_type_at_every_rotation() {
        check(&[(0.0, 0.0), (0.0, 0.1), (0.0, 0.2), (0.0, 0.3), (0.0, 0.4)], Stationary);
        check(&[(0.0, 0.0), (0.0, 1.0), (0.0, 2.0), (0.0, 3.0), (0.0, 4.0)], Straight);
        check(&[(0.0, 0.0), (-1.0, 0.05), (-2.0, 0.0), (-3.0, -0.5), (-4.0, -0.5)], Straight);
        let bend = |sign: f64| -> Vec<(f64, f64)> {
            [
                (0.0, 0.0),
                (0.0, 2.0),
                (0.0, 4.0),
                (0.5, 6.0),
                (1.5, 8.0),
                (2.0, 10.0),
                (2.5, 12.0),
                (3.0, 14.0),
                (4.0, 16.0),
                (5.0, 18.0),
                (5.5, 20.0),
            ]
            .iter()
            .map(|&(x, y)| (sign * x, y))
            .collect()
        };
        check(&bend(-1.0), StraightLeft);
        check(&bend(1.0), StraightRight);
        let turn = |sign: f64| -> Vec<(f64, f64)> {
            [
                (0.0, 0.0),
                (0.0, 2.0),
                (0.0, 4.0),
                (0.5, 6.0),
                (2.0, 8.0),
                (4.0, 10.0),
                (6.0, 12.0),
                (8.0, 14.0),
                (10.0, 16.0),
                (12.0, 18.0),
                (14.0, 20.0),
            ]
            .iter()
            .map(|&(x, y)| (sign * x, y))
            .collect()
        };
        check(&turn(1.0), RightTurn);
        check(&turn(-1.0), LeftTurn);
        let u = [
            (0.0, 0.0),
            (-2.0, 2.0),
            (-2.0, 4.0),
            (-4.0, 4.0),
            (-6.0, 2.0),
            (-7.0, 0.0),
            (-8.0, -2.0),
            (-9.0, -4.0),
            (-10.0, -6.0),
            (-12.0, -8.0),
            (-14.0, -10.0),
        ];
        check(&u, LeftUTurn);
        check(&u.map(|(x, y)| (-x, y)), RightUTurn);
        let half = [
            (0.0, 0.0),
            (-2.0, 0.0),
            (-4.0, 0.0),
            (-6.0, -2.0),
            (-6.0, -4.0),
            (-4.0, -6.0),
            (-2.0, -8.0),
            (0.0, -10.0),
            (2.0, -10.0),
        ];
        for tail in [[(4.0, -10.0), (6.0, -10.0)], [(4.0, -9.0), (6.0, -8.0)], [(4.0, -10.0), (6.0, -11.0)]] {
            let pts: Vec<(f64, f64)> = half.iter().chain(&tail).copied().collect();
            check(&pts, LeftUTurn);
            let mirrored: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (x, -y)).collect();
            check(&mirrored, RightUTurn);
        }
        // Upstream's right U-turn under 180° is not quite the mirror of the left one.
        let right_lt: Vec<(f64, f64)> = half.iter().map(|&(x, y)| (x, -y)).chain([(4.0, 11.0), (6.0, 12.0)]).collect();
        check(&right_lt, RightUTurn);
    }
}

// ---------------------------------------------------------------------------------------
// The official op on the real sample (the table).

/// Waymo's own metrics op (`metrics/ops/motion_metrics_ops.cc`, `MotionMetrics` with
/// `GetChallengeConfig()`) on `motion_data_one_scenario.tfrecord`. Objects: every track valid
/// at the current step 10, each its own prediction target (the op was given every such object
/// in `prediction_ground_truth_indices`); six modes each: the step-10 position plus the step-10
/// velocity × (1, 0.5, 1.5, 0, 0.75, 1.25) × t at t = 0.5 … 8 s, confidences 0.3, 0.2, 0.15,
/// 0.15, 0.1, 0.1. The op reads float32 tensors, so positions (ground truth and predicted)
/// are float32 here too.
mod official_op_table {
    use scenetok::eval::motion::*;
    use scenetok::io::womd::read_scenarios;
    use scenetok::scene::{AgentType, DifficultyLevel, PredictionTarget, Scenario};

    use crate::common;

    const FACTORS: [f64; 6] = [1.0, 0.5, 1.5, 0.0, 0.75, 1.25];
    const CONFIDENCES: [f32; 6] = [0.3, 0.2, 0.15, 0.15, 0.1, 0.1];

    /// (type, measurement step, minADE, minFDE, miss rate, overlap rate, mAP) from the op.
    #[rustfmt::skip]
    const TABLE: [(&str, usize, f64, f64, f64, f64, f64); 9] = [
        ("TYPE_VEHICLE", 5, 0.431358, 0.554363, 0.111111, 0.133333, 0.609929),
        ("TYPE_VEHICLE", 9, 0.602987, 0.978062, 0.129032, 0.133333, 0.563665),
        ("TYPE_VEHICLE", 15, 0.772710, 0.963475, 0.080000, 0.133333, 0.555174),
        ("TYPE_PEDESTRIAN", 5, 0.213090, 0.307108, 0.0, 0.666667, 0.750000),
        ("TYPE_PEDESTRIAN", 9, 0.284147, 0.470754, 0.0, 0.666667, 0.750000),
        ("TYPE_PEDESTRIAN", 15, 0.406935, 0.662065, 0.0, 0.666667, 0.750000),
        ("TYPE_CYCLIST", 5, 0.511216, 1.099601, 1.0, 0.0, 0.0),
        ("TYPE_CYCLIST", 9, 0.511216, 0.0, 0.0, 0.0, 0.0),
        ("TYPE_CYCLIST", 15, 0.511216, 0.0, 0.0, 0.0, 0.0),
    ];

    fn f32_round(v: f64) -> f64 {
        v as f32 as f64
    }

    /// The scenario as the op rebuilds it from its float32 ground-truth tensor, with every
    /// track valid at step 10 to predict.
    fn op_scenario(mut s: Scenario) -> Scenario {
        for t in &mut s.tracks {
            for st in &mut t.states {
                (st.x, st.y) = (f32_round(st.x), f32_round(st.y));
            }
        }
        s.tracks_to_predict = (0..s.tracks.len())
            .filter(|&i| s.tracks[i].states[10].valid)
            .map(|track_index| PredictionTarget { track_index, difficulty: DifficultyLevel::Level1 })
            .collect();
        s
    }

    fn constant_velocity_modes(s: &Scenario, cfg: &MetricsConfig) -> ScenarioPredictions {
        let predictions = s
            .tracks_to_predict
            .iter()
            .map(|t| {
                let track = &s.tracks[t.track_index];
                let now = track.states[10];
                let joints = FACTORS
                    .iter()
                    .zip(CONFIDENCES)
                    .map(|(f, c)| {
                        let t = |p: usize| 0.5 * (p + 1) as f64;
                        let steps = 0..cfg.prediction_steps();
                        let x = steps.clone().map(|p| f32_round(now.x + now.velocity_x as f64 * f * t(p))).collect();
                        let y = steps.map(|p| f32_round(now.y + now.velocity_y as f64 * f * t(p))).collect();
                        JointPrediction {
                            trajectories: vec![PredictedTrajectory {
                                object_id: track.id,
                                x,
                                y,
                                covariance: Vec::new(),
                            }],
                            confidence: c as f64,
                        }
                    })
                    .collect();
                MultimodalPrediction { joints }
            })
            .collect();
        ScenarioPredictions { scenario_id: s.id.clone(), predictions }
    }

    #[test]
    fn constant_velocity_modes_match_the_official_op() {
        let Some(samples) = common::samples() else { return };
        let raw = read_scenarios(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap().remove(0);
        let s = op_scenario(raw);
        let count = |ty| s.tracks_to_predict.iter().filter(|t| s.tracks[t.track_index].agent_type == ty).count();
        assert_eq!((count(AgentType::Vehicle), count(AgentType::Pedestrian), count(AgentType::Cyclist)), (45, 3, 2));
        // The CYCLIST rows: at the prediction steps (track steps 15, 20, …, 90) one cyclist's
        // ground truth is valid at steps 20-30, the other's at 15-40, and neither's later.
        // minADE averages over the valid steps up to the measurement step, so both count and it
        // is the same at 3, 5 and 8 s; minFDE, the miss rate and mAP need the ground truth at
        // the measurement step itself: at 3 s (step 40) only the second cyclist gives a sample
        // (a miss), at 5 and 8 s (steps 60, 90) neither does, and a metric with no sample is 0.
        // The overlap rate always takes one sample per object (here 0 of 2).
        let valid_steps: Vec<Vec<usize>> = s
            .tracks_to_predict
            .iter()
            .map(|t| &s.tracks[t.track_index])
            .filter(|t| t.agent_type == AgentType::Cyclist)
            .map(|t| (15..=90).step_by(5).filter(|&i| t.states[i].valid).collect())
            .collect();
        assert_eq!(valid_steps, [vec![20, 25, 30], vec![15, 20, 25, 30, 35, 40]]);

        let cfg = MetricsConfig::challenge();
        let mut m = MotionMetrics::new(cfg.clone()).unwrap();
        m.add(&s, &constant_velocity_modes(&s, &cfg)).unwrap();
        let out = m.finish();
        assert_eq!(out.len(), TABLE.len());
        let mut wrong = Vec::new();
        for (b, &(ty, step, ade, fde, mr, or, map)) in out.iter().zip(&TABLE) {
            assert_eq!((b.object_type.as_str(), b.measurement_step), (ty, step));
            eprintln!(
                "{ty} {step}: minADE {:.6} minFDE {:.6} MR {:.6} OR {:.6} mAP {:.6}",
                b.min_ade, b.min_fde, b.miss_rate, b.overlap_rate, b.map
            );
            let near = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol;
            if !(near(b.min_ade, ade, 1e-4)
                && near(b.min_fde, fde, 1e-4)
                && near(b.miss_rate, mr, 1e-6)
                && near(b.overlap_rate, or, 1e-6)
                && near(b.map, map, 1e-6))
            {
                wrong.push(format!("{ty} {step}: expected {:?}", (ade, fde, mr, or, map)));
            }
        }
        assert!(wrong.is_empty(), "differs from the op: {wrong:#?}");
    }
}
