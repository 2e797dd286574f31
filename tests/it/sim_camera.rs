//! scenetok::sim::camera: the synthetic cameras on a hand-made world (tiny resolutions), the
//! LiDAR → camera projection image, and (ignored) full-size timing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use nalgebra::Vector3;
use scenetok::Location;
use scenetok::geom::{CameraModel, rotation_of, transform_from_rpy_xyz};
use scenetok::io::image::{decode_jpeg, decode_png_u16, encode_jpeg, encode_png_u16};
use scenetok::scene::{
    Box2d, Box3d, BoxType, CameraFrame, CameraName, CameraSegClass, LidarSegClass, PanopticLabel, Transform,
};
use scenetok::sim::camera::{
    CameraObservation, CameraOptions, CameraSensor, camera_object_id, camera_projection_image, camera_rig,
};
use scenetok::sim::raster::{Rigid, rasterize};
use scenetok::sim::raster_scene::SceneFaces;
use scenetok::sim::snapshot::{Material, ObjectKind, SceneObject, Snapshot, StaticWorld, Triangle};

/// Tiny preset: 240×160 front cameras.
const SCALE: u32 = 8;

fn material(camera_class: CameraSegClass, lidar_class: LidarSegClass, color: [u8; 3]) -> Material {
    Material { lidar_class, camera_class, reflectivity: 0.3, color }
}

fn quad(out: &mut Vec<Triangle>, p: [Vector3<f64>; 4], m: Material) {
    out.push(Triangle { v: [p[0], p[1], p[2]], material: m });
    out.push(Triangle { v: [p[0], p[2], p[3]], material: m });
}

/// An axis-aligned box of quads (world frame).
fn box_quads(out: &mut Vec<Triangle>, lo: Vector3<f64>, hi: Vector3<f64>, m: Material) {
    let c = |i: usize, j: usize, k: usize| {
        Vector3::new(
            if i == 0 { lo.x } else { hi.x },
            if j == 0 { lo.y } else { hi.y },
            if k == 0 { lo.z } else { hi.z },
        )
    };
    for q in [
        [(0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)],
        [(0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1)],
        [(0, 1, 0), (1, 1, 0), (1, 1, 1), (0, 1, 1)],
        [(0, 0, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1)],
        [(1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1)],
    ] {
        quad(out, q.map(|(i, j, k)| c(i, j, k)), m);
    }
}

/// A ground grid of `n × n` cells of `cell` metres centred on `(cx, cy)`.
fn ground(out: &mut Vec<Triangle>, cx: f64, cy: f64, n: usize, cell: f64) {
    let road = material(CameraSegClass::Road, LidarSegClass::Road, [90, 90, 95]);
    let half = n as f64 * cell / 2.0;
    for i in 0..n {
        for j in 0..n {
            let (x, y) = (cx - half + i as f64 * cell, cy - half + j as f64 * cell);
            quad(
                out,
                [
                    Vector3::new(x, y, 0.0),
                    Vector3::new(x + cell, y, 0.0),
                    Vector3::new(x + cell, y + cell, 0.0),
                    Vector3::new(x, y + cell, 0.0),
                ],
                road,
            );
        }
    }
}

fn ego_pose() -> Transform {
    transform_from_rpy_xyz(0.0, 0.0, 0.3, 100.0, 50.0, 0.0)
}

fn object(id: &str, instance: u32, kind: ObjectKind, at_vehicle: [f64; 3], size: [f64; 3], yaw: f64) -> SceneObject {
    let pose = ego_pose();
    let center = pose.apply(&Vector3::new(at_vehicle[0], at_vehicle[1], at_vehicle[2]));
    SceneObject {
        id: id.to_string(),
        instance,
        kind,
        bbox: Box3d { center, size: Vector3::new(size[0], size[1], size[2]), heading: pose.yaw() + yaw },
        velocity: Vector3::zeros(),
        acceleration: Vector3::zeros(),
        color: [180, 30, 30],
    }
}

/// Ground (road) with a lane marking flush with it, a building ahead-left, and objects:
/// a car ahead, a pedestrian ahead-right, a cyclist front-left, a cone (unlabelled), a car
/// behind the ego (seen by no camera) and a truck half hidden behind the first car.
fn scene() -> Snapshot {
    let pose = ego_pose();
    let v = |x: f64, y: f64, z: f64| pose.apply(&Vector3::new(x, y, z));
    let mut tris = Vec::new();
    ground(&mut tris, 100.0, 50.0, 60, 2.0);
    let marker = material(CameraSegClass::LaneMarker, LidarSegClass::LaneMarker, [235, 235, 225]);
    quad(&mut tris, [v(3.0, 1.7, 0.0), v(60.0, 1.7, 0.0), v(60.0, 1.9, 0.0), v(3.0, 1.9, 0.0)], marker);
    let building = material(CameraSegClass::Building, LidarSegClass::Building, [160, 140, 120]);
    let (b0, b1) = (v(40.0, 12.0, 0.0), v(50.0, 22.0, 0.0));
    box_quads(
        &mut tris,
        Vector3::new(b0.x.min(b1.x), b0.y.min(b1.y), 0.0),
        Vector3::new(b0.x.max(b1.x), b0.y.max(b1.y), 12.0),
        building,
    );
    Snapshot {
        timestamp_micros: 1_500_000,
        static_world: Arc::new(StaticWorld { triangles: tris }),
        objects: vec![
            object("car_ahead", 7, ObjectKind::Car, [15.0, 0.0, 0.8], [4.5, 1.9, 1.6], 0.0),
            object("ped", 3, ObjectKind::Pedestrian, [10.0, -3.0, 0.9], [0.6, 0.6, 1.8], 0.0),
            object("cyclist", 12, ObjectKind::Cyclist, [9.0, 8.0, 0.9], [1.8, 0.7, 1.8], 0.5),
            object("cone", 20, ObjectKind::Cone, [12.0, 3.0, 0.35], [0.4, 0.4, 0.7], 0.0),
            object("car_behind", 8, ObjectKind::Car, [-15.0, 0.0, 0.8], [4.5, 1.9, 1.6], 0.0),
            object("truck_hidden", 9, ObjectKind::Truck, [30.0, 0.5, 1.5], [8.0, 2.5, 3.0], 0.0),
        ],
        ego_pose: pose,
    }
}

fn observe(snapshot: &Snapshot) -> CameraObservation {
    let sensor = CameraSensor::new(&camera_rig(SCALE), CameraOptions::for_scale(SCALE));
    sensor.observe(snapshot, &Vector3::new(5.0, 0.0, 0.0), &Vector3::zeros()).expect("observe")
}

fn frame(obs: &CameraObservation, cam: CameraName) -> &CameraFrame {
    obs.frames.iter().find(|f| f.camera == cam).expect("camera frame")
}

fn label(obs: &CameraObservation, cam: CameraName) -> &PanopticLabel {
    frame(obs, cam).segmentation.as_ref().expect("segmentation")
}

/// Pixel extent `[u0, v0, u1, v1]` (pixel edges) of a segment-wide instance in a label.
fn mask_extent(l: &PanopticLabel, global: u32) -> Option<[f64; 4]> {
    let k = l.global_instance_ids.iter().position(|&g| g == global as i32)?;
    let local = l.local_instance_ids[k] as i64;
    let mut ext: Option<[f64; 4]> = None;
    for v in 0..l.height as usize {
        for u in 0..l.width as usize {
            if l.instance_at(u, v) == Some(local) {
                let (u, v) = (u as f64, v as f64);
                ext = Some(match ext {
                    None => [u, v, u + 1.0, v + 1.0],
                    Some(e) => [e[0].min(u), e[1].min(v), e[2].max(u + 1.0), e[3].max(v + 1.0)],
                });
            }
        }
    }
    ext
}

fn iou(a: &Box2d, b: &Box2d) -> f64 {
    let (a, b) = (a.min_max(), b.min_max());
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn cameras_are_deterministic_across_thread_counts() {
    let snap = scene();
    let a = observe(&snap);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let b = pool.install(|| observe(&snap));
    assert_eq!(a, b);
    assert_eq!(a.frames.len(), 5);
    let sizes: Vec<(u32, u32)> =
        a.frames.iter().map(|f| f.calibration.as_ref().map_or((0, 0), |c| (c.width, c.height))).collect();
    assert_eq!(sizes, [(240, 160), (240, 160), (240, 160), (240, 111), (240, 111)]);
}

#[test]
fn sky_on_top_road_at_bottom_and_markings_win_over_road() {
    let obs = observe(&scene());
    let l = label(&obs, CameraName::Front);
    let (w, h) = (l.width as usize, l.height as usize);
    let count = |v: usize, c: CameraSegClass| (0..w).filter(|&u| l.class_at(u, v) == Some(c)).count();
    assert!(count(0, CameraSegClass::Sky) > w * 3 / 4, "top row mostly sky");
    assert!(count(h - 1, CameraSegClass::Road) + count(h - 1, CameraSegClass::LaneMarker) == w, "bottom row ground");
    // The lane marking is coplanar with the road and still visible.
    let markers = (0..h).map(|v| count(v, CameraSegClass::LaneMarker)).sum::<usize>();
    assert!(markers > 20, "{markers} lane-marker pixels");
    // Stuff classes carry no instance id.
    assert_eq!(l.instance_at(0, 0), Some(0));
    assert_eq!(l.instance_at(w / 2, h - 1), Some(0));
}

#[test]
fn object_ahead_is_labelled_with_class_and_instance() {
    let snap = scene();
    let obs = observe(&snap);
    let cam = &camera_rig(SCALE)[0];
    let model = CameraModel::new(cam);
    let l = label(&obs, CameraName::Front);
    // The centre of the car's rear face (vehicle frame).
    let p = model.project_vehicle_point(&Vector3::new(12.8, 0.0, 0.6)).expect("in front");
    let (u, v) = (p.u as usize, p.v as usize);
    assert_eq!(l.class_at(u, v), Some(CameraSegClass::Car));
    let local = l.instance_at(u, v).expect("instance");
    let k = l.local_instance_ids.iter().position(|&i| i as i64 == local).expect("local id listed");
    assert_eq!(l.global_instance_ids[k], 7);
    assert!(l.is_tracked[k]);
    // The cone is a stuff-like class: construction cone, no instance.
    let c = model.project_vehicle_point(&Vector3::new(11.8, 3.0, 0.3)).expect("cone");
    assert_eq!(l.class_at(c.u as usize, c.v as usize), Some(CameraSegClass::ConstructionConePole));
    assert_eq!(l.instance_at(c.u as usize, c.v as usize), Some(0));
}

#[test]
fn camera_boxes_match_instance_masks_and_projected_boxes() {
    let snap = scene();
    let obs = observe(&snap);
    let by_id: HashMap<&str, &SceneObject> = snap.objects.iter().map(|o| (o.id.as_str(), o)).collect();
    assert!(!obs.camera_boxes.is_empty());
    for b in &obs.camera_boxes {
        let assoc = obs
            .associations
            .iter()
            .find(|a| a.camera == b.camera && a.camera_object_id == b.object_id)
            .expect("every camera box is associated");
        let o = by_id[assoc.laser_object_id.as_str()];
        assert_eq!(b.object_id, camera_object_id(&o.id, b.camera));
        assert_eq!(Some(b.kind), o.kind.box_type());
        let ext = mask_extent(label(&obs, b.camera), o.instance).expect("visible mask");
        assert_eq!(b.bbox.min_max(), ext, "{} on {}", o.id, b.camera);
        let proj = obs
            .projected_lidar_boxes
            .iter()
            .find(|p| p.camera == b.camera && p.object_id == o.id)
            .expect("projected box of a visible object");
        let overlap = iou(&b.bbox, &proj.bbox);
        if o.id != "truck_hidden" {
            assert!(overlap >= 0.5, "{} on {}: IoU {overlap}", o.id, b.camera);
        } else {
            assert!(overlap > 0.0);
        }
    }
    let on = |id: &str, cam: CameraName| {
        obs.camera_boxes.iter().any(|b| b.camera == cam && b.object_id == camera_object_id(id, cam))
    };
    assert!(on("car_ahead", CameraName::Front));
    assert!(on("ped", CameraName::Front));
    assert!(on("cyclist", CameraName::FrontLeft));
    assert!(on("truck_hidden", CameraName::Front));
    // Unlabelled and unseen objects get no boxes.
    assert!(!obs.camera_boxes.iter().chain(&obs.projected_lidar_boxes).any(|b| b.object_id.starts_with("cone")));
    assert!(!obs.camera_boxes.iter().chain(&obs.projected_lidar_boxes).any(|b| b.object_id.starts_with("car_behind")));
    assert!(obs.projected_lidar_boxes.iter().all(|b| b.kind != BoxType::Unknown));
}

#[test]
fn jpeg_decodes_and_panoptic_png_round_trips() {
    let obs = observe(&scene());
    for f in &obs.frames {
        let calib = f.calibration.as_ref().expect("calibration");
        let img = decode_jpeg(&f.jpeg, &Location::default()).expect("jpeg");
        assert_eq!(img.dimensions(), (calib.width, calib.height));
        assert_eq!(f.pose, Some(ego_pose()));
        assert_eq!(f.motion.linear_velocity, [5.0, 0.0, 0.0]);
        let l = f.segmentation.as_ref().expect("label");
        assert_eq!(l.divisor, 1000);
        let png = encode_png_u16(l.width, l.height, &l.values, &Location::default()).expect("png");
        let (w, h, back) = decode_png_u16(&png, &Location::default()).expect("decode");
        assert_eq!((w, h), (l.width, l.height));
        assert_eq!(back, l.values);
    }
    // Sky is blue-ish at the top of the front image.
    let img = decode_jpeg(&frame(&obs, CameraName::Front).jpeg, &Location::default()).expect("jpeg");
    let px = img.get_pixel(120, 2).0;
    assert!(px[2] > px[0] && px[2] > 150, "{px:?}");
}

#[test]
fn projection_image_picks_the_first_two_cameras_in_waymo_order() {
    let rig = camera_rig(SCALE);
    let models: HashMap<CameraName, CameraModel> = rig.iter().map(|c| (c.camera, CameraModel::new(c))).collect();
    let at = |deg: f64| {
        let a = deg.to_radians();
        Vector3::new(20.0 * a.cos(), 20.0 * a.sin(), 1.5)
    };
    let points = vec![
        (0, 0, at(0.0)),   // FRONT only
        (0, 1, at(22.0)),  // FRONT and FRONT_LEFT
        (1, 0, at(-65.5)), // FRONT_RIGHT and SIDE_RIGHT (their narrow overlap)
        (1, 1, at(180.0)), // behind: none
        (5, 5, at(0.0)),   // outside the image: skipped
    ];
    // The slice order must not matter.
    let mut reversed = rig.clone();
    reversed.reverse();
    let img = camera_projection_image(&points, 2, 2, &reversed);
    assert_eq!(img.shape(), [2, 2, 6]);
    let expect = |h: usize, w: usize, cams: &[CameraName]| {
        let px = img.pixel(h, w);
        for (slot, cam) in cams.iter().enumerate() {
            let p = models[cam].project_vehicle_point(&points[h * 2 + w].2).expect("projects");
            assert!(p.in_image, "{cam} {h},{w} {p:?}");
            assert_eq!(px[slot * 3], cam.value() as f32, "pixel {h},{w} slot {slot}");
            assert_eq!(px[slot * 3 + 1], p.u as f32);
            assert_eq!(px[slot * 3 + 2], p.v as f32);
        }
        assert!(px[cams.len() * 3..].iter().all(|&x| x == 0.0), "pixel {h},{w}: {px:?}");
    };
    expect(0, 0, &[CameraName::Front]);
    expect(0, 1, &[CameraName::Front, CameraName::FrontLeft]);
    expect(1, 0, &[CameraName::FrontRight, CameraName::SideRight]);
    expect(1, 1, &[]);

    // Three cameras looking the same way: only the first two in Waymo order are kept.
    let mut same = rig.clone();
    for c in &mut same {
        c.extrinsic = rig[0].extrinsic;
    }
    let img = camera_projection_image(&points[..1], 1, 1, &same);
    assert_eq!(img.pixel(0, 0)[0], 1.0);
    assert_eq!(img.pixel(0, 0)[3], 2.0);
}

/// Full-size timing: five cameras on ~200k triangles and 80 objects. Run with
/// `cargo test --test it sim_camera -- --ignored --nocapture`.
#[test]
#[ignore]
fn full_size_five_cameras_timing() {
    let pose = ego_pose();
    let mut tris = Vec::new();
    ground(&mut tris, 100.0, 50.0, 250, 1.2);
    // Random buildings around (xorshift; deterministic).
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut rnd = |lo: f64, hi: f64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        lo + (s >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    };
    let building = material(CameraSegClass::Building, LidarSegClass::Building, [160, 140, 120]);
    while tris.len() < 200_000 {
        let (x, y) = (100.0 + rnd(-140.0, 140.0), 50.0 + rnd(-140.0, 140.0));
        if (x - 100.0).abs() < 12.0 || (y - 50.0).abs() < 12.0 {
            continue; // keep the roads clear
        }
        let (w, d, h) = (rnd(1.0, 8.0), rnd(1.0, 8.0), rnd(2.0, 20.0));
        box_quads(&mut tris, Vector3::new(x, y, 0.0), Vector3::new(x + w, y + d, h), building);
    }
    let kinds = [ObjectKind::Car, ObjectKind::Truck, ObjectKind::Pedestrian, ObjectKind::Cyclist, ObjectKind::Cone];
    let objects: Vec<SceneObject> = (0..80)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            let (x, y) = (rnd(-60.0, 60.0), rnd(-10.0, 10.0));
            object(&format!("o{i}"), i as u32 + 1, kind, [x, y, 0.9], [4.0, 1.8, 1.8], rnd(-0.3, 0.3))
        })
        .collect();
    let snap = Snapshot {
        timestamp_micros: 0,
        static_world: Arc::new(StaticWorld { triangles: tris }),
        objects,
        ego_pose: pose,
    };
    let t = Instant::now();
    let sensor = CameraSensor::new(&camera_rig(1), CameraOptions::default());
    let setup = t.elapsed();
    let faces = SceneFaces::new(&snap);
    {
        // The rasterizer alone (FRONT), to split render time into raster and shading.
        let cam = &sensor.cameras[0];
        let c2w = snap.ego_pose.compose(&cam.calibration.extrinsic).inverse_rigid();
        let w2c = Rigid::new(&rotation_of(&c2w), &c2w.translation());
        let t = Instant::now();
        let g = rasterize(&cam.pinhole, &w2c, &sensor.options.light, faces.len(), |i| faces.get(i));
        println!("FRONT rasterize only: {:.0} ms ({} px)", t.elapsed().as_secs_f64() * 1e3, g.face.len());
    }
    let mut render_total = 0.0;
    let mut jpeg_total = 0.0;
    for cam in &sensor.cameras {
        let t = Instant::now();
        let img = cam.render(&faces, &snap.ego_pose, &sensor.options.light);
        let render = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let rgb = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.rgb).expect("rgb");
        let jpeg = encode_jpeg(&rgb, 90).expect("jpeg");
        let enc = t.elapsed().as_secs_f64() * 1e3;
        println!("{}: render {render:.0} ms, jpeg {enc:.0} ms ({} KiB)", cam.calibration.camera, jpeg.len() / 1024);
        render_total += render;
        jpeg_total += enc;
    }
    let t = Instant::now();
    let obs = sensor.observe(&snap, &Vector3::zeros(), &Vector3::zeros()).expect("observe");
    let total = t.elapsed();
    println!(
        "{} triangles + {} objects; setup (remap tables, once) {:.0} ms; sequential render {render_total:.0} ms + jpeg {jpeg_total:.0} ms; observe() all five with labels {:.0} ms; {} camera boxes",
        snap.static_world.triangles.len(),
        snap.objects.len(),
        setup.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        obs.camera_boxes.len()
    );
}
