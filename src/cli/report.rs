//! `scenetok report RUN [RUN_B]`: redraw a run's report or compare two runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use scenetok::eval::report;

#[derive(clap::Args)]
pub struct Args {
    /// A run folder written by `scenetok eval` (or `demo`).
    run_a: PathBuf,
    /// A second run folder: writes a comparison of B against A.
    run_b: Option<PathBuf>,
    /// Where the comparison goes (default: `A/../compare-A-vs-B`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also render the report in headless Chromium to this PNG and fail on console errors.
    #[arg(long)]
    screenshot: Option<PathBuf>,
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let (a, data_a) = report::load_run(&args.run_a)?;
    let path = match &args.run_b {
        None => report::write_report(&args.run_a, &a, &data_a)?,
        Some(run_b) => {
            let (b, _) = report::load_run(run_b)?;
            let name = |p: &Path| p.file_name().map_or("run".into(), |n| n.to_string_lossy().to_string());
            let (na, nb) = (name(&args.run_a), name(run_b));
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| args.run_a.parent().unwrap_or(Path::new(".")).join(format!("compare-{na}-vs-{nb}")));
            report::write_comparison(&out, (&na, &a), (&nb, &b))?
        }
    };
    writeln!(stdout, "wrote {} and report.md beside it", path.display())?;
    if let Some(png) = args.screenshot {
        let check = report::browser::check_page(&path, &png, 1280, 2400)?;
        anyhow::ensure!(
            check.console_errors.is_empty(),
            "{} logged console errors in Chromium:\n{}",
            path.display(),
            check.console_errors.join("\n")
        );
        writeln!(
            stdout,
            "rendered in Chromium without console errors: {} ({:.0}% inked, {} colours)",
            png.display(),
            100.0 * check.ink,
            check.colours
        )?;
    }
    Ok(())
}
