//! `scenetok.models`: the trained models (and the motion baselines) as callables on arrays,
//! on the CPU.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::ndarray::{Ix1, Ix2};
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use scenetok::backend::Device;
use scenetok::eval::motion::MetricsConfig;
use scenetok::models::lidar_seg::{FEATURES, LidarPoints, LidarSegModel};
use scenetok::models::motion::{MotionModel, MotionPredictor};
use scenetok::sparse::layers::RunCtx;

use crate::arrays::array_of;
use crate::errors::{OrRaise, invalid};
use crate::metrics::PyPredictions;
use crate::womd::PyScenario;

/// The LiDAR encoder as a 23-class segmenter (MinkUNet on 0.1 m voxels).
#[pyclass(module = "scenetok.models", name = "LidarSegmenter", frozen)]
pub struct PyLidarSegmenter {
    model: LidarSegModel,
    weights: PathBuf,
}

#[pymethods]
impl PyLidarSegmenter {
    #[new]
    fn new(py: Python<'_>, weights: PathBuf) -> PyResult<Self> {
        let model = py.detach(|| LidarSegModel::load(&weights, &Device::cpu())).or_raise()?;
        Ok(PyLidarSegmenter { model, weights })
    }

    /// The class (`Segmentation.Type`, 1-22; 0 where a point has no voxel) of every point:
    /// `xyz [N, 3]` float32 in metres (vehicle frame), `intensity [N]` float32.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        xyz: &Bound<'py, PyAny>,
        intensity: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let xyz = array_of::<f32, Ix2>(xyz, "float32", "xyz")?;
        let intensity = array_of::<f32, Ix1>(intensity, "float32", "intensity")?;
        let (xyz, intensity) = (xyz.as_array(), intensity.as_array());
        let n = xyz.nrows();
        if xyz.ncols() != 3 || intensity.len() != n {
            return Err(invalid(format!(
                "expected xyz [N, 3] and intensity [N], found {:?} and {:?}",
                xyz.shape(),
                intensity.shape()
            )));
        }
        let mut pts =
            LidarPoints { xyz: Vec::with_capacity(n), feats: Vec::with_capacity(n * FEATURES), labels: vec![-1; n] };
        for (i, row) in xyz.rows().into_iter().enumerate() {
            let p = [row[0], row[1], row[2]];
            if !p.iter().chain([&intensity[i]]).all(|v| v.is_finite()) {
                return Err(invalid(format!("point {i}: non-finite coordinate or intensity {:?}", (p, intensity[i]))));
            }
            pts.xyz.push(p);
            pts.feats.extend_from_slice(&[p[0], p[1], p[2], intensity[i]]);
        }
        let seg = py.detach(|| self.model.segment(&pts, &RunCtx::default())).or_raise()?;
        Ok(seg.classes.into_pyarray(py))
    }

    fn __repr__(&self) -> String {
        format!("LidarSegmenter(weights={:?}, voxel_size={})", self.weights, self.model.voxel_size)
    }
}

/// A motion model: a baseline or the trained transformer.
#[pyclass(module = "scenetok.models", name = "MotionModel", frozen)]
pub struct PyMotionModel {
    predictor: Arc<dyn MotionPredictor>,
}

#[pymethods]
impl PyMotionModel {
    /// `name`: `transformer` (with `weights`), `constant-velocity`, `ctra` or `lane-follower`.
    #[new]
    #[pyo3(signature = (name, weights=None))]
    fn new(py: Python<'_>, name: &str, weights: Option<PathBuf>) -> PyResult<Self> {
        let model = match name {
            "transformer" => MotionModel::Transformer,
            "constant-velocity" => MotionModel::ConstantVelocity,
            "ctra" => MotionModel::Ctra,
            "lane-follower" => MotionModel::LaneFollower,
            other => {
                return Err(invalid(format!(
                    "unknown motion model {other:?}; expected transformer, constant-velocity, ctra or lane-follower"
                )));
            }
        };
        if model == MotionModel::Transformer && weights.is_none() {
            return Err(invalid("the transformer needs its weights file"));
        }
        let weights = weights.unwrap_or_default();
        let predictor = py.detach(|| model.load(&weights, &Device::cpu())).or_raise()?;
        Ok(PyMotionModel { predictor: Arc::from(predictor) })
    }

    #[getter]
    fn name(&self) -> &str {
        self.predictor.name()
    }

    /// Predictions for the scenario's `tracks_to_predict` over the challenge horizon (16
    /// points at 2 Hz, at most 6 modes).
    fn predict(&self, py: Python<'_>, scenario: &PyScenario) -> PyResult<PyPredictions> {
        let s = scenario.inner.clone();
        let horizon = MetricsConfig::challenge().horizon();
        let p = py.detach(|| self.predictor.predict(&s, &horizon)).or_raise()?;
        Ok(PyPredictions { inner: Arc::new(p) })
    }

    fn __repr__(&self) -> String {
        format!("MotionModel({:?})", self.predictor.name())
    }
}
