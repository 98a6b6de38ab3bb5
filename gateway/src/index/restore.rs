//! Writes for an offline rebuild into a fresh index, batched: what a rebuild restores is
//! gathered and committed a thousand writes per transaction, and the clock last.

use std::sync::atomic::Ordering;

use super::records::{BlobRef, BucketEntry, Membership, ObjectEntry, encode};
use super::{Index, META_CLOCK, META_CLUSTER_ID, object_key, write_in};
use crate::engine::Table;
use crate::error::Result;
use crate::in_transaction;

/// Writes gathered per transaction.
const BATCH: usize = 1000;

/// One restored write.
enum Restored {
    Put(Table, Vec<u8>, Vec<u8>),
    Gc(String, String, BlobRef, u64),
    Membership(Membership, u64),
}

/// A rebuild's writes into an index; see the module docs. Call [`Restore::finish`] at the end:
/// writes still gathered are lost otherwise.
pub struct Restore<'a> {
    index: &'a Index,
    pending: Vec<Restored>,
}

impl Index {
    /// Starts restoring into this (fresh) index.
    pub fn restore(&self) -> Restore<'_> {
        Restore { index: self, pending: Vec::new() }
    }
}

impl Restore<'_> {
    /// Stores a key's entry as found on the volumes.
    pub async fn object(&mut self, bucket: &str, key: &str, entry: &ObjectEntry) -> Result<()> {
        self.push(Restored::Put(Table::Objects, object_key(bucket, key), encode(entry)?)).await
    }

    /// Stores a noncurrent version as found on the volumes.
    pub async fn noncurrent(&mut self, bucket: &str, key: &str, entry: &ObjectEntry) -> Result<()> {
        let at = super::versions::version_key(bucket, key, entry.ts());
        self.push(Restored::Put(Table::Versions, at, encode(entry)?)).await
    }

    /// Stores a bucket entry as found on the volumes.
    pub async fn bucket(&mut self, name: &str, entry: &BucketEntry) -> Result<()> {
        self.push(Restored::Put(Table::Buckets, name.as_bytes().to_vec(), encode(entry)?)).await
    }

    /// Queues a blob of `bucket`/`key` (holding `bytes` of data) that lost to a newer version.
    pub async fn gc(&mut self, bucket: &str, key: &str, blob: &BlobRef, bytes: u64) -> Result<()> {
        self.push(Restored::Gc(bucket.to_string(), key.to_string(), blob.clone(), bytes)).await
    }

    /// Takes the cluster id, membership and epoch found on the volumes.
    pub async fn membership(&mut self, cluster_id: &str, membership: &Membership, epoch: u64) -> Result<()> {
        self.push(Restored::Put(Table::Meta, META_CLUSTER_ID.to_vec(), encode(&cluster_id)?)).await?;
        self.push(Restored::Membership(membership.clone(), epoch)).await
    }

    async fn push(&mut self, write: Restored) -> Result<()> {
        self.pending.push(write);
        if self.pending.len() >= BATCH { self.flush().await } else { Ok(()) }
    }

    async fn flush(&mut self) -> Result<()> {
        let (index, pending) = (self.index, &self.pending);
        in_transaction!(index.engine, tx, {
            for write in pending {
                match write {
                    Restored::Put(table, key, value) => tx.put(*table, key, value),
                    Restored::Gc(bucket, key, blob, bytes) => index.queue_gc(tx, bucket, key, blob, *bytes)?,
                    Restored::Membership(membership, epoch) => Index::stage_membership(tx, membership, *epoch)?,
                }
            }
            Ok(())
        })?;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is gathered, then moves the clock past every restored timestamp.
    pub async fn finish(mut self, max_ts: u64) -> Result<()> {
        self.flush().await?;
        let index = self.index;
        index.clock.fetch_max(max_ts, Ordering::SeqCst);
        let clock = index.clock.load(Ordering::SeqCst);
        in_transaction!(index.engine, tx, { write_in(tx, Table::Meta, META_CLOCK, &clock) })
    }
}
