//! Waymo v2 parquet: the writer's schema, the frame reader's joins, the tolerant reader on
//! real files, and errors on bad input.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListBuilder, Float32Builder, Int8Array, Int32Builder, Int64Array, ListBuilder, RecordBatch,
    StringArray,
};
use scenetok::io::fixture;
use scenetok::io::v2::*;
use scenetok::scene::*;

use crate::common;

fn write_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fixture::write(dir.path()).unwrap();
    dir
}

#[test]
fn fixture_round_trips_through_the_frame_reader() {
    let dir = write_fixture();
    let ds = Dataset::open(dir.path()).unwrap();
    assert_eq!(ds.segments().collect::<Vec<_>>(), vec![fixture::SEGMENT]);
    let comps = ds.components(fixture::SEGMENT).unwrap();
    assert_eq!(comps.len(), 15, "{:?}", comps.keys().collect::<Vec<_>>());
    assert_eq!(ds.frame_timestamps(fixture::SEGMENT).unwrap().len(), fixture::FRAMES);
    let read: Vec<Frame> = ds.frames(fixture::SEGMENT, &FrameRequest::all()).unwrap().map(|f| f.unwrap()).collect();
    let expected = fixture::frames().unwrap();
    assert_eq!(read.len(), expected.len());
    for (r, e) in read.iter().zip(&expected) {
        assert_eq!(r, e, "frame {} differs after the round trip", e.timestamp_micros);
    }
    assert_eq!(ds.read_map(fixture::SEGMENT).unwrap(), fixture::map());
}

#[test]
fn projection_reads_only_what_was_asked() {
    let dir = write_fixture();
    let ds = Dataset::open(dir.path()).unwrap();
    let req = FrameRequest::only(&[Component::Lidar, Component::VehiclePose]).without_second_returns();
    let frames: Vec<Frame> = ds.frames(fixture::SEGMENT, &req).unwrap().map(|f| f.unwrap()).collect();
    assert_eq!(frames.len(), fixture::FRAMES);
    for f in &frames {
        assert!(f.cameras.is_empty() && f.lidar_boxes.is_empty() && f.stats.is_none());
        assert!(f.vehicle_pose.is_some());
        assert_eq!(f.lasers.len(), 2);
        for l in &f.lasers {
            assert!(l.return1.is_some() && l.return2.is_none() && l.pose.is_none() && l.calibration.is_none());
        }
    }
}

/// Rows written out of order (frames shuffled, lasers reversed, several frames per row
/// group) still join on their keys.
#[test]
fn frames_join_on_keys_not_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let frames = fixture::frames().unwrap();
    let mut lidar = Vec::new();
    let mut poses = Vec::new();
    for f in frames.iter().rev() {
        for l in f.lasers.iter().rev() {
            let key = FrameKey { segment: fixture::SEGMENT.into(), timestamp_micros: f.timestamp_micros };
            lidar.push(LidarRecord {
                key: key.clone(),
                laser: l.laser,
                return1: l.return1.clone().unwrap(),
                return2: None,
            });
        }
    }
    for i in [1usize, 0, 2] {
        let key = FrameKey { segment: fixture::SEGMENT.into(), timestamp_micros: frames[i].timestamp_micros };
        poses.push(VehiclePoseRecord { key, world_from_vehicle: frames[i].vehicle_pose.unwrap() });
    }
    // All lidar rows in one call: non-bulky grouping would put several frames in one group.
    write_component(dir.path(), fixture::SEGMENT, &lidar).unwrap();
    write_component(dir.path(), fixture::SEGMENT, &poses).unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let read: Vec<Frame> = ds.frames(fixture::SEGMENT, &FrameRequest::all()).unwrap().map(|f| f.unwrap()).collect();
    for (r, e) in read.iter().zip(&frames) {
        assert_eq!(r.timestamp_micros, e.timestamp_micros);
        assert_eq!(r.vehicle_pose, e.vehicle_pose);
        for (rl, el) in r.lasers.iter().zip(&e.lasers) {
            assert_eq!(rl.laser, el.laser);
            assert_eq!(rl.return1, el.return1);
        }
    }
}

/// What pyarrow calls each declared type.
fn pyarrow_name(t: ColType) -> &'static str {
    match t {
        ColType::Str => "string",
        ColType::Bin => "binary",
        ColType::Bool => "bool",
        ColType::I8 => "int8",
        ColType::I32 => "int32",
        ColType::I64 => "int64",
        ColType::F32 => "float",
        ColType::F64 => "double",
        ColType::ListI8 => "list<item: int8>",
        ColType::ListI32 => "list<item: int32>",
        ColType::ListI64 => "list<item: int64>",
        ColType::ListF32 => "list<item: float>",
        ColType::ListF64 => "list<item: double>",
        ColType::ListBool => "list<item: bool>",
        ColType::Transform => "fixed_size_list<item: double>[16]",
        ColType::Shape => "fixed_size_list<item: int32>[3]",
    }
}

#[test]
fn pyarrow_reads_the_writer_output_with_the_declared_types() {
    let Some(py) = common::python_with("pyarrow") else { return };
    let dir = write_fixture();
    let script = r#"
import json, sys, pathlib, pyarrow.parquet as pq
out = {}
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/*.parquet")):
    t = pq.read_table(p)
    out[p.parent.name] = {"rows": t.num_rows, "types": {f.name: str(f.type) for f in t.schema}}
print(json.dumps(out))
"#;
    let output = std::process::Command::new(py).args(["-c", script]).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "pyarrow failed: {}", String::from_utf8_lossy(&output.stderr));
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let tables = v.as_object().unwrap();
    assert_eq!(tables.len(), 15);
    for (tag, t) in tables {
        let component = Component::from_tag(tag).unwrap();
        let types = t["types"].as_object().unwrap();
        let names: Vec<&str> = types.keys().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), component.columns().len(), "{tag}");
        for spec in component.columns() {
            assert_eq!(types[spec.name].as_str().unwrap(), pyarrow_name(spec.ty), "{tag} `{}`", spec.name);
        }
    }
    assert_eq!(tables["lidar"]["rows"], 2 * fixture::FRAMES);
}

/// A user who filters a Waymo file with pyarrow and saves it again gets lists whose child is
/// named `element` (pyarrow's default since 13) instead of `item`: the reader takes both, and
/// every frame reads back the same.
#[test]
fn files_resaved_by_pyarrow_read_back_the_same() {
    let Some(py) = common::python_with("pyarrow") else { return };
    let dir = write_fixture();
    let script = r#"
import sys, pathlib, pyarrow.parquet as pq
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/*.parquet")):
    pq.write_table(pq.read_table(p), p)
t = pq.read_table(next(pathlib.Path(sys.argv[1]).glob("vehicle_pose/*.parquet")))
print(t.schema.field("[VehiclePoseComponent].world_from_vehicle.transform").type)
"#;
    let output = std::process::Command::new(py).args(["-c", script]).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "pyarrow failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("element"), "pyarrow names the child `element`");
    let ds = Dataset::open(dir.path()).unwrap();
    let read: Vec<Frame> = ds.frames(fixture::SEGMENT, &FrameRequest::all()).unwrap().map(|f| f.unwrap()).collect();
    assert_eq!(read, fixture::frames().unwrap());
    assert_eq!(ds.read_map(fixture::SEGMENT).unwrap(), fixture::map());
}

#[test]
fn real_v2_samples_read_with_tolerated_deviations() {
    let Some(samples) = common::samples() else { return };
    let root = samples.join("v2/testdata/dataset");
    let segment = "10023947602400723454_1120_000_1140_000";

    let pose = ComponentFile::open_any(root.join(format!("vehicle_pose/{segment}.parquet"))).unwrap();
    assert_eq!(pose.component(), Component::VehiclePose);
    let devs = pose.deviations();
    assert!(devs.iter().any(|d| d.found == "fixed_size_list<float>[16]"), "{devs:?}");
    let rows = pose.read_all::<VehiclePoseRecord>().unwrap();
    assert_eq!(rows.len(), 199);
    for r in &rows {
        let m = r.world_from_vehicle.to_row_major();
        assert_eq!(&m[12..], &[0.0, 0.0, 0.0, 1.0]);
        // A rotation: orthonormal to float32 precision.
        let rot = r.world_from_vehicle.0.fixed_view::<3, 3>(0, 0).into_owned();
        assert!((rot.transpose() * rot - nalgebra::Matrix3::identity()).norm() < 1e-5);
        assert_eq!(r.key.segment, segment);
    }

    let hkp = ComponentFile::open_any(root.join(format!("camera_hkp/{segment}.parquet"))).unwrap();
    assert!(hkp.deviations().iter().any(|d| d.column == "key.camera_name" && d.found == "string"));
    let rows = hkp.read_all::<CameraKeypointsRecord>().unwrap();
    assert_eq!(rows.len(), 15_844);
    assert!(rows.iter().any(|r| r.camera == CameraName::Front));
    assert!(rows.iter().all(|r| r.types.len() == r.location_px.len()));

    let ds = Dataset::open(&root).unwrap();
    assert_eq!(ds.segments().collect::<Vec<_>>(), vec![segment]);
    let frames: Vec<Frame> =
        ds.frames(segment, &FrameRequest::only(&[Component::VehiclePose])).unwrap().map(|f| f.unwrap()).collect();
    assert_eq!(frames.len(), 199);
    assert!(frames.windows(2).all(|w| w[0].timestamp_micros < w[1].timestamp_micros));
}

// ---------------------------------------------------------------------------------------
// Bad input: every error names the file, the column or frame, and what was expected.

fn lidar_batch(laser: ArrayRef, values_len: usize, shape: [i32; 3]) -> RecordBatch {
    let mut values = ListBuilder::new(Float32Builder::new());
    values.values().append_slice(&vec![1.0; values_len]);
    values.append(true);
    let mut sh = FixedSizeListBuilder::new(Int32Builder::new(), 3);
    sh.values().append_slice(&shape);
    sh.append(true);
    RecordBatch::try_from_iter([
        ("key.segment_context_name", Arc::new(StringArray::from(vec!["seg"])) as ArrayRef),
        ("key.frame_timestamp_micros", Arc::new(Int64Array::from(vec![42])) as ArrayRef),
        ("key.laser_name", laser),
        ("[LiDARComponent].range_image_return1.values", Arc::new(values.finish()) as ArrayRef),
        ("[LiDARComponent].range_image_return1.shape", Arc::new(sh.finish()) as ArrayRef),
    ])
    .unwrap()
}

fn write_raw(dir: &std::path::Path, tag: &str, batch: &RecordBatch) -> std::path::PathBuf {
    let path = dir.join(tag).join("seg.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    path
}

fn read_lidar_error(dir: &std::path::Path) -> String {
    let ds = match Dataset::open(dir) {
        Ok(ds) => ds,
        Err(e) => return e.to_string(),
    };
    let mut reader = match ds.frames("seg", &FrameRequest::all()) {
        Ok(r) => r,
        Err(e) => return e.to_string(),
    };
    match reader.next() {
        Some(Err(e)) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn range_image_with_wrong_length_is_an_error_naming_column_frame_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "lidar", &lidar_batch(Arc::new(Int8Array::from(vec![1])), 10, [2, 3, 4]));
    let err = read_lidar_error(dir.path());
    assert!(err.contains("seg.parquet"), "{err}");
    assert!(err.contains("range_image_return1.values"), "{err}");
    assert!(err.contains("frame 42") && err.contains("laser TOP"), "{err}");
    assert!(err.contains("24") && err.contains("found 10"), "{err}");
}

#[test]
fn unknown_laser_names_are_errors_listing_the_known_ones() {
    for laser in [Arc::new(Int8Array::from(vec![9])) as ArrayRef, Arc::new(StringArray::from(vec!["ROOF"])) as ArrayRef]
    {
        let dir = tempfile::tempdir().unwrap();
        write_raw(dir.path(), "lidar", &lidar_batch(laser, 24, [2, 3, 4]));
        let err = read_lidar_error(dir.path());
        assert!(err.contains("key.laser_name") && err.contains("1=TOP") && err.contains("5=REAR"), "{err}");
    }
}

#[test]
fn unknown_camera_name_is_an_error() {
    let dir = write_fixture();
    let batch = RecordBatch::try_from_iter([
        ("key.segment_context_name", Arc::new(StringArray::from(vec!["seg"])) as ArrayRef),
        ("key.frame_timestamp_micros", Arc::new(Int64Array::from(vec![42])) as ArrayRef),
        ("key.camera_name", Arc::new(StringArray::from(vec!["REAR_ROOF"])) as ArrayRef),
        ("[CameraImageComponent].image", Arc::new(arrow::array::BinaryArray::from(vec![&b"x"[..]])) as ArrayRef),
    ])
    .unwrap();
    let path = write_raw(dir.path(), "camera_image", &batch);
    let f = ComponentFile::open_any(&path).unwrap();
    let err = f.read_all::<CameraImageRecord>().unwrap_err().to_string();
    assert!(err.contains("key.camera_name") && err.contains("REAR_ROOF") && err.contains("1=FRONT"), "{err}");
}

#[test]
fn missing_required_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = lidar_batch(Arc::new(Int8Array::from(vec![1])), 24, [2, 3, 4]);
    let without_shape = full.project(&[0, 1, 2, 3]).unwrap();
    let path = write_raw(dir.path(), "lidar", &without_shape);
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("missing required column") && err.contains("range_image_return1.shape"), "{err}");
}

#[test]
fn truncated_parquet_is_an_error_naming_the_file() {
    let dir = write_fixture();
    let path = component_path(dir.path(), Component::Lidar, fixture::SEGMENT);
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() / 2, bytes.len() - 3, 100] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = Dataset::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("lidar/") && err.contains(fixture::SEGMENT), "{err}");
        assert!(err.contains("parquet"), "{err}");
    }
}

#[test]
fn corrupt_page_is_an_error_not_a_panic() {
    let dir = write_fixture();
    let path = component_path(dir.path(), Component::Lidar, fixture::SEGMENT);
    let mut bytes = std::fs::read(&path).unwrap();
    // Overwrite the middle of the first column chunk's pages; the footer stays intact.
    for b in &mut bytes[8..200] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let ds = Dataset::open(dir.path());
    let err = match ds {
        Err(e) => e.to_string(),
        Ok(ds) => {
            let results: Vec<_> = match ds.frames(fixture::SEGMENT, &FrameRequest::all()) {
                Err(e) => vec![Err(e)],
                Ok(r) => r.collect(),
            };
            results.into_iter().find_map(|r| r.err()).expect("a corrupt page must be an error").to_string()
        }
    };
    assert!(err.contains(fixture::SEGMENT), "{err}");
}

#[test]
fn writer_leaves_no_partial_file_and_keeps_the_old_one_on_failure() {
    let dir = write_fixture();
    let path = component_path(dir.path(), Component::VehiclePose, fixture::SEGMENT);
    let before = std::fs::read(&path).unwrap();
    {
        // Dropped without finish(): the existing file must be untouched, no temp left.
        let mut w = ComponentWriter::create(dir.path(), Component::VehiclePose, fixture::SEGMENT).unwrap();
        let key = FrameKey { segment: fixture::SEGMENT.into(), timestamp_micros: 1 };
        w.write(&[VehiclePoseRecord { key, world_from_vehicle: Transform::identity() }]).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let leftovers: BTreeMap<_, _> =
        std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| (e.unwrap().file_name(), ())).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}
