//! Image codecs for camera data: JPEG camera images and uint16 PNG panoptic labels.

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, RgbImage};

use crate::error::{Error, Location, Result, guard_decoder};

/// The largest camera image decoded (Waymo's are 2.5 Mpixel): a header claiming more is an
/// error before anything is allocated, not gigabytes of memory.
pub const MAX_JPEG_PIXELS: u64 = 64 << 20;

/// The width and height a JPEG's header claims, checked against [`MAX_JPEG_PIXELS`].
pub fn jpeg_dimensions(bytes: &[u8], at: &Location) -> Result<(u32, u32)> {
    use image::ImageDecoder;
    guard_decoder(at, "JPEG image", || {
        let decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes))
            .map_err(|e| Error::decode(at.clone(), "JPEG image", e))?;
        let (w, h) = decoder.dimensions();
        if w as u64 * h as u64 > MAX_JPEG_PIXELS {
            return Err(Error::invalid(
                at.clone(),
                format!("a camera image of at most {} Mpixel", MAX_JPEG_PIXELS >> 20),
                format!("a JPEG header claiming {w}x{h}"),
            ));
        }
        Ok((w, h))
    })
}

/// Decodes a camera JPEG to RGB.
pub fn decode_jpeg(bytes: &[u8], at: &Location) -> Result<RgbImage> {
    jpeg_dimensions(bytes, at)?;
    guard_decoder(at, "JPEG image", || {
        let img = image::load_from_memory_with_format(bytes, ImageFormat::Jpeg)
            .map_err(|e| Error::decode(at.clone(), "JPEG image", e))?;
        Ok(img.into_rgb8())
    })
}

/// Decodes a camera JPEG to RGB into `img`, reusing its memory when the size allows (a
/// stream of same-sized frames then decodes without fresh pages: on these machines
/// first-touch page faults cost about a sixth of the decode). Grey JPEGs are widened
/// as [`decode_jpeg`] does. On error `img` is left empty.
pub fn decode_jpeg_into(bytes: &[u8], at: &Location, img: &mut RgbImage) -> Result<()> {
    use image::ImageDecoder;
    let bad = |e: image::ImageError| Error::decode(at.clone(), "JPEG image", e);
    let mut buf = std::mem::take(img).into_raw();
    let (w, h) = jpeg_dimensions(bytes, at)?;
    let decoded = guard_decoder(at, "JPEG image", || {
        let decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes)).map_err(bad)?;
        if decoder.color_type() != image::ColorType::Rgb8 {
            return Ok(None);
        }
        let len = usize::try_from(decoder.total_bytes())
            .map_err(|_| Error::invalid(at.clone(), "a JPEG that fits in memory", format!("{w}x{h}")))?;
        // Zeroed, not only resized: a corrupt stream ends the decode early without an error,
        // and the rest must read as decode_jpeg's black, not as the previous frame's pixels.
        buf.clear();
        buf.resize(len, 0);
        decoder.read_image(&mut buf).map_err(bad)?;
        Ok(Some(len))
    })?;
    *img = match decoded {
        None => decode_jpeg(bytes, at)?,
        Some(len) => RgbImage::from_raw(w, h, buf)
            .ok_or_else(|| Error::invalid(at.clone(), format!("{len} bytes of RGB for {w}x{h}"), "fewer"))?,
    };
    Ok(())
}

/// Decodes a single-channel PNG into `(width, height, row-major values)`.
///
/// Panoptic labels are 16-bit; an 8-bit grey PNG is widened without scaling so that its
/// values mean the same thing. Colour PNGs are rejected: their values are not labels.
pub fn decode_png_u16(bytes: &[u8], at: &Location) -> Result<(u32, u32, Vec<u16>)> {
    let img = guard_decoder(at, "uint16 PNG", || {
        image::load_from_memory_with_format(bytes, ImageFormat::Png)
            .map_err(|e| Error::decode(at.clone(), "uint16 PNG", e))
    })?;
    let (w, h) = (img.width(), img.height());
    match img {
        DynamicImage::ImageLuma16(buf) => Ok((w, h, buf.into_raw())),
        DynamicImage::ImageLuma8(buf) => Ok((w, h, buf.into_raw().into_iter().map(u16::from).collect())),
        other => Err(Error::invalid(
            at.clone(),
            "a single-channel (grey) 16-bit PNG",
            format!("a PNG of colour type {:?}", other.color()),
        )),
    }
}

/// Encodes `width × height` row-major values as a 16-bit grey PNG; `at` is where it will go.
pub fn encode_png_u16(width: u32, height: u32, values: &[u16], at: &Location) -> Result<Vec<u8>> {
    let at = at.clone().detail("encoding a uint16 PNG");
    let buf: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_raw(width, height, values.to_vec()).ok_or_else(|| {
            Error::invalid(
                at.clone(),
                format!("{} values for {width}×{height}", width as u64 * height as u64),
                values.len().to_string(),
            )
        })?;
    let mut out = Cursor::new(Vec::new());
    buf.write_to(&mut out, ImageFormat::Png).map_err(|e| Error::decode(at, "PNG encoder", e))?;
    Ok(out.into_inner())
}

/// Encodes an RGB image as JPEG (baseline; `quality` is 1-100, full-resolution chroma (4:4:4)
/// from 90 up, 4:2:0 below).
pub fn encode_jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let (w, h) = rgb.dimensions();
    encode_jpeg_rgb(rgb.as_raw(), w, h, quality)
}

/// [`encode_jpeg`] of a row-major RGB buffer of `width × height` pixels.
pub fn encode_jpeg_rgb(rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>> {
    let at = Location::default().detail("encoding a JPEG");
    let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
        return Err(Error::invalid(at, "a JPEG of at most 65535×65535 pixels", format!("{width}×{height}")));
    };
    if rgb.len() != w as usize * h as usize * 3 {
        return Err(Error::invalid(
            at,
            format!("{} RGB bytes for {w}×{h}", w as usize * h as usize * 3),
            rgb.len().to_string(),
        ));
    }
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    enc.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb).map_err(|e| Error::decode(at, "JPEG encoder", e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_u16_round_trips() {
        let vals: Vec<u16> = (0..12).map(|i| i * 5003).collect();
        let png = encode_png_u16(4, 3, &vals, &Location::default()).expect("encode");
        let (w, h, back) = decode_png_u16(&png, &Location::file("x.png")).expect("decode");
        assert_eq!((w, h), (4, 3));
        assert_eq!(back, vals);
        assert!(encode_png_u16(4, 4, &vals, &Location::default()).is_err());
    }

    #[test]
    fn jpeg_round_trips_approximately() {
        let img = RgbImage::from_fn(16, 8, |x, y| image::Rgb([(x * 16) as u8, (y * 32) as u8, 128]));
        let jpg = encode_jpeg(&img, 95).expect("encode");
        let back = decode_jpeg(&jpg, &Location::file("x.jpg")).expect("decode");
        assert_eq!(back.dimensions(), (16, 8));
        let diff = back.get_pixel(5, 5).0[2] as i32 - 128;
        assert!(diff.abs() < 10);
    }

    #[test]
    fn garbage_jpeg_names_location() {
        let at = Location::file("seg.tfrecord").record(3).detail("camera FRONT");
        let err = decode_jpeg(&[0xff, 0xd8, 0xff, 0x00, 1, 2, 3], &at).expect_err("garbage");
        let msg = err.to_string();
        assert!(matches!(err, Error::Decode { .. }));
        assert!(msg.contains("record 3") && msg.contains("camera FRONT") && msg.contains("JPEG"), "{msg}");
    }
}
