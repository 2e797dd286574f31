//! Frames from component batches as they arrive: rows grouped by `(segment, timestamp)` within
//! a tolerance, decoded into the frame as they come (so a bad row is known at once), a frame
//! handed on when every part its preset requires is there, and rejected when one never comes.
//! Pure logic: the caller says what arrived and when, and gets back what happened.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;

use crate::error::{Error, Location};
use crate::io::v2::columns::Cols;
use crate::io::v2::dataset::{add_row, finish_frame};
use crate::io::v2::normalize::{check_required, normalize};
use crate::io::v2::schema::key;
use crate::io::v2::{CameraCalibrationRecord, Component, LidarCalibrationRecord, MapFeatureRecord, Record};
use crate::pipeline::SourceFrame;
use crate::pipeline::stages::motion::SegmentMaps;
use crate::scene::{CameraCalibration, CameraName, Frame, LaserName, LidarCalibration, MapFeature};

use super::stats::RejectReason;

/// Which sensor a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sensor {
    /// The frame as a whole (vehicle pose, boxes, stats).
    Frame,
    Laser(LaserName),
    Camera(CameraName),
}

/// One part of a frame: a component's rows for one sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Part {
    pub component: Component,
    pub sensor: Sensor,
}

impl Part {
    pub fn laser(component: Component, laser: LaserName) -> Part {
        Part { component, sensor: Sensor::Laser(laser) }
    }
    pub fn camera(component: Component, camera: CameraName) -> Part {
        Part { component, sensor: Sensor::Camera(camera) }
    }
    pub fn frame(component: Component) -> Part {
        Part { component, sensor: Sensor::Frame }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sensor {
            Sensor::Frame => write!(f, "{}", self.component.tag()),
            Sensor::Laser(l) => write!(f, "{} of laser {l}", self.component.tag()),
            Sensor::Camera(c) => write!(f, "{} of camera {c}", self.component.tag()),
        }
    }
}

/// What makes a frame and how long to wait for it.
#[derive(Debug, Clone)]
pub struct AssemblyConfig {
    /// Parts a frame must have before it runs (calibrations and the map count as present once
    /// their segment has them).
    pub required: Vec<Part>,
    /// Rows within this many microseconds of an open frame's timestamp join it.
    pub tolerance_micros: i64,
    /// An incomplete frame is rejected this long after its first part arrived.
    pub timeout: Duration,
    /// A frame further than this ahead of the newest of its segment is rejected as from the
    /// future (a broken clock would otherwise make every later frame out of order).
    pub max_ahead_micros: i64,
}

impl AssemblyConfig {
    pub fn new(required: Vec<Part>) -> Self {
        AssemblyConfig {
            required,
            tolerance_micros: 5_000,
            timeout: Duration::from_secs(2),
            max_ahead_micros: 10_000_000,
        }
    }
}

/// A complete frame and when its first part arrived.
#[derive(Debug)]
pub struct Arrived {
    pub frame: SourceFrame,
    pub arrival: Instant,
}

/// What one call of the assembler did.
#[derive(Debug)]
pub enum Event {
    /// A new frame was opened (counted as received).
    Opened,
    /// A frame is complete.
    Complete(Box<Arrived>),
    /// A frame was rejected (it will not run): why, and the message to log.
    FrameRejected { reason: RejectReason, detail: String },
    /// (Rows of) a message were not used: why, and the message to log.
    MessageRejected { reason: RejectReason, detail: String },
}

struct Pending {
    frame: Frame,
    parts: BTreeSet<Part>,
    arrival: Instant,
    index: usize,
}

#[derive(Default)]
struct SegmentState {
    lidar_calibrations: BTreeMap<LaserName, LidarCalibration>,
    camera_calibrations: BTreeMap<CameraName, CameraCalibration>,
    map: Vec<MapFeature>,
    has_map: bool,
    open: BTreeMap<i64, Pending>,
    /// Recently dispatched or rejected frames (late rows for them are not a new frame).
    closed: VecDeque<i64>,
    /// The newest frame dispatched, and the newest timestamp seen.
    last_dispatched: Option<i64>,
    newest: Option<i64>,
    next_index: usize,
}

const CLOSED_KEPT: usize = 256;

impl SegmentState {
    fn close(&mut self, ts: i64) {
        if self.closed.len() == CLOSED_KEPT {
            self.closed.pop_front();
        }
        self.closed.push_back(ts);
    }
    fn has(&self, p: &Part, pending: &Pending) -> bool {
        match (p.component, p.sensor) {
            (Component::LidarCalibration, Sensor::Laser(l)) => self.lidar_calibrations.contains_key(&l),
            (Component::CameraCalibration, Sensor::Camera(c)) => self.camera_calibrations.contains_key(&c),
            (Component::MapFeature, _) => self.has_map,
            _ => pending.parts.contains(p),
        }
    }
}

/// Frames being assembled, per segment.
pub struct Assembler {
    config: AssemblyConfig,
    segments: BTreeMap<String, SegmentState>,
    maps: SegmentMaps,
    /// Stopped: nothing more is taken.
    closed: bool,
}

impl Assembler {
    /// An assembler that publishes each segment's map to `maps` (the motion stage reads it).
    pub fn new(config: AssemblyConfig, maps: SegmentMaps) -> Self {
        Assembler { config, segments: BTreeMap::new(), maps, closed: false }
    }

    pub fn config(&self) -> &AssemblyConfig {
        &self.config
    }

    /// Frames open now.
    pub fn open_frames(&self) -> usize {
        self.segments.values().map(|s| s.open.len()).sum()
    }

    /// Takes one message: `batch` of `component`, received at `now`; `at` names the stream and
    /// message for errors.
    pub fn push(&mut self, component: Component, batch: &RecordBatch, at: &Location, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        if self.closed {
            return events;
        }
        let batch = match check_required(component, &batch.schema(), at)
            .and_then(|()| normalize(batch, component, &component.columns().iter().collect::<Vec<_>>(), at))
        {
            Ok(b) => b,
            Err(e) => {
                let reason = match e {
                    Error::MissingColumn { .. } => RejectReason::MissingColumn,
                    _ => RejectReason::WrongSchema,
                };
                events.push(Event::MessageRejected { reason, detail: e.to_string() });
                return events;
            }
        };
        let cols = Cols::new(&batch, at.clone(), 0);
        if component.is_per_frame() {
            self.push_frame_rows(component, &batch, &cols, now, &mut events);
        } else if let Err(e) = self.push_segment_rows(component, &cols) {
            events.push(Event::MessageRejected { reason: RejectReason::BadValue, detail: e.to_string() });
        } else {
            // Calibrations or a map may be what waiting frames lacked.
            let segments: Vec<String> = self.segments.keys().cloned().collect();
            for s in segments {
                let open: Vec<i64> = self.segments[&s].open.keys().copied().collect();
                for ts in open {
                    self.complete_if_ready(&s, ts, &mut events);
                }
            }
        }
        events
    }

    fn push_segment_rows(&mut self, component: Component, cols: &Cols) -> crate::Result<()> {
        for row in 0..cols.num_rows() {
            match component {
                Component::LidarCalibration => {
                    let r = LidarCalibrationRecord::decode(cols, row)?;
                    let seg = self.segments.entry(r.segment).or_default();
                    seg.lidar_calibrations.insert(r.calibration.laser, r.calibration);
                }
                Component::CameraCalibration => {
                    let r = CameraCalibrationRecord::decode(cols, row)?;
                    let seg = self.segments.entry(r.segment).or_default();
                    seg.camera_calibrations.insert(r.calibration.camera, r.calibration);
                }
                Component::MapFeature => {
                    let r = MapFeatureRecord::decode(cols, row)?;
                    let seg = self.segments.entry(r.segment.clone()).or_default();
                    seg.has_map = true;
                    seg.map.push(r.feature);
                    let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
                    maps.insert(r.segment, Arc::new(seg.map.clone()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn push_frame_rows(
        &mut self,
        component: Component,
        batch: &RecordBatch,
        cols: &Cols,
        now: Instant,
        events: &mut Vec<Event>,
    ) {
        // Rows by frame key, in the batch's order of first appearance.
        let segs = batch.column(0).as_string::<i32>();
        let tss = batch.column(1).as_primitive::<Int64Type>();
        let mut groups: Vec<((String, i64), Vec<usize>)> = Vec::new();
        let mut index: BTreeMap<(&str, i64), usize> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            if segs.is_null(row) || tss.is_null(row) {
                events.push(Event::MessageRejected {
                    reason: RejectReason::BadValue,
                    detail: format!(
                        "{}: a segment and a timestamp on every row, found a null",
                        cols.at(key::SEGMENT, row)
                    ),
                });
                continue;
            }
            let (seg, ts) = (segs.value(row), tss.value(row));
            match index.get(&(seg, ts)) {
                Some(&g) => groups[g].1.push(row),
                None => {
                    index.insert((seg, ts), groups.len());
                    groups.push(((seg.to_string(), ts), vec![row]));
                }
            }
        }
        for ((segment, ts), rows) in groups {
            self.push_group(component, cols, &segment, ts, &rows, now, events);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_group(
        &mut self,
        component: Component,
        cols: &Cols,
        segment: &str,
        ts: i64,
        rows: &[usize],
        now: Instant,
        events: &mut Vec<Event>,
    ) {
        let tol = self.config.tolerance_micros;
        let max_ahead = self.config.max_ahead_micros;
        let seg = self.segments.entry(segment.to_string()).or_default();
        let nearest = seg
            .open
            .range(ts.saturating_sub(tol)..=ts.saturating_add(tol))
            .map(|(k, _)| *k)
            .min_by_key(|k| k.abs_diff(ts));
        let key = match nearest {
            Some(k) => k,
            None => {
                let at = cols
                    .at(key::TIMESTAMP, rows[0])
                    .frame(ts)
                    .detail(format!("segment {segment}, {}", component.tag()));
                // Any i64 may come in: distances without overflow.
                let reject = if seg.closed.iter().any(|c| c.abs_diff(ts) <= tol.unsigned_abs()) {
                    Some((
                        RejectReason::ClosedFrame,
                        "rows of a frame not yet dispatched or rejected",
                        "a frame already closed".to_string(),
                    ))
                } else if seg.last_dispatched.is_some_and(|d| ts < d) {
                    Some((
                        RejectReason::OutOfOrder,
                        "timestamps after the newest dispatched frame",
                        format!("a frame older than {}", seg.last_dispatched.unwrap_or_default()),
                    ))
                } else if seg.newest.is_some_and(|n| ts > n.saturating_add(max_ahead)) {
                    Some((
                        RejectReason::FromTheFuture,
                        "a timestamp near its segment's clock",
                        format!(
                            "{} s ahead of the newest frame",
                            (ts as i128 - seg.newest.unwrap_or_default() as i128) as f64 * 1e-6
                        ),
                    ))
                } else {
                    None
                };
                if let Some((reason, expected, found)) = reject {
                    events.push(Event::MessageRejected {
                        reason,
                        detail: format!("{at}: expected {expected}, found {found}"),
                    });
                    return;
                }
                let index = seg.next_index;
                seg.next_index += 1;
                let frame = Frame { segment: segment.to_string(), timestamp_micros: ts, ..Default::default() };
                seg.open.insert(ts, Pending { frame, parts: BTreeSet::new(), arrival: now, index });
                seg.newest = Some(seg.newest.map_or(ts, |n| n.max(ts)));
                events.push(Event::Opened);
                ts
            }
        };
        let Some(pending) = seg.open.get_mut(&key) else { return };
        let mut added = BTreeSet::new();
        for &row in rows {
            let part = match part_of(component, cols, row) {
                Ok(p) => p,
                Err(e) => {
                    Self::reject_open(seg, key, RejectReason::BadValue, e.to_string(), events);
                    return;
                }
            };
            // Labels may come in several batches; a sensor's data only once.
            if one_row_per_part(component) && pending.parts.contains(&part) && !added.contains(&part) {
                events.push(Event::MessageRejected {
                    reason: RejectReason::Duplicate,
                    detail: format!(
                        "{}: expected one {part} per frame, found a second",
                        cols.at(key::TIMESTAMP, row).frame(ts)
                    ),
                });
                continue;
            }
            if let Err(e) = add_row(&mut pending.frame, component, cols, row)
                .and_then(|()| check_image(&pending.frame, part, cols, row))
            {
                Self::reject_open(seg, key, RejectReason::BadValue, e.to_string(), events);
                return;
            }
            added.insert(part);
        }
        pending.parts.extend(added);
        self.complete_if_ready(segment, key, events);
    }

    fn reject_open(seg: &mut SegmentState, key: i64, reason: RejectReason, detail: String, events: &mut Vec<Event>) {
        seg.open.remove(&key);
        seg.close(key);
        events.push(Event::FrameRejected { reason, detail });
    }

    fn complete_if_ready(&mut self, segment: &str, key: i64, events: &mut Vec<Event>) {
        let Some(seg) = self.segments.get_mut(segment) else { return };
        let Some(pending) = seg.open.get(&key) else { return };
        if !self.config.required.iter().all(|p| seg.has(p, pending)) {
            return;
        }
        let Some(mut pending) = seg.open.remove(&key) else { return };
        seg.close(key);
        seg.last_dispatched = Some(seg.last_dispatched.map_or(key, |d| d.max(key)));
        let lidar: Vec<LidarCalibration> = seg.lidar_calibrations.values().cloned().collect();
        let camera: Vec<CameraCalibration> = seg.camera_calibrations.values().cloned().collect();
        finish_frame(&mut pending.frame, &lidar, &camera);
        let at = Location::file(format!("flight://{segment}")).detail(format!("segment {segment}"));
        events.push(Event::Complete(Box::new(Arrived {
            // A stream has no input order to merge shards back into: unit 0.
            frame: SourceFrame {
                segment: segment.to_string(),
                unit: 0,
                index: pending.index,
                frame: pending.frame,
                at,
            },
            arrival: pending.arrival,
        })));
    }

    /// Rejects every frame still incomplete `timeout` after its first part arrived.
    pub fn expire(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let timeout = self.config.timeout;
        let required = self.config.required.clone();
        for (name, seg) in &mut self.segments {
            let old: Vec<i64> =
                seg.open.iter().filter(|(_, p)| now.duration_since(p.arrival) >= timeout).map(|(k, _)| *k).collect();
            for ts in old {
                let Some(p) = seg.open.get(&ts) else { continue };
                let missing: Vec<String> = required.iter().filter(|r| !seg.has(r, p)).map(|r| r.to_string()).collect();
                let detail = format!(
                    "segment {name}, frame {ts}: expected every required part within {:.1} s, missing {}",
                    timeout.as_secs_f64(),
                    missing.join(", ")
                );
                Self::reject_open(seg, ts, RejectReason::Incomplete, detail, &mut events);
            }
        }
        events
    }

    /// Stops taking messages and closes every open frame (the server is stopping): how many
    /// there were.
    pub fn abandon_all(&mut self) -> usize {
        self.closed = true;
        let mut n = 0;
        for seg in self.segments.values_mut() {
            n += seg.open.len();
            let keys: Vec<i64> = seg.open.keys().copied().collect();
            for k in keys {
                seg.close(k);
            }
            seg.open.clear();
        }
        n
    }
}

/// A camera image's JPEG header must read (its pixels are decoded by the stages that use it):
/// a bad image rejects its frame on arrival, not in the pipeline.
fn check_image(frame: &Frame, part: Part, cols: &Cols, row: usize) -> crate::Result<()> {
    let (Component::CameraImage, Sensor::Camera(camera)) = (part.component, part.sensor) else { return Ok(()) };
    let Some(c) = frame.cameras.iter().find(|c| c.camera == camera) else { return Ok(()) };
    let at =
        cols.at("[CameraImageComponent].image", row).frame(frame.timestamp_micros).detail(format!("camera {camera}"));
    crate::io::image::jpeg_dimensions(&c.jpeg, &at).map(|_| ())
}

/// Whether a frame has at most one row of `component` per sensor (boxes and keypoints have
/// many, and may be sent in several batches).
fn one_row_per_part(component: Component) -> bool {
    !matches!(
        component,
        Component::LidarBox
            | Component::CameraBox
            | Component::ProjectedLidarBox
            | Component::CameraToLidarBoxAssociation
            | Component::CameraHkp
    )
}

/// The part row `row` of `component` is: its laser or camera, or the frame as a whole.
fn part_of(component: Component, cols: &Cols, row: usize) -> crate::Result<Part> {
    if component.column(key::LASER).is_some() {
        Ok(Part::laser(component, cols.enum_value::<LaserName>(key::LASER, row)?))
    } else if component.column(key::CAMERA).is_some() {
        Ok(Part::camera(component, cols.enum_value::<CameraName>(key::CAMERA, row)?))
    } else {
        Ok(Part::frame(component))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::v2::{FrameKey, LidarBoxRecord, VehiclePoseRecord, encode_all};
    use crate::scene::{Box3d, BoxType, DifficultyLevel, LidarBox, Transform};
    use nalgebra::Vector3;

    fn pose(ts: i64) -> RecordBatch {
        encode_all([&VehiclePoseRecord {
            key: FrameKey { segment: "s".into(), timestamp_micros: ts },
            world_from_vehicle: Transform::identity(),
        }])
    }

    fn boxes(ts: i64, ids: &[&str]) -> RecordBatch {
        let records: Vec<LidarBoxRecord> = ids
            .iter()
            .map(|id| LidarBoxRecord {
                key: FrameKey { segment: "s".into(), timestamp_micros: ts },
                label: LidarBox {
                    object_id: id.to_string(),
                    bbox: Box3d {
                        center: Vector3::new(5.0, 0.0, 1.0),
                        size: Vector3::new(4.5, 2.0, 1.6),
                        heading: 0.0,
                    },
                    kind: BoxType::Vehicle,
                    num_lidar_points_in_box: 10,
                    num_top_lidar_points_in_box: 10,
                    speed: Vector3::zeros(),
                    acceleration: Vector3::zeros(),
                    detection_difficulty: DifficultyLevel::Level1,
                    tracking_difficulty: DifficultyLevel::Level1,
                },
            })
            .collect();
        encode_all(&records)
    }

    fn assembler() -> Assembler {
        let mut cfg = AssemblyConfig::new(vec![Part::frame(Component::VehiclePose)]);
        cfg.timeout = Duration::from_millis(100);
        Assembler::new(cfg, SegmentMaps::default())
    }

    fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
        events.iter().filter(|e| f(e)).count()
    }

    #[test]
    fn boxes_in_several_batches_join_before_the_pose_completes_the_frame() {
        let mut a = assembler();
        let (at, now) = (Location::file("flight://test"), Instant::now());
        let mut ev = a.push(Component::LidarBox, &boxes(100, &["a", "b"]), &at, now);
        ev.extend(a.push(Component::LidarBox, &boxes(100, &["c"]), &at, now));
        // Within the tolerance of the open frame.
        ev.extend(a.push(Component::VehiclePose, &pose(1_100), &at, now));
        assert_eq!(count(&ev, |e| matches!(e, Event::Opened)), 1);
        let done: Vec<&Arrived> =
            ev.iter().filter_map(|e| if let Event::Complete(f) = e { Some(&**f) } else { None }).collect();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].frame.frame.lidar_boxes.len(), 3);
        assert_eq!(done[0].frame.frame.timestamp_micros, 100);
        // Late rows of the dispatched frame, a second pose of it, an older frame.
        let late = a.push(Component::LidarBox, &boxes(100, &["d"]), &at, now);
        assert!(matches!(late[..], [Event::MessageRejected { reason: RejectReason::ClosedFrame, .. }]));
        let old = a.push(Component::VehiclePose, &pose(-20_000), &at, now);
        assert!(matches!(old[..], [Event::MessageRejected { reason: RejectReason::OutOfOrder, .. }]));
    }

    #[test]
    fn extreme_timestamps_are_rejected_not_a_panic() {
        let mut a = assembler();
        let (at, now) = (Location::file("flight://test"), Instant::now());
        let first = a.push(Component::VehiclePose, &pose(i64::MIN), &at, now);
        assert_eq!(count(&first, |e| matches!(e, Event::Complete(_))), 1);
        let ev = a.push(Component::VehiclePose, &pose(i64::MAX), &at, now);
        assert!(matches!(ev[..], [Event::MessageRejected { reason: RejectReason::FromTheFuture, .. }]), "{ev:?}");
        let ev = a.push(Component::VehiclePose, &pose(i64::MIN + 1), &at, now);
        assert!(matches!(ev[..], [Event::MessageRejected { reason: RejectReason::ClosedFrame, .. }]), "{ev:?}");
    }

    #[test]
    fn a_frame_without_its_required_part_expires_naming_what_is_missing() {
        let mut a = assembler();
        let (at, now) = (Location::file("flight://test"), Instant::now());
        a.push(Component::LidarBox, &boxes(7, &["a"]), &at, now);
        assert!(a.expire(now).is_empty());
        let ev = a.expire(now + Duration::from_millis(150));
        let Some(Event::FrameRejected { reason: RejectReason::Incomplete, detail }) = ev.first() else {
            panic!("{ev:?}")
        };
        assert!(detail.contains("vehicle_pose"), "{detail}");
        assert_eq!(a.open_frames(), 0);
    }
}
