//! The CPU backend: every op on rayon's pool, GEMMs through [`gemm::sgemm`] in row tiles.

pub mod amx;
pub mod dataflow;
pub mod dense;
pub mod gemm;
pub mod hash;
pub mod kmap;
pub mod lowp;
pub mod voxelize;

use rayon::prelude::*;

use super::tensor::Storage;
use super::{
    Activation, Backend, BuiltMap, ConvGeom, Dataflow, Epilogue, KernelMap, LowpConv, MapKind, PointsRef, Precision,
    SetEncoder, Tensor, Voxels,
};
use crate::error::{Error, Result};

/// Rows per GEMM task: large enough to amortise packing, small enough to spread the work.
const ROWS_PER_TASK: usize = 256;

/// The CPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuBackend;

fn mismatch(reason: String) -> Error {
    Error::device("cpu", reason)
}

/// The values of a CPU tensor (a tensor of another device is an error).
fn host<'a>(x: &'a Tensor, what: &str) -> Result<&'a [f32]> {
    x.as_host().ok_or_else(|| mismatch(format!("{what} lives on {}, not on the CPU", x.device_name())))
}

fn host_mut<'a>(x: &'a mut Tensor, what: &str) -> Result<&'a mut Vec<f32>> {
    let device = x.device_name();
    match &mut x.storage {
        Storage::Cpu(v) => Ok(v),
        Storage::Cuda(_) => Err(mismatch(format!("{what} lives on {device}, not on the CPU"))),
    }
}

fn tensor(values: Vec<f32>, rows: usize, cols: usize) -> Tensor {
    Tensor::new(Storage::Cpu(values), rows, cols)
}

/// A bias of `cols` values, or none.
fn bias_row(bias: Option<&Tensor>, cols: usize) -> Result<Option<&[f32]>> {
    let Some(b) = bias else { return Ok(None) };
    let v = host(b, "the bias")?;
    if v.len() != cols {
        return Err(mismatch(format!("a bias of {} values for {cols} columns", v.len())));
    }
    Ok(Some(v))
}

/// A conv's epilogue on host values, its bias and residual checked against the conv's
/// `rows × cols` output.
fn host_epilogue<'a>(epi: &Epilogue<'a>, rows: usize, cols: usize) -> Result<dataflow::HostEpilogue<'a>> {
    let residual = match epi.residual {
        Some(r) if r.shape() != [rows, cols] => {
            return Err(mismatch(format!("a residual of {:?} for a conv's {rows} × {cols} outputs", r.shape())));
        }
        r => r.map(|r| host(r, "the residual")).transpose()?,
    };
    Ok(dataflow::HostEpilogue { bias: bias_row(epi.bias, cols)?, residual, act: epi.act })
}

/// `row ← act(row + bias + residual row)` on every row of `y`, in parallel (the plain
/// [`epilogue`] without a residual).
fn epilogue_with_residual(y: &mut [f32], cols: usize, epi: &dataflow::HostEpilogue<'_>) {
    let Some(res) = epi.residual else { return epilogue(y, cols, epi.bias, epi.act) };
    if cols == 0 {
        return;
    }
    let tile = cols * ROWS_PER_TASK;
    y.par_chunks_mut(tile).zip(res.par_chunks(tile)).for_each(|(y, res)| {
        for (row, res) in y.chunks_exact_mut(cols).zip(res.chunks_exact(cols)) {
            if let Some(b) = epi.bias {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
            row.iter_mut().zip(res).for_each(|(v, r)| *v = epi.act.apply(*v + r));
        }
    });
}

/// `row ← act(row + bias)` on every row of `y`, in parallel.
fn epilogue(y: &mut [f32], cols: usize, bias: Option<&[f32]>, act: Activation) {
    if cols > 0 {
        y.par_chunks_mut(cols * ROWS_PER_TASK).for_each(|rows| epilogue_rows(rows, cols, bias, act));
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn tuning_key(&self) -> String {
        format!("cpu-{}t", rayon::current_num_threads())
    }

    fn upload(&self, host: &[f32], rows: usize, cols: usize) -> Result<Tensor> {
        if host.len() != rows * cols {
            return Err(mismatch(format!("{} values for a {rows}×{cols} tensor", host.len())));
        }
        Ok(tensor(host.to_vec(), rows, cols))
    }

    fn upload_vec(&self, host: Vec<f32>, rows: usize, cols: usize) -> Result<Tensor> {
        if host.len() != rows * cols {
            return Err(mismatch(format!("{} values for a {rows}×{cols} tensor", host.len())));
        }
        Ok(tensor(host, rows, cols))
    }

    fn download(&self, x: &Tensor) -> Result<Vec<f32>> {
        host(x, "the tensor").map(<[f32]>::to_vec)
    }

    fn matmul(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
        let (n, k, m) = (x.rows(), x.cols(), w.cols());
        if w.rows() != k {
            return Err(mismatch(format!("matmul of {n}×{k} by {}×{m}", w.rows())));
        }
        let (a, b) = (host(x, "matmul input")?, host(w, "matmul weight")?);
        let bias = bias_row(bias, m)?;
        // The output is written once, by the GEMM (not zeroed first: see `sgemm_uninit`).
        let mut y: Vec<f32> = Vec::with_capacity(n * m);
        let out = &mut y.spare_capacity_mut()[..n * m];
        if m > 0 && (k == 0 || n < ROWS_PER_TASK * rayon::current_num_threads()) {
            // Too few row tiles to keep every thread busy (the transformer's latents and
            // modes): the crate splits the one product over the pool itself. (k = 0: there
            // are no input rows to tile by; the product is zeros.)
            let out = gemm::sgemm_uninit(n, k, m, a, b, out, true);
            epilogue(out, m, bias, act);
        } else if m > 0 {
            // Tiles of about ROWS_PER_TASK rows, as many as a multiple of the threads so each
            // gets the same work (2,568 token rows: 12 tiles of 214, not 10 of 256 and one of 8).
            let threads = rayon::current_num_threads().max(1);
            let rows = n.div_ceil(n.div_ceil(ROWS_PER_TASK).next_multiple_of(threads));
            out.par_chunks_mut(rows * m).zip(a.par_chunks(rows * k)).for_each(|(y, a)| {
                let rows = y.len() / m;
                let y = gemm::sgemm_uninit(rows, k, m, a, b, y, false);
                // The tile is still in cache: bias and activation cost one pass over it.
                epilogue_rows(y, m, bias, act);
            });
        }
        // SAFETY: the GEMM wrote all n·m values (none to write when m = 0).
        unsafe { y.set_len(n * m) };
        Ok(tensor(y, n, m))
    }

    fn bias_act(&self, x: &mut Tensor, bias: Option<&Tensor>, act: Activation) -> Result<()> {
        let cols = x.cols();
        let bias = bias_row(bias, cols)?;
        epilogue(host_mut(x, "the tensor")?, cols, bias, act);
        Ok(())
    }

    fn add_act(&self, x: &mut Tensor, y: &Tensor, act: Activation) -> Result<()> {
        if x.shape() != y.shape() {
            return Err(mismatch(format!("adding a {:?} tensor to a {:?} one", y.shape(), x.shape())));
        }
        let b = host(y, "the addend")?;
        let a = host_mut(x, "the tensor")?;
        a.par_chunks_mut(1 << 14).zip(b.par_chunks(1 << 14)).for_each(|(a, b)| {
            a.iter_mut().zip(b).for_each(|(a, b)| *a = act.apply(*a + b));
        });
        Ok(())
    }

    fn concat_cols(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if a.rows() != b.rows() {
            return Err(mismatch(format!("concatenating {} rows with {}", a.rows(), b.rows())));
        }
        let (ca, cb) = (a.cols(), b.cols());
        let (va, vb) = (host(a, "the first input")?, host(b, "the second input")?);
        let c = ca + cb;
        // Every value is written once below (no zeroing pass first).
        let mut out: Vec<f32> = Vec::with_capacity(a.rows() * c);
        if c > 0 {
            out.spare_capacity_mut()[..a.rows() * c].par_chunks_mut(c).enumerate().for_each(|(i, row)| {
                for (o, &v) in row.iter_mut().zip(va[i * ca..(i + 1) * ca].iter().chain(&vb[i * cb..(i + 1) * cb])) {
                    o.write(v);
                }
            });
        }
        // SAFETY: each of the rows × (ca + cb) values was written above.
        unsafe { out.set_len(a.rows() * c) };
        Ok(tensor(out, a.rows(), c))
    }

    fn layer_norm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<Tensor> {
        let cols = x.cols();
        let (g, b) = (host(gamma, "LayerNorm gamma")?, host(beta, "LayerNorm beta")?);
        if g.len() != cols || b.len() != cols {
            return Err(mismatch(format!("LayerNorm of {cols} columns with {} / {} parameters", g.len(), b.len())));
        }
        Ok(tensor(dense::layer_norm(host(x, "LayerNorm input")?, cols, g, b, eps), x.rows(), cols))
    }

    fn add_rows(&self, x: &mut Tensor, table: &Tensor, index: &[u32], act: Activation) -> Result<()> {
        let cols = x.cols();
        if table.cols() != cols || index.len() != x.rows() || index.iter().any(|&i| i as usize >= table.rows()) {
            return Err(mismatch(format!(
                "adding rows of a {:?} table to a {:?} tensor by {} indices (largest {:?})",
                table.shape(),
                x.shape(),
                index.len(),
                index.iter().max()
            )));
        }
        let t = host(table, "the table")?;
        dense::add_rows(host_mut(x, "the tensor")?, cols, t, index, act);
        Ok(())
    }

    fn fold_norm(
        &self,
        y: &mut Tensor,
        x: &Tensor,
        eps: f32,
        table: &Tensor,
        index: &[u32],
        beta: &Tensor,
    ) -> Result<()> {
        let cols = y.cols();
        if x.rows() != y.rows()
            || table.cols() != cols
            || beta.cols() != cols
            || index.len() != y.rows()
            || index.iter().any(|&i| i as usize >= table.rows())
        {
            return Err(mismatch(format!(
                "a folded LayerNorm of {:?} onto {:?} with a {:?} table, {:?} beta and {} indices",
                x.shape(),
                y.shape(),
                table.shape(),
                beta.shape(),
                index.len()
            )));
        }
        let (xs, t, b) = (host(x, "the normalised input")?, host(table, "the table")?, host(beta, "beta")?);
        dense::fold_norm(host_mut(y, "the output")?, cols, xs, x.cols(), eps, t, index, b);
        Ok(())
    }

    fn gather_rows(&self, parts: &[&Tensor], index: &[u32]) -> Result<Tensor> {
        let cols = parts.first().map_or(0, |p| p.cols());
        let rows: usize = parts.iter().map(|p| p.rows()).sum();
        if parts.iter().any(|p| p.cols() != cols) || index.iter().any(|&i| i as usize >= rows) {
            return Err(mismatch(format!(
                "gathering {} rows (largest {:?}) of {rows} from parts of {:?} columns",
                index.len(),
                index.iter().max(),
                parts.iter().map(|p| p.cols()).collect::<Vec<_>>()
            )));
        }
        let hosts: Vec<(&[f32], usize)> =
            parts.iter().map(|p| Ok((host(p, "a gathered tensor")?, p.rows()))).collect::<Result<_>>()?;
        Ok(tensor(dense::gather_rows(&hosts, cols, index), index.len(), cols))
    }

    fn scatter_rows(&self, x: &mut Tensor, rows: &Tensor, index: &[u32]) -> Result<()> {
        let (n, cols) = (x.rows(), x.cols());
        let bad = index.iter().find(|&&i| i != super::DROP_ROW && i as usize >= n);
        if rows.cols() != cols || rows.rows() != index.len() || bad.is_some() {
            return Err(mismatch(format!(
                "scattering {:?} rows by {} indices (out of range: {bad:?}) into a {:?} tensor",
                rows.shape(),
                index.len(),
                x.shape()
            )));
        }
        let src = host(rows, "the scattered rows")?;
        dense::scatter_rows(host_mut(x, "the tensor")?, cols, src, index);
        Ok(())
    }

    fn window_attention(
        &self,
        qkv: &Tensor,
        n: usize,
        heads: usize,
        bias: &Tensor,
        mask: Option<(&Tensor, &[u32])>,
    ) -> Result<Tensor> {
        let d = qkv.cols() / 3;
        let windows = qkv.rows().checked_div(n).unwrap_or(0);
        let mask_ok = mask.is_none_or(|(m, kinds)| {
            m.cols() == n
                && m.rows().is_multiple_of(n.max(1))
                && kinds.len() == windows
                && kinds.iter().all(|&k| k == super::NO_MASK || (k as usize) < m.rows() / n.max(1))
        });
        let ok = n > 0
            && heads > 0
            && qkv.cols() == 3 * d
            && d.is_multiple_of(heads)
            && qkv.rows().is_multiple_of(n)
            && bias.shape() == [heads * n, n]
            && mask_ok;
        if !ok {
            return Err(mismatch(format!(
                "window attention over {n}-token windows, {heads} heads: qkv {:?}, bias {:?}, mask {:?}",
                qkv.shape(),
                bias.shape(),
                mask.map(|(m, k)| (m.shape(), k.len()))
            )));
        }
        let masks = match mask {
            Some((m, kinds)) => Some((host(m, "the window masks")?, kinds)),
            None => None,
        };
        let shape = dense::WindowShape { windows, n, d, heads };
        let y = dense::window_attention(host(qkv, "queries, keys and values")?, shape, host(bias, "the bias")?, masks);
        Ok(tensor(y, qkv.rows(), d))
    }

    fn set_encoder(&self, x: &Tensor, enc: &SetEncoder<'_>) -> Result<Tensor> {
        let (k, group) = (x.cols(), enc.group);
        let ((w1, b1), (w2, b2)) = (enc.first, enc.second);
        let (hidden, out) = (w1.cols(), w2.cols());
        let shapes_ok = group > 0
            && x.rows().is_multiple_of(group)
            && enc.valid.len() == x.rows()
            && w1.rows() == k
            && b1.shape() == [1, hidden]
            && w2.rows() == hidden
            && b2.shape() == [1, out]
            && enc.embeddings.iter().all(|(t, i)| t.cols() == hidden && i.len() == x.rows());
        if !shapes_ok {
            return Err(mismatch(format!(
                "a set encoder on {:?} rows in groups of {group} with {} flags: layers {:?}, {:?}",
                x.shape(),
                enc.valid.len(),
                w1.shape(),
                w2.shape()
            )));
        }
        let mut tables = Vec::with_capacity(enc.embeddings.len());
        for (t, index) in enc.embeddings {
            if let Some(&i) = index.iter().find(|&&i| i as usize >= t.rows()) {
                return Err(mismatch(format!("embedding row {i} of a {}-row table", t.rows())));
            }
            tables.push((host(t, "an embedding table")?, *index));
        }
        let layers = dense::SetLayers {
            w1: host(w1, "the first layer")?,
            b1: host(b1, "its bias")?,
            tables,
            w2: host(w2, "the second layer")?,
            b2: host(b2, "its bias")?,
            hidden,
            out,
        };
        let y = dense::set_encoder(host(x, "the set members")?, k, &layers, group, enc.valid);
        Ok(tensor(y, x.rows() / group, out))
    }

    fn attention(
        &self,
        q: &Tensor,
        kv: &Tensor,
        batch: usize,
        heads: usize,
        key_valid: Option<&[bool]>,
    ) -> Result<Tensor> {
        let d = q.cols();
        let ok = batch > 0
            && heads > 0
            && d.is_multiple_of(heads)
            && q.rows().is_multiple_of(batch)
            && kv.rows().is_multiple_of(batch)
            && kv.cols() == 2 * d
            && key_valid.is_none_or(|f| f.len() == kv.rows());
        if !ok {
            return Err(mismatch(format!(
                "attention of {batch} problems, {heads} heads: q {:?}, kv {:?}, {:?} key flags",
                q.shape(),
                kv.shape(),
                key_valid.map(<[bool]>::len)
            )));
        }
        let shape = dense::AttentionShape { batch, n: q.rows() / batch, m: kv.rows() / batch, d, heads };
        let y = dense::attention(host(q, "queries")?, host(kv, "keys and values")?, shape, key_valid);
        Ok(tensor(y, q.rows(), d))
    }

    fn voxelize(&self, frames: &[PointsRef<'_>], voxel_size: f32) -> Result<Voxels> {
        voxelize::voxelize(frames, voxel_size)
    }

    fn kernel_map(&self, coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom, kind: MapKind) -> Result<BuiltMap> {
        Ok(match kind {
            MapKind::Submanifold => BuiltMap { map: kmap::submanifold(coords, range, geom), coords: None },
            MapKind::Strided => {
                let (out, range, map) = kmap::strided(coords, range, geom);
                BuiltMap { map, coords: Some((out, range)) }
            }
            MapKind::Generative => {
                let (out, range, map) = kmap::generative(coords, range, geom);
                BuiltMap { map, coords: Some((out, range)) }
            }
        })
    }

    fn transpose_map(&self, map: &KernelMap) -> Result<KernelMap> {
        Ok(map.transposed())
    }

    fn sparse_conv(
        &self,
        df: &Dataflow,
        map: &KernelMap,
        x: &Tensor,
        w: &Tensor,
        epi: &Epilogue<'_>,
    ) -> Result<Tensor> {
        let cin = x.cols();
        let cout = w.cols();
        if x.rows() != map.n_in || w.rows() != map.volume * cin {
            return Err(mismatch(format!(
                "a conv of {} inputs × {cin} channels with a map of {} inputs, volume {} and weights {}×{cout}",
                x.rows(),
                map.n_in,
                map.volume,
                w.rows()
            )));
        }
        let host_epi = host_epilogue(epi, map.n_out, cout)?;
        let p = dataflow::ConvProblem { map, x: host(x, "conv input")?, cin, w: host(w, "conv weight")?, cout };
        Ok(tensor(dataflow::run(df, &p, &host_epi), map.n_out, cout))
    }

    fn sparse_conv_lowp(
        &self,
        map: &KernelMap,
        x: &Tensor,
        w: &LowpConv,
        precision: Precision,
        epi: &Epilogue<'_>,
    ) -> Result<Tensor> {
        let check = |volume: usize, cin: usize| {
            if x.rows() != map.n_in || x.cols() != cin || map.volume != volume {
                return Err(mismatch(format!(
                    "a {} conv of {} inputs × {} channels with a map of {} inputs and volume {}, weights {volume}×{cin}",
                    precision.label(),
                    x.rows(),
                    x.cols(),
                    map.n_in,
                    map.volume
                )));
            }
            host(x, "conv input")
        };
        if epi.act == Activation::Gelu {
            return Err(mismatch(format!("a {} conv with a fused GELU (ReLU or none only)", precision.label())));
        }
        let host_epi = |cout: usize| host_epilogue(epi, map.n_out, cout);
        match (precision, &w.int8, &w.bf16) {
            (Precision::Int8, Some(q), _) => {
                let y = lowp::conv_int8(map, check(q.weights.volume, q.weights.cin)?, q, &host_epi(q.weights.cout)?);
                Ok(tensor(y, map.n_out, q.weights.cout))
            }
            (Precision::Bf16, _, Some(b)) => {
                let y = lowp::conv_bf16(map, check(b.weights.volume, b.weights.cin)?, b, &host_epi(b.weights.cout)?);
                Ok(tensor(y, map.n_out, b.weights.cout))
            }
            _ => Err(mismatch(format!("a conv in {} without weights packed for it", precision.label()))),
        }
    }
}

/// `row ← act(row + bias)` on the rows of one tile, in the calling thread. With AVX2 the
/// same loop is compiled 8 lanes wide (the build's baseline is SSE2): the backbones' GELU
/// epilogues were a tenth of a streamed frame's CPU time. The arithmetic is the same either
/// way (no contraction into FMA), so both give the same bits.
fn epilogue_rows(y: &mut [f32], cols: usize, bias: Option<&[f32]>, act: Activation) {
    if cols == 0 || (bias.is_none() && act == Activation::None) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if dense::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { epilogue_rows_avx2(y, cols, bias, act) };
    }
    epilogue_rows_any(y, cols, bias, act);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn epilogue_rows_avx2(y: &mut [f32], cols: usize, bias: Option<&[f32]>, act: Activation) {
    epilogue_rows_any(y, cols, bias, act);
}

/// One loop per activation, so each is a straight vectorisable loop (no branch per value).
#[inline(always)]
fn epilogue_rows_any(y: &mut [f32], cols: usize, bias: Option<&[f32]>, act: Activation) {
    #[inline(always)]
    fn rows(y: &mut [f32], cols: usize, bias: Option<&[f32]>, f: impl Fn(f32) -> f32) {
        for row in y.chunks_exact_mut(cols) {
            match bias {
                Some(b) => row.iter_mut().zip(b).for_each(|(v, b)| *v = f(*v + b)),
                None => row.iter_mut().for_each(|v| *v = f(*v)),
            }
        }
    }
    match act {
        Activation::None => rows(y, cols, bias, |v| v),
        Activation::Relu => rows(y, cols, bias, |v| v.max(0.0)),
        Activation::Gelu => rows(y, cols, bias, dense::gelu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path of `matmul` (one product split by the crate, row tiles, no columns, an
    /// empty inner dimension) equals the plain triple loop with bias and ReLU.
    #[test]
    fn owned_uploads_keep_their_values_and_check_their_shape() {
        let be = CpuBackend;
        let t = be.upload_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3).unwrap();
        assert_eq!((t.rows(), t.cols()), (2, 3));
        assert_eq!(t.into_host().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(be.upload_vec(vec![1.0; 5], 2, 3).is_err(), "5 values for a 2×3 tensor");
        let (a, b) = (be.upload(&[1.0, 2.0, 3.0, 4.0], 2, 2).unwrap(), be.upload(&[5.0, 6.0], 2, 1).unwrap());
        assert_eq!(be.download(&be.concat_cols(&a, &b).unwrap()).unwrap(), vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
    }

    #[test]
    fn matmul_equals_the_naive_product_on_every_path() {
        let be = CpuBackend;
        let value = |i: usize| ((i * 7919 % 1000) as f32 - 500.0) / 250.0;
        for (n, k, m) in [(3, 17, 9), (1500, 33, 20), (700, 0, 5), (40, 8, 0), (0, 4, 6)] {
            let x: Vec<f32> = (0..n * k).map(value).collect();
            let w: Vec<f32> = (0..k * m).map(|i| value(i + 13)).collect();
            let b: Vec<f32> = (0..m).map(|i| value(i + 101)).collect();
            let (xt, wt, bt) =
                (be.upload(&x, n, k).unwrap(), be.upload(&w, k, m).unwrap(), be.upload(&b, 1, m).unwrap());
            let y = be.download(&be.matmul(&xt, &wt, Some(&bt), Activation::Relu).unwrap()).unwrap();
            assert_eq!(y.len(), n * m);
            for r in 0..n {
                for c in 0..m {
                    let want = ((0..k).map(|i| x[r * k + i] * w[i * m + c]).sum::<f32>() + b[c]).max(0.0);
                    let got = y[r * m + c];
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "({n},{k},{m}) [{r},{c}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}
