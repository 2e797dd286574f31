//! `scenetok.v2`: a Waymo Open Dataset v2 folder. Segments and their frames, components as
//! `pyarrow.Table`s (Arrow C data interface, no copy), a frame's points per laser as NumPy
//! arrays converted exactly as the Rust pipeline converts them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow_pyarrow::{IntoPyArrow, Table};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use scenetok::error::{Error, Location};
use scenetok::geom::range_image::{PointCloud, gather_pixels, range_image_to_points};
use scenetok::io::v2::{ComponentFile, Dataset, FrameReader, FrameRequest};
use scenetok::scene::{CameraName, Frame, LaserFrame, LaserName};

use crate::errors::{OrRaise, invalid};

/// A v2 dataset folder (`{root}/{component}/{segment}.parquet`).
#[pyclass(module = "scenetok.v2", name = "Dataset", frozen)]
pub struct PyDataset {
    inner: Arc<Dataset>,
}

/// Opens a v2 dataset folder, reading only the files' footers.
#[pyfunction]
pub fn open(py: Python<'_>, path: PathBuf) -> PyResult<PyDataset> {
    let ds = py.detach(|| Dataset::open(&path)).or_raise()?;
    Ok(PyDataset { inner: Arc::new(ds) })
}

fn component_named(name: &str) -> PyResult<scenetok::io::v2::Component> {
    scenetok::io::v2::Component::from_tag(name).ok_or_else(|| {
        let known: Vec<&str> = scenetok::io::v2::Component::ALL.iter().map(|c| c.tag()).collect();
        invalid(format!("unknown component {name:?}; expected one of {known:?}"))
    })
}

fn laser_named(name: &str) -> PyResult<LaserName> {
    LaserName::from_name(name)
        .ok_or_else(|| invalid(format!("unknown laser {name:?}; expected {}", LaserName::expected())))
}

fn camera_named(name: &str) -> PyResult<CameraName> {
    CameraName::from_name(name)
        .ok_or_else(|| invalid(format!("unknown camera {name:?}; expected {}", CameraName::expected())))
}

#[pymethods]
impl PyDataset {
    /// The folder.
    #[getter]
    fn root(&self) -> PathBuf {
        self.inner.root().to_path_buf()
    }

    /// Segment names, sorted.
    #[getter]
    fn segments(&self) -> Vec<String> {
        self.inner.segments().map(str::to_string).collect()
    }

    /// The components one segment has files for (folder names: `lidar`, `vehicle_pose`, …).
    fn components(&self, segment: &str) -> PyResult<Vec<&'static str>> {
        Ok(self.inner.components(segment).or_raise()?.keys().map(|c| c.tag()).collect())
    }

    /// One component of one segment as a `pyarrow.Table` in the declared column types
    /// (tolerant reading: integer widths, enum names and list layouts normalised), optionally
    /// only some columns. A component the segment has no file for is an error.
    #[pyo3(signature = (component, segment, columns=None))]
    fn table<'py>(
        &self,
        py: Python<'py>,
        component: &str,
        segment: &str,
        columns: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = component_named(component)?;
        // An unknown segment is the library's error (it lists the segments).
        let files = self.inner.components(segment).or_raise()?;
        let path = files.get(&c).map(|info| info.path.clone()).ok_or_else(|| {
            let has: Vec<&str> = files.keys().map(|c| c.tag()).collect();
            invalid(format!("segment {segment:?} has no {component} file (it has {has:?})"))
        })?;
        let (batches, schema) = py
            .detach(|| -> Result<_, Error> {
                let file = ComponentFile::open(&path, c)?;
                let names: Option<Vec<&str>> = columns.as_ref().map(|v| v.iter().map(String::as_str).collect());
                let wanted = file.specs(names.as_deref())?;
                let mut batches = Vec::with_capacity(file.num_row_groups());
                for i in 0..file.num_row_groups() {
                    batches.push(file.read_row_group(i, &wanted)?);
                }
                let fields: Vec<arrow::datatypes::Field> =
                    wanted.iter().map(|s| arrow::datatypes::Field::new(s.name, s.ty.data_type(), true)).collect();
                let schema = match batches.first() {
                    Some(b) => b.schema(),
                    None => Arc::new(arrow::datatypes::Schema::new(fields)),
                };
                Ok((batches, schema))
            })
            .or_raise()?;
        let table = Table::try_new(batches, schema).map_err(|e| invalid(e.to_string()))?;
        table.into_pyarrow(py)
    }

    /// One segment's frames. `components` limits what each frame reads (default: every
    /// per-frame component and the calibrations); `second_returns=False` skips the second
    /// returns' range images.
    #[pyo3(signature = (name, components=None, second_returns=true))]
    fn segment(
        &self,
        py: Python<'_>,
        name: &str,
        components: Option<Vec<String>>,
        second_returns: bool,
    ) -> PyResult<PySegment> {
        let mut request = match components {
            Some(names) => {
                let cs = names.iter().map(|n| component_named(n)).collect::<PyResult<Vec<_>>>()?;
                FrameRequest::only(&cs)
            }
            None => FrameRequest::all(),
        };
        if !second_returns {
            request = request.without_second_returns();
        }
        let reader = py.detach(|| self.inner.frames(name, &request)).or_raise()?;
        Ok(PySegment {
            name: name.to_string(),
            timestamps: reader.timestamps().to_vec(),
            root: self.inner.root().to_path_buf(),
            reader: Mutex::new(reader),
        })
    }

    fn __repr__(&self) -> String {
        format!("Dataset({:?}, {} segment(s))", self.inner.root(), self.inner.segments().count())
    }
}

/// The frames of one segment, in timestamp order: `len(segment)`, `segment[i]`, iteration.
#[pyclass(module = "scenetok.v2", name = "Segment", frozen)]
pub struct PySegment {
    name: String,
    timestamps: Vec<i64>,
    root: PathBuf,
    reader: Mutex<FrameReader>,
}

#[pymethods]
impl PySegment {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Every frame's `key.frame_timestamp_micros`, sorted (int64).
    #[getter]
    fn timestamps<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.timestamps.clone().into_pyarray(py)
    }

    fn __len__(&self) -> usize {
        self.timestamps.len()
    }

    /// Frame `index` (negative counts from the end).
    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<PyFrame> {
        let n = self.timestamps.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if !(0..n).contains(&i) {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!("frame {index} of a segment of {n} frame(s)")));
        }
        self.frame_at(py, self.timestamps[i as usize])
    }

    /// The frame with this timestamp.
    fn frame_at(&self, py: Python<'_>, timestamp_micros: i64) -> PyResult<PyFrame> {
        if self.timestamps.binary_search(&timestamp_micros).is_err() {
            return Err(invalid(format!(
                "{}: segment {:?} has no frame {timestamp_micros}",
                self.root.display(),
                self.name
            )));
        }
        let frame = py
            .detach(|| {
                let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
                reader.read_frame(timestamp_micros)
            })
            .or_raise()?;
        Ok(PyFrame { inner: Arc::new(frame) })
    }

    fn __repr__(&self) -> String {
        format!("Segment({:?}, {} frame(s))", self.name, self.timestamps.len())
    }
}

/// One timestamp of one segment, joined from every component read.
#[pyclass(module = "scenetok.v2", name = "Frame", frozen)]
pub struct PyFrame {
    inner: Arc<Frame>,
}

impl PyFrame {
    fn at(&self) -> Location {
        Location::default().detail(format!("segment {}", self.inner.segment)).frame(self.inner.timestamp_micros)
    }

    fn laser(&self, name: &str) -> PyResult<&LaserFrame> {
        let laser = laser_named(name)?;
        self.inner.laser(laser).ok_or_else(|| {
            let has: Vec<&str> = self.inner.lasers.iter().map(|l| l.laser.name()).collect();
            invalid(format!("{}: no laser {} in this frame (it has {has:?})", self.at(), laser.name()))
        })
    }

    /// The cloud of one return of one laser, exactly as the pipeline's points stage makes it:
    /// ego-motion compensated with the laser's per-pixel pose and the frame's vehicle pose
    /// where both exist; return 2 uses the return-1 pixel pose.
    fn cloud(&self, laser: &LaserFrame, return_index: u8) -> Result<Option<PointCloud>, Error> {
        let at = || self.at().detail(format!("laser {}", laser.laser.name()));
        let image = match return_index {
            1 => &laser.return1,
            _ => &laser.return2,
        };
        let Some(image) = image else { return Ok(None) };
        let calib = laser.calibration.as_ref().ok_or_else(|| {
            Error::invalid(at(), "a lidar_calibration row for the laser (range images need it)", "none")
        })?;
        range_image_to_points(image, calib, laser.pose.as_ref(), self.inner.vehicle_pose.as_ref())
            .map(Some)
            .map_err(|e| Error::invalid(at(), "a convertible range image", e.to_string()))
    }

    fn lasers_named(&self, laser: Option<&str>) -> PyResult<Vec<&LaserFrame>> {
        match laser {
            Some(name) => Ok(vec![self.laser(name)?]),
            None => Ok(self.inner.lasers.iter().collect()),
        }
    }
}

fn check_return(return_index: u8) -> PyResult<u8> {
    match return_index {
        1 | 2 => Ok(return_index),
        other => Err(invalid(format!("return_index must be 1 or 2, not {other}"))),
    }
}

fn xyz_array<'py>(py: Python<'py>, xyz: Vec<[f32; 3]>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let n = xyz.len();
    let flat: Vec<f32> = xyz.into_iter().flatten().collect();
    flat.into_pyarray(py).reshape([n, 3])
}

#[pymethods]
impl PyFrame {
    #[getter]
    fn segment(&self) -> &str {
        &self.inner.segment
    }

    #[getter]
    fn timestamp_micros(&self) -> i64 {
        self.inner.timestamp_micros
    }

    /// Vehicle → world, a 4×4 float64 matrix; `None` without a `vehicle_pose` row.
    #[getter]
    fn vehicle_pose<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f64>>>> {
        self.inner.vehicle_pose.map(|t| t.to_row_major().to_vec().into_pyarray(py).reshape([4, 4])).transpose()
    }

    /// The lasers in this frame, by name (`TOP`, `FRONT`, …).
    #[getter]
    fn lasers(&self) -> Vec<&'static str> {
        self.inner.lasers.iter().map(|l| l.laser.name()).collect()
    }

    /// The cameras in this frame, by name.
    #[getter]
    fn cameras(&self) -> Vec<&'static str> {
        self.inner.cameras.iter().map(|c| c.camera.name()).collect()
    }

    /// One return's range image, `[H, W, 4]` float32: range, intensity, elongation,
    /// no-label-zone.
    #[pyo3(signature = (laser, return_index=1))]
    fn range_image<'py>(
        &self,
        py: Python<'py>,
        laser: &str,
        return_index: u8,
    ) -> PyResult<Option<Bound<'py, PyArray3<f32>>>> {
        let l = self.laser(laser)?;
        let ri = match check_return(return_index)? {
            1 => &l.return1,
            _ => &l.return2,
        };
        ri.as_ref().map(|ri| ri.values.clone().into_pyarray(py).reshape([ri.height, ri.width, ri.channels])).transpose()
    }

    /// Points `[N, 3]` float32 (metres, the frame's vehicle coordinates) of one return of one
    /// laser, or of every laser in name order when `laser` is None; in the order of their
    /// source pixels (row-major), ego-motion compensated as `scenetok` does it.
    #[pyo3(signature = (laser=None, return_index=1))]
    fn points<'py>(
        &self,
        py: Python<'py>,
        laser: Option<&str>,
        return_index: u8,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let ret = check_return(return_index)?;
        let lasers = self.lasers_named(laser)?;
        let xyz = py
            .detach(|| -> Result<Vec<[f32; 3]>, Error> {
                let mut all = Vec::new();
                for l in lasers {
                    if let Some(c) = self.cloud(l, ret)? {
                        all.extend_from_slice(&c.xyz);
                    }
                }
                Ok(all)
            })
            .or_raise()?;
        xyz_array(py, xyz)
    }

    /// One return of one laser as a dict: `xyz [N, 3]` float32, `features [N, 4]` float32
    /// (range, intensity, elongation, no-label-zone), `pixels [N, 2]` uint16 (row, column of
    /// the source pixel), and `labels [N, 2]` int32 (instance id, semantic class) when the
    /// frame has the laser's segmentation.
    #[pyo3(signature = (laser, return_index=1))]
    fn point_cloud<'py>(
        &self,
        py: Python<'py>,
        laser: &str,
        return_index: u8,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
        let ret = check_return(return_index)?;
        let l = self.laser(laser)?;
        let Some(cloud) = py.detach(|| self.cloud(l, ret)).or_raise()? else { return Ok(None) };
        let seg = if ret == 1 { &l.segmentation1 } else { &l.segmentation2 };
        let labels = match seg {
            Some(seg) => Some(
                gather_pixels(seg, &cloud)
                    .map_err(|e| invalid(format!("{}, laser {}: {e}", self.at(), l.laser.name())))?,
            ),
            None => None,
        };
        let n = cloud.len();
        let d = pyo3::types::PyDict::new(py);
        let PointCloud { xyz, pixels, features, channels, .. } = cloud;
        d.set_item("xyz", xyz_array(py, xyz)?)?;
        d.set_item("features", features.into_pyarray(py).reshape([n, channels])?)?;
        let px: Vec<u16> = pixels.into_iter().flatten().collect();
        d.set_item("pixels", px.into_pyarray(py).reshape([n, 2])?)?;
        if let Some(labels) = labels {
            d.set_item("labels", labels.into_pyarray(py).reshape([n, 2])?)?;
        }
        Ok(Some(d))
    }

    /// The encoded JPEG of one camera, as stored.
    fn camera_jpeg<'py>(&self, py: Python<'py>, camera: &str) -> PyResult<Bound<'py, PyBytes>> {
        let name = camera_named(camera)?;
        let cam = self
            .inner
            .camera(name)
            .ok_or_else(|| invalid(format!("{}: no camera {} in this frame", self.at(), name.name())))?;
        Ok(PyBytes::new(py, &cam.jpeg))
    }

    /// One camera's image decoded, `[H, W, 3]` uint8 RGB.
    fn camera_image<'py>(&self, py: Python<'py>, camera: &str) -> PyResult<Bound<'py, PyArray3<u8>>> {
        let name = camera_named(camera)?;
        let cam = self
            .inner
            .camera(name)
            .ok_or_else(|| invalid(format!("{}: no camera {} in this frame", self.at(), name.name())))?;
        let at = self.at().detail(format!("camera {}", name.name()));
        let img = py.detach(|| scenetok::io::image::decode_jpeg(&cam.jpeg, &at)).or_raise()?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        img.into_raw().into_pyarray(py).reshape([h, w, 3])
    }

    /// The 3-D labels (`lidar_box`) as a dict of arrays: `id` (list of str), `center [N, 3]`,
    /// `size [N, 3]`, `heading [N]` (float64, vehicle frame), `type [N]` (int: Waymo's
    /// `Box.Type`), `num_lidar_points [N]`.
    fn lidar_boxes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let b = &self.inner.lidar_boxes;
        let n = b.len();
        let d = pyo3::types::PyDict::new(py);
        d.set_item("id", b.iter().map(|x| x.object_id.clone()).collect::<Vec<_>>())?;
        let v3 = |f: fn(&scenetok::scene::LidarBox) -> [f64; 3]| b.iter().flat_map(f).collect::<Vec<f64>>();
        d.set_item("center", v3(|x| x.bbox.center.into()).into_pyarray(py).reshape([n, 3])?)?;
        d.set_item("size", v3(|x| x.bbox.size.into()).into_pyarray(py).reshape([n, 3])?)?;
        d.set_item("heading", b.iter().map(|x| x.bbox.heading).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item("type", b.iter().map(|x| x.kind.value()).collect::<Vec<_>>().into_pyarray(py))?;
        d.set_item(
            "num_lidar_points",
            b.iter().map(|x| x.num_lidar_points_in_box).collect::<Vec<_>>().into_pyarray(py),
        )?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Frame(segment={:?}, timestamp_micros={}, lasers={:?}, cameras={})",
            self.inner.segment,
            self.inner.timestamp_micros,
            self.lasers(),
            self.inner.cameras.len()
        )
    }
}
