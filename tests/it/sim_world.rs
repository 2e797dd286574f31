//! The synthetic world's behaviour: routes, reactions, the trajectory mix.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scenetok::scene::trajectory_type::{TrajectoryType, classify};
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
        let started = std::time::Instant::now();
        let world = simulate(&net, &AgentConfig::default(), &mut rng);
        eprintln!("seed {seed}: agents simulated in {:.2} s", started.elapsed().as_secs_f64());
        let tracks = world.tracks();
        for t in &tracks {
            for start in (0..100).step_by(10) {
                if let Some(k) = classify(&t.states[start..(start + 91).min(t.states.len())], 10) {
                    *hist.entry(k).or_default() += 1;
                }
            }
        }
        for step in (0..199).step_by(5) {
            let objs: Vec<_> = world
                .objects_at(step)
                .into_iter()
                .filter(|o| o.kind != scenetok::sim::snapshot::ObjectKind::Pedestrian)
                .collect();
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

/// |lateral offset| of a vehicle from the nearest lane centre going its way.
fn lane_offset(net: &RoadNetwork, x: f64, y: f64, heading: f64) -> f64 {
    let p = nalgebra::Vector2::new(x, y);
    net.lanes
        .iter()
        .filter_map(|l| {
            let (s, d) = l.path.project(&p);
            let dh = scenetok::geom::polyline::wrap(l.path.heading_at(s) - heading).abs();
            (dh < 0.8).then_some(d.abs())
        })
        .fold(f64::INFINITY, f64::min)
}

/// The unlabelled obstacles change what drivers do: near them, vehicles leave their lane
/// centres (lane changes, swerves) and slow down; without obstacles, they keep to them.
#[test]
fn unlabelled_obstacles_change_vehicle_futures() {
    use scenetok::sim::snapshot::ObjectKind;
    let (mut near, mut far) = (Vec::new(), Vec::new());
    let mut baseline = Vec::new();
    for seed in 10..14 {
        for obstacles in [8, 0] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let net = RoadNetwork::generate(&RoadConfig::default(), &mut rng);
            let cfg = AgentConfig { obstacles, parked: 0, ..AgentConfig::default() };
            let world = simulate(&net, &cfg, &mut rng);
            let obstacle_pos: Vec<_> = world
                .others
                .iter()
                .filter(|t| matches!(t.kind, ObjectKind::Cone | ObjectKind::Debris | ObjectKind::StalledTruck))
                .filter_map(|t| t.states[0].map(|s| s.pos))
                .collect();
            for t in
                world.others.iter().filter(|t| matches!(t.kind, ObjectKind::Car | ObjectKind::Truck | ObjectKind::Bus))
            {
                for s in t.states.iter().flatten().step_by(3) {
                    if s.speed() < 0.5 {
                        continue;
                    }
                    let off = lane_offset(&net, s.pos.x, s.pos.y, s.heading);
                    if obstacles == 0 {
                        baseline.push(off);
                    } else if obstacle_pos.iter().any(|o| (o - s.pos).norm() < 12.0) {
                        near.push(off);
                    } else {
                        far.push(off);
                    }
                }
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    eprintln!(
        "mean |offset from lane centre|: near obstacles {:.2} m (n={}), elsewhere {:.2} m (n={}), no obstacles {:.2} m (n={})",
        mean(&near),
        near.len(),
        mean(&far),
        far.len(),
        mean(&baseline),
        baseline.len()
    );
    assert!(near.len() > 20, "too few vehicle states near obstacles: {}", near.len());
    assert!(
        mean(&near) > 3.0 * mean(&baseline) && mean(&near) > 0.5,
        "obstacles must move vehicles off their lane centres"
    );
}
