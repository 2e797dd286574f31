//! `scenetok inspect`: what a dataset folder, a parquet file or a TFRecord file holds, and
//! every deviation from the declared schema the reader tolerated.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

mod tfrecord;

pub use tfrecord::TfRecordReport;

use super::detect::{InputKind, detect};
use super::v2::normalize::type_name;
use super::v2::{ComponentFile, Dataset, Deviation, schema::key};
use crate::error::{Error, Location, Result};

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inspection {
    Dataset(DatasetReport),
    Parquet(FileReport),
    Tfrecord(TfRecordReport),
}

#[derive(Debug, Serialize)]
pub struct DatasetReport {
    pub root: PathBuf,
    pub segments: Vec<SegmentReport>,
    pub unknown_folders: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SegmentReport {
    pub name: String,
    pub frames: usize,
    pub components: Vec<FileReport>,
}

#[derive(Debug, Serialize)]
pub struct ColumnReport {
    pub name: String,
    /// The type stored in the file.
    pub stored: String,
    /// The declared type, or `None` for an extra column.
    pub declared: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub component: String,
    pub rows: usize,
    pub row_groups: usize,
    pub bytes: u64,
    pub segments: Vec<String>,
    /// Distinct frame timestamps (0 for segment-level components).
    pub frames: usize,
    pub columns: Vec<ColumnReport>,
    pub deviations: Vec<Deviation>,
}

/// Inspects a path: a dataset folder, a `.parquet` file, or a TFRecord file (every record
/// classified, so a mixed or partly unknown file is reported as such).
pub fn inspect(path: &Path) -> Result<Inspection> {
    match detect(path) {
        Ok(InputKind::V2Dataset) => inspect_dataset(path).map(Inspection::Dataset),
        Ok(InputKind::V2ComponentFile) => inspect_file(&ComponentFile::open_any(path)?).map(Inspection::Parquet),
        // A folder of TFRecords is inspected file by file (`scenetok inspect DIR/*`).
        Ok(InputKind::V1Frames | InputKind::WomdScenarios) if path.is_dir() => Err(Error::invalid(
            Location::file(path),
            "a TFRecord file (inspect a folder of TFRecords by its files: DIR/*)",
            "a folder of TFRecord files",
        )),
        Ok(InputKind::V1Frames | InputKind::WomdScenarios) => {
            tfrecord::inspect_tfrecord(path).map(Inspection::Tfrecord)
        }
        // A TFRecord whose first record is neither kind is still worth a per-record report.
        Err(Error::Invalid { .. }) if tfrecord::is_tfrecord(path) => {
            tfrecord::inspect_tfrecord(path).map(Inspection::Tfrecord)
        }
        Err(e) => Err(e),
    }
}

fn inspect_dataset(root: &Path) -> Result<DatasetReport> {
    let ds = Dataset::open(root)?;
    let mut segments = Vec::new();
    for seg in ds.segments() {
        let mut components = Vec::new();
        for (component, info) in ds.components(seg)? {
            components.push(inspect_file(&ComponentFile::open(&info.path, *component)?)?);
        }
        segments.push(SegmentReport { name: seg.to_string(), frames: ds.frame_timestamps(seg)?.len(), components });
    }
    Ok(DatasetReport { root: root.to_path_buf(), segments, unknown_folders: ds.unknown_folders.clone() })
}

fn inspect_file(f: &ComponentFile) -> Result<FileReport> {
    let component = f.component();
    let schema = f.file_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| ColumnReport {
            name: field.name().clone(),
            stored: type_name(field.data_type()),
            declared: component.column(field.name()).map(|c| type_name(&c.ty.data_type())),
        })
        .collect();
    // Every key column (enum names checked): a cheap pass that also proves each row group
    // decodes. Segment and timestamp come first, as the loop below expects.
    let mut key_names = vec![key::SEGMENT];
    if component.is_per_frame() {
        key_names.push(key::TIMESTAMP);
    }
    for spec in component.columns() {
        if spec.name.starts_with("key.") && !key_names.contains(&spec.name) {
            key_names.push(spec.name);
        }
    }
    let wanted = f.specs(Some(&key_names))?;
    let mut segments = BTreeSet::new();
    let mut frames = BTreeSet::new();
    for rg in f.row_groups(&wanted) {
        let (_, batch) = rg?;
        use arrow::array::AsArray;
        let segs = batch.column(0).as_string::<i32>();
        segments.extend(segs.iter().flatten().map(str::to_string));
        if component.is_per_frame() {
            frames.extend(batch.column(1).as_primitive::<arrow::datatypes::Int64Type>().iter().flatten());
        }
    }
    Ok(FileReport {
        path: f.path().to_path_buf(),
        component: component.tag().to_string(),
        rows: f.num_rows(),
        row_groups: f.num_row_groups(),
        bytes: std::fs::metadata(f.path()).map(|m| m.len()).unwrap_or(0),
        segments: segments.into_iter().collect(),
        frames: frames.len(),
        columns,
        deviations: f.deviations(),
    })
}

impl Inspection {
    /// A plain-text table for the terminal.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        match self {
            Inspection::Dataset(d) => {
                s += &format!("v2 dataset {}\n", d.root.display());
                s += &format!("{} segment(s)\n", d.segments.len());
                for seg in &d.segments {
                    s += &format!("\nsegment {}: {} frames\n", seg.name, seg.frames);
                    s += &format!(
                        "  {:<34} {:>8} {:>7} {:>7} {:>11}  deviations\n",
                        "component", "rows", "groups", "frames", "bytes"
                    );
                    for c in &seg.components {
                        s += &format!(
                            "  {:<34} {:>8} {:>7} {:>7} {:>11}  {}\n",
                            c.component,
                            c.rows,
                            c.row_groups,
                            c.frames,
                            c.bytes,
                            c.deviations.len()
                        );
                    }
                    for c in &seg.components {
                        for dev in &c.deviations {
                            s += &format!("  tolerated in {}: {dev}\n", c.component);
                        }
                    }
                }
                if !d.unknown_folders.is_empty() {
                    s += &format!("\nignored folders: {}\n", d.unknown_folders.join(", "));
                }
            }
            Inspection::Parquet(f) => {
                s += &format!("{} ({} component)\n", f.path.display(), f.component);
                s += &format!(
                    "rows {}, row groups {}, bytes {}, frames {}, segments {}\n",
                    f.rows,
                    f.row_groups,
                    f.bytes,
                    f.frames,
                    f.segments.join(", ")
                );
                s += "schema:\n";
                let width = f.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
                for c in &f.columns {
                    let note = match &c.declared {
                        None => "  (not declared: ignored)".to_string(),
                        Some(d) if *d != c.stored => format!("  (declared {d}: converted)"),
                        Some(_) => String::new(),
                    };
                    s += &format!("  {:<width$}  {}{}\n", c.name, c.stored, note);
                }
                if f.deviations.is_empty() {
                    s += "no deviations from the declared schema\n";
                } else {
                    s += "deviations tolerated:\n";
                    for d in &f.deviations {
                        s += &format!("  {d}\n");
                    }
                }
            }
            Inspection::Tfrecord(t) => {
                s += &format!("{}: {} record(s) of {}\n", t.path.display(), t.records, t.content);
                for line in &t.summaries {
                    s += &format!("  {line}\n");
                }
            }
        }
        s
    }
}
