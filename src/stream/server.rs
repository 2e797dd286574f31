//! The Flight server: `DoPut` streams feed the assembler, one worker thread runs the pipeline
//! on complete frames, `DoGet` streams results, the `stats` and `components` actions say how it
//! goes and what to send. Shutdown follows one rule: frames complete when it starts are
//! finished (the queued ones and the running one), incomplete ones are dropped and counted,
//! then the results are flushed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Error, Location, Result};
use crate::pipeline::stages::SegmentMaps;
use crate::pipeline::{FrameContext, Pipeline};

use super::assembler::{Arrived, Assembler, AssemblyConfig, Event};
use super::hub::{ParquetParts, ResultsHub};
use super::presets::PresetSpec;
use super::queue::FrameQueue;
use super::results::{FrameResult, schema};
use super::stats::{DropReason, FrameTimes, RejectReason, Stats, StatsReport};
use super::wire::{Decoded, MessageDecoder};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub spec: PresetSpec,
    pub assembly: AssemblyConfig,
    /// Complete frames waiting for the pipeline; beyond, the oldest is dropped.
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

/// A frame waiting for the pipeline.
struct Queued {
    arrived: Arrived,
    enqueued: Instant,
}

struct Shared {
    assembler: Mutex<Assembler>,
    queue: FrameQueue<Queued>,
    stats: Arc<Stats>,
    hub: ResultsHub,
    running: AtomicU64,
    streams: AtomicU64,
    spec: PresetSpec,
    subscriber_buffer: usize,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn assembler(&self) -> std::sync::MutexGuard<'_, Assembler> {
        self.assembler.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_progress(&self) -> u64 {
        (self.assembler().open_frames() + self.queue.len()) as u64 + self.running.load(Ordering::SeqCst)
    }

    fn report(&self) -> StatsReport {
        self.stats.report(self.in_progress())
    }

    /// Counts and routes what the assembler did.
    fn handle(&self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Opened => self.stats.frame_received(),
                Event::Complete(arrived) => {
                    if let Some(old) = self.queue.push(Queued { arrived: *arrived, enqueued: Instant::now() }) {
                        let reason = if self.queue.is_closed() { DropReason::Shutdown } else { DropReason::QueueFull };
                        self.stats.frame_dropped(reason);
                        tracing::warn!(
                            "dropped frame {} of segment {} ({reason:?}): the pipeline is behind",
                            old.arrived.frame.frame.timestamp_micros,
                            old.arrived.frame.segment
                        );
                    }
                }
                Event::FrameRejected { reason, detail } => {
                    self.stats.frame_rejected(reason);
                    tracing::warn!("frame rejected ({}): {detail}", reason.name());
                }
                Event::MessageRejected { reason, detail } => {
                    self.stats.message_rejected(reason);
                    tracing::warn!("message rejected ({}): {detail}", reason.name());
                }
            }
        }
    }
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
            std::thread::Builder::new()
                .name("scenetok-pipeline".into())
                .spawn(move || run_worker(&shared, pipeline, deadline, parts, sink))
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
        let service = FlightServiceServer::new(FlightSvc { shared: shared.clone() })
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let mut stopped = shutdown.clone();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let grpc = tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
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
    let lat = |l: &Option<crate::pipeline::LatencyStats>| {
        l.as_ref().map_or("-".to_string(), |l| format!("p50 {:.1} / p99 {:.1} ms", l.p50_ms, l.p99_ms))
    };
    tracing::info!(
        "frames: {} received, {} processed ({} late), {} dropped, {} rejected, {} in progress; messages: {} ({} rejected); latency {}",
        r.frames_received,
        r.frames_processed,
        r.frames_late,
        r.dropped(),
        r.rejected(),
        r.frames_in_progress,
        r.messages_received,
        r.messages_rejected.values().sum::<u64>(),
        lat(&r.latency)
    );
}

/// The pipeline thread: takes complete frames until the queue is closed and empty.
fn run_worker(
    shared: &Shared,
    mut pipeline: Pipeline,
    deadline: Duration,
    mut parts: Option<ParquetParts>,
    mut sink: Option<Box<dyn FrameSink>>,
) -> Result<()> {
    let mut ctx = FrameContext::default();
    loop {
        let Some(q) = shared.queue.pop(Duration::from_millis(100)) else {
            if shared.queue.is_closed() && shared.queue.is_empty() {
                break;
            }
            continue;
        };
        shared.running.store(1, Ordering::SeqCst);
        let queue_wait = q.enqueued.elapsed();
        let mut frame = q.arrived.frame;
        // Sensors the preset does not use cost nothing further.
        let spec = &shared.spec;
        frame.frame.lasers.retain(|l| spec.lasers.contains(&l.laser));
        frame.frame.cameras.retain(|c| spec.cameras.contains(&c.camera));
        let (segment, ts) = (frame.segment.clone(), frame.frame.timestamp_micros);
        ctx.load(frame);
        match pipeline.run(&mut ctx) {
            Ok(()) => {
                let latency = q.enqueued.elapsed();
                let mut r = FrameResult::from_context(&ctx);
                r.late = latency > deadline;
                r.latency_ms = latency.as_secs_f64() * 1e3;
                r.queue_ms = queue_wait.as_secs_f64() * 1e3;
                let assembly = q.enqueued.duration_since(q.arrived.arrival);
                r.assembly_ms = assembly.as_secs_f64() * 1e3;
                let times = FrameTimes { latency, assembly, queue_wait };
                shared.stats.frame_processed(times, r.late, &ctx.times);
                if let Some(p) = &mut parts {
                    match p.write(&r) {
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
        shared.running.store(0, Ordering::SeqCst);
    }
    if let Some(s) = &mut sink {
        s.finish();
    }
    if let Some(p) = &mut parts {
        p.finish_part()?;
    }
    Ok(())
}

/// What a `DoGet` ticket asks for (JSON; an empty ticket is every segment from the kept
/// results on).
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsTicket {
    /// Only this segment's results.
    #[serde(default)]
    pub segment: Option<String>,
    /// Only frames after this timestamp (a reconnecting client's last one).
    #[serde(default)]
    pub after_micros: Option<i64>,
    /// End the stream after this many results (default: when the server stops).
    #[serde(default)]
    pub count: Option<usize>,
}

struct FlightSvc {
    shared: Arc<Shared>,
}

type Stream<T> = Pin<Box<dyn futures::Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

#[tonic::codegen::async_trait]
impl FlightService for FlightSvc {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    async fn handshake(&self, _: Request<Streaming<HandshakeRequest>>) -> std::result::Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("no handshake: the server needs none"))
    }
    async fn list_flights(&self, _: Request<Criteria>) -> std::result::Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("list_flights: results are read with DoGet"))
    }
    async fn get_flight_info(&self, _: Request<FlightDescriptor>) -> std::result::Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("get_flight_info: results are read with DoGet"))
    }
    async fn poll_flight_info(&self, _: Request<FlightDescriptor>) -> std::result::Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("poll_flight_info"))
    }
    async fn get_schema(&self, _: Request<FlightDescriptor>) -> std::result::Result<Response<SchemaResult>, Status> {
        let options = arrow::ipc::writer::IpcWriteOptions::default();
        let r: SchemaResult = arrow_flight::SchemaAsIpc::new(&schema(), &options)
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(Response::new(r))
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> std::result::Result<Response<Self::DoPutStream>, Status> {
        let peer = request.remote_addr().map_or("unknown".to_string(), |a| a.to_string());
        let n = self.shared.streams.fetch_add(1, Ordering::SeqCst);
        let mut input = request.into_inner();
        let shared = self.shared.clone();
        let (tx, rx) = mpsc::channel::<std::result::Result<PutResult, Status>>(64);
        tokio::spawn(async move {
            let mut decoder = MessageDecoder::default();
            let mut shutdown = shared.shutdown.clone();
            let mut index = 0usize;
            loop {
                let msg = tokio::select! {
                    m = input.next() => m,
                    _ = shutdown.wait_for(|s| *s) => break,
                };
                let data = match msg {
                    Some(Ok(d)) => d,
                    // The client went away (killed mid-frame, network): its partial frames
                    // time out in the assembler; a reconnect goes on from there.
                    Some(Err(status)) => {
                        tracing::info!("stream {n} from {peer} ended: {}", status.message());
                        break;
                    }
                    None => break,
                };
                let at = Location::file(format!("flight://{peer}/stream-{n}")).record(index);
                index += 1;
                let decoded = decoder.decode(&data, &at);
                let verdict = match decoded {
                    Ok(Decoded::Nothing) => None,
                    Ok(Decoded::Batch(component, batch)) => {
                        shared.stats.message();
                        let events = shared.assembler().push(component, &batch, &at, Instant::now());
                        let rejected = events.iter().find_map(|e| match e {
                            Event::MessageRejected { reason, .. } | Event::FrameRejected { reason, .. } => Some(*reason),
                            _ => None,
                        });
                        shared.handle(events);
                        Some(rejected)
                    }
                    Err((reason, detail)) => {
                        shared.stats.message();
                        shared.handle(vec![Event::MessageRejected { reason, detail }]);
                        Some(Some(reason))
                    }
                };
                if let Some(rejected) = verdict {
                    let body = serde_json::json!({ "message": at.record, "rejected": rejected.map(|r| r.name()) });
                    // The sender need not read these: a full buffer only loses acknowledgements.
                    let _ = tx.try_send(Ok(PutResult { app_metadata: body.to_string().into() }));
                }
            }
        });
        let out = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(out)))
    }

    async fn do_get(&self, request: Request<Ticket>) -> std::result::Result<Response<Self::DoGetStream>, Status> {
        let t = &request.get_ref().ticket;
        let ticket: ResultsTicket = if t.is_empty() {
            ResultsTicket::default()
        } else {
            serde_json::from_slice(t).map_err(|e| {
                Status::invalid_argument(format!(
                    "expected a JSON ticket {{\"segment\": …, \"after_micros\": …, \"count\": …}}, found {:?}: {e}",
                    String::from_utf8_lossy(t)
                ))
            })?
        };
        let buffer = self.shared.subscriber_buffer;
        let rx = self.shared.hub.subscribe(ticket.segment, ticket.after_micros, buffer);
        let results = tokio_stream::wrappers::ReceiverStream::new(rx);
        let results: BoxStream<'static, Arc<FrameResult>> = match ticket.count {
            Some(n) => results.take(n).boxed(),
            None => results.boxed(),
        };
        let batches = results.map(|r| Ok(super::results::to_batch(std::slice::from_ref(&*r))));
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema())
            .build(batches)
            .map(|r| r.map_err(|e| Status::internal(e.to_string())));
        Ok(Response::new(Box::pin(encoded)))
    }

    async fn do_exchange(&self, _: Request<Streaming<FlightData>>) -> std::result::Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("do_exchange: send with DoPut, read with DoGet"))
    }

    async fn do_action(&self, request: Request<Action>) -> std::result::Result<Response<Self::DoActionStream>, Status> {
        let body = match request.get_ref().r#type.as_str() {
            "stats" => serde_json::to_vec(&self.shared.report()),
            "components" => {
                let spec = &self.shared.spec;
                serde_json::to_vec(&serde_json::json!({
                    "components": spec.components().iter().map(|c| c.tag()).collect::<Vec<_>>(),
                    "lasers": spec.lasers.iter().map(|l| l.name()).collect::<Vec<_>>(),
                    "cameras": spec.cameras.iter().map(|c| c.name()).collect::<Vec<_>>(),
                    "required": spec.required().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                }))
            }
            other => return Err(Status::invalid_argument(format!("expected the action `stats` or `components`, found `{other}`"))),
        }
        .map_err(|e| Status::internal(e.to_string()))?;
        let out = futures::stream::iter([Ok(arrow_flight::Result { body: body.into() })]);
        Ok(Response::new(Box::pin(out)))
    }

    async fn list_actions(&self, _: Request<Empty>) -> std::result::Result<Response<Self::ListActionsStream>, Status> {
        let actions = [
            ("stats", "counters (received = processed + dropped + rejected + in progress) and latencies, JSON"),
            ("components", "the components, lasers and cameras the preset uses, and the parts a frame needs, JSON"),
        ];
        let out = futures::stream::iter(
            actions.map(|(t, d)| Ok(ActionType { r#type: t.to_string(), description: d.to_string() })),
        );
        Ok(Response::new(Box::pin(out)))
    }
}
