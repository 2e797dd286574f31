//! The streaming server on loopback: a replayed segment comes back whole, and under faults
//! (corrupt messages, a client killed mid-frame, a stalled result reader, SIGINT) the
//! counters add up (received = processed + dropped + rejected) and every frame reported
//! processed has its result.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow_flight::{FlightClient, FlightData, FlightDescriptor, Ticket};
use futures::StreamExt;
use scenetok::io::v2::schema::key;
use scenetok::io::v2::{Component, Dataset, FrameRequest};
use scenetok::models::motion::Baseline;
use scenetok::pipeline::Pipeline;
use scenetok::pipeline::stages::{MotionStage, PointsStage, SegmentMaps};
use scenetok::sim::generate::{GenerateConfig, Preset as WorldPreset, generate};
use scenetok::stream::presets::{Preset, PresetSpec, StageName};
use scenetok::stream::replay::{Rate, ReplayOptions, connect, replay};
use scenetok::stream::wire::MultiplexEncoder;
use scenetok::stream::{ServeOptions, Server, StatsReport};

fn world(frames: usize, seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cfg = GenerateConfig { segments: 1, frames, seed, ..GenerateConfig::preset(WorldPreset::Tiny) };
    generate(dir.path(), &cfg, |_, _| {}).unwrap();
    dir
}

/// TOP points and constant-velocity motion: cheap stages with real outputs.
fn spec() -> PresetSpec {
    PresetSpec { stages: vec![StageName::Points, StageName::Motion], ..Preset::Streaming.spec() }
}

fn pipeline(spec: &PresetSpec) -> (Pipeline, SegmentMaps) {
    let maps = SegmentMaps::default();
    let p = Pipeline::new()
        .then(PointsStage::first_returns(&spec.lasers))
        .unwrap()
        .then(MotionStage::new(Baseline::ConstantVelocity.predictor(), maps.clone()))
        .unwrap();
    (p, maps)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn start(tweak: impl FnOnce(&mut ServeOptions)) -> Server {
    start_with(None, tweak).await
}

async fn start_with(
    sink: Option<Box<dyn scenetok::stream::FrameSink>>,
    tweak: impl FnOnce(&mut ServeOptions),
) -> Server {
    let spec = spec();
    let (p, maps) = pipeline(&spec);
    let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap(), spec);
    opts.queue_capacity = 1000;
    tweak(&mut opts);
    Server::start(p, maps, sink, opts).await.unwrap()
}

/// Waits until nothing is in progress and `done(report)` holds (or fails after 60 s).
async fn settle(server: &Server, done: impl Fn(&StatsReport) -> bool) -> StatsReport {
    let t = Instant::now();
    loop {
        let r = server.stats();
        if r.frames_in_progress == 0 && done(&r) {
            return r;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "server did not settle: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The results of `segment` the server kept, read with DoGet.
async fn results(server: &Server, count: usize) -> Vec<RecordBatch> {
    let mut client = connect(&server.local_addr().to_string()).await.unwrap();
    let ticket = serde_json::json!({ "count": count }).to_string();
    let s = client.do_get(Ticket { ticket: ticket.into() }).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), s.map(|b| b.unwrap()).collect::<Vec<_>>()).await.unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

fn assert_balanced(r: &StatsReport) {
    assert!(r.balanced(), "received must equal processed + dropped + rejected: {r:?}");
}

/// Per frame of the world's segment, its messages in the order a sender sends them
/// (segment-level components first, as frame "−1").
type Parts = Vec<(Component, RecordBatch)>;

fn frame_batches(root: &Path, spec: &PresetSpec) -> (Parts, Vec<(i64, Parts)>) {
    let ds = Dataset::open(root).unwrap();
    let seg = ds.segments().next().unwrap().to_string();
    let order = spec.components();
    let head: Vec<_> = order
        .iter()
        .filter(|c| !c.is_per_frame())
        .filter_map(|&c| ds.segment_batch(&seg, c).unwrap().map(|b| (c, b)))
        .collect();
    let per_frame: Vec<Component> = order.iter().copied().filter(|c| c.is_per_frame()).collect();
    let frames = ds
        .frame_batches(&seg, &FrameRequest::only(&per_frame).without_second_returns())
        .unwrap()
        .map(|f| {
            let (ts, mut parts) = f.unwrap();
            parts.sort_by_key(|(c, _)| order.iter().position(|o| o == c));
            (ts, parts)
        })
        .collect();
    (head, frames)
}

async fn send(client: &mut FlightClient, messages: Vec<FlightData>) {
    let acks = client.do_put(futures::stream::iter(messages.into_iter().map(Ok))).await.unwrap();
    let _: Vec<_> = acks.collect().await;
}

fn with_column(batch: &RecordBatch, name: &str, column: ArrayRef) -> RecordBatch {
    let i = batch.schema().index_of(name).unwrap();
    let mut cols = batch.columns().to_vec();
    cols[i] = column;
    RecordBatch::try_new(batch.schema(), cols).unwrap()
}

#[test]
fn replayed_segment_comes_back_whole() {
    let w = world(20, 11);
    runtime().block_on(async {
        let server = start(|_| {}).await;
        let client = connect(&server.local_addr().to_string()).await.unwrap();
        let opts = ReplayOptions { rate: Rate::Max, looped: false, duration: None, segment: None, frames: None };
        let sent = replay(w.path(), client, &opts).await.unwrap();
        assert_eq!((sent.frames_sent, sent.messages_rejected), (20, 0));
        let r = settle(&server, |r| r.frames_processed == 20).await;
        assert_eq!((r.frames_received, r.rejected(), r.dropped()), (20, 0, 0), "{r:?}");
        let got = results(&server, 20).await;
        assert_eq!(rows(&got), 20);
        let points: u64 = got
            .iter()
            .flat_map(|b| {
                b.column_by_name("points").unwrap().as_primitive::<arrow::datatypes::UInt64Type>().values().to_vec()
            })
            .sum();
        assert!(points > 20 * 1000, "every frame has its TOP points: {points}");
        let trajectories: usize =
            got.iter().map(|b| b.column_by_name("trajectories").unwrap().as_list::<i32>().values().len()).sum();
        assert!(trajectories > 0, "agents get predictions once they have a history");
        let timestamps: Vec<i64> = got
            .iter()
            .flat_map(|b| b.column(1).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec())
            .collect();
        assert!(timestamps.windows(2).all(|w| w[0] < w[1]), "results come in frame order");
        let fin = server.shutdown().await.unwrap();
        assert_balanced(&fin);
    });
}

#[test]
fn corrupt_messages_are_rejected_counted_and_the_stream_goes_on() {
    // 150 frames: 605 batches, 6 of them bad (1%).
    let w = world(150, 12);
    let spec = spec();
    let (head, frames) = frame_batches(w.path(), &spec);
    runtime().block_on(async {
        let server = start(|o| o.assembly.timeout = Duration::from_millis(300)).await;
        let mut client = connect(&server.local_addr().to_string()).await.unwrap();
        let mut enc = MultiplexEncoder::new(FlightDescriptor::new_path(vec!["frames".into()]));
        let mut msgs = Vec::new();
        for (c, b) in &head {
            msgs.extend(enc.encode(*c, b).unwrap());
        }
        let mut total = head.len();
        for (i, (ts, parts)) in frames.iter().enumerate() {
            for (c, b) in parts {
                let mut b = b.clone();
                let mut garbage = false;
                match (i, c) {
                    // Bytes that are not Arrow: the frame never completes.
                    (3, Component::Lidar) => garbage = true,
                    // A range image shorter than its shape says.
                    (7, Component::Lidar) => {
                        let name = "[LiDARComponent].range_image_return1.values";
                        let list = b.column_by_name(name).unwrap().as_list::<i32>();
                        let first = list.value(0);
                        let short = first.slice(0, first.len() - 1);
                        let item = Arc::new(arrow::datatypes::Field::new("item", short.data_type().clone(), true));
                        let mut lists = vec![short];
                        lists.extend((1..list.len()).map(|r| list.value(r)));
                        let refs: Vec<&dyn Array> = lists.iter().map(|a| a.as_ref()).collect();
                        let values = arrow::compute::concat(&refs).unwrap();
                        let offsets = arrow::buffer::OffsetBuffer::from_lengths(lists.iter().map(|a| a.len()));
                        let col = arrow::array::ListArray::new(item, offsets, values, None);
                        b = with_column(&b, name, Arc::new(col));
                    }
                    // A vehicle pose without its transform.
                    (11, Component::VehiclePose) => {
                        let keep: Vec<usize> = (0..b.num_columns())
                            .filter(|&k| !b.schema().field(k).name().contains("transform"))
                            .collect();
                        b = b.project(&keep).unwrap();
                    }
                    _ => {}
                }
                let mut m = enc.encode(*c, &b).unwrap();
                if garbage {
                    let last = m.len() - 1;
                    m[last].data_header = bytes::Bytes::from_static(b"\xff\xff\xff\xffnot arrow at all");
                }
                total += 1;
                msgs.extend(m);
            }
            // A camera image that is not a JPEG (the part joins the frame before its lidar).
            if i == 23 {
                let ds = Dataset::open(w.path()).unwrap();
                let seg = ds.segments().next().unwrap().to_string();
                let (_, cams) = ds
                    .frame_batches(&seg, &FrameRequest::only(&[Component::CameraImage]))
                    .unwrap()
                    .nth(i)
                    .unwrap()
                    .unwrap()
                    .1
                    .remove(0);
                let bad = arrow::array::BinaryArray::from(vec![&b"\xff\xd8 truncated"[..]; cams.num_rows()]);
                let m = enc
                    .encode(Component::CameraImage, &with_column(&cams, "[CameraImageComponent].image", Arc::new(bad)))
                    .unwrap();
                total += 1;
                // Before the frame's lidar (its schema message and batch), which completes it.
                let lidar = msgs.split_off(msgs.len() - 2);
                msgs.extend(m);
                msgs.extend(lidar);
            }
            // Out of order (older than what was dispatched) and from the future.
            if i == 15 || i == 19 {
                let pose = &parts.iter().find(|(c, _)| *c == Component::VehiclePose).unwrap().1;
                let t = if i == 15 { ts - 1_050_000 } else { ts + 3_600_000_000 };
                let moved = with_column(pose, key::TIMESTAMP, Arc::new(Int64Array::from(vec![t; pose.num_rows()])));
                let m = enc.encode(Component::VehiclePose, &moved).unwrap();
                total += 1;
                msgs.extend(m);
            }
        }
        send(&mut client, msgs).await;
        let r = settle(&server, |r| r.frames_processed + r.rejected() == 150).await;
        assert_balanced(&r);
        assert_eq!(r.frames_received, 150);
        assert_eq!(r.frames_processed, 146, "{r:?}");
        assert_eq!(r.frames_rejected.get("incomplete"), Some(&2), "{r:?}");
        assert_eq!(r.frames_rejected.get("bad_value"), Some(&2), "range image and JPEG: {r:?}");
        for reason in ["undecodable", "missing_column", "out_of_order", "from_the_future"] {
            assert_eq!(r.messages_rejected.get(reason), Some(&1), "{reason}: {r:?}");
        }
        assert_eq!(r.messages_received as usize, total, "every batch counted once");
        assert_eq!(total, 605);
        assert_eq!(rows(&results(&server, 146).await), 146, "every processed frame has its result");
        server.shutdown().await.unwrap();
    });
}

#[test]
fn killed_client_mid_frame_then_a_reconnect_goes_on() {
    let w = world(12, 13);
    let spec = spec();
    let (head, frames) = frame_batches(w.path(), &spec);
    runtime().block_on(async {
        let server = start(|o| o.assembly.timeout = Duration::from_millis(300)).await;
        let addr = server.local_addr().to_string();
        // First client: the segment's set-up and frames 0-5, then half of frame 6, then it dies
        // with its stream open.
        let (tx, rx) = tokio::sync::mpsc::channel::<FlightData>(64);
        let mut first = connect(&addr).await.unwrap();
        let acks = first.do_put(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)).await.unwrap();
        let mut enc = MultiplexEncoder::new(FlightDescriptor::new_path(vec!["frames".into()]));
        for (c, b) in &head {
            for m in enc.encode(*c, b).unwrap() {
                tx.send(m).await.unwrap();
            }
        }
        for (i, (_, parts)) in frames.iter().enumerate().take(7) {
            let n = if i == 6 { parts.len() - 1 } else { parts.len() };
            for (c, b) in &parts[..n] {
                for m in enc.encode(*c, b).unwrap() {
                    tx.send(m).await.unwrap();
                }
            }
        }
        settle(&server, |r| r.frames_processed == 6).await;
        drop((tx, acks, first));
        // Another client goes on from frame 7.
        let mut second = connect(&addr).await.unwrap();
        let mut enc = MultiplexEncoder::new(FlightDescriptor::new_path(vec!["frames".into()]));
        let mut msgs = Vec::new();
        for (_, parts) in &frames[7..] {
            for (c, b) in parts {
                msgs.extend(enc.encode(*c, b).unwrap());
            }
        }
        send(&mut second, msgs).await;
        let r = settle(&server, |r| r.frames_processed + r.rejected() == 12).await;
        assert_balanced(&r);
        assert_eq!((r.frames_received, r.frames_processed), (12, 11), "{r:?}");
        assert_eq!(r.frames_rejected.get("incomplete"), Some(&1), "the half frame: {r:?}");
        assert_eq!(rows(&results(&server, 11).await), 11);
        server.shutdown().await.unwrap();
    });
}

#[test]
fn stalled_result_reader_does_not_stall_the_pipeline() {
    let w = world(40, 14);
    runtime().block_on(async {
        let server = start(|o| o.subscriber_buffer = 1).await;
        // A reader that asks for results and never reads them.
        let mut stalled = connect(&server.local_addr().to_string()).await.unwrap();
        let _held = stalled.do_get(Ticket { ticket: Default::default() }).await.unwrap();
        let client = connect(&server.local_addr().to_string()).await.unwrap();
        let opts = ReplayOptions { rate: Rate::Max, looped: false, duration: None, segment: None, frames: None };
        replay(w.path(), client, &opts).await.unwrap();
        let r = settle(&server, |r| r.frames_processed == 40).await;
        assert_balanced(&r);
        // A reader that reads gets every result, whatever the stalled one does.
        assert_eq!(rows(&results(&server, 40).await), 40);
        let fin = tokio::time::timeout(Duration::from_secs(20), server.shutdown())
            .await
            .expect("shutdown with a stalled reader")
            .unwrap();
        assert_balanced(&fin);
    });
}

#[test]
fn sigint_mid_stream_finishes_flushes_and_exits_zero() {
    stop_mid_stream(libc::SIGINT);
}

#[test]
fn sigterm_mid_stream_finishes_flushes_and_exits_zero() {
    stop_mid_stream(libc::SIGTERM);
}

fn stop_mid_stream(signal: i32) {
    let w = world(30, 15);
    let out = tempfile::tempdir().unwrap();
    let parts = out.path().join("results");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scenetok"))
        .args(["serve", "--listen", "127.0.0.1:0", "--stages", "points,motion", "--motion", "constant-velocity"])
        .args(["--stats-every", "0", "--part-frames", "7", "--out"])
        .arg(&parts)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line}")).to_string();
    runtime().block_on(async {
        let client = connect(&addr).await.unwrap();
        let opts = ReplayOptions {
            rate: Rate::Times(1.0),
            looped: true,
            duration: Some(Duration::from_secs(2)),
            segment: None,
            frames: None,
        };
        let send = tokio::spawn(async move { replay(w.path(), client, &opts).await });
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // The signal while frames are still coming.
        unsafe { libc::kill(child.id() as i32, signal) };
        let _ = send.await;
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "serve did not stop after signal {signal}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let json = rest.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no final stats in {rest}"));
    let r: StatsReport = serde_json::from_str(json).unwrap();
    assert_balanced(&r);
    assert!(r.frames_processed >= 5, "{r:?}");
    // Every processed frame is in a finished part; nothing is left half-written.
    let mut total = 0;
    for e in std::fs::read_dir(&parts).unwrap() {
        let p: PathBuf = e.unwrap().path();
        assert_eq!(p.extension().and_then(|e| e.to_str()), Some("parquet"), "{}", p.display());
        let f = std::fs::File::open(&p).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
        total += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    assert_eq!(total as u64, r.frames_processed);
    assert_eq!(r.results_written, r.frames_processed);
}

#[test]
fn pyarrow_flight_client_sends_a_segment_and_reads_predictions() {
    let Some(py) = crate::common::python_with("pyarrow.flight") else { return };
    let w = world(15, 16);
    runtime().block_on(async {
        let server = start(|_| {}).await;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/stream_client.py");
        let addr = server.local_addr().to_string();
        let root = w.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(py).arg(script).arg(&addr).arg(&root).output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(v["results"], 15, "{v}");
        assert!(v["trajectories"].as_u64().unwrap() > 0, "{v}");
        assert_eq!(v["stats"]["frames_processed"], 15, "{v}");
        let r = server.shutdown().await.unwrap();
        assert_balanced(&r);
    });
}

#[test]
fn two_senders_get_their_own_segments() {
    let (a, b) = (world(10, 17), world(12, 18));
    let name = |w: &tempfile::TempDir| Dataset::open(w.path()).unwrap().segments().next().unwrap().to_string();
    let (sa, sb) = (name(&a), name(&b));
    assert_ne!(sa, sb);
    runtime().block_on(async {
        let server = start(|_| {}).await;
        let addr = server.local_addr().to_string();
        let opts = ReplayOptions { rate: Rate::Times(4.0), looped: false, duration: None, segment: None, frames: None };
        let (ca, cb) = (connect(&addr).await.unwrap(), connect(&addr).await.unwrap());
        let (ra, rb) = tokio::join!(replay(a.path(), ca, &opts), replay(b.path(), cb, &opts));
        assert_eq!((ra.unwrap().frames_sent, rb.unwrap().frames_sent), (10, 12));
        let r = settle(&server, |r| r.frames_processed == 22).await;
        assert_balanced(&r);
        for (seg, n) in [(&sa, 10), (&sb, 12)] {
            let mut client = connect(&addr).await.unwrap();
            let ticket = serde_json::json!({ "segment": seg, "count": n }).to_string();
            let s = client.do_get(Ticket { ticket: ticket.into() }).await.unwrap();
            let got: Vec<RecordBatch> = s.map(|b| b.unwrap()).collect().await;
            assert_eq!(rows(&got), n);
            assert!(got.iter().all(|b| b.column(0).as_string::<i32>().iter().all(|s| s == Some(seg.as_str()))));
        }
        server.shutdown().await.unwrap();
    });
}

#[test]
fn live_view_logs_every_frame_it_keeps_up_with() {
    let w = world(12, 19);
    let dir = tempfile::tempdir().unwrap();
    let rrd = dir.path().join("live.rrd");
    let view = scenetok::viz::live::LiveView::open(&scenetok::viz::VizSink::Save(rrd.clone())).unwrap();
    runtime().block_on(async {
        let server = start_with(Some(Box::new(view)), |_| {}).await;
        let client = connect(&server.local_addr().to_string()).await.unwrap();
        let opts = ReplayOptions { rate: Rate::Times(2.0), looped: false, duration: None, segment: None, frames: None };
        replay(w.path(), client, &opts).await.unwrap();
        settle(&server, |r| r.frames_processed == 12).await;
        server.shutdown().await.unwrap();
    });
    assert!(rrd.exists(), "the recording is complete once the server stops");
    let Some(s) = crate::viz::read_back(&rrd) else { return };
    let logged = crate::viz::entity(&s, "/world/ego")["rows"].as_u64().unwrap();
    assert!((10..=12).contains(&logged), "frames logged: {logged} of 12 (a slow viewer may lose a few)");
    assert_eq!(crate::viz::entity(&s, "/metrics/stream/latency_ms")["rows"].as_u64(), Some(logged));
    assert_eq!(crate::viz::entity(&s, "/world/motion/predicted")["rows"].as_u64(), Some(logged));
}

/// (stage, frame timestamp, start, end) of every stage run.
type RunLog = Arc<std::sync::Mutex<Vec<(&'static str, i64, Instant, Instant)>>>;

/// A stage that takes `ms` and records when it ran on which frame.
struct Sleepy {
    name: &'static str,
    ms: u64,
    log: RunLog,
}

impl scenetok::pipeline::Stage for Sleepy {
    fn kind(&self) -> scenetok::pipeline::StageKind {
        scenetok::pipeline::StageKind::Heads
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn run(&mut self, ctx: &mut scenetok::pipeline::FrameContext) -> scenetok::error::Result<()> {
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(self.ms));
        self.log.lock().unwrap().push((self.name, ctx.frame.timestamp_micros, t, Instant::now()));
        Ok(())
    }
}

#[test]
fn stages_overlap_frames_and_a_slow_stage_drops_only_unstarted_frames() {
    let w = world(24, 20);
    let log: RunLog = Arc::default();
    let stage = |name, ms| Sleepy { name, ms, log: log.clone() };
    let p = Pipeline::new().then(stage("first", 30)).unwrap().then(stage("second", 30)).unwrap();
    runtime().block_on(async {
        let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap(), spec());
        opts.queue_capacity = 1;
        let server = Server::start(p, SegmentMaps::default(), None, opts).await.unwrap();
        let client = connect(&server.local_addr().to_string()).await.unwrap();
        // A frame every 20 ms: faster than a stage's 30 ms, so frames must be dropped, and
        // always one waiting when the first stage is free.
        let opts = ReplayOptions { rate: Rate::Times(5.0), looped: false, duration: None, segment: None, frames: None };
        replay(w.path(), client, &opts).await.unwrap();
        let r = settle(&server, |r| r.frames_processed + r.dropped() + r.rejected() == 24).await;
        assert_balanced(&r);
        assert!(r.dropped() > 0, "the stages cannot keep up with an unpaced replay: {r:?}");
        assert_eq!(r.rejected(), 0, "{r:?}");
        let got = results(&server, r.frames_processed as usize).await;
        let processed: Vec<i64> = got
            .iter()
            .flat_map(|b| b.column(1).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec())
            .collect();
        assert_eq!(processed.len() as u64, r.frames_processed);
        server.shutdown().await.unwrap();
        let log = log.lock().unwrap();
        let runs = |name| log.iter().filter(|e| e.0 == name).collect::<Vec<_>>();
        let (first, second) = (runs("first"), runs("second"));
        // Every frame a stage started went through every stage and came out: drops happen
        // only in front of the first stage.
        let started: Vec<i64> = first.iter().map(|e| e.1).collect();
        assert_eq!(started, processed, "frames started = frames processed, in order");
        assert_eq!(second.iter().map(|e| e.1).collect::<Vec<_>>(), processed);
        // The second stage of one frame ran while the first stage ran a later frame.
        let overlapped = second.iter().filter(|b| first.iter().any(|a| a.1 > b.1 && a.2 < b.3 && b.2 < a.3)).count();
        assert!(overlapped * 2 >= second.len(), "{overlapped} of {} frames overlapped the next", second.len());
    });
}
