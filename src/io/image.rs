//! Image decoding and encoding for camera JPEGs and panoptic-label PNGs.

use crate::error::{Error, Location, Result};

/// Decodes a 16-bit grayscale PNG (camera panoptic labels) into `(width, height, values)`.
pub fn decode_png_u16(bytes: &[u8], at: &Location) -> Result<(u32, u32, Vec<u16>)> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| Error::decode(at.clone(), "a uint16 PNG", e))?;
    let (w, h) = (img.width(), img.height());
    Ok((w, h, img.into_luma16().into_raw()))
}

/// Encodes values as a 16-bit grayscale PNG.
pub fn encode_png_u16(width: u32, height: u32, values: &[u16], at: &Location) -> Result<Vec<u8>> {
    let img = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(width, height, values.to_vec())
        .ok_or_else(|| Error::invalid(at.clone(), format!("{width}×{height} label values"), values.len().to_string()))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| Error::decode(at.clone(), "a uint16 PNG (encoding)", e))?;
    Ok(out.into_inner())
}
