//! Scene tokens on generated frames: the elements hold what the labels say they should
//! (unlabelled obstacles as open-set objects, labelled agents as agents, the road as
//! ground), with the shipped LiDAR encoder's and the image model's features pooled, and
//! `scenetok tokens` writes them.

use scenetok::backend::Device;
use scenetok::models::image_encoder::{EncoderOptions, ImageEncoder, ModelConfig};
use scenetok::models::lidar_seg::LidarSegModel;
use scenetok::models::scene_tokens::{ElementKind, FeatureLayout, TokenConfig};
use scenetok::pipeline::context::FrameContext;
use scenetok::pipeline::stages::{ImageStage, LidarStage, PointsStage, TokensStage};
use scenetok::pipeline::{FrameSelection, Pipeline, Source};
use scenetok::scene::LidarSegClass;
use scenetok::sim::generate::{GenerateConfig, Preset, generate};
use scenetok::sparse::layers::RunCtx;

/// A full-resolution generated world (small cameras) whose first frame sees cones (seed 9:
/// 227 cone points in the TOP laser's labels).
fn world(frames: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Full);
    (cfg.segments, cfg.frames, cfg.camera_div, cfg.seed) = (1, frames, 8, 9);
    generate(dir.path(), &cfg, |_, _| {}).unwrap();
    dir
}

#[test]
fn elements_of_a_generated_frame_follow_its_labels() {
    let dir = world(1);
    let device = Device::cpu();
    let lidar = LidarSegModel::load(&crate::common::shipped_lidar_weights(), &device).unwrap();
    let cfg = ModelConfig::load(crate::common::default_image_config()).unwrap();
    let image = ImageEncoder::load(cfg, EncoderOptions { threads: 2, ..Default::default() }).unwrap();
    let mut pipeline = Pipeline::new()
        .then(PointsStage::default().with_labels())
        .unwrap()
        .then(LidarStage::new(lidar, RunCtx::default()))
        .unwrap()
        .then(ImageStage::new(image, None).unwrap())
        .unwrap()
        .then(TokensStage::new(TokenConfig::default()))
        .unwrap();
    let source = Source::open(dir.path()).unwrap();
    let frame = source.frames(&FrameSelection::all().request(pipeline.request())).unwrap().next().unwrap().unwrap();
    let mut ctx = FrameContext::new(frame);
    pipeline.run(&mut ctx).unwrap();
    let t = ctx.tokens.as_ref().unwrap();
    let el = &t.elements;
    assert_eq!(el.layout, FeatureLayout { image_channels: 112, lidar_channels: 24 });
    // Per label class: how many points (of the labelled laser, TOP), and in which kind of
    // element (or none); class −1: points within 0.1 m of the road's plane.
    let mut by_class = std::collections::BTreeMap::<i32, [usize; 4]>::new();
    for (c, r) in &t.clouds {
        let Some(labels) = ctx.points[*c].labels.as_ref() else { continue };
        for (i, g) in r.clone().enumerate() {
            let slot = el.assignment[g].map_or(3, |e| el.elements[e as usize].kind as usize);
            // Points on the road's surface are ground whatever their label (a cone's foot
            // at height 0 is the road to any geometric rule): the objects are judged on
            // the points 0.1 m above it (the generated road is a plane).
            let q = ctx.points[*c].cloud.xyz[i].map(|v| v as f64);
            let above = q[2] - (el.plane[0] * q[0] + el.plane[1] * q[1] + el.plane[2]) >= 0.1;
            let class = if above || labels[i] == LidarSegClass::Road.value() as i32 { labels[i] } else { -1 };
            by_class.entry(class).or_default()[slot] += 1;
        }
    }
    for (c, n) in &by_class {
        let name = LidarSegClass::from_value(*c as i64).map_or("?", |c| c.name());
        eprintln!("{name:>18}: agent {:>6} object {:>6} ground {:>6} none {:>6}", n[0], n[1], n[2], n[3]);
    }
    let share = |class: LidarSegClass, kind: usize| {
        let n = by_class.get(&(class.value() as i32)).copied().unwrap_or_default();
        (n[kind] as f64 / n.iter().sum::<usize>().max(1) as f64, n.iter().sum::<usize>())
    };
    // Cones and barriers have no box: open-set objects (0.84 here; the rest are cones too
    // far for 5 points above the band, and base points beside their column).
    let (cones, n) = share(LidarSegClass::ConstructionCone, ElementKind::Object as usize);
    assert!(n >= 100, "only {n} cone points: the world needs obstacles near the car");
    assert!(cones >= 0.8, "{:.3} of {n} cone points in objects", cones);
    // Cars are boxed: agents.
    let (cars, n) = share(LidarSegClass::Car, ElementKind::Agent as usize);
    assert!(n >= 1000 && cars >= 0.85, "{:.3} of {n} car points in agents", cars);
    // The road is ground.
    let (road, n) = share(LidarSegClass::Road, ElementKind::Ground as usize);
    assert!(road >= 0.95, "{:.3} of {n} road points in ground tiles", road);
    // Every agent with points saw the LiDAR encoder; most have an image feature.
    let agents: Vec<_> = el.elements.iter().filter(|e| e.kind == ElementKind::Agent && !e.points.is_empty()).collect();
    assert!(agents.len() >= 5);
    assert!(agents.iter().all(|e| e.features[el.layout.lidar_offset()] > 0.99));
    let seen = agents.iter().filter(|e| e.features[el.layout.image_offset()] > 0.0).count();
    assert!(seen * 2 >= agents.len(), "{seen} of {} agents seen by a camera", agents.len());
    assert!(
        el.elements.iter().all(|e| e.features.len() == el.layout.len() && e.features.iter().all(|v| v.is_finite()))
    );
    assert!(el.elements.len() <= 512);
}

#[test]
fn tokens_command_writes_elements_and_point_assignments() {
    let dir = world(2);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("tokens.parquet");
    let bin = env!("CARGO_BIN_EXE_scenetok");
    let run = std::process::Command::new(bin)
        .args(["tokens", "--data"])
        .arg(dir.path())
        .arg("--out")
        .arg(&file)
        .args(["--no-image", "--max-tokens", "100"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("2 frames") && stdout.contains("(0 image, 24 LiDAR channels)"), "{stdout}");
    let read = |p: &std::path::Path| {
        let f = std::fs::File::open(p).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let meta = r.metadata().file_metadata().key_value_metadata().cloned();
        let batches: Vec<_> = r.build().unwrap().map(|b| b.unwrap()).collect();
        (batches, meta)
    };
    let (elements, meta) = read(&file);
    let rows: usize = elements.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 200, "100 elements per frame after the cap");
    let meta = meta.unwrap();
    let layout = meta.iter().find(|k| k.key == "scenetok.tokens").and_then(|k| k.value.clone()).unwrap();
    assert!(layout.contains("\"lidar_channels\":24"), "{layout}");
    let (points, _) = read(&scenetok::pipeline::export::token_points_path(&file));
    let element = points[0].column_by_name("element").unwrap();
    let element = element.as_any().downcast_ref::<arrow::array::Int32Array>().unwrap();
    assert!(element.values().iter().all(|&e| (-1..100).contains(&e)));
    assert!(element.values().iter().any(|&e| e >= 0));
    // The output may not overwrite the input.
    let refused = std::process::Command::new(bin)
        .args(["tokens", "--no-image", "--data"])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("x.parquet"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
