//! The streaming server's live view: each processed frame (its sensors, labels, the predicted
//! trajectories, the latencies) logged to a rerun viewer or file as it comes. Logging runs on a
//! thread of its own behind a 2-frame buffer: a slow viewer loses frames (counted), never
//! slows the pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use rerun::RecordingStream;

use crate::pipeline::FrameContext;
use crate::pipeline::stages::MotionOutput;
use crate::scene::Frame;
use crate::stream::{FrameResult, FrameSink};

use super::{FrameLogger, Layout, VizError, VizOptions, VizSink, hooks, open_recording, paths};

type Item = Box<(Frame, Option<MotionOutput>, FrameResult)>;

/// A [`FrameSink`] that logs to rerun.
pub struct LiveView {
    tx: Option<SyncSender<Item>>,
    thread: Option<JoinHandle<Result<(), VizError>>>,
    dropped: Arc<AtomicU64>,
}

impl LiveView {
    /// Opens the recording (`sink`: a viewer's address, a spawned viewer or an `.rrd` file).
    pub fn open(sink: &VizSink) -> Result<LiveView, VizError> {
        let rec = open_recording("scenetok serve", sink, Layout::Perception)?;
        let opts = VizOptions { range_images: false, segmentation: false, ..VizOptions::default() };
        let (tx, rx) = sync_channel::<Item>(2);
        let thread = std::thread::Builder::new()
            .name("scenetok-live".into())
            .spawn(move || {
                let mut logger = FrameLogger::new(&opts);
                logger.log_static(&rec)?;
                for item in rx {
                    let (frame, motion, result) = *item;
                    logger.log_frame(&rec, &frame)?;
                    log_predictions(&rec, motion.as_ref())?;
                    hooks::log_scalar(&rec, "stream", "latency_ms", result.latency_ms)?;
                    for (stage, ms) in &result.stage_ms {
                        hooks::log_scalar(&rec, "stream", &format!("{stage}_ms"), *ms)?;
                    }
                }
                rec.finish()
            })
            .map_err(|e| VizError::Invalid(format!("live view thread: {e}")))?;
        Ok(LiveView { tx: Some(tx), thread: Some(thread), dropped: Arc::default() })
    }

    /// Frames the viewer could not keep up with.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn log_predictions(rec: &RecordingStream, motion: Option<&MotionOutput>) -> Result<(), VizError> {
    let Some(m) = motion else { return Ok(()) };
    let mut strips = Vec::new();
    let mut colors = Vec::new();
    for a in &m.agents {
        let [r, g, b] = super::classes::agent_type_color(a.agent_type);
        for (p, xy) in &a.modes {
            strips.push(xy.iter().map(|q| [q[0], q[1], 0.3]).collect::<Vec<_>>());
            colors.push(rerun::Color::from_unmultiplied_rgba(r, g, b, (60.0 + 195.0 * p.clamp(0.0, 1.0)) as u8));
        }
    }
    rec.log(format!("{}/predicted", paths::MOTION), &rerun::LineStrips3D::new(strips).with_colors(colors))?;
    Ok(())
}

impl FrameSink for LiveView {
    fn frame(&mut self, ctx: &FrameContext, result: &FrameResult) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Box::new((ctx.frame.clone(), ctx.motion.clone(), result.clone()))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                // The logging thread stopped on an error; it is reported at finish.
                self.tx = None;
            }
        }
    }

    fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("live view: {e}"),
                Err(_) => tracing::error!("live view: the logging thread panicked"),
            }
        }
        if self.dropped() > 0 {
            tracing::warn!("live view: {} frames not shown (the viewer did not keep up)", self.dropped());
        }
    }
}
