//! `scenetok tokens`: the scene elements of every frame (points → LiDAR encoder → image
//! model → elements), written for inspection and visualisation.
//!
//! * `OUT` (one row per element): `segment, timestamp_micros, element, kind` (`agent`,
//!   `object`, `ground`), `object_id` (agents), `box_type` (agents, the `BoxType` value),
//!   `points, center_x, center_y, center_z, heading, length, width, height, distance`
//!   (vehicle frame, metres and radians) and `features` (the pose-free feature vector, the
//!   layout of [`crate::models::scene_tokens::FeatureLayout`]; the file's key-value
//!   metadata `scenetok.tokens` records its channels and the decomposition's parameters).
//! * `OUT` with `.points.parquet` (one row per first-return point): `segment,
//!   timestamp_micros, laser, row, col, x, y, z, ground, element` (−1: in no element).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, FixedSizeListBuilder, Float32Builder, Int8Builder, Int32Builder, Int64Builder,
    StringBuilder, UInt16Builder, UInt32Builder,
};
use parquet::file::metadata::KeyValue;

use crate::error::Result;
use crate::io::output::{PendingFile, PendingParquet};
use crate::models::scene_tokens::{FeatureLayout, TokenConfig};
use crate::pipeline::context::{FrameContext, TokenOutput};
use crate::pipeline::stages::{ImageStage, LidarStage, PointsStage, TokensStage};
use crate::pipeline::{FrameSelection, Pipeline, Segments, Source};

use super::features::{parquet_props, refuse_outputs, sibling, write_batch};

/// What to run and export.
pub struct TokenExport {
    /// The LiDAR encoder (its voxel features are pooled per element), if any.
    pub lidar: Option<LidarStage>,
    /// The image model (the feature of each point's pixel is pooled), if any.
    pub image: Option<ImageStage>,
    pub config: TokenConfig,
    /// The segments: all, one by name, or one shard's.
    pub segments: Segments,
    /// At most this many frames per segment.
    pub max_frames: Option<usize>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSummary {
    pub elements_file: PathBuf,
    pub points_file: PathBuf,
    pub frames: usize,
    /// Elements per kind: agents, objects, ground tiles.
    pub kinds: [usize; 3],
    /// Elements dropped by the cap.
    pub dropped: usize,
    pub points: usize,
    pub points_in_elements: usize,
    pub layout: FeatureLayout,
}

/// The per-point file next to the elements file `out`.
pub fn token_points_path(out: &Path) -> PathBuf {
    sibling(out, "tokens", "points")
}

/// Refuses outputs (`out` and its per-point file) that are, or lie inside, the input.
pub fn check_token_outputs(out: &Path, source: &Source) -> Result<()> {
    refuse_outputs(&[out, &token_points_path(out)], source)
}

/// The stages that make a frame's scene elements (points → LiDAR encoder → image model →
/// elements; either model may be left out) and the feature layout they give.
pub fn token_pipeline(
    lidar: Option<LidarStage>,
    image: Option<ImageStage>,
    config: TokenConfig,
) -> Result<(Pipeline, FeatureLayout)> {
    let layout = FeatureLayout {
        image_channels: image.as_ref().map_or(0, |s| s.channels()),
        lidar_channels: lidar.as_ref().map_or(0, |s| s.channels()),
    };
    let mut pipeline = Pipeline::new().then(PointsStage::default())?;
    if let Some(l) = lidar {
        pipeline = pipeline.then(l)?;
    }
    if let Some(i) = image {
        pipeline = pipeline.then(i)?;
    }
    Ok((pipeline.then(TokensStage::new(config))?, layout))
}

/// Runs the pipeline up to the tokens over the source's frames and writes both files, one
/// frame at a time; the old outputs stay until both new ones are complete.
pub fn export_tokens(job: TokenExport, source: &Source, out: &Path) -> Result<TokenSummary> {
    check_token_outputs(out, source)?;
    let (mut pipeline, layout) = token_pipeline(job.lidar, job.image, job.config)?;
    let selection =
        FrameSelection::all().segments(job.segments.clone()).first(job.max_frames).request(pipeline.request());
    let meta = serde_json::json!({
        "image_channels": layout.image_channels,
        "lidar_channels": layout.lidar_channels,
        "geometry": FeatureLayout::GEOMETRY,
        "config": format!("{:?}", job.config),
    });
    let props = parquet_props(out)?
        .into_builder()
        .set_key_value_metadata(Some(vec![KeyValue::new("scenetok.tokens".into(), meta.to_string())]))
        .build();
    let mut elements = PendingParquet::new(out, props)?;
    let points_file = token_points_path(out);
    let mut points = PendingParquet::new(&points_file, parquet_props(&points_file)?)?;
    let mut summary = TokenSummary {
        elements_file: out.to_path_buf(),
        points_file: points_file.clone(),
        frames: 0,
        kinds: [0; 3],
        dropped: 0,
        points: 0,
        points_in_elements: 0,
        layout,
    };
    let mut ctx = FrameContext::default();
    for frame in source.frames(&selection)? {
        ctx.load(frame?);
        pipeline.run(&mut ctx)?;
        let Some(tokens) = &ctx.tokens else { continue };
        let ts = ctx.frame.timestamp_micros;
        write_batch(&mut elements, element_columns(&ctx.segment, ts, tokens, layout))?;
        write_batch(&mut points, point_columns(&ctx, tokens))?;
        summary.frames += 1;
        for e in &tokens.elements.elements {
            summary.kinds[e.kind as usize] += 1;
        }
        summary.dropped += tokens.elements.dropped;
        summary.points += tokens.elements.assignment.len();
        summary.points_in_elements += tokens.elements.assignment.iter().flatten().count();
    }
    let (elements, points): (PendingFile, PendingFile) = (elements.close()?, points.close()?);
    elements.commit()?;
    points.commit()?;
    Ok(summary)
}

fn element_columns(seg: &str, ts: i64, t: &TokenOutput, layout: FeatureLayout) -> Vec<(&'static str, ArrayRef)> {
    let els = &t.elements.elements;
    let n = els.len();
    let width = layout.len();
    let mut segment = StringBuilder::new();
    let mut time = Int64Builder::with_capacity(n);
    let mut id = UInt32Builder::with_capacity(n);
    let mut kind = StringBuilder::new();
    let mut object = StringBuilder::new();
    let mut box_type = Int8Builder::with_capacity(n);
    let mut count = UInt32Builder::with_capacity(n);
    let mut f32s: [Float32Builder; 8] = std::array::from_fn(|_| Float32Builder::with_capacity(n));
    let mut features = FixedSizeListBuilder::with_capacity(Float32Builder::with_capacity(n * width), width as i32, n);
    for (k, e) in els.iter().enumerate() {
        segment.append_value(seg);
        time.append_value(ts);
        id.append_value(k as u32);
        kind.append_value(e.kind.name());
        object.append_option(e.object_id.as_deref());
        box_type.append_option(e.box_type.map(|b| b.value() as i8));
        count.append_value(e.points.len() as u32);
        let values =
            [e.center[0], e.center[1], e.center[2], e.heading, e.extent[0], e.extent[1], e.extent[2], e.distance];
        for (b, v) in f32s.iter_mut().zip(values) {
            b.append_value(v);
        }
        // Every element of a frame has the layout's width (the stage pools the same sources).
        let mut row = e.features.clone();
        row.resize(width, 0.0);
        features.values().append_slice(&row);
        features.append(true);
    }
    let [cx, cy, cz, heading, length, w, h, distance] = f32s.map(|mut b| Arc::new(b.finish()) as ArrayRef);
    vec![
        ("segment", Arc::new(segment.finish())),
        ("timestamp_micros", Arc::new(time.finish())),
        ("element", Arc::new(id.finish())),
        ("kind", Arc::new(kind.finish())),
        ("object_id", Arc::new(object.finish())),
        ("box_type", Arc::new(box_type.finish())),
        ("points", Arc::new(count.finish())),
        ("center_x", cx),
        ("center_y", cy),
        ("center_z", cz),
        ("heading", heading),
        ("length", length),
        ("width", w),
        ("height", h),
        ("distance", distance),
        ("features", Arc::new(features.finish())),
    ]
}

fn point_columns(ctx: &FrameContext, t: &TokenOutput) -> Vec<(&'static str, ArrayRef)> {
    let n = t.elements.assignment.len();
    let mut segment = StringBuilder::new();
    let mut time = Int64Builder::with_capacity(n);
    let mut laser = Int8Builder::with_capacity(n);
    let (mut row, mut col) = (UInt16Builder::with_capacity(n), UInt16Builder::with_capacity(n));
    let (mut x, mut y, mut z) =
        (Float32Builder::with_capacity(n), Float32Builder::with_capacity(n), Float32Builder::with_capacity(n));
    let mut ground = BooleanBuilder::with_capacity(n);
    let mut element = Int32Builder::with_capacity(n);
    for (c, r) in &t.clouds {
        let cloud = &ctx.points[*c];
        for (i, g) in r.clone().enumerate() {
            segment.append_value(&ctx.segment);
            time.append_value(ctx.frame.timestamp_micros);
            laser.append_value(cloud.laser.value() as i8);
            row.append_value(cloud.cloud.pixels[i][0]);
            col.append_value(cloud.cloud.pixels[i][1]);
            let q = cloud.cloud.xyz[i];
            x.append_value(q[0]);
            y.append_value(q[1]);
            z.append_value(q[2]);
            ground.append_value(t.elements.ground[g]);
            element.append_value(t.elements.assignment[g].map_or(-1, |e| e as i32));
        }
    }
    vec![
        ("segment", Arc::new(segment.finish())),
        ("timestamp_micros", Arc::new(time.finish())),
        ("laser", Arc::new(laser.finish())),
        ("row", Arc::new(row.finish())),
        ("col", Arc::new(col.finish())),
        ("x", Arc::new(x.finish())),
        ("y", Arc::new(y.finish())),
        ("z", Arc::new(z.finish())),
        ("ground", Arc::new(ground.finish())),
        ("element", Arc::new(element.finish())),
    ]
}
