//! What a calibration pass records (per conv, per input) and what the accuracy probe
//! measures; `quant` turns them into low-precision weights and a per-conv choice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::Precision;

/// One conv's input ranges over the calibration frames.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerCalib {
    pub chan_absmax: Vec<f32>,
    pub min: f32,
    /// Inputs observed.
    pub batches: usize,
}

/// Every conv's input ranges, by conv name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Calibration {
    pub layers: BTreeMap<String, LayerCalib>,
}

impl Calibration {
    /// Adds one input `[N × cin]` of conv `name` (non-finite values are skipped).
    pub fn observe(&mut self, name: &str, x: &[f32], cin: usize) {
        let e = self.layers.entry(name.to_string()).or_insert_with(|| LayerCalib {
            chan_absmax: vec![0.0; cin],
            min: f32::INFINITY,
            batches: 0,
        });
        if e.chan_absmax.len() != cin {
            return;
        }
        for row in x.chunks_exact(cin.max(1)) {
            for (m, v) in e.chan_absmax.iter_mut().zip(row) {
                if v.is_finite() {
                    *m = m.max(v.abs());
                    e.min = e.min.min(*v);
                }
            }
        }
        e.batches += 1;
    }
}

/// One conv, one precision, on one FP32 input: its time against FP32's and its error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRow {
    pub conv: String,
    pub precision: Precision,
    /// `‖y − y_fp32‖ / ‖y_fp32‖`.
    pub rel_err: f64,
    pub seconds: f64,
    pub fp32_seconds: f64,
}

impl ProbeRow {
    pub fn new(conv: &str, precision: Precision, got: &[f32], want: &[f32], seconds: f64, fp32_seconds: f64) -> Self {
        let num: f64 = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
        let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
        let rel_err = if den > 0.0 { (num / den).sqrt() } else { num.sqrt() };
        ProbeRow { conv: conv.to_string(), precision, rel_err, seconds, fp32_seconds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_keeps_per_channel_ranges() {
        let mut c = Calibration::default();
        c.observe("x", &[1.0, -2.0, f32::NAN, 0.5], 2);
        c.observe("x", &[-3.0, 0.0], 2);
        let l = &c.layers["x"];
        assert_eq!(l.chan_absmax, vec![3.0, 2.0]);
        assert_eq!(l.min, -3.0);
        assert_eq!(l.batches, 2);
    }
}
