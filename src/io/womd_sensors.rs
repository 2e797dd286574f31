//! WOMD's sensor data for a scenario's history steps (v1.2+): LiDAR as delta-encoded,
//! zlib-compressed range images per laser (`Scenario.compressed_frame_laser_data`, field 12)
//! and camera embeddings as VQ-GAN codebook indices per camera
//! (`Scenario.frame_camera_tokens`, field 13; ../shared/reference/algorithms.md §D.3).
//!
//! The LiDAR becomes the same [`Frame`] a v1 or v2 frame gives (range images, TOP's pixel
//! pose, calibrations, the vehicle pose), so the points stage and everything after it run on
//! it unchanged.
//!
//! **Delta encoding** (upstream `delta_encoder.py`, documented in `compressed_lidar.proto`):
//! the image `[H, W, C]` is quantized per channel (`round(v / quant_precision[c])`), read
//! channel-major (`[C, H, W]`), and stored as the run lengths of its non-zero mask (the first
//! run counts non-zeros and may be 0) plus the differences between consecutive non-zero
//! values; the whole `DeltaEncodedData` message is zlib-compressed.

use std::io::Read;
use std::path::Path;

use prost::Message;

use super::proto;
use super::v1::{camera_name, laser_calibration, laser_name, transform};
use crate::error::{Error, Location, Result};
use crate::geom::pose::normalize_angle;
use crate::scene::{
    AgentType, Box3d, BoxType, CameraName, DifficultyLevel, Frame, LaserFrame, LidarBox, RangeImage, Scenario,
    Transform,
};
use nalgebra::Vector3;

/// A decoded image is at most this many values (TOP's range image has 64 × 2650 × 4).
const MAX_VALUES: usize = 64 << 20;
/// WOMD's codebook: 8192 entries of 32 values.
pub const CODEBOOK_ENTRIES: usize = 8192;

/// Per camera, its codebook indices (one step).
pub type StepCameraTokens = Vec<(CameraName, Vec<u32>)>;

/// The sensor data of one scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScenarioSensors {
    /// Per history step with LiDAR, in step order: the step index and its frame (lasers with
    /// calibrations, the SDC pose as `vehicle_pose`, the scenario's time in microseconds).
    pub lidar: Vec<(usize, Frame)>,
    /// Per step with camera tokens: the step index and, per camera, its codebook indices.
    pub camera_tokens: Vec<(usize, StepCameraTokens)>,
}

impl ScenarioSensors {
    pub fn is_empty(&self) -> bool {
        self.lidar.is_empty() && self.camera_tokens.is_empty()
    }
}

/// Whether a serialized `Scenario` holds sensor data and no tracks: one of WOMD's separate
/// LiDAR or camera-token files, merged into the scenario of the same id by the user.
pub fn sensors_only(bytes: &[u8]) -> bool {
    proto::Scenario::decode(bytes).is_ok_and(|s| {
        s.tracks.is_empty() && (!s.compressed_frame_laser_data.is_empty() || !s.frame_camera_tokens.is_empty())
    })
}

/// The sensor data of a decoded scenario (empty when it has none). `at` names the record.
/// A record without timestamps (WOMD's separate sensor files) takes step `k` at `k` × 0.1 s.
pub fn scenario_sensors(msg: &proto::Scenario, at: &Location) -> Result<ScenarioSensors> {
    let id = msg.scenario_id.clone().unwrap_or_default();
    let steps = if msg.timestamps_seconds.is_empty() { usize::MAX } else { msg.timestamps_seconds.len() };
    let mut out = ScenarioSensors::default();
    for (step, data) in msg.compressed_frame_laser_data.iter().enumerate() {
        let column = format!("compressed_frame_laser_data[{step}]");
        if step >= steps {
            let at = at.clone().column(column);
            return Err(Error::invalid(at, format!("at most one entry per timestamp ({steps})"), "more"));
        }
        let seconds = msg.timestamps_seconds.get(step).copied().unwrap_or(step as f64 * 0.1);
        let micros = (seconds * 1e6).round() as i64;
        out.lidar.push((step, lidar_frame(data, &id, micros, at, &column)?));
    }
    for (step, frame) in msg.frame_camera_tokens.iter().enumerate() {
        let at = at.clone().column(format!("frame_camera_tokens[{step}]"));
        if step >= steps {
            return Err(Error::invalid(at, format!("at most one entry per timestamp ({steps})"), "more"));
        }
        let cameras = frame
            .camera_tokens
            .iter()
            .map(|c| {
                let camera = camera_name(c.camera_name, &at)?;
                if let Some(bad) = c.tokens.iter().find(|&&t| t as usize >= CODEBOOK_ENTRIES) {
                    return Err(Error::invalid(
                        at.clone().detail(format!("camera {camera}")),
                        format!("codebook indices in 0..{CODEBOOK_ENTRIES}"),
                        bad.to_string(),
                    ));
                }
                Ok((camera, c.tokens.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        out.camera_tokens.push((step, cameras));
    }
    Ok(out)
}

/// The sensor data of every scenario in a WOMD TFRecord, with the scenario ids.
pub fn read_scenario_sensors(path: impl AsRef<Path>) -> Result<Vec<(String, ScenarioSensors)>> {
    super::tfrecord::DecodedRecords::open(path, decode_scenario_sensors)?.collect()
}

/// The scenario id and sensor data of one serialized `Scenario`.
pub fn decode_scenario_sensors(bytes: &[u8], at: &Location) -> Result<(String, ScenarioSensors)> {
    let msg = proto::Scenario::decode(bytes).map_err(|e| Error::decode(at.clone(), "Scenario protobuf", e))?;
    Ok((msg.scenario_id.clone().unwrap_or_default(), scenario_sensors(&msg, at)?))
}

/// A serialized `Scenario`'s history LiDAR as frames (segment = the scenario id), each with
/// the scenario's agents valid at that step as 3-D boxes in the vehicle frame (the SDC left
/// out, types mapped to box types, velocities rotated in): what the points stage and the
/// scene elements read from a v1 or v2 frame. A sensor-only record gives frames without boxes.
pub fn sensor_frames(bytes: &[u8], at: &Location) -> Result<Vec<(usize, Frame)>> {
    let msg = proto::Scenario::decode(bytes).map_err(|e| Error::decode(at.clone(), "Scenario protobuf", e))?;
    let mut frames = scenario_sensors(&msg, at)?.lidar;
    if msg.tracks.is_empty() || frames.is_empty() {
        return Ok(frames);
    }
    let scenario = super::womd::convert_scenario(&msg, at)?;
    for (step, frame) in &mut frames {
        let Some(pose) = frame.vehicle_pose else { continue };
        frame.lidar_boxes = agent_boxes(&scenario, *step, &pose);
    }
    Ok(frames)
}

/// The agents valid at `step` (not the SDC) as boxes in the frame of `pose` (vehicle → world).
fn agent_boxes(s: &Scenario, step: usize, pose: &Transform) -> Vec<LidarBox> {
    let to_vehicle = pose.inverse_rigid();
    let yaw = pose.yaw();
    let (sin, cos) = (-yaw).sin_cos();
    s.tracks
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != s.sdc_track_index)
        .filter_map(|(_, t)| {
            let a = t.states.get(step).filter(|a| a.valid)?;
            let center = to_vehicle.apply(&Vector3::new(a.x, a.y, a.z));
            let (vx, vy) = (a.velocity_x as f64, a.velocity_y as f64);
            Some(LidarBox {
                object_id: t.id.to_string(),
                bbox: Box3d {
                    center,
                    size: Vector3::new(a.length as f64, a.width as f64, a.height as f64),
                    heading: normalize_angle(a.heading as f64 - yaw),
                },
                kind: match t.agent_type {
                    AgentType::Vehicle => BoxType::Vehicle,
                    AgentType::Pedestrian => BoxType::Pedestrian,
                    AgentType::Cyclist => BoxType::Cyclist,
                    AgentType::Unset | AgentType::Other => BoxType::Unknown,
                },
                num_lidar_points_in_box: 0,
                num_top_lidar_points_in_box: 0,
                speed: Vector3::new(cos * vx - sin * vy, sin * vx + cos * vy, 0.0),
                acceleration: Vector3::zeros(),
                detection_difficulty: DifficultyLevel::Unknown,
                tracking_difficulty: DifficultyLevel::Unknown,
            })
        })
        .collect()
}

/// One step's lasers as a frame; `column` names the step's entry in errors.
fn lidar_frame(
    data: &proto::CompressedFrameLaserData,
    segment: &str,
    micros: i64,
    at: &Location,
    column: &str,
) -> Result<Frame> {
    let within = |field: &str| at.clone().column(format!("{column}.{field}"));
    let calibrations = data
        .laser_calibrations
        .iter()
        .map(|c| laser_calibration(c, &within("laser_calibrations")))
        .collect::<Result<Vec<_>>>()?;
    let mut frame = Frame {
        segment: segment.to_string(),
        timestamp_micros: micros,
        vehicle_pose: data.pose.as_ref().map(|t| transform(t, &within("pose"))).transpose()?,
        ..Frame::default()
    };
    for l in &data.lasers {
        let name = laser_name(l.name, &within("lasers"))?;
        let laser_at = |rest: &str| within(&format!("lasers[{name}]{rest}"));
        let at = laser_at("");
        let mut laser = LaserFrame::new(name);
        laser.calibration = calibrations.iter().find(|c| c.laser == name).cloned();
        if laser.calibration.is_none() {
            return Err(Error::invalid(at, "a laser_calibrations entry for the laser", "none"));
        }
        if let Some(r) = &l.ri_return1 {
            let at = laser_at(".ri_return1");
            laser.return1 = field(&r.range_image_delta_compressed, 4, &at, "range_image_delta_compressed")?;
            laser.pose = field(&r.range_image_pose_delta_compressed, 6, &at, "range_image_pose_delta_compressed")?;
        }
        if let Some(r) = &l.ri_return2 {
            let at = laser_at(".ri_return2");
            laser.return2 = field(&r.range_image_delta_compressed, 4, &at, "range_image_delta_compressed")?;
        }
        for image in [&laser.return1, &laser.return2].into_iter().flatten() {
            super::v2::records::finite_ranges(image)
                .map_err(|(expected, found)| Error::invalid(at.clone(), expected, found))?;
        }
        frame.lasers.push(laser);
    }
    Ok(frame)
}

/// An optional compressed image of `channels` channels (`None` when absent or empty).
fn field(bytes: &Option<Vec<u8>>, channels: usize, at: &Location, name: &str) -> Result<Option<RangeImage<f32>>> {
    let Some(bytes) = bytes.as_deref().filter(|b| !b.is_empty()) else { return Ok(None) };
    let at = at.clone().detail(name);
    let image = decode_delta(bytes, &at)?;
    if image.channels != channels {
        return Err(Error::invalid(at, format!("a [H, W, {channels}] image"), format!("{:?}", image.shape())));
    }
    Ok(Some(image))
}

/// Decodes one zlib-compressed, delta-encoded image (see the module documentation).
pub fn decode_delta(bytes: &[u8], at: &Location) -> Result<RangeImage<f32>> {
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take((MAX_VALUES * 10) as u64)
        .read_to_end(&mut raw)
        .map_err(|e| Error::decode(at.clone(), "a zlib stream", e))?;
    let msg = proto::DeltaEncodedData::decode(raw.as_slice())
        .map_err(|e| Error::decode(at.clone(), "DeltaEncodedData", e))?;
    let meta = msg.metadata.unwrap_or_default();
    let bad = |expected: &str, found: String| Error::invalid(at.clone(), expected.to_string(), found);
    let [h, w, c] = meta.shape[..] else {
        return Err(bad("metadata.shape [H, W, C]", format!("{:?}", meta.shape)));
    };
    if h < 0 || w < 0 || c <= 0 || (h as usize) * (w as usize) * (c as usize) > MAX_VALUES {
        return Err(bad(
            &format!("metadata.shape [H, W, C] of at most {MAX_VALUES} values"),
            format!("{:?}", meta.shape),
        ));
    }
    let (h, w, c) = (h as usize, w as usize, c as usize);
    if meta.quant_precision.len() != c || meta.quant_precision.iter().any(|p| !(p.is_finite() && *p > 0.0)) {
        return Err(bad(
            &format!("{c} positive quant_precision values (one per channel)"),
            format!("{:?}", meta.quant_precision),
        ));
    }
    let n = h * w * c;
    // The mask's runs alternate non-zero, zero, non-zero…, starting with non-zero.
    let total: u64 = msg.mask.iter().map(|&r| r as u64).sum();
    if total != n as u64 {
        return Err(bad(&format!("mask runs covering the {n} values of the shape"), format!("{total} values")));
    }
    let nonzero: u64 = msg.mask.iter().step_by(2).map(|&r| r as u64).sum();
    if nonzero != msg.residual.len() as u64 {
        return Err(bad(&format!("one residual per non-zero value ({nonzero})"), format!("{}", msg.residual.len())));
    }
    // Channel-major quantized values, then [H, W, C] scaled by each channel's precision.
    let mut values = vec![0.0f32; n];
    let (mut pos, mut acc, mut next) = (0usize, 0i64, msg.residual.iter());
    for (k, &run) in msg.mask.iter().enumerate() {
        let run = run as usize;
        if k % 2 == 0 {
            for i in pos..pos + run {
                let r = next.next().copied().unwrap_or(0);
                acc = acc
                    .checked_add(r)
                    .ok_or_else(|| bad("residuals whose running sum fits 64 bits", "an overflow".into()))?;
                let (ch, pixel) = (i / (h * w), i % (h * w));
                values[pixel * c + ch] = (acc as f64 * meta.quant_precision[ch] as f64) as f32;
            }
        }
        pos += run;
    }
    RangeImage::new([h, w, c], values).map_err(|e| bad("an image of its shape", e))
}

/// WOMD's camera codebook (`womd_camera_codebook.npy`: `[8192, 32]` little-endian float32).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraCodebook {
    values: Vec<f32>,
    dim: usize,
}

impl CameraCodebook {
    /// Reads the `.npy` file (version 1 or 2 header, `<f4`, C order, two dimensions).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let at = Location::file(path);
        let bytes = std::fs::read(path).map_err(|e| Error::io(at.clone(), e))?;
        let bad = |found: String| Error::invalid(at.clone(), "a .npy file of <f4 values, C order, shape (N, D)", found);
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(bad("no .npy magic".into()));
        }
        let (header_len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
            v => return Err(bad(format!("format version {v}"))),
        };
        let header = bytes.get(start..start + header_len).ok_or_else(|| bad("a truncated header".into()))?;
        let header = String::from_utf8_lossy(header);
        if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
            return Err(bad(header.trim().to_string()));
        }
        let shape: Vec<usize> = header
            .split("'shape': (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .map(|s| s.split(',').filter_map(|d| d.trim().parse().ok()).collect())
            .unwrap_or_default();
        let [entries, dim] = shape[..] else { return Err(bad(format!("shape {shape:?}"))) };
        let data = &bytes[start + header_len..];
        if data.len() != entries * dim * 4 {
            return Err(bad(format!("{} data bytes for shape ({entries}, {dim})", data.len())));
        }
        let values = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok(CameraCodebook { values, dim })
    }

    pub fn entries(&self) -> usize {
        self.values.len() / self.dim.max(1)
    }
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embedding of each token, `[tokens, D]` row-major; a token past the codebook is an
    /// error naming it.
    pub fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(tokens.len() * self.dim);
        for &t in tokens {
            let row = self.values.get(t as usize * self.dim..(t as usize + 1) * self.dim).ok_or_else(|| {
                Error::invalid(
                    Location::default().detail("camera tokens"),
                    format!("indices below {}", self.entries()),
                    t.to_string(),
                )
            })?;
            out.extend_from_slice(row);
        }
        Ok(out)
    }
}
