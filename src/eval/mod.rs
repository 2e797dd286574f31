//! Metrics and evaluation. For now: the WOMD trajectory-type classification.

pub mod trajectory_type;
