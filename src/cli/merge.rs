//! `scenetok merge`: the run of every shard from their partial results.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use rayon::prelude::*;
use scenetok::eval::partial::MotionPartial;
use scenetok::eval::runner::{check_run_folder, write_run};

#[derive(clap::Args)]
pub struct Args {
    /// The shards' partial results (`eval --task motion --shard I/N --partial FILE`), every
    /// shard of one N once, in any order.
    #[arg(required = true, value_name = "PARTIAL")]
    partials: Vec<PathBuf>,
    /// The run folder, as `eval --out` writes it.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let inputs: Vec<&std::path::Path> = args.partials.iter().map(PathBuf::as_path).collect();
    check_run_folder(&args.out, &inputs)?;
    let started = std::time::Instant::now();
    // Parsed in parallel: reading the partials is most of a merge's time.
    let parts = args
        .partials
        .par_iter()
        .map(|p| Ok((p.display().to_string(), MotionPartial::read(p)?)))
        .collect::<Result<Vec<_>>>()?;
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
