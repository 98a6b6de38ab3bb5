//! What the committer remembers to detect conflicts: which keys each recent batch wrote, and
//! where each open transaction started.
//!
//! Batches are numbered in commit order. A transaction starts at the newest batch already
//! visible (`applied`), and its reads are valid as long as no later batch wrote what they
//! covered. A batch is registered here before its write starts, so a read that could have seen
//! a later batch's write always finds that write here: checking right after each read proves
//! the value is the one as of the start, and checking again at commit proves nothing changed
//! since. Batches older than every open transaction's start can no longer conflict with
//! anything and are forgotten.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

/// A key with its table's number in front, so one ordered map covers every table.
pub(super) type TableKey = Vec<u8>;

/// A range of table keys read by a scan: `[from, to)`.
#[derive(Debug, Clone)]
pub(super) struct KeyRange {
    pub(super) from: TableKey,
    pub(super) to: TableKey,
}

/// What one transaction read.
#[derive(Debug, Default)]
pub(super) struct ReadSet {
    pub(super) keys: Vec<TableKey>,
    pub(super) ranges: Vec<KeyRange>,
}

#[derive(Debug, Default)]
pub(super) struct Versions {
    /// The newest batch whose writes are visible to reads.
    applied: u64,
    /// The newest batch registered (being written, or written).
    registered: u64,
    /// The newest batch that wrote each key, for batches some open transaction may not have seen.
    written: BTreeMap<TableKey, u64>,
    /// Those batches with the keys they wrote, oldest first, so they can be forgotten in order.
    batches: VecDeque<(u64, Vec<TableKey>)>,
    /// Open transactions by the batch they started at.
    readers: BTreeMap<u64, usize>,
}

impl Versions {
    /// Registers a transaction starting now; returns its start.
    pub(super) fn begin(&mut self) -> u64 {
        *self.readers.entry(self.applied).or_default() += 1;
        self.applied
    }

    /// Unregisters a transaction that started at `start`.
    pub(super) fn end(&mut self, start: u64) {
        if let Some(count) = self.readers.get_mut(&start) {
            *count -= 1;
            if *count == 0 {
                self.readers.remove(&start);
            }
        }
        self.forget_old_batches();
    }

    /// Whether a batch after `start` wrote `key`.
    pub(super) fn key_written_since(&self, start: u64, key: &[u8]) -> bool {
        self.written.get(key).is_some_and(|&batch| batch > start)
    }

    /// Whether a batch after `start` wrote a key in `range`.
    pub(super) fn range_written_since(&self, start: u64, range: &KeyRange) -> bool {
        let bounds = (Bound::Included(range.from.as_slice()), Bound::Excluded(range.to.as_slice()));
        self.written.range::<[u8], _>(bounds).any(|(_, &batch)| batch > start)
    }

    /// Whether a batch after `start` wrote anything `reads` covers.
    pub(super) fn conflicts(&self, start: u64, reads: &ReadSet) -> bool {
        reads.keys.iter().any(|key| self.key_written_since(start, key))
            || reads.ranges.iter().any(|range| self.range_written_since(start, range))
    }

    /// Numbers the next batch.
    pub(super) fn next_batch(&mut self) -> u64 {
        self.registered += 1;
        self.registered
    }

    /// Records that `batch` writes `keys` (before the write starts).
    pub(super) fn register(&mut self, batch: u64, keys: Vec<TableKey>) {
        for key in &keys {
            self.written.insert(key.clone(), batch);
        }
        match self.batches.back_mut() {
            Some((last, written)) if *last == batch => written.extend(keys),
            _ => self.batches.push_back((batch, keys)),
        }
    }

    /// Records that `batch`'s write is over (done or failed): reads may see it.
    pub(super) fn applied(&mut self, batch: u64) {
        self.applied = batch;
        self.forget_old_batches();
    }

    /// How many keys are remembered (for tests).
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.written.len()
    }

    fn forget_old_batches(&mut self) {
        let oldest_start = self.readers.keys().next().copied().unwrap_or(self.applied);
        while let Some((batch, _)) = self.batches.front() {
            if *batch > oldest_start {
                break;
            }
            let Some((batch, keys)) = self.batches.pop_front() else { break };
            for key in keys {
                if self.written.get(&key) == Some(&batch) {
                    self.written.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(from: &[u8], to: &[u8]) -> KeyRange {
        KeyRange { from: from.to_vec(), to: to.to_vec() }
    }

    #[test]
    fn a_write_after_the_start_conflicts_and_one_before_does_not() {
        let mut versions = Versions::default();
        let early = versions.begin();
        let batch = versions.next_batch();
        versions.register(batch, vec![b"k".to_vec()]);
        // Registered but not yet visible: a transaction starting now has not seen it either.
        let during = versions.begin();
        versions.applied(batch);
        let late = versions.begin();
        assert!(versions.key_written_since(early, b"k"));
        assert!(versions.key_written_since(during, b"k"));
        assert!(!versions.key_written_since(late, b"k"));
        assert!(!versions.key_written_since(early, b"other"));
        assert!(versions.range_written_since(early, &range(b"a", b"l")));
        assert!(!versions.range_written_since(early, &range(b"k\x00", b"z")), "the end of a range is open");
        assert!(!versions.range_written_since(early, &range(b"a", b"k")));
    }

    #[test]
    fn batches_no_open_transaction_predates_are_forgotten() {
        let mut versions = Versions::default();
        let open = versions.begin();
        for n in 0..10u8 {
            let batch = versions.next_batch();
            versions.register(batch, vec![vec![n]]);
            versions.applied(batch);
        }
        assert_eq!(versions.remembered(), 10, "kept while a transaction from before them is open");
        versions.end(open);
        assert_eq!(versions.remembered(), 0);
        let newer = versions.begin();
        let batch = versions.next_batch();
        versions.register(batch, vec![b"x".to_vec()]);
        versions.applied(batch);
        assert!(versions.key_written_since(newer, b"x"));
        versions.end(newer);
        assert_eq!(versions.remembered(), 0);
    }
}
