//! `scenetok sparse export`: the TOP lidar's labelled first-return points of every frame as
//! `OUT/{segment}_{timestamp}.safetensors` (`xyz [N,3]` f32, `feats [N,4]` f32 x, y, z,
//! intensity, `labels [N]` i32, −1 unlabelled), the PyTorch trainer's input
//! (`tools/train/train_lidar_seg.py`).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Location, Result};
use crate::models::lidar_seg::{FEATURES, LidarPoints};
use crate::pipeline::stages::PointsStage;
use crate::pipeline::{FrameContext, FrameSelection, Pipeline, Source};
use crate::scene::LaserName;

/// Writes one file per frame of `source` into `out`; returns how many.
pub fn export_lidar_points(source: &Source, out: &Path) -> Result<usize> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(Location::file(out), e))?;
    let mut pipeline = Pipeline::new().then(PointsStage::first_returns(&[LaserName::Top]).with_labels())?;
    let selection = FrameSelection::all().request(pipeline.request());
    let mut ctx = FrameContext::default();
    let mut n = 0;
    for frame in source.frames(&selection)? {
        ctx.load(frame?);
        pipeline.run(&mut ctx)?;
        let mut pts = LidarPoints::default();
        for c in &ctx.points {
            pts.push_cloud(&c.cloud, c.labels.as_deref());
        }
        let path = out.join(format!("{}_{}.safetensors", ctx.segment, ctx.frame.timestamp_micros));
        write(&path, &pts)?;
        n += 1;
    }
    Ok(n)
}

fn write(path: &Path, pts: &LidarPoints) -> Result<()> {
    let xyz: Vec<u8> = pts.xyz.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    let feats: Vec<u8> = pts.feats.iter().flat_map(|v| v.to_le_bytes()).collect();
    let labels: Vec<u8> = pts.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let n = pts.len();
    fn view<'a>(
        path: &Path,
        dt: safetensors::Dtype,
        shape: Vec<usize>,
        data: &'a [u8],
    ) -> Result<safetensors::tensor::TensorView<'a>> {
        safetensors::tensor::TensorView::new(dt, shape, data)
            .map_err(|e| Error::decode(Location::file(path), "tensor", e))
    }
    let tensors: HashMap<String, _> = [
        ("xyz".to_string(), view(path, safetensors::Dtype::F32, vec![n, 3], &xyz)?),
        ("feats".to_string(), view(path, safetensors::Dtype::F32, vec![n, FEATURES], &feats)?),
        ("labels".to_string(), view(path, safetensors::Dtype::I32, vec![n], &labels)?),
    ]
    .into_iter()
    .collect();
    let bytes =
        safetensors::serialize(tensors, None).map_err(|e| Error::decode(Location::file(path), "safetensors", e))?;
    crate::io::output::write_file(path, &bytes)
}
