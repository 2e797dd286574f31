//! What a path holds, found by looking at it: every command that takes "a dataset folder or
//! a file" asks here, so they all accept the same inputs and name them the same way.

use std::path::Path;

use crate::error::{Error, Location, Result};

/// The kinds of input scenetok reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum InputKind {
    /// A Waymo v2 dataset folder (`{root}/{component}/{segment}.parquet`).
    V2Dataset,
    /// One v2 component file.
    V2ComponentFile,
    /// A TFRecord of v1 perception `Frame`s (one segment's frames in order).
    V1Frames,
    /// A TFRecord of WOMD `Scenario`s.
    WomdScenarios,
}

impl InputKind {
    /// How the kind is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            InputKind::V2Dataset => "a v2 dataset folder",
            InputKind::V2ComponentFile => "a v2 component file",
            InputKind::V1Frames => "a v1 Frame TFRecord",
            InputKind::WomdScenarios => "a WOMD Scenario TFRecord",
        }
    }
}

/// What the commands accept, for errors.
pub const EXPECTED: &str = "a v2 dataset folder, a .parquet component file or a TFRecord (v1 Frames or WOMD Scenarios)";

/// Looks at `path`: a folder is a v2 dataset, a `.parquet` file a v2 component; any other
/// file is read as a TFRecord and holds WOMD scenarios when its first record decodes as a
/// `Scenario` with tracks, v1 frames when it decodes as a `Frame` of a segment. A file
/// whose first record is neither, or that is no TFRecord at all, is an error saying so.
pub fn detect(path: &Path) -> Result<InputKind> {
    if path.is_dir() {
        return Ok(InputKind::V2Dataset);
    }
    if !path.exists() {
        return Err(Error::invalid(Location::file(path), EXPECTED, "nothing at this path"));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(".parquet") {
        return Ok(InputKind::V2ComponentFile);
    }
    let mut records = super::tfrecord::open(path)?;
    let at = Location::file(path).record(0);
    let first = records.next_record().map_err(|e| not_a_tfrecord(path, &name, e))?;
    let Some(first) = first else {
        return Err(Error::invalid(at, "at least one record (v1 Frame or WOMD Scenario)", "an empty TFRecord file"));
    };
    if super::womd::decode_scenario(&first, &at).is_ok_and(|s| !s.tracks.is_empty()) {
        return Ok(InputKind::WomdScenarios);
    }
    if super::v1::decode_frame(&first, &at).is_ok_and(|f| !f.segment.is_empty()) {
        return Ok(InputKind::V1Frames);
    }
    Err(Error::invalid(
        at,
        "a WOMD Scenario with tracks or a v1 Frame of a segment",
        format!("{} bytes that decode as neither", first.len()),
    ))
}

/// A file that does not parse as a TFRecord: say what was expected when the name does not
/// claim to be one, keep the framing error (with its record and CRC) when it does.
fn not_a_tfrecord(path: &Path, name: &str, e: Error) -> Error {
    let claims = name.contains(".tfrecord") || name.ends_with(".tfr") || name.ends_with(".binproto");
    if claims {
        e
    } else {
        Error::invalid(Location::file(path), EXPECTED, format!("a file that is none of these ({e})"))
    }
}
