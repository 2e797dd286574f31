//! Range image ⇄ point cloud, exactly as docs/geometry.md#range-image--points (upstream
//! `range_image_utils.py` / `lidar_utils.py`), computed in f64.
//!
//! Speed: the spherical directions are separable (row → inclination, column → azimuth), so
//! their cos/sin are computed once per row and once per column; a pixel then costs a few
//! multiply-adds (plus one cached affine map when a per-pixel pose is given). Large images are
//! converted by the rayon pool in chunks of rows, each read from memory once and written
//! straight into its row-major place (a chained scan, see `chunk_chain`), so the output is
//! row-major exactly like upstream's `tf.where`. The conversion is bound by memory traffic:
//! 16 bytes read a pixel (24 more for a pixel pose), 32 written a point.

use std::f64::consts::PI;

use nalgebra::{Matrix3, Vector3};
use rayon::prelude::*;

use super::chunk_chain::ChunkChain;
use super::error::GeomError;
use super::pose::{normalize_angle, rotation_from_rpy, rotation_of};
use crate::scene::{LaserFrame, LidarCalibration, RangeImage, Transform};

/// Channel of the range in a LiDAR range image.
pub const RANGE: usize = 0;
/// Channel of the intensity in a LiDAR range image.
pub const INTENSITY: usize = 1;
/// Channel of the elongation in a LiDAR range image.
pub const ELONGATION: usize = 2;
/// Channel of the "in a no-label zone" flag in a LiDAR range image.
pub const NO_LABEL_ZONE: usize = 3;

/// Images with at least this many pixels are converted on the rayon pool; below it the
/// fork/join overhead is larger than the work.
const PARALLEL_MIN_PIXELS: usize = 16 * 1024;

/// Rows and columns a point's 16-bit source pixel can name.
const PIXEL_INDEX_LIMIT: usize = 1 << 16;

/// Pixels per chunk of rows: a chunk's range (and pose) values stay in the core's cache
/// between its scan and its writes (see [`ChunkChain`]).
const CHUNK_PIXELS: usize = 4096;

/// Points of one range image, in the order of their source pixels (row-major).
///
/// Coordinates are stored as f32 (the precision of the range image itself and of
/// upstream's TF code) but computed in f64. `pixels` and `features` let callers gather any
/// other per-pixel data with the same mask (see [`gather_pixels`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PointCloud {
    /// x, y, z in metres, in the frame's vehicle coordinates.
    pub xyz: Vec<[f32; 3]>,
    /// Source pixel `[h, w]` of each point (16 bits each: Waymo's largest image is 64×2650,
    /// and every byte written per point is conversion time).
    pub pixels: Vec<[u16; 2]>,
    /// The source image's channels per point, flat `[N, channels]`: for LiDAR range images
    /// range, intensity, elongation, no-label-zone (see [`RANGE`] and friends).
    pub features: Vec<f32>,
    /// Channels per point in `features` (the source image's C).
    pub channels: usize,
    /// Height and width of the source range image.
    pub source_height: usize,
    pub source_width: usize,
}

impl PointCloud {
    pub fn len(&self) -> usize {
        self.xyz.len()
    }
    pub fn is_empty(&self) -> bool {
        self.xyz.is_empty()
    }
    /// Point `i` as an f64 vector.
    pub fn point(&self, i: usize) -> Vector3<f64> {
        let [x, y, z] = self.xyz[i];
        Vector3::new(x as f64, y as f64, z as f64)
    }
    /// All points as f64 vectors (e.g. for [`points_to_range_image`]).
    pub fn points(&self) -> Vec<Vector3<f64>> {
        (0..self.len()).map(|i| self.point(i)).collect()
    }
    /// The source-image channels of point `i`.
    pub fn feature(&self, i: usize) -> &[f32] {
        &self.features[i * self.channels..(i + 1) * self.channels]
    }
    /// The range of point `i` (channel 0).
    pub fn range(&self, i: usize) -> f32 {
        self.features[i * self.channels + RANGE]
    }
}

/// Beam inclination (radians) of each range-image row; row 0 is the highest beam.
///
/// Explicit calibration values (ascending, one per row) are reversed; without them (or
/// with an empty list) rows are spaced uniformly: `min + (i + 0.5)/H · (max - min)`,
/// reversed.
pub fn inclinations(calib: &LidarCalibration, height: usize) -> Result<Vec<f64>, GeomError> {
    let bi = &calib.beam_inclination;
    match bi.values.as_deref() {
        Some(v) if !v.is_empty() => {
            if v.len() != height {
                return Err(GeomError::InclinationCount { expected: height, found: v.len() });
            }
            Ok(v.iter().rev().copied().collect())
        }
        _ => {
            let step = (bi.max - bi.min) / height as f64;
            Ok((0..height).rev().map(|i| bi.min + (i as f64 + 0.5) * step).collect())
        }
    }
}

/// The yaw of the LiDAR in the vehicle frame, which upstream subtracts from the azimuths.
fn azimuth_correction(extrinsic: &Transform) -> f64 {
    extrinsic.yaw()
}

/// Azimuth (radians, sensor frame) of each range-image column:
/// `π·(1 - (2w+1)/W) - atan2(E₁₀, E₀₀)`.
pub fn azimuths(extrinsic: &Transform, width: usize) -> Vec<f64> {
    let corr = azimuth_correction(extrinsic);
    let w_f = width as f64;
    (0..width).map(|w| PI * (1.0 - (2.0 * w as f64 + 1.0) / w_f) - corr).collect()
}

/// A 3×3 matrix and a translation as plain arrays: the hot loop avoids generic code, which
/// the dev profile (opt-level 1) does not fully inline.
#[derive(Clone, Copy)]
struct Affine {
    m: [[f64; 3]; 3],
    t: [f64; 3],
}

impl Affine {
    fn new(m: &Matrix3<f64>, t: &Vector3<f64>) -> Self {
        Affine {
            m: [
                [m[(0, 0)], m[(0, 1)], m[(0, 2)]],
                [m[(1, 0)], m[(1, 1)], m[(1, 2)]],
                [m[(2, 0)], m[(2, 1)], m[(2, 2)]],
            ],
            t: [t.x, t.y, t.z],
        }
    }

    #[inline(always)]
    fn rotate(&self, p: [f64; 3]) -> [f64; 3] {
        let m = &self.m;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2] * p[2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2] * p[2],
            m[2][0] * p[0] + m[2][1] * p[1] + m[2][2] * p[2],
        ]
    }

    #[inline(always)]
    fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let m = &self.m;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2] * p[2] + self.t[0],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2] * p[2] + self.t[1],
            m[2][0] * p[0] + m[2][1] * p[1] + m[2][2] * p[2] + self.t[2],
        ]
    }
}

/// Per-pixel ego-motion compensation: pixel vehicle → world → frame vehicle, folded into
/// one affine map per distinct pixel pose.
struct PixelPoses<'a> {
    image: &'a RangeImage<f32>,
    /// World → frame vehicle.
    world_to_frame: (Matrix3<f64>, Vector3<f64>),
    /// Per column: the pose of row 0 and its folded map. Waymo's TOP poses vary per column
    /// (one timestamp per azimuth), so this cache almost always hits; a pixel whose pose
    /// differs is computed on the spot, so results never depend on the cache.
    column_keys: Vec<PoseKey>,
    column_maps: Vec<Affine>,
}

impl<'a> PixelPoses<'a> {
    fn new(image: &'a RangeImage<f32>, frame_pose: &Transform) -> Self {
        let inv = frame_pose.inverse_rigid();
        let mut poses = PixelPoses {
            image,
            world_to_frame: (rotation_of(&inv), inv.translation()),
            column_keys: Vec::new(),
            column_maps: Vec::new(),
        };
        if image.height > 0 {
            poses.column_keys = per_column(image, |w| PoseKey::of(image.pixel(0, w)));
            poses.column_maps = per_column(image, |w| poses.fold(&poses.column_keys[w]));
        }
        poses
    }

    /// `world_to_frame ∘ pixel_pose` for one `[roll, pitch, yaw, x, y, z]`.
    fn fold(&self, key: &PoseKey) -> Affine {
        let px = key.0.map(f32::from_bits);
        let r = rotation_from_rpy(px[0] as f64, px[1] as f64, px[2] as f64);
        let t = Vector3::new(px[3] as f64, px[4] as f64, px[5] as f64);
        let (fr, ft) = &self.world_to_frame;
        Affine::new(&(fr * r), &(fr * t + ft))
    }
}

/// A pixel pose's six values by their bits: comparing bits is exact (a NaN matches the
/// cached NaN, -0 falls back to its own fold, both giving what the pose's own fold gives)
/// and cheaper than six float comparisons.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PoseKey([u32; 6]);

impl PoseKey {
    #[inline(always)]
    fn of(px: &[f32]) -> Self {
        PoseKey([px[0], px[1], px[2], px[3], px[4], px[5]].map(f32::to_bits))
    }
}

/// Everything needed to turn (h, w, range) into a vehicle-frame point, precomputed once.
///
/// The unit direction of pixel (h, w) in the vehicle frame is
/// `R·(cos i·cos a, cos i·sin a, sin i) = cos i·(cos a·R₀ + sin a·R₁) + sin i·R₂`
/// (Rₖ = columns of the extrinsic rotation). A column's pixel pose `(M, t)` is affine, so it
/// folds into the column's terms too: `M·(r·d + T) + t = r·(cos i·A + sin i·B) + T'` with
/// `A = M·(cos a·R₀ + sin a·R₁)`, `B = M·R₂`, `T' = M·T + t`, and a pixel costs 9 multiply-adds
/// whether or not it has a pose.
struct Kernel<'a> {
    /// Per row: (cos i, sin i).
    rows: Vec<(f64, f64)>,
    /// Per column: A, B and T' above (the pose of the column's row 0 folded in).
    cols: Vec<ColumnTerms>,
    /// The unfolded terms, for pixels whose pose differs from their column's row 0.
    extrinsic: ColumnFree,
    pose: Option<PixelPoses<'a>>,
}

#[derive(Clone, Copy)]
struct ColumnTerms {
    a: [f64; 3],
    b: [f64; 3],
    t: [f64; 3],
}

/// The extrinsic's part of the column terms: `cos a·R₀ + sin a·R₁` per column, `R₂`, `T`.
struct ColumnFree {
    horizontal: Vec<[f64; 3]>,
    r2: [f64; 3],
    t: [f64; 3],
}

impl ColumnFree {
    fn terms(&self, w: usize, pose: Option<&Affine>) -> ColumnTerms {
        let a = self.horizontal[w];
        match pose {
            None => ColumnTerms { a, b: self.r2, t: self.t },
            Some(m) => ColumnTerms { a: m.rotate(a), b: m.rotate(self.r2), t: m.apply(self.t) },
        }
    }
}

impl<'a> Kernel<'a> {
    fn new(
        ri: &RangeImage<f32>,
        calib: &LidarCalibration,
        pixel_pose: Option<&'a RangeImage<f32>>,
        frame_pose: Option<&Transform>,
    ) -> Result<Self, GeomError> {
        let [height, width, channels] = ri.shape();
        if channels < 1 {
            return Err(GeomError::NoChannels);
        }
        if height > PIXEL_INDEX_LIMIT || width > PIXEL_INDEX_LIMIT {
            return Err(GeomError::TooLarge { height, width });
        }
        check_value_count("range image", ri)?;
        if let Some(p) = pixel_pose {
            check_value_count("pixel pose", p)?;
        }
        if let Some(p) = pixel_pose
            && (p.height != height || p.width != width || p.channels != 6)
        {
            return Err(GeomError::PixelPoseShape { expected: [height, width], found: p.shape() });
        }
        let rot = rotation_of(&calib.extrinsic);
        let col = |k: usize| [rot[(0, k)], rot[(1, k)], rot[(2, k)]];
        let (r0, r1, r2) = (col(0), col(1), col(2));
        let rows = inclinations(calib, height)?.into_iter().map(|i| (i.cos(), i.sin())).collect();
        let horizontal = azimuths(&calib.extrinsic, width)
            .into_iter()
            .map(|a| {
                let (sa, ca) = a.sin_cos();
                [0, 1, 2].map(|k| ca * r0[k] + sa * r1[k])
            })
            .collect();
        let t = calib.extrinsic.translation();
        let extrinsic = ColumnFree { horizontal, r2, t: [t.x, t.y, t.z] };
        // Upstream applies per-pixel poses only when both are given (v2 lidar_utils).
        let pose = match (pixel_pose, frame_pose) {
            (Some(p), Some(v)) => Some(PixelPoses::new(p, v)),
            _ => None,
        };
        let cols = per_column(ri, |w| extrinsic.terms(w, pose.as_ref().map(|p| &p.column_maps[w])));
        Ok(Kernel { rows, cols, extrinsic, pose })
    }

    /// The terms of pixel (h, w) when its own pose differs from its column's (rare: Waymo's
    /// TOP poses vary per column); `None` when the column's terms apply.
    #[inline(always)]
    fn own_terms(&self, h: usize, w: usize) -> Option<ColumnTerms> {
        let poses = self.pose.as_ref()?;
        let key = PoseKey::of(poses.image.pixel(h, w));
        (key != poses.column_keys[w]).then(|| self.extrinsic.terms(w, Some(&poses.fold(&key))))
    }

    #[inline(always)]
    fn point(&self, h: usize, w: usize, r: f64) -> [f64; 3] {
        let (ci, si) = self.rows[h];
        // By reference: copying the terms to the stack made every pixel wait on a
        // store-to-load forward (a quarter of the conversion's time).
        match self.own_terms(h, w) {
            None => at_range(&self.cols[w], ci, si, r),
            Some(t) => at_range(&t, ci, si, r),
        }
    }

    /// Converts chunks claimed from `chain` until none is left (one worker's share).
    fn convert_chunks(&self, ri: &RangeImage<f32>, chain: &ChunkChain, rows_per_chunk: usize, out: &PointSink) {
        // Waymo's lidars have 4 channels; a fixed count turns the feature copy into plain moves.
        match ri.channels {
            4 => self.convert_chunks_with::<4>(ri, chain, rows_per_chunk, out),
            _ => self.convert_chunks_with::<0>(ri, chain, rows_per_chunk, out),
        }
    }

    /// [`Kernel::convert_chunks`] for `C` channels (0: any count, read from the image).
    #[inline(always)]
    fn convert_chunks_with<const C: usize>(
        &self,
        ri: &RangeImage<f32>,
        chain: &ChunkChain,
        rows_per_chunk: usize,
        out: &PointSink,
    ) {
        let (height, width) = (ri.height, ri.width);
        let c = if C == 0 { ri.channels } else { C };
        // The chunk's valid columns, row after row (one spare slot: written before the test).
        let mut valid = vec![0u32; rows_per_chunk * width + 1];
        let mut row_ends = Vec::with_capacity(rows_per_chunk);
        while let Some(k) = chain.claim() {
            let rows = k * rows_per_chunk..((k + 1) * rows_per_chunk).min(height);
            let chunk = &ri.values[rows.start * width * c..rows.end * width * c];
            // 1. Scan: branch-free compaction of the valid columns.
            row_ends.clear();
            let mut n = 0;
            for row in chunk.chunks_exact(width * c) {
                for (w, px) in row.chunks_exact(c).enumerate() {
                    valid[n] = w as u32;
                    n += is_valid_range(px[RANGE]) as usize;
                }
                row_ends.push(n);
            }
            // 2. The chunk's place in the output, after every earlier chunk's points (published
            //    before any write, so later chunks never wait on this one's writing).
            let mut at = chain.place(k, n);
            // 3. Write, from cache.
            let mut from = 0;
            for (h, &to) in rows.zip(&row_ends) {
                let row = &chunk[(h - k * rows_per_chunk) * width * c..][..width * c];
                for &w in &valid[from..to] {
                    let w = w as usize;
                    let px = &row[w * c..(w + 1) * c];
                    let p = self.point(h, w, px[RANGE] as f64);
                    // SAFETY: `at` runs over this chunk's own slots, [start, start + n), which
                    // the chain gives to no other chunk; n ≤ the chunk's pixels, so in bounds.
                    unsafe { out.write(at, [p[0] as f32, p[1] as f32, p[2] as f32], [h as u16, w as u16], px) };
                    at += 1;
                }
                from = to;
            }
        }
    }
}

/// The output cloud's storage while workers fill it: each writes only its own chunk's slots.
struct PointSink {
    xyz: *mut [f32; 3],
    pixels: *mut [u16; 2],
    features: *mut f32,
    capacity: usize,
    channels: usize,
}

// SAFETY: workers write disjoint slots (see `write`); the cloud is not read until all are done.
unsafe impl Send for PointSink {}
unsafe impl Sync for PointSink {}

impl PointSink {
    /// Empties `cloud` and makes room for `capacity` points of `channels` features.
    fn new(cloud: &mut PointCloud, capacity: usize, channels: usize) -> Self {
        cloud.xyz.clear();
        cloud.pixels.clear();
        cloud.features.clear();
        cloud.xyz.reserve(capacity);
        cloud.pixels.reserve(capacity);
        cloud.features.reserve(capacity * channels);
        PointSink {
            xyz: cloud.xyz.as_mut_ptr(),
            pixels: cloud.pixels.as_mut_ptr(),
            features: cloud.features.as_mut_ptr(),
            capacity,
            channels,
        }
    }

    /// Writes point `i`.
    ///
    /// # Safety
    /// No other thread may write point `i`.
    #[inline(always)]
    unsafe fn write(&self, i: usize, xyz: [f32; 3], pixel: [u16; 2], features: &[f32]) {
        assert!(i < self.capacity && features.len() == self.channels);
        // SAFETY: in bounds of the reserved capacity (checked above); exclusive per the contract.
        unsafe {
            self.xyz.add(i).write(xyz);
            self.pixels.add(i).write(pixel);
            std::ptr::copy_nonoverlapping(features.as_ptr(), self.features.add(i * self.channels), self.channels);
        }
    }

    /// Sets the cloud's length to the `total` points written.
    ///
    /// # Safety
    /// Points `0..total` must all have been written.
    unsafe fn finish(self, cloud: &mut PointCloud, total: usize) {
        assert!(total <= self.capacity);
        // SAFETY: within the reserved capacity, all initialised per the caller's contract.
        unsafe {
            cloud.xyz.set_len(total);
            cloud.pixels.set_len(total);
            cloud.features.set_len(total * self.channels);
        }
    }
}

/// `f` of every column of `image`, on the pool for large images: a wide image's set-up (a
/// pose fold, a few sin/cos per column) is otherwise a tenth of its conversion, on one core.
fn per_column<T: Send, I>(image: &RangeImage<I>, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if image.height * image.width >= PARALLEL_MIN_PIXELS {
        (0..image.width).into_par_iter().map(f).collect()
    } else {
        (0..image.width).map(f).collect()
    }
}

/// `r·(cos i·A + sin i·B) + T'` (see [`Kernel`]). Written out: `array::map` with a closure is
/// not reliably inlined in the hot loop.
#[inline(always)]
fn at_range(c: &ColumnTerms, ci: f64, si: f64, r: f64) -> [f64; 3] {
    [
        r * (ci * c.a[0] + si * c.b[0]) + c.t[0],
        r * (ci * c.a[1] + si * c.b[1]) + c.t[1],
        r * (ci * c.a[2] + si * c.b[2]) + c.t[2],
    ]
}

/// Rejects images whose value count does not match their shape, before any indexing.
fn check_value_count<T>(what: &'static str, image: &RangeImage<T>) -> Result<(), GeomError> {
    let expected = image.height.checked_mul(image.width).and_then(|n| n.checked_mul(image.channels));
    if expected == Some(image.values.len()) {
        Ok(())
    } else {
        Err(GeomError::ValueCount {
            what,
            shape: [image.height, image.width, image.channels],
            found: image.values.len(),
        })
    }
}

/// A range that makes a point: `> 0` and finite (NaN fails both comparisons).
#[inline(always)]
fn is_valid_range(r: f32) -> bool {
    (r > 0.0) & (r < f32::INFINITY)
}

/// Converts a range image (`[H, W, C]`, channel 0 = range) to the points of its pixels with
/// range > 0, in row-major pixel order, in the frame's vehicle coordinates.
///
/// With both `pixel_pose` (`[H, W, 6]` roll, pitch, yaw, x, y, z: the pixel's vehicle →
/// world pose, TOP only) and `frame_pose` (the frame's vehicle → world), each point is
/// ego-motion compensated: pixel vehicle → world → frame vehicle. With only one of them no
/// compensation is done (upstream's rule). Non-finite ranges are skipped.
pub fn range_image_to_points(
    ri: &RangeImage<f32>,
    calib: &LidarCalibration,
    pixel_pose: Option<&RangeImage<f32>>,
    frame_pose: Option<&Transform>,
) -> Result<PointCloud, GeomError> {
    let mut out = PointCloud::default();
    range_image_to_points_into(ri, calib, pixel_pose, frame_pose, &mut out)?;
    Ok(out)
}

/// [`range_image_to_points`] into an existing cloud, reusing its buffers: a stream of frames
/// converted into the same clouds touches no fresh memory after the first frame (fresh pages
/// cost a kernel fault each, which is a large share of the conversion on a VM).
pub fn range_image_to_points_into(
    ri: &RangeImage<f32>,
    calib: &LidarCalibration,
    pixel_pose: Option<&RangeImage<f32>>,
    frame_pose: Option<&Transform>,
    out: &mut PointCloud,
) -> Result<(), GeomError> {
    let kernel = Kernel::new(ri, calib, pixel_pose, frame_pose)?;
    let (h, w, c) = (ri.height, ri.width, ri.channels);
    let rows_per_chunk = CHUNK_PIXELS.div_ceil(w.max(1)).clamp(1, h.max(1));
    // A zero-width image has no pixels (and rows of zero values cannot be cut into chunks).
    let chain = ChunkChain::new(if w == 0 { 0 } else { h.div_ceil(rows_per_chunk) });
    let sink = PointSink::new(out, h * w, c);
    let workers = if h * w >= PARALLEL_MIN_PIXELS { rayon::current_num_threads().min(chain.chunks()) } else { 1 };
    if workers > 1 {
        (0..workers).into_par_iter().for_each(|_| kernel.convert_chunks(ri, &chain, rows_per_chunk, &sink));
    } else {
        kernel.convert_chunks(ri, &chain, rows_per_chunk, &sink);
    }
    // Every chunk was claimed, placed and written by a worker that has returned.
    let total = chain.total().unwrap_or(0);
    // SAFETY: the chain's offsets tile [0, total) with the chunks' points, all written above.
    unsafe { sink.finish(out, total) };
    (out.channels, out.source_height, out.source_width) = (c, h, w);
    Ok(())
}

/// The `[H, W, 3]` Cartesian image of every pixel (no range mask), upstream's
/// `compute_range_image_cartesian` / `convert_range_image_to_cartesian`. Same pose rules as
/// [`range_image_to_points`].
pub fn range_image_to_cartesian(
    ri: &RangeImage<f32>,
    calib: &LidarCalibration,
    pixel_pose: Option<&RangeImage<f32>>,
    frame_pose: Option<&Transform>,
) -> Result<RangeImage<f32>, GeomError> {
    let kernel = Kernel::new(ri, calib, pixel_pose, frame_pose)?;
    let mut out = RangeImage::<f32>::zeros(ri.height, ri.width, 3);
    let fill_row = |(h, row): (usize, &mut [f32])| {
        for (w, xyz) in row.chunks_exact_mut(3).enumerate() {
            let p = kernel.point(h, w, ri.get(h, w, RANGE) as f64);
            xyz.copy_from_slice(&p.map(|v| v as f32));
        }
    };
    let row_len = (ri.width * 3).max(1);
    if ri.height * ri.width < PARALLEL_MIN_PIXELS {
        out.values.chunks_mut(row_len).enumerate().for_each(fill_row);
    } else {
        out.values.par_chunks_mut(row_len).enumerate().for_each(fill_row);
    }
    Ok(out)
}

/// Gathers the pixels of `image` at the point cloud's source pixels, flat `[N, C]` in point
/// order: the point-wise camera projection (`extract_pointwise_camera_projection`), the
/// point-wise segmentation, or any other per-pixel data of the same range image.
pub fn gather_pixels<T: Copy + Default>(image: &RangeImage<T>, cloud: &PointCloud) -> Result<Vec<T>, GeomError> {
    check_value_count("gathered image", image)?;
    if image.height != cloud.source_height || image.width != cloud.source_width {
        return Err(GeomError::GatherShape {
            expected: [cloud.source_height, cloud.source_width],
            found: image.shape(),
        });
    }
    let mut out = Vec::with_capacity(cloud.len() * image.channels);
    for &[h, w] in &cloud.pixels {
        out.extend_from_slice(image.pixel(h as usize, w as usize));
    }
    Ok(out)
}

/// The points of both returns of one laser.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaserPoints {
    pub return1: Option<PointCloud>,
    pub return2: Option<PointCloud>,
}

/// Converts both returns of a laser. Return 2 uses the return-1 pixel pose (Waymo stores
/// only one); the pose is applied only when the laser has one and `frame_pose` is given.
pub fn laser_frame_to_points(laser: &LaserFrame, frame_pose: Option<&Transform>) -> Result<LaserPoints, GeomError> {
    if laser.return1.is_none() && laser.return2.is_none() {
        return Ok(LaserPoints::default());
    }
    let calib = laser
        .calibration
        .as_ref()
        .ok_or_else(|| GeomError::MissingCalibration { laser: laser.laser.name().to_string() })?;
    let convert = |ri: &Option<RangeImage<f32>>| {
        ri.as_ref().map(|ri| range_image_to_points(ri, calib, laser.pose.as_ref(), frame_pose)).transpose()
    };
    Ok(LaserPoints { return1: convert(&laser.return1)?, return2: convert(&laser.return2)? })
}

/// Builds a `[H, W, 1]` range image (channel 0 = range, 0 = no return) from vehicle-frame
/// points, as upstream `build_range_image_from_point_cloud`: the row is the nearest beam
/// inclination, the column `round(W - 0.5 - (a + π)/(2π)·W)` wrapped into `[0, W)`, and the
/// nearest point wins a pixel. Points at the sensor origin or non-finite are skipped.
///
/// Only the range channel is produced: other channels (intensity, …) have no meaning for
/// arbitrary points. The extrinsic is assumed rigid (it is inverted by transposition).
pub fn points_to_range_image(
    points_vehicle: &[Vector3<f64>],
    calib: &LidarCalibration,
    height: usize,
    width: usize,
) -> Result<RangeImage<f32>, GeomError> {
    if height == 0 || width == 0 {
        return Err(GeomError::EmptyImage { height, width });
    }
    let incl = inclinations(calib, height)?;
    let corr = azimuth_correction(&calib.extrinsic);
    let to_sensor = calib.extrinsic.inverse_rigid();
    let w_f = width as f64;
    let mut out = RangeImage::<f32>::zeros(height, width, 1);
    for p in points_vehicle {
        let ps = to_sensor.apply(p);
        let range = ps.norm();
        if !(range > 0.0 && range.is_finite()) {
            continue;
        }
        let inclination = ps.z.atan2(ps.x.hypot(ps.y));
        let row = nearest_index(&incl, inclination);
        let a = normalize_angle(ps.y.atan2(ps.x) + corr);
        // tf.round rounds half to even.
        let col = (w_f - 0.5 - (a + PI) / (2.0 * PI) * w_f).round_ties_even();
        let col = (col as i64).rem_euclid(width as i64) as usize;
        let cell = &mut out.values[row * width + col];
        let range = range as f32;
        if *cell == 0.0 || range < *cell {
            *cell = range;
        }
    }
    Ok(out)
}

/// Index of the value closest to `x` (first one on ties), as `argmin |values - x|`.
fn nearest_index(values: &[f64], x: f64) -> usize {
    let mut best = 0;
    let mut best_d = f64::INFINITY;
    for (i, v) in values.iter().enumerate() {
        let d = (v - x).abs();
        if d < best_d {
            best = i;
            best_d = d;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{BeamInclination, LaserName};
    use std::f64::consts::FRAC_PI_2;

    fn calib(values: Option<Vec<f64>>, min: f64, max: f64, extrinsic: Transform) -> LidarCalibration {
        LidarCalibration { laser: LaserName::Top, extrinsic, beam_inclination: BeamInclination { min, max, values } }
    }

    #[test]
    fn uniform_inclinations_are_reversed_centres() {
        let c = calib(None, -1.0, 1.0, Transform::identity());
        let inc = inclinations(&c, 4).unwrap();
        assert_eq!(inc, vec![0.75, 0.25, -0.25, -0.75]);
    }

    #[test]
    fn explicit_inclination_count_is_checked() {
        let c = calib(Some(vec![0.0, 0.1]), 0.0, 0.1, Transform::identity());
        let err = inclinations(&c, 3).unwrap_err();
        assert_eq!(err, GeomError::InclinationCount { expected: 3, found: 2 });
        assert!(err.to_string().contains("2 explicit values"));
    }

    #[test]
    fn azimuth_columns() {
        let az = azimuths(&Transform::identity(), 4);
        let want = [0.75 * PI, 0.25 * PI, -0.25 * PI, -0.75 * PI];
        for (a, b) in az.iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let c = calib(None, -0.5, 0.5, Transform::identity());
        let ri = RangeImage::<f32>::zeros(2, 3, 0);
        assert_eq!(range_image_to_points(&ri, &c, None, None).unwrap_err(), GeomError::NoChannels);
        let ri = RangeImage::<f32>::zeros(2, 3, 4);
        let pose = RangeImage::<f32>::zeros(2, 2, 6);
        let err = range_image_to_points(&ri, &c, Some(&pose), Some(&Transform::identity())).unwrap_err();
        assert_eq!(err, GeomError::PixelPoseShape { expected: [2, 3], found: [2, 2, 6] });
        let other = RangeImage::<i32>::zeros(3, 3, 2);
        let cloud = range_image_to_points(&ri, &c, None, None).unwrap();
        assert!(matches!(gather_pixels(&other, &cloud), Err(GeomError::GatherShape { .. })));
        assert!(points_to_range_image(&[], &c, 0, 5).is_err());
        let wide = RangeImage::<f32>::zeros(1, 70_000, 1);
        let err = range_image_to_points(&wide, &c, None, None).unwrap_err();
        assert_eq!(err, GeomError::TooLarge { height: 1, width: 70_000 });
        let short = RangeImage::<f32> { height: 2, width: 3, channels: 4, values: vec![1.0; 5] };
        let err = range_image_to_points(&short, &c, None, None).unwrap_err();
        assert!(matches!(err, GeomError::ValueCount { found: 5, .. }), "{err}");
    }

    #[test]
    fn non_finite_ranges_are_skipped() {
        let c = calib(None, -0.5, 0.5, Transform::identity());
        let vals = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -1.0, 2.0];
        let ri = RangeImage::new([2, 3, 1], vals).unwrap();
        let cloud = range_image_to_points(&ri, &c, None, None).unwrap();
        assert_eq!(cloud.len(), 1);
        assert_eq!(cloud.pixels, vec![[1, 2]]);
        assert_eq!(cloud.range(0), 2.0);
    }

    #[test]
    fn nearest_index_prefers_first_on_ties() {
        assert_eq!(nearest_index(&[1.0, 0.0, -1.0], 0.5), 0);
        assert_eq!(nearest_index(&[1.0, 0.0, -1.0], -0.2), 1);
        assert_eq!(nearest_index(&[1.0, 0.0, -1.0], -FRAC_PI_2), 2);
    }

    #[test]
    fn nearest_point_wins_a_pixel() {
        let c = calib(None, -0.5, 0.5, Transform::identity());
        let pts = [Vector3::new(10.0, 0.0, 0.0), Vector3::new(5.0, 0.0, 0.0), Vector3::new(7.0, 0.0, 0.0)];
        let ri = points_to_range_image(&pts, &c, 1, 8).unwrap();
        let nonzero: Vec<f32> = ri.values.iter().copied().filter(|v| *v != 0.0).collect();
        assert_eq!(nonzero, vec![5.0]);
    }
}
