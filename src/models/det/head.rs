//! The detector's head (tools/train/camera_det.py `Head`): a Linear lateral per stage output
//! (strides 8, 16, 32) to D channels, nearest upsampling to stride 8 and a sum, two 3×3
//! convs with ReLU, a Linear to `classes + 4` values per cell (heat-map logits, log size,
//! centre offset). Convs run as a row gather of the 3 × 3 neighbourhood (zeros outside) and
//! one GEMM.

use super::FeatureMap;
use crate::backend::{Activation, Device, Tensor};
use crate::error::{Error, Location, Result};
use crate::models::nn::Linear;
use crate::sparse::weights::{Init, Params};

/// A 3 × 3 conv with padding 1 on a `[h·w × cin]` grid.
#[derive(Debug, Clone)]
struct Conv3x3 {
    /// `[9·cin × cout]`, rows `(ky·3 + kx)·cin + c`.
    w: Tensor,
    b: Tensor,
    cin: usize,
}

impl Conv3x3 {
    fn load(p: &mut Params, dev: &Device, name: &str, cin: usize, cout: usize) -> Result<Conv3x3> {
        let bound = 1.0 / ((9 * cin) as f32).sqrt();
        // PyTorch's [cout, cin, 3, 3].
        let w = p.get(&format!("{name}.weight"), &[cout, cin, 3, 3], Init::Uniform(bound))?;
        let b = p.get(&format!("{name}.bias"), &[cout], Init::Uniform(bound))?;
        let mut wt = vec![0.0f32; 9 * cin * cout];
        for o in 0..cout {
            for c in 0..cin {
                for k in 0..9 {
                    wt[(k * cin + c) * cout + o] = w[(o * cin + c) * 9 + k];
                }
            }
        }
        let be = dev.backend();
        Ok(Conv3x3 { w: be.upload(&wt, 9 * cin, cout)?, b: be.upload(&b, 1, cout)?, cin })
    }

    fn forward(
        &self,
        dev: &Device,
        x: &Tensor,
        (h, w): (usize, usize),
        zero: &Tensor,
        act: Activation,
    ) -> Result<Tensor> {
        let pad = (h * w) as u32;
        let mut rows = Vec::with_capacity(9 * h * w);
        for y in 0..h as isize {
            for x in 0..w as isize {
                for (dy, dx) in (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (dy, dx))) {
                    let (yy, xx) = (y + dy, x + dx);
                    let inside = yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w;
                    rows.push(if inside { (yy as usize * w + xx as usize) as u32 } else { pad });
                }
            }
        }
        let be = dev.backend();
        let g = be.gather_rows(&[x, zero], &rows)?;
        let g = g.reshape(h * w, 9 * self.cin).ok_or_else(|| Error::device(dev.name(), "3×3 conv reshape"))?;
        be.matmul(&g, &self.w, Some(&self.b), act)
    }
}

/// The head with its weights (parameters `head.*`).
#[derive(Debug, Clone)]
pub struct Head {
    lat: Vec<Linear>,
    conv1: Conv3x3,
    conv2: Conv3x3,
    out: Linear,
    dim: usize,
}

impl Head {
    /// `inputs`: the channels of the stage outputs it reads, finest first.
    pub fn load(p: &mut Params, dev: &Device, inputs: &[usize], dim: usize, classes: usize) -> Result<Head> {
        let lat = inputs
            .iter()
            .enumerate()
            .map(|(k, &c)| Linear::load(p, dev, &format!("head.lat.{k}"), c, dim))
            .collect::<Result<Vec<_>>>()?;
        Ok(Head {
            lat,
            conv1: Conv3x3::load(p, dev, "head.conv1", dim, dim)?,
            conv2: Conv3x3::load(p, dev, "head.conv2", dim, dim)?,
            out: Linear::load(p, dev, "head.out", dim, classes + 4)?,
            dim,
        })
    }

    /// The head's map `[h·w × (classes + 4)]` over the grid of `feats[0]` (each next map at
    /// half the previous one's resolution, rounded up).
    pub fn forward(&self, dev: &Device, feats: &[FeatureMap]) -> Result<(Tensor, (usize, usize))> {
        if feats.len() != self.lat.len() {
            return Err(Error::invalid(
                Location::default().detail("detection head"),
                format!("{} feature maps", self.lat.len()),
                format!("{}", feats.len()),
            ));
        }
        let be = dev.backend();
        let (h, w) = (feats[0].height, feats[0].width);
        let mut p = self.lat[0].forward(dev, &feats[0].values, Activation::None)?;
        for (k, (f, lat)) in feats.iter().zip(&self.lat).enumerate().skip(1) {
            let q = lat.forward(dev, &f.values, Activation::None)?;
            let index: Vec<u32> = (0..h * w).map(|i| (((i / w) >> k) * f.width + ((i % w) >> k)) as u32).collect();
            be.add_act(&mut p, &be.gather_rows(&[&q], &index)?, Activation::None)?;
        }
        let zero = be.upload(&vec![0.0; self.dim], 1, self.dim)?;
        let x = self.conv1.forward(dev, &p, (h, w), &zero, Activation::Relu)?;
        let x = self.conv2.forward(dev, &x, (h, w), &zero, Activation::Relu)?;
        Ok((self.out.forward(dev, &x, Activation::None)?, (h, w)))
    }
}
