//! One component file: its footer, schema deviations, and streaming reads of projected,
//! normalised row groups.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use super::columns::Cols;
use super::normalize::{Deviation, check_required, deviations, normalize};
use super::records::{Record, decode_all};
use super::schema::{ColumnSpec, Component};
use super::thrift_guard::{ChunkExtent, check_footer, check_page_headers};
use crate::error::{Error, Location, Result, guard_decoder};

/// An open v2 component file. Reading is by row group, so memory holds at most one row
/// group of the projected columns at a time.
pub struct ComponentFile {
    path: PathBuf,
    component: Component,
    file: File,
    metadata: ArrowReaderMetadata,
    /// First row of each row group within the file (looked up for every frame read).
    group_starts: Vec<usize>,
}

impl ComponentFile {
    /// Opens a file of a known component; checks the footer and the required columns.
    pub fn open(path: impl AsRef<Path>, component: Component) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let at = Location::file(&path);
        let file = File::open(&path).map_err(|e| Error::io(at.clone(), e))?;
        let metadata = load_metadata(&file, &at)?;
        check_required(component, metadata.schema(), &at)?;
        let group_starts = metadata
            .metadata()
            .row_groups()
            .iter()
            .scan(0usize, |start, g| {
                let this = *start;
                *start += g.num_rows().max(0) as usize;
                Some(this)
            })
            .collect();
        Ok(ComponentFile { path, component, file, metadata, group_starts })
    }

    /// Opens a file and works out its component from the folder name (`{root}/{tag}/x.parquet`),
    /// or else from its columns.
    pub fn open_any(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let by_folder =
            path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).and_then(Component::from_tag);
        let component = match by_folder {
            Some(c) => c,
            None => {
                let at = Location::file(path);
                let file = File::open(path).map_err(|e| Error::io(at.clone(), e))?;
                let md = load_metadata(&file, &at)?;
                Component::guess_from_columns(md.schema().fields().iter().map(|f| f.name().as_str())).ok_or_else(
                    || {
                        Error::invalid(
                            at,
                            "the columns of a Waymo v2 component (docs/formats.md#component-schemas)",
                            "none that match",
                        )
                    },
                )?
            }
        };
        Self::open(path, component)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn component(&self) -> Component {
        self.component
    }
    /// The schema as stored in the file.
    pub fn file_schema(&self) -> &SchemaRef {
        self.metadata.schema()
    }
    pub fn num_rows(&self) -> usize {
        self.metadata.metadata().file_metadata().num_rows().max(0) as usize
    }
    pub fn num_row_groups(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }
    pub fn row_group_rows(&self, i: usize) -> usize {
        self.metadata.metadata().row_group(i).num_rows().max(0) as usize
    }
    /// Where this file differs from the declared schema (all tolerated).
    pub fn deviations(&self) -> Vec<Deviation> {
        deviations(self.component, self.metadata.schema())
    }

    /// The declared columns with these names (all when `names` is `None`); unknown names are
    /// an error naming the component's columns.
    pub fn specs(&self, names: Option<&[&str]>) -> Result<Vec<&'static ColumnSpec>> {
        match names {
            None => Ok(self.component.columns().iter().collect()),
            Some(names) => names
                .iter()
                .map(|n| {
                    self.component.column(n).ok_or_else(|| {
                        Error::invalid(
                            Location::file(&self.path).column(*n),
                            format!("a column of `{}`", self.component),
                            "a name it does not declare",
                        )
                    })
                })
                .collect(),
        }
    }

    /// Reads row group `i`, only the columns `wanted`, converted to the declared types.
    pub fn read_row_group(&self, i: usize, wanted: &[&'static ColumnSpec]) -> Result<RecordBatch> {
        let file = self.file.try_clone().map_err(|e| Error::io(Location::file(&self.path), e))?;
        self.read_row_group_from(file, i, wanted)
    }

    /// Reads every row group on the rayon pool (each with its own file handle: clones of
    /// one handle share a cursor). For whole-file reads where memory is not the limit.
    pub fn read_row_groups_parallel(&self, wanted: &[&'static ColumnSpec]) -> Result<Vec<(usize, RecordBatch)>> {
        use rayon::prelude::*;
        (0..self.num_row_groups())
            .into_par_iter()
            .map(|i| {
                let file = File::open(&self.path).map_err(|e| Error::io(Location::file(&self.path), e))?;
                Ok((i, self.read_row_group_from(file, i, wanted)?))
            })
            .collect()
    }

    fn read_row_group_from(&self, file: File, i: usize, wanted: &[&'static ColumnSpec]) -> Result<RecordBatch> {
        let at = Location::file(&self.path);
        let schema = self.metadata.schema();
        // Parquet root fields line up with the Arrow schema's top-level fields.
        let roots: Vec<usize> = wanted.iter().filter_map(|s| schema.index_of(s.name).ok()).collect();
        let mask =
            ProjectionMask::roots(self.metadata.metadata().file_metadata().schema_descr(), roots.iter().copied());
        let rows = self.row_group_rows(i);
        let group_at = at.clone().detail(format!("row group {i}"));
        check_page_headers(&file, i, self.chunk_extents(i, &roots), &at)?;
        let mut batches = guard_decoder(&group_at, "parquet file", || {
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_projection(mask)
                .with_row_groups(vec![i])
                .with_batch_size(rows.max(1))
                .build()
                .map_err(|e| Error::Parquet { at: at.clone(), cause: e })?;
            reader.map(|b| b.map_err(|e| Error::Arrow { at: group_at.clone(), cause: e })).collect::<Result<Vec<_>>>()
        })?;
        let batch = match batches.len() {
            1 => batches.pop().unwrap_or_else(|| unreachable!()),
            _ => {
                let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| self.projected_schema(wanted));
                arrow::compute::concat_batches(&schema, &batches)
                    .map_err(|e| Error::Arrow { at: at.clone(), cause: e })?
            }
        };
        normalize(&batch, self.component, wanted, &at)
    }

    /// Where the pages of row group `i`'s leaf columns under the root fields `roots` lie, and
    /// each column's name (for errors).
    fn chunk_extents(&self, i: usize, roots: &[usize]) -> Vec<(ChunkExtent, String)> {
        let md = self.metadata.metadata();
        let (Some(group), schema) = (md.row_groups().get(i), md.file_metadata().schema_descr()) else {
            return Vec::new();
        };
        (0..schema.num_columns().min(group.num_columns()))
            .filter(|&j| roots.contains(&schema.get_column_root_idx(j)))
            .filter_map(|j| {
                let chunk = group.column(j);
                let start = chunk.dictionary_page_offset().unwrap_or_else(|| chunk.data_page_offset());
                let extent = ChunkExtent {
                    start: u64::try_from(start).ok()?,
                    len: u64::try_from(chunk.compressed_size()).ok()?,
                };
                Some((extent, chunk.column_path().string()))
            })
            .collect()
    }

    fn projected_schema(&self, wanted: &[&'static ColumnSpec]) -> SchemaRef {
        let schema = self.metadata.schema();
        let idx: Vec<usize> = wanted.iter().filter_map(|s| schema.index_of(s.name).ok()).collect();
        std::sync::Arc::new(schema.project(&idx).unwrap_or_else(|_| arrow::datatypes::Schema::empty()))
    }

    /// The first row of row group `i` within the file.
    pub fn row_group_start(&self, i: usize) -> usize {
        self.group_starts.get(i).copied().unwrap_or_else(|| self.num_rows())
    }

    /// Streams the normalised row groups, one at a time.
    pub fn row_groups<'a>(
        &'a self,
        wanted: &'a [&'static ColumnSpec],
    ) -> impl Iterator<Item = Result<(usize, RecordBatch)>> + 'a {
        (0..self.num_row_groups()).map(move |i| Ok((i, self.read_row_group(i, wanted)?)))
    }

    /// Decodes every row as records (for small, segment-level components and tests).
    pub fn read_all<R: Record>(&self) -> Result<Vec<R>> {
        if R::COMPONENT != self.component {
            return Err(Error::invalid(
                Location::file(&self.path),
                format!("a `{}` file", R::COMPONENT),
                self.component.to_string(),
            ));
        }
        let wanted = self.specs(None)?;
        let mut out = Vec::with_capacity(self.num_rows());
        for rg in self.row_groups(&wanted) {
            let (i, batch) = rg?;
            let cols = Cols::new(&batch, Location::file(&self.path), self.row_group_start(i));
            out.extend(decode_all::<R>(&cols)?);
        }
        Ok(out)
    }
}

/// The footer and schema (the Arrow schema parquet stores beside its own included). The
/// parquet and Arrow readers panic on some corrupt footers (arrow-ipc 58.4 on an embedded
/// schema's integer of an unsupported width) and spin on others (see [`check_footer`]; page headers are checked before each row group is read): both
/// are errors naming the file too.
fn load_metadata(file: &File, at: &Location) -> Result<ArrowReaderMetadata> {
    check_footer(file, at)?;
    guard_decoder(at, "parquet file", || {
        ArrowReaderMetadata::load(file, ArrowReaderOptions::new())
            .map_err(|e| Error::Parquet { at: at.clone(), cause: e })
    })
}
