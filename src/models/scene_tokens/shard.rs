//! The scene elements of a motion-dataset shard's token frames, in the world frame: the
//! sidecar `{shard}.tokens.parquet` that `scenetok dataset motion --tokens` writes beside
//! each shard and that training and evaluation turn into each sample's tokens
//! ([`super::agent_frame::tokens_for_agent`] with an identity vehicle pose).
//!
//! One row per element: `frame` (the frame's index in its segment), `kind` (0 agent,
//! 1 object, 2 ground), `x, y, z, heading` (world frame, metres and radians) and
//! `features` (the pose-free feature vector); the file's key-value metadata
//! `scenetok.tokens` records the [`FeatureLayout`]. Rows are grouped by frame in the order
//! the frames were written, each frame's elements in their kept order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, UInt8Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::file::metadata::KeyValue;

use super::{Element, ElementKind, FeatureLayout, SceneElements};
use crate::error::{Error, Location, Result};
use crate::scene::Transform;

/// The metadata key holding the layout.
pub const LAYOUT_KEY: &str = "scenetok.tokens";

/// One frame's elements moved to the world frame (their centres and headings; the
/// per-point parts are not kept).
pub fn to_world(elements: &SceneElements, vehicle_pose: &Transform) -> SceneElements {
    let yaw = vehicle_pose.yaw();
    let moved = elements
        .elements
        .iter()
        .map(|e| {
            let c = nalgebra::Vector3::new(e.center[0] as f64, e.center[1] as f64, e.center[2] as f64);
            let w = vehicle_pose.apply(&c);
            Element {
                points: Vec::new(),
                center: [w.x as f32, w.y as f32, w.z as f32],
                heading: crate::geom::polyline::wrap(e.heading as f64 + yaw) as f32,
                ..e.clone()
            }
        })
        .collect();
    SceneElements {
        elements: moved,
        assignment: Vec::new(),
        ground: Vec::new(),
        dropped: elements.dropped,
        layout: elements.layout,
        plane: elements.plane,
    }
}

fn schema(width: usize) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("frame", DataType::UInt32, false),
        Field::new("kind", DataType::UInt8, false),
        Field::new("x", DataType::Float32, false),
        Field::new("y", DataType::Float32, false),
        Field::new("z", DataType::Float32, false),
        Field::new("heading", DataType::Float32, false),
        Field::new(
            "features",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), width as i32),
            false,
        ),
    ]))
}

/// Writes the world-frame elements of each frame (frame index → elements), all or nothing.
pub fn write(path: &Path, layout: FeatureLayout, frames: &BTreeMap<u32, SceneElements>) -> Result<()> {
    let width = layout.len();
    let rows: Vec<(u32, &Element)> =
        frames.iter().flat_map(|(&f, e)| e.elements.iter().map(move |el| (f, el))).collect();
    let at = || Location::file(path);
    if let Some((f, _)) = rows.iter().find(|(_, e)| e.features.len() != width) {
        return Err(Error::invalid(
            at().detail(format!("frame {f}")),
            format!("{width} features per element"),
            "another length",
        ));
    }
    let f32s = |g: &dyn Fn(&Element) -> f32| -> ArrayRef {
        Arc::new(Float32Array::from_iter_values(rows.iter().map(|(_, e)| g(e))))
    };
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values = Float32Array::from_iter_values(rows.iter().flat_map(|(_, e)| e.features.iter().copied()));
    let features = FixedSizeListArray::try_new(item, width as i32, Arc::new(values), None)
        .map_err(|e| Error::Arrow { at: at().column("features"), cause: e })?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|(f, _)| *f))),
        Arc::new(UInt8Array::from_iter_values(rows.iter().map(|(_, e)| e.kind as u8))),
        f32s(&|e| e.center[0]),
        f32s(&|e| e.center[1]),
        f32s(&|e| e.center[2]),
        f32s(&|e| e.heading),
        Arc::new(features),
    ];
    let batch = RecordBatch::try_new(schema(width), columns).map_err(|e| Error::Arrow { at: at(), cause: e })?;
    let meta = serde_json::json!({
        "image_channels": layout.image_channels,
        "lidar_channels": layout.lidar_channels,
        "geometry": FeatureLayout::GEOMETRY,
    });
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_key_value_metadata(Some(vec![KeyValue::new(LAYOUT_KEY.into(), meta.to_string())]))
        .build();
    let mut out = crate::io::output::PendingParquet::new(path, props)?;
    out.write(&batch)?;
    out.close()?.commit()
}

/// Reads a sidecar back: its layout and each frame's world-frame elements.
pub fn read(path: &Path) -> Result<(FeatureLayout, BTreeMap<u32, SceneElements>)> {
    let at = || Location::file(path);
    let file = std::fs::File::open(path).map_err(|e| Error::io(at(), e))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::Parquet { at: at(), cause: e })?;
    let meta = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == LAYOUT_KEY))
        .and_then(|k| k.value.as_deref())
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .ok_or_else(|| Error::invalid(at(), format!("the `{LAYOUT_KEY}` metadata of a token sidecar"), "none"))?;
    let channels = |k: &str| meta.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
    let (Some(image_channels), Some(lidar_channels)) = (channels("image_channels"), channels("lidar_channels")) else {
        return Err(Error::invalid(at(), "image_channels and lidar_channels in the metadata", meta.to_string()));
    };
    let layout = FeatureLayout { image_channels, lidar_channels };
    let width = layout.len();
    let reader = builder.build().map_err(|e| Error::Parquet { at: at(), cause: e })?;
    let mut frames: BTreeMap<u32, SceneElements> = BTreeMap::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::Arrow { at: at(), cause: e })?;
        fn col<'a, T: 'static>(path: &Path, b: &'a RecordBatch, name: &str) -> Result<&'a T> {
            b.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<T>())
                .ok_or_else(|| Error::MissingColumn { at: Location::file(path), expected: name.to_string() })
        }
        let frame = col::<UInt32Array>(path, &batch, "frame")?;
        let kind = col::<UInt8Array>(path, &batch, "kind")?;
        let [x, y, z, h] = ["x", "y", "z", "heading"].map(|c| col::<Float32Array>(path, &batch, c));
        let (x, y, z, h) = (x?, y?, z?, h?);
        let list = col::<FixedSizeListArray>(path, &batch, "features")?;
        if list.value_length() as usize != width {
            return Err(Error::invalid(
                at().column("features"),
                format!("{width} values per element (the metadata's layout)"),
                list.value_length().to_string(),
            ));
        }
        let values = list
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .ok_or_else(|| Error::invalid(at().column("features"), "float32 values", "another type"))?
            .values();
        for r in 0..batch.num_rows() {
            let kind = match kind.value(r) {
                0 => ElementKind::Agent,
                1 => ElementKind::Object,
                2 => ElementKind::Ground,
                v => {
                    return Err(Error::invalid(
                        at().column("kind").row(r),
                        "0 (agent), 1 (object) or 2 (ground)",
                        v.to_string(),
                    ));
                }
            };
            let center = [x.value(r), y.value(r), z.value(r)];
            let entry = frames.entry(frame.value(r)).or_insert_with(|| SceneElements {
                elements: Vec::new(),
                assignment: Vec::new(),
                ground: Vec::new(),
                dropped: 0,
                layout,
                plane: [0.0; 3],
            });
            entry.elements.push(Element {
                kind,
                object_id: None,
                box_type: None,
                points: Vec::new(),
                center,
                heading: h.value(r),
                extent: [0.0; 3],
                distance: center[0].hypot(center[1]),
                features: values[r * width..(r + 1) * width].to_vec(),
            });
        }
    }
    Ok((layout, frames))
}
