//! Commits not yet in the volumes' commit logs. A commit that makes a blob current (an object,
//! a manifest, a tombstone) puts its id here in the same transaction; the gateway then
//! appends the id to the commit logs of the blob's volumes and drops it from here. Whatever a
//! crash or a volume failure leaves here is appended by the repairer's next round, so every
//! committed blob reaches the logs a rebuild reads, even if the request that made it did not
//! finish the job.

use super::records::{BlobRef, decode};
use super::{Index, write_in};
use crate::engine::{Table, Transaction};
use crate::error::Result;
use crate::in_transaction;

/// Marks cleared per commit.
pub(super) const MAX_CLEAR_BATCH: usize = 1000;
/// Marks that may wait to be cleared; more stay (and are logged again by the repairer).
pub(super) const MAX_CLEARS_WAITING: usize = 10_000;
pub(super) type Clears = crate::batch::Batcher<(), String, bool>;

impl Index {
    /// Adds to `tx` that `blob` is committed but not yet logged.
    pub(super) fn stage_unlogged(&self, tx: &mut dyn Transaction, blob: &BlobRef) -> Result<()> {
        write_in(tx, Table::Unlogged, blob.id.as_bytes(), blob)
    }

    /// Up to `max` committed blobs not yet in the commit logs.
    pub async fn unlogged(&self, max: usize) -> Result<Vec<BlobRef>> {
        self.engine.scan(Table::Unlogged, b"", None, max).await?.iter().map(|(_, value)| decode(value)).collect()
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
