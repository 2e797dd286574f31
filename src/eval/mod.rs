//! Metrics and evaluation. For now: the WOMD trajectory-type classification.

pub mod motion;
pub mod outputs;
pub mod runner;
pub mod trajectory_type;
