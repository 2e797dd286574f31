//! `scenetok bench io`: reading a v2 dataset's lidar columns and converting its range
//! images to points, against pyarrow (the read) and a NumPy port of
//! docs/geometry.md#range-image--points (the conversion), both run by `tools/bench/io_baseline.py` in the same invocation.
//!
//! The conversion is timed as the baseline times it — a segment's decoded range images
//! converted back to back — and also frame by frame right after each decode, as a stream
//! does. Runs alternate ours / baseline; medians and per-run ratios are reported.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::median;
use crate::error::{Error, Location, Result};
use crate::geom::{PointCloud, range_image_to_points_into};
use crate::io::v2::{Component, ComponentFile, Dataset, FrameRequest, LidarRecord, columns::Cols, records::decode_all};
use crate::scene::Frame;

#[derive(Debug, Clone, Serialize)]
pub struct IoBench {
    pub rows: usize,
    pub frames: usize,
    pub points: usize,
    pub coord_sum: f64,
    /// Sum of every point's range, intensity and elongation.
    pub feature_sum: f64,
    /// Reading the lidar columns into Arrow, ours.
    pub read_s: f64,
    /// Reading plus decoding into range images.
    pub read_decode_s: f64,
    /// Converting decoded range images back to back, as the NumPy baseline is timed.
    pub convert_s: f64,
    /// Converting each frame right after its decode, as a stream does (caches hold the
    /// decoder's data, the pool's threads have gone idle).
    pub stream_convert_s: f64,
    pub baseline: Option<Baseline>,
}

/// Frames decoded before a back-to-back conversion run: the baseline holds a whole segment,
/// this bounds memory for Waymo's 199-frame segments (~14 MB of first returns a frame).
const BATCH_FRAMES: usize = 20;

/// One cloud per laser, reused frame after frame as a streaming pipeline would.
#[derive(Default)]
struct Conversion {
    clouds: Vec<PointCloud>,
}

impl Conversion {
    /// Converts every first return of `frame`; returns the seconds it took.
    fn convert(&mut self, frame: &Frame, file: &Path) -> Result<f64> {
        let t = Instant::now();
        self.clouds.resize_with(frame.lasers.len(), PointCloud::default);
        for (laser, cloud) in frame.lasers.iter().zip(self.clouds.iter_mut()) {
            let (Some(ri), Some(calib)) = (&laser.return1, &laser.calibration) else {
                *cloud = PointCloud::default();
                continue;
            };
            range_image_to_points_into(ri, calib, laser.pose.as_ref(), frame.vehicle_pose.as_ref(), cloud).map_err(
                |e| {
                    Error::invalid(
                        Location::file(file).frame(frame.timestamp_micros).detail(format!("laser {}", laser.laser)),
                        "a convertible range image",
                        e.to_string(),
                    )
                },
            )?;
        }
        Ok(t.elapsed().as_secs_f64())
    }

    fn convert_all(&mut self, frames: &[Frame], file: &Path) -> Result<f64> {
        frames.iter().map(|f| self.convert(f, file)).sum()
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Baseline {
    pub read_s: f64,
    /// NumPy, xyz only (upstream's default).
    pub convert_s: f64,
    /// NumPy with upstream's `keep_polar_features` (range, intensity, elongation kept).
    pub convert_features_s: f64,
    pub rows: usize,
    pub points: usize,
    pub coord_sum: f64,
    pub feature_sum: f64,
}

/// `runs` runs, each ours then the baselines (`python` with pyarrow and numpy, when given), so
/// that both sides see the same machine over the same minutes.
pub fn run(root: &Path, python: Option<&Path>, script: &Path, runs: usize) -> Result<IoRuns> {
    let runs = (0..runs.max(1)).map(|_| run_once(root, python, script)).collect::<Result<_>>()?;
    Ok(IoRuns { runs })
}

/// One run of ours and the baselines.
fn run_once(root: &Path, python: Option<&Path>, script: &Path) -> Result<IoBench> {
    let ds = Dataset::open(root)?;
    let segments: Vec<String> = ds.segments().map(str::to_string).collect();
    let (mut rows, mut frames, mut points, mut coord_sum, mut feature_sum) = (0, 0, 0, 0.0, 0.0);
    let (mut read_s, mut read_decode_s, mut convert_s, mut stream_convert_s) = (0.0, 0.0, 0.0, 0.0);
    for seg in &segments {
        let Some(info) = ds.components(seg)?.get(&Component::Lidar) else { continue };
        // 1. The columns, as pyarrow reads them.
        let file = ComponentFile::open(&info.path, Component::Lidar)?;
        let wanted = file.specs(None)?;
        // Row groups in parallel, as pyarrow reads with its thread pool.
        let t = Instant::now();
        let batches = file.read_row_groups_parallel(&wanted)?;
        let segment_read_s = t.elapsed().as_secs_f64();
        read_s += segment_read_s;
        let t = Instant::now();
        let mut records = Vec::new();
        for (i, b) in &batches {
            let cols = Cols::new(b, Location::file(&info.path), file.row_group_start(*i));
            records.extend(decode_all::<LidarRecord>(&cols)?);
        }
        read_decode_s += segment_read_s + t.elapsed().as_secs_f64();
        rows += records.len();
        drop(batches);
        drop(records);
        // 2. The conversion, frame by frame through the joining reader (decode not timed).
        let request = FrameRequest::only(&[
            Component::Lidar,
            Component::LidarCalibration,
            Component::LidarPose,
            Component::VehiclePose,
        ])
        .without_second_returns();
        let mut conv = Conversion::default();
        let mut batch = Vec::with_capacity(BATCH_FRAMES);
        for frame in ds.frames(seg, &request)? {
            let frame = frame?;
            frames += 1;
            // As a stream sees it: right after the frame's decode.
            stream_convert_s += conv.convert(&frame, &info.path)?;
            for cloud in &conv.clouds {
                points += cloud.len();
                coord_sum += cloud.xyz.iter().map(|p| p[0] as f64 + p[1] as f64 + p[2] as f64).sum::<f64>();
                feature_sum += (0..cloud.len())
                    .map(|i| cloud.feature(i).iter().take(3).map(|&v| v as f64).sum::<f64>())
                    .sum::<f64>();
            }
            batch.push(frame);
            // As the NumPy baseline times it: decoded images converted back to back.
            if batch.len() == BATCH_FRAMES {
                convert_s += conv.convert_all(&batch, &info.path)?;
                batch.clear();
            }
        }
        convert_s += conv.convert_all(&batch, &info.path)?;
    }
    let baseline = match python {
        Some(py) => Some(run_baseline(py, script, root)?),
        None => None,
    };
    Ok(IoBench {
        rows,
        frames,
        points,
        coord_sum,
        feature_sum,
        read_s,
        read_decode_s,
        convert_s,
        stream_convert_s,
        baseline,
    })
}

fn run_baseline(python: &Path, script: &Path, root: &Path) -> Result<Baseline> {
    let at = Location::file(script);
    let out =
        std::process::Command::new(python).arg(script).arg(root).output().map_err(|e| Error::io(at.clone(), e))?;
    if !out.status.success() {
        return Err(Error::invalid(
            at,
            "the baseline script to succeed",
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| Error::invalid(at, "one JSON object on stdout", e.to_string()))
}

/// Every run of a `bench io` invocation.
#[derive(Debug, Clone, Serialize)]
pub struct IoRuns {
    pub runs: Vec<IoBench>,
}

impl IoRuns {
    /// Median times of each side and the median of the per-run ratios, then every run's
    /// conversion ratios and the agreement check.
    pub fn report(&self) -> String {
        let Some(first) = self.runs.first() else { return String::new() };
        let n = self.runs.len();
        let mut s = format!(
            "{} lidar rows, {} frames, {} points; median of {n} run(s), each ours then the baselines\n\
             {:<36} {:>10} {:>11} {:>13}\n",
            first.rows, first.frames, first.points, "", "scenetok s", "baseline s", "ratio (runs)"
        );
        let med = |f: &dyn Fn(&IoBench) -> f64| median(self.runs.iter().map(f).collect());
        let row = |name: &str, ours: &dyn Fn(&IoBench) -> f64, base: &dyn Fn(&Baseline) -> f64| {
            let with_base: Vec<(f64, f64)> =
                self.runs.iter().filter_map(|r| r.baseline.as_ref().map(|b| (ours(r), base(b)))).collect();
            let (b, ratio) = if with_base.len() == n {
                let ratios: Vec<f64> = with_base.iter().map(|(o, b)| b / o.max(1e-12)).collect();
                let (lo, hi) = ratios.iter().fold((f64::MAX, 0.0f64), |(l, h), &r| (l.min(r), h.max(r)));
                let range = if n > 1 { format!(" ({lo:.1}-{hi:.1})") } else { String::new() };
                (
                    format!("{:.4}", median(with_base.iter().map(|p| p.1).collect())),
                    format!("{:.2}×{range}", median(ratios)),
                )
            } else {
                ("-".into(), "-".into())
            };
            format!("{name:<36} {:>10.4} {b:>11} {ratio:>13}\n", med(ours))
        };
        s += &row("read lidar columns (vs pyarrow)", &|r| r.read_s, &|b| b.read_s);
        s += &row("range image → points (vs NumPy xyz)", &|r| r.convert_s, &|b| b.convert_s);
        s += &row("  (vs NumPy keep_polar_features)", &|r| r.convert_s, &|b| b.convert_features_s);
        s += &row("  each right after its decode", &|r| r.stream_convert_s, &|b| b.convert_features_s);
        s += &format!(
            "read + decode: {:.1} frames/s; {:.0} points/s converted\n",
            first.frames as f64 / med(&|r| r.read_decode_s).max(1e-12),
            first.points as f64 / med(&|r| r.convert_s).max(1e-12)
        );
        for r in &self.runs {
            s += &r.check();
        }
        s
    }
}

impl IoBench {
    /// Whether the baseline made the same points (count, coordinate and feature sums).
    fn check(&self) -> String {
        let Some(b) = &self.baseline else { return String::new() };
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-3 * b.points.max(1) as f64;
        let agree =
            b.points == self.points && close(b.coord_sum, self.coord_sum) && close(b.feature_sum, self.feature_sum);
        format!(
            "check: NumPy made {} points (xyz sum {:.1}, features {:.1}), scenetok {} ({:.1}, {:.1}): {}\n",
            b.points,
            b.coord_sum,
            b.feature_sum,
            self.points,
            self.coord_sum,
            self.feature_sum,
            if agree { "agree" } else { "DISAGREE" }
        )
    }
}
