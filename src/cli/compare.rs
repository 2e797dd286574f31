//! `scenetok compare`: two motion models on the same scenarios, each metric with a 95%
//! bootstrap interval over scenarios, and the interval of their difference. On a built
//! motion dataset's split (`--dataset`), also on the agents that pass an unlabelled obstacle
//! and on the rest, with scene tokens from the dataset for token models.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use scenetok::eval::bootstrap::{METRICS, PairedBreakdown, paired};
use scenetok::eval::motion::{BucketAp, MetricsConfig, MotionMetrics};
use scenetok::eval::subset::agent_subset;
use scenetok::models::motion::transformer::{MotionTransformer, SceneTokenSource, TransformerPredictor};
use scenetok::models::motion::{MotionModel, MotionPredictor};
use scenetok::pipeline::export::motion_dataset::Split;
use scenetok::pipeline::motion_split::open_split;
use scenetok::pipeline::{Segments, Source};
use scenetok::scene::trajectory_type::TrajectoryType;

use super::{Context, DeviceArg};

#[derive(clap::Args)]
pub struct Args {
    /// Scenarios: a v2 dataset folder or WOMD Scenario TFRecords.
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    data: Option<PathBuf>,
    /// Or a `scenetok dataset motion` folder: its --split's scenarios (generated again from
    /// the manifest), its scene tokens, and subsets by distance to unlabelled obstacles.
    #[arg(long)]
    dataset: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "test")]
    split: Split,
    /// With --dataset: the obstacle subset is the agents whose centre comes this close (m) to
    /// an unlabelled obstacle's footprint now or over their future.
    #[arg(long, default_value_t = 5.0)]
    obstacle_distance: f32,
    /// The reference model (A).
    #[arg(long, value_enum, default_value = "lane-follower")]
    a: MotionModel,
    /// The model compared with it (B).
    #[arg(long, value_enum, default_value = "transformer")]
    b: MotionModel,
    /// The transformer's weights (default: the data folder's weights/motion_transformer.safetensors).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// A's transformer weights (default: --weights).
    #[arg(long)]
    a_weights: Option<PathBuf>,
    /// B's transformer weights (default: --weights).
    #[arg(long)]
    b_weights: Option<PathBuf>,
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

fn load(
    model: MotionModel,
    weights: &std::path::Path,
    device: &scenetok::backend::Device,
    tokens: Option<&Arc<dyn SceneTokenSource>>,
) -> Result<Box<dyn MotionPredictor>> {
    if model != MotionModel::Transformer {
        return Ok(model.load(weights, device)?);
    }
    let m = MotionTransformer::load(weights, device)?;
    let needs = m.config().scene_dim > 0;
    let p = TransformerPredictor::new(m);
    Ok(match (needs, tokens) {
        (true, Some(t)) => Box::new(p.with_tokens(t.clone())),
        (true, None) => anyhow::bail!(
            "{}: a model trained with scene tokens; compare it on a dataset built with tokens (--dataset)",
            weights.display()
        ),
        (false, _) => Box::new(p),
    })
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    let device = args.device.open()?;
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => ctx.data()?.weights(scenetok::models::motion::transformer::WEIGHTS_FILE),
    };
    let (scenarios, data_name, split) = match (&args.data, &args.dataset) {
        (Some(data), _) => {
            (Source::open(data)?.scenarios(&Segments::All, args.stride)?, data.display().to_string(), None)
        }
        (None, Some(dir)) => {
            let mut split = open_split(dir, args.split)?;
            let scenarios = std::mem::take(&mut split.scenarios);
            (scenarios, format!("{} ({})", dir.display(), args.split.name()), Some(split))
        }
        (None, None) => anyhow::bail!("--data or --dataset"),
    };
    let tokens = split.as_ref().and_then(|s| s.tokens.clone()).map(|t| t as Arc<dyn SceneTokenSource>);
    let a = load(args.a, args.a_weights.as_ref().unwrap_or(&weights), &device, tokens.as_ref())?;
    let b = load(args.b, args.b_weights.as_ref().unwrap_or(&weights), &device, tokens.as_ref())?;
    anyhow::ensure!(!scenarios.is_empty(), "{data_name}: no scenario with agents to predict");
    let cfg = MetricsConfig::challenge();
    let horizon = cfg.horizon();
    let pa = scenarios.iter().map(|s| a.predict(s, &horizon)).collect::<scenetok::Result<Vec<_>>>()?;
    let pb = scenarios.iter().map(|s| b.predict(s, &horizon)).collect::<scenetok::Result<Vec<_>>>()?;
    let mut parts = vec![(
        "all agents".to_string(),
        paired(&cfg, &scenarios, &pa, &pb, args.resamples, args.seed)?,
        scenarios.len(),
        count(&scenarios),
    )];
    if let Some(split) = &split {
        let near = |s: &scenetok::scene::Scenario, t: usize| {
            split.obstacle_distance.get(&(s.id.clone(), s.tracks[t].id)).is_some_and(|&d| d <= args.obstacle_distance)
        };
        let subsets: [(String, Box<Keep>); 2] = [
            (
                format!("obstacle subset (within {} m of an unlabelled obstacle)", args.obstacle_distance),
                Box::new(near),
            ),
            ("the rest".to_string(), Box::new(|s: &scenetok::scene::Scenario, t: usize| !near(s, t))),
        ];
        for (title, keep) in subsets {
            let (sub, preds) = agent_subset(&scenarios, &[&pa, &pb], keep);
            if sub.is_empty() {
                writeln!(stdout, "{title}: no agents")?;
                continue;
            }
            let r = paired(&cfg, &sub, &preds[0], &preds[1], args.resamples, args.seed)?;
            parts.push((title, r, sub.len(), count(&sub)));
        }
    }
    // Why a token model does or does not gain near obstacles: are they among its tokens, and
    // does its most likely mode attend to them?
    let mut looked = None;
    if let (Some(split), Some(tokens), MotionModel::Transformer) = (&split, &tokens, args.b) {
        let m = MotionTransformer::load(args.b_weights.as_ref().unwrap_or(&weights), &device)?;
        if m.scene_spec().is_some() {
            let none = Vec::new();
            let obstacles = |s: &scenetok::scene::Scenario| -> &[scenetok::models::motion::dataset::Footprint] {
                let segment = s.id.rsplit_once('@').map_or("", |(seg, _)| seg);
                split.obstacles.get(segment).unwrap_or(&none)
            };
            looked = Some(scenetok::eval::attention::obstacle_attention(
                &m,
                tokens.as_ref(),
                &scenarios,
                obstacles,
                args.obstacle_distance,
                OBSTACLE_TOKEN_M,
            )?);
        }
    }
    writeln!(
        stdout,
        "A = {}, B = {} on {} scenarios of {}; 95% intervals from {} bootstrap draws of the scenarios (seed {})",
        a.name(),
        b.name(),
        scenarios.len(),
        data_name,
        args.resamples,
        args.seed
    )?;
    for (title, result, n_scenarios, n_agents) in &parts {
        writeln!(stdout, "\n{title}: {n_agents} agents in {n_scenarios} scenarios")?;
        table(stdout, result)?;
    }
    let buckets = map_buckets(&cfg, &scenarios, &pa, &pb)?;
    bucket_table(stdout, &buckets)?;
    if let Some(o) = &looked {
        writeln!(
            stdout,
            "\nB's tokens near the obstacles: of {} agents within {} m of an obstacle (with tokens), {} ({:.1}%) have an \
             open-set object token within {OBSTACLE_TOKEN_M} m of its footprint; B's most likely mode puts {:.1}% of its \
             attention on the scene tokens and {:.2}% on the obstacle's tokens, which are {:.2}% of the tokens \
             ({:.2}× what uniform attention over the scene tokens would give them)",
            o.agents,
            args.obstacle_distance,
            o.seen,
            100.0 * o.seen as f64 / o.agents.max(1) as f64,
            100.0 * o.scene_share,
            100.0 * o.obstacle_share,
            100.0 * o.obstacle_token_share,
            o.lift()
        )?;
    }
    if let Some(path) = &args.json {
        let subsets: Vec<_> = parts
            .iter()
            .map(|(title, r, ns, na)| serde_json::json!({"subset": title, "scenarios": ns, "agents": na, "breakdowns": r}))
            .collect();
        let v = serde_json::json!({
            "a": a.name(), "b": b.name(), "data": data_name, "scenarios": scenarios.len(),
            "resamples": args.resamples, "seed": args.seed, "metrics": METRICS,
            "breakdowns": parts[0].1, "subsets": subsets,
            "obstacle_distance_m": split.as_ref().map(|_| args.obstacle_distance),
            "obstacle_attention": looked,
            "map_buckets": buckets,
        });
        scenetok::io::output::write_file(path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}

/// The mAP buckets of A and B at the last measurement step, paired by (object type,
/// trajectory type); a bucket only one model has predictions in shows the other's as none.
fn map_buckets(
    cfg: &MetricsConfig,
    scenarios: &[scenetok::scene::Scenario],
    pa: &[scenetok::scene::prediction::ScenarioPredictions],
    pb: &[scenetok::scene::prediction::ScenarioPredictions],
) -> Result<Vec<[Option<BucketAp>; 2]>> {
    let Some(step) = cfg.step_configurations.iter().map(|s| s.measurement_step).max() else {
        return Ok(Vec::new());
    };
    let mut rows: std::collections::BTreeMap<(String, TrajectoryType), [Option<BucketAp>; 2]> = Default::default();
    for (side, preds) in [pa, pb].into_iter().enumerate() {
        let mut m = MotionMetrics::new(cfg.clone())?;
        for (s, p) in scenarios.iter().zip(preds) {
            m.add(s, p)?;
        }
        for b in m.bucket_aps().into_iter().filter(|b| b.measurement_step == step) {
            let key = (b.object_type.clone(), b.trajectory_type);
            rows.entry(key).or_default()[side] = Some(b);
        }
    }
    Ok(rows.into_values().collect())
}

fn bucket_table(stdout: &mut impl Write, rows: &[[Option<BucketAp>; 2]]) -> Result<()> {
    let Some(step) = rows.iter().flatten().flatten().map(|b| b.measurement_step).next() else { return Ok(()) };
    writeln!(
        stdout,
        "\nmAP by trajectory type at step {step} (all agents; a type's mAP is the mean AP of its buckets):"
    )?;
    writeln!(
        stdout,
        "{:<16} {:<15} {:>7} {:>6} {:>7} {:>6} {:>7}",
        "type", "trajectory", "agents", "A TP", "A AP", "B TP", "B AP"
    )?;
    for [a, b] in rows {
        let Some(any) = a.as_ref().or(b.as_ref()) else { continue };
        let side = |x: &Option<BucketAp>| match x {
            Some(x) => format!("{:>6} {:>7.3}", x.true_positives, x.average_precision),
            None => format!("{:>6} {:>7}", "-", "-"),
        };
        writeln!(
            stdout,
            "{:<16} {:<15} {:>7} {} {}",
            any.object_type,
            any.trajectory_type.name(),
            any.trajectories,
            side(a),
            side(b)
        )?;
    }
    Ok(())
}

/// An object token whose centre is this close to an obstacle's footprint is the obstacle's (m).
const OBSTACLE_TOKEN_M: f64 = 1.5;

/// Which agents to predict a subset keeps: (scenario, track index).
type Keep<'a> = dyn Fn(&scenetok::scene::Scenario, usize) -> bool + 'a;

fn count(scenarios: &[scenetok::scene::Scenario]) -> usize {
    scenarios.iter().map(|s| s.tracks_to_predict.len()).sum()
}

fn table(stdout: &mut impl Write, result: &[PairedBreakdown]) -> Result<()> {
    writeln!(stdout, "{:<16} {:>4} {:<13} {:>22} {:>22} {:>24}", "type", "step", "metric", "A", "B", "B − A")?;
    let lower_is_better = [true, true, true, true, false, false];
    for r in result {
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
    Ok(())
}
