//! The synthetic world's behaviour: routes, reactions, the trajectory mix.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scenetok::eval::trajectory_type::{TrajectoryType, classify};
use scenetok::sim::agents::{AgentConfig, simulate};
use scenetok::sim::road::{RoadConfig, RoadNetwork};

#[test]
fn trajectory_mix_and_no_collisions() {
    let mut hist: BTreeMap<TrajectoryType, usize> = BTreeMap::new();
    let mut overlaps = 0;
    let mut pairs = 0;
    for seed in 0..3 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let net = RoadNetwork::generate(&RoadConfig::default(), &mut rng);
        let world = simulate(&net, &AgentConfig::default(), &mut rng);
        let tracks = world.tracks();
        for t in &tracks {
            for start in (0..100).step_by(10) {
                if let Some(k) = classify(&t.states[start..(start + 91).min(t.states.len())], 10) {
                    *hist.entry(k).or_default() += 1;
                }
            }
        }
        for step in (0..199).step_by(5) {
            let objs: Vec<_> = world.objects_at(step).into_iter().filter(|o| o.kind != scenetok::sim::snapshot::ObjectKind::Pedestrian).collect();
            for i in 0..objs.len() {
                for j in i + 1..objs.len() {
                    pairs += 1;
                    let (a, b) = (&objs[i].bbox, &objs[j].bbox);
                    if scenetok::geom::bev_iou(a, b) > 0.05 {
                        overlaps += 1;
                    }
                }
            }
        }
    }
    eprintln!("trajectory types: {hist:?}; overlapping pairs {overlaps} of {pairs}");
    for t in TrajectoryType::ALL {
        assert!(hist.get(&t).copied().unwrap_or(0) > 0, "no {t:?} in {hist:?}");
    }
    assert!(overlaps * 1000 < pairs, "{overlaps} overlaps of {pairs} pairs");
}
