//! The server: the Flight service (`service.rs`) feeds the assembler, one thread prepares
//! complete frames (their JPEGs decoded ahead), one runs the pipeline on them, results go to
//! the hub, parquet parts and a sink; what they share is in `shared.rs`. Shutdown follows one
//! rule: frames complete when it starts are finished (the queued ones, the prepared one and
//! the running one), incomplete ones are dropped and counted, then the results are flushed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::sync::watch;

use crate::error::{Error, Location, Result};
use crate::models::image_encoder::{FrameImages, decode_frame_images_into};
use crate::pipeline::stages::SegmentMaps;
use crate::pipeline::{FrameContext, Pipeline, SourceFrame};

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
            deadline: Duration::from_millis(200),
            subscriber_buffer: 256,
            out: None,
            part_frames: 600,
            log_every: Duration::from_secs(10),
        }
    }
}

/// Takes every processed frame besides the subscribers (a live viewer). Runs on the pipeline
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
            let (shared, deadline) = (shared.clone(), opts.deadline);
            let spawn = move || {
                // One frame ready ahead; decoded images come back to be reused.
                let (to_pipeline, prepared) = sync_channel(0);
                let (spent_tx, spent) = sync_channel(2);
                std::thread::scope(|s| {
                    let shared = &shared;
                    std::thread::Builder::new()
                        .name("scenetok-prepare".into())
                        .spawn_scoped(s, move || run_prepare(shared, to_pipeline, spent))
                        .map_err(|e| Error::io(Location::default().detail("frame-preparing thread"), e))?;
                    run_pipeline(shared, pipeline, deadline, prepared, spent_tx, parts, sink)
                })
            };
            std::thread::Builder::new()
                .name("scenetok-pipeline".into())
                .spawn(spawn)
                .map_err(|e| Error::io(Location::default().detail("pipeline thread"), e))?
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
            .map_err(|e| Error::model(Location::default().detail("pipeline thread"), e.to_string()))?;
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
            Some(Err(_)) => return Err(Error::model(Location::default().detail("pipeline thread"), "panicked")),
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

/// A frame taken from the queue, its camera images decoded ahead.
struct Prepared {
    frame: SourceFrame,
    arrival: Instant,
    enqueued: Instant,
    images: Option<FrameImages>,
    decode: Duration,
}

/// The thread before the pipeline: takes complete frames until the queue is closed and empty,
/// keeps the sensors the preset uses and decodes their camera images, so a frame's JPEG
/// decode runs on the other core while the pipeline runs the frame before (a decode is about
/// a tenth of a streamed frame's work, and single-threaded). It holds one frame ready and
/// hands it over when the pipeline is free. That frame is the oldest not yet started: when
/// the queue fills behind it, it is the one dropped (`queue_full`), and the next ones are held
/// undecoded (nothing decoded in vain) until one is handed over without a drop. A frame whose
/// images do not decode goes on without them, and the pipeline reports the same error.
fn run_prepare(shared: &Shared, to_pipeline: SyncSender<Prepared>, spent: Receiver<FrameImages>) {
    let spec = &shared.spec;
    let mut spare: Option<FrameImages> = None;
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
        let images = (spec.uses_cameras() && !behind).then(|| {
            let mut images = spare.take().or_else(|| spent.try_recv().ok()).unwrap_or_default();
            decode_frame_images_into(&frame.frame, &frame.at, &mut images).ok().map(|()| images)
        });
        let decode = t.elapsed();
        let mut p =
            Prepared { frame, arrival: q.arrived.arrival, enqueued: q.enqueued, images: images.flatten(), decode };
        loop {
            match to_pipeline.try_send(p) {
                Ok(()) => {
                    behind = false;
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) if shared.queue.is_full() && !shared.queue.is_closed() => {
                    shared.stats.frame_dropped(DropReason::QueueFull);
                    shared.running.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(
                        "dropped frame {} of segment {} (QueueFull): the pipeline is behind",
                        back.frame.frame.timestamp_micros,
                        back.frame.segment
                    );
                    spare = back.images;
                    behind = true;
                    break;
                }
                Err(TrySendError::Full(back)) => {
                    // The pipeline is busy: look again shortly (a hand-over waits ≤ 1 ms more).
                    p = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// The pipeline thread: runs each prepared frame until the preparing thread is done.
fn run_pipeline(
    shared: &Shared,
    mut pipeline: Pipeline,
    deadline: Duration,
    prepared: Receiver<Prepared>,
    spent: SyncSender<FrameImages>,
    mut parts: Option<ParquetParts>,
    mut sink: Option<Box<dyn FrameSink>>,
) -> Result<()> {
    let mut ctx = FrameContext::default();
    while let Ok(p) = prepared.recv() {
        let queue_wait = p.enqueued.elapsed();
        let (segment, ts) = (p.frame.segment.clone(), p.frame.frame.timestamp_micros);
        ctx.load(p.frame);
        let decoded_ahead = p.images.is_some();
        ctx.decoded = p.images;
        let ran = pipeline.run(&mut ctx);
        if decoded_ahead {
            ctx.times.insert(0, ("decode_ahead", p.decode));
        }
        match ran {
            Ok(()) => {
                let latency = p.enqueued.elapsed();
                let mut r = FrameResult::from_context(&ctx);
                r.late = latency > deadline;
                r.latency_ms = latency.as_secs_f64() * 1e3;
                r.queue_ms = queue_wait.as_secs_f64() * 1e3;
                let assembly = p.enqueued.duration_since(p.arrival);
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
            Err(e) => {
                shared.stats.frame_rejected(RejectReason::PipelineError);
                tracing::warn!("frame rejected (pipeline_error): segment {segment}, frame {ts}: {e}");
            }
        }
        // The images' memory goes back to be decoded into again.
        if let Some(images) = ctx.decoded.take() {
            let _ = spent.try_send(images);
        }
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
