//! The server: the Flight service (`service.rs`) feeds the assembler, one thread prepares
//! complete frames (their JPEGs decoded ahead), each pipeline stage runs on a thread of its
//! own with a bounded queue before the next ([`STAGE_QUEUE`]), so a frame's later stages
//! overlap the next frame's earlier ones; a last thread sends results to the hub, parquet
//! parts and a sink. What they share is in `shared.rs`. Shutdown follows one rule: frames
//! complete when it starts are finished (the queued ones, the prepared one and those in the
//! stages), incomplete ones are dropped and counted, then the results are flushed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::sync::watch;

use crate::error::{Error, Location, Result};
use crate::models::image_encoder::{FrameImages, decode_frame_images_into};
use crate::pipeline::stages::SegmentMaps;
use crate::pipeline::{FrameContext, Pipeline};

use super::assembler::{Assembler, AssemblyConfig};
use super::hub::{ParquetParts, ResultsHub};
use super::presets::PresetSpec;
use super::queue::FrameQueue;
use super::results::FrameResult;
use super::service::FlightSvc;
use super::shared::Shared;
use super::stats::{DropReason, FrameTimes, RejectReason, Stats, StatsReport};

/// The HTTP/2 flow-control window of a stream, server and client side.
pub const WINDOW_BYTES: u32 = 32 << 20;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub spec: PresetSpec,
    pub assembly: AssemblyConfig,
    /// Complete frames waiting for the pipeline besides the one ready (decoded ahead); beyond,
    /// the oldest waiting is dropped.
    pub queue_capacity: usize,
    /// Frames in the stages at once (handed to the first stage, not yet finished). Each
    /// stage runs on a thread of its own: 2 lets a frame's later stages overlap the next
    /// frame's earlier ones. More only adds latency when the stages fall behind (frames wait
    /// between stages, where they are not dropped, instead of in the front queue, where the
    /// oldest is): the full preset at 10 Hz with every stage's queue open held ~12 frames
    /// and answered 18 s late.
    pub in_flight: usize,
    /// A result later than this after its frame's first part arrived is marked late.
    pub deadline: Duration,
    /// Results waiting per subscriber; beyond, that subscriber loses them.
    pub subscriber_buffer: usize,
    /// Parquet parts of every result go here.
    pub out: Option<PathBuf>,
    pub part_frames: usize,
    /// Counters and latencies are logged this often.
    pub log_every: Duration,
}

impl ServeOptions {
    pub fn new(listen: SocketAddr, spec: PresetSpec) -> Self {
        let assembly = AssemblyConfig::new(spec.required());
        ServeOptions {
            listen,
            spec,
            assembly,
            queue_capacity: 2,
            in_flight: 2,
            deadline: Duration::from_millis(200),
            subscriber_buffer: 256,
            out: None,
            part_frames: 600,
            log_every: Duration::from_secs(10),
        }
    }
}

/// Takes every processed frame besides the subscribers (a live viewer). Runs on the results
/// thread: an implementation that does real work hands it to a thread of its own.
pub trait FrameSink: Send {
    fn frame(&mut self, ctx: &FrameContext, result: &FrameResult);
    /// The server is stopping: flush what was taken.
    fn finish(&mut self) {}
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    worker: Option<std::thread::JoinHandle<Result<()>>>,
    grpc: Option<tokio::task::JoinHandle<()>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds `opts.listen` and starts serving (within a tokio runtime); `pipeline` runs on
    /// every complete frame, `maps` is what its motion stage reads the segments' maps from.
    pub async fn start(
        pipeline: Pipeline,
        maps: SegmentMaps,
        sink: Option<Box<dyn FrameSink>>,
        opts: ServeOptions,
    ) -> Result<Server> {
        let at = Location::file(format!("flight://{}", opts.listen));
        let listener = tokio::net::TcpListener::bind(opts.listen).await.map_err(|e| Error::io(at.clone(), e))?;
        let addr = listener.local_addr().map_err(|e| Error::io(at, e))?;
        let parts = opts.out.as_deref().map(|d| ParquetParts::create(d, opts.part_frames)).transpose()?;
        let stats = Arc::new(Stats::default());
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            assembler: Mutex::new(Assembler::new(opts.assembly.clone(), maps)),
            queue: FrameQueue::new(opts.queue_capacity),
            hub: ResultsHub::new(stats.clone()),
            stats,
            running: AtomicU64::new(0),
            streams: AtomicU64::new(0),
            spec: opts.spec.clone(),
            subscriber_buffer: opts.subscriber_buffer,
            shutdown: shutdown.clone(),
        });
        let worker = {
            let (shared, deadline, in_flight) = (shared.clone(), opts.deadline, opts.in_flight.max(1));
            let spawn = move || {
                let in_stages = AtomicUsize::new(0);
                let stages = pipeline.into_single_stages();
                // The first stage takes a frame only when it is free (a rendezvous): the one
                // frame prepared ahead waits in the preparing thread, where it can be dropped.
                let (to_first, mut input) = sync_channel::<InFlight>(0);
                // Decoded images and contexts come back to be reused.
                let (spent_tx, spent) = sync_channel(stages.len() * (STAGE_QUEUE + 1) + 2);
                let (recycle_tx, recycle) = channel::<FrameContext>();
                std::thread::scope(|s| {
                    let (shared, in_stages) = (&shared, &in_stages);
                    let spawn_err = |what: &str, e| Error::io(Location::default().detail(what.to_string()), e);
                    std::thread::Builder::new()
                        .name("scenetok-prepare".into())
                        .spawn_scoped(s, move || run_prepare(shared, (in_stages, in_flight), to_first, spent, recycle))
                        .map_err(|e| spawn_err("frame-preparing thread", e))?;
                    for stage in stages {
                        let (tx, rx) = sync_channel::<InFlight>(STAGE_QUEUE);
                        let name = stage.stage_names().first().copied().unwrap_or("stage");
                        std::thread::Builder::new()
                            .name(format!("scenetok-{name}"))
                            .spawn_scoped(s, move || run_stage(stage, input, tx))
                            .map_err(|e| spawn_err("stage thread", e))?;
                        input = rx;
                    }
                    run_finish(shared, in_stages, deadline, input, spent_tx, recycle_tx, parts, sink)
                })
            };
            std::thread::Builder::new()
                .name("scenetok-results".into())
                .spawn(spawn)
                .map_err(|e| Error::io(Location::default().detail("results thread"), e))?
        };
        let ticker = {
            let (shared, every) = (shared.clone(), opts.log_every);
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                let mut last_log = Instant::now();
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = shutdown.changed() => break,
                    }
                    let events = shared.assembler().expire(Instant::now());
                    shared.handle(events);
                    if last_log.elapsed() >= every {
                        last_log = Instant::now();
                        log_stats(&shared.report());
                    }
                }
            })
        };
        let service = FlightServiceServer::new(FlightSvc::new(shared.clone()))
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let mut stopped = shutdown.clone();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let grpc = tokio::spawn(async move {
            // Windows that hold whole frames (a full-size TOP LiDAR is ~10 MB): with HTTP/2's
            // defaults a frame takes a dozen window updates, each a wait for a busy core,
            // which spread its parts' arrival over 50-150 ms.
            let r = tonic::transport::Server::builder()
                .initial_stream_window_size(WINDOW_BYTES)
                .initial_connection_window_size(2 * WINDOW_BYTES)
                .tcp_nodelay(true)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!("flight server: {e}");
            }
        });
        Ok(Server { shared, addr, stop, worker: Some(worker), grpc: Some(grpc), ticker: Some(ticker) })
    }

    /// Where it listens (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters now.
    pub fn stats(&self) -> StatsReport {
        self.shared.report()
    }

    /// Stops: no more messages are read, incomplete frames are dropped, queued and running
    /// ones finish, subscribers get what was sent and their streams end, parquet parts are
    /// closed. Returns the final counters.
    pub async fn shutdown(mut self) -> Result<StatsReport> {
        let _ = self.stop.send(true);
        let abandoned = self.shared.assembler().abandon_all();
        for _ in 0..abandoned {
            self.shared.stats.frame_dropped(DropReason::Shutdown);
        }
        self.shared.queue.close();
        let worker = self.worker.take();
        let result = tokio::task::spawn_blocking(move || worker.map(|w| w.join()))
            .await
            .map_err(|e| Error::model(Location::default().detail("results thread"), e.to_string()))?;
        self.shared.hub.close();
        if let Some(t) = self.ticker.take() {
            let _ = t.await;
        }
        if let Some(g) = self.grpc.take() {
            // Streams still open (a client that never closes) end with the server.
            if tokio::time::timeout(Duration::from_secs(5), g).await.is_err() {
                tracing::warn!("flight server: connections still open after 5 s, closed");
            }
        }
        match result {
            Some(Ok(r)) => r?,
            Some(Err(_)) => return Err(Error::model(Location::default().detail("results thread"), "panicked")),
            None => {}
        }
        let report = self.shared.report();
        log_stats(&report);
        Ok(report)
    }
}

fn log_stats(r: &StatsReport) {
    tracing::info!("{}", r.summary());
}

/// Frames that may wait between two stages (beyond, the earlier stage waits for the later one,
/// so a slow stage backs the frames up into the front queue, where the oldest unstarted one is
/// dropped: a frame that has started is never dropped).
pub const STAGE_QUEUE: usize = 1;

/// A frame on its way through the stage threads.
struct InFlight {
    ctx: FrameContext,
    arrival: Instant,
    enqueued: Instant,
    /// When its first stage took it.
    started: Option<Instant>,
    /// How long its images took to decode ahead (`None`: not decoded ahead).
    decode: Option<Duration>,
    /// A stage's error: the later stages pass the frame on without running.
    failed: Option<Error>,
}

/// The thread before the stages: takes complete frames until the queue is closed and empty,
/// keeps the sensors the preset uses and decodes their camera images, so a frame's JPEG
/// decode runs while the stages run the frames before (a decode is about a tenth of a
/// streamed frame's work, and single-threaded). It holds one frame ready and hands it over
/// when the first stage is free and fewer than `in_flight.1` frames are in the stages
/// (`in_flight.0`, which the results thread counts down). That frame is the oldest not yet started: when the queue
/// fills behind it, it is the one dropped (`queue_full`), and the next ones are held
/// undecoded (nothing decoded in vain) until one is handed over without a drop. A frame whose
/// images do not decode goes on without them, and the stage that reads them reports the same
/// error.
fn run_prepare(
    shared: &Shared,
    in_flight: (&AtomicUsize, usize),
    to_first: SyncSender<InFlight>,
    spent: Receiver<FrameImages>,
    recycle: Receiver<FrameContext>,
) {
    let spec = &shared.spec;
    let mut spare: Option<FrameImages> = None;
    let mut spare_ctx: Option<FrameContext> = None;
    let mut behind = false;
    loop {
        let Some(q) = shared.queue.pop(Duration::from_millis(100)) else {
            if shared.queue.is_closed() && shared.queue.is_empty() {
                break;
            }
            continue;
        };
        shared.running.fetch_add(1, Ordering::SeqCst);
        let mut frame = q.arrived.frame;
        // Sensors the preset does not use cost nothing further.
        frame.frame.lasers.retain(|l| spec.lasers.contains(&l.laser));
        frame.frame.cameras.retain(|c| spec.cameras.contains(&c.camera));
        let t = Instant::now();
        let images = if spec.uses_cameras() && !behind {
            let mut images = spare.take().or_else(|| spent.try_recv().ok()).unwrap_or_default();
            decode_frame_images_into(&frame.frame, &frame.at, &mut images).ok().map(|()| images)
        } else {
            None
        };
        let decode = images.is_some().then(|| t.elapsed());
        let mut ctx = spare_ctx.take().or_else(|| recycle.try_recv().ok()).unwrap_or_default();
        ctx.load(frame);
        ctx.decoded = images;
        let mut f =
            InFlight { ctx, arrival: q.arrived.arrival, enqueued: q.enqueued, started: None, decode, failed: None };
        let (in_stages, limit) = in_flight;
        loop {
            // Only this thread counts up, so the check holds until the hand-over.
            let sent = if in_stages.load(Ordering::SeqCst) < limit {
                in_stages.fetch_add(1, Ordering::SeqCst);
                to_first.try_send(f).inspect_err(|_| {
                    in_stages.fetch_sub(1, Ordering::SeqCst);
                })
            } else {
                Err(TrySendError::Full(f))
            };
            match sent {
                Ok(()) => {
                    behind = false;
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(mut back)) if shared.queue.is_full() && !shared.queue.is_closed() => {
                    shared.stats.frame_dropped(DropReason::QueueFull);
                    shared.running.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(
                        "dropped frame {} of segment {} (QueueFull): the pipeline is behind",
                        back.ctx.frame.timestamp_micros,
                        back.ctx.segment
                    );
                    spare = back.ctx.decoded.take();
                    spare_ctx = Some(back.ctx);
                    behind = true;
                    break;
                }
                Err(TrySendError::Full(back)) => {
                    // The stages are busy: look again shortly (a hand-over waits ≤ 1 ms more).
                    f = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// A stage's thread: runs its stage on each frame and passes it on, until the thread before
/// it is done. Both channels are bounded, so it waits for the next stage when that one is
/// behind.
fn run_stage(mut stage: Pipeline, input: Receiver<InFlight>, output: SyncSender<InFlight>) {
    while let Ok(mut f) = input.recv() {
        f.started.get_or_insert_with(Instant::now);
        if f.failed.is_none()
            && let Err(e) = stage.run(&mut f.ctx)
        {
            f.failed = Some(e);
        }
        if output.send(f).is_err() {
            return;
        }
    }
}

/// The last thread: counts each frame as processed or rejected, writes and publishes its
/// result, until the stages are done.
#[allow(clippy::too_many_arguments)]
fn run_finish(
    shared: &Shared,
    in_stages: &AtomicUsize,
    deadline: Duration,
    input: Receiver<InFlight>,
    spent: SyncSender<FrameImages>,
    recycle: Sender<FrameContext>,
    mut parts: Option<ParquetParts>,
    mut sink: Option<Box<dyn FrameSink>>,
) -> Result<()> {
    while let Ok(f) = input.recv() {
        let InFlight { mut ctx, arrival, enqueued, started, decode, failed } = f;
        match failed {
            None => {
                if let Some(d) = decode {
                    ctx.times.insert(0, ("decode_ahead", d));
                }
                let latency = enqueued.elapsed();
                let queue_wait = started.map_or(Duration::ZERO, |t| t.duration_since(enqueued));
                let mut r = FrameResult::from_context(&ctx);
                r.late = latency > deadline;
                r.latency_ms = latency.as_secs_f64() * 1e3;
                r.queue_ms = queue_wait.as_secs_f64() * 1e3;
                let assembly = enqueued.duration_since(arrival);
                r.assembly_ms = assembly.as_secs_f64() * 1e3;
                let times = FrameTimes { latency, assembly, queue_wait };
                shared.stats.frame_processed(times, r.late, &ctx.times);
                if let Some(w) = &mut parts {
                    match w.write(&r) {
                        Ok(()) => shared.stats.result_written(1),
                        Err(e) => tracing::error!("results not written: {e}"),
                    }
                }
                if let Some(s) = &mut sink {
                    s.frame(&ctx, &r);
                }
                shared.hub.publish(r);
            }
            Some(e) => {
                shared.stats.frame_rejected(RejectReason::PipelineError);
                tracing::warn!(
                    "frame rejected (pipeline_error): segment {}, frame {}: {e}",
                    ctx.segment,
                    ctx.frame.timestamp_micros
                );
            }
        }
        // The images' and the context's memory go back to be filled again.
        if let Some(images) = ctx.decoded.take() {
            let _ = spent.try_send(images);
        }
        let _ = recycle.send(ctx);
        in_stages.fetch_sub(1, Ordering::SeqCst);
        shared.running.fetch_sub(1, Ordering::SeqCst);
    }
    if let Some(s) = &mut sink {
        s.finish();
    }
    if let Some(p) = &mut parts {
        p.finish_part()?;
    }
    Ok(())
}
