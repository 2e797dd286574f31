//! `scenetok generate`: segments of the synthetic world written as a Waymo v2 dataset, with
//! a manifest of the generator version and settings beside the data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nalgebra::{Matrix4, vector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use std::sync::Arc;

use crate::io::shard::Shard;

use super::agents::{AgentConfig, AgentWorld, State, simulate};
use super::bvh::TriangleMesh;
use super::camera::{CameraOptions, CameraSensor, camera_projection_image, camera_rig};
use super::lidar::{LidarOptions, LidarScale, lidar_rig, simulate_rig};
use super::road::{RoadConfig, RoadNetwork};
use super::snapshot::{Snapshot, StaticWorld};
use crate::error::{Error, Location, Result};
use crate::io::v2::SegmentWriter;
use crate::scene::trajectory_type::{TrajectoryType, classify};
use crate::scene::{BoxType, DifficultyLevel, Frame, FrameStats, LidarBox, Transform};

/// Bumped whenever the same settings would write different data.
pub const GENERATOR_VERSION: &str = "0.3.1";

/// Labels are kept for objects this close to the ego (Waymo labels within 75 m of TOP).
const LABEL_RANGE: f64 = 75.0;

/// Named sizes: `tiny` for tests and the demo, `full` for Waymo's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "PascalCase")]
pub enum Preset {
    Tiny,
    Full,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct GenerateConfig {
    pub segments: usize,
    pub frames: usize,
    pub seed: u64,
    pub preset: Preset,
    /// Intersections per side of the road grid.
    pub grid: [usize; 2],
    pub vehicles: usize,
    pub pedestrians: usize,
    pub cyclists: usize,
    pub parked: usize,
    pub obstacles: usize,
    /// Divisors of the lidar range-image height and width (1, 1 = Waymo's 64×2650 / 200×600).
    pub lidar_div: [usize; 2],
    /// Divisor of camera image sizes and focal lengths (1 = Waymo's 1920×1280 / 1920×886).
    pub camera_div: u32,
}

impl GenerateConfig {
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Tiny => GenerateConfig {
                segments: 2,
                frames: 40,
                seed: 0,
                preset,
                grid: [2, 2],
                vehicles: 14,
                pedestrians: 10,
                cyclists: 2,
                parked: 4,
                obstacles: 3,
                lidar_div: [8, 16],
                camera_div: 8,
            },
            Preset::Full => GenerateConfig {
                segments: 1,
                frames: 199,
                seed: 0,
                preset,
                grid: [3, 3],
                vehicles: 40,
                pedestrians: 30,
                cyclists: 6,
                parked: 12,
                obstacles: 5,
                lidar_div: [1, 1],
                camera_div: 1,
            },
        }
    }
}

/// Most segments one run writes (each is a separate world).
pub const MAX_SEGMENTS: usize = 100_000;
/// Most frames per segment: one hour at 10 Hz (Waymo's segments are 20 s, 199 frames).
pub const MAX_FRAMES: usize = 36_000;
/// The most memory the simulated agent tracks of one segment may take (they are held for
/// the whole segment while its frames are rendered).
const MAX_TRACK_BYTES: usize = 4 << 30;
/// The smallest lidar range image (TOP) and camera image a divisor may leave: below this a
/// sensor sees next to nothing and the data would be silently empty.
const MIN_LIDAR: [usize; 2] = [4, 32];
const MIN_CAMERA_WIDTH: u32 = 32;

impl GenerateConfig {
    /// Checks the sizes before any work: counts in range, the agent tracks within memory,
    /// sensors that still see something.
    pub fn validate(&self) -> Result<()> {
        let bad = |expected: String, found: String| {
            Err(Error::invalid(Location::default().detail("generate settings"), expected, found))
        };
        if !(1..=MAX_SEGMENTS).contains(&self.segments) {
            return bad(format!("--segments in 1..={MAX_SEGMENTS}"), self.segments.to_string());
        }
        if !(1..=MAX_FRAMES).contains(&self.frames) {
            return bad(format!("--frames in 1..={MAX_FRAMES} (one hour at 10 Hz)"), self.frames.to_string());
        }
        let agents = self.vehicles + self.pedestrians + self.cyclists + self.parked + self.obstacles + 1;
        let bytes = agents.saturating_mul(self.frames).saturating_mul(std::mem::size_of::<crate::sim::agents::State>());
        if bytes > MAX_TRACK_BYTES {
            return bad(
                format!("agent tracks within {} GiB per segment", MAX_TRACK_BYTES >> 30),
                format!("{agents} agents × {} frames ({:.1} GiB)", self.frames, bytes as f64 / (1u64 << 30) as f64),
            );
        }
        let top = crate::sim::lidar::LidarScale::divided(self.lidar_div[0], self.lidar_div[1]).top;
        if self.lidar_div.contains(&0) || top[0] < MIN_LIDAR[0] || top[1] < MIN_LIDAR[1] {
            return bad(
                format!("--lidar-div that leaves TOP at least {}×{} pixels", MIN_LIDAR[0], MIN_LIDAR[1]),
                format!("{:?} (TOP {}×{})", self.lidar_div, top[0], top[1]),
            );
        }
        if self.camera_div == 0 || 1920 / self.camera_div < MIN_CAMERA_WIDTH {
            return bad(
                format!(
                    "--camera-div that leaves images at least {MIN_CAMERA_WIDTH} pixels wide (at most {})",
                    1920 / MIN_CAMERA_WIDTH
                ),
                self.camera_div.to_string(),
            );
        }
        Ok(())
    }
}

/// What one `generate` run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub generator: String,
    pub version: String,
    pub settings: GenerateConfig,
    pub segments: Vec<String>,
    /// WOMD trajectory types of every agent over 9.1 s windows (current step 10), counted
    /// every second of each segment.
    pub trajectory_types: BTreeMap<String, usize>,
    pub files: Vec<PathBuf>,
    /// Seconds spent per stage over all frames (world set-up, lidars, cameras, writing).
    pub seconds: BTreeMap<String, f64>,
    pub frames_written: usize,
}

/// A Waymo-style segment name (`{20 digits}_{start}_{000}_{end}_{000}`), from the seed and
/// the segment's index: the stream is keyed by both (not by a combination of them that two
/// runs could share), so names are unique across seeds.
pub fn segment_name(seed: u64, index: usize) -> String {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    key[16..24].copy_from_slice(b"scn-name");
    let mut rng = ChaCha8Rng::from_seed(key);
    let id: u64 = rng.random_range(10_000_000_000_000_000_000..u64::MAX);
    let start = rng.random_range(0..9000u32);
    format!("{id:020}_{start:04}_000_{:04}_000", start + 20)
}

/// The road network and the simulated agents of segment `index` of a run with `cfg`: what
/// `generate` writes labels for (every agent, not only those within label range).
pub fn segment_world(cfg: &GenerateConfig, index: usize) -> (RoadNetwork, AgentWorld) {
    let (net, world, _) = simulate_segment(cfg, index);
    (net, world)
}

/// [`segment_world`] and the random stream that goes on to build the static world.
fn simulate_segment(cfg: &GenerateConfig, index: usize) -> (RoadNetwork, AgentWorld, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(index as u64));
    let net = RoadNetwork::generate(&RoadConfig { grid: cfg.grid, ..RoadConfig::default() }, &mut rng);
    let agents = AgentConfig {
        steps: cfg.frames,
        dt: 0.1,
        vehicles: cfg.vehicles,
        cyclists: cfg.cyclists,
        pedestrians: cfg.pedestrians,
        parked: cfg.parked,
        obstacles: cfg.obstacles,
    };
    let world = simulate(&net, &agents, &mut rng);
    (net, world, rng)
}

/// The motion scenarios of segment `index`, as [`generate`] followed by reading its boxes,
/// poses and map back would give them (same labels, same windows, same scenario ids),
/// without simulating a sensor: what `scenetok dataset motion` trains on.
pub fn segment_motion_scenarios(cfg: &GenerateConfig, index: usize, stride: usize) -> Vec<crate::scene::Scenario> {
    segment_motion_scenarios_and_world(cfg, index, stride).0
}

/// [`segment_motion_scenarios`] and the simulated world they come from.
pub fn segment_motion_scenarios_and_world(
    cfg: &GenerateConfig,
    index: usize,
    stride: usize,
) -> (Vec<crate::scene::Scenario>, AgentWorld) {
    let (net, world) = segment_world(cfg, index);
    let name = segment_name(cfg.seed, index);
    (motion_scenarios(&name, index, cfg.frames, &net, &world, stride), world)
}

fn motion_scenarios(
    name: &str,
    index: usize,
    frames: usize,
    net: &RoadNetwork,
    world: &AgentWorld,
    stride: usize,
) -> Vec<crate::scene::Scenario> {
    let mut tracks = crate::io::v2::motion::TrackBuilder::default();
    for f in 0..frames {
        let ts = first_timestamp(index) + f as i64 * 100_000;
        let frame = labelled_frame(world, name, f, ts);
        tracks.push(ts, frame.vehicle_pose.unwrap_or_else(Transform::identity), &frame.lidar_boxes);
    }
    let (timestamps, tracks) = tracks.finish();
    crate::io::v2::motion::window_scenarios(name, &timestamps, &tracks, &net.map_features(), stride).scenarios
}

/// The timestamp (µs) of segment `index`'s first frame.
fn first_timestamp(index: usize) -> i64 {
    1_600_000_000_000_000 + (index as i64) * 100_000_000
}

/// The ego pose as Waymo's `world_from_vehicle`.
pub fn pose_of(s: &State) -> Transform {
    let (sin, cos) = s.heading.sin_cos();
    Transform(Matrix4::new(cos, -sin, 0.0, s.pos.x, sin, cos, 0.0, s.pos.y, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
}

/// One segment's simulated world with its sensors ready: what [`generate`] writes frame by
/// frame, and what `scenetok dataset motion --tokens` simulates for the history frames only
/// (a frame's data depends on its index alone, so any subset equals those frames of a full
/// run).
pub struct SimulatedSegment {
    pub name: String,
    pub index: usize,
    pub net: RoadNetwork,
    pub world: AgentWorld,
    seed: u64,
    frames: usize,
    statics: Arc<StaticWorld>,
    mesh: TriangleMesh,
    scale: LidarScale,
    rig: Vec<crate::scene::LidarCalibration>,
    cameras: Vec<crate::scene::CameraCalibration>,
    sensor: CameraSensor,
}

impl SimulatedSegment {
    /// Simulates segment `index` of `cfg` (agents, static world, sensor rigs).
    pub fn new(cfg: &GenerateConfig, index: usize) -> SimulatedSegment {
        let (net, world, mut rng) = simulate_segment(cfg, index);
        let statics = Arc::new(StaticWorld::from_network(&net, &mut rng));
        let mesh = TriangleMesh::new(&statics);
        let scale = LidarScale::divided(cfg.lidar_div[0], cfg.lidar_div[1]);
        let rig = lidar_rig(&scale);
        let cameras = camera_rig(cfg.camera_div);
        let sensor = CameraSensor::new(&cameras, CameraOptions::for_scale(cfg.camera_div));
        SimulatedSegment {
            name: segment_name(cfg.seed, index),
            index,
            net,
            world,
            seed: cfg.seed,
            frames: cfg.frames,
            statics,
            mesh,
            scale,
            rig,
            cameras,
            sensor,
        }
    }

    /// The motion scenarios of this segment (windows every `stride` frames), as reading the
    /// written segment back would give them.
    pub fn motion_scenarios(&self, stride: usize) -> Vec<crate::scene::Scenario> {
        motion_scenarios(&self.name, self.index, self.frames, &self.net, &self.world, stride)
    }

    /// Frame `f` with its labels and every sensor; `clock` is called after each sensor's part
    /// with its name (for the generator's timings); `at` is where errors point.
    pub fn frame(&self, f: usize, at: &Path, mut clock: impl FnMut(&str)) -> Result<Frame> {
        let ts = first_timestamp(self.index) + f as i64 * 100_000;
        let world = &self.world;
        let mut frame = labelled_frame(world, &self.name, f, ts);
        let ego_pose = frame.vehicle_pose.unwrap_or_else(Transform::identity);
        let snapshot = Snapshot {
            timestamp_micros: ts,
            static_world: self.statics.clone(),
            objects: world.objects_at(f),
            ego_pose,
        };
        // Each frame has its own stream, so frames do not depend on each other's draws.
        let mut frame_rng = ChaCha8Rng::seed_from_u64(self.seed ^ ((self.index as u64) << 32) ^ f as u64 ^ 0x11da_5eed);
        // TOP's sweep began 0.1 s earlier: the previous frame's pose, or before the first
        // frame the pose the ego's motion puts there.
        let sweep_start_pose = if f > 0 {
            labelled_frame_pose(world, f - 1)
        } else {
            world.ego.states[f]
                .map(|s| pose_of(&State { pos: s.pos - s.vel * 0.1, heading: s.heading - s.yaw_rate * 0.1, ..s }))
        };
        let options = LidarOptions { second_return: true, sweep_start_pose, ..LidarOptions::default() };
        let sensed = simulate_rig(&self.mesh, &snapshot, &self.rig, &self.scale, &options, &mut frame_rng)
            .map_err(|e| Error::invalid(Location::file(at).frame(ts), "a simulated lidar sweep", e.to_string()))?;
        for (object, (all, top)) in
            snapshot.objects.iter().zip(sensed.points_in_box.iter().zip(&sensed.top_points_in_box))
        {
            if let Some(b) = frame.lidar_boxes.iter_mut().find(|b| b.object_id == object.id) {
                b.num_lidar_points_in_box = *all as i64;
                b.num_top_lidar_points_in_box = *top as i64;
            }
        }
        frame.lasers = sensed.lasers;
        clock("lidars");
        for laser in &mut frame.lasers {
            let pose = frame.vehicle_pose.as_ref();
            laser.camera_projection1 = Some(project_laser(laser, Return::First, pose, &self.cameras, at, ts)?);
            if laser.return2.is_some() {
                laser.camera_projection2 = Some(project_laser(laser, Return::Second, pose, &self.cameras, at, ts)?);
            }
        }
        clock("lidar-camera projection");
        // The ego's motion as simulated (world frame; planar, so the angular velocity is
        // the yaw rate about z), for every frame including the first.
        let (ego_velocity, ego_angular) = world.ego.states[f]
            .map(|s| (vector![s.vel.x, s.vel.y, 0.0], vector![0.0, 0.0, s.yaw_rate]))
            .unwrap_or_else(|| (nalgebra::Vector3::zeros(), nalgebra::Vector3::zeros()));
        let seen = self.sensor.observe(&snapshot, &ego_velocity, &ego_angular)?;
        clock("cameras");
        frame.cameras = seen.frames;
        for c in &mut frame.cameras {
            if let Some(label) = &mut c.segmentation {
                label.sequence_id = self.name.clone();
            }
        }
        let mut camera_counts: BTreeMap<BoxType, i32> = BTreeMap::new();
        for b in &seen.camera_boxes {
            *camera_counts.entry(b.kind).or_default() += 1;
        }
        if let Some(stats) = &mut frame.stats {
            stats.camera_object_counts = camera_counts.into_iter().collect();
        }
        frame.camera_boxes = seen.camera_boxes;
        // Projections exist only for 3-D labels (the cameras see farther than labels go).
        let labelled: std::collections::BTreeSet<&str> =
            frame.lidar_boxes.iter().map(|b| b.object_id.as_str()).collect();
        frame.projected_lidar_boxes =
            seen.projected_lidar_boxes.into_iter().filter(|p| labelled.contains(p.object_id.as_str())).collect();
        frame.associations =
            seen.associations.into_iter().filter(|a| labelled.contains(a.laser_object_id.as_str())).collect();
        Ok(frame)
    }
}

/// Generates every segment; `progress` is called after each frame with (segment, frame).
pub fn generate(out: &Path, cfg: &GenerateConfig, progress: impl FnMut(usize, usize)) -> Result<Manifest> {
    generate_shard(out, cfg, Shard::ALL, progress)
}

/// [`generate`]'s segments of one shard (segment `i` is shard `i mod N`'s): the same files as
/// the whole run writes for them, so N processes writing into one folder make the whole
/// world. A shard's manifest is `scenetok_manifest.I-of-N.json` (the whole run's is
/// `scenetok_manifest.json`).
pub fn generate_shard(
    out: &Path,
    cfg: &GenerateConfig,
    shard: Shard,
    mut progress: impl FnMut(usize, usize),
) -> Result<Manifest> {
    cfg.validate()?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(Location::file(out), e))?;
    let mut segments = Vec::new();
    let mut files = Vec::new();
    let mut hist: BTreeMap<TrajectoryType, usize> = BTreeMap::new();
    let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
    let mut clock = |stage: &str, since: &mut std::time::Instant| {
        *seconds.entry(stage.to_string()).or_default() += since.elapsed().as_secs_f64();
        *since = std::time::Instant::now();
    };
    for index in (0..cfg.segments).filter(|&i| shard.keeps(i)) {
        let mut t = std::time::Instant::now();
        let seg = SimulatedSegment::new(cfg, index);
        for t in seg.world.tracks() {
            for start in (0..t.states.len().saturating_sub(11)).step_by(10) {
                let window = &t.states[start..(start + 91).min(t.states.len())];
                if let Some(k) = classify(window, 10) {
                    *hist.entry(k).or_default() += 1;
                }
            }
        }
        clock("setup (map, agents, static world, BVH, camera tables)", &mut t);
        let mut writer = SegmentWriter::new(out, &seg.name);
        for f in 0..cfg.frames {
            let frame = seg.frame(f, out, |stage| clock(stage, &mut t))?;
            writer.write_frame(&frame)?;
            clock("writing parquet", &mut t);
            progress(index, f);
        }
        writer.write_map(&seg.net.map_features())?;
        files.extend(writer.finish()?);
        clock("writing parquet", &mut t);
        segments.push(seg.name);
    }
    let manifest = Manifest {
        generator: "scenetok generate".into(),
        version: GENERATOR_VERSION.into(),
        settings: cfg.clone(),
        trajectory_types: hist.iter().map(|(k, n)| (k.name().to_string(), *n)).collect(),
        files,
        seconds,
        frames_written: segments.len() * cfg.frames,
        segments,
    };
    let path = match shard.is_all() {
        true => out.join("scenetok_manifest.json"),
        false => out.join(format!("scenetok_manifest.{}-of-{}.json", shard.index(), shard.count())),
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::invalid(Location::file(&path), "a serialisable manifest", e.to_string()))?;
    crate::io::output::write_file(&path, json.as_bytes())?;
    Ok(manifest)
}

/// Whether `dir` holds a world written by this generator version (its manifest says so): a
/// cache of generated data is stale when the generator has changed since.
pub fn generated_by_this_version(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("scenetok_manifest.json")) else { return false };
    serde_json::from_str::<serde_json::Value>(&text)
        .is_ok_and(|m| m.get("version").and_then(|v| v.as_str()) == Some(GENERATOR_VERSION))
}

/// Which of a laser's two returns.
#[derive(Clone, Copy, Debug)]
enum Return {
    First,
    Second,
}

/// The `lidar_camera_projection` image of one of a laser's returns: its points (frame vehicle
/// frame) projected into the cameras, in Waymo's camera order.
fn project_laser(
    laser: &crate::scene::LaserFrame,
    which: Return,
    frame_pose: Option<&Transform>,
    cameras: &[crate::scene::CameraCalibration],
    out: &Path,
    ts: i64,
) -> Result<crate::scene::RangeImage<f32>> {
    let at = || Location::file(out).frame(ts).detail(format!("laser {} {which:?} return", laser.laser));
    let range_image = match which {
        Return::First => &laser.return1,
        Return::Second => &laser.return2,
    };
    let (Some(ri), Some(calib)) = (range_image, &laser.calibration) else {
        return Err(Error::invalid(at(), "a simulated range image with its calibration", "none"));
    };
    let cloud = crate::geom::range_image_to_points(ri, calib, laser.pose.as_ref(), frame_pose)
        .map_err(|e| Error::invalid(at(), "a convertible range image", e.to_string()))?;
    let points: Vec<(usize, usize, nalgebra::Vector3<f64>)> =
        (0..cloud.len()).map(|i| (cloud.pixels[i][0] as usize, cloud.pixels[i][1] as usize, cloud.point(i))).collect();
    Ok(camera_projection_image(&points, ri.height, ri.width, cameras))
}

/// The ego at `step` (at the origin where it does not exist).
fn ego_state(world: &AgentWorld, step: usize) -> State {
    world.ego.states[step].unwrap_or(State {
        pos: nalgebra::Vector2::zeros(),
        heading: 0.0,
        vel: nalgebra::Vector2::zeros(),
        accel: nalgebra::Vector2::zeros(),
        yaw_rate: 0.0,
    })
}

/// The vehicle pose [`labelled_frame`] gives frame `step`.
fn labelled_frame_pose(world: &AgentWorld, step: usize) -> Option<Transform> {
    Some(pose_of(&ego_state(world, step)))
}

/// A frame with pose, box labels and stats (the sensors are added by their models).
fn labelled_frame(world: &AgentWorld, segment: &str, step: usize, ts: i64) -> Frame {
    let ego_state = ego_state(world, step);
    let pose = pose_of(&ego_state);
    let vehicle_from_world = pose.inverse_rigid();
    let yaw = ego_state.heading;
    let rotate = |v: &nalgebra::Vector3<f64>| {
        let (s, c) = (-yaw).sin_cos();
        vector![c * v.x - s * v.y, s * v.x + c * v.y, v.z]
    };
    let mut boxes = Vec::new();
    for o in world.objects_at(step) {
        let Some(kind) = o.kind.box_type() else { continue };
        let center = vehicle_from_world.apply(&o.bbox.center);
        if center.xy().norm() > LABEL_RANGE {
            continue;
        }
        boxes.push(LidarBox {
            object_id: o.id.clone(),
            bbox: crate::scene::Box3d {
                center,
                size: o.bbox.size,
                heading: crate::geom::polyline::wrap(o.bbox.heading - yaw),
            },
            kind,
            num_lidar_points_in_box: 0,
            num_top_lidar_points_in_box: 0,
            speed: rotate(&o.velocity),
            acceleration: rotate(&o.acceleration),
            detection_difficulty: DifficultyLevel::Level1,
            tracking_difficulty: DifficultyLevel::Level1,
        });
    }
    let mut counts: BTreeMap<BoxType, i32> = BTreeMap::new();
    for b in &boxes {
        *counts.entry(b.kind).or_default() += 1;
    }
    Frame {
        segment: segment.to_string(),
        timestamp_micros: ts,
        vehicle_pose: Some(pose),
        lidar_boxes: boxes,
        stats: Some(FrameStats {
            time_of_day: "Day".into(),
            location: "location_scenetok".into(),
            weather: "sunny".into(),
            lidar_object_counts: counts.into_iter().collect(),
            camera_object_counts: Vec::new(),
        }),
        ..Default::default()
    }
}
