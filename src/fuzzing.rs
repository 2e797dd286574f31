//! The bodies of the fuzz targets (`fuzz/`, run with `cargo fuzz`), shared with the ordinary
//! test suite (`tests/it/fuzz_smoke.rs` runs them over the committed corpus and a few seconds
//! of seeded mutations). Not part of the library's API.
//!
//! Every body takes arbitrary bytes and feeds them to a reader of user data. Any `Err` is a
//! correct answer; a panic (index out of bounds, overflow, a failed `assert!`), an abort, a
//! hang or an unbounded allocation is a bug. Where a result can be cross-checked cheaply
//! (a point cloud against its range image), the bodies assert that too.
//!
//! Input layouts (the seed encoders below write them):
//!
//! * [`v2_component`]: one byte choosing the component (an index into [`Component::ALL`],
//!   modulo its length), then the bytes of a parquet file.
//! * [`womd_scenario`], [`v1_frame`]: one mode byte, then either a whole TFRecord file (even
//!   mode byte) or one serialized message (odd): a mutated record fails its CRC, so the
//!   message decoders are reached through the second form.
//! * [`range_image`]: see [`RangeImageInput`].
//! * [`jpeg`], [`png_label`]: the image's bytes.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Location;
use crate::geom::range_image::{
    PointCloud, gather_pixels, laser_frame_to_points, points_to_range_image, range_image_to_cartesian,
    range_image_to_points,
};
use crate::io::v2::{self, Component, ComponentFile, Dataset, FrameRequest};
use crate::io::{detect, image, inspect, tfrecord, v1, womd};
use crate::scene::{BeamInclination, Frame, LaserName, LidarCalibration, RangeImage, Transform};

/// A fuzz target: a name (the file under `fuzz/fuzz_targets/` and the corpus folder) and its body.
pub struct Target {
    pub name: &'static str,
    pub body: fn(&[u8]),
}

/// Every target, in the order of `fuzz/Cargo.toml`.
pub const TARGETS: &[Target] = &[
    Target { name: "v2_component", body: v2_component },
    Target { name: "womd_scenario", body: womd_scenario },
    Target { name: "v1_frame", body: v1_frame },
    Target { name: "range_image", body: range_image },
    Target { name: "jpeg", body: jpeg },
    Target { name: "png_label", body: png_label },
];

// ---------------------------------------------------------------------------------------
// Scratch files: the v2 readers take paths.

/// A folder of this thread's own under `/dev/shm` (memory) or else the temp folder, emptied
/// after every input.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() { base.to_path_buf() } else { std::env::temp_dir() };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scratch { dir: base.join(format!("scenetok-fuzz-{}-{n}", std::process::id())) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// Writes `bytes` to `{scratch}/{rel}` and calls `f` with the scratch folder and the file's
/// path; the folder is emptied afterwards, also when `f` panics.
fn with_file<T>(rel: &str, bytes: &[u8], f: impl FnOnce(&Path, &Path) -> T) -> T {
    struct Clean(PathBuf);
    impl Drop for Clean {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = SCRATCH.with(|s| s.borrow_mut().get_or_insert_with(Scratch::new).dir.join("in"));
    let _clean = Clean(dir.clone());
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("scratch folder for fuzz inputs");
    }
    std::fs::File::create(&path).and_then(|mut file| file.write_all(bytes)).expect("scratch file for fuzz inputs");
    f(&dir, &path)
}

// ---------------------------------------------------------------------------------------
// v2 parquet.

/// The segment name of the scratch component file.
const SEGMENT: &str = "fuzz";

/// One component file: opened alone and every record read, then as a one-file dataset
/// (frames joined, labels decoded, points converted), and inspected as the CLI does.
pub fn v2_component(data: &[u8]) {
    let Some((&selector, parquet)) = data.split_first() else { return };
    let component = Component::ALL[selector as usize % Component::ALL.len()];
    let rel = format!("{}/{SEGMENT}.parquet", component.tag());
    with_file(&rel, parquet, |root, path| {
        if let Ok(file) = ComponentFile::open(path, component) {
            let _ = file.deviations();
            let _ = read_every_record(&file);
        }
        if let Ok(ds) = Dataset::open(root) {
            let _ = ds.frame_timestamps(SEGMENT);
            let _ = ds.read_map(SEGMENT);
            if let Ok(frames) = ds.frames(SEGMENT, &FrameRequest::all()) {
                for frame in frames {
                    match frame {
                        Ok(frame) => frame_points(&frame),
                        Err(_) => break,
                    }
                }
            }
        }
        let _ = inspect::inspect(path);
    });
}

/// Reads every row of a component file as its records.
fn read_every_record(f: &ComponentFile) -> crate::Result<usize> {
    use v2::*;
    Ok(match f.component() {
        Component::Lidar => f.read_all::<LidarRecord>()?.len(),
        Component::LidarCalibration => f.read_all::<LidarCalibrationRecord>()?.len(),
        Component::LidarPose => f.read_all::<LidarPoseRecord>()?.len(),
        Component::LidarSegmentation => f.read_all::<LidarSegmentationRecord>()?.len(),
        Component::LidarCameraProjection => f.read_all::<LidarCameraProjectionRecord>()?.len(),
        Component::CameraImage => f.read_all::<CameraImageRecord>()?.len(),
        Component::CameraCalibration => f.read_all::<CameraCalibrationRecord>()?.len(),
        Component::CameraSegmentation => {
            let records = f.read_all::<CameraSegmentationRecord>()?;
            for r in &records {
                let _ = r.decode_label(&Location::file(f.path()));
            }
            records.len()
        }
        Component::LidarBox => f.read_all::<LidarBoxRecord>()?.len(),
        Component::CameraBox => f.read_all::<CameraBoxRecord>()?.len(),
        Component::ProjectedLidarBox => f.read_all::<ProjectedLidarBoxRecord>()?.len(),
        Component::CameraToLidarBoxAssociation => f.read_all::<AssociationRecord>()?.len(),
        Component::VehiclePose => f.read_all::<VehiclePoseRecord>()?.len(),
        Component::Stats => f.read_all::<StatsRecord>()?.len(),
        Component::CameraHkp => f.read_all::<CameraKeypointsRecord>()?.len(),
        Component::MapFeature => f.read_all::<MapFeatureRecord>()?.len(),
    })
}

/// Converts every laser of a frame to points (what every consumer of a frame does first).
fn frame_points(frame: &Frame) {
    for laser in &frame.lasers {
        if let Ok(points) = laser_frame_to_points(laser, frame.vehicle_pose.as_ref()) {
            let calibration = laser.calibration.as_ref();
            for (ri, cloud) in [(&laser.return1, &points.return1), (&laser.return2, &points.return2)] {
                if let (Some(ri), Some(cloud), Some(_)) = (ri, cloud, calibration) {
                    check_cloud(ri, cloud);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// TFRecords.

/// A WOMD `Scenario` TFRecord file, or one serialized `Scenario` (see the module docs).
pub fn womd_scenario(data: &[u8]) {
    tfrecord_or_message(data, womd::decode_scenario);
}

/// A v1 `Frame` TFRecord file, or one serialized `Frame`; decoded frames are converted to points.
pub fn v1_frame(data: &[u8]) {
    tfrecord_or_message(data, |bytes, at| {
        let frame = v1::decode_frame(bytes, at)?;
        frame_points(&frame);
        Ok(frame)
    });
}

fn tfrecord_or_message<T>(data: &[u8], decode: fn(&[u8], &Location) -> crate::Result<T>) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let file = Path::new("fuzz.tfrecord");
    if mode % 2 == 0 {
        let mut records = tfrecord::RecordReader::new(rest, file);
        for (i, record) in records.by_ref().enumerate() {
            let Ok(record) = record else { break };
            let _ = detect::kind_of_record(&record);
            let _ = decode(&record, &Location::file(file).record(i));
        }
    } else {
        let _ = detect::kind_of_record(rest);
        let _ = decode(rest, &Location::file(file).record(0));
    }
}

// ---------------------------------------------------------------------------------------
// Range images.

/// The range-image target's input: a LiDAR calibration, an optional frame pose, and a
/// range image and pixel pose of any shape, values and value count.
///
/// Layout, little-endian: `h: u32, w: u32, c: u8, flags: u8` (h and w modulo 2^17, c
/// modulo 9, the image cut to 2^18 pixels), the extrinsic (16 × f64,
/// row-major), `min: f64, max: f64`, `n: u16` and `n` explicit inclinations (f64; used when
/// flag 1), the frame pose (16 × f64; used when flag 2), then `n: u32` and `n` range-image
/// values (f32), `n: u32` and `n` pixel-pose values (f32; used when flag 4). Missing bytes read
/// as zero. Values shorter than the shape are repeated to fill it unless flag 8 keeps the
/// count as given (a shape/value mismatch); `[h, w, 6]` is the pixel pose's shape unless flag
/// 16 swaps its height and width.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeImageInput {
    pub image: RangeImage<f32>,
    pub calibration: LidarCalibration,
    pub frame_pose: Option<Transform>,
    pub pixel_pose: Option<RangeImage<f32>>,
}

/// Images larger than this many pixels are cut to it (a fuzz input runs in milliseconds).
const MAX_FUZZ_PIXELS: usize = 1 << 18;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn f64(&mut self) -> f64 {
        f64::from_le_bytes(self.take())
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        let n = n.min(self.0.len() / 4);
        let (values, rest) = self.0.split_at(n * 4);
        self.0 = rest;
        values.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
    fn transform(&mut self) -> Transform {
        let mut m = [0.0; 16];
        for v in &mut m {
            *v = self.f64();
        }
        Transform::from_row_major(&m)
    }
}

/// `values` repeated (or cut) to `n`, or as given when `exact`.
fn fill(mut values: Vec<f32>, n: usize, exact: bool) -> Vec<f32> {
    if exact || values.len() == n {
        return values;
    }
    if values.is_empty() {
        return vec![0.0; n];
    }
    let k = values.len();
    values.reserve(n.saturating_sub(k));
    for i in k..n {
        values.push(values[i % k]);
    }
    values.truncate(n);
    values
}

impl RangeImageInput {
    const EXPLICIT_INCLINATIONS: u8 = 1;
    const FRAME_POSE: u8 = 2;
    const PIXEL_POSE: u8 = 4;
    const EXACT_VALUES: u8 = 8;
    const SWAPPED_POSE: u8 = 16;

    pub fn parse(data: &[u8]) -> Self {
        let mut b = Bytes(data);
        // Up to 2^17 rows or columns: the converter takes 65536 and must refuse more.
        let (mut h, mut w) = (b.u32() as usize % (1 << 17), b.u32() as usize % (1 << 17));
        let c = (b.u8() % 9) as usize;
        let flags = b.u8();
        // Small enough for the fuzzer: the longer side is cut (the other is at most 2^17 - 1,
        // under the limit).
        if h * w > MAX_FUZZ_PIXELS {
            if h > w {
                h = (MAX_FUZZ_PIXELS / w).max(1);
            } else {
                w = (MAX_FUZZ_PIXELS / h).max(1);
            }
        }
        let extrinsic = b.transform();
        let (min, max) = (b.f64(), b.f64());
        let n = b.u16() as usize;
        let values: Vec<f64> = (0..n.min(b.0.len() / 8)).map(|_| b.f64()).collect();
        let frame_pose = b.transform();
        let n = b.u32() as usize;
        let image_values = b.f32s(n);
        let n = b.u32() as usize;
        let pose_values = b.f32s(n);
        let exact = flags & Self::EXACT_VALUES != 0;
        let image = RangeImage { height: h, width: w, channels: c, values: fill(image_values, h * w * c, exact) };
        let (ph, pw) = if flags & Self::SWAPPED_POSE != 0 { (w, h) } else { (h, w) };
        let pixel_pose = (flags & Self::PIXEL_POSE != 0).then(|| RangeImage {
            height: ph,
            width: pw,
            channels: 6,
            values: fill(pose_values, ph * pw * 6, exact),
        });
        RangeImageInput {
            image,
            calibration: LidarCalibration {
                laser: LaserName::Top,
                extrinsic,
                beam_inclination: BeamInclination {
                    min,
                    max,
                    values: (flags & Self::EXPLICIT_INCLINATIONS != 0).then_some(values),
                },
            },
            frame_pose: (flags & Self::FRAME_POSE != 0).then_some(frame_pose),
            pixel_pose,
        }
    }

    /// The bytes [`RangeImageInput::parse`] reads back as this input (for seeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        let ri = &self.image;
        let bi = &self.calibration.beam_inclination;
        let mut flags = 0;
        if bi.values.is_some() {
            flags |= Self::EXPLICIT_INCLINATIONS;
        }
        if self.frame_pose.is_some() {
            flags |= Self::FRAME_POSE;
        }
        if self.pixel_pose.is_some() {
            flags |= Self::PIXEL_POSE;
        }
        let mut out = Vec::new();
        out.extend((ri.height as u32).to_le_bytes());
        out.extend((ri.width as u32).to_le_bytes());
        out.push(ri.channels as u8);
        out.push(flags);
        let transform = |out: &mut Vec<u8>, t: &Transform| {
            for v in t.to_row_major() {
                out.extend(v.to_le_bytes());
            }
        };
        transform(&mut out, &self.calibration.extrinsic);
        out.extend(bi.min.to_le_bytes());
        out.extend(bi.max.to_le_bytes());
        let values = bi.values.clone().unwrap_or_default();
        out.extend((values.len() as u16).to_le_bytes());
        for v in values {
            out.extend(v.to_le_bytes());
        }
        transform(&mut out, &self.frame_pose.unwrap_or_else(Transform::identity));
        let floats = |out: &mut Vec<u8>, v: &[f32]| {
            out.extend((v.len() as u32).to_le_bytes());
            for x in v {
                out.extend(x.to_le_bytes());
            }
        };
        floats(&mut out, &ri.values);
        floats(&mut out, self.pixel_pose.as_ref().map_or(&[][..], |p| &p.values));
        out
    }
}

/// Range image → points, Cartesian image, gathered pixels and back to a range image, each
/// result checked against the input.
pub fn range_image(data: &[u8]) {
    let input = RangeImageInput::parse(data);
    let (ri, calib) = (&input.image, &input.calibration);
    let (pixel_pose, frame_pose) = (input.pixel_pose.as_ref(), input.frame_pose.as_ref());
    let Ok(cloud) = range_image_to_points(ri, calib, pixel_pose, frame_pose) else { return };
    check_cloud(ri, &cloud);
    let cartesian = range_image_to_cartesian(ri, calib, pixel_pose, frame_pose)
        .expect("the Cartesian image of a range image that converted to points");
    assert_eq!(cartesian.shape(), [ri.height, ri.width, 3]);
    for (xyz, &[h, w]) in cloud.xyz.iter().zip(&cloud.pixels) {
        let c = cartesian.pixel(h as usize, w as usize);
        for k in 0..3 {
            assert!(
                xyz[k].to_bits() == c[k].to_bits() || (xyz[k].is_nan() && c[k].is_nan()),
                "pixel ({h}, {w}): point {xyz:?} but Cartesian {c:?}"
            );
        }
    }
    let gathered = gather_pixels(ri, &cloud).expect("gathering the cloud's own image");
    assert!(same_bits(&gathered, &cloud.features), "gathered pixels differ from the points' features");
    if ri.height > 0 && ri.width > 0 {
        let _ = points_to_range_image(&cloud.points(), calib, ri.height, ri.width);
    }
}

/// A point cloud against its range image: one point per pixel of valid range (> 0, finite),
/// in row-major pixel order, with that pixel's channels.
fn check_cloud(ri: &RangeImage<f32>, cloud: &PointCloud) {
    let expected: Vec<[u16; 2]> = (0..ri.height)
        .flat_map(|h| (0..ri.width).map(move |w| (h, w)))
        .filter(|&(h, w)| {
            let r = ri.get(h, w, 0);
            r > 0.0 && r.is_finite()
        })
        .map(|(h, w)| [h as u16, w as u16])
        .collect();
    assert_eq!(cloud.pixels, expected, "the points' pixels are the pixels of valid range, in order");
    assert_eq!(cloud.xyz.len(), expected.len());
    assert_eq!((cloud.channels, cloud.source_height, cloud.source_width), (ri.channels, ri.height, ri.width));
    assert_eq!(cloud.features.len(), expected.len() * ri.channels);
    for (i, &[h, w]) in cloud.pixels.iter().enumerate() {
        let want = ri.pixel(h as usize, w as usize);
        let got = cloud.feature(i);
        assert!(same_bits(want, got), "features of point {i}");
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

// ---------------------------------------------------------------------------------------
// Images.

/// Images up to this many pixels are decoded into a buffer left dirty by a "previous frame".
const DIRTY_BUFFER_PIXELS: u64 = 1 << 22;

/// A camera JPEG: its header's size, a decode into a reused buffer that a previous frame of
/// the same size left full of its pixels, and a fresh decode, which must agree.
pub fn jpeg(data: &[u8]) {
    let at = Location::file("fuzz.jpg");
    let dims = image::jpeg_dimensions(data, &at);
    let mut buf = match dims {
        Ok((w, h)) if w as u64 * h as u64 <= DIRTY_BUFFER_PIXELS => {
            ::image::RgbImage::from_pixel(w, h, ::image::Rgb([0xa5, 0x5a, 0xc3]))
        }
        _ => ::image::RgbImage::new(0, 0),
    };
    let into = image::decode_jpeg_into(data, &at, &mut buf);
    let fresh = image::decode_jpeg(data, &at);
    match (&into, &fresh) {
        (Ok(()), Ok(fresh)) => {
            assert!(buf == *fresh, "decode_jpeg_into and decode_jpeg disagree");
            assert_eq!(dims.ok(), Some(fresh.dimensions()), "the header's size is the image's");
        }
        (Err(_), _) => assert!(buf.is_empty(), "an image left behind by a failed decode"),
        _ => {}
    }
}

/// A panoptic label PNG (16-bit grey; 8-bit grey widened; anything else an error).
pub fn png_label(data: &[u8]) {
    if let Ok((w, h, values)) = image::decode_png_u16(data, &Location::file("fuzz.png")) {
        assert_eq!(values.len() as u64, w as u64 * h as u64, "one value per pixel");
    }
}

// ---------------------------------------------------------------------------------------
// Seed encoders.

/// A [`v2_component`] input: the component's selector byte, then the file.
pub fn v2_component_input(component: Component, parquet: &[u8]) -> Vec<u8> {
    let selector = Component::ALL.iter().position(|c| *c == component).expect("a known component") as u8;
    [&[selector][..], parquet].concat()
}

/// A [`womd_scenario`] / [`v1_frame`] input holding a whole TFRecord file.
pub fn tfrecord_input(file: &[u8]) -> Vec<u8> {
    [&[0u8][..], file].concat()
}

/// A [`womd_scenario`] / [`v1_frame`] input holding one serialized message.
pub fn message_input(message: &[u8]) -> Vec<u8> {
    [&[1u8][..], message].concat()
}
