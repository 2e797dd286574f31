//! Camera segmentation with SparseRefine: the refiner equals its PyTorch twin, the dense model
//! and the selector on a generated world, and the edge cases (nothing to refine, everything to
//! refine, labels of the wrong size).

use scenetok::backend::{Dataflow, Device};
use scenetok::eval::camera_seg::{DenseMethod, evaluate, labelled_images, report, rows_of};
use scenetok::models::image_encoder::EncoderOptions;
use scenetok::models::image_encoder::preprocess::RgbView;
use scenetok::models::seg::refiner::Refiner;
use scenetok::models::seg::refiner::refine_image;
use scenetok::models::seg::selector::select;
use scenetok::models::seg::{CLASSES, CONFIG_FILE, DenseSegModel, Entropy};
use scenetok::pipeline::{FrameSelection, Source};
use scenetok::sim::generate::{GenerateConfig, Preset, generate};
use scenetok::sparse::layers::RunCtx;

fn golden() -> (Vec<u8>, std::path::PathBuf) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    (std::fs::read(dir.join("refiner.safetensors")).expect("the golden file is committed"), dir)
}

/// `tools/train/make_refiner_golden.py`: the twin's refiner logits and ensemble logits (float64)
/// on bands of pixels, with seeded weights and batch-norm statistics beside them.
#[test]
fn refiner_reproduces_the_pytorch_twin() {
    let (bytes, dir) = golden();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let words = |n: &str| -> Vec<[u8; 4]> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| [b[0], b[1], b[2], b[3]]).collect()
    };
    let f32s = |n: &str| -> Vec<f32> { words(n).into_iter().map(f32::from_le_bytes).collect() };
    let i32s = |n: &str| -> Vec<i32> { words(n).into_iter().map(i32::from_le_bytes).collect() };
    let pixels: Vec<(u32, u32)> = i32s("pixels").chunks_exact(2).map(|p| (p[0] as u32, p[1] as u32)).collect();
    let rgb: Vec<u8> = i32s("rgb").into_iter().map(|v| v as u8).collect();
    let (l1, size) = (f32s("l1"), i32s("size"));
    let refiner = Refiner::load(&dir.join("refiner_weights.safetensors"), &Device::cpu()).unwrap();
    assert_eq!(refiner.channels, vec![8, 16, 32]);
    for df in Dataflow::representatives() {
        let got =
            refiner.forward(&pixels, &rgb, &l1, size[0] as u32, size[1] as u32, &RunCtx::with_default(df)).unwrap();
        for (name, got) in [("l2", &got.refiner), ("ensemble", &got.ensemble)] {
            let want = f32s(name);
            assert_eq!(got.len(), want.len(), "{name}");
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err / scale < 1e-4, "{} {name}: max relative error {:e}", df.label(), err / scale);
        }
        // The classes-only path (what `refine_image` runs) is the ensemble's argmax, ties to
        // the lowest class; the golden pixels span several 256-pixel chunks of the tail.
        let classes =
            refiner.classify(&pixels, &rgb, &l1, size[0] as u32, size[1] as u32, &RunCtx::with_default(df)).unwrap();
        let argmax: Vec<u8> = got
            .ensemble
            .chunks_exact(29)
            .map(|z| z.iter().enumerate().fold(0, |b, (k, &x)| if x > z[b] { k } else { b }) as u8)
            .collect();
        assert_eq!(classes, argmax, "{}", df.label());
    }
    assert!(pixels.len() > 256, "the golden set covers more than one chunk");
}

fn tiny_world() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // Cameras at ¼ of Waymo's size (480×320): the shipped model was trained on ¼ to full scale.
    let cfg = GenerateConfig { segments: 1, frames: 1, seed: 4, camera_div: 4, ..GenerateConfig::preset(Preset::Tiny) };
    generate(dir.path(), &cfg, |_, _| {}).unwrap();
    dir
}

fn dense(scale: f64) -> DenseSegModel {
    let config = crate::common::data_dir().model(CONFIG_FILE);
    DenseSegModel::load(&config, scale, EncoderOptions::default()).unwrap()
}

/// The shipped dense model on a generated frame: classes at the input resolution carried to
/// full resolution; the selector's edge cases; SparseRefine keeps every unselected pixel.
#[test]
fn dense_model_selector_and_refinement_on_a_generated_frame() {
    let world = tiny_world();
    let source = Source::open(world.path()).unwrap();
    let selection = FrameSelection::all().request(scenetok::eval::camera_seg::camera_request());
    let frame = source.frames(&selection).unwrap().next().unwrap().unwrap();
    let images = labelled_images(&frame.frame, &frame.at).unwrap();
    assert_eq!(images.len(), 5, "five labelled cameras");
    let views: Vec<RgbView<'_>> = images.iter().map(|i| RgbView::from(&i.rgb)).collect();
    let mut half = dense(0.5);
    let (outs, _) = half.run(&views, Entropy::Exact).unwrap();
    let (w, h) = images[0].rgb.dimensions();
    let out = &outs[0];
    assert_eq!((out.width, out.height), (w as usize, h as usize));
    assert_eq!(
        (out.pixels.width, out.pixels.height),
        ((w as f64 / 2.0).round() as usize, (h as f64 / 2.0).round() as usize)
    );
    let full = out.full_classes();
    assert_eq!(full.len(), (w * h) as usize);
    // Nearest neighbour: each full-resolution pixel has its input pixel's class.
    for (u, v) in [(0, 0), (w as usize - 1, h as usize - 1), (37, 21)] {
        let (iu, iv) = out.input_pixel(u, v);
        assert_eq!(full[v * w as usize + u], out.pixels.classes[iv * out.pixels.width + iu]);
    }
    // The trained model at full resolution (the ¼ scale of a Waymo camera) is far better than
    // chance on a generated frame (29 classes).
    let (at_full, _) = dense(1.0).run(&views[..1], Entropy::None).unwrap();
    let right = at_full[0].full_classes().iter().zip(&images[0].classes).filter(|(p, g)| **g != 0 && p == g).count();
    let labelled = images[0].classes.iter().filter(|g| **g != 0).count();
    assert!(right as f64 > 0.5 * labelled as f64, "{right} of {labelled} right");

    // Nothing above τ: nothing to refine, the low-resolution result stands.
    let entropy_max = out.pixels.entropy.as_ref().unwrap().iter().cloned().fold(0f32, f32::max);
    assert!(entropy_max <= (CLASSES as f32).ln() + 1e-4);
    assert!(select(out, entropy_max).is_empty());
    let (_, golden_dir) = golden();
    let refiner = Refiner::load(&golden_dir.join("refiner_weights.safetensors"), &Device::cpu()).unwrap();
    let ctx = RunCtx::default();
    let (same, _, _) = refine_image(&refiner, out, &full, &images[0].rgb, &[], &ctx).unwrap();
    assert_eq!(same, full);
    // Every pixel above τ: all refined, none lost; pixels outside a partial selection unchanged.
    let all = select(out, -1.0);
    assert_eq!(all.len(), (w * h) as usize);
    let (refined, _, _) = refine_image(&refiner, out, &full, &images[0].rgb, &all, &ctx).unwrap();
    assert_eq!(refined.len(), full.len());
    let some = select(out, entropy_max * 0.5);
    let (part, _, _) = refine_image(&refiner, out, &full, &images[0].rgb, &some, &ctx).unwrap();
    let chosen: std::collections::HashSet<(u32, u32)> = some.iter().copied().collect();
    for v in 0..h {
        for u in 0..w {
            if !chosen.contains(&(u, v)) {
                let i = (v * w + u) as usize;
                assert_eq!(part[i], full[i], "pixel ({u},{v}) was not selected");
            }
        }
    }
}

/// `evaluate` over a generated world: one row per scale (and per refined scale), the scores
/// in range, the selection shares consistent.
#[test]
fn evaluation_reports_every_method() {
    let world = tiny_world();
    let source = Source::open(world.path()).unwrap();
    let (_, golden_dir) = golden();
    let refiner = Refiner::load(&golden_dir.join("refiner_weights.safetensors"), &Device::cpu()).unwrap();
    let mut methods = vec![
        DenseMethod { model: dense(1.0), tau: None, refiner: None },
        DenseMethod { model: dense(0.25), tau: Some(0.5), refiner: Some(refiner) },
    ];
    let mut seen = 0;
    let frames = evaluate(&source, &FrameSelection::all(), &mut methods, 3, || seen += 1).unwrap();
    assert_eq!(seen, 5);
    assert_eq!(frames.len(), 1);
    let reports = report(&rows_of(&methods), 3, &frames);
    let names: Vec<&str> = reports.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(names, ["dense ×1", "dense ×0.25", "refine ×0.25"]);
    for r in &reports {
        assert_eq!(r.report.images, 5);
        assert!((0.0..=1.0).contains(&r.report.segmentation.miou) && (0.0..=1.0).contains(&r.report.boundary_f));
        assert!(r.ms_per_image.total > 0.0);
    }
    assert!(reports[0].selected.is_none());
    let (d, s) = (&reports[1], &reports[2]);
    assert_eq!(d.selected, s.selected);
    assert!(s.ms_per_image.total >= d.ms_per_image.model, "SparseRefine pays the dense pass");
    assert!(d.selected.unwrap() > 0.0 && d.selected.unwrap() < 1.0);
}

/// A segmentation label whose size is not the image's is an error naming the camera.
#[test]
fn a_label_of_the_wrong_size_is_named() {
    let world = tiny_world();
    let source = Source::open(world.path()).unwrap();
    let selection = FrameSelection::all().request(scenetok::eval::camera_seg::camera_request());
    let mut frame = source.frames(&selection).unwrap().next().unwrap().unwrap();
    let cam = &mut frame.frame.cameras[0];
    let name = cam.camera;
    let label = cam.segmentation.as_mut().unwrap();
    label.width -= 1;
    label.values.truncate((label.width * label.height) as usize);
    let err = labelled_images(&frame.frame, &frame.at).err().expect("an error").to_string();
    assert!(err.contains(&format!("camera {name} segmentation")) && err.contains("size"), "{err}");
}

/// A grey camera JPEG is widened to RGB and scored; a corrupt one is an error naming the camera.
#[test]
fn grey_and_corrupt_jpegs() {
    let world = tiny_world();
    let source = Source::open(world.path()).unwrap();
    let selection = FrameSelection::all().request(scenetok::eval::camera_seg::camera_request());
    let frame = source.frames(&selection).unwrap().next().unwrap().unwrap();
    let (w, h) = {
        let c = frame.frame.cameras[0].calibration.as_ref().unwrap();
        (c.width, c.height)
    };
    let mut grey = frame.clone();
    let mut bytes = Vec::new();
    image::GrayImage::from_fn(w, h, |x, _| image::Luma([(x % 256) as u8]))
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
        .unwrap();
    grey.frame.cameras[0].jpeg = bytes;
    let images = labelled_images(&grey.frame, &grey.at).unwrap();
    assert_eq!(images.len(), 5);
    let mut corrupt = frame.clone();
    let name = corrupt.frame.cameras[0].camera;
    let jpeg = &mut corrupt.frame.cameras[0].jpeg;
    jpeg.truncate(40);
    let err = labelled_images(&corrupt.frame, &corrupt.at).err().expect("an error").to_string();
    assert!(err.contains(&format!("camera {name}")), "{err}");
}

/// The head as a pipeline stage: every camera of the frame gets full-resolution classes, the
/// stage is timed under its name; a refiner without τ in its weights is refused.
#[test]
fn camera_segmentation_runs_as_a_pipeline_stage() {
    use scenetok::pipeline::stages::CameraSegStage;
    use scenetok::pipeline::{FrameContext, Pipeline};
    let world = tiny_world();
    let source = Source::open(world.path()).unwrap();
    let mut pipeline = Pipeline::new().then(CameraSegStage::dense(dense(0.5))).unwrap();
    let selection = FrameSelection::all().request(pipeline.request());
    let frame = source.frames(&selection).unwrap().next().unwrap().unwrap();
    let mut ctx = FrameContext::new(frame);
    pipeline.run(&mut ctx).unwrap();
    let out = ctx.camera_seg.as_ref().expect("the head's output");
    assert_eq!(out.cameras.len(), 5);
    for (_, w, h, classes) in &out.cameras {
        assert_eq!(classes.len(), (*w * *h) as usize);
        assert!(classes.iter().all(|&c| (c as usize) < CLASSES));
    }
    assert!(ctx.times.iter().any(|(name, _)| *name == "camera_seg"));
    let (_, golden_dir) = golden();
    let untuned = Refiner::load(&golden_dir.join("refiner_weights.safetensors"), &Device::cpu()).unwrap();
    let err = CameraSegStage::sparse_refine(dense(0.5), untuned).err().expect("no τ").to_string();
    assert!(err.contains("tau"), "{err}");
}
