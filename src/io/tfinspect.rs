//! TFRecord inspection: WOMD scenarios and v1 frames.

use std::path::Path;

use super::inspect::TfRecordReport;
use crate::error::{Error, Location, Result};

pub fn inspect_tfrecord(path: &Path) -> Result<TfRecordReport> {
    Err(Error::invalid(Location::file(path), "a parquet dataset (TFRecord inspection arrives with the TFRecord reader)", "a TFRecord"))
}
