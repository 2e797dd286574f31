//! The ONNX Runtime session: loading the library and the model, checking the model against
//! its config, and running a preprocessed batch with pre-allocated, reused I/O.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::{Array, Dimension, Ix2, Ix4};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionOutputs};
use ort::value::{Tensor, ValueType};

use super::config::{Layout, ModelConfig, OutputKind, OutputSpec};
use super::features::{FeatureMap, Outputs};
use super::huge_pages::{HugePages, promote_large_mappings};
use super::preprocess::{Batch, ImageGeometry, RgbView, plan_batch, write_batch};
use crate::error::{Error, Location, Result};

/// The ONNX Runtime library: `ORT_DYLIB_PATH` if set (cargo sets it for `cargo run` and
/// `cargo test`, see `.cargo/config.toml`), else next to the executable, else the copy
/// `tools/setup.sh` puts in the source tree's `.deps/onnxruntime/` ([`crate::locate`]).
pub fn runtime_library_path() -> PathBuf {
    crate::locate::onnxruntime_library()
}

/// The process-wide ONNX Runtime environment (the library can be loaded only once).
static RUNTIME: OnceLock<std::result::Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `library` (once per process) and returns its environment.
pub fn runtime(library: &Path) -> Result<&'static ort::environment::Environment> {
    let at = || Location::file(library);
    if RUNTIME.get().is_none() && !library.is_file() {
        return Err(Error::model(
            at(),
            "ONNX Runtime library not found (run tools/setup.sh, or set ORT_DYLIB_PATH to libonnxruntime.so 1.31)",
        ));
    }
    let env = RUNTIME.get_or_init(|| {
        let builder = ort::init_from(library).map_err(|e| format!("cannot load ONNX Runtime: {e}"))?;
        builder.with_name("scenetok").build().map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))
    });
    env.as_ref().map_err(|e| Error::model(at(), e.clone()))
}

/// Session options. The defaults suit one encoder per process on a CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderOptions {
    /// Intra-op threads (0 = ONNX Runtime's default: one per physical core, pinned).
    pub threads: usize,
    /// Graph optimisations: all (constant folding, fusions, NCHWc layout transforms).
    pub optimization: GraphOptimizationLevel,
    /// Let intra-op threads spin while waiting for work during a run (ONNX Runtime's default).
    /// On: without it every one of the model's many small ops pays a thread wake-up, and the
    /// session ran 1.4× slower than Python's on two cores (scenetok bench image, quiet machine).
    pub spin: bool,
    /// After the first run of each batch shape, back the process's large anonymous
    /// mappings, the session's arena among them, with transparent huge pages (see
    /// [`super::huge_pages`]): 3-7% faster runs here, resident memory unchanged.
    pub huge_pages: bool,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions { threads: 0, optimization: GraphOptimizationLevel::All, spin: true, huge_pages: true }
    }
}

/// The input and output tensors of one batch shape, bound once and reused: the model writes
/// straight into them, with no per-run allocation on either side.
struct BoundIo {
    shape: [usize; 4],
    input: Tensor<f32>,
    binding: ort::session::IoBinding,
}

/// An image backbone with its config.
pub struct ImageEncoder {
    config: ModelConfig,
    session: Session,
    /// The bindings of the last [`BOUND_SHAPES`] batch shapes, the current one first: a frame's
    /// cameras come in two sizes (front and side), and binding a shape anew each time costs
    /// far more than the run at full resolution (fresh tensors, the arena's huge pages again).
    io: Vec<BoundIo>,
    /// The last batch's shape and geometry (its data is written into the bound input).
    batch: Batch,
    /// Seconds spent inside the last `Session::run` (benchmarks split time with it).
    last_session_s: f64,
    /// Seconds the last [`ImageEncoder::encode_into`] spent preprocessing.
    last_preprocess_s: f64,
    huge_pages: bool,
    /// A new binding's first run has yet to grow the arena and promote it.
    promote_pending: bool,
    promoted: HugePages,
}

/// Batch shapes whose bindings are kept.
const BOUND_SHAPES: usize = 4;

/// Mappings smaller than this keep their pages (thread stacks are 8 MiB at most).
const HUGE_PAGE_MIN_MAPPING: usize = 16 << 20;

impl std::fmt::Debug for ImageEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageEncoder").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Element rank of each output kind.
fn rank_of(kind: OutputKind) -> usize {
    match kind {
        OutputKind::FeatureMap => 4,
        OutputKind::PatchTokens => 3,
        OutputKind::Vector => 2,
    }
}

impl ImageEncoder {
    /// Loads the model named by `config`, with the library from [`runtime_library_path`].
    pub fn load(config: ModelConfig, options: EncoderOptions) -> Result<Self> {
        Self::load_with_library(config, options, &runtime_library_path())
    }

    /// As [`ImageEncoder::load`] with an explicit ONNX Runtime library.
    pub fn load_with_library(config: ModelConfig, options: EncoderOptions, library: &Path) -> Result<Self> {
        let env = runtime(library)?;
        let file = &config.model_file;
        let at = || Location::file(file);
        if !file.is_file() {
            return Err(Error::model(at(), format!("model file not found (named by {})", config.path.display())));
        }
        let ort_err = |what: &str, e: String| Error::model(at(), format!("{what}: {e}"));
        // 0 is passed on: ONNX Runtime then picks one thread per physical core and pins each
        // to its core, which a fixed count does not do.
        let threads = options.threads;
        let session = Session::builder(env)
            .map_err(|e| ort_err("session options", e.to_string()))?
            .with_optimization_level(options.optimization)
            .and_then(|b| b.with_intra_threads(threads))
            // One graph, run over and over: the sequential executor, and memory-pattern
            // planning so that repeated runs of one shape reuse one arena layout.
            .and_then(|b| b.with_parallel_execution(false))
            .and_then(|b| b.with_memory_pattern(true))
            .and_then(|b| b.with_intra_op_spinning(options.spin))
            // ... but only within a run: once it ends the threads block, leaving the cores to
            // what runs between sessions (decoding, sampling; the Python baseline in the
            // interleaved benchmark).
            .and_then(|b| b.with_config_entry("session.force_spinning_stop", "1"))
            .map_err(|e| ort_err("session options", e.to_string()))?
            .commit_from_file(file)
            .map_err(|e| ort_err("cannot load the model", e.to_string()))?;
        let enc = ImageEncoder {
            config,
            session,
            io: Vec::new(),
            batch: empty_batch(),
            last_session_s: 0.0,
            last_preprocess_s: 0.0,
            huge_pages: options.huge_pages,
            promote_pending: false,
            promoted: HugePages::default(),
        };
        enc.check_signature()?;
        Ok(enc)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Seconds the last run spent inside ONNX Runtime (not preprocessing or copying).
    pub fn last_session_seconds(&self) -> f64 {
        self.last_session_s
    }

    /// What the last promotion to huge pages did (after the first run of a batch shape).
    pub fn huge_pages(&self) -> HugePages {
        self.promoted
    }

    /// Seconds the last [`ImageEncoder::encode_into`] (or `encode`) spent preprocessing.
    pub fn last_preprocess_seconds(&self) -> f64 {
        self.last_preprocess_s
    }

    /// Checks the model's declared input and outputs against the config.
    fn check_signature(&self) -> Result<()> {
        let cfg = &self.config;
        let at = || Location::file(&cfg.model_file).detail(format!("config {}", cfg.path.display()));
        let shape_of = |t: &ValueType| t.tensor_shape().map(|s| s.iter().copied().collect::<Vec<i64>>());
        let names = |v: &[ort::value::Outlet]| v.iter().map(|o| o.name().to_string()).collect::<Vec<_>>().join(", ");
        let Some(input) = self.session.inputs().iter().find(|i| i.name() == cfg.input) else {
            return Err(Error::model(
                at(),
                format!("the model has no input `{}` (its inputs: {})", cfg.input, names(self.session.inputs())),
            ));
        };
        let ishape = shape_of(input.dtype()).unwrap_or_default();
        let (cdim, other) = match cfg.layout {
            Layout::Nchw => (1, 3),
            Layout::Nhwc => (3, 1),
        };
        // A dynamic channel axis would let the wrong layout through to a confusing run-time
        // failure: 3 fixed where the other layout keeps its channels says which one it is.
        let other_layout = ishape.len() == 4 && ishape[cdim] < 0 && ishape[other] == 3;
        if ishape.len() != 4 || !(ishape[cdim] == 3 || ishape[cdim] < 0) || other_layout {
            return Err(Error::model(
                at(),
                format!(
                    "input `{}` must be a {:?} image tensor with 3 channels, the model declares {ishape:?}",
                    cfg.input, cfg.layout
                ),
            ));
        }
        for spec in &cfg.outputs {
            let Some(out) = self.session.outputs().iter().find(|o| o.name() == spec.name) else {
                return Err(Error::model(
                    at(),
                    format!(
                        "the config names output `{}`, the model has: {}",
                        spec.name,
                        names(self.session.outputs())
                    ),
                ));
            };
            let shape = shape_of(out.dtype()).unwrap_or_default();
            let cdim = match spec.kind {
                OutputKind::FeatureMap | OutputKind::Vector => 1,
                OutputKind::PatchTokens => 2,
            };
            let rank = rank_of(spec.kind);
            if shape.len() != rank || !(shape[cdim] < 0 || shape[cdim] as usize == spec.channels) {
                return Err(Error::model(
                    at(),
                    format!(
                        "output `{}`: the config says {:?} with {} channels (rank {rank}), the model declares shape {shape:?}",
                        spec.name, spec.kind, spec.channels
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Preprocesses and runs one batch (e.g. the five cameras of a frame) in one session run.
    pub fn encode(&mut self, images: &[RgbView<'_>]) -> Result<Outputs> {
        let mut out = Outputs::default();
        self.encode_into(images, &mut out)?;
        Ok(out)
    }

    /// [`ImageEncoder::encode`] into `out`, reusing its arrays where the shapes allow (a
    /// stream of frames then copies the outputs into warm memory instead of fresh pages).
    /// The images are preprocessed straight into the model's bound input tensor.
    pub fn encode_into(&mut self, images: &[RgbView<'_>], out: &mut Outputs) -> Result<()> {
        let t = std::time::Instant::now();
        // The batch's shape and geometry only: its data is the bound input tensor.
        let mut batch = std::mem::replace(&mut self.batch, empty_batch());
        let r = plan_batch(&self.config, images, &mut batch).and_then(|()| {
            self.bind(&batch)?;
            write_batch(&self.config, images, &batch, Self::bound_input(&mut self.io));
            self.last_preprocess_s = t.elapsed().as_secs_f64();
            self.run_bound(&batch, out)
        });
        self.batch = batch;
        r
    }

    /// Runs an already preprocessed batch.
    pub fn run(&mut self, batch: &Batch) -> Result<Outputs> {
        let mut out = Outputs::default();
        self.run_into(batch, &mut out)?;
        Ok(out)
    }

    /// [`ImageEncoder::run`] into `out`, reusing its arrays where the shapes allow.
    pub fn run_into(&mut self, batch: &Batch, out: &mut Outputs) -> Result<()> {
        let len: usize = batch.shape.iter().product();
        if batch.data.len() != len {
            return Err(Error::invalid(
                Location::file(&self.config.path).detail("preprocessed batch"),
                format!("{len} values for shape {:?}", batch.shape),
                format!("{} values", batch.data.len()),
            ));
        }
        self.bind(batch)?;
        Self::bound_input(&mut self.io).copy_from_slice(&batch.data);
        self.run_bound(batch, out)
    }

    /// Binds an input and outputs for `batch`'s shape unless they are bound already.
    fn bind(&mut self, batch: &Batch) -> Result<()> {
        if let Some(k) = self.io.iter().position(|io| io.shape == batch.shape) {
            self.io[..=k].rotate_right(1);
            return Ok(());
        }
        self.io.truncate(BOUND_SHAPES - 1);
        let at = || Location::file(&self.config.model_file);
        let err = |what: &str, e: ort::Error| Error::model(at(), format!("{what}: {e}"));
        let input = Tensor::<f32>::new(self.session.allocator(), batch.shape)
            .map_err(|e| err("cannot allocate the input", e))?;
        let mut binding = self.session.create_binding().map_err(|e| err("cannot bind I/O", e))?;
        // An owned tensor is bound by reference (no copy): later writes into it are what
        // the next run reads.
        binding.bind_input(&self.config.input, &input).map_err(|e| err("cannot bind the input", e))?;
        for spec in &self.config.outputs {
            let shape = expected_shape(spec, batch);
            let t = Tensor::<f32>::new(self.session.allocator(), shape.clone())
                .map_err(|e| err("cannot allocate an output", e))?;
            binding.bind_output(&spec.name, t).map_err(|e| err("cannot bind an output", e))?;
        }
        self.io.insert(0, BoundIo { shape: batch.shape, input, binding });
        self.promote_pending = self.huge_pages;
        Ok(())
    }

    /// The bound input tensor's data (after [`ImageEncoder::bind`]).
    fn bound_input(io: &mut [BoundIo]) -> &mut [f32] {
        match io.first_mut() {
            Some(io) => io.input.extract_tensor_mut().1,
            None => unreachable!("bound before"),
        }
    }

    /// Runs the session on the bound input and copies the outputs into `out`.
    fn run_bound(&mut self, batch: &Batch, out: &mut Outputs) -> Result<()> {
        let at = || Location::file(&self.config.model_file);
        let Some(io) = self.io.first() else { unreachable!("run_bound follows bind") };
        let t = std::time::Instant::now();
        let outputs = self.session.run_binding(&io.binding);
        self.last_session_s = t.elapsed().as_secs_f64();
        let outputs = outputs.map_err(|e| {
            Error::model(
                at(),
                format!(
                    "the run failed for input {:?} (do the model's outputs match the shapes its config implies?): {e}",
                    batch.shape
                ),
            )
        })?;
        fill_outputs(&self.config, &outputs, batch, out).map_err(|reason| Error::model(at(), reason))?;
        // The arena has now grown to what this shape needs (ONNX Runtime keeps it).
        if std::mem::take(&mut self.promote_pending) {
            self.promoted = promote_large_mappings(HUGE_PAGE_MIN_MAPPING);
        }
        Ok(())
    }
}

fn empty_batch() -> Batch {
    Batch { data: Vec::new(), shape: [0; 4], input_width: 0, input_height: 0, geometry: Vec::new() }
}

/// The output shape the config implies for `batch` (TensorFlow "SAME" sizes: ceil).
fn expected_shape(spec: &OutputSpec, batch: &Batch) -> Vec<usize> {
    let n = batch.shape[0];
    let (w, h) = (batch.input_width as usize, batch.input_height as usize);
    match spec.kind {
        OutputKind::FeatureMap => {
            let s = spec.stride.unwrap_or(1) as usize;
            vec![n, spec.channels, h.div_ceil(s), w.div_ceil(s)]
        }
        OutputKind::PatchTokens => {
            let p = spec.patch.unwrap_or(1) as usize;
            vec![n, spec.prefix_tokens + (h / p) * (w / p), spec.channels]
        }
        OutputKind::Vector => vec![n, spec.channels],
    }
}

/// `spare`'s memory when it has `shape`, otherwise fresh zeros.
fn reuse<D: Dimension>(spare: Option<Array<f32, D>>, shape: D) -> Array<f32, D> {
    match spare {
        Some(a) if a.raw_dim() == shape && a.is_standard_layout() => a,
        _ => Array::zeros(shape),
    }
}

/// Copies the bound outputs into `out` (reusing its arrays of the same name and shape),
/// checking their shapes.
fn fill_outputs(
    cfg: &ModelConfig,
    outputs: &SessionOutputs<'_>,
    batch: &Batch,
    out: &mut Outputs,
) -> std::result::Result<(), String> {
    let mut old_maps = std::mem::take(&mut out.maps);
    let mut old_vectors = std::mem::take(&mut out.vectors);
    let mut maps = Vec::new();
    let mut vectors = Vec::new();
    for spec in &cfg.outputs {
        let value =
            outputs.get(spec.name.as_str()).ok_or_else(|| format!("output `{}` missing after the run", spec.name))?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| format!("output `{}`: {e}", spec.name))?;
        let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let want = expected_shape(spec, batch);
        if dims != want {
            return Err(format!("output `{}` has shape {dims:?}, the config implies {want:?}", spec.name));
        }
        let spare_map = old_maps.iter().position(|m| m.name == spec.name).map(|i| old_maps.swap_remove(i).data);
        match spec.kind {
            OutputKind::Vector => {
                let spare = old_vectors.iter().position(|(n, _)| *n == spec.name).map(|i| old_vectors.swap_remove(i).1);
                let mut a = reuse(spare, Ix2(dims[0], dims[1]));
                a.as_slice_mut().ok_or("a standard-layout vector output")?.copy_from_slice(data);
                vectors.push((spec.name.clone(), a));
            }
            OutputKind::FeatureMap => {
                let mut a = reuse(spare_map, Ix4(dims[0], dims[1], dims[2], dims[3]));
                a.as_slice_mut().ok_or("a standard-layout map")?.copy_from_slice(data);
                maps.push(FeatureMap::new(spec.name.clone(), spec.stride.unwrap_or(1), a, batch.geometry.clone()));
            }
            OutputKind::PatchTokens => {
                let p = spec.patch.unwrap_or(1) as usize;
                let (gh, gw) = (batch.input_height as usize / p, batch.input_width as usize / p);
                let (n, c) = (dims[0], dims[2]);
                let mut a = reuse(spare_map, Ix4(n, c, gh, gw));
                for b in 0..n {
                    for t in 0..gh * gw {
                        let row = &data[(b * dims[1] + spec.prefix_tokens + t) * c..][..c];
                        for (ch, v) in row.iter().enumerate() {
                            a[[b, ch, t / gw, t % gw]] = *v;
                        }
                    }
                }
                maps.push(FeatureMap::new(spec.name.clone(), p as u32, a, batch.geometry.clone()));
            }
        }
    }
    *out = Outputs {
        maps,
        vectors,
        geometry: batch.geometry.clone(),
        input_size: (batch.input_width, batch.input_height),
    };
    Ok(())
}

/// Geometry helper for callers that preprocess themselves.
pub fn geometry_of(config: &ModelConfig, width: u32, height: u32) -> ImageGeometry {
    let (cw, ch) = config.resized_size(width, height);
    ImageGeometry::new(width, height, cw, ch)
}
