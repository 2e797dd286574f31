//! `scenetok inspect PATH...`

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder, `.parquet` file or `.tfrecord` file (several allowed).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let mut reports = Vec::new();
    for p in &args.paths {
        // Library errors already name the file and the place in it.
        let report = scenetok::io::inspect::inspect(p)?;
        if !args.json {
            writeln!(stdout, "{}", report.to_table())?;
        }
        reports.push(report);
    }
    if args.json {
        let out = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])?
        } else {
            serde_json::to_string_pretty(&reports)?
        };
        writeln!(stdout, "{out}")?;
    }
    Ok(())
}
