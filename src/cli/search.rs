//! `scenetok search sparsevit`: evolutionary search of SparseViT pruning ratios under latency
//! budgets (fractions of the dense backbone's latency measured here), AP on validation frames.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use scenetok::eval::camera_det::ValidationImages;
use scenetok::models::det::search::{BudgetResult, SearchOptions, SearchRecord, evolve, model_id};
use scenetok::models::det::{ChwImage, DecodeOptions, Detector, Ratios};
use scenetok::models::image_encoder::preprocess::RgbView;
use scenetok::pipeline::{FrameSelection, Source};

use super::tune::TUNING_DIR;
use super::{Context, DeviceArg};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Pruning ratios of the SparseViT detector per latency budget; the record goes to
    /// --out-dir (per model and device) and `eval --task camera-det --searched FILE` reports it.
    Sparsevit(SparsevitArgs),
}

#[derive(clap::Args)]
pub struct SparsevitArgs {
    /// Validation frames (never the evaluated ones).
    #[arg(long)]
    data: PathBuf,
    /// The detector (default: the data folder's weights/camera_det_small.safetensors).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Latency budgets as fractions of the dense backbone's.
    #[arg(long, value_delimiter = ',', default_value = "0.7")]
    budgets: Vec<f64>,
    /// Camera images of --data scored per candidate (evenly spaced over its frames).
    #[arg(long, default_value_t = 20)]
    images: usize,
    #[arg(long, default_value_t = 12)]
    population: usize,
    #[arg(long, default_value_t = 4)]
    parents: usize,
    #[arg(long, default_value_t = 3)]
    generations: usize,
    #[arg(long, default_value_t = 0.1)]
    mutation: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Timed backbone runs per candidate (median; after one warm-up).
    #[arg(long, default_value_t = 3)]
    latency_reps: usize,
    #[arg(long, default_value = TUNING_DIR)]
    out_dir: PathBuf,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(cmd: Command, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    let Command::Sparsevit(a) = cmd;
    let weights = match &a.weights {
        Some(w) => w.clone(),
        None => ctx.data()?.weights(scenetok::models::det::detector::WEIGHTS_FILE),
    };
    let dev = a.device.open()?;
    let det = Detector::load(&weights, &dev)?;
    let cfg = det.config().clone();
    let mut val = ValidationImages::load(&Source::open(&a.data)?, &FrameSelection::all())?;
    val.keep_evenly(a.images);
    let (first, _) = val.images.first().ok_or_else(|| anyhow::anyhow!("{}: no camera images", a.data.display()))?;
    // Latency: the backbone on the first validation image at the model's scale.
    let (input, w, h) = det.input(RgbView::from(first));
    let backbone_ms = |r: &Ratios| -> scenetok::error::Result<f64> {
        let image = ChwImage { height: h, width: w, values: &input };
        det.forward(&dev, image, r)?;
        let mut t: Vec<f64> = Vec::with_capacity(a.latency_reps);
        for _ in 0..a.latency_reps.max(1) {
            t.push(det.forward(&dev, image, r)?.backbone_s * 1e3);
        }
        t.sort_by(f64::total_cmp);
        Ok(t[t.len() / 2])
    };
    let opts = DecodeOptions::default();
    let dense = Ratios::dense(&cfg);
    let dense_ms = backbone_ms(&dense)?;
    let dense_ap = val.ap(&det, &dev, &dense, &opts)?;
    writeln!(
        stdout,
        "dense: backbone {dense_ms:.1} ms at {w}×{h}, AP {dense_ap:.4} on {} validation images",
        val.images.len()
    )?;
    let mut results = Vec::new();
    for &fraction in &a.budgets {
        anyhow::ensure!(
            fraction > 0.0 && fraction <= 1.0,
            "--budgets {fraction}: a fraction of the dense latency in (0, 1]"
        );
        let o = SearchOptions {
            population: a.population,
            parents: a.parents,
            generations: a.generations,
            mutation: a.mutation,
            seed: a.seed,
            budget_ms: fraction * dense_ms,
        };
        let started = Instant::now();
        let bar = indicatif::ProgressBar::new_spinner();
        let (best, all) = evolve(&cfg, &o, &backbone_ms, |r| {
            bar.inc(1);
            val.ap(&det, &dev, r, &opts)
        })?;
        bar.finish_and_clear();
        let scored = all.iter().filter(|c| c.ap.is_some()).count();
        writeln!(
            stdout,
            "budget {fraction} ({:.1} ms): {} configurations timed, {scored} scored, {:.0} s",
            o.budget_ms,
            all.len(),
            started.elapsed().as_secs_f64()
        )?;
        match best {
            Some(b) => {
                let ap = b.ap.unwrap_or(0.0);
                writeln!(
                    stdout,
                    "  best: {} — {:.1} ms, AP {ap:.4} ({:+.4} vs dense)",
                    b.ratios,
                    b.latency_ms,
                    ap - dense_ap
                )?;
                results.push(BudgetResult {
                    name: format!("b{fraction:.2}"),
                    budget_ms: o.budget_ms,
                    ratios: b.ratios,
                    latency_ms: b.latency_ms,
                    ap,
                    evaluated: scored,
                });
            }
            None => writeln!(stdout, "  no configuration within the budget")?,
        }
    }
    let record = SearchRecord {
        model: model_id(&weights)?,
        device: dev.backend().tuning_key(),
        input: (w, h),
        dense_ms,
        dense_ap,
        validation: a.data.display().to_string(),
        options: SearchOptions {
            population: a.population,
            parents: a.parents,
            generations: a.generations,
            mutation: a.mutation,
            seed: a.seed,
            budget_ms: 0.0,
        },
        results,
    };
    let path = record.save(&a.out_dir)?;
    writeln!(stdout, "wrote {}", path.display())?;
    Ok(())
}
