//! What a path holds, found by looking at it: every command that takes "a dataset folder or
//! a file" asks here, so they all accept the same inputs and name them the same way.

use std::path::{Path, PathBuf};

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
pub const EXPECTED: &str =
    "a v2 dataset folder, a .parquet component file, a TFRecord (v1 Frames or WOMD Scenarios) or a folder of TFRecords";

/// Looks at `path`: a folder of TFRecord files (see [`tfrecord_files`]) is of its first file's
/// kind, any other folder is a v2 dataset; a file starting with parquet's magic (`PAR1`)
/// or named `.parquet` is a v2 component; any other file is read as a TFRecord, and its first
/// record decides the kind by which message it decodes as: a WOMD `Scenario` with tracks, or a
/// v1 `Frame` with a context. Only the message's structure is looked at here, so a record of
/// the right kind with bad content (say, an out-of-range index) is reported by its reader as
/// what it is, not as "neither kind". A file of neither kind, or no TFRecord at all, is an
/// error saying what was expected.
pub fn detect(path: &Path) -> Result<InputKind> {
    if path.is_dir() {
        return match tfrecord_files(path)?.first() {
            Some(first) => detect(first),
            None => Ok(InputKind::V2Dataset),
        };
    }
    if !path.exists() {
        return Err(Error::invalid(Location::file(path), EXPECTED, "nothing at this path"));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(".parquet") || starts_with_parquet_magic(path) {
        return Ok(InputKind::V2ComponentFile);
    }
    let mut records = super::tfrecord::open(path)?;
    let at = Location::file(path).record(0);
    let first = records.next_record().map_err(|e| not_a_tfrecord(path, &name, e))?;
    let Some(first) = first else {
        return Err(Error::invalid(at, "at least one record (v1 Frame or WOMD Scenario)", "an empty TFRecord file"));
    };
    kind_of_record(&first).ok_or_else(|| {
        Error::invalid(
            at,
            "a record holding a WOMD Scenario (with tracks) or a v1 Frame (with a context)",
            format!("{} bytes that decode as neither", first.len()),
        )
    })
}

/// The TFRecord files of a folder that holds such files and no sub-folders (a sharded
/// release such as WOMD's `validation.tfrecord-00000-of-00150` …), in name order; none for
/// any other folder (a v2 dataset has a folder per component).
pub fn tfrecord_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let at = || Location::file(dir);
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(at(), e))? {
        let p = e.map_err(|e| Error::io(at(), e))?.path();
        if p.is_dir() {
            return Ok(Vec::new());
        }
        if p.file_name().is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().contains(".tfrecord")) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Which message a TFRecord record holds, by its structure alone.
pub fn kind_of_record(bytes: &[u8]) -> Option<InputKind> {
    use prost::Message;
    // WOMD's LiDAR and camera-token files are `Scenario`s that carry only those fields.
    let womd = |s: super::proto::Scenario| {
        !s.tracks.is_empty() || !s.compressed_frame_laser_data.is_empty() || !s.frame_camera_tokens.is_empty()
    };
    if super::proto::Scenario::decode(bytes).is_ok_and(womd) {
        return Some(InputKind::WomdScenarios);
    }
    if super::proto::Frame::decode(bytes).is_ok_and(|f| f.context.as_ref().is_some_and(|c| c.name.is_some())) {
        return Some(InputKind::V1Frames);
    }
    None
}

fn starts_with_parquet_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PAR1"
}

/// A file that does not parse as a TFRecord: say what was expected when the name does not
/// claim to be one, keep the framing error (with its record and CRC) when it does.
fn not_a_tfrecord(path: &Path, name: &str, e: Error) -> Error {
    let claims = name.contains(".tfrecord") || name.ends_with(".tfr") || name.ends_with(".binproto");
    // A file that cannot be read says so; otherwise the framing error itself (a "length"
    // read from text, its CRC) would only mislead about a file that never was a TFRecord.
    let unreadable = matches!(&e, Error::Io { cause, .. } if cause.kind() != std::io::ErrorKind::UnexpectedEof);
    if claims || unreadable {
        e
    } else {
        Error::invalid(
            Location::file(path),
            EXPECTED,
            "a file that is none of these (no parquet magic, no TFRecord framing)",
        )
    }
}
