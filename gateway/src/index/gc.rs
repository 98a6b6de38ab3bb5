//! What garbage collection reads from and removes from the index: the GC queue, the set of
//! blobs records still reference, and tombstones that have done their job.

use std::collections::HashSet;

use rocksdb::{IteratorMode, WriteBatch};

use super::records::{GcEntry, ObjectEntry, PartRecord, decode};
use super::{CF_GC, CF_OBJECTS, CF_PARTS, Index, object_key, synced};
use crate::error::Result;

/// A queued blob and the queue key that removes it.
#[derive(Debug, Clone)]
pub struct QueuedBlob {
    /// Key in the `gc` column family.
    pub queue_key: Vec<u8>,
    /// The entry.
    pub entry: GcEntry,
}

/// A tombstone that may be dropped.
#[derive(Debug, Clone)]
pub struct Tombstone {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Delete timestamp.
    pub ts: u64,
    /// The tombstone blob on the volumes.
    pub blob: super::records::BlobRef,
}

impl Index {
    /// Queue entries queued at or before `cutoff_ms`, oldest first.
    pub fn gc_due(&self, cutoff_ms: u64) -> Result<Vec<QueuedBlob>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_GC)?, IteratorMode::Start) {
            let (key, value) = item?;
            let entry: GcEntry = decode(&value)?;
            if entry.queued_ms > cutoff_ms {
                break;
            }
            out.push(QueuedBlob { queue_key: key.to_vec(), entry });
        }
        Ok(out)
    }

    /// Removes a queue entry once its blob is deleted everywhere.
    pub fn gc_remove(&self, queue_key: &[u8]) -> Result<()> {
        self.db.delete_cf_opt(self.cf(CF_GC)?, queue_key, &synced())?;
        Ok(())
    }

    /// When the oldest queued blob was queued, if any.
    pub fn gc_oldest_ms(&self) -> Result<Option<u64>> {
        match self.db.iterator_cf(self.cf(CF_GC)?, IteratorMode::Start).next() {
            Some(item) => Ok(Some(decode::<GcEntry>(&item?.1)?.queued_ms)),
            None => Ok(None),
        }
    }

    /// Ids of every blob a record still needs: object versions (with parts and manifests),
    /// tombstones, parts of uploads in progress, and queued blobs (they go by the queue,
    /// after their grace period, never as orphans).
    pub fn referenced_blobs(&self) -> Result<HashSet<String>> {
        let mut ids = HashSet::new();
        for item in self.db.iterator_cf(self.cf(CF_OBJECTS)?, IteratorMode::Start) {
            let entry: ObjectEntry = decode(&item?.1)?;
            ids.extend(entry.blobs().into_iter().map(|b| b.id.clone()));
        }
        for item in self.db.iterator_cf(self.cf(CF_PARTS)?, IteratorMode::Start) {
            ids.insert(decode::<PartRecord>(&item?.1)?.blob.id);
        }
        for item in self.db.iterator_cf(self.cf(CF_GC)?, IteratorMode::Start) {
            ids.insert(decode::<GcEntry>(&item?.1)?.blob.id);
        }
        Ok(ids)
    }

    /// Every live object with its key, in order (for verify; a full scan).
    pub fn live_objects(&self) -> Result<Vec<(String, String, super::records::ObjectRecord)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_OBJECTS)?, IteratorMode::Start) {
            let (raw_key, value) = item?;
            if let ObjectEntry::Live(record) = decode(&value)?
                && let Some(split) = raw_key.iter().position(|b| *b == 0)
            {
                let bucket = String::from_utf8_lossy(&raw_key[..split]).into_owned();
                out.push((bucket, String::from_utf8_lossy(&raw_key[split + 1..]).into_owned(), *record));
            }
        }
        Ok(out)
    }

    /// Tombstones written before `before_ts`.
    pub fn tombstones_before(&self, before_ts: u64) -> Result<Vec<Tombstone>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_OBJECTS)?, IteratorMode::Start) {
            let (raw_key, value) = item?;
            if let ObjectEntry::Deleted { ts, blob } = decode(&value)?
                && ts < before_ts
                && let Some(split) = raw_key.iter().position(|b| *b == 0)
            {
                out.push(Tombstone {
                    bucket: String::from_utf8_lossy(&raw_key[..split]).into_owned(),
                    key: String::from_utf8_lossy(&raw_key[split + 1..]).into_owned(),
                    ts,
                    blob,
                });
            }
        }
        Ok(out)
    }

    /// Drops a tombstone from the index if it is still the key's entry (a newer write may
    /// have replaced it meanwhile); whether it was dropped.
    pub fn drop_tombstone(&self, tombstone: &Tombstone) -> Result<bool> {
        let _guard = self.lock()?;
        match self.object_entry(&tombstone.bucket, &tombstone.key)? {
            Some(ObjectEntry::Deleted { ts, .. }) if ts == tombstone.ts => {
                let mut batch = WriteBatch::default();
                batch.delete_cf(self.cf(CF_OBJECTS)?, object_key(&tombstone.bucket, &tombstone.key));
                self.db.write_opt(batch, &synced())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
