//! Writes a network's (folded) weights and an input as safetensors for the external
//! baselines in `tools/bench/` (spconv): same voxels, same weights, same arithmetic.

use std::collections::HashMap;
use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::layers::{ResBlock, SparseConv3d};
use super::nets::MinkUNet;
use super::tensor::SparseTensor;
use crate::error::{Error, Location, Result};

fn le<T: Copy>(v: &[T], f: impl Fn(T) -> [u8; 4]) -> Vec<u8> {
    v.iter().flat_map(|x| f(*x)).collect()
}

/// `coords [N,4] i32`, `feats [N,C]`, `range [3]`, and per conv `NAME.weight [K,cin,cout]`,
/// `NAME.bias [cout]` (batch norm folded), `head.weight [C,classes]`, `head.bias`.
pub fn write_minkunet_case(path: &Path, net: &MinkUNet, x: &SparseTensor) -> Result<()> {
    let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![
        (
            "coords".into(),
            Dtype::I32,
            vec![x.len(), 4],
            le(&x.coords.iter().flatten().copied().collect::<Vec<_>>(), i32::to_le_bytes),
        ),
        ("feats".into(), Dtype::F32, vec![x.len(), x.channels], le(&x.feats, f32::to_le_bytes)),
        ("range".into(), Dtype::I32, vec![3], le(&x.range, i32::to_le_bytes)),
    ];
    let mut conv = |c: &SparseConv3d| {
        blobs.push((
            format!("{}.weight", c.name),
            Dtype::F32,
            vec![c.geom.volume(), c.cin, c.cout],
            le(&c.weight, f32::to_le_bytes),
        ));
        let b = c.bias.clone().unwrap_or_else(|| vec![0.0; c.cout]);
        blobs.push((format!("{}.bias", c.name), Dtype::F32, vec![c.cout], le(&b, f32::to_le_bytes)));
    };
    let block = |b: &ResBlock, conv: &mut dyn FnMut(&SparseConv3d)| {
        conv(&b.conv1);
        conv(&b.conv2);
        if let Some(p) = &b.proj {
            conv(p);
        }
    };
    for c in &net.stem {
        conv(c);
    }
    for s in net.encoder.iter().chain(&net.decoder) {
        conv(&s.resample);
        for b in &s.blocks {
            block(b, &mut conv);
        }
    }
    let k = net.config.num_classes;
    blobs.push(("head.weight".into(), Dtype::F32, vec![net.head_w.len() / k, k], le(&net.head_w, f32::to_le_bytes)));
    blobs.push(("head.bias".into(), Dtype::F32, vec![k], le(&net.head_b, f32::to_le_bytes)));
    let at = || Location::file(path);
    let mut views = HashMap::new();
    for (name, dt, shape, data) in &blobs {
        views.insert(
            name.clone(),
            TensorView::new(*dt, shape.clone(), data).map_err(|e| Error::decode(at(), "tensor", e))?,
        );
    }
    let meta = HashMap::from([("width".to_string(), net.config.width.to_string())]);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::decode(at(), "safetensors", e))?;
    std::fs::write(path, bytes).map_err(|e| Error::io(at(), e))
}
