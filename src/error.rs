//! The library's error type. Every error on user data says where (file, column, record or
//! frame) and what was expected, so a user can find the bad byte without a debugger.

use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Where in the user's data something went wrong. Only the parts that are known are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub column: Option<String>,
    /// Row within the file (0-based).
    pub row: Option<usize>,
    /// `key.frame_timestamp_micros` of the frame.
    pub frame: Option<i64>,
    /// Record index within a TFRecord file (0-based).
    pub record: Option<usize>,
    /// Any other context ("laser TOP", "track 12").
    pub detail: Option<String>,
}

impl Location {
    pub fn file(path: impl AsRef<Path>) -> Self {
        Location { file: path.as_ref().to_path_buf(), ..Default::default() }
    }
    pub fn column(mut self, c: impl Into<String>) -> Self {
        self.column = Some(c.into());
        self
    }
    pub fn row(mut self, r: usize) -> Self {
        self.row = Some(r);
        self
    }
    pub fn frame(mut self, ts: i64) -> Self {
        self.frame = Some(ts);
        self
    }
    pub fn record(mut self, i: usize) -> Self {
        self.record = Some(i);
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The parts that are known, comma-separated (a location without a file, such as the
        // settings of a command, starts with its first known part).
        let mut parts: Vec<String> = Vec::new();
        if !self.file.as_os_str().is_empty() {
            parts.push(self.file.display().to_string());
        }
        if let Some(r) = self.record {
            parts.push(format!("record {r}"));
        }
        if let Some(c) = &self.column {
            parts.push(format!("column `{c}`"));
        }
        if let Some(ts) = self.frame {
            parts.push(format!("frame {ts}"));
        }
        if let Some(r) = self.row {
            parts.push(format!("row {r}"));
        }
        if let Some(d) = &self.detail {
            parts.push(d.clone());
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// The underlying library error is part of the message (not a `source()`), so a printed
/// error reads once, whichever way it is printed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused (missing file, permissions, disk full).
    #[error("{at}: {cause}")]
    Io { at: Location, cause: std::io::Error },
    /// The parquet layer could not read or write (truncated file, bad footer, corrupt page).
    #[error("{at}: not readable as parquet: {cause}")]
    Parquet { at: Location, cause: parquet::errors::ParquetError },
    #[error("{at}: {cause}")]
    Arrow { at: Location, cause: arrow::error::ArrowError },
    /// A required column is absent.
    #[error("{at}: missing required column (expected {expected})")]
    MissingColumn { at: Location, expected: String },
    /// Data is present but not what the format allows.
    #[error("{at}: expected {expected}, found {found}")]
    Invalid { at: Location, expected: String, found: String },
    /// Bytes that do not decode (protobuf, JPEG, PNG, TFRecord framing).
    #[error("{at}: cannot decode {what}: {reason}")]
    Decode { at: Location, what: String, reason: String },
    /// An ONNX model or the ONNX Runtime library refused (missing library, a model whose
    /// inputs or outputs do not match its config, a failed run).
    #[error("{at}: {reason}")]
    Model { at: Location, reason: String },
    /// A compute device refused: it is absent, out of memory, a kernel failed to launch,
    /// or an op was given tensors it cannot take.
    #[error("{device}: {reason}")]
    Device { device: String, reason: String },
    /// Something scenetok needs beside its own binary is not where it looked (the data
    /// folder, a library): what, and where it looked.
    #[error("{what} not found: {hint}")]
    NotFound { what: String, hint: String },
}

impl Error {
    pub fn invalid(at: Location, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Error::Invalid { at, expected: expected.into(), found: found.into() }
    }
    pub fn decode(at: Location, what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Decode { at, what: what.into(), reason: reason.to_string() }
    }
    pub fn model(at: Location, reason: impl Into<String>) -> Self {
        Error::Model { at, reason: reason.into() }
    }
    pub fn io(at: Location, cause: std::io::Error) -> Self {
        Error::Io { at, cause }
    }
    pub fn device(device: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Device { device: device.into(), reason: reason.into() }
    }
    /// Sets the file of an error whose location has none (raised where only the frame or
    /// the row was known).
    pub fn in_file(mut self, file: &Path) -> Self {
        if let Some(at) = self.location_mut()
            && at.file.as_os_str().is_empty()
        {
            at.file = file.to_path_buf();
        }
        self
    }
    fn location_mut(&mut self) -> Option<&mut Location> {
        match self {
            Error::Io { at, .. }
            | Error::Parquet { at, .. }
            | Error::Arrow { at, .. }
            | Error::MissingColumn { at, .. }
            | Error::Invalid { at, .. }
            | Error::Decode { at, .. }
            | Error::Model { at, .. } => Some(at),
            Error::Device { .. } | Error::NotFound { .. } => None,
        }
    }
    /// Where in the user's data the error happened (device errors have no such place).
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Io { at, .. }
            | Error::Parquet { at, .. }
            | Error::Arrow { at, .. }
            | Error::MissingColumn { at, .. }
            | Error::Invalid { at, .. }
            | Error::Decode { at, .. }
            | Error::Model { at, .. } => Some(at),
            Error::Device { .. } | Error::NotFound { .. } => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

thread_local! {
    /// How many [`guard_decoder`] calls this thread is inside.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

/// Runs a third-party decoder on user data and turns a panic of the decoder's own (its bug
/// on malformed input, such as zune-jpeg 0.5.15's `unwrap` in its AVX2 IDCT on some corrupt
/// JPEGs) into a decode error at `at`: a bad file stops with its name, not with a crash.
/// scenetok's own code does not rely on this: it returns errors.
pub fn guard_decoder<T>(at: &Location, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        Err(Error::decode(at.clone(), what, format!("the decoder failed on this input ({message})")))
    })
}

/// Whether this thread is inside [`guard_decoder`], whose panics become errors.
pub fn in_guarded_decoder() -> bool {
    GUARDED.with(|g| g.get() > 0)
}

/// Installs a panic hook that is silent about the panics [`guard_decoder`] catches (they are
/// reported as errors) and otherwise does what the hook before it did.
pub fn quiet_guarded_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !in_guarded_decoder() {
            previous(info);
        }
    }));
}
