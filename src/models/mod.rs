//! Models. For now: the motion baselines.

pub mod baselines;
