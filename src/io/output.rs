//! Writing outputs so that nothing already there is lost: a file is written under a
//! temporary name in its folder and renamed over the final name only once complete
//! ([`PendingFile`]); a folder of outputs (a run) is built beside the final one and swapped in
//! as a whole ([`PendingDir`]), so it never mixes the files of two runs; an output that would
//! overwrite one of the command's inputs is refused before any work ([`refuse_input`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Location, Result};

/// Unique suffixes for temporary names within this process.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `.NAME.partial-PID-N` beside `path`: hidden, in the same folder (so the rename is atomic),
/// never equal to another writer's.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.partial-{}-{n}", std::process::id()))
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| Error::io(Location::file(dir), e)),
        None => Ok(()),
    }
}

/// A file being written. Write to [`PendingFile::path`] (or the handle from
/// [`PendingFile::create`]); [`PendingFile::commit`] renames it to the final name. Dropped
/// without a commit (an error on the way), the temporary file is removed and whatever was at
/// the final name is untouched.
#[derive(Debug)]
pub struct PendingFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// A pending file for `path` (its folder is created).
    pub fn new(path: &Path) -> Result<Self> {
        create_parent(path)?;
        Ok(PendingFile { tmp: temporary_beside(path), target: path.to_path_buf(), committed: false })
    }

    /// Where the bytes go until the commit.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final name.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Creates (truncates) the temporary file.
    pub fn create(&self) -> Result<File> {
        File::create(&self.tmp).map_err(|e| Error::io(Location::file(&self.target), e))
    }

    /// Renames the complete file to its final name.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(Location::file(&self.target), e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A parquet file written batch by batch to a [`PendingFile`]; the schema is the first
/// batch's. [`PendingParquet::close`] finishes the file and hands back the pending file to
/// commit (with the others of the same output, once all are complete).
pub struct PendingParquet {
    pending: PendingFile,
    props: parquet::file::properties::WriterProperties,
    writer: Option<parquet::arrow::ArrowWriter<File>>,
}

impl PendingParquet {
    pub fn new(path: &Path, props: parquet::file::properties::WriterProperties) -> Result<Self> {
        Ok(PendingParquet { pending: PendingFile::new(path)?, props, writer: None })
    }

    /// The final name.
    pub fn target(&self) -> &Path {
        self.pending.target()
    }

    /// Appends a batch (the first one opens the file with its schema).
    pub fn write(&mut self, batch: &arrow::array::RecordBatch) -> Result<()> {
        let at = || Location::file(self.pending.target());
        if self.writer.is_none() {
            let file = self.pending.create()?;
            let w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(self.props.clone()))
                .map_err(|e| Error::Parquet { at: at(), cause: e })?;
            self.writer = Some(w);
        }
        let Some(w) = self.writer.as_mut() else { unreachable!("opened just above") };
        w.write(batch).map_err(|e| Error::Parquet { at: at(), cause: e })
    }

    /// Finishes the file; a file without any batch is an error (there is nothing to write).
    pub fn close(self) -> Result<PendingFile> {
        let at = Location::file(self.pending.target());
        match self.writer {
            Some(w) => w.close().map_err(|e| Error::Parquet { at, cause: e })?,
            None => return Err(Error::invalid(at, "at least one row group to write", "none")),
        };
        Ok(self.pending)
    }
}

/// Writes `bytes` to `path` through a [`PendingFile`].
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let pending = PendingFile::new(path)?;
    std::fs::write(pending.path(), bytes).map_err(|e| Error::io(Location::file(path), e))?;
    pending.commit()
}

/// A folder of outputs being written: files go into a staging folder beside the final one;
/// [`PendingDir::commit`] moves any old folder aside, renames the staging folder into place
/// and removes the old one. Dropped without a commit, the staging folder is removed and the
/// old folder is untouched.
#[derive(Debug)]
pub struct PendingDir {
    staging: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingDir {
    /// A pending folder for `path`, which will replace whatever folder is there. Only a
    /// folder of earlier outputs is replaced: one holding `marker` (a run's `metrics.json`), or
    /// an empty one. A file, or a folder of anything else (a dataset, `--out .`), is an error
    /// now, not lost after the work.
    pub fn new(path: &Path, marker: &str) -> Result<Self> {
        replaceable(path, marker)?;
        create_parent(path)?;
        let staging = temporary_beside(path);
        std::fs::create_dir(&staging).map_err(|e| Error::io(Location::file(&staging), e))?;
        Ok(PendingDir { staging, target: path.to_path_buf(), committed: false })
    }

    /// Where the outputs go until the commit.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Puts the complete folder in place of the old one.
    pub fn commit(mut self) -> Result<()> {
        let at = || Location::file(&self.target);
        let old = self.target.exists().then(|| temporary_beside(&self.target));
        if let Some(old) = &old {
            std::fs::rename(&self.target, old).map_err(|e| Error::io(at(), e))?;
        }
        if let Err(e) = std::fs::rename(&self.staging, &self.target) {
            // Put the old run back: the outputs stay as they were.
            if let Some(old) = &old {
                let _ = std::fs::rename(old, &self.target);
            }
            return Err(Error::io(at(), e));
        }
        self.committed = true;
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(())
    }
}

impl Drop for PendingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Whether [`PendingDir`] may replace `path`: nothing there, an empty folder, or a folder
/// holding `marker` (the outputs of an earlier run). Commands check before their work, so a
/// wrong `--out` costs nothing.
pub fn replaceable(path: &Path, marker: &str) -> Result<()> {
    if path.exists() && !path.is_dir() {
        return Err(Error::invalid(Location::file(path), "a folder for the outputs", "a file"));
    }
    if path.is_dir() && !path.join(marker).is_file() {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .map_err(|e| Error::io(Location::file(path), e))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        if !names.is_empty() {
            names.sort();
            let more = if names.len() > 3 { format!(" and {} more", names.len() - 3) } else { String::new() };
            names.truncate(3);
            return Err(Error::invalid(
                Location::file(path),
                format!(
                    "a new or empty folder for the outputs, or one of an earlier run (with {marker}), which is replaced whole"
                ),
                format!("a folder of other files ({}{more}): choose another folder", names.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Refuses an output that is one of `inputs`, lies inside an input folder (a dataset), or
/// holds an input (a folder replaced whole): writing it would destroy or alter what the
/// command reads.
pub fn refuse_input(output: &Path, inputs: &[&Path]) -> Result<()> {
    let out = absolute(output);
    for input in inputs {
        let input = absolute(input);
        let clash = if out == input {
            "the input itself"
        } else if input.is_dir() && out.starts_with(&input) {
            "a path inside an input folder"
        } else if input.starts_with(&out) {
            "a folder that holds an input"
        } else {
            continue;
        };
        return Err(Error::invalid(
            Location::file(output),
            "an output path apart from the inputs",
            format!("{clash} ({}): choose another output", input.display()),
        ));
    }
    Ok(())
}

/// `path` made absolute with its existing part resolved (links, `..`), so two spellings of
/// one file compare equal even when the file does not exist yet.
fn absolute(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent().filter(|d| !d.as_os_str().is_empty()), path.file_name()) {
        (Some(dir), Some(name)) => absolute(dir).join(name),
        (None, Some(name)) => std::env::current_dir().map(|d| d.join(name)).unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_file_replaces_the_old_one_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_file(&path, b"old").unwrap();
        {
            let p = PendingFile::new(&path).unwrap();
            std::fs::write(p.path(), b"half").unwrap();
            // dropped: an error on the way
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let p = PendingFile::new(&path).unwrap();
        std::fs::write(p.path(), b"new").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1, "no temporary left");
    }

    #[test]
    fn a_pending_folder_is_swapped_in_whole() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("a"), b"old a").unwrap();
        std::fs::write(run.join("b"), b"old b").unwrap();
        {
            let p = PendingDir::new(&run, "a").unwrap();
            std::fs::write(p.path().join("a"), b"new a").unwrap();
        }
        assert_eq!(std::fs::read(run.join("b")).unwrap(), b"old b", "a failed run leaves the old one whole");
        let p = PendingDir::new(&run, "a").unwrap();
        std::fs::write(p.path().join("a"), b"new a").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(run.join("a")).unwrap(), b"new a");
        assert!(!run.join("b").exists(), "no file of the old run stays");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A folder of other files is not replaced.
        std::fs::write(run.join("notes.txt"), b"mine").unwrap();
        std::fs::remove_file(run.join("a")).unwrap();
        assert!(PendingDir::new(&run, "a").is_err());
        assert_eq!(std::fs::read(run.join("notes.txt")).unwrap(), b"mine");
    }

    #[test]
    fn outputs_on_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.tfrecord");
        std::fs::write(&input, b"x").unwrap();
        let ds = dir.path().join("ds");
        std::fs::create_dir(&ds).unwrap();
        assert!(refuse_input(&input, &[&input]).is_err());
        assert!(refuse_input(&dir.path().join("./in.tfrecord"), &[&input]).is_err());
        assert!(refuse_input(&ds.join("lidar/x.parquet"), &[&ds]).is_err());
        assert!(refuse_input(&dir.path().join("out.rrd"), &[&input, &ds]).is_ok());
        assert!(refuse_input(dir.path(), &[&ds]).is_err(), "a folder holding the input");
    }
}
