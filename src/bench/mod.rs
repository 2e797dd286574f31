//! `scenetok bench`: benchmarks that measure real work against a baseline run in the same
//! invocation (these machines are noisy; only same-run ratios mean something).

pub mod image;
pub mod io;
pub mod metrics;
pub mod viz;
