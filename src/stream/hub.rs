//! Where results go: every subscriber through its own bounded buffer (one that does not keep
//! up loses results, counted; the pipeline never waits for it), a short history per segment
//! (a subscriber that reconnects picks up where it left), and parquet parts on disk.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;

use crate::error::{Error, Location, Result};

use super::results::{FrameResult, schema, to_batch};
use super::stats::Stats;

/// Results kept per segment for subscribers that come (back) later.
const HISTORY: usize = 300;

struct Subscriber {
    segment: Option<String>,
    tx: mpsc::Sender<Arc<FrameResult>>,
}

/// Fans results out to subscribers and keeps the recent ones.
pub struct ResultsHub {
    inner: Mutex<HubInner>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct HubInner {
    subscribers: Vec<Subscriber>,
    history: BTreeMap<String, VecDeque<Arc<FrameResult>>>,
    closed: bool,
}

impl ResultsHub {
    pub fn new(stats: Arc<Stats>) -> Self {
        ResultsHub { inner: Mutex::default(), stats }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a result to every subscriber of its segment without waiting.
    pub fn publish(&self, result: FrameResult) {
        let result = Arc::new(result);
        let mut g = self.lock();
        let h = g.history.entry(result.segment.clone()).or_default();
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(result.clone());
        let stats = &self.stats;
        g.subscribers.retain(|s| {
            if s.segment.as_ref().is_some_and(|seg| *seg != result.segment) {
                return !s.tx.is_closed();
            }
            match s.tx.try_send(result.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    stats.result_dropped_slow_consumer();
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// A subscription to the results of `segment` (all when `None`): first the kept results
    /// after `after_micros` (all kept when `None`), then each new one. At most `buffer`
    /// results wait for the subscriber; the channel ends when the hub closes.
    pub fn subscribe(
        &self,
        segment: Option<String>,
        after_micros: Option<i64>,
        buffer: usize,
    ) -> mpsc::Receiver<Arc<FrameResult>> {
        let mut g = self.lock();
        let kept: Vec<Arc<FrameResult>> = g
            .history
            .iter()
            .filter(|(s, _)| segment.as_ref().is_none_or(|x| x == *s))
            .flat_map(|(_, h)| h.iter().filter(|r| after_micros.is_none_or(|t| r.timestamp_micros > t)).cloned())
            .collect();
        let (tx, rx) = mpsc::channel(buffer.max(1).max(kept.len()));
        for r in kept {
            let _ = tx.try_send(r);
        }
        if !g.closed {
            g.subscribers.push(Subscriber { segment, tx });
        }
        rx
    }

    /// Ends every subscription (after the results already sent to them).
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.subscribers.clear();
    }
}

/// Results written to parquet in parts of at most `part_frames` frames: a part is written
/// as `results-NNNNN.parquet.partial` and renamed when complete, so a finished part is never
/// half-written and a crash loses at most the open one.
pub struct ParquetParts {
    dir: PathBuf,
    part_frames: usize,
    next_part: usize,
    open: Option<(ArrowWriter<File>, PathBuf, usize)>,
}

impl ParquetParts {
    /// Parts in `dir` (created); numbering continues after parts already there.
    pub fn create(dir: &Path, part_frames: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(Location::file(dir), e))?;
        let next_part = std::fs::read_dir(dir)
            .map_err(|e| Error::io(Location::file(dir), e))?
            .filter_map(|e| {
                e.ok()?.file_name().to_str()?.strip_prefix("results-")?.split('.').next()?.parse::<usize>().ok()
            })
            .max()
            .map_or(0, |n| n + 1);
        Ok(ParquetParts { dir: dir.to_path_buf(), part_frames: part_frames.max(1), next_part, open: None })
    }

    fn part_path(&self, n: usize) -> PathBuf {
        self.dir.join(format!("results-{n:05}.parquet"))
    }

    /// Appends one frame's result.
    pub fn write(&mut self, result: &FrameResult) -> Result<()> {
        if self.open.is_none() {
            let path = self.part_path(self.next_part);
            self.next_part += 1;
            let partial = path.with_extension("parquet.partial");
            let file = File::create(&partial).map_err(|e| Error::io(Location::file(&partial), e))?;
            // Small row groups: a frame's per-point classes can be 100k+ values.
            let props = WriterProperties::builder().set_max_row_group_row_count(Some(64)).build();
            let w = ArrowWriter::try_new(file, schema(), Some(props))
                .map_err(|e| Error::Parquet { at: Location::file(&partial), cause: e })?;
            self.open = Some((w, path, 0));
        }
        let Some((w, path, n)) = &mut self.open else { return Ok(()) };
        w.write(&to_batch(std::slice::from_ref(result)))
            .map_err(|e| Error::Parquet { at: Location::file(&*path), cause: e })?;
        *n += 1;
        if *n >= self.part_frames {
            self.finish_part()?;
        }
        Ok(())
    }

    /// Closes the open part (footer written, renamed to its final name).
    pub fn finish_part(&mut self) -> Result<()> {
        let Some((w, path, _)) = self.open.take() else { return Ok(()) };
        let partial = path.with_extension("parquet.partial");
        w.close().map_err(|e| Error::Parquet { at: Location::file(&partial), cause: e })?;
        std::fs::rename(&partial, &path).map_err(|e| Error::io(Location::file(&path), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(seg: &str, ts: i64) -> FrameResult {
        FrameResult { segment: seg.into(), timestamp_micros: ts, ..Default::default() }
    }

    #[test]
    fn slow_subscriber_loses_results_counted_others_get_theirs() {
        let stats = Arc::new(Stats::default());
        let hub = ResultsHub::new(stats.clone());
        let mut slow = hub.subscribe(None, None, 2);
        let mut other = hub.subscribe(Some("b".into()), None, 16);
        for ts in 0..5 {
            hub.publish(result("a", ts));
        }
        hub.publish(result("b", 9));
        assert_eq!(stats.report(0).results_dropped_slow_consumer, 4, "buffer 2 of 6 results");
        assert_eq!(slow.try_recv().unwrap().timestamp_micros, 0);
        assert_eq!(other.try_recv().unwrap().timestamp_micros, 9);
        assert!(other.try_recv().is_err());
        // A late subscriber gets the kept results after a timestamp, then the live ones.
        let mut back = hub.subscribe(Some("a".into()), Some(2), 8);
        assert_eq!(back.try_recv().unwrap().timestamp_micros, 3);
        hub.close();
        assert_eq!(back.try_recv().unwrap().timestamp_micros, 4);
    }

    #[test]
    fn parts_are_renamed_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = ParquetParts::create(dir.path(), 2).unwrap();
        for ts in 0..3 {
            parts.write(&result("a", ts)).unwrap();
        }
        assert!(dir.path().join("results-00000.parquet").exists());
        assert!(dir.path().join("results-00001.parquet.partial").exists());
        parts.finish_part().unwrap();
        assert!(dir.path().join("results-00001.parquet").exists());
        let again = ParquetParts::create(dir.path(), 2).unwrap();
        assert_eq!(again.next_part, 2);
    }
}
