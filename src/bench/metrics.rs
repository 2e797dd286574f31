//! Motion-metric throughput: how many scenarios per second `MotionMetrics` scores, beside the
//! time each baseline model takes on the same scenarios, measured in the same run — the
//! evaluation runner should be bounded by the model, not by the metrics.

use std::time::Instant;

use crate::eval::motion::{MetricsConfig, MotionMetrics};
use crate::eval::runner::EvalError;
use crate::models::motion::Baseline;

/// Per-scenario times in microseconds.
#[derive(Debug, Clone)]
pub struct MetricsBench {
    pub scenarios: usize,
    /// Reading the scenarios (v2 components or TFRecords), per scenario.
    pub load_us: f64,
    pub agents: usize,
    pub repeat: usize,
    /// Metrics (add + finish) per scenario.
    pub metrics_us: f64,
    /// Each baseline's prediction time per scenario.
    pub models_us: Vec<(&'static str, f64)>,
}

/// Reads the scenarios of `data` (timed), then times the metrics over `repeat` passes
/// (predictions of the constant-velocity baseline, made once beforehand) and every baseline's
/// predictions.
pub fn run(data: &std::path::Path, repeat: usize) -> Result<MetricsBench, EvalError> {
    let t = Instant::now();
    let scenarios = crate::eval::runner::load_scenarios(data, 20)?;
    let load_s = t.elapsed().as_secs_f64();
    let scenarios = &scenarios[..];
    if scenarios.is_empty() {
        return Err(EvalError::Other("no scenario to benchmark on".into()));
    }
    let cfg = MetricsConfig::challenge();
    let repeat = repeat.max(1);
    let mut models_us = Vec::new();
    let mut predictions = Vec::new();
    let horizon = cfg.horizon();
    for model in Baseline::ALL {
        let predictor = model.predictor();
        let t = Instant::now();
        let p = scenarios.iter().map(|s| predictor.predict(s, &horizon)).collect::<Result<Vec<_>, _>>()?;
        models_us.push((model.name(), t.elapsed().as_secs_f64() * 1e6 / scenarios.len() as f64));
        if predictions.is_empty() {
            predictions = p;
        }
    }
    // One warm-up pass, then the timed passes.
    let mut total = 0.0;
    for pass in 0..=repeat {
        let t = Instant::now();
        let mut m = MotionMetrics::new(cfg.clone())?;
        for (s, p) in scenarios.iter().zip(&predictions) {
            m.add(s, p)?;
        }
        std::hint::black_box(m.finish());
        if pass > 0 {
            total += t.elapsed().as_secs_f64();
        }
    }
    Ok(MetricsBench {
        scenarios: scenarios.len(),
        load_us: load_s * 1e6 / scenarios.len() as f64,
        agents: scenarios.iter().map(|s| s.tracks_to_predict.len()).sum(),
        repeat,
        metrics_us: total * 1e6 / (repeat * scenarios.len()) as f64,
        models_us,
    })
}

impl MetricsBench {
    pub fn report(&self) -> String {
        let mut s = format!(
            "{} scenarios ({} agents to predict), metrics timed over {} passes\n",
            self.scenarios, self.agents, self.repeat
        );
        s += &format!(
            "metrics (add + finish): {:>10.1} µs/scenario  = {:>9.0} scenarios/s (goal ≥ 1000)\n",
            self.metrics_us,
            1e6 / self.metrics_us
        );
        s += &format!("reading the scenarios:  {:>10.1} µs/scenario  (once, not repeated)\n", self.load_us);
        for (name, us) in &self.models_us {
            s += &format!(
                "model {:<16} {:>10.1} µs/scenario  (metrics = {:.2}× this model's time)\n",
                name,
                us,
                self.metrics_us / us
            );
        }
        s
    }
}
