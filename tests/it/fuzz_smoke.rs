//! The fuzz targets in the ordinary test suite: each body of `scenetok::fuzzing` (the code
//! `cargo fuzz` runs from `fuzz/`) over the committed corpus (`fuzz/seeds/`, `fuzz/regressions/`)
//! and a short run of seeded mutations (bit flips, interesting bytes, truncations, splices),
//! none of which may panic. A failing input is saved under `target/fuzz-smoke/` and named in
//! the failure, so it can be replayed with `cargo fuzz run TARGET FILE`.
//!
//! Also here: the seed writer (`write_fuzz_seeds`, ignored; see fuzz/README.md).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scenetok::fuzzing::{RangeImageInput, TARGETS};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The committed inputs of one target: its seeds and the regression cases found by fuzzing.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_file() {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Mutations per target beyond the corpus, and the wall-clock cap on them (whichever ends
/// first): a few seconds in all on CI's two cores.
const MUTATIONS: usize = 400;
const MUTATION_TIME: Duration = Duration::from_millis(600);

/// One mutation of `input`, `others` being the corpus to splice with.
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], others: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = v.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe][rng.random_range(0..6)];
            }
            2 if len > 0 => v.truncate(rng.random_range(0..len)),
            3 if !others.is_empty() => {
                let other = &others[rng.random_range(0..others.len())].1;
                let (a, b) = (rng.random_range(0..=len), rng.random_range(0..=other.len()));
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
            4 if len > 0 => {
                // Delete a run of bytes.
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                v.drain(i..i + n);
            }
            5 if len > 0 => {
                // Duplicate a run of bytes.
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                let run = v[i..i + n].to_vec();
                v.splice(i..i, run);
            }
            6 if len >= 4 => {
                // A random 32-bit word (a length, a count, a float).
                let i = rng.random_range(0..=len - 4);
                let w = rng.next_u32().to_le_bytes();
                v[i..i + 4].copy_from_slice(&w);
            }
            _ => v.push(rng.random()),
        }
    }
    v
}

/// Runs `body` on `input`; a panic saves the input and fails naming it.
fn run_one(target: &str, body: fn(&[u8]), input: &[u8], what: &str) {
    if std::panic::catch_unwind(|| body(input)).is_err() {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-smoke").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("crash-{:016x}", fnv(input)));
        std::fs::write(&path, input).unwrap();
        panic!(
            "fuzz target `{target}` panicked on {what}; the input is saved at {} \
             (replay: cd fuzz && cargo fuzz run {target} {})",
            path.display(),
            path.display()
        );
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn smoke(target: &str) {
    let t = TARGETS.iter().find(|t| t.name == target).expect("a target of scenetok::fuzzing::TARGETS");
    let inputs = corpus(target);
    assert!(!inputs.is_empty(), "no committed corpus for `{target}` under fuzz/seeds or fuzz/regressions");
    for (path, bytes) in &inputs {
        run_one(target, t.body, bytes, &format!("{}", path.display()));
    }
    // The same mutations on every run; seeded by the target's name so targets differ.
    let mut rng = ChaCha8Rng::seed_from_u64(fnv(target.as_bytes()));
    let start = Instant::now();
    let mut done = 0;
    while done < MUTATIONS && start.elapsed() < MUTATION_TIME {
        let (path, base) = &inputs[rng.random_range(0..inputs.len())];
        let input = mutate(&mut rng, base, &inputs);
        run_one(target, t.body, &input, &format!("mutation {done} of {}", path.display()));
        done += 1;
    }
    eprintln!("{target}: {} corpus inputs and {done} mutations, no panic", inputs.len());
}

#[test]
fn every_target_is_smoked() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names, ["v2_component", "womd_scenario", "v1_frame", "range_image", "jpeg", "png_label"]);
    // Each target has its fuzz/fuzz_targets file, so `cargo fuzz` and this test run the same set.
    for name in names {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(text.contains(&format!("scenetok::fuzzing::{name}")), "{} runs another body", file.display());
    }
}

#[test]
fn smoke_v2_component() {
    smoke("v2_component");
}

#[test]
fn smoke_womd_scenario() {
    smoke("womd_scenario");
}

#[test]
fn smoke_v1_frame() {
    smoke("v1_frame");
}

#[test]
fn smoke_range_image() {
    smoke("range_image");
}

#[test]
fn smoke_jpeg() {
    smoke("jpeg");
}

#[test]
fn smoke_png_label() {
    smoke("png_label");
}

#[test]
fn range_image_input_round_trips() {
    use scenetok::scene::{BeamInclination, LaserName, LidarCalibration, RangeImage, Transform};
    let input = RangeImageInput {
        image: RangeImage::new([2, 3, 4], (0..24).map(|v| v as f32).collect()).unwrap(),
        calibration: LidarCalibration {
            laser: LaserName::Top,
            extrinsic: Transform::identity(),
            beam_inclination: BeamInclination { min: -0.5, max: 0.25, values: Some(vec![-0.5, 0.25]) },
        },
        frame_pose: Some(Transform::identity()),
        pixel_pose: Some(RangeImage::new([2, 3, 6], (0..36).map(|v| v as f32 * 0.01).collect()).unwrap()),
    };
    assert_eq!(RangeImageInput::parse(&input.to_bytes()), input);
}

// ---------------------------------------------------------------------------------------
// The seed writer.

/// Writes the committed seeds under `fuzz/seeds/` from scenetok's fixture and a tiny
/// generated world, and local-only seeds from the real samples (`../shared/waymo-samples`)
/// under the git-ignored `fuzz/corpus/`: the samples are Waymo's, never committed.
///
/// `cargo test --test it write_fuzz_seeds -- --ignored`
#[test]
#[ignore = "writes fuzz/seeds; run by hand (fuzz/README.md)"]
fn write_fuzz_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = tmp.path().join("fixture");
    let world = tmp.path().join("world");
    run_scenetok(&["fixture", "--out", fixture.to_str().unwrap()]);
    run_scenetok(&[
        "generate",
        "--preset",
        "tiny",
        "--segments",
        "1",
        "--frames",
        "2",
        "--seed",
        "1",
        "--out",
        world.to_str().unwrap(),
    ]);
    let seeds = fuzz_dir().join("seeds");
    let _ = std::fs::remove_dir_all(&seeds);
    let mut w = SeedWriter { root: seeds.clone(), bytes: 0 };
    seeds::write_all(&mut w, &fixture, &world);
    eprintln!("wrote {} bytes of seeds under {}", w.bytes, seeds.display());
    assert!(w.bytes < 2 << 20, "seeds must stay small (< 2 MB), wrote {}", w.bytes);

    if let Some(samples) = crate::common::samples() {
        let mut local = SeedWriter { root: fuzz_dir().join("corpus"), bytes: 0 };
        seeds::write_real(&mut local, &samples);
        eprintln!("wrote {} bytes of local-only seeds from the real samples under fuzz/corpus", local.bytes);
    }
}

fn run_scenetok(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_scenetok")).args(args).output().expect("scenetok runs");
    assert!(out.status.success(), "scenetok {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct SeedWriter {
    root: PathBuf,
    bytes: usize,
}

impl SeedWriter {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        self.bytes += bytes.len();
    }
}

mod seeds {
    use std::io::Write;
    use std::path::Path;

    use prost::Message;
    use scenetok::fuzzing::{self, RangeImageInput};
    use scenetok::io::proto;
    use scenetok::io::v2::{Component, Dataset, FrameRequest};
    use scenetok::scene::{self, Frame, RangeImage, Scenario};

    use super::SeedWriter;

    pub fn write_all(w: &mut SeedWriter, fixture: &Path, world: &Path) {
        for (tag, root) in [("fixture", fixture), ("world", world)] {
            let ds = Dataset::open(root).unwrap();
            let segment = ds.segments().next().unwrap().to_string();
            // v2: every component file as written, and the fixture's also uncompressed and
            // plain-encoded, so mutations reach the values rather than a compressed stream.
            for (component, info) in ds.components(&segment).unwrap() {
                let bytes = std::fs::read(&info.path).unwrap();
                w.put(
                    "v2_component",
                    &format!("{tag}-{}", component.tag()),
                    &fuzzing::v2_component_input(*component, &bytes),
                );
                if tag == "fixture" {
                    let plain = reencode_plain(&bytes);
                    w.put(
                        "v2_component",
                        &format!("{tag}-{}-plain", component.tag()),
                        &fuzzing::v2_component_input(*component, &plain),
                    );
                }
            }
            let frames: Vec<Frame> = ds.frames(&segment, &FrameRequest::all()).unwrap().map(|f| f.unwrap()).collect();
            // v1: the frames as v1 `Frame`s (the world's without its JPEGs: the jpeg target has those).
            let mut records = Vec::new();
            for (i, frame) in frames.iter().enumerate() {
                let msg = v1_frame(frame, tag == "fixture").encode_to_vec();
                w.put("v1_frame", &format!("{tag}-{i}-message"), &fuzzing::message_input(&msg));
                records.push(msg);
            }
            w.put("v1_frame", &format!("{tag}-tfrecord"), &fuzzing::tfrecord_input(&tfrecord(&records)));
            // WOMD: the segment's tracks and map as a scenario of its frames.
            let scenario = scenario_of(&ds, &segment);
            let msg = womd_scenario(&scenario).encode_to_vec();
            w.put("womd_scenario", &format!("{tag}-message"), &fuzzing::message_input(&msg));
            w.put("womd_scenario", &format!("{tag}-tfrecord"), &fuzzing::tfrecord_input(&tfrecord(&[msg])));
            // Range images: every return of the first frame with its calibration and poses.
            let frame = &frames[0];
            for laser in &frame.lasers {
                for (n, ri) in [(1, &laser.return1), (2, &laser.return2)] {
                    let (Some(ri), Some(calibration)) = (ri, &laser.calibration) else { continue };
                    let input = RangeImageInput {
                        image: ri.clone(),
                        calibration: calibration.clone(),
                        frame_pose: frame.vehicle_pose,
                        pixel_pose: laser.pose.clone(),
                    };
                    w.put("range_image", &format!("{tag}-{}-return{n}", laser.laser.name()), &input.to_bytes());
                }
            }
            // Images: the first frame's JPEGs and panoptic labels.
            for cam in &frame.cameras {
                if !cam.jpeg.is_empty() && (tag == "fixture" || cam.camera == scene::CameraName::Front) {
                    w.put("jpeg", &format!("{tag}-{}", cam.camera.name()), &cam.jpeg);
                }
            }
        }
        // Panoptic label PNGs as stored (the v2 records keep them encoded).
        let ds = Dataset::open(fixture).unwrap();
        let segment = ds.segments().next().unwrap().to_string();
        let path = ds.file_path(&segment, Component::CameraSegmentation).unwrap();
        let f = scenetok::io::v2::ComponentFile::open(&path, Component::CameraSegmentation).unwrap();
        for (i, r) in f.read_all::<scenetok::io::v2::CameraSegmentationRecord>().unwrap().iter().take(3).enumerate() {
            w.put("png_label", &format!("fixture-{i}"), &r.png);
        }
        synthetic(w);
    }

    /// Small hand-made inputs for paths the data above does not take.
    fn synthetic(w: &mut SeedWriter) {
        let at = scenetok::Location::default();
        // PNG: 8-bit grey (widened), RGB (refused), 16-bit of one column.
        let grey = image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 40 + y) as u8]));
        w.put("png_label", "grey8", &encode(&image::DynamicImage::ImageLuma8(grey), image::ImageFormat::Png));
        let rgb = image::RgbImage::from_fn(4, 2, |x, y| image::Rgb([x as u8 * 60, y as u8 * 100, 7]));
        w.put("png_label", "rgb8", &encode(&image::DynamicImage::ImageRgb8(rgb.clone()), image::ImageFormat::Png));
        let column = scenetok::io::image::encode_png_u16(1, 4, &[0, 1000, 65535, 3], &at).unwrap();
        w.put("png_label", "grey16-column", &column);
        // JPEG: grey, baseline 4:2:0, progressive, restart markers, CMYK.
        let gradient = image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([(x * 10) as u8, (y * 15) as u8, 90]));
        w.put("jpeg", "baseline-q50", &scenetok::io::image::encode_jpeg(&gradient, 50).unwrap());
        let grey = image::GrayImage::from_fn(16, 8, |x, y| image::Luma([(x * 16 + y) as u8]));
        w.put("jpeg", "grey", &encode(&image::DynamicImage::ImageLuma8(grey), image::ImageFormat::Jpeg));
        for (name, progressive, restart, cmyk) in
            [("progressive", true, None, false), ("restart", false, Some(2), false), ("cmyk", false, None, true)]
        {
            let mut out = Vec::new();
            let mut enc = jpeg_encoder::Encoder::new(&mut out, 80);
            enc.set_progressive(progressive);
            if let Some(r) = restart {
                enc.set_restart_interval(r);
            }
            if cmyk {
                let data: Vec<u8> = gradient.pixels().flat_map(|p| [p.0[0], p.0[1], p.0[2], 30]).collect();
                enc.encode(&data, 24, 16, jpeg_encoder::ColorType::Cmyk).unwrap();
            } else {
                enc.encode(gradient.as_raw(), 24, 16, jpeg_encoder::ColorType::Rgb).unwrap();
            }
            w.put("jpeg", name, &out);
        }
        // Range image: a tiny image with an explicit pixel pose and a short value list.
        use scenetok::scene::{BeamInclination, LaserName, LidarCalibration, Transform};
        let calibration = LidarCalibration {
            laser: LaserName::Front,
            extrinsic: Transform::identity(),
            beam_inclination: BeamInclination { min: -0.3, max: 0.3, values: None },
        };
        let values = vec![1.0, 0.5, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, f32::NAN, 0.0, 0.0, 1.0, 7.5, 0.1, 0.2, 0.0];
        let input = RangeImageInput {
            image: RangeImage::new([2, 2, 4], values).unwrap(),
            calibration,
            frame_pose: Some(Transform::identity()),
            pixel_pose: Some(RangeImage::new([2, 2, 6], vec![0.01; 24]).unwrap()),
        };
        w.put("range_image", "tiny-posed", &input.to_bytes());
        // WOMD: a scenario with every kind of map feature and a dynamic map state.
        w.put("womd_scenario", "every-map-kind", &fuzzing::message_input(&every_map_kind().encode_to_vec()));
    }

    /// Seeds from the real samples, local only.
    pub fn write_real(w: &mut SeedWriter, samples: &Path) {
        let v1 = std::fs::read(samples.join("v1/pvps_data_one_frame.tfrecord")).unwrap();
        w.put("v1_frame", "real-pvps-tfrecord", &fuzzing::tfrecord_input(&v1));
        let womd = std::fs::read(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap();
        w.put("womd_scenario", "real-womd-tfrecord", &fuzzing::tfrecord_input(&womd));
        for record in
            scenetok::io::tfrecord::read_records(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap()
        {
            w.put("womd_scenario", "real-womd-message", &fuzzing::message_input(&record));
        }
        for record in scenetok::io::tfrecord::read_records(samples.join("v1/pvps_data_one_frame.tfrecord")).unwrap() {
            let frame = proto::Frame::decode(record.as_slice()).unwrap();
            w.put("v1_frame", "real-pvps-message", &fuzzing::message_input(&record));
            for (i, img) in frame.images.iter().enumerate() {
                if let Some(jpeg) = &img.image {
                    w.put("jpeg", &format!("real-pvps-{i}"), jpeg);
                }
                if let Some(png) = img.camera_segmentation_label.as_ref().and_then(|l| l.panoptic_label.as_ref()) {
                    w.put("png_label", &format!("real-pvps-{i}"), png);
                }
            }
        }
        for (component, rel) in [
            (Component::VehiclePose, "v2/testdata/dataset/vehicle_pose/10023947602400723454_1120_000_1140_000.parquet"),
            (Component::CameraHkp, "v2/testdata/dataset/camera_hkp/10023947602400723454_1120_000_1140_000.parquet"),
        ] {
            let bytes = std::fs::read(samples.join(rel)).unwrap();
            w.put(
                "v2_component",
                &format!("real-{}", component.tag()),
                &fuzzing::v2_component_input(component, &bytes),
            );
        }
    }

    fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn tfrecord(records: &[Vec<u8>]) -> Vec<u8> {
        records.iter().flat_map(|r| scenetok::io::tfrecord::frame_record(r)).collect()
    }

    /// Every column as stored, without compression or dictionaries.
    fn reencode_plain(parquet: &[u8]) -> Vec<u8> {
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        use parquet::basic::{Compression, Encoding};
        use parquet::file::properties::WriterProperties;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(parquet)).unwrap();
        let schema = reader.schema().clone();
        let props = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .set_encoding(Encoding::PLAIN)
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
        for batch in reader.build().unwrap() {
            writer.write(&batch.unwrap()).unwrap();
        }
        writer.close().unwrap();
        out
    }

    fn compressed(msg: &impl Message) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&msg.encode_to_vec()).unwrap();
        z.finish().unwrap()
    }

    fn floats(ri: &Option<RangeImage<f32>>) -> Option<Vec<u8>> {
        ri.as_ref().map(|ri| {
            let dims = ri.shape().iter().map(|d| *d as i32).collect();
            compressed(&proto::MatrixFloat { data: ri.values.clone(), shape: Some(proto::MatrixShape { dims }) })
        })
    }

    fn ints(ri: Option<RangeImage<i32>>) -> Option<Vec<u8>> {
        ri.map(|ri| {
            let dims = ri.shape().iter().map(|d| *d as i32).collect();
            compressed(&proto::MatrixInt32 { data: ri.values.clone(), shape: Some(proto::MatrixShape { dims }) })
        })
    }

    fn label_box(b: &scene::Box3d) -> proto::LabelBox {
        proto::LabelBox {
            center_x: Some(b.center.x),
            center_y: Some(b.center.y),
            center_z: Some(b.center.z),
            length: Some(b.size.x),
            width: Some(b.size.y),
            height: Some(b.size.z),
            heading: Some(b.heading),
        }
    }

    fn camera_labels(boxes: &[scene::CameraBox], suffix: bool) -> Vec<proto::CameraLabels> {
        let mut out: Vec<proto::CameraLabels> = Vec::new();
        for b in boxes {
            let name = b.camera.value() as i32;
            let label = proto::Label {
                r#box: Some(proto::LabelBox {
                    center_x: Some(b.bbox.center_x),
                    center_y: Some(b.bbox.center_y),
                    length: Some(b.bbox.size_x),
                    width: Some(b.bbox.size_y),
                    ..Default::default()
                }),
                r#type: Some(b.kind.value() as i32),
                id: Some(if suffix { format!("{}_{}", b.object_id, b.camera.name()) } else { b.object_id.clone() }),
                detection_difficulty_level: Some(b.detection_difficulty.value() as i32),
                tracking_difficulty_level: Some(b.tracking_difficulty.value() as i32),
                ..Default::default()
            };
            match out.iter_mut().find(|g| g.name == Some(name)) {
                Some(g) => g.labels.push(label),
                None => out.push(proto::CameraLabels { name: Some(name), labels: vec![label] }),
            }
        }
        out
    }

    /// A scenetok frame as the v1 `Frame` Waymo would have written.
    fn v1_frame(f: &Frame, with_images: bool) -> proto::Frame {
        let context = proto::Context {
            name: Some(f.segment.clone()),
            camera_calibrations: f
                .cameras
                .iter()
                .filter_map(|c| c.calibration.as_ref())
                .map(|c| proto::CameraCalibration {
                    name: Some(c.camera.value() as i32),
                    intrinsic: c.intrinsic.to_array().to_vec(),
                    extrinsic: Some(crate::common::pb_transform(&c.extrinsic)),
                    width: Some(c.width as i32),
                    height: Some(c.height as i32),
                    rolling_shutter_direction: Some(c.rolling_shutter.value() as i32),
                })
                .collect(),
            laser_calibrations: f
                .lasers
                .iter()
                .filter_map(|l| l.calibration.as_ref())
                .map(crate::common::pb_laser_calibration)
                .collect(),
            stats: f.stats.as_ref().map(|s| proto::Stats {
                laser_object_counts: counts(&s.lidar_object_counts),
                camera_object_counts: counts(&s.camera_object_counts),
                time_of_day: Some(s.time_of_day.clone()),
                location: Some(s.location.clone()),
                weather: Some(s.weather.clone()),
            }),
        };
        let lasers = f
            .lasers
            .iter()
            .map(|l| {
                let projection = |p: &Option<RangeImage<f32>>| ints(p.as_ref().map(|p| p.map(|v| v as i32)));
                proto::Laser {
                    name: Some(l.laser.value() as i32),
                    ri_return1: Some(proto::RangeImage {
                        range_image_compressed: floats(&l.return1),
                        camera_projection_compressed: projection(&l.camera_projection1),
                        range_image_pose_compressed: floats(&l.pose),
                        segmentation_label_compressed: ints(l.segmentation1.clone()),
                    }),
                    ri_return2: Some(proto::RangeImage {
                        range_image_compressed: floats(&l.return2),
                        camera_projection_compressed: projection(&l.camera_projection2),
                        range_image_pose_compressed: None,
                        segmentation_label_compressed: ints(l.segmentation2.clone()),
                    }),
                }
            })
            .collect();
        let images = f
            .cameras
            .iter()
            .map(|c| proto::CameraImage {
                name: Some(c.camera.value() as i32),
                image: Some(if with_images { c.jpeg.clone() } else { Vec::new() }),
                pose: c.pose.as_ref().map(crate::common::pb_transform),
                velocity: Some(proto::Velocity {
                    v_x: Some(c.motion.linear_velocity[0] as f32),
                    v_y: Some(c.motion.linear_velocity[1] as f32),
                    v_z: Some(c.motion.linear_velocity[2] as f32),
                    w_x: Some(c.motion.angular_velocity[0]),
                    w_y: Some(c.motion.angular_velocity[1]),
                    w_z: Some(c.motion.angular_velocity[2]),
                }),
                pose_timestamp: Some(c.motion.pose_timestamp),
                shutter: Some(c.motion.shutter),
                camera_trigger_time: Some(c.motion.camera_trigger_time),
                camera_readout_done_time: Some(c.motion.camera_readout_done_time),
                camera_segmentation_label: c.segmentation.as_ref().filter(|_| with_images).map(|s| {
                    proto::CameraSegmentationLabel {
                        panoptic_label_divisor: Some(s.divisor),
                        panoptic_label: Some(
                            scenetok::io::image::encode_png_u16(s.width, s.height, &s.values, &Default::default())
                                .unwrap(),
                        ),
                        instance_id_to_global_id_mapping: (0..s.local_instance_ids.len())
                            .map(|i| proto::InstanceIdToGlobalIdMapping {
                                local_instance_id: s.local_instance_ids.get(i).copied(),
                                global_instance_id: s.global_instance_ids.get(i).copied(),
                                is_tracked: s.is_tracked.get(i).copied(),
                            })
                            .collect(),
                        sequence_id: Some(s.sequence_id.clone()),
                        num_cameras_covered: None,
                    }
                }),
            })
            .collect();
        let laser_labels = f
            .lidar_boxes
            .iter()
            .map(|b| proto::Label {
                r#box: Some(label_box(&b.bbox)),
                metadata: Some(proto::LabelMetadata {
                    speed_x: Some(b.speed.x),
                    speed_y: Some(b.speed.y),
                    speed_z: Some(b.speed.z),
                    accel_x: Some(b.acceleration.x),
                    accel_y: Some(b.acceleration.y),
                    accel_z: Some(b.acceleration.z),
                }),
                r#type: Some(b.kind.value() as i32),
                id: Some(b.object_id.clone()),
                detection_difficulty_level: Some(b.detection_difficulty.value() as i32),
                tracking_difficulty_level: Some(b.tracking_difficulty.value() as i32),
                num_lidar_points_in_box: Some(b.num_lidar_points_in_box as i32),
                num_top_lidar_points_in_box: Some(b.num_top_lidar_points_in_box as i32),
                association: None,
            })
            .collect();
        let mut camera_labels = camera_labels(&f.camera_boxes, false);
        for a in &f.associations {
            for g in camera_labels.iter_mut().filter(|g| g.name == Some(a.camera.value() as i32)) {
                for l in g.labels.iter_mut().filter(|l| l.id.as_deref() == Some(a.camera_object_id.as_str())) {
                    l.association = Some(proto::LabelAssociation { laser_object_id: Some(a.laser_object_id.clone()) });
                }
            }
        }
        proto::Frame {
            context: Some(context),
            timestamp_micros: Some(f.timestamp_micros),
            pose: f.vehicle_pose.as_ref().map(crate::common::pb_transform),
            images,
            lasers,
            laser_labels,
            camera_labels,
            projected_lidar_labels: camera_labels_projected(&f.projected_lidar_boxes),
        }
    }

    fn camera_labels_projected(boxes: &[scene::CameraBox]) -> Vec<proto::CameraLabels> {
        camera_labels(boxes, true)
    }

    fn counts(c: &[(scene::BoxType, i32)]) -> Vec<proto::ObjectCount> {
        c.iter().map(|(t, n)| proto::ObjectCount { r#type: Some(t.value() as i32), count: Some(*n) }).collect()
    }

    /// The segment's tracks over its frames and its map, as one scenario.
    fn scenario_of(ds: &Dataset, segment: &str) -> Scenario {
        use scenetok::io::v2::motion::{MissingPose, segment_tracks};
        let (timestamps, tracks) = segment_tracks(ds, segment, MissingPose::Error).unwrap();
        let t0 = timestamps[0];
        let targets = (0..tracks.len().min(2))
            .map(|i| scene::PredictionTarget { track_index: i, difficulty: scene::DifficultyLevel::Level1 })
            .collect();
        Scenario {
            id: format!("{segment}-seed"),
            timestamps_seconds: timestamps.iter().map(|t| (t - t0) as f64 * 1e-6).collect(),
            current_time_index: timestamps.len() - 1,
            sdc_track_index: Some(0),
            tracks,
            tracks_to_predict: targets,
            objects_of_interest: Vec::new(),
            map: ds.read_map(segment).unwrap(),
            dynamic_map_states: vec![Vec::new(); timestamps.len()],
        }
    }

    fn point(p: &nalgebra::Vector3<f64>) -> proto::MapPoint {
        proto::MapPoint { x: Some(p.x), y: Some(p.y), z: Some(p.z) }
    }

    /// A scenetok scenario as the WOMD `Scenario` it would have been read from.
    fn womd_scenario(s: &Scenario) -> proto::Scenario {
        use proto::FeatureData as F;
        use scene::MapFeatureKind as K;
        let map_features = s
            .map
            .iter()
            .map(|m| {
                let v = m.feature_type.value() as i32;
                let polyline: Vec<proto::MapPoint> = m.polyline.iter().map(point).collect();
                let neighbors = |ids: &[i64]| {
                    ids.iter().map(|&id| proto::LaneNeighbor { feature_id: Some(id), ..Default::default() }).collect()
                };
                let data = match m.feature_type.kind() {
                    K::Lane => F::Lane(proto::LaneCenter {
                        speed_limit_mph: m.speed_limit_mph,
                        r#type: Some(v),
                        polyline,
                        entry_lanes: m.entry_lanes.clone(),
                        exit_lanes: m.exit_lanes.clone(),
                        left_neighbors: neighbors(&m.left_neighbors),
                        right_neighbors: neighbors(&m.right_neighbors),
                        ..Default::default()
                    }),
                    K::RoadLine => F::RoadLine(proto::RoadLine { r#type: Some(v - 5), polyline }),
                    K::RoadEdge => F::RoadEdge(proto::RoadEdge { r#type: Some(v - 14), polyline }),
                    K::StopSign => F::StopSign(proto::StopSign {
                        lane: m.controlled_lanes.clone(),
                        position: m.polyline.first().map(point),
                    }),
                    K::Crosswalk => F::Crosswalk(proto::Polygon { polygon: polyline }),
                    K::SpeedBump => F::SpeedBump(proto::Polygon { polygon: polyline }),
                    K::Driveway => F::Driveway(proto::Polygon { polygon: polyline }),
                };
                proto::MapFeature { id: Some(m.id), feature_data: Some(data) }
            })
            .collect();
        proto::Scenario {
            compressed_frame_laser_data: Vec::new(),
            frame_camera_tokens: Vec::new(),
            timestamps_seconds: s.timestamps_seconds.clone(),
            tracks: s
                .tracks
                .iter()
                .map(|t| proto::Track {
                    id: Some(t.id as i32),
                    object_type: Some(t.agent_type.value() as i32),
                    states: t
                        .states
                        .iter()
                        .map(|a| proto::ObjectState {
                            center_x: Some(a.x),
                            center_y: Some(a.y),
                            center_z: Some(a.z),
                            length: Some(a.length),
                            width: Some(a.width),
                            height: Some(a.height),
                            heading: Some(a.heading),
                            velocity_x: Some(a.velocity_x),
                            velocity_y: Some(a.velocity_y),
                            valid: Some(a.valid),
                        })
                        .collect(),
                })
                .collect(),
            objects_of_interest: s.objects_of_interest.iter().map(|&i| i as i32).collect(),
            scenario_id: Some(s.id.clone()),
            sdc_track_index: s.sdc_track_index.map(|i| i as i32),
            dynamic_map_states: s
                .dynamic_map_states
                .iter()
                .map(|d| proto::DynamicMapState {
                    lane_states: d
                        .iter()
                        .map(|st| proto::TrafficSignalLaneState {
                            lane: Some(st.lane_id),
                            state: Some(st.state),
                            stop_point: Some(point(&st.stop_point)),
                        })
                        .collect(),
                })
                .collect(),
            map_features,
            current_time_index: Some(s.current_time_index as i32),
            tracks_to_predict: s
                .tracks_to_predict
                .iter()
                .map(|p| proto::RequiredPrediction {
                    track_index: Some(p.track_index as i32),
                    difficulty: Some(p.difficulty.value() as i32),
                })
                .collect(),
        }
    }

    fn every_map_kind() -> proto::Scenario {
        use proto::FeatureData as F;
        let p = |x: f64| proto::MapPoint { x: Some(x), y: Some(1.0), z: Some(0.0) };
        let state =
            proto::ObjectState { center_x: Some(1.0), length: Some(4.0), valid: Some(true), ..Default::default() };
        let features = vec![
            F::Lane(proto::LaneCenter {
                r#type: Some(2),
                polyline: vec![p(0.0), p(1.0)],
                entry_lanes: vec![2],
                ..Default::default()
            }),
            F::RoadLine(proto::RoadLine { r#type: Some(7), polyline: vec![p(2.0)] }),
            F::RoadEdge(proto::RoadEdge { r#type: Some(1), polyline: vec![p(3.0), p(4.0)] }),
            F::StopSign(proto::StopSign { lane: vec![1], position: Some(p(5.0)) }),
            F::Crosswalk(proto::Polygon { polygon: vec![p(0.0), p(1.0), p(2.0)] }),
            F::SpeedBump(proto::Polygon { polygon: vec![p(0.0), p(1.0), p(2.0)] }),
            F::Driveway(proto::Polygon { polygon: vec![p(0.0), p(1.0), p(2.0)] }),
        ];
        proto::Scenario {
            compressed_frame_laser_data: Vec::new(),
            frame_camera_tokens: Vec::new(),
            scenario_id: Some("every-map-kind".into()),
            timestamps_seconds: vec![0.0, 0.1],
            current_time_index: Some(1),
            tracks: vec![proto::Track { id: Some(3), object_type: Some(1), states: vec![state; 2] }],
            sdc_track_index: Some(0),
            tracks_to_predict: vec![proto::RequiredPrediction { track_index: Some(0), difficulty: Some(2) }],
            objects_of_interest: vec![3],
            map_features: features
                .into_iter()
                .enumerate()
                .map(|(i, f)| proto::MapFeature { id: Some(i as i64 + 1), feature_data: Some(f) })
                .collect(),
            dynamic_map_states: vec![
                proto::DynamicMapState {
                    lane_states: vec![proto::TrafficSignalLaneState {
                        lane: Some(1),
                        state: Some(4),
                        stop_point: Some(p(1.0))
                    }],
                };
                2
            ],
        }
    }
}
