//! `scenetok generate`: the synthetic world as a v2 dataset.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use scenetok::io::shard::Shard;
use scenetok::sim::generate::{GenerateConfig, Preset};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    out: PathBuf,
    /// Sizes and counts to start from: `tiny` (tests, demo) or `full` (Waymo's).
    #[arg(long, value_enum, default_value = "full")]
    preset: Preset,
    #[arg(long)]
    segments: Option<usize>,
    /// Frames per segment at 10 Hz (Waymo: 199).
    #[arg(long)]
    frames: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Divide the lidar range-image height and width: `H,W` (1,1 = Waymo's sizes).
    #[arg(long, value_delimiter = ',', num_args = 1..=2)]
    lidar_div: Option<Vec<usize>>,
    /// Divide camera image sizes (1 = Waymo's 1920×1280 / 1920×886).
    #[arg(long)]
    camera_div: Option<u32>,
    /// Only this shard's segments (I/N: segment k where k mod N = I), the same files the
    /// whole run writes for them: N processes writing one folder make the whole world.
    #[arg(long, default_value = "0/1", value_name = "I/N")]
    shard: Shard,
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let mut cfg = GenerateConfig::preset(args.preset);
    cfg.seed = args.seed;
    cfg.segments = args.segments.unwrap_or(cfg.segments);
    cfg.frames = args.frames.unwrap_or(cfg.frames);
    if let Some(d) = args.lidar_div {
        anyhow::ensure!(d.len() == 2, "--lidar-div takes two divisors, e.g. 8,16");
        cfg.lidar_div = [d[0], d[1]];
    }
    if let Some(d) = args.camera_div {
        cfg.camera_div = d;
    }
    cfg.validate()?;
    let segments = (0..cfg.segments).filter(|&i| args.shard.keeps(i)).count();
    let bar = super::progress("generate", (segments * cfg.frames) as u64, "frames")?;
    let manifest = scenetok::sim::generate::generate_shard(&args.out, &cfg, args.shard, |_, _| bar.inc(1))?;
    bar.finish_and_clear();
    writeln!(
        stdout,
        "wrote {} segment(s), {} files under {}",
        manifest.segments.len(),
        manifest.files.len(),
        args.out.display()
    )?;
    let frames = manifest.frames_written.max(1) as f64;
    let per_frame: f64 =
        manifest.seconds.iter().filter(|(k, _)| !k.starts_with("setup")).map(|(_, v)| v).sum::<f64>() / frames;
    writeln!(stdout, "time per frame {:.0} ms:", per_frame * 1e3)?;
    for (stage, secs) in &manifest.seconds {
        writeln!(
            stdout,
            "  {stage:<58} {:>8.0} ms{}",
            secs * 1e3 / if stage.starts_with("setup") { 1.0 } else { frames },
            if stage.starts_with("setup") { " (once per segment)" } else { " per frame" }
        )?;
    }
    let total: usize = manifest.trajectory_types.values().sum();
    writeln!(stdout, "trajectory types (WOMD classification, every agent over 9.1 s windows):")?;
    for (name, n) in &manifest.trajectory_types {
        writeln!(stdout, "  {name:<15} {n:>6}  {:5.1}%", 100.0 * *n as f64 / total.max(1) as f64)?;
    }
    Ok(())
}
