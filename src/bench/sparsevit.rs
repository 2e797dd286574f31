//! `scenetok bench sparsevit`: the SparseViT backbone at pruning ratios against its dense
//! self on the same input, in one run, and against ONNX Runtime running the same dense
//! backbone (exported from the PyTorch twin by `tools/train/export_swin_onnx.py`).
//!
//! Every method runs once per round (`reps` rounds, the order rotating so no method always
//! runs first); a method's time is its median round. All run f32 on the same threads (rayon's
//! pool for scenetok, as many intra-op threads for ONNX Runtime, spinning as the image encoder
//! runs it). Checksums (the sum of the last stage's features) are taken outside the timers.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::backend::Device;
use crate::error::{Error, Location, Result};
use crate::models::det::{Backbone, ChwImage, Ratios, SwinConfig};

/// Swin-T's ratio sets from the SparseViT repository's README (§C.4), per block.
pub const PUBLISHED: [(&str, &str); 3] = [
    ("cfg1", "0.3/0/0.1,0.1,0.2,0.2,0.2,0.2/0"),
    ("cfg2", "0.6/0/0.2,0.2,0.4,0.4,0.5,0.5/0"),
    ("cfg3", "0.7/0/0.2,0.2,0.4,0.4,0.5,0.5/0"),
];

/// [`PUBLISHED`] as `NAME=RATIOS;…`.
pub fn published() -> String {
    PUBLISHED.iter().map(|(n, r)| format!("{n}={r}")).collect::<Vec<_>>().join(";")
}

pub struct SparseVitBenchOptions {
    pub config: SwinConfig,
    /// Trained weights (their config wins); random weights of `config` otherwise.
    pub weights: Option<PathBuf>,
    pub height: usize,
    pub width: usize,
    /// Named ratio sets `NAME=RATIOS;…` to time against the dense backbone, checked against
    /// the backbone's config; default: [`PUBLISHED`] for Swin-T's depths, none otherwise.
    pub ratios: Option<String>,
    pub reps: usize,
    /// The dense backbone as ONNX (same config and input size) for the peer row.
    pub onnx: Option<PathBuf>,
    pub device: Device,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub method: String,
    pub ratios: String,
    /// Median over rounds.
    pub ms: f64,
    pub min_ms: f64,
    /// Median ms per stage.
    pub stage_ms: Vec<f64>,
    /// Windows run over windows in a dense pass, all blocks.
    pub window_share: f64,
    /// Dense scenetok's median over this one's.
    pub speedup: f64,
    pub checksum: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SparseVitBench {
    pub config: SwinConfig,
    pub height: usize,
    pub width: usize,
    pub reps: usize,
    pub threads: usize,
    pub rows: Vec<Row>,
}

/// `Σ xᵢ·(i mod 13 − 6)`: a plain sum of LayerNorm outputs is near zero whatever they are.
fn checksum(v: &[f32]) -> f64 {
    v.iter().enumerate().map(|(i, &x)| x as f64 * ((i % 13) as f64 - 6.0)).sum()
}

/// A deterministic input in roughly a normalised image's range.
fn input(height: usize, width: usize) -> Vec<f32> {
    (0..3 * height * width)
        .map(|i| {
            let (c, p) = (i / (height * width), i % (height * width));
            let (y, x) = ((p / width) as f32, (p % width) as f32);
            ((x * 0.031 + c as f32).sin() + (y * 0.017).cos()) * 0.9
        })
        .collect()
}

pub fn run(o: &SparseVitBenchOptions) -> Result<SparseVitBench> {
    let dev = &o.device;
    let backbone = match &o.weights {
        Some(w) => Backbone::load(w, dev)?,
        None => Backbone::random(o.config.clone(), 0, dev)?,
    };
    let cfg = backbone.config().clone();
    let values = input(o.height, o.width);
    let image = ChwImage { height: o.height, width: o.width, values: &values };
    let mut methods: Vec<(String, Ratios)> = vec![("dense".into(), Ratios::dense(&cfg))];
    let sets = match &o.ratios {
        Some(text) => Ratios::parse_sets(text, &cfg)?,
        None if cfg.depths == SwinConfig::swin_t().depths => Ratios::parse_sets(&published(), &cfg)?,
        None => Vec::new(),
    };
    methods.extend(sets);
    let mut peer = match &o.onnx {
        Some(path) => Some(OrtPeer::load(path, rayon::current_num_threads())?),
        None => None,
    };
    let slots = methods.len() + peer.is_some() as usize;
    // Warm-up round (allocations, ONNX Runtime's arena), then the timed rounds.
    let mut times: Vec<Vec<(f64, Vec<f64>)>> = vec![Vec::new(); slots];
    let mut checksums = vec![0.0f64; slots];
    let mut shares = vec![1.0f64; slots];
    for round in 0..=o.reps {
        for k in 0..slots {
            let m = (k + round) % slots;
            if m < methods.len() {
                let t = Instant::now();
                let out = backbone.forward(dev, image, &methods[m].1)?;
                let s = t.elapsed().as_secs_f64();
                let last = out.features.last().map(|f| dev.backend().download(&f.values)).transpose()?;
                checksums[m] = last.map_or(0.0, |v| checksum(&v));
                let (ran, all) = out
                    .windows
                    .iter()
                    .flatten()
                    .fold((0usize, 0usize), |a, b| (a.0 + b.kept.len(), a.1 + b.grid.0 * b.grid.1));
                shares[m] = ran as f64 / all.max(1) as f64;
                if round > 0 {
                    times[m].push((s, out.stage_seconds));
                }
            } else if let Some(p) = peer.as_mut() {
                let (s, sum) = p.run(&values, o.height, o.width)?;
                checksums[m] = sum;
                if round > 0 {
                    times[m].push((s, Vec::new()));
                }
            }
        }
    }
    let med = |v: &[(f64, Vec<f64>)]| super::median(v.iter().map(|t| t.0).collect()) * 1e3;
    let dense_ms = med(&times[0]);
    let rows = (0..slots)
        .map(|m| {
            let stages = times[m].first().map_or(0, |t| t.1.len());
            let stage_ms =
                (0..stages).map(|s| super::median(times[m].iter().map(|t| t.1[s]).collect()) * 1e3).collect();
            let (method, ratios) = match methods.get(m) {
                Some((name, r)) => (format!("scenetok {name}"), r.to_string()),
                None => ("onnxruntime dense".to_string(), "-".to_string()),
            };
            let ms = med(&times[m]);
            Row {
                method,
                ratios,
                ms,
                min_ms: times[m].iter().map(|t| t.0).fold(f64::INFINITY, f64::min) * 1e3,
                stage_ms,
                window_share: shares[m],
                speedup: dense_ms / ms,
                checksum: checksums[m],
            }
        })
        .collect();
    Ok(SparseVitBench {
        config: cfg,
        height: o.height,
        width: o.width,
        reps: o.reps,
        threads: rayon::current_num_threads(),
        rows,
    })
}

impl SparseVitBench {
    pub fn report(&self) -> String {
        let c = &self.config;
        let mut s = format!(
            "SparseViT backbone (embed {}, depths {:?}, heads {:?}, window {}) on one {}×{} image: median of {} interleaved rounds, {} threads, f32\n",
            c.embed, c.depths, c.heads, c.window, self.width, self.height, self.reps, self.threads
        );
        s += &format!(
            "  {:<22} {:>9} {:>9} {:>8} {:>9}  {:<28} {:<34} {}\n",
            "method", "ms", "min ms", "windows", "vs dense", "ms per stage", "ratios per block", "checksum"
        );
        for r in &self.rows {
            let stages: Vec<String> = r.stage_ms.iter().map(|v| format!("{v:.0}")).collect();
            s += &format!(
                "  {:<22} {:>9.1} {:>9.1} {:>7.0}% {:>8.2}×  {:<28} {:<34} {:.4e}\n",
                r.method,
                r.ms,
                r.min_ms,
                100.0 * r.window_share,
                r.speedup,
                stages.join(" / "),
                r.ratios,
                r.checksum
            );
        }
        s
    }
}

/// The dense backbone in ONNX Runtime: input `image [1, 3, H, W]`, the stage outputs out.
struct OrtPeer {
    session: ort::session::Session,
    path: PathBuf,
}

impl OrtPeer {
    fn load(path: &std::path::Path, threads: usize) -> Result<OrtPeer> {
        use crate::models::image_encoder::encoder::runtime;
        let env = runtime(&crate::models::image_encoder::runtime_library_path())?;
        let err = |e: &dyn std::fmt::Display| Error::model(Location::file(path), e.to_string());
        let session = ort::session::Session::builder(env)
            .map_err(|e| err(&e))?
            .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level3)
            .and_then(|b| b.with_intra_threads(threads))
            .and_then(|b| b.with_intra_op_spinning(true))
            .map_err(|e| err(&e))?
            .commit_from_file(path)
            .map_err(|e| err(&e))?;
        Ok(OrtPeer { session, path: path.to_path_buf() })
    }

    /// Seconds of one run, and the sum of the last output (outside the timer).
    fn run(&mut self, values: &[f32], height: usize, width: usize) -> Result<(f64, f64)> {
        let at = || Location::file(&self.path);
        let input = ort::value::Tensor::from_array(([1usize, 3, height, width], values.to_vec()))
            .map_err(|e| Error::model(at(), e.to_string()))?;
        let t = Instant::now();
        let outputs = self.session.run(ort::inputs![input]).map_err(|e| {
            Error::model(at(), format!("the run failed for input 1×3×{height}×{width} (exported for this size?): {e}"))
        })?;
        let s = t.elapsed().as_secs_f64();
        let last = outputs.len().checked_sub(1).ok_or_else(|| Error::model(at(), "no outputs"))?;
        let (_, data) = outputs[last].try_extract_tensor::<f32>().map_err(|e| Error::model(at(), e.to_string()))?;
        Ok((s, checksum(data)))
    }
}
