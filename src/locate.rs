//! Where scenetok finds what it does not compile in, so that a binary installed with
//! `cargo install` or copied elsewhere works as well as one run from the source tree.
//!
//! * The **data folder** (`models/`: image-model configs and ONNX files; `weights/`: trained
//!   weights): `--models DIR`, else `$SCENETOK_DATA`, else next to the executable
//!   (`EXE_DIR/data`, `EXE_DIR/../share/scenetok/data`), else the source tree the
//!   executable was built in or is run from (`data/` beside `Cargo.toml`). When none holds
//!   it, the error lists every place looked at.
//! * The **ONNX Runtime library**: `$ORT_DYLIB_PATH`, else `libonnxruntime.so` next to the
//!   executable, else the source tree's `.deps/onnxruntime/` (where `tools/setup.sh` puts it).
//! * The **source tree** itself (development tools: the Python baselines of `scenetok
//!   bench`, the setup script's venv): found from the executable's and the working
//!   directory's ancestors by its `Cargo.toml` naming the `scenetok` package.

use std::path::{Path, PathBuf};

use crate::error::{Error, Location, Result};

/// The environment variable naming the data folder.
pub const DATA_ENV: &str = "SCENETOK_DATA";

/// The data folder: `models/` and `weights/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Finds the data folder (see the module doc for the order). `explicit` is `--models`.
    pub fn locate(explicit: Option<&Path>) -> Result<DataDir> {
        if let Some(dir) = explicit {
            return DataDir::at(dir, "--models");
        }
        if let Some(dir) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
            return DataDir::at(Path::new(&dir), DATA_ENV);
        }
        let candidates = default_candidates();
        if let Some(dir) = candidates.iter().find(|d| is_data_dir(d)) {
            return Ok(DataDir { root: dir.clone() });
        }
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        let looked =
            if looked.is_empty() { "nothing: the executable's location is unknown".into() } else { looked.join(", ") };
        Err(Error::NotFound {
            what: "scenetok's data folder (models/ and weights/)".into(),
            hint: format!("pass --models DIR or set {DATA_ENV}; looked in {looked}"),
        })
    }

    /// A folder given by the user: it must hold the data, no fallback.
    fn at(dir: &Path, from: &str) -> Result<DataDir> {
        if is_data_dir(dir) {
            Ok(DataDir { root: dir.to_path_buf() })
        } else {
            Err(Error::invalid(
                Location::file(dir).detail(format!("given by {from}")),
                "scenetok's data folder (with models/ and weights/)",
                if dir.is_dir() { "a folder without them" } else { "nothing at this path" },
            ))
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// A file under `models/` (image-model configs and ONNX files).
    pub fn model(&self, name: &str) -> PathBuf {
        self.root.join("models").join(name)
    }
    /// A file under `weights/`.
    pub fn weights(&self, name: &str) -> PathBuf {
        self.root.join("weights").join(name)
    }
}

fn is_data_dir(dir: &Path) -> bool {
    dir.join("models").is_dir() && dir.join("weights").is_dir()
}

/// Next to the executable, then the source tree.
fn default_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(exe_dir) = exe_dir() {
        out.push(exe_dir.join("data"));
        if let Some(prefix) = exe_dir.parent() {
            out.push(prefix.join("share/scenetok/data"));
        }
    }
    if let Some(tree) = source_tree() {
        out.push(tree.join("data"));
    }
    out.dedup();
    out
}

/// The folder of the running executable.
pub fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.canonicalize().ok()?.parent().map(Path::to_path_buf)
}

/// The scenetok source tree: the nearest ancestor of the executable (a `target/*/`
/// build) or of the working directory whose `Cargo.toml` is scenetok's.
pub fn source_tree() -> Option<PathBuf> {
    let starts = [exe_dir(), std::env::current_dir().ok()];
    starts.into_iter().flatten().find_map(|start| start.ancestors().find(|d| is_source_tree(d)).map(Path::to_path_buf))
}

fn is_source_tree(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.lines().any(|l| l.trim() == r#"name = "scenetok""#))
}

/// The ONNX Runtime library (see the module doc for the order); the last place looked at
/// when none exists, so the error names it.
pub fn onnxruntime_library() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let beside = exe_dir().map(|d| d.join("libonnxruntime.so"));
    let in_tree = source_tree().map(|t| t.join(".deps/onnxruntime/libonnxruntime.so"));
    [beside.clone(), in_tree.clone()]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .or(in_tree)
        .or(beside)
        .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"))
}

/// A file of the source tree (a development tool such as a Python baseline), when the
/// source tree is there.
pub fn in_source_tree(relative: &str) -> Option<PathBuf> {
    source_tree().map(|t| t.join(relative))
}
