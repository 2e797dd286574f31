//! Sharded evaluation: `eval --shard I/N --partial` on every shard, then `merge`, gives the run
//! one process writes, in any order of the partials; bad sets of partials are refused.

use std::path::Path;
use std::process::{Command, Output};

use crate::common;

fn scenetok(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scenetok")).args(args).output().expect("scenetok runs")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `scenetok generate --preset tiny` of `segments` × `frames` with `seed` into `out`
/// (`extra`: e.g. a shard); its stdout.
fn generate_tiny(out: &Path, segments: usize, frames: usize, seed: u64, extra: &[&str]) -> String {
    let (segments, frames, seed) = (segments.to_string(), frames.to_string(), seed.to_string());
    let mut args = vec!["generate", "--preset", "tiny", "--segments", &segments, "--frames", &frames, "--seed", &seed];
    args.extend(extra);
    args.extend(["--out", s(out)]);
    ok(scenetok(&args))
}

/// `metrics.json` without its wall times (the only part that depends on where it ran).
fn metrics_without_times(run: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("latency");
    v
}

fn scenes(run: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("report_data.json")).unwrap()).unwrap();
    v["scenes"].clone()
}

/// Evaluates `data` whole into `dir/single` and in `n` shards merged in two orders into
/// `dir/merged_a` and `dir/merged_b`; returns the partials' paths.
fn single_and_merged(dir: &Path, data: &Path, n: usize) -> Vec<String> {
    ok(scenetok(&["eval", "--data", s(data), "--model", "ctra", "--out", s(&dir.join("single"))]));
    // Both encodings, mixed in one merge: JSON for even shards, MessagePack for odd ones.
    let partials: Vec<String> = (0..n)
        .map(|i| s(&dir.join(format!("part{i}.{}", if i % 2 == 0 { "json" } else { "msgpack" }))).to_string())
        .collect();
    for (i, p) in partials.iter().enumerate() {
        let shard = format!("{i}/{n}");
        let out = ok(scenetok(&["eval", "--data", s(data), "--model", "ctra", "--shard", &shard, "--partial", p]));
        assert!(out.contains(&format!("shard {shard}")), "{out}");
    }
    let mut args = vec!["merge"];
    args.extend(partials.iter().map(String::as_str));
    let a = dir.join("merged_a");
    args.extend(["--out", s(&a)]);
    ok(scenetok(&args));
    let mut reversed = vec!["merge"];
    reversed.extend(partials.iter().rev().map(String::as_str));
    let b = dir.join("merged_b");
    reversed.extend(["--out", s(&b)]);
    ok(scenetok(&reversed));
    partials
}

fn assert_same_run(dir: &Path) {
    let (single, a, b) = (dir.join("single"), dir.join("merged_a"), dir.join("merged_b"));
    // Any order of the partials: the same bytes (wall times included, they come from the partials).
    for f in ["metrics.json", "report_data.json", "predictions.parquet", "submission.binproto"] {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f}");
    }
    // And the single process's run, but for wall times.
    assert_eq!(metrics_without_times(&single), metrics_without_times(&a));
    assert_eq!(scenes(&single), scenes(&a));
    for f in ["predictions.parquet", "submission.binproto"] {
        assert_eq!(std::fs::read(single.join(f)).unwrap(), std::fs::read(a.join(f)).unwrap(), "{f}");
    }
}

#[test]
fn four_shards_of_a_generated_world_merge_into_the_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    generate_tiny(&world, 5, 120, 7, &[]);
    single_and_merged(dir.path(), &world, 4);
    assert_same_run(dir.path());
    let m = metrics_without_times(&dir.path().join("single"));
    assert!(m["scenarios"].as_u64().unwrap() >= 8, "{m}");
    // More shards than segments: the empty ones are results too.
    let seven = dir.path().join("seven");
    std::fs::create_dir(&seven).unwrap();
    single_and_merged(&seven, &world, 7);
    assert_same_run(&seven);
}

#[test]
fn shards_of_a_womd_tfrecord_merge_into_the_single_run() {
    use prost::Message;
    let Some(samples) = common::samples() else { return };
    let bytes =
        scenetok::io::tfrecord::read_records(samples.join("womd/motion_data_one_scenario.tfrecord")).unwrap().remove(0);
    let scenario = scenetok::io::proto::Scenario::decode(&bytes[..]).unwrap();
    // Five records, five ids: the shards split by record.
    let records: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            let mut s = scenario.clone();
            s.scenario_id = Some(format!("{}-{i}", s.scenario_id.clone().unwrap_or_default()));
            s.encode_to_vec()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("five.tfrecord");
    scenetok::io::tfrecord::write_records(&file, &records).unwrap();
    single_and_merged(dir.path(), &file, 3);
    assert_same_run(dir.path());
    assert_eq!(metrics_without_times(&dir.path().join("single"))["scenarios"], 5);

    // The same five as a folder of three files (a sharded release): a shard reads its files.
    let folder = dir.path().join("release");
    std::fs::create_dir(&folder).unwrap();
    for (k, chunk) in records.chunks(2).enumerate() {
        scenetok::io::tfrecord::write_records(folder.join(format!("validation.tfrecord-{k:05}-of-00003")), chunk)
            .unwrap();
    }
    let runs = dir.path().join("from_folder");
    std::fs::create_dir(&runs).unwrap();
    single_and_merged(&runs, &folder, 2);
    assert_same_run(&runs);
    // The folder's metrics are the file's (the data path aside).
    let without_data = |run: &Path| {
        let mut m = metrics_without_times(run);
        m.as_object_mut().unwrap().remove("data");
        m
    };
    assert_eq!(without_data(&runs.join("single")), without_data(&dir.path().join("single")));
}

#[test]
fn a_bad_set_of_partials_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    generate_tiny(&world, 2, 100, 3, &[]);
    let part = |name: &str, shard: &str, model: &str| {
        let p = dir.path().join(name);
        ok(scenetok(&["eval", "--data", s(&world), "--model", model, "--shard", shard, "--partial", s(&p)]));
        s(&p).to_string()
    };
    let (p0, p1) = (part("p0.json", "0/2", "ctra"), part("p1.json", "1/2", "ctra"));
    let cv1 = part("cv1.json", "1/2", "constant-velocity");
    let merge = |parts: &[&str]| {
        let out_dir = dir.path().join("out");
        let mut args = vec!["merge"];
        args.extend(parts);
        args.extend(["--out", s(&out_dir)]);
        let out = scenetok(&args);
        assert!(!out.status.success(), "merge of {parts:?} should fail");
        assert!(!out_dir.join("metrics.json").exists(), "nothing written on failure");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = merge(&[&p0]);
    assert!(e.contains("shard 1/2 is missing"), "{e}");
    let e = merge(&[&p0, &p1, &p1]);
    assert!(e.contains("is also"), "{e}");
    let e = merge(&[&p0, &cv1]);
    assert!(e.contains("cv1.json") && e.contains("model"), "{e}");
    // A truncated partial: its file and what was expected.
    let bytes = std::fs::read(&p1).unwrap();
    let cut = dir.path().join("cut.json");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = merge(&[&p0, s(&cut)]);
    assert!(e.contains("cut.json") && e.contains("partial result"), "{e}");
    // The same shard in MessagePack: smaller, and truncated it is named as well.
    let p1m = part("p1.msgpack", "1/2", "ctra");
    let bytes = std::fs::read(&p1m).unwrap();
    assert!(bytes.len() < std::fs::metadata(&p1).unwrap().len() as usize, "MessagePack holds fewer bytes than JSON");
    let cut = dir.path().join("cut.msgpack");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = merge(&[&p0, s(&cut)]);
    assert!(e.contains("cut.msgpack") && e.contains("MessagePack"), "{e}");
    // A shard that is not one.
    let out = scenetok(&["eval", "--data", s(&world), "--shard", "2/2", "--partial", s(&dir.path().join("x.json"))]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("I/N") && e.contains("2/2"), "{e}");
}

#[test]
fn lidar_segmentation_shards_merge_into_the_single_metrics_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    generate_tiny(&world, 3, 3, 5, &[]);
    let single = dir.path().join("single");
    let eval = ["eval", "--task", "lidar-seg", "--data", s(&world)];
    ok(scenetok(&[&eval[..], &["--out", s(&single)]].concat()));
    let single_json = std::fs::read(single.join("metrics.json")).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&single_json).unwrap();
    assert_eq!(m["frames"], 9, "{m}");
    assert!(m["points"].as_u64().unwrap() > 0, "{m}");
    // 2 shards, and 4 (one of them empty: 3 segments), merged in both orders.
    for n in [2, 4] {
        let parts: Vec<String> = (0..n)
            .map(|i| {
                let p = dir.path().join(format!("seg{i}of{n}.json"));
                let shard = format!("{i}/{n}");
                let out = ok(scenetok(&[&eval[..], &["--shard", &shard, "--partial", s(&p)]].concat()));
                assert!(out.contains(&format!("shard {shard}:")), "{out}");
                s(&p).to_string()
            })
            .collect();
        for (k, order) in [parts.clone(), parts.iter().rev().cloned().collect()].into_iter().enumerate() {
            let out = dir.path().join(format!("merged{n}_{k}"));
            let mut args = vec!["merge"];
            args.extend(order.iter().map(String::as_str));
            args.extend(["--out", s(&out)]);
            ok(scenetok(&args));
            assert_eq!(std::fs::read(out.join("metrics.json")).unwrap(), single_json, "{n} shards, order {k}");
        }
    }
    // A motion partial among segmentation ones is refused, naming the file and the format.
    let motion = dir.path().join("motion.json");
    ok(scenetok(&["eval", "--data", s(&world), "--model", "ctra", "--shard", "1/2", "--partial", s(&motion)]));
    let seg0 = dir.path().join("seg0of2.json");
    let out = scenetok(&["merge", s(&seg0), s(&motion), "--out", s(&dir.path().join("mixed"))]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("motion.json") && e.contains("scenetok-motion-partial/1"), "{e}");
}

/// Runs `eval` (a metrics-writing task) as shards 0/2 and 1/2 into `dir/{prefix}{i}.json`, merges
/// them in both orders and checks both merges wrote the same bytes (wall times come from the
/// partials, so any order gives the same file); returns the partials and one merged folder.
fn two_shards_merged_both_ways(dir: &Path, eval: &[&str], prefix: &str) -> (Vec<String>, std::path::PathBuf) {
    let parts: Vec<String> = (0..2)
        .map(|i| {
            let p = dir.join(format!("{prefix}{i}.json"));
            let shard = format!("{i}/2");
            let out = ok(scenetok(&[eval, &["--shard", &shard, "--partial", s(&p)]].concat()));
            assert!(out.contains(&format!("shard {shard}:")), "{out}");
            s(&p).to_string()
        })
        .collect();
    let (a, b) = (dir.join("merged_a"), dir.join("merged_b"));
    ok(scenetok(&["merge", &parts[0], &parts[1], "--out", s(&a)]));
    ok(scenetok(&["merge", &parts[1], &parts[0], "--out", s(&b)]));
    assert_eq!(std::fs::read(a.join("metrics.json")).unwrap(), std::fs::read(b.join("metrics.json")).unwrap());
    (parts, a)
}

/// `metrics.json` of a camera-segmentation run without its wall times.
fn segmentation_metrics_without_times(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    for m in v.as_array_mut().unwrap() {
        m.as_object_mut().unwrap().remove("ms_per_image");
    }
    v
}

#[test]
fn camera_segmentation_shards_merge_into_the_single_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    // Cameras at ¼ of Waymo's size, as the shipped model was trained on.
    generate_tiny(&world, 3, 1, 6, &["--camera-div", "4"]);
    // Full resolution and ¼ with the shipped refiner (its τ from its metadata): every kind of row
    // and both bootstrap intervals.
    let eval = ["eval", "--task", "camera-seg", "--data", s(&world), "--scales", "1,0.25"];
    let single = dir.path().join("single");
    ok(scenetok(&[&eval[..], &["--out", s(&single)]].concat()));
    let want = segmentation_metrics_without_times(&single);
    let rows: Vec<&str> = want.as_array().unwrap().iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(rows, ["dense ×1", "dense ×0.25", "refine ×0.25"], "{want}");
    assert_eq!(want[0]["report"]["images"], 15, "{want}");
    assert!(want[2]["miou_vs_dense"].is_object() && want[1]["miou_vs_full"].is_object(), "{want}");
    let (parts, merged) = two_shards_merged_both_ways(dir.path(), &eval, "seg");
    // The single run's metrics, intervals included.
    assert_eq!(segmentation_metrics_without_times(&merged), want);
    // A partial of other rows (no refiner) is refused, naming both files.
    let other = dir.path().join("other.json");
    ok(scenetok(&[&eval[..], &["--no-refine", "--shard", "1/2", "--partial", s(&other)]].concat()));
    let out = scenetok(&["merge", &parts[0], s(&other), "--out", s(&dir.path().join("mixed"))]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("other.json") && e.contains("seg0.json") && e.contains("refine ×0.25"), "{e}");
    // A hand-edited partial whose matrix is not 29 × 29 is an error naming the file, not a panic.
    let text = std::fs::read_to_string(&parts[1]).unwrap();
    let cut = dir.path().join("cut.json");
    std::fs::write(&cut, text.replacen("\"classes\":29", "\"classes\":23", 1)).unwrap();
    let out = scenetok(&["merge", &parts[0], s(&cut), "--out", s(&dir.path().join("cut"))]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("cut.json") && e.contains("529 counts"), "{e}");
}

/// `metrics.json` of a camera-detection run without its wall times.
fn detection_metrics_without_times(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    for m in v["methods"].as_array_mut().unwrap() {
        let m = m.as_object_mut().unwrap();
        m.remove("backbone_ms");
        m.remove("total_ms");
    }
    v
}

#[test]
fn camera_detection_shards_merge_into_the_single_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    generate_tiny(&world, 3, 1, 4, &["--camera-div", "8"]);
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/camera_det_weights.safetensors");
    let eval = [
        "eval",
        "--task",
        "camera-det",
        "--data",
        s(&world),
        "--weights",
        s(&weights),
        "--ratios",
        "half=0.5/0.5/0.5/0",
    ];
    let single = dir.path().join("single");
    ok(scenetok(&[&eval[..], &["--out", s(&single)]].concat()));
    let want = detection_metrics_without_times(&single);
    assert_eq!(want["images"], 15, "{want}");
    assert!(want["methods"][1]["ap_change"].is_object(), "{want}");
    let (_, merged) = two_shards_merged_both_ways(dir.path(), &eval, "det");
    assert_eq!(detection_metrics_without_times(&merged), want);
}

/// Every file under `dir` (relative path → bytes), but for the manifests.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().contains("manifest") {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn generate_and_dataset_shards_write_the_files_of_the_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let generate = |out: &Path, shard: &str| generate_tiny(out, 3, 12, 5, &["--shard", shard]);
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    generate(&whole, "0/1");
    assert!(generate(&parts, "1/2").contains("wrote 1 segment(s)"));
    assert!(generate(&parts, "0/2").contains("wrote 2 segment(s)"));
    assert!(
        parts.join("scenetok_manifest.0-of-2.json").exists() && parts.join("scenetok_manifest.1-of-2.json").exists()
    );
    let (a, b) = (files(&whole), files(&parts));
    assert!(a.len() > 20);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "a shard's files differ from the whole run's");

    let build = |out: &Path, shard: &str| {
        ok(scenetok(&[
            "dataset",
            "motion",
            "--preset",
            "tiny",
            "--frames",
            "100",
            "--train-worlds",
            "3",
            "--validation-worlds",
            "1",
            "--test-worlds",
            "1",
            "--shard",
            shard,
            "--out",
            s(out),
        ]))
    };
    let (whole, parts) = (dir.path().join("ds_whole"), dir.path().join("ds_parts"));
    build(&whole, "0/1");
    for i in 0..3 {
        let shard = format!("{i}/3");
        let out = build(&parts, &shard);
        assert!(out.contains(&format!("dataset_manifest.{i}-of-3.json")), "{out}");
    }
    assert!(files(&whole) == files(&parts), "the parts' shards differ from the whole build's");
    // The last, whole run finds everything built and writes the dataset's manifest.
    let out = build(&parts, "0/1");
    assert!(out.contains("0 shards built, 5 already there"), "{out}");
}
