//! The sparse-conv engine against simple oracles: a dense conv3d / conv_transpose3d
//! evaluated at the sparse sites, a brute-force neighbour search for kernel maps, and a
//! map-based voxelizer.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scenetok::backend::cpu::kmap;
use scenetok::backend::{
    Activation, ConvGeom, Dataflow, Device, Epilogue, KernelMap, PointsRef, ROW_TILE, kernel_indices,
};
use scenetok::sparse::{SparseTensor, voxelize};

/// A stride-1 tensor on the CPU from host features `[N × channels]`.
fn tensor(coords: Vec<[i32; 4]>, feats: &[f32], channels: usize, range: [i32; 3]) -> SparseTensor {
    SparseTensor::from_host(&Device::cpu(), coords, feats, channels, range).unwrap()
}

/// The features of a tensor on the host.
fn host(x: &SparseTensor) -> Vec<f32> {
    x.feats_to_host().unwrap()
}

/// One conv on the CPU backend with host inputs and outputs.
fn conv(df: &Dataflow, map: &KernelMap, x: &[f32], cin: usize, w: &[f32], cout: usize) -> Vec<f32> {
    conv_then(df, map, x, cin, w, cout, None)
}

/// [`conv`] with its epilogue: `relu(conv + bias + residual)` for `Some((bias, residual))`.
fn conv_then(
    df: &Dataflow,
    map: &KernelMap,
    x: &[f32],
    cin: usize,
    w: &[f32],
    cout: usize,
    epi: Option<(&[f32], &[f32])>,
) -> Vec<f32> {
    let d = Device::cpu();
    let b = d.backend();
    let x = b.upload(x, map.n_in, cin).unwrap();
    let w = b.upload(w, map.volume * cin, cout).unwrap();
    let epi = epi.map(|(bias, res)| (b.upload(bias, 1, cout).unwrap(), b.upload(res, map.n_out, cout).unwrap()));
    let epilogue = match &epi {
        Some((bias, res)) => Epilogue { bias: Some(bias), residual: Some(res), act: Activation::Relu },
        None => Epilogue::default(),
    };
    b.download(&b.sparse_conv(df, map, &x, &w, &epilogue).unwrap()).unwrap()
}

/// A random sparse grid: unique coordinates in `[0, range)` over `batches`, with `density`.
fn grid(rng: &mut ChaCha8Rng, batches: i32, range: [i32; 3], density: f64) -> Vec<[i32; 4]> {
    let mut v = Vec::new();
    for b in 0..batches {
        for x in 0..range[0] {
            for y in 0..range[1] {
                for z in 0..range[2] {
                    if rng.random_bool(density) {
                        v.push([b, x, y, z]);
                    }
                }
            }
        }
    }
    if v.is_empty() {
        v.push([0, 0, 0, 0]);
    }
    v
}

fn randn(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Dense cross-correlation at output `o`: `Σ_k' x[o·s − p + k'·d]·W[k']` (zero outside).
fn dense_conv_at(
    sites: &BTreeMap<[i32; 4], usize>,
    x: &[f32],
    cin: usize,
    w: &[f32],
    cout: usize,
    g: &ConvGeom,
    o: [i32; 4],
) -> Vec<f32> {
    let mut y = vec![0.0f64; cout];
    for (k, ix) in kernel_indices(g.kernel).iter().enumerate() {
        let c: [i32; 4] = [
            o[0],
            o[1] * g.stride[0] as i32 - g.padding[0] as i32 + (ix[0] * g.dilation[0]) as i32,
            o[2] * g.stride[1] as i32 - g.padding[1] as i32 + (ix[1] * g.dilation[1]) as i32,
            o[3] * g.stride[2] as i32 - g.padding[2] as i32 + (ix[2] * g.dilation[2]) as i32,
        ];
        if let Some(&i) = sites.get(&c) {
            for a in 0..cin {
                for b in 0..cout {
                    y[b] += x[i * cin + a] as f64 * w[(k * cin + a) * cout + b] as f64;
                }
            }
        }
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// Dense transposed conv at fine position `f`: `Σ_{o,k': o·s − p + k'·d = f} x[o]·W[k']`.
fn dense_transposed_at(
    sites: &BTreeMap<[i32; 4], usize>,
    x: &[f32],
    cin: usize,
    w: &[f32],
    cout: usize,
    g: &ConvGeom,
    f: [i32; 4],
) -> Vec<f32> {
    let mut y = vec![0.0f64; cout];
    for (k, ix) in kernel_indices(g.kernel).iter().enumerate() {
        let mut o = [f[0], 0, 0, 0];
        let mut ok = true;
        for a in 0..3 {
            let v = f[a + 1] + g.padding[a] as i32 - (ix[a] * g.dilation[a]) as i32;
            ok &= v >= 0 && v % g.stride[a] as i32 == 0;
            o[a + 1] = v / g.stride[a] as i32;
        }
        if let (true, Some(&i)) = (ok, sites.get(&o)) {
            for a in 0..cin {
                for b in 0..cout {
                    y[b] += x[i * cin + a] as f64 * w[(k * cin + a) * cout + b] as f64;
                }
            }
        }
    }
    y.into_iter().map(|v| v as f32).collect()
}

fn index(coords: &[[i32; 4]]) -> BTreeMap<[i32; 4], usize> {
    coords.iter().enumerate().map(|(i, c)| (*c, i)).collect()
}

/// Every dataflow on `map` equals `want` (rows × cout) to fp32 rounding.
fn check_dataflows(what: &str, map: &KernelMap, x: &[f32], cin: usize, w: &[f32], cout: usize, want: &[f32]) {
    assert_eq!(want.len(), map.n_out * cout);
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    // The fused epilogue (bias, a residual row, ReLU) on every dataflow, against the same
    // sums finished on the host.
    let bias: Vec<f32> = (0..cout).map(|c| c as f32 * 0.25 - 0.5).collect();
    let residual: Vec<f32> = (0..want.len()).map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6).collect();
    let finished: Vec<f32> =
        want.iter().enumerate().map(|(i, &v)| (v + bias[i % cout] + residual[i]).max(0.0)).collect();
    for df in Dataflow::candidates() {
        for (got, want, how) in [
            (conv(&df, map, x, cin, w, cout), want, ""),
            (conv_then(&df, map, x, cin, w, cout, Some((&bias, &residual))), &finished[..], " with its epilogue"),
        ] {
            let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(
                err <= 1e-5 * scale * (cin as f32).sqrt().max(1.0) * 4.0,
                "{what}: {}{how} differs by {err} (scale {scale})",
                df.label()
            );
        }
    }
}

fn geom(kernel: [usize; 3], stride: [usize; 3], padding: [usize; 3], dilation: [usize; 3]) -> ConvGeom {
    ConvGeom { kernel, stride, padding, dilation }
}

#[test]
fn submanifold_conv_equals_dense_conv_at_active_sites_for_every_dataflow() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let cases = [
        ([3, 3, 3], [1, 1, 1], 2, [7, 6, 5], 0.3, 3, 5),
        ([3, 3, 3], [2, 2, 2], 1, [8, 8, 6], 0.25, 4, 4),
        ([1, 3, 1], [1, 1, 1], 1, [5, 7, 4], 0.4, 2, 3),
        ([5, 1, 3], [1, 1, 1], 1, [9, 4, 6], 0.2, 3, 2),
        ([2, 2, 2], [1, 1, 1], 2, [6, 6, 6], 0.3, 3, 4),
        ([3, 2, 1], [1, 1, 1], 1, [6, 5, 4], 0.5, 2, 3),
        // Many tiles of 128 rows and wide channels: exercises tiling, sorting and splits.
        ([3, 3, 3], [1, 1, 1], 2, [20, 20, 10], 0.15, 32, 24),
    ];
    for (kernel, dilation, batches, range, density, cin, cout) in cases {
        let coords = grid(&mut rng, batches, range, density);
        let padding = std::array::from_fn(|a| if kernel[a] % 2 == 1 { (kernel[a] - 1) / 2 * dilation[a] } else { 0 });
        let g = geom(kernel, [1; 3], padding, dilation);
        let x = randn(&mut rng, coords.len() * cin);
        let w = randn(&mut rng, g.volume() * cin * cout);
        let sites = index(&coords);
        let want: Vec<f32> = coords.iter().flat_map(|&c| dense_conv_at(&sites, &x, cin, &w, cout, &g, c)).collect();
        let map = kmap::submanifold(&coords, range, &g);
        assert_eq!(map.n_out, coords.len());
        check_dataflows(&format!("submanifold {kernel:?} d{dilation:?}"), &map, &x, cin, &w, cout, &want);
    }
}

#[test]
fn kernel_maps_equal_brute_force_neighbour_search() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (kernel, dilation) in
        [([3, 3, 3], [1, 1, 1]), ([2, 2, 2], [1, 1, 1]), ([3, 1, 5], [2, 1, 1]), ([4, 3, 2], [1, 1, 1])]
    {
        let range = [9, 8, 7];
        let coords = grid(&mut rng, 2, range, 0.3);
        let g = geom(kernel, [1; 3], [0; 3], dilation);
        let map = kmap::submanifold(&coords, range, &g);
        assert_eq!(map.out_in_map.len() % (ROW_TILE * map.volume), 0, "rows padded to 128");
        assert!(map.out_in_map[coords.len() * map.volume..].iter().all(|&v| v == -1));
        let idx = kernel_indices(kernel);
        for (o, c) in coords.iter().enumerate() {
            for (k, ix) in idx.iter().enumerate() {
                let off: [i32; 3] = std::array::from_fn(|a| {
                    let c0 = if kernel[a] % 2 == 1 { (kernel[a] - 1) / 2 } else { 0 };
                    (ix[a] as i32 - c0 as i32) * dilation[a] as i32
                });
                let n = [c[0], c[1] + off[0], c[2] + off[1], c[3] + off[2]];
                let want = coords.iter().position(|&d| d == n).map_or(-1, |i| i as i32);
                assert_eq!(map.row(o)[k], want, "{kernel:?}: output {c:?} offset {k}");
            }
        }
    }
}

#[test]
fn strided_conv_follows_the_spconv_output_rule_and_equals_dense_conv() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cases = [
        ([2, 2, 2], [2, 2, 2], [0, 0, 0], [9, 8, 7], 0.3),
        ([3, 3, 3], [2, 2, 2], [1, 1, 1], [9, 9, 6], 0.25),
        ([3, 3, 3], [2, 2, 2], [0, 0, 0], [8, 7, 9], 0.3),
        ([1, 3, 1], [1, 2, 1], [0, 0, 0], [5, 9, 4], 0.4),
        ([3, 2, 3], [3, 2, 1], [1, 0, 1], [10, 7, 5], 0.3),
    ];
    for (kernel, stride, padding, range, density) in cases {
        let coords = grid(&mut rng, 2, range, density);
        let g = geom(kernel, stride, padding, [1; 3]);
        let (cin, cout) = (3, 4);
        let (out, out_range, map) = kmap::strided(&coords, range, &g);
        // Output set: every o in range with at least one input in its receptive field.
        let sites = index(&coords);
        let mut expect = BTreeSet::new();
        for b in 0..2 {
            for x in 0..out_range[0] {
                for y in 0..out_range[1] {
                    for z in 0..out_range[2] {
                        let o = [b, x, y, z];
                        let any = kernel_indices(kernel).iter().any(|ix| {
                            sites.contains_key(&[
                                b,
                                x * stride[0] as i32 - padding[0] as i32 + ix[0] as i32,
                                y * stride[1] as i32 - padding[1] as i32 + ix[1] as i32,
                                z * stride[2] as i32 - padding[2] as i32 + ix[2] as i32,
                            ])
                        });
                        if any {
                            expect.insert(o);
                        }
                    }
                }
            }
        }
        assert_eq!(out, expect.into_iter().collect::<Vec<_>>(), "{kernel:?} s{stride:?}: output coordinates (sorted)");
        for a in 0..3 {
            assert_eq!(out_range[a], (range[a] + 2 * padding[a] as i32 - kernel[a] as i32) / stride[a] as i32 + 1);
        }
        let x = randn(&mut rng, coords.len() * cin);
        let w = randn(&mut rng, g.volume() * cin * cout);
        let want: Vec<f32> = out.iter().flat_map(|&o| dense_conv_at(&sites, &x, cin, &w, cout, &g, o)).collect();
        check_dataflows(&format!("strided {kernel:?} s{stride:?}"), &map, &x, cin, &w, cout, &want);

        // The transposed conv back to the fine coordinates (transposed cached map).
        let t = map.transposed();
        assert_eq!((t.n_in, t.n_out), (out.len(), coords.len()));
        let xc = randn(&mut rng, out.len() * cout);
        let wt = randn(&mut rng, g.volume() * cout * cin);
        let coarse = index(&out);
        let want: Vec<f32> =
            coords.iter().flat_map(|&f| dense_transposed_at(&coarse, &xc, cout, &wt, cin, &g, f)).collect();
        check_dataflows(&format!("transposed {kernel:?} s{stride:?}"), &t, &xc, cout, &wt, cin, &want);
    }
}

#[test]
fn generative_transposed_conv_equals_dense_conv_transpose() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for (kernel, stride, padding) in
        [([2, 2, 2], [2, 2, 2], [0, 0, 0]), ([3, 3, 3], [2, 2, 2], [1, 1, 1]), ([3, 1, 2], [1, 1, 2], [0, 0, 0])]
    {
        let range = [5, 4, 6];
        let coords = grid(&mut rng, 1, range, 0.3);
        let g = geom(kernel, stride, padding, [1; 3]);
        let (out, out_range, map) = kmap::generative(&coords, range, &g);
        let (cin, cout) = (4, 3);
        let x = randn(&mut rng, coords.len() * cin);
        let w = randn(&mut rng, g.volume() * cin * cout);
        let sites = index(&coords);
        // Every position of the dense output that receives a contribution, and nothing else.
        let mut expect = Vec::new();
        for xx in 0..out_range[0] {
            for y in 0..out_range[1] {
                for z in 0..out_range[2] {
                    let f = [0, xx, y, z];
                    let reached = kernel_indices(kernel).iter().any(|ix| {
                        (0..3).all(|a| {
                            let v = f[a + 1] + padding[a] as i32 - ix[a] as i32;
                            v >= 0 && v % stride[a] as i32 == 0
                        }) && sites.contains_key(&[
                            0,
                            (f[1] + padding[0] as i32 - ix[0] as i32) / stride[0] as i32,
                            (f[2] + padding[1] as i32 - ix[1] as i32) / stride[1] as i32,
                            (f[3] + padding[2] as i32 - ix[2] as i32) / stride[2] as i32,
                        ])
                    });
                    if reached {
                        expect.push(f);
                    }
                }
            }
        }
        assert_eq!(out, expect, "{kernel:?} s{stride:?}: generated coordinates");
        let want: Vec<f32> = out.iter().flat_map(|&f| dense_transposed_at(&sites, &x, cin, &w, cout, &g, f)).collect();
        check_dataflows(&format!("generative {kernel:?}"), &map, &x, cin, &w, cout, &want);
    }
}

#[test]
fn tensor_plans_reuse_cached_maps_and_return_to_fine_coordinates() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let range = [12, 10, 8];
    let coords = grid(&mut rng, 1, range, 0.2);
    let t = tensor(coords.clone(), &vec![0.0; coords.len()], 1, range);
    let down = ConvGeom::cube(2, 2);
    let p1 = t.plan(&down, false, false).unwrap();
    let p2 = t.plan(&down, false, false).unwrap();
    assert!(std::sync::Arc::ptr_eq(&p1.map, &p2.map), "second plan comes from the cache");
    assert_eq!(p1.out_stride, [2, 2, 2]);
    let feats = Device::cpu().backend().upload(&vec![0.0; p1.out.coords.len()], p1.out.coords.len(), 1).unwrap();
    let coarse = t.on_plan(&p1, feats).unwrap();
    let up = coarse.plan(&down, true, false).unwrap();
    assert_eq!(*up.out.coords, coords, "transposed conv returns to the fine coordinates");
    assert_eq!(up.out_stride, [1, 1, 1]);
    assert_eq!(up.map.n_out, coords.len());
}

#[test]
fn voxelization_equals_a_map_based_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let voxel = 0.5f32;
    let frames: Vec<(Vec<[f32; 3]>, Vec<f32>)> = (0..2)
        .map(|_| {
            let n = 500;
            let mut xyz: Vec<[f32; 3]> = (0..n)
                .map(|_| [rng.random_range(-4.0..4.0), rng.random_range(-3.0..5.0), rng.random_range(-1.0..2.0)])
                .collect();
            xyz[3] = [f32::NAN, 0.0, 0.0];
            (xyz, randn(&mut rng, n * 2))
        })
        .collect();
    let refs: Vec<PointsRef> = frames.iter().map(|(x, f)| PointsRef { xyz: x, feats: f, channels: 2 }).collect();
    let v = voxelize(&Device::cpu(), &refs, voxel).unwrap();
    let v_feats = host(&v.tensor);
    // Reference: group points by (b, floor(p/voxel)) in a BTreeMap, average features.
    let mut groups: BTreeMap<[i64; 4], Vec<(usize, usize)>> = BTreeMap::new();
    for (b, (xyz, _)) in frames.iter().enumerate() {
        for (i, p) in xyz.iter().enumerate() {
            if p.iter().all(|v| v.is_finite()) {
                let c = p.map(|v| (v / voxel).floor() as i64);
                groups.entry([b as i64, c[0], c[1], c[2]]).or_default().push((b, i));
            }
        }
    }
    let lo: [i64; 3] = std::array::from_fn(|a| groups.keys().map(|k| k[a + 1]).min().unwrap());
    assert_eq!(v.tensor.len(), groups.len());
    for (row, (key, pts)) in groups.iter().enumerate() {
        let c = [key[0] as i32, (key[1] - lo[0]) as i32, (key[2] - lo[1]) as i32, (key[3] - lo[2]) as i32];
        assert_eq!(v.tensor.coords[row], c);
        for ch in 0..2 {
            let mean = pts.iter().map(|&(b, i)| frames[b].1[i * 2 + ch] as f64).sum::<f64>() / pts.len() as f64;
            assert!((v_feats[row * 2 + ch] as f64 - mean).abs() < 1e-5);
        }
        for &(b, i) in pts {
            assert_eq!(v.point_to_voxel[b][i], Some(row as u32));
        }
    }
    assert_eq!(v.point_to_voxel[0][3], None, "a NaN point has no voxel");
    assert_eq!(v.point_to_voxel[1][3], None);
}

/// Reads the golden file written by `tools/train/make_golden.py`.
/// Golden input (coords, feats, range) and the twin's logits.
type Golden = (Vec<[i32; 4]>, Vec<f32>, [i32; 3], Vec<f32>);

fn golden() -> Option<Golden> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/lidar_seg_minkunet.safetensors");
    let bytes = std::fs::read(&path).ok()?;
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("golden file parses");
    let f32s = |n: &str| -> Vec<f32> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    let i32s = |n: &str| -> Vec<i32> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    let coords = i32s("coords").chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
    let r = i32s("range");
    Some((coords, f32s("feats"), [r[0], r[1], r[2]], f32s("logits")))
}

#[test]
fn minkunet_with_shipped_weights_reproduces_the_pytorch_twin() {
    use scenetok::models::lidar_seg::LidarSegModel;
    use scenetok::sparse::layers::RunCtx;
    let (coords, feats, range, want) = golden().expect("tests/golden/lidar_seg_minkunet.safetensors is committed");
    let model =
        LidarSegModel::load(&crate::common::shipped_lidar_weights(), &Device::cpu()).expect("shipped weights load");
    let x = tensor(coords, &feats, 4, range);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for df in Dataflow::representatives() {
        let out = model.net.forward(&x.fresh().unwrap(), &RunCtx::with_default(df)).unwrap();
        let logits = Device::cpu().backend().download(&out.logits).unwrap();
        assert_eq!(logits.len(), want.len());
        let err = logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max) / scale;
        assert!(err < 1e-4, "{}: max relative error {err:e}", df.label());
    }
}

/// `tools/train/make_golden.py --network resnet21d`: the input, and every stage's output
/// coordinates and features from the PyTorch twin (float64) with the weights beside it.
#[test]
fn resnet21d_reproduces_the_pytorch_twin_at_every_stage() {
    use scenetok::sparse::layers::RunCtx;
    use scenetok::sparse::nets::SparseResNet21D;
    use scenetok::sparse::weights::Params;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bytes = std::fs::read(dir.join("resnet21d.safetensors")).expect("the golden file is committed");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let words = |n: &str| -> Vec<[u8; 4]> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| [b[0], b[1], b[2], b[3]]).collect()
    };
    let f32s = |n: &str| -> Vec<f32> { words(n).into_iter().map(f32::from_le_bytes).collect() };
    let coords = |n: &str| -> Vec<[i32; 4]> {
        let v: Vec<i32> = words(n).into_iter().map(i32::from_le_bytes).collect();
        v.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
    };
    let r: Vec<i32> = words("range").into_iter().map(i32::from_le_bytes).collect();
    let x = tensor(coords("coords"), &f32s("feats"), 4, [r[0], r[1], r[2]]);
    let mut params = Params::load(&dir.join("resnet21d_weights.safetensors")).unwrap();
    let net = SparseResNet21D::build(4, 0.125, &mut params, &Device::cpu()).unwrap();
    for df in Dataflow::representatives() {
        let stages = net.forward(&x.fresh().unwrap(), &RunCtx::with_default(df)).unwrap();
        assert_eq!(stages.len(), 5);
        for (i, got) in stages.iter().enumerate() {
            let (want_coords, want) = (coords(&format!("stage{i}.coords")), f32s(&format!("stage{i}.feats")));
            // Same output set (spconv's rule for the strided convs), compared by coordinate.
            let row: std::collections::HashMap<[i32; 4], usize> =
                got.coords.iter().enumerate().map(|(r, c)| (*c, r)).collect();
            assert_eq!(got.len(), want_coords.len(), "{} stage {i}: voxel count", df.label());
            let c = got.channels();
            let got_feats = host(got);
            assert_eq!(want.len(), want_coords.len() * c, "stage {i}: channels");
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "stage {i}: the twin's features are not all zero");
            let mut err = 0.0f32;
            for (w, wc) in want_coords.iter().enumerate() {
                let g = *row.get(wc).unwrap_or_else(|| panic!("stage {i}: voxel {wc:?} missing"));
                for ch in 0..c {
                    err = err.max((got_feats[g * c + ch] - want[w * c + ch]).abs());
                }
            }
            assert!(err / scale < 1e-4, "{} stage {i}: max relative error {:e}", df.label(), err / scale);
        }
    }
}

#[test]
fn weights_with_a_wrong_shape_or_missing_tensor_are_named_in_the_error() {
    use scenetok::sparse::nets::{MinkUNet, MinkUNetConfig};
    use scenetok::sparse::weights::Params;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let data = vec![0u8; 4 * 3];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3], &data).unwrap();
    let bytes = safetensors::serialize([("stem.0.conv.kernel".to_string(), view)], None).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let mut p = Params::load(&path).unwrap();
    let err = MinkUNet::build(MinkUNetConfig { in_channels: 4, num_classes: 23, width: 0.25 }, &mut p, &Device::cpu())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("w.safetensors") && err.contains("stem.0.conv.kernel") && err.contains("[27, 4, 8]"), "{err}");
    std::fs::write(&path, b"not a safetensors file").unwrap();
    assert!(Params::load(&path).is_err());
}

#[test]
fn bn_folding_equals_conv_then_batch_norm() {
    use scenetok::backend::Activation;
    use scenetok::sparse::layers::{BatchNorm, ConvSpec, RunCtx, SparseConv3d, fold_bn};
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let range = [6, 6, 6];
    let coords = grid(&mut rng, 1, range, 0.4);
    let (cin, cout) = (3, 5);
    let spec =
        ConvSpec { name: "c".into(), cin, cout, geom: ConvGeom::cube(3, 1), transposed: false, generative: false };
    let weight = randn(&mut rng, 27 * cin * cout);
    let bn = BatchNorm {
        weight: randn(&mut rng, cout),
        bias: randn(&mut rng, cout),
        mean: randn(&mut rng, cout),
        var: (0..cout).map(|i| 0.5 + i as f32).collect(),
        eps: 1e-5,
    };
    let x = tensor(coords.clone(), &randn(&mut rng, coords.len() * cin), cin, range);
    let ctx = RunCtx::default();
    let d = Device::cpu();
    let plain =
        SparseConv3d::new(&d, spec.clone(), &weight, None).unwrap().forward(&x, &ctx, Activation::None).unwrap();
    let mut folded_w = weight.clone();
    let bias = fold_bn(&mut folded_w, cout, None, &bn);
    let folded = SparseConv3d::new(&d, spec, &folded_w, Some(&bias)).unwrap();
    let got = folded.forward(&x, &ctx, Activation::None).unwrap();
    for (row, (a, b)) in host(&plain).chunks(cout).zip(host(&got).chunks(cout)).enumerate() {
        for c in 0..cout {
            let want = (a[c] - bn.mean[c]) / (bn.var[c] + bn.eps).sqrt() * bn.weight[c] + bn.bias[c];
            assert!((b[c] - want).abs() < 1e-4, "row {row} channel {c}");
        }
    }
}

#[test]
fn lidar_seg_eval_runs_on_the_fixture_dataset() {
    use scenetok::eval::lidar_seg::evaluate;
    use scenetok::models::lidar_seg::LidarSegModel;
    use scenetok::pipeline::{FrameSelection, Source};
    use scenetok::sparse::layers::RunCtx;
    let dir = tempfile::tempdir().unwrap();
    scenetok::io::fixture::write(dir.path()).unwrap();
    let model = LidarSegModel::load(&crate::common::shipped_lidar_weights(), &Device::cpu()).unwrap();
    let source = Source::open(dir.path()).unwrap();
    let report = evaluate(&source, &FrameSelection::all(), model, RunCtx::default()).unwrap();
    assert!(report.frames > 0);
    assert!((0.0..=1.0).contains(&report.miou));
    assert!(report.classes.iter().all(|(_, iou, _)| (0.0..=1.0).contains(iou)));
}

#[test]
fn autotuner_picks_one_dataflow_per_kernel_map_group_and_stores_it() {
    use scenetok::sparse::nets::{MinkUNet, MinkUNetConfig};
    use scenetok::sparse::tune::{TuneRecord, tune};
    use scenetok::sparse::weights::Params;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let range = [32, 32, 16];
    let coords = grid(&mut rng, 1, range, 0.05);
    let x = tensor(coords.clone(), &randn(&mut rng, coords.len() * 4), 4, range);
    let d = Device::cpu();
    let cfg = MinkUNetConfig { in_channels: 4, num_classes: 5, width: 0.125 };
    let net = MinkUNet::build(cfg, &mut Params::random(1), &d).unwrap();
    let cands = Dataflow::representatives();
    let groups = tune(std::slice::from_ref(&x), &cands, 1, &|x, c| net.forward(x, c).map(drop)).unwrap();
    // Stem + 4 levels of k3 submanifold, 4 downsampling and 4 transposed groups.
    assert_eq!(groups.len(), 13, "{:?}", groups.iter().map(|g| g.key.label()).collect::<Vec<_>>());
    assert!(groups.iter().all(|g| cands.contains(&g.dataflow) && g.ms <= g.default_ms + 1e-9));
    let dir = tempfile::tempdir().unwrap();
    let rec = TuneRecord {
        network: "minkunet-w0.125".into(),
        device: d.backend().tuning_key(),
        scale: "test".into(),
        groups,
    };
    rec.save(dir.path()).unwrap();
    let back = TuneRecord::load(dir.path(), &rec.network, &rec.device, "test").unwrap().unwrap();
    assert_eq!(back.choices(), rec.choices());
}

/// The spconv layer case (`tools/bench/sparse_spconv.py --check` reads it): its weights are
/// the ones the written outputs were computed with, in kernel-index order, and its
/// coordinates follow the strided / transposed rules.
#[test]
fn spconv_layer_case_holds_the_weights_and_outputs_it_claims() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let range = [9, 8, 7];
    let coords = grid(&mut rng, 1, range, 0.3);
    let x = tensor(coords.clone(), &randn(&mut rng, coords.len() * 4), 4, range);
    let x_feats = host(&x);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layers.safetensors");
    scenetok::bench::sparse_cases::write_layer_case(&path, &x, 3).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |n: &str| -> Vec<f32> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    };
    let coords_of = |n: &str| -> Vec<[i32; 4]> {
        let v: Vec<i32> =
            st.tensor(n).unwrap().data().chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect();
        v.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
    };
    assert_eq!(coords_of("coords"), coords);
    // Submanifold k3: the dense oracle with the written weights and bias.
    let (w, b) = (f32s("subm.weight"), f32s("subm.bias"));
    let cout = b.len();
    let sites = index(&coords);
    let g = ConvGeom::cube(3, 1);
    let want: Vec<f32> = coords
        .iter()
        .flat_map(|&c| dense_conv_at(&sites, &x_feats, 4, &w, cout, &g, c).into_iter().zip(&b).map(|(v, b)| v + b))
        .collect();
    let got = f32s("subm.out");
    let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-4, "subm.out differs from the dense conv with subm.weight by {err}");
    // Strided k2 s2: outputs are the sorted unique floor(c/2); transposed returns onto x.
    let down: BTreeSet<[i32; 4]> = coords.iter().map(|c| [c[0], c[1] / 2, c[2] / 2, c[3] / 2]).collect();
    let range_out = ConvGeom::cube(2, 2).down_range(range);
    let down: Vec<[i32; 4]> = down.into_iter().filter(|c| (0..3).all(|a| c[a + 1] < range_out[a])).collect();
    assert_eq!(coords_of("down.coords"), down);
    assert_eq!(coords_of("subm2.coords"), down);
    assert_eq!(coords_of("up.coords"), coords);
    assert_eq!(f32s("up.out").len(), coords.len() * f32s("up.bias").len());
}

/// The shipped LiDAR encoder on a small held-out world (seed 99, never trained on; the
/// README's held-out evaluation uses 20 frames of it): a broken or badly trained weight file
/// cannot pass. The README quotes what these two frames measure (`tools/measure.sh`).
#[test]
fn shipped_lidar_encoder_segments_a_held_out_world() {
    use scenetok::eval::lidar_seg::evaluate;
    use scenetok::models::lidar_seg::LidarSegModel;
    use scenetok::pipeline::{FrameSelection, Source};
    use scenetok::sim::generate::{GenerateConfig, Preset, generate};
    use scenetok::sparse::layers::RunCtx;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenerateConfig::preset(Preset::Full);
    (cfg.segments, cfg.frames, cfg.camera_div, cfg.seed) = (1, 2, 8, 99);
    generate(dir.path(), &cfg, |_, _| {}).unwrap();
    let device = Device::cpu();
    let model = LidarSegModel::load(&crate::common::shipped_lidar_weights(), &device).unwrap();
    let run = RunCtx::with_default(Dataflow::representatives()[1]);
    let report = evaluate(&Source::open(dir.path()).unwrap(), &FrameSelection::all(), model, run).unwrap();
    eprintln!("{}", report.table());
    assert!(report.points > 200_000, "{} labelled points", report.points);
    assert!(report.miou >= 0.68, "held-out mIoU {:.3} below the shipped weights' 0.68 bound", report.miou);
}

/// `bench gemm` does the same work on both sides: on small odd shapes our engines and
/// NumPy's OpenBLAS compute the same product (checksums compared inside `run`, an error
/// otherwise), and every side is timed.
#[test]
fn bench_gemm_multiplies_the_same_operands_as_openblas() {
    use scenetok::bench::gemm::{Baseline, GemmOptions, Shape, ShapeKind, run};
    let Some(python) = crate::common::python_with("numpy") else { return };
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/bench/gemm_baseline.py");
    let shapes = vec![
        Shape { m: 333, k: 77, n: 45, kind: ShapeKind::GatherScatter },
        Shape { m: 130, k: 27 * 5, n: 9, kind: ShapeKind::ImplicitGemm },
        Shape { m: 64, k: 64, n: 64, kind: ShapeKind::Square },
    ];
    let r = run(&GemmOptions { baseline: Some(Baseline { python, script }), reps: 1, shapes: shapes.clone() }).unwrap();
    assert_eq!(r.results.len(), 3);
    for (res, s) in r.results.iter().zip(&shapes) {
        assert_eq!(res.shape, *s);
        assert!(res.checksum > 0.0 && res.baseline_checksum.is_some_and(|b| (b - res.checksum).abs() < 1e-3 * b));
        assert!([res.ours, res.ours_tiled, res.matrixmultiply_tiled].iter().all(|t| *t > 0.0));
        assert!(res.baseline.is_some_and(|t| t > 0.0));
    }
    assert!(r.blas.as_deref().is_some_and(|b| b.contains("NumPy")));
    let report = r.report();
    assert!(report.contains("333×77×45") && report.contains("scenetok / OpenBLAS"), "{report}");
}
