//! The bounded queue between the receiver and the pipeline: pushing never blocks; when the
//! queue is full the oldest waiting item makes room (and is handed back, to be counted).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A bounded, closable FIFO: many producers that never wait, consumers that do.
pub struct FrameQueue<T> {
    state: Mutex<(VecDeque<T>, bool)>,
    ready: Condvar,
    capacity: usize,
}

impl<T> FrameQueue<T> {
    pub fn new(capacity: usize) -> Self {
        FrameQueue { state: Mutex::new((VecDeque::new(), false)), ready: Condvar::new(), capacity: capacity.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<T>, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `item`; returns the item dropped to make room (the oldest), if any. After
    /// [`close`](Self::close) the item itself comes back.
    pub fn push(&self, item: T) -> Option<T> {
        let mut g = self.lock();
        if g.1 {
            return Some(item);
        }
        let dropped = if g.0.len() == self.capacity { g.0.pop_front() } else { None };
        g.0.push_back(item);
        drop(g);
        self.ready.notify_one();
        dropped
    }

    /// The oldest item, waiting up to `timeout` for one; `None` on time-out or when the queue
    /// is closed and empty.
    pub fn pop(&self, timeout: Duration) -> Option<T> {
        let mut g = self.lock();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(item) = g.0.pop_front() {
                return Some(item);
            }
            if g.1 {
                return None;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            g = self.ready.wait_timeout(g, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Whether it holds as many items as it may (the next push drops the oldest).
    pub fn is_full(&self) -> bool {
        self.lock().0.len() >= self.capacity
    }

    /// Stops accepting; what is queued can still be taken.
    pub fn close(&self) {
        self.lock().1 = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().1
    }

    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_the_oldest_and_never_blocks() {
        let q = FrameQueue::new(2);
        assert_eq!(q.push(1), None);
        assert_eq!(q.push(2), None);
        assert_eq!(q.push(3), Some(1));
        assert_eq!(q.pop(Duration::ZERO), Some(2));
        q.close();
        assert_eq!(q.push(4), Some(4));
        assert_eq!(q.pop(Duration::from_secs(5)), Some(3));
        assert_eq!(q.pop(Duration::from_secs(5)), None, "closed and empty returns at once");
    }

    #[test]
    fn pop_waits_for_a_push_from_another_thread() {
        let q = std::sync::Arc::new(FrameQueue::new(4));
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.pop(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        q.push(7);
        assert_eq!(t.join().unwrap(), Some(7));
    }
}
