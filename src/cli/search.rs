//! `scenetok search sparsevit`: evolutionary search of SparseViT pruning ratios under latency
//! budgets (fractions of the dense backbone's latency measured here), AP on validation frames.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use scenetok::eval::camera_det::ValidationImages;
use scenetok::models::det::search::{BudgetResult, Rescore, SearchOptions, SearchRecord, evolve, finalists, model_id};
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
    /// Width of each budget's latency band, a fraction of the dense latency: a set is chosen
    /// only between budget − band and budget (the paper's `min ≤ latency ≤ max`; a set much
    /// faster than the budget gives up accuracy it need not). 0: no lower bound.
    #[arg(long, default_value_t = 0.0)]
    band: f64,
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
    /// Other validation frames (never the evaluated ones, nor --data's): each budget's
    /// --finalists best sets are scored again on them and the best there is chosen (the best of
    /// many noisy scores on --data is biased up).
    #[arg(long)]
    rescore_data: Option<PathBuf>,
    /// Camera images of --rescore-data scored per finalist (evenly spaced over its frames).
    #[arg(long, default_value_t = 100)]
    rescore_images: usize,
    /// With --rescore-data: how many of each budget's best sets are scored again.
    #[arg(long, default_value_t = 5)]
    finalists: usize,
    /// Timed backbone runs per candidate, and of the dense backbone just before it (medians;
    /// after one warm-up each).
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
    // A candidate's latency is timed right after the dense backbone's and kept relative to it
    // (in units of the first dense timing): the budget is a fraction of the dense latency,
    // and this machine's speed drifts by more than the margins between candidates.
    let relative_ms = |r: &Ratios| -> scenetok::error::Result<f64> {
        let dense_now = backbone_ms(&dense)?;
        Ok(backbone_ms(r)? / dense_now * dense_ms)
    };
    let dense_ap = val.ap(&det, &dev, &dense, &opts)?;
    writeln!(
        stdout,
        "dense: backbone {dense_ms:.1} ms at {w}×{h}, AP {dense_ap:.4} on {} validation images",
        val.images.len()
    )?;
    // The re-scoring images and the dense backbone's AP on them.
    let rescore = match &a.rescore_data {
        Some(dir) => {
            anyhow::ensure!(a.finalists > 0, "--finalists: at least 1");
            let mut v = ValidationImages::load(&Source::open(dir)?, &FrameSelection::all())?;
            v.keep_evenly(a.rescore_images);
            anyhow::ensure!(!v.images.is_empty(), "{}: no camera images", dir.display());
            let ap = v.ap(&det, &dev, &dense, &opts)?;
            writeln!(stdout, "re-scoring on {} images of {}: dense AP {ap:.4}", v.images.len(), dir.display())?;
            Some((dir, v, ap))
        }
        None => None,
    };
    let mut results = Vec::new();
    for &fraction in &a.budgets {
        anyhow::ensure!(
            fraction > 0.0 && fraction <= 1.0,
            "--budgets {fraction}: a fraction of the dense latency in (0, 1]"
        );
        anyhow::ensure!(
            a.band >= 0.0 && a.band < fraction,
            "--band {}: a fraction of the dense latency in [0, {fraction}) (the budget)",
            a.band
        );
        let o = SearchOptions {
            population: a.population,
            parents: a.parents,
            generations: a.generations,
            mutation: a.mutation,
            seed: a.seed,
            budget_ms: fraction * dense_ms,
            floor_ms: if a.band > 0.0 { (fraction - a.band) * dense_ms } else { 0.0 },
        };
        let started = Instant::now();
        let bar = indicatif::ProgressBar::new_spinner();
        let (best, all) = evolve(&cfg, &o, &relative_ms, |r| {
            bar.inc(1);
            val.ap(&det, &dev, r, &opts)
        })?;
        bar.finish_and_clear();
        let scored = all.iter().filter(|c| c.ap.is_some()).count();
        writeln!(
            stdout,
            "budget {fraction} ({}{:.1} ms): {} configurations timed, {scored} scored, {:.0} s",
            if o.floor_ms > 0.0 { format!("{:.1} – ", o.floor_ms) } else { String::new() },
            o.budget_ms,
            all.len(),
            started.elapsed().as_secs_f64()
        )?;
        let Some(mut best) = best else {
            writeln!(stdout, "  no configuration within the budget (and band)")?;
            continue;
        };
        let mut rescored = None;
        if let Some((dir, v, dense_ap2)) = &rescore {
            let mut rows = Vec::new();
            for c in finalists(&all, &o, a.finalists) {
                let ap2 = v.ap(&det, &dev, &Ratios::parse(&c.ratios, &cfg)?, &opts)?;
                writeln!(
                    stdout,
                    "  finalist {} — {:.1} ms, AP {:.4} here, {ap2:.4} re-scored ({:+.4} vs dense there)",
                    c.ratios,
                    c.latency_ms,
                    c.ap.unwrap_or(0.0),
                    ap2 - dense_ap2
                )?;
                rows.push((c, ap2));
            }
            // The best re-scored AP; equal ones: the better search AP (listed first, and
            // `max_by` keeps the last of equals, so the list is walked backwards).
            if let Some((c, _)) = rows.iter().rev().max_by(|a, b| a.1.total_cmp(&b.1)) {
                best = c.clone();
            }
            rescored = Some(Rescore {
                data: dir.display().to_string(),
                images: v.images.len(),
                dense_ap: *dense_ap2,
                finalists: rows
                    .into_iter()
                    .map(|(c, ap2)| (c.ratios, c.latency_ms, c.ap.unwrap_or(0.0), ap2))
                    .collect(),
            });
        }
        let ap = best.ap.unwrap_or(0.0);
        writeln!(
            stdout,
            "  best: {} — {:.1} ms, AP {ap:.4} ({:+.4} vs dense){}",
            best.ratios,
            best.latency_ms,
            ap - dense_ap,
            if rescored.is_some() { ", chosen on the re-scoring images" } else { "" }
        )?;
        results.push(BudgetResult {
            name: format!("b{fraction:.2}"),
            budget_ms: o.budget_ms,
            floor_ms: o.floor_ms,
            ratios: best.ratios,
            latency_ms: best.latency_ms,
            ap,
            evaluated: scored,
            rescore: rescored,
        });
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
            floor_ms: 0.0,
        },
        results,
    };
    let path = record.save(&a.out_dir)?;
    writeln!(stdout, "wrote {}", path.display())?;
    Ok(())
}
