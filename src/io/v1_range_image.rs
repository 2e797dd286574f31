//! v1 range images: each image of a `Laser` return is a zlib-compressed, serialized
//! `MatrixFloat` or `MatrixInt32` (`[H, W, C]`, row-major), decoded here into the same
//! [`LaserFrame`] fields the v2 reader fills.

use std::io::Read;

use prost::Message;

use super::proto;
use crate::error::{Error, Location, Result};
use crate::scene::{LaserFrame, RangeImage};

/// A decompressed image is at most this large (TOP's pose image is ~4 MB): a corrupt or
/// hostile stream cannot make the reader allocate without bound.
const MAX_DECOMPRESSED_BYTES: u64 = 512 << 20;

/// Fills `laser` from its v1 returns: range images, TOP's pixel pose (stored with return 1
/// only), camera projections and segmentation. Absent or empty fields stay `None`.
pub fn fill_laser(laser: &mut LaserFrame, msg: &proto::Laser, at: &Location) -> Result<()> {
    let name = laser.laser;
    let at_return = |n: u8| at.clone().column(format!("lasers[{name}].ri_return{n}"));
    if let Some(r) = &msg.ri_return1 {
        let at = at_return(1);
        (laser.return1, laser.camera_projection1, laser.segmentation1) = return_images(r, &at)?;
        laser.pose = float_image(&r.range_image_pose_compressed, 6, &at, "range_image_pose_compressed")?;
    }
    if let Some(r) = &msg.ri_return2 {
        (laser.return2, laser.camera_projection2, laser.segmentation2) = return_images(r, &at_return(2))?;
    }
    Ok(())
}

/// Range image, camera projection (as the float image v2 stores) and segmentation of a return.
type ReturnImages = (Option<RangeImage<f32>>, Option<RangeImage<f32>>, Option<RangeImage<i32>>);

fn return_images(r: &proto::RangeImage, at: &Location) -> Result<ReturnImages> {
    let ranges = float_image(&r.range_image_compressed, 4, at, "range_image_compressed")?;
    let labels = int_image(&r.segmentation_label_compressed, 2, at, "segmentation_label_compressed")?;
    // The checks of the v2 reader: finite ranges, known classes.
    let check = |result: std::result::Result<(), (String, String)>, field: &str| {
        result.map_err(|(expected, found)| Error::invalid(at.clone().detail(field), expected, found))
    };
    if let Some(image) = &ranges {
        check(super::v2::records::finite_ranges(image), "range_image_compressed")?;
    }
    if let Some(image) = &labels {
        check(super::v2::records::known_classes(image), "segmentation_label_compressed")?;
    }
    Ok((
        ranges,
        int_image(&r.camera_projection_compressed, 6, at, "camera_projection_compressed")?.map(|p| p.map(|v| v as f32)),
        labels,
    ))
}

fn float_image(
    bytes: &Option<Vec<u8>>,
    channels: usize,
    at: &Location,
    field: &str,
) -> Result<Option<RangeImage<f32>>> {
    let Some(raw) = inflate(bytes, at, field)? else { return Ok(None) };
    let m = proto::MatrixFloat::decode(raw.as_slice())
        .map_err(|e| Error::decode(at.clone().detail(field), "MatrixFloat protobuf", e))?;
    image(m.data, m.shape, channels, at, field).map(Some)
}

fn int_image(bytes: &Option<Vec<u8>>, channels: usize, at: &Location, field: &str) -> Result<Option<RangeImage<i32>>> {
    let Some(raw) = inflate(bytes, at, field)? else { return Ok(None) };
    let m = proto::MatrixInt32::decode(raw.as_slice())
        .map_err(|e| Error::decode(at.clone().detail(field), "MatrixInt32 protobuf", e))?;
    image(m.data, m.shape, channels, at, field).map(Some)
}

/// The zlib stream's bytes; `None` for an absent or empty field (stripped range images).
fn inflate(bytes: &Option<Vec<u8>>, at: &Location, field: &str) -> Result<Option<Vec<u8>>> {
    let Some(bytes) = bytes.as_deref().filter(|b| !b.is_empty()) else { return Ok(None) };
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::decode(at.clone().detail(field), "a zlib stream", e))?;
    if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(Error::invalid(
            at.clone().detail(field),
            format!("at most {MAX_DECOMPRESSED_BYTES} bytes once decompressed"),
            "more",
        ));
    }
    Ok(Some(out))
}

/// Checks the matrix's shape (`[H, W, channels]`, as many values) and wraps it.
fn image<T: Copy + Default>(
    data: Vec<T>,
    shape: Option<proto::MatrixShape>,
    channels: usize,
    at: &Location,
    field: &str,
) -> Result<RangeImage<T>> {
    let dims = shape.map(|s| s.dims).unwrap_or_default();
    let expected = format!("a [H, W, {channels}] matrix");
    let [h, w, c] = dims[..] else {
        return Err(Error::invalid(at.clone().detail(field), expected, format!("shape {dims:?}")));
    };
    if h < 0 || w < 0 || c as usize != channels {
        return Err(Error::invalid(at.clone().detail(field), expected, format!("shape {dims:?}")));
    }
    let n = data.len();
    RangeImage::new([h as usize, w as usize, c as usize], data).map_err(|_| {
        Error::invalid(
            at.clone().detail(field),
            format!("{h}×{w}×{c} values for shape {dims:?}"),
            format!("{n} values"),
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;
    use crate::scene::LaserName;

    /// A field as Waymo writes it: the serialized matrix, zlib-compressed.
    pub(crate) fn compress(msg: &impl Message) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&msg.encode_to_vec()).expect("writing to memory");
        z.finish().expect("writing to memory")
    }

    fn floats(dims: [i32; 3], data: Vec<f32>) -> Vec<u8> {
        compress(&proto::MatrixFloat { data, shape: Some(proto::MatrixShape { dims: dims.to_vec() }) })
    }

    fn ints(dims: [i32; 3], data: Vec<i32>) -> Vec<u8> {
        compress(&proto::MatrixInt32 { data, shape: Some(proto::MatrixShape { dims: dims.to_vec() }) })
    }

    #[test]
    fn decodes_every_image_of_both_returns() {
        let ri: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32 * 0.5).collect();
        let pose: Vec<f32> = (0..2 * 3 * 6).map(|v| v as f32 * 0.01).collect();
        let proj: Vec<i32> = (0..2 * 3 * 6).collect();
        let seg: Vec<i32> = (0..2 * 3 * 2).map(|v| v % 23).collect();
        let msg = proto::Laser {
            name: Some(1),
            ri_return1: Some(proto::RangeImage {
                range_image_compressed: Some(floats([2, 3, 4], ri.clone())),
                camera_projection_compressed: Some(ints([2, 3, 6], proj.clone())),
                range_image_pose_compressed: Some(floats([2, 3, 6], pose.clone())),
                segmentation_label_compressed: Some(ints([2, 3, 2], seg.clone())),
            }),
            ri_return2: Some(proto::RangeImage {
                range_image_compressed: Some(floats([2, 3, 4], ri.iter().map(|v| v + 1.0).collect())),
                camera_projection_compressed: Some(Vec::new()),
                ..Default::default()
            }),
        };
        let mut laser = LaserFrame::new(LaserName::Top);
        fill_laser(&mut laser, &msg, &Location::file("f.tfrecord")).unwrap();
        let r1 = laser.return1.as_ref().unwrap();
        assert_eq!((r1.shape(), &r1.values), ([2, 3, 4], &ri));
        assert_eq!(laser.pose.as_ref().unwrap().values, pose);
        assert_eq!(laser.camera_projection1.as_ref().unwrap().get(1, 2, 5), 35.0);
        assert_eq!(laser.segmentation1.as_ref().unwrap().values, seg);
        assert_eq!(laser.return2.as_ref().unwrap().get(0, 0, 0), 1.0);
        assert!(laser.camera_projection2.is_none(), "an empty field is absent");
        assert!(laser.segmentation2.is_none());
    }

    #[test]
    fn bad_images_name_laser_return_and_field() {
        let laser_with = |r: proto::RangeImage| proto::Laser { name: Some(2), ri_return1: Some(r), ri_return2: None };
        let cases = [
            (proto::RangeImage { range_image_compressed: Some(b"not zlib".to_vec()), ..Default::default() }, "zlib"),
            (
                proto::RangeImage {
                    range_image_compressed: Some(floats([2, 3, 4], vec![1.0; 5])),
                    ..Default::default()
                },
                "5 values",
            ),
            (
                proto::RangeImage {
                    range_image_pose_compressed: Some(floats([2, 3, 4], vec![0.0; 24])),
                    ..Default::default()
                },
                "[H, W, 6]",
            ),
            (
                proto::RangeImage {
                    range_image_compressed: Some(compress(&proto::MatrixShape { dims: vec![] })),
                    ..Default::default()
                },
                "shape []",
            ),
        ];
        for (r, why) in cases {
            let mut laser = LaserFrame::new(LaserName::Front);
            let e = fill_laser(&mut laser, &laser_with(r), &Location::file("seg.tfrecord").frame(7))
                .unwrap_err()
                .to_string();
            assert!(e.contains("seg.tfrecord") && e.contains("lasers[FRONT].ri_return1"), "{e}");
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
