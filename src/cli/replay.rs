//! `scenetok replay`: send a v2 dataset to a streaming server at the pace of its timestamps.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use scenetok::stream::replay::{Rate, ReplayOptions, connect, replay};

#[derive(clap::Args)]
pub struct Args {
    /// A v2 dataset folder.
    #[arg(long)]
    data: PathBuf,
    /// The server (`host:port`).
    #[arg(long)]
    to: String,
    /// `1.0`: real time (the timestamps' pace); `2`: twice as fast; `max`: as fast as the
    /// server takes them.
    #[arg(long, default_value = "1.0")]
    rate: Rate,
    /// Start over at the end (timestamps shifted on, so frames stay in order).
    #[arg(long = "loop")]
    looped: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    #[arg(long)]
    segment: Option<String>,
    /// Frame indices of each segment: `A..B`, `A..`, `..B` or `N`.
    #[arg(long, value_parser = scenetok::viz::parse_frame_range)]
    frames: Option<std::ops::Range<usize>>,
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let opts = ReplayOptions {
        rate: args.rate,
        looped: args.looped,
        duration: args.duration.map(Duration::from_secs_f64),
        segment: args.segment,
        frames: args.frames,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let s = runtime.block_on(async {
        let client = connect(&args.to).await?;
        anyhow::Ok(replay(&args.data, client, &opts).await?)
    })?;
    writeln!(
        stdout,
        "sent {} frames of {} segments in {:.1} s: {} messages, {:.1} MB ({} rejected by the server); at worst {:.1} ms behind schedule",
        s.frames_sent,
        s.segments,
        s.seconds,
        s.messages_sent,
        s.bytes_sent as f64 / 1e6,
        s.messages_rejected,
        s.max_behind_ms
    )?;
    Ok(())
}
