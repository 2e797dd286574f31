//! `scenetok replay`: a v2 dataset sent to a server as a car would send it, frame after frame
//! at the pace of its timestamps (or as fast as the server takes them), one multiplexed
//! `DoPut` stream per segment. Only the components and sensors the server says it uses are
//! sent; frames are read into memory first so reading does not pace the stream. A looped
//! segment goes on with its timestamps shifted past its end, so every frame stays in order.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use arrow_flight::{Action, FlightClient, FlightDescriptor};
use futures::StreamExt;

use crate::error::{Error, Location, Result};
use crate::io::v2::schema::key;
use crate::io::v2::{Component, Dataset, FrameRequest};
use crate::scene::{CameraName, LaserName};

use super::wire::MultiplexEncoder;

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// At `x` times the speed of the timestamps (1.0: real time).
    Times(f64),
    /// As fast as the server takes them.
    Max,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Ok(Rate::Times(x)),
            _ => Err(format!("expected `max` or a positive speed-up such as 1.0, found `{s}`")),
        }
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub rate: Rate,
    /// Start over at the end (until `duration`).
    pub looped: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Only this segment (all when `None`).
    pub segment: Option<String>,
    /// Frame indices of each segment.
    pub frames: Option<Range<usize>>,
}

/// What was sent.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplaySummary {
    pub segments: usize,
    pub frames_sent: u64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    /// Messages the server acknowledged as rejected.
    pub messages_rejected: u64,
    pub seconds: f64,
    /// How far behind its schedule the sender fell at worst (real-time rates), ms.
    pub max_behind_ms: f64,
}

/// What the server uses (its `components` action).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ServerNeeds {
    pub components: Vec<String>,
    pub lasers: Vec<String>,
    pub cameras: Vec<String>,
}

/// Connects to a server at `addr` (`host:port` or a URL).
pub async fn connect(addr: &str) -> Result<FlightClient> {
    let url = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
    let at = || Location::file(&url);
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| Error::invalid(at(), "a server address such as 127.0.0.1:50051", e.to_string()))?;
    let channel = endpoint
        .initial_stream_window_size(super::server::WINDOW_BYTES)
        .initial_connection_window_size(2 * super::server::WINDOW_BYTES)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| Error::invalid(at(), "a scenetok server listening there (scenetok serve)", e.to_string()))?;
    Ok(FlightClient::new(channel))
}

/// The server's `components` action.
pub async fn server_needs(client: &mut FlightClient) -> Result<ServerNeeds> {
    let at = || Location::default().detail("the server's `components` action");
    let mut s = client
        .do_action(Action { r#type: "components".into(), body: Default::default() })
        .await
        .map_err(|e| Error::invalid(at(), "a scenetok server", e.to_string()))?;
    let body = match s.next().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(Error::invalid(at(), "an answer", e.to_string())),
        None => return Err(Error::invalid(at(), "an answer", "none")),
    };
    serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(at(), "JSON of components, lasers and cameras", e.to_string()))
}

/// One segment ready to send: segment-level batches, then its frames.
struct Loaded {
    name: String,
    segment_batches: Vec<(Component, RecordBatch)>,
    frames: Vec<(i64, Vec<(Component, RecordBatch)>)>,
}

fn load(ds: &Dataset, segment: &str, needs: &ServerNeeds, frames: &Option<Range<usize>>) -> Result<Loaded> {
    let wanted: Vec<Component> = needs.components.iter().filter_map(|t| Component::from_tag(t)).collect();
    let lasers: Vec<i64> = needs.lasers.iter().filter_map(|n| LaserName::from_name(n)).map(|l| l.value()).collect();
    let cameras: Vec<i64> = needs.cameras.iter().filter_map(|n| CameraName::from_name(n)).map(|c| c.value()).collect();
    let keep = |c: Component, b: RecordBatch| -> Result<RecordBatch> {
        only_sensors(&b, c, &lasers, &cameras).map_err(|e| Error::Arrow { at: Location::file(ds.root()), cause: e })
    };
    let mut segment_batches = Vec::new();
    for &c in wanted.iter().filter(|c| !c.is_per_frame()) {
        if let Some(b) = ds.segment_batch(segment, c)? {
            segment_batches.push((c, keep(c, b)?));
        }
    }
    let per_frame: Vec<Component> = wanted.iter().copied().filter(|c| c.is_per_frame()).collect();
    let mut reader = ds.frame_batches(segment, &FrameRequest::only(&per_frame).without_second_returns())?;
    let range = frames.clone().unwrap_or(0..usize::MAX);
    let mut out = Vec::new();
    for (i, f) in (&mut reader).enumerate().take(range.end) {
        let (ts, mut parts) = f?;
        if i < range.start {
            continue;
        }
        // In the order the server asked for (optional parts before the ones that complete a frame).
        parts.sort_by_key(|(c, _)| wanted.iter().position(|w| w == c));
        let parts = parts.into_iter().map(|(c, b)| Ok((c, keep(c, b)?))).collect::<Result<Vec<_>>>()?;
        out.push((ts, parts.into_iter().filter(|(_, b)| b.num_rows() > 0).collect()));
    }
    Ok(Loaded { name: segment.to_string(), segment_batches, frames: out })
}

/// The rows of `batch` for the given lasers and cameras (others of per-sensor components dropped).
fn only_sensors(
    batch: &RecordBatch,
    c: Component,
    lasers: &[i64],
    cameras: &[i64],
) -> arrow::error::Result<RecordBatch> {
    let (col, keep) = if c.column(key::LASER).is_some() {
        (key::LASER, lasers)
    } else if c.column(key::CAMERA).is_some() {
        (key::CAMERA, cameras)
    } else {
        return Ok(batch.clone());
    };
    let Some(values) = batch.column_by_name(col) else { return Ok(batch.clone()) };
    let values = arrow::compute::cast(values, &arrow::datatypes::DataType::Int64)?;
    let values = values.as_primitive::<Int64Type>();
    let mask: BooleanArray =
        (0..values.len()).map(|i| Some(!values.is_null(i) && keep.contains(&values.value(i)))).collect();
    arrow::compute::filter_record_batch(batch, &mask)
}

/// `batch` with `offset` added to its frame timestamps.
fn shifted(batch: &RecordBatch, offset: i64) -> arrow::error::Result<RecordBatch> {
    if offset == 0 {
        return Ok(batch.clone());
    }
    let Ok(i) = batch.schema().index_of(key::TIMESTAMP) else { return Ok(batch.clone()) };
    let ts = batch.column(i).as_primitive::<Int64Type>();
    let moved: Int64Array = ts.iter().map(|t| t.map(|t| t.saturating_add(offset))).collect();
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols[i] = Arc::new(moved);
    RecordBatch::try_new(batch.schema(), cols)
}

/// Sends the dataset at `root` to the server `client` talks to.
pub async fn replay(root: &Path, client: FlightClient, opts: &ReplayOptions) -> Result<ReplaySummary> {
    let mut client = client;
    let needs = server_needs(&mut client).await?;
    let ds = Dataset::open(root)?;
    let names: Vec<String> = match &opts.segment {
        Some(s) => vec![s.clone()],
        None => ds.segments().map(str::to_string).collect(),
    };
    let mut loaded = Vec::new();
    for name in &names {
        loaded.push(load(&ds, name, &needs, &opts.frames)?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = loaded
        .into_iter()
        .map(|seg| {
            let (client, opts) = (FlightClient::new_from_inner(client.inner().clone()), opts.clone());
            tokio::spawn(async move { send_segment(client, seg, &opts, started).await })
        })
        .collect();
    let mut summary = ReplaySummary { segments: names.len(), ..Default::default() };
    for t in tasks {
        let s = t.await.map_err(|e| Error::model(Location::default().detail("replay"), e.to_string()))??;
        summary.frames_sent += s.frames_sent;
        summary.messages_sent += s.messages_sent;
        summary.bytes_sent += s.bytes_sent;
        summary.messages_rejected += s.messages_rejected;
        summary.max_behind_ms = summary.max_behind_ms.max(s.max_behind_ms);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

async fn send_segment(
    mut client: FlightClient,
    seg: Loaded,
    opts: &ReplayOptions,
    started: Instant,
) -> Result<ReplaySummary> {
    let at = || Location::file(format!("flight://segment {}", seg.name));
    let mut s = ReplaySummary::default();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let input = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok);
    let mut acks =
        client.do_put(input).await.map_err(|e| Error::invalid(at(), "a server taking DoPut", e.to_string()))?;
    let acks = tokio::spawn(async move {
        let mut rejected = 0u64;
        while let Some(Ok(r)) = acks.next().await {
            let v: serde_json::Value = serde_json::from_slice(&r.app_metadata).unwrap_or_default();
            rejected += v.get("rejected").is_some_and(|r| !r.is_null()) as u64;
        }
        rejected
    });
    let mut enc = MultiplexEncoder::new(FlightDescriptor::new_path(vec!["frames".into(), seg.name.clone()]));
    let arrow_err = |e: arrow::error::ArrowError| Error::Arrow { at: at(), cause: e };
    let mut send = async |c: Component, b: &RecordBatch, s: &mut ReplaySummary| -> Result<bool> {
        for m in enc.encode(c, b).map_err(arrow_err)? {
            s.messages_sent += 1;
            s.bytes_sent += (m.data_header.len() + m.data_body.len()) as u64;
            if tx.send(m).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    };
    for (c, b) in &seg.segment_batches {
        send(*c, b, &mut s).await?;
    }
    let (Some(first), Some(last)) = (seg.frames.first().map(|f| f.0), seg.frames.last().map(|f| f.0)) else {
        return Ok(s);
    };
    let span = last - first + 100_000;
    let out_of_time = |t: Instant| opts.duration.is_some_and(|d| t.duration_since(started) >= d);
    'outer: for round in 0.. {
        let offset = round as i64 * span;
        for (ts, parts) in &seg.frames {
            if let Rate::Times(x) = opts.rate {
                let due = started
                    + Duration::from_secs_f64(
                        ((*ts as i128 - first as i128 + offset as i128) as f64 * 1e-6 / x).max(0.0),
                    );
                let now = Instant::now();
                if due > now {
                    tokio::time::sleep_until(due.into()).await;
                } else {
                    s.max_behind_ms = s.max_behind_ms.max((now - due).as_secs_f64() * 1e3);
                }
            }
            if out_of_time(Instant::now()) {
                break 'outer;
            }
            for (c, b) in parts {
                if !send(*c, &shifted(b, offset).map_err(arrow_err)?, &mut s).await? {
                    break 'outer;
                }
            }
            s.frames_sent += 1;
        }
        if !opts.looped {
            break;
        }
    }
    drop(tx);
    s.messages_rejected = acks.await.unwrap_or(0);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("2".parse::<Rate>(), Ok(Rate::Times(2.0)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }
}
