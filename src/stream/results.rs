//! What the stream sends back for each frame, and its Arrow form: one row per frame with
//! nested lists (stage times, per-point classes per laser, 2-D boxes, predicted trajectories),
//! so any Arrow reader gets every result of a frame in one record.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray, UInt8Array, UInt32Array, UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

use crate::pipeline::FrameContext;

/// A 2-D box in a camera's full-resolution pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraBox {
    pub camera: String,
    pub class: String,
    pub score: f32,
    /// `[x_min, y_min, x_max, y_max]`.
    pub bbox: [f32; 4],
}

/// One mode of one agent's predicted future.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    pub object_id: String,
    pub agent_type: String,
    pub mode: u8,
    pub probability: f32,
    /// World-frame positions at 2 Hz for 8 s.
    pub xy: Vec<[f32; 2]>,
}

/// Everything the stream returns for one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameResult {
    pub segment: String,
    pub timestamp_micros: i64,
    /// The frame's index in its segment, in order of arrival.
    pub frame_index: u64,
    /// The result came after the deadline.
    pub late: bool,
    /// Arrival of the frame (its last required part) to the result.
    pub latency_ms: f64,
    /// First part to last (how long the frame took to come).
    pub assembly_ms: f64,
    /// Of which waiting in the queue.
    pub queue_ms: f64,
    pub stage_ms: Vec<(String, f64)>,
    /// Points made (all lasers and returns the preset takes).
    pub points: u64,
    /// The LiDAR encoder's class per point, per laser (first returns).
    pub point_classes: Vec<(String, Vec<i8>)>,
    /// Scene elements (tokens) of the frame.
    pub tokens: u32,
    pub detections: Vec<CameraBox>,
    pub trajectories: Vec<Trajectory>,
}

impl FrameResult {
    /// The outputs of a frame the pipeline ran on (timing fields are the caller's).
    pub fn from_context(ctx: &FrameContext) -> FrameResult {
        let mut r = FrameResult {
            segment: ctx.segment.clone(),
            timestamp_micros: ctx.frame.timestamp_micros,
            frame_index: ctx.index as u64,
            stage_ms: ctx.times.iter().map(|(n, d)| (n.to_string(), d.as_secs_f64() * 1e3)).collect(),
            points: ctx.points.iter().map(|c| c.cloud.xyz.len() as u64).sum(),
            tokens: ctx.tokens.as_ref().map_or(0, |t| t.elements.elements.len() as u32),
            ..Default::default()
        };
        if let Some(lidar) = &ctx.lidar {
            for (cloud, classes) in ctx.points.iter().zip(&lidar.classes) {
                if let Some(c) = classes {
                    let c = c.iter().map(|&v| v.clamp(i8::MIN as i32, i8::MAX as i32) as i8).collect();
                    r.point_classes.push((cloud.laser.name().to_string(), c));
                }
            }
        }
        if let Some(det) = &ctx.camera_det {
            for (camera, boxes, _) in &det.cameras {
                for d in boxes {
                    let b = &d.bbox;
                    r.detections.push(CameraBox {
                        camera: camera.name().to_string(),
                        class: d.class.name().to_string(),
                        score: d.score,
                        bbox: [
                            (b.center_x - b.size_x / 2.0) as f32,
                            (b.center_y - b.size_y / 2.0) as f32,
                            (b.center_x + b.size_x / 2.0) as f32,
                            (b.center_y + b.size_y / 2.0) as f32,
                        ],
                    });
                }
            }
        }
        if let Some(m) = &ctx.motion {
            for a in &m.agents {
                for (k, (p, xy)) in a.modes.iter().enumerate() {
                    r.trajectories.push(Trajectory {
                        object_id: a.object_id.clone(),
                        agent_type: a.agent_type.name().to_string(),
                        mode: k as u8,
                        probability: *p,
                        xy: xy.clone(),
                    });
                }
            }
        }
        r
    }
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), false)))
}

fn stage_fields() -> Fields {
    Fields::from(vec![Field::new("stage", DataType::Utf8, false), Field::new("ms", DataType::Float64, false)])
}
fn class_fields() -> Fields {
    let item = Arc::new(Field::new("item", DataType::Int8, false));
    Fields::from(vec![Field::new("laser", DataType::Utf8, false), Field::new("classes", DataType::List(item), false)])
}
fn box_fields() -> Fields {
    let f = |n: &str| Field::new(n, DataType::Float32, false);
    Fields::from(vec![
        Field::new("camera", DataType::Utf8, false),
        Field::new("class", DataType::Utf8, false),
        f("score"),
        f("x_min"),
        f("y_min"),
        f("x_max"),
        f("y_max"),
    ])
}
fn trajectory_fields() -> Fields {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    Fields::from(vec![
        Field::new("object_id", DataType::Utf8, false),
        Field::new("agent_type", DataType::Utf8, false),
        Field::new("mode", DataType::UInt8, false),
        Field::new("probability", DataType::Float32, false),
        Field::new("x", DataType::List(item.clone()), false),
        Field::new("y", DataType::List(item), false),
    ])
}

/// The results' schema (one row per frame).
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("segment", DataType::Utf8, false),
                Field::new("timestamp_micros", DataType::Int64, false),
                Field::new("frame_index", DataType::UInt64, false),
                Field::new("late", DataType::Boolean, false),
                Field::new("latency_ms", DataType::Float64, false),
                Field::new("assembly_ms", DataType::Float64, false),
                Field::new("queue_ms", DataType::Float64, false),
                Field::new("stage_ms", list_of(stage_fields()), false),
                Field::new("points", DataType::UInt64, false),
                Field::new("point_classes", list_of(class_fields()), false),
                Field::new("tokens", DataType::UInt32, false),
                Field::new("detections", list_of(box_fields()), false),
                Field::new("trajectories", list_of(trajectory_fields()), false),
            ]))
        })
        .clone()
}

/// A list column: per row, `lens[i]` consecutive entries of the struct `values`.
fn list(fields: Fields, lens: impl IntoIterator<Item = usize>, columns: Vec<ArrayRef>) -> ArrayRef {
    let values = StructArray::new(fields.clone(), columns, None);
    let item = Arc::new(Field::new("item", DataType::Struct(fields), false));
    Arc::new(ListArray::new(item, OffsetBuffer::from_lengths(lens), Arc::new(values), None))
}

/// A list-of-primitive column from per-row values.
fn prim_list<A: arrow::array::Array + 'static>(rows: &[usize], values: A) -> ArrayRef {
    let item = Arc::new(Field::new("item", values.data_type().clone(), false));
    Arc::new(ListArray::new(item, OffsetBuffer::from_lengths(rows.iter().copied()), Arc::new(values), None))
}

/// The results as one record batch.
pub fn to_batch(results: &[FrameResult]) -> RecordBatch {
    let strs = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;
    let f32s = |v: Vec<f32>| Arc::new(Float32Array::from(v)) as ArrayRef;
    let stages: Vec<&(String, f64)> = results.iter().flat_map(|r| &r.stage_ms).collect();
    let stage_ms = list(
        stage_fields(),
        results.iter().map(|r| r.stage_ms.len()),
        vec![
            strs(stages.iter().map(|s| s.0.as_str()).collect()),
            Arc::new(Float64Array::from_iter_values(stages.iter().map(|s| s.1))),
        ],
    );
    let classes: Vec<&(String, Vec<i8>)> = results.iter().flat_map(|r| &r.point_classes).collect();
    let point_classes = list(
        class_fields(),
        results.iter().map(|r| r.point_classes.len()),
        vec![
            strs(classes.iter().map(|c| c.0.as_str()).collect()),
            prim_list(
                &classes.iter().map(|c| c.1.len()).collect::<Vec<_>>(),
                Int8Array::from_iter_values(classes.iter().flat_map(|c| c.1.iter().copied())),
            ),
        ],
    );
    let boxes: Vec<&CameraBox> = results.iter().flat_map(|r| &r.detections).collect();
    let coord = |k: usize| f32s(boxes.iter().map(|b| b.bbox[k]).collect());
    let detections = list(
        box_fields(),
        results.iter().map(|r| r.detections.len()),
        vec![
            strs(boxes.iter().map(|b| b.camera.as_str()).collect()),
            strs(boxes.iter().map(|b| b.class.as_str()).collect()),
            f32s(boxes.iter().map(|b| b.score).collect()),
            coord(0),
            coord(1),
            coord(2),
            coord(3),
        ],
    );
    let trajs: Vec<&Trajectory> = results.iter().flat_map(|r| &r.trajectories).collect();
    let lens: Vec<usize> = trajs.iter().map(|t| t.xy.len()).collect();
    let axis = |k: usize| {
        prim_list(&lens, Float32Array::from_iter_values(trajs.iter().flat_map(|t| t.xy.iter().map(move |p| p[k]))))
    };
    let trajectories = list(
        trajectory_fields(),
        results.iter().map(|r| r.trajectories.len()),
        vec![
            strs(trajs.iter().map(|t| t.object_id.as_str()).collect()),
            strs(trajs.iter().map(|t| t.agent_type.as_str()).collect()),
            Arc::new(UInt8Array::from_iter_values(trajs.iter().map(|t| t.mode))),
            f32s(trajs.iter().map(|t| t.probability).collect()),
            axis(0),
            axis(1),
        ],
    );
    let columns: Vec<ArrayRef> = vec![
        strs(results.iter().map(|r| r.segment.as_str()).collect()),
        Arc::new(Int64Array::from_iter_values(results.iter().map(|r| r.timestamp_micros))),
        Arc::new(UInt64Array::from_iter_values(results.iter().map(|r| r.frame_index))),
        Arc::new(BooleanArray::from(results.iter().map(|r| r.late).collect::<Vec<_>>())),
        Arc::new(Float64Array::from_iter_values(results.iter().map(|r| r.latency_ms))),
        Arc::new(Float64Array::from_iter_values(results.iter().map(|r| r.assembly_ms))),
        Arc::new(Float64Array::from_iter_values(results.iter().map(|r| r.queue_ms))),
        stage_ms,
        Arc::new(UInt64Array::from_iter_values(results.iter().map(|r| r.points))),
        point_classes,
        Arc::new(UInt32Array::from_iter_values(results.iter().map(|r| r.tokens))),
        detections,
        trajectories,
    ];
    // Every column is built to the schema above; a mismatch is a bug here, not bad input.
    RecordBatch::try_new(schema(), columns).unwrap_or_else(|e| panic!("results batch does not match its schema: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    #[test]
    fn nested_results_round_trip_through_arrow() {
        let a = FrameResult {
            segment: "s".into(),
            timestamp_micros: 7,
            stage_ms: vec![("points".into(), 1.5), ("motion".into(), 2.0)],
            point_classes: vec![("TOP".into(), vec![1, 2, 3])],
            detections: vec![CameraBox {
                camera: "FRONT".into(),
                class: "VEHICLE".into(),
                score: 0.9,
                bbox: [1.0, 2.0, 3.0, 4.0],
            }],
            trajectories: vec![Trajectory {
                object_id: "o".into(),
                agent_type: "vehicle".into(),
                mode: 0,
                probability: 0.5,
                xy: vec![[1.0, 2.0], [3.0, 4.0]],
            }],
            ..Default::default()
        };
        let b = FrameResult { segment: "t".into(), timestamp_micros: 8, late: true, ..Default::default() };
        let batch = to_batch(&[a, b]);
        assert_eq!(batch.num_rows(), 2);
        let stages = batch.column_by_name("stage_ms").unwrap().as_list::<i32>();
        assert_eq!((stages.value_length(0), stages.value_length(1)), (2, 0));
        let traj = batch.column_by_name("trajectories").unwrap().as_list::<i32>();
        let t0 = traj.value(0);
        let y = t0.as_struct().column_by_name("y").unwrap().as_list::<i32>().value(0);
        assert_eq!(y.as_primitive::<arrow::datatypes::Float32Type>().values(), &[2.0, 4.0]);
        let classes = batch.column_by_name("point_classes").unwrap().as_list::<i32>().value(0);
        assert_eq!(classes.as_struct().column(1).as_list::<i32>().value(0).len(), 3);
        assert!(batch.column_by_name("late").unwrap().as_boolean().value(1));
    }
}
