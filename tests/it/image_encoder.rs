//! The image encoder against Python onnxruntime (same inputs, real pvps JPEGs and generated
//! frames), the per-point camera choice against `lidar_camera_projection`, and the errors.
//! Images are downscaled (scale 1/8 or the tiny preset): the properties do not depend on
//! the size, and the full-size model is slow on CI's two cores (`scenetok bench image`
//! runs full size).

use std::path::{Path, PathBuf};
use std::process::Command;

use scenetok::io::v2::{Component, Dataset, FrameRequest};
use scenetok::models::image_encoder::config::SizePolicy;
use scenetok::models::image_encoder::{
    EncoderOptions, ImageEncoder, ModelConfig, Outputs, RgbView, decode_frame_images, preprocess,
};
use scenetok::pipeline::stages::{ImageStage, PointsStage};
use scenetok::pipeline::{FrameContext, Pipeline, Return, SourceFrame};
use scenetok::scene::Frame;
use scenetok::sim::generate::{GenerateConfig, Preset, generate};
use scenetok::{Error, Location};

use crate::common;

fn config(scale: f64) -> ModelConfig {
    ModelConfig::load(crate::common::default_image_config()).unwrap().with_scale(scale).unwrap()
}

fn encoder(scale: f64) -> ImageEncoder {
    ImageEncoder::load(config(scale), EncoderOptions { threads: 2, ..Default::default() }).unwrap()
}

/// The pipeline's points stage (every laser, both returns) and image stage sampling `map`.
fn feature_pipeline(enc: ImageEncoder, map: &str) -> Pipeline {
    Pipeline::new()
        .then(PointsStage::default().with_second_returns())
        .unwrap()
        .then(ImageStage::new(enc, Some(map.to_string())).unwrap())
        .unwrap()
}

/// Runs `frame` through `pipeline` in `ctx` (whose buffers the stages reuse).
fn run_frame(pipeline: &mut Pipeline, ctx: &mut FrameContext, frame: &Frame) {
    ctx.load(SourceFrame {
        segment: frame.segment.clone(),
        unit: 0,
        index: 0,
        frame: frame.clone(),
        at: Location::default(),
    });
    pipeline.run(ctx).unwrap();
}

/// One frame through a fresh context.
fn frame_features(pipeline: &mut Pipeline, frame: &Frame) -> FrameContext {
    let mut ctx = FrameContext::default();
    run_frame(pipeline, &mut ctx, frame);
    ctx
}

fn write_f32(path: &Path, v: &[f32]) {
    std::fs::write(path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

/// Writes what `tools/image_reference.py check` reads; returns the manifest.
fn write_case(dir: &Path, cfg: &ModelConfig, images: &[RgbView<'_>], out: &Outputs) -> serde_json::Value {
    let mut imgs = Vec::new();
    for (i, im) in images.iter().enumerate() {
        let f = format!("image{i}.rgb");
        std::fs::write(dir.join(&f), im.pixels).unwrap();
        imgs.push(serde_json::json!({"file": f, "width": im.width, "height": im.height}));
    }
    let batch = preprocess(cfg, images).unwrap();
    write_f32(&dir.join("input.f32"), &batch.data);
    let mut outs = Vec::new();
    for m in &out.maps {
        let f = format!("{}.f32", m.name);
        write_f32(&dir.join(&f), m.data.as_slice().unwrap());
        outs.push(serde_json::json!({"name": m.name, "file": f, "shape": m.data.shape()}));
    }
    for (name, a) in &out.vectors {
        let f = format!("{name}.f32");
        write_f32(&dir.join(&f), a.as_slice().unwrap());
        outs.push(serde_json::json!({"name": name, "file": f, "shape": a.shape()}));
    }
    // The test may have changed the config's scale: tell the reference.
    let size = match cfg.size {
        SizePolicy::Scale { scale, multiple } => {
            serde_json::json!({"policy": "scale", "scale": scale, "multiple": multiple})
        }
        SizePolicy::Fixed { width, height } => serde_json::json!({"policy": "fixed", "width": width, "height": height}),
    };
    serde_json::json!({
        "config": cfg.path, "input_size": size, "images": imgs, "threads": 2,
        "input": {"file": "input.f32", "shape": batch.shape}, "outputs": outs,
    })
}

fn run_reference(py: &Path, dir: &Path, manifest: &serde_json::Value) -> serde_json::Value {
    std::fs::write(dir.join("manifest.json"), serde_json::to_string(manifest).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/image_reference.py");
    let out = Command::new(py).arg(script).arg("check").arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_matches_reference(res: &serde_json::Value) {
    eprintln!("reference: {res}");
    assert!(res.get("error").is_none(), "{res}");
    let pre = res["preprocess_max_abs"].as_f64().unwrap();
    assert!(pre <= 1e-5, "preprocessing differs by {pre}");
    for (name, d) in res["outputs"].as_object().unwrap() {
        let d = d.as_f64().unwrap_or_else(|| panic!("output {name}: {d}"));
        assert!(d <= 1e-4, "output {name} differs from Python onnxruntime by {d}");
    }
}

#[test]
fn pvps_cameras_match_python_onnxruntime() {
    let Some(samples) = common::samples() else { return };
    let frames = scenetok::io::v1::read_frames(samples.join("v1/pvps_data_one_frame.tfrecord")).unwrap();
    let imgs = decode_frame_images(&frames[0], &Location::default()).unwrap();
    assert_eq!(imgs.images.len(), 5);
    let views: Vec<RgbView<'_>> = imgs.images.iter().map(RgbView::from).collect();
    let mut enc = encoder(0.125);
    let out = enc.encode(&views).unwrap();
    // 1920×1280 and 1920×886 at 1/8: 240×160 and 240×111, batched as 256×160.
    assert_eq!(out.input_size, (256, 160));
    let s16 = out.map("s16").unwrap();
    assert_eq!(s16.data.shape(), &[5, 112, 10, 16]);
    assert_eq!(s16.content_cells(3), (15, 7));
    // Same batch twice: the bound I/O is reused and gives the same answer.
    let again = enc.encode(&views).unwrap();
    assert_eq!(again, out);

    let Some(py) = common::python_with("onnxruntime") else { return };
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_case(dir.path(), enc.config(), &views, &out);
    assert_matches_reference(&run_reference(&py, dir.path(), &manifest));
}

/// Tiny generated frames with everything the features need and the projection oracle.
fn generated_frames(n: usize) -> (tempfile::TempDir, Vec<scenetok::scene::Frame>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Tiny);
    cfg.segments = 1;
    cfg.frames = n;
    cfg.seed = 3;
    generate(dir.path(), &cfg, |_, _| {}).unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let seg = ds.segments().next().unwrap().to_string();
    let request = FrameRequest::only(&[
        Component::Lidar,
        Component::LidarCalibration,
        Component::LidarPose,
        Component::LidarCameraProjection,
        Component::CameraImage,
        Component::CameraCalibration,
        Component::VehiclePose,
    ]);
    let mut reader = ds.frames(&seg, &request).unwrap();
    let frames = reader.timestamps().to_vec().into_iter().map(|ts| reader.read_frame(ts).unwrap()).collect();
    (dir, frames)
}

fn generated_frame() -> (tempfile::TempDir, scenetok::scene::Frame) {
    let (dir, mut frames) = generated_frames(1);
    (dir, frames.remove(0))
}

/// A stream reuses one result's memory frame after frame (images, outputs, per-point
/// features); whatever came before (other points, other image sizes, no LiDAR), the result
/// is the one a fresh run gives.
#[test]
fn reused_buffers_give_the_same_features_as_fresh_ones() {
    let (_dir, frames) = generated_frames(2);
    let mut sequence = vec![frames[0].clone(), frames[1].clone()];
    if let Some(samples) = common::samples() {
        sequence.extend(scenetok::io::v1::read_frames(samples.join("v1/pvps_data_one_frame.tfrecord")).unwrap());
    }
    sequence.push(frames[0].clone());
    let mut pipeline = feature_pipeline(encoder(0.125), "s16");
    let mut r = FrameContext::default();
    for f in &sequence {
        run_frame(&mut pipeline, &mut r, f);
    }
    let fresh = frame_features(&mut pipeline, &frames[0]);
    let (ri, fi) = (r.image.as_ref().unwrap(), fresh.image.as_ref().unwrap());
    assert_eq!(ri.images.images, fi.images.images);
    assert_eq!(ri.outputs, fi.outputs);
    assert_eq!(r.points.len(), fresh.points.len());
    assert_eq!(ri.points.len(), fi.points.len());
    assert!(fi.points.iter().any(|f| f.seen_count() > 0));
    for ((a, fa), (b, fb)) in r.points.iter().zip(&ri.points).zip(fresh.points.iter().zip(&fi.points)) {
        assert_eq!((a.laser, a.ret, &a.cloud.xyz), (b.laser, b.ret, &b.cloud.xyz));
        assert_eq!((&fa.camera, &fa.features), (&fb.camera, &fb.features), "laser {} return {:?}", a.laser, a.ret);
        // Unseen points' pixels are NaN: compare bits.
        let bits = |f: &scenetok::models::image_encoder::PointFeatures| {
            f.uv.iter().map(|p| p.map(f32::to_bits)).collect::<Vec<_>>()
        };
        assert_eq!(bits(fa), bits(fb));
    }
}

#[test]
fn generated_frame_points_take_the_camera_of_lidar_camera_projection() {
    let (_dir, frame) = generated_frame();
    let r = frame_features(&mut feature_pipeline(encoder(0.5), "s16"), &frame);
    let image = r.image.as_ref().unwrap();
    let (mut total, mut seen, mut mismatched) = (0usize, 0usize, Vec::new());
    for (c, f) in r.points.iter().zip(&image.points).filter(|(c, _)| c.ret == Return::First) {
        let (laser, ret, pixels) = (c.laser, c.ret as u8, &c.cloud.pixels);
        let l = frame.lasers.iter().find(|l| l.laser == laser).unwrap();
        let proj = l.camera_projection1.as_ref().expect("generated lasers carry lidar_camera_projection");
        for (i, px) in pixels.iter().enumerate() {
            let (h, w) = (px[0] as usize, px[1] as usize);
            let want = proj.get(h, w, 0) as i64;
            let got = f.camera[i].map_or(0, |c| c.value());
            total += 1;
            if got != want {
                mismatched.push(format!("laser {laser}/{ret} pixel ({h},{w}): {got} vs {want}"));
                continue;
            }
            if got != 0 {
                seen += 1;
                let (du, dv) = (f.uv[i][0] - proj.get(h, w, 1), f.uv[i][1] - proj.get(h, w, 2));
                assert!(du.abs() < 1.0 && dv.abs() < 1.0, "pixel ({h},{w}): uv off by ({du}, {dv})");
            } else {
                assert!(f.features.row(i).iter().all(|v| *v == 0.0), "an unseen point has a feature");
            }
        }
    }
    eprintln!("{total} points, {seen} seen by a camera, {} camera mismatches", mismatched.len());
    assert!(total > 1000 && seen > total / 10, "too few points ({total}) or seen ({seen}) to mean something");
    assert!(mismatched.is_empty(), "{:?}", &mismatched[..mismatched.len().min(5)]);
}

/// Features of a generated frame, sampled from `map`, against Python: preprocessing, every
/// output, and every point's feature (NumPy's bilinear sampling at the Rust pixel).
fn assert_frame_features_match_python(py: &Path, enc: ImageEncoder, map: &str) {
    let (_dir, frame) = generated_frame();
    let config = enc.config().clone();
    let ctx = frame_features(&mut feature_pipeline(enc, map), &frame);
    let r = ctx.image.as_ref().unwrap();
    let views: Vec<RgbView<'_>> = r.images.images.iter().map(RgbView::from).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = write_case(dir.path(), &config, &views, &r.outputs);
    // All points of all lasers and returns, with the camera index the Rust side chose.
    let (mut img, mut u, mut v, mut feats) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for f in &r.points {
        for i in 0..f.camera.len() {
            let k = f.camera[i].map_or(-1, |c| r.images.cameras.iter().position(|(n, _)| *n == c).unwrap() as i32);
            img.extend(k.to_le_bytes());
            u.push(f.uv[i][0]);
            v.push(f.uv[i][1]);
        }
        feats.extend_from_slice(f.features.as_slice().unwrap());
    }
    let n = u.len();
    std::fs::write(dir.path().join("p_image.i32"), img).unwrap();
    write_f32(&dir.path().join("p_u.f32"), &u);
    write_f32(&dir.path().join("p_v.f32"), &v);
    write_f32(&dir.path().join("p_feat.f32"), &feats);
    manifest["points"] = serde_json::json!({
        "map": map, "n": n, "image": "p_image.i32", "u": "p_u.f32", "v": "p_v.f32", "features": "p_feat.f32"
    });
    let res = run_reference(py, dir.path(), &manifest);
    assert_matches_reference(&res);
    assert!(res["points_seen"].as_u64().unwrap() > 100, "{res}");
    let d = res["points_max_abs"].as_f64().unwrap();
    assert!(d <= 1e-4, "per-point features differ from the NumPy sampling by {d}");
    assert_eq!(res["points_unseen_nonzero"], 0);
}

#[test]
fn generated_frame_features_match_python_onnxruntime() {
    let Some(py) = common::python_with("onnxruntime") else { return };
    assert_frame_features_match_python(&py, encoder(0.5), "s8");
}

fn tiny_vit_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tiny_vit.toml")
}

/// The other half of the config format, on a tiny random ViT (tools/export_test_vit.py):
/// NHWC input in BGR order at a fixed size, patch tokens after a CLS and 4 registers, a
/// vector output; read and sampled exactly as Python onnxruntime + NumPy do.
#[test]
fn patch_token_model_matches_python_onnxruntime() {
    let cfg = ModelConfig::load(tiny_vit_config()).unwrap();
    let mut enc = ImageEncoder::load(cfg, EncoderOptions { threads: 2, ..Default::default() }).unwrap();
    let (_dir, frame) = generated_frame();
    let imgs = decode_frame_images(&frame, &Location::default()).unwrap();
    let views: Vec<RgbView<'_>> = imgs.images.iter().map(RgbView::from).collect();
    let out = enc.encode(&views).unwrap();
    // Every camera resized to exactly 64×48 (the side cameras' aspect changes): 8×6 patches.
    assert_eq!(out.input_size, (64, 48));
    let tokens = out.map("tokens").unwrap();
    assert_eq!(tokens.stride, 8);
    assert_eq!(tokens.data.shape(), &[views.len(), 32, 6, 8]);
    for k in 0..views.len() {
        assert_eq!(tokens.content_cells(k), (8, 6));
    }
    let cls = &out.vectors.iter().find(|(n, _)| n == "cls").unwrap().1;
    assert_eq!(cls.shape(), &[views.len(), 32]);
    // A map read with the wrong prefix or order would repeat cells; these all differ.
    let cells: Vec<Vec<f32>> =
        (0..48).map(|t| (0..32).map(|c| tokens.data[[0, c, t / 8, t % 8]]).collect::<Vec<f32>>()).collect();
    for a in 0..48 {
        for b in a + 1..48 {
            assert_ne!(cells[a], cells[b], "cells {a} and {b} are equal");
        }
    }
    // The CLS token is the vector, not a cell.
    assert!(cells.iter().all(|c| c.as_slice() != cls.row(0).as_slice().unwrap()));

    let Some(py) = common::python_with("onnxruntime") else { return };
    assert_frame_features_match_python(&py, enc, "tokens");
}

#[test]
fn bad_models_and_images_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(crate::common::default_image_config()).unwrap();
    let model = crate::common::default_image_config().with_file_name("efficientnet_lite0.onnx");
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text.replace("\"efficientnet_lite0.onnx\"", &format!("{:?}", model.display().to_string())))
            .unwrap();
        ModelConfig::load(&p).unwrap()
    };
    let opts = EncoderOptions { threads: 1, ..Default::default() };

    // Missing model file.
    let missing = ModelConfig::parse(&base, &dir.path().join("m.toml")).unwrap();
    let e = ImageEncoder::load(missing, opts).unwrap_err().to_string();
    assert!(e.contains("efficientnet_lite0.onnx") && e.contains("model file not found"), "{e}");

    // An output the model does not have; a channel count the model does not have.
    let e = ImageEncoder::load(write("a.toml", base.replace("name = \"s32\"", "name = \"s64\"")), opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("output `s64`") && e.contains("s32"), "{e}");
    let e = ImageEncoder::load(write("b.toml", base.replace("channels = 112", "channels = 96")), opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("output `s16`") && e.contains("96 channels"), "{e}");

    // The wrong layout: the model's input is [N, 3, H, W] with H and W dynamic.
    let e = ImageEncoder::load(write("d.toml", base.replace("layout = \"nchw\"", "layout = \"nhwc\"")), opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("input `image`") && e.contains("Nhwc") && e.contains("3 channels"), "{e}");

    // A stride the model does not have: the load passes (shapes are dynamic), the run says so.
    let mut enc = ImageEncoder::load(write("c.toml", base.replace("stride = 8", "stride = 4")), opts).unwrap();
    let px = vec![128u8; 64 * 64 * 3];
    let e = enc.encode(&[RgbView::new(64, 64, &px).unwrap()]).unwrap_err();
    assert!(matches!(e, Error::Model { .. }), "{e}");
    assert!(e.to_string().contains("outputs match"), "{e}");

    // An image whose size is not its calibration's: a real pvps JPEG under another camera.
    let Some(samples) = common::samples() else { return };
    let mut frame = scenetok::io::v1::read_frames(samples.join("v1/pvps_data_one_frame.tfrecord")).unwrap().remove(0);
    let side = frame.cameras.iter().position(|c| c.camera == scenetok::scene::CameraName::SideLeft).unwrap();
    let front = frame.cameras.iter().position(|c| c.camera == scenetok::scene::CameraName::Front).unwrap();
    frame.cameras[side].jpeg = frame.cameras[front].jpeg.clone();
    let e = decode_frame_images(&frame, &Location::file("pvps.tfrecord")).unwrap_err().to_string();
    assert!(e.contains("camera SIDE_LEFT") && e.contains("1920x886") && e.contains("1920x1280"), "{e}");
}

fn scenetok(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scenetok"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("scenetok runs")
}

#[test]
fn features_command_writes_points_and_cameras() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float32Type, Int8Type};
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    let out = scenetok(&["fixture", "--out", ds.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = dir.path().join("f.parquet");
    let args =
        ["features", "--data", ds.to_str().unwrap(), "--out", file.to_str().unwrap(), "--map", "s8", "--threads", "2"];
    let out = scenetok(&args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 frames") && text.contains("40 channels per point"), "{text}");

    let read = |p: &Path| {
        let f = std::fs::File::open(p).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
        r.map(|b| b.unwrap()).collect::<Vec<_>>()
    };
    let (mut rows, mut seen) = (0, 0);
    for b in read(&file) {
        rows += b.num_rows();
        let cam = b.column_by_name("camera").unwrap().as_primitive::<Int8Type>();
        let u = b.column_by_name("u").unwrap().as_primitive::<Float32Type>();
        let feat = b.column_by_name("feature").unwrap().as_fixed_size_list();
        assert_eq!(feat.value_length(), 40);
        for i in 0..b.num_rows() {
            let c = cam.value(i);
            assert!((0..=5).contains(&c));
            let f = feat.value(i);
            let f = f.as_primitive::<Float32Type>();
            if c == 0 {
                assert!(u.value(i).is_nan() && f.values().iter().all(|v| *v == 0.0));
            } else {
                seen += 1;
                assert!(u.value(i) >= 0.0 && f.values().iter().any(|v| *v != 0.0));
            }
        }
    }
    assert!(rows > 100 && seen > 0, "{rows} rows, {seen} seen");
    let cams = read(&dir.path().join("f.cameras.parquet"));
    let n: usize = cams.iter().map(|b| b.num_rows()).sum();
    assert!(n >= 3, "{n} camera rows");
    let pooled = cams[0].column_by_name("pooled").unwrap().as_list::<i32>();
    assert_eq!(pooled.value(0).len(), 1280);

    // Another backbone by its config alone (README step 3 of adding one): the tiny ViT's
    // patch tokens per point, its CLS vector per camera, no classes.
    let vit = dir.path().join("vit.parquet");
    let cfg = tiny_vit_config();
    let vit_args = ["features", "--data", ds.to_str().unwrap(), "--out", vit.to_str().unwrap(), "--threads", "2"];
    let out = scenetok(&[&vit_args[..], &["--model", cfg.to_str().unwrap()]].concat(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 frames") && text.contains("32 channels per point"), "{text}");
    let vit_rows: usize = read(&vit).iter().map(|b| b.num_rows()).sum();
    assert_eq!(vit_rows, rows, "the same points whatever the backbone");
    let cams = read(&dir.path().join("vit.cameras.parquet"));
    let pooled = cams[0].column_by_name("pooled").unwrap().as_list::<i32>();
    assert_eq!(pooled.value(0).len(), 32);
    assert_eq!(cams[0].column_by_name("top5_class").unwrap().null_count(), cams[0].num_rows());

    // No ONNX Runtime library: a clear error naming the path, not a crash.
    let out = scenetok(&args, &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/libonnxruntime.so") && err.contains("ONNX Runtime library not found"), "{err}");
}

/// The real pvps frame with a TOP return added the way v1 stores it (a zlib-compressed
/// `MatrixFloat`): every beam at 20 m.
fn pvps_with_top_return(samples: &Path, dir: &Path) -> PathBuf {
    use prost::Message;
    use scenetok::io::proto;
    use std::io::Write;
    let records = scenetok::io::tfrecord::read_records(samples.join("v1/pvps_data_one_frame.tfrecord")).unwrap();
    let mut frame = proto::Frame::decode(records[0].as_slice()).unwrap();
    let (h, w) = (64, 2650);
    let values: Vec<f32> = (0..h * w).flat_map(|_| [20.0, 0.5, 0.0, 0.0]).collect();
    let matrix = proto::MatrixFloat { data: values, shape: Some(proto::MatrixShape { dims: vec![h, w, 4] }) };
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&matrix.encode_to_vec()).unwrap();
    frame.lasers = vec![proto::Laser {
        name: Some(1),
        ri_return1: Some(proto::RangeImage { range_image_compressed: Some(z.finish().unwrap()), ..Default::default() }),
        ri_return2: None,
    }];
    let path = dir.join("pvps_with_top.tfrecord");
    scenetok::io::tfrecord::write_records(&path, [frame.encode_to_vec()]).unwrap();
    path
}

#[test]
fn features_command_reads_v1_tfrecords() {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float32Type, Int8Type};
    let Some(samples) = common::samples() else { return };
    let dir = tempfile::tempdir().unwrap();
    let v1 = pvps_with_top_return(&samples, dir.path());
    let file = dir.path().join("f.parquet");
    let args = [
        "features",
        "--data",
        v1.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
        "--scale",
        "0.125",
        "--threads",
        "2",
    ];
    let out = scenetok(&args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 frames, 5 camera images, 169600 points"), "{text}");

    // Every point lies 20 m from the TOP lidar, and the ring around the car is seen by cameras.
    let frame = scenetok::io::v1::read_frames(&v1).unwrap().remove(0);
    let top = frame.laser(scenetok::scene::LaserName::Top).unwrap();
    let origin = top.calibration.as_ref().unwrap().extrinsic.translation();
    let f = std::fs::File::open(&file).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    let (mut rows, mut seen) = (0, 0);
    for b in reader.map(|b| b.unwrap()) {
        let col = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Float32Type>().clone();
        let (x, y, z) = (col("x"), col("y"), col("z"));
        let cam = b.column_by_name("camera").unwrap().as_primitive::<Int8Type>();
        for i in 0..b.num_rows() {
            let p = nalgebra::Vector3::new(x.value(i) as f64, y.value(i) as f64, z.value(i) as f64);
            assert!(((p - origin).norm() - 20.0).abs() < 1e-3, "point {i} at {p:?}");
            seen += (cam.value(i) != 0) as usize;
        }
        rows += b.num_rows();
    }
    assert_eq!(rows, 169_600);
    assert!(seen > 10_000 && seen < rows, "{seen} of {rows} seen");
}

/// `scenetok bench image` end to end, small: every stage timed, Python's run on the same batch.
#[test]
fn bench_image_times_every_stage_and_python() {
    let Some(samples) = common::samples() else { return };
    let Some(py) = common::python_with("onnxruntime") else { return };
    let data = samples.join("v1/pvps_data_one_frame.tfrecord");
    let args =
        ["bench", "image", "--data", data.to_str().unwrap(), "--scale", "0.125", "--runs", "2", "--threads", "2"];
    let out = scenetok(&[&args[..], &["--python", py.to_str().unwrap()]].concat(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "model input [5, 3, 160, 256]",
        "JPEG decode",
        "per-point sampling (169600 synthetic points)",
        "outside the session",
        "Python onnxruntime (as installed: 4 KiB pages), same model and batch, I/O bound once as ours",
        "scenetok's session: I/O bound once per batch shape",
        "session memory on transparent huge pages",
        "scenetok session vs Python",
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
}
