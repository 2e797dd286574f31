//! `scenetok generate` end to end: what it writes reads back through our reader and pyarrow,
//! and the labels agree with the sensors.

use scenetok::geom::range_image_to_points;
use scenetok::io::v2::{Component, Dataset, FrameRequest};
use scenetok::sim::generate::{GenerateConfig, Preset, generate};

use crate::common;

fn tiny(frames: usize) -> (tempfile::TempDir, scenetok::sim::generate::Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    cfg.segments = 1;
    cfg.frames = frames;
    cfg.seed = 5;
    let manifest = generate(dir.path(), &cfg, |_, _| {}).unwrap();
    (dir, manifest)
}

#[test]
fn generated_dataset_reads_back_with_consistent_labels() {
    let (dir, manifest) = tiny(4);
    assert!(dir.path().join("scenetok_manifest.json").exists());
    let ds = Dataset::open(dir.path()).unwrap();
    let seg = &manifest.segments[0];
    assert_eq!(ds.components(seg).unwrap().len(), 15, "every component plus the map");
    let frames: Vec<_> = ds.frames(seg, &FrameRequest::all()).unwrap().map(|f| f.unwrap()).collect();
    assert_eq!(frames.len(), 4);
    assert!(!ds.read_map(seg).unwrap().is_empty());
    let mut labelled = 0;
    let mut second_returns_projected = 0;
    for f in &frames {
        assert_eq!(f.lasers.len(), 5);
        assert_eq!(f.cameras.len(), 5);
        // Every box contains at least the points it says it holds.
        let mut points = Vec::new();
        for l in &f.lasers {
            let cloud = range_image_to_points(
                l.return1.as_ref().unwrap(),
                l.calibration.as_ref().unwrap(),
                l.pose.as_ref(),
                f.vehicle_pose.as_ref(),
            )
            .unwrap();
            points.extend((0..cloud.len()).map(|i| cloud.point(i)));
            assert!(l.camera_projection1.is_some());
            second_returns_projected += second_return_projection_matches_cameras(l, f);
        }
        for b in &f.lidar_boxes {
            let inside = points.iter().filter(|p| b.bbox.contains_point(p)).count() as i64;
            assert!(inside >= b.num_lidar_points_in_box, "{}: {inside} < {}", b.object_id, b.num_lidar_points_in_box);
            labelled += (b.num_lidar_points_in_box > 0) as usize;
        }
        // Projected boxes and camera boxes refer to labelled objects of this frame.
        for p in &f.projected_lidar_boxes {
            assert!(f.lidar_boxes.iter().any(|b| b.object_id == p.object_id), "{}", p.object_id);
        }
        for a in &f.associations {
            assert!(f.camera_boxes.iter().any(|c| c.object_id == a.camera_object_id && c.camera == a.camera));
            assert!(f.lidar_boxes.iter().any(|b| b.object_id == a.laser_object_id));
        }
        for c in &f.cameras {
            let img = scenetok::io::image::decode_jpeg(&c.jpeg, &Default::default()).unwrap();
            let cal = c.calibration.as_ref().unwrap();
            assert_eq!((img.width(), img.height()), (cal.width, cal.height));
        }
    }
    assert!(labelled > 0, "some boxes hold lidar points");
    assert!(second_returns_projected > 0, "second returns through vegetation reach the cameras");
}

/// Checks a laser's second-return `lidar_camera_projection` against its second-return points
/// projected by the camera models; returns how many points some camera sees.
fn second_return_projection_matches_cameras(l: &scenetok::scene::LaserFrame, f: &scenetok::scene::Frame) -> usize {
    let (Some(ri), Some(proj)) = (&l.return2, &l.camera_projection2) else {
        assert!(
            l.return2.is_none() && l.camera_projection2.is_none(),
            "{}: a second return needs its projection",
            l.laser
        );
        return 0;
    };
    assert_eq!((proj.height, proj.width), (ri.height, ri.width));
    let cloud =
        range_image_to_points(ri, l.calibration.as_ref().unwrap(), l.pose.as_ref(), f.vehicle_pose.as_ref()).unwrap();
    let models: Vec<_> = f
        .cameras
        .iter()
        .filter_map(|c| c.calibration.as_ref())
        .map(|c| (c.camera, scenetok::geom::CameraModel::new(c)))
        .collect();
    let mut seen = 0;
    for i in 0..cloud.len() {
        let [h, w] = cloud.pixels[i];
        let (h, w) = (h as usize, w as usize);
        let camera = proj.get(h, w, 0);
        if camera == 0.0 {
            continue;
        }
        let (_, model) = models.iter().find(|(n, _)| n.value() as f32 == camera).expect("a known camera");
        let p = model.project_vehicle_point(&cloud.point(i)).expect("the projected point is in front of its camera");
        assert!((p.u as f32 - proj.get(h, w, 1)).abs() < 0.01 && (p.v as f32 - proj.get(h, w, 2)).abs() < 0.01);
        seen += 1;
    }
    // Pixels without a second return project nowhere.
    let projected =
        (0..ri.height).flat_map(|h| (0..ri.width).map(move |w| (h, w))).filter(|&(h, w)| proj.get(h, w, 0) != 0.0);
    assert_eq!(projected.count(), seen, "{}: projections only for second-return points", l.laser);
    seen
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let (a, ma) = tiny(2);
    let (b, mb) = tiny(2);
    assert_eq!(ma.segments, mb.segments);
    for comp in [Component::Lidar, Component::CameraImage, Component::LidarBox, Component::MapFeature] {
        let pa = scenetok::io::v2::component_path(a.path(), comp, &ma.segments[0]);
        let pb = scenetok::io::v2::component_path(b.path(), comp, &mb.segments[0]);
        assert_eq!(std::fs::read(pa).unwrap(), std::fs::read(pb).unwrap(), "{comp} differs between runs");
    }
}

#[test]
fn pyarrow_reads_generated_data_with_official_names() {
    let Some(py) = common::python_with("pyarrow") else { return };
    let (dir, _) = tiny(2);
    let script = r#"
import sys, pathlib, pyarrow.parquet as pq
root = pathlib.Path(sys.argv[1])
t = pq.read_table(next((root / "lidar").glob("*.parquet")))
assert t.schema.field("[LiDARComponent].range_image_return1.values").type.value_type.bit_width == 32
row = t.slice(0, 1).to_pylist()[0]
h, w, c = row["[LiDARComponent].range_image_return1.shape"]
assert len(row["[LiDARComponent].range_image_return1.values"]) == h * w * c
b = pq.read_table(next((root / "lidar_box").glob("*.parquet")))
assert str(b.schema.field("[LiDARBoxComponent].type").type) == "int8"
print(t.num_rows, b.num_rows)
"#;
    let out = std::process::Command::new(py).args(["-c", script]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `scenetok bench io` end to end: every run converts the same points, and the NumPy port of
/// docs/geometry.md's range image → points (with and without polar features) makes exactly those points.
#[test]
fn bench_io_agrees_with_the_numpy_port() {
    let (dir, _) = tiny(2);
    let python = common::python_with("pyarrow");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench/io_baseline.py");
    // Waymo's TensorFlow baseline is optional and never needed by the tests.
    let opts = scenetok::bench::io::IoOptions {
        python: python.clone(),
        script,
        waymo: scenetok::bench::io::WaymoBaseline::NotInstalled,
        runs: 2,
    };
    let result = scenetok::bench::io::run(dir.path(), &opts).unwrap();
    assert_eq!(result.runs.len(), 2);
    let first = &result.runs[0];
    assert!(first.frames == 2 && first.points > 1000, "{first:?}");
    assert!(first.passes_agree, "{first:?}");
    assert_eq!((result.runs[1].points, result.runs[1].coord_sum), (first.points, first.coord_sum));
    let report = result.report();
    assert!(report.contains("range image → points, scenetok 1 thread"), "{report}");
    assert!(report.contains("the same in every run and pass"), "{report}");
    assert!(report.contains("not installed: run tools/bench/setup-waymo.sh"), "{report}");
    if python.is_some() {
        assert!(first.baseline.is_some() && !report.contains("DISAGREE"), "{report}");
        // float64 and float32, each with and without keep_polar_features.
        assert_eq!(report.matches("agree in 2/2 runs").count(), 4, "{report}");
        assert!(report.contains("NumPy 1 thread"), "{report}");
    }
}
