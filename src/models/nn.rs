//! Layers shared by the native transformers (the motion transformer, the SparseViT
//! backbone) on a [`Device`]: linear maps (weights stored `[in × out]`, transposed once from
//! PyTorch's `[out × in]` at load) and LayerNorm. Parameter names are the PyTorch twins'.

use crate::backend::{Activation, Device, Tensor};
use crate::error::Result;
use crate::sparse::weights::{Init, Params};

/// `y = x · W + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    pub fn load(p: &mut Params, dev: &Device, name: &str, inputs: usize, outputs: usize) -> Result<Linear> {
        Self::stacked(p, dev, &[name], inputs, outputs)
    }

    /// Several layers on the same input as one (their outputs side by side, in `names`'
    /// order): one GEMM instead of several (attention's key and value projections).
    pub fn stacked(p: &mut Params, dev: &Device, names: &[&str], inputs: usize, each: usize) -> Result<Linear> {
        Self::read(p, dev, names, inputs, each, true)
    }

    /// A layer with no bias (`bias=False` in the twin): a zero bias, so it runs like the rest.
    pub fn without_bias(p: &mut Params, dev: &Device, name: &str, inputs: usize, outputs: usize) -> Result<Linear> {
        Self::read(p, dev, &[name], inputs, outputs, false)
    }

    fn read(p: &mut Params, dev: &Device, names: &[&str], inputs: usize, each: usize, bias: bool) -> Result<Linear> {
        let bound = 1.0 / (inputs.max(1) as f32).sqrt();
        let outputs = each * names.len();
        // PyTorch's `[out × in]` layouts stacked along `out`.
        let (mut w, mut b) = (Vec::with_capacity(outputs * inputs), Vec::with_capacity(outputs));
        for name in names {
            w.extend(p.get(&format!("{name}.weight"), &[each, inputs], Init::Uniform(bound))?);
            match bias {
                true => b.extend(p.get(&format!("{name}.bias"), &[each], Init::Uniform(bound))?),
                false => b.extend(std::iter::repeat_n(0.0, each)),
            }
        }
        let mut wt = vec![0.0f32; inputs * outputs];
        for o in 0..outputs {
            for i in 0..inputs {
                wt[i * outputs + o] = w[o * inputs + i];
            }
        }
        let be = dev.backend();
        Ok(Linear { w: be.upload(&wt, inputs, outputs)?, b: be.upload(&b, 1, outputs)? })
    }

    pub fn forward(&self, dev: &Device, x: &Tensor, act: Activation) -> Result<Tensor> {
        dev.backend().matmul(x, &self.w, Some(&self.b), act)
    }

    /// The weight `[in × out]` and the bias `[1 × out]` (for fused ops).
    pub fn parts(&self) -> (&Tensor, &Tensor) {
        (&self.w, &self.b)
    }
}

/// A learned table `[rows × cols]` (embeddings, queries), on the device.
pub fn table(p: &mut Params, dev: &Device, name: &str, rows: usize, cols: usize) -> Result<Tensor> {
    let v = p.get(name, &[rows, cols], Init::Uniform(0.1))?;
    dev.backend().upload(&v, rows, cols)
}

#[derive(Debug, Clone)]
pub struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
}

/// PyTorch's default (and the twin's).
const LN_EPS: f32 = 1e-5;

impl LayerNorm {
    pub fn load(p: &mut Params, dev: &Device, name: &str, d: usize) -> Result<LayerNorm> {
        let g = p.get(&format!("{name}.weight"), &[d], Init::Const(1.0))?;
        let b = p.get(&format!("{name}.bias"), &[d], Init::Const(0.0))?;
        Ok(LayerNorm { gamma: dev.backend().upload(&g, 1, d)?, beta: dev.backend().upload(&b, 1, d)? })
    }

    pub fn forward(&self, dev: &Device, x: &Tensor) -> Result<Tensor> {
        dev.backend().layer_norm(x, &self.gamma, &self.beta, LN_EPS)
    }

    /// `gamma` and `beta` (`[1 × d]` each), for folding the norm into the layer after it.
    pub fn parts(&self) -> (&Tensor, &Tensor) {
        (&self.gamma, &self.beta)
    }

    pub const EPS: f32 = LN_EPS;
}
