//! `scenetok viz`: rerun recordings of any input and of motion predictions.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::{Context, DeviceArg};
use scenetok::models::motion::MotionModel;
use scenetok::viz::{PointColors, VizOptions, VizSink};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("sink").required(true).args(["save", "spawn", "connect", "write_blueprints"])))]
pub struct Args {
    /// A v2 dataset folder, a v1 `Frame` TFRecord or a WOMD `Scenario` TFRecord.
    #[arg(long, required_unless_present = "write_blueprints")]
    data: Option<PathBuf>,
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
    let Some(data) = args.data else { anyhow::bail!("--data is required") };
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
