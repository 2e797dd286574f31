//! Ordered, one-pass stream compaction across threads: a "chained scan".
//!
//! Work is cut into chunks that threads claim in increasing order. A worker first scans its
//! chunk (counting what it will write, which also brings the chunk into its core's cache),
//! then waits for the offset where the chunk's output starts — published by whoever scanned
//! the chunk before — publishes the next chunk's offset and only then writes. Scans run
//! ahead of writes, so the wait is short, and the input is read from memory once instead of
//! once for a counting pass and again for the writing pass.
//!
//! Deadlock-free by construction: chunks are claimed in order by running workers, so the
//! chunk a worker waits on has been claimed by a worker that is already past its claim and
//! does not wait on anything later.

use std::sync::atomic::{AtomicUsize, Ordering};

/// No offset published yet.
const UNSET: usize = usize::MAX;

/// Spins before a waiting worker starts yielding its core (the predecessor may have been
/// preempted, and on a 2-core machine it may need this very core).
const SPINS_BEFORE_YIELD: u32 = 256;

/// The claim counter and the chain of output offsets of `chunks` chunks.
pub struct ChunkChain {
    next: AtomicUsize,
    /// `starts[k]`: where chunk k's output begins; `starts[chunks]` is the total.
    starts: Vec<AtomicUsize>,
}

impl ChunkChain {
    pub fn new(chunks: usize) -> Self {
        let starts = (0..=chunks).map(|k| AtomicUsize::new(if k == 0 { 0 } else { UNSET })).collect();
        ChunkChain { next: AtomicUsize::new(0), starts }
    }

    pub fn chunks(&self) -> usize {
        self.starts.len() - 1
    }

    /// The next unclaimed chunk, or `None` when all are taken.
    pub fn claim(&self) -> Option<usize> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        (k < self.chunks()).then_some(k)
    }

    /// Waits for chunk `k`'s output offset, publishes chunk `k + 1`'s (`k`'s offset plus the
    /// `count` it will write) and returns `k`'s. Call once per claimed chunk, after its scan.
    pub fn place(&self, k: usize, count: usize) -> usize {
        let mut spins = 0u32;
        let start = loop {
            let v = self.starts[k].load(Ordering::Acquire);
            if v != UNSET {
                break v;
            }
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        };
        self.starts[k + 1].store(start + count, Ordering::Release);
        start
    }

    /// The total count once every chunk has been placed; `None` before.
    pub fn total(&self) -> Option<usize> {
        let v = self.starts[self.chunks()].load(Ordering::Acquire);
        (v != UNSET).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn offsets_are_the_exclusive_prefix_sum_whatever_the_thread_order() {
        let counts: Vec<usize> = (0..500).map(|k| (k * 7919) % 13).collect();
        let chain = ChunkChain::new(counts.len());
        let placed: Vec<AtomicUsize> = counts.iter().map(|_| AtomicUsize::new(UNSET)).collect();
        (0..4).into_par_iter().for_each(|_| {
            while let Some(k) = chain.claim() {
                placed[k].store(chain.place(k, counts[k]), Ordering::Relaxed);
            }
        });
        let mut sum = 0;
        for (k, c) in counts.iter().enumerate() {
            assert_eq!(placed[k].load(Ordering::Relaxed), sum, "chunk {k}");
            sum += c;
        }
        assert_eq!(chain.total(), Some(sum));
    }

    #[test]
    fn an_empty_chain_has_total_zero() {
        let chain = ChunkChain::new(0);
        assert_eq!(chain.claim(), None);
        assert_eq!(chain.total(), Some(0));
    }
}
