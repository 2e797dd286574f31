//! Per-stage timing, built into the pipeline: samples in milliseconds per named stage and
//! their p50/p90/p99.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Summary of one stage's samples. Percentiles are nearest-rank (the smallest sample with at
/// least p% of the samples at or below it).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LatencyStats {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencyStats {
    /// Stats of samples in milliseconds; `None` when there are none.
    pub fn from_ms(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p / 100.0 * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Some(LatencyStats {
            count: s.len(),
            mean_ms: s.iter().sum::<f64>() / s.len() as f64,
            p50_ms: rank(50.0),
            p90_ms: rank(90.0),
            p99_ms: rank(99.0),
            max_ms: s[s.len() - 1],
        })
    }
}

/// Samples per named stage, in the order stages were first seen.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    order: Vec<String>,
    samples: BTreeMap<String, Vec<f64>>,
}

impl StageTimes {
    /// Records one sample of `stage`.
    pub fn record(&mut self, stage: &str, d: Duration) {
        if !self.samples.contains_key(stage) {
            self.order.push(stage.to_string());
        }
        self.samples.entry(stage.to_string()).or_default().push(d.as_secs_f64() * 1e3);
    }

    /// Runs `f`, recording its wall time under `stage`.
    pub fn time<T>(&mut self, stage: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.record(stage, t.elapsed());
        out
    }

    /// The raw samples of a stage, in milliseconds.
    pub fn samples(&self, stage: &str) -> &[f64] {
        self.samples.get(stage).map_or(&[], Vec::as_slice)
    }

    /// The stages in first-seen order.
    pub fn stages(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Stats of every stage, in first-seen order.
    pub fn stats(&self) -> Vec<(String, LatencyStats)> {
        self.order.iter().filter_map(|s| LatencyStats::from_ms(self.samples(s)).map(|l| (s.clone(), l))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = LatencyStats::from_ms(&samples).unwrap();
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(s.mean_ms, 50.5);
        let one = LatencyStats::from_ms(&[3.0]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms), (3.0, 3.0));
        assert!(LatencyStats::from_ms(&[]).is_none());
    }

    #[test]
    fn stages_keep_their_order() {
        let mut t = StageTimes::default();
        t.record("model", Duration::from_millis(2));
        t.record("metrics", Duration::from_millis(1));
        t.record("model", Duration::from_millis(4));
        let v = t.time("io", || 7);
        assert_eq!(v, 7);
        assert_eq!(t.stages().collect::<Vec<_>>(), ["model", "metrics", "io"]);
        assert_eq!(t.samples("model"), &[2.0, 4.0]);
        assert_eq!(t.stats()[0].1.p50_ms, 2.0);
    }
}
