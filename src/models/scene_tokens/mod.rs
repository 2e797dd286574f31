//! MoST scene tokens (../shared/reference/algorithms.md §D): one frame's points broken into
//! disjoint elements, each described by one feature vector that the motion transformer
//! projects into a token.
//!
//! Elements, in the order they are kept under the cap:
//! * **agents**: one per labelled 3-D box within range (its points: the non-ground points
//!   inside the box grown by `box_margin`; a box with no points is still an agent, known
//!   from its label);
//! * **open-set objects**: the non-ground points outside every box, lower than
//!   `max_height` above the ground, clustered by connected components on a voxel grid
//!   ([`cluster`]); what no label names (cones, debris, a stalled truck) is found here;
//! * **ground**: square tiles of `tile` metres of ground points ([`ground`]) with at least
//!   `min_tile_points`, carrying the road's evidence (intensity for markings, height
//!   spread for kerbs).
//!
//! **Drop rule**: at most `max_tokens` elements per frame: agents first, then objects,
//! then ground tiles, each kind nearest first (horizontal distance of its centre to the
//! vehicle origin); the points of a dropped element belong to no element.
//!
//! Each element has a pose (centre, heading, in the frame's vehicle coordinates) kept apart
//! from its pose-free features ([`FeatureLayout`]), so a consumer can express the pose in
//! any frame without touching the rest: [`agent_frame`] does so for the motion model.

pub mod agent_frame;
pub mod cluster;
mod grid;
pub mod ground;
pub mod pool;
pub mod shard;

use rayon::prelude::*;

use crate::scene::{BoxType, LidarBox};

use cluster::{ClusterParams, connected_components};
use grid::PointGrid;
use ground::{GroundModel, fit_ground_on};
pub use pool::{DenseRows, PointFeatureSource};

/// What an element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementKind {
    Agent = 0,
    Object = 1,
    Ground = 2,
}

impl ElementKind {
    pub fn name(self) -> &'static str {
        match self {
            ElementKind::Agent => "agent",
            ElementKind::Object => "object",
            ElementKind::Ground => "ground",
        }
    }
}

/// The parameters of the decomposition (defaults documented on each field).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenConfig {
    /// Horizontal range of the elements from the vehicle origin (75 m, the TOP LiDAR's).
    pub range: f32,
    /// Ground cells (1 m) and how far a cell's lowest point may lie off the fitted plane
    /// and still be its ground (0.5 m).
    pub ground_cell: f32,
    pub ground_max_step: f32,
    /// A point less than this above its cell's ground is ground (0.25 m)...
    pub ground_band: f32,
    /// ...unless it is at least this high (0.08 m) and stands under an object or in an
    /// agent's box: the feet of what stands on the road (cone bases, tyres) join it.
    pub attach_height: f32,
    /// Object points higher than this above the ground are overhangs (canopies, signs
    /// over the road) and belong to no element (4 m).
    pub max_height: f32,
    /// Boxes grow by this on every side to take their points (0.2 m).
    pub box_margin: f32,
    /// Object clustering: voxel side (0.4 m) and the fewest points of an object (5).
    pub cluster: ClusterParams,
    /// Ground tile side (8 m) and the fewest ground points of a tile (20).
    pub tile: f32,
    pub min_tile_points: usize,
    /// The cap on elements per frame (512).
    pub max_tokens: usize,
    /// The per-point features of an element are pooled over at most this many of its
    /// points, evenly spaced in their order (128): an 8 m ground tile holds ~1,500 points
    /// whose 112-channel image features alone are 0.7 MB, and reading them all made the
    /// pooling most of the extraction's time. Geometry and intensity use every point.
    pub pool_points: usize,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            range: 75.0,
            ground_cell: 1.0,
            ground_max_step: 0.5,
            ground_band: 0.25,
            attach_height: 0.08,
            max_height: 4.0,
            box_margin: 0.2,
            cluster: ClusterParams { voxel: 0.4, min_points: 5 },
            tile: 8.0,
            min_tile_points: 20,
            max_tokens: 512,
            pool_points: 128,
        }
    }
}

/// Where each part of an element's pose-free feature vector lies.
///
/// `[0, 3)` kind one-hot (agent, object, ground) · `3` ln(1 + points) · `[4, 7)` extent
/// (length along the heading, width, height; metres) · `[7, 9)` lowest and highest point
/// above the ground · `[9, 11)` mean and max LiDAR intensity · `[11, 16)` box type one-hot
/// (vehicle, pedestrian, cyclist, sign, unknown; zeros for objects and ground) · then the
/// image block `[coverage, mean[C_img], max[C_img]]` and the LiDAR-encoder block
/// `[coverage, mean[C_lidar], max[C_lidar]]` (coverage: the share of the element's points
/// that have that feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureLayout {
    pub image_channels: usize,
    pub lidar_channels: usize,
}

impl FeatureLayout {
    /// Length of the geometry part.
    pub const GEOMETRY: usize = 16;

    pub fn len(&self) -> usize {
        Self::GEOMETRY + pool::pooled_len(self.image_channels) + pool::pooled_len(self.lidar_channels)
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Where the image block starts.
    pub fn image_offset(&self) -> usize {
        Self::GEOMETRY
    }
    /// Where the LiDAR-encoder block starts.
    pub fn lidar_offset(&self) -> usize {
        Self::GEOMETRY + pool::pooled_len(self.image_channels)
    }

    /// The columns of a feature vector of this layout that make one of layout `to`: the
    /// geometry, then each block `to` keeps; a block `to` leaves out is its coverage alone,
    /// 0 (`None`: what a pipeline without that model writes). `None` when `to` wants a block
    /// this layout lacks or has with other channels.
    pub fn columns_for(&self, to: FeatureLayout) -> Option<Vec<Option<usize>>> {
        let mut cols: Vec<Option<usize>> = (0..Self::GEOMETRY).map(Some).collect();
        for (want, have, offset) in [
            (to.image_channels, self.image_channels, self.image_offset()),
            (to.lidar_channels, self.lidar_channels, self.lidar_offset()),
        ] {
            if want == have {
                cols.extend((offset..offset + pool::pooled_len(have)).map(Some));
            } else if want == 0 {
                cols.push(None);
            } else {
                return None;
            }
        }
        Some(cols)
    }
}

/// One scene element.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub kind: ElementKind,
    /// The box's tracking id (agents).
    pub object_id: Option<String>,
    pub box_type: Option<BoxType>,
    /// The frame's point indices: ascending (ground tiles: ascending within each 1 m cell,
    /// the cells row by row).
    pub points: Vec<u32>,
    /// Centre (box centre for agents, mean point otherwise), vehicle frame.
    pub center: [f32; 3],
    /// Radians from +x: the box's for agents, the points' principal axis for objects, 0 for
    /// ground tiles.
    pub heading: f32,
    /// Length along the heading, width across it, height.
    pub extent: [f32; 3],
    /// Horizontal distance of the centre to the vehicle origin.
    pub distance: f32,
    /// Pose-free features ([`FeatureLayout`]).
    pub features: Vec<f32>,
}

/// One frame's elements.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneElements {
    /// Agents, objects, ground tiles; each kind nearest first.
    pub elements: Vec<Element>,
    /// Per point: the element it belongs to (`None`: noise, overhang, out of range, not
    /// finite, in a dropped element or a tile with too few points).
    pub assignment: Vec<Option<u32>>,
    /// Per point: whether the ground removal called it ground.
    pub ground: Vec<bool>,
    /// Elements past the cap.
    pub dropped: usize,
    pub layout: FeatureLayout,
    /// The ground plane `[a, b, c]` (`z = a·x + b·y + c`).
    pub plane: [f64; 3],
}

impl SceneElements {
    pub fn count(&self, kind: ElementKind) -> usize {
        self.elements.iter().filter(|e| e.kind == kind).count()
    }
}

/// One frame's inputs: points in the vehicle frame with their intensity, the per-point
/// features that exist, and the labelled boxes.
pub struct TokenInput<'a> {
    pub xyz: &'a [[f32; 3]],
    pub intensity: &'a [f32],
    /// Image feature per point (the pixel it projects to), when the image model ran.
    pub image: Option<&'a dyn PointFeatureSource>,
    /// LiDAR-encoder feature per point (its voxel's), when the encoder ran.
    pub lidar: Option<&'a dyn PointFeatureSource>,
    pub boxes: &'a [LidarBox],
}

/// Breaks a frame into elements and describes each (see the module documentation).
/// Frames with no points give the box agents alone; nothing here fails on data.
pub fn extract(input: &TokenInput<'_>, cfg: &TokenConfig) -> SceneElements {
    let n = input.xyz.len();
    let layout = FeatureLayout {
        image_channels: input.image.map_or(0, |s| s.channels()),
        lidar_channels: input.lidar.map_or(0, |s| s.channels()),
    };
    let grid = PointGrid::new(input.xyz, cfg.range, cfg.ground_cell);
    let g = fit_ground_on(input.xyz, &grid, cfg.ground_max_step);
    let mut ground: Vec<bool> = (0..n).map(|i| g.is_ground(i, cfg.ground_band)).collect();
    // Low enough to be ground, high enough to be the foot of something standing there.
    let foot = |i: usize| g.height[i].is_some_and(|h| h >= cfg.attach_height);
    let mut taken = vec![false; n];
    let mut found = Vec::new();

    // Agents: the non-ground points in each (grown) box.
    for b in input.boxes {
        let c = &b.bbox.center;
        if !(c.x.is_finite() && c.y.is_finite()) || (c.x * c.x + c.y * c.y).sqrt() > cfg.range as f64 {
            continue;
        }
        let mut grown = b.bbox;
        grown.size += nalgebra::Vector3::repeat(2.0 * cfg.box_margin as f64);
        let r = (0.5 * (grown.size.x * grown.size.x + grown.size.y * grown.size.y).sqrt()) as f32;
        let (cx, cy) = (c.x as f32, c.y as f32);
        let mut points: Vec<u32> = grid
            .near(cx - r, cx + r, cy - r, cy + r)
            .filter(|&i| {
                let q = input.xyz[i as usize];
                let i = i as usize;
                (!ground[i] || foot(i))
                    && !taken[i]
                    && grown.contains_point(&nalgebra::Vector3::new(q[0] as f64, q[1] as f64, q[2] as f64))
            })
            .collect();
        points.sort_unstable();
        for &i in &points {
            taken[i as usize] = true;
            ground[i as usize] = false;
        }
        let center = [c.x as f32, c.y as f32, c.z as f32];
        let extent = [b.bbox.size.x as f32, b.bbox.size.y as f32, b.bbox.size.z as f32];
        found.push(Found {
            kind: ElementKind::Agent,
            label: Some(b),
            points,
            pose: Some((center, b.bbox.heading as f32, extent)),
        });
    }

    // Open-set objects: what stands on the ground outside every box.
    let loose: Vec<u32> = (0..n as u32)
        .filter(|&i| {
            let i = i as usize;
            !taken[i] && !ground[i] && g.height[i].is_some_and(|h| h <= cfg.max_height)
        })
        .collect();
    let mut objects = connected_components(input.xyz, &loose, cfg.cluster);
    attach_feet(input.xyz, &mut objects, &mut ground, &taken, foot, cfg.cluster.voxel);
    found.extend(objects.into_iter().map(|points| Found {
        kind: ElementKind::Object,
        label: None,
        points,
        pose: None,
    }));

    // Ground tiles: the ground cells' points gathered tile by tile.
    for points in grid.tiles(cfg.tile).into_iter().map(|t| t.filter(|&i| ground[i as usize]).collect::<Vec<u32>>()) {
        if points.len() >= cfg.min_tile_points.max(1) {
            found.push(Found { kind: ElementKind::Ground, label: None, points, pose: None });
        }
    }

    // Pooling the features is most of the work: one element per task.
    let mut elements: Vec<Element> =
        found.into_par_iter().map(|f| describe(input, &g, f, layout, cfg.pool_points)).collect();

    // The cap: each kind nearest first, agents before objects before ground.
    elements.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.distance.total_cmp(&b.distance)));
    let dropped = elements.len().saturating_sub(cfg.max_tokens);
    elements.truncate(cfg.max_tokens);
    let mut assignment = vec![None; n];
    for (e, el) in elements.iter().enumerate() {
        for &i in &el.points {
            assignment[i as usize] = Some(e as u32);
        }
    }
    SceneElements { elements, assignment, ground, dropped, layout, plane: g.plane }
}

/// A column and its eight neighbours, the own one first.
const NEAR_COLUMNS: [[i32; 2]; 9] = [[0, 0], [-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]];

/// Ground-band points that are feet (`foot`) and lie in, or next to, the horizontal voxel
/// column of an object's point join that object (and stop being ground): a cone's base is
/// wider than the part that stands above the band.
fn attach_feet(
    xyz: &[[f32; 3]],
    objects: &mut [Vec<u32>],
    ground: &mut [bool],
    taken: &[bool],
    foot: impl Fn(usize) -> bool,
    voxel: f32,
) {
    let column = |q: [f32; 3]| [(q[0] / voxel).floor() as i32, (q[1] / voxel).floor() as i32];
    let mut owner = cluster::KeyMap::default();
    for (k, points) in objects.iter().enumerate() {
        for &i in points.iter() {
            let [cx, cy] = column(xyz[i as usize]);
            owner.entry(cluster::pack([cx, cy, 0])).or_insert(k);
        }
    }
    if owner.is_empty() {
        return;
    }
    for i in 0..xyz.len() {
        if !ground[i] || taken[i] || !foot(i) {
            continue;
        }
        let [cx, cy] = column(xyz[i]);
        let near = NEAR_COLUMNS.iter().find_map(|[dx, dy]| owner.get(&cluster::pack([cx + dx, cy + dy, 0])));
        if let Some(&k) = near {
            objects[k].push(i as u32);
            ground[i] = false;
        }
    }
    objects.iter_mut().for_each(|p| p.sort_unstable());
}

/// An element found, before its description.
struct Found<'a> {
    kind: ElementKind,
    label: Option<&'a LidarBox>,
    points: Vec<u32>,
    /// Centre, heading and extent when known (the box's, for agents).
    pose: Option<([f32; 3], f32, [f32; 3])>,
}

/// An element's pose and features from its points.
fn describe(input: &TokenInput<'_>, g: &GroundModel, found: Found<'_>, layout: FeatureLayout, pool: usize) -> Element {
    let Found { kind, label, points, pose } = found;
    let (center, heading, extent) = pose.unwrap_or_else(|| shape_of(input.xyz, &points, kind == ElementKind::Object));
    let mut f = Vec::with_capacity(layout.len());
    let mut one_hot = [0.0f32; 3];
    one_hot[kind as usize] = 1.0;
    f.extend_from_slice(&one_hot);
    f.push((1.0 + points.len() as f32).ln());
    f.extend_from_slice(&extent);
    let heights = points.iter().filter_map(|&i| g.height[i as usize]);
    let (lo, hi) = heights.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| (lo.min(h), hi.max(h)));
    f.extend_from_slice(&if lo.is_finite() { [lo, hi] } else { [0.0, 0.0] });
    let intensity = points.iter().filter_map(|&i| input.intensity.get(i as usize)).filter(|v| v.is_finite());
    let (sum, max, cnt) = intensity.fold((0.0f32, f32::NEG_INFINITY, 0usize), |(s, m, c), &v| (s + v, m.max(v), c + 1));
    f.extend_from_slice(&if cnt > 0 { [sum / cnt as f32, max] } else { [0.0, 0.0] });
    let mut box_type = [0.0f32; 5];
    if let Some(b) = label {
        let slot = match b.kind {
            BoxType::Vehicle => 0,
            BoxType::Pedestrian => 1,
            BoxType::Cyclist => 2,
            BoxType::Sign => 3,
            BoxType::Unknown => 4,
        };
        box_type[slot] = 1.0;
    }
    f.extend_from_slice(&box_type);
    debug_assert_eq!(f.len(), FeatureLayout::GEOMETRY);
    let sample = evenly_spaced(&points, pool.max(1));
    match input.image {
        Some(s) => pool::pool_into(s, &sample, &mut f),
        None => f.push(0.0),
    }
    match input.lidar {
        Some(s) => pool::pool_into(s, &sample, &mut f),
        None => f.push(0.0),
    }
    Element {
        kind,
        object_id: label.map(|b| b.object_id.clone()),
        box_type: label.map(|b| b.kind),
        points,
        center,
        heading,
        extent,
        distance: (center[0] * center[0] + center[1] * center[1]).sqrt(),
        features: f,
    }
}

/// At most `k` of `points`, evenly spaced (all of them when there are no more than `k`).
fn evenly_spaced(points: &[u32], k: usize) -> std::borrow::Cow<'_, [u32]> {
    if points.len() <= k {
        return std::borrow::Cow::Borrowed(points);
    }
    std::borrow::Cow::Owned((0..k).map(|j| points[j * points.len() / k]).collect())
}

/// Centre (mean point), heading and extents of a point set: the principal axis of the
/// horizontal spread when `oriented` (objects), else the x axis (ground tiles).
fn shape_of(xyz: &[[f32; 3]], points: &[u32], oriented: bool) -> ([f32; 3], f32, [f32; 3]) {
    if points.is_empty() {
        return ([0.0; 3], 0.0, [0.0; 3]);
    }
    let inv = 1.0 / points.len() as f64;
    let mut m = [0.0f64; 3];
    for &i in points {
        let q = xyz[i as usize];
        (0..3).for_each(|a| m[a] += q[a] as f64 * inv);
    }
    let heading = if oriented {
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        for &i in points {
            let q = xyz[i as usize];
            let (dx, dy) = (q[0] as f64 - m[0], q[1] as f64 - m[1]);
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
        }
        0.5 * (2.0 * sxy).atan2(sxx - syy)
    } else {
        0.0
    };
    let (s, c) = heading.sin_cos();
    let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    for &i in points {
        let q = xyz[i as usize];
        let (dx, dy) = (q[0] as f64 - m[0], q[1] as f64 - m[1]);
        let v = [c * dx + s * dy, -s * dx + c * dy, q[2] as f64];
        for a in 0..3 {
            lo[a] = lo[a].min(v[a]);
            hi[a] = hi[a].max(v[a]);
        }
    }
    let extent = std::array::from_fn(|a| (hi[a] - lo[a]) as f32);
    (m.map(|v| v as f32), heading as f32, extent)
}

#[cfg(test)]
mod tests;
