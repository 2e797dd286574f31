//! Writes a network's (folded) weights and an input as safetensors for the external
//! baselines in `tools/bench/` (spconv): same voxels, same weights, same arithmetic, and
//! scenetok's own outputs so the baseline doubles as a correctness oracle.

use std::collections::HashMap;
use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::backend::{Activation, ConvGeom};
use crate::error::{Error, Location, Result};
use crate::sparse::SparseTensor;
use crate::sparse::layers::{ConvSpec, ResBlock, RunCtx, SparseConv3d};
use crate::sparse::nets::MinkUNet;
use crate::sparse::weights::{Init, Params};

/// Named tensors waiting to be serialised: name, dtype, shape, little-endian bytes.
#[derive(Default)]
struct Blobs(Vec<(String, Dtype, Vec<usize>, Vec<u8>)>);

impl Blobs {
    fn f32(&mut self, name: impl Into<String>, shape: Vec<usize>, v: &[f32]) {
        self.0.push((name.into(), Dtype::F32, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()));
    }
    fn i32(&mut self, name: impl Into<String>, shape: Vec<usize>, v: &[i32]) {
        self.0.push((name.into(), Dtype::I32, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()));
    }
    fn coords(&mut self, name: impl Into<String>, c: &[[i32; 4]]) {
        self.i32(name, vec![c.len(), 4], &c.iter().flatten().copied().collect::<Vec<_>>());
    }
    /// A tensor copied from its device.
    fn device_f32(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        x: &crate::backend::Tensor,
        device: &crate::backend::Device,
    ) -> Result<()> {
        let v = device.backend().download(x)?;
        self.f32(name, shape, &v);
        Ok(())
    }
    fn conv(&mut self, c: &SparseConv3d, device: &crate::backend::Device) -> Result<()> {
        let s = &c.spec;
        self.device_f32(format!("{}.weight", s.name), vec![s.geom.volume(), s.cin, s.cout], &c.weight, device)?;
        match &c.bias {
            Some(b) => self.device_f32(format!("{}.bias", s.name), vec![s.cout], b, device),
            None => {
                self.f32(format!("{}.bias", s.name), vec![s.cout], &vec![0.0; s.cout]);
                Ok(())
            }
        }
    }
    fn write(self, path: &Path, meta: HashMap<String, String>) -> Result<()> {
        let at = || Location::file(path);
        let mut views = HashMap::new();
        for (name, dt, shape, data) in &self.0 {
            views.insert(
                name.clone(),
                TensorView::new(*dt, shape.clone(), data).map_err(|e| Error::decode(at(), "tensor", e))?,
            );
        }
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::decode(at(), "safetensors", e))?;
        crate::io::output::write_file(path, &bytes)
    }
}

/// `coords [N,4] i32` (b,x,y,z), `feats [N,C]`, `range [3]`, and per conv `NAME.weight
/// [K,cin,cout]` (kernel offsets in [`crate::backend::kernel_indices`] order), `NAME.bias
/// [cout]` (batch norm folded), `head.weight [C,classes]`, `head.bias`, and scenetok's own
/// `ours.logits [N,classes]` on this input (rows in input voxel order).
pub fn write_minkunet_case(path: &Path, net: &MinkUNet, x: &SparseTensor, logits: &[f32]) -> Result<()> {
    let d = &x.device;
    let mut b = Blobs::default();
    b.coords("coords", &x.coords);
    b.device_f32("feats", vec![x.len(), x.channels()], &x.feats, d)?;
    b.i32("range", vec![3], &x.range);
    let block = |r: &ResBlock, b: &mut Blobs| -> Result<()> {
        b.conv(&r.conv1, d)?;
        b.conv(&r.conv2, d)?;
        if let Some(p) = &r.proj {
            b.conv(p, d)?;
        }
        Ok(())
    };
    for c in &net.stem {
        b.conv(c, d)?;
    }
    for s in net.encoder.iter().chain(&net.decoder) {
        b.conv(&s.resample, d)?;
        for r in &s.blocks {
            block(r, &mut b)?;
        }
    }
    let k = net.config.num_classes;
    b.device_f32("head.weight", vec![net.head_w.rows(), k], &net.head_w, d)?;
    b.device_f32("head.bias", vec![k], &net.head_b, d)?;
    b.f32("ours.logits", vec![logits.len() / k, k], logits);
    b.write(path, HashMap::from([("width".to_string(), net.config.width.to_string())]))
}

/// The conv kinds of MinkUNet, one each, with seeded random weights, chained on `x`:
/// `subm` (k3, stride 1), `proj` (1×1), `down` (k2, stride 2: the spconv output-coordinate rule),
/// `subm2` (k3 on the coarse level), `up` (k2 transposed, back onto `x`'s coordinates).
/// Writes the input (`coords`, `feats`, `range`), every conv's weights and bias, and every
/// conv's output coordinates `NAME.coords [M,4]` and features `NAME.out [M,cout]`, so
/// `tools/bench/sparse_spconv.py --check` can compare each kind on scenetok's own inputs.
pub fn write_layer_case(path: &Path, x: &SparseTensor, seed: u64) -> Result<()> {
    let mut p = Params::random(seed);
    let d = &x.device;
    let mut conv = |name: &str, cin: usize, cout: usize, geom: ConvGeom, transposed: bool| -> Result<SparseConv3d> {
        let k = geom.volume();
        let bound = 1.0 / ((cin * k) as f32).sqrt();
        let weight = p.get(&format!("{name}.weight"), &[k, cin, cout], Init::Uniform(bound))?;
        let bias = p.get(&format!("{name}.bias"), &[cout], Init::Uniform(bound))?;
        let spec = ConvSpec { name: name.to_string(), cin, cout, geom, transposed, generative: false };
        SparseConv3d::new(d, spec, &weight, Some(&bias))
    };
    let (c1, c2) = (16, 24);
    let layers = [
        conv("subm", x.channels(), c1, ConvGeom::cube(3, 1), false)?,
        conv("proj", c1, c1, ConvGeom::cube(1, 1), false)?,
        conv("down", c1, c2, ConvGeom::cube(2, 2), false)?,
        conv("subm2", c2, c2, ConvGeom::cube(3, 1), false)?,
        conv("up", c2, c1, ConvGeom::cube(2, 2), true)?,
    ];
    let mut b = Blobs::default();
    b.coords("coords", &x.coords);
    b.device_f32("feats", vec![x.len(), x.channels()], &x.feats, d)?;
    b.i32("range", vec![3], &x.range);
    let ctx = RunCtx::default();
    let mut h = x.fresh()?;
    for l in &layers {
        // No ReLU: each kind is compared on its own, linear output.
        h = l.forward(&h, &ctx, Activation::None)?;
        b.conv(l, d)?;
        b.coords(format!("{}.coords", l.name()), &h.coords);
        b.device_f32(format!("{}.out", l.name()), vec![h.len(), h.channels()], &h.feats, d)?;
    }
    b.write(path, HashMap::new())
}
