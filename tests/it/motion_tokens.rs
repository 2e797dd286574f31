//! `dataset motion --tokens`: the token frames' elements written beside each shard, in the
//! world frame, give each agent the same tokens as the pipeline's elements of those frames
//! in the vehicle frame; builds resume; a split opens again for evaluation with its tokens
//! and obstacle distances.

use std::collections::BTreeMap;

use scenetok::models::motion::transformer::{SceneTokenSource, SceneTokenSpec};
use scenetok::models::scene_tokens::agent_frame::{AgentPose, FrameElements, TokenSelection, tokens_for_agent};
use scenetok::models::scene_tokens::shard as token_shard;
use scenetok::models::scene_tokens::{ElementKind, TokenConfig};
use scenetok::pipeline::export::motion_dataset::{DatasetPlan, Split, TokenPlan, build, token_frames, token_sidecar};
use scenetok::pipeline::export::token_pipeline;
use scenetok::pipeline::motion_split::open_split;
use scenetok::pipeline::{FrameContext, SourceFrame};
use scenetok::sim::generate::{GenerateConfig, Preset, SimulatedSegment, segment_name};

fn plan() -> DatasetPlan {
    let world = GenerateConfig { frames: 100, seed: 0, segments: 1, ..GenerateConfig::preset(Preset::Tiny) };
    DatasetPlan {
        worlds: BTreeMap::from([(Split::Train, 0), (Split::Validation, 0), (Split::Test, 1)]),
        base_seed: 70,
        stride: 5,
        inputs: Vec::new(),
        tokens: Some(TokenPlan {
            history: vec![10, 0],
            lidar_div: world.lidar_div,
            camera_div: world.camera_div,
            image_channels: 0,
            lidar_channels: 0,
            config: format!("{:?}", TokenConfig::default()),
        }),
        world,
    }
}

fn spec() -> SceneTokenSpec {
    SceneTokenSpec {
        features: "all".into(),
        image_channels: 0,
        lidar_channels: 0,
        history: vec![10, 0],
        max_tokens: 512,
        range: 60.0,
        kinds: vec![],
    }
}

#[test]
fn token_sidecars_give_each_agent_the_pipelines_tokens() {
    let out = tempfile::tempdir().unwrap();
    let plan = plan();
    let (mut pipeline, _) = token_pipeline(None, None, TokenConfig::default()).unwrap();
    let first = build(out.path(), &plan, Some(&mut pipeline), |_| {}).unwrap();
    assert_eq!(first.shards_built, 1);

    // The sidecar holds exactly the token frames: each window's current frame and 1 s before.
    let seed = Split::Test.seed(plan.base_seed);
    let name = segment_name(seed, 0);
    let sidecar = token_sidecar(out.path(), Split::Test, &name);
    let (_, frames) = token_shard::read(&sidecar).unwrap();
    let cfg = GenerateConfig { seed, ..plan.world.clone() };
    let seg = SimulatedSegment::new(&cfg, 0);
    let scenarios = seg.motion_scenarios(plan.stride);
    let wanted = token_frames(&scenarios, &[10, 0]);
    assert_eq!(frames.keys().map(|&f| f as usize).collect::<Vec<_>>(), wanted);
    assert_eq!(wanted, [0, 5, 10, 15], "two windows, 5 frames apart");

    // Opened again: the same scenarios, every agent to predict with an obstacle distance.
    let split = open_split(out.path(), Split::Test).unwrap();
    assert_eq!(split.scenarios.len(), scenarios.len());
    let targets: usize = scenarios.iter().map(|s| s.tracks_to_predict.len()).sum();
    assert_eq!(split.obstacle_distance.len(), targets);
    let tokens = split.tokens.clone().expect("a dataset with tokens");

    // One agent's tokens from the sidecar equal those made from the pipeline's own elements
    // of the same frames (vehicle frame, with the frame's pose).
    let s = scenarios.last().unwrap();
    let track = s.tracks_to_predict[0].track_index;
    let from_sidecar = tokens.tokens(s, track, &spec()).unwrap().expect("tokens near the agent");
    let now = scenetok::io::v2::motion::window_start(&s.id).unwrap() + s.current_time_index;
    let mut ctx = FrameContext::default();
    let mut made = Vec::new();
    for (f, age) in [(now - 10, 1.0f32), (now, 0.0)] {
        let frame = seg.frame(f, out.path(), |_| {}).unwrap();
        let pose = frame.vehicle_pose.unwrap();
        ctx.load(SourceFrame { segment: name.clone(), unit: 0, index: f, frame, at: Default::default() });
        pipeline.run(&mut ctx).unwrap();
        made.push((ctx.tokens.as_ref().unwrap().elements.clone(), pose, age));
    }
    let history: Vec<FrameElements> =
        made.iter().map(|(e, pose, age)| FrameElements { elements: e, vehicle_pose: pose, age: *age }).collect();
    let st = &s.tracks[track].states[s.current_time_index];
    let agent = AgentPose { x: st.x, y: st.y, z: st.z, heading: st.heading as f64 };
    let direct = tokens_for_agent(&history, agent, TokenSelection::default()).unwrap();
    assert_eq!(from_sidecar.tokens.dim(), direct.tokens.dim());
    let worst = (&from_sidecar.tokens - &direct.tokens).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
    assert!(worst < 1e-4, "largest difference {worst}");
    assert!(from_sidecar.tokens.nrows() > 10, "{} tokens", from_sidecar.tokens.nrows());

    // A model wanting a block the sidecars lack is refused with a message naming both.
    let wants_lidar = SceneTokenSpec { lidar_channels: 24, features: "lidar".into(), ..spec() };
    let err = tokens.tokens(s, track, &wants_lidar).unwrap_err().to_string();
    assert!(err.contains("token features"), "{err}");

    // Resume: nothing to build; a lost sidecar rebuilds its shard, the same.
    let again = build(out.path(), &plan, Some(&mut pipeline), |_| {}).unwrap();
    assert_eq!((again.shards_built, again.shards_skipped), (0, 1));
    let before = std::fs::read(&sidecar).unwrap();
    std::fs::remove_file(&sidecar).unwrap();
    let third = build(out.path(), &plan, Some(&mut pipeline), |_| {}).unwrap();
    assert_eq!(third.shards_built, 1);
    assert_eq!(token_shard::read(&sidecar).unwrap().1, frames);
    assert_eq!(std::fs::read(&sidecar).unwrap().len(), before.len());

    // A plan with tokens needs the pipeline, and the other way round.
    assert!(build(out.path(), &plan, None, |_| {}).is_err());
}

/// The trainer's tokens (tools/train/scene_tokens.py, golden file from
/// tools/train/make_token_golden.py on this test's dataset) equal evaluation's: every kind,
/// and object tokens only (`--token-kinds object`).
#[test]
fn training_tokens_equal_the_rust_token_source() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/scene_tokens.safetensors");
    let bytes = std::fs::read(&path).expect("the golden file is committed");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let samples: Vec<(String, i64)> = serde_json::from_str(&meta["samples"]).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |name: &str| -> Vec<f32> {
        st.tensor(name).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    };
    let offsets = |name: &str| -> Vec<usize> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
            .collect()
    };
    let width: usize = meta["width"].parse().unwrap();

    let out = tempfile::tempdir().unwrap();
    let plan = plan();
    let (mut pipeline, _) = token_pipeline(None, None, TokenConfig::default()).unwrap();
    build(out.path(), &plan, Some(&mut pipeline), |_| {}).unwrap();
    let split = open_split(out.path(), Split::Test).unwrap();
    let tokens = split.tokens.unwrap();
    let objects_only = SceneTokenSpec { kinds: vec![ElementKind::Object], ..spec() };
    for (prefix, spec, at_least) in [("", spec(), 100), ("object_", objects_only, 50)] {
        let golden = f32s(&format!("{prefix}tokens"));
        let offsets = offsets(&format!("{prefix}offsets"));
        assert_eq!(offsets.len(), samples.len() + 1);
        let mut compared = 0;
        for (k, (id, track_id)) in samples.iter().enumerate() {
            let s = split.scenarios.iter().find(|s| &s.id == id).expect("the golden sample's scenario");
            let track = s.tracks.iter().position(|t| t.id == *track_id).unwrap();
            let want = &golden[offsets[k] * width..offsets[k + 1] * width];
            match tokens.tokens(s, track, &spec).unwrap() {
                None => assert!(want.is_empty(), "{prefix}{id} {track_id}: Rust has no tokens"),
                Some(t) => {
                    assert_eq!(t.tokens.dim(), (offsets[k + 1] - offsets[k], width), "{prefix}{id} {track_id}");
                    for (a, b) in t.tokens.iter().zip(want) {
                        assert!((a - b).abs() < 1e-4, "{prefix}{id} {track_id}: {a} vs {b}");
                    }
                    compared += t.tokens.nrows();
                }
            }
        }
        assert!(compared > at_least, "{prefix}: {compared} tokens compared");
    }
}

/// The attention view (`viz --dataset`): a token model's modes for an agent near an
/// obstacle, its most likely mode's weight on each scene token, logged and drawn.
#[test]
fn attention_view_weighs_every_scene_token_of_an_agent() {
    use scenetok::backend::Device;
    use scenetok::models::motion::transformer::{MotionTransformer, TransformerConfig};
    let out = tempfile::tempdir().unwrap();
    let plan = plan();
    let (mut pipeline, _) = token_pipeline(None, None, TokenConfig::default()).unwrap();
    build(out.path(), &plan, Some(&mut pipeline), |_| {}).unwrap();
    let split = open_split(out.path(), Split::Test).unwrap();
    let tokens = split.tokens.clone().unwrap();
    let cfg = TransformerConfig { scene_dim: 24, ..TransformerConfig::D128 };
    let model = MotionTransformer::random(cfg, 3, &Device::cpu()).unwrap().with_scene_spec(spec()).unwrap();
    assert!(
        MotionTransformer::random(cfg, 3, &Device::cpu())
            .unwrap()
            .with_scene_spec(SceneTokenSpec { lidar_channels: 24, ..spec() })
            .is_err()
    );
    let s = &split.scenarios[0];
    let track = s.tracks_to_predict[0].track_index;
    let segment = s.id.rsplit_once('@').unwrap().0;
    let obstacles = split.obstacles[segment].clone();
    let view = scenetok::viz::attention::agent_attention(&model, tokens.as_ref(), s, track, obstacles).unwrap();
    let n = tokens.tokens(s, track, &spec()).unwrap().unwrap().tokens.nrows();
    assert_eq!(view.tokens.len(), n);
    assert_eq!(view.modes.len(), 6);
    assert!(view.modes.windows(2).all(|m| m[0].0 >= m[1].0), "most likely first");
    let total: f32 = view.tokens.iter().map(|t| t.weight).sum();
    assert!((total - view.scene_share).abs() < 1e-5 && total > 0.0 && total < 1.0, "{total}");
    // Over every agent that passes an obstacle: shares that are shares.
    let none = Vec::new();
    let looked = scenetok::eval::attention::obstacle_attention(
        &model,
        tokens.as_ref(),
        &split.scenarios,
        |s| split.obstacles.get(s.id.rsplit_once('@').unwrap().0).unwrap_or(&none),
        10.0,
        1.5,
    )
    .unwrap();
    assert!(looked.seen <= looked.agents);
    for v in [looked.scene_share, looked.obstacle_share, looked.obstacle_token_share] {
        assert!((0.0..=1.0).contains(&v), "{looked:?}");
    }
    assert!(looked.obstacle_share <= looked.scene_share + 1e-9);
    let svg = scenetok::viz::attention::attention_svg(&view, 45.0).unwrap();
    assert!(svg.contains("<svg") && svg.contains("scene tokens"));
    let rrd = out.path().join("a.rrd");
    let rec =
        scenetok::viz::open_recording("t", &scenetok::viz::VizSink::Save(rrd.clone()), scenetok::viz::Layout::Motion)
            .unwrap();
    scenetok::viz::attention::log_attention(&rec, &view).unwrap();
    rec.finish().unwrap();
    assert!(std::fs::metadata(&rrd).unwrap().len() > 1000);
}
