//! `scenetok viz`: rerun recordings of any input and of motion predictions.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::{Context, DeviceArg};
use scenetok::models::motion::MotionModel;
use scenetok::viz::{PointColors, VizOptions, VizSink};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("sink").required(true).multiple(true).args(["save", "spawn", "connect", "write_blueprints", "svg", "png"])))]
pub struct Args {
    /// A v2 dataset folder, a v1 `Frame` TFRecord or a WOMD `Scenario` TFRecord.
    #[arg(long, required_unless_present_any = ["write_blueprints", "dataset"], conflicts_with = "dataset")]
    data: Option<PathBuf>,
    /// Or a `scenetok dataset motion --tokens` folder: one agent of --split near an unlabelled
    /// obstacle, the predicted modes of the token model (--weights) and its most likely mode's
    /// attention to each scene token.
    #[arg(long)]
    dataset: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "test")]
    split: scenetok::pipeline::export::motion_dataset::Split,
    /// With --dataset: the scenario (default: the agent to predict that comes closest to an
    /// unlabelled obstacle, moving vehicles (≥ 3 m/s) first).
    #[arg(long, requires = "track")]
    scenario: Option<String>,
    /// With --scenario: the agent's track id.
    #[arg(long)]
    track: Option<i64>,
    /// With --dataset: also draw the view into this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Camera segmentation with SparseRefine on the first frame of --data (of --segment, or at
    /// --frames' start): per camera the image, the dense prediction at --refine-scale, the
    /// selected pixels, the refined result and the ground truth (--png and/or --save).
    #[arg(long, requires = "data")]
    refine: bool,
    #[arg(long, default_value_t = 0.5)]
    refine_scale: f64,
    /// Camera detection with SparseViT on the first frame of --data (of --segment, or at
    /// --frames' start): per camera the windows each stage ran (bright) and pruned (dark) at
    /// --ratios, and the boxes (--png and/or --save).
    #[arg(long, requires = "data", conflicts_with = "refine")]
    sparsevit: bool,
    /// With --sparsevit: the ratios (blocks by commas, stages by slashes; default dense).
    #[arg(long, requires = "sparsevit")]
    ratios: Option<String>,
    /// With --sparsevit: the detector (default: the data folder's weights/camera_det_small.safetensors).
    #[arg(long, requires = "sparsevit")]
    det_weights: Option<PathBuf>,
    /// With --refine or --sparsevit: the panels as one picture (PNG), shrunk by --png-factor.
    #[arg(long)]
    png: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    png_factor: u32,
    /// The segment of a v2 dataset (default: the first).
    #[arg(long)]
    segment: Option<String>,
    /// Frame indices: `A..B`, `A..`, `..B` or `N`.
    #[arg(long, value_parser = scenetok::viz::parse_frame_range)]
    frames: Option<std::ops::Range<usize>>,
    /// Write the recording to an .rrd file (with the blueprint).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Start a viewer and stream to it (`rerun` on PATH, else .venv/bin/rerun).
    #[arg(long)]
    spawn: bool,
    /// Stream to a running viewer: `host:port` or a `rerun+http://…/proxy` URL.
    #[arg(long)]
    connect: Option<String>,
    /// Write the blueprints (perception.rbl, motion.rbl) into this folder and exit.
    #[arg(long)]
    write_blueprints: Option<PathBuf>,
    /// Colour points by intensity or by LiDAR segmentation class.
    #[arg(long, value_enum, default_value = "intensity")]
    color: PointColors,
    /// Also log the second returns.
    #[arg(long)]
    second_returns: bool,
    /// Skip the range images.
    #[arg(long)]
    no_range_images: bool,
    /// Skip camera images and panoptic labels.
    #[arg(long)]
    no_cameras: bool,
    /// Also show each frame's scene elements (agents, open-set objects, ground tiles): points
    /// coloured by element, objects and agents as boxes.
    #[arg(long)]
    tokens: bool,
    /// Motion models to run on the input's scenarios (repeatable); their predictions and
    /// metrics join the recording (a WOMD file without --model shows the scenario alone).
    #[arg(long = "model", value_enum)]
    motion_models: Vec<MotionModel>,
    /// The transformer's weights (default: weights/motion_transformer.safetensors).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// For v2 datasets with --model: a 9.1 s scenario window every STRIDE frames.
    #[arg(long, default_value_t = 20)]
    stride: usize,
    /// With --model on a v2 dataset: frames without a vehicle_pose use the identity pose
    /// (with a warning) instead of stopping with an error.
    #[arg(long)]
    allow_missing: bool,
    /// Where the transformer computes.
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    if let Some(dir) = &args.write_blueprints {
        for p in scenetok::viz::write_blueprints(dir)? {
            writeln!(stdout, "wrote {}", p.display())?;
        }
        return Ok(());
    }
    if let Some(dir) = &args.dataset {
        return attention(&args, dir, ctx, stdout);
    }
    let Some(data) = args.data.clone() else { anyhow::bail!("--data is required") };
    if args.refine {
        return refine(&args, &data, ctx, stdout);
    }
    if args.sparsevit {
        return sparsevit(&args, &data, ctx, stdout);
    }
    let sink = match (args.save, args.spawn, args.connect) {
        (Some(p), _, _) => VizSink::Save(p),
        (_, true, _) => VizSink::Spawn,
        (_, _, Some(a)) => VizSink::Connect(a),
        _ => anyhow::bail!("one of --save, --spawn, --connect is required"),
    };
    let opts = VizOptions {
        segment: args.segment,
        frames: args.frames,
        point_colors: args.color,
        second_returns: args.second_returns,
        range_images: !args.no_range_images,
        cameras: !args.no_cameras,
        segmentation: !args.no_cameras,
        allow_missing_pose: args.allow_missing,
        tokens: args.tokens,
        ..VizOptions::default()
    };
    // The models before the data: missing weights are reported before any reading.
    let mut models = Vec::with_capacity(args.motion_models.len());
    if !args.motion_models.is_empty() {
        let device = args.device.open()?;
        for m in &args.motion_models {
            let weights = match (&args.weights, m) {
                (Some(w), _) => w.clone(),
                (None, MotionModel::Transformer) => {
                    ctx.data()?.weights(scenetok::models::motion::transformer::WEIGHTS_FILE)
                }
                // The baselines read no weights.
                (None, _) => PathBuf::new(),
            };
            models.push(m.load(&weights, &device)?);
        }
    }
    let started = std::time::Instant::now();
    let summary = scenetok::viz::input::record_path(&data, &opts, &sink, &models, args.stride)?;
    writeln!(stdout, "{}", summary.input.as_deref().unwrap_or("?"))?;
    if let Some(f) = &summary.frames {
        writeln!(
            stdout,
            "logged {} frame(s): {} points, {} camera images, {} panoptic labels, {} 3-D boxes, {} map features{}",
            f.frames,
            f.points,
            f.images,
            f.panoptic_labels,
            f.lidar_boxes,
            f.map_features,
            if args.tokens { format!(", {} scene elements", f.elements) } else { String::new() }
        )?;
    }
    if let Some(m) = &summary.motion {
        writeln!(
            stdout,
            "logged {} scenario(s), {} steps, {} predicted agents, {} modes",
            m.scenarios, m.steps, m.predicted_agents, m.modes
        )?;
    }
    let dest = match &sink {
        VizSink::Save(p) => p.display().to_string(),
        VizSink::Spawn => "a spawned viewer".into(),
        VizSink::Connect(a) => a.clone(),
    };
    writeln!(stdout, "to {dest} in {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(())
}

/// `viz --dataset`: one agent's modes and its most likely mode's attention to the scene tokens.
fn attention(args: &Args, dir: &std::path::Path, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    use scenetok::models::motion::transformer::{MotionTransformer, SceneTokenSource};
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => ctx.data()?.weights(scenetok::models::motion::transformer::WEIGHTS_FILE),
    };
    let model = MotionTransformer::load(&weights, &args.device.open()?)?;
    anyhow::ensure!(model.scene_spec().is_some(), "{}: not a model trained with scene tokens", weights.display());
    let split = scenetok::pipeline::motion_split::open_split(dir, args.split)?;
    let Some(tokens) = split.tokens.clone() else {
        anyhow::bail!("{}: built without tokens (`scenetok dataset motion --tokens`)", dir.display())
    };
    let (si, ti) = match (&args.scenario, args.track) {
        (Some(id), Some(track)) => {
            let si = split.scenarios.iter().position(|s| &s.id == id).ok_or_else(|| {
                anyhow::anyhow!("{}: no scenario {id} in the {} split", dir.display(), args.split.name())
            })?;
            let ti = split.scenarios[si]
                .tracks
                .iter()
                .position(|t| t.id == track)
                .ok_or_else(|| anyhow::anyhow!("scenario {id}: no track {track}"))?;
            (si, ti)
        }
        _ => {
            // The agent to predict that comes closest to an obstacle, moving vehicles first.
            let mut best: Option<(bool, f32, usize, usize)> = None;
            for (si, s) in split.scenarios.iter().enumerate() {
                for t in &s.tracks_to_predict {
                    let track = &s.tracks[t.track_index];
                    let Some(&d) = split.obstacle_distance.get(&(s.id.clone(), track.id)) else { continue };
                    let now = &track.states[s.current_time_index];
                    let moving = now.velocity_x.hypot(now.velocity_y) >= 3.0;
                    let key =
                        (track.agent_type != scenetok::scene::AgentType::Vehicle || !moving, d, si, t.track_index);
                    if best.is_none_or(|b| (key.0, key.1) < (b.0, b.1)) {
                        best = Some(key);
                    }
                }
            }
            let b = best.ok_or_else(|| anyhow::anyhow!("{}: no agent to predict", dir.display()))?;
            (b.2, b.3)
        }
    };
    let scenario = &split.scenarios[si];
    let segment = scenario.id.rsplit_once('@').map_or("", |(s, _)| s);
    let obstacles = split.obstacles.get(segment).cloned().unwrap_or_default();
    let source: &dyn SceneTokenSource = tokens.as_ref();
    let view = scenetok::viz::attention::agent_attention(&model, source, scenario, ti, obstacles)?;
    let track_id = scenario.tracks[ti].id;
    if let Some(path) = &args.svg {
        let svg = scenetok::viz::attention::attention_svg(&view, 45.0)?;
        scenetok::io::output::write_file(path, svg.as_bytes())?;
        writeln!(stdout, "wrote {}", path.display())?;
    }
    let sink = match (&args.save, args.spawn, &args.connect) {
        (Some(p), _, _) => Some(VizSink::Save(p.clone())),
        (_, true, _) => Some(VizSink::Spawn),
        (_, _, Some(a)) => Some(VizSink::Connect(a.clone())),
        _ => None,
    };
    if let Some(sink) = &sink {
        let rec = scenetok::viz::open_recording("scenetok attention", sink, scenetok::viz::Layout::Motion)?;
        scenetok::viz::attention::log_attention(&rec, &view)?;
        rec.finish()?;
    }
    let by_kind = |k: scenetok::models::scene_tokens::ElementKind| -> (usize, f32) {
        let of: Vec<_> = view.tokens.iter().filter(|t| t.kind == k).collect();
        (of.len(), of.iter().map(|t| t.weight).sum())
    };
    writeln!(
        stdout,
        "scenario {} track {track_id}: {} scene tokens, {:.1}% of the most likely mode's attention on them",
        scenario.id,
        view.tokens.len(),
        100.0 * view.scene_share
    )?;
    for k in [
        scenetok::models::scene_tokens::ElementKind::Agent,
        scenetok::models::scene_tokens::ElementKind::Object,
        scenetok::models::scene_tokens::ElementKind::Ground,
    ] {
        let (n, w) = by_kind(k);
        writeln!(stdout, "  {:<7} {n:>4} tokens, {:.1}% of the attention", k.name(), 100.0 * w)?;
    }
    Ok(())
}

/// `viz --sparsevit`: the detector's kept windows and boxes on one frame's cameras.
fn sparsevit(args: &Args, data: &std::path::Path, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    use scenetok::eval::camera_det::{det_request, ground_truth};
    use scenetok::models::det::detector::WEIGHTS_FILE;
    use scenetok::models::det::{DecodeOptions, Detector, Ratios};
    use scenetok::models::image_encoder::decode_frame_images;
    use scenetok::models::image_encoder::preprocess::RgbView;
    use scenetok::pipeline::{FrameSelection, Segments, Source};
    use scenetok::viz::refine::grid;
    use scenetok::viz::sparsevit::{SparseVitView, log, panels};

    let weights = match &args.det_weights {
        Some(w) => w.clone(),
        None => ctx.data()?.weights(WEIGHTS_FILE),
    };
    let dev = args.device.open()?;
    let det = Detector::load(&weights, &dev)?;
    let cfg = det.config().clone();
    let ratios = match &args.ratios {
        Some(r) => Ratios::parse(r, &cfg)?,
        None => Ratios::dense(&cfg),
    };
    let source = Source::open(data)?;
    let start = args.frames.as_ref().map_or(0, |r| r.start);
    let selection = FrameSelection::all()
        .segments(Segments::named_or(args.segment.clone(), Segments::All))
        .frames(start..start + 1)
        .request(det_request());
    let frame =
        source.frames(&selection)?.next().ok_or_else(|| anyhow::anyhow!("{}: no such frame", data.display()))??;
    let images = decode_frame_images(&frame.frame, &frame.at)?;
    anyhow::ensure!(!images.images.is_empty(), "{}: the frame has no camera image", data.display());
    let rec = match (&args.save, args.spawn, &args.connect) {
        (Some(p), _, _) => Some(rerun::RecordingStreamBuilder::new("scenetok sparsevit").save(p)?),
        (_, true, _) => Some(rerun::RecordingStreamBuilder::new("scenetok sparsevit").spawn()?),
        (_, _, Some(a)) => Some(rerun::RecordingStreamBuilder::new("scenetok sparsevit").connect_grpc_opts(a.clone())?),
        _ => None,
    };
    let mut rows = Vec::new();
    for ((camera, _), rgb) in images.cameras.iter().zip(&images.images) {
        let out = det.detect(&dev, RgbView::from(rgb), &ratios, &DecodeOptions::default())?;
        let truth = ground_truth(&frame.frame, *camera);
        let view = SparseVitView {
            camera: *camera,
            rgb,
            to_camera: rgb.width() as f64 / out.input_size.0 as f64,
            patch: cfg.patch,
            window: cfg.window,
            windows: &out.windows,
            detections: &out.detections,
            truth: &truth,
        };
        if let Some(rec) = &rec {
            log(rec, &view, 1)?;
        }
        rows.push(panels(&view, args.png_factor));
        let (ran, all) =
            out.windows.iter().flatten().fold((0, 0), |a, b| (a.0 + b.kept.len(), a.1 + b.grid.0 * b.grid.1));
        writeln!(
            stdout,
            "{camera}: {} boxes with score ≥ 0.3 ({} labelled), {:.0}% of windows run, backbone {:.1} ms",
            out.detections.iter().filter(|d| d.score >= 0.3).count(),
            truth.len(),
            100.0 * ran as f64 / all.max(1) as f64,
            out.times.backbone * 1e3
        )?;
    }
    if let Some(png) = &args.png {
        grid(&rows).save(png).map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
        writeln!(stdout, "wrote {} (columns: windows run per stage 1-{}, boxes)", png.display(), cfg.stages())?;
    }
    Ok(())
}

/// `viz --refine`: SparseRefine's stages on one frame's cameras.
fn refine(args: &Args, data: &std::path::Path, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    use scenetok::eval::camera_seg::{camera_request, labelled_images};
    use scenetok::models::image_encoder::EncoderOptions;
    use scenetok::models::image_encoder::preprocess::RgbView;
    use scenetok::models::seg::refiner::refine_image;
    use scenetok::models::seg::refiner::{Refiner, weights_file};
    use scenetok::models::seg::{CONFIG_FILE, DenseSegModel, Entropy, selector::select};
    use scenetok::pipeline::{FrameSelection, Segments, Source};
    use scenetok::viz::refine::{RefineView, grid, log, panels};

    let dir = ctx.data()?;
    let weights = dir.weights(&weights_file(args.refine_scale));
    let refiner = Refiner::load(&weights, &args.device.open()?)?;
    let tau = refiner.tau.ok_or_else(|| anyhow::anyhow!("{}: no `tau` in its metadata", weights.display()))?;
    let mut model = DenseSegModel::load(&dir.model(CONFIG_FILE), args.refine_scale, EncoderOptions::default())?;
    let source = Source::open(data)?;
    let start = args.frames.as_ref().map_or(0, |r| r.start);
    let selection = FrameSelection::all()
        .segments(Segments::named_or(args.segment.clone(), Segments::All))
        .frames(start..start + 1)
        .request(camera_request());
    let frame =
        source.frames(&selection)?.next().ok_or_else(|| anyhow::anyhow!("{}: no such frame", data.display()))??;
    let images = labelled_images(&frame.frame, &frame.at)?;
    anyhow::ensure!(!images.is_empty(), "{}: the frame has no labelled camera image", data.display());
    let views: Vec<RgbView<'_>> = images.iter().map(|i| RgbView::from(&i.rgb)).collect();
    let (outs, _) = model.run(&views, Entropy::Exact)?;
    let rec = match (&args.save, args.spawn, &args.connect) {
        (Some(p), _, _) => Some(rerun::RecordingStreamBuilder::new("scenetok refine").save(p)?),
        (_, true, _) => Some(rerun::RecordingStreamBuilder::new("scenetok refine").spawn()?),
        (_, _, Some(a)) => Some(rerun::RecordingStreamBuilder::new("scenetok refine").connect_grpc_opts(a.clone())?),
        _ => None,
    };
    let mut rows = Vec::new();
    let ctx_run = scenetok::sparse::layers::RunCtx::default();
    for (img, out) in images.iter().zip(&outs) {
        let dense = out.full_classes();
        let sel = select(out, tau);
        let (refined, _, _) = refine_image(&refiner, out, &dense, &img.rgb, &sel, &ctx_run)?;
        let mut selected = vec![false; dense.len()];
        for &(u, v) in &sel {
            selected[v as usize * out.width + u as usize] = true;
        }
        let view = RefineView {
            camera: img.camera,
            rgb: &img.rgb,
            dense: &dense,
            selected: &selected,
            refined: &refined,
            truth: &img.classes,
        };
        if let Some(rec) = &rec {
            log(rec, &view, 1)?;
        }
        rows.push(panels(&view, args.png_factor));
        let changed = dense.iter().zip(&refined).filter(|(a, b)| a != b).count();
        writeln!(
            stdout,
            "{}: {} pixels selected ({:.1}%), {} changed by the refiner",
            img.camera,
            sel.len(),
            100.0 * sel.len() as f64 / dense.len() as f64,
            changed
        )?;
    }
    if let Some(png) = &args.png {
        grid(&rows).save(png).map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
        writeln!(
            stdout,
            "wrote {} (columns: image, dense ×{}, selected, refined, truth)",
            png.display(),
            args.refine_scale
        )?;
    }
    Ok(())
}
