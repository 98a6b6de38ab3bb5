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

    /// Every blob copy (id, volume id, subvolume) a record still needs: object versions
    /// (with parts and manifests), tombstones, parts of uploads in progress, and queued blobs
    /// (they go by the queue, after their grace period, never as orphans). A copy of a live
    /// blob at a place no record names (left by an interrupted rebalance) is not needed.
    pub fn referenced_copies(&self) -> Result<HashSet<(String, String, u32)>> {
        let mut copies = HashSet::new();
        let mut add = |blob: &super::records::BlobRef| {
            for replica in &blob.replicas {
                copies.insert((blob.id.clone(), replica.volume.clone(), replica.subvolume));
            }
        };
        for item in self.db.iterator_cf(self.cf(CF_OBJECTS)?, IteratorMode::Start) {
            let entry: ObjectEntry = decode(&item?.1)?;
            entry.blobs().into_iter().for_each(&mut add);
        }
        for item in self.db.iterator_cf(self.cf(CF_PARTS)?, IteratorMode::Start) {
            add(&decode::<PartRecord>(&item?.1)?.blob);
        }
        for item in self.db.iterator_cf(self.cf(CF_GC)?, IteratorMode::Start) {
            add(&decode::<GcEntry>(&item?.1)?.blob);
        }
        Ok(copies)
    }

    /// Every entry (live or tombstone) with its bucket and key, in order (a full scan).
    pub fn object_entries(&self) -> Result<Vec<(String, String, ObjectEntry)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_OBJECTS)?, IteratorMode::Start) {
            let (raw_key, value) = item?;
            if let Some(split) = raw_key.iter().position(|b| *b == 0) {
                let bucket = String::from_utf8_lossy(&raw_key[..split]).into_owned();
                out.push((bucket, String::from_utf8_lossy(&raw_key[split + 1..]).into_owned(), decode(&value)?));
            }
        }
        Ok(out)
    }

    /// Every live object with its bucket and key, in order (a full scan).
    pub fn live_objects(&self) -> Result<Vec<(String, String, super::records::ObjectRecord)>> {
        Ok(self
            .object_entries()?
            .into_iter()
            .filter_map(|(bucket, key, entry)| entry.live().map(|record| (bucket, key, record)))
            .collect())
    }

    /// Points blob `blob_id` of the key's current entry at `replicas`, if the entry still
    /// uses that blob (a newer write may have replaced it); whether it did.
    pub fn move_blob(
        &self,
        bucket: &str,
        key: &str,
        blob_id: &str,
        replicas: &[super::records::Replica],
    ) -> Result<bool> {
        let _guard = self.lock()?;
        let Some(mut entry) = self.object_entry(bucket, key)? else { return Ok(false) };
        let target = match &mut entry {
            ObjectEntry::Live(record) => {
                if record.blob.id == blob_id {
                    Some(&mut record.blob)
                } else {
                    record.parts.iter_mut().map(|p| &mut p.blob).find(|b| b.id == blob_id)
                }
            }
            ObjectEntry::Deleted { blob, .. } => Some(blob).filter(|b| b.id == blob_id),
        };
        let Some(blob) = target else { return Ok(false) };
        blob.replicas = replicas.to_vec();
        self.db.put_cf_opt(
            self.cf(CF_OBJECTS)?,
            object_key(bucket, key),
            super::records::encode(&entry)?,
            &synced(),
        )?;
        Ok(true)
    }

    /// Whether any record or queued blob still has a replica on volume `volume_id`.
    pub fn volume_in_use(&self, volume_id: &str) -> Result<bool> {
        let on = |blob: &super::records::BlobRef| blob.replicas.iter().any(|r| r.volume == volume_id);
        for (_, _, entry) in self.object_entries()? {
            if entry.blobs().into_iter().any(on) {
                return Ok(true);
            }
        }
        for item in self.db.iterator_cf(self.cf(CF_PARTS)?, IteratorMode::Start) {
            if on(&decode::<PartRecord>(&item?.1)?.blob) {
                return Ok(true);
            }
        }
        for item in self.db.iterator_cf(self.cf(CF_GC)?, IteratorMode::Start) {
            if on(&decode::<GcEntry>(&item?.1)?.blob) {
                return Ok(true);
            }
        }
        Ok(false)
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
