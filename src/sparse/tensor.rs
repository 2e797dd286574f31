//! The sparse tensor: coordinates `[N,4] = (b,x,y,z)`, features `[N,C]`, its stride, and the
//! cache of coordinate sets and kernel maps shared by every tensor derived from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::kmap::{self, ConvGeom, KernelMap};

/// Kernel-map cache key (§A.4: also the autotuner's layer-group key): the input tensor
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

/// Sparse features on integer coordinates.
#[derive(Debug, Clone)]
pub struct SparseTensor {
    pub coords: Arc<Vec<[i32; 4]>>,
    /// Row-major `[N, channels]`.
    pub feats: Vec<f32>,
    pub channels: usize,
    /// Tensor stride relative to the voxel grid.
    pub stride: [i32; 3],
    /// Spatial extent per axis at this stride.
    pub range: [i32; 3],
    pub cache: Arc<Cache>,
}

/// Where a conv's outputs live and which map feeds them.
pub struct ConvPlan {
    pub key: KmapKey,
    pub map: Arc<KernelMap>,
    pub out: CoordSet,
    pub out_stride: [i32; 3],
}

impl SparseTensor {
    /// A tensor at stride 1 with a fresh cache. `range` must cover every coordinate.
    pub fn new(coords: Vec<[i32; 4]>, feats: Vec<f32>, channels: usize, range: [i32; 3]) -> Self {
        assert_eq!(feats.len(), coords.len() * channels, "feats must be [N, C]");
        let coords = Arc::new(coords);
        let cache = Arc::new(Cache::default());
        cache.put_coords([1, 1, 1], CoordSet { coords: coords.clone(), range });
        SparseTensor { coords, feats, channels, stride: [1, 1, 1], range, cache }
    }

    pub fn len(&self) -> usize {
        self.coords.len()
    }
    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }

    /// The same coordinates with other features.
    pub fn with_feats(&self, feats: Vec<f32>, channels: usize) -> Self {
        assert_eq!(feats.len(), self.len() * channels, "feats must be [N, C]");
        SparseTensor { feats, channels, ..self.clone_meta() }
    }

    fn clone_meta(&self) -> Self {
        SparseTensor {
            coords: self.coords.clone(),
            feats: Vec::new(),
            channels: 0,
            stride: self.stride,
            range: self.range,
            cache: self.cache.clone(),
        }
    }

    /// The kernel map and output coordinates of a conv on this tensor, from the cache or
    /// built now. Transposed non-generative convs reuse (and transpose) the map of the
    /// downsampling conv that produced this stride; generative ones build a fresh map.
    pub fn plan(&self, geom: &ConvGeom, transposed: bool, generative: bool) -> ConvPlan {
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
                        let down = self.cache.kmap(&down_key).unwrap_or_else(|| {
                            let (_, _, m) = kmap::strided(&out.coords, out.range, geom);
                            self.cache.put_kmap(down_key, Arc::new(m))
                        });
                        self.cache.put_kmap(key, Arc::new(down.transposed()))
                    }
                };
                return ConvPlan { key, map, out, out_stride: fine };
            }
            let (coords, range, map) = kmap::generative(&self.coords, self.range, geom);
            let out = CoordSet { coords: Arc::new(coords), range };
            return ConvPlan { key, map: Arc::new(map), out, out_stride: fine };
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
            let map = self.cache.kmap(&key).unwrap_or_else(|| {
                self.cache.put_kmap(key, Arc::new(kmap::submanifold(&self.coords, self.range, geom)))
            });
            let out = CoordSet { coords: self.coords.clone(), range: self.range };
            return ConvPlan { key, map, out, out_stride };
        }
        if let (Some(map), Some(out)) = (self.cache.kmap(&key), self.cache.coords(out_stride)) {
            return ConvPlan { key, map, out, out_stride };
        }
        let (coords, range, map) = kmap::strided(&self.coords, self.range, geom);
        // The map indexes these coordinates; the cache keeps the first set made at a
        // stride (the one transposed convs return to).
        let out = CoordSet { coords: Arc::new(coords), range };
        self.cache.put_coords(out_stride, out.clone());
        let map = self.cache.put_kmap(key, Arc::new(map));
        ConvPlan { key, map, out, out_stride }
    }

    /// A tensor on a plan's output coordinates.
    pub fn on_plan(&self, plan: &ConvPlan, feats: Vec<f32>, channels: usize) -> Self {
        assert_eq!(feats.len(), plan.out.coords.len() * channels);
        SparseTensor {
            coords: plan.out.coords.clone(),
            feats,
            channels,
            stride: plan.out_stride,
            range: plan.out.range,
            cache: self.cache.clone(),
        }
    }
}
