//! Layers over sparse tensors: conv (with batch norm folded in at load), ReLU, residual
//! blocks, concatenation, and the run context that picks a dataflow per layer group.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use super::dataflow::{ConvBackend, ConvProblem, Cpu, Dataflow};
use super::gemm::sgemm;
use super::kmap::ConvGeom;
use super::tensor::{KmapKey, SparseTensor};

/// One conv's timing, for benchmarks.
#[derive(Debug, Clone)]
pub struct LayerStat {
    pub name: String,
    pub key: Option<KmapKey>,
    pub cin: usize,
    pub cout: usize,
    /// Multiply-adds × 2 actually needed (pairs · cin · cout · 2).
    pub flops: f64,
    /// Seconds in the dataflow (kernel-map construction excluded).
    pub seconds: f64,
    /// Seconds building the kernel map (0 when cached).
    pub map_seconds: f64,
}

/// How convs run: the backend, the dataflow per layer group (kernel-map key), the default.
pub struct RunCtx<'a> {
    pub backend: &'a dyn ConvBackend,
    pub choices: BTreeMap<KmapKey, Dataflow>,
    pub default: Dataflow,
    /// When set, every conv appends its timing here.
    pub stats: Option<Mutex<Vec<LayerStat>>>,
}

impl Default for RunCtx<'static> {
    fn default() -> Self {
        RunCtx { backend: &Cpu, choices: BTreeMap::new(), default: Dataflow::DEFAULT, stats: None }
    }
}

impl RunCtx<'_> {
    /// The dataflow for a layer group.
    pub fn dataflow(&self, key: &KmapKey) -> Dataflow {
        self.choices.get(key).copied().unwrap_or(self.default)
    }
    fn record(&self, s: LayerStat) {
        if let Some(v) = &self.stats {
            v.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        }
    }
}

/// Batch-norm parameters (inference: running statistics).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub eps: f32,
}

/// A sparse 3-D convolution. Weights `[K, cin, cout]` in [`super::kmap::kernel_indices`]
/// order; an optional bias (where a batch norm was folded in).
#[derive(Debug, Clone)]
pub struct SparseConv3d {
    pub name: String,
    pub cin: usize,
    pub cout: usize,
    pub geom: ConvGeom,
    pub transposed: bool,
    pub generative: bool,
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

impl SparseConv3d {
    /// Folds `bn` (applied after this conv) into the weights and bias:
    /// `W' = W·γ/√(σ²+ε)`, `b' = β + (b − μ)·γ/√(σ²+ε)`.
    pub fn fold_bn(&mut self, bn: &BatchNorm) {
        let scale: Vec<f32> = (0..self.cout).map(|c| bn.weight[c] / (bn.var[c] + bn.eps).sqrt()).collect();
        for row in self.weight.chunks_exact_mut(self.cout) {
            for (w, s) in row.iter_mut().zip(&scale) {
                *w *= s;
            }
        }
        let old = self.bias.take().unwrap_or_else(|| vec![0.0; self.cout]);
        self.bias = Some((0..self.cout).map(|c| bn.bias[c] + (old[c] - bn.mean[c]) * scale[c]).collect());
    }

    /// Runs the conv; `relu` fuses a ReLU after the bias.
    pub fn forward(&self, x: &SparseTensor, ctx: &RunCtx<'_>, relu: bool) -> SparseTensor {
        assert_eq!(
            x.channels, self.cin,
            "{}: input has {} channels, the conv takes {}",
            self.name, x.channels, self.cin
        );
        let (mut y, out) = if self.geom.volume() == 1 && self.geom.is_submanifold() && !self.transposed {
            // A 1×1×1 conv is a plain matmul on the same coordinates.
            let t = Instant::now();
            let mut y = vec![0.0f32; x.len() * self.cout];
            y.par_chunks_mut(256 * self.cout).zip(x.feats.par_chunks(256 * self.cin)).for_each(|(y, a)| {
                sgemm(y.len() / self.cout, self.cin, self.cout, a, &self.weight, 0.0, y);
            });
            let flops = 2.0 * (x.len() * self.cin * self.cout) as f64;
            let seconds = t.elapsed().as_secs_f64();
            ctx.record(self.stat(None, flops, seconds, 0.0));
            (y, None)
        } else {
            let t0 = Instant::now();
            let plan = x.plan(&self.geom, self.transposed, self.generative);
            let map_seconds = t0.elapsed().as_secs_f64();
            let df = ctx.dataflow(&plan.key);
            let t = Instant::now();
            let y = ctx.backend.conv(
                &df,
                &ConvProblem { map: &plan.map, x: &x.feats, cin: self.cin, w: &self.weight, cout: self.cout },
            );
            let seconds = t.elapsed().as_secs_f64();
            if ctx.stats.is_some() {
                let flops = 2.0 * (plan.map.n_pairs() * self.cin * self.cout) as f64;
                ctx.record(self.stat(Some(plan.key), flops, seconds, map_seconds));
            }
            (y, Some(plan))
        };
        if self.bias.is_some() || relu {
            let bias = self.bias.as_deref();
            y.par_chunks_mut(self.cout).for_each(|row| {
                if let Some(b) = bias {
                    row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
                if relu {
                    row.iter_mut().for_each(|v| *v = v.max(0.0));
                }
            });
        }
        match out {
            None => x.with_feats(y, self.cout),
            Some(plan) => x.on_plan(&plan, y, self.cout),
        }
    }

    fn stat(&self, key: Option<KmapKey>, flops: f64, seconds: f64, map_seconds: f64) -> LayerStat {
        LayerStat { name: self.name.clone(), key, cin: self.cin, cout: self.cout, flops, seconds, map_seconds }
    }
}

/// A residual block: conv3-BN-ReLU, conv3-BN, plus the input (or a 1×1 conv-BN of it when
/// the width changes), then ReLU.
#[derive(Debug, Clone)]
pub struct ResBlock {
    pub conv1: SparseConv3d,
    pub conv2: SparseConv3d,
    pub proj: Option<SparseConv3d>,
}

impl ResBlock {
    pub fn forward(&self, x: &SparseTensor, ctx: &RunCtx<'_>) -> SparseTensor {
        let h = self.conv1.forward(x, ctx, true);
        let mut h = self.conv2.forward(&h, ctx, false);
        let skip = self.proj.as_ref().map(|p| p.forward(x, ctx, false));
        let s = skip.as_ref().unwrap_or(x);
        h.feats.par_iter_mut().zip(s.feats.par_iter()).for_each(|(a, b)| *a = (*a + b).max(0.0));
        h
    }
}

/// Channel concatenation of two tensors on the same coordinates (`[a | b]`).
pub fn concat(a: &SparseTensor, b: &SparseTensor) -> SparseTensor {
    assert_eq!(a.len(), b.len(), "concat needs the same coordinates");
    let c = a.channels + b.channels;
    let mut f = vec![0.0f32; a.len() * c];
    f.par_chunks_mut(c).enumerate().for_each(|(i, row)| {
        row[..a.channels].copy_from_slice(&a.feats[i * a.channels..(i + 1) * a.channels]);
        row[a.channels..].copy_from_slice(&b.feats[i * b.channels..(i + 1) * b.channels]);
    });
    a.with_feats(f, c)
}
