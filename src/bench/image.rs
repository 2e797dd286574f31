//! `scenetok bench image`: the image encoder on the five full-size cameras of a frame,
//! stage by stage (JPEG decode, preprocessing, the ONNX Runtime session, output copies,
//! per-point sampling), against Python onnxruntime running the same model on the same
//! preprocessed batch in the same invocation (`tools/image_reference.py serve`). Both sides'
//! sessions are timed with the same I/O binding by default: the input bound in place and
//! pre-allocated outputs bound once per batch shape (ours: `ImageEncoder`; Python:
//! `io_binding()` + `run_with_iobinding`); `BaselineBinding::Unbound` or `Both` also time
//! Python's plain `InferenceSession.run`, which allocates its outputs every run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::median;
use crate::error::{Error, Location, Result};
use crate::io::v2::Component;
use crate::models::image_encoder::huge_pages::HugePages;
use crate::models::image_encoder::{
    Batch, EncoderOptions, FrameImages, ImageEncoder, ModelConfig, Outputs, PointFeatures, RgbView,
    decode_frame_images_into, point_features_into,
};
use crate::pipeline::stages::PointsStage;
use crate::pipeline::{FrameContext, FrameSelection, Pipeline, Segments, Source};
use crate::scene::Frame;

/// What to run.
#[derive(Debug, Clone)]
pub struct ImageBenchOptions {
    /// A v1 `.tfrecord` (first frame) or a v2 dataset folder (first frame of the first segment).
    pub source: PathBuf,
    pub config: PathBuf,
    /// Override the config's resize factor.
    pub scale: Option<f64>,
    /// Session options; the intra-op thread count goes to both sides (0 = ONNX Runtime's
    /// default: one per physical core).
    pub encoder: EncoderOptions,
    /// Timed runs per side (after one warm-up run); medians are reported.
    pub runs: usize,
    /// Python with onnxruntime (None: no baseline).
    pub python: Option<PathBuf>,
    /// Run Python with glibc's huge pages for large allocations, as scenetok's session has.
    pub python_huge_pages: bool,
    /// Which of Python's session calls to time.
    pub python_binding: BaselineBinding,
    pub script: PathBuf,
}

/// How the Python baseline calls onnxruntime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BaselineBinding {
    /// I/O bound once, as ours: the input in place, pre-allocated outputs (`run_with_iobinding`).
    #[default]
    Bound,
    /// `InferenceSession.run`: outputs allocated and returned as new arrays every run.
    Unbound,
    /// Both, each in its own worker, one run of each after every scenetok run.
    Both,
}

impl BaselineBinding {
    /// The worker modes (`binding` in the manifest) to run.
    fn modes(self) -> &'static [PythonMode] {
        match self {
            BaselineBinding::Bound => &[PythonMode::Bound],
            BaselineBinding::Unbound => &[PythonMode::Unbound],
            BaselineBinding::Both => &[PythonMode::Bound, PythonMode::Unbound],
        }
    }
}

/// One Python worker's way of running the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonMode {
    Bound,
    Unbound,
}

impl PythonMode {
    fn manifest_name(self) -> &'static str {
        match self {
            PythonMode::Bound => "bound",
            PythonMode::Unbound => "unbound",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            PythonMode::Bound => "I/O bound once as ours (input in place, pre-allocated outputs, run_with_iobinding)",
            PythonMode::Unbound => {
                "unbound (InferenceSession.run: outputs allocated and returned as new arrays each run)"
            }
        }
    }
}

/// Python's session times in one mode.
#[derive(Debug, Clone)]
pub struct PythonSession {
    pub mode: PythonMode,
    /// Median seconds of one run on the same batch.
    pub seconds: f64,
    /// Lowest and highest ratio of Python's run to scenetok's over the interleaved pairs.
    pub ratio_range: (f64, f64),
}

/// Median seconds per frame of each stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stages {
    pub decode: f64,
    pub preprocess: f64,
    pub session: f64,
    pub outputs: f64,
    pub sampling: f64,
}

impl Stages {
    pub fn total(&self) -> f64 {
        self.decode + self.preprocess + self.session + self.outputs + self.sampling
    }
}

/// The result.
#[derive(Debug, Clone)]
pub struct ImageBench {
    pub source: String,
    pub cameras: Vec<String>,
    pub input_shape: [usize; 4],
    pub threads: usize,
    /// What the encoder moved to huge pages (None: asked not to).
    pub huge_pages: Option<HugePages>,
    /// Python ran with glibc's huge pages.
    pub python_huge_pages: bool,
    pub runs: usize,
    pub points: usize,
    /// True when the frame had no LiDAR and a synthetic cloud was sampled instead.
    pub synthetic_points: bool,
    pub stages: Stages,
    /// Python onnxruntime on the same batch, per mode asked for (empty: no baseline).
    pub python: Vec<PythonSession>,
}

/// A stand-in for a Waymo TOP return (64 beams × 2650 columns, +2.4° to −17.6°, the
/// sensor 2 m up) for frames without LiDAR (the pvps sample has empty range images), in
/// range-image order as real clouds are: beams that hit the ground do so, the others end
/// 10-75 m away (deterministic pseudo-random ranges).
fn synthetic_points() -> Vec<[f32; 3]> {
    let (rows, cols, height) = (64usize, 2650usize, 2.0f64);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut pts = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let incl = (2.4 - 20.0 * r as f64 / (rows - 1) as f64).to_radians();
        for c in 0..cols {
            let az = std::f64::consts::PI - std::f64::consts::TAU * (c as f64 + 0.5) / cols as f64;
            let ground = if incl < 0.0 { height / -incl.sin() } else { f64::INFINITY };
            let range = ground.min(10.0 + 65.0 * next());
            let (h, z) = (range * incl.cos(), height + range * incl.sin());
            pts.push([(h * az.cos()) as f32, (h * az.sin()) as f32, z as f32]);
        }
    }
    pts
}

/// The first frame of the first segment of `path`, and its points (every laser, both
/// returns; `None` when it has no LiDAR data), through the pipeline's source and points
/// stage.
fn load_frame(path: &Path) -> Result<(Frame, Option<Vec<[f32; 3]>>)> {
    let source = Source::open(path)?;
    let mut points = Pipeline::new().then(PointsStage::default().with_second_returns())?;
    let mut request = points.request();
    request.components.extend([Component::CameraImage, Component::CameraCalibration]);
    let selection = FrameSelection::all().segments(Segments::First).frames(0..1).request(request);
    let frame = source
        .frames(&selection)?
        .next()
        .ok_or_else(|| Error::invalid(Location::file(path), "an input with a frame", "none"))??;
    let mut ctx = FrameContext::new(frame);
    points.run(&mut ctx)?;
    let xyz: Vec<[f32; 3]> = ctx.points.iter().flat_map(|c| c.cloud.xyz.iter().copied()).collect();
    Ok((ctx.frame, (!xyz.is_empty()).then_some(xyz)))
}

/// Runs the benchmark: each timed scenetok run is followed by one Python run on the same
/// batch, so both sides see the same machine load over the same minutes.
pub fn run(opts: &ImageBenchOptions) -> Result<ImageBench> {
    let (frame, points) = load_frame(&opts.source)?;
    let (points, synthetic) = match points {
        Some(p) => (p, false),
        None => (synthetic_points(), true),
    };
    let mut config = ModelConfig::load(&opts.config)?;
    if let Some(s) = opts.scale {
        config = config.with_scale(s)?;
    }
    let mut enc = ImageEncoder::load(config, opts.encoder)?;
    let map_name = enc.config().sample.clone();
    let at = Location::file(&opts.source);
    // The batch of the warm-up run: Python's input, and the input shape reported.
    let mut batch = Batch { data: Vec::new(), shape: [0; 4], input_width: 0, input_height: 0, geometry: Vec::new() };
    let mut samples: Vec<Stages> = Vec::new();
    let modes = opts.python_binding.modes();
    let mut python_samples: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut python: Vec<PythonWorker> = Vec::new();
    let mut cameras = Vec::new();
    // Buffers live across runs as they do across a stream's frames.
    let (mut images, mut out, mut pf) = (FrameImages::default(), Outputs::default(), PointFeatures::default());
    for run in 0..=opts.runs.max(1) {
        let t = Instant::now();
        decode_frame_images_into(&frame, &at, &mut images)?;
        let decode = t.elapsed().as_secs_f64();
        let views: Vec<RgbView<'_>> = images.images.iter().map(RgbView::from).collect();
        // Preprocessing writes straight into the session's bound input.
        let t = Instant::now();
        enc.encode_into(&views, &mut out)?;
        let encode = t.elapsed().as_secs_f64();
        let (preprocess, session) = (enc.last_preprocess_seconds(), enc.last_session_seconds());
        let fmap = out.map(&map_name).ok_or_else(|| {
            Error::invalid(Location::file(&enc.config().path), "the sampled map among the outputs", map_name.clone())
        })?;
        let t = Instant::now();
        point_features_into(&points, &images.cameras, fmap, &mut pf)?;
        let sampling = t.elapsed().as_secs_f64();
        std::hint::black_box(&pf);
        cameras = images
            .cameras
            .iter()
            .zip(&images.images)
            .map(|((n, _), im)| format!("{n} {}x{}", im.width(), im.height()))
            .collect();
        // Run 0 warms up (arena planning, kernel selection, page faults); the Python worker
        // starts after it, on the batch it produced, and warms up on its own.
        if run == 0 {
            batch = crate::models::image_encoder::preprocess(enc.config(), &views)?;
            if let Some(py) = &opts.python {
                let threads = opts.encoder.threads;
                for &mode in modes {
                    python.push(PythonWorker::start(
                        py,
                        &opts.script,
                        enc.config(),
                        &batch,
                        threads,
                        opts.python_huge_pages,
                        mode,
                    )?);
                }
            }
            continue;
        }
        samples.push(Stages { decode, preprocess, session, outputs: encode - preprocess - session, sampling });
        for (worker, times) in python.iter_mut().zip(python_samples.iter_mut()) {
            times.push(worker.time_one_run()?);
        }
    }
    drop(python);
    let pick = |f: fn(&Stages) -> f64| median(samples.iter().map(f).collect());
    let stages = Stages {
        decode: pick(|s| s.decode),
        preprocess: pick(|s| s.preprocess),
        session: pick(|s| s.session),
        outputs: pick(|s| s.outputs),
        sampling: pick(|s| s.sampling),
    };
    let python_sessions = if opts.python.is_some() {
        modes
            .iter()
            .zip(python_samples)
            .map(|(&mode, times)| {
                let ratios: Vec<f64> = times.iter().zip(&samples).map(|(p, s)| p / s.session.max(1e-12)).collect();
                PythonSession {
                    mode,
                    seconds: median(times),
                    ratio_range: (
                        ratios.iter().copied().fold(f64::MAX, f64::min),
                        ratios.iter().copied().fold(0.0, f64::max),
                    ),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ImageBench {
        source: opts.source.display().to_string(),
        cameras,
        input_shape: batch.shape,
        threads: opts.encoder.threads,
        huge_pages: opts.encoder.huge_pages.then(|| enc.huge_pages()),
        python_huge_pages: opts.python_huge_pages,
        runs: opts.runs.max(1),
        points: points.len(),
        synthetic_points: synthetic,
        stages,
        python: python_sessions,
    })
}

/// Python onnxruntime on the same batch (`tools/image_reference.py serve`): a long-lived
/// process that times one `InferenceSession.run` per request.
struct PythonWorker {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    dir: PathBuf,
    at: Location,
}

impl PythonWorker {
    fn start(
        py: &Path,
        script: &Path,
        cfg: &ModelConfig,
        batch: &Batch,
        threads: usize,
        huge_pages: bool,
        mode: PythonMode,
    ) -> Result<Self> {
        use std::process::{Command, Stdio};
        let dir =
            std::env::temp_dir().join(format!("scenetok-bench-image-{}-{}", std::process::id(), mode.manifest_name()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(Location::file(&dir), e))?;
        let input = dir.join("input.f32");
        let bytes: Vec<u8> = batch.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&input, bytes).map_err(|e| Error::io(Location::file(&input), e))?;
        let outputs: Vec<_> = cfg.outputs.iter().map(|o| serde_json::json!({"name": o.name})).collect();
        let manifest = serde_json::json!({
            "config": cfg.path, "input": {"file": "input.f32", "shape": batch.shape},
            "outputs": outputs, "threads": threads, "binding": mode.manifest_name(),
        });
        let mpath = dir.join("manifest.json");
        std::fs::write(&mpath, manifest.to_string()).map_err(|e| Error::io(Location::file(&mpath), e))?;
        let at = Location::file(script);
        let mut cmd = Command::new(py);
        // Python as installed unless asked: glibc's huge pages only with the tunable.
        match huge_pages {
            true => cmd.env("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1"),
            false => cmd.env_remove("GLIBC_TUNABLES"),
        };
        let mut child = cmd
            .arg(script)
            .arg("serve")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(at.clone(), e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::invalid(at, "piped standard streams", "none"));
        };
        let mut worker = PythonWorker { child, stdin: Some(stdin), stdout: std::io::BufReader::new(stdout), dir, at };
        let line = worker.read_line()?;
        if line.trim() != "ready" {
            return Err(worker.failed("`ready` after the warm-up run", &line));
        }
        Ok(worker)
    }

    /// Seconds of one Python run.
    fn time_one_run(&mut self) -> Result<f64> {
        use std::io::Write;
        let Some(stdin) = self.stdin.as_mut() else { return Err(self.failed("a running worker", "closed input")) };
        stdin.write_all(b"run\n").and_then(|()| stdin.flush()).map_err(|e| Error::io(self.at.clone(), e))?;
        let line = self.read_line()?;
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|_| self.failed("one JSON object with `seconds`", &line))?;
        v["seconds"].as_f64().ok_or_else(|| self.failed("one JSON object with `seconds`", &line))
    }

    fn read_line(&mut self) -> Result<String> {
        use std::io::BufRead;
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(|e| Error::io(self.at.clone(), e))?;
        Ok(line)
    }

    /// An error with the worker's stderr (it has exited or said something unexpected).
    fn failed(&mut self, expected: &str, got: &str) -> Error {
        use std::io::Read;
        let _ = self.child.kill();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        Error::invalid(
            self.at.clone(),
            format!("{expected} from the Python baseline (tools/setup.sh installs onnxruntime into .venv)"),
            format!("{:?}; stderr: {}", got.trim(), stderr.trim()),
        )
    }
}

impl Drop for PythonWorker {
    /// Ends the worker (end of input) and removes its folder, on success and on errors alike.
    fn drop(&mut self) {
        let _ = self.stdin.take();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ImageBench {
    pub fn report(&self) -> String {
        let s = &self.stages;
        let total = s.total();
        let mut r = format!(
            "{} cameras ({}) from {}\nmodel input {:?}, {} intra-op threads ({}), median of {} runs\n",
            self.cameras.len(),
            self.cameras.join(", "),
            self.source,
            self.input_shape,
            if self.threads == 0 { "all".into() } else { self.threads.to_string() },
            if self.threads == 0 { "one per physical core" } else { "fixed" },
            self.runs
        );
        r += &match self.huge_pages {
            Some(h) => format!(
                "session memory on transparent huge pages: {} mappings, {} MB ({} collapsed at once)
",
                h.mappings,
                h.bytes >> 20,
                h.collapsed
            ),
            None => "session memory on 4 KiB pages (--no-huge-pages)
"
            .to_string(),
        };
        let pts = format!(
            "per-point sampling ({} {}points)",
            self.points,
            if self.synthetic_points { "synthetic " } else { "" }
        );
        for (name, v) in [
            ("JPEG decode", s.decode),
            ("preprocess (resize, normalise, layout)", s.preprocess),
            ("ONNX Runtime session", s.session),
            ("output copies", s.outputs),
            (pts.as_str(), s.sampling),
        ] {
            r += &format!("  {name:<44} {:>9.1} ms {:>6.1}%\n", v * 1e3, 100.0 * v / total.max(1e-12));
        }
        r += &format!("  {:<44} {:>9.1} ms   → {:.2} frames/s\n", "total", total * 1e3, 1.0 / total.max(1e-12));
        r += &format!(
            "outside the session: {:.1}% of the frame (goal < 15%)\n",
            100.0 * (total - s.session) / total.max(1e-12)
        );
        if !self.python.is_empty() {
            r += "scenetok's session: I/O bound once per batch shape (input written in place, pre-allocated outputs)\n";
        }
        for p in &self.python {
            let (lo, hi) = p.ratio_range;
            r += &format!(
                "Python onnxruntime ({}), same model and batch, {}: {:.1} ms ({:.2} frames/s)\n\
                 scenetok session vs Python {}: {:.2}× (goal ≥ 1.0×; {lo:.2}-{hi:.2}× over the interleaved runs); \
                 scenetok end to end vs Python session alone: {:.2}×\n",
                if self.python_huge_pages { "glibc huge pages" } else { "as installed: 4 KiB pages" },
                p.mode.describe(),
                p.seconds * 1e3,
                1.0 / p.seconds.max(1e-12),
                p.mode.manifest_name(),
                p.seconds / s.session.max(1e-12),
                p.seconds / total.max(1e-12)
            );
        }
        r
    }
}
