//! WOMD's history sensor data (`compressed_frame_laser_data`, `frame_camera_tokens`) on
//! hand-made records written from upstream's proto definitions and delta-encoding rule (no
//! shared sample carries these fields): a worked example decoded exactly, a generated
//! frame's lasers round-tripped to the same points, camera tokens to codebook embeddings,
//! and broken records to errors that say where.

use std::io::{Read, Write};

use prost::Message;
use scenetok::geom::range_image_to_points;
use scenetok::io::proto;
use scenetok::io::v2::{Dataset, FrameRequest};
use scenetok::io::womd_sensors::{CameraCodebook, decode_delta, read_scenario_sensors, scenario_sensors};
use scenetok::scene::{CameraName, Frame, LaserName, RangeImage};
use scenetok::sim::generate::{GenerateConfig, Preset, generate};
use scenetok::{Error, Location};

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

/// The encoder of `compressed_lidar.proto`'s comments: quantize per channel, read
/// channel-major, run lengths of the non-zero mask (first run non-zero, maybe empty),
/// differences of consecutive non-zero values, zlib.
fn encode(image: &RangeImage<f32>, precision: &[f32]) -> Vec<u8> {
    let [h, w, c] = image.shape();
    let mut flat = Vec::with_capacity(h * w * c);
    for (ch, &step) in precision.iter().enumerate().take(c) {
        for p in 0..h * w {
            flat.push((image.values[p * c + ch] as f64 / step as f64).round() as i64);
        }
    }
    let (mut mask, mut residual) = (Vec::new(), Vec::new());
    let (mut want_nonzero, mut run, mut last) = (true, 0u32, 0i64);
    for &q in &flat {
        if (q != 0) != want_nonzero {
            mask.push(run);
            (run, want_nonzero) = (0, !want_nonzero);
        }
        run += 1;
        if q != 0 {
            residual.push(q - last);
            last = q;
        }
    }
    mask.push(run);
    let msg = proto::DeltaEncodedData {
        residual,
        mask,
        metadata: Some(proto::DeltaMetadata {
            shape: vec![h as i32, w as i32, c as i32],
            quant_precision: precision.to_vec(),
        }),
    };
    zlib(&msg.encode_to_vec())
}

#[test]
fn the_worked_example_decodes_exactly() {
    // [[0, 1], [2, 0]] at precision 0.5: quantized 0, 2, 4, 0 → runs [0, 1, 2, 1] (no leading
    // non-zero), residuals [2, 2].
    let msg = proto::DeltaEncodedData {
        residual: vec![2, 2],
        mask: vec![0, 1, 2, 1],
        metadata: Some(proto::DeltaMetadata { shape: vec![2, 2, 1], quant_precision: vec![0.5] }),
    };
    let image = decode_delta(&zlib(&msg.encode_to_vec()), &Location::default()).unwrap();
    assert_eq!(image.shape(), [2, 2, 1]);
    assert_eq!(image.values, vec![0.0, 1.0, 2.0, 0.0]);
    // Our encoder writes that same message.
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(encode(&image, &[0.5]).as_slice()).read_to_end(&mut raw).unwrap();
    let ours = proto::DeltaEncodedData::decode(raw.as_slice()).unwrap();
    assert_eq!(ours, msg);
}

/// The first frame of a tiny generated world with its lasers.
fn generated_frame() -> (tempfile::TempDir, Frame) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    (cfg.segments, cfg.frames, cfg.seed) = (1, 1, 4);
    let manifest = generate(dir.path(), &cfg, |_, _| {}).unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let mut reader = ds
        .frames(
            &manifest.segments[0],
            &FrameRequest::only(&[
                scenetok::io::v2::Component::Lidar,
                scenetok::io::v2::Component::LidarCalibration,
                scenetok::io::v2::Component::LidarPose,
                scenetok::io::v2::Component::VehiclePose,
            ]),
        )
        .unwrap();
    let ts = reader.timestamps()[0];
    let frame = reader.read_frame(ts).unwrap();
    (dir, frame)
}

/// A scenario whose step 0 carries `frame`'s lasers and step 1 camera tokens.
fn scenario_with_sensors(frame: &Frame, tokens: Vec<u32>) -> proto::Scenario {
    let lasers = frame
        .lasers
        .iter()
        .map(|l| proto::CompressedLaser {
            name: Some(l.laser.value() as i32),
            ri_return1: Some(proto::CompressedRangeImage {
                range_image_delta_compressed: l.return1.as_ref().map(|r| encode(r, &[0.005, 0.01, 0.01, 1.0])),
                range_image_pose_delta_compressed: l
                    .pose
                    .as_ref()
                    .map(|p| encode(p, &[1e-6, 1e-6, 1e-6, 1e-4, 1e-4, 1e-4])),
            }),
            ri_return2: None,
        })
        .collect();
    let calibrations =
        frame.lasers.iter().filter_map(|l| l.calibration.as_ref()).map(crate::common::pb_laser_calibration).collect();
    proto::Scenario {
        scenario_id: Some("hand-made".into()),
        timestamps_seconds: (0..11).map(|t| t as f64 * 0.1).collect(),
        current_time_index: Some(10),
        compressed_frame_laser_data: vec![proto::CompressedFrameLaserData {
            lasers,
            laser_calibrations: calibrations,
            pose: frame.vehicle_pose.as_ref().map(crate::common::pb_transform),
        }],
        frame_camera_tokens: vec![
            proto::FrameCameraTokens::default(),
            proto::FrameCameraTokens { camera_tokens: vec![proto::CameraTokens { camera_name: Some(1), tokens }] },
        ],
        ..Default::default()
    }
}

#[test]
fn womd_lidar_gives_the_points_of_the_frame_it_was_made_from() {
    let (_dir, frame) = generated_frame();
    let msg = scenario_with_sensors(&frame, (0..256).collect());
    // Through a TFRecord file, as a user's WOMD file is read.
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("scenario.tfrecord");
    let mut w = scenetok::io::tfrecord::create(&path).unwrap();
    w.write_record(&msg.encode_to_vec()).unwrap();
    w.finish().unwrap();
    let all = read_scenario_sensors(&path).unwrap();
    assert_eq!(all.len(), 1);
    let (id, sensors) = &all[0];
    assert_eq!(id, "hand-made");
    assert_eq!(sensors.lidar.len(), 1);
    let (step, decoded) = &sensors.lidar[0];
    assert_eq!(*step, 0);
    assert_eq!(decoded.lasers.len(), frame.lasers.len());
    let mut total = 0;
    for (a, b) in frame.lasers.iter().zip(&decoded.lasers) {
        assert_eq!(a.laser, b.laser);
        let pa = range_image_to_points(
            a.return1.as_ref().unwrap(),
            a.calibration.as_ref().unwrap(),
            a.pose.as_ref(),
            frame.vehicle_pose.as_ref(),
        )
        .unwrap();
        let pb = range_image_to_points(
            b.return1.as_ref().unwrap(),
            b.calibration.as_ref().unwrap(),
            b.pose.as_ref(),
            decoded.vehicle_pose.as_ref(),
        )
        .unwrap();
        assert_eq!(pa.len(), pb.len(), "laser {}", a.laser);
        // Range quantized to 5 mm, the pose to 1 µrad / 0.1 mm: points within 1 cm.
        for (p, q) in pa.xyz.iter().zip(&pb.xyz) {
            let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
            assert!(d < 0.01, "laser {}: {p:?} vs {q:?}", a.laser);
        }
        total += pa.len();
    }
    assert!(total > 1000, "{total} points");
    assert!(decoded.laser(LaserName::Top).unwrap().pose.is_some());
    // `scenetok inspect` says what the record carries (a record of sensor data alone, as
    // WOMD ships them beside the scenarios).
    let scenetok::io::inspect::Inspection::Tfrecord(report) = scenetok::io::inspect::inspect(&path).unwrap() else {
        panic!("a TFRecord")
    };
    let line = &report.summaries[0];
    assert!(
        line.contains("LiDAR on 1 history steps (5 laser images), camera tokens on 2 steps (1 camera images)"),
        "{line}"
    );

    assert_eq!(sensors.camera_tokens.len(), 2);
    assert_eq!(sensors.camera_tokens[1].1, vec![(CameraName::Front, (0..256).collect::<Vec<u32>>())]);
    // The released codebook turns the tokens into [256, 32] embeddings.
    let Some(samples) = crate::common::samples() else { return };
    let book = CameraCodebook::load(samples.join("womd/womd_camera_codebook.npy")).unwrap();
    assert_eq!((book.entries(), book.dim()), (8192, 32));
    let e = book.embed(&sensors.camera_tokens[1].1[0].1).unwrap();
    assert_eq!(e.len(), 256 * 32);
    assert_eq!(&e[32..64], &book.embed(&[1]).unwrap()[..]);
    assert!(book.embed(&[8192]).is_err());
}

fn error_of(msg: &proto::Scenario) -> String {
    match scenario_sensors(msg, &Location::file("s.tfrecord").record(0)) {
        Err(e @ Error::Invalid { .. }) | Err(e @ Error::Decode { .. }) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn broken_sensor_records_are_errors_that_say_where() {
    let (_dir, frame) = generated_frame();
    // A token past the codebook.
    let e = error_of(&scenario_with_sensors(&frame, vec![3, 9000]));
    assert!(e.contains("frame_camera_tokens[1]") && e.contains("FRONT") && e.contains("9000"), "{e}");
    // A truncated zlib stream.
    let mut msg = scenario_with_sensors(&frame, vec![]);
    let ri = msg.compressed_frame_laser_data[0].lasers[0].ri_return1.as_mut().unwrap();
    let bytes = ri.range_image_delta_compressed.as_mut().unwrap();
    bytes.truncate(bytes.len() / 2);
    let e = error_of(&msg);
    assert!(e.contains("compressed_frame_laser_data[0]") && e.contains("range_image_delta_compressed"), "{e}");
    // Mask runs that do not cover the shape.
    let bad = proto::DeltaEncodedData {
        residual: vec![1],
        mask: vec![1, 5],
        metadata: Some(proto::DeltaMetadata { shape: vec![2, 2, 1], quant_precision: vec![1.0] }),
    };
    let e = decode_delta(&zlib(&bad.encode_to_vec()), &Location::default()).unwrap_err().to_string();
    assert!(e.contains("mask runs covering the 4 values"), "{e}");
    // More residuals than non-zero values; a zero precision; a huge shape.
    for (residual, shape, precision, want) in [
        (vec![1, 1], vec![2, 2, 1], vec![1.0], "one residual per non-zero value"),
        (vec![1], vec![2, 2, 1], vec![0.0], "positive quant_precision"),
        (vec![1], vec![60000, 60000, 4], vec![1.0; 4], "at most"),
    ] {
        let mask = if shape[0] == 2 { vec![1, 3] } else { vec![1] };
        let m = proto::DeltaEncodedData {
            residual,
            mask,
            metadata: Some(proto::DeltaMetadata { shape, quant_precision: precision }),
        };
        let e = decode_delta(&zlib(&m.encode_to_vec()), &Location::default()).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    // A laser without its calibration.
    let mut msg = scenario_with_sensors(&frame, vec![]);
    msg.compressed_frame_laser_data[0].laser_calibrations.clear();
    assert!(error_of(&msg).contains("laser_calibrations entry"));
}

/// The real sample scenario with a generated frame's LiDAR attached to its first two
/// history steps (at the SDC's pose there): a WOMD file with sensors as a user has it.
/// Its frames come through the pipeline's source with the agents as boxes in the vehicle
/// frame, and `scenetok tokens` breaks them into elements.
#[test]
fn womd_scenarios_with_lidar_are_frames_with_their_agents_as_boxes() {
    use scenetok::pipeline::{FrameSelection, Source};
    let Some(samples) = crate::common::samples() else { return };
    let bytes = scenetok::io::tfrecord::read_records(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap();
    let mut msg = proto::Scenario::decode(bytes[0].as_slice()).unwrap();
    let scenario = scenetok::io::womd::convert_scenario(&msg, &Location::default()).unwrap();
    let sdc = &scenario.tracks[scenario.sdc_track_index.unwrap()];
    let (_dir, frame) = generated_frame();
    let mut steps = Vec::new();
    for step in 0..2 {
        let a = &sdc.states[step];
        let pose = scenetok::geom::pose::transform_from_rpy_xyz(0.0, 0.0, a.heading as f64, a.x, a.y, a.z);
        let mut f = frame.clone();
        f.vehicle_pose = Some(pose);
        steps.extend(scenario_with_sensors(&f, vec![]).compressed_frame_laser_data);
    }
    msg.compressed_frame_laser_data = steps;
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("with_lidar.tfrecord");
    let mut w = scenetok::io::tfrecord::create(&path).unwrap();
    w.write_record(&msg.encode_to_vec()).unwrap();
    w.finish().unwrap();

    let source = Source::open(&path).unwrap();
    let frames: Vec<_> = source.frames(&FrameSelection::all()).unwrap().map(|f| f.unwrap()).collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].index, 1);
    assert_eq!(frames[0].segment, scenario.id);
    for f in &frames {
        let valid = scenario
            .tracks
            .iter()
            .enumerate()
            .filter(|(i, t)| Some(*i) != scenario.sdc_track_index && t.states[f.index].valid)
            .count();
        assert_eq!(f.frame.lidar_boxes.len(), valid);
        // Each box back in the world is its agent's state.
        let pose = f.frame.vehicle_pose.unwrap();
        for b in &f.frame.lidar_boxes {
            let t = scenario.tracks.iter().find(|t| t.id.to_string() == b.object_id).unwrap();
            let a = &t.states[f.index];
            let w = pose.apply(&b.bbox.center);
            assert!((w.x - a.x).abs() < 1e-6 && (w.y - a.y).abs() < 1e-6 && (w.z - a.z).abs() < 1e-6);
            let dh = scenetok::geom::pose::normalize_angle(b.bbox.heading + pose.yaw() - a.heading as f64);
            assert!(dh.abs() < 1e-6);
        }
    }
    // The tokens command runs on it (no image model: WOMD has no images, only their tokens).
    let file = out.path().join("tokens.parquet");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_scenetok"))
        .args(["tokens", "--no-image", "--no-lidar", "--data"])
        .arg(&path)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.starts_with("2 frames:"), "{stdout}");
    // A WOMD file without LiDAR has no frames to give.
    let e = Source::open(&samples.join("womd/motion_data_one_scenario.tfrecord"))
        .unwrap()
        .frames(&FrameSelection::all())
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains("history LiDAR"), "{e}");
}
