//! Reading and writing Waymo data: v2 parquet components, WOMD `Scenario` and v1 `Frame`
//! TFRecords.

pub mod detect;
pub mod fixture;
pub mod image;
pub mod inspect;
pub mod proto;
pub mod tfrecord;
pub mod v1;
mod v1_range_image;
pub mod v2;
pub mod womd;

/// Writes `bytes` to `path` through a temporary file beside it and a rename, so a reader (or a
/// crash) never sees half a file and an existing file is only replaced by a complete one.
pub fn atomic_write(path: &std::path::Path, bytes: &[u8]) -> Result<(), crate::Error> {
    let at = crate::Location::file(path);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| crate::Error::io(at.clone(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| crate::Error::io(at, e))
}
