//! `scenetok features`: per-camera and per-point image features of a v2 dataset or a v1
//! TFRecord (the points and image stages of the pipeline), written as parquet for
//! inspection and for training later models.
//!
//! * `OUT` (per point, one row per LiDAR point of both returns of every laser):
//!   `segment, timestamp_micros, laser, return, row, col, x, y, z, camera, u, v, feature`
//!   (`camera` 0 = seen by no camera, then `u`, `v` are NaN and `feature` zeros).
//! * `OUT` with `.cameras.parquet` (per camera image): `segment, timestamp_micros, camera,
//!   width, height, input_width, input_height, scale_x, scale_y, pooled, top5_class,
//!   top5_logit`, plus `map_name, map_shape, map` (the sampled map, `[C, H, W]`) with
//!   `with_maps`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListBuilder, Float32Builder, Int8Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder, UInt16Builder, UInt32Builder,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::models::image_encoder::PointFeatures;

use crate::error::{Error, Location, Result};
use crate::io::output::{PendingFile, PendingParquet, refuse_input};
use crate::models::image_encoder::ImageEncoder;
use crate::pipeline::context::{FrameContext, ImageOutput, LaserCloud};
use crate::pipeline::stages::{ImageStage, PointsStage};
use crate::pipeline::{FrameSelection, Pipeline, Segments, Source};

/// What to export.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportOptions {
    /// Only this segment (default: all).
    pub segment: Option<String>,
    /// At most this many frames per segment (default: all).
    pub max_frames: Option<usize>,
    /// The spatial output sampled per point (default: the config's `sample`).
    pub map: Option<String>,
    /// Also store the sampled map of every camera (large).
    pub with_maps: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    pub points_file: PathBuf,
    pub cameras_file: PathBuf,
    pub frames: usize,
    pub points: usize,
    pub points_seen: usize,
    pub images: usize,
    pub channels: usize,
}

/// The per-camera file next to the per-point file `out`.
pub fn cameras_path(out: &Path) -> PathBuf {
    sibling(out, "features", "cameras")
}

/// `OUT`'s stem + `.{part}.parquet`, next to `OUT` (`default_stem` when it has none).
pub(super) fn sibling(out: &Path, default_stem: &str, part: &str) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| default_stem.into());
    out.with_file_name(format!("{stem}.{part}.parquet"))
}

/// Refuses outputs (`out` and its per-camera file) that are, or lie inside, the input.
pub fn check_outputs(out: &Path, source: &Source) -> Result<()> {
    refuse_outputs(&[out, &cameras_path(out)], source)
}

/// Refuses outputs that are, or lie inside, the source.
pub(super) fn refuse_outputs(outs: &[&Path], source: &Source) -> Result<()> {
    outs.iter().try_for_each(|o| refuse_input(o, &[source.path()]))
}

/// Runs the points and image stages over the source's frames and writes the two parquet
/// files, one frame at a time.
pub fn export_features(
    encoder: ImageEncoder,
    source: &Source,
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary> {
    let image = ImageStage::new(encoder, opts.map.clone())?;
    let channels = image.channels();
    let mut pipeline = Pipeline::new().then(PointsStage::default().with_second_returns())?.then(image)?;
    let selection = FrameSelection::all()
        .segments(Segments::named_or(opts.segment.clone(), Segments::All))
        .first(opts.max_frames)
        .request(pipeline.request());
    let cameras_file = cameras_path(out);
    check_outputs(out, source)?;
    let mut pw = PointWriter::new(out, channels)?;
    let mut cw = CameraWriter::new(&cameras_file, opts.with_maps)?;
    let mut summary = ExportSummary {
        points_file: out.to_path_buf(),
        cameras_file: cameras_file.clone(),
        frames: 0,
        points: 0,
        points_seen: 0,
        images: 0,
        channels,
    };
    let mut ctx = FrameContext::default();
    for frame in source.frames(&selection)? {
        ctx.load(frame?);
        pipeline.run(&mut ctx)?;
        let Some(image) = &ctx.image else { continue };
        let ts = ctx.frame.timestamp_micros;
        cw.push(&ctx.segment, ts, image)?;
        for (cloud, features) in ctx.points.iter().zip(&image.points) {
            summary.points += cloud.cloud.len();
            summary.points_seen += features.seen_count();
            pw.push(&ctx.segment, ts, cloud, features)?;
        }
        summary.frames += 1;
        summary.images += image.images.images.len();
    }
    // Both files complete, then both in place: a failure on the way leaves the old outputs.
    let (points, cameras) = (pw.finish()?, cw.finish()?);
    points.commit()?;
    cameras.commit()?;
    Ok(summary)
}

/// The writer properties of the exports: zstd level 1.
pub(super) fn parquet_props(path: &Path) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(1).map_err(|e| Error::Parquet { at: Location::file(path), cause: e })?;
    Ok(WriterProperties::builder().set_compression(Compression::ZSTD(level)).build())
}

/// A pending parquet output, zstd level 1.
fn parquet_out(path: &Path) -> Result<PendingParquet> {
    PendingParquet::new(path, parquet_props(path)?)
}

/// Per-point rows, written one frame at a time.
struct PointWriter {
    out: PendingParquet,
    channels: usize,
}

impl PointWriter {
    fn new(path: &Path, channels: usize) -> Result<Self> {
        Ok(PointWriter { out: parquet_out(path)?, channels })
    }

    fn push(&mut self, seg: &str, ts: i64, cloud: &LaserCloud, f: &PointFeatures) -> Result<()> {
        let (laser, ret) = (cloud.laser.value() as i8, cloud.ret as u8);
        let (xyz, pixels) = (&cloud.cloud.xyz, &cloud.cloud.pixels);
        let n = xyz.len();
        let mut segment = StringBuilder::new();
        let mut time = Int64Builder::with_capacity(n);
        let mut lasers = Int8Builder::with_capacity(n);
        let mut returns = Int8Builder::with_capacity(n);
        let (mut row, mut col) = (UInt16Builder::with_capacity(n), UInt16Builder::with_capacity(n));
        let (mut x, mut y, mut z) =
            (Float32Builder::with_capacity(n), Float32Builder::with_capacity(n), Float32Builder::with_capacity(n));
        let mut camera = Int8Builder::with_capacity(n);
        let (mut u, mut v) = (Float32Builder::with_capacity(n), Float32Builder::with_capacity(n));
        let mut feat = FixedSizeListBuilder::with_capacity(
            Float32Builder::with_capacity(n * self.channels),
            self.channels as i32,
            n,
        );
        let values = f.features.as_slice().unwrap_or(&[]);
        for i in 0..n {
            segment.append_value(seg);
            time.append_value(ts);
            lasers.append_value(laser);
            returns.append_value(ret as i8);
            row.append_value(pixels[i][0]);
            col.append_value(pixels[i][1]);
            x.append_value(xyz[i][0]);
            y.append_value(xyz[i][1]);
            z.append_value(xyz[i][2]);
            camera.append_value(f.camera[i].map_or(0, |c| c.value() as i8));
            u.append_value(f.uv[i][0]);
            v.append_value(f.uv[i][1]);
            feat.values().append_slice(&values[i * self.channels..(i + 1) * self.channels]);
            feat.append(true);
        }
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("segment", Arc::new(segment.finish())),
            ("timestamp_micros", Arc::new(time.finish())),
            ("laser", Arc::new(lasers.finish())),
            ("return", Arc::new(returns.finish())),
            ("row", Arc::new(row.finish())),
            ("col", Arc::new(col.finish())),
            ("x", Arc::new(x.finish())),
            ("y", Arc::new(y.finish())),
            ("z", Arc::new(z.finish())),
            ("camera", Arc::new(camera.finish())),
            ("u", Arc::new(u.finish())),
            ("v", Arc::new(v.finish())),
            ("feature", Arc::new(feat.finish())),
        ];
        write_batch(&mut self.out, cols)
    }

    fn finish(self) -> Result<PendingFile> {
        self.out.close()
    }
}

/// Per-camera rows.
struct CameraWriter {
    out: PendingParquet,
    with_maps: bool,
}

impl CameraWriter {
    fn new(path: &Path, with_maps: bool) -> Result<Self> {
        Ok(CameraWriter { out: parquet_out(path)?, with_maps })
    }

    fn push(&mut self, seg: &str, ts: i64, r: &ImageOutput) -> Result<()> {
        let map = r.map.as_str();
        let mut segment = StringBuilder::new();
        let mut time = Int64Builder::new();
        let mut camera = Int8Builder::new();
        let (mut width, mut height, mut iw, mut ih) =
            (UInt32Builder::new(), UInt32Builder::new(), UInt32Builder::new(), UInt32Builder::new());
        let (mut sx, mut sy) = (Float32Builder::new(), Float32Builder::new());
        let mut pooled = ListBuilder::new(Float32Builder::new());
        let mut top_class = ListBuilder::new(Int32Builder::new());
        let mut top_logit = ListBuilder::new(Float32Builder::new());
        let mut map_name = StringBuilder::new();
        let mut map_shape = ListBuilder::new(Int32Builder::new());
        let mut map_values = ListBuilder::new(Float32Builder::new());
        let fmap = r.outputs.map(map);
        // The first vector output is the embedding, the last the logits (when there are two).
        let emb = r.outputs.vectors.first().map(|(_, a)| a);
        let logits = if r.outputs.vectors.len() > 1 { r.outputs.vectors.last().map(|(_, a)| a) } else { None };
        for (n, (name, _)) in r.images.cameras.iter().enumerate() {
            let g = &r.outputs.geometry[n];
            segment.append_value(seg);
            time.append_value(ts);
            camera.append_value(name.value() as i8);
            width.append_value(g.width);
            height.append_value(g.height);
            iw.append_value(g.content_width);
            ih.append_value(g.content_height);
            sx.append_value(g.scale_x as f32);
            sy.append_value(g.scale_y as f32);
            match emb {
                Some(a) => {
                    pooled.values().append_slice(a.row(n).as_slice().unwrap_or(&[]));
                    pooled.append(true);
                }
                None => pooled.append(false),
            }
            match logits {
                Some(a) => {
                    let row = a.row(n);
                    let mut idx: Vec<usize> = (0..row.len()).collect();
                    idx.sort_by(|&i, &j| row[j].total_cmp(&row[i]));
                    for &i in idx.iter().take(5) {
                        top_class.values().append_value(i as i32);
                        top_logit.values().append_value(row[i]);
                    }
                    top_class.append(true);
                    top_logit.append(true);
                }
                None => {
                    top_class.append(false);
                    top_logit.append(false);
                }
            }
            if self.with_maps
                && let Some(m) = fmap
            {
                let (cw, ch) = m.content_cells(n);
                let c = m.channels();
                map_name.append_value(&m.name);
                map_shape.values().append_slice(&[c as i32, ch as i32, cw as i32]);
                map_shape.append(true);
                let img = m.data.index_axis(ndarray::Axis(0), n);
                for k in 0..c {
                    for row in 0..ch {
                        for col in 0..cw {
                            map_values.values().append_value(img[[k, row, col]]);
                        }
                    }
                }
                map_values.append(true);
            }
        }
        let mut cols: Vec<(&str, ArrayRef)> = vec![
            ("segment", Arc::new(segment.finish())),
            ("timestamp_micros", Arc::new(time.finish())),
            ("camera", Arc::new(camera.finish())),
            ("width", Arc::new(width.finish())),
            ("height", Arc::new(height.finish())),
            ("input_width", Arc::new(iw.finish())),
            ("input_height", Arc::new(ih.finish())),
            ("scale_x", Arc::new(sx.finish())),
            ("scale_y", Arc::new(sy.finish())),
            ("pooled", Arc::new(pooled.finish())),
            ("top5_class", Arc::new(top_class.finish())),
            ("top5_logit", Arc::new(top_logit.finish())),
        ];
        if self.with_maps {
            cols.push(("map_name", Arc::new(map_name.finish())));
            cols.push(("map_shape", Arc::new(map_shape.finish())));
            cols.push(("map", Arc::new(map_values.finish())));
        }
        write_batch(&mut self.out, cols)
    }

    fn finish(self) -> Result<PendingFile> {
        self.out.close()
    }
}

pub(super) fn write_batch(out: &mut PendingParquet, cols: Vec<(&str, ArrayRef)>) -> Result<()> {
    let batch =
        RecordBatch::try_from_iter(cols).map_err(|e| Error::Arrow { at: Location::file(out.target()), cause: e })?;
    out.write(&batch)
}
