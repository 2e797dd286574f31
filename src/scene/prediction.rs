//! What a motion predictor returns: per agent to predict, up to K modes, each a trajectory
//! sampled at the prediction steps with a confidence, and the horizon those steps cover.
//! Every predictor (the baselines, the learned transformer) produces these; the metrics,
//! the outputs (parquet, the official submission) and the viewer read them.

use serde::{Deserialize, Serialize};

/// When predictions are sampled and how many modes an agent may have. WOMD's challenge
/// ([`PredictionHorizon::WOMD`]): tracks at 10 Hz, 10 history samples before the current
/// one, 80 future samples (8 s), predictions at 2 Hz (16 points, at 0.5 … 8 s), 6 modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictionHorizon {
    /// Track samples per second.
    pub track_steps_per_second: usize,
    /// Prediction samples per second; divides `track_steps_per_second`.
    pub prediction_steps_per_second: usize,
    /// Track samples before the current one (the current step's index).
    pub history_samples: usize,
    /// Track samples after the current one.
    pub future_samples: usize,
    /// Most modes (joint predictions) per agent.
    pub max_modes: usize,
}

impl PredictionHorizon {
    /// The WOMD motion challenge's horizon.
    pub const WOMD: PredictionHorizon = PredictionHorizon {
        track_steps_per_second: 10,
        prediction_steps_per_second: 2,
        history_samples: 10,
        future_samples: 80,
        max_modes: 6,
    };

    /// Points per predicted trajectory (WOMD: 16).
    pub fn prediction_steps(&self) -> usize {
        self.future_samples * self.prediction_steps_per_second / self.track_steps_per_second.max(1)
    }

    /// The track step of prediction step `p` (WOMD: 5p + 15).
    pub fn track_step(&self, p: usize) -> usize {
        (p + 1) * (self.track_steps_per_second / self.prediction_steps_per_second.max(1)) + self.history_samples
    }

    /// Seconds after the current step of prediction step `p` (WOMD: 0.5 (p + 1)).
    pub fn seconds(&self, p: usize) -> f64 {
        (self.track_step(p) - self.history_samples) as f64 / self.track_steps_per_second.max(1) as f64
    }
}

/// One object's predicted positions at the prediction steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedTrajectory {
    pub object_id: i64,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// Per prediction step, the position's Gaussian covariance in the world frame, from
    /// models that predict one (the transformer); empty otherwise (the baselines). Neither
    /// the WOMD metrics nor the submission use it; the viewer draws it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covariance: Vec<PositionCovariance>,
}

/// A 2-D position covariance `[[xx, xy], [xy, yy]]` (m²).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PositionCovariance {
    pub xx: f64,
    pub xy: f64,
    pub yy: f64,
}

impl PositionCovariance {
    /// A bivariate normal given in a frame rotated by `heading` (rad) from the world, as
    /// standard deviations along that frame's axes and their correlation `rho`: `R Σ Rᵀ`.
    pub fn rotated(sigma_x: f64, sigma_y: f64, rho: f64, heading: f64) -> PositionCovariance {
        let (a, b, d) = (sigma_x * sigma_x, rho * sigma_x * sigma_y, sigma_y * sigma_y);
        let (sin, cos) = heading.sin_cos();
        PositionCovariance {
            xx: cos * cos * a - 2.0 * sin * cos * b + sin * sin * d,
            xy: sin * cos * (a - d) + (cos * cos - sin * sin) * b,
            yy: sin * sin * a + 2.0 * sin * cos * b + cos * cos * d,
        }
    }

    /// The ellipse `k` standard deviations out around `(cx, cy)`, as `points` world points
    /// (closed: the last equals the first). Axes from the eigen-decomposition; a degenerate
    /// or non-finite covariance gives a point.
    pub fn ellipse(&self, cx: f64, cy: f64, k: f64, points: usize) -> Vec<[f64; 2]> {
        let half_trace = 0.5 * (self.xx + self.yy);
        let gap = (0.25 * (self.xx - self.yy).powi(2) + self.xy * self.xy).sqrt();
        let (major, minor) = ((half_trace + gap).max(0.0).sqrt(), (half_trace - gap).max(0.0).sqrt());
        // The major axis' direction (the eigenvector of the larger eigenvalue).
        let angle = 0.5 * (2.0 * self.xy).atan2(self.xx - self.yy);
        let ok = major.is_finite() && minor.is_finite() && angle.is_finite();
        let (sin, cos) = angle.sin_cos();
        let n = points.max(2);
        (0..n)
            .map(|i| {
                if !ok {
                    return [cx, cy];
                }
                let t = std::f64::consts::TAU * (i % (n - 1)) as f64 / (n - 1) as f64;
                let (u, v) = (k * major * t.cos(), k * minor * t.sin());
                [cx + cos * u - sin * v, cy + sin * u + cos * v]
            })
            .collect()
    }
}

/// Trajectories of one or more objects with one confidence (WOMD's `JointTrajectories`);
/// a marginal prediction has one trajectory per joint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointPrediction {
    pub trajectories: Vec<PredictedTrajectory>,
    pub confidence: f64,
}

/// The modes predicted for one object (marginal) or one set of objects (joint).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MultimodalPrediction {
    pub joints: Vec<JointPrediction>,
}

/// Every prediction for one scenario.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScenarioPredictions {
    pub scenario_id: String,
    pub predictions: Vec<MultimodalPrediction>,
}

#[cfg(test)]
mod covariance_tests {
    use super::PositionCovariance;

    #[test]
    fn rotation_turns_the_axes_and_keeps_the_determinant() {
        // σ = (2, 1), uncorrelated, turned by 90°: the long axis lies along y.
        let c = PositionCovariance::rotated(2.0, 1.0, 0.0, std::f64::consts::FRAC_PI_2);
        assert!((c.xx - 1.0).abs() < 1e-12 && (c.yy - 4.0).abs() < 1e-12 && c.xy.abs() < 1e-12, "{c:?}");
        // Correlated, turned by 0.7 rad: det = σx²σy²(1 − ρ²) is invariant.
        let (sx, sy, rho) = (1.5, 0.5, 0.6);
        let c = PositionCovariance::rotated(sx, sy, rho, 0.7);
        let det = c.xx * c.yy - c.xy * c.xy;
        assert!((det - sx * sx * sy * sy * (1.0 - rho * rho)).abs() < 1e-12);
        assert!((c.xx + c.yy - (sx * sx + sy * sy)).abs() < 1e-12);
    }

    #[test]
    fn ellipse_points_lie_at_k_mahalanobis() {
        let c = PositionCovariance::rotated(3.0, 0.8, -0.4, 1.1);
        let det = c.xx * c.yy - c.xy * c.xy;
        let pts = c.ellipse(10.0, -5.0, 2.0, 33);
        assert_eq!(pts.len(), 33);
        assert_eq!(pts[0], pts[32]);
        for [x, y] in pts {
            let (dx, dy) = (x - 10.0, y + 5.0);
            let m2 = (c.yy * dx * dx - 2.0 * c.xy * dx * dy + c.xx * dy * dy) / det;
            assert!((m2.sqrt() - 2.0).abs() < 1e-9, "{}", m2.sqrt());
        }
        let bad = PositionCovariance { xx: f64::NAN, xy: 0.0, yy: 1.0 };
        assert!(bad.ellipse(1.0, 2.0, 1.0, 8).iter().all(|p| *p == [1.0, 2.0]));
    }
}
