//! Writes for an offline rebuild: unsynced puts into a fresh index, made durable together at
//! the end (the last write syncs the log, and every earlier write with it).

use std::sync::atomic::Ordering;

use super::records::{BlobRef, Membership, ObjectEntry, encode};
use super::{CF_META, CF_OBJECTS, Index, META_CLOCK, META_CLUSTER_ID, object_key, synced};
use crate::error::Result;

impl Index {
    /// Stores a key's entry as found on the volumes.
    pub fn restore_object(&self, bucket: &str, key: &str, entry: &ObjectEntry) -> Result<()> {
        self.db.put_cf(self.cf(CF_OBJECTS)?, object_key(bucket, key), encode(entry)?)?;
        Ok(())
    }

    /// Queues a blob of `bucket`/`key` that lost to a newer version.
    pub fn restore_gc(&self, bucket: &str, key: &str, blob: &BlobRef) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        self.queue_gc(&mut batch, bucket, key, blob)?;
        self.db.write(batch)?;
        Ok(())
    }

    /// Takes the cluster id, membership and epoch found on the volumes.
    pub fn restore_membership(&self, cluster_id: &str, membership: &Membership, epoch: u64) -> Result<()> {
        self.db.put_cf(self.cf(CF_META)?, META_CLUSTER_ID, encode(&cluster_id)?)?;
        self.store_membership(membership, epoch)
    }

    /// Moves the clock past every restored timestamp and makes everything durable.
    pub fn finish_restore(&self, max_ts: u64) -> Result<()> {
        self.clock.fetch_max(max_ts, Ordering::SeqCst);
        let clock = self.clock.load(Ordering::SeqCst);
        self.db.put_cf_opt(self.cf(CF_META)?, META_CLOCK, encode(&clock)?, &synced())?;
        Ok(())
    }
}
