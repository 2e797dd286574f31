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

use crate::backend::cpu::gemm::sgemm;
use crate::backend::{Activation, ConvGeom, Device};
use crate::error::{Error, Location, Result};
use crate::sparse::SparseTensor;
use crate::sparse::layers::{ResBlock, RunCtx, SparseConv3d, concat};
use crate::sparse::nets::{conv_bn, res_block};
use crate::sparse::weights::{Init, Params};

use super::dense::{CLASSES, DenseOutput};
use super::logits::{LANES, PAD_LOGIT, softmax_padded};

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

/// Rows per chunk of the per-pixel passes on the host (input features, head and ensembler):
/// every intermediate of a chunk stays in cache, and no `[N × …]` array is made for it.
const CHUNK: usize = 256;

/// A dense `[in × out]` layer (PyTorch's `[out, in]` transposed at load). The head and the
/// ensembler run on the host, a chunk of rows at a time: they are a few small products per
/// pixel, and whole-array passes spent more time writing and re-reading their outputs
/// (tens of MB per image) than multiplying.
#[derive(Debug, Clone)]
struct Linear {
    w: Vec<f32>,
    b: Vec<f32>,
    cin: usize,
    cout: usize,
}

impl Linear {
    fn load(p: &mut Params, name: &str, cin: usize, cout: usize) -> Result<Self> {
        let w = p.get(&format!("{name}.weight"), &[cout, cin], Init::Uniform(1.0 / (cin as f32).sqrt()))?;
        let b = p.get(&format!("{name}.bias"), &[cout], Init::Const(0.0))?;
        let w = (0..cin * cout).map(|j| w[(j / cout) + (j % cout) * cin]).collect();
        Ok(Linear { w, b, cin, cout })
    }

    /// `y = act(x·W + b)` for `rows` rows on this thread.
    fn apply(&self, rows: usize, x: &[f32], y: &mut [f32], relu: bool) {
        let y = &mut y[..rows * self.cout];
        sgemm(rows, self.cin, self.cout, &x[..rows * self.cin], &self.w, 0.0, y);
        for row in y.chunks_exact_mut(self.cout) {
            for (v, &b) in row.iter_mut().zip(&self.b) {
                *v = if relu { (*v + b).max(0.0) } else { *v + b };
            }
        }
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
        let head = Linear::load(p, "head", c[0], CLASSES)?;
        let gate = [Linear::load(p, "gate.0", GATE_IN, hidden)?, Linear::load(p, "gate.2", hidden, 2)?];
        let post = [Linear::load(p, "post.0", CLASSES, hidden)?, Linear::load(p, "post.2", hidden, CLASSES)?];
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
        // Each pixel's `l2` then its ensemble logits, split in two at the end (this path
        // serves the twin test; `classify` is what images run).
        let mut both = vec![0f32; n * 2 * CLASSES];
        if let Some(body) = self.body(pixels, rgb, l1, width, height, ctx)? {
            self.per_chunk(&body, &mut both, 2 * CLASSES, |s, out| {
                for (r, row) in out.chunks_exact_mut(2 * CLASSES).enumerate() {
                    row[..CLASSES].copy_from_slice(&s.l2[r * CLASSES..][..CLASSES]);
                    row[CLASSES..].copy_from_slice(&s.z[r * CLASSES..][..CLASSES]);
                }
            });
        }
        let (refiner, ensemble) =
            both.chunks_exact(2 * CLASSES).map(|r| r.split_at(CLASSES)).unzip::<_, _, Vec<_>, Vec<_>>();
        Ok(Refined { refiner: refiner.concat(), ensemble: ensemble.concat() })
    }

    /// The ensembler's class at each pixel (the argmax of [`Refined::ensemble`]; ties to the
    /// lowest class), what replaces the low-resolution prediction. Arguments as [`Refiner::forward`].
    pub fn classify(
        &self,
        pixels: &[(u32, u32)],
        rgb: &[u8],
        l1: &[f32],
        width: u32,
        height: u32,
        ctx: &RunCtx,
    ) -> Result<Vec<u8>> {
        let mut classes = vec![0u8; pixels.len()];
        if let Some(body) = self.body(pixels, rgb, l1, width, height, ctx)? {
            self.per_chunk(&body, &mut classes, 1, |s, out| {
                for (o, z) in out.iter_mut().zip(s.z.chunks_exact(CLASSES)) {
                    *o = z.iter().enumerate().fold(0, |b, (k, &x)| if x > z[b] { k } else { b }) as u8;
                }
            });
        }
        Ok(classes)
    }

    /// Runs the head and ensembler on every chunk of [`CHUNK`] pixels in parallel, and
    /// `emit` on each chunk's results and its part of `out` (`per_pixel` values a pixel).
    fn per_chunk<T: Send>(
        &self,
        body: &Body<'_>,
        out: &mut [T],
        per_pixel: usize,
        emit: impl Fn(&Scratch, &mut [T]) + Sync,
    ) {
        out.par_chunks_mut(CHUNK * per_pixel).enumerate().for_each_init(
            || Scratch::new(self.post[0].cout.max(self.gate[0].cout)),
            |s, (c, out)| {
                self.tail(body, c * CHUNK, out.len() / per_pixel, s);
                emit(s, out);
            },
        );
    }

    /// The input features and the U-Net up to its last block's features; `None` for no pixels.
    fn body<'a>(
        &self,
        pixels: &[(u32, u32)],
        rgb: &[u8],
        l1: &'a [f32],
        width: u32,
        height: u32,
        ctx: &RunCtx,
    ) -> Result<Option<Body<'a>>> {
        let n = pixels.len();
        if rgb.len() != 3 * n || l1.len() != CLASSES * n {
            return Err(Error::invalid(
                Location::default().detail("refiner input"),
                format!("{} RGB values and {} logits for {n} pixels", 3 * n, CLASSES * n),
                format!("{} and {}", rgb.len(), l1.len()),
            ));
        }
        if n == 0 {
            return Ok(None);
        }
        let (feats, h1) = input_features(rgb, l1);
        let coords: Vec<[i32; 4]> = pixels.iter().map(|&(u, v)| [0, u as i32, v as i32, 0]).collect();
        let size = [width as i32, height as i32, 1];
        let x = SparseTensor::from_host_vec(&self.device, coords, feats, IN_CHANNELS, size)?;
        let mut h = self.stem.forward(&x, ctx, Activation::Relu)?;
        // The ensembler reads `p1` from the input features: back from the device (on the
        // CPU, the same values without a copy).
        let feats = match x.feats.into_host() {
            Ok(v) => v,
            Err(t) => self.device.backend().download(&t)?,
        };
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
        let last = match h.feats.into_host() {
            Ok(v) => v,
            Err(t) => self.device.backend().download(&t)?,
        };
        Ok(Some(Body { l1, feats, h1, last }))
    }

    /// The head and the gated ensembler on rows `r0 .. r0 + rows` (at most [`CHUNK`]):
    /// `l2 = head(h)`, `w = softmax(gate([p1, H1, p2, H2]))`, `z = post(w0·l1 + w1·l2)`;
    /// `l2` and `z` are left in `s`. Compiled for AVX2 where the CPU has it.
    fn tail(&self, b: &Body<'_>, r0: usize, rows: usize, s: &mut Scratch) {
        #[cfg(target_arch = "x86_64")]
        if crate::backend::cpu::dense::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { self.tail_avx2(b, r0, rows, s) };
        }
        self.tail_rows(b, r0, rows, s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn tail_avx2(&self, b: &Body<'_>, r0: usize, rows: usize, s: &mut Scratch) {
        self.tail_rows(b, r0, rows, s)
    }

    #[inline(always)]
    fn tail_rows(&self, b: &Body<'_>, r0: usize, rows: usize, s: &mut Scratch) {
        let c0 = self.head.cin;
        self.head.apply(rows, &b.last[r0 * c0..], &mut s.l2, false);
        for r in 0..rows {
            let (i, x) = (r0 + r, &mut s.x[r * GATE_IN..][..GATE_IN]);
            x[..CLASSES].copy_from_slice(&b.feats[i * IN_CHANNELS + 3..][..CLASSES]);
            x[CLASSES] = b.h1[i];
            let mut z = [PAD_LOGIT; LANES];
            z[..CLASSES].copy_from_slice(&s.l2[r * CLASSES..][..CLASSES]);
            let mut p2 = [0f32; LANES];
            x[2 * CLASSES + 1] = softmax_padded(&z, &mut p2);
            x[CLASSES + 1..2 * CLASSES + 1].copy_from_slice(&p2[..CLASSES]);
        }
        self.gate[0].apply(rows, &s.x, &mut s.hidden, true);
        self.gate[1].apply(rows, &s.hidden, &mut s.w, false);
        for r in 0..rows {
            // softmax over the two gate logits = sigmoid of their difference.
            let w0 = 1.0 / (1.0 + (s.w[2 * r + 1] - s.w[2 * r]).exp());
            let (l1, l2) = (&b.l1[(r0 + r) * CLASSES..][..CLASSES], &s.l2[r * CLASSES..][..CLASSES]);
            for ((y, &a), &c) in s.y[r * CLASSES..][..CLASSES].iter_mut().zip(l1).zip(l2) {
                *y = w0 * a + (1.0 - w0) * c;
            }
        }
        self.post[0].apply(rows, &s.y, &mut s.hidden, true);
        self.post[1].apply(rows, &s.hidden, &mut s.z, false);
    }
}

/// Width of the gate's input: both softmaxes and their entropies.
const GATE_IN: usize = 2 * (CLASSES + 1);

/// What the head and the ensembler read per pixel.
struct Body<'a> {
    /// The low-resolution logits `[n × 29]`.
    l1: &'a [f32],
    /// The input features `[n × 32]` (RGB, then the low-resolution softmax `p1`).
    feats: Vec<f32>,
    /// The low-resolution entropies `H1`.
    h1: Vec<f32>,
    /// The last block's features `[n × c0]`, on the host.
    last: Vec<f32>,
}

/// One thread's buffers for a chunk of [`CHUNK`] rows.
struct Scratch {
    l2: Vec<f32>,
    x: Vec<f32>,
    hidden: Vec<f32>,
    w: Vec<f32>,
    y: Vec<f32>,
    z: Vec<f32>,
}

impl Scratch {
    fn new(hidden: usize) -> Self {
        Scratch {
            l2: vec![0.0; CHUNK * CLASSES],
            x: vec![0.0; CHUNK * GATE_IN],
            hidden: vec![0.0; CHUNK * hidden],
            w: vec![0.0; CHUNK * 2],
            y: vec![0.0; CHUNK * CLASSES],
            z: vec![0.0; CHUNK * CLASSES],
        }
    }
}

/// Per pixel: `[(rgb − 127) / 128, softmax(l1)]` and the entropy of `softmax(l1)` (nats; the
/// twin's `-(exp(logp) * logp).sum()`).
fn input_features(rgb: &[u8], l1: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = rgb.len() / 3;
    let mut feats = vec![0f32; n * IN_CHANNELS];
    let mut h1 = vec![0f32; n];
    let chunks = feats.par_chunks_mut(CHUNK * IN_CHANNELS).zip(h1.par_chunks_mut(CHUNK));
    chunks.enumerate().for_each(|(c, (f, h))| {
        #[cfg(target_arch = "x86_64")]
        if crate::backend::cpu::dense::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { input_rows_avx2(rgb, l1, c * CHUNK, f, h) };
        }
        input_rows(rgb, l1, c * CHUNK, f, h)
    });
    (feats, h1)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn input_rows_avx2(rgb: &[u8], l1: &[f32], r0: usize, f: &mut [f32], h: &mut [f32]) {
    input_rows(rgb, l1, r0, f, h)
}

/// [`input_features`] of rows `r0 ..` (as many as `h` holds).
#[inline(always)]
fn input_rows(rgb: &[u8], l1: &[f32], r0: usize, f: &mut [f32], h: &mut [f32]) {
    for (r, (f, h)) in f.chunks_exact_mut(IN_CHANNELS).zip(h.iter_mut()).enumerate() {
        let i = r0 + r;
        for k in 0..3 {
            f[k] = (rgb[3 * i + k] as f32 - 127.0) / 128.0;
        }
        let mut z = [PAD_LOGIT; LANES];
        z[..CLASSES].copy_from_slice(&l1[i * CLASSES..][..CLASSES]);
        let mut p = [0f32; LANES];
        *h = softmax_padded(&z, &mut p);
        f[3..].copy_from_slice(&p[..CLASSES]);
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
    let classes = refiner.classify(pixels, &colours, &l1, rgb.width(), rgb.height(), ctx)?;
    let mut out = pred.to_vec();
    for (&(u, v), &c) in pixels.iter().zip(&classes) {
        out[v as usize * dense.width + u as usize] = c;
    }
    Ok((out, gather_s, t.elapsed().as_secs_f64()))
}
