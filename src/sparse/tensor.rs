//! The sparse tensor: coordinates `[N,4] = (b,x,y,z)`, features `[N,C]`, its stride, and the
//! cache of coordinate sets and kernel maps shared by every tensor derived from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::backend::{ConvGeom, Device, KernelMap, MapKind, Tensor};
use crate::error::{Error, Result};

/// Kernel-map cache key (also the autotuner's layer-group key, docs/sparse-conv.md#autotuner; unlike upstream, a transposed conv groups apart from the downsampling conv whose map it reuses): the input tensor
/// stride (the *fine* stride for transposed convs), kernel, conv stride, dilation, and
/// whether the map is the transposed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct KmapKey {
    pub tensor_stride: [i32; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub dilation: [usize; 3],
    pub transposed: bool,
}

impl KmapKey {
    /// A compact label, e.g. `ts1 k3 s1` or `ts2 k2 s2 T`.
    pub fn label(&self) -> String {
        let f = |v: &[usize; 3]| if v[0] == v[1] && v[1] == v[2] { v[0].to_string() } else { format!("{v:?}") };
        let ts = self.tensor_stride;
        let ts = if ts[0] == ts[1] && ts[1] == ts[2] { ts[0].to_string() } else { format!("{ts:?}") };
        format!("ts{ts} k{} s{}{}", f(&self.kernel), f(&self.stride), if self.transposed { " T" } else { "" })
    }
}

/// A coordinate set at one tensor stride.
#[derive(Debug, Clone)]
pub struct CoordSet {
    pub coords: Arc<Vec<[i32; 4]>>,
    /// Spatial extent per axis: coordinates lie in `[0, range)`.
    pub range: [i32; 3],
}

/// Coordinate sets by stride and kernel maps by key, shared along a network (one per input).
#[derive(Debug, Default)]
pub struct Cache {
    cmaps: Mutex<HashMap<[i32; 3], CoordSet>>,
    kmaps: Mutex<HashMap<KmapKey, Arc<KernelMap>>>,
}

impl Cache {
    /// The coordinate set at `stride`, if one was made.
    pub fn coords(&self, stride: [i32; 3]) -> Option<CoordSet> {
        self.cmaps.lock().unwrap_or_else(|p| p.into_inner()).get(&stride).cloned()
    }
    fn put_coords(&self, stride: [i32; 3], set: CoordSet) {
        self.cmaps.lock().unwrap_or_else(|p| p.into_inner()).entry(stride).or_insert(set);
    }
    /// The kernel map under `key`, if built.
    pub fn kmap(&self, key: &KmapKey) -> Option<Arc<KernelMap>> {
        self.kmaps.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }
    fn put_kmap(&self, key: KmapKey, map: Arc<KernelMap>) -> Arc<KernelMap> {
        self.kmaps.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(map).clone()
    }
    /// Every kernel map built so far (autotuner grouping, statistics).
    pub fn kmaps(&self) -> Vec<(KmapKey, Arc<KernelMap>)> {
        let m = self.kmaps.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = m.iter().map(|(k, v)| (*k, v.clone())).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }
}

/// Sparse features on integer coordinates; the features live on the tensor's device.
#[derive(Debug, Clone)]
pub struct SparseTensor {
    pub coords: Arc<Vec<[i32; 4]>>,
    /// `[N, channels]` on `device`.
    pub feats: Tensor,
    /// Tensor stride relative to the voxel grid.
    pub stride: [i32; 3],
    /// Spatial extent per axis at this stride.
    pub range: [i32; 3],
    pub cache: Arc<Cache>,
    pub device: Device,
}

/// Where a conv's outputs live and which map feeds them.
pub struct ConvPlan {
    pub key: KmapKey,
    pub map: Arc<KernelMap>,
    pub out: CoordSet,
    pub out_stride: [i32; 3],
}

impl SparseTensor {
    /// A tensor at stride 1 with a fresh cache. `range` must cover every coordinate; `feats`
    /// must have one row per coordinate and live on `device`.
    pub fn new(device: &Device, coords: Vec<[i32; 4]>, feats: Tensor, range: [i32; 3]) -> Result<Self> {
        if feats.rows() != coords.len() {
            return Err(Error::device(
                device.name(),
                format!("a sparse tensor of {} coordinates with {} feature rows", coords.len(), feats.rows()),
            ));
        }
        let coords = Arc::new(coords);
        let cache = Arc::new(Cache::default());
        cache.put_coords([1, 1, 1], CoordSet { coords: coords.clone(), range });
        Ok(SparseTensor { coords, feats, stride: [1, 1, 1], range, cache, device: device.clone() })
    }

    /// [`SparseTensor::new`] from host features `[N × channels]`, copied onto `device`.
    pub fn from_host(
        device: &Device,
        coords: Vec<[i32; 4]>,
        feats: &[f32],
        channels: usize,
        range: [i32; 3],
    ) -> Result<Self> {
        let feats = device.backend().upload(feats, coords.len(), channels)?;
        SparseTensor::new(device, coords, feats, range)
    }

    /// [`SparseTensor::from_host`] of features the caller gives up (the CPU keeps them
    /// without a copy).
    pub fn from_host_vec(
        device: &Device,
        coords: Vec<[i32; 4]>,
        feats: Vec<f32>,
        channels: usize,
        range: [i32; 3],
    ) -> Result<Self> {
        let feats = device.backend().upload_vec(feats, coords.len(), channels)?;
        SparseTensor::new(device, coords, feats, range)
    }

    pub fn len(&self) -> usize {
        self.coords.len()
    }
    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }
    /// Feature channels.
    pub fn channels(&self) -> usize {
        self.feats.cols()
    }
    /// The features copied to the host, `[N × channels]`.
    pub fn feats_to_host(&self) -> Result<Vec<f32>> {
        self.device.backend().download(&self.feats)
    }

    /// The same coordinates with other features (one row per coordinate).
    pub fn with_feats(&self, feats: Tensor) -> Result<Self> {
        if feats.rows() != self.len() {
            return Err(Error::device(
                self.device.name(),
                format!("{} feature rows for {} coordinates", feats.rows(), self.len()),
            ));
        }
        Ok(SparseTensor {
            coords: self.coords.clone(),
            feats,
            stride: self.stride,
            range: self.range,
            cache: self.cache.clone(),
            device: self.device.clone(),
        })
    }

    /// The kernel map and output coordinates of a conv on this tensor, from the cache or
    /// built now by the device. Transposed non-generative convs reuse (and transpose) the
    /// map of the downsampling conv that produced this stride; generative ones build a fresh
    /// map.
    pub fn plan(&self, geom: &ConvGeom, transposed: bool, generative: bool) -> Result<ConvPlan> {
        let backend = self.device.backend();
        if transposed {
            let fine: [i32; 3] = std::array::from_fn(|a| (self.stride[a] / geom.stride[a].max(1) as i32).max(1));
            let key = KmapKey {
                tensor_stride: fine,
                kernel: geom.kernel,
                stride: geom.stride,
                dilation: geom.dilation,
                transposed: true,
            };
            if !generative && let Some(out) = self.cache.coords(fine) {
                let map = match self.cache.kmap(&key) {
                    Some(m) => m,
                    None => {
                        let down_key = KmapKey { transposed: false, ..key };
                        let down = match self.cache.kmap(&down_key) {
                            Some(m) => m,
                            None => {
                                let built = backend.kernel_map(&out.coords, out.range, geom, MapKind::Strided)?;
                                self.cache.put_kmap(down_key, Arc::new(built.map))
                            }
                        };
                        self.cache.put_kmap(key, Arc::new(backend.transpose_map(&down)?))
                    }
                };
                return Ok(ConvPlan { key, map, out, out_stride: fine });
            }
            let built = backend.kernel_map(&self.coords, self.range, geom, MapKind::Generative)?;
            let (coords, range) = self.output_coords(built.coords)?;
            let out = CoordSet { coords: Arc::new(coords), range };
            return Ok(ConvPlan { key, map: Arc::new(built.map), out, out_stride: fine });
        }
        let key = KmapKey {
            tensor_stride: self.stride,
            kernel: geom.kernel,
            stride: geom.stride,
            dilation: geom.dilation,
            transposed: false,
        };
        let out_stride: [i32; 3] = std::array::from_fn(|a| self.stride[a] * geom.stride[a] as i32);
        if geom.is_submanifold() {
            let map = match self.cache.kmap(&key) {
                Some(m) => m,
                None => {
                    let built = backend.kernel_map(&self.coords, self.range, geom, MapKind::Submanifold)?;
                    self.cache.put_kmap(key, Arc::new(built.map))
                }
            };
            let out = CoordSet { coords: self.coords.clone(), range: self.range };
            return Ok(ConvPlan { key, map, out, out_stride });
        }
        if let (Some(map), Some(out)) = (self.cache.kmap(&key), self.cache.coords(out_stride)) {
            return Ok(ConvPlan { key, map, out, out_stride });
        }
        let built = backend.kernel_map(&self.coords, self.range, geom, MapKind::Strided)?;
        let (coords, range) = self.output_coords(built.coords)?;
        // The map indexes these coordinates; the cache keeps the first set made at a
        // stride (the one transposed convs return to).
        let out = CoordSet { coords: Arc::new(coords), range };
        self.cache.put_coords(out_stride, out.clone());
        let map = self.cache.put_kmap(key, Arc::new(built.map));
        Ok(ConvPlan { key, map, out, out_stride })
    }

    /// The output coordinates a backend must return with a strided or generative map.
    fn output_coords(&self, coords: Option<(Vec<[i32; 4]>, [i32; 3])>) -> Result<(Vec<[i32; 4]>, [i32; 3])> {
        coords.ok_or_else(|| Error::device(self.device.name(), "a strided kernel map without its output coordinates"))
    }

    /// A tensor on a plan's output coordinates.
    pub fn on_plan(&self, plan: &ConvPlan, feats: Tensor) -> Result<Self> {
        if feats.rows() != plan.out.coords.len() {
            return Err(Error::device(
                self.device.name(),
                format!("{} feature rows for a conv's {} outputs", feats.rows(), plan.out.coords.len()),
            ));
        }
        Ok(SparseTensor {
            coords: plan.out.coords.clone(),
            feats,
            stride: plan.out_stride,
            range: plan.out.range,
            cache: self.cache.clone(),
            device: self.device.clone(),
        })
    }

    /// A copy at stride 1 with an empty cache (every kernel map built anew, as in a fresh
    /// run: the autotuner and benchmarks time it).
    pub fn fresh(&self) -> Result<Self> {
        SparseTensor::new(&self.device, self.coords.to_vec(), self.feats.clone(), self.range)
    }
}
