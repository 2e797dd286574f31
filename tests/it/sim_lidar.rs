//! The LiDAR model: range images convert back onto the surfaces their rays hit, labels and
//! point counts match the objects, results are deterministic, and the BVH agrees with brute
//! force.

use std::sync::Arc;
use std::time::Instant;

use nalgebra::Vector3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scenetok::geom::polyline::P2;
use scenetok::geom::{range_image_to_points, transform_from_rpy_xyz};
use scenetok::scene::{Box3d, LaserName, LidarSegClass};
use scenetok::sim::bvh::{Ray, TriangleMesh};
use scenetok::sim::lidar::{LidarOptions, LidarScale, RigSim, lidar_rig, simulate_rig, top_inclinations};
use scenetok::sim::road::{RoadConfig, RoadNetwork};
use scenetok::sim::snapshot::{ObjectKind, SceneObject, Snapshot, StaticWorld, Triangle};
use scenetok::sim::static_world::{MeshBuilder, materials};

const BUILDING: ([f64; 2], [f64; 3]) = ([15.0, 10.0], [8.0, 6.0, 10.0]);
const TREE: [f64; 3] = [-12.0, -9.0, 2.2];
const TREE_RADIUS: f64 = 2.0;

fn object(instance: u32, kind: ObjectKind, c: [f64; 3], size: [f64; 3], heading: f64) -> SceneObject {
    SceneObject {
        id: format!("obj{instance}"),
        instance,
        kind,
        bbox: Box3d { center: Vector3::from(c), size: Vector3::from(size), heading },
        velocity: Vector3::zeros(),
        acceleration: Vector3::zeros(),
        color: [200, 0, 0],
    }
}

/// Ground (z = 0), a building, a tree canopy, a truck (one box: its surface is its label
/// box), a car and a pedestrian; the ego moves and turns during the sweep.
fn small_world() -> (Snapshot, LidarOptions) {
    let mut mb = MeshBuilder::default();
    let g = 100.0;
    mb.polygon(&[P2::new(-g, -g), P2::new(g, -g), P2::new(g, g), P2::new(-g, g)], 0.0, materials::ROAD);
    let ([bx, by], [bl, bw, bh]) = BUILDING;
    mb.upright_box(P2::new(bx, by), 0.0, bl, bw, 0.0, bh, materials::BUILDING);
    mb.sphere(Vector3::from(TREE), TREE_RADIUS, materials::CANOPY);
    let objects = vec![
        object(7, ObjectKind::Truck, [8.0, -3.0, 1.5], [6.0, 2.5, 3.0], 0.3),
        object(9, ObjectKind::Car, [-8.0, 2.0, 0.8], [4.5, 2.0, 1.6], 1.0),
        object(11, ObjectKind::Pedestrian, [1.0, 6.0, 0.9], [0.6, 0.7, 1.8], 0.0),
    ];
    let snapshot = Snapshot {
        timestamp_micros: 1_000_000,
        static_world: Arc::new(StaticWorld { triangles: mb.triangles }),
        objects,
        ego_pose: transform_from_rpy_xyz(0.0, 0.0, 0.1, 1.0, 0.5, 0.0),
    };
    let options = LidarOptions {
        second_return: true,
        sweep_start_pose: Some(transform_from_rpy_xyz(0.0, 0.0, 0.05, 0.0, 0.0, 0.0)),
        no_label_zones: vec![vec![P2::new(10.0, 6.0), P2::new(20.0, 6.0), P2::new(20.0, 14.0), P2::new(10.0, 14.0)]],
        ..Default::default()
    };
    (snapshot, options)
}

fn scale() -> LidarScale {
    LidarScale::divided(4, 8)
}

fn run(snapshot: &Snapshot, options: &LidarOptions, seed: u64) -> RigSim {
    let mesh = TriangleMesh::new(&snapshot.static_world);
    let rig = lidar_rig(&scale());
    simulate_rig(&mesh, snapshot, &rig, &scale(), options, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

/// Distance from `p` to the surface of an upright box.
fn box_surface_distance(p: &Vector3<f64>, b: &Box3d) -> f64 {
    let d = p - b.center;
    let (s, c) = b.heading.sin_cos();
    let local = [c * d.x + s * d.y, -s * d.x + c * d.y, d.z];
    let q: Vec<f64> = (0..3).map(|k| local[k].abs() - b.size[k] / 2.0).collect();
    let outside: f64 = q.iter().map(|v| v.max(0.0).powi(2)).sum::<f64>().sqrt();
    if outside > 0.0 { outside } else { q.iter().fold(f64::NEG_INFINITY, |a, v| a.max(*v)).abs() }
}

/// Distance from a world point to the small world's surfaces. Objects with several parts
/// count as "on" when inside their box (their exact shape is the model's business).
fn surface_distance(p: &Vector3<f64>, snapshot: &Snapshot) -> f64 {
    let ([bx, by], [bl, bw, bh]) = BUILDING;
    let building = Box3d { center: Vector3::new(bx, by, bh / 2.0), size: Vector3::new(bl, bw, bh), heading: 0.0 };
    let mut d = p.z.abs().min(box_surface_distance(p, &building));
    // The low-poly sphere's faces lie within 0.3·r of the sphere; compare to its facets.
    let r = (p - Vector3::from(TREE)).norm();
    if (TREE_RADIUS * 0.7..=TREE_RADIUS + 1e-3).contains(&r) {
        d = d.min(0.0);
    }
    for o in &snapshot.objects {
        match o.kind {
            ObjectKind::Truck => d = d.min(box_surface_distance(p, &o.bbox)),
            _ if o.bbox.contains_point(p) => d = 0.0,
            _ => {}
        }
    }
    d
}

#[test]
fn points_convert_back_onto_the_surfaces_their_rays_hit() {
    let (snapshot, options) = small_world();
    let sim = run(&snapshot, &options, 1);
    assert_eq!(sim.lasers.len(), 5);
    for laser in &sim.lasers {
        let calib = laser.calibration.as_ref().unwrap();
        let r1 = laser.return1.as_ref().unwrap();
        let [h, w] = scale().shape(laser.laser);
        assert_eq!(r1.shape(), [h, w, 4]);
        assert_eq!(laser.pose.is_some(), laser.laser == LaserName::Top, "only TOP has pixel poses");
        let cloud = range_image_to_points(r1, calib, laser.pose.as_ref(), Some(&snapshot.ego_pose)).unwrap();
        assert!(cloud.len() > h * w / 10, "{}: {} points", laser.laser, cloud.len());
        let mut worst: f64 = 0.0;
        for i in 0..cloud.len() {
            let world = snapshot.ego_pose.apply(&cloud.point(i));
            worst = worst.max(surface_distance(&world, &snapshot));
            let max = if laser.laser == LaserName::Top { 75.0 } else { 20.0 };
            assert!(cloud.range(i) < max);
        }
        assert!(worst < 0.01, "{}: a point lies {worst} m off every surface", laser.laser);
    }
}

#[test]
fn ignoring_the_pixel_pose_misplaces_top_points() {
    // The sweep moves the ego 1 m; without its pixel poses TOP's points land off the surfaces.
    let (snapshot, options) = small_world();
    let sim = run(&snapshot, &options, 1);
    let top = &sim.lasers[0];
    let cloud =
        range_image_to_points(top.return1.as_ref().unwrap(), top.calibration.as_ref().unwrap(), None, None).unwrap();
    let off = (0..cloud.len())
        .filter(|&i| surface_distance(&snapshot.ego_pose.apply(&cloud.point(i)), &snapshot) > 0.05)
        .count();
    assert!(off > cloud.len() / 10, "{off} of {} misplaced", cloud.len());
}

#[test]
fn top_segmentation_and_point_counts_match_objects() {
    let (snapshot, options) = small_world();
    let sim = run(&snapshot, &options, 1);
    let top = &sim.lasers[0];
    let seg = top.segmentation1.as_ref().unwrap();
    assert!(sim.lasers[1..].iter().all(|l| l.segmentation1.is_none()), "only TOP is labelled");
    let cloud = range_image_to_points(
        top.return1.as_ref().unwrap(),
        top.calibration.as_ref().unwrap(),
        top.pose.as_ref(),
        Some(&snapshot.ego_pose),
    )
    .unwrap();
    let mut per_instance = std::collections::BTreeMap::<i32, u32>::new();
    let mut classes = std::collections::BTreeSet::new();
    for i in 0..cloud.len() {
        let [h, w] = cloud.pixels[i];
        let (inst, class) = (seg.get(h as usize, w as usize, 0), seg.get(h as usize, w as usize, 1));
        classes.insert(class);
        let world = snapshot.ego_pose.apply(&cloud.point(i));
        if inst != 0 {
            *per_instance.entry(inst).or_default() += 1;
            let o = snapshot.objects.iter().find(|o| o.instance as i32 == inst).unwrap();
            assert_eq!(class, o.kind.lidar_class().value() as i32);
            assert!(o.bbox.contains_point(&world), "instance {inst} point outside its box");
        } else {
            assert!(
                [LidarSegClass::Road, LidarSegClass::Building, LidarSegClass::Vegetation]
                    .iter()
                    .any(|c| c.value() as i32 == class)
            );
        }
        // A point well inside the truck's box belongs to the truck.
        let mut inner = snapshot.objects[0].bbox;
        inner.size -= Vector3::new(0.1, 0.1, 0.1);
        if inner.contains_point(&world) {
            assert_eq!(inst, 7);
        }
    }
    assert!(classes.contains(&(LidarSegClass::Building.value() as i32)));
    for (i, o) in snapshot.objects.iter().enumerate() {
        let seen = per_instance.get(&(o.instance as i32)).copied().unwrap_or(0);
        assert_eq!(sim.top_points_in_box[i], seen, "{}", o.id);
        assert!(sim.points_in_box[i] >= sim.top_points_in_box[i]);
    }
    assert!(sim.top_points_in_box[0] > 10, "the truck is seen: {:?}", sim.top_points_in_box);
}

#[test]
fn second_return_nlz_and_channels() {
    let (snapshot, options) = small_world();
    let sim = run(&snapshot, &options, 1);
    let top = &sim.lasers[0];
    let (r1, r2) = (top.return1.as_ref().unwrap(), top.return2.as_ref().unwrap());
    let seg = top.segmentation1.as_ref().unwrap();
    let veg = LidarSegClass::Vegetation.value() as i32;
    let mut behind = 0;
    for h in 0..r1.height {
        for w in 0..r1.width {
            let (a, b) = (r1.get(h, w, 0), r2.get(h, w, 0));
            if b > 0.0 {
                assert_eq!(seg.get(h, w, 1), veg, "return 2 only behind vegetation");
                assert!(b > a);
                behind += 1;
            }
            if a > 0.0 {
                assert!(r1.get(h, w, 1) >= 0.0 && r1.get(h, w, 2) >= 0.0);
                let nlz = r1.get(h, w, 3);
                assert!(nlz == 1.0 || nlz == -1.0);
                // The zone holds the building and the road around it, nothing else.
                let class = seg.get(h, w, 1);
                if nlz == 1.0 {
                    assert!([LidarSegClass::Building, LidarSegClass::Road].iter().any(|c| c.value() as i32 == class));
                }
                if class == LidarSegClass::Building.value() as i32 {
                    assert_eq!(nlz, 1.0, "the building lies inside the zone");
                }
            } else {
                assert_eq!(r1.pixel(h, w), &[0.0; 4]);
            }
        }
    }
    assert!(behind > 0, "the canopy lets some rays through to a second surface");
    assert!(r1.values.chunks(4).any(|p| p[3] == 1.0), "the building is in the no-label zone");
}

#[test]
fn deterministic_for_a_seed_and_any_thread_count() {
    let (snapshot, options) = small_world();
    let a = run(&snapshot, &options, 5);
    let b = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| run(&snapshot, &options, 5));
    assert_eq!(a.lasers, b.lasers);
    assert_eq!(a.points_in_box, b.points_in_box);
    let c = run(&snapshot, &options, 6);
    assert_ne!(a.lasers[0].return1, c.lasers[0].return1, "the seed drives the intensity noise");
}

#[test]
fn rig_shapes_and_inclinations() {
    let full = LidarScale::full();
    let rig = lidar_rig(&full);
    let names: Vec<LaserName> = rig.iter().map(|c| c.laser).collect();
    assert_eq!(names, LaserName::ALL);
    assert_eq!(full.shape(LaserName::Top), [64, 2650]);
    assert_eq!(full.shape(LaserName::Rear), [200, 600]);
    let v = rig[0].beam_inclination.values.as_ref().unwrap();
    assert_eq!(v.len(), 64);
    assert!(v.windows(2).all(|w| w[1] > w[0]), "ascending");
    assert!((v[0].to_degrees() + 17.6).abs() < 1e-9 && (v[63].to_degrees() - 2.4).abs() < 1e-9);
    assert!(v[63] - v[62] < v[1] - v[0], "denser near the horizon");
    assert!((rig[0].extrinsic.translation() - Vector3::new(1.43, 0.0, 2.184)).norm() < 1e-9);
    for c in &rig[1..] {
        assert!(c.beam_inclination.values.is_none());
        assert!((c.beam_inclination.min.to_degrees() + 90.0).abs() < 1e-9);
    }
    assert_eq!(top_inclinations(8).len(), LidarScale::tiny().top[0]);
    assert_eq!(lidar_rig(&LidarScale::tiny())[0].beam_inclination.values.as_ref().unwrap().len(), 8);
}

#[test]
fn bvh_agrees_with_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut tris = Vec::new();
    for _ in 0..600 {
        let c = Vector3::new(rng.random_range(-20.0..20.0), rng.random_range(-20.0..20.0), rng.random_range(-5.0..5.0));
        let mut v =
            || c + Vector3::new(rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0));
        tris.push(Triangle { v: [v(), v(), v()], material: materials::ROAD });
    }
    let mesh = TriangleMesh::from_triangles(&tris);
    let mut hits = 0;
    for _ in 0..3000 {
        let o = [rng.random_range(-25.0..25.0), rng.random_range(-25.0..25.0), rng.random_range(-8.0..8.0)];
        let d = [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0f64)];
        let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        let ray = Ray { origin: o, dir: d.map(|x| x / n) };
        let (a, b) = (mesh.intersect(&ray, 0.0, 60.0), mesh.intersect_brute_force(&ray, 0.0, 60.0));
        assert_eq!(a.map(|h| h.t), b.map(|h| h.t), "{ray:?}");
        hits += a.is_some() as usize;
        let all = mesh.intersect_all(&ray, 0.0, 60.0);
        assert_eq!(all.first().map(|h| h.t), a.map(|h| h.t));
        assert!(all.windows(2).all(|w| w[0].t < w[1].t));
    }
    assert!(hits > 300, "{hits} hits");
}

/// One full-size frame of all five lasers on a generated 3×3 network with 80 boxes.
/// Run: `cargo test --test it sim_lidar::full_frame_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn full_frame_timing() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let net = RoadNetwork::generate(&RoadConfig::default(), &mut rng);
    let t0 = Instant::now();
    let world = StaticWorld::from_network(&net, &mut rng);
    let t_world = t0.elapsed();
    let t0 = Instant::now();
    let mesh = TriangleMesh::new(&world);
    let t_bvh = t0.elapsed();
    let kinds = [ObjectKind::Car, ObjectKind::Truck, ObjectKind::Pedestrian, ObjectKind::Cyclist, ObjectKind::Cone];
    let objects: Vec<SceneObject> = (0..80)
        .map(|i| {
            let lane = &net.lanes[rng.random_range(0..net.lanes.len())];
            let (p, h) = lane.path.pose_at(rng.random_range(0.0..lane.path.length()));
            let kind = kinds[i % kinds.len()];
            let size = match kind {
                ObjectKind::Car => [4.6, 2.0, 1.6],
                ObjectKind::Truck => [8.0, 2.6, 3.2],
                ObjectKind::Pedestrian => [0.6, 0.7, 1.8],
                ObjectKind::Cyclist => [1.8, 0.7, 1.7],
                _ => [0.4, 0.4, 0.7],
            };
            object(i as u32 + 1, kind, [p.x, p.y, size[2] / 2.0], size, h)
        })
        .collect();
    let lane = &net.lanes[0];
    let (p, h) = lane.path.pose_at(lane.path.length() / 2.0);
    let ego = transform_from_rpy_xyz(0.0, 0.0, h, p.x, p.y, 0.0);
    let start = ego.compose(&transform_from_rpy_xyz(0.0, 0.0, 0.0, -1.0, 0.0, 0.0));
    let snapshot = Snapshot { timestamp_micros: 0, static_world: Arc::new(world), objects, ego_pose: ego };
    let options = LidarOptions { second_return: true, sweep_start_pose: Some(start), ..Default::default() };
    let full = LidarScale::full();
    let rig = lidar_rig(&full);
    let mut best = f64::INFINITY;
    let mut sim = None;
    for _ in 0..3 {
        let t0 = Instant::now();
        sim = Some(simulate_rig(&mesh, &snapshot, &rig, &full, &options, &mut rng).unwrap());
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let sim = sim.unwrap();
    let points: usize =
        sim.lasers.iter().map(|l| l.return1.as_ref().unwrap().values.chunks(4).filter(|p| p[0] > 0.0).count()).sum();
    eprintln!(
        "triangles {}, world {:.3} s, bvh {:.3} s, 5 lasers best of 3 {:.3} s, {} return-1 points, {} objects seen, threads {}",
        snapshot.static_world.triangles.len(),
        t_world.as_secs_f64(),
        t_bvh.as_secs_f64(),
        best,
        points,
        sim.points_in_box.iter().filter(|c| **c > 0).count(),
        rayon::current_num_threads(),
    );
    let mut per_class = std::collections::BTreeMap::<&str, usize>::new();
    for t in &snapshot.static_world.triangles {
        *per_class.entry(t.material.lidar_class.name()).or_default() += 1;
    }
    eprintln!("triangles per class: {per_class:?}");
}

/// A truck crossing at 20 m/s is seen by each TOP column where it was when that column fired
/// (up to 2 m back along its path), not where its label box is at the snapshot time.
#[test]
fn top_sees_objects_move_during_the_sweep() {
    let (mut snapshot, options) = small_world();
    let speed = Vector3::new(0.0, 20.0, 0.0);
    snapshot.objects[0].velocity = speed;
    let sim = run(&snapshot, &options, 3);
    let frame = sim.lasers.iter().find(|l| l.laser == LaserName::Top).unwrap();
    let (ri, calib) = (frame.return1.as_ref().unwrap(), frame.calibration.as_ref().unwrap());
    let cloud = range_image_to_points(ri, calib, frame.pose.as_ref(), Some(&snapshot.ego_pose)).unwrap();
    let seg = frame.segmentation1.as_ref().unwrap();
    let width = ri.width as f64;
    let truck = &snapshot.objects[0];
    let (mut n, mut outside_label) = (0, 0);
    for i in 0..cloud.len() {
        let [h, w] = cloud.pixels[i];
        if seg.get(h as usize, w as usize, 0) != truck.instance as i32 {
            continue;
        }
        n += 1;
        let p = snapshot.ego_pose.apply(&cloud.point(i));
        let dt = -(1.0 - (w as f64 + 0.5) / width) * 0.1;
        let moved = Box3d { center: truck.bbox.center + speed * dt, ..truck.bbox };
        assert!(box_surface_distance(&p, &moved) < 0.01, "point {i} is off the truck at its firing time");
        if box_surface_distance(&p, &truck.bbox) > 0.05 {
            outside_label += 1;
        }
    }
    assert!(n > 50, "{n} truck points");
    // The skew is visible: many points are off the snapshot-time box.
    assert!(outside_label * 4 > n, "{outside_label} of {n} points off the label box");
}
