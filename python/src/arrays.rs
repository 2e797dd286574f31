//! Arrays in from Python: anything NumPy can turn into an array of the wanted type without
//! losing its kind (ints for float arrays are fine, floats for id arrays are not), checked for
//! its number of dimensions, with errors that name the argument.

use numpy::ndarray::Dimension;
use numpy::{Element, PyReadonlyArray};
use pyo3::prelude::*;

use crate::errors::invalid;

/// `obj` as a contiguous array of `dtype` (a NumPy dtype name) with `D`'s dimensions.
pub fn array_of<'py, T: Element, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    dtype: &str,
    what: &str,
) -> PyResult<PyReadonlyArray<'py, T, D>> {
    let np = obj.py().import("numpy")?;
    let kwargs = pyo3::types::PyDict::new(obj.py());
    kwargs.set_item("casting", "same_kind")?;
    let arr = np
        .call_method1("asarray", (obj,))
        .and_then(|a| a.call_method("astype", (dtype,), Some(&kwargs)))
        .and_then(|a| np.call_method1("ascontiguousarray", (a,)))
        .map_err(|e| invalid(format!("{what}: expected an array of {dtype}: {e}")))?;
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    arr.extract::<PyReadonlyArray<'py, T, D>>().map_err(|_| {
        let dims = D::NDIM.map_or("any number of".to_string(), |n| n.to_string());
        invalid(format!("{what}: expected {dims} dimensions, found shape {shape:?}"))
    })
}
