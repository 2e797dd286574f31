//! Where frames and scenarios come from: any input scenetok reads (a v2 dataset folder, a v1
//! `Frame` TFRecord, a WOMD `Scenario` TFRecord; a network stream later), opened once and
//! read the same way whatever it is. Frames are streamed: one frame is in memory at a time.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Location, Result};
use crate::io::detect::{InputKind, detect, tfrecord_files};
use crate::io::v2::motion::{MissingPose, segment_scenarios};
use crate::io::v2::{Dataset, FrameReader, FrameRequest};
use crate::scene::{Frame, MapFeature, Scenario};

use crate::io::shard::Shard;
use serde::{Deserialize, Serialize};

/// An opened input.
pub struct Source {
    path: PathBuf,
    kind: InputKind,
    /// A folder of TFRecords: its files in name order (see [`tfrecord_files`]).
    files: Vec<PathBuf>,
    /// The index of a v2 dataset (segments, components, row groups).
    dataset: Option<Dataset>,
    /// What v2 frames without a vehicle pose become in motion scenarios.
    missing_pose: MissingPose,
}

/// Which segments to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Segments {
    /// Every segment, in the input's order.
    #[default]
    All,
    /// The first segment only.
    First,
    /// One segment by name.
    Named(String),
    /// One shard's segments (of a v2 dataset in name order, of a v1 file in order of first
    /// frame, of a WOMD file by record: see [`Shard`]).
    Shard(Shard),
}

impl Segments {
    /// `Named` when a name is given, else `default`.
    pub fn named_or(name: Option<String>, default: Segments) -> Segments {
        name.map_or(default, Segments::Named)
    }
}

/// Which frames to read and which of their parts.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSelection {
    pub segments: Segments,
    /// Frame indices within each segment (default: all).
    pub frames: Option<Range<usize>>,
    /// The components a v2 frame is read with (a v1 `Frame` always holds everything).
    pub request: FrameRequest,
}

impl FrameSelection {
    /// Every frame of every segment, every component.
    pub fn all() -> Self {
        FrameSelection { segments: Segments::All, frames: None, request: FrameRequest::all() }
    }
    pub fn segments(mut self, segments: Segments) -> Self {
        self.segments = segments;
        self
    }
    /// Frame indices `range` of each segment.
    pub fn frames(mut self, range: Range<usize>) -> Self {
        self.frames = Some(range);
        self
    }
    /// At most `n` frames per segment (`None`: all).
    pub fn first(self, n: Option<usize>) -> Self {
        match n {
            Some(n) => self.frames(0..n),
            None => self,
        }
    }
    pub fn request(mut self, request: FrameRequest) -> Self {
        self.request = request;
        self
    }
}

/// One frame as the source yields it.
#[derive(Debug, Clone)]
pub struct SourceFrame {
    pub segment: String,
    /// The segment's place among the input's units (see [`Shard`]): a v2 dataset's segments in
    /// name order, a v1 file's in order of first frame, a WOMD file's records. With `index`,
    /// it orders frames as the input does (shards' results merge back in this order).
    pub unit: usize,
    /// Index of the frame within its segment.
    pub index: usize,
    pub frame: Frame,
    /// The input file (or folder) and segment, for errors about this frame.
    pub at: Location,
}

impl Source {
    /// Opens `path`, whatever it holds (see [`crate::io::detect`]).
    pub fn open(path: &Path) -> Result<Source> {
        let kind = detect(path)?;
        let dataset = match kind {
            InputKind::V2Dataset => Some(Dataset::open(path)?),
            InputKind::V2ComponentFile => {
                return Err(Error::invalid(
                    Location::file(path),
                    "a v2 dataset folder or a TFRecord (one component file holds no whole frames: pass the dataset folder above its component folder)",
                    "a single v2 component file",
                ));
            }
            InputKind::V1Frames | InputKind::WomdScenarios => None,
        };
        let files = if path.is_dir() { tfrecord_files(path)? } else { Vec::new() };
        Ok(Source { path: path.to_path_buf(), kind, files, dataset, missing_pose: MissingPose::Error })
    }

    /// Lets motion scenarios of a v2 dataset use the identity pose (with a warning) where a
    /// frame has no `vehicle_pose`, instead of failing (`--allow-missing`).
    pub fn allow_missing_pose(mut self, allow: bool) -> Self {
        self.missing_pose = if allow { MissingPose::Identity } else { MissingPose::Error };
        self
    }

    pub fn kind(&self) -> InputKind {
        self.kind
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The v2 dataset behind the source, if it is one.
    pub fn dataset(&self) -> Option<&Dataset> {
        self.dataset.as_ref()
    }

    /// The frames `selection` asks for, streamed. WOMD scenarios give the history steps that
    /// carry LiDAR (v1.2+; segment = scenario id, index = step), with their agents as boxes; a
    /// file with no LiDAR at all is an error that says so.
    pub fn frames(&self, selection: &FrameSelection) -> Result<Frames<'_>> {
        if !self.files.is_empty() {
            return Err(Error::invalid(
                Location::file(&self.path),
                "sensor frames from one TFRecord file (a folder of TFRecords is read for motion scenarios only)",
                format!("a folder of {} TFRecord files", self.files.len()),
            ));
        }
        let inner = match (&self.dataset, self.kind) {
            (Some(ds), _) => {
                let all = ds.segments().enumerate().map(|(k, s)| (k, s.to_string()));
                let segments: VecDeque<(usize, String)> = match &selection.segments {
                    Segments::All => all.collect(),
                    Segments::First => all.take(1).collect(),
                    Segments::Named(s) => {
                        ds.components(s)?;
                        all.filter(|(_, name)| name == s).collect()
                    }
                    Segments::Shard(shard) => all.filter(|(k, _)| shard.keeps(*k)).collect(),
                };
                FramesInner::V2 { ds, segments, current: None }
            }
            (None, InputKind::V1Frames) => FramesInner::V1 {
                reader: Box::new(crate::io::v1::open_frames(&self.path)?),
                segment: None,
                index: 0,
                segments_seen: 0,
            },
            (None, InputKind::WomdScenarios) => FramesInner::Womd {
                records: Box::new(crate::io::tfrecord::open(&self.path)?),
                record: 0,
                pending: VecDeque::new(),
                any: false,
            },
            _ => {
                return Err(Error::invalid(
                    Location::file(&self.path),
                    "sensor frames (a v2 dataset folder, a v1 Frame TFRecord or WOMD Scenarios with LiDAR)",
                    self.kind.describe(),
                ));
            }
        };
        Ok(Frames { source: self, selection: selection.clone(), inner, done: false })
    }

    /// The map of a v2 segment (scenetok's `map_feature`; empty when the dataset has none).
    /// Other inputs carry no per-segment map (a WOMD scenario holds its own).
    pub fn map(&self, segment: &str) -> Result<Vec<MapFeature>> {
        match &self.dataset {
            Some(ds) => ds.read_map(segment),
            None => Ok(Vec::new()),
        }
    }

    /// Motion scenarios: the WOMD file's, or from a v2 dataset a 9.1 s window every `stride`
    /// frames of the selected segments (segments read in parallel, kept in order).
    pub fn scenarios(&self, segments: &Segments, stride: usize) -> Result<Vec<Scenario>> {
        Ok(self.keyed_scenarios(segments, stride)?.into_iter().map(|(_, s)| s).collect())
    }

    /// [`scenarios`](Self::scenarios), each with its place in the whole input's order (what
    /// merges shards' results: see [`Segments::Shard`]).
    pub fn keyed_scenarios(&self, segments: &Segments, stride: usize) -> Result<Vec<(ScenarioKey, Scenario)>> {
        let shard = match segments {
            Segments::Shard(s) => *s,
            _ => Shard::ALL,
        };
        match (&self.dataset, self.kind) {
            (Some(ds), _) => {
                let names: Vec<(usize, String)> = match segments {
                    Segments::All | Segments::Shard(_) => ds.segments().map(str::to_string).enumerate().collect(),
                    Segments::First => ds.segments().next().map(|s| (0, s.to_string())).into_iter().collect(),
                    Segments::Named(s) => {
                        ds.segments().position(|n| n == s).map(|k| (k, s.clone())).into_iter().collect()
                    }
                };
                let names: Vec<(usize, String)> = match (segments, names.is_empty()) {
                    // A name the dataset lacks: its reader says so (and how it is spelled).
                    (Segments::Named(s), true) => vec![(0, s.clone())],
                    _ => names,
                };
                use rayon::prelude::*;
                let per_segment: Vec<Vec<(ScenarioKey, Scenario)>> = names
                    .par_iter()
                    .filter(|(k, _)| shard.keeps(*k))
                    .map(|(k, seg)| {
                        let windows = segment_scenarios(ds, seg, stride, self.missing_pose)?;
                        Ok(windows.into_iter().enumerate().map(|(w, s)| (ScenarioKey::new(*k, w), s)).collect())
                    })
                    .collect::<Result<_>>()?;
                Ok(per_segment.into_iter().flatten().collect())
            }
            (None, InputKind::WomdScenarios) => {
                // A folder's shards are its files (each read by one shard only); a single
                // file's are its records.
                let (files, by_file) = match self.files.is_empty() {
                    true => (vec![self.path.clone()], false),
                    false => (self.files.clone(), true),
                };
                let mut out = Vec::new();
                for (f, file) in files.iter().enumerate() {
                    if by_file && !shard.keeps(f) {
                        continue;
                    }
                    for (r, record) in crate::io::tfrecord::open(file)?.enumerate() {
                        let bytes = record?;
                        if by_file || shard.keeps(r) {
                            let at = Location::file(file).record(r);
                            out.push((ScenarioKey::new(f, r), crate::io::womd::decode_scenario(&bytes, &at)?));
                        }
                    }
                }
                Ok(out)
            }
            _ => Err(Error::invalid(
                Location::file(&self.path),
                "motion scenarios (a v2 dataset folder with boxes and a map, or a WOMD Scenario TFRecord)",
                self.kind.describe(),
            )),
        }
    }
}

/// A scenario's place in its input's order: (segment number in a v2 dataset's name order,
/// window within the segment), (0, record) in a TFRecord, (file number in name order,
/// record) in a folder of TFRecords. Shards' results merge in this
/// order, the order one process reads them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ScenarioKey {
    pub unit: u64,
    pub index: u64,
}

impl ScenarioKey {
    pub fn new(unit: usize, index: usize) -> Self {
        ScenarioKey { unit: unit as u64, index: index as u64 }
    }
}

/// An iterator of the selected frames.
pub struct Frames<'a> {
    source: &'a Source,
    selection: FrameSelection,
    inner: FramesInner<'a>,
    done: bool,
}

enum FramesInner<'a> {
    V2 {
        ds: &'a Dataset,
        /// The segments to read, with their units.
        segments: VecDeque<(usize, String)>,
        /// The segment being read: its unit, name, reader, the selected timestamps, the next one.
        current: Option<(usize, String, FrameReader, Vec<i64>, usize)>,
    },
    V1 {
        reader: Box<crate::io::v1::FrameReader<std::io::BufReader<std::fs::File>>>,
        /// The segment of the frames seen last, and the index of the next one in it.
        segment: Option<String>,
        index: usize,
        /// Segments begun so far (a shard's are every N-th).
        segments_seen: usize,
    },
    Womd {
        records: Box<crate::io::tfrecord::RecordReader<std::io::BufReader<std::fs::File>>>,
        /// The index of the next record.
        record: usize,
        /// The selected frames of the record read last, not yet handed out.
        pending: VecDeque<SourceFrame>,
        /// Whether any record had LiDAR.
        any: bool,
    },
}

impl Frames<'_> {
    fn wanted(&self, index: usize) -> bool {
        self.selection.frames.as_ref().is_none_or(|r| r.contains(&index))
    }
    fn past_range(&self, index: usize) -> bool {
        self.selection.frames.as_ref().is_some_and(|r| index >= r.end)
    }

    fn next_v2(&mut self) -> Option<Result<SourceFrame>> {
        let range = self.selection.frames.clone();
        let FramesInner::V2 { ds, segments, current } = &mut self.inner else { return None };
        loop {
            if let Some((unit, segment, reader, timestamps, next)) = current {
                if let Some(&ts) = timestamps.get(*next) {
                    let index = range.as_ref().map_or(0, |r| r.start) + *next;
                    *next += 1;
                    let at = Location::file(ds.root()).detail(format!("segment {segment}"));
                    return Some(reader.read_frame(ts).map(|frame| SourceFrame {
                        segment: segment.clone(),
                        unit: *unit,
                        index,
                        frame,
                        at,
                    }));
                }
                *current = None;
            }
            let (unit, segment) = segments.pop_front()?;
            let reader = match ds.frames(&segment, &self.selection.request) {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            let all = reader.timestamps();
            let timestamps = match &range {
                Some(r) => all[r.start.min(all.len())..r.end.min(all.len())].to_vec(),
                None => all.to_vec(),
            };
            *current = Some((unit, segment, reader, timestamps, 0));
        }
    }

    fn next_v1(&mut self) -> Option<Result<SourceFrame>> {
        loop {
            let FramesInner::V1 { reader, segment, index, segments_seen } = &mut self.inner else { return None };
            let frame = match reader.next()? {
                Ok(f) => f,
                Err(e) => return Some(Err(e)),
            };
            if segment.as_deref() != Some(frame.segment.as_str()) {
                *segment = Some(frame.segment.clone());
                *index = 0;
                *segments_seen += 1;
            }
            let unit = *segments_seen - 1;
            if let Segments::Shard(shard) = &self.selection.segments
                && !shard.keeps(unit)
            {
                continue;
            }
            let i = *index;
            *index += 1;
            // A v1 file holds one segment's frames in order: the first segment is the one of
            // the first frame, and past the range of a single segment nothing more is wanted.
            if self.selection.segments == Segments::First {
                self.selection.segments = Segments::Named(frame.segment.clone());
            }
            if let Segments::Named(s) = &self.selection.segments {
                if *s != frame.segment {
                    continue;
                }
                if self.past_range(i) {
                    return None;
                }
            }
            if !self.wanted(i) {
                continue;
            }
            let at = Location::file(self.source.path()).detail(format!("segment {}", frame.segment));
            return Some(Ok(SourceFrame { segment: frame.segment.clone(), unit, index: i, frame, at }));
        }
    }
}

impl Frames<'_> {
    fn next_womd(&mut self) -> Option<Result<SourceFrame>> {
        loop {
            let FramesInner::Womd { records, record, pending, any } = &mut self.inner else { return None };
            if let Some(f) = pending.pop_front() {
                return Some(Ok(f));
            }
            let bytes = match records.next() {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Some(Err(e)),
                None if *any => return None,
                None => {
                    return Some(Err(Error::invalid(
                        Location::file(self.source.path()),
                        "WOMD scenarios with history LiDAR (compressed_frame_laser_data, WOMD v1.2+)",
                        "none with LiDAR",
                    )));
                }
            };
            let at = Location::file(self.source.path()).record(*record);
            *record += 1;
            if let Segments::Shard(shard) = &self.selection.segments
                && !shard.keeps(*record - 1)
            {
                continue;
            }
            let frames = match crate::io::womd_sensors::sensor_frames(&bytes, &at) {
                Ok(f) => f,
                Err(e) => return Some(Err(e)),
            };
            *any |= !frames.is_empty();
            let Some((_, first)) = frames.first() else { continue };
            let segment = first.segment.clone();
            match &self.selection.segments {
                Segments::Named(s) if *s != segment => continue,
                Segments::First => self.selection.segments = Segments::Named(segment.clone()),
                _ => {}
            }
            let range = self.selection.frames.clone();
            let unit = *record - 1;
            let at = Location::file(self.source.path()).detail(format!("scenario {segment}"));
            pending.extend(
                frames
                    .into_iter()
                    .filter(|(step, _)| range.as_ref().is_none_or(|r| r.contains(step)))
                    .map(|(index, frame)| SourceFrame { segment: segment.clone(), unit, index, frame, at: at.clone() }),
            );
        }
    }
}

impl Iterator for Frames<'_> {
    type Item = Result<SourceFrame>;
    fn next(&mut self) -> Option<Result<SourceFrame>> {
        if self.done {
            return None;
        }
        let item = match self.inner {
            FramesInner::V2 { .. } => self.next_v2(),
            FramesInner::V1 { .. } => self.next_v1(),
            FramesInner::Womd { .. } => self.next_womd(),
        };
        // The readers stop after their first error; so does the source.
        if item.as_ref().is_none_or(|r| r.is_err()) {
            self.done = true;
        }
        item
    }
}
