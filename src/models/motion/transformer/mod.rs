//! The motion transformer (Wayformer-style early fusion), native inference on a
//! [`Device`]: the twin of `tools/train/motion_twin.py`, whose docstring describes the
//! architecture; every layer runs through the device's [`crate::backend::Backend`], batched
//! over the agents of a scene.

mod layers;
mod predictor;
mod token_kv;

pub use predictor::TransformerPredictor;

use std::path::Path;

use ndarray::{Array2, Array3, Array4};
use serde::{Deserialize, Serialize};

use self::layers::{CrossBlock, DecoderBlock, LayerNorm, Linear, SelfBlock, table};
use self::token_kv::{Source, TokenKv};
use super::features::{
    AGENT_FEATURES, AGENT_SLOTS, AgentInputs, FUTURE_STEPS, HISTORY_STEPS, MAX_POLYLINES, POLYLINE_POINTS,
};
use super::training::TrainingCurve;
use crate::backend::{Activation, Device, SetEncoder, Tensor};
use crate::error::{Error, Location, Result};
use crate::sparse::weights::Params;

/// The shipped weights' file name under `data/weights/`.
pub const WEIGHTS_FILE: &str = "motion_transformer.safetensors";

/// Sizes of the model (the twin's `CONFIGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformerConfig {
    pub d: usize,
    pub heads: usize,
    /// Width of the per-step and per-point MLPs.
    pub hidden: usize,
    pub latents: usize,
    pub fusion_layers: usize,
    pub decoder_layers: usize,
    pub modes: usize,
    /// Width of the scene tokens it takes (0: none).
    pub scene_dim: usize,
}

impl TransformerConfig {
    /// The shipped size.
    pub const D128: TransformerConfig = TransformerConfig {
        d: 128,
        heads: 4,
        hidden: 64,
        latents: 32,
        fusion_layers: 2,
        decoder_layers: 2,
        modes: 6,
        scene_dim: 0,
    };
    /// The published size (benchmarks).
    pub const D256: TransformerConfig = TransformerConfig { d: 256, heads: 8, ..TransformerConfig::D128 };

    fn check(&self) -> std::result::Result<(), String> {
        if self.d == 0 || self.heads == 0 || !self.d.is_multiple_of(self.heads) {
            return Err(format!("d = {} divisible by heads = {}", self.d, self.heads));
        }
        if self.hidden == 0 || self.latents == 0 || self.modes == 0 {
            return Err("hidden, latents and modes of at least 1".into());
        }
        Ok(())
    }
}

/// Input scales (the twin's `AGENT_SCALE`, `POINT_SCALE`) and output transforms.
const AGENT_SCALE: [f32; AGENT_FEATURES] = [0.1, 0.1, 1.0, 1.0, 0.1, 0.1, 0.2, 0.2];
const POINT_SCALE: f32 = 0.1;
const MU_SCALE: f32 = 10.0;
const LOG_SIGMA_CLAMP: f32 = 6.0;
const RHO_SCALE: f32 = 0.95;
const AGENT_TYPES: usize = 5;
const MAP_TYPES: usize = 21;
const SIGNAL_STATES: usize = 9;

/// Scene tokens for one agent (the next issue's MoST tokens): `[S × scene_dim]` and which
/// are real.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneTokens {
    pub tokens: Array2<f32>,
    pub valid: Vec<bool>,
}

/// Agents' tokens padded to one count (at least 1; padding rows are zeros and not valid),
/// as one batched forward pass takes them; an agent without tokens gets only padding.
pub fn pad_scene_tokens(per_agent: Vec<Option<SceneTokens>>, width: usize) -> Vec<SceneTokens> {
    let count = per_agent.iter().flatten().map(|t| t.tokens.nrows()).max().unwrap_or(0).max(1);
    per_agent
        .into_iter()
        .map(|t| {
            let mut tokens = Array2::<f32>::zeros((count, width));
            let mut valid = vec![false; count];
            if let Some(t) = t {
                let (n, w) = (t.tokens.nrows().min(count), t.tokens.ncols().min(width));
                tokens.slice_mut(ndarray::s![..n, ..w]).assign(&t.tokens.slice(ndarray::s![..n, ..w]));
                valid[..n].copy_from_slice(&t.valid[..n]);
            }
            SceneTokens { tokens, valid }
        })
        .collect()
}

/// Per mode, how much each token of one agent contributed to it
/// ([`MotionTransformer::forward_with_attention`]): tokens in the model's order, its 65
/// agent slots, 256 polylines, then the scene tokens from `scene_start`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenAttention {
    pub modes: usize,
    /// `[modes × tokens]`.
    pub weights: Array2<f32>,
    pub scene_start: usize,
}

impl TokenAttention {
    /// Mode `j`'s weights on the scene tokens.
    pub fn scene(&self, j: usize) -> Vec<f32> {
        self.weights.row(j).iter().skip(self.scene_start).copied().collect()
    }
}

/// The attention weights of one forward pass (head means): latents to tokens, per fusion
/// layer latents to latents, per decoder layer modes to latents; each `[agent][rows × cols]`.
#[derive(Debug, Default)]
struct AttentionTrace {
    cross: Vec<Vec<f32>>,
    fusion: Vec<Vec<Vec<f32>>>,
    decoder: Vec<Vec<Vec<f32>>>,
}

/// Where a token model gets each agent's scene tokens (MoST): from a dataset's token
/// sidecars, or from the pipeline's elements of the history frames.
pub trait SceneTokenSource: Send + Sync + std::fmt::Debug {
    /// The tokens of agent `track_index` of `scenario` in its frame at the current step, with
    /// the model's feature `layout`; `None` when no element qualifies (the agent's slot is
    /// then empty).
    fn tokens(
        &self,
        scenario: &crate::scene::Scenario,
        track_index: usize,
        spec: &SceneTokenSpec,
    ) -> Result<Option<SceneTokens>>;
}

/// How a token model's tokens were made in training (the weights' `scene_tokens` metadata):
/// which feature blocks (a [`crate::models::scene_tokens::FeatureLayout`]), which history
/// frames, the cap, the range and the element kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneTokenSpec {
    /// `all`, `lidar` or `image`.
    pub features: String,
    pub image_channels: usize,
    pub lidar_channels: usize,
    /// Steps before the current one.
    pub history: Vec<usize>,
    pub max_tokens: usize,
    pub range: f64,
    /// The element kinds that became tokens (absent: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<crate::models::scene_tokens::ElementKind>,
}

impl SceneTokenSpec {
    pub fn layout(&self) -> crate::models::scene_tokens::FeatureLayout {
        crate::models::scene_tokens::FeatureLayout {
            image_channels: self.image_channels,
            lidar_channels: self.lidar_channels,
        }
    }
}

/// Per agent, per mode: a bivariate Gaussian per future step (agent frame, metres) and a
/// logit.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeOutputs {
    /// `[agents, modes, 80, 2]`.
    pub mu: Array4<f32>,
    /// `[agents, modes, 80, 2]`: σx, σy.
    pub sigma: Array4<f32>,
    /// `[agents, modes, 80]`.
    pub rho: Array3<f32>,
    /// `[agents, modes]`.
    pub logits: Array2<f32>,
}

#[derive(Debug)]
pub struct MotionTransformer {
    cfg: TransformerConfig,
    scene_spec: Option<SceneTokenSpec>,
    curve: Option<TrainingCurve>,
    device: Device,
    agent_in: Linear,
    agent_time: Tensor,
    agent_type: Tensor,
    agent_mid: Linear,
    agent_out: Linear,
    point_in: Linear,
    map_type: Tensor,
    signal: Tensor,
    point_mid: Linear,
    polyline_out: Linear,
    /// Rows: agents' modality, agents' modality + the target vector, polylines', scene tokens'.
    token_offsets: Tensor,
    scene_in: Option<Linear>,
    latents: Tensor,
    /// The tokens' LayerNorm and the cross-attention's key/value projection, folded into
    /// the sources' output layers.
    token_kv: TokenKv,
    cross: CrossBlock,
    fusion: Vec<SelfBlock>,
    norm_latents: LayerNorm,
    modes: Tensor,
    decoder: Vec<DecoderBlock>,
    norm_out: LayerNorm,
    trajectory: Linear,
    logit: Linear,
}

impl MotionTransformer {
    /// Loads weights written by `tools/train/train_motion.py` (or the golden-tensor script):
    /// the config from the file's metadata (`run.config`), every tensor's shape checked.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut p = Params::load(path)?;
        let at = || Location::file(path).detail("safetensors metadata `run`");
        let run = p.metadata("run").ok_or_else(|| Error::invalid(at(), "the training run's JSON", "none"))?;
        let cfg = serde_json::from_str::<serde_json::Value>(run)
            .ok()
            .and_then(|v| serde_json::from_value::<TransformerConfig>(v.get("config")?.clone()).ok())
            .ok_or_else(|| Error::invalid(at(), "JSON with a `config` of the transformer's sizes", run.to_string()))?;
        cfg.check().map_err(|e| Error::invalid(at(), e, format!("{cfg:?}")))?;
        let scene_spec = match p.metadata("scene_tokens") {
            None => None,
            Some(text) => Some(serde_json::from_str::<SceneTokenSpec>(text).map_err(|e| {
                Error::invalid(
                    Location::file(path).detail("safetensors metadata `scene_tokens`"),
                    "the tokens' features, channels, history, cap, range and element kinds",
                    e.to_string(),
                )
            })?),
        };
        if let Some(spec) = &scene_spec
            && 6 + spec.layout().len() != cfg.scene_dim
        {
            return Err(Error::invalid(
                Location::file(path).detail("safetensors metadata `scene_tokens`"),
                format!("a layout whose token rows have scene_dim = {} values", cfg.scene_dim),
                format!("{} values", 6 + spec.layout().len()),
            ));
        }
        let curve = match p.metadata("curve") {
            None => None,
            Some(text) => Some(TrainingCurve::parse(text).map_err(|e| {
                Error::invalid(
                    Location::file(path).detail("safetensors metadata `curve`"),
                    "the training curve's JSON (command, rising steps, finite loss and validation values)",
                    e,
                )
            })?),
        };
        let mut model = Self::build(cfg, &mut p, device)?;
        model.scene_spec = scene_spec;
        model.curve = curve;
        Ok(model)
    }

    /// The same model, its tokens made as `spec` says (random models for tests and
    /// benchmarks); the spec's rows must have the model's `scene_dim` values.
    pub fn with_scene_spec(mut self, spec: SceneTokenSpec) -> Result<Self> {
        if 6 + spec.layout().len() != self.cfg.scene_dim {
            return Err(Error::invalid(
                Location::default().detail("scene token spec"),
                format!("a layout whose token rows have scene_dim = {} values", self.cfg.scene_dim),
                format!("{} values", 6 + spec.layout().len()),
            ));
        }
        self.scene_spec = Some(spec);
        Ok(self)
    }

    /// How the model's scene tokens are made (`None`: no tokens, or weights without the record).
    pub fn scene_spec(&self) -> Option<&SceneTokenSpec> {
        self.scene_spec.as_ref()
    }

    /// How the weights were trained (`None`: random weights, or a file without the record).
    pub fn training_curve(&self) -> Option<&TrainingCurve> {
        self.curve.as_ref()
    }

    /// Seeded random weights (benchmarks at sizes with no trained weights).
    pub fn random(cfg: TransformerConfig, seed: u64, device: &Device) -> Result<Self> {
        Self::build(cfg, &mut Params::random(seed), device)
    }

    fn build(cfg: TransformerConfig, p: &mut Params, dev: &Device) -> Result<Self> {
        cfg.check()
            .map_err(|e| Error::invalid(Location::default().detail("transformer config"), e, format!("{cfg:?}")))?;
        let TransformerConfig { d, heads, hidden, .. } = cfg;
        let modality = p.get("modality", &[3, d], crate::sparse::weights::Init::Uniform(0.1))?;
        let target = p.get("target", &[d], crate::sparse::weights::Init::Uniform(0.1))?;
        let mut offsets = Vec::with_capacity(4 * d);
        offsets.extend_from_slice(&modality[..d]);
        offsets.extend(modality[..d].iter().zip(&target).map(|(m, t)| m + t));
        offsets.extend_from_slice(&modality[d..3 * d]);
        // Loaded in the twin's order (seeded random weights draw in it).
        let agent_in = Linear::load(p, dev, "agent_in", AGENT_FEATURES, hidden)?;
        let agent_time = table(p, dev, "agent_time", HISTORY_STEPS, hidden)?;
        let agent_type = table(p, dev, "agent_type", AGENT_TYPES, hidden)?;
        let agent_mid = Linear::load(p, dev, "agent_mid", hidden, hidden)?;
        let agent_out = Linear::load(p, dev, "agent_out", hidden, d)?;
        let point_in = Linear::load(p, dev, "point_in", 4, hidden)?;
        let map_type = table(p, dev, "map_type", MAP_TYPES, hidden)?;
        let signal = table(p, dev, "signal", SIGNAL_STATES, hidden)?;
        let point_mid = Linear::load(p, dev, "point_mid", hidden, hidden)?;
        let polyline_out = Linear::load(p, dev, "polyline_out", hidden, d)?;
        let token_offsets = dev.backend().upload(&offsets, 4, d)?;
        let scene_in = (cfg.scene_dim > 0).then(|| Linear::load(p, dev, "scene_in", cfg.scene_dim, d)).transpose()?;
        let latents = table(p, dev, "latents", cfg.latents, d)?;
        let norm_tokens = LayerNorm::load(p, dev, "norm_tokens", d)?;
        let cross = CrossBlock::load(p, dev, "cross", d, heads)?;
        let token_kv = TokenKv::fold(
            dev,
            &norm_tokens,
            cross.kv_parts(),
            &token_offsets,
            &agent_out,
            &polyline_out,
            scene_in.as_ref(),
        )?;
        Ok(MotionTransformer {
            cfg,
            scene_spec: None,
            curve: None,
            device: dev.clone(),
            agent_in,
            agent_time,
            agent_type,
            agent_mid,
            agent_out,
            point_in,
            map_type,
            signal,
            point_mid,
            polyline_out,
            token_offsets,
            scene_in,
            latents,
            token_kv,
            cross,
            fusion: (0..cfg.fusion_layers)
                .map(|i| SelfBlock::load(p, dev, &format!("fusion.{i}"), d, heads))
                .collect::<Result<_>>()?,
            norm_latents: LayerNorm::load(p, dev, "norm_latents", d)?,
            modes: table(p, dev, "modes", cfg.modes, d)?,
            decoder: (0..cfg.decoder_layers)
                .map(|i| DecoderBlock::load(p, dev, &format!("decoder.{i}"), d, heads))
                .collect::<Result<_>>()?,
            norm_out: LayerNorm::load(p, dev, "norm_out", d)?,
            trajectory: Linear::load(p, dev, "trajectory", d, FUTURE_STEPS * 5)?,
            logit: Linear::load(p, dev, "logit", d, 1)?,
        })
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// What [`MotionTransformer::flops_per_agent`] counts less what the folded token norm
    /// saves: the keys and values projected from the encoders' widths instead of d.
    pub fn flops_run_per_agent(&self, scene_tokens: usize) -> f64 {
        let TransformerConfig { d, hidden, scene_dim, .. } = self.cfg;
        let tokens = AGENT_SLOTS + MAX_POLYLINES + scene_tokens;
        let kv = |rows: usize, k: usize| 2.0 * (rows * k * 2 * d) as f64;
        self.flops_per_agent(scene_tokens) - kv(tokens, d)
            + kv(AGENT_SLOTS + MAX_POLYLINES, hidden)
            + kv(scene_tokens, scene_dim)
    }

    /// Multiply-adds ×2 of one agent's forward pass as the model is written (the GEMMs and
    /// attention products; what ONNX Runtime and PyTorch run).
    pub fn flops_per_agent(&self, scene_tokens: usize) -> f64 {
        let TransformerConfig { d, hidden, latents, modes, fusion_layers, decoder_layers, scene_dim, .. } = self.cfg;
        let (a, p) = (AGENT_SLOTS * HISTORY_STEPS, MAX_POLYLINES * POLYLINE_POINTS);
        let tokens = AGENT_SLOTS + MAX_POLYLINES + scene_tokens;
        let mm = |n: usize, k: usize, m: usize| 2.0 * (n * k * m) as f64;
        let attn = |n: usize, m: usize| 2.0 * mm(n, d, m) + mm(n, d, d) * 2.0 + mm(m, d, d) * 2.0;
        let ffn = |n: usize| mm(n, d, 4 * d) * 2.0;
        mm(a, AGENT_FEATURES, hidden)
            + mm(a, hidden, hidden)
            + mm(AGENT_SLOTS, hidden, d)
            + mm(p, 4, hidden)
            + mm(p, hidden, hidden)
            + mm(MAX_POLYLINES, hidden, d)
            + mm(scene_tokens, scene_dim, d)
            + attn(latents, tokens)
            + ffn(latents)
            + fusion_layers as f64 * (attn(latents, latents) + ffn(latents))
            + decoder_layers as f64 * (attn(modes, modes) + attn(modes, latents) + ffn(modes))
            + mm(modes, d, FUTURE_STEPS * 5 + 1)
    }

    /// Runs the model on a batch of agents (each with its own inputs; scene tokens for every
    /// agent or for none, all with the same count).
    pub fn forward(&self, inputs: &[AgentInputs], scene: Option<&[SceneTokens]>) -> Result<ModeOutputs> {
        self.forward_traced(inputs, scene, None)
    }

    /// [`MotionTransformer::forward`] and, per agent and mode, how much each of its tokens
    /// contributed: attention rollout (Abnar & Zuidema, 2020) from the mode queries through
    /// the decoder's cross-attention (mean over its layers) to the latents, through the
    /// fusion layers (each `0.5·I + 0.5·A`, the residual counted as half) and the latents'
    /// cross-attention to the tokens. Each mode's row sums to 1 over the valid tokens.
    pub fn forward_with_attention(
        &self,
        inputs: &[AgentInputs],
        scene: Option<&[SceneTokens]>,
    ) -> Result<(ModeOutputs, Vec<TokenAttention>)> {
        let mut trace = AttentionTrace::default();
        let out = self.forward_traced(inputs, scene, Some(&mut trace))?;
        let (l, k) = (self.cfg.latents, self.cfg.modes);
        let mut per_agent = Vec::with_capacity(inputs.len());
        for i in 0..inputs.len() {
            let cross = &trace.cross[i];
            let n = cross.len() / l.max(1);
            // Latents → tokens through the fusion layers: R = Π (0.5 I + 0.5 A_f) · C.
            let mut r = cross.clone();
            for layer in trace.fusion.iter().rev() {
                let a = &layer[i];
                let mut next = vec![0.0f32; l * n];
                for p in 0..l {
                    for q in 0..l {
                        let w = 0.5 * a[p * l + q] + if p == q { 0.5 } else { 0.0 };
                        if w != 0.0 {
                            for t in 0..n {
                                next[p * n + t] += w * r[q * n + t];
                            }
                        }
                    }
                }
                r = next;
            }
            // Modes → latents: the decoder layers' cross-attention, averaged.
            let layers = trace.decoder.len().max(1) as f32;
            let mut weights = vec![0.0f32; k * n];
            for j in 0..k {
                for p in 0..l {
                    let d: f32 = trace.decoder.iter().map(|layer| layer[i][j * l + p]).sum::<f32>() / layers;
                    for t in 0..n {
                        weights[j * n + t] += d * r[p * n + t];
                    }
                }
            }
            per_agent.push(TokenAttention {
                modes: k,
                weights: Array2::from_shape_vec((k, n), weights).map_err(|e| {
                    Error::invalid(Location::default().detail("attention rollout"), "modes × tokens", e.to_string())
                })?,
                scene_start: AGENT_SLOTS + MAX_POLYLINES,
            });
        }
        Ok((out, per_agent))
    }

    fn forward_traced(
        &self,
        inputs: &[AgentInputs],
        scene: Option<&[SceneTokens]>,
        mut trace: Option<&mut AttentionTrace>,
    ) -> Result<ModeOutputs> {
        let dev = &self.device;
        let be = dev.backend();
        let b = inputs.len();
        let cfg = &self.cfg;
        let bad = |expected: String, found: String| {
            Error::invalid(Location::default().detail("motion transformer input"), expected, found)
        };
        if b == 0 {
            return Ok(ModeOutputs {
                mu: Array4::zeros((0, cfg.modes, FUTURE_STEPS, 2)),
                sigma: Array4::zeros((0, cfg.modes, FUTURE_STEPS, 2)),
                rho: Array3::zeros((0, cfg.modes, FUTURE_STEPS)),
                logits: Array2::zeros((0, cfg.modes)),
            });
        }
        for x in inputs {
            if x.agents.dim() != (AGENT_SLOTS, HISTORY_STEPS, AGENT_FEATURES)
                || x.polylines.dim() != (MAX_POLYLINES, POLYLINE_POINTS, 2)
                || x.agent_valid.dim() != (AGENT_SLOTS, HISTORY_STEPS)
                || x.point_valid.dim() != (MAX_POLYLINES, POLYLINE_POINTS)
                || x.agent_type.len() != AGENT_SLOTS
                || x.polyline_type.len() != MAX_POLYLINES
                || x.signal.len() != MAX_POLYLINES
            {
                return Err(bad(
                    "inputs of the shapes in models::motion::features".into(),
                    format!("agents {:?}, polylines {:?}", x.agents.dim(), x.polylines.dim()),
                ));
            }
            if !x.agent_valid.row(0).iter().any(|&v| v) {
                return Err(bad("the agent to predict (slot 0) with at least one valid step".into(), "none".into()));
            }
        }

        // Agents: per step MLP with time and type embeddings, max over valid steps (one fused op).
        let rows_a = b * AGENT_SLOTS * HISTORY_STEPS;
        let mut xa = Vec::with_capacity(rows_a * AGENT_FEATURES);
        let (mut time_idx, mut type_idx, mut valid_a) =
            (Vec::with_capacity(rows_a), Vec::with_capacity(rows_a), Vec::with_capacity(rows_a));
        for x in inputs {
            for s in 0..AGENT_SLOTS {
                let kind = (x.agent_type[s] as usize).min(AGENT_TYPES - 1) as u32;
                for t in 0..HISTORY_STEPS {
                    xa.extend((0..AGENT_FEATURES).map(|f| x.agents[[s, t, f]] * AGENT_SCALE[f]));
                    time_idx.push(t as u32);
                    type_idx.push(kind);
                    valid_a.push(x.agent_valid[[s, t]]);
                }
            }
        }
        let pooled_a = be.set_encoder(
            &be.upload(&xa, rows_a, AGENT_FEATURES)?,
            &SetEncoder {
                first: self.agent_in.parts(),
                embeddings: &[(&self.agent_time, &time_idx), (&self.agent_type, &type_idx)],
                second: self.agent_mid.parts(),
                group: HISTORY_STEPS,
                valid: &valid_a,
            },
        )?;
        let mut agent_tokens = self.agent_out.forward(dev, &pooled_a, Activation::None)?;
        let slot_offset: Vec<u32> = (0..b * AGENT_SLOTS).map(|r| u32::from(r % AGENT_SLOTS == 0)).collect();
        be.add_rows(&mut agent_tokens, &self.token_offsets, &slot_offset, Activation::None)?;
        let agent_kv = self.token_kv.project(dev, Source::Agents, &pooled_a, &agent_tokens, &slot_offset)?;
        let agent_ok: Vec<bool> = valid_a.chunks(HISTORY_STEPS).map(|c| c.iter().any(|&v| v)).collect();

        // Polylines: per point (x, y, dx, dy) MLP with type and signal embeddings, max over points.
        let rows_p = b * MAX_POLYLINES * POLYLINE_POINTS;
        let mut xp = Vec::with_capacity(rows_p * 4);
        let (mut map_idx, mut sig_idx, mut valid_p) =
            (Vec::with_capacity(rows_p), Vec::with_capacity(rows_p), Vec::with_capacity(rows_p));
        for x in inputs {
            for l in 0..MAX_POLYLINES {
                let kind = (x.polyline_type[l] as usize).min(MAP_TYPES - 1) as u32;
                let sig = (x.signal[l] as usize).min(SIGNAL_STATES - 1) as u32;
                let ok = |k: usize| x.point_valid[[l, k]];
                let pt = |k: usize| [x.polylines[[l, k, 0]], x.polylines[[l, k, 1]]];
                for k in 0..POLYLINE_POINTS {
                    let p = pt(k);
                    let step = if ok(k) && k + 1 < POLYLINE_POINTS && ok(k + 1) {
                        let q = pt(k + 1);
                        [q[0] - p[0], q[1] - p[1]]
                    } else if ok(k) && k > 0 && ok(k - 1) {
                        let q = pt(k - 1);
                        [p[0] - q[0], p[1] - q[1]]
                    } else {
                        [0.0, 0.0]
                    };
                    xp.extend([p[0], p[1], step[0], step[1]].map(|v| v * POINT_SCALE));
                    map_idx.push(kind);
                    sig_idx.push(sig);
                    valid_p.push(ok(k));
                }
            }
        }
        let pooled_p = be.set_encoder(
            &be.upload(&xp, rows_p, 4)?,
            &SetEncoder {
                first: self.point_in.parts(),
                embeddings: &[(&self.map_type, &map_idx), (&self.signal, &sig_idx)],
                second: self.point_mid.parts(),
                group: POLYLINE_POINTS,
                valid: &valid_p,
            },
        )?;
        let mut poly_tokens = self.polyline_out.forward(dev, &pooled_p, Activation::None)?;
        let poly_kind = vec![2; b * MAX_POLYLINES];
        be.add_rows(&mut poly_tokens, &self.token_offsets, &poly_kind, Activation::None)?;
        let poly_kv = self.token_kv.project(dev, Source::Polylines, &pooled_p, &poly_tokens, &poly_kind)?;
        let poly_ok: Vec<bool> = valid_p.chunks(POLYLINE_POINTS).map(|c| c.iter().any(|&v| v)).collect();

        // Scene tokens, projected; their keys and values.
        let (scene_kv, scene_ok, s_count) = match (scene, &self.scene_in) {
            (None, _) => (None, Vec::new(), 0),
            (Some(_), None) => {
                return Err(bad("no scene tokens (this model was trained without them)".into(), "scene tokens".into()));
            }
            (Some(s), Some(proj)) => {
                let count = s.first().map_or(0, |t| t.tokens.nrows());
                if s.len() != b || s.iter().any(|t| t.tokens.dim() != (count, cfg.scene_dim) || t.valid.len() != count)
                {
                    return Err(bad(
                        format!("{b} × [{count} × {}] scene tokens", cfg.scene_dim),
                        "other shapes".into(),
                    ));
                }
                let flat: Vec<f32> = s.iter().flat_map(|t| t.tokens.iter().copied()).collect();
                let raw = be.upload(&flat, b * count, cfg.scene_dim)?;
                let mut y = proj.forward(dev, &raw, Activation::None)?;
                let kind = vec![3; b * count];
                be.add_rows(&mut y, &self.token_offsets, &kind, Activation::None)?;
                let kv = self.token_kv.project(dev, Source::Scene, &raw, &y, &kind)?;
                (Some(kv), s.iter().flat_map(|t| t.valid.iter().copied()).collect(), count)
            }
        };

        // Keys and values per agent: its 65 agent slots, 256 polylines, S scene tokens.
        let n_tokens = AGENT_SLOTS + MAX_POLYLINES + s_count;
        let (a_rows, p_rows) = ((b * AGENT_SLOTS) as u32, (b * MAX_POLYLINES) as u32);
        let mut index = Vec::with_capacity(b * n_tokens);
        let mut key_valid = Vec::with_capacity(b * n_tokens);
        for i in 0..b {
            index.extend((0..AGENT_SLOTS).map(|s| (i * AGENT_SLOTS + s) as u32));
            key_valid.extend_from_slice(&agent_ok[i * AGENT_SLOTS..(i + 1) * AGENT_SLOTS]);
            index.extend((0..MAX_POLYLINES).map(|l| a_rows + (i * MAX_POLYLINES + l) as u32));
            key_valid.extend_from_slice(&poly_ok[i * MAX_POLYLINES..(i + 1) * MAX_POLYLINES]);
            index.extend((0..s_count).map(|s| a_rows + p_rows + (i * s_count + s) as u32));
            key_valid.extend_from_slice(&scene_ok[i * s_count..(i + 1) * s_count]);
        }
        let mut parts = vec![&agent_kv, &poly_kv];
        if let Some(s) = &scene_kv {
            parts.push(s);
        }
        let kv = be.gather_rows(&parts, &index)?;

        // Fusion into the latents, then the decoder.
        let repeat = |n: usize| -> Vec<u32> { (0..b).flat_map(|_| 0..n as u32).collect() };
        let mut z = be.gather_rows(&[&self.latents], &repeat(cfg.latents))?;
        self.cross.forward(dev, &mut z, &kv, b, &key_valid, trace.as_deref_mut().map(|t| &mut t.cross))?;
        for blk in &self.fusion {
            let mut w = Vec::new();
            blk.forward(dev, &mut z, b, trace.is_some().then_some(&mut w))?;
            if let Some(t) = trace.as_deref_mut() {
                t.fusion.push(w);
            }
        }
        let z = self.norm_latents.forward(dev, &z)?;
        let mut m = be.gather_rows(&[&self.modes], &repeat(cfg.modes))?;
        for blk in &self.decoder {
            let mut w = Vec::new();
            blk.forward(dev, &mut m, &z, b, trace.is_some().then_some(&mut w))?;
            if let Some(t) = trace.as_deref_mut() {
                t.decoder.push(w);
            }
        }
        let m = self.norm_out.forward(dev, &m)?;
        let raw = be.download(&self.trajectory.forward(dev, &m, Activation::None)?)?;
        let logits = be.download(&self.logit.forward(dev, &m, Activation::None)?)?;

        let k = cfg.modes;
        let mut mu = Array4::zeros((b, k, FUTURE_STEPS, 2));
        let mut sigma = Array4::zeros((b, k, FUTURE_STEPS, 2));
        let mut rho = Array3::zeros((b, k, FUTURE_STEPS));
        for i in 0..b {
            for j in 0..k {
                let r = &raw[(i * k + j) * FUTURE_STEPS * 5..][..FUTURE_STEPS * 5];
                for t in 0..FUTURE_STEPS {
                    let v = &r[t * 5..t * 5 + 5];
                    for c in 0..2 {
                        mu[[i, j, t, c]] = v[c] * MU_SCALE;
                        sigma[[i, j, t, c]] = v[2 + c].clamp(-LOG_SIGMA_CLAMP, LOG_SIGMA_CLAMP).exp();
                    }
                    rho[[i, j, t]] = v[4].tanh() * RHO_SCALE;
                }
            }
        }
        let logits =
            Array2::from_shape_vec((b, k), logits).map_err(|e| bad("one logit per mode".into(), e.to_string()))?;
        Ok(ModeOutputs { mu, sigma, rho, logits })
    }
}
