use nalgebra::Vector3;

use super::*;
use crate::scene::{Box3d, DifficultyLevel};

/// Flat ground at z = −2 on a 0.5 m grid over ±30 m, a car-sized block of points with its
/// box, a cone (no box) and a NaN point.
struct Scene {
    xyz: Vec<[f32; 3]>,
    intensity: Vec<f32>,
    car: std::ops::Range<u32>,
    cone: std::ops::Range<u32>,
    boxes: Vec<LidarBox>,
}

fn lidar_box(id: &str, center: [f64; 3], size: [f64; 3], heading: f64) -> LidarBox {
    LidarBox {
        object_id: id.into(),
        bbox: Box3d { center: Vector3::from(center), size: Vector3::from(size), heading },
        kind: BoxType::Vehicle,
        num_lidar_points_in_box: 0,
        num_top_lidar_points_in_box: 0,
        speed: Vector3::zeros(),
        acceleration: Vector3::zeros(),
        detection_difficulty: DifficultyLevel::Unknown,
        tracking_difficulty: DifficultyLevel::Unknown,
    }
}

fn scene() -> Scene {
    let mut xyz = Vec::new();
    for i in 0..120 {
        for j in 0..120 {
            xyz.push([-30.0 + 0.5 * i as f32, -30.0 + 0.5 * j as f32, -2.0]);
        }
    }
    let mut intensity = vec![0.1; xyz.len()];
    // A lane marking: brighter ground in one tile.
    for (q, v) in xyz.iter().zip(&mut intensity) {
        if (6.0..11.0).contains(&q[0]) && (1.0..1.5).contains(&q[1]) {
            *v = 0.9;
        }
    }
    let car_start = xyz.len() as u32;
    // A car 4.5 × 1.8 × 1.5 centred at (10, −5), turned 30°: points on its sides and roof.
    let (s, c) = (30f32.to_radians().sin(), 30f32.to_radians().cos());
    for a in 0..10 {
        for h in 0..5 {
            for side in [-0.85f32, 0.85] {
                let (u, v) = (-2.1 + 0.45 * a as f32, side);
                xyz.push([10.0 + c * u - s * v, -5.0 + s * u + c * v, -1.7 + 0.25 * h as f32]);
            }
        }
    }
    let car = car_start..xyz.len() as u32;
    let cone_start = xyz.len() as u32;
    for k in 0..8 {
        xyz.push([-6.0 + 0.05 * (k % 2) as f32, 4.0 + 0.05 * (k / 2) as f32, -1.6 + 0.1 * k as f32]);
    }
    let cone = cone_start..xyz.len() as u32;
    xyz.push([f32::NAN, 0.0, 0.0]);
    intensity.resize(xyz.len(), 0.5);
    let boxes = vec![
        lidar_box("car", [10.0, -5.0, -1.25], [4.5, 1.8, 1.5], 30f64.to_radians()),
        // A box beyond the range: no agent.
        lidar_box("far", [200.0, 0.0, -1.0], [4.0, 2.0, 1.5], 0.0),
    ];
    Scene { xyz, intensity, car, cone, boxes }
}

fn input(s: &Scene) -> TokenInput<'_> {
    TokenInput { xyz: &s.xyz, intensity: &s.intensity, image: None, lidar: None, boxes: &s.boxes }
}

#[test]
fn a_frame_breaks_into_its_agent_the_unlabelled_cone_and_ground_tiles() {
    let s = scene();
    let out = extract(&input(&s), &TokenConfig::default());
    assert_eq!(out.count(ElementKind::Agent), 1);
    assert_eq!(out.count(ElementKind::Object), 1);
    // ±30 m of ground in 8 m tiles over a ±75 m grid: tiles 5..13 on each axis hold points,
    // the edge ones only a few rows.
    assert!(out.count(ElementKind::Ground) >= 49, "{}", out.count(ElementKind::Ground));
    let agent = &out.elements[0];
    assert_eq!(agent.kind, ElementKind::Agent);
    assert_eq!(agent.object_id.as_deref(), Some("car"));
    assert_eq!(agent.points, s.car.clone().collect::<Vec<_>>());
    assert!((agent.heading - 30f32.to_radians()).abs() < 1e-6);
    let object = &out.elements[1];
    assert_eq!(object.kind, ElementKind::Object);
    assert_eq!(object.points, s.cone.clone().collect::<Vec<_>>());
    assert!((object.center[0] + 5.975).abs() < 1e-4 && (object.center[1] - 4.075).abs() < 1e-4);
    // Its height above the ground: 0.4 to 1.1 m.
    let f = &object.features;
    assert_eq!(&f[0..3], &[0.0, 1.0, 0.0]);
    assert!((f[3] - 9f32.ln()).abs() < 1e-6);
    assert!((f[7] - 0.4).abs() < 1e-5 && (f[8] - 1.1).abs() < 1e-5, "{:?}", &f[7..9]);
    assert_eq!(f.len(), out.layout.len());
    // Ground points are in ground tiles (but for the corner tiles with < 20 points), the
    // NaN point in nothing.
    let nan = s.xyz.len() - 1;
    assert_eq!(out.assignment[nan], None);
    assert!(!out.ground[nan]);
    let ground = 0..s.car.start as usize;
    assert!(ground.clone().all(|i| out.ground[i]));
    let tiled: Vec<u32> = ground.clone().filter_map(|i| out.assignment[i]).collect();
    assert!(tiled.iter().all(|&e| out.elements[e as usize].kind == ElementKind::Ground));
    assert!(tiled.len() as f64 > 0.99 * ground.len() as f64, "{} of {}", tiled.len(), ground.len());
    // The tile with the marking is brighter.
    let bright = out.elements.iter().filter(|e| e.kind == ElementKind::Ground && e.features[10] > 0.5).count();
    assert_eq!(bright, 1);
    // Each kind nearest first.
    for w in out.elements.windows(2) {
        assert!(w[0].kind < w[1].kind || (w[0].kind == w[1].kind && w[0].distance <= w[1].distance));
    }
}

#[test]
fn the_cap_keeps_agents_then_objects_then_the_nearest_ground() {
    let s = scene();
    let cfg = TokenConfig { max_tokens: 10, ..TokenConfig::default() };
    let full = extract(&input(&s), &TokenConfig::default());
    let out = extract(&input(&s), &cfg);
    assert_eq!(out.elements.len(), 10);
    assert_eq!(out.dropped, full.elements.len() - 10);
    assert_eq!(out.elements[..10], full.elements[..10]);
    // Points of dropped tiles belong to nothing.
    let kept: usize = out.elements.iter().map(|e| e.points.len()).sum();
    assert_eq!(out.assignment.iter().flatten().count(), kept);
}

#[test]
fn pooled_point_features_follow_the_layout() {
    let s = scene();
    let n = s.xyz.len();
    // Image feature: (1, i) for points seen (every other one); LiDAR: 3 channels of 2.0.
    let image: Vec<f32> = (0..n).flat_map(|i| [1.0, i as f32]).collect();
    let seen: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    let lidar = vec![2.0; n * 3];
    let img = DenseRows { values: &image, channels: 2, valid: Some(&seen) };
    let lid = DenseRows { values: &lidar, channels: 3, valid: None };
    let inp = TokenInput { image: Some(&img), lidar: Some(&lid), ..input(&s) };
    let out = extract(&inp, &TokenConfig::default());
    assert_eq!(out.layout, FeatureLayout { image_channels: 2, lidar_channels: 3 });
    assert_eq!(out.layout.len(), 16 + 5 + 7);
    let cone = out.elements.iter().find(|e| e.kind == ElementKind::Object).unwrap();
    let f = &cone.features[out.layout.image_offset()..];
    let seen_idx: Vec<f32> = s.cone.clone().filter(|i| i % 2 == 0).map(|i| i as f32).collect();
    assert_eq!(f[0], 0.5);
    assert_eq!(f[1], 1.0);
    assert!((f[2] - seen_idx.iter().sum::<f32>() / 4.0).abs() < 1e-3);
    assert_eq!(f[3], 1.0);
    assert_eq!(f[4], *seen_idx.last().unwrap());
    assert_eq!(&cone.features[out.layout.lidar_offset()..], &[1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
}

#[test]
fn empty_and_hostile_frames_give_what_is_there() {
    let s = scene();
    // No points: the box alone, with no points and zero pooled features.
    let none = TokenInput { xyz: &[], intensity: &[], image: None, lidar: None, boxes: &s.boxes };
    let out = extract(&none, &TokenConfig::default());
    assert_eq!(out.elements.len(), 1);
    assert!(out.elements[0].points.is_empty());
    assert!(out.elements[0].features.iter().all(|v| v.is_finite()));
    // Every point NaN, an intensity array too short: nothing but the box, no panic.
    let xyz = vec![[f32::NAN; 3]; 100];
    let bad = TokenInput { xyz: &xyz, intensity: &[0.0; 3], image: None, lidar: None, boxes: &s.boxes };
    let out = extract(&bad, &TokenConfig::default());
    assert_eq!(out.elements.len(), 1);
    assert!(out.assignment.iter().all(|a| a.is_none()));
}

#[test]
fn feature_columns_for_the_ablations_keep_the_geometry_and_one_block() {
    let full = FeatureLayout { image_channels: 2, lidar_channels: 3 };
    // Full: 16 geometry, image [cov, mean×2, max×2] at 16..21, LiDAR [cov, 3, 3] at 21..28.
    assert_eq!(full.len(), 28);
    let all = full.columns_for(full).unwrap();
    assert_eq!(all, (0..28).map(Some).collect::<Vec<_>>());
    // LiDAR only: the image block shrinks to its coverage, 0 (as with no image model).
    let lidar = full.columns_for(FeatureLayout { image_channels: 0, lidar_channels: 3 }).unwrap();
    let mut want: Vec<Option<usize>> = (0..16).map(Some).collect();
    want.push(None);
    want.extend((21..28).map(Some));
    assert_eq!(lidar, want);
    assert_eq!(lidar.len(), FeatureLayout { image_channels: 0, lidar_channels: 3 }.len());
    let image = full.columns_for(FeatureLayout { image_channels: 2, lidar_channels: 0 }).unwrap();
    assert_eq!(image.len(), FeatureLayout { image_channels: 2, lidar_channels: 0 }.len());
    assert_eq!(image[16..21], [16, 17, 18, 19, 20].map(Some));
    assert_eq!(image[21], None);
    // A block the data lacks, or with other channels, cannot be made.
    let geometry_only = FeatureLayout { image_channels: 0, lidar_channels: 0 };
    assert!(geometry_only.columns_for(full).is_none());
    assert!(full.columns_for(FeatureLayout { image_channels: 4, lidar_channels: 3 }).is_none());
}
