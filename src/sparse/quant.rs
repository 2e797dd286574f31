//! Low-precision inference for the sparse networks (docs/quantization.md): calibration of
//! every conv's input on frames that are not scored, packing of BF16 / INT8 weights, and the
//! per-layer choice of precision with an accuracy guard.
//!
//! The procedure: (1) run the network in FP32 over the calibration frames, recording per
//! conv the per-channel `max|x|` and the minimum of its input; (2) pack the weights
//! (SmoothQuant: the input channels with outlier ranges are divided by
//! `s_j = max|x_j|^α / max|w_j|^(1−α)` and their weights multiplied by it, so the salient
//! channels keep their resolution; per-output-channel weight scales; one activation scale per
//! layer); (3) probe: run every conv in FP32 on a calibration frame and, on the same input,
//! in BF16 and INT8, timing each and measuring the relative error of its output; (4) per conv
//! keep the fastest precision whose error is within the guard.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::calib::ProbeRow;
use super::layers::{RunCtx, SparseConv3d};
use super::tensor::SparseTensor;
use crate::backend::{Device, Precision};
use crate::error::Result;

/// The accuracy guard: the largest relative output error a conv may take in each precision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    pub int8: f64,
    pub bf16: f64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard { int8: 0.05, bf16: 0.02 }
    }
}

/// What calibration and the probe decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantPlan {
    pub alpha: Option<f32>,
    pub guard: Guard,
    pub calibration_inputs: usize,
    /// The precision per conv (convs absent run in FP32).
    pub precisions: BTreeMap<String, Precision>,
    pub probe: Vec<ProbeRow>,
}

/// A network whose convs can be prepared for low precision.
pub trait QuantizableNet {
    /// Every conv, in forward order.
    fn convs_mut(&mut self) -> Vec<&mut SparseConv3d>;
    /// The forward pass whose convs calibration observes.
    fn run(&self, x: &SparseTensor, ctx: &RunCtx) -> Result<()>;
}

/// Calibrates `net` on `inputs` (FP32 runs), packs BF16 and INT8 weights into every conv
/// (SmoothQuant strength `alpha`), probes every precision on the first input and picks each
/// conv's fastest precision within `guard`, judged on the median time over `inputs`.
pub fn prepare<N: QuantizableNet>(
    net: &mut N,
    device: &Device,
    inputs: &[SparseTensor],
    alpha: Option<f32>,
    guard: Guard,
) -> Result<QuantPlan> {
    let ctx = RunCtx { calib: Some(Default::default()), ..RunCtx::default() };
    for x in inputs {
        net.run(&x.fresh()?, &ctx)?;
    }
    let calib = ctx.calib.map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).unwrap_or_default();
    for conv in net.convs_mut() {
        let c = calib.layers.get(conv.name());
        conv.prepare_lowp(device, c, alpha)?;
    }
    // Probe twice per input: the first pass of each warms the kernel maps and sorted orders.
    let mut probe: Vec<ProbeRow> = Vec::new();
    for x in inputs {
        let x = x.fresh()?;
        for round in 0..2 {
            let ctx = RunCtx { probe: Some(Default::default()), ..RunCtx::default() };
            net.run(&x, &ctx)?;
            if round == 1 {
                probe.extend(ctx.probe.map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).unwrap_or_default());
            }
        }
    }
    Ok(QuantPlan { alpha, guard, calibration_inputs: inputs.len(), precisions: choose(&probe, guard), probe })
}

/// Per conv, the fastest precision (FP32 included) whose worst error over the probes is
/// within the guard; times are medians over the probes.
pub fn choose(probe: &[ProbeRow], guard: Guard) -> BTreeMap<String, Precision> {
    /// Per conv and precision: the worst error, the times, FP32's times.
    #[derive(Default)]
    struct Seen {
        err: f64,
        secs: Vec<f64>,
        fp32: Vec<f64>,
    }
    let mut by: BTreeMap<&str, BTreeMap<Precision, Seen>> = BTreeMap::new();
    for r in probe {
        let e = by.entry(&r.conv).or_default().entry(r.precision).or_default();
        e.err = e.err.max(r.rel_err);
        e.secs.push(r.seconds);
        e.fp32.push(r.fp32_seconds);
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::INFINITY)
    };
    by.into_iter()
        .map(|(conv, per)| {
            // FP32's time: the median of every probe's FP32 run of this conv.
            let fp32: Vec<f64> = per.values().flat_map(|s| s.fp32.iter().copied()).collect();
            let mut best = (Precision::F32, median(&fp32));
            for (p, Seen { err, secs, .. }) in &per {
                let limit = match p {
                    Precision::Int8 => guard.int8,
                    Precision::Bf16 => guard.bf16,
                    Precision::F32 => f64::INFINITY,
                };
                let t = median(secs);
                if *err <= limit && t < best.1 {
                    best = (*p, t);
                }
            }
            (conv.to_string(), best.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(conv: &str, p: Precision, err: f64, s: f64, f: f64) -> ProbeRow {
        ProbeRow { conv: conv.into(), precision: p, rel_err: err, seconds: s, fp32_seconds: f }
    }

    /// The fastest precision within the guard wins; an inaccurate one is never taken, and
    /// FP32 stays where nothing beats it.
    #[test]
    fn the_guard_keeps_inaccurate_layers_out() {
        let probe = [
            row("a", Precision::Int8, 0.01, 1.0, 4.0),
            row("a", Precision::Bf16, 0.001, 2.0, 4.0),
            row("b", Precision::Int8, 0.2, 1.0, 4.0),
            row("b", Precision::Bf16, 0.001, 2.0, 4.0),
            row("c", Precision::Int8, 0.01, 5.0, 4.0),
            row("c", Precision::Bf16, 0.001, 6.0, 4.0),
        ];
        let p = choose(&probe, Guard::default());
        assert_eq!(p["a"], Precision::Int8);
        assert_eq!(p["b"], Precision::Bf16);
        assert_eq!(p["c"], Precision::F32);
    }
}
