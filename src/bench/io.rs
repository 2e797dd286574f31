//! `scenetok bench io`: reading a v2 dataset's lidar columns and converting its range
//! images to points, against pyarrow (the read) and a NumPy port of reference/waymo.md
//! §2.2 (the conversion), both run by `tools/bench/io_baseline.py` in the same invocation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Location, Result};
use crate::geom::{PointCloud, range_image_to_points_into};
use crate::io::v2::{Component, ComponentFile, Dataset, FrameRequest, LidarRecord, columns::Cols, records::decode_all};

#[derive(Debug, Clone, Serialize)]
pub struct IoBench {
    pub rows: usize,
    pub frames: usize,
    pub points: usize,
    pub coord_sum: f64,
    /// Reading the lidar columns into Arrow, ours.
    pub read_s: f64,
    /// Reading plus decoding into range images.
    pub read_decode_s: f64,
    pub convert_s: f64,
    pub baseline: Option<Baseline>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Baseline {
    pub read_s: f64,
    pub convert_s: f64,
    pub rows: usize,
    pub points: usize,
    pub coord_sum: f64,
}

/// Runs our side; `python` (with pyarrow and numpy) runs the baselines when given.
pub fn run(root: &Path, python: Option<&Path>, script: &Path) -> Result<IoBench> {
    let ds = Dataset::open(root)?;
    let segments: Vec<String> = ds.segments().map(str::to_string).collect();
    let (mut rows, mut frames, mut points, mut coord_sum) = (0, 0, 0, 0.0);
    let (mut read_s, mut read_decode_s, mut convert_s) = (0.0, 0.0, 0.0);
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
        // One cloud per laser, reused frame after frame as a streaming pipeline would.
        let mut clouds: Vec<PointCloud> = Vec::new();
        for frame in ds.frames(seg, &request)? {
            let frame = frame?;
            frames += 1;
            let t = Instant::now();
            clouds.resize_with(frame.lasers.len(), PointCloud::default);
            for (laser, cloud) in frame.lasers.iter().zip(clouds.iter_mut()) {
                let (Some(ri), Some(calib)) = (&laser.return1, &laser.calibration) else {
                    *cloud = PointCloud::default();
                    continue;
                };
                range_image_to_points_into(ri, calib, laser.pose.as_ref(), frame.vehicle_pose.as_ref(), cloud)
                    .map_err(|e| {
                        Error::invalid(
                            Location::file(&info.path)
                                .frame(frame.timestamp_micros)
                                .detail(format!("laser {}", laser.laser)),
                            "a convertible range image",
                            e.to_string(),
                        )
                    })?;
            }
            convert_s += t.elapsed().as_secs_f64();
            for cloud in &clouds {
                points += cloud.len();
                coord_sum += cloud.xyz.iter().map(|p| p[0] as f64 + p[1] as f64 + p[2] as f64).sum::<f64>();
            }
        }
    }
    let baseline = match python {
        Some(py) => Some(run_baseline(py, script, root)?),
        None => None,
    };
    Ok(IoBench { rows, frames, points, coord_sum, read_s, read_decode_s, convert_s, baseline })
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

impl IoBench {
    pub fn report(&self) -> String {
        let mut s = format!(
            "{} lidar rows, {} frames, {} points\n{:<34} {:>10} {:>12} {:>10}\n",
            self.rows, self.frames, self.points, "", "scenetok s", "baseline s", "ratio"
        );
        let row = |name: &str, ours: f64, base: Option<f64>| {
            let (b, r) = match base {
                Some(b) => (format!("{b:.4}"), format!("{:.2}×", b / ours.max(1e-12))),
                None => ("-".into(), "-".into()),
            };
            format!("{name:<34} {ours:>10.4} {b:>12} {r:>10}\n")
        };
        s += &row("read lidar columns (vs pyarrow)", self.read_s, self.baseline.as_ref().map(|b| b.read_s));
        s += &row("range image → points (vs NumPy)", self.convert_s, self.baseline.as_ref().map(|b| b.convert_s));
        s += &format!(
            "read + decode: {:.1} frames/s, {:.0} points/s converted\n",
            self.frames as f64 / self.read_decode_s.max(1e-12),
            self.points as f64 / self.convert_s.max(1e-12)
        );
        if let Some(b) = &self.baseline {
            let agree =
                b.points == self.points && (b.coord_sum - self.coord_sum).abs() <= 1e-3 * b.points.max(1) as f64;
            s += &format!(
                "check: NumPy made {} points (sum {:.1}), scenetok {} (sum {:.1}): {}\n",
                b.points,
                b.coord_sum,
                self.points,
                self.coord_sum,
                if agree { "agree" } else { "DISAGREE" }
            );
        }
        s
    }
}

/// The baseline script's default location in a checkout.
pub fn default_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/bench/io_baseline.py")
}
