//! `scenetok bench`: benchmarks that measure real work against a baseline run in the same
//! invocation (these machines are noisy; only same-run ratios mean something).

pub mod gemm;
pub mod image;
pub mod io;
pub mod metrics;
pub mod motion;
pub mod refine;
pub mod sparse_cases;
pub mod sparsevit;
pub mod tokens;
#[cfg(feature = "viz")]
pub mod viz;

/// Runs a Python baseline script (`command` already holds the interpreter, the script and its
/// arguments) and reads the one JSON object it prints; a failure quotes the end of its
/// traceback.
pub(crate) fn run_python_json<T: serde::de::DeserializeOwned>(
    mut command: std::process::Command,
    python: &std::path::Path,
    script: &std::path::Path,
) -> crate::error::Result<T> {
    use crate::error::{Error, Location};
    let at = Location::file(script);
    let out = command.output().map_err(|e| Error::io(at.clone().detail(format!("running {}", python.display())), e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The end of a Python traceback says what failed.
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Error::invalid(at, "the baseline script to succeed", tail.join("\n")));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| Error::invalid(at, "one JSON object on stdout", e.to_string()))
}

/// The median of `v` (the upper one for an even count); 0 for none.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
