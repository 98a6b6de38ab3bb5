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

impl Index {
    /// Adds to `tx` that `blob` is committed but not yet logged.
    pub(super) fn stage_unlogged(&self, tx: &mut dyn Transaction, blob: &BlobRef) -> Result<()> {
        write_in(tx, Table::Unlogged, blob.id.as_bytes(), blob)
    }

    /// Up to `max` committed blobs not yet in the commit logs.
    pub async fn unlogged(&self, max: usize) -> Result<Vec<BlobRef>> {
        self.engine.scan(Table::Unlogged, b"", None, max).await?.iter().map(|(_, value)| decode(value)).collect()
    }

    /// `blob_id` is in its volumes' commit logs (if this is lost, the id is only appended
    /// again, which is harmless).
    pub async fn logged(&self, blob_id: &str) -> Result<()> {
        in_transaction!(self.engine, tx, {
            tx.delete(Table::Unlogged, blob_id.as_bytes());
            Ok(())
        })
    }
}
