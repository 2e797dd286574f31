//! `scenetok bench viz`: logging one full-size frame into a rerun recording (target ≤ 50 ms),
//! against reading that frame from its parquet files in the same run, and a long segment
//! recorded frame by frame with the process's peak memory before and after (streaming: the
//! recording never holds the segment).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::median;
use crate::error::{Error, Location, Result};
use crate::geom::range_image_to_points;
use crate::io::v2::{Dataset, FrameRequest};
use crate::sim::generate::{GenerateConfig, Preset, generate, generated_by_this_version};
use crate::viz::{self, FrameLogger, Layout, VizOptions, VizSink};

/// Results, times in seconds (medians over the repeats).
#[derive(Debug, Clone, serde::Serialize)]
pub struct VizBench {
    pub points: usize,
    pub camera_pixels: u64,
    pub read_s: f64,
    pub points_s: f64,
    pub log_s: f64,
    /// CPU time of logging, all threads together (robust to a loaded machine).
    pub log_cpu_s: f64,
    pub log_flush_s: f64,
    pub stream: Option<StreamCheck>,
}

/// A long segment recorded to an .rrd.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamCheck {
    pub frames: usize,
    pub seconds: f64,
    pub rrd_bytes: u64,
    pub dataset_bytes: u64,
    /// Resident memory before recording, and the most seen after any frame.
    pub rss_before: u64,
    pub rss_max: u64,
    /// Resident memory after each quarter of the segment: flat when the recording streams.
    pub rss_quarters: Vec<(usize, u64)>,
    /// The same, reading the frames without logging them (the baseline: the reader's share).
    pub rss_quarters_read_only: Vec<(usize, u64)>,
}

fn viz_err(e: viz::VizError) -> Error {
    Error::invalid(Location::default(), "a frame rerun can log", e.to_string())
}

/// CPU time of every thread of this process so far, seconds (`/proc/self/task/*/schedstat`,
/// nanosecond resolution); 0 where /proc is absent.
pub fn process_cpu_s() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()))
        .sum::<u64>() as f64
        * 1e-9
}

/// Resident memory of this process now (`VmRSS`), bytes; 0 where /proc is absent.
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            if p.is_dir() { dir_bytes(&p) } else { e.metadata().map_or(0, |m| m.len()) }
        })
        .sum()
}

/// Removes a stale generated world (another generator version's, or a half-written one).
fn fresh_dir(d: &Path) -> Result<()> {
    if d.exists() {
        std::fs::remove_dir_all(d).map_err(|e| Error::io(Location::file(d).detail("removing a stale world"), e))?;
    }
    Ok(())
}

/// Runs the benchmark in `work` (generated data and recordings go there). `data`: a dataset
/// whose first frame is used (default: one generated full-size frame). `stream_frames`: the
/// length of the tiny-preset segment recorded for the streaming check (0 = skip).
pub fn run(work: &Path, data: Option<&Path>, repeats: usize, stream_frames: usize) -> Result<VizBench> {
    let at = Location::file(work);
    std::fs::create_dir_all(work).map_err(|e| Error::io(at.clone(), e))?;
    let root: PathBuf = match data {
        Some(d) => d.to_path_buf(),
        None => {
            let d = work.join("full");
            if !generated_by_this_version(&d) {
                fresh_dir(&d)?;
                let mut cfg = GenerateConfig::preset(Preset::Full);
                (cfg.segments, cfg.frames) = (1, 1);
                generate(&d, &cfg, |_, _| {})?;
            }
            d
        }
    };
    let ds = Dataset::open(&root)?;
    let segment = ds.segments().next().map(str::to_string).unwrap_or_default();
    let mut reader = ds.frames(&segment, &FrameRequest::all().without_second_returns())?;
    let ts = *reader
        .timestamps()
        .first()
        .ok_or_else(|| Error::invalid(Location::file(&root), "at least one frame", "none"))?;
    let repeats = repeats.max(1);

    // Baseline: reading and decoding the frame (parquet → scene::Frame).
    let mut read = Vec::new();
    let mut frame = None;
    for _ in 0..repeats {
        let t = Instant::now();
        frame = Some(reader.read_frame(ts)?);
        read.push(t.elapsed().as_secs_f64());
    }
    let frame = frame.unwrap_or_default();

    // The share of the range-image conversion in logging.
    let mut conv = Vec::new();
    let mut points = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        points = 0;
        for l in &frame.lasers {
            if let (Some(ri), Some(c)) = (&l.return1, &l.calibration) {
                points += range_image_to_points(ri, c, l.pose.as_ref(), frame.vehicle_pose.as_ref())
                    .map_err(|e| Error::invalid(Location::file(&root), "a convertible range image", e.to_string()))?
                    .len();
            }
        }
        conv.push(t.elapsed().as_secs_f64());
    }

    // Logging into an .rrd: the log calls alone, and including the flush to disk.
    let rrd = work.join("bench_frame.rrd");
    let rec = viz::open_recording("bench", &VizSink::Save(rrd.clone()), Layout::Perception).map_err(viz_err)?;
    let opts = VizOptions::default();
    let mut logger = FrameLogger::new(&opts);
    logger.log_static(&rec).map_err(viz_err)?;
    rec.flush_blocking().map_err(|e| viz_err(e.into()))?;
    let (mut log, mut log_cpu, mut log_flush) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        let cpu = process_cpu_s();
        let t = Instant::now();
        logger.log_frame(&rec, &frame).map_err(viz_err)?;
        log.push(t.elapsed().as_secs_f64());
        // Includes whatever rerun's batcher thread did meanwhile: an upper bound.
        log_cpu.push(process_cpu_s() - cpu);
        rec.flush_blocking().map_err(|e| viz_err(e.into()))?;
        log_flush.push(t.elapsed().as_secs_f64());
    }
    rec.finish().map_err(viz_err)?;
    let camera_pixels =
        frame.cameras.iter().filter_map(|c| c.calibration.as_ref()).map(|c| c.width as u64 * c.height as u64).sum();

    let stream = if stream_frames > 0 {
        let d = work.join(format!("tiny{stream_frames}"));
        if !generated_by_this_version(&d) {
            fresh_dir(&d)?;
            let mut cfg = GenerateConfig::preset(Preset::Tiny);
            (cfg.segments, cfg.frames) = (1, stream_frames);
            generate(&d, &cfg, |_, _| {})?;
        }
        drop(frame);
        let ds = Dataset::open(&d)?;
        let segment = ds.segments().next().map(str::to_string).unwrap_or_default();
        let quarter = |frames: usize, total: usize| frames * 4 % total.max(1) < 4 && frames * 4 >= total.max(1);
        let mut rss_quarters_read_only = Vec::new();
        let reader = ds.frames(&segment, &FrameRequest::all().without_second_returns())?;
        let total = reader.timestamps().len();
        for (i, f) in reader.enumerate() {
            drop(f?);
            if quarter(i + 1, total) {
                rss_quarters_read_only.push((i + 1, rss()));
            }
        }
        let out = work.join("bench_segment.rrd");
        let before = rss();
        let mut rss_max = before;
        let t = Instant::now();
        // record_source's loop, with the memory sampled after every frame.
        let rec =
            viz::open_recording("bench-segment", &VizSink::Save(out.clone()), Layout::Perception).map_err(viz_err)?;
        viz::map::log_map(&rec, viz::paths::MAP, &ds.read_map(&segment)?, true).map_err(viz_err)?;
        let mut logger = FrameLogger::new(&opts);
        logger.log_static(&rec).map_err(viz_err)?;
        let mut frames = 0;
        let mut rss_quarters = Vec::new();
        let reader = ds.frames(&segment, &FrameRequest::all().without_second_returns())?;
        let total = reader.timestamps().len();
        for f in reader {
            logger.log_frame(&rec, &f?).map_err(viz_err)?;
            frames += 1;
            let now = rss();
            rss_max = rss_max.max(now);
            if quarter(frames, total) {
                rss_quarters.push((frames, now));
            }
        }
        rec.finish().map_err(viz_err)?;
        let seconds = t.elapsed().as_secs_f64();
        Some(StreamCheck {
            frames,
            seconds,
            rrd_bytes: std::fs::metadata(&out).map_or(0, |m| m.len()),
            dataset_bytes: dir_bytes(&d),
            rss_before: before,
            rss_max,
            rss_quarters,
            rss_quarters_read_only,
        })
    } else {
        None
    };
    Ok(VizBench {
        points,
        camera_pixels,
        read_s: median(read),
        points_s: median(conv),
        log_s: median(log),
        log_cpu_s: median(log_cpu),
        log_flush_s: median(log_flush),
        stream,
    })
}

impl VizBench {
    pub fn report(&self) -> String {
        let ms = |s: f64| s * 1e3;
        let mut s = format!(
            "one frame: {} points (return 1), {:.1} Mpixel of camera images\n",
            self.points,
            self.camera_pixels as f64 / 1e6
        );
        s += &format!("  read + decode from parquet (baseline)  {:>8.1} ms\n", ms(self.read_s));
        s += &format!("  range images → points (inside logging)  {:>8.1} ms\n", ms(self.points_s));
        s += &format!(
            "  log the frame                          {:>8.1} ms  ({:.2}× the read; target ≤ 50 ms: {})\n",
            ms(self.log_s),
            self.log_s / self.read_s.max(1e-12),
            if self.log_s <= 0.050 { "met" } else { "NOT met" }
        );
        s += &format!("  log the frame, CPU time of all threads   {:>8.1} ms\n", ms(self.log_cpu_s));
        s += &format!("  log + flush to the .rrd                {:>8.1} ms\n", ms(self.log_flush_s));
        if let Some(st) = &self.stream {
            s += &format!(
                "segment of {} frames → .rrd in {:.1} s ({:.1} ms/frame): {:.1} MB written from a {:.1} MB dataset; \
                 resident memory {:.0} MB before, at most {:.0} MB during (+{:.0} MB)\n",
                st.frames,
                st.seconds,
                st.seconds * 1e3 / st.frames.max(1) as f64,
                st.rrd_bytes as f64 / 1e6,
                st.dataset_bytes as f64 / 1e6,
                st.rss_before as f64 / 1e6,
                st.rss_max as f64 / 1e6,
                st.rss_max.saturating_sub(st.rss_before) as f64 / 1e6
            );
            let q = |v: &[(usize, u64)]| {
                v.iter().map(|(f, b)| format!("{:.0} MB after {f}", *b as f64 / 1e6)).collect::<Vec<_>>().join(", ")
            };
            s += &format!("  resident memory, reading only (baseline): {}\n", q(&st.rss_quarters_read_only));
            s += &format!("  resident memory, reading and recording:  {}\n", q(&st.rss_quarters));
        }
        s
    }
}
