//! `scenetok bench sparse`: MinkUNet per dataflow and tuned, per-layer GFLOP/s against
//! SGEMM, and spconv's CPU build on the same voxels and weights (a second correctness
//! oracle: a ratio whose outputs disagree is marked invalid).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use scenetok::backend::cpu::{amx, lowp};
use scenetok::backend::{Dataflow, Device, Precision};
use scenetok::models::lidar_seg::{CLASSES, FEATURES};
use scenetok::sparse::layers::{LayerStat, RunCtx};
use scenetok::sparse::nets::{MinkUNet, MinkUNetConfig};
use scenetok::sparse::tune::tune as autotune;
use scenetok::sparse::weights::Params;
use scenetok::sparse::{KmapKey, SparseTensor};

use crate::cli::DeviceArg;
use crate::cli::tune::{Net, inputs as voxel_inputs, load_frames};

/// Per layer over the timed runs: cin, cout, FLOPs, seconds, group label.
type LayerSum = (usize, usize, f64, f64, String);

/// `scenetok bench sparse` options.
#[derive(clap::Args)]
pub struct Args {
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
    #[command(flatten)]
    device: DeviceArg,
}

/// One row of the network table: dataflows per group and precision per conv.
struct Config {
    label: String,
    choices: BTreeMap<KmapKey, Dataflow>,
    dataflow: Dataflow,
    precision: Precision,
    precisions: BTreeMap<String, Precision>,
    /// Whether INT8 / BF16 convs may use AMX tiles (where the CPU has them).
    amx: bool,
}

impl Config {
    fn dataflow(df: Dataflow) -> Self {
        Config {
            label: df.label(),
            choices: BTreeMap::new(),
            dataflow: df,
            precision: Precision::F32,
            precisions: BTreeMap::new(),
            amx: true,
        }
    }
}

/// One pass of `forward` over fresh copies of `inputs` with `config`: ms per input and the
/// per-layer statistics.
fn pass(net: &Net, inputs: &[SparseTensor], config: &Config) -> Result<(f64, Vec<LayerStat>)> {
    let mut ctx = RunCtx {
        choices: config.choices.clone(),
        precisions: config.precisions.clone(),
        ..RunCtx::with_default(config.dataflow).with_precision(config.precision)
    }
    .with_stats();
    amx::set_enabled(config.amx);
    let t = Instant::now();
    let run = inputs.iter().try_for_each(|x| net.forward(&x.fresh()?, &ctx).map(drop));
    let ms = t.elapsed().as_secs_f64() * 1e3 / inputs.len() as f64;
    amx::set_enabled(true);
    run?;
    Ok((ms, ctx.take_stats()))
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let device = args.device.open()?;
    let reps = args.reps.max(1);
    let frames = load_frames(&args.data, args.frames)?;
    let points: usize = frames.iter().map(|f| f.len()).sum::<usize>() / frames.len();
    let (int8_kernel, bf16_kernel) = lowp::kernels();
    writeln!(
        stdout,
        "sparse bench: {} frame(s), {points} points/frame (all lidars), device {} ({}); low-precision kernels: int8 {int8_kernel}, bf16 {bf16_kernel}",
        frames.len(),
        device.name(),
        device.backend().tuning_key()
    )?;
    // The machine's SGEMM on the engine's shapes: ours (same tiling as the dataflows) and
    // OpenBLAS through NumPy (all threads), the reference the layers are held against.
    let shapes = [(16384, 256, 256), (16384, 1728, 64), (16384, 864, 128)];
    let mut ours_peak: f64 = 0.0;
    for (m, k, n) in shapes {
        let g = scenetok::bench::gemm::tiled_gflops(m, k, n, 3);
        writeln!(stdout, "SGEMM {m}×{k}×{n}, scenetok (row tiles of 128): {g:.1} GFLOP/s")?;
        ours_peak = ours_peak.max(g);
    }
    let openblas = if args.no_baseline {
        None
    } else {
        let b = scenetok::bench::gemm::Baseline {
            python: super::tree_file(".venv/bin/python")?,
            script: super::tree_file("tools/bench/gemm_baseline.py")?,
        };
        let (blas, g) = scenetok::bench::gemm::openblas_gflops(&b, 3, &shapes)?;
        for ((m, k, n), g) in shapes.iter().zip(&g) {
            writeln!(stdout, "SGEMM {m}×{k}×{n}, {blas}: {g:.1} GFLOP/s")?;
        }
        g.into_iter().reduce(f64::max)
    };
    let peak = openblas.unwrap_or(ours_peak);
    let reference = if openblas.is_some() { "OpenBLAS" } else { "scenetok's own SGEMM (no baseline)" };
    writeln!(stdout, "SGEMM reference: {peak:.1} GFLOP/s, {reference}")?;
    let mut spconv_inputs = Vec::new();
    for &width in &args.widths {
        let mut net = Net::build("minkunet", width, &device)?;
        for &voxel in &args.voxels {
            let inputs = voxel_inputs(&frames, voxel, &device)?;
            let voxels = inputs.iter().map(|t| t.len()).sum::<usize>() / inputs.len();
            writeln!(stdout, "\nMinkUNet width {width}, voxel {voxel} m: {voxels} voxels/frame")?;
            let t = Instant::now();
            // The bench tunes over one config per dataflow kind (the full space is `scenetok
            // tune`), two interleaved rounds, fastest round per group.
            let groups = autotune(&inputs, &Dataflow::representatives(), 2, &|x, c| net.forward(x, c))?;
            let tune_s = t.elapsed().as_secs_f64();
            let mut configs: Vec<Config> = Dataflow::representatives().into_iter().map(Config::dataflow).collect();
            let choices: BTreeMap<KmapKey, Dataflow> = groups.iter().map(|g| (g.key, g.dataflow)).collect();
            let tuned = Config {
                label: format!("tuned ({tune_s:.0} s to tune)"),
                choices: choices.clone(),
                ..Config::dataflow(Dataflow::DEFAULT)
            };
            configs.push(tuned);
            // Low precision: calibrated on the first frame (these are random weights: the
            // rows measure speed; accuracy is `eval --task lidar-seg --precision`).
            let t = Instant::now();
            let plan = net.prepare_lowp(&device, &inputs[..1])?;
            let quant_s = t.elapsed().as_secs_f64();
            let (int8_kernel, bf16_kernel) = lowp::kernels();
            let mut low = vec![
                (format!("bf16 ({bf16_kernel})"), Precision::Bf16, BTreeMap::new(), true),
                (format!("int8 ({int8_kernel})"), Precision::Int8, BTreeMap::new(), true),
                (format!("guarded mix ({quant_s:.0} s to calibrate)"), Precision::F32, plan, true),
            ];
            // Where AMX runs them, the AVX-512 kernels too: what the tiles add, in the same
            // rounds.
            if amx::available() {
                low.push(("bf16 (avx512, no AMX)".to_string(), Precision::Bf16, BTreeMap::new(), false));
                low.push(("int8 (avx512, no AMX)".to_string(), Precision::Int8, BTreeMap::new(), false));
            }
            for (label, precision, precisions, amx) in low {
                configs.push(Config {
                    label,
                    choices: choices.clone(),
                    precision,
                    precisions,
                    amx,
                    ..Config::dataflow(Dataflow::DEFAULT)
                });
            }
            let tuned_row = Dataflow::representatives().len();
            // Interleaved rounds (every config once per round), fastest round per config: a
            // burst of other work on a shared machine then costs one round of every config,
            // not every round of one.
            pass(&net, &inputs[..1], &configs[0])?;
            let mut rows: Vec<(String, f64, Vec<LayerStat>)> =
                configs.iter().map(|c| (c.label.clone(), f64::INFINITY, Vec::new())).collect();
            for _ in 0..reps {
                for (row, config) in rows.iter_mut().zip(&configs) {
                    let (ms, stats) = pass(&net, &inputs, config)?;
                    if ms < row.1 {
                        (row.1, row.2) = (ms, stats);
                    }
                }
            }
            writeln!(
                stdout,
                "  fastest of {reps} interleaved round(s) per row (fp32 unless named; low precision on the tuned dataflows' maps):"
            )?;
            writeln!(stdout, "  {:<34} {:>10} {:>10} {:>10}", "dataflow / precision", "ms/frame", "conv ms", "map ms")?;
            let runs = inputs.len() as f64;
            for (label, ms, stats) in &rows {
                let conv: f64 = stats.iter().map(|s| s.seconds).sum::<f64>() * 1e3 / runs;
                let map: f64 = stats.iter().map(|s| s.map_seconds).sum::<f64>() * 1e3 / runs;
                writeln!(stdout, "  {label:<34} {ms:>10.1} {conv:>10.1} {map:>10.1}")?;
            }
            let best = rows.iter().take(tuned_row).map(|r| r.1).fold(f64::INFINITY, f64::min);
            let tuned_ms = rows[tuned_row].1;
            writeln!(stdout, "  tuned / best single dataflow: {:.2}", tuned_ms / best)?;
            for r in &rows[tuned_row + 1..] {
                writeln!(stdout, "  speed-up of {} over fp32 tuned: {:.2}x", r.0, tuned_ms / r.1)?;
            }
            // Per-layer GFLOP/s of the tuned run, and each layer's speed-up in BF16 and INT8.
            let per_layer = |stats: &[LayerStat]| {
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
                per
            };
            let per = per_layer(&rows[tuned_row].2);
            let bf16 = per_layer(&rows[tuned_row + 1].2);
            let int8 = per_layer(&rows[tuned_row + 2].2);
            let (mut big, mut big_ok) = (0, 0);
            writeln!(
                stdout,
                "  per conv layer (tuned fp32): ms/frame, GFLOP/s and % of the SGEMM reference; bf16 and int8: speed-up over fp32"
            )?;
            for (id, (cin, cout, flops, secs, key)) in &per {
                let g = flops / secs / 1e9;
                if *cin >= 64 && *cout >= 64 {
                    big += 1;
                    big_ok += (g >= 0.5 * peak) as usize;
                }
                let speedup = |m: &BTreeMap<(usize, String), LayerSum>| m.get(id).map_or(f64::NAN, |l| secs / l.3);
                writeln!(
                    stdout,
                    "    {:<16} {key:<14} {cin:>4}→{cout:<4} {:>7.2} ms {g:>8.1} GFLOP/s {:>5.0}%   bf16 {:>5.2}x  int8 {:>5.2}x",
                    id.1,
                    secs * 1e3 / runs,
                    100.0 * g / peak,
                    speedup(&bf16),
                    speedup(&int8),
                )?;
            }
            writeln!(stdout, "  layers with C ≥ 64 at ≥ 50% of the SGEMM reference: {big_ok}/{big}")?;
            spconv_inputs.push((width, voxel, inputs[0].clone(), tuned_ms));
        }
    }
    if args.no_baseline {
        return Ok(());
    }
    let python = match args.python {
        Some(p) => p,
        None => super::tree_file(".venv-train/bin/python")?,
    };
    writeln!(stdout, "\nspconv (CPU build) on the same voxels and weights:")?;
    spconv_baseline(&python, &spconv_inputs, reps, args.keep_cases.as_deref(), &device, stdout)
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
    device: &Device,
    stdout: &mut impl Write,
) -> Result<()> {
    let script = super::tree_file("tools/bench/sparse_spconv.py")?;
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
            scenetok::bench::sparse_cases::write_layer_case(&file, x, 7)?;
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
            device,
        )?;
        // Any dataflow gives the same logits; not the default (unsorted implicit GEMM, the slowest).
        let ctx = RunCtx::with_default(Dataflow::representatives()[0]);
        let ours = net.forward(&x.fresh()?, &ctx)?;
        let logits = device.backend().download(&ours.logits)?;
        let file = dir.join(format!("minkunet_w{width}_v{voxel}.safetensors"));
        scenetok::bench::sparse_cases::write_minkunet_case(&file, &net, x, &logits)?;
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
