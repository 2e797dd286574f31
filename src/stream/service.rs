//! The Flight service: `DoPut` streams feed the assembler one message at a time, `DoGet`
//! streams results, the `stats` and `components` actions say how it goes and what to send.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Location;

use super::assembler::Event;
use super::results::{FrameResult, schema};
use super::shared::Shared;
use super::wire::{Decoded, MessageDecoder};

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

pub(super) struct FlightSvc {
    shared: Arc<Shared>,
}

impl FlightSvc {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        FlightSvc { shared }
    }
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

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> std::result::Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("no handshake: the server needs none"))
    }
    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> std::result::Result<Response<Self::ListFlightsStream>, Status> {
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

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoPutStream>, Status> {
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
                            Event::MessageRejected { reason, .. } | Event::FrameRejected { reason, .. } => {
                                Some(*reason)
                            }
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

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoExchangeStream>, Status> {
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
            other => {
                return Err(Status::invalid_argument(format!(
                    "expected the action `stats` or `components`, found `{other}`"
                )));
            }
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
