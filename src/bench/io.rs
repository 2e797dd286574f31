//! `scenetok bench io`: reading a v2 dataset's lidar columns and converting its range
//! images to points, against pyarrow (the read), a NumPy port of docs/geometry.md#range-image--points
//! in float64 and float32 (`tools/bench/io_baseline.py`), and Waymo's own TensorFlow conversion
//! (`tools/bench/io_waymo.py` in `.venv-waymo/`, when installed), all in the same invocation.
//!
//! Every side times the conversion the same way: the first returns (and TOP's pixel poses) are
//! decoded into memory beforehand, then the frames are converted back to back with one timer
//! around each frame's conversion of all its lasers; a frame's outputs are kept until its timer
//! stops and the checksums (point count, coordinate and feature sums) are computed after it,
//! outside every timer. Ours runs on the rayon pool and, for the per-core comparison, on a
//! one-thread pool; it is also timed frame by frame right after each decode, as a stream sees
//! it (no baseline has a stream to compare with). Runs alternate ours / baselines; medians and
//! per-run ratios are reported.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::median;
use crate::error::{Error, Location, Result};
use crate::geom::{PointCloud, range_image_to_points_into};
use crate::io::v2::{Component, ComponentFile, Dataset, FrameRequest, LidarRecord, columns::Cols, records::decode_all};
use crate::scene::Frame;

/// What `bench io` runs besides ours.
#[derive(Debug, Clone)]
pub struct IoOptions {
    /// Python with pyarrow and numpy for `tools/bench/io_baseline.py` (None: no baselines).
    pub python: Option<PathBuf>,
    pub script: PathBuf,
    pub waymo: WaymoBaseline,
    pub runs: usize,
}

/// Waymo's own conversion (TensorFlow), from `.venv-waymo/` (tools/bench/setup-waymo.sh).
#[derive(Debug, Clone)]
pub enum WaymoBaseline {
    /// Not asked for (`--no-waymo`, `--no-baseline`).
    Skip,
    /// Its venv is absent: the report says how to install it.
    NotInstalled,
    Run {
        python: PathBuf,
        script: PathBuf,
    },
}

/// Checksums of the points a side produced.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Checksum {
    pub points: usize,
    pub coord_sum: f64,
    /// Sum of every point's range, intensity and elongation.
    pub feature_sum: f64,
}

impl Checksum {
    fn add(&mut self, cloud: &PointCloud) {
        self.points += cloud.len();
        self.coord_sum += cloud.xyz.iter().map(|p| p[0] as f64 + p[1] as f64 + p[2] as f64).sum::<f64>();
        self.feature_sum +=
            (0..cloud.len()).map(|i| cloud.feature(i).iter().take(3).map(|&v| v as f64).sum::<f64>()).sum::<f64>();
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IoBench {
    pub rows: usize,
    pub frames: usize,
    /// Of the back-to-back conversion on the pool (the other passes are checked against it).
    pub points: usize,
    pub coord_sum: f64,
    pub feature_sum: f64,
    /// Whether the one-thread and streaming passes produced the same checksums.
    pub passes_agree: bool,
    /// rayon's pool (RAYON_NUM_THREADS or the cores).
    pub threads: usize,
    /// Reading the lidar columns into Arrow, ours.
    pub read_s: f64,
    /// Reading plus decoding into range images.
    pub read_decode_s: f64,
    /// Converting decoded range images back to back on the pool, timed as every baseline is.
    pub convert_s: f64,
    /// The same on a one-thread pool (per-core speed).
    pub convert_one_thread_s: f64,
    /// Converting each frame right after its decode, as a stream does (caches hold the
    /// decoder's data, the pool's threads have gone idle).
    pub stream_convert_s: f64,
    /// pyarrow and NumPy.
    pub baseline: Option<Baseline>,
    /// Waymo's TensorFlow conversion: None when skipped or not installed, Err when it failed.
    pub waymo: Option<std::result::Result<Baseline, String>>,
}

/// What a baseline script prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// pyarrow's read of the lidar columns (the NumPy script only).
    #[serde(default)]
    pub read_s: Option<f64>,
    #[serde(default)]
    pub rows: Option<usize>,
    /// The thread counts it ran with, in words.
    pub threads: String,
    /// Package and version (the Waymo script).
    #[serde(default)]
    pub package: Option<String>,
    pub variants: Vec<Variant>,
}

/// One conversion variant of a baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub seconds: f64,
    pub points: usize,
    pub coord_sum: f64,
    /// None for xyz-only variants.
    pub feature_sum: Option<f64>,
}

impl Baseline {
    fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }
}

/// Frames decoded before a back-to-back conversion run (every side holds decoded frames in
/// memory beforehand; this bounds ours for Waymo's 199-frame segments, ~14 MB of first returns
/// and pixel poses a frame, far beyond any cache either way).
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

    /// Adds the checksums of the last frame's clouds (outside the timer).
    fn checksum(&self, sum: &mut Checksum) {
        self.clouds.iter().for_each(|c| sum.add(c));
    }

    /// Frames back to back, a timer around each frame, checksums after it.
    fn convert_all(&mut self, frames: &[Frame], file: &Path, sum: &mut Checksum) -> Result<f64> {
        let mut seconds = 0.0;
        for f in frames {
            seconds += self.convert(f, file)?;
            self.checksum(sum);
        }
        Ok(seconds)
    }
}

/// `runs` runs, each ours then the baselines, so that every side sees the same machine over
/// the same minutes.
pub fn run(root: &Path, opts: &IoOptions) -> Result<IoRuns> {
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().map_err(|e| {
        Error::invalid(Location::file(root), "a one-thread pool for the per-core comparison", e.to_string())
    })?;
    let runs = (0..opts.runs.max(1)).map(|_| run_once(root, opts, &one_thread)).collect::<Result<_>>()?;
    Ok(IoRuns { runs, waymo: opts.waymo.clone() })
}

/// One run of ours and the baselines.
fn run_once(root: &Path, opts: &IoOptions, one_thread: &rayon::ThreadPool) -> Result<IoBench> {
    let ds = Dataset::open(root)?;
    let segments: Vec<String> = ds.segments().map(str::to_string).collect();
    let (mut rows, mut frames) = (0, 0);
    let (mut read_s, mut read_decode_s, mut convert_s, mut one_s, mut stream_s) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut pool_sum, mut one_sum, mut stream_sum) = (Checksum::default(), Checksum::default(), Checksum::default());
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
        // 2. The conversion: frames decoded through the joining reader (not timed).
        let request = FrameRequest::only(&[
            Component::Lidar,
            Component::LidarCalibration,
            Component::LidarPose,
            Component::VehiclePose,
        ])
        .without_second_returns();
        let (mut stream, mut pool, mut single) = (Conversion::default(), Conversion::default(), Conversion::default());
        let mut batch = Vec::with_capacity(BATCH_FRAMES);
        let mut back_to_back = |batch: &mut Vec<Frame>| -> Result<()> {
            convert_s += pool.convert_all(batch, &info.path, &mut pool_sum)?;
            one_s += one_thread.install(|| single.convert_all(batch, &info.path, &mut one_sum))?;
            batch.clear();
            Ok(())
        };
        for frame in ds.frames(seg, &request)? {
            let frame = frame?;
            frames += 1;
            // As a stream sees it: right after the frame's decode.
            stream_s += stream.convert(&frame, &info.path)?;
            stream.checksum(&mut stream_sum);
            batch.push(frame);
            if batch.len() == BATCH_FRAMES {
                back_to_back(&mut batch)?;
            }
        }
        back_to_back(&mut batch)?;
    }
    let baseline = match &opts.python {
        Some(py) => Some(run_script(py, &opts.script, root, &[])?),
        None => None,
    };
    let waymo = match &opts.waymo {
        WaymoBaseline::Run { python, script } => {
            // TensorFlow's pools set explicitly to the machine's cores.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
            // Blocked: the error's last line (a traceback ends with the exception) says why.
            Some(run_script(python, script, root, &["--threads", &cores]).map_err(|e| {
                let text = e.to_string();
                text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_string()
            }))
        }
        WaymoBaseline::Skip | WaymoBaseline::NotInstalled => None,
    };
    Ok(IoBench {
        rows,
        frames,
        points: pool_sum.points,
        coord_sum: pool_sum.coord_sum,
        feature_sum: pool_sum.feature_sum,
        passes_agree: one_sum == pool_sum && stream_sum == pool_sum,
        threads: rayon::current_num_threads(),
        read_s,
        read_decode_s,
        convert_s,
        convert_one_thread_s: one_s,
        stream_convert_s: stream_s,
        baseline,
        waymo,
    })
}

fn run_script(python: &Path, script: &Path, root: &Path, args: &[&str]) -> Result<Baseline> {
    let mut command = std::process::Command::new(python);
    command.arg(script).arg(root).args(args);
    super::run_python_json(command, python, script)
}

/// Every run of a `bench io` invocation.
#[derive(Debug, Clone)]
pub struct IoRuns {
    pub runs: Vec<IoBench>,
    pub waymo: WaymoBaseline,
}

/// The NumPy variants (io_baseline.py) and Waymo's (io_waymo.py), in report order.
const NUMPY_VARIANTS: [&str; 4] = [
    "NumPy float64 xyz",
    "NumPy float64 keep_polar_features",
    "NumPy float32 xyz",
    "NumPy float32 keep_polar_features",
];
const WAYMO_VARIANTS: [&str; 2] = ["Waymo TF xyz", "Waymo TF keep_polar_features"];

impl IoRuns {
    /// The Waymo baseline of a run, when it ran.
    fn waymo_of(r: &IoBench) -> Option<&Baseline> {
        r.waymo.as_ref().and_then(|w| w.as_ref().ok())
    }

    /// Median times of each side and the median of the per-run ratios, the thread counts, what
    /// each side writes, and whether every side made the same points.
    pub fn report(&self) -> String {
        let Some(first) = self.runs.first() else { return String::new() };
        let n = self.runs.len();
        let mut s = format!(
            "{} lidar rows, {} frames, {} points; median of {n} run(s), each ours then the baselines\n",
            first.rows, first.frames, first.points
        );
        s += &format!(
            "threads: scenetok {} (rayon pool; RAYON_NUM_THREADS sets it), 1 in the one-thread rows",
            first.threads
        );
        if let Some(b) = &first.baseline {
            s += &format!("; {}", b.threads);
        }
        if let Some(w) = Self::waymo_of(first) {
            s += &format!("; Waymo: {}", w.threads);
        }
        s += "\n";
        s += "timed alike on every side: decoded first returns in memory beforehand, frames converted back to \
              back, one timer per frame around all its lasers, checksums after it\n";
        s += "each point holds: scenetok xyz f32 + 4 channels f32 + pixel u16 (32 B); float64 xyz 24 B, \
              keep_polar_features 48 B; float32 (NumPy float32, Waymo TF) xyz 12 B, keep_polar_features 24 B\n";
        s += &format!("{:<50} {:>10} {:>11} {:>17}\n", "", "scenetok s", "baseline s", "ratio (runs)");
        let med = |f: &dyn Fn(&IoBench) -> f64| median(self.runs.iter().map(f).collect());
        // A row: ours, and the baseline's time when every run has it.
        let row = |name: &str, ours: &dyn Fn(&IoBench) -> f64, base: &dyn Fn(&IoBench) -> Option<f64>| {
            let with_base: Vec<(f64, f64)> = self.runs.iter().filter_map(|r| base(r).map(|b| (ours(r), b))).collect();
            let (b, ratio) = if !with_base.is_empty() && with_base.len() == n {
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
            format!("{name:<50} {:>10.4} {b:>11} {ratio:>17}\n", med(ours))
        };
        let numpy = |name: &'static str| move |r: &IoBench| r.baseline.as_ref()?.variant(name).map(|v| v.seconds);
        let waymo = |name: &'static str| move |r: &IoBench| Self::waymo_of(r)?.variant(name).map(|v| v.seconds);
        s += &row("read lidar columns (vs pyarrow)", &|r| r.read_s, &|r| r.baseline.as_ref()?.read_s);
        s += &format!(
            "{:<50} {:>10.4}\n",
            format!("range image → points, scenetok {} threads", first.threads),
            med(&|r| r.convert_s)
        );
        // Rows only for the baselines that ran (in some run; "-" marks the runs they missed).
        let has_numpy = self.runs.iter().any(|r| r.baseline.is_some());
        let has_waymo = self.runs.iter().any(|r| Self::waymo_of(r).is_some());
        for v in NUMPY_VARIANTS.iter().filter(|_| has_numpy) {
            s += &row(&format!("  vs {v}"), &|r| r.convert_s, &numpy(v));
        }
        for v in WAYMO_VARIANTS.iter().filter(|_| has_waymo) {
            s += &row(&format!("  vs {v}"), &|r| r.convert_s, &waymo(v));
        }
        s += &format!("{:<50} {:>10.4}\n", "range image → points, scenetok 1 thread", med(&|r| r.convert_one_thread_s));
        for v in NUMPY_VARIANTS.iter().filter(|_| has_numpy) {
            s += &row(&format!("  vs {v} (1 thread)"), &|r| r.convert_one_thread_s, &numpy(v));
        }
        s += &format!(
            "{:<50} {:>10.4}   (ours only: no baseline streams)\n",
            "each frame right after its decode",
            med(&|r| r.stream_convert_s)
        );
        s += &format!(
            "read + decode: {:.1} frames/s; {:.0} points/s converted ({} threads), {:.0} on 1 thread\n",
            first.frames as f64 / med(&|r| r.read_decode_s).max(1e-12),
            first.points as f64 / med(&|r| r.convert_s).max(1e-12),
            first.threads,
            first.points as f64 / med(&|r| r.convert_one_thread_s).max(1e-12)
        );
        s += &self.waymo_status();
        s += &self.checks();
        s
    }

    /// What became of Waymo's baseline.
    fn waymo_status(&self) -> String {
        let failed = self.runs.iter().find_map(|r| r.waymo.as_ref().and_then(|w| w.as_ref().err()));
        match (&self.waymo, failed) {
            (WaymoBaseline::Skip, _) => "Waymo's TensorFlow conversion: skipped\n".into(),
            (WaymoBaseline::NotInstalled, _) => {
                "Waymo's TensorFlow conversion: not installed: run tools/bench/setup-waymo.sh\n".into()
            }
            (WaymoBaseline::Run { python, .. }, Some(e)) => {
                format!(
                    "Waymo's TensorFlow conversion: blocked: {e} (tools/bench/io_waymo.py run by {})\n",
                    python.display()
                )
            }
            (WaymoBaseline::Run { python, .. }, None) => format!(
                "Waymo's TensorFlow conversion: {} ({}), convert_range_image_to_point_cloud called eagerly\n",
                self.runs.first().and_then(Self::waymo_of).and_then(|w| w.package.clone()).unwrap_or_default(),
                python.display()
            ),
        }
    }

    /// Whether every baseline variant made the same points as ours, over every run (count
    /// equal; coordinate and feature sums within 1 mm a point on average, float32 rounding
    /// included), and whether ours made the same in all three passes.
    fn checks(&self) -> String {
        let Some(first) = self.runs.first() else { return String::new() };
        let n = self.runs.len();
        let mut s = format!(
            "check: scenetok made {} points (xyz sum {:.1}, features {:.1}){}\n",
            first.points,
            first.coord_sum,
            first.feature_sum,
            if self.runs.iter().all(|r| r.passes_agree && r.points == first.points && r.coord_sum == first.coord_sum) {
                ", the same in every run and pass"
            } else {
                ": passes or runs DISAGREE"
            }
        );
        let names = NUMPY_VARIANTS.iter().chain(&WAYMO_VARIANTS);
        for name in names {
            let found: Vec<(&IoBench, &Variant)> = self
                .runs
                .iter()
                .filter_map(|r| {
                    let b = if name.starts_with("Waymo") { Self::waymo_of(r) } else { r.baseline.as_ref() };
                    b.and_then(|b| b.variant(name)).map(|v| (r, v))
                })
                .collect();
            let Some(&(r0, v0)) = found.first() else { continue };
            let agree = found.iter().filter(|(r, v)| v.agrees_with(r)).count();
            s += &format!(
                "check: {name} made {} points (xyz sum {:.1}, Δ {:+.1}{}): {}\n",
                v0.points,
                v0.coord_sum,
                v0.coord_sum - r0.coord_sum,
                v0.feature_sum.map(|f| format!("; features Δ {:+.1}", f - r0.feature_sum)).unwrap_or_default(),
                if agree == n {
                    format!("agree in {agree}/{n} runs")
                } else {
                    format!("DISAGREE in {}/{n} runs", n - agree)
                }
            );
        }
        s
    }
}

impl Variant {
    /// Same point count; sums within 1e-3 a point (float32 math rounds differently).
    fn agrees_with(&self, ours: &IoBench) -> bool {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-3 * ours.points.max(1) as f64;
        self.points == ours.points
            && close(self.coord_sum, ours.coord_sum)
            && self.feature_sum.is_none_or(|f| close(f, ours.feature_sum))
    }
}
