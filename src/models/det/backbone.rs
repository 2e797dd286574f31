//! The SparseViT backbone: a Swin transformer whose blocks run only on the windows with the
//! largest activations (§C.2). Per stage, the first block with a ratio above zero scores
//! every window by the L2 norm of its tokens' mean |x|, once for the regular and once for
//! the shifted partition; each block then gathers the windows it keeps (a prefix of that
//! sorted list), runs LayerNorm, window attention and the MLP on them alone and scatters
//! them back. Pruned windows pass through unchanged and cost nothing.
//!
//! Parameter names are the PyTorch twin's (`tools/train/sparsevit_twin.py`); the shape is a
//! [`SwinConfig`] kept in the weights' metadata (`config`, JSON).

use std::path::Path;

use super::windows::{Partition, mean_abs, top_windows};
use super::{Ratios, SwinConfig};
use crate::backend::{Activation, DROP_ROW, Device, NO_MASK, Tensor};
use crate::error::{Error, Location, Result};
use crate::models::nn::{LayerNorm, Linear};
use crate::sparse::weights::{Init, Params};

/// An image as the backbone takes it: 3 channels, planar (`[3][height][width]`), already
/// normalised.
#[derive(Debug, Clone, Copy)]
pub struct ChwImage<'a> {
    pub height: usize,
    pub width: usize,
    pub values: &'a [f32],
}

/// One stage's output: `values [height·width × channels]`, row-major over the token grid.
#[derive(Debug, Clone)]
pub struct FeatureMap {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub values: Tensor,
}

/// The windows one block ran on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockWindows {
    pub shifted: bool,
    /// Windows of the partition (`grid.0 × grid.1`).
    pub grid: (usize, usize),
    /// The kept windows, row-major indices, best score first (all of them in order when the
    /// block is dense).
    pub kept: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct BackboneOutput {
    /// One map per stage, at strides patch·2ˢ.
    pub features: Vec<FeatureMap>,
    /// Per stage, per block.
    pub windows: Vec<Vec<BlockWindows>>,
    /// Seconds per stage (patch embedding in the first, merging in the one it ends).
    pub stage_seconds: Vec<f64>,
}

/// The backbone with its weights on a device.
#[derive(Debug, Clone)]
pub struct Backbone {
    cfg: SwinConfig,
    embed: Linear,
    embed_norm: LayerNorm,
    stages: Vec<Stage>,
    out_norms: Vec<LayerNorm>,
}

#[derive(Debug, Clone)]
struct Stage {
    blocks: Vec<Block>,
    merge: Option<Merge>,
}

#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    /// The relative position bias expanded to `[heads·n × n]`.
    rel_bias: Tensor,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

#[derive(Debug, Clone)]
struct Merge {
    norm: LayerNorm,
    reduction: Linear,
}

impl Backbone {
    /// Reads the config from the file's metadata, then the weights.
    pub fn load(path: &Path, dev: &Device) -> Result<Backbone> {
        let mut p = Params::load(path)?;
        let at = || Location::file(path).detail("safetensors metadata `config`");
        let text = p
            .metadata("config")
            .ok_or_else(|| Error::MissingColumn { at: at(), expected: "the Swin config as JSON".into() })?;
        let cfg: SwinConfig =
            serde_json::from_str(text).map_err(|e| Error::invalid(at(), "a Swin config (JSON)", e.to_string()))?;
        Self::build(cfg, &mut p, dev).map_err(|e| e.in_file(path))
    }

    /// Seeded random weights (benchmarks of shapes nobody trained here: Swin-T).
    pub fn random(cfg: SwinConfig, seed: u64, dev: &Device) -> Result<Backbone> {
        Self::build(cfg, &mut Params::random(seed), dev)
    }

    pub fn build(cfg: SwinConfig, p: &mut Params, dev: &Device) -> Result<Backbone> {
        cfg.validate()?;
        let c = cfg.embed;
        let embed = Linear::load(p, dev, "patch_embed.proj", 3 * cfg.patch * cfg.patch, c)?;
        let embed_norm = LayerNorm::load(p, dev, "patch_embed.norm", c)?;
        let (mut stages, mut out_norms) = (Vec::new(), Vec::new());
        for s in 0..cfg.stages() {
            let d = cfg.dim(s);
            let blocks = (0..cfg.depths[s])
                .map(|b| Block::load(p, dev, &format!("stages.{s}.blocks.{b}"), &cfg, d, cfg.heads[s]))
                .collect::<Result<Vec<_>>>()?;
            let merge = if s + 1 < cfg.stages() {
                Some(Merge {
                    norm: LayerNorm::load(p, dev, &format!("stages.{s}.merge.norm"), 4 * d)?,
                    reduction: Linear::without_bias(p, dev, &format!("stages.{s}.merge.reduction"), 4 * d, 2 * d)?,
                })
            } else {
                None
            };
            stages.push(Stage { blocks, merge });
            out_norms.push(LayerNorm::load(p, dev, &format!("out_norms.{s}"), d)?);
        }
        Ok(Backbone { cfg, embed, embed_norm, stages, out_norms })
    }

    pub fn config(&self) -> &SwinConfig {
        &self.cfg
    }

    /// The feature maps of one image with the blocks pruned by `ratios`.
    pub fn forward(&self, dev: &Device, image: ChwImage<'_>, ratios: &Ratios) -> Result<BackboneOutput> {
        let shapes_ok = ratios.stages().len() == self.cfg.stages()
            && ratios.stages().iter().zip(&self.cfg.depths).all(|(r, &d)| r.len() == d);
        if !shapes_ok {
            return Err(Error::invalid(
                Location::default().detail("pruning ratios"),
                format!("ratios for depths {:?}", self.cfg.depths),
                ratios.to_string(),
            ));
        }
        if image.values.len() != 3 * image.height * image.width || image.height == 0 || image.width == 0 {
            return Err(Error::invalid(
                Location::default().detail("backbone input"),
                format!("3 × {} × {} values", image.height, image.width),
                format!("{}", image.values.len()),
            ));
        }
        let be = dev.backend();
        let mut clock = std::time::Instant::now();
        let (patches, mut h, mut w) = im2col(image, self.cfg.patch);
        let x = be.upload(&patches, h * w, 3 * self.cfg.patch * self.cfg.patch)?;
        let x = self.embed.forward(dev, &x, Activation::None)?;
        let mut x = self.embed_norm.forward(dev, &x)?;
        let (mut features, mut windows, mut stage_seconds) = (Vec::new(), Vec::new(), Vec::new());
        for (s, stage) in self.stages.iter().enumerate() {
            let d = self.cfg.dim(s);
            let zero = be.upload(&vec![0.0; d], 1, d)?;
            windows.push(stage.forward(dev, &mut x, &zero, (h, w), &self.cfg, ratios.stage(s))?);
            features.push(FeatureMap { height: h, width: w, channels: d, values: self.out_norms[s].forward(dev, &x)? });
            if let Some(m) = &stage.merge {
                (x, h, w) = m.forward(dev, &x, &zero, (h, w), d)?;
            }
            stage_seconds.push(clock.elapsed().as_secs_f64());
            clock = std::time::Instant::now();
        }
        Ok(BackboneOutput { features, windows, stage_seconds })
    }
}

/// Non-overlapping `patch × patch` patches of the image (zero-padded at the bottom and
/// right to whole patches), one row each, columns ordered (channel, dy, dx) as the twin
/// flattens them: `([tokens × 3·patch²], rows, cols)`.
fn im2col(image: ChwImage<'_>, patch: usize) -> (Vec<f32>, usize, usize) {
    let (h, w) = (image.height.div_ceil(patch), image.width.div_ceil(patch));
    let k = 3 * patch * patch;
    let mut out = vec![0.0f32; h * w * k];
    let plane = image.height * image.width;
    for (t, row) in out.chunks_exact_mut(k).enumerate() {
        let (ty, tx) = (t / w, t % w);
        for c in 0..3 {
            for dy in 0..patch {
                let y = ty * patch + dy;
                if y >= image.height {
                    break;
                }
                for dx in 0..patch {
                    let x = tx * patch + dx;
                    if x < image.width {
                        row[(c * patch + dy) * patch + dx] = image.values[c * plane + y * image.width + x];
                    }
                }
            }
        }
    }
    (out, h, w)
}

impl Stage {
    /// Runs the blocks on `x [h·w × d]` in place; returns the windows each block ran on.
    fn forward(
        &self,
        dev: &Device,
        x: &mut Tensor,
        zero: &Tensor,
        (h, w): (usize, usize),
        cfg: &SwinConfig,
        ratios: &[f64],
    ) -> Result<Vec<BlockWindows>> {
        let be = dev.backend();
        let parts = [Partition::new(h, w, cfg.window, 0), Partition::new(h, w, cfg.window, cfg.window / 2)];
        let (mask_values, kinds) = parts[1].masks();
        let masks = match mask_values.is_empty() {
            true => None,
            false => Some(be.upload(&mask_values, mask_values.len() / cfg.window_tokens(), cfg.window_tokens())?),
        };
        let n_windows = parts[0].windows();
        // Scores from the input of the stage's first pruned block, then sorted window lists
        // (regular, shifted) that later blocks truncate.
        let mut act: Option<Vec<f32>> = None;
        let mut sorted: [Option<Vec<u32>>; 2] = [None, None];
        let mut ran = Vec::with_capacity(self.blocks.len());
        for (i, (block, &r)) in self.blocks.iter().zip(ratios).enumerate() {
            let shifted = i % 2 == 1;
            let part = &parts[shifted as usize];
            if r > 0.0 && act.is_none() {
                act = Some(mean_abs(&be.download(x)?, x.cols()));
            }
            let kept: Vec<u32> = match &act {
                Some(a) => {
                    let keep = Ratios::keep(n_windows, r);
                    let list = sorted[shifted as usize].get_or_insert_with(|| top_windows(&part.scores(a), keep));
                    list.truncate(keep);
                    list.clone()
                }
                None => (0..n_windows as u32).collect(),
            };
            if !kept.is_empty() {
                let mask = match (&masks, shifted) {
                    (Some(m), true) => Some((m, kept.iter().map(|&k| kinds[k as usize]).collect::<Vec<u32>>())),
                    _ => None,
                };
                let mask = mask.as_ref().filter(|(_, k)| k.iter().any(|&k| k != NO_MASK)).map(|(m, k)| (*m, &k[..]));
                block.forward(dev, x, zero, part, &kept, mask)?;
            }
            ran.push(BlockWindows { shifted, grid: part.grid(), kept });
        }
        Ok(ran)
    }
}

impl Block {
    fn load(p: &mut Params, dev: &Device, name: &str, cfg: &SwinConfig, d: usize, heads: usize) -> Result<Block> {
        let ws = cfg.window;
        let span = 2 * ws - 1;
        let table = p.get(&format!("{name}.attn.rel_bias"), &[span * span, heads], Init::Uniform(0.02))?;
        let n = ws * ws;
        // bias[h][i][j] = table[(yi − yj + ws − 1)·span + (xi − xj + ws − 1)][h]
        let mut bias = vec![0.0f32; heads * n * n];
        for i in 0..n {
            for j in 0..n {
                let dy = (i / ws) + ws - 1 - (j / ws);
                let dx = (i % ws) + ws - 1 - (j % ws);
                for h in 0..heads {
                    bias[(h * n + i) * n + j] = table[(dy * span + dx) * heads + h];
                }
            }
        }
        let hidden = d * cfg.mlp_ratio;
        Ok(Block {
            norm1: LayerNorm::load(p, dev, &format!("{name}.norm1"), d)?,
            qkv: Linear::load(p, dev, &format!("{name}.attn.qkv"), d, 3 * d)?,
            rel_bias: dev.backend().upload(&bias, heads * n, n)?,
            proj: Linear::load(p, dev, &format!("{name}.attn.proj"), d, d)?,
            norm2: LayerNorm::load(p, dev, &format!("{name}.norm2"), d)?,
            fc1: Linear::load(p, dev, &format!("{name}.mlp.fc1"), d, hidden)?,
            fc2: Linear::load(p, dev, &format!("{name}.mlp.fc2"), hidden, d)?,
            heads,
        })
    }

    /// The block on the windows `kept` of `part`, window-wise (LayerNorm, attention, MLP and
    /// both residuals), written back into `x`; padding slots read zeros and are dropped.
    fn forward(
        &self,
        dev: &Device,
        x: &mut Tensor,
        zero: &Tensor,
        part: &Partition,
        kept: &[u32],
        mask: Option<(&Tensor, &[u32])>,
    ) -> Result<()> {
        let be = dev.backend();
        let pad = x.rows() as u32;
        let rows = part.rows(kept, pad);
        let mut xw = be.gather_rows(&[x, zero], &rows)?;
        let qkv = self.qkv.forward(dev, &self.norm1.forward(dev, &xw)?, Activation::None)?;
        let a = be.window_attention(&qkv, part.window * part.window, self.heads, &self.rel_bias, mask)?;
        be.add_act(&mut xw, &self.proj.forward(dev, &a, Activation::None)?, Activation::None)?;
        let hidden = self.fc1.forward(dev, &self.norm2.forward(dev, &xw)?, Activation::Gelu)?;
        be.add_act(&mut xw, &self.fc2.forward(dev, &hidden, Activation::None)?, Activation::None)?;
        let back: Vec<u32> = rows.iter().map(|&r| if r == pad { DROP_ROW } else { r }).collect();
        be.scatter_rows(x, &xw, &back)
    }
}

impl Merge {
    /// 2 × 2 neighbours side by side (`(0,0), (1,0), (0,1), (1,1)` as (dy, dx), zero-padded
    /// to an even grid), LayerNorm, a linear map to twice the channels.
    fn forward(
        &self,
        dev: &Device,
        x: &Tensor,
        zero: &Tensor,
        (h, w): (usize, usize),
        d: usize,
    ) -> Result<(Tensor, usize, usize)> {
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        let pad = (h * w) as u32;
        let mut rows = Vec::with_capacity(4 * h2 * w2);
        for i in 0..h2 {
            for j in 0..w2 {
                for (dy, dx) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (y, x) = (2 * i + dy, 2 * j + dx);
                    rows.push(if y < h && x < w { (y * w + x) as u32 } else { pad });
                }
            }
        }
        let g = dev.backend().gather_rows(&[x, zero], &rows)?;
        let g = g.reshape(h2 * w2, 4 * d).ok_or_else(|| Error::device(dev.name(), "patch merging reshape"))?;
        let y = self.reduction.forward(dev, &self.norm.forward(dev, &g)?, Activation::None)?;
        Ok((y, h2, w2))
    }
}
