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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::sparse::weights::Params;

    /// The folded keys and values equal `LN(p·W + b + o)·Wkv + bkv` computed directly, with a
    /// LayerNorm that is not the identity and offsets of two kinds.
    #[test]
    fn folded_projection_equals_norm_then_projection() {
        let (h, d, n) = (5, 8, 6);
        let value = |i: usize, s: usize| ((i * 7919 + s * 104729) % 997) as f32 / 498.5 - 1.0;
        let mut tensors = HashMap::new();
        let mut put = |name: &str, shape: Vec<usize>, s: usize| {
            let len = shape.iter().product();
            tensors.insert(name.to_string(), (shape, (0..len).map(|i| value(i, s)).collect::<Vec<f32>>()));
        };
        put("src.weight", vec![d, h], 1);
        put("src.bias", vec![d], 2);
        put("norm.weight", vec![d], 3);
        put("norm.bias", vec![d], 4);
        put("k.weight", vec![d, d], 5);
        put("k.bias", vec![d], 6);
        put("v.weight", vec![d, d], 7);
        put("v.bias", vec![d], 8);
        let mut p = Params::File { path: "test".into(), tensors, metadata: HashMap::new() };
        let dev = Device::cpu();
        let be = dev.backend();
        let src = Linear::load(&mut p, &dev, "src", h, d).unwrap();
        let norm = LayerNorm::load(&mut p, &dev, "norm", d).unwrap();
        let kv = Linear::stacked(&mut p, &dev, &["k", "v"], d, d).unwrap();
        let offsets: Vec<f32> = (0..4 * d).map(|i| value(i, 9) * 0.5).collect();
        let offsets = be.upload(&offsets, 4, d).unwrap();
        let fold = TokenKv::fold(&dev, &norm, kv.parts(), &offsets, &src, &src, None).unwrap();

        let inputs: Vec<f32> = (0..n * h).map(|i| value(i, 10) * 3.0).collect();
        let inputs = be.upload(&inputs, n, h).unwrap();
        let kinds: Vec<u32> = (0..n as u32).map(|r| r % 2 + 1).collect();
        let mut tokens = src.forward(&dev, &inputs, Activation::None).unwrap();
        be.add_rows(&mut tokens, &offsets, &kinds, Activation::None).unwrap();
        let direct = kv.forward(&dev, &norm.forward(&dev, &tokens).unwrap(), Activation::None).unwrap();
        let folded = fold.project(&dev, Source::Polylines, &inputs, &tokens, &kinds).unwrap();
        let (direct, folded) = (be.download(&direct).unwrap(), be.download(&folded).unwrap());
        assert_eq!(direct.len(), n * 2 * d);
        let scale = direct.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in direct.iter().zip(&folded) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
        // A model without scene tokens has no scene source to project.
        assert!(fold.project(&dev, Source::Scene, &inputs, &tokens, &kinds).is_err());
    }
}
