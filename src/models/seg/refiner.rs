//! SparseRefine's refiner and gated ensembler on the selected full-resolution pixels.
//!
//! The shape, its differences from the paper and the parameter names are those of the PyTorch
//! twin, `tools/train/refiner_twin.py` (read it first): a sparse 2-D U-Net on scenetok's sparse
//! engine (coordinates `(0, u, v, 0)`, kernels `[3, 3, 1]`, k2 s2 down-sampling, transposed
//! up-sampling on the down map, concatenated skips), input features RGB and the low-resolution
//! softmax, a linear head (the refiner's logits `l2`) and the gated ensembler that mixes `l2`
//! with the low-resolution logits `l1`. Batch norms are folded into their convs at load.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use crate::backend::{Activation, ConvGeom, Device, Tensor};
use crate::error::{Error, Location, Result};
use crate::sparse::SparseTensor;
use crate::sparse::layers::{ResBlock, RunCtx, SparseConv3d, concat};
use crate::sparse::nets::{conv_bn, res_block};
use crate::sparse::weights::{Init, Params};

use super::dense::{CLASSES, DenseOutput};
use super::logits::exp_neg;

/// The shipped refiner weights' files under the data folder's `weights/`, per input scale.
pub fn weights_file(scale: f64) -> String {
    format!("camera_refiner_x{}.safetensors", scale_label(scale))
}

/// `0.5` → "0.5", `0.25` → "0.25".
pub fn scale_label(scale: f64) -> String {
    format!("{scale}")
}

/// Input features per pixel: RGB and the low-resolution softmax.
pub const IN_CHANNELS: usize = 3 + CLASSES;

/// A dense `[in × out]` layer on the device (PyTorch's `[out, in]` transposed at load).
#[derive(Debug, Clone)]
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn load(p: &mut Params, device: &Device, name: &str, cin: usize, cout: usize) -> Result<Self> {
        let w = p.get(&format!("{name}.weight"), &[cout, cin], Init::Uniform(1.0 / (cin as f32).sqrt()))?;
        let b = p.get(&format!("{name}.bias"), &[cout], Init::Const(0.0))?;
        let wt: Vec<f32> = (0..cin * cout).map(|j| w[(j % cout) * cin + j / cout]).collect();
        let backend = device.backend();
        Ok(Linear { w: backend.upload(&wt, cin, cout)?, b: backend.upload(&b, 1, cout)? })
    }
    fn forward(&self, device: &Device, x: &Tensor, act: Activation) -> Result<Tensor> {
        device.backend().matmul(x, &self.w, Some(&self.b), act)
    }
}

/// The refiner network with its ensembler.
#[derive(Debug, Clone)]
pub struct Refiner {
    pub channels: Vec<usize>,
    device: Device,
    stem: SparseConv3d,
    enc0: ResBlock,
    /// Levels 1.. : down conv, residual block.
    enc: Vec<(SparseConv3d, ResBlock)>,
    /// Deepest first: transposed conv, residual block.
    dec: Vec<(SparseConv3d, ResBlock)>,
    head: Linear,
    gate: [Linear; 2],
    post: [Linear; 2],
    /// The selector threshold it was trained with (weights metadata `tau`).
    pub tau: Option<f32>,
    /// The dense model's input scale it was trained on (metadata `scale`).
    pub scale: Option<f64>,
}

/// The refined logits at the selected pixels.
#[derive(Debug, Clone)]
pub struct Refined {
    /// The refiner's own logits `l2`, `[N × 29]` row-major.
    pub refiner: Vec<f32>,
    /// The ensembler's logits, `[N × 29]`: what replaces the low-resolution prediction.
    pub ensemble: Vec<f32>,
}

impl Refiner {
    /// Builds the network from `params` (a weights file, or random for tests) on `device`.
    pub fn build(channels: &[usize], hidden: usize, p: &mut Params, device: &Device) -> Result<Self> {
        let c = channels;
        if c.is_empty() {
            return Err(Error::invalid(Location::default().detail("refiner"), "at least one level", "none"));
        }
        let k3 = [3, 3, 1];
        let down = ConvGeom { kernel: [2, 2, 1], stride: [2, 2, 1], padding: [0; 3], dilation: [1; 3] };
        let stem = conv_bn(p, device, "stem", IN_CHANNELS, c[0], ConvGeom::cube(1, 1), false)?;
        let enc0 = res_block(p, device, "enc.0.res", c[0], c[0], k3)?;
        let mut enc = Vec::new();
        for i in 1..c.len() {
            enc.push((
                conv_bn(p, device, &format!("enc.{i}.down"), c[i - 1], c[i - 1], down, false)?,
                res_block(p, device, &format!("enc.{i}.res"), c[i - 1], c[i], k3)?,
            ));
        }
        let mut dec = Vec::new();
        for (j, i) in (1..c.len()).rev().enumerate() {
            dec.push((
                conv_bn(p, device, &format!("dec.{j}.up"), c[i], c[i - 1], down, true)?,
                res_block(p, device, &format!("dec.{j}.res"), 2 * c[i - 1], c[i - 1], k3)?,
            ));
        }
        let head = Linear::load(p, device, "head", c[0], CLASSES)?;
        let gate = [
            Linear::load(p, device, "gate.0", 2 * (CLASSES + 1), hidden)?,
            Linear::load(p, device, "gate.2", hidden, 2)?,
        ];
        let post =
            [Linear::load(p, device, "post.0", CLASSES, hidden)?, Linear::load(p, device, "post.2", hidden, CLASSES)?];
        Ok(Refiner {
            channels: c.to_vec(),
            device: device.clone(),
            stem,
            enc0,
            enc,
            dec,
            head,
            gate,
            post,
            tau: None,
            scale: None,
        })
    }

    /// Loads the shape from the file's metadata (`channels`, `hidden`) and its weights.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut p = Params::load(path)?;
        let at = || Location::file(path).detail("safetensors metadata");
        let channels: Vec<usize> = p
            .metadata("channels")
            .ok_or_else(|| Error::invalid(at(), "a `channels` entry (e.g. \"16,32,64,128\")", "none"))?
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::invalid(at(), "`channels` as comma-separated integers", e.to_string()))?;
        let hidden: usize = p
            .metadata("hidden")
            .ok_or_else(|| Error::invalid(at(), "a `hidden` entry", "none"))?
            .parse()
            .map_err(|e: std::num::ParseIntError| Error::invalid(at(), "`hidden` as an integer", e.to_string()))?;
        let tau = p.metadata("tau").and_then(|v| v.parse().ok());
        let scale = p.metadata("scale").and_then(|v| v.parse().ok());
        Ok(Refiner { tau, scale, ..Self::build(&channels, hidden, &mut p, device)? })
    }

    /// Refines `n` pixels: `pixels[i] = (u, v)` (full-resolution, unique), `rgb` `[n × 3]`,
    /// `l1` the low-resolution logits `[n × 29]`, on an image of `width × height`.
    pub fn forward(
        &self,
        pixels: &[(u32, u32)],
        rgb: &[u8],
        l1: &[f32],
        width: u32,
        height: u32,
        ctx: &RunCtx,
    ) -> Result<Refined> {
        let n = pixels.len();
        if rgb.len() != 3 * n || l1.len() != CLASSES * n {
            return Err(Error::invalid(
                Location::default().detail("refiner input"),
                format!("{} RGB values and {} logits for {n} pixels", 3 * n, CLASSES * n),
                format!("{} and {}", rgb.len(), l1.len()),
            ));
        }
        if n == 0 {
            return Ok(Refined { refiner: Vec::new(), ensemble: Vec::new() });
        }
        let (p1, h1) = softmax_rows(l1);
        let mut feats = vec![0f32; n * IN_CHANNELS];
        feats.par_chunks_mut(IN_CHANNELS).enumerate().for_each(|(i, f)| {
            for k in 0..3 {
                f[k] = (rgb[3 * i + k] as f32 - 127.0) / 128.0;
            }
            f[3..].copy_from_slice(&p1[i * CLASSES..][..CLASSES]);
        });
        let coords: Vec<[i32; 4]> = pixels.iter().map(|&(u, v)| [0, u as i32, v as i32, 0]).collect();
        let x = SparseTensor::from_host(&self.device, coords, &feats, IN_CHANNELS, [width as i32, height as i32, 1])?;
        let mut h = self.stem.forward(&x, ctx, Activation::Relu)?;
        h = self.enc0.forward(&h, ctx)?;
        let mut skips = vec![h.clone()];
        for (down, block) in &self.enc {
            h = down.forward(&h, ctx, Activation::Relu)?;
            h = block.forward(&h, ctx)?;
            skips.push(h.clone());
        }
        skips.pop();
        for (up, block) in &self.dec {
            h = up.forward(&h, ctx, Activation::Relu)?;
            let skip = skips.pop().ok_or_else(|| Error::device(self.device.name(), "refiner: a skip per level"))?;
            h = concat(&h, &skip)?;
            h = block.forward(&h, ctx)?;
        }
        let backend = self.device.backend();
        let l2 = backend.download(&self.head.forward(&self.device, &h.feats, Activation::None)?)?;
        let ensemble = self.ensemble(l1, &p1, &h1, &l2)?;
        Ok(Refined { refiner: l2, ensemble })
    }

    /// The gated ensembler: `w = softmax(gate([p1, H1, p2, H2]))`, `post(w0·l1 + w1·l2)`.
    fn ensemble(&self, l1: &[f32], p1: &[f32], h1: &[f32], l2: &[f32]) -> Result<Vec<f32>> {
        let n = l1.len() / CLASSES;
        let (p2, h2) = softmax_rows(l2);
        let width = 2 * (CLASSES + 1);
        let mut x = vec![0f32; n * width];
        x.par_chunks_mut(width).enumerate().for_each(|(i, row)| {
            let (a, b) = (&p1[i * CLASSES..][..CLASSES], &p2[i * CLASSES..][..CLASSES]);
            row[..CLASSES].copy_from_slice(a);
            row[CLASSES] = h1[i];
            row[CLASSES + 1..2 * CLASSES + 1].copy_from_slice(b);
            row[2 * CLASSES + 1] = h2[i];
        });
        let backend = self.device.backend();
        let d = &self.device;
        let g = self.gate[0].forward(d, &backend.upload(&x, n, width)?, Activation::Relu)?;
        let w = backend.download(&self.gate[1].forward(d, &g, Activation::None)?)?;
        let mut y = vec![0f32; n * CLASSES];
        y.par_chunks_mut(CLASSES).enumerate().for_each(|(i, row)| {
            // softmax over the two gate logits = sigmoid of their difference.
            let w0 = 1.0 / (1.0 + (w[2 * i + 1] - w[2 * i]).exp());
            for k in 0..CLASSES {
                row[k] = w0 * l1[i * CLASSES + k] + (1.0 - w0) * l2[i * CLASSES + k];
            }
        });
        let h = self.post[0].forward(d, &backend.upload(&y, n, CLASSES)?, Activation::Relu)?;
        backend.download(&self.post[1].forward(d, &h, Activation::None)?)
    }
}

/// The refined full-resolution classes of one image: the dense ones with the selected pixels
/// replaced by the ensembler's argmax. Returns (classes, gather seconds, refine seconds).
pub fn refine_image(
    refiner: &Refiner,
    dense: &DenseOutput,
    pred: &[u8],
    rgb: &image::RgbImage,
    pixels: &[(u32, u32)],
    ctx: &RunCtx,
) -> Result<(Vec<u8>, f64, f64)> {
    let t = Instant::now();
    let n = pixels.len();
    let mut colours = vec![0u8; 3 * n];
    let mut l1 = vec![0f32; CLASSES * n];
    colours.par_chunks_mut(3).zip(l1.par_chunks_mut(CLASSES)).zip(pixels.par_iter()).for_each(|((c, l), &(u, v))| {
        c.copy_from_slice(&rgb.get_pixel(u, v).0);
        let (iu, iv) = dense.input_pixel(u as usize, v as usize);
        dense.cells.logits_at(iu, iv, l);
    });
    let gather_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let refined = refiner.forward(pixels, &colours, &l1, rgb.width(), rgb.height(), ctx)?;
    let mut out = pred.to_vec();
    for (&(u, v), z) in pixels.iter().zip(refined.ensemble.chunks_exact(CLASSES)) {
        let best = z.iter().enumerate().fold(0, |b, (k, &x)| if x > z[b] { k } else { b });
        out[v as usize * dense.width + u as usize] = best as u8;
    }
    Ok((out, gather_s, t.elapsed().as_secs_f64()))
}

/// Row-wise softmax of `[n × 29]` logits and each row's entropy −Σ p log p (nats; the
/// twin's `-(exp(logp) * logp).sum()`), the latter as `log S − Σ e^{z−m} (z − m) / S` with
/// `S = Σ e^{z−m}`: one logarithm per row instead of one per class. Branch-free exponentials
/// ([`exp_neg`]), so the rows vectorise.
fn softmax_rows(l: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut p = vec![0f32; l.len()];
    let mut h = vec![0f32; l.len() / CLASSES];
    p.par_chunks_mut(CLASSES).zip(h.par_iter_mut()).zip(l.par_chunks(CLASSES)).for_each(|((p, h), l)| {
        let m = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let (mut s, mut sd) = (0f32, 0f32);
        for (q, &v) in p.iter_mut().zip(l) {
            let d = v - m;
            *q = exp_neg(d);
            s += *q;
            sd += *q * d;
        }
        let inv = 1.0 / s;
        for q in p.iter_mut() {
            *q *= inv;
        }
        *h = (s.ln() - sd * inv).max(0.0);
    });
    (p, h)
}
