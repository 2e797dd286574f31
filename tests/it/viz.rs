//! rerun recordings read back with the rerun SDK 0.36.3 (`tools/rrd_summary.py`): entity
//! paths, component types and counts match what was logged, for a generated segment, the real
//! v1 pvps frame and the real WOMD scenario.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use scenetok::geom::range_image_to_points;
use scenetok::io::v2::{Dataset, FrameRequest};
use scenetok::scene::MapFeatureKind;
use scenetok::sim::generate::{GenerateConfig, Preset, generate};
use scenetok::viz::{self, Layout, VizOptions, VizSink};
use serde_json::Value;

use crate::common;

/// Reads an .rrd back through the Python SDK; `None` (skip) without the tools.
pub fn read_back(rrd: &Path) -> Option<Value> {
    let py = common::python_with("rerun")?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/rrd_summary.py");
    let out = std::process::Command::new(py).arg(script).arg(rrd).output().unwrap();
    assert!(out.status.success(), "rrd_summary failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

pub fn entity<'a>(summary: &'a Value, path: &str) -> &'a Value {
    let e = &summary["entities"][path];
    assert!(e.is_object(), "entity {path} missing; have {:?}", summary["entities"].as_object().unwrap().keys());
    e
}

/// (component type, rows, instances) of one component of an entity.
fn component(summary: &Value, path: &str, component: &str) -> (String, u64, u64) {
    let c = &entity(summary, path)["components"][component];
    assert!(c.is_object(), "{path}: component {component} missing; have {:?}", entity(summary, path)["components"]);
    (c["type"].as_str().unwrap_or("").to_string(), c["rows"].as_u64().unwrap(), c["instances"].as_u64().unwrap())
}

fn record(name: &str, rrd: &Path, layout: Layout, f: impl FnOnce(&rerun::RecordingStream)) {
    let rec = viz::open_recording(name, &VizSink::Save(rrd.to_path_buf()), layout).unwrap();
    f(&rec);
    rec.finish().unwrap();
}

#[test]
fn generated_segment_recording_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    (cfg.segments, cfg.frames, cfg.seed) = (1, 3, 7);
    let manifest = generate(&dir.path().join("world"), &cfg, |_, _| {}).unwrap();
    let ds = Dataset::open(dir.path().join("world")).unwrap();
    let seg = &manifest.segments[0];

    // What the recording must hold, computed independently of the viz module.
    let frames: Vec<_> = ds.frames(seg, &FrameRequest::all()).unwrap().map(|f| f.unwrap()).collect();
    let mut points: BTreeMap<String, u64> = BTreeMap::new();
    for f in &frames {
        for l in &f.lasers {
            let cloud = range_image_to_points(
                l.return1.as_ref().unwrap(),
                l.calibration.as_ref().unwrap(),
                l.pose.as_ref(),
                f.vehicle_pose.as_ref(),
            )
            .unwrap();
            *points.entry(l.laser.name().to_string()).or_default() += cloud.len() as u64;
        }
    }
    let boxes: u64 = frames.iter().map(|f| f.lidar_boxes.len() as u64).sum();
    let map = ds.read_map(seg).unwrap();
    let lanes = map.iter().filter(|m| m.feature_type.kind() == MapFeatureKind::Lane && m.polyline.len() >= 2).count();

    let rrd = dir.path().join("rec.rrd");
    let mut summary = None;
    record("generated", &rrd, Layout::Perception, |rec| {
        let source = scenetok::pipeline::Source::open(&dir.path().join("world")).unwrap();
        summary = Some(viz::record_source(&source, &VizOptions::default(), rec).unwrap());
    });
    let summary = summary.unwrap();
    assert_eq!(summary.frames, 3);
    assert_eq!(summary.points as u64, points.values().sum::<u64>());
    assert_eq!(summary.images, 15);
    assert_eq!(summary.panoptic_labels, 15);

    let Some(s) = read_back(&rrd) else { return };
    assert_eq!(s["recordings"], 1);
    assert_eq!(s["blueprints"], 1, "the layout travels with the recording");
    assert_eq!(s["application_ids"], serde_json::json!(["scenetok"]));
    assert!(s["blueprint_entities"].as_array().unwrap().iter().any(|e| e == "/viewport"));

    assert_eq!(component(&s, "/world", "ViewCoordinates:xyz").0, "rerun.components.ViewCoordinates");
    let ego = entity(&s, "/world/ego");
    assert_eq!(ego["rows"], 3, "one vehicle pose per frame");
    assert_eq!(ego["timelines"], serde_json::json!(["frame", "timestamp"]));
    assert_eq!(component(&s, "/world/ego", "Transform3D:quaternion"), ("rerun.components.RotationQuat".into(), 3, 3));
    for (laser, n) in &points {
        assert_eq!(entity(&s, &format!("/world/ego/lidar/{laser}"))["static_rows"], 1, "{laser} extrinsic");
        let (ty, rows, inst) = component(&s, &format!("/world/ego/points/{laser}"), "Points3D:positions");
        assert_eq!((ty.as_str(), rows, inst), ("rerun.components.Position3D", 3, *n), "{laser} points");
        assert_eq!(component(&s, &format!("/world/ego/points/{laser}"), "Points3D:colors").2, *n);
        let (ty, rows, _) = component(&s, &format!("/range_images/{laser}"), "DepthImage:buffer");
        assert_eq!((ty.as_str(), rows), ("rerun.components.ImageBuffer", 3));
    }
    // TOP carries the segmentation classes, one per point, with the 23-class context.
    assert_eq!(component(&s, "/world/ego/points/TOP", "Points3D:class_ids").2, points["TOP"]);
    assert_eq!(component(&s, "/world/ego/points", "AnnotationContext:context").0, "rerun.components.AnnotationContext");
    for cam in ["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT"] {
        let p = format!("/world/ego/cameras/{cam}");
        assert_eq!(component(&s, &p, "Pinhole:image_from_camera").0, "rerun.components.PinholeProjection");
        assert_eq!(component(&s, &p, "Pinhole:camera_xyz").0, "rerun.components.ViewCoordinates");
        assert_eq!(component(&s, &p, "Transform3D:translation").1, 1);
        assert_eq!(component(&s, &format!("{p}/image"), "EncodedImage:blob"), ("rerun.components.Blob".into(), 3, 3));
        let (ty, rows, _) = component(&s, &format!("{p}/segmentation"), "SegmentationImage:buffer");
        assert_eq!((ty.as_str(), rows), ("rerun.components.ImageBuffer", 3));
        assert_eq!(component(&s, &format!("{p}/segmentation"), "AnnotationContext:context").1, 1);
    }
    assert_eq!(
        component(&s, "/world/ego/boxes", "Boxes3D:half_sizes"),
        ("rerun.components.HalfSize3D".into(), 3, boxes)
    );
    assert_eq!(component(&s, "/world/ego/boxes", "Boxes3D:class_ids").2, boxes);
    assert_eq!(component(&s, "/world/ego/boxes", "Boxes3D:labels").2, boxes);
    assert_eq!(
        component(&s, "/world/map/lanes", "LineStrips3D:strips"),
        ("rerun.components.LineStrip3D".into(), 1, lanes as u64)
    );
    assert_eq!(entity(&s, "/world/map/lanes")["static_rows"], 1);
    assert_eq!(component(&s, "/world/tracks", "LineStrips3D:strips").0, "rerun.components.LineStrip3D");
    assert_eq!(component(&s, "/metrics/points/TOP", "Scalars:scalars"), ("rerun.components.Scalar".into(), 3, 3));
}

#[test]
fn real_pvps_frame_recording_reads_back() {
    let Some(samples) = common::samples() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rrd = dir.path().join("pvps.rrd");
    let frames = scenetok::io::v1::open_frames(samples.join("v1/pvps_data_one_frame.tfrecord")).unwrap();
    let mut summary = None;
    record("pvps", &rrd, Layout::Perception, |rec| {
        summary = Some(viz::record_frames(frames, &VizOptions::default(), rec).unwrap());
    });
    let summary = summary.unwrap();
    assert_eq!((summary.frames, summary.images, summary.panoptic_labels, summary.lidar_boxes), (1, 5, 5, 75));
    let Some(s) = read_back(&rrd) else { return };
    assert_eq!(component(&s, "/world/ego/boxes", "Boxes3D:centers").2, 75);
    let projected: u64 = ["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT"]
        .iter()
        .map(|c| component(&s, &format!("/world/ego/cameras/{c}/projected_boxes"), "Boxes2D:centers").2)
        .sum();
    assert_eq!(projected, 62, "the sample's projected lidar labels");
    for cam in ["FRONT", "SIDE_RIGHT"] {
        assert_eq!(component(&s, &format!("/world/ego/cameras/{cam}/image"), "EncodedImage:blob").1, 1);
        assert_eq!(component(&s, &format!("/world/ego/cameras/{cam}/segmentation"), "SegmentationImage:format").1, 1);
    }
}

#[test]
fn real_womd_scenario_with_predictions_reads_back() {
    use scenetok::eval::runner::evaluate;
    use scenetok::models::motion::Baseline;
    let Some(samples) = common::samples() else { return };
    let scenarios = scenetok::io::womd::read_scenarios(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap();
    let report = evaluate(&scenarios, Baseline::Ctra.predictor().as_ref(), "womd").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rrd = dir.path().join("womd.rrd");
    let mut counts = None;
    record("womd", &rrd, Layout::Motion, |rec| {
        counts = Some(viz::record_motion(rec, &scenarios, &[viz::MotionRun::from_report(&report)]).unwrap());
    });
    let counts = counts.unwrap();
    assert_eq!((counts.scenarios, counts.steps, counts.predicted_agents), (1, 91, 3));
    let modes: usize = report.predictions[0].predictions.iter().map(|p| p.joints.len()).sum();
    assert_eq!(counts.modes, modes);
    let Some(s) = read_back(&rrd) else { return };
    assert_eq!(component(&s, "/world/motion/agents", "Boxes3D:centers").1, 91, "agents at every step");
    assert_eq!(entity(&s, "/world/motion/agents")["timelines"], serde_json::json!(["scenario", "scenario_time"]));
    let (ty, rows, inst) = component(&s, "/world/motion/predictions/ctra", "LineStrips3D:strips");
    assert_eq!((ty.as_str(), rows, inst), ("rerun.components.LineStrip3D", 1, modes as u64));
    assert_eq!(component(&s, "/world/motion/predictions/ctra", "LineStrips3D:colors").2, modes as u64);
    assert_eq!(component(&s, "/world/motion/future_gt", "LineStrips3D:strips").2, 3);
    assert_eq!(component(&s, "/metrics/ctra/minADE", "Scalars:scalars").1, 1);
    assert_eq!(component(&s, "/metrics/summary", "TextDocument:text").1, 1);
    let map: u64 = ["lanes", "road_lines", "road_edges", "crosswalks", "speed_bumps", "driveways"]
        .iter()
        .filter(|k| s["entities"].get(format!("/world/motion/map/{k}")).is_some())
        .map(|k| component(&s, &format!("/world/motion/map/{k}"), "LineStrips3D:strips").2)
        .sum();
    let stop_signs = s["entities"]
        .get("/world/motion/map/stop_signs")
        .map_or(0, |_| component(&s, "/world/motion/map/stop_signs", "Points3D:positions").2);
    let expected = scenarios[0]
        .map
        .iter()
        .filter(|m| {
            m.polyline.len() >= 2 || (m.feature_type.kind() == MapFeatureKind::StopSign && !m.polyline.is_empty())
        })
        .count() as u64;
    assert_eq!(map + stop_signs, expected, "every map feature with geometry");
}

/// `scenetok viz --model transformer`: the learned model's six modes per agent and their
/// uncertainty ellipses join the recording beside a baseline's, with its metrics, from the
/// shipped weights.
#[test]
fn viz_command_records_the_transformer_beside_a_baseline() {
    let Some(samples) = common::samples() else { return };
    let womd = samples.join("womd/motion_data_one_scenario.tfrecord");
    let dir = tempfile::tempdir().unwrap();
    let rrd = dir.path().join("womd.rrd");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scenetok"))
        .args(["viz", "--data"])
        .arg(&womd)
        .args(["--model", "ctra", "--model", "transformer", "--save"])
        .arg(&rrd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "viz failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    // 3 agents to predict, by each of the two models: 6 modes each.
    assert!(stdout.contains("logged 1 scenario(s), 91 steps, 6 predicted agents, 36 modes"), "{stdout}");
    let Some(s) = read_back(&rrd) else { return };
    let (ty, rows, inst) = component(&s, "/world/motion/predictions/transformer", "LineStrips3D:strips");
    assert_eq!((ty.as_str(), rows, inst), ("rerun.components.LineStrip3D", 1, 18));
    assert_eq!(component(&s, "/world/motion/predictions/ctra", "LineStrips3D:strips").2, 18);
    assert_eq!(component(&s, "/metrics/transformer/minADE", "Scalars:scalars").1, 1);
    // 1-σ ellipses at 2, 4, 6 and 8 s of every transformer mode; none for the baseline.
    assert_eq!(component(&s, "/world/motion/predictions/transformer/uncertainty", "LineStrips3D:strips").2, 18 * 4);
    assert!(s["entities"].get("/world/motion/predictions/ctra/uncertainty").is_none());
}

/// `--connect`: the recording streams over gRPC to a running receiver (`rerun --save`, the
/// headless viewer of the same version), which writes what it got.
#[test]
fn connect_streams_to_a_running_receiver() {
    let Some(samples) = common::samples() else { return };
    if common::python_with("rerun").is_none() {
        return;
    }
    // The viewer binary itself: `.venv/bin/rerun` is a Python wrapper whose child would
    // outlive a kill.
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let viewer = std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/rerun_sdk/rerun_cli/rerun"))
        .find(|p| p.exists())
        .expect("the rerun viewer binary in .venv");
    let dir = tempfile::tempdir().unwrap();
    let received = dir.path().join("received.rrd");
    // A port of our own, away from the default 9876 a user's viewer may hold.
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut receiver = std::process::Command::new(viewer)
        .args(["--port", &port.to_string(), "--save"])
        .arg(&received)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scenarios = scenetok::io::womd::read_scenarios(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap();
    let mut result = None;
    for _ in 0..50 {
        // The receiver needs a moment to listen; connecting retries, flushing tells.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let sink = VizSink::Connect(format!("127.0.0.1:{port}"));
        let Ok(rec) = viz::open_recording("connect", &sink, Layout::Motion) else { continue };
        let counts = viz::record_motion(&rec, &scenarios, &[]).unwrap();
        if rec.flush_with_timeout(std::time::Duration::from_secs(10)).is_ok() {
            result = Some(counts);
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SIGTERM (not Child::kill's SIGKILL), so the receiver finishes its file.
    let _ = std::process::Command::new("kill").arg(receiver.id().to_string()).status();
    receiver.wait().unwrap();
    assert_eq!(result.expect("streamed to the receiver").steps, 91);
    let Some(s) = read_back(&received) else { return };
    assert_eq!(component(&s, "/world/motion/agents", "Boxes3D:centers").1, 91);
}

/// `VizOptions::tokens` logs every frame's scene elements: the points of the elements,
/// the agents and objects as boxes and the ground tiles, as many as the extraction gives.
#[test]
fn scene_elements_are_logged_beside_the_frame() {
    use scenetok::models::scene_tokens::{ElementKind, TokenConfig, TokenInput, extract};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    (cfg.segments, cfg.frames, cfg.seed, cfg.lidar_div) = (1, 2, 7, [2, 2]);
    let manifest = generate(&dir.path().join("world"), &cfg, |_, _| {}).unwrap();
    let ds = Dataset::open(dir.path().join("world")).unwrap();
    let frames: Vec<_> = ds.frames(&manifest.segments[0], &FrameRequest::all()).unwrap().map(|f| f.unwrap()).collect();
    // The elements computed here, from the same first returns.
    let (mut solid, mut ground, mut points) = (0u64, 0u64, 0u64);
    for f in &frames {
        let mut xyz = Vec::new();
        for l in &f.lasers {
            let c = range_image_to_points(
                l.return1.as_ref().unwrap(),
                l.calibration.as_ref().unwrap(),
                l.pose.as_ref(),
                f.vehicle_pose.as_ref(),
            )
            .unwrap();
            xyz.extend_from_slice(&c.xyz);
        }
        let intensity = vec![0.0; xyz.len()];
        let input = TokenInput { xyz: &xyz, intensity: &intensity, image: None, lidar: None, boxes: &f.lidar_boxes };
        let el = extract(&input, &TokenConfig::default());
        ground += el.count(ElementKind::Ground) as u64;
        solid += (el.elements.len() - el.count(ElementKind::Ground)) as u64;
        points += el.assignment.iter().flatten().count() as u64;
    }
    assert!(solid > 0 && ground > 0);
    let rrd = dir.path().join("tokens.rrd");
    let opts = VizOptions { tokens: true, cameras: false, range_images: false, ..VizOptions::default() };
    let mut summary = None;
    record("tokens", &rrd, Layout::Perception, |rec| {
        let source = scenetok::pipeline::Source::open(&dir.path().join("world")).unwrap();
        summary = Some(viz::record_source(&source, &opts, rec).unwrap());
    });
    assert_eq!(summary.unwrap().elements as u64, solid + ground);
    let Some(s) = read_back(&rrd) else { return };
    let base = "/world/ego/tokens/elements";
    assert_eq!(component(&s, &format!("{base}/boxes"), "Boxes3D:half_sizes").2, solid);
    assert_eq!(component(&s, &format!("{base}/ground"), "Points3D:positions").2, ground);
    assert_eq!(component(&s, &format!("{base}/points"), "Points3D:positions").2, points);
}
