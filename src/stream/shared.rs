//! What the server's tasks share: the assembler, the queue to the pipeline, the counters, the
//! results hub; and how the assembler's events are counted and routed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::assembler::{Arrived, Assembler, Event};
use super::hub::ResultsHub;
use super::presets::PresetSpec;
use super::queue::FrameQueue;
use super::stats::{DropReason, Stats, StatsReport};

/// A frame waiting for the pipeline.
pub(super) struct Queued {
    pub(super) arrived: Arrived,
    pub(super) enqueued: Instant,
}

pub(super) struct Shared {
    pub(super) assembler: Mutex<Assembler>,
    pub(super) queue: FrameQueue<Queued>,
    pub(super) stats: Arc<Stats>,
    pub(super) hub: ResultsHub,
    pub(super) running: AtomicU64,
    pub(super) streams: AtomicU64,
    pub(super) spec: PresetSpec,
    pub(super) subscriber_buffer: usize,
    pub(super) shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(super) fn assembler(&self) -> std::sync::MutexGuard<'_, Assembler> {
        self.assembler.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_progress(&self) -> u64 {
        (self.assembler().open_frames() + self.queue.len()) as u64 + self.running.load(Ordering::SeqCst)
    }

    pub(super) fn report(&self) -> StatsReport {
        self.stats.report(self.in_progress())
    }

    /// Counts and routes what the assembler did.
    pub(super) fn handle(&self, events: Vec<Event>) {
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
