//! `scenetok dataset`: training data for the learned models.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use scenetok::io::shard::Shard;
use scenetok::models::scene_tokens::TokenConfig;
use scenetok::pipeline::export::motion_dataset::{DatasetPlan, Split, TokenPlan, build_part, manifest_path};
use scenetok::pipeline::export::token_pipeline;
use scenetok::sim::generate::{GenerateConfig, Preset};

use super::Context;

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
    /// Unlabelled obstacle groups per generated world (cone tapers, debris, stalled trucks;
    /// default: the preset's).
    #[arg(long)]
    obstacles: Option<usize>,
    /// Only this part of the work (I/N: of the worlds of each split in split order, then the
    /// --data inputs, job k where k mod N = I), writing `dataset_manifest.I-of-N.json`; a
    /// last run without --shard finds every file built and writes the dataset's manifest.
    #[arg(long, default_value = "0/1", value_name = "I/N")]
    shard: Shard,
    #[command(flatten)]
    tokens: TokenArgs,
}

/// Scene tokens (MoST) for the generated worlds' samples.
#[derive(clap::Args)]
pub struct TokenArgs {
    /// Simulate the sensors of each window's token frames and write their scene elements
    /// beside each shard (`tokens/<split>/`).
    #[arg(long)]
    tokens: bool,
    /// The token frames, as steps before a window's current one.
    #[arg(long, value_delimiter = ',', default_value = "10,0")]
    token_history: Vec<usize>,
    /// The token frames' LiDAR resolution divisors (rows, columns; as `generate --lidar-div`).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    token_lidar_div: Vec<usize>,
    /// The token frames' camera resolution divisor (as `generate --camera-div`).
    #[arg(long, default_value_t = 2)]
    token_camera_div: u32,
    #[command(flatten)]
    models: super::tokens::TokenModelArgs,
}

pub fn run(which: Command, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    match which {
        Command::Motion(a) => motion(a, ctx, stdout),
    }
}

fn motion(args: MotionArgs, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    let mut world = GenerateConfig::preset(args.preset);
    world.frames = args.frames.unwrap_or(world.frames);
    world.obstacles = args.obstacles.unwrap_or(world.obstacles);
    anyhow::ensure!(
        world.frames >= scenetok::io::v2::motion::WINDOW,
        "--frames {} is shorter than one {}-step window",
        world.frames,
        scenetok::io::v2::motion::WINDOW
    );
    let t = &args.tokens;
    let (mut pipeline, token_plan) = if t.tokens {
        let [rows, cols] = t.token_lidar_div[..] else {
            anyhow::bail!("--token-lidar-div takes two divisors (rows,columns), not {:?}", t.token_lidar_div)
        };
        let (lidar, image) = t.models.stages(ctx)?;
        let config = TokenConfig::default();
        let (pipeline, layout) = token_pipeline(lidar, image, config)?;
        let plan = TokenPlan {
            history: t.token_history.clone(),
            lidar_div: [rows, cols],
            camera_div: t.token_camera_div,
            image_channels: layout.image_channels,
            lidar_channels: layout.lidar_channels,
            config: format!("{config:?}"),
        };
        (Some(pipeline), Some(plan))
    } else {
        (None, None)
    };
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
        tokens: token_plan,
    };
    let jobs = args.train_worlds + args.validation_worlds + args.test_worlds + args.data.len();
    let shards = (0..jobs).filter(|&k| args.shard.keeps(k)).count();
    let bar = super::progress("dataset", shards as u64, "shards")?;
    let manifest = build_part(&args.out, &plan, args.shard, pipeline.as_mut(), |_| bar.inc(1))?;
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
    writeln!(stdout, "manifest: {}", manifest_path(&args.out, args.shard).display())?;
    Ok(())
}
