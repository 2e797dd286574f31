//! The synthetic world's motion against the real WOMD scenario: one statistics function
//! (`scenetok::eval::kinematics`) for both.

use scenetok::eval::kinematics::{KinematicReport, KinematicSamples, kinematics, table};
use scenetok::io::v2::motion::{MissingPose, segment_tracks};
use scenetok::io::v2::{Component, Dataset, FrameRequest};
use scenetok::sim::generate::{GenerateConfig, Preset, generate, segment_name, segment_world};

use crate::common;

/// The real WOMD sample scenario's statistics, or `None` without the samples.
fn real() -> Option<KinematicReport> {
    let dir = common::samples()?;
    let scenarios =
        scenetok::io::womd::read_scenarios(dir.join("womd/motion_data_one_scenario.tfrecord")).expect("sample reads");
    let mut samples = KinematicSamples::default();
    for s in &scenarios {
        samples.add_scenario(s);
    }
    Some(samples.finish())
}

/// What `generate --preset tiny --segments 2 --frames 199 --seed {seed}` simulates.
fn generated(seed: u64) -> KinematicReport {
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    cfg.segments = 2;
    cfg.frames = 199;
    cfg.seed = seed;
    let mut samples = KinematicSamples::default();
    for index in 0..cfg.segments {
        let (_, world) = segment_world(&cfg, index);
        samples.add_tracks(&world.tracks(), Some(0), 0.1);
    }
    samples.finish()
}

/// `real` and `generated` as "real / generated" for messages.
fn pair(real: f64, generated: f64) -> String {
    format!("real {real:.3}, generated {generated:.3}")
}

/// The realism check: generated worlds (`generate --preset tiny --segments 2 --frames 199`,
/// seeds 1-3) against the real WOMD scenario, statistics from one function. Generated
/// motion never exceeds what vehicles, cyclists and people can do (raw steps from the exact
/// labels), never zigzags (alternating-sign runs of acceleration or yaw rate), and its 0.5 s
/// statistics are within 2× of the real scenario's. `cargo test --test it sim_kinematics -- --nocapture` prints the table.
#[test]
fn sim_kinematics_are_physical_and_close_to_real() {
    let real = real();
    let generated: Vec<(String, KinematicReport)> = (1..=3).map(|s| (format!("seed {s}"), generated(s))).collect();
    let mut columns: Vec<(&str, &KinematicReport)> = Vec::new();
    if let Some(r) = &real {
        columns.push(("real WOMD", r));
    }
    columns.extend(generated.iter().map(|(n, r)| (n.as_str(), r)));
    eprintln!("{}", table(&columns));

    for (name, g) in &generated {
        for (kind, k) in [("vehicle", &g.vehicle), ("pedestrian", &g.pedestrian), ("cyclist", &g.cyclist)] {
            assert_eq!(k.steps_beyond_limits, 0, "{name}: {kind} steps beyond physical limits: {k:?}");
            assert_eq!(k.alternating_runs, 0, "{name}: {kind} alternating-sign runs: {k:?}");
            assert!(k.tracks > 0, "{name}: no {kind}");
        }
        assert!(g.vehicle.samples > 1000 && g.ego.samples > 50, "{name}: too little motion: {:?}", g.vehicle);
        let Some(r) = &real else { continue };
        let (rv, gv) = (&r.vehicle, &g.vehicle);
        // Within 2× both ways where the statistic measures how much agents do.
        let within = |what: &str, real: f64, generated: f64| {
            let (lo, hi) = if real < 0.0 { (2.0 * real, real / 2.0) } else { (real / 2.0, 2.0 * real) };
            assert!((lo..=hi).contains(&generated), "{name}: {what} not within 2x: {}", pair(real, generated));
        };
        within("vehicle longitudinal accel p1", rv.long_accel_p1, gv.long_accel_p1);
        within("vehicle longitudinal accel p99", rv.long_accel_p99, gv.long_accel_p99);
        within("vehicle yaw rate p99", rv.yaw_rate_p99, gv.yaw_rate_p99);
        within("vehicle lateral accel p99", rv.lat_accel_p99, gv.lat_accel_p99);
        within("pedestrian speed p50", r.pedestrian.speed_p50, g.pedestrian.speed_p50);
        within("pedestrian speed p99", r.pedestrian.speed_p99, g.pedestrian.speed_p99);
        // At most 2× where less is smoother (shares of rare events get one real sample's
        // worth of slack: the real scenario has none above 1 rad/s).
        let at_most = |what: &str, real: f64, generated: f64, slack: f64| {
            assert!(generated <= 2.0 * real + slack, "{name}: {what} above 2x: {}", pair(real, generated));
        };
        let one_sample = 1.0 / rv.samples.max(1) as f64;
        at_most("vehicle share |a_lon| > 4", rv.share_long_accel_over_4, gv.share_long_accel_over_4, one_sample);
        at_most("vehicle share yaw rate > 1", rv.share_yaw_rate_over_1, gv.share_yaw_rate_over_1, one_sample);
        at_most("vehicle jerk p99", rv.jerk_p99, gv.jerk_p99, 0.0);
        // Heading against travel includes the slip of the box centre in turns, atan(l·κ):
        // 10° for a car turning on 8 m (the map's tightest corners, `MIN_TURN_RADIUS`), more
        // for a truck or bus; what the turn does not explain (crabbing, zigzag) is held on
        // its own below.
        at_most("vehicle heading vs travel p99", rv.heading_vs_travel_p99, gv.heading_vs_travel_p99, 0.0);
        at_most("vehicle unexplained heading p99", rv.unexplained_heading_p99, gv.unexplained_heading_p99, 0.0);
        // The real scenario's ego stands still: the generated ego is held to the real
        // vehicles' lateral acceleration.
        at_most("ego lateral accel p99 (against real vehicles)", rv.lat_accel_p99, g.ego.lat_accel_p99, 0.0);
    }
}

/// Labels carry the simulated motion from the first frame on: box velocities and
/// accelerations are the simulated state's, which integrate to one another, and the
/// cameras' ego velocity (linear and angular) is the ego's; the v2 tracks of the written
/// segment pass the physical checks.
#[test]
fn sim_generated_labels_carry_the_simulated_motion() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    cfg.segments = 1;
    cfg.frames = 12;
    cfg.seed = 4;
    let manifest = generate(dir.path(), &cfg, |_, _| {}).unwrap();
    let (_, world) = segment_world(&cfg, 0);

    // The simulated states: velocity integrates to position, acceleration to velocity.
    let dt = 0.1;
    for t in std::iter::once(&world.ego).chain(&world.others) {
        for w in t.states.windows(2) {
            let (Some(a), Some(b)) = (w[0], w[1]) else { continue };
            let dv = (b.pos - a.pos) / dt - (a.vel + b.vel) / 2.0;
            let da = (b.vel - a.vel) / dt - (a.accel + b.accel) / 2.0;
            assert!(dv.norm() < 0.05 && da.norm() < 0.5, "{:?} {}: {a:?} -> {b:?}", t.kind, t.id);
        }
    }

    let ds = Dataset::open(dir.path()).unwrap();
    let segment = &manifest.segments[0];
    let request = FrameRequest::only(&[Component::LidarBox, Component::VehiclePose, Component::CameraImage]);
    let frames: Vec<_> = ds.frames(segment, &request).unwrap().map(|f| f.unwrap()).collect();
    let ego = world.ego.states[0].unwrap();
    assert!(ego.speed() > 1.0, "the ego moves at the first frame: {ego:?}");
    let (sin, cos) = (-ego.heading).sin_cos();
    let to_vehicle = |v: nalgebra::Vector2<f64>| nalgebra::Vector2::new(cos * v.x - sin * v.y, sin * v.x + cos * v.y);
    let mut moving = 0;
    for b in &frames[0].lidar_boxes {
        let t = world.others.iter().find(|t| t.id == b.object_id).expect("a simulated object");
        let s = t.states[0].unwrap();
        let (vel, acc) = (to_vehicle(s.vel), to_vehicle(s.accel));
        assert!((b.speed.xy() - vel).norm() < 1e-3, "{}: speed {:?} vs {vel:?}", b.object_id, b.speed);
        assert!((b.acceleration.xy() - acc).norm() < 1e-3, "{}: {:?} vs {acc:?}", b.object_id, b.acceleration);
        assert!(b.acceleration.norm() < 9.0, "{}: {:?}", b.object_id, b.acceleration);
        moving += (s.speed() > 1.0) as usize;
    }
    assert!(moving > 0, "moving objects are labelled with their speed at the first frame");
    for (f, frame) in frames.iter().enumerate() {
        let s = world.ego.states[f].unwrap();
        assert_eq!(frame.cameras.len(), 5);
        for c in &frame.cameras {
            let [vx, vy, vz] = c.motion.linear_velocity;
            let [wx, wy, wz] = c.motion.angular_velocity;
            assert!((vx - s.vel.x).abs() < 1e-4 && (vy - s.vel.y).abs() < 1e-4 && vz == 0.0, "frame {f}: {c:?}");
            assert!(wx == 0.0 && wy == 0.0 && (wz - s.yaw_rate).abs() < 1e-9, "frame {f}: {:?}", c.motion);
        }
    }
    assert!(
        world.ego.states.iter().take(cfg.frames).flatten().any(|s| s.yaw_rate.abs() > 1e-3),
        "the ego turns at some point, and the cameras say so"
    );

    // The written segment's tracks, through the v2 reader, by the same statistics.
    let (_, tracks) = segment_tracks(&ds, segment, MissingPose::Error).unwrap();
    let r = kinematics(&tracks, Some(0), dt);
    for k in [&r.vehicle, &r.pedestrian, &r.cyclist] {
        assert_eq!((k.steps_beyond_limits, k.alternating_runs), (0, 0), "{k:?}");
    }
    assert!(r.vehicle.samples > 0, "{:?}", r.vehicle);
}

/// Segment names depend on the seed and the index, not on a combination two runs share
/// (seed 2's second segment was seed 3's first).
#[test]
fn sim_segment_names_are_unique_across_seeds() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..200 {
        for index in 0..25 {
            let name = segment_name(seed, index);
            assert!(seen.insert(name.clone()), "seed {seed} segment {index}: {name} again");
        }
    }
    assert_ne!(segment_name(2, 1), segment_name(3, 0));
}
