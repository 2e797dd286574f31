//! `scenetok bench motion`: the motion transformer on one scene (8 agents to predict, their
//! neighbours and map) against the same weights in PyTorch and in ONNX Runtime (Python, same
//! threads), in the same run; outputs compared after the timers; GFLOP/s against this
//! machine's SGEMM (NumPy's OpenBLAS) measured in the same run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Location, Result};
use crate::models::motion::features::{AgentInputs, MapPieces, agent_inputs};
use crate::models::motion::transformer::{ModeOutputs, MotionTransformer, TransformerConfig};
use crate::scene::Scenario;
use crate::sim::generate::{GenerateConfig, Preset, segment_motion_scenarios};

/// The Python side: an interpreter with torch and onnxruntime, and the script.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub python: PathBuf,
    pub script: PathBuf,
}

#[derive(Debug, Clone)]
pub struct MotionBenchOptions {
    /// `d128` or `d256` (the twin's config names).
    pub config: String,
    pub seed: u64,
    /// Timed passes per side (after two warm-ups); medians reported.
    pub reps: usize,
    pub baseline: Option<Baseline>,
    /// NumPy's SGEMM for the machine's GFLOP/s (None: not measured).
    pub sgemm: Option<super::gemm::Baseline>,
    /// Where the inputs, weights and ONNX file go.
    pub work: PathBuf,
}

#[derive(Debug, Clone)]
pub struct MotionBench {
    pub config: TransformerConfig,
    pub threads: usize,
    pub agents: usize,
    /// Valid neighbour slots and polylines of the first agent.
    pub neighbours: usize,
    pub polylines: usize,
    pub ours_s: Vec<f64>,
    pub torch_s: Vec<f64>,
    pub ort_s: Vec<f64>,
    pub versions: String,
    /// The model's multiply-adds ×2 (what ONNX Runtime and PyTorch run).
    pub flops_per_scene: f64,
    /// Those ours runs (fewer: [`crate::models::motion::transformer::MotionTransformer::flops_run_per_agent`]).
    pub flops_run_per_scene: f64,
    /// NumPy/OpenBLAS SGEMM on a 2048² square, all threads.
    pub sgemm_gflops: Option<f64>,
    /// Max |ours − ONNX Runtime| / max |ONNX Runtime| per output (mu, sigma, rho, logits).
    pub vs_ort: Vec<(String, f64)>,
}

/// One generated scene with the most agents to predict (8 in a full-size world).
fn scene(seed: u64) -> Result<Scenario> {
    let cfg = GenerateConfig { seed, segments: 1, ..GenerateConfig::preset(Preset::Full) };
    segment_motion_scenarios(&cfg, 0, 10)
        .into_iter()
        .max_by_key(|s| s.tracks_to_predict.len())
        .ok_or_else(|| Error::invalid(Location::default().detail("bench motion"), "a generated scene", "none"))
}

fn inputs_file(path: &Path, inputs: &[AgentInputs]) -> Result<()> {
    use safetensors::Dtype;
    let f32s = |f: &dyn Fn(&AgentInputs) -> Vec<f32>| -> Vec<u8> {
        inputs.iter().flat_map(f).flat_map(f32::to_le_bytes).collect()
    };
    let u8s = |f: &dyn Fn(&AgentInputs) -> Vec<u8>| -> Vec<u8> { inputs.iter().flat_map(f).collect() };
    let b = inputs.len();
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("agents", Dtype::F32, vec![b, 65, 11, 8], f32s(&|x| x.agents.iter().copied().collect())),
        ("agent_valid", Dtype::U8, vec![b, 65, 11], u8s(&|x| x.agent_valid.iter().map(|&v| v as u8).collect())),
        ("agent_types", Dtype::U8, vec![b, 65], u8s(&|x| x.agent_type.to_vec())),
        ("polylines", Dtype::F32, vec![b, 256, 20, 2], f32s(&|x| x.polylines.iter().copied().collect())),
        ("point_valid", Dtype::U8, vec![b, 256, 20], u8s(&|x| x.point_valid.iter().map(|&v| v as u8).collect())),
        ("polyline_type", Dtype::U8, vec![b, 256], u8s(&|x| x.polyline_type.to_vec())),
        ("signal", Dtype::U8, vec![b, 256], u8s(&|x| x.signal.to_vec())),
    ];
    let at = || Location::file(path);
    let views = tensors
        .iter()
        .map(|(n, d, s, v)| {
            safetensors::tensor::TensorView::new(*d, s.clone(), v)
                .map(|t| (n.to_string(), t))
                .map_err(|e| Error::invalid(at().detail(*n), "a tensor of its shape", e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes =
        safetensors::serialize(views, None).map_err(|e| Error::invalid(at(), "serialisable tensors", e.to_string()))?;
    crate::io::output::write_file(path, &bytes)
}

#[derive(serde::Deserialize)]
struct BaselineOut {
    torch: String,
    onnxruntime: String,
    torch_s: Vec<f64>,
    ort_s: Vec<f64>,
}

fn outputs_f32(path: &Path) -> Result<Vec<(String, Vec<f32>)>> {
    let at = || Location::file(path);
    let bytes = std::fs::read(path).map_err(|e| Error::io(at(), e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::decode(at(), "safetensors", e))?;
    ["mu", "sigma", "rho", "logits"]
        .iter()
        .map(|n| {
            let t = st.tensor(n).map_err(|e| Error::decode(at(), "an output tensor", e))?;
            let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            Ok((n.to_string(), v))
        })
        .collect()
}

fn rel(ours: &[f32], theirs: &[f32]) -> f64 {
    let scale = theirs.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)).max(1e-12);
    ours.iter().zip(theirs).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max) / scale
}

fn flat(o: &ModeOutputs) -> [Vec<f32>; 4] {
    [
        o.mu.iter().copied().collect(),
        o.sigma.iter().copied().collect(),
        o.rho.iter().copied().collect(),
        o.logits.iter().copied().collect(),
    ]
}

pub fn run(opts: &MotionBenchOptions) -> Result<MotionBench> {
    let device = crate::backend::Device::cpu();
    let threads = rayon::current_num_threads();
    let config = match opts.config.as_str() {
        "d128" => TransformerConfig::D128,
        "d256" => TransformerConfig::D256,
        other => return Err(Error::invalid(Location::default().detail("--config"), "d128 or d256", other)),
    };
    let scenario = scene(opts.seed)?;
    let map = MapPieces::new(&scenario);
    let inputs: Vec<AgentInputs> = scenario
        .tracks_to_predict
        .iter()
        .map(|t| agent_inputs(&scenario, &map, t.track_index))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            Error::invalid(Location::default().detail("bench motion scene"), "inputs for every agent", e.to_string())
        })?;
    std::fs::create_dir_all(&opts.work).map_err(|e| Error::io(Location::file(&opts.work), e))?;
    let neighbours = inputs[0].agent_valid.rows().into_iter().skip(1).filter(|r| r.iter().any(|&v| v)).count();
    let polylines = inputs[0].point_valid.rows().into_iter().filter(|r| r.iter().any(|&v| v)).count();

    let (model, baseline) = match &opts.baseline {
        Some(b) => {
            let input_path = opts.work.join("inputs.safetensors");
            inputs_file(&input_path, &inputs)?;
            let mut command = std::process::Command::new(&b.python);
            command
                .arg(&b.script)
                .arg("--inputs")
                .arg(&input_path)
                .arg("--out")
                .arg(&opts.work)
                .args(["--config", &opts.config, "--seed", &opts.seed.to_string()])
                .args(["--threads", &threads.to_string(), "--reps", &opts.reps.to_string()])
                .env("OMP_NUM_THREADS", threads.to_string());
            let out: BaselineOut = super::run_python_json(command, &b.python, &b.script)?;
            (MotionTransformer::load(&opts.work.join("weights.safetensors"), &device)?, Some(out))
        }
        None => (MotionTransformer::random(config, opts.seed, &device)?, None),
    };
    let mut ours_s = Vec::with_capacity(opts.reps);
    let mut last = None;
    for i in 0..opts.reps + 2 {
        let t = Instant::now();
        let out = model.forward(&inputs, None)?;
        if i >= 2 {
            ours_s.push(t.elapsed().as_secs_f64());
        }
        last = Some(out);
    }
    let mut vs_ort = Vec::new();
    if let (Some(out), Some(_)) = (&last, &baseline) {
        for ((name, theirs), ours) in
            outputs_f32(&opts.work.join("ort_outputs.safetensors"))?.into_iter().zip(flat(out))
        {
            vs_ort.push((name, rel(&ours, &theirs)));
        }
    }
    let sgemm_gflops = match &opts.sgemm {
        Some(b) => Some(super::gemm::openblas_gflops(b, 3, &[(2048, 2048, 2048)])?.1[0]),
        None => None,
    };
    Ok(MotionBench {
        config: *model.config(),
        threads,
        agents: inputs.len(),
        neighbours,
        polylines,
        ours_s,
        torch_s: baseline.as_ref().map(|b| b.torch_s.clone()).unwrap_or_default(),
        ort_s: baseline.as_ref().map(|b| b.ort_s.clone()).unwrap_or_default(),
        versions: baseline
            .as_ref()
            .map(|b| format!("PyTorch {}, ONNX Runtime {}", b.torch, b.onnxruntime))
            .unwrap_or_default(),
        flops_per_scene: model.flops_per_agent(0) * inputs.len() as f64,
        flops_run_per_scene: model.flops_run_per_agent(0) * inputs.len() as f64,
        sgemm_gflops,
        vs_ort,
    })
}

impl MotionBench {
    pub fn report(&self) -> String {
        let med = |v: &[f64]| super::median(v.to_vec()) * 1e3;
        let ours = med(&self.ours_s);
        let c = &self.config;
        let mut s = format!(
            "motion transformer d = {}, {} heads, {} latents, {} + {} layers; one scene: {} agents to predict, \
             {} neighbours and {} polylines around the first; {} threads; {:.2} GFLOP per scene (ours runs {:.2} of \
             them: the tokens' LayerNorm folded into the cross-attention's keys and values)\n",
            c.d,
            c.heads,
            c.latents,
            c.fusion_layers + 1,
            c.decoder_layers,
            self.agents,
            self.neighbours,
            self.polylines,
            self.threads,
            self.flops_per_scene / 1e9,
            self.flops_run_per_scene / 1e9
        );
        s += &format!("{:<28} {:>12} {:>10} {:>10}\n", "side", "ms / scene", "GFLOP/s", "vs ours");
        let gf = |ms: f64| self.flops_per_scene / (ms * 1e-3) / 1e9;
        s += &format!("{:<28} {:>12.2} {:>10.1} {:>10}\n", "scenetok (Rust, CPU)", ours, gf(ours), "1.00×");
        for (name, v) in [("ONNX Runtime (Python)", &self.ort_s), ("PyTorch eager (CPU)", &self.torch_s)] {
            if !v.is_empty() {
                let m = med(v);
                s += &format!("{name:<28} {m:>12.2} {:>10.1} {:>9.2}×\n", gf(m), m / ours);
            }
        }
        if !self.versions.is_empty() {
            s += &format!("baselines: {} (medians of {} passes each)\n", self.versions, self.ours_s.len());
        }
        if let Some(g) = self.sgemm_gflops {
            s += &format!(
                "this machine's SGEMM (NumPy OpenBLAS, 2048², {} threads): {g:.1} GFLOP/s; ours at {:.0}% of it \
                 (the model's GFLOP; {:.0}% counting those it runs)\n",
                self.threads,
                100.0 * gf(ours) / g,
                100.0 * self.flops_run_per_scene / (ours * 1e-3) / 1e9 / g
            );
        }
        if !self.vs_ort.is_empty() {
            let parts: Vec<String> = self.vs_ort.iter().map(|(n, e)| format!("{n} {e:.1e}")).collect();
            s += &format!("outputs vs ONNX Runtime (max |Δ| / max |ORT|): {}\n", parts.join(", "));
        }
        let ort = if self.ort_s.is_empty() {
            "not measured"
        } else if med(&self.ort_s) >= ours {
            "met"
        } else {
            "not met"
        };
        s += &format!(
            "goals: ≤ 20 ms per scene {}; ≥ 1.0× ONNX Runtime {ort}\n",
            if ours <= 20.0 { "met" } else { "not met" }
        );
        s
    }
}
