//! `scenetok sparse export`: the LiDAR trainer's input.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use scenetok::pipeline::Source;
use scenetok::pipeline::export::export_lidar_points;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write the TOP lidar's points, features and segmentation labels of every frame as
    /// safetensors files (the PyTorch trainer's input).
    Export {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(which: Command, stdout: &mut impl Write) -> Result<()> {
    match which {
        Command::Export { data, out } => {
            let n = export_lidar_points(&Source::open(&data)?, &out)?;
            writeln!(stdout, "wrote {n} frame file(s) under {}", out.display())?;
        }
    }
    Ok(())
}
