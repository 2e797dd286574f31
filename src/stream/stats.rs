//! What the stream counts: messages and frames by outcome and reason, and latencies (arrival
//! of a frame's first part to its result) in all and per stage. Shared by every task of the
//! server behind one lock; each update is a few additions.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pipeline::LatencyStats;

/// Why a message (or the frame it belonged to) was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Bytes that are not an Arrow IPC message.
    Undecodable,
    /// A batch whose component is unknown or whose columns are not the component's.
    WrongSchema,
    /// A required column is absent.
    MissingColumn,
    /// A value that does not decode (range image of the wrong length, bad enum, bad JPEG).
    BadValue,
    /// Older than a frame of its segment already dispatched.
    OutOfOrder,
    /// Too far ahead of its segment's clock.
    FromTheFuture,
    /// A second row for a part the frame already has.
    Duplicate,
    /// For a frame already dispatched or rejected.
    ClosedFrame,
    /// A frame whose required parts did not all arrive in time.
    Incomplete,
    /// A frame the pipeline failed on (its error is logged).
    PipelineError,
}

impl RejectReason {
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::Undecodable => "undecodable",
            RejectReason::WrongSchema => "wrong_schema",
            RejectReason::MissingColumn => "missing_column",
            RejectReason::BadValue => "bad_value",
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::FromTheFuture => "from_the_future",
            RejectReason::Duplicate => "duplicate",
            RejectReason::ClosedFrame => "closed_frame",
            RejectReason::Incomplete => "incomplete",
            RejectReason::PipelineError => "pipeline_error",
        }
    }
}

/// Why a complete frame was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The queue was full and the frame was the oldest waiting one.
    QueueFull,
    /// The server stopped before the frame was complete.
    Shutdown,
}

/// Where a processed frame's time went. A frame *arrives* when its last required part does
/// (before that it cannot run); how long its parts took to come is its assembly time.
#[derive(Debug, Clone, Copy)]
pub struct FrameTimes {
    /// Arrival (complete) to its result: what the deadline applies to.
    pub latency: Duration,
    /// First part to complete (the sender's and the network's share).
    pub assembly: Duration,
    /// Arrival to taken by the pipeline.
    pub queue_wait: Duration,
}

/// Counters and latencies at one moment, as the `stats` action returns them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    pub messages_received: u64,
    pub messages_rejected: BTreeMap<String, u64>,
    pub frames_received: u64,
    pub frames_processed: u64,
    /// Of the processed frames, those whose result came after the deadline.
    pub frames_late: u64,
    pub frames_dropped: BTreeMap<String, u64>,
    pub frames_rejected: BTreeMap<String, u64>,
    /// Frames being assembled, waiting or running now.
    pub frames_in_progress: u64,
    /// Results a subscriber did not take in time (per subscriber buffer full).
    pub results_dropped_slow_consumer: u64,
    pub results_written: u64,
    /// Arrival (the frame complete) to its result, milliseconds.
    pub latency: Option<LatencyStats>,
    /// First part to last part of a frame (its sending and assembly).
    pub assembly: Option<LatencyStats>,
    /// Waiting in the queue.
    pub queue_wait: Option<LatencyStats>,
    pub stages: Vec<(String, LatencyStats)>,
    pub uptime_s: f64,
}

impl StatsReport {
    pub fn dropped(&self) -> u64 {
        self.frames_dropped.values().sum()
    }
    pub fn rejected(&self) -> u64 {
        self.frames_rejected.values().sum()
    }
    /// One line of counters and the arrival → result latency (the log's and `serve`'s).
    pub fn summary(&self) -> String {
        let lat = self
            .latency
            .as_ref()
            .map_or("-".into(), |l| format!("p50 {:.1} / p90 {:.1} / p99 {:.1} ms", l.p50_ms, l.p90_ms, l.p99_ms));
        format!(
            "frames: {} received = {} processed ({} late) + {} dropped + {} rejected + {} in progress; messages {} ({} rejected); latency {lat}",
            self.frames_received,
            self.frames_processed,
            self.frames_late,
            self.dropped(),
            self.rejected(),
            self.frames_in_progress,
            self.messages_received,
            self.messages_rejected.values().sum::<u64>(),
        )
    }

    /// Whether every frame received has exactly one outcome (with none in progress).
    pub fn balanced(&self) -> bool {
        self.frames_received == self.frames_processed + self.dropped() + self.rejected() + self.frames_in_progress
    }
}

/// At most this many latency samples are kept per series (the newest): memory stays flat
/// over a long stream.
const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Default)]
struct Series(VecDeque<f64>);

impl Series {
    fn push(&mut self, d: Duration) {
        if self.0.len() == MAX_SAMPLES {
            self.0.pop_front();
        }
        self.0.push_back(d.as_secs_f64() * 1e3);
    }
    fn stats(&self) -> Option<LatencyStats> {
        LatencyStats::from_ms(&self.0.iter().copied().collect::<Vec<_>>())
    }
}

#[derive(Debug, Default)]
struct Inner {
    messages_received: u64,
    messages_rejected: BTreeMap<RejectReason, u64>,
    frames_received: u64,
    frames_processed: u64,
    frames_late: u64,
    frames_dropped: BTreeMap<DropReason, u64>,
    frames_rejected: BTreeMap<RejectReason, u64>,
    results_dropped_slow_consumer: u64,
    results_written: u64,
    latency: Series,
    assembly: Series,
    queue_wait: Series,
    stage_order: Vec<String>,
    stages: BTreeMap<String, Series>,
}

/// The server's counters.
#[derive(Debug)]
pub struct Stats {
    inner: Mutex<Inner>,
    started: std::time::Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { inner: Mutex::default(), started: std::time::Instant::now() }
    }
}

impl Stats {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic elsewhere while holding the lock leaves plain counters: still usable.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn message(&self) {
        self.with(|s| s.messages_received += 1);
    }
    pub fn message_rejected(&self, reason: RejectReason) {
        self.with(|s| *s.messages_rejected.entry(reason).or_default() += 1);
    }
    pub fn frame_received(&self) {
        self.with(|s| s.frames_received += 1);
    }
    pub fn frame_rejected(&self, reason: RejectReason) {
        self.with(|s| *s.frames_rejected.entry(reason).or_default() += 1);
    }
    pub fn frame_dropped(&self, reason: DropReason) {
        self.with(|s| *s.frames_dropped.entry(reason).or_default() += 1);
    }
    /// A frame's result: its latency from arrival, of which assembly and queue wait, and
    /// its stages.
    pub fn frame_processed(&self, t: FrameTimes, late: bool, stages: &[(&str, Duration)]) {
        self.with(|s| {
            s.frames_processed += 1;
            s.frames_late += late as u64;
            s.latency.push(t.latency);
            s.assembly.push(t.assembly);
            let queue_wait = t.queue_wait;
            s.queue_wait.push(queue_wait);
            for (name, d) in stages {
                if !s.stages.contains_key(*name) {
                    s.stage_order.push(name.to_string());
                }
                s.stages.entry(name.to_string()).or_default().push(*d);
            }
        });
    }
    pub fn result_dropped_slow_consumer(&self) {
        self.with(|s| s.results_dropped_slow_consumer += 1);
    }
    pub fn result_written(&self, n: u64) {
        self.with(|s| s.results_written += n);
    }

    /// The counters now; `in_progress` is what the caller knows to be assembling, queued or
    /// running.
    pub fn report(&self, in_progress: u64) -> StatsReport {
        self.with(|s| StatsReport {
            messages_received: s.messages_received,
            messages_rejected: s.messages_rejected.iter().map(|(k, v)| (k.name().to_string(), *v)).collect(),
            frames_received: s.frames_received,
            frames_processed: s.frames_processed,
            frames_late: s.frames_late,
            frames_dropped: s
                .frames_dropped
                .iter()
                .map(|(k, v)| {
                    let name = match k {
                        DropReason::QueueFull => "queue_full",
                        DropReason::Shutdown => "shutdown",
                    };
                    (name.to_string(), *v)
                })
                .collect(),
            frames_rejected: s.frames_rejected.iter().map(|(k, v)| (k.name().to_string(), *v)).collect(),
            frames_in_progress: in_progress,
            results_dropped_slow_consumer: s.results_dropped_slow_consumer,
            results_written: s.results_written,
            latency: s.latency.stats(),
            assembly: s.assembly.stats(),
            queue_wait: s.queue_wait.stats(),
            stages: s.stage_order.iter().filter_map(|n| Some((n.clone(), s.stages.get(n)?.stats()?))).collect(),
            uptime_s: self.started.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_add_up() {
        let s = Stats::default();
        for _ in 0..5 {
            s.frame_received();
        }
        let t = |ms| FrameTimes {
            latency: Duration::from_millis(ms),
            assembly: Duration::from_millis(1),
            queue_wait: Duration::from_millis(2),
        };
        s.frame_processed(t(30), false, &[("points", Duration::from_millis(5))]);
        s.frame_processed(t(300), true, &[("points", Duration::from_millis(7))]);
        s.frame_dropped(DropReason::QueueFull);
        s.frame_rejected(RejectReason::Incomplete);
        let r = s.report(1);
        assert!(r.balanced(), "{r:?}");
        assert_eq!((r.frames_late, r.dropped(), r.rejected()), (1, 1, 1));
        assert_eq!(r.latency.as_ref().map(|l| l.max_ms), Some(300.0));
        assert_eq!(r.stages[0].0, "points");
        assert_eq!(r.frames_rejected["incomplete"], 1);
        assert!(!s.report(0).balanced());
    }
}
