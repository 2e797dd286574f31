//! `scenetok.womd`: WOMD `Scenario` TFRecords (one file, or a folder of a sharded release)
//! as scenarios with their tracks and map as NumPy arrays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use numpy::ndarray::Ix1;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use scenetok::error::{Error, Location};
use scenetok::io::detect::{InputKind, detect, tfrecord_files};
use scenetok::io::womd::{ScenarioReader, open_scenarios};
use scenetok::scene::{DifficultyLevel, PredictionTarget, Scenario};

use crate::arrays::array_of;
use crate::errors::{OrRaise, invalid};

/// Per track and step: x, y, z (m, world frame), length, width, height (m), heading (rad),
/// velocity_x, velocity_y (m/s): the columns of [`PyScenario::states`].
pub const STATE_FIELDS: [&str; 9] = ["x", "y", "z", "length", "width", "height", "heading", "velocity_x", "velocity_y"];

/// One WOMD scenario: 9.1 s of agent tracks at 10 Hz and the map.
#[pyclass(module = "scenetok.womd", name = "Scenario", frozen, skip_from_py_object)]
#[derive(Clone)]
pub struct PyScenario {
    pub inner: Arc<Scenario>,
}

#[pymethods]
impl PyScenario {
    #[getter]
    fn scenario_id(&self) -> &str {
        &self.inner.id
    }

    /// `[T]` float64.
    #[getter]
    fn timestamps_seconds<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.timestamps_seconds.clone().into_pyarray(py)
    }

    #[getter]
    fn current_time_index(&self) -> usize {
        self.inner.current_time_index
    }

    /// The track index of the autonomous vehicle, when the scenario names one.
    #[getter]
    fn sdc_track_index(&self) -> Option<usize> {
        self.inner.sdc_track_index
    }

    /// `[A]` int64: each track's object id.
    #[getter]
    fn object_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.tracks.iter().map(|t| t.id).collect::<Vec<_>>().into_pyarray(py)
    }

    /// `[A]` int64: each track's `Track.ObjectType` (1 vehicle, 2 pedestrian, 3 cyclist,
    /// 4 other, 0 unset).
    #[getter]
    fn object_types<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.tracks.iter().map(|t| t.agent_type.value()).collect::<Vec<_>>().into_pyarray(py)
    }

    /// `[A, T, 9]` float64: per track and step `x, y, z, length, width, height, heading,
    /// velocity_x, velocity_y` (`scenetok.womd.STATE_FIELDS`); see `valid`.
    #[getter]
    fn states<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray3<f64>>> {
        let (a, t) = self.shape()?;
        let mut out = Vec::with_capacity(a * t * STATE_FIELDS.len());
        for track in &self.inner.tracks {
            for s in &track.states {
                out.extend_from_slice(&[
                    s.x,
                    s.y,
                    s.z,
                    s.length as f64,
                    s.width as f64,
                    s.height as f64,
                    s.heading as f64,
                    s.velocity_x as f64,
                    s.velocity_y as f64,
                ]);
            }
        }
        out.into_pyarray(py).reshape([a, t, STATE_FIELDS.len()])
    }

    /// `[A, T]` bool: whether each track's state at each step is valid.
    #[getter]
    fn valid<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<bool>>> {
        let (a, t) = self.shape()?;
        let out: Vec<bool> = self.inner.tracks.iter().flat_map(|tr| tr.states.iter().map(|s| s.valid)).collect();
        out.into_pyarray(py).reshape([a, t])
    }

    /// `[M]` int64: the track indices the challenge predicts (`tracks_to_predict`).
    #[getter]
    fn tracks_to_predict<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.tracks_to_predict.iter().map(|t| t.track_index as i64).collect::<Vec<_>>().into_pyarray(py)
    }

    /// `[K]` int64: object ids of the objects of interest.
    #[getter]
    fn objects_of_interest<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.objects_of_interest.clone().into_pyarray(py)
    }

    /// The map as flat arrays: `id [F]` int64, `type [F]` int64 (`MapFeature` type values:
    /// lane types 0-3, road lines 5-13, road edges 14-16, 17 stop sign, 18 crosswalk,
    /// 19 speed bump, 20 driveway), `kind [F]` (list of str: `lane`, `road_line`, …),
    /// `points [P, 3]` float64 (every feature's polyline, one after another) and
    /// `offsets [F + 1]` int64 (feature i's points are `points[offsets[i]:offsets[i + 1]]`).
    #[getter]
    fn map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let map = &self.inner.map;
        let d = PyDict::new(py);
        d.set_item("id", map.iter().map(|f| f.id).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("type", map.iter().map(|f| f.feature_type.value()).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("kind", map.iter().map(|f| f.feature_type.kind().name()).collect::<Vec<_>>())?;
        let mut offsets = Vec::with_capacity(map.len() + 1);
        offsets.push(0i64);
        let mut points = Vec::new();
        for f in map {
            for p in &f.polyline {
                points.extend_from_slice(&[p.x, p.y, p.z]);
            }
            offsets.push((points.len() / 3) as i64);
        }
        let n = points.len() / 3;
        d.set_item("points", points.into_pyarray(py).reshape([n, 3])?)?;
        d.set_item("offsets", offsets.into_pyarray(py))?;
        Ok(d)
    }

    /// A copy whose `tracks_to_predict` are these track indices (e.g. every track valid at
    /// the current step, as Waymo's metrics op is often given).
    fn with_tracks_to_predict(&self, track_indices: &Bound<'_, PyAny>) -> PyResult<PyScenario> {
        let track_indices = array_of::<i64, Ix1>(track_indices, "int64", "track_indices")?;
        let n = self.inner.tracks.len();
        let mut targets = Vec::new();
        for &i in track_indices.as_slice().map_err(|e| invalid(e.to_string()))? {
            if i < 0 || i as usize >= n {
                return Err(invalid(format!("scenario {}: track index {i} outside its {n} tracks", self.inner.id)));
            }
            targets.push(PredictionTarget { track_index: i as usize, difficulty: DifficultyLevel::Level1 });
        }
        let mut s = (*self.inner).clone();
        s.tracks_to_predict = targets;
        Ok(PyScenario { inner: Arc::new(s) })
    }

    fn __repr__(&self) -> String {
        format!(
            "Scenario({:?}, {} tracks, {} steps, {} to predict, {} map features)",
            self.inner.id,
            self.inner.tracks.len(),
            self.inner.timestamps_seconds.len(),
            self.inner.tracks_to_predict.len(),
            self.inner.map.len()
        )
    }
}

impl PyScenario {
    /// (tracks, steps); every track has the scenario's number of steps (the reader checks).
    fn shape(&self) -> PyResult<(usize, usize)> {
        let t = self.inner.tracks.first().map_or(0, |tr| tr.states.len());
        if let Some(bad) = self.inner.tracks.iter().find(|tr| tr.states.len() != t) {
            return Err(invalid(format!(
                "scenario {}: track {} has {} states, the first track {t}",
                self.inner.id,
                bad.id,
                bad.states.len()
            )));
        }
        Ok((self.inner.tracks.len(), t))
    }
}

/// The WOMD files of `path`: the file itself, or a folder's TFRecords in name order; a file
/// that holds something else is an error saying what it holds.
fn scenario_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let files = if path.is_dir() {
        let files = tfrecord_files(path)?;
        if files.is_empty() {
            return Err(Error::invalid(
                Location::file(path),
                "a WOMD Scenario TFRecord file or a folder of them",
                "a folder without TFRecord files",
            ));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    if let Some(first) = files.first().filter(|f| f.exists()) {
        let kind = detect(first)?;
        if kind != InputKind::WomdScenarios {
            return Err(Error::invalid(Location::file(first), "a WOMD Scenario TFRecord", kind.describe()));
        }
    }
    Ok(files)
}

/// Reads every scenario of a WOMD TFRecord file (or of a folder of them, in file-name order).
#[pyfunction]
pub fn read_scenarios(py: Python<'_>, path: PathBuf) -> PyResult<Vec<PyScenario>> {
    let all = py
        .detach(|| -> Result<Vec<Scenario>, Error> {
            let mut all = Vec::new();
            for f in scenario_files(&path)? {
                for s in open_scenarios(&f)? {
                    all.push(s?);
                }
            }
            Ok(all)
        })
        .or_raise()?;
    Ok(all.into_iter().map(|s| PyScenario { inner: Arc::new(s) }).collect())
}

/// Streams the scenarios of a file or folder, one record in memory at a time.
#[pyclass(module = "scenetok.womd", name = "ScenarioIterator", frozen)]
pub struct ScenarioIterator {
    state: Mutex<IterState>,
}

struct IterState {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<ScenarioReader<std::io::BufReader<std::fs::File>>>,
}

/// Iterates the scenarios of a WOMD TFRecord file (or folder) without reading them all.
#[pyfunction]
pub fn iter_scenarios(path: PathBuf) -> PyResult<ScenarioIterator> {
    let files = scenario_files(&path).or_raise()?;
    Ok(ScenarioIterator { state: Mutex::new(IterState { files: files.into_iter(), current: None }) })
}

#[pymethods]
impl ScenarioIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyScenario>> {
        let next = py
            .detach(|| -> Result<Option<Scenario>, Error> {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if let Some(reader) = st.current.as_mut() {
                        match reader.next() {
                            Some(s) => return s.map(Some),
                            None => st.current = None,
                        }
                    }
                    match st.files.next() {
                        Some(f) => st.current = Some(open_scenarios(&f)?),
                        None => return Ok(None),
                    }
                }
            })
            .or_raise()?;
        Ok(next.map(|s| PyScenario { inner: Arc::new(s) }))
    }
}
