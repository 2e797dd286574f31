//! Camera detection with SparseViT on labelled frames: COCO-style AP, AP50, AP75 per class
//! (`camera_box` vehicles, pedestrians, cyclists; [`super::detection2d`]) for the dense
//! backbone and for pruning ratio sets, with backbone and end-to-end milliseconds per image
//! from the same run, and paired bootstrap intervals of each ratio set's AP change. A shard's
//! images with their boxes are its partial result ([`DetPartial`]); merged back in the
//! input's order they give the single process's metrics exactly (but for wall times).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::bootstrap::Interval;
use super::detection2d::{Detection2dMetrics, Detection2dReport, ImageBoxes};
use super::partial::{check_shard_set, in_input_order, read_partial, write_partial};
use super::run::EvalError;
use crate::backend::Device;
use crate::error::Result;
use crate::io::shard::Shard;
use crate::io::v2::{Component, FrameRequest};
use crate::models::det::detector::CLASSES;
use crate::models::det::{DecodeOptions, Detection, Detector, Ratios};
use crate::models::image_encoder::decode_frame_images;
use crate::models::image_encoder::preprocess::RgbView;
use crate::pipeline::{FrameSelection, Source};
use crate::scene::{Box2d, BoxType, CameraName, Frame};

/// The components camera detection reads.
pub fn det_request() -> FrameRequest {
    FrameRequest::only(&[Component::CameraImage, Component::CameraCalibration, Component::CameraBox])
        .without_second_returns()
}

/// The labelled boxes of the detector's classes on one camera of a frame.
pub fn ground_truth(frame: &Frame, camera: CameraName) -> Vec<(BoxType, Box2d)> {
    frame
        .camera_boxes
        .iter()
        .filter(|b| b.camera == camera && CLASSES.contains(&b.kind))
        .map(|b| (b.kind, b.bbox))
        .collect()
}

/// One image's labels and detections as the AP accumulator takes them.
fn image_boxes(ground_truth: Vec<(BoxType, Box2d)>, detections: &[Detection]) -> ImageBoxes {
    ImageBoxes { ground_truth, detections: detections.iter().map(|d| (d.class, d.bbox, d.score as f64)).collect() }
}

/// One set of ratios to evaluate (`dense` for none), on the evaluation's detector or on
/// weights of its own (fine-tuned at that set).
#[derive(Debug, Clone)]
pub struct DetMethod {
    pub name: String,
    pub ratios: Ratios,
    /// Weights fine-tuned at `ratios` and their file; `None`: the evaluation's detector.
    pub own: Option<(PathBuf, Arc<Detector>)>,
}

impl DetMethod {
    pub fn new(name: impl Into<String>, ratios: Ratios) -> DetMethod {
        DetMethod { name: name.into(), ratios, own: None }
    }

    /// A row for `det`, weights fine-tuned at `ratios`, named by its file's stem.
    pub fn finetuned(path: &Path, ratios: Ratios, det: Detector) -> DetMethod {
        let name = path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
        DetMethod { name, ratios, own: Some((path.to_path_buf(), Arc::new(det))) }
    }
}

/// One method's accuracy and speed.
#[derive(Debug, Clone, Serialize)]
pub struct DetMethodReport {
    pub name: String,
    pub ratios: String,
    pub ap: Detection2dReport,
    /// Milliseconds per image: the backbone alone, and everything (resize, backbone, head,
    /// decoding with NMS).
    pub backbone_ms: f64,
    pub total_ms: f64,
    /// Windows run over a dense pass's, all blocks, mean over images.
    pub window_share: f64,
    /// AP (0.50:0.95) minus the first method's, paired bootstrap over images (95%).
    pub ap_change: Option<Interval>,
    #[serde(skip)]
    pub images: Vec<ImageBoxes>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CameraDetReport {
    pub frames: usize,
    pub images: usize,
    pub threads: usize,
    pub methods: Vec<DetMethodReport>,
}

/// One camera image of an evaluation: where it is in the input (unit, frame index, camera
/// value: the order a single process reads them in), and per method its boxes, seconds
/// (backbone, end to end) and share of windows run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetImage {
    pub key: (u64, u64, i64),
    pub boxes: Vec<ImageBoxes>,
    pub backbone_s: Vec<f64>,
    pub total_s: Vec<f64>,
    pub window_share: Vec<f64>,
}

/// Runs every method on every camera image of `selection` (methods in turn on each image):
/// the frames read and the images, in input order; [`report`] (or a [`DetPartial`] of them)
/// gives the metrics.
pub fn evaluate(
    source: &Source,
    selection: &FrameSelection,
    det: &Detector,
    dev: &Device,
    methods: &[DetMethod],
    opts: &DecodeOptions,
    mut on_image: impl FnMut(),
) -> Result<(usize, Vec<DetImage>)> {
    let selection = selection.clone().request(det_request());
    let n = methods.len();
    let mut images = Vec::new();
    let mut frames = 0;
    for frame in source.frames(&selection)? {
        let frame = frame?;
        let decoded = decode_frame_images(&frame.frame, &frame.at)?;
        frames += 1;
        for ((camera, _), rgb) in decoded.cameras.iter().zip(&decoded.images) {
            let ground_truth = ground_truth(&frame.frame, *camera);
            let mut image = DetImage {
                key: (frame.unit as u64, frame.index as u64, camera.value()),
                boxes: Vec::with_capacity(n),
                backbone_s: Vec::with_capacity(n),
                total_s: Vec::with_capacity(n),
                window_share: Vec::with_capacity(n),
            };
            for method in methods {
                let t = Instant::now();
                let det = method.own.as_ref().map_or(det, |(_, own)| own.as_ref());
                let out = det.detect(dev, RgbView::from(rgb), &method.ratios, opts)?;
                image.total_s.push(t.elapsed().as_secs_f64());
                image.backbone_s.push(out.times.backbone);
                let (ran, all) =
                    out.windows.iter().flatten().fold((0, 0), |a, b| (a.0 + b.kept.len(), a.1 + b.grid.0 * b.grid.1));
                image.window_share.push(ran as f64 / all.max(1) as f64);
                image.boxes.push(image_boxes(ground_truth.clone(), &out.detections));
            }
            images.push(image);
            on_image();
        }
    }
    Ok((frames, images))
}

/// The report of `images` (in input order) for `methods` (name, ratios), the first being the
/// one each other's AP change is measured against.
pub fn report(methods: Vec<(String, String)>, frames: usize, images: Vec<DetImage>) -> CameraDetReport {
    let count = images.len();
    let per = |v: f64| if count == 0 { 0.0 } else { v / count as f64 };
    let sum = |m: usize, f: fn(&DetImage) -> &Vec<f64>| images.iter().map(|i| f(i)[m]).sum::<f64>();
    let times: Vec<[f64; 3]> = (0..methods.len())
        .map(|m| [sum(m, |i| &i.backbone_s), sum(m, |i| &i.total_s), sum(m, |i| &i.window_share)])
        .collect();
    // Each method's boxes, image by image, moved out of the images.
    let mut boxes: Vec<Vec<ImageBoxes>> = vec![Vec::with_capacity(count); methods.len()];
    for image in images {
        for (m, b) in image.boxes.into_iter().enumerate() {
            boxes[m].push(b);
        }
    }
    let mut reports: Vec<DetMethodReport> = methods
        .into_iter()
        .zip(boxes)
        .zip(times)
        .map(|(((name, ratios), images), [backbone, total, share])| DetMethodReport {
            name,
            ratios,
            ap: metrics(&images, None).finish(),
            backbone_ms: per(backbone) * 1e3,
            total_ms: per(total) * 1e3,
            window_share: per(share),
            ap_change: None,
            images,
        })
        .collect();
    for m in 1..reports.len() {
        reports[m].ap_change = Some(paired_ap(&reports[0].images, &reports[m].images, 1000, 7));
    }
    CameraDetReport { frames, images: count, threads: rayon::current_num_threads(), methods: reports }
}

/// What a camera-detection partial file starts with; another value is refused.
pub const PARTIAL_FORMAT: &str = "scenetok-cameradet-partial/1";

/// A shard's camera-detection evaluation (`eval --task camera-det --shard I/N --partial`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetPartial {
    pub format: String,
    /// The weights and the data as given on the command line, and the methods (name,
    /// ratios): the same on every shard.
    pub weights: String,
    pub data: String,
    pub methods: Vec<(String, String)>,
    /// The files of the methods with weights of their own (`--finetuned`), in method order.
    #[serde(default)]
    pub finetuned: Vec<String>,
    pub shard: Shard,
    pub frames: usize,
    /// In key order.
    pub images: Vec<DetImage>,
}

impl DetPartial {
    pub fn new(
        weights: &Path,
        data: &Path,
        methods: &[DetMethod],
        shard: Shard,
        frames: usize,
        mut images: Vec<DetImage>,
    ) -> Self {
        images.sort_by_key(|i| i.key);
        DetPartial {
            format: PARTIAL_FORMAT.into(),
            weights: weights.display().to_string(),
            data: data.display().to_string(),
            methods: methods.iter().map(|m| (m.name.clone(), m.ratios.to_string())).collect(),
            finetuned: methods.iter().filter_map(|m| m.own.as_ref().map(|(p, _)| p.display().to_string())).collect(),
            shard,
            frames,
            images,
        }
    }

    /// The whole evaluation from every shard's partial (`names` say where each came from).
    pub fn merge(parts: Vec<(String, DetPartial)>) -> Result<DetPartial, EvalError> {
        check_shard_set(parts.iter().map(|(name, p)| {
            let methods: Vec<String> = p.methods.iter().map(|(n, r)| format!("{n}={r}")).collect();
            let tuned = if p.finetuned.is_empty() {
                String::new()
            } else {
                format!(" (fine-tuned: {})", p.finetuned.join(", "))
            };
            (name.as_str(), format!("weights {}{tuned} on {} with {}", p.weights, p.data, methods.join(";")), p.shard)
        }))?;
        let mut parts = parts.into_iter().map(|(_, p)| p);
        let Some(mut whole) = parts.next() else { return Err(EvalError::Other("no partial results to merge".into())) };
        for p in parts {
            whole.frames += p.frames;
            whole.images.extend(p.images);
        }
        in_input_order(&mut whole.images, |i| i.key, |i| format!("image {:?}", i.key))?;
        whole.shard = Shard::ALL;
        Ok(whole)
    }

    /// The report of the whole evaluation.
    pub fn report(self) -> CameraDetReport {
        report(self.methods, self.frames, self.images)
    }

    /// Writes the partial (JSON for a `.json` name, else MessagePack: [`Encoding`](super::partial::Encoding)), whole or not at all.
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        write_partial(path, self)
    }

    /// Reads a partial written by [`write`](Self::write).
    pub fn read(path: &Path) -> Result<DetPartial, EvalError> {
        read_partial(path, PARTIAL_FORMAT, |p: &DetPartial| &p.format)
    }
}

/// Decoded labelled camera images held in memory, for scoring many ratio sets on the same
/// images (the search).
pub struct ValidationImages {
    pub images: Vec<(image::RgbImage, Vec<(BoxType, Box2d)>)>,
}

impl ValidationImages {
    pub fn load(source: &Source, selection: &FrameSelection) -> Result<ValidationImages> {
        let selection = selection.clone().request(det_request());
        let mut images = Vec::new();
        for frame in source.frames(&selection)? {
            let frame = frame?;
            let decoded = decode_frame_images(&frame.frame, &frame.at)?;
            for ((camera, _), rgb) in decoded.cameras.iter().zip(decoded.images) {
                images.push((rgb, ground_truth(&frame.frame, *camera)));
            }
        }
        Ok(ValidationImages { images })
    }

    /// Keeps `n` images evenly spaced over the set (all when there are fewer).
    pub fn keep_evenly(&mut self, n: usize) {
        let len = self.images.len();
        if n < len {
            let keep: Vec<usize> = (0..n).map(|i| i * len / n).collect();
            let mut k = 0;
            let mut i = 0;
            self.images.retain(|_| {
                let hit = k < keep.len() && keep[k] == i;
                k += hit as usize;
                i += 1;
                hit
            });
        }
    }

    /// COCO AP (mean over classes and IoU 0.50:0.95) of `det` at `ratios` on these images.
    pub fn ap(&self, det: &Detector, dev: &Device, ratios: &Ratios, opts: &DecodeOptions) -> Result<f64> {
        let mut m = Detection2dMetrics::default();
        for (rgb, gt) in &self.images {
            let out = det.detect(dev, RgbView::from(rgb), ratios, opts)?;
            m.add(image_boxes(gt.clone(), &out.detections));
        }
        Ok(m.finish().map)
    }
}

fn metrics(images: &[ImageBoxes], pick: Option<&[usize]>) -> Detection2dMetrics {
    let mut m = Detection2dMetrics::default();
    match pick {
        Some(ix) => ix.iter().for_each(|&i| m.add(images[i].clone())),
        None => images.iter().for_each(|i| m.add(i.clone())),
    }
    m
}

/// `AP(b) − AP(a)` (mean over classes and IoU 0.50:0.95) with a 95% paired bootstrap
/// interval: the same images resampled for both.
pub fn paired_ap(a: &[ImageBoxes], b: &[ImageBoxes], draws: usize, seed: u64) -> Interval {
    use rand::{Rng, SeedableRng};
    let n = a.len().min(b.len());
    let estimate = metrics(&b[..n], None).finish().map - metrics(&a[..n], None).finish().map;
    if n == 0 || draws == 0 {
        return Interval { estimate, low: estimate, high: estimate };
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut diffs: Vec<f64> = (0..draws)
        .map(|_| {
            let pick: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            metrics(b, Some(&pick)).finish().map - metrics(a, Some(&pick)).finish().map
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((q * diffs.len() as f64).ceil() as usize).clamp(1, diffs.len()) - 1];
    Interval { estimate, low: at(0.025), high: at(0.975) }
}

impl CameraDetReport {
    pub fn table(&self) -> String {
        let mut s = format!(
            "camera detection: {} images ({} frames), {} threads, f32; AP = COCO mAP@[.5:.95]\n",
            self.images, self.frames, self.threads
        );
        // The method column as wide as its longest name (fine-tuned rows are named by file).
        let w = self.methods.iter().map(|m| m.name.chars().count()).max().unwrap_or(0).max(10);
        s += &format!(
            "  {:<w$} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>8}  {:<26} {}\n",
            "method",
            "AP",
            "AP50",
            "AP75",
            "veh",
            "ped",
            "cyc",
            "bb ms",
            "total ms",
            "windows",
            "ΔAP vs dense [95%]",
            "ratios"
        );
        for m in &self.methods {
            let class = |name: &str| m.ap.by_class().get(name).map_or(f64::NAN, |c| c.ap);
            s += &format!(
                "  {:<w$} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>9.1} {:>9.1} {:>7.0}%  {:<26} {}\n",
                m.name,
                m.ap.map,
                m.ap.map50,
                m.ap.map75,
                class("VEHICLE"),
                class("PEDESTRIAN"),
                class("CYCLIST"),
                m.backbone_ms,
                m.total_ms,
                100.0 * m.window_share,
                m.ap_change.map_or("-".to_string(), |i| format!("{:+.4} [{:+.4}, {:+.4}]", i.estimate, i.low, i.high)),
                m.ratios
            );
        }
        if let Some(first) = self.methods.first() {
            s += &format!("  per class ({}):\n", first.name);
            for line in first.ap.table().lines() {
                s += &format!("    {line}\n");
            }
        }
        s
    }
}
