"""The motion transformer in PyTorch: the twin of `src/models/motion/transformer/` (same
layers, same order of operations, same parameter names), Wayformer-style early fusion.

Inputs (shapes from src/models/motion/features.rs; B samples, each in its agent's frame):
  agents [B, 65, 11, 8] (x, y, cos h, sin h, vx, vy, length, width), agent_valid [B, 65, 11],
  agent_types [B, 65], polylines [B, 256, 20, 2], point_valid [B, 256, 20],
  polyline_type [B, 256], signal [B, 256], and optionally scene_tokens [B, S, C] with
  scene_valid [B, S] (the scene-token slot: absent means no tokens, not zeros).

1. Encoders (PointNet-style): per step / per point a two-layer MLP of width `hidden` (the
   first layer adds learned time, type and signal embeddings), a max over the valid steps /
   points, then a linear map to `d`. Polyline points carry (x, y, dx, dy): the step to the
   next valid point (the last one repeats the step from the one before).
2. Tokens: agents (+ a learned "target" vector on slot 0) and polylines (and scene tokens,
   projected), each plus its modality's embedding; invalid slots are masked.
3. Fusion: `latents` learned queries cross-attend to every token, then `fusion_layers`
   self-attention blocks over the latents (pre-LayerNorm, ReLU FFN of 4d).
4. Decoder: `modes` learned queries, `decoder_layers` blocks of self-attention, cross-
   attention to the fused latents and FFN; per mode a bivariate Gaussian per future step
   (mu = 10 raw, sigma = exp(clamp(raw, -6, 6)), rho = 0.95 tanh(raw)) and a logit.
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

AGENT_SLOTS, HISTORY, AGENT_FEATURES = 65, 11, 8
POLYLINES, POINTS = 256, 20
FUTURE = 80
AGENT_TYPES = 5  # WOMD ObjectType 0..4
MAP_TYPES = 21  # MapFeatureType values 0..20
SIGNAL_STATES = 9  # TrafficSignalLaneState 0..8
AGENT_SCALE = [0.1, 0.1, 1.0, 1.0, 0.1, 0.1, 0.2, 0.2]
POINT_SCALE = 0.1
MU_SCALE = 10.0
LOG_SIGMA_CLAMP = 6.0
RHO_SCALE = 0.95
LN_EPS = 1e-5

CONFIGS = {
    # Shipped: trains in ~3 h on the project's 2-core machine.
    "d128": dict(d=128, heads=4, hidden=64, latents=32, fusion_layers=2, decoder_layers=2, modes=6, scene_dim=0),
    # The published size (Wayformer), for benchmarks.
    "d256": dict(d=256, heads=8, hidden=64, latents=32, fusion_layers=2, decoder_layers=2, modes=6, scene_dim=0),
}


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/o projections (biases on all)."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)

    def forward(self, x, ctx, key_valid=None):
        b, n, d = x.shape
        m = ctx.shape[1]
        h = self.heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.k(ctx).view(b, m, h, d // h).transpose(1, 2)
        v = self.v(ctx).view(b, m, h, d // h).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d // h)
        if key_valid is not None:
            s = s.masked_fill(~key_valid[:, None, None, :], float("-inf"))
        a = torch.softmax(s, dim=-1)
        y = (a @ v).transpose(1, 2).reshape(b, n, d)
        return self.o(y)


class Ffn(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.up = nn.Linear(d, 4 * d)
        self.down = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.down(F.relu(self.up(x)))


class CrossBlock(nn.Module):
    """x + attn(LN(x), ctx), then x + FFN(LN(x)); ctx is normalized by the caller."""

    def __init__(self, d, heads):
        super().__init__()
        self.norm_q = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = Attention(d, heads)
        self.norm_ffn = nn.LayerNorm(d, eps=LN_EPS)
        self.ffn = Ffn(d)

    def forward(self, x, ctx, key_valid=None):
        x = x + self.attn(self.norm_q(x), ctx, key_valid)
        return x + self.ffn(self.norm_ffn(x))


class SelfBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = Attention(d, heads)
        self.norm_ffn = nn.LayerNorm(d, eps=LN_EPS)
        self.ffn = Ffn(d)

    def forward(self, x):
        y = self.norm(x)
        x = x + self.attn(y, y)
        return x + self.ffn(self.norm_ffn(x))


class DecoderBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.norm_self = nn.LayerNorm(d, eps=LN_EPS)
        self.self_attn = Attention(d, heads)
        self.norm_cross = nn.LayerNorm(d, eps=LN_EPS)
        self.cross_attn = Attention(d, heads)
        self.norm_ffn = nn.LayerNorm(d, eps=LN_EPS)
        self.ffn = Ffn(d)

    def forward(self, x, ctx):
        y = self.norm_self(x)
        x = x + self.self_attn(y, y)
        x = x + self.cross_attn(self.norm_cross(x), ctx)
        return x + self.ffn(self.norm_ffn(x))


def masked_max(h, valid):
    """Max over dim -2 of the valid rows; 0 where none is valid."""
    h = h.masked_fill(~valid[..., None], float("-inf")).amax(dim=-2)
    return torch.where(torch.isfinite(h), h, torch.zeros_like(h))


def point_steps(p, valid):
    """(dx, dy) per point: to the next point if it is valid, else from the previous valid one, else 0."""
    nxt = torch.zeros_like(p)
    nxt[..., :-1, :] = p[..., 1:, :] - p[..., :-1, :]
    has_next = torch.zeros_like(valid)
    has_next[..., :-1] = valid[..., :-1] & valid[..., 1:]
    prv = torch.zeros_like(p)
    prv[..., 1:, :] = p[..., 1:, :] - p[..., :-1, :]
    has_prev = torch.zeros_like(valid)
    has_prev[..., 1:] = valid[..., 1:] & valid[..., :-1]
    step = torch.where(has_next[..., None], nxt, torch.where(has_prev[..., None], prv, torch.zeros_like(p)))
    return step * valid[..., None]


class MotionTransformer(nn.Module):
    def __init__(self, d, heads, hidden, latents, fusion_layers, decoder_layers, modes, scene_dim=0):
        super().__init__()
        self.cfg = dict(d=d, heads=heads, hidden=hidden, latents=latents, fusion_layers=fusion_layers,
                        decoder_layers=decoder_layers, modes=modes, scene_dim=scene_dim)
        self.register_buffer("agent_scale", torch.tensor(AGENT_SCALE), persistent=False)
        # Agent history encoder.
        self.agent_in = nn.Linear(AGENT_FEATURES, hidden)
        self.agent_time = nn.Parameter(torch.randn(HISTORY, hidden) * 0.1)
        self.agent_type = nn.Parameter(torch.randn(AGENT_TYPES, hidden) * 0.1)
        self.agent_mid = nn.Linear(hidden, hidden)
        self.agent_out = nn.Linear(hidden, d)
        # Polyline encoder.
        self.point_in = nn.Linear(4, hidden)
        self.map_type = nn.Parameter(torch.randn(MAP_TYPES, hidden) * 0.1)
        self.signal = nn.Parameter(torch.randn(SIGNAL_STATES, hidden) * 0.1)
        self.point_mid = nn.Linear(hidden, hidden)
        self.polyline_out = nn.Linear(hidden, d)
        # Token embeddings: modality (agents, polylines, scene tokens) and the target slot.
        self.modality = nn.Parameter(torch.randn(3, d) * 0.1)
        self.target = nn.Parameter(torch.randn(d) * 0.1)
        self.scene_in = nn.Linear(scene_dim, d) if scene_dim > 0 else None
        # Training-time standardisation of the scene tokens' columns (set_scene_norm); folded
        # into scene_in when the weights are written (folded_state_dict), so the shipped layout
        # and the Rust model have no such step.
        self.register_buffer("scene_shift", None, persistent=False)
        self.register_buffer("scene_inv_scale", None, persistent=False)
        # Fusion.
        self.latents = nn.Parameter(torch.randn(latents, d) * 0.1)
        self.norm_tokens = nn.LayerNorm(d, eps=LN_EPS)
        self.cross = CrossBlock(d, heads)
        self.fusion = nn.ModuleList([SelfBlock(d, heads) for _ in range(fusion_layers)])
        self.norm_latents = nn.LayerNorm(d, eps=LN_EPS)
        # Decoder.
        self.modes = nn.Parameter(torch.randn(modes, d) * 0.1)
        self.decoder = nn.ModuleList([DecoderBlock(d, heads) for _ in range(decoder_layers)])
        self.norm_out = nn.LayerNorm(d, eps=LN_EPS)
        self.trajectory = nn.Linear(d, FUTURE * 5)
        self.logit = nn.Linear(d, 1)

    def encode_agents(self, agents, valid, types):
        x = agents * self.agent_scale
        h = self.agent_in(x) + self.agent_time + self.agent_type[types.long()][:, :, None, :]
        h = self.agent_mid(F.relu(h))
        return self.agent_out(masked_max(h, valid)), valid.any(-1)

    def encode_polylines(self, points, valid, types, signal):
        step = point_steps(points, valid)
        x = torch.cat([points, step], dim=-1) * POINT_SCALE
        h = self.point_in(x) + (self.map_type[types.long()] + self.signal[signal.long()])[:, :, None, :]
        h = self.point_mid(F.relu(h))
        return self.polyline_out(masked_max(h, valid)), valid.any(-1)

    def forward(self, agents, agent_valid, agent_types, polylines, point_valid, polyline_type, signal,
                scene_tokens=None, scene_valid=None):
        agent_valid, point_valid = agent_valid.bool(), point_valid.bool()
        a, a_ok = self.encode_agents(agents, agent_valid, agent_types)
        p, p_ok = self.encode_polylines(polylines, point_valid, polyline_type, signal)
        a = a + self.modality[0]
        a = torch.cat([a[:, :1] + self.target, a[:, 1:]], dim=1)
        tokens, ok = [a, p + self.modality[1]], [a_ok, p_ok]
        if scene_tokens is not None:
            if self.scene_in is None:
                raise ValueError("scene tokens given to a model without a scene-token input (scene_dim = 0)")
            if self.scene_shift is not None:
                scene_tokens = (scene_tokens - self.scene_shift) * self.scene_inv_scale
            tokens.append(self.scene_in(scene_tokens) + self.modality[2])
            ok.append(scene_valid.bool())
        x = self.norm_tokens(torch.cat(tokens, dim=1))
        key_valid = torch.cat(ok, dim=1)
        b = x.shape[0]
        z = self.cross(self.latents.expand(b, -1, -1), x, key_valid)
        for blk in self.fusion:
            z = blk(z)
        z = self.norm_latents(z)
        m = self.modes.expand(b, -1, -1)
        for blk in self.decoder:
            m = blk(m, z)
        m = self.norm_out(m)
        raw = self.trajectory(m).view(b, -1, FUTURE, 5)
        mu = raw[..., 0:2] * MU_SCALE
        sigma = torch.exp(raw[..., 2:4].clamp(-LOG_SIGMA_CLAMP, LOG_SIGMA_CLAMP))
        rho = torch.tanh(raw[..., 4]) * RHO_SCALE
        return mu, sigma, rho, self.logit(m)[..., 0]

    def set_scene_norm(self, mean, std):
        """Standardise every scene-token column by the training tokens' mean and std (a column
        that does not vary keeps scale 1): the token features span 1e-2 to ~20 unscaled."""
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        self.scene_shift = mean
        self.scene_inv_scale = torch.where(std > 1e-6, 1.0 / std.clamp(min=1e-6), torch.ones_like(std))

    def folded_state_dict(self):
        """The state dict with the token standardisation folded into scene_in:
        W (x - m) * s + b = (W * s) x + (b - (W * s) m)."""
        sd = {k: v.detach().clone() for k, v in self.state_dict().items()}
        if self.scene_in is not None and self.scene_shift is not None:
            w = sd["scene_in.weight"].double() * self.scene_inv_scale.double()[None, :]
            sd["scene_in.bias"] = (sd["scene_in.bias"].double() - w @ self.scene_shift.double()).float()
            sd["scene_in.weight"] = w.float()
        return sd


def build(name_or_cfg):
    cfg = CONFIGS[name_or_cfg] if isinstance(name_or_cfg, str) else dict(name_or_cfg)
    return MotionTransformer(**cfg)


def nll(mu, sigma, rho, target, valid):
    """Bivariate Gaussian negative log-likelihood per step, 0 where not valid: [B, K, T]."""
    dx = (target[:, None, :, 0] - mu[..., 0]) / sigma[..., 0]
    dy = (target[:, None, :, 1] - mu[..., 1]) / sigma[..., 1]
    one = 1 - rho * rho
    q = (dx * dx - 2 * rho * dx * dy + dy * dy) / one
    v = torch.log(sigma[..., 0]) + torch.log(sigma[..., 1]) + 0.5 * torch.log(one) + 0.5 * q + math.log(2 * math.pi)
    return v * valid[:, None, :]


def load(path):
    """Weights written by tools/train/train_motion.py (safetensors; the config from the
    metadata `run`), in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    with safe_open(path, "pt") as f:
        model = build(json.loads(f.metadata()["run"])["config"])
    model.load_state_dict(load_file(path))
    return model.eval()


def mean_displacement(mu, target, valid):
    """Every mode's mean displacement from the truth over the truth's valid steps: [B, K]
    (mu [B or 1, K, T, 2], target [B, T, 2], valid [B, T]). Winner-take-all, the anchor
    assignment and minADE all measure with it."""
    v = valid.float()
    return ((mu - target[:, None]).norm(dim=-1) * v[:, None]).sum(-1) / v.sum(-1).clamp(min=1)[:, None]


def loss(out, target, valid, assigned=None):
    """Winner-take-all by default: the mode nearest the truth (mean displacement over the valid
    steps) is trained by NLL, and the logits by cross-entropy towards it. With `assigned` (a mode
    per sample, -1 = winner-take-all for that sample; tools/train/motion_anchors.py) that mode is
    trained instead. Returns (total, parts)."""
    mu, sigma, rho, logits = out
    v = valid.float()
    n = v.sum(-1).clamp(min=1)
    dist = mean_displacement(mu, target, valid)
    best = dist.argmin(dim=1)
    if assigned is not None:
        best = torch.where(assigned >= 0, assigned, best)
    per_step = nll(mu, sigma, rho, target, v)
    reg = per_step[torch.arange(len(best)), best].sum(-1) / n
    cls = F.cross_entropy(logits, best, reduction="none")
    return (reg + cls).mean(), dict(nll=reg.mean().item(), cls=cls.mean().item(), ade=dist.min(1).values.mean().item())
