//! `scenetok eval --task lidar-seg`, `scenetok tune` and `scenetok bench sparse`.

// Library errors carry their full location (see src/lib.rs); they are the cold path.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use scenetok::models::lidar_seg::{self, CLASSES, FEATURES, LidarPoints, LidarSegModel};
use scenetok::sparse::layers::{LayerStat, RunCtx};
use scenetok::sparse::nets::{MinkUNet, MinkUNetConfig, SparseResNet21D};
use scenetok::sparse::tune::{TuneRecord, fresh, tune as autotune};
use scenetok::sparse::voxelize::voxelize;
use scenetok::sparse::weights::Params;
use scenetok::sparse::{ConvBackend, Cpu, Dataflow, SparseTensor};

/// Where `scenetok tune` stores its choices and `eval` looks for them.
const TUNING_DIR: &str = "runs/tuning";

/// `scenetok tune` options.
#[derive(clap::Args)]
pub struct TuneArgs {
    /// A v2 dataset whose frames (all five lidars) are the tuning inputs.
    #[arg(long)]
    data: PathBuf,
    /// Network: `minkunet` or `resnet21d`.
    #[arg(long, default_value = "minkunet")]
    network: String,
    #[arg(long, default_value_t = 1.0)]
    width: f32,
    #[arg(long, default_value_t = 0.1)]
    voxel: f32,
    #[arg(long, default_value_t = 2)]
    frames: usize,
    /// Interleaved timing rounds per candidate (the fastest counts).
    #[arg(long, default_value_t = 2)]
    reps: usize,
    /// Where tunings are stored (one JSON per network, device and input scale).
    #[arg(long, default_value = TUNING_DIR)]
    dir: PathBuf,
}

/// `scenetok bench sparse` options.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// A v2 dataset (full-size lidars: `scenetok generate --preset full`).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 1)]
    frames: usize,
    #[arg(long, value_delimiter = ',', default_value = "1.0,0.5")]
    widths: Vec<f32>,
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.05")]
    voxels: Vec<f32>,
    #[arg(long, default_value_t = 2)]
    reps: usize,
    /// Python with torch and spconv for the spconv baseline.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Skip the spconv baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Keep the spconv case files here (network cases and per-layer check cases, for
    /// `tools/bench/sparse_spconv.py --check`); a temporary folder otherwise.
    #[arg(long)]
    keep_cases: Option<PathBuf>,
}

pub fn eval_lidar_seg(
    data: &Path,
    weights: Option<PathBuf>,
    out: Option<PathBuf>,
    max_frames: Option<usize>,
    stdout: &mut impl Write,
) -> Result<()> {
    let path = weights.unwrap_or_else(LidarSegModel::default_path);
    let model = LidarSegModel::load(&path)?;
    // A stored `scenetok tune` result for this network, device and scale is reused.
    let tuned = TuneRecord::load(
        Path::new(TUNING_DIR),
        &format!("minkunet-w{}", model.net.config.width),
        &Cpu.device(),
        &scale_label(model.voxel_size),
    )?;
    let mut ctx = RunCtx::default();
    if let Some(t) = &tuned {
        ctx.choices = t.choices();
        writeln!(stdout, "using the dataflows tuned for {} on {}", t.network, t.device)?;
    }
    let report = lidar_seg::evaluate_with(data, &model, max_frames, &ctx)?;
    write!(stdout, "{}", report.table())?;
    if let Some(out) = out {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let p = out.join("metrics.json");
        std::fs::write(&p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
        writeln!(stdout, "wrote {}", p.display())?;
    }
    Ok(())
}

/// Per layer over the timed runs: cin, cout, FLOPs, seconds, group label.
type LayerSum = (usize, usize, f64, f64, String);

/// A network with random weights at a width, as one forward closure.
enum Net {
    MinkUNet(Box<MinkUNet>),
    ResNet(Box<SparseResNet21D>),
}

impl Net {
    fn build(name: &str, width: f32) -> Result<Self> {
        let mut p = Params::random(0);
        Ok(match name {
            "minkunet" => Net::MinkUNet(Box::new(MinkUNet::build(
                MinkUNetConfig { in_channels: FEATURES, num_classes: CLASSES, width },
                &mut p,
            )?)),
            "resnet21d" => Net::ResNet(Box::new(SparseResNet21D::build(FEATURES, width, &mut p)?)),
            other => anyhow::bail!("--network {other}: expected minkunet or resnet21d"),
        })
    }
    fn forward(&self, x: &SparseTensor, ctx: &RunCtx<'_>) {
        match self {
            Net::MinkUNet(n) => {
                n.forward(x, ctx);
            }
            Net::ResNet(n) => {
                n.forward(x, ctx);
            }
        }
    }
}

fn load_frames(data: &Path, frames: usize) -> Result<Vec<LidarPoints>> {
    let mut out = Vec::new();
    lidar_seg::for_each_frame(data, &[], Some(frames), |_, _, p| {
        out.push(p);
        Ok(())
    })?;
    anyhow::ensure!(!out.is_empty(), "{}: no lidar frames", data.display());
    out.truncate(frames);
    Ok(out)
}

fn scale_label(voxel: f32) -> String {
    format!("voxel{voxel}")
}

pub fn tune(args: TuneArgs, stdout: &mut impl Write) -> Result<()> {
    let frames = load_frames(&args.data, args.frames)?;
    let inputs: Vec<SparseTensor> = frames.iter().map(|f| voxelize(&[f.as_ref()], args.voxel).tensor).collect();
    let net = Net::build(&args.network, args.width)?;
    let backend = Cpu;
    let groups = autotune(&backend, &inputs, &Dataflow::candidates(), args.reps, &|x, c| net.forward(x, c));
    let record = TuneRecord {
        network: format!("{}-w{}", args.network, args.width),
        device: backend.device(),
        scale: scale_label(args.voxel),
        groups,
    };
    let path = record.save(&args.dir)?;
    writeln!(stdout, "{:<16} {:>6} {:<26} {:>9} {:>11}", "group", "layers", "chosen", "ms", "default ms")?;
    for g in &record.groups {
        writeln!(
            stdout,
            "{:<16} {:>6} {:<26} {:>9.2} {:>11.2}",
            g.key.label(),
            g.layers,
            g.dataflow.label(),
            g.ms,
            g.default_ms
        )?;
    }
    writeln!(stdout, "stored {}", path.display())?;
    Ok(())
}

/// One pass of `forward` over fresh copies of `inputs` with `choices` / `default`: ms per
/// input and the per-layer statistics.
fn pass(
    net: &Net,
    inputs: &[SparseTensor],
    backend: &dyn ConvBackend,
    choices: &BTreeMap<scenetok::sparse::KmapKey, Dataflow>,
    default: Dataflow,
) -> (f64, Vec<LayerStat>) {
    let ctx = RunCtx { backend, choices: choices.clone(), default, stats: Some(Mutex::new(Vec::new())) };
    let t = Instant::now();
    for x in inputs {
        net.forward(&fresh(x), &ctx);
    }
    let ms = t.elapsed().as_secs_f64() * 1e3 / inputs.len() as f64;
    (ms, ctx.stats.map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).unwrap_or_default())
}

pub fn bench(args: BenchArgs, stdout: &mut impl Write) -> Result<()> {
    let reps = args.reps.max(1);
    let frames = load_frames(&args.data, args.frames)?;
    let points: usize = frames.iter().map(|f| f.len()).sum::<usize>() / frames.len();
    writeln!(
        stdout,
        "sparse bench: {} frame(s), {points} points/frame (all lidars), {} rayon threads",
        frames.len(),
        rayon::current_num_threads()
    )?;
    // The machine's SGEMM, same crate, same tiling as the dataflows.
    let shapes = [(16384, 256, 256), (16384, 1728, 64), (16384, 864, 128)];
    let mut peak: f64 = 0.0;
    for (m, k, n) in shapes {
        let g = scenetok::sparse::gemm::measure_sgemm(m, k, n, 128, 3);
        writeln!(stdout, "SGEMM {m}×{k}×{n} (row tiles of 128): {g:.1} GFLOP/s")?;
        peak = peak.max(g);
    }
    writeln!(stdout, "SGEMM reference: {peak:.1} GFLOP/s")?;
    let backend = Cpu;
    let mut spconv_inputs = Vec::new();
    for &width in &args.widths {
        let net = Net::build("minkunet", width)?;
        for &voxel in &args.voxels {
            let inputs: Vec<SparseTensor> = frames.iter().map(|f| voxelize(&[f.as_ref()], voxel).tensor).collect();
            let voxels = inputs.iter().map(|t| t.len()).sum::<usize>() / inputs.len();
            writeln!(stdout, "\nMinkUNet width {width}, voxel {voxel} m: {voxels} voxels/frame")?;
            let t = Instant::now();
            // The bench tunes over one config per dataflow kind (the full space is `scenetok
            // tune`), two interleaved rounds, fastest round per group.
            let groups = autotune(&backend, &inputs, &Dataflow::representatives(), 2, &|x, c| net.forward(x, c));
            let tune_s = t.elapsed().as_secs_f64();
            let mut configs: Vec<(String, BTreeMap<_, _>, Dataflow)> =
                Dataflow::representatives().into_iter().map(|df| (df.label(), BTreeMap::new(), df)).collect();
            let choices = groups.iter().map(|g| (g.key, g.dataflow)).collect();
            configs.push((format!("tuned ({tune_s:.0} s to tune)"), choices, Dataflow::DEFAULT));
            // Interleaved rounds (every config once per round), fastest round per config: a
            // burst of other work on a shared machine then costs one round of every config,
            // not every round of one.
            pass(&net, &inputs[..1], &backend, &BTreeMap::new(), configs[0].2);
            let mut rows: Vec<(String, f64, Vec<LayerStat>)> =
                configs.iter().map(|c| (c.0.clone(), f64::INFINITY, Vec::new())).collect();
            for _ in 0..reps {
                for (row, (_, choices, default)) in rows.iter_mut().zip(&configs) {
                    let (ms, stats) = pass(&net, &inputs, &backend, choices, *default);
                    if ms < row.1 {
                        (row.1, row.2) = (ms, stats);
                    }
                }
            }
            writeln!(stdout, "  fastest of {reps} interleaved round(s) per row:")?;
            writeln!(stdout, "  {:<28} {:>10} {:>10} {:>10}", "dataflow", "ms/frame", "conv ms", "map ms")?;
            let runs = inputs.len() as f64;
            for (label, ms, stats) in &rows {
                let conv: f64 = stats.iter().map(|s| s.seconds).sum::<f64>() * 1e3 / runs;
                let map: f64 = stats.iter().map(|s| s.map_seconds).sum::<f64>() * 1e3 / runs;
                writeln!(stdout, "  {label:<28} {ms:>10.1} {conv:>10.1} {map:>10.1}")?;
            }
            let best = rows.iter().take(rows.len() - 1).map(|r| r.1).fold(f64::INFINITY, f64::min);
            let tuned = rows.last().map_or(f64::NAN, |r| r.1);
            writeln!(stdout, "  tuned / best single dataflow: {:.2}", tuned / best)?;
            // Per-layer GFLOP/s of the tuned run.
            let (_, _, stats) = rows.last().expect("tuned row");
            let mut per: BTreeMap<(usize, String), LayerSum> = BTreeMap::new();
            for (i, s) in stats.iter().enumerate() {
                let idx = i % (stats.len() / runs as usize).max(1);
                let e = per.entry((idx, s.name.clone())).or_insert((
                    s.cin,
                    s.cout,
                    0.0,
                    0.0,
                    s.key.map_or("1x1".into(), |k| k.label()),
                ));
                e.2 += s.flops;
                e.3 += s.seconds;
            }
            let (mut big, mut big_ok) = (0, 0);
            writeln!(stdout, "  per conv layer (tuned): GFLOP/s and % of SGEMM")?;
            for ((_, name), (cin, cout, flops, secs, key)) in &per {
                let g = flops / secs / 1e9;
                if *cin >= 64 && *cout >= 64 {
                    big += 1;
                    big_ok += (g >= 0.5 * peak) as usize;
                }
                writeln!(
                    stdout,
                    "    {name:<16} {key:<14} {cin:>4}→{cout:<4} {g:>8.1} GFLOP/s {:>5.0}%",
                    100.0 * g / peak
                )?;
            }
            writeln!(stdout, "  layers with C ≥ 64 at ≥ 50% of SGEMM: {big_ok}/{big}")?;
            spconv_inputs.push((width, voxel, inputs[0].clone(), rows.last().map_or(0.0, |r| r.1)));
        }
    }
    if args.no_baseline {
        return Ok(());
    }
    let python =
        args.python.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-train/bin/python"));
    writeln!(stdout, "\nspconv (CPU build) on the same voxels and weights:")?;
    spconv_baseline(&python, &spconv_inputs, reps, args.keep_cases.as_deref(), stdout)
}

/// Relative difference (max |Δ| / max |value|) below which spconv's logits count as agreeing.
const SPCONV_TOL: f64 = 1e-3;

/// Runs `tools/bench/sparse_spconv.py` on each input with the same random weights; reports
/// its ms per frame, the ratio, and the output agreement (second correctness oracle). Per
/// voxel size it also runs the script's per-layer check (one conv of each kind on scenetok's
/// own inputs, output coordinate sets compared). A ratio whose outputs disagree is marked
/// invalid.
fn spconv_baseline(
    python: &Path,
    inputs: &[(f32, f32, SparseTensor, f64)],
    reps: usize,
    keep: Option<&Path>,
    stdout: &mut impl Write,
) -> Result<()> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/bench/sparse_spconv.py");
    let probe = std::process::Command::new(python).args(["-c", "import spconv.pytorch, torch"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            writeln!(
                stdout,
                "  blocked: {} cannot import spconv: {}",
                python.display(),
                err.lines().last().unwrap_or("")
            )?;
            return Ok(());
        }
        Err(e) => {
            writeln!(stdout, "  blocked: cannot run {}: {e}", python.display())?;
            return Ok(());
        }
    }
    let dir = keep.map_or_else(
        || std::env::temp_dir().join(format!("scenetok-spconv-{}", std::process::id())),
        Path::to_path_buf,
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let run = |args: &[&std::ffi::OsStr]| -> Result<std::process::Output> {
        std::process::Command::new(python)
            .arg(&script)
            .args(args)
            .output()
            .with_context(|| format!("running {}", script.display()))
    };
    let mut checked = Vec::new();
    for (width, voxel, x, ours_ms) in inputs {
        if !checked.contains(voxel) {
            checked.push(*voxel);
            let file = dir.join(format!("layers_v{voxel}.safetensors"));
            scenetok::sparse::export::write_layer_case(&file, x, 7)?;
            let out = run(&["--check".as_ref(), file.as_os_str()])?;
            writeln!(stdout, "  per-layer check, voxel {voxel} m ({}):", file.display())?;
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                writeln!(
                    stdout,
                    "    {:<18} outputs {} / spconv {}, same coordinates {}, max abs {:.2e}, max rel {:.2e}: {}",
                    v["layer"].as_str().unwrap_or("?"),
                    v["outputs"],
                    v["spconv_outputs"],
                    v["same_coords"],
                    v["max_abs"].as_f64().unwrap_or(f64::NAN),
                    v["max_rel"].as_f64().unwrap_or(f64::NAN),
                    if v["agree"].as_bool() == Some(true) { "agree" } else { "DISAGREE" }
                )?;
            }
            if !out.status.success() {
                writeln!(
                    stdout,
                    "    per-layer check FAILED: {}",
                    String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("a layer disagrees")
                )?;
            }
        }
        // Our output on the same input, written into the case for the script to compare.
        let net = MinkUNet::build(
            MinkUNetConfig { in_channels: FEATURES, num_classes: CLASSES, width: *width },
            &mut Params::random(0),
        )?;
        // Any dataflow gives the same logits; not the default (unsorted implicit GEMM, the slowest).
        let ctx = RunCtx { default: Dataflow::representatives()[0], ..RunCtx::default() };
        let ours = net.forward(&fresh(x), &ctx);
        let file = dir.join(format!("minkunet_w{width}_v{voxel}.safetensors"));
        scenetok::sparse::export::write_minkunet_case(&file, &net, x, &ours.logits)?;
        let out = run(&[file.as_os_str(), reps.to_string().as_ref()])?;
        if !out.status.success() {
            writeln!(
                stdout,
                "  width {width} voxel {voxel}: spconv failed: {}",
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            )?;
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("spconv script output")?;
        writeln!(
            stdout,
            "  width {width} voxel {voxel}: scenetok tuned {ours_ms:.1} ms/frame; spconv {}:",
            v["spconv"].as_str().unwrap_or("?")
        )?;
        for r in v["runs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let ms = r["ms"].as_f64().unwrap_or(f64::NAN);
            let rel = r["max_rel"].as_f64().unwrap_or(f64::NAN);
            let agree = r["agree"].as_bool() == Some(true) && rel < SPCONV_TOL;
            writeln!(
                stdout,
                "    {} thread(s): {ms:.1} ms/frame; logits vs scenetok: max abs {:.2e}, max rel {rel:.2e}, argmax agreement {:.4}{}",
                r["threads"],
                r["max_abs"].as_f64().unwrap_or(f64::NAN),
                r["argmax_agree"].as_f64().unwrap_or(f64::NAN),
                r["error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default()
            )?;
            if agree {
                writeln!(stdout, "      agree: speed-up (spconv ms / scenetok tuned ms) {:.2}×", ms / ours_ms)?;
            } else {
                writeln!(
                    stdout,
                    "      OUTPUTS DISAGREE (tolerance {SPCONV_TOL:.0e}): the ratio {:.2}× is INVALID",
                    ms / ours_ms
                )?;
            }
        }
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
