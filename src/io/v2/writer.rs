//! Writing v2 component files in the declared schema. A file is written to a temporary
//! name and renamed into place when complete, so a crash never leaves a half-written
//! file under a real name, and an existing file is only replaced by a whole new one.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::records::{Record, encode_all};
use super::schema::Component;
use crate::error::{Error, Location, Result};

/// `{root}/{tag}/{segment}.parquet`.
pub fn component_path(root: &Path, component: Component, segment: &str) -> PathBuf {
    root.join(component.tag()).join(format!("{segment}.parquet"))
}

/// Writes one component file of one segment.
pub struct ComponentWriter {
    component: Component,
    path: PathBuf,
    tmp_path: PathBuf,
    writer: Option<ArrowWriter<File>>,
    rows: usize,
}

impl ComponentWriter {
    pub fn create(root: &Path, component: Component, segment: &str) -> Result<Self> {
        let path = component_path(root, component, segment);
        let at = Location::file(&path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(at.clone(), e))?;
        }
        let tmp_path = path.with_extension("parquet.partial");
        let file = File::create(&tmp_path).map_err(|e| Error::io(Location::file(&tmp_path), e))?;
        // Range images and encoded images do not repeat: a dictionary would be built and
        // thrown away for every page, which made writing slower than simulating.
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(!component.is_bulky())
            .set_max_row_group_row_count(Some(if component.is_bulky() { 64 } else { 64 * 1024 }))
            .build();
        let writer = ArrowWriter::try_new(file, component.schema(), Some(props))
            .map_err(|e| Error::Parquet { at: at.clone(), cause: e })?;
        Ok(ComponentWriter { component, path, tmp_path, writer: Some(writer), rows: 0 })
    }

    pub fn component(&self) -> Component {
        self.component
    }

    /// Appends records. For components that hold whole images, each call is closed as its
    /// own row group, so write one frame per call and readers hold one frame at a time.
    pub fn write<R: Record>(&mut self, records: &[R]) -> Result<()> {
        assert_eq!(R::COMPONENT, self.component, "scenetok bug: record written to the wrong component");
        if records.is_empty() {
            return Ok(());
        }
        let at = Location::file(&self.path);
        let batch = encode_all(records);
        let writer =
            self.writer.as_mut().ok_or_else(|| Error::invalid(at.clone(), "an open writer", "a finished one"))?;
        writer.write(&batch).map_err(|e| Error::Parquet { at: at.clone(), cause: e })?;
        if self.component.is_bulky() {
            writer.flush().map_err(|e| Error::Parquet { at, cause: e })?;
        }
        self.rows += records.len();
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Closes the file and moves it to its final name.
    pub fn finish(mut self) -> Result<PathBuf> {
        let at = Location::file(&self.path);
        if let Some(w) = self.writer.take() {
            w.close().map_err(|e| Error::Parquet { at: at.clone(), cause: e })?;
        }
        std::fs::rename(&self.tmp_path, &self.path).map_err(|e| Error::io(at, e))?;
        Ok(self.path.clone())
    }
}

impl Drop for ComponentWriter {
    fn drop(&mut self) {
        // An unfinished writer leaves no partial file behind.
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Writes a whole component file from records.
pub fn write_component<R: Record>(root: &Path, segment: &str, records: &[R]) -> Result<PathBuf> {
    let mut w = ComponentWriter::create(root, R::COMPONENT, segment)?;
    w.write(records)?;
    w.finish()
}
