//! A trained model's learning curve, as `tools/train/train_motion.py` writes it into the
//! weights' metadata (`curve`): the loss averaged over windows of steps and the validation
//! minADE / minFDE where it was evaluated. The evaluation report draws it beside the metrics,
//! so a report says how the weights it evaluates were trained.

use serde::{Deserialize, Serialize};

/// One validation pass during training (6 modes, 8 s, every validation sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    pub step: u64,
    pub min_ade: f64,
    pub min_fde: f64,
}

/// The loss per window of steps (`loss[i]` is the mean over the steps ending at `steps[i]`)
/// and the validation passes, with the command that trained the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingCurve {
    pub command: String,
    pub steps: Vec<u64>,
    pub loss: Vec<f64>,
    #[serde(default)]
    pub validation: Vec<ValidationPoint>,
}

impl TrainingCurve {
    /// Parses the metadata text; the steps must rise and every value be finite.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: TrainingCurve = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if c.steps.len() != c.loss.len() {
            return Err(format!("{} steps but {} loss values", c.steps.len(), c.loss.len()));
        }
        let validation_steps: Vec<u64> = c.validation.iter().map(|v| v.step).collect();
        if !rising(&c.steps) || !rising(&validation_steps) {
            return Err("steps that do not rise".into());
        }
        let finite =
            c.loss.iter().chain(c.validation.iter().flat_map(|v| [&v.min_ade, &v.min_fde])).all(|v| v.is_finite());
        if !finite {
            return Err("a loss or validation value that is not finite".into());
        }
        Ok(c)
    }
}

fn rising(steps: &[u64]) -> bool {
    steps.windows(2).all(|w| w[0] < w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_trainer_writes_and_refuses_broken_curves() {
        let ok = r#"{"command": "train_motion.py --steps 100", "steps": [50, 100], "loss": [5.5, 3.25],
                    "validation": [{"step": 100, "min_ade": 2.5, "min_fde": 6.0}]}"#;
        let c = TrainingCurve::parse(ok).unwrap();
        assert_eq!((c.steps.len(), c.validation[0].min_fde), (2, 6.0));
        for bad in [
            r#"{"command": "", "steps": [50, 100], "loss": [5.5]}"#,
            r#"{"command": "", "steps": [100, 50], "loss": [5.5, 3.0]}"#,
            r#"{"command": "", "steps": [50], "loss": [5.5], "validation": [{"step": 1, "min_ade": NaN, "min_fde": 1}]}"#,
            r#"{"steps": [50], "loss": [5.5]}"#,
        ] {
            assert!(TrainingCurve::parse(bad).is_err(), "{bad}");
        }
    }
}
