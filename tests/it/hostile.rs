//! Hostile use (issue 15, "nothing lost, nothing silently wrong"): every case a hostile-user
//! session found, run through the `scenetok` binary as a user runs it, and a corpus of bad
//! inputs built from the fixture that every command must refuse cleanly: exit code 1 or 2
//! (never a panic or a signal), a message naming the bad file, and every output that was
//! there before the run byte-identical after it.
//!
//! `SCENETOK_SHOW_CORPUS=1 cargo test --test it bad_file_corpus -- --nocapture` prints the
//! first line of every message of the corpus, for reviewing them.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use nalgebra::{Matrix4, vector};
use prost::Message;
use scenetok::io::v2::schema::key;
use scenetok::io::v2::*;
use scenetok::io::{fixture, proto, tfrecord};
use scenetok::scene::*;

use crate::common;

// ---------------------------------------------------------------------------------------
// Running the command and looking at what it left.

/// One run of the binary.
struct Run {
    /// The exit code; `None` when a signal ended it.
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// What a failed assertion prints.
    fn show(&self) -> String {
        format!(
            "exit {:?} after {:.2} s\nstdout: {}\nstderr: {}",
            self.code,
            self.took.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

fn scenetok<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_scenetok"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("scenetok runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// A failure as a user should see it: exit code 1 (an error) or 2 (a usage error), never a
/// panic (101) or a signal; one message naming `names` (all of them).
#[track_caller]
fn assert_fails(run: &Run, names: &[&str]) {
    assert!(matches!(run.code, Some(1 | 2)), "expected exit 1 or 2: {}", run.show());
    assert!(!run.stderr.contains("panicked"), "{}", run.show());
    for n in names {
        assert!(run.stderr.contains(n), "stderr should name `{n}`: {}", run.show());
    }
}

#[track_caller]
fn assert_succeeds(run: &Run) {
    assert!(run.ok(), "expected success: {}", run.show());
}

/// Every file under `root` (or `root` itself) with its bytes; folders as empty entries, so
/// a file or folder appearing or vanishing shows.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        if p.is_dir() {
            out.insert(p.to_path_buf(), None);
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
            entries.sort();
            for e in entries {
                walk(&e, out);
            }
        } else if p.exists() {
            out.insert(p.to_path_buf(), Some(std::fs::read(p).unwrap()));
        }
    }
    walk(root, &mut out);
    out
}

/// The paths whose bytes differ between two snapshots (or that appeared or vanished).
fn changed(a: &BTreeMap<PathBuf, Option<Vec<u8>>>, b: &BTreeMap<PathBuf, Option<Vec<u8>>>) -> Vec<PathBuf> {
    let mut keys: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

// ---------------------------------------------------------------------------------------
// Inputs: the fixture, a longer dataset for motion, WOMD scenarios and v1 frames built here.

fn pose(x: f64) -> Transform {
    Transform(Matrix4::new_translation(&vector![x, 0.0, 0.0]))
}

/// `n` frames at 10 Hz made of the fixture's three (every component filled in), the vehicle
/// driving at 5 m/s: enough for motion windows (91 frames) when `n` ≥ 91.
fn frames(n: usize) -> Vec<Frame> {
    let templates = fixture::frames().unwrap();
    (0..n)
        .map(|i| {
            let mut f = templates[i % templates.len()].clone();
            f.timestamp_micros = fixture::FIRST_TIMESTAMP + i as i64 * 100_000;
            f.vehicle_pose = Some(pose(0.5 * i as f64));
            for c in &mut f.cameras {
                c.pose = Some(pose(0.5 * i as f64));
                c.motion.pose_timestamp = f.timestamp_micros as f64 * 1e-6;
            }
            for b in &mut f.lidar_boxes {
                // Agents ahead of the vehicle, driving a little slower.
                b.bbox.center.x -= 0.1 * i as f64;
            }
            f
        })
        .collect()
}

/// Writes `frames` (and the fixture's map) as a v2 dataset of the fixture's segment.
fn write_dataset(root: &Path, frames: &[Frame]) -> PathBuf {
    let mut w = SegmentWriter::new(root, fixture::SEGMENT);
    for f in frames {
        w.write_frame(f).unwrap();
    }
    w.write_map(&fixture::map()).unwrap();
    w.finish().unwrap();
    root.to_path_buf()
}

fn component(root: &Path, c: Component) -> PathBuf {
    component_path(root, c, fixture::SEGMENT)
}

/// Every row of a component file.
fn rows<R: Record>(root: &Path) -> Vec<R> {
    ComponentFile::open_any(component(root, R::COMPONENT)).unwrap().read_all::<R>().unwrap()
}

/// Rewrites one component file from its batches, changed by `f`.
fn rewrite_batches(path: &Path, f: impl Fn(RecordBatch) -> RecordBatch) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).unwrap();
    let batches: Vec<RecordBatch> =
        ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(|b| f(b.unwrap())).collect();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batches[0].schema(), None).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// `batch` with column `name` replaced (or dropped, with `None`).
fn with_column(batch: RecordBatch, name: &str, new: Option<ArrayRef>) -> RecordBatch {
    let schema = batch.schema();
    let mut cols: Vec<(String, ArrayRef)> = Vec::new();
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        if field.name() == name {
            if let Some(n) = &new {
                cols.push((name.to_string(), n.clone()));
            }
        } else {
            cols.push((field.name().clone(), col.clone()));
        }
    }
    RecordBatch::try_from_iter(cols).unwrap()
}

/// A small real JPEG whose SOF0 header claims `w`×`h`.
fn jpeg_claiming(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut bytes = jpeg.to_vec();
    let sof = bytes.windows(2).position(|m| m == [0xff, 0xc0]).expect("a baseline JPEG has SOF0");
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

/// A WOMD scenario of 91 steps (current step 10): two vehicles and a pedestrian driving
/// along a lane, the SDC among them, the first three to predict.
fn womd_scenario(id: &str) -> proto::Scenario {
    let track = |id: i32, ty: i32, y: f64, v: f32| proto::Track {
        id: Some(id),
        object_type: Some(ty),
        states: (0..91)
            .map(|t| proto::ObjectState {
                center_x: Some(v as f64 * 0.1 * t as f64),
                center_y: Some(y),
                center_z: Some(0.0),
                length: Some(if ty == 2 { 0.8 } else { 4.5 }),
                width: Some(if ty == 2 { 0.8 } else { 2.0 }),
                height: Some(1.6),
                heading: Some(0.0),
                velocity_x: Some(v),
                velocity_y: Some(0.0),
                valid: Some(true),
            })
            .collect(),
    };
    let lane = (0..20).map(|i| proto::MapPoint { x: Some(i as f64 * 10.0), y: Some(0.0), z: Some(0.0) }).collect();
    proto::Scenario {
        scenario_id: Some(id.into()),
        timestamps_seconds: (0..91).map(|t| t as f64 * 0.1).collect(),
        current_time_index: Some(10),
        tracks: vec![track(1, 1, 0.0, 8.0), track(2, 2, 6.0, 1.5), track(3, 1, -3.5, 10.0), track(4, 1, 3.5, 6.0)],
        sdc_track_index: Some(3),
        tracks_to_predict: (0..3)
            .map(|i| proto::RequiredPrediction { track_index: Some(i), difficulty: Some(1) })
            .collect(),
        map_features: vec![proto::MapFeature {
            id: Some(100),
            feature_data: Some(proto::FeatureData::Lane(proto::LaneCenter {
                r#type: Some(2),
                polyline: lane,
                ..Default::default()
            })),
        }],
        ..Default::default()
    }
}

fn write_womd(path: &Path, scenarios: &[proto::Scenario]) -> PathBuf {
    tfrecord::write_records(path, scenarios.iter().map(|s| s.encode_to_vec())).unwrap();
    path.to_path_buf()
}

/// A v1 `Frame` TFRecord of `n` small frames (context, pose; no sensors).
fn write_v1(path: &Path, n: usize) -> PathBuf {
    let records = (0..n).map(|i| {
        let m = pose(i as f64).to_row_major().to_vec();
        proto::Frame {
            context: Some(proto::Context { name: Some("v1_segment".into()), ..Default::default() }),
            timestamp_micros: Some(fixture::FIRST_TIMESTAMP + i as i64 * 100_000),
            pose: Some(proto::Transform { transform: m }),
            ..Default::default()
        }
        .encode_to_vec()
    });
    tfrecord::write_records(path, records).unwrap();
    path.to_path_buf()
}

// ---------------------------------------------------------------------------------------
// Data lost: a failing run leaves every earlier output as it was; outputs on inputs refused.

/// `viz --save keep.rrd` failing at frame 6 (a second lidar row for TOP) leaves the
/// recording of the previous, good run byte-identical, and no temporary file beside it.
#[test]
fn viz_save_failing_midway_keeps_the_previous_recording() {
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &frames(8));
    let out = dir.path().join("out");
    let keep = out.join("keep.rrd");
    assert_succeeds(&scenetok(&["viz", "--data", s(&ds), "--save", s(&keep)]));
    let before = snapshot(&out);

    let mut lidar: Vec<LidarRecord> = rows(&ds);
    let frame6 = fixture::FIRST_TIMESTAMP + 6 * 100_000;
    let dup = lidar.iter().find(|r| r.key.timestamp_micros == frame6 && r.laser == LaserName::Top).unwrap().clone();
    lidar.push(dup);
    write_component(&ds, fixture::SEGMENT, &lidar).unwrap();
    let run = scenetok(&["viz", "--data", s(&ds), "--save", s(&keep)]);
    assert_fails(&run, &[s(&component(&ds, Component::Lidar)), "duplicate", &frame6.to_string()]);
    assert_eq!(changed(&before, &snapshot(&out)), Vec::<PathBuf>::new(), "the old recording stays, nothing beside it");
}

/// `features --out F.parquet` failing on a corrupt JPEG in the last frame leaves the
/// previous F.parquet and F.cameras.parquet whole (no 4-byte stubs, no temporaries).
#[test]
fn features_failing_on_a_corrupt_jpeg_in_the_last_frame_keeps_the_previous_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut fr = fixture::frames().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &fr);
    let out = dir.path().join("out");
    let f = out.join("F.parquet");
    assert_succeeds(&scenetok(&["features", "--data", s(&ds), "--out", s(&f)]));
    let before = snapshot(&out);
    assert_eq!(before.len(), 3, "{:?}", before.keys());

    let bad = dir.path().join("bad");
    fr[2].cameras[0].jpeg = b"\xff\xd8\xff\xe0 not really a jpeg".to_vec();
    write_dataset(&bad, &fr);
    let run = scenetok(&["features", "--data", s(&bad), "--out", s(&f)]);
    assert_fails(&run, &["JPEG", &fr[2].timestamp_micros.to_string()]);
    assert_eq!(changed(&before, &snapshot(&out)), Vec::<PathBuf>::new());
}

/// `features --out` naming one of its own inputs (a v1 TFRecord, a file inside the input
/// dataset folder, or where the per-camera file would land inside it) is refused before any
/// work, and the input is intact.
#[test]
fn features_out_on_one_of_its_inputs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &fixture::frames().unwrap());
    let v1 = write_v1(&dir.path().join("frames.tfrecord"), 2);
    let lidar = component(&ds, Component::Lidar);
    for (data, out) in [
        (&v1, v1.clone()),
        (&ds, lidar.clone()),
        (&ds, ds.join("features.parquet")),
        (&ds, ds.join("lidar").join("..").join("lidar").join(format!("{}.parquet", fixture::SEGMENT))),
    ] {
        let before = snapshot(dir.path());
        let run = scenetok(&["features", "--data", s(data), "--out", s(&out)]);
        assert_fails(&run, &["input"]);
        assert_eq!(changed(&before, &snapshot(dir.path())), Vec::<PathBuf>::new(), "{}", out.display());
    }
}

/// `viz --save` naming its input TFRecord is refused; the input is intact.
#[test]
fn viz_save_on_its_input_tfrecord_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let womd = write_womd(&dir.path().join("scenarios.tfrecord"), &[womd_scenario("a")]);
    let v1 = write_v1(&dir.path().join("frames.tfrecord"), 2);
    for input in [&womd, &v1] {
        let before = snapshot(dir.path());
        let run = scenetok(&["viz", "--data", s(input), "--save", s(input)]);
        assert_fails(&run, &[s(input), "input"]);
        assert_eq!(changed(&before, &snapshot(dir.path())), Vec::<PathBuf>::new());
    }
}

/// `eval --out RUN` failing leaves the previous RUN folder exactly as it was (every file
/// from one run); `--out` naming a file is refused before any work.
#[test]
fn eval_out_failing_keeps_the_previous_run_whole() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_womd(&dir.path().join("good.tfrecord"), &[womd_scenario("a"), womd_scenario("b")]);
    let run_dir = dir.path().join("RUN");
    assert_succeeds(&scenetok(&["eval", "--data", s(&good), "--out", s(&run_dir)]));
    let before = snapshot(&run_dir);
    for f in ["metrics.json", "predictions.parquet", "submission.binproto", "report.html", "report.md"] {
        assert!(before.contains_key(&run_dir.join(f)), "{f}");
    }

    let mut late = womd_scenario("b");
    late.current_time_index = Some(90);
    let bad = write_womd(&dir.path().join("bad.tfrecord"), &[womd_scenario("a"), late]);
    let run = scenetok(&["eval", "--data", s(&bad), "--out", s(&run_dir)]);
    assert_fails(&run, &["current_time_index"]);
    assert_eq!(changed(&before, &snapshot(&run_dir)), Vec::<PathBuf>::new());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "no staging folder left: {leftovers:?}");

    let file = dir.path().join("good.tfrecord");
    let before = snapshot(dir.path());
    assert_fails(&scenetok(&["eval", "--data", s(&good), "--out", s(&file)]), &[s(&file)]);
    assert_eq!(changed(&before, &snapshot(dir.path())), Vec::<PathBuf>::new());
}

/// `eval --out` naming the dataset it reads, or a folder holding it, or a folder of other
/// files, is refused before any work: a run folder is replaced whole, and these would go.
#[test]
fn eval_out_over_its_input_or_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("data").join("ds"), &frames(92));
    let notes = dir.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("todo.txt"), b"keep me").unwrap();
    for out in [ds.clone(), dir.path().join("data"), ds.join("lidar"), notes.clone()] {
        let before = snapshot(dir.path());
        let run = scenetok(&["eval", "--data", s(&ds), "--out", s(&out)]);
        assert_fails(&run, &[s(&out)]);
        assert_eq!(changed(&before, &snapshot(dir.path())), Vec::<PathBuf>::new(), "{}", out.display());
    }
    // A new folder, or the folder of a previous run, is fine.
    let run_dir = dir.path().join("run");
    assert_succeeds(&scenetok(&["eval", "--data", s(&ds), "--out", s(&run_dir)]));
    assert_succeeds(&scenetok(&["eval", "--data", s(&ds), "--out", s(&run_dir)]));
}

// ---------------------------------------------------------------------------------------
// Panics, aborts and hangs: clear errors, fast.

/// A first frame at timestamp i64::MIN: eval motion does not panic (overflowing
/// arithmetic), it says the frames are not 10 Hz.
#[test]
fn first_timestamp_i64_min_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut fr = frames(92);
    fr[0].timestamp_micros = i64::MIN;
    let ds = write_dataset(&dir.path().join("ds"), &fr);
    let run = scenetok(&["eval", "--data", s(&ds), "--out", s(&dir.path().join("run"))]);
    assert_fails(&run, &[&i64::MIN.to_string(), "10 Hz"]);
}

/// Sizes that cannot be generated are refused at once, naming the setting.
#[test]
fn generate_refuses_impossible_sizes_fast() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    for (args, name) in [
        (&["--segments", "4294967296", "--frames", "4294967296"][..], "--segments"),
        (&["--frames", "1000000000"][..], "--frames"),
        (&["--frames", "18446744073709551615"][..], "--frames"),
        (&["--preset", "tiny", "--lidar-div", "64,2650"][..], "--lidar-div"),
        (&["--preset", "tiny", "--lidar-div", "0,1"][..], "--lidar-div"),
        (&["--preset", "tiny", "--camera-div", "100000"][..], "--camera-div"),
    ] {
        let run = scenetok(&[&["generate", "--out", s(&out)][..], args].concat());
        assert_fails(&run, &[name]);
        assert!(run.took < Duration::from_secs(5), "{}", run.show());
        assert!(!out.exists(), "nothing written for {args:?}");
    }
}

/// `viz --frames` past the last possible index is a usage error (exit 2).
#[test]
fn viz_frames_past_the_last_index_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &fixture::frames().unwrap());
    for frames in ["18446744073709551615", "18446744073709551616", "5..2", "-1", "..0"] {
        let arg = format!("--frames={frames}");
        let run = scenetok(&["viz", "--data", s(&ds), &arg, "--save", s(&dir.path().join("x.rrd"))]);
        assert_eq!(run.code, Some(2), "{}", run.show());
        assert_fails(&run, &["--frames"]);
    }
    // A range past the end of the data is an error naming the input, not an empty recording.
    let run = scenetok(&["viz", "--data", s(&ds), "--frames", "10..20", "--save", s(&dir.path().join("x.rrd"))]);
    assert_fails(&run, &[s(&ds), "no frame"]);
    assert!(!dir.path().join("x.rrd").exists());
}

/// A JPEG whose header claims 65500×65500 (a small real JPEG with its SOF0 size patched)
/// fails fast with a message naming the claim, before anything that size is allocated.
#[test]
fn jpeg_header_claiming_65500x65500_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut fr = fixture::frames().unwrap();
    fr[1].cameras[0].jpeg = jpeg_claiming(&fr[1].cameras[0].jpeg, 65500, 65500);
    let ds = write_dataset(&dir.path().join("ds"), &fr);
    let run = scenetok(&["features", "--data", s(&ds), "--out", s(&dir.path().join("F.parquet"))]);
    assert_fails(&run, &["65500", &fr[1].timestamp_micros.to_string(), "FRONT"]);
    assert!(run.took < Duration::from_secs(10), "{}", run.show());
    let run = scenetok(&["viz", "--data", s(&ds), "--save", s(&dir.path().join("x.rrd"))]);
    assert_fails(&run, &["65500"]);
}

// ---------------------------------------------------------------------------------------
// Silently wrong: bad values are errors naming where they are, not wrong numbers.

/// A v2 dataset whose vehicle_pose is missing, empty, or of another segment: eval motion
/// stops with an error naming the file (or folder) and frame; with `--allow-missing` it
/// gives a result and says on stderr how many frames had no pose.
#[test]
fn missing_empty_or_mismatched_vehicle_pose_is_an_error_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let fr = frames(92);
    let first = fr[0].timestamp_micros.to_string();
    let mut cases: Vec<(&str, PathBuf, PathBuf)> = Vec::new();

    let ds = write_dataset(&dir.path().join("missing"), &fr);
    std::fs::remove_dir_all(ds.join("vehicle_pose")).unwrap();
    cases.push(("missing", ds.clone(), ds.clone()));

    let ds = write_dataset(&dir.path().join("empty"), &fr);
    let pose_file = component(&ds, Component::VehiclePose);
    rewrite_batches(&pose_file, |b| b.slice(0, 0));
    cases.push(("empty", ds.clone(), pose_file));

    let ds = write_dataset(&dir.path().join("other_segment"), &fr);
    let pose_file = component(&ds, Component::VehiclePose);
    rewrite_batches(&pose_file, |b| {
        let n = b.num_rows();
        with_column(b, key::SEGMENT, Some(Arc::new(StringArray::from(vec!["another_segment"; n]))))
    });
    cases.push(("other segment", ds.clone(), pose_file));

    let ds = write_dataset(&dir.path().join("one_frame"), &fr);
    let pose_file = component(&ds, Component::VehiclePose);
    let mut poses: Vec<VehiclePoseRecord> = rows(&ds);
    poses.remove(40);
    write_component(&ds, fixture::SEGMENT, &poses).unwrap();
    cases.push(("frame 40", ds.clone(), pose_file));

    for (what, ds, file) in cases {
        let out = dir.path().join(format!("run-{what}"));
        let run = scenetok(&["eval", "--data", s(&ds), "--out", s(&out)]);
        let frame = if what == "frame 40" { fr[40].timestamp_micros.to_string() } else { first.clone() };
        assert_fails(&run, &[s(&file), "vehicle_pose", &frame, "--allow-missing"]);
        assert!(!out.exists(), "{what}");
        let run = scenetok(&["eval", "--data", s(&ds), "--out", s(&out), "--allow-missing"]);
        assert_succeeds(&run);
        assert!(run.stderr.contains("vehicle_pose") && run.stderr.contains("WARN"), "{what}: {}", run.show());
        assert!(out.join("metrics.json").exists(), "{what}");
    }
}

/// NaN or infinity in a box centre or size, or a negative size (v2 lidar_box): an error
/// naming the file, the column and the row, from every command that reads boxes.
#[test]
fn non_finite_or_negative_boxes_are_errors_naming_column_and_row() {
    let dir = tempfile::tempdir().unwrap();
    type Edit = fn(&mut Box3d);
    let edits: [(&str, Edit); 5] = [
        ("[LiDARBoxComponent].box.center.x", |b| b.center.x = f64::NAN),
        ("[LiDARBoxComponent].box.center.z", |b| b.center.z = f64::INFINITY),
        ("[LiDARBoxComponent].box.size.y", |b| b.size.y = f64::NAN),
        ("[LiDARBoxComponent].box.size.x", |b| b.size.x = f64::NEG_INFINITY),
        ("[LiDARBoxComponent].box.size.z", |b| b.size.z = -1.6),
    ];
    for (k, (column, edit)) in edits.into_iter().enumerate() {
        let mut fr = frames(92);
        edit(&mut fr[50].lidar_boxes[1].bbox);
        let ds = write_dataset(&dir.path().join(format!("ds{k}")), &fr);
        let file = component(&ds, Component::LidarBox);
        // Two boxes a frame: frame 50's second box is row 101.
        let names = [s(&file), column, "row 101"];
        assert_fails(&scenetok(&["eval", "--data", s(&ds), "--out", s(&dir.path().join("run"))]), &names);
        assert_fails(&scenetok(&["viz", "--data", s(&ds), "--save", s(&dir.path().join("x.rrd"))]), &names);
        assert!(!dir.path().join("run").exists() && !dir.path().join("x.rrd").exists());
    }
}

/// A NaN in a WOMD state is an error naming the record, track and field.
#[test]
fn womd_nan_state_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    type Edit = fn(&mut proto::ObjectState);
    let fields: [(&str, Edit); 4] = [
        ("center_x", |s| s.center_x = Some(f64::NAN)),
        ("velocity_y", |s| s.velocity_y = Some(f32::INFINITY)),
        ("heading", |s| s.heading = Some(f32::NAN)),
        ("length", |s| s.length = Some(-4.0)),
    ];
    for (k, (field, edit)) in fields.into_iter().enumerate() {
        let mut sc = womd_scenario("nan");
        edit(&mut sc.tracks[1].states[30]);
        let file = write_womd(&dir.path().join(format!("s{k}.tfrecord")), &[womd_scenario("ok"), sc]);
        let names = [s(&file), "record 1", "tracks[1]", "state 30", field];
        assert_fails(&scenetok(&["eval", "--data", s(&file), "--out", s(&dir.path().join("run"))]), &names);
        assert_fails(&scenetok(&["viz", "--data", s(&file), "--save", s(&dir.path().join("x.rrd"))]), &names);
    }
}

/// `current_time_index` 90 in a WOMD scenario: eval says so (it does not report a minADE
/// of thousands of metres measured from the wrong step).
#[test]
fn womd_current_time_index_90_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = womd_scenario("late");
    sc.current_time_index = Some(90);
    let file = write_womd(&dir.path().join("late.tfrecord"), &[sc]);
    let run = scenetok(&["eval", "--data", s(&file), "--out", s(&dir.path().join("run"))]);
    assert_fails(&run, &[s(&file), "current_time_index", "90", "10"]);
    assert!(!dir.path().join("run").exists());
}

/// lidar-seg on a dataset without lidar_calibration: an error naming it, not a result over
/// "0 labelled points".
#[test]
fn lidar_seg_without_lidar_calibration_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &fixture::frames().unwrap());
    std::fs::remove_dir_all(ds.join("lidar_calibration")).unwrap();
    let out = dir.path().join("seg");
    let run = scenetok(&["eval", "--task", "lidar-seg", "--data", s(&ds), "--out", s(&out)]);
    assert_fails(&run, &[s(&ds), "lidar_calibration", "laser TOP"]);
    assert!(!out.exists());
    let run = scenetok(&["features", "--data", s(&ds), "--out", s(&dir.path().join("F.parquet"))]);
    assert_fails(&run, &[s(&ds), "lidar_calibration"]);
}

/// The same object twice in one frame, one laser calibrated twice differently, a second
/// lidar row for one laser: errors naming the file and what was expected.
#[test]
fn duplicate_boxes_and_conflicting_calibrations_are_errors() {
    let dir = tempfile::tempdir().unwrap();

    let mut fr = frames(92);
    let twin = fr[45].lidar_boxes[0].clone();
    fr[45].lidar_boxes.push(twin);
    let ds = write_dataset(&dir.path().join("twin"), &fr);
    let file = component(&ds, Component::LidarBox);
    let names = [s(&file), "car_a", "one lidar_box row per object and frame"];
    assert_fails(&scenetok(&["eval", "--data", s(&ds), "--out", s(&dir.path().join("run"))]), &names);
    assert_fails(
        &scenetok(&["viz", "--data", s(&ds), "--frames", "40..50", "--save", s(&dir.path().join("x.rrd"))]),
        &names,
    );

    let ds = write_dataset(&dir.path().join("calib"), &fixture::frames().unwrap());
    let mut calibs: Vec<LidarCalibrationRecord> = rows(&ds);
    let mut other = calibs.iter().find(|c| c.calibration.laser == LaserName::Top).unwrap().clone();
    other.calibration.extrinsic.0[(0, 3)] += 0.5;
    calibs.push(other);
    write_component(&ds, fixture::SEGMENT, &calibs).unwrap();
    let file = component(&ds, Component::LidarCalibration);
    let names = [s(&file), "two different calibrations", "laser TOP"];
    assert_fails(&scenetok(&["eval", "--task", "lidar-seg", "--data", s(&ds)]), &names);
    assert_fails(&scenetok(&["viz", "--data", s(&ds), "--save", s(&dir.path().join("x.rrd"))]), &names);
    assert_fails(&scenetok(&["features", "--data", s(&ds), "--out", s(&dir.path().join("F.parquet"))]), &names);
    assert!(!dir.path().join("x.rrd").exists() && !dir.path().join("F.parquet").exists());
}

/// `viz` of an empty TFRecord, or of one whose only record is empty: an error saying what
/// was expected.
#[test]
fn empty_tfrecords_are_errors_saying_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.tfrecord");
    std::fs::write(&empty, b"").unwrap();
    let blank = dir.path().join("blank.tfrecord");
    tfrecord::write_records(&blank, [b"".as_slice()]).unwrap();
    for file in [&empty, &blank] {
        for args in [
            vec!["viz", "--data", s(file), "--save", s(&dir.path().join("x.rrd"))],
            vec!["eval", "--data", s(file), "--out", s(&dir.path().join("run"))],
            vec!["features", "--data", s(file), "--out", s(&dir.path().join("F.parquet"))],
        ] {
            let run = scenetok(&args);
            assert_fails(&run, &[s(file), "expected", "record"]);
            assert!(run.stderr.lines().count() == 1, "one line: {}", run.show());
            assert!(run.stderr.contains("WOMD Scenario") && run.stderr.contains("v1 Frame"), "{}", run.show());
        }
    }
    assert!(!dir.path().join("x.rrd").exists());
}

/// metrics.json never holds NaN: a step where no agent of a type has a valid ground truth
/// (the pedestrian leaves the scene after 4 s) is `null`, and `scenetok report` reads back
/// what eval wrote and draws the same report.
#[test]
fn metrics_json_has_no_nan_and_report_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = womd_scenario("leaves");
    sc.tracks[1].states[50..].iter_mut().for_each(|st| st.valid = Some(false));
    let file = write_womd(&dir.path().join("leaves.tfrecord"), &[sc]);
    let run_dir = dir.path().join("run");
    assert_succeeds(&scenetok(&["eval", "--data", s(&file), "--out", s(&run_dir)]));
    for name in ["metrics.json", "report_data.json"] {
        let text = std::fs::read_to_string(run_dir.join(name)).unwrap();
        assert!(!text.contains("NaN") && !text.contains("Infinity"), "{name}: {text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("metrics.json")).unwrap()).unwrap();
    let ped =
        metrics["step_errors"].as_array().unwrap().iter().find(|e| e["object_type"] == "TYPE_PEDESTRIAN").unwrap();
    let errors = ped["mean_min_de"].as_array().unwrap();
    assert!(errors.first().unwrap().is_f64() && errors.last().unwrap().is_null(), "{ped}");

    let report = run_dir.join("report.html");
    let before = std::fs::read(&report).unwrap();
    std::fs::remove_file(&report).unwrap();
    assert_succeeds(&scenetok(&["report", s(&run_dir)]));
    assert_eq!(std::fs::read(&report).unwrap(), before, "the report redrawn from the run is the one eval wrote");
    // Two runs compare.
    let run_b = dir.path().join("run_b");
    assert_succeeds(&scenetok(&["eval", "--data", s(&file), "--out", s(&run_b), "--model", "constant-velocity"]));
    assert_succeeds(&scenetok(&["report", s(&run_dir), s(&run_b), "--out", s(&dir.path().join("cmp"))]));
}

// ---------------------------------------------------------------------------------------
// Misleading or vague messages.

/// viz of a WOMD file whose current_time_index is out of range names the field (not
/// "cannot decode Frame protobuf").
#[test]
fn viz_of_womd_with_a_bad_current_time_index_names_it() {
    let dir = tempfile::tempdir().unwrap();
    for cti in [91, -1, 1000] {
        let mut sc = womd_scenario("bad");
        sc.current_time_index = Some(cti);
        let file = write_womd(&dir.path().join("bad.tfrecord"), &[sc]);
        let run = scenetok(&["viz", "--data", s(&file), "--save", s(&dir.path().join("x.rrd"))]);
        assert_fails(&run, &[s(&file), "current_time_index", &cti.to_string()]);
        assert!(!run.stderr.contains("Frame protobuf"), "{}", run.show());
    }
}

/// A parquet file or a file where a folder is expected: the message says what was
/// expected (not "length CRC mismatch", not "Not a directory").
#[test]
fn inputs_of_the_wrong_kind_say_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &fixture::frames().unwrap());
    let lidar = component(&ds, Component::Lidar);
    let renamed = dir.path().join("lidar.bin");
    std::fs::copy(&lidar, &renamed).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"just some text, no records here").unwrap();
    let run_dir = dir.path().join("run");
    for data in [&lidar, &renamed] {
        let run = scenetok(&["eval", "--data", s(data), "--out", s(&run_dir)]);
        assert_fails(&run, &[s(data), "dataset folder", "TFRecord"]);
        assert!(!run.stderr.contains("CRC"), "{}", run.show());
        let run = scenetok(&["eval", "--task", "lidar-seg", "--data", s(data)]);
        assert_fails(&run, &[s(data), "dataset folder"]);
        assert!(!run.stderr.contains("Not a directory"), "{}", run.show());
    }
    for args in [
        vec!["eval", "--data", s(&text), "--out", s(&run_dir)],
        vec!["eval", "--task", "lidar-seg", "--data", s(&text)],
        vec!["viz", "--data", s(&text), "--save", s(&dir.path().join("x.rrd"))],
        vec!["features", "--data", s(&text), "--out", s(&dir.path().join("F.parquet"))],
    ] {
        let run = scenetok(&args);
        assert_fails(&run, &[s(&text), "expected", "dataset folder"]);
        assert!(!run.stderr.contains("CRC") && !run.stderr.contains("Not a directory"), "{}", run.show());
    }
    // A WOMD file where frames are needed, a v1 file where scenarios are.
    let womd = write_womd(&dir.path().join("s.tfrecord"), &[womd_scenario("a")]);
    let run = scenetok(&["eval", "--task", "lidar-seg", "--data", s(&womd)]);
    assert_fails(&run, &[s(&womd), "history LiDAR", "WOMD"]);
    let v1 = write_v1(&dir.path().join("f.tfrecord"), 1);
    let run = scenetok(&["eval", "--data", s(&v1), "--out", s(&run_dir)]);
    assert_fails(&run, &[s(&v1), "motion scenarios", "v1 Frame"]);
}

/// A dataset re-saved by pyarrow (list children named `element`) reads through the commands
/// as the original does.
#[test]
fn a_dataset_resaved_by_pyarrow_reads_through_the_commands() {
    let Some(py) = common::python_with("pyarrow") else { return };
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &fixture::frames().unwrap());
    let original = scenetok(&["eval", "--task", "lidar-seg", "--data", s(&ds)]);
    assert_succeeds(&original);
    let script = r#"
import sys, pathlib, pyarrow.parquet as pq
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/*.parquet")):
    pq.write_table(pq.read_table(p), p)
"#;
    let out = Command::new(py).args(["-c", script]).arg(&ds).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resaved = scenetok(&["eval", "--task", "lidar-seg", "--data", s(&ds)]);
    assert_succeeds(&resaved);
    assert_eq!(resaved.stdout, original.stdout);
    assert_succeeds(&scenetok(&["viz", "--data", s(&ds), "--save", s(&dir.path().join("x.rrd"))]));
    assert_succeeds(&scenetok(&["inspect", s(&ds)]));
}

// ---------------------------------------------------------------------------------------
// Outputs Waymo's own tools read.

/// `num_cameras_covered` is written as (empty) bytes, never null: Waymo's library decodes
/// every row's value.
#[test]
fn num_cameras_covered_is_never_null() {
    let Some(py) = common::python_with("pyarrow") else { return };
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &fixture::frames().unwrap());
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
c = t.column("[CameraSegmentationLabelComponent].num_cameras_covered")
print(t.num_rows, c.null_count, c.type)
"#;
    let out =
        Command::new(py).args(["-c", script]).arg(component(&ds, Component::CameraSegmentation)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{} 0 binary", fixture::FRAMES));
}

/// `features --out DIR/x.parquet` with DIR not there yet creates it.
#[test]
fn features_out_creates_missing_parent_folders() {
    let dir = tempfile::tempdir().unwrap();
    let ds = write_dataset(&dir.path().join("ds"), &fixture::frames().unwrap());
    let out = dir.path().join("new/deeper/x.parquet");
    assert_succeeds(&scenetok(&["features", "--data", s(&ds), "--out", s(&out)]));
    assert!(out.exists() && dir.path().join("new/deeper/x.cameras.parquet").exists());
    let viz = dir.path().join("other/new/x.rrd");
    assert_succeeds(&scenetok(&["viz", "--data", s(&ds), "--save", s(&viz)]));
    assert!(viz.exists());
}

// ---------------------------------------------------------------------------------------
// The bad-file corpus: bad inputs built from the fixture, every command on each.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Inspect,
    Motion,
    LidarSeg,
    Viz,
    Features,
    Report,
}
use Cmd::*;

/// The commands that read a dataset or a TFRecord.
const READERS: [Cmd; 5] = [Inspect, Motion, LidarSeg, Viz, Features];

impl Cmd {
    /// The command line on `input`, writing into `outs` (see [`previous_outputs`]).
    fn args(self, input: &Path, outs: &Path) -> Vec<String> {
        let (i, o) = (s(input).to_string(), |name: &str| s(&outs.join(name)).to_string());
        let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match self {
            Inspect => v(&["inspect", &i]),
            Motion => v(&["eval", "--data", &i, "--out", &o("run")]),
            LidarSeg => v(&["eval", "--task", "lidar-seg", "--data", &i, "--max-frames", "3", "--out", &o("seg")]),
            Viz => v(&["viz", "--data", &i, "--frames", "0..3", "--save", &o("keep.rrd")]),
            Features => v(&["features", "--data", &i, "--frames", "3", "--out", &o("F.parquet")]),
            Report => v(&["report", &i]),
        }
    }
}

/// Outputs of earlier runs, which a failing run must leave as they are.
fn previous_outputs(outs: &Path) {
    for (name, bytes) in [
        ("run/metrics.json", &b"{\"previous\": \"run\"}"[..]),
        ("run/report.html", b"<p>previous run</p>"),
        ("run/predictions.parquet", b"previous predictions"),
        ("seg/metrics.json", b"{\"previous\": \"lidar-seg\"}"),
        ("keep.rrd", b"previous recording"),
        ("F.parquet", b"previous points"),
        ("F.cameras.parquet", b"previous cameras"),
    ] {
        let p = outs.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// One bad input.
struct Bad {
    name: String,
    input: PathBuf,
    /// What the message must name: the bad file, or the folder of a folder-level problem.
    culprit: PathBuf,
    /// The commands that must fail on it (the others may succeed; if they fail, they fail
    /// cleanly too).
    fails: Vec<Cmd>,
    /// The commands run on it.
    runs: Vec<Cmd>,
    /// What else the message of a command that must fail names.
    also: Vec<String>,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn xor_range(path: &Path, range: std::ops::Range<usize>) {
    let mut bytes = std::fs::read(path).unwrap();
    let end = range.end.min(bytes.len());
    for b in &mut bytes[range.start..end] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, keep: impl Fn(usize) -> usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..keep(bytes.len())]).unwrap();
}

fn int8s(n: usize, v: i8) -> ArrayRef {
    Arc::new(arrow::array::Int8Array::from(vec![v; n]))
}

/// Frame 1 (inside every command's range: viz 0..3, features and lidar-seg 3 frames,
/// motion all).
const FRAME1: i64 = fixture::FIRST_TIMESTAMP + 100_000;

/// Builds the corpus under `root` from a 92-frame dataset made of the fixture's frames.
fn corpus(root: &Path) -> Vec<Bad> {
    let base = write_dataset(&root.join("base"), &frames(92));
    let mut out = Vec::new();
    let all = READERS.to_vec();

    // v2 datasets: a copy of the base with one thing broken.
    let mut dataset = |name: &str, fails: &[Cmd], culprit: Option<Component>, edit: &dyn Fn(&Path) -> PathBuf| {
        let ds = root.join(name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        copy_dir(&base, &ds);
        let edited = edit(&ds);
        let culprit = culprit.map_or(edited, |c| component(&ds, c));
        out.push(Bad {
            name: name.into(),
            input: ds,
            culprit,
            fails: fails.to_vec(),
            runs: READERS.to_vec(),
            also: vec![],
        });
    };
    let lidar = |ds: &Path| component(ds, Component::Lidar);
    dataset("lidar truncated to half", &all, Some(Component::Lidar), &|ds| {
        truncate(&lidar(ds), |n| n / 2);
        ds.into()
    });
    dataset("lidar footer cut", &all, Some(Component::Lidar), &|ds| {
        truncate(&lidar(ds), |n| n - 3);
        ds.into()
    });
    dataset("lidar an empty file", &all, Some(Component::Lidar), &|ds| {
        truncate(&lidar(ds), |_| 0);
        ds.into()
    });
    dataset("lidar a folder", &all, Some(Component::Lidar), &|ds| {
        std::fs::remove_file(lidar(ds)).unwrap();
        std::fs::create_dir(lidar(ds)).unwrap();
        ds.into()
    });
    dataset("lidar page bytes corrupt", &[LidarSeg, Viz, Features], Some(Component::Lidar), &|ds| {
        xor_range(&lidar(ds), 8..200);
        ds.into()
    });
    dataset("lidar_box page bytes corrupt", &[Motion, Viz], Some(Component::LidarBox), &|ds| {
        xor_range(&component(ds, Component::LidarBox), 4..120);
        ds.into()
    });
    dataset("camera_image page bytes corrupt", &[Viz, Features], Some(Component::CameraImage), &|ds| {
        xor_range(&component(ds, Component::CameraImage), 8..300);
        ds.into()
    });
    dataset("lidar without its shape column", &all, Some(Component::Lidar), &|ds| {
        rewrite_batches(&lidar(ds), |b| with_column(b, "[LiDARComponent].range_image_return1.shape", None));
        ds.into()
    });
    dataset("lidar_box centre as words", &[Motion, Viz], Some(Component::LidarBox), &|ds| {
        rewrite_batches(&component(ds, Component::LidarBox), |b| {
            let n = b.num_rows();
            with_column(b, "[LiDARBoxComponent].box.center.x", Some(Arc::new(StringArray::from(vec!["left"; n]))))
        });
        ds.into()
    });
    dataset("vehicle_pose timestamps as strings", &all, Some(Component::VehiclePose), &|ds| {
        rewrite_batches(&component(ds, Component::VehiclePose), |b| {
            let n = b.num_rows();
            with_column(b, key::TIMESTAMP, Some(Arc::new(StringArray::from(vec!["yesterday"; n]))))
        });
        ds.into()
    });
    dataset("lidar timestamp null", &[LidarSeg, Viz, Features], Some(Component::Lidar), &|ds| {
        rewrite_batches(&lidar(ds), |b| {
            let ts =
                b.column_by_name(key::TIMESTAMP).unwrap().as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
            let nulled: arrow::array::Int64Array =
                ts.iter().enumerate().map(|(i, v)| if i == 0 { None } else { v }).collect();
            with_column(b, key::TIMESTAMP, Some(Arc::new(nulled)))
        });
        ds.into()
    });
    dataset("range image shorter than its shape", &[LidarSeg, Viz, Features], Some(Component::Lidar), &|ds| {
        rewrite_batches(&lidar(ds), |b| {
            let mut shape = arrow::array::FixedSizeListBuilder::new(arrow::array::Int32Builder::new(), 3);
            for _ in 0..b.num_rows() {
                shape.values().append_slice(&[64, 2650, 4]);
                shape.append(true);
            }
            with_column(b, "[LiDARComponent].range_image_return1.shape", Some(Arc::new(shape.finish())))
        });
        ds.into()
    });
    let edit_rows = |ds: &Path, f: &dyn Fn(&mut LidarRecord)| {
        let mut r: Vec<LidarRecord> = rows(ds);
        r.iter_mut().filter(|r| r.key.timestamp_micros == FRAME1 && r.laser == LaserName::Top).for_each(f);
        write_component(ds, fixture::SEGMENT, &r).unwrap();
    };
    dataset("NaN range in a range image", &[LidarSeg, Viz, Features], Some(Component::Lidar), &|ds| {
        edit_rows(ds, &|r| r.return1.set(2, 5, 0, f32::NAN));
        ds.into()
    });
    dataset("infinite range in a range image", &[LidarSeg, Viz, Features], Some(Component::Lidar), &|ds| {
        edit_rows(ds, &|r| r.return1.set(3, 7, 0, f32::INFINITY));
        ds.into()
    });
    dataset("duplicate lidar row", &[LidarSeg, Viz, Features], Some(Component::Lidar), &|ds| {
        let mut r: Vec<LidarRecord> = rows(ds);
        let dup = r.iter().find(|r| r.key.timestamp_micros == FRAME1).unwrap().clone();
        r.push(dup);
        write_component(ds, fixture::SEGMENT, &r).unwrap();
        ds.into()
    });
    dataset("unknown laser name 9", &[LidarSeg, Viz, Features], Some(Component::Lidar), &|ds| {
        rewrite_batches(&lidar(ds), |b| {
            let n = b.num_rows();
            with_column(b, key::LASER, Some(int8s(n, 9)))
        });
        ds.into()
    });
    dataset("unknown camera name 42", &[Viz, Features], Some(Component::CameraImage), &|ds| {
        rewrite_batches(&component(ds, Component::CameraImage), |b| {
            let n = b.num_rows();
            with_column(b, key::CAMERA, Some(int8s(n, 42)))
        });
        ds.into()
    });
    dataset("unknown box type 17", &[Motion, Viz], Some(Component::LidarBox), &|ds| {
        rewrite_batches(&component(ds, Component::LidarBox), |b| {
            let n = b.num_rows();
            with_column(b, "[LiDARBoxComponent].type", Some(int8s(n, 17)))
        });
        ds.into()
    });
    let edit_images = |ds: &Path, f: &dyn Fn(&mut CameraImageRecord)| {
        let mut r: Vec<CameraImageRecord> = rows(ds);
        r.iter_mut().filter(|r| r.key.timestamp_micros == FRAME1).for_each(f);
        write_component(ds, fixture::SEGMENT, &r).unwrap();
    };
    dataset("JPEG garbage", &[Viz, Features], Some(Component::CameraImage), &|ds| {
        edit_images(ds, &|r| r.jpeg = b"\xff\xd8\xff\xe0 not really a jpeg".to_vec());
        ds.into()
    });
    // The viewer decodes the images; viz checks their headers only (a cut-short body shows
    // as a partly grey image there).
    dataset("JPEG cut short", &[Features], Some(Component::CameraImage), &|ds| {
        edit_images(ds, &|r| r.jpeg.truncate(r.jpeg.len() / 3));
        ds.into()
    });
    dataset("JPEG header claiming 65500x65500", &[Viz, Features], Some(Component::CameraImage), &|ds| {
        edit_images(ds, &|r| r.jpeg = jpeg_claiming(&r.jpeg, 65500, 65500));
        ds.into()
    });
    dataset("JPEG of another size than calibrated", &[Viz, Features], Some(Component::CameraImage), &|ds| {
        let img = image::RgbImage::from_pixel(64, 8, image::Rgb([9, 9, 9]));
        let jpeg = scenetok::io::image::encode_jpeg(&img, 90).unwrap();
        edit_images(ds, &|r| r.jpeg = jpeg.clone());
        ds.into()
    });
    dataset("panoptic label PNG garbage", &[Viz], Some(Component::CameraSegmentation), &|ds| {
        let mut r: Vec<CameraSegmentationRecord> = rows(ds);
        r.iter_mut()
            .filter(|r| r.key.timestamp_micros == FRAME1)
            .for_each(|r| r.png = b"\x89PNG\r\n\x1a\n oops".to_vec());
        write_component(ds, fixture::SEGMENT, &r).unwrap();
        ds.into()
    });
    dataset("lidar segmentation class 99", &[LidarSeg, Viz], Some(Component::LidarSegmentation), &|ds| {
        let mut r: Vec<LidarSegmentationRecord> = rows(ds);
        r.iter_mut().filter(|r| r.key.timestamp_micros == FRAME1).for_each(|r| r.return1.set(4, 4, 1, 99));
        write_component(ds, fixture::SEGMENT, &r).unwrap();
        ds.into()
    });
    let edit_boxes = |ds: &Path, f: &dyn Fn(&mut Vec<LidarBoxRecord>)| {
        let mut r: Vec<LidarBoxRecord> = rows(ds);
        f(&mut r);
        write_component(ds, fixture::SEGMENT, &r).unwrap();
    };
    let frame1_box = |r: &mut Vec<LidarBoxRecord>, f: &dyn Fn(&mut Box3d)| {
        r.iter_mut().filter(|r| r.key.timestamp_micros == FRAME1).take(1).for_each(|r| f(&mut r.label.bbox))
    };
    dataset("NaN box centre", &[Motion, Viz], Some(Component::LidarBox), &|ds| {
        edit_boxes(ds, &|r| frame1_box(r, &|b| b.center.y = f64::NAN));
        ds.into()
    });
    dataset("infinite box size", &[Motion, Viz], Some(Component::LidarBox), &|ds| {
        edit_boxes(ds, &|r| frame1_box(r, &|b| b.size.x = f64::INFINITY));
        ds.into()
    });
    dataset("negative box size", &[Motion, Viz], Some(Component::LidarBox), &|ds| {
        edit_boxes(ds, &|r| frame1_box(r, &|b| b.size.z = -2.0));
        ds.into()
    });
    dataset("NaN box heading", &[Motion, Viz], Some(Component::LidarBox), &|ds| {
        edit_boxes(ds, &|r| frame1_box(r, &|b| b.heading = f64::NAN));
        ds.into()
    });
    dataset("the same box twice in a frame", &[Motion, Viz], Some(Component::LidarBox), &|ds| {
        edit_boxes(ds, &|r| {
            let dup = r.iter().find(|r| r.key.timestamp_micros == FRAME1).unwrap().clone();
            r.push(dup);
        });
        ds.into()
    });
    dataset("two calibrations of TOP", &[LidarSeg, Viz, Features], Some(Component::LidarCalibration), &|ds| {
        let mut r: Vec<LidarCalibrationRecord> = rows(ds);
        let mut other = r[0].clone();
        other.calibration.extrinsic.0[(2, 3)] += 1.0;
        r.push(other);
        write_component(ds, fixture::SEGMENT, &r).unwrap();
        ds.into()
    });
    dataset("no lidar_calibration", &[LidarSeg, Features], None, &|ds| {
        std::fs::remove_dir_all(ds.join("lidar_calibration")).unwrap();
        ds.into()
    });
    dataset("no vehicle_pose", &[Motion], None, &|ds| {
        std::fs::remove_dir_all(ds.join("vehicle_pose")).unwrap();
        ds.into()
    });
    dataset("no lidar_segmentation", &[LidarSeg], None, &|ds| {
        std::fs::remove_dir_all(ds.join("lidar_segmentation")).unwrap();
        ds.into()
    });
    dataset("NaN in a vehicle pose", &[Motion, Viz], Some(Component::VehiclePose), &|ds| {
        let mut r: Vec<VehiclePoseRecord> = rows(ds);
        r[1].world_from_vehicle.0[(1, 3)] = f64::NAN;
        write_component(ds, fixture::SEGMENT, &r).unwrap();
        ds.into()
    });
    dataset("no component folders", &all, None, &|ds| {
        for e in std::fs::read_dir(ds).unwrap() {
            std::fs::remove_dir_all(e.unwrap().path()).unwrap();
        }
        std::fs::create_dir(ds.join("not_a_component")).unwrap();
        std::fs::write(ds.join("not_a_component/x.parquet"), b"PAR1").unwrap();
        ds.into()
    });

    // Camera images are decoded in the pipeline (and their headers checked in viz), which
    // know the input, frame and camera, not the component file.
    for bad in out.iter_mut().filter(|b| b.name.starts_with("JPEG")) {
        bad.culprit = bad.input.clone();
        bad.also = vec!["camera FRONT".into(), FRAME1.to_string()];
    }

    // Other inputs: TFRecords, a component file, nothing at all.
    let womd = |name: &str, edit: &dyn Fn(&mut proto::Scenario)| {
        let mut sc = womd_scenario(name);
        edit(&mut sc);
        let path = root.join(format!("{}.tfrecord", name.replace(' ', "_")));
        write_womd(&path, &[womd_scenario("good"), sc])
    };
    let mut file = |name: &str, fails: &[Cmd], input: PathBuf| {
        out.push(Bad {
            name: name.into(),
            culprit: input.clone(),
            input,
            fails: fails.to_vec(),
            runs: READERS.to_vec(),
            also: vec![],
        });
    };
    let good = womd("good", &|_| {});
    let flipped = root.join("flipped.tfrecord");
    std::fs::copy(&good, &flipped).unwrap();
    xor_range(&flipped, 40..41);
    file("a TFRecord with a flipped byte", &all, flipped);
    let cut = root.join("cut.tfrecord");
    std::fs::copy(&good, &cut).unwrap();
    truncate(&cut, |n| n - 10);
    file("a truncated TFRecord", &all, cut);
    let cut = root.join("cut_header.tfrecord");
    std::fs::copy(&good, &cut).unwrap();
    truncate(&cut, |_| 5);
    file("a TFRecord cut inside its first header", &all, cut);
    let empty = root.join("empty.tfrecord");
    std::fs::write(&empty, b"").unwrap();
    // `inspect` says what an empty file or record holds (nothing) and what is wrong with a
    // record it can read; the commands that need the records refuse them.
    file("an empty file", &all[1..], empty);
    let blank = root.join("blank.tfrecord");
    tfrecord::write_records(&blank, [b"".as_slice()]).unwrap();
    file("a TFRecord of one empty record", &all[1..], blank);
    let huge = root.join("huge_length.tfrecord");
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend(tfrecord::masked_crc32c(&bytes).to_le_bytes());
    bytes.extend(b"and a little data");
    std::fs::write(&huge, bytes).unwrap();
    file("a TFRecord header claiming 2^64 bytes", &all, huge);
    let noise = root.join("noise.bin");
    std::fs::write(&noise, (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<u8>>())
        .unwrap();
    file("random bytes", &all, noise);
    file("a WOMD state NaN", &all[1..], womd("nan state", &|s| s.tracks[0].states[12].center_y = Some(f64::NAN)));
    file("a WOMD size negative", &all[1..], womd("neg size", &|s| s.tracks[2].states[0].width = Some(-2.0)));
    file(
        "WOMD current_time_index 90",
        &[Motion, LidarSeg, Features],
        womd("cti 90", &|s| s.current_time_index = Some(90)),
    );
    file("WOMD current_time_index 500", &all[1..], womd("cti 500", &|s| s.current_time_index = Some(500)));
    file(
        "a WOMD track one state short",
        &all[1..],
        womd("short track", &|s| {
            s.tracks[1].states.pop();
        }),
    );
    file(
        "a WOMD track_index past the tracks",
        &all[1..],
        womd("bad index", &|s| s.tracks_to_predict[0].track_index = Some(17)),
    );
    file("a WOMD sdc_track_index negative", &all[1..], womd("bad sdc", &|s| s.sdc_track_index = Some(-3)));
    file("an unknown WOMD object type", &all[1..], womd("bad type", &|s| s.tracks[0].object_type = Some(77)));
    let v1 = write_v1(&root.join("v1.tfrecord"), 3);
    let v1_bad = root.join("v1_flipped.tfrecord");
    std::fs::copy(&v1, &v1_bad).unwrap();
    xor_range(&v1_bad, 30..31);
    file("a v1 TFRecord with a flipped byte", &all, v1_bad);
    let v1_pose = root.join("v1_bad_pose.tfrecord");
    let bad_pose = proto::Frame {
        context: Some(proto::Context { name: Some("v1_segment".into()), ..Default::default() }),
        timestamp_micros: Some(1),
        pose: Some(proto::Transform { transform: vec![1.0, 2.0, 3.0] }),
        ..Default::default()
    };
    tfrecord::write_records(&v1_pose, [bad_pose.encode_to_vec()]).unwrap();
    file("a v1 pose of 3 numbers", &[Motion, LidarSeg, Viz, Features], v1_pose);
    if let Some(samples) = common::samples() {
        let real = root.join("real_v1_flipped.tfrecord");
        std::fs::copy(samples.join("v1/pvps_data_one_frame.tfrecord"), &real).unwrap();
        let n = std::fs::metadata(&real).unwrap().len() as usize;
        xor_range(&real, n / 2..n / 2 + 1);
        file("the real v1 sample with a flipped byte", &all, real);
    }
    file("a component file for a dataset", &[Motion, LidarSeg, Viz, Features], component(&base, Component::Lidar));
    file("nothing at this path", &all, root.join("no_such_input"));

    // Run folders for `report`.
    let good_run = root.join("good_run");
    let run = scenetok(&["eval", "--data", s(&good), "--out", s(&good_run)]);
    assert_succeeds(&run);
    let mut run_folder = |name: &str, culprit: &str, edit: &dyn Fn(&Path)| {
        let dir = root.join(name.replace(' ', "_"));
        copy_dir(&good_run, &dir);
        edit(&dir);
        out.push(Bad {
            name: name.into(),
            culprit: dir.join(culprit),
            input: dir,
            fails: vec![Report],
            runs: vec![Report],
            also: vec![],
        });
    };
    run_folder("a run with metrics.json cut short", "metrics.json", &|d| truncate(&d.join("metrics.json"), |n| n / 2));
    run_folder("a run without metrics.json", "metrics.json", &|d| {
        std::fs::remove_file(d.join("metrics.json")).unwrap()
    });
    run_folder("a run whose metrics.json holds NaN", "metrics.json", &|d| {
        let t = std::fs::read_to_string(d.join("metrics.json")).unwrap();
        let t = t.replacen("\"min_ade\": ", "\"min_ade\": NaN, \"was\": ", 1);
        std::fs::write(d.join("metrics.json"), t).unwrap();
    });
    run_folder("a run whose metrics.json is a list", "metrics.json", &|d| {
        std::fs::write(d.join("metrics.json"), b"[1, 2]").unwrap()
    });
    run_folder("a run with report_data.json garbage", "report_data.json", &|d| {
        std::fs::write(d.join("report_data.json"), b"{\"scenes\": 7").unwrap()
    });
    let not_a_run = root.join("not_a_run.txt");
    std::fs::write(&not_a_run, b"a file").unwrap();
    out.push(Bad {
        name: "a file for a run folder".into(),
        culprit: not_a_run.clone(),
        input: not_a_run,
        fails: vec![Report],
        runs: vec![Report],
        also: vec![],
    });
    out
}

/// What went wrong with one command on one bad input (`None`: it behaved).
fn check(bad: &Bad, cmd: Cmd, work: &Path) -> Option<String> {
    let outs = work.join("outs");
    let _ = std::fs::remove_dir_all(&outs);
    previous_outputs(&outs);
    let (inputs_before, outs_before) = (snapshot(&bad.input), snapshot(&outs));
    let run = scenetok(&cmd.args(&bad.input, &outs));
    if std::env::var_os("SCENETOK_SHOW_CORPUS").is_some() {
        // What a user sees, case by case, for reviewing the messages.
        eprintln!("{} / {cmd:?}: exit {:?}: {}", bad.name, run.code, run.stderr.lines().next().unwrap_or(""));
    }
    let mut problems = Vec::new();
    if !matches!(run.code, Some(0..=2)) || run.stderr.contains("panicked") {
        problems.push("a panic or a signal".to_string());
    }
    if bad.fails.contains(&cmd) && run.ok() {
        problems.push("succeeded".into());
    }
    if !changed(&inputs_before, &snapshot(&bad.input)).is_empty() {
        problems.push("the input changed".into());
    }
    if !run.ok() {
        let lost = changed(&outs_before, &snapshot(&outs));
        if !lost.is_empty() {
            problems.push(format!("earlier outputs changed: {lost:?}"));
        }
        // The bad file when the command had to fail on it, at least the input otherwise.
        let name = if bad.fails.contains(&cmd) { &bad.culprit } else { &bad.input };
        if !run.stderr.contains(s(name)) {
            problems.push(format!("the message does not name {}", name.display()));
        }
        if bad.fails.contains(&cmd) {
            for a in bad.also.iter().filter(|a| !run.stderr.contains(a.as_str())) {
                problems.push(format!("the message does not name {a}"));
            }
        }
        if run.stderr.trim().is_empty() {
            problems.push("no message".into());
        }
    }
    (!problems.is_empty())
        .then(|| format!("{} / {cmd:?}: {}\n  {}", bad.name, problems.join("; "), run.show().replace('\n', "\n  ")))
}

#[test]
fn bad_file_corpus_fails_cleanly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let cases = corpus(&dir.path().join("corpus"));
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let built = started.elapsed();

    // The good base first: every command succeeds on it, so each failure below is the bad
    // input's doing.
    let base = dir.path().join("corpus/base");
    for cmd in READERS {
        let outs = dir.path().join("base_outs");
        previous_outputs(&outs);
        assert_succeeds(&scenetok(&cmd.args(&base, &outs)));
    }

    let next = std::sync::atomic::AtomicUsize::new(0);
    let problems = std::sync::Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (cases, next, problems, work) = (&cases, &next, &problems, dir.path().join(format!("work{w}")));
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(bad) = cases.get(i) else { break };
                    for &cmd in &bad.runs {
                        if let Some(p) = check(bad, cmd, &work) {
                            problems.lock().unwrap().push(p);
                        }
                    }
                }
            });
        }
    });
    let problems = problems.into_inner().unwrap();
    eprintln!(
        "{} bad inputs, {} runs: built in {:.1} s, all in {:.1} s",
        cases.len(),
        cases.iter().map(|c| c.runs.len()).sum::<usize>(),
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
