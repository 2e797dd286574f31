//! The cross-attention's keys and values straight from the token encoders: the tokens'
//! LayerNorm folded into the key/value projection after it (as a batch norm is folded into
//! the conv before it), computed once at load.
//!
//! Every token is `x = p·W + b + o`: an encoder's output layer on its pooled features `p`
//! (`hidden` = 64 wide for agents and polylines; the raw rows for scene tokens) plus its
//! kind's offset `o` (the modality embedding, the target marker). The model takes
//! `kv = LN(x)·Wkv + bkv` with `LN(x) = (x − x̄)/σ(x) ⊙ γ + β`. Since `x − x̄ = x·C` (C takes
//! a row's mean out), the same is
//!
//! `kv = (p·W' + b'_o) / σ(x) + β'`, with `G = C·diag(γ)·Wkv`, `W' = W·G`, `b'_o = (b + o)·G`
//! and `β' = β·Wkv + bkv`
//!
//! (folded in f64). The projection then runs on the encoders' width instead of d: at d = 256
//! a quarter of its multiply-adds, which were a fifth of the model's. σ(x) still needs `x`,
//! which the encoder's output layer gives from the same 64 inputs.

use crate::backend::{Activation, Device, Tensor};
use crate::error::{Error, Location, Result};
use crate::models::nn::{LayerNorm, Linear};

/// Where tokens come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Agents,
    Polylines,
    Scene,
}

/// One token source's folded projection.
#[derive(Debug, Clone)]
struct FoldedSource {
    /// `W' [inputs × 2d]`.
    w: Tensor,
    /// `b'_o [kinds × 2d]`: a row per offset kind.
    bias: Tensor,
}

/// The folded key/value projections of the three token sources.
#[derive(Debug, Clone)]
pub struct TokenKv {
    /// `β' [1 × 2d]`.
    beta: Tensor,
    agents: FoldedSource,
    polylines: FoldedSource,
    /// `None` for a model without scene tokens.
    scene: Option<FoldedSource>,
}

/// The pieces of the fold on the host.
struct Fold {
    d: usize,
    /// `G = C·diag(γ)·Wkv`, `[d × 2d]`.
    g: Vec<f64>,
    /// The offset rows `[kinds × d]`.
    offsets: Vec<f64>,
}

impl Fold {
    fn source(&self, dev: &Device, layer: &Linear) -> Result<FoldedSource> {
        let be = dev.backend();
        let (w, b) = layer.parts();
        let (inputs, d, out) = (w.rows(), self.d, 2 * self.d);
        let (w, b) = (be.download(w)?, be.download(b)?);
        let times_g = |row: &[f64]| -> Vec<f64> {
            let mut y = vec![0.0f64; out];
            for (i, &v) in row.iter().enumerate() {
                y.iter_mut().zip(&self.g[i * out..(i + 1) * out]).for_each(|(y, g)| *y += v * g);
            }
            y
        };
        let mut w_folded = Vec::with_capacity(inputs * out);
        for r in 0..inputs {
            let row: Vec<f64> = w[r * d..(r + 1) * d].iter().map(|&v| f64::from(v)).collect();
            w_folded.extend(times_g(&row).into_iter().map(|v| v as f32));
        }
        let kinds = self.offsets.len() / d;
        let mut bias = Vec::with_capacity(kinds * out);
        for k in 0..kinds {
            let row: Vec<f64> =
                b.iter().zip(&self.offsets[k * d..(k + 1) * d]).map(|(&b, &o)| f64::from(b) + o).collect();
            bias.extend(times_g(&row).into_iter().map(|v| v as f32));
        }
        Ok(FoldedSource { w: be.upload(&w_folded, inputs, out)?, bias: be.upload(&bias, kinds, out)? })
    }
}

impl TokenKv {
    /// Folds `norm` and the key/value projection `kv` (`[d × 2d]`, `[1 × 2d]`) into each
    /// source's output layer; `offsets [kinds × d]` are the rows added to the tokens.
    pub fn fold(
        dev: &Device,
        norm: &LayerNorm,
        kv: (&Tensor, &Tensor),
        offsets: &Tensor,
        agents: &Linear,
        polylines: &Linear,
        scene: Option<&Linear>,
    ) -> Result<TokenKv> {
        let be = dev.backend();
        let host = |t: &Tensor| -> Result<Vec<f64>> { Ok(be.download(t)?.into_iter().map(f64::from).collect()) };
        let (gamma, beta) = (host(norm.parts().0)?, host(norm.parts().1)?);
        let (wkv, bkv) = (host(kv.0)?, host(kv.1)?);
        let (d, out) = (gamma.len(), bkv.len());
        // diag(γ)·Wkv, then each column's mean over the d rows taken out (C·…).
        let mut g: Vec<f64> = (0..d * out).map(|i| gamma[i / out] * wkv[i]).collect();
        for j in 0..out {
            let mean = (0..d).map(|i| g[i * out + j]).sum::<f64>() / d as f64;
            (0..d).for_each(|i| g[i * out + j] -= mean);
        }
        let beta_folded: Vec<f32> =
            (0..out).map(|j| ((0..d).map(|i| beta[i] * wkv[i * out + j]).sum::<f64>() + bkv[j]) as f32).collect();
        let fold = Fold { d, g, offsets: host(offsets)? };
        Ok(TokenKv {
            beta: be.upload(&beta_folded, 1, out)?,
            agents: fold.source(dev, agents)?,
            polylines: fold.source(dev, polylines)?,
            scene: scene.map(|s| fold.source(dev, s)).transpose()?,
        })
    }

    /// The keys and values `[n × 2d]` of `source`'s tokens: `inputs [n × inputs]` what its
    /// output layer takes, `tokens [n × d]` the tokens before the norm (for σ), `kinds` each
    /// row's offset kind.
    pub fn project(
        &self,
        dev: &Device,
        source: Source,
        inputs: &Tensor,
        tokens: &Tensor,
        kinds: &[u32],
    ) -> Result<Tensor> {
        let source = match source {
            Source::Agents => &self.agents,
            Source::Polylines => &self.polylines,
            Source::Scene => self.scene.as_ref().ok_or_else(|| {
                Error::invalid(Location::default().detail("motion transformer"), "a model with scene tokens", "none")
            })?,
        };
        let be = dev.backend();
        let mut y = be.matmul(inputs, &source.w, None, Activation::None)?;
        be.fold_norm(&mut y, tokens, LayerNorm::EPS, &source.bias, kinds, &self.beta)?;
        Ok(y)
    }
}
