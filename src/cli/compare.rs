//! `scenetok compare`: two motion models on the same scenarios, each metric with a 95%
//! bootstrap interval over scenarios, and the interval of their difference.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use scenetok::eval::bootstrap::{METRICS, paired};
use scenetok::eval::motion::MetricsConfig;
use scenetok::models::motion::MotionModel;
use scenetok::pipeline::{Segments, Source};

use super::{Context, DeviceArg};

#[derive(clap::Args)]
pub struct Args {
    /// Scenarios: a v2 dataset folder or WOMD Scenario TFRecords.
    #[arg(long)]
    data: PathBuf,
    /// The reference model (A).
    #[arg(long, value_enum, default_value = "lane-follower")]
    a: MotionModel,
    /// The model compared with it (B).
    #[arg(long, value_enum, default_value = "transformer")]
    b: MotionModel,
    /// The transformer's weights (default: the data folder's weights/motion_transformer.safetensors).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// For v2 datasets: a 9.1 s scenario window every STRIDE frames.
    #[arg(long, default_value_t = 10)]
    stride: usize,
    /// Bootstrap draws of the scenarios.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write every interval as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    let device = args.device.open()?;
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => ctx.data()?.weights(scenetok::models::motion::transformer::WEIGHTS_FILE),
    };
    let (a, b) = (args.a.load(&weights, &device)?, args.b.load(&weights, &device)?);
    let scenarios = Source::open(&args.data)?.scenarios(&Segments::All, args.stride)?;
    anyhow::ensure!(!scenarios.is_empty(), "{}: no scenario with agents to predict", args.data.display());
    let cfg = MetricsConfig::challenge();
    let horizon = cfg.horizon();
    let pa = scenarios.iter().map(|s| a.predict(s, &horizon)).collect::<scenetok::Result<Vec<_>>>()?;
    let pb = scenarios.iter().map(|s| b.predict(s, &horizon)).collect::<scenetok::Result<Vec<_>>>()?;
    let result = paired(&cfg, &scenarios, &pa, &pb, args.resamples, args.seed)?;
    writeln!(
        stdout,
        "A = {}, B = {} on {} scenarios of {}; 95% intervals from {} bootstrap draws of the scenarios (seed {})",
        a.name(),
        b.name(),
        scenarios.len(),
        args.data.display(),
        args.resamples,
        args.seed
    )?;
    writeln!(stdout, "{:<16} {:>4} {:<13} {:>22} {:>22} {:>24}", "type", "step", "metric", "A", "B", "B − A")?;
    let lower_is_better = [true, true, true, true, false, false];
    for r in &result {
        for (m, name) in METRICS.iter().enumerate() {
            let f =
                |i: &scenetok::eval::bootstrap::Interval| format!("{:.3} [{:.3}, {:.3}]", i.estimate, i.low, i.high);
            let d = &r.b_minus_a[m];
            let better = if lower_is_better[m] { d.high < 0.0 } else { d.low > 0.0 };
            let worse = if lower_is_better[m] { d.low > 0.0 } else { d.high < 0.0 };
            let verdict = if better {
                "B better"
            } else if worse {
                "A better"
            } else {
                ""
            };
            writeln!(
                stdout,
                "{:<16} {:>4} {:<13} {:>22} {:>22} {:>24} {verdict}",
                r.object_type,
                r.measurement_step,
                name,
                f(&r.a[m]),
                f(&r.b[m]),
                f(d)
            )?;
        }
    }
    if let Some(path) = &args.json {
        let v = serde_json::json!({
            "a": a.name(), "b": b.name(), "data": args.data, "scenarios": scenarios.len(),
            "resamples": args.resamples, "seed": args.seed, "metrics": METRICS, "breakdowns": result,
        });
        scenetok::io::output::write_file(path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
