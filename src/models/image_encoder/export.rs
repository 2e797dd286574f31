//! `scenetok features`: per-camera and per-point image features of a v2 dataset or a v1
//! TFRecord, written as parquet for inspection and for training later models.
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
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::encoder::ImageEncoder;
use super::features::Outputs;
use super::frame::{FrameImages, decode_frame_images_into};
use super::points::{PointFeatures, point_features_into};
use super::preprocess::RgbView;
use crate::error::{Error, Location, Result};
use crate::geom::range_image::laser_frame_to_points;
use crate::io::v2::{Component, Dataset, FrameRequest};
use crate::scene::Frame;

/// The components per-point image features need: the lidars with their calibrations and
/// poses, the camera images with theirs, and the vehicle pose.
pub fn points_and_images() -> FrameRequest {
    FrameRequest::only(&[
        Component::Lidar,
        Component::LidarCalibration,
        Component::LidarPose,
        Component::CameraImage,
        Component::CameraCalibration,
        Component::VehiclePose,
    ])
}

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
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "features".into());
    out.with_file_name(format!("{stem}.cameras.parquet"))
}

/// One return of one laser with its points' image features.
#[derive(Debug)]
pub struct LaserCloud {
    /// `LaserName` value.
    pub laser: i8,
    /// 1 or 2.
    pub ret: u8,
    /// Vehicle-frame points.
    pub xyz: Vec<[f32; 3]>,
    /// Source range-image pixel `[row, col]` of each point.
    pub pixels: Vec<[u16; 2]>,
    pub features: PointFeatures,
}

/// One frame's images run through the encoder and its points' features.
#[derive(Debug, Default)]
pub struct FrameResult {
    pub images: FrameImages,
    pub outputs: Outputs,
    /// Per laser and return.
    pub clouds: Vec<LaserCloud>,
}

/// Encodes a frame's cameras in one run and samples `map` for every LiDAR point.
pub fn frame_features(encoder: &mut ImageEncoder, frame: &Frame, map: &str, at: &Location) -> Result<FrameResult> {
    let mut r = FrameResult::default();
    frame_features_into(encoder, frame, map, at, &mut r)?;
    Ok(r)
}

/// [`frame_features`] into `r`, reusing the memory of the previous frame's result (decoded
/// images, model outputs, per-point features): a stream of frames then runs without fresh
/// pages, which cost as much as the sampling itself.
pub fn frame_features_into(
    encoder: &mut ImageEncoder,
    frame: &Frame,
    map: &str,
    at: &Location,
    r: &mut FrameResult,
) -> Result<()> {
    decode_frame_images_into(frame, at, &mut r.images)?;
    let at_frame = || at.clone().frame(frame.timestamp_micros);
    if r.images.images.is_empty() {
        return Err(Error::invalid(at_frame(), "at least one camera image with its calibration", "none"));
    }
    let views: Vec<RgbView<'_>> = r.images.images.iter().map(RgbView::from).collect();
    encoder.encode_into(&views, &mut r.outputs)?;
    let fmap = r
        .outputs
        .map(map)
        .ok_or_else(|| Error::invalid(at_frame(), "the name of a spatial output of the model", map.to_string()))?;
    // Lasers come in the same order frame after frame: cloud k reuses the last frame's k-th.
    let mut spare = std::mem::take(&mut r.clouds).into_iter().map(|c| c.features);
    for laser in &frame.lasers {
        let pts = laser_frame_to_points(laser, frame.vehicle_pose.as_ref()).map_err(|e| {
            Error::invalid(
                at_frame().detail(format!("laser {}", laser.laser)),
                "convertible range images",
                e.to_string(),
            )
        })?;
        for (ret, cloud) in [(1u8, pts.return1), (2u8, pts.return2)] {
            let Some(cloud) = cloud else { continue };
            let mut features = spare.next().unwrap_or_default();
            point_features_into(&cloud.xyz, &r.images.cameras, fmap, &mut features)?;
            r.clouds.push(LaserCloud {
                laser: laser.laser.value() as i8,
                ret,
                xyz: cloud.xyz,
                pixels: cloud.pixels,
                features,
            });
        }
    }
    Ok(())
}

/// Runs the encoder over a v2 dataset folder or a v1 `.tfrecord` segment file and writes the
/// two parquet files.
pub fn export_features(
    encoder: &mut ImageEncoder,
    data: &Path,
    out: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary> {
    let map = opts.map.clone().unwrap_or_else(|| encoder.config().sample.clone());
    let channels = match encoder.config().output(&map) {
        Some(o) if o.is_spatial() => o.channels,
        _ => {
            return Err(Error::invalid(
                Location::file(&encoder.config().path),
                "the name of a feature_map or patch_tokens output",
                map,
            ));
        }
    };
    let mut pw = PointWriter::new(out, channels)?;
    let cameras_file = cameras_path(out);
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
    let mut r = FrameResult::default();
    let mut one_frame = |seg: &str, frame: &Frame, at: &Location| -> Result<()> {
        frame_features_into(encoder, frame, &map, at, &mut r)?;
        cw.push(seg, frame.timestamp_micros, &r, &map)?;
        for c in &r.clouds {
            summary.points += c.xyz.len();
            summary.points_seen += c.features.seen_count();
            pw.push(seg, frame.timestamp_micros, c)?;
        }
        summary.frames += 1;
        summary.images += r.images.images.len();
        Ok(())
    };
    let take = opts.max_frames.unwrap_or(usize::MAX);
    if data.is_file() {
        // A v1 TFRecord: one segment's frames in order, streamed.
        let mut taken = 0;
        for frame in crate::io::v1::open_frames(data)? {
            let frame = frame?;
            if opts.segment.as_ref().is_some_and(|s| *s != frame.segment) {
                continue;
            }
            if taken == take {
                break;
            }
            let at = Location::file(data).detail(format!("segment {}", frame.segment));
            one_frame(&frame.segment, &frame, &at)?;
            taken += 1;
        }
    } else {
        let ds = Dataset::open(data)?;
        let segments: Vec<String> = match &opts.segment {
            Some(s) => vec![s.clone()],
            None => ds.segments().map(str::to_string).collect(),
        };
        let request = points_and_images();
        for seg in &segments {
            let mut reader = ds.frames(seg, &request)?;
            let timestamps: Vec<i64> = reader.timestamps().to_vec();
            for &ts in timestamps.iter().take(take) {
                let frame = reader.read_frame(ts)?;
                one_frame(seg, &frame, &Location::file(ds.root()).detail(format!("segment {seg}")))?;
            }
        }
    }
    pw.finish()?;
    cw.finish()?;
    Ok(summary)
}

fn writer(path: &Path, schema: arrow::datatypes::SchemaRef) -> Result<ArrowWriter<std::fs::File>> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(Location::file(path), e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).map_err(|e| Error::Parquet { at: Location::file(path), cause: e })?,
        ))
        .build();
    ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| Error::Parquet { at: Location::file(path), cause: e })
}

/// Per-point rows, written one frame at a time.
struct PointWriter {
    path: PathBuf,
    channels: usize,
    w: Option<ArrowWriter<std::fs::File>>,
}

impl PointWriter {
    fn new(path: &Path, channels: usize) -> Result<Self> {
        Ok(PointWriter { path: path.to_path_buf(), channels, w: None })
    }

    fn push(&mut self, seg: &str, ts: i64, cloud: &LaserCloud) -> Result<()> {
        let LaserCloud { laser, ret, xyz, pixels, features: f } = cloud;
        let (laser, ret) = (*laser, *ret);
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
        write_batch(&self.path, &mut self.w, cols)
    }

    fn finish(self) -> Result<()> {
        close(&self.path, self.w)
    }
}

/// Per-camera rows.
struct CameraWriter {
    path: PathBuf,
    with_maps: bool,
    w: Option<ArrowWriter<std::fs::File>>,
}

impl CameraWriter {
    fn new(path: &Path, with_maps: bool) -> Result<Self> {
        Ok(CameraWriter { path: path.to_path_buf(), with_maps, w: None })
    }

    fn push(&mut self, seg: &str, ts: i64, r: &FrameResult, map: &str) -> Result<()> {
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
        write_batch(&self.path, &mut self.w, cols)
    }

    fn finish(self) -> Result<()> {
        close(&self.path, self.w)
    }
}

fn write_batch(path: &Path, w: &mut Option<ArrowWriter<std::fs::File>>, cols: Vec<(&str, ArrayRef)>) -> Result<()> {
    let at = || Location::file(path);
    let batch = RecordBatch::try_from_iter(cols).map_err(|e| Error::Arrow { at: at(), cause: e })?;
    if w.is_none() {
        *w = Some(writer(path, batch.schema())?);
    }
    let Some(w) = w.as_mut() else { unreachable!("created just above") };
    w.write(&batch).map_err(|e| Error::Parquet { at: at(), cause: e })
}

fn close(path: &Path, w: Option<ArrowWriter<std::fs::File>>) -> Result<()> {
    match w {
        Some(w) => w.close().map(|_| ()).map_err(|e| Error::Parquet { at: Location::file(path), cause: e }),
        None => Err(Error::invalid(Location::file(path), "at least one frame to write", "none")),
    }
}
