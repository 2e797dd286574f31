//! The dense camera-segmentation model: an ONNX graph (`data/models/camera_seg_lite0.*`,
//! made by `tools/train/train_camera_seg.py`) run through the image encoder's session at one
//! input scale, its stride-4 logits turned into per-pixel classes at the input resolution
//! ([`super::logits::classify`]) and, below full resolution, carried to full-resolution pixels
//! by nearest neighbour (SparseRefine's rule for the low-resolution prediction).

use std::path::Path;
use std::time::Instant;

use crate::error::{Error, Location, Result};
use crate::models::image_encoder::config::OutputKind;
use crate::models::image_encoder::preprocess::RgbView;
use crate::models::image_encoder::{EncoderOptions, ImageEncoder, ModelConfig};

use super::logits::{Entropy, LogitCells, PixelClasses, classify};

/// The config of the shipped dense model, under the data folder's `models/`.
pub const CONFIG_FILE: &str = "camera_seg_lite0.toml";
/// The logits output's name in the config.
pub const LOGITS: &str = "logits";
/// Camera segmentation classes (`CameraSegmentation.Type`; 0 = undefined is never a target).
pub const CLASSES: usize = 29;

/// The dense model at one input scale.
pub struct DenseSegModel {
    encoder: ImageEncoder,
    scale: f64,
}

/// One image's dense result.
#[derive(Debug, Clone)]
pub struct DenseOutput {
    /// The image's size (full resolution).
    pub width: usize,
    pub height: usize,
    /// Classes (and entropy, if asked for) at the model's input resolution (the content).
    pub pixels: PixelClasses,
    /// The logit cells (the ensembler reads the low-resolution logits at refined pixels).
    pub cells: LogitCells,
}

/// Seconds per stage of one [`DenseSegModel::run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DenseTimes {
    /// Resize, normalise, pad (inside the encoder).
    pub preprocess: f64,
    /// The ONNX Runtime session.
    pub model: f64,
    /// Logits → classes (and entropy).
    pub classify: f64,
}

impl DenseSegModel {
    /// Loads the model of `config` to run at `scale` × full resolution.
    pub fn load(config: &Path, scale: f64, options: EncoderOptions) -> Result<Self> {
        let cfg = ModelConfig::load(config)?.with_scale(scale)?;
        let at = || Location::file(config);
        let out = cfg.output(LOGITS).ok_or_else(|| Error::invalid(at(), format!("an output `{LOGITS}`"), "none"))?;
        if out.channels != CLASSES || out.kind != OutputKind::FeatureMap {
            return Err(Error::invalid(
                at().detail(format!("output {LOGITS}")),
                format!("a feature map of {CLASSES} channels"),
                format!("{:?} with {} channels", out.kind, out.channels),
            ));
        }
        Ok(DenseSegModel { encoder: ImageEncoder::load(cfg, options)?, scale })
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Runs the model on `images` (one batch per distinct size, so no image pays for another's
    /// padding); classes at the input resolution, with the entropy as `entropy` asks.
    pub fn run(&mut self, images: &[RgbView<'_>], entropy: Entropy) -> Result<(Vec<DenseOutput>, DenseTimes)> {
        let mut times = DenseTimes::default();
        let mut out: Vec<Option<DenseOutput>> = (0..images.len()).map(|_| None).collect();
        let mut sizes: Vec<(u32, u32)> = images.iter().map(|i| (i.width, i.height)).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let idx: Vec<usize> = (0..images.len()).filter(|&i| (images[i].width, images[i].height) == size).collect();
            let group: Vec<RgbView<'_>> = idx.iter().map(|&i| images[i]).collect();
            let t = Instant::now();
            let outputs = self.encoder.encode(&group)?;
            let session = self.encoder.last_session_seconds();
            times.model += session;
            times.preprocess += t.elapsed().as_secs_f64() - session;
            let map = outputs.map(LOGITS).ok_or_else(|| {
                Error::model(Location::file(&self.encoder.config().model_file), format!("no output `{LOGITS}`"))
            })?;
            let t = Instant::now();
            for (n, &i) in idx.iter().enumerate() {
                let (cw, ch) = map.content_cells(n);
                let planes = map.data.index_axis(ndarray::Axis(0), n);
                let cells = LogitCells::from_planes(planes, cw, ch, map.stride as usize);
                let g = &map.geometry[n];
                let (cw, ch) = (g.content_width as usize, g.content_height as usize);
                let pixels = classify(&cells, cw, ch, entropy);
                out[i] = Some(DenseOutput { width: g.width as usize, height: g.height as usize, pixels, cells });
            }
            times.classify += t.elapsed().as_secs_f64();
        }
        Ok((out.into_iter().map(|o| o.expect("every image is in one size group")).collect(), times))
    }
}

impl DenseOutput {
    /// The input pixel a full-resolution pixel falls in (nearest neighbour).
    #[inline]
    pub fn input_pixel(&self, u: usize, v: usize) -> (usize, usize) {
        let (pw, ph) = (self.pixels.width, self.pixels.height);
        (
            (((u as f64 + 0.5) * pw as f64 / self.width as f64) as usize).min(pw - 1),
            (((v as f64 + 0.5) * ph as f64 / self.height as f64) as usize).min(ph - 1),
        )
    }

    /// Classes at full resolution, row-major: the input pixel's class (nearest neighbour; at
    /// scale 1 the input pixels are the image's).
    pub fn full_classes(&self) -> Vec<u8> {
        let (pw, ph) = (self.pixels.width, self.pixels.height);
        if (pw, ph) == (self.width, self.height) {
            return self.pixels.classes.clone();
        }
        let cols: Vec<usize> = (0..self.width).map(|u| self.input_pixel(u, 0).0).collect();
        let mut out = vec![0u8; self.width * self.height];
        for (v, row) in out.chunks_exact_mut(self.width).enumerate() {
            let src = &self.pixels.classes[self.input_pixel(0, v).1 * pw..][..pw];
            for (o, &c) in row.iter_mut().zip(&cols) {
                *o = src[c];
            }
        }
        out
    }
}
