//! The `scenetok` command as a user runs it.

use std::process::Command;

use crate::common;

fn scenetok(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scenetok")).args(args).output().expect("scenetok runs")
}

#[test]
fn fixture_then_inspect_as_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    let out = scenetok(&["fixture", "--out", root.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = scenetok(&["inspect", root.to_str().unwrap()]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("3 frames") && table.contains("lidar_camera_projection") && table.contains("map_feature"),
        "{table}"
    );

    let out = scenetok(&["inspect", "--json", root.to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "dataset");
    let seg = &v["segments"][0];
    assert_eq!(seg["frames"], 3);
    let lidar = seg["components"].as_array().unwrap().iter().find(|c| c["component"] == "lidar").unwrap();
    assert_eq!(lidar["rows"], 6);
    assert_eq!(lidar["deviations"].as_array().unwrap().len(), 0);
}

#[test]
fn inspect_reports_the_real_sample_deviations() {
    let Some(samples) = common::samples() else { return };
    let file = samples.join("v2/testdata/dataset/camera_hkp/10023947602400723454_1120_000_1140_000.parquet");
    let out = scenetok(&["inspect", "--json", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "parquet");
    assert_eq!(v["component"], "camera_hkp");
    assert_eq!(v["rows"], 15_844);
    let devs = v["deviations"].as_array().unwrap();
    assert!(devs.iter().any(|d| d["column"] == "key.camera_name" && d["found"] == "string"), "{devs:?}");
}

#[test]
fn inspect_of_bad_input_fails_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.parquet");
    let out = scenetok(&["inspect", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.parquet"), "{err}");

    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"PAR1 not really").unwrap();
    let out = scenetok(&["inspect", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.parquet") && err.contains("parquet"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn inspect_summarises_real_tfrecords_and_rejects_a_bad_crc() {
    let Some(samples) = common::samples() else { return };
    let scenario = samples.join("womd/motion_data_one_scenario.tfrecord");
    let frame = samples.join("v1/pvps_data_one_frame.tfrecord");
    let out = scenetok(&["inspect", scenario.to_str().unwrap(), frame.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("83 tracks × 91 states") && text.contains("lane 199"), "{text}");
    assert!(text.contains("FRONT 1920×1280") && text.contains("75 laser labels"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tfrecord");
    let mut bytes = std::fs::read(&scenario).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    let out = scenetok(&["inspect", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.tfrecord") && err.contains("record 0") && err.contains("CRC"), "{err}");
}

#[test]
fn eval_writes_metrics_predictions_and_the_official_submission() {
    use prost::Message;
    let Some(samples) = common::samples() else { return };
    let dir = tempfile::tempdir().unwrap();
    let scenario = samples.join("womd/motion_data_one_scenario.tfrecord");
    let out = scenetok(&[
        "eval",
        "--data",
        scenario.to_str().unwrap(),
        "--model",
        "ctra",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["scenarios"], 1);
    assert_eq!(metrics["breakdowns"].as_array().unwrap().len(), 9);

    let bytes = std::fs::read(dir.path().join("submission.binproto")).unwrap();
    let sub = scenetok::io::proto::submission::MotionChallengeSubmission::decode(bytes.as_slice()).unwrap();
    assert_eq!(sub.scenario_predictions.len(), 1);
    assert_eq!(sub.scenario_predictions[0].scenario_id.as_deref(), Some("637f20cafde22ff8"));
    let Some(scenetok::io::proto::submission::PredictionSetKind::SinglePredictions(set)) =
        &sub.scenario_predictions[0].prediction_set
    else {
        panic!("marginal predictions expected")
    };
    assert_eq!(set.predictions.len(), 3);
    for p in &set.predictions {
        assert_eq!(p.trajectories.len(), 6);
        assert!(p.trajectories.iter().all(|t| t.trajectory.as_ref().unwrap().center_x.len() == 16));
    }

    let file = std::fs::File::open(dir.path().join("predictions.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3 * 6);
}

#[test]
fn demo_generates_a_world_and_evaluates_every_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let out = scenetok(&["demo", "--out", dir.path().to_str().unwrap(), "--frames", "95"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("generated world: 1 scenario(s)") && text.contains("lane-follower"), "{text}");
    for model in ["constant-velocity", "ctra", "lane-follower", "transformer"] {
        for file in ["metrics.json", "predictions.parquet", "submission.binproto"] {
            assert!(dir.path().join("generated").join(model).join(file).exists(), "{model}/{file}");
        }
    }
    assert!(dir.path().join("compare-lane-follower-vs-transformer/report.html").exists());
    // The shipped weights carry their learning curve and the transformer's report draws it.
    for (model, trained) in [("transformer", true), ("lane-follower", false)] {
        let md = std::fs::read_to_string(dir.path().join("generated").join(model).join("report.md")).unwrap();
        assert_eq!(md.contains("## Training") && md.contains("train_motion.py"), trained, "{model}");
    }
    // The transformer's predictions.parquet carries its covariance per step (positive
    // variances, |ρ| < 1); the baselines' columns are null.
    for (model, with_cov) in [("transformer", true), ("lane-follower", false)] {
        let file = std::fs::File::open(dir.path().join("generated").join(model).join("predictions.parquet")).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col = |name: &str| {
                let c = batch.column_by_name(name).unwrap_or_else(|| panic!("{model}: no column {name}"));
                c.as_any().downcast_ref::<arrow::array::ListArray>().unwrap().clone()
            };
            let (xx, xy, yy) = (col("cov_xx"), col("cov_xy"), col("cov_yy"));
            for r in 0..batch.num_rows() {
                assert_eq!(arrow::array::Array::is_valid(&xx, r), with_cov, "{model} row {r}");
                if !with_cov {
                    continue;
                }
                let v = |l: &arrow::array::ListArray| {
                    let a = l.value(r);
                    a.as_any().downcast_ref::<arrow::array::Float64Array>().unwrap().values().to_vec()
                };
                let (a, b, c) = (v(&xx), v(&xy), v(&yy));
                assert_eq!(a.len(), 16);
                for k in 0..16 {
                    assert!(a[k] > 0.0 && c[k] > 0.0 && b[k] * b[k] < a[k] * c[k], "{model} row {r} step {k}");
                }
            }
        }
    }
    // The motion recording holds every model's predictions.
    assert!(text.contains("(predictions of constant-velocity, ctra, lane-follower, transformer)"), "{text}");
    assert!(dir.path().join("motion.rrd").exists());
    // A second run reuses the world.
    let again = scenetok(&["demo", "--out", dir.path().to_str().unwrap(), "--frames", "95"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("using the world already generated"));
}

/// A GPU asked for where there is none (or where this build has no CUDA kernels) is one
/// line naming what is missing, before any work; an unknown device is a usage error.
#[test]
fn device_cuda_without_a_gpu_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    assert!(scenetok(&["fixture", "--out", root.to_str().unwrap()]).status.success());
    for device in ["cuda", "cuda:1"] {
        let out = scenetok(&["eval", "--task", "lidar-seg", "--data", root.to_str().unwrap(), "--device", device]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        let n = device.strip_prefix("cuda:").unwrap_or("0");
        assert!(err.starts_with(&format!("error: cuda:{n}: ")) && err.contains("--device cpu"), "{err}");
        assert!(err.contains("NVIDIA driver") || err.contains("no CUDA kernels"), "{err}");
    }
    let out = scenetok(&["tune", "--data", root.to_str().unwrap(), "--device", "tpu"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected cpu, cuda, cuda:N or auto"));
    // `auto` falls back to the CPU.
    let out = scenetok(&["eval", "--task", "lidar-seg", "--data", root.to_str().unwrap(), "--device", "auto"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A copy of the binary outside the source tree finds the models by `--models`, by
/// `SCENETOK_DATA`, or beside itself, and says where it looked when none of them has them.
#[test]
fn an_installed_binary_finds_its_models_or_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    assert!(scenetok(&["fixture", "--out", root.to_str().unwrap()]).status.success());
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let exe = bin.join("scenetok");
    std::fs::copy(env!("CARGO_BIN_EXE_scenetok"), &exe).unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let run = |extra: &[&str], env: Option<&std::path::Path>| {
        let mut c = Command::new(&exe);
        c.current_dir(dir.path()).env_remove("SCENETOK_DATA");
        if let Some(e) = env {
            c.env("SCENETOK_DATA", e);
        }
        c.args(["eval", "--task", "lidar-seg", "--data", root.to_str().unwrap()]).args(extra);
        // The copy was just written: a child another test thread forked while the copy's file
        // was open for writing holds that descriptor until it execs, and Linux refuses to run a
        // file open for writing (ETXTBSY). That child execs within milliseconds; try again.
        for _ in 0..100 {
            match c.output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                out => return out.unwrap(),
            }
        }
        panic!("{} stayed busy (ETXTBSY) for 2 s", exe.display())
    };
    let out = run(&[], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--models") && err.contains("SCENETOK_DATA") && err.contains(bin.join("data").to_str().unwrap()),
        "{err}"
    );
    let ok = |out: std::process::Output, how: &str| {
        assert!(out.status.success(), "{how}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("mIoU"), "{how}");
    };
    ok(run(&["--models", data.to_str().unwrap()], None), "--models");
    ok(run(&[], Some(&data)), "SCENETOK_DATA");
    let bad = run(&["--models", dir.path().to_str().unwrap()], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("given by --models"), "a folder without the models");
    std::os::unix::fs::symlink(&data, bin.join("data")).unwrap();
    ok(run(&[], None), "beside the executable");
}

/// `eval --task lidar-seg --precision`: INT8 needs calibration frames and says so; with them
/// (and BF16 without) it runs and reports what calibration chose.
#[test]
fn lidar_seg_in_low_precision_calibrates_or_asks_for_frames() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    assert!(scenetok(&["fixture", "--out", root.to_str().unwrap()]).status.success());
    let data = root.to_str().unwrap();
    let out = scenetok(&["eval", "--task", "lidar-seg", "--data", data, "--precision", "int8"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--calib"), "{}", String::from_utf8_lossy(&out.stderr));
    for extra in [
        &["--precision", "int8", "--calib", data][..],
        &["--precision", "auto", "--calib", data],
        &["--precision", "bf16"],
    ] {
        let out = scenetok(&[&["eval", "--task", "lidar-seg", "--data", data][..], extra].concat());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            stdout.contains(&format!("precision {}: calibrated on", extra[1])) && stdout.contains("mIoU"),
            "{stdout}"
        );
    }
}

/// The transformer through `eval` on the real WOMD scenario: every agent to predict gets six
/// modes of 16 points, most likely first, confidences summing to one; the submission is
/// written. Missing weights are an error naming the file, before any data is read.
#[test]
fn eval_runs_the_transformer_and_names_missing_weights() {
    use prost::Message;
    let weights =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/motion_transformer_weights.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.safetensors");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = scenetok(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--model",
        "transformer",
        "--weights",
        missing.to_str().unwrap(),
        "--out",
        dir.path().join("run").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("none.safetensors"), "{err}");

    let Some(samples) = common::samples() else { return };
    let scenario = samples.join("womd/motion_data_one_scenario.tfrecord");
    let run = dir.path().join("run");
    let out = scenetok(&[
        "eval",
        "--data",
        scenario.to_str().unwrap(),
        "--model",
        "transformer",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(run.join("submission.binproto")).unwrap();
    let sub = scenetok::io::proto::submission::MotionChallengeSubmission::decode(bytes.as_slice()).unwrap();
    assert_eq!(sub.unique_method_name.as_deref(), Some("scenetok-transformer"));
    let Some(scenetok::io::proto::submission::PredictionSetKind::SinglePredictions(set)) =
        &sub.scenario_predictions[0].prediction_set
    else {
        panic!("marginal predictions expected")
    };
    assert_eq!(set.predictions.len(), 3);
    for p in &set.predictions {
        assert_eq!(p.trajectories.len(), 6);
        let conf: Vec<f32> = p.trajectories.iter().map(|t| t.confidence.unwrap()).collect();
        assert!(conf.windows(2).all(|w| w[0] >= w[1]), "{conf:?}");
        assert!((conf.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{conf:?}");
        assert!(p.trajectories.iter().all(|t| t.trajectory.as_ref().unwrap().center_x.len() == 16));
    }
}
