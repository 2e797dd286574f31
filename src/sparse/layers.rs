//! Layers over sparse tensors: conv (with batch norm folded in at load), ReLU, residual
//! blocks, concatenation, and the run context that picks a dataflow per layer group.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use super::calib::{Calibration, LayerCalib, ProbeRow};
use super::tensor::{KmapKey, SparseTensor};
use crate::backend::lowp::{ActQuant, Bf16Conv, Int8Conv};
use crate::backend::{Activation, ConvGeom, Dataflow, Device, Epilogue, LowpConv, Precision, Tensor};
use crate::error::{Error, Result};

/// One conv's timing, for benchmarks.
#[derive(Debug, Clone)]
pub struct LayerStat {
    pub name: String,
    pub key: Option<KmapKey>,
    pub cin: usize,
    pub cout: usize,
    /// Multiply-adds × 2 actually needed (pairs · cin · cout · 2).
    pub flops: f64,
    /// Seconds in the conv and its epilogue (bias, activation; kernel-map construction excluded).
    pub seconds: f64,
    /// Seconds building the kernel map (0 when cached).
    pub map_seconds: f64,
    /// The arithmetic it ran in.
    pub precision: Precision,
}

/// How convs run on their tensors' device: the dataflow per layer group (kernel-map key),
/// the default for the others, the arithmetic per conv (by name; FP32 for the others and
/// wherever a conv has no low-precision weights), and optionally every conv's timing, its
/// inputs' calibration statistics, or a probe of every precision against FP32.
#[derive(Debug)]
pub struct RunCtx {
    pub choices: BTreeMap<KmapKey, Dataflow>,
    pub default: Dataflow,
    pub precisions: BTreeMap<String, Precision>,
    pub default_precision: Precision,
    /// When set, every conv appends its timing here.
    pub stats: Option<Mutex<Vec<LayerStat>>>,
    /// When set, every conv records its input's ranges here (runs in FP32).
    pub calib: Option<Mutex<Calibration>>,
    /// When set, every conv with low-precision weights also runs each of them on its FP32
    /// input and records the time and the error (the autotuner's accuracy guard).
    pub probe: Option<Mutex<Vec<ProbeRow>>>,
}

impl Default for RunCtx {
    fn default() -> Self {
        RunCtx {
            choices: BTreeMap::new(),
            default: Dataflow::DEFAULT,
            precisions: BTreeMap::new(),
            default_precision: Precision::F32,
            stats: None,
            calib: None,
            probe: None,
        }
    }
}

impl RunCtx {
    /// Every layer group with `dataflow`.
    pub fn with_default(dataflow: Dataflow) -> Self {
        RunCtx { default: dataflow, ..RunCtx::default() }
    }
    /// The same choices, recording per-conv timings.
    pub fn with_stats(mut self) -> Self {
        self.stats = Some(Mutex::new(Vec::new()));
        self
    }
    /// The recorded timings.
    pub fn take_stats(&mut self) -> Vec<LayerStat> {
        self.stats.take().map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).unwrap_or_default()
    }
    /// Every conv in `precision` (where it has weights for it).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.default_precision = precision;
        self
    }
    /// The dataflow for a layer group.
    pub fn dataflow(&self, key: &KmapKey) -> Dataflow {
        self.choices.get(key).copied().unwrap_or(self.default)
    }
    /// The precision asked for a conv.
    pub fn precision(&self, conv: &str) -> Precision {
        self.precisions.get(conv).copied().unwrap_or(self.default_precision)
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

/// What a sparse conv is, without its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    pub name: String,
    pub cin: usize,
    pub cout: usize,
    pub geom: ConvGeom,
    pub transposed: bool,
    pub generative: bool,
}

/// Folds `bn` (applied after a conv) into its host weights `[K·cin × cout]` and bias:
/// `W' = W·γ/√(σ²+ε)`, `b' = β + (b − μ)·γ/√(σ²+ε)`. Returns the new bias.
pub fn fold_bn(weight: &mut [f32], cout: usize, bias: Option<&[f32]>, bn: &BatchNorm) -> Vec<f32> {
    let scale: Vec<f32> = (0..cout).map(|c| bn.weight[c] / (bn.var[c] + bn.eps).sqrt()).collect();
    for row in weight.chunks_exact_mut(cout) {
        for (w, s) in row.iter_mut().zip(&scale) {
            *w *= s;
        }
    }
    (0..cout).map(|c| bn.bias[c] + (bias.map_or(0.0, |b| b[c]) - bn.mean[c]) * scale[c]).collect()
}

/// A sparse 3-D convolution on a device. Weights `[K·cin × cout]` in
/// [`crate::backend::kernel_indices`] order; an optional bias (where a batch norm was
/// folded in).
#[derive(Debug, Clone)]
pub struct SparseConv3d {
    pub spec: ConvSpec,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// INT8 / BF16 weights, once [`SparseConv3d::prepare_lowp`] made them.
    pub lowp: Option<LowpConv>,
}

impl SparseConv3d {
    /// Puts host weights `[K·cin × cout]` (and a bias of `cout`) on `device`.
    pub fn new(device: &Device, spec: ConvSpec, weight: &[f32], bias: Option<&[f32]>) -> Result<Self> {
        let backend = device.backend();
        let rows = spec.geom.volume() * spec.cin;
        let weight = backend.upload(weight, rows, spec.cout)?;
        let bias = bias.map(|b| backend.upload(b, 1, spec.cout)).transpose()?;
        Ok(SparseConv3d { spec, weight, bias, lowp: None })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether the conv is a plain matmul (1×1×1, stride 1): it stays in FP32.
    fn is_pointwise(&self) -> bool {
        let s = &self.spec;
        s.geom.volume() == 1 && s.geom.is_submanifold() && !s.transposed
    }

    /// Packs BF16 weights and, where `calib` has this conv's input ranges, INT8 weights
    /// (SmoothQuant strength `alpha`). Pointwise convs stay in FP32.
    pub fn prepare_lowp(&mut self, device: &Device, calib: Option<&LayerCalib>, alpha: Option<f32>) -> Result<()> {
        if self.is_pointwise() {
            return Ok(());
        }
        let s = &self.spec;
        let w = device.backend().download(&self.weight)?;
        let volume = s.geom.volume();
        let int8 = calib.map(|c| {
            let act = ActQuant::calibrate(&c.chan_absmax, c.min, &w, s.cout, alpha);
            Int8Conv::quantize(&w, volume, s.cin, s.cout, &act)
        });
        self.lowp = Some(LowpConv { int8, bf16: Some(Bf16Conv::pack(&w, volume, s.cin, s.cout)) });
        Ok(())
    }

    /// Runs the conv with `act` fused after the bias.
    pub fn forward(&self, x: &SparseTensor, ctx: &RunCtx, act: Activation) -> Result<SparseTensor> {
        self.forward_residual(x, ctx, act, None)
    }

    /// `act(conv(x) + bias + residual)`: a residual block's last conv with its skip
    /// connection (on the conv's output coordinates) and the block's activation, fused
    /// into the store of each output row (FP32, BF16, INT8); pointwise convs and the
    /// accuracy probe add the residual in a pass of its own.
    pub fn forward_residual(
        &self,
        x: &SparseTensor,
        ctx: &RunCtx,
        act: Activation,
        residual: Option<&SparseTensor>,
    ) -> Result<SparseTensor> {
        let s = &self.spec;
        if x.channels() != s.cin {
            return Err(Error::device(
                x.device.name(),
                format!("{}: the input has {} channels, the conv takes {}", s.name, x.channels(), s.cin),
            ));
        }
        let backend = x.device.backend();
        if let Some(c) = &ctx.calib {
            let feats = backend.download(&x.feats)?;
            c.lock().unwrap_or_else(|p| p.into_inner()).observe(&s.name, &feats, s.cin);
        }
        // Where the residual is not fused, the conv stops at its bias and `then` adds it.
        let (conv_act, then) = match residual {
            Some(r) => (Activation::None, Some(r)),
            None => (act, None),
        };
        let finish = |mut y: SparseTensor, then: Option<&SparseTensor>| -> Result<SparseTensor> {
            if let Some(r) = then {
                backend.add_act(&mut y.feats, &r.feats, act)?;
            }
            Ok(y)
        };
        if self.is_pointwise() {
            // A 1×1×1 conv is a plain matmul on the same coordinates.
            let t = Instant::now();
            let y = backend.matmul(&x.feats, &self.weight, self.bias.as_ref(), conv_act)?;
            let flops = 2.0 * (x.len() * s.cin * s.cout) as f64;
            ctx.record(self.stat(None, flops, t.elapsed().as_secs_f64(), 0.0, Precision::F32));
            return finish(x.with_feats(y)?, then);
        }
        let t0 = Instant::now();
        let plan = x.plan(&s.geom, s.transposed, s.generative)?;
        let map_seconds = t0.elapsed().as_secs_f64();
        let flops = || 2.0 * (plan.map.n_pairs() * s.cin * s.cout) as f64;
        let precision = ctx.precision(&s.name);
        if let Some(lowp) = self.lowp.as_ref().filter(|l| l.has(precision)) {
            let t = Instant::now();
            let epi = Epilogue { bias: self.bias.as_ref(), residual: residual.map(|r| &r.feats), act };
            let y = backend.sparse_conv_lowp(&plan.map, &x.feats, lowp, precision, &epi)?;
            let y = x.on_plan(&plan, y)?;
            let seconds = t.elapsed().as_secs_f64();
            if ctx.stats.is_some() {
                ctx.record(self.stat(Some(plan.key), flops(), seconds, map_seconds, precision));
            }
            return Ok(y);
        }
        let df = ctx.dataflow(&plan.key);
        // The accuracy probe compares each precision's conv alone: nothing fused then.
        let fuse = ctx.probe.is_none();
        let epi = match (residual, fuse) {
            (Some(r), true) => Epilogue { bias: self.bias.as_ref(), residual: Some(&r.feats), act },
            _ => Epilogue { bias: self.bias.as_ref(), residual: None, act: conv_act },
        };
        let t = Instant::now();
        let y = backend.sparse_conv(&df, &plan.map, &x.feats, &self.weight, &epi)?;
        let seconds = t.elapsed().as_secs_f64();
        if ctx.stats.is_some() {
            ctx.record(self.stat(Some(plan.key), flops(), seconds, map_seconds, Precision::F32));
        }
        if let (Some(probe), Some(lowp)) = (&ctx.probe, &self.lowp) {
            let want = backend.download(&y)?;
            for p in [Precision::Bf16, Precision::Int8].into_iter().filter(|&p| lowp.has(p)) {
                let t = Instant::now();
                // The FP32 output above stops where this conv's own part does (before a
                // residual block's add and ReLU): the same here, or the two would differ by the
                // ReLU alone and the guard would turn every block's second conv away.
                let epi = Epilogue { bias: self.bias.as_ref(), residual: None, act: conv_act };
                let got = backend.sparse_conv_lowp(&plan.map, &x.feats, lowp, p, &epi)?;
                let lowp_seconds = t.elapsed().as_secs_f64();
                let got = backend.download(&got)?;
                let row = ProbeRow::new(&s.name, p, &got, &want, lowp_seconds, seconds);
                probe.lock().unwrap_or_else(|p| p.into_inner()).push(row);
            }
        }
        let y = x.on_plan(&plan, y)?;
        if fuse { Ok(y) } else { finish(y, then) }
    }

    fn stat(
        &self,
        key: Option<KmapKey>,
        flops: f64,
        seconds: f64,
        map_seconds: f64,
        precision: Precision,
    ) -> LayerStat {
        let s = &self.spec;
        LayerStat { name: s.name.clone(), key, cin: s.cin, cout: s.cout, flops, seconds, map_seconds, precision }
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
    pub fn forward(&self, x: &SparseTensor, ctx: &RunCtx) -> Result<SparseTensor> {
        let h = self.conv1.forward(x, ctx, Activation::Relu)?;
        let skip = self.proj.as_ref().map(|p| p.forward(x, ctx, Activation::None)).transpose()?;
        self.conv2.forward_residual(&h, ctx, Activation::Relu, Some(skip.as_ref().unwrap_or(x)))
    }
}

/// Channel concatenation of two tensors on the same coordinates (`[a | b]`).
pub fn concat(a: &SparseTensor, b: &SparseTensor) -> Result<SparseTensor> {
    if a.len() != b.len() {
        return Err(Error::device(a.device.name(), format!("concatenating {} voxels with {}", a.len(), b.len())));
    }
    a.with_feats(a.device.backend().concat_cols(&a.feats, &b.feats)?)
}
