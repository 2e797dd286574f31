//! Training samples for the motion transformer, as parquet shards: which agents of a
//! scenario become samples, and the one-row-per-sample layout `tools/train/train_motion.py`
//! reads (fixed-size lists, row-major, shapes in [`super::features`]).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch,
    StringArray, UInt8Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use ndarray::{Array1, Array2, Array3};

use super::features::{
    AGENT_FEATURES, AGENT_SLOTS, AgentFrame, AgentInputs, FUTURE_STEPS, FeatureError, FutureTarget, HISTORY_STEPS,
    MAX_POLYLINES, MapPieces, POLYLINE_POINTS, agent_inputs, future_target,
};
use crate::error::{Error, Location, Result};
use crate::scene::{AgentType, Scenario};

/// One agent to learn from: its inputs, its future, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub scenario_id: String,
    pub track_id: i64,
    pub agent_type: AgentType,
    /// Whether the scenario lists it in `tracks_to_predict` (what evaluation scores).
    pub eval_target: bool,
    /// How far a constant-velocity guess ends from where the agent really is at its last
    /// valid future step (m): how hard the sample is, for weighting.
    pub cv_error_m: f32,
    /// The agent's centre height now (world frame, m): its scene tokens' vertical origin.
    pub agent_z: f32,
    /// How close (m) the agent's centre comes, now or over its valid future, to the footprint
    /// of an unlabelled obstacle (see [`obstacle_distances`]): infinite when the world has
    /// none, NaN when unknown (data other than generated worlds).
    pub obstacle_distance_m: f32,
    pub inputs: AgentInputs,
    pub future: FutureTarget,
}

/// Future steps an agent needs (1 s) to be worth a sample.
const MIN_FUTURE_STEPS: usize = 10;
/// An agent that moves less than this over its future, and is slower than
/// [`MOVING_SPEED`] now, is stationary: only one in [`STATIONARY_KEEP`] of those is kept
/// (WOMD favours moving agents the same way; parked cars would otherwise dominate).
const MOVING_DISTANCE_M: f32 = 2.0;
const MOVING_SPEED: f32 = 1.0;
const STATIONARY_KEEP: u64 = 4;

/// The samples of one scenario: every agent but the SDC with a usable current state and at
/// least 1 s of future, moving agents and the scenario's `tracks_to_predict` always,
/// stationary ones one in four (chosen by a hash of scenario and track id, so reruns pick
/// the same). Agents whose inputs cannot be built (a NaN state now) are skipped.
pub fn scenario_samples(scenario: &Scenario) -> Vec<Sample> {
    let map = MapPieces::new(scenario);
    let mut out = Vec::new();
    for (i, track) in scenario.tracks.iter().enumerate() {
        if Some(i) == scenario.sdc_track_index {
            continue;
        }
        let eval_target = scenario.tracks_to_predict.iter().any(|t| t.track_index == i);
        let inputs = match agent_inputs(scenario, &map, i) {
            Ok(x) => x,
            Err(FeatureError::NoCurrentState { .. }) => continue,
            Err(_) => return Vec::new(),
        };
        let future = future_target(scenario, i, &inputs.frame);
        let valid: Vec<usize> = (0..FUTURE_STEPS).filter(|&k| future.valid[k]).collect();
        let Some(&last) = valid.last() else { continue };
        if valid.len() < MIN_FUTURE_STEPS {
            continue;
        }
        let (vx, vy) = (inputs.agents[[0, HISTORY_STEPS - 1, 4]], inputs.agents[[0, HISTORY_STEPS - 1, 5]]);
        let moved = valid.iter().map(|&k| future.xy[[k, 0]].hypot(future.xy[[k, 1]])).fold(0.0f32, f32::max);
        let moving = moved >= MOVING_DISTANCE_M || vx.hypot(vy) >= MOVING_SPEED;
        if !(eval_target || moving || keep_stationary(&scenario.id, track.id)) {
            continue;
        }
        let t = (last + 1) as f32 * 0.1;
        let cv_error_m = (future.xy[[last, 0]] - vx * t).hypot(future.xy[[last, 1]] - vy * t);
        out.push(Sample {
            scenario_id: scenario.id.clone(),
            track_id: track.id,
            agent_type: track.agent_type,
            eval_target,
            cv_error_m,
            agent_z: track.states[scenario.current_time_index].z as f32,
            obstacle_distance_m: f32::NAN,
            inputs,
            future,
        });
    }
    out
}

/// One stationary agent in [`STATIONARY_KEEP`], by FNV-1a of scenario and track id.
fn keep_stationary(scenario: &str, track: i64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scenario.bytes().chain(track.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h.is_multiple_of(STATIONARY_KEEP)
}

/// An unlabelled obstacle's footprint on the ground (world frame, metres, radians).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    pub x: f64,
    pub y: f64,
    pub heading: f64,
    pub length: f64,
    pub width: f64,
}

impl Footprint {
    /// Distance from `(px, py)` to the rectangle (0 on or inside it).
    pub fn distance(&self, px: f64, py: f64) -> f64 {
        let (s, c) = self.heading.sin_cos();
        let (dx, dy) = (px - self.x, py - self.y);
        let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
        let ou = (u.abs() - self.length / 2.0).max(0.0);
        let ov = (v.abs() - self.width / 2.0).max(0.0);
        ou.hypot(ov)
    }
}

/// Sets each sample's `obstacle_distance_m` (samples of `scenario`): the closest its
/// agent's centre comes to any of `obstacles` at the current step or a valid future step;
/// infinite when there are none.
pub fn obstacle_distances(samples: &mut [Sample], scenario: &Scenario, obstacles: &[Footprint]) {
    for sample in samples.iter_mut().filter(|s| s.scenario_id == scenario.id) {
        let Some(track) = scenario.tracks.iter().find(|t| t.id == sample.track_id) else { continue };
        sample.obstacle_distance_m = closest_approach(track, scenario.current_time_index, obstacles);
    }
}

/// The closest the track's centre comes to any of `obstacles` at step `current` or a valid
/// later step (infinite when there are none).
pub fn closest_approach(track: &crate::scene::Track, current: usize, obstacles: &[Footprint]) -> f32 {
    track.states[current.min(track.states.len())..]
        .iter()
        .filter(|s| s.valid)
        .flat_map(|s| obstacles.iter().map(move |o| o.distance(s.x, s.y)))
        .fold(f64::INFINITY, f64::min) as f32
}

/// The columns of a shard, with their fixed list lengths.
pub fn schema() -> SchemaRef {
    let list = |name: &str, item: DataType, len: usize| {
        Field::new(name, DataType::FixedSizeList(Arc::new(Field::new("item", item, false)), len as i32), false)
    };
    Arc::new(Schema::new(vec![
        Field::new("scenario_id", DataType::Utf8, false),
        Field::new("track_id", DataType::Int64, false),
        Field::new("agent_type", DataType::UInt8, false),
        Field::new("eval_target", DataType::Boolean, false),
        Field::new("cv_error_m", DataType::Float32, false),
        Field::new("agent_z", DataType::Float32, false),
        Field::new("obstacle_distance_m", DataType::Float32, false),
        Field::new("frame_x", DataType::Float64, false),
        Field::new("frame_y", DataType::Float64, false),
        Field::new("frame_heading", DataType::Float64, false),
        list("agents", DataType::Float32, AGENT_SLOTS * HISTORY_STEPS * AGENT_FEATURES),
        list("agent_valid", DataType::UInt8, AGENT_SLOTS * HISTORY_STEPS),
        list("agent_types", DataType::UInt8, AGENT_SLOTS),
        list("polylines", DataType::Float32, MAX_POLYLINES * POLYLINE_POINTS * 2),
        list("point_valid", DataType::UInt8, MAX_POLYLINES * POLYLINE_POINTS),
        list("polyline_type", DataType::UInt8, MAX_POLYLINES),
        list("signal", DataType::UInt8, MAX_POLYLINES),
        list("future_xy", DataType::Float32, FUTURE_STEPS * 2),
        list("future_valid", DataType::UInt8, FUTURE_STEPS),
    ]))
}

/// Samples as one record batch of [`schema`].
pub fn to_batch(samples: &[Sample]) -> Result<RecordBatch> {
    let schema = schema();
    let f32_list = |k: usize, values: Vec<f32>| -> Result<ArrayRef> {
        fixed_list(&schema, k, Arc::new(Float32Array::from(values)))
    };
    let u8_list =
        |k: usize, values: Vec<u8>| -> Result<ArrayRef> { fixed_list(&schema, k, Arc::new(UInt8Array::from(values))) };
    let flat_f32 = |f: &dyn Fn(&Sample) -> Vec<f32>| samples.iter().flat_map(f).collect::<Vec<f32>>();
    let flat_u8 = |f: &dyn Fn(&Sample) -> Vec<u8>| samples.iter().flat_map(f).collect::<Vec<u8>>();
    let bools = |a: &mut dyn Iterator<Item = &bool>| a.map(|&v| v as u8).collect::<Vec<u8>>();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(samples.iter().map(|s| s.scenario_id.as_str()))),
        Arc::new(Int64Array::from_iter_values(samples.iter().map(|s| s.track_id))),
        Arc::new(UInt8Array::from_iter_values(samples.iter().map(|s| s.agent_type.value() as u8))),
        Arc::new(BooleanArray::from_iter(samples.iter().map(|s| Some(s.eval_target)))),
        Arc::new(Float32Array::from_iter_values(samples.iter().map(|s| s.cv_error_m))),
        Arc::new(Float32Array::from_iter_values(samples.iter().map(|s| s.agent_z))),
        Arc::new(Float32Array::from_iter_values(samples.iter().map(|s| s.obstacle_distance_m))),
        Arc::new(Float64Array::from_iter_values(samples.iter().map(|s| s.inputs.frame.x))),
        Arc::new(Float64Array::from_iter_values(samples.iter().map(|s| s.inputs.frame.y))),
        Arc::new(Float64Array::from_iter_values(samples.iter().map(|s| s.inputs.frame.heading))),
        f32_list(10, flat_f32(&|s| s.inputs.agents.iter().copied().collect()))?,
        u8_list(11, flat_u8(&|s| bools(&mut s.inputs.agent_valid.iter())))?,
        u8_list(12, flat_u8(&|s| s.inputs.agent_type.to_vec()))?,
        f32_list(13, flat_f32(&|s| s.inputs.polylines.iter().copied().collect()))?,
        u8_list(14, flat_u8(&|s| bools(&mut s.inputs.point_valid.iter())))?,
        u8_list(15, flat_u8(&|s| s.inputs.polyline_type.to_vec()))?,
        u8_list(16, flat_u8(&|s| s.inputs.signal.to_vec()))?,
        f32_list(17, flat_f32(&|s| s.future.xy.iter().copied().collect()))?,
        u8_list(18, flat_u8(&|s| bools(&mut s.future.valid.iter())))?,
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Arrow { at: Location::default(), cause: e })
}

fn fixed_list(schema: &Schema, column: usize, values: ArrayRef) -> Result<ArrayRef> {
    let DataType::FixedSizeList(item, len) = schema.field(column).data_type() else {
        unreachable!("schema(): column {column} is a fixed-size list")
    };
    FixedSizeListArray::try_new(item.clone(), *len, values, None)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| Error::Arrow { at: Location::default().detail(schema.field(column).name()), cause: e })
}

/// Writes a shard: all or nothing (a crash leaves no half-written file under `path`, so
/// an interrupted build resumes by skipping the shards that exist).
pub fn write_shard(path: &Path, samples: &[Sample]) -> Result<()> {
    let batch = to_batch(samples)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_max_row_group_row_count(Some(1024))
        .build();
    let mut out = crate::io::output::PendingParquet::new(path, props)?;
    out.write(&batch)?;
    out.close()?.commit()
}

/// Rows in a shard, from its footer; an error names the file when it is not a complete
/// parquet file with this layout (a shard to rebuild).
pub fn shard_rows(path: &Path) -> Result<usize> {
    let at = || Location::file(path);
    let file = std::fs::File::open(path).map_err(|e| Error::io(at(), e))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::Parquet { at: at(), cause: e })?;
    check_schema(path, builder.schema())?;
    Ok(builder.metadata().file_metadata().num_rows() as usize)
}

fn check_schema(path: &Path, found: &Schema) -> Result<()> {
    for field in schema().fields() {
        match found.field_with_name(field.name()) {
            Ok(f) if f.data_type() == field.data_type() => {}
            Ok(f) => {
                return Err(Error::invalid(
                    Location::file(path).column(field.name()),
                    format!("{:?}", field.data_type()),
                    format!("{:?}", f.data_type()),
                ));
            }
            Err(_) => return Err(Error::MissingColumn { at: Location::file(path), expected: field.name().clone() }),
        }
    }
    Ok(())
}

/// Reads a shard back.
pub fn read_shard(path: &Path) -> Result<Vec<Sample>> {
    let at = || Location::file(path);
    let file = std::fs::File::open(path).map_err(|e| Error::io(at(), e))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::Parquet { at: at(), cause: e })?;
    check_schema(path, builder.schema())?;
    let reader = builder.build().map_err(|e| Error::Parquet { at: at(), cause: e })?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::Arrow { at: at(), cause: e })?;
        out.extend(from_batch(path, &batch)?);
    }
    Ok(out)
}

fn from_batch(path: &Path, batch: &RecordBatch) -> Result<Vec<Sample>> {
    fn column<'a, T: 'static>(path: &Path, batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| Error::MissingColumn { at: Location::file(path), expected: name.to_string() })
    }
    fn values<'a, T: 'static>(path: &Path, batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
        column::<FixedSizeListArray>(path, batch, name)?
            .values()
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| Error::MissingColumn { at: Location::file(path), expected: name.to_string() })
    }
    let ids = column::<StringArray>(path, batch, "scenario_id")?;
    let track = column::<Int64Array>(path, batch, "track_id")?;
    let kind = column::<UInt8Array>(path, batch, "agent_type")?;
    let eval = column::<BooleanArray>(path, batch, "eval_target")?;
    let cv = column::<Float32Array>(path, batch, "cv_error_m")?;
    let agent_z = column::<Float32Array>(path, batch, "agent_z")?;
    let obstacle = column::<Float32Array>(path, batch, "obstacle_distance_m")?;
    let fx = column::<Float64Array>(path, batch, "frame_x")?;
    let fy = column::<Float64Array>(path, batch, "frame_y")?;
    let fh = column::<Float64Array>(path, batch, "frame_heading")?;
    let agents = values::<Float32Array>(path, batch, "agents")?.values();
    let agent_valid = values::<UInt8Array>(path, batch, "agent_valid")?.values();
    let agent_types = values::<UInt8Array>(path, batch, "agent_types")?.values();
    let polylines = values::<Float32Array>(path, batch, "polylines")?.values();
    let point_valid = values::<UInt8Array>(path, batch, "point_valid")?.values();
    let polyline_type = values::<UInt8Array>(path, batch, "polyline_type")?.values();
    let signal = values::<UInt8Array>(path, batch, "signal")?.values();
    let future_xy = values::<Float32Array>(path, batch, "future_xy")?.values();
    let future_valid = values::<UInt8Array>(path, batch, "future_valid")?.values();
    let row = |values: &[f32], r: usize, n: usize| values[r * n..(r + 1) * n].to_vec();
    let row_u8 = |values: &[u8], r: usize, n: usize| values[r * n..(r + 1) * n].to_vec();
    let row_bool = |values: &[u8], r: usize, n: usize| values[r * n..(r + 1) * n].iter().map(|&v| v != 0).collect();
    let shape_err = |e: ndarray::ShapeError| {
        Error::invalid(Location::file(path), "fixed-size lists of the shard layout", e.to_string())
    };
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let agent_type = AgentType::from_value(kind.value(r) as i64).ok_or_else(|| {
            Error::invalid(
                Location::file(path).column("agent_type").row(r),
                AgentType::expected(),
                kind.value(r).to_string(),
            )
        })?;
        let (a, p, m) = (AGENT_SLOTS * HISTORY_STEPS, MAX_POLYLINES * POLYLINE_POINTS, MAX_POLYLINES);
        out.push(Sample {
            scenario_id: ids.value(r).to_string(),
            track_id: track.value(r),
            agent_type,
            eval_target: eval.value(r),
            cv_error_m: cv.value(r),
            agent_z: agent_z.value(r),
            obstacle_distance_m: obstacle.value(r),
            inputs: AgentInputs {
                agents: Array3::from_shape_vec(
                    (AGENT_SLOTS, HISTORY_STEPS, AGENT_FEATURES),
                    row(agents, r, a * AGENT_FEATURES),
                )
                .map_err(shape_err)?,
                agent_valid: Array2::from_shape_vec((AGENT_SLOTS, HISTORY_STEPS), row_bool(agent_valid, r, a))
                    .map_err(shape_err)?,
                agent_type: Array1::from(row_u8(agent_types, r, AGENT_SLOTS)),
                polylines: Array3::from_shape_vec((MAX_POLYLINES, POLYLINE_POINTS, 2), row(polylines, r, p * 2))
                    .map_err(shape_err)?,
                point_valid: Array2::from_shape_vec((MAX_POLYLINES, POLYLINE_POINTS), row_bool(point_valid, r, p))
                    .map_err(shape_err)?,
                polyline_type: Array1::from(row_u8(polyline_type, r, m)),
                signal: Array1::from(row_u8(signal, r, m)),
                frame: AgentFrame { x: fx.value(r), y: fy.value(r), heading: fh.value(r) },
            },
            future: FutureTarget {
                xy: Array2::from_shape_vec((FUTURE_STEPS, 2), row(future_xy, r, FUTURE_STEPS * 2))
                    .map_err(shape_err)?,
                valid: Array1::from_vec(row_bool(future_valid, r, FUTURE_STEPS)),
            },
        });
    }
    Ok(out)
}
