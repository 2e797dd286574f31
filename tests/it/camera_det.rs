//! Camera detection with SparseViT: the window-pruned Swin backbone equals its PyTorch twin
//! (dense and pruned, on an image no stage's windows divide), and bad ratios or inputs are
//! refused with what was expected.

use scenetok::backend::Device;
use scenetok::models::det::{Backbone, ChwImage, Ratios, SwinConfig};

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// `tools/train/make_sparsevit_golden.py`: the twin's four stage outputs (float64) and the
/// windows each pruned block kept, for the dense backbone and two sets of ratios.
#[test]
fn sparsevit_backbone_reproduces_the_pytorch_twin() {
    let bytes = std::fs::read(golden_dir().join("sparsevit.safetensors")).expect("the golden file is committed");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let words = |n: &str| -> Vec<[u8; 4]> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| [b[0], b[1], b[2], b[3]]).collect()
    };
    let f32s = |n: &str| -> Vec<f32> { words(n).into_iter().map(f32::from_le_bytes).collect() };
    let dev = Device::cpu();
    let backbone = Backbone::load(&golden_dir().join("sparsevit_weights.safetensors"), &dev).unwrap();
    let cfg = backbone.config().clone();
    assert_eq!(cfg.depths, vec![2, 2, 4, 2]);
    let image = st.tensor("image").unwrap();
    let (height, width) = (image.shape()[1], image.shape()[2]);
    let values = f32s("image");
    for key in ["dense", "a", "b"] {
        let ratios = match meta.get(&format!("ratios.{key}")) {
            None => Ratios::dense(&cfg),
            Some(text) => {
                let stages = text.split(';').map(|s| s.split(',').map(|v| v.parse().unwrap()).collect()).collect();
                Ratios::new(stages, &cfg).unwrap()
            }
        };
        let out = backbone.forward(&dev, ChwImage { height, width, values: &values }, &ratios).unwrap();
        for (s, f) in out.features.iter().enumerate() {
            let want = f32s(&format!("{key}.{s}"));
            let got = dev.backend().download(&f.values).unwrap();
            assert_eq!(got.len(), want.len(), "{key} stage {s}");
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err / scale < 1e-4, "{key} stage {s}: max relative error {:e}", err / scale);
            for (b, block) in out.windows[s].iter().enumerate() {
                let name = format!("{key}.kept.{s}.{b}");
                if st.names().iter().any(|n| **n == name) {
                    let want: Vec<u32> = words(&name).into_iter().map(|w| i32::from_le_bytes(w) as u32).collect();
                    assert_eq!(block.kept, want, "{name}");
                } else {
                    assert_eq!(
                        block.kept.len(),
                        block.grid.0 * block.grid.1,
                        "{name}: a dense block runs every window"
                    );
                }
            }
        }
        // Stage strides 4, 8, 16, 32 over the padded grid.
        assert_eq!((out.features[0].height, out.features[0].width), (height.div_ceil(4), width.div_ceil(4)));
    }
}

/// Ratios for another backbone's depths and images whose values do not match their size are
/// refused with what was expected; no panic.
#[test]
fn sparsevit_refuses_bad_ratios_and_images() {
    let dev = Device::cpu();
    let cfg = SwinConfig { embed: 8, depths: vec![2, 2], heads: vec![1, 2], ..SwinConfig::small() };
    let backbone = Backbone::random(cfg.clone(), 1, &dev).unwrap();
    let values = vec![0.5f32; 3 * 20 * 30];
    let image = ChwImage { height: 20, width: 30, values: &values };
    let other = Ratios::dense(&SwinConfig::swin_t());
    let err = backbone.forward(&dev, image, &other).unwrap_err().to_string();
    assert!(err.contains("depths [2, 2]"), "{err}");
    let short = ChwImage { height: 21, ..image };
    let err = backbone.forward(&dev, short, &Ratios::dense(&cfg)).unwrap_err().to_string();
    assert!(err.contains("3 × 21 × 30"), "{err}");
    // Everything pruned but the last window of each list still runs, on a 1-pixel image too.
    let r = Ratios::parse("0.9/0.9", &cfg).unwrap();
    let tiny = vec![0.1f32; 3];
    let out = backbone.forward(&dev, ChwImage { height: 1, width: 1, values: &tiny }, &r).unwrap();
    assert_eq!((out.features[1].height, out.features[1].width), (1, 1));
    assert!(out.windows.iter().flatten().all(|b| b.kept.is_empty()), "int(1 · 0.1) = 0 windows kept");
    let bad = SwinConfig { heads: vec![3, 2], ..cfg };
    assert!(Backbone::random(bad, 1, &dev).unwrap_err().to_string().contains("3 heads for 8 channels"));
}

/// `tools/train/make_camera_det_golden.py`: the detector's input (the ½ resize of an odd-sized
/// image) and its head map, dense and pruned, equal the twin's (float64).
#[test]
fn camera_detector_reproduces_the_pytorch_twin() {
    use scenetok::models::det::Detector;
    use scenetok::models::image_encoder::preprocess::RgbView;
    let bytes = std::fs::read(golden_dir().join("camera_det.safetensors")).expect("the golden file is committed");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |n: &str| -> Vec<f32> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    let close = |got: &[f32], want: &[f32], what: &str| {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err / scale < 1e-4, "{what}: max relative error {:e}", err / scale);
    };
    let dev = Device::cpu();
    let det = Detector::load(&golden_dir().join("camera_det_weights.safetensors"), &dev).unwrap();
    let rgb = st.tensor("rgb").unwrap();
    let (h, w) = (rgb.shape()[0] as u32, rgb.shape()[1] as u32);
    let (input, iw, ih) = det.input(RgbView::new(w, h, rgb.data()).unwrap());
    assert_eq!((iw, ih), (151, 102), "round(301 / 2), round(203 / 2)");
    close(&input, &f32s("input"), "input");
    let cfg = det.config().clone();
    let pruned = {
        let stages = meta["ratios"].split(';').map(|s| s.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        Ratios::new(stages, &cfg).unwrap()
    };
    for (key, ratios) in [("dense", Ratios::dense(&cfg)), ("pruned", pruned)] {
        let map = det.forward(&dev, ChwImage { height: ih, width: iw, values: &input }, &ratios).unwrap();
        close(&map.values, &f32s(key), key);
    }
}

fn tiny_world() -> tempfile::TempDir {
    use scenetok::sim::generate::{GenerateConfig, Preset, generate};
    let dir = tempfile::tempdir().unwrap();
    let cfg = GenerateConfig { segments: 1, frames: 2, seed: 4, camera_div: 8, ..GenerateConfig::preset(Preset::Tiny) };
    generate(dir.path(), &cfg, |_, _| {}).unwrap();
    dir
}

/// The detector as a pipeline stage: every camera of the frame gets its boxes and the share
/// of windows the backbone ran (all of them dense, fewer pruned).
#[test]
fn camera_detection_runs_as_a_pipeline_stage() {
    use scenetok::models::det::Detector;
    use scenetok::pipeline::stages::CameraDetStage;
    use scenetok::pipeline::{FrameContext, FrameSelection, Pipeline, Source};
    let world = tiny_world();
    let dev = Device::cpu();
    let det = Detector::load(&golden_dir().join("camera_det_weights.safetensors"), &dev).unwrap();
    let cfg = det.config().clone();
    let source = Source::open(world.path()).unwrap();
    for (ratios, dense) in [(Ratios::dense(&cfg), true), (Ratios::parse("0.5/0.5/0.5/0", &cfg).unwrap(), false)] {
        let mut pipeline = Pipeline::new().then(CameraDetStage::new(det.clone(), ratios, dev.clone())).unwrap();
        let selection = FrameSelection::all().request(pipeline.request());
        let frame = source.frames(&selection).unwrap().next().unwrap().unwrap();
        let mut ctx = FrameContext::new(frame);
        pipeline.run(&mut ctx).unwrap();
        let out = ctx.camera_det.as_ref().expect("the head's output");
        assert_eq!(out.cameras.len(), 5);
        for (_, boxes, share) in &out.cameras {
            assert!(boxes.len() <= 100);
            assert_eq!(*share == 1.0, dense, "window share {share}");
        }
        assert!(ctx.times.iter().any(|(name, _)| *name == "camera_det"));
    }
}

/// `eval --task camera-det` and `search sparsevit` as a user runs them: the table, the
/// metrics file, the search record; a record for another device is refused by eval.
#[test]
fn camera_det_eval_and_search_commands() {
    let world = tiny_world();
    let weights = golden_dir().join("camera_det_weights.safetensors");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scenetok")).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let data = world.path().to_str().unwrap();
    let outputs = tempfile::tempdir().unwrap();
    let out_dir = outputs.path().join("eval");
    let (ok, stdout, stderr) = run(&[
        "eval",
        "--task",
        "camera-det",
        "--data",
        data,
        "--weights",
        weights.to_str().unwrap(),
        "--ratios",
        "half=0.5/0.5/0.5/0",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("dense") && stdout.contains("half") && stdout.contains("AP50"), "{stdout}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["methods"].as_array().unwrap().len(), 2);
    assert_eq!(metrics["images"], 10);
    let tuning = outputs.path().join("tuning");
    let (ok, stdout, stderr) = run(&[
        "search",
        "sparsevit",
        "--data",
        data,
        "--weights",
        weights.to_str().unwrap(),
        "--images",
        "2",
        "--population",
        "3",
        "--parents",
        "2",
        "--generations",
        "2",
        "--budgets",
        "0.9",
        "--latency-reps",
        "1",
        // The finalists scored again (here on the same small world: the mechanics, not the
        // statistics) and the best there chosen.
        "--rescore-data",
        data,
        "--rescore-images",
        "3",
        "--finalists",
        "2",
        "--out-dir",
        tuning.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("budget 0.9") && stdout.contains("finalist"), "{stdout}");
    let record = std::fs::read_dir(&tuning).unwrap().next().unwrap().unwrap().path();
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let chosen = &r["results"][0];
    let finalists = chosen["rescore"]["finalists"].as_array().expect("the re-scored finalists");
    assert!((1..=2).contains(&finalists.len()), "{r}");
    assert_eq!(chosen["rescore"]["images"], 3, "{r}");
    let best = finalists.iter().map(|f| f[3].as_f64().unwrap()).fold(f64::MIN, f64::max);
    let chosen_row = finalists.iter().find(|f| f[0] == chosen["ratios"]).expect("the chosen set is a finalist");
    assert_eq!(chosen_row[3].as_f64().unwrap(), best, "{r}");
    let (ok, _, stderr) = run(&[
        "eval",
        "--task",
        "camera-det",
        "--data",
        data,
        "--weights",
        weights.to_str().unwrap(),
        "--searched",
        record.to_str().unwrap(),
        "--max-frames",
        "1",
    ]);
    assert!(ok, "{stderr}");
    // The same record claimed for another device: refused, naming both.
    let text = std::fs::read_to_string(&record).unwrap().replace("\"device\": \"cpu", "\"device\": \"cuda0-cpu");
    std::fs::write(&record, text).unwrap();
    let (ok, _, stderr) = run(&[
        "eval",
        "--task",
        "camera-det",
        "--data",
        data,
        "--weights",
        weights.to_str().unwrap(),
        "--searched",
        record.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("a search for model camera_det_weights.safetensors@"), "{stderr}");
}

/// `eval --task camera-det --finetuned W`: weights fine-tuned at one ratio set are a row of
/// their own at that set (named by the file), paired against the dense `--weights`. Here the
/// "fine-tuned" file is the same weights with the metadata added, so its row must equal the
/// `--ratios` row of the same set exactly; weights without the metadata are refused.
#[test]
fn camera_det_eval_of_finetuned_weights() {
    let world = tiny_world();
    let weights = golden_dir().join("camera_det_weights.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let tuned = dir.path().join("tuned_half.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap_or_default();
    meta.insert("fixed_ratios".into(), "0.5/0.5/0.5/0".into());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    safetensors::serialize_to_file(st.tensors(), Some(meta), &tuned).unwrap();

    let run = |extra: &[&str]| {
        let out_dir = dir.path().join(format!("eval{}", extra.len()));
        let mut args = vec!["eval", "--task", "camera-det", "--data", world.path().to_str().unwrap()];
        args.extend(["--weights", weights.to_str().unwrap(), "--max-frames", "1"]);
        args.extend(["--out", out_dir.to_str().unwrap()]);
        args.extend(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scenetok")).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let metrics = out.status.success().then(|| {
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(out_dir.join("metrics.json")).unwrap())
                .unwrap()
        });
        (metrics, stderr)
    };
    let (metrics, stderr) = run(&["--ratios", "half=0.5/0.5/0.5/0", "--finetuned", tuned.to_str().unwrap()]);
    let metrics = metrics.unwrap_or_else(|| panic!("{stderr}"));
    let methods = metrics["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 3);
    assert_eq!(methods[2]["name"], "tuned_half");
    assert_eq!(methods[2]["ratios"], methods[1]["ratios"]);
    assert_eq!(methods[2]["ap"], methods[1]["ap"], "same weights, same set: the same boxes");
    assert_eq!(methods[2]["ap_change"], methods[1]["ap_change"]);
    // The dense weights are not fine-tuned at any set.
    let (metrics, stderr) = run(&["--finetuned", weights.to_str().unwrap()]);
    assert!(metrics.is_none() && stderr.contains("without `fixed_ratios`"), "{stderr}");
}
