//! Bootstrap intervals over scenarios: the WOMD metrics recomputed on scenario sets drawn
//! with replacement (percentile intervals), and for two models on the same draws the
//! interval of their difference (a paired comparison: both see the same scenarios, so the
//! scenario-to-scenario spread that both share cancels).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::motion::{Breakdown, MetricsConfig, MetricsError, MotionMetrics};
use crate::scene::Scenario;
use crate::scene::prediction::ScenarioPredictions;

/// An estimate on all scenarios and its 95% percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// The metric names in [`Breakdown`] order.
pub const METRICS: [&str; 6] = ["minADE", "minFDE", "miss rate", "overlap rate", "mAP", "soft mAP"];

/// One bootstrap draw: the breakdowns of A and of B.
type Draw = (Vec<Breakdown>, Vec<Breakdown>);

fn values(b: &Breakdown) -> [f64; 6] {
    [b.min_ade, b.min_fde, b.miss_rate, b.overlap_rate, b.map, b.soft_map]
}

/// One breakdown (object type × step) of a paired comparison: per metric A, B and B − A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedBreakdown {
    pub object_type: String,
    pub measurement_step: usize,
    pub a: Vec<Interval>,
    pub b: Vec<Interval>,
    pub b_minus_a: Vec<Interval>,
}

fn metrics_of(
    cfg: &MetricsConfig,
    scenarios: &[Scenario],
    predictions: &[ScenarioPredictions],
    draw: &[usize],
) -> Result<Vec<Breakdown>, MetricsError> {
    let mut m = MotionMetrics::new(cfg.clone())?;
    for &i in draw {
        m.add(&scenarios[i], &predictions[i])?;
    }
    Ok(m.finish())
}

/// The 2.5th and 97.5th percentiles (nearest rank).
fn interval(estimate: f64, mut draws: Vec<f64>) -> Interval {
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((q * draws.len() as f64).ceil() as usize).clamp(1, draws.len()) - 1];
    if draws.is_empty() {
        return Interval { estimate, low: estimate, high: estimate };
    }
    Interval { estimate, low: at(0.025), high: at(0.975) }
}

/// Models A and B on the same scenarios (`a[i]`, `b[i]` predict `scenarios[i]`): per
/// breakdown and metric, each model's value and B − A with 95% intervals from `resamples`
/// draws of the scenarios (seeded).
pub fn paired(
    cfg: &MetricsConfig,
    scenarios: &[Scenario],
    a: &[ScenarioPredictions],
    b: &[ScenarioPredictions],
    resamples: usize,
    seed: u64,
) -> Result<Vec<PairedBreakdown>, MetricsError> {
    let n = scenarios.len();
    let all: Vec<usize> = (0..n).collect();
    let (full_a, full_b) = (metrics_of(cfg, scenarios, a, &all)?, metrics_of(cfg, scenarios, b, &all)?);
    let draws: Vec<Draw> = (0..resamples)
        .into_par_iter()
        .map(|r| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let draw: Vec<usize> = (0..n).map(|_| rng.random_range(0..n.max(1))).collect();
            Ok((metrics_of(cfg, scenarios, a, &draw)?, metrics_of(cfg, scenarios, b, &draw)?))
        })
        .collect::<Result<_, MetricsError>>()?;
    let mut out = Vec::with_capacity(full_a.len());
    for (k, (fa, fb)) in full_a.iter().zip(&full_b).enumerate() {
        let (va, vb) = (values(fa), values(fb));
        let per = |f: &dyn Fn(&Draw) -> f64| draws.iter().map(f).collect::<Vec<f64>>();
        let mut ia = Vec::new();
        let mut ib = Vec::new();
        let mut id = Vec::new();
        for m in 0..METRICS.len() {
            ia.push(interval(va[m], per(&|d| values(&d.0[k])[m])));
            ib.push(interval(vb[m], per(&|d| values(&d.1[k])[m])));
            id.push(interval(vb[m] - va[m], per(&|d| values(&d.1[k])[m] - values(&d.0[k])[m])));
        }
        out.push(PairedBreakdown {
            object_type: fa.object_type.clone(),
            measurement_step: fa.measurement_step,
            a: ia,
            b: ib,
            b_minus_a: id,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interval() {
        let i = interval(5.0, (1..=1000).map(f64::from).collect());
        assert_eq!((i.low, i.high), (25.0, 975.0));
        let one = interval(1.0, vec![2.0]);
        assert_eq!((one.low, one.high), (2.0, 2.0));
    }
}
