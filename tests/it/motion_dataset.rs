//! The motion transformer's training data: generated worlds give the same scenarios as the
//! written dataset `scenetok eval` reads, shards round-trip, builds resume, splits stay
//! apart, and the real WOMD scenario becomes samples with the same code.

use std::collections::{BTreeMap, BTreeSet};

use scenetok::models::motion::dataset::{obstacle_distances, read_shard, scenario_samples, shard_rows};
use scenetok::models::motion::features::{FUTURE_STEPS, HISTORY_STEPS};
use scenetok::pipeline::export::motion_dataset::{DatasetPlan, Split, build, obstacle_footprints};
use scenetok::pipeline::{Segments, Source};
use scenetok::sim::generate::{
    GenerateConfig, Preset, generate, segment_motion_scenarios, segment_motion_scenarios_and_world,
};

use crate::common;

fn tiny(frames: usize, seed: u64) -> GenerateConfig {
    GenerateConfig { frames, seed, segments: 1, ..GenerateConfig::preset(Preset::Tiny) }
}

/// Training on sensor-free simulation is training on what evaluation reads: the scenarios
/// equal those read back from the same world written as a v2 dataset (labels in the
/// vehicle frame and back, so to float precision).
#[test]
fn sensor_free_scenarios_equal_the_written_world() {
    let cfg = tiny(100, 7);
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &cfg, |_, _| {}).unwrap();
    let read = Source::open(dir.path()).unwrap().scenarios(&Segments::All, 3).unwrap();
    let simulated = segment_motion_scenarios(&cfg, 0, 3);
    assert_eq!(read.len(), simulated.len());
    assert!(read.len() >= 3, "{} windows", read.len());
    for (a, b) in read.iter().zip(&simulated) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.tracks_to_predict, b.tracks_to_predict);
        assert_eq!(a.map.len(), b.map.len());
        assert_eq!(a.tracks.len(), b.tracks.len());
        for (s, t) in a.tracks.iter().zip(&b.tracks) {
            assert_eq!((s.id, &s.source_id, s.agent_type), (t.id, &t.source_id, t.agent_type));
            for (p, q) in s.states.iter().zip(&t.states) {
                assert_eq!(p.valid, q.valid);
                let d = [(p.x - q.x).abs(), (p.y - q.y).abs(), ((p.heading - q.heading) as f64).abs()];
                let dv = [(p.velocity_x - q.velocity_x).abs(), (p.velocity_y - q.velocity_y).abs()];
                assert!(d.iter().all(|&e| e < 1e-4) && dv.iter().all(|&e| e < 1e-3), "{p:?} vs {q:?}");
            }
        }
    }
}

/// `dataset motion` end to end: shards per world and input, samples that read back equal to
/// what was built, a second run that builds nothing, a truncated shard rebuilt, train and
/// test worlds that share no scenario, and the real WOMD scenario's agents as samples.
#[test]
fn builds_resumes_and_reads_real_scenarios() {
    let out = tempfile::tempdir().unwrap();
    let real = common::samples().map(|d| d.join("womd/motion_data_one_scenario.tfrecord"));
    let plan = DatasetPlan {
        worlds: BTreeMap::from([(Split::Train, 2), (Split::Validation, 0), (Split::Test, 1)]),
        world: tiny(110, 0),
        base_seed: 40,
        stride: 5,
        inputs: real.iter().map(|p| (p.clone(), Split::Train)).collect(),
        tokens: None,
    };
    let first = build(out.path(), &plan, None, |_| {}).unwrap();
    assert_eq!(first.shards_built, 3 + real.iter().count());
    assert_eq!(first.shards_skipped, 0);
    let train = first.samples[&Split::Train];
    let test = first.samples[&Split::Test];
    assert!(train >= 100 && test >= 40, "{train} training and {test} test samples");

    // Each world's shard holds exactly the samples of its scenarios, with how close each
    // comes to the world's unlabelled obstacles.
    let world = GenerateConfig { seed: Split::Test.seed(40), segments: 1, ..plan.world.clone() };
    let (scenarios, sim) = segment_motion_scenarios_and_world(&world, 0, 5);
    let obstacles = obstacle_footprints(&sim);
    assert!(!obstacles.is_empty(), "the tiny preset places {} obstacle groups", world.obstacles);
    let mut expected = Vec::new();
    for s in &scenarios {
        let mut samples = scenario_samples(s);
        obstacle_distances(&mut samples, s, &obstacles);
        expected.extend(samples);
    }
    assert!(expected.iter().all(|s| s.obstacle_distance_m >= 0.0 && s.obstacle_distance_m.is_finite()));
    let shard = out.path().join(&first.shards[&Split::Test][0]);
    let read = read_shard(&shard).unwrap();
    assert_eq!(read, expected);
    // Every sample: a usable current state, at least 1 s of future, every type there is.
    for s in &read {
        assert!(s.inputs.agent_valid[[0, HISTORY_STEPS - 1]]);
        assert!(s.future.valid.iter().filter(|&&v| v).count() >= 10);
        assert_eq!(s.future.xy.dim(), (FUTURE_STEPS, 2));
    }
    let types: BTreeSet<_> = read.iter().map(|s| s.agent_type).collect();
    assert!(types.len() >= 2, "{types:?}");
    assert!(read.iter().any(|s| s.eval_target));

    let ids = |split: Split| -> BTreeSet<String> {
        first.shards[&split]
            .iter()
            .flat_map(|p| read_shard(&out.path().join(p)).unwrap())
            .map(|s| s.scenario_id.split('@').next().unwrap().to_string())
            .collect()
    };
    assert!(ids(Split::Train).is_disjoint(&ids(Split::Test)));

    // Resume: nothing to build; a truncated shard is rebuilt, the same.
    let again = build(out.path(), &plan, None, |_| {}).unwrap();
    assert_eq!((again.shards_built, again.shards_skipped), (0, first.shards_built));
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    assert!(shard_rows(&shard).is_err());
    let third = build(out.path(), &plan, None, |_| {}).unwrap();
    assert_eq!(third.shards_built, 1);
    assert_eq!(read_shard(&shard).unwrap(), expected);

    if let Some(real) = &real {
        let name = format!("input0-{}.parquet", real.file_name().unwrap().to_string_lossy());
        let samples = read_shard(&out.path().join("train").join(name)).unwrap();
        let scenario = scenetok::io::womd::read_scenarios(real).unwrap().remove(0);
        // Every agent to predict of the real scenario is a sample, map pieces around it.
        let targets: BTreeSet<i64> =
            scenario.tracks_to_predict.iter().map(|t| scenario.tracks[t.track_index].id).collect();
        let got: BTreeSet<i64> = samples.iter().filter(|s| s.eval_target).map(|s| s.track_id).collect();
        assert_eq!(got, targets);
        assert!(samples.iter().all(|s| s.inputs.point_valid.iter().filter(|&&v| v).count() > 100));
    }
}
