//! `scenetok.metrics`: the WOMD motion metrics exactly as Waymo's op computes them, on
//! predictions given as arrays, and the official `MotionChallengeSubmission` protobuf.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::ndarray::{Ix1, Ix2, Ix4};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray4, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use scenetok::eval::motion::{
    JointPrediction, MetricsConfig, MotionMetrics, MultimodalPrediction, PredictedTrajectory, ScenarioPredictions,
};
use scenetok::eval::outputs::{to_submission, write_submission};
use scenetok::scene::AgentType;

use crate::arrays::array_of;
use crate::errors::{OrRaise, invalid};
use crate::womd::PyScenario;

/// Marginal predictions for one scenario: per object up to K modes of T points and a score
/// each. A mode whose score is NaN is absent (how arrays hold objects with fewer modes).
#[pyclass(module = "scenetok.metrics", name = "Predictions", frozen, from_py_object)]
#[derive(Clone)]
pub struct PyPredictions {
    pub inner: Arc<ScenarioPredictions>,
}

#[pymethods]
impl PyPredictions {
    /// `object_ids [N]` int64, `trajectories [N, K, T, 2]` (x, y in the scenario's world
    /// frame; challenge: T = 16 points at 2 Hz, 0.5 … 8 s), `scores [N, K]`.
    #[new]
    fn new(
        scenario_id: String,
        object_ids: &Bound<'_, PyAny>,
        trajectories: &Bound<'_, PyAny>,
        scores: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let object_ids = array_of::<i64, Ix1>(object_ids, "int64", "object_ids")?;
        let trajectories = array_of::<f64, Ix4>(trajectories, "float64", "trajectories")?;
        let scores = array_of::<f64, Ix2>(scores, "float64", "scores")?;
        let ids = object_ids.as_array();
        let traj = trajectories.as_array();
        let sc = scores.as_array();
        let (n, k, t, two) = traj.dim();
        if two != 2 {
            return Err(invalid(format!("trajectories: expected [N, K, T, 2], found last dimension {two}")));
        }
        if ids.len() != n || sc.dim() != (n, k) {
            return Err(invalid(format!(
                "scenario {scenario_id}: object_ids {:?}, trajectories {:?} and scores {:?} disagree: expected [N], [N, K, T, 2], [N, K]",
                ids.shape(),
                traj.shape(),
                sc.shape()
            )));
        }
        let predictions = (0..n)
            .map(|i| MultimodalPrediction {
                joints: (0..k)
                    .filter(|&m| !sc[[i, m]].is_nan())
                    .map(|m| JointPrediction {
                        trajectories: vec![PredictedTrajectory {
                            object_id: ids[i],
                            x: (0..t).map(|s| traj[[i, m, s, 0]]).collect(),
                            y: (0..t).map(|s| traj[[i, m, s, 1]]).collect(),
                            covariance: Vec::new(),
                        }],
                        confidence: sc[[i, m]],
                    })
                    .collect(),
            })
            .collect();
        Ok(PyPredictions { inner: Arc::new(ScenarioPredictions { scenario_id, predictions }) })
    }

    #[getter]
    fn scenario_id(&self) -> &str {
        &self.inner.scenario_id
    }

    /// `[N]` int64.
    #[getter]
    fn object_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner
            .predictions
            .iter()
            .map(|m| m.joints.first().and_then(|j| j.trajectories.first()).map_or(-1, |t| t.object_id))
            .collect::<Vec<_>>()
            .into_pyarray(py)
    }

    /// `[N, K, T, 2]` float64; NaN where an object has fewer than K modes.
    #[getter]
    fn trajectories<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray4<f64>>> {
        let (n, k, t) = self.dims();
        let mut out = vec![f64::NAN; n * k * t * 2];
        for (i, m) in self.inner.predictions.iter().enumerate() {
            for (j, joint) in m.joints.iter().enumerate() {
                let Some(tr) = joint.trajectories.first() else { continue };
                for s in 0..t.min(tr.x.len()) {
                    let at = ((i * k + j) * t + s) * 2;
                    out[at] = tr.x[s];
                    out[at + 1] = tr.y[s];
                }
            }
        }
        out.into_pyarray(py).reshape([n, k, t, 2])
    }

    /// `[N, K]` float64; NaN where an object has fewer than K modes.
    #[getter]
    fn scores<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (n, k, _) = self.dims();
        let mut out = vec![f64::NAN; n * k];
        for (i, m) in self.inner.predictions.iter().enumerate() {
            for (j, joint) in m.joints.iter().enumerate() {
                out[i * k + j] = joint.confidence;
            }
        }
        out.into_pyarray(py).reshape([n, k])
    }

    fn __len__(&self) -> usize {
        self.inner.predictions.len()
    }

    fn __repr__(&self) -> String {
        let (n, k, t) = self.dims();
        format!("Predictions({:?}, {n} objects, up to {k} modes of {t} points)", self.inner.scenario_id)
    }
}

impl PyPredictions {
    /// (objects, most modes, points per trajectory).
    fn dims(&self) -> (usize, usize, usize) {
        let p = &self.inner.predictions;
        let k = p.iter().map(|m| m.joints.len()).max().unwrap_or(0);
        let t = p
            .iter()
            .flat_map(|m| &m.joints)
            .flat_map(|j| j.trajectories.first())
            .map(|tr| tr.x.len())
            .max()
            .unwrap_or(0);
        (p.len(), k, t)
    }
}

fn config_named(name: &str) -> PyResult<MetricsConfig> {
    match name {
        "challenge" => Ok(MetricsConfig::challenge()),
        other => Err(invalid(format!("unknown metrics config {other:?}; expected \"challenge\""))),
    }
}

/// The WOMD motion metrics: add scenarios with their predictions, then `result()`.
#[pyclass(module = "scenetok.metrics", name = "MotionMetrics", frozen)]
pub struct PyMotionMetrics {
    metrics: Mutex<MotionMetrics>,
    scenarios: Mutex<usize>,
}

#[pymethods]
impl PyMotionMetrics {
    /// `config`: `"challenge"` (Waymo's `GetChallengeConfig()`: 8 s at 2 Hz, measured at
    /// 3, 5 and 8 s, at most 6 modes).
    #[new]
    #[pyo3(signature = (config="challenge"))]
    fn new(config: &str) -> PyResult<Self> {
        let m = MotionMetrics::new(config_named(config)?).map_err(|e| invalid(e.to_string()))?;
        Ok(PyMotionMetrics { metrics: Mutex::new(m), scenarios: Mutex::new(0) })
    }

    /// Validates the predictions against the scenario as Waymo's op does (one prediction per
    /// `tracks_to_predict` object, the right number of points, finite values) and adds them.
    fn add(&self, py: Python<'_>, scenario: &PyScenario, predictions: &PyPredictions) -> PyResult<()> {
        let (s, p) = (scenario.inner.clone(), predictions.inner.clone());
        py.detach(|| {
            let mut m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
            m.add(&s, &p)
        })
        .map_err(|e| invalid(e.to_string()))?;
        *self.scenarios.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(())
    }

    /// Scenarios added so far.
    #[getter]
    fn num_scenarios(&self) -> usize {
        *self.scenarios.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The nine breakdowns, named as Waymo's op names them (`TYPE_VEHICLE_5`, …,
    /// `TYPE_CYCLIST_15`: object type and measurement step), each a dict of `min_ade`,
    /// `min_fde`, `miss_rate`, `overlap_rate`, `mean_average_precision` and
    /// `soft_mean_average_precision`. As in the op, a breakdown that no predicted object's type
    /// reached is -1 throughout; one whose objects gave no sample to a metric (no valid ground
    /// truth at the step) has 0 for it.
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let metrics = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let out = PyDict::new(py);
        for b in metrics.finish() {
            let has_stats =
                AgentType::from_name(&b.object_type).is_some_and(|t| metrics.has_stats(t, b.measurement_step));
            // As the op: -1 for every metric of a breakdown no object of its type reached.
            let value = |v: f64| if has_stats { v } else { -1.0 };
            let d = PyDict::new(py);
            d.set_item("min_ade", value(b.min_ade))?;
            d.set_item("min_fde", value(b.min_fde))?;
            d.set_item("miss_rate", value(b.miss_rate))?;
            d.set_item("overlap_rate", value(b.overlap_rate))?;
            d.set_item("mean_average_precision", value(b.map))?;
            d.set_item("soft_mean_average_precision", value(b.soft_map))?;
            out.set_item(format!("{}_{}", b.object_type, b.measurement_step), d)?;
        }
        Ok(out)
    }
}

/// Writes the official `MotionChallengeSubmission` (binary protobuf, `MOTION_PREDICTION`) of
/// these predictions, with the submission's fields a leaderboard asks for.
#[pyfunction]
#[pyo3(signature = (path, predictions, *, method_name, account_name=None, authors=Vec::new(), affiliation=None, description=None, method_link=None))]
#[allow(clippy::too_many_arguments)]
pub fn write_submission_file(
    py: Python<'_>,
    path: PathBuf,
    predictions: Vec<PyPredictions>,
    method_name: String,
    account_name: Option<String>,
    authors: Vec<String>,
    affiliation: Option<String>,
    description: Option<String>,
    method_link: Option<String>,
) -> PyResult<()> {
    let all: Vec<ScenarioPredictions> = predictions.iter().map(|p| (*p.inner).clone()).collect();
    py.detach(|| {
        let mut sub = to_submission(&all, &method_name)?;
        sub.account_name = account_name;
        sub.authors = authors;
        sub.affiliation = affiliation;
        sub.description = description;
        sub.method_link = method_link;
        write_submission(&path, &sub)
    })
    .or_raise()
}
