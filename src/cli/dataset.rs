//! `scenetok dataset`: training data for the learned models.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use scenetok::pipeline::export::motion_dataset::{DatasetPlan, MANIFEST, Split, build};
use scenetok::sim::generate::{GenerateConfig, Preset};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Motion-transformer samples (agent history, neighbours, map polylines, future; in each
    /// agent's frame) as parquet shards: generated worlds split by seed, plus any v2 dataset
    /// folders or WOMD Scenario TFRecords given with --data. Shards already there are kept:
    /// run it again to resume.
    Motion(MotionArgs),
}

#[derive(clap::Args)]
pub struct MotionArgs {
    #[arg(long)]
    out: PathBuf,
    /// Generated worlds for training (seed --seed).
    #[arg(long, default_value_t = 480)]
    train_worlds: usize,
    /// Generated worlds for validation (seed --seed + 1).
    #[arg(long, default_value_t = 16)]
    validation_worlds: usize,
    /// Generated worlds for testing (seed --seed + 2): `scenetok generate --seed <that>
    /// --segments N` writes the same worlds with sensors, for `scenetok eval`.
    #[arg(long, default_value_t = 24)]
    test_worlds: usize,
    /// Base generator seed.
    #[arg(long, default_value_t = 1000)]
    seed: u64,
    /// World sizes (`full`: Waymo's 20 s segments, 3×3 intersections, ~90 agents).
    #[arg(long, value_enum, default_value = "full")]
    preset: Preset,
    /// Frames per generated world (at least 91: one window).
    #[arg(long)]
    frames: Option<usize>,
    /// Frames between window starts.
    #[arg(long, default_value_t = 10)]
    stride: usize,
    /// v2 dataset folders or WOMD Scenario TFRecords to add.
    #[arg(long)]
    data: Vec<PathBuf>,
    /// The split --data goes to.
    #[arg(long, value_enum, default_value = "train")]
    data_split: Split,
}

pub fn run(which: Command, stdout: &mut impl Write) -> Result<()> {
    match which {
        Command::Motion(a) => motion(a, stdout),
    }
}

fn motion(args: MotionArgs, stdout: &mut impl Write) -> Result<()> {
    let mut world = GenerateConfig::preset(args.preset);
    world.frames = args.frames.unwrap_or(world.frames);
    anyhow::ensure!(
        world.frames >= scenetok::io::v2::motion::WINDOW,
        "--frames {} is shorter than one {}-step window",
        world.frames,
        scenetok::io::v2::motion::WINDOW
    );
    let plan = DatasetPlan {
        worlds: BTreeMap::from([
            (Split::Train, args.train_worlds),
            (Split::Validation, args.validation_worlds),
            (Split::Test, args.test_worlds),
        ]),
        world,
        base_seed: args.seed,
        stride: args.stride,
        inputs: args.data.iter().map(|p| (p.clone(), args.data_split)).collect(),
    };
    let shards = args.train_worlds + args.validation_worlds + args.test_worlds + args.data.len();
    let bar = super::progress("dataset", shards as u64, "shards")?;
    let manifest = build(&args.out, &plan, |_| bar.inc(1))?;
    bar.finish_and_clear();
    writeln!(
        stdout,
        "{} shards built, {} already there, under {}",
        manifest.shards_built,
        manifest.shards_skipped,
        args.out.display()
    )?;
    for split in Split::ALL {
        writeln!(
            stdout,
            "  {:<10} {:>4} shards {:>8} samples (world seed {})",
            split.name(),
            manifest.shards.get(&split).map_or(0, Vec::len),
            manifest.samples.get(&split).copied().unwrap_or(0),
            split.seed(args.seed)
        )?;
    }
    writeln!(stdout, "manifest: {}", args.out.join(MANIFEST).display())?;
    Ok(())
}
