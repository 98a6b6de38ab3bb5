//! Commits not yet in the volumes' commit logs. A commit that makes a blob current (an object,
//! a manifest, a tombstone) puts its id here in the same transaction; the gateway then
//! appends the id to the commit logs of the blob's volumes and drops it from here. Whatever a
//! crash or a volume failure leaves here is appended by the repairer's next round, so every
//! committed blob reaches the logs a rebuild reads, even if the request that made it did not
//! finish the job.

use serde::{Deserialize, Serialize};

use super::records::{BlobRef, CommitOrder, decode};
use super::{Index, write_in};
use crate::engine::{Table, Transaction};
use crate::error::Result;
use crate::in_transaction;

/// Marks cleared per commit.
pub(super) const MAX_CLEAR_BATCH: usize = 1000;
/// Marks that may wait to be cleared; more stay (and are logged again by the repairer).
pub(super) const MAX_CLEARS_WAITING: usize = 10_000;
pub(super) type Clears = crate::batch::Batcher<(), String, bool>;

/// A committed blob not yet in its volumes' commit logs, with its commit order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlogged {
    /// The blob.
    pub blob: BlobRef,
    /// Its commit order (order 0 for marks written before orders were kept, which hold the
    /// bare blob).
    pub commit: CommitOrder,
}

impl Unlogged {
    fn decode(value: &[u8]) -> Result<Self> {
        decode(value).or_else(|_| Ok(Self { blob: decode(value)?, commit: CommitOrder::plain(0) }))
    }
}

impl Index {
    /// Adds to `tx` that `blob` is committed, as `commit` says, but not yet logged.
    pub(super) fn stage_unlogged(&self, tx: &mut dyn Transaction, blob: &BlobRef, commit: CommitOrder) -> Result<()> {
        write_in(tx, Table::Unlogged, blob.id.as_bytes(), &Unlogged { blob: blob.clone(), commit })
    }

    /// Up to `max` committed blobs not yet in the commit logs.
    pub async fn unlogged(&self, max: usize) -> Result<Vec<Unlogged>> {
        self.engine
            .scan(Table::Unlogged, b"", None, max)
            .await?
            .iter()
            .map(|(_, value)| Unlogged::decode(value))
            .collect()
    }

    /// `blob_id` is in its volumes' commit logs: its mark goes, in one commit with the other
    /// marks cleared meanwhile. Returns at once, since nothing depends on it: a mark that stays
    /// (a failed commit, too many waiting, a crash) only has its id appended again, harmlessly.
    pub fn logged(&self, blob_id: &str) {
        let engine = self.engine.clone();
        // The outcome is not awaited: dropping the receiver only ends the interest in it.
        drop(self.clears.submit((), blob_id.to_string(), move |(), ids| {
            let engine = engine.clone();
            async move {
                let cleared: Result<()> = async {
                    in_transaction!(engine, tx, {
                        for id in &ids {
                            tx.delete(Table::Unlogged, id.as_bytes());
                        }
                        Ok(())
                    })
                }
                .await;
                if let Err(err) = &cleared {
                    tracing::warn!(%err, marks = ids.len(), "could not clear unlogged marks; their ids are logged again later");
                }
                cleared.is_ok()
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::index::records::{Replica, encode};

    /// Marks written before commit orders hold the bare blob: they still read, with order 0
    /// ("not known", which a rebuild reads as "order by the blob's own timestamp").
    #[test]
    fn marks_without_an_order_still_read() {
        let blob = BlobRef { id: "ab".repeat(16), replicas: vec![Replica { volume: "v1".into(), subvolume: 2 }] };
        let old = encode(&blob).unwrap();
        assert_eq!(Unlogged::decode(&old).unwrap(), Unlogged { blob: blob.clone(), commit: CommitOrder::plain(0) });
        let commit = CommitOrder { order: 77, version: crate::index::records::Version::Id };
        let new = encode(&Unlogged { blob: blob.clone(), commit }).unwrap();
        assert_eq!(Unlogged::decode(&new).unwrap(), Unlogged { blob, commit });
        assert!(Unlogged::decode(&[1, 0xff]).is_err());
    }
}
