//! `scenetok bench refine`: SparseRefine against the dense full-resolution model on the same
//! camera images, in one run. Per frame, every method runs once per round (`reps` rounds, the
//! order rotating so no method always runs first), and each method's fastest round counts:
//!
//! * `dense ×1`: resize/normalise, the ONNX model at full resolution, logits → classes;
//! * `refine ×s`: the same model at scale `s` with the entropy, the selector, gathering the
//!   selected pixels, the sparse refiner and ensembler, writing their classes back.
//!
//! Both end with full-resolution classes for every pixel; both run on all cores (ONNX Runtime's
//! intra-op threads, rayon's pool), f32. Labels are not read: this is speed only.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::backend::Device;
use crate::error::{Error, Location, Result};
use crate::eval::camera_seg::labelled_images;
use crate::models::image_encoder::EncoderOptions;
use crate::models::image_encoder::decode_frame_images;
use crate::models::image_encoder::preprocess::RgbView;
use crate::models::seg::refiner::refine_image;
use crate::models::seg::refiner::{Refiner, weights_file};
use crate::models::seg::selector::select;
use crate::models::seg::{DenseSegModel, Entropy};
use crate::pipeline::{FrameSelection, Source};
use crate::sparse::layers::RunCtx;

/// What to run.
pub struct RefineBenchOptions {
    pub data: PathBuf,
    pub config: PathBuf,
    /// Folder of `camera_refiner_x<scale>.safetensors`.
    pub refiners: PathBuf,
    pub scales: Vec<f64>,
    pub frames: usize,
    pub reps: usize,
    pub device: Device,
}

/// One method's time per image (fastest round of each frame, averaged over images).
#[derive(Debug, Clone, Serialize)]
pub struct MethodTime {
    pub method: String,
    pub ms_per_image: f64,
    /// Stages, ms per image: dense pass (preprocess + model + classify), select, gather, refine.
    pub dense_ms: f64,
    pub select_ms: f64,
    pub gather_ms: f64,
    pub refine_ms: f64,
    /// Share of pixels refined.
    pub selected: f64,
    /// Dense ×1's time over this method's, per frame: (median, min, max).
    pub speedup: Option<(f64, f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefineBench {
    pub images: usize,
    pub frames: usize,
    pub reps: usize,
    pub threads: usize,
    pub methods: Vec<MethodTime>,
    /// Per refined scale, over the first frame's images (one extra, untimed-above run): the
    /// refiner's convs (ms in the conv, ms building kernel maps, GFLOP/s) in network order.
    pub layers: Vec<(String, Vec<LayerTime>)>,
}

/// One conv of the refiner: its name, ms in the conv, ms building kernel maps, GFLOP/s.
pub type LayerTime = (String, f64, f64, f64);

struct Method {
    dense: DenseSegModel,
    refiner: Option<(Refiner, f32)>,
}

/// Seconds of one run of `m` on a frame's images: (total, dense, select, gather, refine, selected pixels).
fn run_once(m: &mut Method, images: &[image::RgbImage], ctx: &RunCtx) -> Result<[f64; 6]> {
    let views: Vec<RgbView<'_>> = images.iter().map(RgbView::from).collect();
    let t = Instant::now();
    let entropy = m.refiner.as_ref().map_or(Entropy::None, |(_, tau)| Entropy::Above(*tau));
    let (outs, _) = m.dense.run(&views, entropy)?;
    let mut s = [0f64; 6];
    for (out, img) in outs.iter().zip(images) {
        let pred = out.full_classes();
        if let Some((refiner, tau)) = &m.refiner {
            let ts = Instant::now();
            let sel = select(out, *tau);
            let select_s = ts.elapsed().as_secs_f64();
            let (refined, gather_s, refine_s) = refine_image(refiner, out, &pred, img, &sel, ctx)?;
            std::hint::black_box(refined);
            s[2] += select_s;
            s[3] += gather_s;
            s[4] += refine_s;
            s[5] += sel.len() as f64;
        } else {
            std::hint::black_box(pred);
        }
    }
    s[0] = t.elapsed().as_secs_f64();
    s[1] = s[0] - s[2] - s[3] - s[4];
    Ok(s)
}

pub fn run(o: &RefineBenchOptions) -> Result<RefineBench> {
    let source = Source::open(&o.data)?;
    let mut methods =
        vec![Method { dense: DenseSegModel::load(&o.config, 1.0, EncoderOptions::default())?, refiner: None }];
    let mut names = vec!["dense ×1".to_string()];
    for &scale in &o.scales {
        let path = o.refiners.join(weights_file(scale));
        let refiner = Refiner::load(&path, &o.device)?;
        let tau = refiner
            .tau
            .ok_or_else(|| Error::invalid(Location::file(&path).detail("metadata"), "a `tau` entry", "none"))?;
        methods.push(Method {
            dense: DenseSegModel::load(&o.config, scale, EncoderOptions::default())?,
            refiner: Some((refiner, tau)),
        });
        names.push(format!("refine ×{scale}"));
    }
    let selection = FrameSelection::all().request(crate::eval::camera_seg::camera_request());
    let ctx = RunCtx::default();
    // Per method, per frame: fastest round's stage seconds.
    let mut best: Vec<Vec<[f64; 6]>> = vec![Vec::new(); methods.len()];
    let (mut frames, mut images_n, mut pixels) = (0usize, 0usize, 0f64);
    // One warm-up frame (sessions bind their buffers, pages fault in), not timed.
    let mut warmed = false;
    for frame in source.frames(&selection)? {
        let frame = frame?;
        let images: Vec<image::RgbImage> = if frame.frame.cameras.iter().any(|c| c.segmentation.is_some()) {
            labelled_images(&frame.frame, &frame.at)?.into_iter().map(|i| i.rgb).collect()
        } else {
            decode_frame_images(&frame.frame, &frame.at)?.images
        };
        if images.is_empty() {
            continue;
        }
        if !warmed {
            for m in &mut methods {
                run_once(m, &images, &ctx)?;
            }
            warmed = true;
        }
        let mut frame_best = vec![[f64::INFINITY; 6]; methods.len()];
        for round in 0..o.reps.max(1) {
            for k in 0..methods.len() {
                let i = (k + round) % methods.len();
                let s = run_once(&mut methods[i], &images, &ctx)?;
                if s[0] < frame_best[i][0] {
                    frame_best[i] = s;
                }
            }
        }
        for (b, f) in best.iter_mut().zip(frame_best) {
            b.push(f);
        }
        frames += 1;
        images_n += images.len();
        pixels += images.iter().map(|i| i.width() as f64 * i.height() as f64).sum::<f64>();
        if frames >= o.frames {
            break;
        }
    }
    if frames == 0 {
        return Err(Error::invalid(Location::file(&o.data), "frames with camera images", "none"));
    }
    // Where the refiner's time goes: one more pass over the first frame with per-conv timing.
    let mut layers = Vec::new();
    if let Some(frame) = source.frames(&selection.clone().frames(0..1))?.next() {
        let frame = frame?;
        let images: Vec<image::RgbImage> = decode_frame_images(&frame.frame, &frame.at)?.images;
        for (m, name) in methods.iter_mut().zip(&names).skip(1) {
            let mut stats_ctx = RunCtx::default().with_stats();
            run_once(m, &images, &stats_ctx)?;
            let mut rows: Vec<(String, f64, f64, f64)> = Vec::new();
            for st in stats_ctx.take_stats() {
                match rows.iter_mut().find(|r| r.0 == st.name) {
                    Some(r) => {
                        r.1 += st.seconds * 1e3;
                        r.2 += st.map_seconds * 1e3;
                        r.3 += st.flops;
                    }
                    None => rows.push((st.name.clone(), st.seconds * 1e3, st.map_seconds * 1e3, st.flops)),
                }
            }
            for r in &mut rows {
                r.3 = r.3 / (r.1 / 1e3).max(1e-9) / 1e9;
            }
            layers.push((name.clone(), rows));
        }
    }
    let per_image = |v: f64| v * 1e3 / images_n as f64;
    let base: Vec<f64> = best[0].iter().map(|s| s[0]).collect();
    let methods = best
        .iter()
        .zip(names)
        .enumerate()
        .map(|(i, (b, name))| {
            let sum = |k: usize| b.iter().map(|s| s[k]).sum::<f64>();
            let speedup = (i > 0).then(|| {
                let mut r: Vec<f64> = base.iter().zip(b).map(|(d, s)| d / s[0]).collect();
                r.sort_by(f64::total_cmp);
                (r[r.len() / 2], r[0], r[r.len() - 1])
            });
            MethodTime {
                method: name,
                ms_per_image: per_image(sum(0)),
                dense_ms: per_image(sum(1)),
                select_ms: per_image(sum(2)),
                gather_ms: per_image(sum(3)),
                refine_ms: per_image(sum(4)),
                selected: sum(5) / pixels.max(1.0),
                speedup,
            }
        })
        .collect();
    Ok(RefineBench { images: images_n, frames, reps: o.reps, threads: rayon::current_num_threads(), methods, layers })
}

impl RefineBench {
    pub fn report(&self) -> String {
        let mut s = format!(
            "SparseRefine vs dense full resolution: {} images ({} frames), fastest of {} interleaved rounds, {} threads, f32\n",
            self.images, self.frames, self.reps, self.threads
        );
        s += &format!(
            "  {:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  speed-up vs dense ×1 (median [min, max] over frames)\n",
            "method", "ms/image", "dense", "select", "gather", "refine", "refined"
        );
        for m in &self.methods {
            s += &format!(
                "  {:<14} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.1}%  {}\n",
                m.method,
                m.ms_per_image,
                m.dense_ms,
                m.select_ms,
                m.gather_ms,
                m.refine_ms,
                100.0 * m.selected,
                m.speedup.map_or("-".to_string(), |(med, lo, hi)| format!("{med:.2}× [{lo:.2}, {hi:.2}]"))
            );
        }
        for (name, rows) in &self.layers {
            let (conv, map): (f64, f64) = rows.iter().fold((0.0, 0.0), |a, r| (a.0 + r.1, a.1 + r.2));
            s += &format!(
                "  {name}: refiner convs on the first frame: {conv:.1} ms in convs, {map:.1} ms building kernel maps\n"
            );
            for (layer, ms, map_ms, gflops) in rows {
                s += &format!("    {layer:<14} {ms:>8.2} ms {map_ms:>8.2} ms map {gflops:>7.1} GFLOP/s\n");
            }
        }
        s
    }
}
