//! The motion transformer: the Rust forward pass equals its PyTorch twin (float64) on golden
//! inputs, every output; the predictor turns its modes into WOMD-shaped predictions; bad
//! weights and inputs are errors, never panics.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array3};
use scenetok::backend::Device;
use scenetok::models::motion::features::{
    AGENT_FEATURES, AGENT_SLOTS, AgentFrame, AgentInputs, HISTORY_STEPS, MAX_POLYLINES, POLYLINE_POINTS,
};
use scenetok::models::motion::transformer::{MotionTransformer, SceneTokens, TransformerConfig};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A golden tensor as f64 values and its shape (f32, f64 and u8 tensors).
fn tensor(st: &safetensors::SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let v: Vec<f64> = match t.dtype() {
        safetensors::Dtype::F32 => {
            t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect()
        }
        safetensors::Dtype::F64 => {
            t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
        }
        safetensors::Dtype::U8 => t.data().iter().map(|&b| b as f64).collect(),
        other => panic!("{name}: {other:?}"),
    };
    (t.shape().to_vec(), v)
}

fn golden_inputs(st: &safetensors::SafeTensors) -> (Vec<AgentInputs>, Vec<SceneTokens>) {
    let inputs = golden_agent_inputs(st);
    let (sshape, scene) = tensor(st, "scene_tokens");
    let (_, scene_valid) = tensor(st, "scene_valid");
    let (s, c) = (sshape[1], sshape[2]);
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let scene = (0..inputs.len())
        .map(|i| SceneTokens {
            tokens: Array2::from_shape_vec((s, c), f32s(&scene[i * s * c..(i + 1) * s * c])).unwrap(),
            valid: scene_valid[i * s..(i + 1) * s].iter().map(|&v| v != 0.0).collect(),
        })
        .collect();
    (inputs, scene)
}

fn golden_agent_inputs(st: &safetensors::SafeTensors) -> Vec<AgentInputs> {
    let (shape, agents) = tensor(st, "agents");
    let b = shape[0];
    let (_, agent_valid) = tensor(st, "agent_valid");
    let (_, agent_types) = tensor(st, "agent_types");
    let (_, polylines) = tensor(st, "polylines");
    let (_, point_valid) = tensor(st, "point_valid");
    let (_, polyline_type) = tensor(st, "polyline_type");
    let (_, signal) = tensor(st, "signal");
    let (a, p) = (AGENT_SLOTS * HISTORY_STEPS, MAX_POLYLINES * POLYLINE_POINTS);
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    (0..b)
        .map(|i| AgentInputs {
            agents: Array3::from_shape_vec(
                (AGENT_SLOTS, HISTORY_STEPS, AGENT_FEATURES),
                f32s(&agents[i * a * AGENT_FEATURES..(i + 1) * a * AGENT_FEATURES]),
            )
            .unwrap(),
            agent_valid: Array2::from_shape_vec(
                (AGENT_SLOTS, HISTORY_STEPS),
                agent_valid[i * a..(i + 1) * a].iter().map(|&v| v != 0.0).collect(),
            )
            .unwrap(),
            agent_type: Array1::from_iter(agent_types[i * AGENT_SLOTS..(i + 1) * AGENT_SLOTS].iter().map(|&v| v as u8)),
            polylines: Array3::from_shape_vec(
                (MAX_POLYLINES, POLYLINE_POINTS, 2),
                f32s(&polylines[i * p * 2..(i + 1) * p * 2]),
            )
            .unwrap(),
            point_valid: Array2::from_shape_vec(
                (MAX_POLYLINES, POLYLINE_POINTS),
                point_valid[i * p..(i + 1) * p].iter().map(|&v| v != 0.0).collect(),
            )
            .unwrap(),
            polyline_type: Array1::from_iter(
                polyline_type[i * MAX_POLYLINES..(i + 1) * MAX_POLYLINES].iter().map(|&v| v as u8),
            ),
            signal: Array1::from_iter(signal[i * MAX_POLYLINES..(i + 1) * MAX_POLYLINES].iter().map(|&v| v as u8)),
            frame: AgentFrame { x: 0.0, y: 0.0, heading: 0.0 },
        })
        .collect()
}

/// Largest |rust − twin| over the largest |twin|.
fn rel_error(got: impl Iterator<Item = f32>, want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    got.zip(want).map(|(g, w)| (g as f64 - w).abs()).fold(0.0, f64::max) / scale
}

/// Every output (means, sigmas, correlations, logits) within 1e-4 of the float64 twin,
/// with scene tokens (some masked) and inputs with masked steps and points.
#[test]
fn forward_equals_the_pytorch_twin() {
    let dir = golden_dir();
    let bytes = std::fs::read(dir.join("motion_transformer.safetensors")).expect("the golden file is committed");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (inputs, scene) = golden_inputs(&st);
    let model = MotionTransformer::load(&dir.join("motion_transformer_weights.safetensors"), &Device::cpu()).unwrap();
    assert_eq!(model.config().scene_dim, 8);
    let out = model.forward(&inputs, Some(&scene)).unwrap();
    let checks = [
        ("mu", rel_error(out.mu.iter().copied(), &tensor(&st, "mu").1)),
        ("sigma", rel_error(out.sigma.iter().copied(), &tensor(&st, "sigma").1)),
        ("rho", rel_error(out.rho.iter().copied(), &tensor(&st, "rho").1)),
        ("logits", rel_error(out.logits.iter().copied(), &tensor(&st, "logits").1)),
    ];
    eprintln!("relative errors: {checks:?}");
    for (name, e) in checks {
        assert!(e < 1e-4, "{name}: relative error {e:.2e}");
    }
    // One agent at a time gives the same as the batch (no state shared across agents).
    let one = model.forward(&inputs[1..2], Some(&scene[1..2])).unwrap();
    let diff = one.logits.iter().zip(out.logits.row(1)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "{diff}");
    // Without the scene tokens the model still runs (the slot is optional) and differs.
    let none = model.forward(&inputs, None).unwrap();
    assert_ne!(none.logits, out.logits);
}

/// The attention rollout (what `viz` draws for a token model): the same outputs as the plain
/// forward pass, each mode's weights a distribution over the agent's tokens (summing to 1),
/// none on masked scene tokens or empty agent slots, and scene tokens among what it weighs.
#[test]
fn attention_rollout_is_a_distribution_over_the_valid_tokens() {
    let dir = golden_dir();
    let bytes = std::fs::read(dir.join("motion_transformer.safetensors")).expect("the golden file is committed");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (inputs, scene) = golden_inputs(&st);
    let model = MotionTransformer::load(&dir.join("motion_transformer_weights.safetensors"), &Device::cpu()).unwrap();
    let plain = model.forward(&inputs, Some(&scene)).unwrap();
    let (out, attention) = model.forward_with_attention(&inputs, Some(&scene)).unwrap();
    assert_eq!(out, plain);
    assert_eq!(attention.len(), inputs.len());
    for (i, a) in attention.iter().enumerate() {
        let tokens = a.weights.ncols();
        assert_eq!(tokens, a.scene_start + scene[i].tokens.nrows());
        for j in 0..a.modes {
            let row = a.weights.row(j);
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "agent {i} mode {j}: weights sum to {sum}");
            assert!(row.iter().all(|&w| w >= 0.0));
            for (s, (&w, &valid)) in a.scene(j).iter().zip(&scene[i].valid).enumerate() {
                assert!(valid || w == 0.0, "agent {i} mode {j}: masked scene token {s} has weight {w}");
            }
            for slot in 0..65 {
                if !inputs[i].agent_valid.row(slot).iter().any(|&v| v) {
                    assert_eq!(row[slot], 0.0, "agent {i}: empty slot {slot}");
                }
            }
        }
        assert!(a.scene(0).iter().sum::<f32>() > 0.0);
    }
}

/// The shipped weights (d = 128, trained; `data/weights/`) equal their float64 twin on
/// inputs from a generated world's test split: pins the committed file, the loader and the
/// kernels at the shipped size (the golden above is a small random config).
#[test]
fn shipped_weights_equal_the_pytorch_twin() {
    let bytes = std::fs::read(golden_dir().join("motion_transformer_shipped.safetensors")).expect("committed");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let inputs = golden_agent_inputs(&st);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/weights/motion_transformer.safetensors");
    let model = MotionTransformer::load(&shipped, &Device::cpu()).unwrap();
    assert_eq!((model.config().d, model.config().scene_dim), (128, 0));
    let out = model.forward(&inputs, None).unwrap();
    for name in ["mu", "sigma", "rho", "logits"] {
        let got: Vec<f32> = match name {
            "mu" => out.mu.iter().copied().collect(),
            "sigma" => out.sigma.iter().copied().collect(),
            "rho" => out.rho.iter().copied().collect(),
            _ => out.logits.iter().copied().collect(),
        };
        let (shape, want) = tensor(&st, name);
        assert_eq!(got.len(), want.len(), "{name} {shape:?}");
        let e = rel_error(got.into_iter(), &want);
        eprintln!("{name}: relative error {e:.2e}");
        assert!(e < 1e-4, "{name}: relative error {e:.2e}");
    }
}

/// Weights of another config, a file without the run's config, a tensor of the wrong shape,
/// scene tokens for a model without the slot, and an agent with no valid step: errors.
#[test]
fn bad_weights_and_inputs_are_errors() {
    let dir = golden_dir();
    let bytes = std::fs::read(dir.join("motion_transformer.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (mut inputs, scene) = golden_inputs(&st);
    let dev = Device::cpu();
    let tmp = tempfile::tempdir().unwrap();
    let weights = std::fs::read(dir.join("motion_transformer_weights.safetensors")).unwrap();
    // The same tensors without the run's metadata.
    let w = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let bare = tmp.path().join("bare.safetensors");
    std::fs::write(&bare, safetensors::serialize(w.tensors(), None).unwrap()).unwrap();
    let e = MotionTransformer::load(&bare, &dev).unwrap_err();
    assert!(e.to_string().contains("run"), "{e}");
    // A file whose config says d = 64 while its tensors are d = 32.
    let run = r#"{"config": {"d": 64, "heads": 4, "hidden": 16, "latents": 8, "fusion_layers": 1, "decoder_layers": 1, "modes": 6, "scene_dim": 8}}"#;
    let meta = std::collections::HashMap::from([("run".to_string(), run.to_string())]);
    let path = tmp.path().join("w.safetensors");
    std::fs::write(&path, safetensors::serialize(w.tensors(), Some(meta)).unwrap()).unwrap();
    match MotionTransformer::load(&path, &dev) {
        Err(e) => assert!(e.to_string().contains("shape"), "{e}"),
        Ok(_) => panic!("d = 64 weights loaded from d = 32 tensors"),
    }
    // The learning curve the trainer records: read when well formed, an error naming the
    // metadata when not (loss and step counts differ).
    let (_, header) = safetensors::SafeTensors::read_metadata(&weights).unwrap();
    let mut meta: std::collections::HashMap<String, String> = header.metadata().clone().unwrap();
    for (curve, ok) in [
        (
            r#"{"command": "train_motion.py", "steps": [50, 100], "loss": [4.0, 3.0], "validation": [{"step": 100, "min_ade": 2.0, "min_fde": 5.0}]}"#,
            true,
        ),
        (r#"{"command": "train_motion.py", "steps": [50, 100], "loss": [4.0]}"#, false),
    ] {
        meta.insert("curve".into(), curve.into());
        std::fs::write(&path, safetensors::serialize(w.tensors(), Some(meta.clone())).unwrap()).unwrap();
        match MotionTransformer::load(&path, &dev) {
            Ok(m) if ok => assert_eq!(m.training_curve().unwrap().validation[0].min_fde, 5.0),
            Err(e) if !ok => assert!(e.to_string().contains("curve"), "{e}"),
            other => panic!("curve {curve}: {:?}", other.map(|_| "loaded")),
        }
    }
    let plain = MotionTransformer::random(
        TransformerConfig { d: 32, heads: 4, hidden: 16, latents: 8, ..TransformerConfig::D128 },
        3,
        &dev,
    )
    .unwrap();
    assert!(plain.forward(&inputs, Some(&scene)).is_err());
    inputs[0].agent_valid.row_mut(0).fill(false);
    assert!(plain.forward(&inputs, None).is_err());
}

/// Paired bootstrap: a model against itself differs by exactly zero; against another, each
/// interval holds its estimate for the mean displacement metrics, and draws are seeded.
#[test]
fn paired_bootstrap_over_scenarios() {
    use scenetok::eval::bootstrap::paired;
    use scenetok::eval::motion::MetricsConfig;
    use scenetok::models::motion::{ConstantVelocity, LaneFollower, MotionPredictor};
    use scenetok::sim::generate::{GenerateConfig, Preset, segment_motion_scenarios};
    let cfg = GenerateConfig { frames: 120, seed: 3, segments: 1, ..GenerateConfig::preset(Preset::Tiny) };
    let scenarios = segment_motion_scenarios(&cfg, 0, 3);
    assert!(scenarios.len() >= 5);
    let mc = MetricsConfig::challenge();
    let h = mc.horizon();
    let cv: Vec<_> = scenarios.iter().map(|s| ConstantVelocity.predict(s, &h).unwrap()).collect();
    let lf: Vec<_> = scenarios.iter().map(|s| LaneFollower.predict(s, &h).unwrap()).collect();
    let same = paired(&mc, &scenarios, &cv, &cv, 50, 1).unwrap();
    assert!(same.iter().all(|b| b.b_minus_a.iter().all(|i| i.estimate == 0.0 && i.low == 0.0 && i.high == 0.0)));
    let r = paired(&mc, &scenarios, &cv, &lf, 100, 1).unwrap();
    assert_eq!(r, paired(&mc, &scenarios, &cv, &lf, 100, 1).unwrap());
    let vehicles = r.iter().find(|b| b.object_type == "TYPE_VEHICLE" && b.measurement_step == 15).unwrap();
    for i in [&vehicles.a[0], &vehicles.b[0], &vehicles.b_minus_a[0]] {
        assert!(i.low <= i.estimate && i.estimate <= i.high && i.low < i.high, "{i:?}");
    }
}
