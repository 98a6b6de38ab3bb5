//! Commits not yet in the volumes' commit logs. A commit that makes a blob current (an object,
//! a manifest, a tombstone) puts its id here in the same synced batch; the gateway then
//! appends the id to the commit logs of the blob's volumes and drops it from here. Whatever a
//! crash or a volume failure leaves here is appended by the repairer's next round, so every
//! committed blob reaches the logs a rebuild reads, even if the request that made it did not
//! finish the job.

use rocksdb::{IteratorMode, WriteBatch};

use super::records::{BlobRef, decode, encode};
use super::{CF_UNLOGGED, Index};
use crate::error::Result;

impl Index {
    /// Adds to `batch` that `blob` is committed but not yet logged.
    pub(super) fn stage_unlogged(&self, batch: &mut WriteBatch, blob: &BlobRef) -> Result<()> {
        batch.put_cf(self.cf(CF_UNLOGGED)?, blob.id.as_bytes(), encode(blob)?);
        Ok(())
    }

    /// Up to `max` committed blobs not yet in the commit logs.
    pub fn unlogged(&self, max: usize) -> Result<Vec<BlobRef>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_UNLOGGED)?, IteratorMode::Start).take(max) {
            out.push(decode(&item?.1)?);
        }
        Ok(out)
    }

    /// `blob_id` is in its volumes' commit logs. Not synced: if it is lost, the id is only
    /// appended again, which is harmless.
    pub fn logged(&self, blob_id: &str) -> Result<()> {
        self.db.delete_cf(self.cf(CF_UNLOGGED)?, blob_id.as_bytes())?;
        Ok(())
    }
}
