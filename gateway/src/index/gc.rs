//! What garbage collection reads from and removes from the index: the GC queue, the set of
//! blobs records still reference, and tombstones that have done their job.

use std::collections::HashSet;

use rocksdb::{IteratorMode, WriteBatch};

use super::records::{BlobRef, BucketEntry, GcEntry, ObjectEntry, PartRecord, decode, encode};
use super::{CF_BUCKETS, CF_GC, CF_GC_KEYS, CF_OBJECTS, CF_PARTS, Index, object_key, synced};
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
    pub blob: BlobRef,
}

/// Where the `gc_keys` entries of a key start: `bucket \0 key \0`.
fn gc_keys_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = object_key(bucket, key);
    out.push(0);
    out
}

impl Index {
    /// Adds to `batch` a queue entry for `blob` of `bucket`/`key`, stamped `queued_ms`, and
    /// its `gc_keys` twin, which lets a tombstone ask "is anything of my key still queued?"
    /// with one seek.
    pub(super) fn queue_gc_at(
        &self,
        batch: &mut WriteBatch,
        queued_ms: u64,
        bucket: &str,
        key: &str,
        blob: &BlobRef,
    ) -> Result<()> {
        // A blob on its way out needs no more copies.
        batch.delete_cf(self.cf(super::CF_REPAIR)?, blob.id.as_bytes());
        let mut gc_key = queued_ms.to_be_bytes().to_vec();
        gc_key.extend_from_slice(blob.id.as_bytes());
        let mut by_key = gc_keys_prefix(bucket, key);
        by_key.extend_from_slice(&gc_key);
        let entry = GcEntry { queued_ms, bucket: bucket.to_string(), key: key.to_string(), blob: blob.clone() };
        batch.put_cf(self.cf(CF_GC)?, gc_key, encode(&entry)?);
        batch.put_cf(self.cf(CF_GC_KEYS)?, by_key, []);
        Ok(())
    }

    /// Whether any blob of `bucket`/`key` is still queued.
    pub fn gc_queued_for(&self, bucket: &str, key: &str) -> Result<bool> {
        let prefix = gc_keys_prefix(bucket, key);
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_GC_KEYS)?);
        iter.seek(&prefix);
        let found = iter.key().is_some_and(|k| k.starts_with(&prefix));
        iter.status()?;
        Ok(found)
    }

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

    /// Removes a queue entry (and its `gc_keys` twin) once its blob is deleted everywhere.
    pub fn gc_remove(&self, queue_key: &[u8]) -> Result<()> {
        let Some(value) = self.db.get_cf(self.cf(CF_GC)?, queue_key)? else { return Ok(()) };
        let entry: GcEntry = decode(&value)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_GC)?, queue_key);
        self.unqueue_gc_by_key(&mut batch, queue_key, &entry)?;
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Adds to `batch` the removal of a queue entry from the queue by key.
    pub(super) fn unqueue_gc_by_key(&self, batch: &mut WriteBatch, queue_key: &[u8], entry: &GcEntry) -> Result<()> {
        let mut by_key = gc_keys_prefix(&entry.bucket, &entry.key);
        by_key.extend_from_slice(queue_key);
        batch.delete_cf(self.cf(CF_GC_KEYS)?, by_key);
        Ok(())
    }

    /// Every blob copy (id, volume id, subvolume) a record still needs: object versions
    /// (with parts, manifests and tags blobs), tombstones, bucket blobs (of buckets and of
    /// deleted buckets' entries), parts of uploads in progress, and queued blobs (they go by
    /// the queue, after their grace period, never as orphans). A copy of a live
    /// blob at a place no record names (left by an interrupted rebalance) is not needed.
    pub fn referenced_copies(&self) -> Result<HashSet<(String, String, u32)>> {
        let mut copies = HashSet::new();
        let mut add = |blob: &BlobRef| {
            for replica in &blob.replicas {
                copies.insert((blob.id.clone(), replica.volume.clone(), replica.subvolume));
            }
        };
        for item in self.db.iterator_cf(self.cf(CF_OBJECTS)?, IteratorMode::Start) {
            let entry: ObjectEntry = decode(&item?.1)?;
            entry.blobs().into_iter().for_each(&mut add);
        }
        for item in self.db.iterator_cf(self.cf(CF_BUCKETS)?, IteratorMode::Start) {
            decode::<BucketEntry>(&item?.1)?.blob().into_iter().for_each(&mut add);
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

    /// Points blob `blob_id` of the key's current entry (of the bucket's entry for the empty
    /// key) at `replicas`, if the entry still uses that blob (a newer write may have replaced
    /// it); whether it did.
    pub fn move_blob(
        &self,
        bucket: &str,
        key: &str,
        blob_id: &str,
        replicas: &[super::records::Replica],
    ) -> Result<bool> {
        if key == super::buckets::BUCKET_KEY {
            return self.move_bucket_blob(bucket, blob_id, replicas);
        }
        let _guard = self.lock()?;
        let Some(mut entry) = self.object_entry(bucket, key)? else { return Ok(false) };
        let target = match &mut entry {
            ObjectEntry::Live(record) => {
                if record.blob.id == blob_id {
                    Some(&mut record.blob)
                } else if let Some(tags) = record.tags_blob.as_mut().filter(|t| t.blob.id == blob_id) {
                    Some(&mut tags.blob)
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
        let on = |blob: &BlobRef| blob.replicas.iter().any(|r| r.volume == volume_id);
        for (_, _, entry) in self.object_entries()? {
            if entry.blobs().into_iter().any(on) {
                return Ok(true);
            }
        }
        for item in self.db.iterator_cf(self.cf(CF_BUCKETS)?, IteratorMode::Start) {
            if decode::<BucketEntry>(&item?.1)?.blob().is_some_and(on) {
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
    /// have replaced it meanwhile) and no blob of its key is queued for GC; whether it was
    /// dropped. A queued blob may be a version the tombstone deleted, and until that blob is
    /// gone from every volume the tombstone blob is what keeps a rebuild from resurrecting
    /// it. Checked under the commit lock, because every queue entry is written under it.
    pub fn drop_tombstone(&self, tombstone: &Tombstone) -> Result<bool> {
        let _guard = self.lock()?;
        if self.gc_queued_for(&tombstone.bucket, &tombstone.key)? {
            return Ok(false);
        }
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

#[cfg(test)]
mod tests {
    use super::super::records::*;
    use super::*;

    fn live(ts: u64, id: &str) -> ObjectEntry {
        super::super::tests::record(ts, id)
    }

    fn deleted(ts: u64, id: &str) -> ObjectEntry {
        ObjectEntry::Deleted { ts, blob: BlobRef { id: id.into(), replicas: vec![] } }
    }

    /// The version a tombstone deleted may still be on a volume (its delete failed); while it
    /// is queued, the tombstone must stay, or a rebuild brings the version back.
    #[test]
    fn a_tombstone_stays_while_a_blob_of_its_key_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.test_create_bucket("b").unwrap();
        index.commit_object("b", "k", &live(1, "old"), None).unwrap();
        index.commit_object("b", "k", &deleted(2, "tomb"), None).unwrap();
        // Another key whose name extends this one, with a queued blob of its own.
        index.commit_object("b", "k2", &live(3, "k2-old"), None).unwrap();
        index.commit_object("b", "k2", &live(4, "k2-new"), None).unwrap();

        let tombstones = index.tombstones_before(u64::MAX).unwrap();
        assert_eq!(tombstones.len(), 1);
        assert!(!index.drop_tombstone(&tombstones[0]).unwrap(), "the old version is still queued");
        assert!(index.object_entry("b", "k").unwrap().is_some());

        // GC deleted the other key's blob: still blocked by this key's own.
        let due = index.gc_due(u64::MAX).unwrap();
        let of = |id: &str| due.iter().find(|q| q.entry.blob.id == id).unwrap().queue_key.clone();
        index.gc_remove(&of("k2-old")).unwrap();
        assert!(!index.drop_tombstone(&tombstones[0]).unwrap());

        // Once the old version's blob is gone everywhere, the tombstone may go.
        index.gc_remove(&of("old")).unwrap();
        assert!(index.drop_tombstone(&tombstones[0]).unwrap());
        assert!(index.object_entry("b", "k").unwrap().is_none());
        assert!(index.gc_due(u64::MAX).unwrap().is_empty());
    }

    /// DeleteBucket keeps the bucket's tombstones: they still order late writes and guard
    /// against resurrection, and a bucket created again under the name works as new.
    #[test]
    fn a_deleted_bucket_keeps_its_tombstones_until_gc() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.test_create_bucket("b").unwrap();
        index.commit_object("b", "k", &live(10, "v1"), None).unwrap();
        index.commit_object("b", "k", &deleted(20, "tomb"), None).unwrap();
        index.test_delete_bucket("b").unwrap();
        assert!(index.bucket("b").unwrap().is_none());
        assert_eq!(index.object_entry("b", "k").unwrap(), Some(deleted(20, "tomb")));

        index.test_create_bucket("b").unwrap();
        assert!(index.list_objects("b", "", None, None, 10).unwrap().items.is_empty());
        assert!(index.object("b", "k").unwrap().is_none());
        // A write older than the delete (it started before) still loses to it.
        assert_eq!(
            index.commit_object("b", "k", &live(15, "late"), None).unwrap(),
            super::super::Committed::Superseded
        );
        assert!(index.object("b", "k").unwrap().is_none());
        // A new write wins, and the bucket can go again once it is empty.
        assert_eq!(index.commit_object("b", "k", &live(30, "v2"), None).unwrap(), super::super::Committed::Current);
        assert_eq!(index.object("b", "k").unwrap().unwrap().blob.id, "v2");
        assert!(matches!(index.test_delete_bucket("b"), Err(crate::error::Error::BucketNotEmpty)));
        index.commit_object("b", "k", &deleted(40, "tomb2"), None).unwrap();
        index.test_delete_bucket("b").unwrap();

        // GC drops the tombstone like any other once nothing of its key is queued.
        for queued in index.gc_due(u64::MAX).unwrap() {
            index.gc_remove(&queued.queue_key).unwrap();
        }
        let tombstones = index.tombstones_before(u64::MAX).unwrap();
        assert_eq!(tombstones.len(), 1);
        assert!(index.drop_tombstone(&tombstones[0]).unwrap());
        assert!(index.object_entry("b", "k").unwrap().is_none());
    }
}
