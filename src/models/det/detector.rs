//! The SparseViT camera detector: the image resized by the model's scale, the window-pruned
//! backbone, the head ([`super::head`]) and CenterNet decoding (3 × 3 peaks of each class'
//! heat map, top 100, class-wise NMS), boxes in the camera's full-resolution pixels.
//!
//! One safetensors file holds everything (tools/train/train_camera_det.py): the backbone's
//! and the head's parameters and metadata `config` (Swin, JSON), `head_dim`, `scale`,
//! `stride`, `classes`.

use std::path::Path;
use std::time::Instant;

use super::head::Head;
use super::{Backbone, BackboneOutput, BlockWindows, ChwImage, Ratios, SwinConfig};
use crate::backend::Device;
use crate::error::{Error, Location, Result};
use crate::models::image_encoder::preprocess::{RgbView, taps};
use crate::scene::{Box2d, BoxType};
use crate::sparse::weights::Params;

/// The classes in the head's order.
pub const CLASSES: [BoxType; 3] = [BoxType::Vehicle, BoxType::Pedestrian, BoxType::Cyclist];
/// The shipped detector's file in `data/weights/`.
pub const WEIGHTS_FILE: &str = "camera_det_small.safetensors";
/// Candidates kept before NMS (CenterNet's K).
const TOP_K: usize = 100;

/// How head maps become boxes.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    pub score_threshold: f32,
    /// Same-class boxes overlapping a better one by more than this IoU are dropped.
    pub nms_iou: f64,
    pub max_detections: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { score_threshold: 0.05, nms_iou: 0.5, max_detections: 100 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class: BoxType,
    /// Full-resolution camera pixels.
    pub bbox: Box2d,
    pub score: f32,
}

/// Seconds per stage of one image.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetTimes {
    pub preprocess: f64,
    pub backbone: f64,
    pub head: f64,
    pub decode: f64,
}

impl DetTimes {
    pub fn total(&self) -> f64 {
        self.preprocess + self.backbone + self.head + self.decode
    }
}

#[derive(Debug, Clone)]
pub struct DetectorOutput {
    pub detections: Vec<Detection>,
    /// The windows each block ran on (see [`BackboneOutput::windows`]).
    pub windows: Vec<Vec<BlockWindows>>,
    /// The model input's size (the image at the model's scale).
    pub input_size: (usize, usize),
    pub times: DetTimes,
}

#[derive(Debug, Clone)]
pub struct Detector {
    backbone: Backbone,
    head: Head,
    /// Model input size over camera size.
    pub scale: f64,
    /// The head's cell size in input pixels.
    pub stride: usize,
    /// The ratio set these weights were fine-tuned at (metadata `fixed_ratios`, §C.3's last
    /// step); `None` for weights trained dense or with random ratios.
    pub fixed_ratios: Option<Ratios>,
}

impl Detector {
    pub fn load(path: &Path, dev: &Device) -> Result<Detector> {
        let mut p = Params::load(path)?;
        let at = |key: &str| Location::file(path).detail(format!("safetensors metadata `{key}`"));
        let meta = |p: &Params, key: &str| -> Result<String> {
            p.metadata(key)
                .map(str::to_string)
                .ok_or_else(|| Error::MissingColumn { at: at(key), expected: format!("the detector's `{key}`") })
        };
        let number = |p: &Params, key: &str| -> Result<f64> {
            let v = meta(p, key)?;
            v.parse().map_err(|_| Error::invalid(at(key), "a number", v))
        };
        let text = meta(&p, "config")?;
        let cfg: SwinConfig = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(at("config"), "a Swin config (JSON)", e.to_string()))?;
        let classes = meta(&p, "classes")?;
        if classes != "vehicle,pedestrian,cyclist" {
            return Err(Error::invalid(at("classes"), "vehicle,pedestrian,cyclist", classes));
        }
        let (dim, scale, stride) =
            (number(&p, "head_dim")? as usize, number(&p, "scale")?, number(&p, "stride")? as usize);
        if cfg.stages() < 2 || !(scale > 0.0 && scale <= 1.0) || stride != cfg.patch << 1 {
            return Err(Error::invalid(
                Location::file(path),
                "a backbone of 2+ stages, a scale in (0, 1], the head at stride patch·2",
                format!("{} stages, scale {scale}, stride {stride}", cfg.stages()),
            ));
        }
        let backbone = Backbone::build(cfg.clone(), &mut p, dev).map_err(|e| e.in_file(path))?;
        let dims: Vec<usize> = (1..cfg.stages()).map(|s| cfg.dim(s)).collect();
        let head = Head::load(&mut p, dev, &dims, dim, CLASSES.len()).map_err(|e| e.in_file(path))?;
        let fixed_ratios = match p.metadata("fixed_ratios") {
            None | Some("none") => None,
            Some(text) => Some(Ratios::parse(text, &cfg).map_err(|e| e.in_file(path))?),
        };
        Ok(Detector { backbone, head, scale, stride, fixed_ratios })
    }

    pub fn config(&self) -> &SwinConfig {
        self.backbone.config()
    }

    /// The model input of `rgb`: resized by [`Detector::scale`] (bilinear, half-pixel
    /// centres), `(x − 127) / 128`, RGB planes; with its size.
    pub fn input(&self, rgb: RgbView<'_>) -> (Vec<f32>, usize, usize) {
        let w = ((rgb.width as f64 * self.scale).round() as u32).max(1);
        let h = ((rgb.height as f64 * self.scale).round() as u32).max(1);
        let (xt, yt) = (taps(rgb.width, w), taps(rgb.height, h));
        let (wu, hu) = (w as usize, h as usize);
        let stride = rgb.width as usize * 3;
        let mut out = vec![0.0f32; 3 * wu * hu];
        for (y, &(y0, y1, wy)) in yt.iter().enumerate() {
            let (r0, r1) = (&rgb.pixels[y0 * stride..][..stride], &rgb.pixels[y1 * stride..][..stride]);
            for (x, &(x0, x1, wx)) in xt.iter().enumerate() {
                for c in 0..3 {
                    let a = (1.0 - wx) * r0[x0 * 3 + c] as f32 + wx * r0[x1 * 3 + c] as f32;
                    let b = (1.0 - wx) * r1[x0 * 3 + c] as f32 + wx * r1[x1 * 3 + c] as f32;
                    out[(c * hu + y) * wu + x] = ((1.0 - wy) * a + wy * b - 127.0) / 128.0;
                }
            }
        }
        (out, wu, hu)
    }

    /// The backbone and the head on a model input: the head's map `[h·w × (3 + 4)]` on the
    /// host, its grid, and the backbone's output.
    pub fn forward(&self, dev: &Device, image: ChwImage<'_>, ratios: &Ratios) -> Result<HeadMap> {
        let t = Instant::now();
        let backbone = self.backbone.forward(dev, image, ratios)?;
        let backbone_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (map, grid) = self.head.forward(dev, &backbone.features[1..])?;
        let values = dev.backend().download(&map)?;
        Ok(HeadMap { values, grid, backbone, backbone_s, head_s: t.elapsed().as_secs_f64() })
    }

    /// Boxes on one camera image.
    pub fn detect(
        &self,
        dev: &Device,
        rgb: RgbView<'_>,
        ratios: &Ratios,
        opts: &DecodeOptions,
    ) -> Result<DetectorOutput> {
        let t = Instant::now();
        let (values, w, h) = self.input(rgb);
        let preprocess = t.elapsed().as_secs_f64();
        let map = self.forward(dev, ChwImage { height: h, width: w, values: &values }, ratios)?;
        let t = Instant::now();
        // Input pixels → camera pixels, per axis.
        let to_full = (rgb.width as f64 / w as f64, rgb.height as f64 / h as f64);
        let detections = decode(&map.values, map.grid, self.stride, to_full, (rgb.width, rgb.height), opts);
        let times =
            DetTimes { preprocess, backbone: map.backbone_s, head: map.head_s, decode: t.elapsed().as_secs_f64() };
        Ok(DetectorOutput { detections, windows: map.backbone.windows, input_size: (w, h), times })
    }
}

/// The head's output on one image.
#[derive(Debug, Clone)]
pub struct HeadMap {
    /// `[h·w × (classes + 4)]`: heat-map logits, log(w / stride), log(h / stride), offset x, y.
    pub values: Vec<f32>,
    pub grid: (usize, usize),
    pub backbone: BackboneOutput,
    pub backbone_s: f64,
    pub head_s: f64,
}

/// CenterNet decoding of a head map (see [`HeadMap::values`]): the cells that are the maximum
/// of their 3 × 3 neighbourhood in a class' heat map and score at least the threshold, the
/// best [`TOP_K`], class-wise greedy NMS, at most `max_detections`; boxes scaled by `to_full`
/// and clipped to the `image` size.
pub fn decode(
    map: &[f32],
    (h, w): (usize, usize),
    stride: usize,
    to_full: (f64, f64),
    image: (u32, u32),
    opts: &DecodeOptions,
) -> Vec<Detection> {
    let k = CLASSES.len();
    let width = k + 4;
    let logit = |y: usize, x: usize, c: usize| map[(y * w + x) * width + c];
    let threshold = opts.score_threshold.clamp(1e-6, 1.0 - 1e-6);
    let min_logit = (threshold / (1.0 - threshold)).ln();
    let mut cand: Vec<(f32, usize, usize, usize)> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            for c in 0..k {
                let l = logit(y, x, c);
                if l < min_logit || l.is_nan() {
                    continue;
                }
                let peak = (y.saturating_sub(1)..(y + 2).min(h))
                    .all(|yy| (x.saturating_sub(1)..(x + 2).min(w)).all(|xx| logit(yy, xx, c) <= l));
                if peak {
                    cand.push((1.0 / (1.0 + (-l).exp()), y, x, c));
                }
            }
        }
    }
    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2, a.3).cmp(&(b.1, b.2, b.3))));
    cand.truncate(TOP_K);
    let s = stride as f64;
    let (fw, fh) = (image.0 as f64, image.1 as f64);
    let mut out: Vec<Detection> = Vec::new();
    for (score, y, x, c) in cand {
        let r = &map[(y * w + x) * width + k..][..4];
        let cx = (x as f64 + r[2] as f64) * s * to_full.0;
        let cy = (y as f64 + r[3] as f64) * s * to_full.1;
        // exp of a log size: bounded so a wild value cannot overflow.
        let bw = (r[0] as f64).clamp(-10.0, 10.0).exp() * s * to_full.0;
        let bh = (r[1] as f64).clamp(-10.0, 10.0).exp() * s * to_full.1;
        let (x0, x1) = ((cx - bw / 2.0).clamp(0.0, fw), (cx + bw / 2.0).clamp(0.0, fw));
        let (y0, y1) = ((cy - bh / 2.0).clamp(0.0, fh), (cy + bh / 2.0).clamp(0.0, fh));
        if !(x1 > x0 && y1 > y0) {
            continue;
        }
        let bbox = Box2d::from_min_max(x0, y0, x1, y1);
        let class = CLASSES[c];
        if out.iter().any(|d| d.class == class && d.bbox.iou(&bbox) > opts.nms_iou) {
            continue;
        }
        out.push(Detection { class, bbox, score });
        if out.len() == opts.max_detections {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 8;
    const WIDTH: usize = 7;

    /// Cell (y, x) of class `c` at logit `l`, log sizes and offset.
    fn set(map: &mut [f32], (y, x, c): (usize, usize, usize), l: f32, size: (f32, f32), off: (f32, f32)) {
        let at = (y * W + x) * WIDTH;
        map[at + c] = l;
        map[at + 3..at + 7].copy_from_slice(&[size.0.ln(), size.1.ln(), off.0, off.1]);
    }

    /// Peaks of each class (a weaker neighbour is no peak), boxes scaled to the camera and
    /// clipped, class-wise NMS.
    #[test]
    fn decode_finds_peaks_and_suppresses_overlaps() {
        let h = 6;
        let mut map = vec![-9.0f32; h * W * WIDTH];
        set(&mut map, (1, 1, 0), 3.0, (1.0, 2.0), (0.5, 0.25));
        set(&mut map, (1, 2, 0), 1.0, (1.0, 1.0), (0.5, 0.25)); // beside (1, 1): no peak
        set(&mut map, (4, 6, 0), 2.0, (1.0, 1.0), (0.5, 0.25));
        set(&mut map, (4, 5, 1), 2.5, (1.0, 1.0), (0.5, 0.25)); // a pedestrian beside that vehicle
        set(&mut map, (1, 5, 0), 0.5, (3.0, 3.0), (0.5, 0.25)); // reaches above the image: clipped
        let opts = DecodeOptions { score_threshold: 0.3, ..Default::default() };
        let d = decode(&map, (h, W), 8, (2.0, 2.0), (128, 96), &opts);
        let classes: Vec<BoxType> = d.iter().map(|d| d.class).collect();
        assert_eq!(classes, vec![BoxType::Vehicle, BoxType::Pedestrian, BoxType::Vehicle, BoxType::Vehicle]);
        // (1, 1): centre ((1 + 0.5)·8·2, (1 + 0.25)·8·2) = (24, 20), size (16, 32).
        let b = &d[0].bbox;
        assert!((b.center_x - 24.0).abs() < 1e-4 && (b.center_y - 20.0).abs() < 1e-4, "{b:?}");
        assert!((b.size_x - 16.0).abs() < 1e-4 && (b.size_y - 32.0).abs() < 1e-4, "{b:?}");
        assert_eq!(d[3].bbox.min_max()[1], 0.0, "clipped at the top");
        assert!((d[0].score - 1.0 / (1.0 + (-3.0f32).exp())).abs() < 1e-6);
        // Two 64-px boxes 16 px apart from peaks two cells apart (IoU 0.71 once clipped): the weaker goes.
        set(&mut map, (1, 1, 0), 3.0, (4.0, 4.0), (0.5, 0.25));
        set(&mut map, (3, 1, 0), 2.9, (4.0, 4.0), (0.5, -0.75));
        let nms = decode(&map, (h, W), 8, (2.0, 2.0), (128, 96), &opts);
        assert_eq!(nms.len(), d.len());
        let loose = DecodeOptions { nms_iou: 0.8, ..opts };
        assert_eq!(decode(&map, (h, W), 8, (2.0, 2.0), (128, 96), &loose).len(), d.len() + 1);
        // Nothing above the threshold: no boxes.
        assert!(decode(&vec![-9.0; h * W * WIDTH], (h, W), 8, (1.0, 1.0), (64, 48), &opts).is_empty());
    }
}
