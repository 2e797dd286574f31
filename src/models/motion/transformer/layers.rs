//! The motion transformer's layers on a [`Device`]: multi-head attention and the
//! pre-LayerNorm blocks built from it and the shared [`crate::models::nn`] layers. Parameter names are the PyTorch twin's
//! (`tools/train/motion_twin.py`).

pub use crate::models::nn::{LayerNorm, Linear, table};

use crate::backend::{Activation, Device, Tensor};
use crate::error::Result;
use crate::sparse::weights::Params;

/// Multi-head attention with q/k/v/o projections (k and v as one stacked GEMM).
#[derive(Debug, Clone)]
pub struct Attention {
    q: Linear,
    kv: Linear,
    o: Linear,
    heads: usize,
}

impl Attention {
    pub fn load(p: &mut Params, dev: &Device, name: &str, d: usize, heads: usize) -> Result<Attention> {
        Ok(Attention {
            q: Linear::load(p, dev, &format!("{name}.q"), d, d)?,
            kv: Linear::stacked(p, dev, &[&format!("{name}.k"), &format!("{name}.v")], d, d)?,
            o: Linear::load(p, dev, &format!("{name}.o"), d, d)?,
            heads,
        })
    }

    /// `x [batch·n × d]` attends to `ctx [batch·m × d]`.
    pub fn forward(
        &self,
        dev: &Device,
        x: &Tensor,
        ctx: &Tensor,
        batch: usize,
        key_valid: Option<&[bool]>,
    ) -> Result<Tensor> {
        let kv = self.kv.forward(dev, ctx, Activation::None)?;
        self.forward_kv(dev, x, &kv, batch, key_valid)
    }

    /// [`Attention::forward`] with the context's keys and values already projected
    /// (`kv [batch·m × 2d]`, e.g. by a projection the context's LayerNorm was folded into).
    pub fn forward_kv(
        &self,
        dev: &Device,
        x: &Tensor,
        kv: &Tensor,
        batch: usize,
        key_valid: Option<&[bool]>,
    ) -> Result<Tensor> {
        let q = self.q.forward(dev, x, Activation::None)?;
        let y = dev.backend().attention(&q, kv, batch, self.heads, key_valid)?;
        self.o.forward(dev, &y, Activation::None)
    }

    /// The stacked key and value projection `[d × 2d]`, `[1 × 2d]`.
    pub fn kv_parts(&self) -> (&Tensor, &Tensor) {
        self.kv.parts()
    }

    /// The attention weights of `x [batch·n × d]` to `ctx [batch·m × d]`, averaged over the
    /// heads, on the host: `[batch][n × m]` row-major (diagnostics; the forward pass keeps
    /// them inside the fused kernel).
    pub fn weights(
        &self,
        dev: &Device,
        x: &Tensor,
        ctx: &Tensor,
        batch: usize,
        key_valid: Option<&[bool]>,
    ) -> Result<Vec<Vec<f32>>> {
        let kv = self.kv.forward(dev, ctx, Activation::None)?;
        self.weights_kv(dev, x, &kv, batch, key_valid)
    }

    /// [`Attention::weights`] with the context's keys and values already projected
    /// (`kv [batch·m × 2d]`).
    pub fn weights_kv(
        &self,
        dev: &Device,
        x: &Tensor,
        kv: &Tensor,
        batch: usize,
        key_valid: Option<&[bool]>,
    ) -> Result<Vec<Vec<f32>>> {
        let be = dev.backend();
        let (n, m) = (x.rows() / batch.max(1), kv.rows() / batch.max(1));
        let q = self.q.forward(dev, x, Activation::None)?;
        let (q, kv) = (be.download(&q)?, be.download(kv)?);
        let d = q.len() / (x.rows().max(1));
        let dh = d / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut out = Vec::with_capacity(batch);
        for b in 0..batch {
            let mut w = vec![0.0f32; n * m];
            let mut scores = vec![0.0f32; m];
            for h in 0..self.heads {
                for i in 0..n {
                    let qi = &q[(b * n + i) * d + h * dh..][..dh];
                    let mut max = f32::NEG_INFINITY;
                    for (j, s) in scores.iter_mut().enumerate() {
                        let ok = key_valid.is_none_or(|v| v[b * m + j]);
                        *s = if ok {
                            let kj = &kv[(b * m + j) * 2 * d + h * dh..][..dh];
                            qi.iter().zip(kj).map(|(a, c)| a * c).sum::<f32>() * scale
                        } else {
                            f32::NEG_INFINITY
                        };
                        max = max.max(*s);
                    }
                    let sum: f32 = scores.iter().map(|&s| if s.is_finite() { (s - max).exp() } else { 0.0 }).sum();
                    for (j, &s) in scores.iter().enumerate() {
                        if s.is_finite() && sum > 0.0 {
                            w[i * m + j] += (s - max).exp() / sum / self.heads as f32;
                        }
                    }
                }
            }
            out.push(w);
        }
        Ok(out)
    }
}

/// `down(relu(up(x)))`, 4d wide.
#[derive(Debug, Clone)]
pub struct Ffn {
    up: Linear,
    down: Linear,
}

impl Ffn {
    pub fn load(p: &mut Params, dev: &Device, name: &str, d: usize) -> Result<Ffn> {
        Ok(Ffn {
            up: Linear::load(p, dev, &format!("{name}.up"), d, 4 * d)?,
            down: Linear::load(p, dev, &format!("{name}.down"), 4 * d, d)?,
        })
    }

    /// `x ← x + FFN(norm(x))`.
    pub fn residual(&self, dev: &Device, norm: &LayerNorm, x: &mut Tensor) -> Result<()> {
        let h = self.up.forward(dev, &norm.forward(dev, x)?, Activation::Relu)?;
        let y = self.down.forward(dev, &h, Activation::None)?;
        dev.backend().add_act(x, &y, Activation::None)
    }
}

/// Latent queries attending to the tokens (their keys and values projected by the caller:
/// [`CrossBlock::kv_parts`]), then the FFN.
#[derive(Debug, Clone)]
pub struct CrossBlock {
    norm_q: LayerNorm,
    attn: Attention,
    norm_ffn: LayerNorm,
    ffn: Ffn,
}

impl CrossBlock {
    pub fn load(p: &mut Params, dev: &Device, name: &str, d: usize, heads: usize) -> Result<CrossBlock> {
        Ok(CrossBlock {
            norm_q: LayerNorm::load(p, dev, &format!("{name}.norm_q"), d)?,
            attn: Attention::load(p, dev, &format!("{name}.attn"), d, heads)?,
            norm_ffn: LayerNorm::load(p, dev, &format!("{name}.norm_ffn"), d)?,
            ffn: Ffn::load(p, dev, &format!("{name}.ffn"), d)?,
        })
    }

    /// The attention's key and value projection (`[d × 2d]`, `[1 × 2d]`).
    pub fn kv_parts(&self) -> (&Tensor, &Tensor) {
        self.attn.kv_parts()
    }

    /// `kv [batch·m × 2d]`: the tokens' keys and values. With `trace`, the attention weights
    /// (head mean) are put there.
    pub fn forward(
        &self,
        dev: &Device,
        x: &mut Tensor,
        kv: &Tensor,
        batch: usize,
        key_valid: &[bool],
        trace: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<()> {
        let q = self.norm_q.forward(dev, x)?;
        if let Some(t) = trace {
            *t = self.attn.weights_kv(dev, &q, kv, batch, Some(key_valid))?;
        }
        let y = self.attn.forward_kv(dev, &q, kv, batch, Some(key_valid))?;
        dev.backend().add_act(x, &y, Activation::None)?;
        self.ffn.residual(dev, &self.norm_ffn, x)
    }
}

/// Self-attention over the latents, then the FFN.
#[derive(Debug, Clone)]
pub struct SelfBlock {
    norm: LayerNorm,
    attn: Attention,
    norm_ffn: LayerNorm,
    ffn: Ffn,
}

impl SelfBlock {
    pub fn load(p: &mut Params, dev: &Device, name: &str, d: usize, heads: usize) -> Result<SelfBlock> {
        Ok(SelfBlock {
            norm: LayerNorm::load(p, dev, &format!("{name}.norm"), d)?,
            attn: Attention::load(p, dev, &format!("{name}.attn"), d, heads)?,
            norm_ffn: LayerNorm::load(p, dev, &format!("{name}.norm_ffn"), d)?,
            ffn: Ffn::load(p, dev, &format!("{name}.ffn"), d)?,
        })
    }

    /// With `trace`, the attention weights (head mean) are put there.
    pub fn forward(&self, dev: &Device, x: &mut Tensor, batch: usize, trace: Option<&mut Vec<Vec<f32>>>) -> Result<()> {
        let y = self.norm.forward(dev, x)?;
        if let Some(t) = trace {
            *t = self.attn.weights(dev, &y, &y, batch, None)?;
        }
        let a = self.attn.forward(dev, &y, &y, batch, None)?;
        dev.backend().add_act(x, &a, Activation::None)?;
        self.ffn.residual(dev, &self.norm_ffn, x)
    }
}

/// Mode queries: self-attention, cross-attention to the fused latents, FFN.
#[derive(Debug, Clone)]
pub struct DecoderBlock {
    norm_self: LayerNorm,
    self_attn: Attention,
    norm_cross: LayerNorm,
    cross_attn: Attention,
    norm_ffn: LayerNorm,
    ffn: Ffn,
}

impl DecoderBlock {
    pub fn load(p: &mut Params, dev: &Device, name: &str, d: usize, heads: usize) -> Result<DecoderBlock> {
        Ok(DecoderBlock {
            norm_self: LayerNorm::load(p, dev, &format!("{name}.norm_self"), d)?,
            self_attn: Attention::load(p, dev, &format!("{name}.self_attn"), d, heads)?,
            norm_cross: LayerNorm::load(p, dev, &format!("{name}.norm_cross"), d)?,
            cross_attn: Attention::load(p, dev, &format!("{name}.cross_attn"), d, heads)?,
            norm_ffn: LayerNorm::load(p, dev, &format!("{name}.norm_ffn"), d)?,
            ffn: Ffn::load(p, dev, &format!("{name}.ffn"), d)?,
        })
    }

    /// With `trace`, the cross-attention weights (modes to latents, head mean) are put there.
    pub fn forward(
        &self,
        dev: &Device,
        m: &mut Tensor,
        ctx: &Tensor,
        batch: usize,
        trace: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<()> {
        let y = self.norm_self.forward(dev, m)?;
        let a = self.self_attn.forward(dev, &y, &y, batch, None)?;
        dev.backend().add_act(m, &a, Activation::None)?;
        let q = self.norm_cross.forward(dev, m)?;
        if let Some(t) = trace {
            *t = self.cross_attn.weights(dev, &q, ctx, batch, None)?;
        }
        let c = self.cross_attn.forward(dev, &q, ctx, batch, None)?;
        dev.backend().add_act(m, &c, Activation::None)?;
        self.ffn.residual(dev, &self.norm_ffn, m)
    }
}
