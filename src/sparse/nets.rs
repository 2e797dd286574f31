//! Networks: MinkUNet (TorchSparse's SparseResUNet42 shape, with a width multiplier) and the
//! SECOND-style SparseResNet21D. Parameter names follow the PyTorch twin in `tools/train/`.

use crate::backend::{Activation, ConvGeom, Device, Tensor};
use crate::error::Result;

use super::layers::{BatchNorm, ConvSpec, ResBlock, RunCtx, SparseConv3d, concat, fold_bn};
use super::quant::QuantizableNet;
use super::tensor::SparseTensor;
use super::weights::{Init, Params};

/// Builds a conv `name.conv` (+ `name.bn` folded in) from `params`, on `device`.
pub(crate) fn conv_bn(
    p: &mut Params,
    device: &Device,
    name: &str,
    cin: usize,
    cout: usize,
    geom: ConvGeom,
    transposed: bool,
) -> Result<SparseConv3d> {
    let k = geom.volume();
    let fan = if transposed { cout } else { cin };
    let mut weight =
        p.get(&format!("{name}.conv.kernel"), &[k, cin, cout], Init::Uniform(1.0 / ((fan * k) as f32).sqrt()))?;
    let bn = BatchNorm {
        weight: p.get(&format!("{name}.bn.weight"), &[cout], Init::Const(1.0))?,
        bias: p.get(&format!("{name}.bn.bias"), &[cout], Init::Const(0.0))?,
        mean: p.get(&format!("{name}.bn.running_mean"), &[cout], Init::Const(0.0))?,
        var: p.get(&format!("{name}.bn.running_var"), &[cout], Init::Const(1.0))?,
        eps: 1e-5,
    };
    let bias = fold_bn(&mut weight, cout, None, &bn);
    let spec = ConvSpec { name: name.to_string(), cin, cout, geom, transposed, generative: false };
    SparseConv3d::new(device, spec, &weight, Some(&bias))
}

pub(crate) fn res_block(
    p: &mut Params,
    device: &Device,
    name: &str,
    cin: usize,
    cout: usize,
    kernel: [usize; 3],
) -> Result<ResBlock> {
    let g = ConvGeom { kernel, stride: [1; 3], padding: kernel.map(|k| (k.saturating_sub(1)) / 2), dilation: [1; 3] };
    Ok(ResBlock {
        conv1: conv_bn(p, device, &format!("{name}.c1"), cin, cout, g, false)?,
        conv2: conv_bn(p, device, &format!("{name}.c2"), cout, cout, g, false)?,
        proj: if cin != cout {
            Some(conv_bn(p, device, &format!("{name}.proj"), cin, cout, ConvGeom::cube(1, 1), false)?)
        } else {
            None
        },
    })
}

/// MinkUNet's sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinkUNetConfig {
    pub in_channels: usize,
    pub num_classes: usize,
    pub width: f32,
}

impl MinkUNetConfig {
    /// Stem, encoder and decoder widths: `int(width · [32, 32, 64, 128, 256, 256, 128, 96, 96])`.
    pub fn channels(&self) -> [usize; 9] {
        [32, 32, 64, 128, 256, 256, 128, 96, 96].map(|c| ((c as f32 * self.width) as usize).max(1))
    }
}

/// One U-Net stage: a stride-2 k2 conv (down) or transposed conv (up), two residual blocks.
#[derive(Debug, Clone)]
pub struct Stage {
    pub resample: SparseConv3d,
    pub blocks: [ResBlock; 2],
}

/// The sparse U-Net: stem (2× conv3), 4 encoder stages, 4 decoder stages with concatenated
/// skips, a per-voxel linear classifier.
#[derive(Debug, Clone)]
pub struct MinkUNet {
    pub config: MinkUNetConfig,
    pub stem: [SparseConv3d; 2],
    pub encoder: Vec<Stage>,
    pub decoder: Vec<Stage>,
    /// `[C × classes]`.
    pub head_w: Tensor,
    /// `[1 × classes]`.
    pub head_b: Tensor,
}

/// MinkUNet's outputs: the last decoder features and the per-voxel class logits.
pub struct MinkUNetOutput {
    pub features: SparseTensor,
    /// `[N × classes]`, rows in input voxel order, on the input's device.
    pub logits: Tensor,
}

impl MinkUNet {
    /// Builds the network from `params` (file or random) on `device`.
    pub fn build(config: MinkUNetConfig, p: &mut Params, device: &Device) -> Result<Self> {
        let cs = config.channels();
        let c3 = ConvGeom::cube(3, 1);
        let c2 = ConvGeom::cube(2, 2);
        let stem = [
            conv_bn(p, device, "stem.0", config.in_channels, cs[0], c3, false)?,
            conv_bn(p, device, "stem.1", cs[0], cs[0], c3, false)?,
        ];
        let mut encoder = Vec::new();
        for i in 0..4 {
            let (cin, cout) = (cs[i], cs[i + 1]);
            encoder.push(Stage {
                resample: conv_bn(p, device, &format!("enc.{i}.down"), cin, cin, c2, false)?,
                blocks: [
                    res_block(p, device, &format!("enc.{i}.res.0"), cin, cout, [3; 3])?,
                    res_block(p, device, &format!("enc.{i}.res.1"), cout, cout, [3; 3])?,
                ],
            });
        }
        let mut decoder = Vec::new();
        for i in 0..4 {
            let cin = if i == 0 { cs[4] } else { cs[4 + i] };
            let cout = cs[5 + i];
            let skip = cs[3 - i];
            decoder.push(Stage {
                resample: conv_bn(p, device, &format!("dec.{i}.up"), cin, cout, c2, true)?,
                blocks: [
                    res_block(p, device, &format!("dec.{i}.res.0"), cout + skip, cout, [3; 3])?,
                    res_block(p, device, &format!("dec.{i}.res.1"), cout, cout, [3; 3])?,
                ],
            });
        }
        let c = cs[8];
        let k = config.num_classes;
        let w = p.get("head.weight", &[k, c], Init::Uniform(1.0 / (c as f32).sqrt()))?;
        // PyTorch's Linear stores [out, in]; the GEMM wants [in, out].
        let head_w: Vec<f32> = (0..c * k).map(|j| w[(j % k) * c + j / k]).collect();
        let head_b = p.get("head.bias", &[k], Init::Const(0.0))?;
        let backend = device.backend();
        let (head_w, head_b) = (backend.upload(&head_w, c, k)?, backend.upload(&head_b, 1, k)?);
        Ok(MinkUNet { config, stem, encoder, decoder, head_w, head_b })
    }

    /// Runs the network on a voxel tensor with `in_channels` features.
    pub fn forward(&self, x: &SparseTensor, ctx: &RunCtx) -> Result<MinkUNetOutput> {
        let mut h = self.stem[0].forward(x, ctx, Activation::Relu)?;
        h = self.stem[1].forward(&h, ctx, Activation::Relu)?;
        let mut skips = vec![h.clone()];
        for s in &self.encoder {
            h = s.resample.forward(&h, ctx, Activation::Relu)?;
            h = s.blocks[0].forward(&h, ctx)?;
            h = s.blocks[1].forward(&h, ctx)?;
            skips.push(h.clone());
        }
        skips.pop();
        for (s, skip) in self.decoder.iter().zip(skips.iter().rev()) {
            h = s.resample.forward(&h, ctx, Activation::Relu)?;
            h = concat(&h, skip)?;
            h = s.blocks[0].forward(&h, ctx)?;
            h = s.blocks[1].forward(&h, ctx)?;
        }
        let logits = h.device.backend().matmul(&h.feats, &self.head_w, Some(&self.head_b), Activation::None)?;
        Ok(MinkUNetOutput { features: h, logits })
    }
}

impl ResBlock {
    fn convs_mut(&mut self) -> impl Iterator<Item = &mut SparseConv3d> {
        [&mut self.conv1, &mut self.conv2].into_iter().chain(self.proj.as_mut())
    }
}

impl QuantizableNet for MinkUNet {
    fn convs_mut(&mut self) -> Vec<&mut SparseConv3d> {
        let mut v: Vec<&mut SparseConv3d> = self.stem.iter_mut().collect();
        for s in self.encoder.iter_mut().chain(self.decoder.iter_mut()) {
            v.push(&mut s.resample);
            for b in &mut s.blocks {
                v.extend(b.convs_mut());
            }
        }
        v
    }
    fn run(&self, x: &SparseTensor, ctx: &RunCtx) -> Result<()> {
        self.forward(x, ctx).map(|_| ())
    }
}

/// The SECOND/CenterPoint-style 3-D backbone: stages `(n, C, k, s)` = (3,16,3,1),
/// (3,32,3,2), (3,64,3,2), (3,128,3,2), (1,128,(1,3,1),(1,2,1)); a strided stage starts
/// with a conv-BN-ReLU, then `n` residual blocks.
#[derive(Debug, Clone)]
pub struct SparseResNet21D {
    pub layers: Vec<(Option<SparseConv3d>, Vec<ResBlock>)>,
}

impl SparseResNet21D {
    pub fn build(in_channels: usize, width: f32, p: &mut Params, device: &Device) -> Result<Self> {
        let spec: [(usize, usize, [usize; 3], [usize; 3]); 5] = [
            (3, 16, [3; 3], [1; 3]),
            (3, 32, [3; 3], [2; 3]),
            (3, 64, [3; 3], [2; 3]),
            (3, 128, [3; 3], [2; 3]),
            (1, 128, [1, 3, 1], [1, 2, 1]),
        ];
        let mut cin = in_channels;
        let mut layers = Vec::new();
        for (i, (n, c, k, s)) in spec.into_iter().enumerate() {
            let c = ((c as f32 * width) as usize).max(1);
            let down = if s != [1; 3] {
                let geom = ConvGeom { kernel: k, stride: s, padding: k.map(|k| (k - 1) / 2), dilation: [1; 3] };
                let conv = conv_bn(p, device, &format!("stage.{i}.down"), cin, c, geom, false)?;
                cin = c;
                Some(conv)
            } else {
                None
            };
            let mut blocks = Vec::new();
            for j in 0..n {
                blocks.push(res_block(p, device, &format!("stage.{i}.res.{j}"), cin, c, k)?);
                cin = c;
            }
            layers.push((down, blocks));
        }
        Ok(SparseResNet21D { layers })
    }

    /// The feature tensor of every stage.
    pub fn forward(&self, x: &SparseTensor, ctx: &RunCtx) -> Result<Vec<SparseTensor>> {
        let mut h = x.clone();
        let mut outs = Vec::new();
        for (down, blocks) in &self.layers {
            if let Some(d) = down {
                h = d.forward(&h, ctx, Activation::Relu)?;
            }
            for b in blocks {
                h = b.forward(&h, ctx)?;
            }
            outs.push(h.clone());
        }
        Ok(outs)
    }
}
