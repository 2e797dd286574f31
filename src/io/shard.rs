//! `--shard I/N`: one of N disjoint parts of an input, so that N processes (on one machine or
//! a cluster's nodes) together do the work of one, and their partial results merge exactly.
//!
//! The rule is stable and needs no coordination: the input's units are numbered in the
//! input's own order, and unit `k` belongs to shard `k mod N`. The units are the segments of
//! a v2 dataset (in name order), the records of a WOMD `Scenario` TFRecord (in file order),
//! the files of a folder of TFRecords (in name order: a shard reads only its files), the
//! segments of a v1 file (in order of first frame), the segments `generate` writes (by
//! index) and the jobs of `dataset motion` (its worlds, then its inputs). Round-robin over the order rather than a
//! hash of names: N shards of any input differ in size by at most one unit.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `index` of `count` (`0 ≤ index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// The whole input.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!("a shard I/N with 0 ≤ I < N, found {index}/{count}"));
        }
        Ok(Shard { index, count })
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether unit `ordinal` (its place in the input's order) is this shard's.
    pub fn keeps(&self, ordinal: usize) -> bool {
        ordinal % self.count == self.index
    }

    pub fn is_all(&self) -> bool {
        self.count == 1
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("a shard as I/N (e.g. 0/4), found {s:?}");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        Shard::new(i, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_units_round_robin() {
        let n = 4;
        let shards: Vec<Shard> = (0..n).map(|i| format!("{i}/{n}").parse().unwrap()).collect();
        for k in 0..23 {
            assert_eq!(shards.iter().filter(|s| s.keeps(k)).count(), 1, "unit {k}");
        }
        assert!(Shard::ALL.keeps(7) && Shard::ALL.is_all());
        assert_eq!(shards[2].to_string(), "2/4");
    }

    #[test]
    fn bad_shards_say_what_was_expected() {
        for s in ["4/4", "1/0", "a/2", "3", "-1/2"] {
            let e = s.parse::<Shard>().unwrap_err();
            assert!(e.contains("I/N"), "{s}: {e}");
        }
    }
}
