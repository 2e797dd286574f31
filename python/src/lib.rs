//! The extension module `scenetok._scenetok` behind the Python package `scenetok`
//! (python/scenetok/): each submodule's classes and functions, re-exported there with their
//! docs and types (python/scenetok/*.pyi).

// Library errors carry their full location (see scenetok's src/lib.rs); they are the cold path.
#![allow(clippy::result_large_err)]

mod arrays;
mod errors;
mod metrics;
mod models;
mod v2;
mod womd;

use pyo3::prelude::*;

#[pymodule]
fn _scenetok(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // A third-party decoder's panic on a bad file is reported as an error naming the file,
    // as the command does, not printed over the user's session.
    scenetok::error::quiet_guarded_panics();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<v2::PyDataset>()?;
    m.add_class::<v2::PySegment>()?;
    m.add_class::<v2::PyFrame>()?;
    m.add_function(wrap_pyfunction!(v2::open, m)?)?;
    m.add_class::<womd::PyScenario>()?;
    m.add_class::<womd::ScenarioIterator>()?;
    m.add_function(wrap_pyfunction!(womd::read_scenarios, m)?)?;
    m.add_function(wrap_pyfunction!(womd::iter_scenarios, m)?)?;
    m.add("STATE_FIELDS", womd::STATE_FIELDS.to_vec())?;
    m.add_class::<metrics::PyPredictions>()?;
    m.add_class::<metrics::PyMotionMetrics>()?;
    m.add_function(wrap_pyfunction!(metrics::write_submission_file, m)?)?;
    m.add_class::<models::PyLidarSegmenter>()?;
    m.add_class::<models::PyMotionModel>()?;
    Ok(())
}
