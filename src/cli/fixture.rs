//! `scenetok fixture --out DIR`

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let files = scenetok::io::fixture::write(&args.out)?;
    writeln!(stdout, "wrote {} component files under {}", files.len(), args.out.display())?;
    Ok(())
}
