//! A v2 dataset folder: the index of segments and components, the frame reader that joins
//! components on their keys, and the segment writer that splits frames into components.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;

use super::columns::Cols;
use super::file::ComponentFile;
use super::records::*;
use super::schema::{ColumnSpec, Component, key};
use super::writer::ComponentWriter;
use crate::error::{Error, Location, Result};
use crate::scene::*;

/// One component file of one segment, as found in the index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileInfo {
    pub path: PathBuf,
    pub rows: usize,
    pub row_groups: usize,
    pub bytes: u64,
}

/// What a dataset folder holds: segments and, per segment, its component files.
#[derive(Debug, Clone)]
pub struct Dataset {
    root: PathBuf,
    segments: BTreeMap<String, BTreeMap<Component, FileInfo>>,
    /// Folders under the root that are not components scenetok knows (ignored).
    pub unknown_folders: Vec<String>,
}

impl Dataset {
    /// Scans `{root}/{tag}/{segment}.parquet`, reading only footers.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let at = Location::file(&root);
        let entries = std::fs::read_dir(&root).map_err(|e| Error::io(at.clone(), e))?;
        let mut segments: BTreeMap<String, BTreeMap<Component, FileInfo>> = BTreeMap::new();
        let mut unknown_folders = Vec::new();
        let mut tags: Vec<(String, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(at.clone(), e))?;
            if entry.path().is_dir() {
                tags.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
            }
        }
        tags.sort();
        for (tag, dir) in tags {
            let Some(component) = Component::from_tag(&tag) else {
                unknown_folders.push(tag);
                continue;
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| Error::io(Location::file(&dir), e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect();
            files.sort();
            for path in files {
                let segment = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let f = ComponentFile::open(&path, component)?;
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let info = FileInfo { path, rows: f.num_rows(), row_groups: f.num_row_groups(), bytes };
                segments.entry(segment).or_default().insert(component, info);
            }
        }
        if segments.is_empty() {
            return Err(Error::invalid(
                at,
                "a Waymo v2 dataset folder: {component}/{segment}.parquet, e.g. lidar/…, vehicle_pose/…",
                "no component files",
            ));
        }
        Ok(Dataset { root, segments, unknown_folders })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Segment names, sorted.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segments.keys().map(|s| s.as_str())
    }

    /// The component files of one segment.
    pub fn components(&self, segment: &str) -> Result<&BTreeMap<Component, FileInfo>> {
        self.segments.get(segment).ok_or_else(|| {
            let known: Vec<&str> = self.segments().collect();
            Error::invalid(
                Location::file(&self.root),
                format!("one of the segments {known:?}"),
                format!("segment {segment:?}"),
            )
        })
    }

    /// The path of a segment's component file, when there is one.
    pub fn file_path(&self, segment: &str, component: Component) -> Option<PathBuf> {
        self.components(segment).ok()?.get(&component).map(|info| info.path.clone())
    }

    fn file(&self, segment: &str, component: Component) -> Result<Option<ComponentFile>> {
        match self.components(segment)?.get(&component) {
            Some(info) => ComponentFile::open(&info.path, component).map(Some),
            None => Ok(None),
        }
    }

    /// Sorted timestamps of every frame of a segment: the union over per-frame components.
    pub fn frame_timestamps(&self, segment: &str) -> Result<Vec<i64>> {
        let mut all = BTreeSet::new();
        for (component, info) in self.components(segment)? {
            if component.is_per_frame() {
                let f = ComponentFile::open(&info.path, *component)?;
                for per_group in row_group_timestamps(&f, segment)? {
                    all.extend(per_group);
                }
            }
        }
        Ok(all.into_iter().collect())
    }

    /// The map of a segment (scenetok's `map_feature` extension); empty when absent.
    pub fn read_map(&self, segment: &str) -> Result<Vec<MapFeature>> {
        let Some(f) = self.file(segment, Component::MapFeature)? else {
            return Ok(Vec::new());
        };
        Ok(f.read_all::<MapFeatureRecord>()?.into_iter().filter(|r| r.segment == segment).map(|r| r.feature).collect())
    }

    /// A reader of the frames of one segment, in timestamp order.
    pub fn frames(&self, segment: &str, request: &FrameRequest) -> Result<FrameReader> {
        FrameReader::new(self, segment, request)
    }

    /// The frames of one segment as stored, not joined: per requested per-frame component,
    /// the batch of the frame's rows (what a stream sender sends).
    pub fn frame_batches(&self, segment: &str, request: &FrameRequest) -> Result<FrameBatches> {
        let reader = FrameReader::new(self, segment, request)?;
        Ok(FrameBatches { segment: reader.segment, timestamps: reader.timestamps, next: 0, cursors: reader.cursors })
    }

    /// The rows of this segment in a per-segment component (calibrations, the map), in the
    /// declared types; `None` when the segment has no such file.
    pub fn segment_batch(&self, segment: &str, component: Component) -> Result<Option<RecordBatch>> {
        let Some(f) = self.file(segment, component)? else { return Ok(None) };
        let wanted: Vec<&'static ColumnSpec> = component.columns().iter().collect();
        let mut batches = Vec::new();
        for group in f.row_groups(&wanted) {
            let (_, batch) = group?;
            batches.push(
                rows_of_segment(&batch, segment, None)
                    .map_err(|e| Error::Arrow { at: Location::file(f.path()), cause: e })?,
            );
        }
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => return Ok(None),
        };
        arrow::compute::concat_batches(&schema, &batches)
            .map(Some)
            .map_err(|e| Error::Arrow { at: Location::file(f.path()), cause: e })
    }
}

/// The rows of `batch` (declared key columns first) of `segment`, and of frame `ts` if given.
fn rows_of_segment(batch: &RecordBatch, segment: &str, ts: Option<i64>) -> arrow::error::Result<RecordBatch> {
    let segs = batch.column(0).as_string::<i32>();
    let mask: arrow::array::BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let seg_ok = !segs.is_null(row) && segs.value(row) == segment;
            let ts_ok = ts.is_none_or(|ts| {
                let tss = batch.column(1).as_primitive::<Int64Type>();
                !tss.is_null(row) && tss.value(row) == ts
            });
            Some(seg_ok && ts_ok)
        })
        .collect();
    arrow::compute::filter_record_batch(batch, &mask)
}

/// Iterates the frames of one segment in timestamp order as `(timestamp, [(component, the
/// frame's rows)])`, one row group per component in memory at a time.
pub struct FrameBatches {
    segment: String,
    timestamps: Vec<i64>,
    next: usize,
    cursors: Vec<Cursor>,
}

impl FrameBatches {
    /// Timestamps of the frames this reader yields.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }
}

impl Iterator for FrameBatches {
    type Item = Result<(i64, Vec<(Component, RecordBatch)>)>;
    fn next(&mut self) -> Option<Self::Item> {
        let ts = *self.timestamps.get(self.next)?;
        self.next += 1;
        let mut out = Vec::new();
        for cursor in &mut self.cursors {
            match cursor.batch_of(&self.segment, ts) {
                Ok(Some(b)) => out.push((cursor.file.component(), b)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok((ts, out)))
    }
}

/// Per row group, the sorted distinct timestamps of this segment's rows (reads two key columns).
fn row_group_timestamps(f: &ComponentFile, segment: &str) -> Result<Vec<Vec<i64>>> {
    let wanted = f.specs(Some(&[key::SEGMENT, key::TIMESTAMP]))?;
    let mut out = Vec::with_capacity(f.num_row_groups());
    for rg in f.row_groups(&wanted) {
        let (g, batch) = rg?;
        let segs = batch.column(0).as_string::<i32>();
        let ts = batch.column(1).as_primitive::<Int64Type>();
        let mut set = BTreeSet::new();
        for row in 0..batch.num_rows() {
            // A row without its key belongs to no frame: dropping it would lose data unseen.
            if let Some(column) = [(key::SEGMENT, segs.is_null(row)), (key::TIMESTAMP, ts.is_null(row))]
                .into_iter()
                .find_map(|(c, null)| null.then_some(c))
            {
                let at = Location::file(f.path()).column(column).row(f.row_group_start(g) + row);
                return Err(Error::invalid(at, "a key value in every row", "null"));
            }
            if segs.value(row) == segment {
                set.insert(ts.value(row));
            }
        }
        out.push(set.into_iter().collect());
    }
    Ok(out)
}

/// Which components (and which optional bulk columns) a frame reader reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRequest {
    pub components: BTreeSet<Component>,
    /// Read the second-return range images (lidar, projections, segmentation).
    pub second_returns: bool,
}

impl FrameRequest {
    /// Every component the frame holds.
    pub fn all() -> Self {
        let components = Component::ALL
            .iter()
            .copied()
            .filter(|c| !matches!(c, Component::MapFeature | Component::CameraHkp))
            .collect();
        FrameRequest { components, second_returns: true }
    }
    /// Only these components.
    pub fn only(components: &[Component]) -> Self {
        FrameRequest { components: components.iter().copied().collect(), second_returns: true }
    }
    pub fn without_second_returns(mut self) -> Self {
        self.second_returns = false;
        self
    }
}

/// One per-frame component being read: its file, the projected columns, which row groups
/// hold which frames, and the one row group in memory.
struct Cursor {
    file: ComponentFile,
    wanted: Vec<&'static ColumnSpec>,
    group_timestamps: Vec<Vec<i64>>,
    loaded: Option<(usize, RecordBatch)>,
}

impl Cursor {
    fn new(file: ComponentFile, segment: &str, second_returns: bool) -> Result<Self> {
        let skip: &[&str] = if second_returns { &[] } else { optional_bulk_columns(file.component()) };
        let wanted = file.component().columns().iter().filter(|c| !skip.contains(&c.name)).collect();
        let group_timestamps = row_group_timestamps(&file, segment)?;
        Ok(Cursor { file, wanted, group_timestamps, loaded: None })
    }

    /// Calls `f` with the columns and row of every row of frame `ts`, loading row groups
    /// as needed (one at a time).
    fn for_rows(&mut self, segment: &str, ts: i64, mut f: impl FnMut(&Cols, usize) -> Result<()>) -> Result<()> {
        for g in 0..self.group_timestamps.len() {
            if self.group_timestamps[g].binary_search(&ts).is_err() {
                continue;
            }
            if self.loaded.as_ref().is_none_or(|(i, _)| *i != g) {
                self.loaded = None; // drop the previous group before reading the next
                self.loaded = Some((g, self.file.read_row_group(g, &self.wanted)?));
            }
            let Some((_, batch)) = &self.loaded else { continue };
            let cols = Cols::new(batch, Location::file(self.file.path()), self.file.row_group_start(g));
            let segs = batch.column(0).as_string::<i32>();
            let tss = batch.column(1).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                if !tss.is_null(row) && tss.value(row) == ts && !segs.is_null(row) && segs.value(row) == segment {
                    f(&cols, row)?;
                }
            }
        }
        Ok(())
    }
}

impl Cursor {
    /// The rows of frame `ts` as one batch (`None` when the frame has none here).
    fn batch_of(&mut self, segment: &str, ts: i64) -> Result<Option<RecordBatch>> {
        let mut parts = Vec::new();
        for g in 0..self.group_timestamps.len() {
            if self.group_timestamps[g].binary_search(&ts).is_err() {
                continue;
            }
            if self.loaded.as_ref().is_none_or(|(i, _)| *i != g) {
                self.loaded = None;
                self.loaded = Some((g, self.file.read_row_group(g, &self.wanted)?));
            }
            let Some((_, batch)) = &self.loaded else { continue };
            let rows = rows_of_segment(batch, segment, Some(ts))
                .map_err(|e| Error::Arrow { at: Location::file(self.file.path()), cause: e })?;
            if rows.num_rows() > 0 {
                parts.push(rows);
            }
        }
        match parts.len() {
            0 => Ok(None),
            1 => Ok(parts.pop()),
            _ => arrow::compute::concat_batches(&parts[0].schema(), &parts)
                .map(Some)
                .map_err(|e| Error::Arrow { at: Location::file(self.file.path()), cause: e }),
        }
    }
}

fn optional_bulk_columns(c: Component) -> &'static [&'static str] {
    match c {
        Component::Lidar => LidarRecord::optional_bulk_columns(),
        Component::LidarCameraProjection => LidarCameraProjectionRecord::optional_bulk_columns(),
        Component::LidarSegmentation => LidarSegmentationRecord::optional_bulk_columns(),
        _ => &[],
    }
}

/// Iterates the frames of one segment in timestamp order, joining every requested
/// component on `(segment, timestamp, laser | camera)`.
pub struct FrameReader {
    segment: String,
    timestamps: Vec<i64>,
    next: usize,
    cursors: Vec<Cursor>,
    lidar_calibrations: Vec<LidarCalibration>,
    camera_calibrations: Vec<CameraCalibration>,
}

impl FrameReader {
    fn new(dataset: &Dataset, segment: &str, request: &FrameRequest) -> Result<Self> {
        let mut cursors = Vec::new();
        for (component, info) in dataset.components(segment)? {
            if component.is_per_frame() && request.components.contains(component) {
                let f = ComponentFile::open(&info.path, *component)?;
                cursors.push(Cursor::new(f, segment, request.second_returns)?);
            }
        }
        let mut lidar_calibrations = Vec::new();
        if request.components.contains(&Component::LidarCalibration)
            && let Some(f) = dataset.file(segment, Component::LidarCalibration)?
        {
            let rows = f.read_all::<LidarCalibrationRecord>()?;
            lidar_calibrations = rows.into_iter().filter(|r| r.segment == segment).map(|r| r.calibration).collect();
            unique_by(&lidar_calibrations, |c| c.laser, f.path(), "lidar_calibration", "laser")?;
        }
        let mut camera_calibrations = Vec::new();
        if request.components.contains(&Component::CameraCalibration)
            && let Some(f) = dataset.file(segment, Component::CameraCalibration)?
        {
            let rows = f.read_all::<CameraCalibrationRecord>()?;
            camera_calibrations = rows.into_iter().filter(|r| r.segment == segment).map(|r| r.calibration).collect();
            unique_by(&camera_calibrations, |c| c.camera, f.path(), "camera_calibration", "camera")?;
        }
        let mut all = BTreeSet::new();
        for c in &cursors {
            for g in &c.group_timestamps {
                all.extend(g.iter().copied());
            }
        }
        Ok(FrameReader {
            segment: segment.to_string(),
            timestamps: all.into_iter().collect(),
            next: 0,
            cursors,
            lidar_calibrations,
            camera_calibrations,
        })
    }

    /// Timestamps of the frames this reader yields.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    pub fn lidar_calibrations(&self) -> &[LidarCalibration] {
        &self.lidar_calibrations
    }
    pub fn camera_calibrations(&self) -> &[CameraCalibration] {
        &self.camera_calibrations
    }

    /// Reads the frame with this timestamp.
    pub fn read_frame(&mut self, ts: i64) -> Result<Frame> {
        let mut frame = Frame { segment: self.segment.clone(), timestamp_micros: ts, ..Default::default() };
        let segment = self.segment.clone();
        for cursor in &mut self.cursors {
            let component = cursor.file.component();
            cursor.for_rows(&segment, ts, |cols, row| add_row(&mut frame, component, cols, row))?;
        }
        finish_frame(&mut frame, &self.lidar_calibrations, &self.camera_calibrations);
        Ok(frame)
    }
}

/// Gives a frame joined from its rows the segment's calibrations and puts its sensors in
/// name order (what the reader and the stream assembler both do last).
pub(crate) fn finish_frame(frame: &mut Frame, lidar: &[LidarCalibration], camera: &[CameraCalibration]) {
    for calib in lidar {
        if let Some(l) = frame.lasers.iter_mut().find(|l| l.laser == calib.laser) {
            l.calibration = Some(calib.clone());
        }
    }
    for calib in camera {
        if let Some(c) = frame.cameras.iter_mut().find(|c| c.camera == calib.camera) {
            c.calibration = Some(calib.clone());
        }
    }
    frame.lasers.sort_by_key(|l| l.laser);
    frame.cameras.sort_by_key(|c| c.camera);
}

impl Iterator for FrameReader {
    type Item = Result<Frame>;
    fn next(&mut self) -> Option<Result<Frame>> {
        let ts = *self.timestamps.get(self.next)?;
        self.next += 1;
        Some(self.read_frame(ts))
    }
}

fn laser_mut(frame: &mut Frame, laser: LaserName) -> &mut LaserFrame {
    match frame.lasers.iter().position(|l| l.laser == laser) {
        Some(i) => &mut frame.lasers[i],
        None => {
            frame.lasers.push(LaserFrame::new(laser));
            frame.lasers.last_mut().unwrap_or_else(|| unreachable!())
        }
    }
}

fn camera_mut(frame: &mut Frame, camera: CameraName) -> &mut CameraFrame {
    match frame.cameras.iter().position(|c| c.camera == camera) {
        Some(i) => &mut frame.cameras[i],
        None => {
            frame.cameras.push(CameraFrame {
                camera,
                calibration: None,
                jpeg: Vec::new(),
                pose: None,
                motion: ImageMotion::default(),
                segmentation: None,
            });
            frame.cameras.last_mut().unwrap_or_else(|| unreachable!())
        }
    }
}

/// Rejects a second row for the same sensor (`sensor`, e.g. "laser TOP"; empty for per-frame
/// components) in frame `ts`: the key must be unique.
fn once<T>(slot: &mut Option<T>, value: T, cols: &Cols, row: usize, what: &str, ts: i64, sensor: &str) -> Result<()> {
    if slot.is_some() {
        let mut at = cols.at(key::TIMESTAMP, row).frame(ts);
        if !sensor.is_empty() {
            at = at.detail(sensor);
        }
        let of = if sensor.is_empty() { "this frame".to_string() } else { format!("{sensor} in this frame") };
        return Err(Error::invalid(
            at,
            format!("one {what} row per key"),
            format!("a duplicate: a second row of {of}"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Calibrations of one segment: a sensor calibrated twice the same way is harmless, twice
/// differently is an error (which one applies is unknowable).
fn unique_by<T: PartialEq, K: PartialEq + std::fmt::Display>(
    items: &[T],
    key: impl Fn(&T) -> K,
    file: &Path,
    what: &str,
    sensor: &str,
) -> Result<()> {
    for (i, a) in items.iter().enumerate() {
        if let Some(b) = items[..i].iter().find(|b| key(b) == key(a))
            && b != a
        {
            return Err(Error::invalid(
                Location::file(file),
                format!("one {what} per {sensor} of the segment"),
                format!("two different calibrations of {sensor} {}", key(a)),
            ));
        }
    }
    Ok(())
}

/// Adds row `row` of a per-frame component to the frame it belongs to (duplicates of a key
/// are an error naming the row).
pub(crate) fn add_row(frame: &mut Frame, component: Component, cols: &Cols, row: usize) -> Result<()> {
    match component {
        Component::Lidar => {
            let r = LidarRecord::decode(cols, row)?;
            let (ts, sensor) = (r.key.timestamp_micros, format!("laser {}", r.laser));
            let l = laser_mut(frame, r.laser);
            once(&mut l.return1, r.return1, cols, row, "lidar", ts, &sensor)?;
            l.return2 = r.return2;
        }
        Component::LidarPose => {
            let r = LidarPoseRecord::decode(cols, row)?;
            let (ts, sensor) = (r.key.timestamp_micros, format!("laser {}", r.laser));
            once(&mut laser_mut(frame, r.laser).pose, r.return1, cols, row, "lidar_pose", ts, &sensor)?;
        }
        Component::LidarCameraProjection => {
            let r = LidarCameraProjectionRecord::decode(cols, row)?;
            let (ts, sensor) = (r.key.timestamp_micros, format!("laser {}", r.laser));
            let l = laser_mut(frame, r.laser);
            once(&mut l.camera_projection1, r.return1, cols, row, "lidar_camera_projection", ts, &sensor)?;
            l.camera_projection2 = r.return2;
        }
        Component::LidarSegmentation => {
            let r = LidarSegmentationRecord::decode(cols, row)?;
            let (ts, sensor) = (r.key.timestamp_micros, format!("laser {}", r.laser));
            let l = laser_mut(frame, r.laser);
            once(&mut l.segmentation1, r.return1, cols, row, "lidar_segmentation", ts, &sensor)?;
            l.segmentation2 = r.return2;
        }
        Component::CameraImage => {
            let r = CameraImageRecord::decode(cols, row)?;
            let c = camera_mut(frame, r.camera);
            if !c.jpeg.is_empty() {
                return Err(Error::invalid(
                    cols.at(key::CAMERA, row).frame(r.key.timestamp_micros).detail(format!("camera {}", r.camera)),
                    "one camera_image row per camera",
                    "a duplicate: a second row of this camera in this frame",
                ));
            }
            c.jpeg = r.jpeg;
            c.pose = r.pose;
            c.motion = r.motion;
        }
        Component::CameraSegmentation => {
            let r = CameraSegmentationRecord::decode(cols, row)?;
            let at = cols.at("[CameraSegmentationLabelComponent].panoptic_label", row).frame(r.key.timestamp_micros);
            let label = r.decode_label(&at)?;
            let (ts, sensor) = (r.key.timestamp_micros, format!("camera {}", r.camera));
            once(&mut camera_mut(frame, r.camera).segmentation, label, cols, row, "camera_segmentation", ts, &sensor)?;
        }
        Component::LidarBox => {
            let label = LidarBoxRecord::decode(cols, row)?.label;
            // One box per object and frame: a second would make a track jump between them.
            if frame.lidar_boxes.iter().any(|b| b.object_id == label.object_id) {
                return Err(Error::invalid(
                    cols.at(key::LASER_OBJECT, row).frame(frame.timestamp_micros),
                    "one lidar_box row per object and frame",
                    format!("a second box of object {:?}", label.object_id),
                ));
            }
            frame.lidar_boxes.push(label)
        }
        Component::CameraBox => frame.camera_boxes.push(CameraBoxRecord::decode(cols, row)?.label),
        Component::ProjectedLidarBox => {
            frame.projected_lidar_boxes.push(ProjectedLidarBoxRecord::decode(cols, row)?.label)
        }
        Component::CameraToLidarBoxAssociation => {
            frame.associations.push(AssociationRecord::decode(cols, row)?.association)
        }
        Component::VehiclePose => {
            let r = VehiclePoseRecord::decode(cols, row)?;
            let ts = r.key.timestamp_micros;
            once(&mut frame.vehicle_pose, r.world_from_vehicle, cols, row, "vehicle_pose", ts, "")?;
        }
        Component::Stats => {
            let r = StatsRecord::decode(cols, row)?;
            let ts = r.key.timestamp_micros;
            once(&mut frame.stats, r.stats, cols, row, "stats", ts, "")?;
        }
        Component::CameraHkp | Component::LidarCalibration | Component::CameraCalibration | Component::MapFeature => {}
    }
    Ok(())
}

impl CameraSegmentationRecord {
    /// Decodes the uint16 PNG into a [`PanopticLabel`].
    pub fn decode_label(&self, at: &Location) -> Result<PanopticLabel> {
        let (width, height, values) = crate::io::image::decode_png_u16(&self.png, at)?;
        Ok(PanopticLabel {
            camera: self.camera,
            divisor: self.divisor,
            width,
            height,
            values,
            local_instance_ids: self.local_instance_ids.clone(),
            global_instance_ids: self.global_instance_ids.clone(),
            is_tracked: self.is_tracked.clone(),
            sequence_id: self.sequence_id.clone(),
        })
    }
}

/// Writes the frames of one segment as v2 component files. Calibrations are taken from
/// the first frame that has them; the map is written with [`SegmentWriter::write_map`].
pub struct SegmentWriter {
    root: PathBuf,
    segment: String,
    writers: BTreeMap<Component, ComponentWriter>,
    lidar_calibrations: BTreeMap<LaserName, LidarCalibration>,
    camera_calibrations: BTreeMap<CameraName, CameraCalibration>,
}

impl SegmentWriter {
    pub fn new(root: impl AsRef<Path>, segment: &str) -> Self {
        SegmentWriter {
            root: root.as_ref().to_path_buf(),
            segment: segment.to_string(),
            writers: BTreeMap::new(),
            lidar_calibrations: BTreeMap::new(),
            camera_calibrations: BTreeMap::new(),
        }
    }

    fn put<R: Record>(&mut self, records: &[R]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if !self.writers.contains_key(&R::COMPONENT) {
            let w = ComponentWriter::create(&self.root, R::COMPONENT, &self.segment)?;
            self.writers.insert(R::COMPONENT, w);
        }
        match self.writers.get_mut(&R::COMPONENT) {
            Some(w) => w.write(records),
            None => unreachable!(),
        }
    }

    /// Splits a frame into its component rows and appends them.
    pub fn write_frame(&mut self, frame: &Frame) -> Result<()> {
        let key = FrameKey { segment: self.segment.clone(), timestamp_micros: frame.timestamp_micros };
        let mut lidar = Vec::new();
        let mut pose = Vec::new();
        let mut projection = Vec::new();
        let mut seg = Vec::new();
        for l in &frame.lasers {
            if let Some(c) = &l.calibration {
                self.lidar_calibrations.entry(l.laser).or_insert_with(|| c.clone());
            }
            if let Some(r1) = &l.return1 {
                lidar.push(LidarRecord {
                    key: key.clone(),
                    laser: l.laser,
                    return1: r1.clone(),
                    return2: l.return2.clone(),
                });
            }
            if let Some(p) = &l.pose {
                pose.push(LidarPoseRecord { key: key.clone(), laser: l.laser, return1: p.clone(), return2: None });
            }
            if let Some(p1) = &l.camera_projection1 {
                projection.push(LidarCameraProjectionRecord {
                    key: key.clone(),
                    laser: l.laser,
                    return1: p1.clone(),
                    return2: l.camera_projection2.clone(),
                });
            }
            if let Some(s1) = &l.segmentation1 {
                seg.push(LidarSegmentationRecord {
                    key: key.clone(),
                    laser: l.laser,
                    return1: s1.clone(),
                    return2: l.segmentation2.clone(),
                });
            }
        }
        self.put(&lidar)?;
        self.put(&pose)?;
        self.put(&projection)?;
        self.put(&seg)?;

        let mut images = Vec::new();
        let mut labels = Vec::new();
        for c in &frame.cameras {
            if let Some(cal) = &c.calibration {
                self.camera_calibrations.entry(c.camera).or_insert_with(|| cal.clone());
            }
            if !c.jpeg.is_empty() {
                images.push(CameraImageRecord {
                    key: key.clone(),
                    camera: c.camera,
                    jpeg: c.jpeg.clone(),
                    pose: c.pose,
                    motion: c.motion,
                });
            }
            if let Some(p) = &c.segmentation {
                let at = Location::file(super::writer::component_path(
                    &self.root,
                    Component::CameraSegmentation,
                    &self.segment,
                ))
                .frame(frame.timestamp_micros);
                labels.push(CameraSegmentationRecord {
                    key: key.clone(),
                    camera: c.camera,
                    divisor: p.divisor,
                    png: crate::io::image::encode_png_u16(p.width, p.height, &p.values, &at)?,
                    local_instance_ids: p.local_instance_ids.clone(),
                    global_instance_ids: p.global_instance_ids.clone(),
                    is_tracked: p.is_tracked.clone(),
                    sequence_id: p.sequence_id.clone(),
                    num_cameras_covered: None,
                });
            }
        }
        self.put(&images)?;
        self.put(&labels)?;

        let boxes: Vec<_> =
            frame.lidar_boxes.iter().map(|b| LidarBoxRecord { key: key.clone(), label: b.clone() }).collect();
        self.put(&boxes)?;
        let boxes: Vec<_> =
            frame.camera_boxes.iter().map(|b| CameraBoxRecord { key: key.clone(), label: b.clone() }).collect();
        self.put(&boxes)?;
        let boxes: Vec<_> = frame
            .projected_lidar_boxes
            .iter()
            .map(|b| ProjectedLidarBoxRecord { key: key.clone(), label: b.clone() })
            .collect();
        self.put(&boxes)?;
        let assoc: Vec<_> =
            frame.associations.iter().map(|a| AssociationRecord { key: key.clone(), association: a.clone() }).collect();
        self.put(&assoc)?;
        if let Some(p) = &frame.vehicle_pose {
            self.put(&[VehiclePoseRecord { key: key.clone(), world_from_vehicle: *p }])?;
        }
        if let Some(s) = &frame.stats {
            self.put(&[StatsRecord { key, stats: s.clone() }])?;
        }
        Ok(())
    }

    /// Writes the segment's map (`map_feature` extension).
    pub fn write_map(&mut self, features: &[MapFeature]) -> Result<()> {
        let rows: Vec<_> =
            features.iter().map(|f| MapFeatureRecord { segment: self.segment.clone(), feature: f.clone() }).collect();
        self.put(&rows)
    }

    /// Writes the calibrations and closes every file; returns the paths written.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        let lidar: Vec<_> = self
            .lidar_calibrations
            .values()
            .map(|c| LidarCalibrationRecord { segment: self.segment.clone(), calibration: c.clone() })
            .collect();
        self.put(&lidar)?;
        let camera: Vec<_> = self
            .camera_calibrations
            .values()
            .map(|c| CameraCalibrationRecord { segment: self.segment.clone(), calibration: c.clone() })
            .collect();
        self.put(&camera)?;
        let writers = std::mem::take(&mut self.writers);
        writers.into_values().map(|w| w.finish()).collect()
    }
}
