//! File formats: TFRecord framing, WOMD scenarios and v1 frames, on the real Waymo samples
//! (skipped when `../shared/waymo-samples` is absent) and on files built here.

use std::path::PathBuf;

use prost::Message;
use scenetok::io::{image, proto, tfrecord, v1, womd};
use scenetok::scene::{CameraName, CameraSegClass, LaserName, MapFeatureKind};
use scenetok::{Error, Location};

#[test]
fn womd_sample_scenario_loads() {
    let Some(dir) = crate::common::samples() else { return };
    let scenarios = womd::read_scenarios(dir.join("womd/motion_data_one_scenario.tfrecord")).expect("sample reads");
    assert_eq!(scenarios.len(), 1);
    let s = &scenarios[0];
    assert_eq!(s.id, "637f20cafde22ff8");
    assert_eq!(s.tracks.len(), 83);
    assert!(s.tracks.iter().all(|t| t.states.len() == 91));
    assert_eq!(s.timestamps_seconds.len(), 91);
    assert_eq!(s.current_time_index, 10);
    assert_eq!(s.sdc_track_index, Some(82));
    assert_eq!(s.tracks_to_predict.len(), 3);
    assert_eq!(s.dynamic_map_states.len(), 91);
    assert_eq!(s.map.len(), 301);
    let count = |k: MapFeatureKind| s.map.iter().filter(|f| f.feature_type.kind() == k).count();
    assert_eq!(count(MapFeatureKind::Lane), 199);
    assert_eq!(count(MapFeatureKind::RoadLine), 59);
    assert_eq!(count(MapFeatureKind::RoadEdge), 28);
    assert_eq!(count(MapFeatureKind::StopSign), 8);
    assert_eq!(count(MapFeatureKind::Crosswalk), 4);
    assert_eq!(count(MapFeatureKind::SpeedBump), 3);
    // Stop signs are one-point polylines; lanes have points and some connectivity.
    assert!(s.map.iter().filter(|f| f.feature_type.kind() == MapFeatureKind::StopSign).all(|f| f.polyline.len() == 1));
    assert!(s.map.iter().any(|f| !f.exit_lanes.is_empty()));
    let sdc = &s.tracks[82];
    assert!(sdc.states[10].valid, "the SDC is valid at the current step");
}

#[test]
fn v1_sample_frame_loads() {
    let Some(dir) = crate::common::samples() else { return };
    let frames = v1::read_frames(dir.join("v1/pvps_data_one_frame.tfrecord")).expect("sample reads");
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    assert_eq!(f.segment, "1024360143612057520_3580_000_3600_000");
    assert_eq!(f.timestamp_micros, 1553735853462203);
    assert!(f.vehicle_pose.is_some());

    assert_eq!(f.cameras.len(), 5);
    let mut reused = ::image::RgbImage::new(0, 0);
    for cam in &f.cameras {
        let cal = cam.calibration.as_ref().expect("every camera is calibrated");
        let expected = match cam.camera {
            CameraName::Front | CameraName::FrontLeft | CameraName::FrontRight => (1920, 1280),
            CameraName::SideLeft | CameraName::SideRight => (1920, 886),
            other => panic!("unexpected camera {other}"),
        };
        assert_eq!((cal.width, cal.height), expected, "{}", cam.camera);
        let rgb = image::decode_jpeg(&cam.jpeg, &Location::file("sample")).expect("JPEG decodes");
        assert_eq!(rgb.dimensions(), expected, "{}", cam.camera);
        // Into the memory of the previous camera's image (other size or same): the same pixels.
        image::decode_jpeg_into(&cam.jpeg, &Location::file("sample"), &mut reused).expect("JPEG decodes");
        assert!(reused == rgb, "{}", cam.camera);
        assert!(cam.pose.is_some());

        let seg = cam.segmentation.as_ref().expect("panoptic label");
        assert!(seg.divisor > 0);
        assert_eq!((seg.width, seg.height), expected);
        assert_eq!(seg.values.len(), (seg.width * seg.height) as usize);
        let bad = seg.values.iter().find(|&&v| CameraSegClass::from_value(v as i64 / seg.divisor as i64).is_none());
        assert_eq!(bad, None, "every pixel's class is one of the 29");
    }

    assert_eq!(f.lasers.len(), 5);
    let calibrated = f.lasers.iter().filter(|l| l.calibration.is_some()).count();
    assert_eq!(calibrated, 5);
    let top = f.laser(LaserName::Top).and_then(|l| l.calibration.as_ref()).expect("TOP");
    assert_eq!(top.beam_inclination.values.as_ref().map(Vec::len), Some(64));
    assert!(f.lasers.iter().all(|l| l.return1.is_none()));

    assert_eq!(f.lidar_boxes.len(), 75);
    assert_eq!(f.projected_lidar_boxes.len(), 62);
    // Projected ids, suffix stripped, are laser label ids.
    for b in &f.projected_lidar_boxes {
        assert!(f.lidar_boxes.iter().any(|l| l.object_id == b.object_id), "{} has no 3-D label", b.object_id);
    }
    let stats = f.stats.as_ref().expect("stats");
    assert!(!stats.time_of_day.is_empty() && !stats.location.is_empty());
}

fn write_tmp(records: &[Vec<u8>]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.tfrecord");
    tfrecord::write_records(&path, records).expect("write");
    (dir, path)
}

#[test]
fn corrupt_data_byte_is_a_crc_error_at_record_0() {
    let (_d, path) = write_tmp(&[b"some payload bytes".to_vec()]);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[12 + 3] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    let err = tfrecord::read_records(&path).expect_err("corrupt");
    let msg = err.to_string();
    assert!(msg.contains("CRC") && msg.contains("record 0") && msg.contains("x.tfrecord"), "{msg}");
}

#[test]
fn truncated_tfrecord_is_an_error() {
    let (_d, path) = write_tmp(&[b"first".to_vec(), b"second record".to_vec()]);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 6]).expect("write");
    let err = tfrecord::read_records(&path).expect_err("truncated");
    let msg = err.to_string();
    assert!(msg.contains("truncated") && msg.contains("record 1"), "{msg}");
}

#[test]
fn undecodable_jpeg_is_a_decode_error() {
    let at = Location::file("frame.tfrecord").record(0).detail("camera FRONT");
    let err = image::decode_jpeg(b"\xff\xd8\xff\xe0 not really a jpeg", &at).expect_err("bad jpeg");
    assert!(matches!(err, Error::Decode { .. }));
    assert!(err.to_string().contains("frame.tfrecord"));
    let mut img = ::image::RgbImage::new(4, 4);
    let err = image::decode_jpeg_into(b"\xff\xd8\xff\xe0 not really a jpeg", &at, &mut img).expect_err("bad jpeg");
    assert!(matches!(err, Error::Decode { .. }) && err.to_string().contains("camera FRONT"), "{err}");
    // A grey JPEG is widened to RGB as by `decode_jpeg`.
    let grey = ::image::GrayImage::from_fn(16, 8, |x, y| ::image::Luma([(x * 16 + y) as u8]));
    let mut bytes = Vec::new();
    grey.write_to(&mut std::io::Cursor::new(&mut bytes), ::image::ImageFormat::Jpeg).unwrap();
    image::decode_jpeg_into(&bytes, &at, &mut img).unwrap();
    assert_eq!(img, image::decode_jpeg(&bytes, &at).unwrap());
    assert_eq!(img.dimensions(), (16, 8));
}

fn scenario() -> proto::Scenario {
    let st = proto::ObjectState { valid: Some(true), ..Default::default() };
    proto::Scenario {
        scenario_id: Some("synthetic".into()),
        timestamps_seconds: vec![0.0, 0.1],
        current_time_index: Some(0),
        tracks: vec![proto::Track { id: Some(3), object_type: Some(2), states: vec![st; 2] }],
        tracks_to_predict: vec![proto::RequiredPrediction { track_index: Some(0), difficulty: Some(0) }],
        map_features: vec![proto::MapFeature {
            id: Some(100),
            feature_data: Some(proto::FeatureData::Lane(proto::LaneCenter { r#type: Some(2), ..Default::default() })),
        }],
        ..Default::default()
    }
}

fn read_one(s: &proto::Scenario) -> scenetok::Result<Vec<scenetok::scene::Scenario>> {
    let (_d, path) = write_tmp(&[s.encode_to_vec()]);
    womd::read_scenarios(&path)
}

#[test]
fn scenario_with_bad_map_type_or_track_index_is_an_error() {
    assert_eq!(read_one(&scenario()).expect("valid").len(), 1);

    let mut s = scenario();
    s.map_features[0].feature_data =
        Some(proto::FeatureData::Lane(proto::LaneCenter { r#type: Some(42), ..Default::default() }));
    let msg = read_one(&s).expect_err("unknown lane type").to_string();
    assert!(msg.contains("record 0") && msg.contains("map feature id 100") && msg.contains("42"), "{msg}");

    // A kind this decoder does not know: the oneof stays empty.
    let mut s = scenario();
    s.map_features[0].feature_data = None;
    let msg = read_one(&s).expect_err("no feature data").to_string();
    assert!(msg.contains("map feature id 100"), "{msg}");

    let mut s = scenario();
    s.tracks_to_predict[0].track_index = Some(1);
    let msg = read_one(&s).expect_err("track index").to_string();
    assert!(msg.contains("track_index") && msg.contains("record 0"), "{msg}");
}
