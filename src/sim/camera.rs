//! The five synthetic cameras: a Waymo-like rig, rendering with lens distortion, JPEG
//! images, panoptic labels, 2-D boxes and the LiDAR → camera projection image.
//!
//! Distortion: the scene is rasterized into an undistorted pinhole image (same focal
//! lengths, just large enough to hold every direction the distorted image sees), then every
//! output pixel takes the pinhole pixel in its exact undistorted direction
//! ([`CameraModel::image_to_direction`]), nearest neighbour. Rasterizing straight lines in
//! pinhole space is exact and cheap; the remap is one table lookup per pixel (the table is
//! built once per calibration), and nearest sampling keeps image, class and instance
//! consistent pixel for pixel. Warping triangles instead would bend their edges.

use std::collections::HashMap;

use nalgebra::Vector3;
use rayon::prelude::*;

use crate::error::Result;
use crate::geom::{CameraModel, pose::rotation_of, project_box_to_image, transform_box};
use crate::io::image::encode_jpeg_rgb;
use crate::scene::{
    Box2d, BoxAssociation, CameraBox, CameraCalibration, CameraFrame, CameraName, CameraSegClass, DifficultyLevel,
    ImageMotion, Intrinsics, PanopticLabel, RangeImage, RollingShutterDirection, Transform,
};
use crate::sim::raster::{GBuffer, Light, NO_FACE, Pinhole, Rigid, rasterize};
use crate::sim::raster_scene::{NoiseCache, SceneFaces, lit, sky, texture_cached};
use crate::sim::snapshot::{P3, Snapshot};

/// Waymo's `panoptic_label_divisor`.
pub const PANOPTIC_DIVISOR: i32 = 1000;
/// Camera order of the LiDAR → camera projection (Waymo's).
pub const PROJECTION_ORDER: [CameraName; 5] =
    [CameraName::Front, CameraName::FrontLeft, CameraName::FrontRight, CameraName::SideLeft, CameraName::SideRight];
/// Grid spacing (output pixels) of the exactly computed undistortion; pixels between are
/// interpolated bilinearly (the distortion is a smooth polynomial: error ≪ 0.01 px).
const REMAP_STEP: usize = 8;

/// One camera of the built-in rig: name, full size, intrinsics and roof position.
type RigEntry = (CameraName, u32, u32, [f64; 8], [f64; 4]);

/// The five Waymo cameras: sizes and focal lengths divided by `scale` (1 = full size,
/// 1920×1280 front cameras and 1920×886 side cameras). Extrinsics are on the roof, yawed
/// 0°, ±45°, ±90°; global shutter.
pub fn camera_rig(scale: u32) -> Vec<CameraCalibration> {
    let s = scale.max(1) as f64;
    // (name, width, height, [f_u, f_v, c_u, c_v, k1, k2, p1, p2], [x, y, z, yaw°])
    #[rustfmt::skip]
    let rig: [RigEntry; 5] = [
        (CameraName::Front, 1920, 1280, [2056.0, 2056.0, 946.0, 648.0, 0.032, -0.31, 4e-4, -2e-4], [1.54, -0.02, 2.12, 0.0]),
        (CameraName::FrontLeft, 1920, 1280, [2070.0, 2070.0, 962.0, 633.0, 0.028, -0.29, -3e-4, 3e-4], [1.50, 0.09, 2.11, 45.0]),
        (CameraName::FrontRight, 1920, 1280, [2062.0, 2062.0, 955.0, 641.0, 0.030, -0.30, 2e-4, 1e-4], [1.49, -0.10, 2.12, -45.0]),
        (CameraName::SideLeft, 1920, 886, [2045.0, 2045.0, 952.0, 447.0, 0.034, -0.32, -1e-4, -3e-4], [1.43, 0.12, 2.11, 90.0]),
        (CameraName::SideRight, 1920, 886, [2049.0, 2049.0, 968.0, 440.0, 0.031, -0.30, 3e-4, 2e-4], [1.42, -0.13, 2.11, -90.0]),
    ];
    rig.iter()
        .map(|(camera, w, h, k, e)| CameraCalibration {
            camera: *camera,
            intrinsic: Intrinsics {
                f_u: k[0] / s,
                f_v: k[1] / s,
                c_u: k[2] / s,
                c_v: k[3] / s,
                k1: k[4],
                k2: k[5],
                p1: k[6],
                p2: k[7],
                k3: 0.0,
            },
            extrinsic: crate::geom::transform_from_rpy_xyz(0.0, 0.0, e[3].to_radians(), e[0], e[1], e[2]),
            width: ((*w as f64 / s).round() as u32).max(1),
            height: ((*h as f64 / s).round() as u32).max(1),
            rolling_shutter: RollingShutterDirection::GlobalShutter,
        })
        .collect()
}

/// Settings of the camera sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraOptions {
    /// JPEG quality, 1-100.
    pub jpeg_quality: u8,
    /// Objects with fewer visible pixels get no `camera_box`.
    pub min_visible_pixels: usize,
    pub light: Light,
}

impl CameraOptions {
    /// Defaults for a rig from [`camera_rig`]`(scale)`: the 20-pixel visibility threshold
    /// shrinks with the image area.
    pub fn for_scale(scale: u32) -> Self {
        let s2 = (scale.max(1) as usize).pow(2);
        CameraOptions { jpeg_quality: 90, min_visible_pixels: (20 / s2).max(2), light: Light::default() }
    }
}

impl Default for CameraOptions {
    fn default() -> Self {
        CameraOptions::for_scale(1)
    }
}

/// One camera, ready to render: its model and the distortion remap table.
#[derive(Debug, Clone)]
pub struct CameraRenderer {
    pub calibration: CameraCalibration,
    pub model: CameraModel,
    /// The undistorted image that is rasterized.
    pub pinhole: Pinhole,
    /// Per output pixel (row-major), the index of its pinhole pixel.
    remap: Vec<u32>,
}

/// A rendered image with its per-pixel labels, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedImage {
    pub width: usize,
    pub height: usize,
    /// Row-major RGB.
    pub rgb: Vec<u8>,
    pub class: Vec<CameraSegClass>,
    /// 1-based index into `Snapshot::objects`; 0 for the static world and sky.
    pub object: Vec<u32>,
}

impl CameraRenderer {
    /// Builds the remap table (rayon-parallel; the expensive part is done once here).
    pub fn new(calib: &CameraCalibration) -> Self {
        let model = CameraModel::new(calib);
        let (w, h) = (calib.width.max(1) as usize, calib.height.max(1) as usize);
        let k = calib.intrinsic;
        // The undistorted extent: the border of the distorted image (its extremes are on the
        // border for the mild barrel distortion of the rig), plus a margin.
        let (mut u0, mut u1, mut v0, mut v1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        let mut extend = |u: f64, v: f64| {
            let (un, vn) = model.image_to_direction(u, v);
            u0 = u0.min(un * k.f_u);
            u1 = u1.max(un * k.f_u);
            v0 = v0.min(vn * k.f_v);
            v1 = v1.max(vn * k.f_v);
        };
        for x in 0..=w {
            extend(x as f64, 0.0);
            extend(x as f64, h as f64);
        }
        for y in 0..=h {
            extend(0.0, y as f64);
            extend(w as f64, y as f64);
        }
        let margin = 2.0;
        let pinhole = Pinhole {
            f_u: k.f_u,
            f_v: k.f_v,
            c_u: margin - u0.floor(),
            c_v: margin - v0.floor(),
            width: ((u1.ceil() - u0.floor()) + 2.0 * margin) as usize,
            height: ((v1.ceil() - v0.floor()) + 2.0 * margin) as usize,
        };
        let remap = remap_table(&model, &pinhole, w, h);
        CameraRenderer { calibration: calib.clone(), model, pinhole, remap }
    }

    /// Camera → world at a vehicle pose.
    fn cam_to_world(&self, ego_pose: &Transform) -> Transform {
        ego_pose.compose(&self.calibration.extrinsic)
    }

    /// Renders the faces of a snapshot.
    pub fn render(&self, faces: &SceneFaces, ego_pose: &Transform, light: &Light) -> RenderedImage {
        let c2w = self.cam_to_world(ego_pose);
        let w2c = c2w.inverse_rigid();
        let w2c = Rigid::new(&rotation_of(&w2c), &w2c.translation());
        let c2w = Rigid::new(&rotation_of(&c2w), &c2w.translation());
        let g = rasterize(&self.pinhole, &w2c, light, faces.len(), |i| faces.get(i));
        self.shade(&g, faces, &c2w)
    }

    /// Remaps the pinhole G-buffer to the distorted image and shades each output pixel.
    fn shade(&self, g: &GBuffer, faces: &SceneFaces, c2w: &Rigid) -> RenderedImage {
        let (w, h) = (self.calibration.width as usize, self.calibration.height as usize);
        let pin = &self.pinhole;
        let mut rgb = vec![0u8; w * h * 3];
        let mut class = vec![CameraSegClass::Sky; w * h];
        let mut object = vec![0u32; w * h];
        rgb.par_chunks_mut(w * 3).zip(class.par_chunks_mut(w)).zip(object.par_chunks_mut(w)).enumerate().for_each(
            |(row, ((rgb, class), object))| {
                let mut cache = NoiseCache::default();
                let pw = pin.width as u32;
                let (inv_fu, inv_fv) = (1.0 / pin.f_u, 1.0 / pin.f_v);
                for x in 0..w {
                    let idx32 = self.remap[row * w + x];
                    let idx = idx32 as usize;
                    // Direction of the pinhole pixel centre, camera frame (x = 1).
                    let pv = idx32 / pw;
                    let (iu, iv) = ((idx32 - pv * pw) as f64 + 0.5, pv as f64 + 0.5);
                    let d = [1.0, -(iu - pin.c_u) * inv_fu, -(iv - pin.c_v) * inv_fv];
                    let f = g.face[idx];
                    let px = if f == NO_FACE {
                        let dw = c2w.rotate(d);
                        let n = (dw[0] * dw[0] + dw[1] * dw[1] + dw[2] * dw[2]).sqrt();
                        sky(dw[2] / n)
                    } else {
                        let (albedo, cls, obj) = faces.surface(f as usize);
                        let depth = 1.0 / g.inv_depth[idx] as f64;
                        let p = c2w.apply([depth, d[1] * depth, d[2] * depth]);
                        class[x] = cls;
                        object[x] = obj;
                        lit(albedo, g.shade[f as usize] * texture_cached(cls, p, &mut cache))
                    };
                    rgb[x * 3..x * 3 + 3].copy_from_slice(&px);
                }
            },
        );
        RenderedImage { width: w, height: h, rgb, class, object }
    }
}

/// Output pixel → pinhole pixel index, exact undistortion on a grid and bilinear between.
fn remap_table(model: &CameraModel, pin: &Pinhole, w: usize, h: usize) -> Vec<u32> {
    let nodes = |n: usize| -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).step_by(REMAP_STEP).collect();
        if v.last() != Some(&(n - 1)) {
            v.push(n - 1);
        }
        v
    };
    let (gx, gy) = (nodes(w), nodes(h));
    // Pinhole pixel coordinates of each grid node.
    let grid: Vec<[f64; 2]> = gy
        .par_iter()
        .flat_map_iter(|&y| {
            gx.iter().map(move |&x| {
                let (un, vn) = model.image_to_direction(x as f64 + 0.5, y as f64 + 0.5);
                [pin.c_u + un * pin.f_u, pin.c_v + vn * pin.f_v]
            })
        })
        .collect();
    // For each output coordinate: its grid cell and the weight of the far node.
    let cells = |g: &[usize], n: usize| -> Vec<(usize, f64)> {
        let mut i = 0;
        (0..n)
            .map(|p| {
                while i + 2 < g.len() && p >= g[i + 1] {
                    i += 1;
                }
                let span = g.get(i + 1).map_or(1, |&e| (e - g[i]).max(1));
                (i, ((p - g[i]) as f64 / span as f64).min(1.0))
            })
            .collect()
    };
    let (cx, cy) = (cells(&gx, w), cells(&gy, h));
    let nx = gx.len();
    let at = |i: usize, j: usize| grid[j.min(gy.len() - 1) * nx + i.min(nx - 1)];
    let mut table = vec![0u32; w * h];
    table.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let (j, ty) = cy[y];
        for (x, out) in row.iter_mut().enumerate() {
            let (i, tx) = cx[x];
            let (a, b, c, d) = (at(i, j), at(i + 1, j), at(i, j + 1), at(i + 1, j + 1));
            let lerp = |k: usize| {
                let top = a[k] + (b[k] - a[k]) * tx;
                let bot = c[k] + (d[k] - c[k]) * tx;
                top + (bot - top) * ty
            };
            let u = (lerp(0).floor().max(0.0) as usize).min(pin.width - 1);
            let v = (lerp(1).floor().max(0.0) as usize).min(pin.height - 1);
            *out = (v * pin.width + u) as u32;
        }
    });
    table
}

/// Everything the cameras produce at one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CameraObservation {
    /// One per camera, in rig order.
    pub frames: Vec<CameraFrame>,
    /// Tight boxes of visible instance masks (ids `<laser id>_<CAMERA>`).
    pub camera_boxes: Vec<CameraBox>,
    /// 3-D boxes projected with Waymo's rule (ids = laser object ids).
    pub projected_lidar_boxes: Vec<CameraBox>,
    pub associations: Vec<BoxAssociation>,
}

/// The camera rig, ready to observe snapshots.
#[derive(Debug, Clone)]
pub struct CameraSensor {
    pub cameras: Vec<CameraRenderer>,
    pub options: CameraOptions,
}

impl CameraSensor {
    /// Prepares every camera of `rig` (see [`CameraRenderer::new`]).
    pub fn new(rig: &[CameraCalibration], options: CameraOptions) -> Self {
        CameraSensor { cameras: rig.par_iter().map(CameraRenderer::new).collect(), options }
    }

    /// Renders, encodes and labels every camera. `ego_velocity` (world frame, m/s) and
    /// `ego_angular_velocity` (rad/s) go to each image's motion record.
    pub fn observe(
        &self,
        snapshot: &Snapshot,
        ego_velocity: &P3,
        ego_angular_velocity: &P3,
    ) -> Result<CameraObservation> {
        let faces = SceneFaces::new(snapshot);
        let per_camera: Vec<Result<CameraObservation>> = self
            .cameras
            .par_iter()
            .map(|cam| {
                let img = cam.render(&faces, &snapshot.ego_pose, &self.options.light);
                observe_one(cam, &img, snapshot, [ego_velocity, ego_angular_velocity], &self.options)
            })
            .collect();
        let mut out = CameraObservation::default();
        for r in per_camera {
            let o = r?;
            out.frames.extend(o.frames);
            out.camera_boxes.extend(o.camera_boxes);
            out.projected_lidar_boxes.extend(o.projected_lidar_boxes);
            out.associations.extend(o.associations);
        }
        Ok(out)
    }
}

/// Visible extent of one object in one image.
#[derive(Debug, Clone, Copy)]
struct Extent {
    pixels: usize,
    min: [usize; 2],
    max: [usize; 2],
}

fn extents(img: &RenderedImage, n_objects: usize) -> Vec<Option<Extent>> {
    let mut ext: Vec<Option<Extent>> = vec![None; n_objects];
    for (i, &o) in img.object.iter().enumerate() {
        let Some(e) = o.checked_sub(1).and_then(|j| ext.get_mut(j as usize)) else { continue };
        let (x, y) = (i % img.width, i / img.width);
        match e {
            Some(e) => {
                e.pixels += 1;
                e.min = [e.min[0].min(x), e.min[1].min(y)];
                e.max = [e.max[0].max(x), e.max[1].max(y)];
            }
            None => *e = Some(Extent { pixels: 1, min: [x, y], max: [x, y] }),
        }
    }
    ext
}

/// Thing classes get instance ids in the panoptic label; stuff classes do not.
pub fn is_thing(c: CameraSegClass) -> bool {
    use CameraSegClass as C;
    matches!(
        c,
        C::Car
            | C::Truck
            | C::Bus
            | C::OtherLargeVehicle
            | C::Trailer
            | C::Bicycle
            | C::Motorcycle
            | C::Pedestrian
            | C::Cyclist
            | C::Motorcyclist
    )
}

/// The camera-box id of a labelled object on a camera.
pub fn camera_object_id(laser_object_id: &str, camera: CameraName) -> String {
    format!("{laser_object_id}_{}", camera.name())
}

fn observe_one(
    cam: &CameraRenderer,
    img: &RenderedImage,
    snapshot: &Snapshot,
    [ego_velocity, ego_angular_velocity]: [&P3; 2],
    opts: &CameraOptions,
) -> Result<CameraObservation> {
    let calib = &cam.calibration;
    let camera = calib.camera;
    let jpeg = encode_jpeg_rgb(&img.rgb, img.width as u32, img.height as u32, opts.jpeg_quality)?;

    let ext = extents(img, snapshot.objects.len());
    // Panoptic label: local instance ids 1.. in object order (Waymo's local ids, which
    // must stay below the divisor), mapped to the segment-wide `SceneObject::instance`.
    let mut local = vec![0u16; snapshot.objects.len()];
    let (mut local_ids, mut global_ids) = (Vec::new(), Vec::new());
    for (j, o) in snapshot.objects.iter().enumerate() {
        if ext[j].is_some() && is_thing(o.kind.camera_class()) && local_ids.len() + 1 < PANOPTIC_DIVISOR as usize {
            local_ids.push(local_ids.len() as i32 + 1);
            global_ids.push(o.instance as i32);
            local[j] = local_ids.len() as u16;
        }
    }
    let values: Vec<u16> = img
        .class
        .iter()
        .zip(&img.object)
        .map(|(c, &o)| {
            let inst = o.checked_sub(1).map_or(0, |j| local[j as usize]);
            c.value() as u16 * PANOPTIC_DIVISOR as u16 + inst
        })
        .collect();
    let n_inst = local_ids.len();
    let segmentation = PanopticLabel {
        camera,
        divisor: PANOPTIC_DIVISOR,
        width: calib.width,
        height: calib.height,
        values,
        local_instance_ids: local_ids,
        global_instance_ids: global_ids,
        is_tracked: vec![true; n_inst],
        sequence_id: String::new(),
    };

    let t_sec = snapshot.timestamp_micros as f64 * 1e-6;
    let frame = CameraFrame {
        camera,
        calibration: Some(calib.clone()),
        jpeg,
        pose: Some(snapshot.ego_pose),
        motion: ImageMotion {
            linear_velocity: [ego_velocity.x, ego_velocity.y, ego_velocity.z],
            angular_velocity: [ego_angular_velocity.x, ego_angular_velocity.y, ego_angular_velocity.z],
            pose_timestamp: t_sec,
            shutter: 0.0,
            camera_trigger_time: t_sec,
            camera_readout_done_time: t_sec,
        },
        segmentation: Some(segmentation),
    };

    let world_to_vehicle = snapshot.ego_pose.inverse_rigid();
    let mut out = CameraObservation { frames: vec![frame], ..Default::default() };
    for (j, o) in snapshot.objects.iter().enumerate() {
        let (Some(kind), Some(e)) = (o.kind.box_type(), ext[j]) else { continue };
        let cam_box = |bbox: Box2d, object_id: String| CameraBox {
            camera,
            object_id,
            bbox,
            kind,
            detection_difficulty: DifficultyLevel::Unknown,
            tracking_difficulty: DifficultyLevel::Unknown,
        };
        if let Some(b) = project_box_to_image(&transform_box(&o.bbox, &world_to_vehicle), &cam.model) {
            out.projected_lidar_boxes.push(cam_box(b, o.id.clone()));
        }
        if e.pixels >= opts.min_visible_pixels {
            let b = Box2d::from_min_max(e.min[0] as f64, e.min[1] as f64, e.max[0] as f64 + 1.0, e.max[1] as f64 + 1.0);
            let id = camera_object_id(&o.id, camera);
            out.associations.push(BoxAssociation {
                camera,
                camera_object_id: id.clone(),
                laser_object_id: o.id.clone(),
            });
            out.camera_boxes.push(cam_box(b, id));
        }
    }
    Ok(out)
}

/// Number of channels of a LiDAR → camera projection image.
pub const PROJECTION_CHANNELS: usize = 6;

/// The `[H, W, 6]` LiDAR → camera projection image (`lidar_camera_projection`): for each
/// point `(row, column, vehicle-frame xyz)`, `(camera, u, v)` of the first two cameras in
/// [`PROJECTION_ORDER`] whose image contains the point's valid projection; zeros where fewer
/// cameras see it. `u` is measured from the left edge of the first pixel. Points outside
/// `[0, H) × [0, W)` are skipped.
pub fn camera_projection_image(
    points_vehicle: &[(usize, usize, Vector3<f64>)],
    height: usize,
    width: usize,
    cameras: &[CameraCalibration],
) -> RangeImage<f32> {
    let by_name: HashMap<CameraName, CameraModel> = cameras.iter().map(|c| (c.camera, CameraModel::new(c))).collect();
    let ordered: Vec<(CameraName, &CameraModel)> =
        PROJECTION_ORDER.iter().filter_map(|n| by_name.get(n).map(|m| (*n, m))).collect();
    let mut img = RangeImage::zeros(height, width, PROJECTION_CHANNELS);
    for (h, w, p) in points_vehicle {
        if *h >= height || *w >= width {
            continue;
        }
        let mut slot = 0;
        for (name, model) in &ordered {
            if slot == 2 {
                break;
            }
            let Some(pr) = model.project_vehicle_point(p).filter(|pr| pr.in_image) else { continue };
            img.set(*h, *w, slot * 3, name.value() as f32);
            img.set(*h, *w, slot * 3 + 1, pr.u as f32);
            img.set(*h, *w, slot * 3 + 2, pr.v as f32);
            slot += 1;
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rig_distortion_stays_in_range() {
        for calib in camera_rig(1) {
            let m = CameraModel::new(&calib);
            let k = calib.intrinsic;
            for (u, v) in [(0.0, 0.0), (calib.width as f64, 0.0), (0.0, calib.height as f64)] {
                let (un, vn) = m.image_to_direction(u, v);
                let r2 = un * un + vn * vn;
                let rd = 1.0 + k.k1 * r2 + k.k2 * r2 * r2;
                assert!((0.8..=1.2).contains(&rd), "{} {rd}", calib.camera);
                let (bu, bv, valid) = m.direction_to_image(un, vn);
                assert!(valid && (bu - u).abs() < 1e-6 && (bv - v).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn remap_matches_exact_undistortion() {
        let calib = &camera_rig(8)[0];
        let r = CameraRenderer::new(calib);
        let pin = r.pinhole;
        let w = calib.width as usize;
        for (x, y) in [(0usize, 0usize), (13, 77), (w - 1, calib.height as usize - 1), (100, 50)] {
            let (un, vn) = r.model.image_to_direction(x as f64 + 0.5, y as f64 + 0.5);
            let (u, v) = (pin.c_u + un * pin.f_u, pin.c_v + vn * pin.f_v);
            let idx = r.remap[y * w + x] as usize;
            let (iu, iv) = ((idx % pin.width) as f64, (idx / pin.width) as f64);
            assert!((iu - u.floor()).abs() <= 1.0 && (iv - v.floor()).abs() <= 1.0, "{x},{y}");
        }
    }
}
