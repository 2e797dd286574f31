//! `scenetok merge`: the result of every shard from their partial results (motion runs,
//! LiDAR-segmentation, camera-segmentation or camera-detection metrics, by the partials'
//! format).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use rayon::prelude::*;
use scenetok::eval::camera_det::{self, DetPartial};
use scenetok::eval::camera_seg::{self, CameraSegPartial};
use scenetok::eval::lidar_seg::{self, SegPartial};
use scenetok::eval::partial::{self, MotionPartial};
use scenetok::eval::runner::{check_run_folder, write_run};

#[derive(clap::Args)]
pub struct Args {
    /// The shards' partial results (`eval --task … --shard I/N --partial FILE`), every shard
    /// of one N once, in any order.
    #[arg(required = true, value_name = "PARTIAL")]
    partials: Vec<PathBuf>,
    /// The run folder, as `eval --out` writes it.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let inputs: Vec<&Path> = args.partials.iter().map(PathBuf::as_path).collect();
    // The first partial's format says which evaluation this is; each reader refuses another.
    let first = &args.partials[0];
    let head = std::fs::read(first).map_err(|e| scenetok::Error::io(scenetok::Location::file(first), e))?;
    match partial::format_of(&head).as_deref() {
        Some(lidar_seg::PARTIAL_FORMAT) => return lidar_seg(&args, &inputs, stdout),
        Some(camera_det::PARTIAL_FORMAT) => return camera_det(&args, &inputs, stdout),
        Some(camera_seg::PARTIAL_FORMAT) => return camera_seg(&args, &inputs, stdout),
        _ => {}
    }
    check_run_folder(&args.out, &inputs)?;
    let started = std::time::Instant::now();
    // Parsed in parallel: reading the partials is most of a merge's time.
    let parts = read_all(&args.partials, MotionPartial::read)?;
    let read_s = started.elapsed().as_secs_f64();
    let shards = parts.len();
    let report = MotionPartial::merge(parts)?.report()?;
    let path = write_run(&args.out, &report)?;
    write!(stdout, "{}", report.table())?;
    writeln!(
        stdout,
        "merged {shards} shard(s): reading {read_s:.3} s, merging and writing {:.3} s",
        started.elapsed().as_secs_f64() - read_s
    )?;
    super::eval::print_run_written(stdout, &path)
}

/// Every partial, named by its path for errors.
fn read_all<T: Send>(
    paths: &[PathBuf],
    read: impl Fn(&Path) -> Result<T, scenetok::eval::run::EvalError> + Sync,
) -> Result<Vec<(String, T)>> {
    paths.par_iter().map(|p| Ok((p.display().to_string(), read(p)?))).collect()
}

/// LiDAR segmentation: the summed confusion counts, `OUT/metrics.json` as `eval --task
/// lidar-seg --out OUT` writes it.
fn lidar_seg(args: &Args, inputs: &[&Path], stdout: &mut impl Write) -> Result<()> {
    scenetok::io::output::refuse_input(&args.out.join("metrics.json"), inputs)?;
    let parts = read_all(&args.partials, SegPartial::read)?;
    let shards = parts.len();
    let report = SegPartial::merge(parts)?.report()?;
    write!(stdout, "{}", report.table())?;
    writeln!(stdout, "merged {shards} shard(s)")?;
    super::eval::write_metrics(&args.out, &report, stdout)
}

/// Camera detection: the shards' images back in input order, `OUT/metrics.json` as `eval
/// --task camera-det --out OUT` writes it (its wall times are each image's where it ran).
fn camera_det(args: &Args, inputs: &[&Path], stdout: &mut impl Write) -> Result<()> {
    scenetok::io::output::refuse_input(&args.out.join("metrics.json"), inputs)?;
    let parts = read_all(&args.partials, DetPartial::read)?;
    let shards = parts.len();
    let report = DetPartial::merge(parts)?.report();
    write!(stdout, "{}", report.table())?;
    writeln!(stdout, "merged {shards} shard(s)")?;
    super::eval::write_metrics(&args.out, &report, stdout)
}

/// Camera segmentation: the shards' frames back in input order, `OUT/metrics.json` as `eval
/// --task camera-seg --out OUT` writes it (its wall times are each frame's where it ran).
fn camera_seg(args: &Args, inputs: &[&Path], stdout: &mut impl Write) -> Result<()> {
    scenetok::io::output::refuse_input(&args.out.join("metrics.json"), inputs)?;
    let parts = read_all(&args.partials, CameraSegPartial::read)?;
    let shards = parts.len();
    let reports = CameraSegPartial::merge(parts)?.report()?;
    write!(stdout, "{}", camera_seg::table(&reports))?;
    writeln!(stdout, "merged {shards} shard(s)")?;
    super::eval::write_metrics(&args.out, &reports, stdout)
}
