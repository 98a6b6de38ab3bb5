//! The repair queue: blobs that have fewer copies than the cluster keeps, or a copy a read
//! found damaged. A write that reached fewer than `replicas` volumes (but its quorum) is
//! acknowledged, and its blob is queued here in the same synced batch that makes it visible; a
//! read that met a corrupt or missing copy reports it here. The repairer copies the blob to
//! more volumes (recording each new copy under the commit lock) and rewrites damaged copies.

use std::sync::atomic::Ordering;

use rocksdb::{IteratorMode, WriteBatch};

use super::buckets::BUCKET_KEY;
use super::records::{BlobRef, BucketEntry, ObjectEntry, PartRecord, RepairEntry, Replica, decode, encode};
use super::{CF_BUCKETS, CF_OBJECTS, CF_PARTS, CF_REPAIR, Index, object_key, synced};
use crate::error::Result;

impl Index {
    /// Copies every blob should have; commits queue repairs for blobs with fewer. 0 (the
    /// default) queues none, for tools that open an index without serving it.
    pub fn set_replica_target(&self, replicas: usize) {
        self.replica_target.store(replicas, Ordering::Relaxed);
    }

    /// Copies every blob should have.
    pub fn replica_target(&self) -> usize {
        self.replica_target.load(Ordering::Relaxed)
    }

    /// Adds to `batch` a repair of each of `blobs` that has fewer copies than the target.
    pub(super) fn queue_repairs<'a>(
        &self,
        batch: &mut WriteBatch,
        bucket: &str,
        key: &str,
        upload_id: Option<&str>,
        blobs: impl IntoIterator<Item = &'a BlobRef>,
    ) -> Result<()> {
        let target = self.replica_target();
        for blob in blobs.into_iter().filter(|b| b.replicas.len() < target) {
            self.queue_repair(batch, &blob.id, bucket, key, upload_id)?;
        }
        Ok(())
    }

    /// Adds a repair of blob `blob_id`, used by `bucket`/`key` (or by a part of `upload_id`).
    pub(crate) fn queue_repair(
        &self,
        batch: &mut WriteBatch,
        blob_id: &str,
        bucket: &str,
        key: &str,
        upload_id: Option<&str>,
    ) -> Result<()> {
        // A queued entry may carry damage reports: they stay.
        let entry = match self.repair_entry(blob_id)? {
            Some(queued) => queued,
            None => RepairEntry::new(bucket, key, upload_id),
        };
        batch.put_cf(self.cf(CF_REPAIR)?, blob_id.as_bytes(), encode(&entry)?);
        Ok(())
    }

    /// Queues `replica` of blob `blob_id` (used by `bucket`/`key`) as damaged: a read found it
    /// corrupt or missing. Returns whether it was not queued already.
    pub fn report_damage(&self, blob_id: &str, bucket: &str, key: &str, replica: &Replica) -> Result<bool> {
        let _guard = self.lock()?;
        let mut entry = self.repair_entry(blob_id)?.unwrap_or_else(|| RepairEntry::new(bucket, key, None));
        if entry.damaged.contains(replica) {
            return Ok(false);
        }
        entry.damaged.push(replica.clone());
        self.db.put_cf_opt(self.cf(CF_REPAIR)?, blob_id.as_bytes(), encode(&entry)?, &synced())?;
        Ok(true)
    }

    /// The queued repair of blob `blob_id`, if any.
    pub fn repair_entry(&self, blob_id: &str) -> Result<Option<RepairEntry>> {
        self.db.get_cf(self.cf(CF_REPAIR)?, blob_id.as_bytes())?.map(|bytes| decode(&bytes)).transpose()
    }

    /// Up to `max` queued repairs (blob id and entry), in blob id order after `after`.
    pub fn repairs(&self, after: Option<&str>, max: usize) -> Result<Vec<(String, RepairEntry)>> {
        let mut out = Vec::new();
        let mode = match after {
            Some(after) => IteratorMode::From(after.as_bytes(), rocksdb::Direction::Forward),
            None => IteratorMode::Start,
        };
        for item in self.db.iterator_cf(self.cf(CF_REPAIR)?, mode) {
            let (id, value) = item?;
            let id = String::from_utf8_lossy(&id).into_owned();
            if Some(id.as_str()) == after {
                continue;
            }
            out.push((id, decode(&value)?));
            if out.len() == max {
                break;
            }
        }
        Ok(out)
    }

    /// Number of queued repairs.
    pub fn repair_queue_len(&self) -> Result<u64> {
        let mut count = 0;
        for item in self.db.iterator_cf(self.cf(CF_REPAIR)?, IteratorMode::Start) {
            item?;
            count += 1;
        }
        Ok(count)
    }

    /// The blob a repair is for, with its current copies, if a record still uses it.
    pub fn repair_blob(&self, blob_id: &str, entry: &RepairEntry) -> Result<Option<BlobRef>> {
        Ok(self.locate(blob_id, entry)?.and_then(|mut found| found.blob_mut().cloned()))
    }

    /// Records `added` copies of a blob under repair, and that the damaged copies `rewritten`
    /// are whole again; drops the repair once the blob has the target count and no damaged
    /// copy left (damage reported meanwhile stays queued), or when no record uses the blob any
    /// more (the copies are then orphans for GC). Returns the blob's copies now, or `None` if
    /// it is no longer used.
    pub fn add_copies(
        &self,
        blob_id: &str,
        entry: &RepairEntry,
        added: &[Replica],
        rewritten: &[Replica],
    ) -> Result<Option<Vec<Replica>>> {
        let _guard = self.lock()?;
        let mut batch = WriteBatch::default();
        let mut found = self.locate(blob_id, entry)?;
        let Some(blob) = found.as_mut().and_then(Located::blob_mut) else {
            batch.delete_cf(self.cf(CF_REPAIR)?, blob_id.as_bytes());
            self.db.write_opt(batch, &synced())?;
            return Ok(None);
        };
        for replica in added {
            if !blob.replicas.contains(replica) {
                blob.replicas.push(replica.clone());
            }
        }
        let copies = blob.replicas.clone();
        let mut queued = self.repair_entry(blob_id)?;
        if let Some(queued) = queued.as_mut() {
            // Damage on copies the record no longer has (a volume removed) is moot.
            queued.damaged.retain(|r| !rewritten.contains(r) && copies.contains(r));
        }
        match queued {
            Some(queued) if !queued.damaged.is_empty() || copies.len() < self.replica_target() => {
                batch.put_cf(self.cf(CF_REPAIR)?, blob_id.as_bytes(), encode(&queued)?)
            }
            _ => batch.delete_cf(self.cf(CF_REPAIR)?, blob_id.as_bytes()),
        }
        match found {
            None => {}
            Some(Located::Object { bucket_key, entry, .. }) => {
                batch.put_cf(self.cf(CF_OBJECTS)?, bucket_key, encode(&entry)?)
            }
            Some(Located::Part { part_key, part }) => batch.put_cf(self.cf(CF_PARTS)?, part_key, encode(&part)?),
            Some(Located::Bucket { name, entry }) => {
                batch.put_cf(self.cf(CF_BUCKETS)?, name.as_bytes(), encode(&entry)?)
            }
        }
        self.db.write_opt(batch, &synced())?;
        Ok(Some(copies))
    }

    /// Where the record using a blob under repair is: the key's entry (its blob, a part, its
    /// tags blob, or its tombstone), else a part of the upload in progress; for the empty
    /// key, the bucket's entry.
    fn locate(&self, blob_id: &str, entry: &RepairEntry) -> Result<Option<Located>> {
        if entry.key == BUCKET_KEY {
            let found = self.bucket_entry(&entry.bucket)?.filter(|b| b.blob().is_some_and(|b| b.id == blob_id));
            return Ok(found.map(|bucket| Located::Bucket { name: entry.bucket.clone(), entry: bucket }));
        }
        if let Some(object) = self.object_entry(&entry.bucket, &entry.key)? {
            let which = match &object {
                ObjectEntry::Live(record) if record.blob.id == blob_id => Some(Which::Main),
                ObjectEntry::Live(record) if record.tags_blob.as_ref().is_some_and(|t| t.blob.id == blob_id) => {
                    Some(Which::Tags)
                }
                ObjectEntry::Live(record) => record.parts.iter().position(|p| p.blob.id == blob_id).map(Which::Part),
                ObjectEntry::Deleted { blob, .. } => (blob.id == blob_id).then_some(Which::Main),
            };
            if let Some(which) = which {
                let bucket_key = object_key(&entry.bucket, &entry.key);
                return Ok(Some(Located::Object { bucket_key, entry: object, which }));
            }
        }
        let Some(upload_id) = &entry.upload_id else { return Ok(None) };
        for part in self.parts(upload_id, 0, usize::MAX)?.0 {
            if part.blob.id == blob_id {
                return Ok(Some(Located::Part { part_key: super::multipart::part_key(upload_id, part.number), part }));
            }
        }
        Ok(None)
    }
}

/// Which blob of an object entry.
#[derive(Debug, Clone, Copy)]
enum Which {
    /// The entry's own blob (data, manifest or tombstone).
    Main,
    /// The blob of its part at this position.
    Part(usize),
    /// Its tags blob.
    Tags,
}

/// A record that uses a blob under repair.
#[derive(Debug)]
enum Located {
    /// A key's entry.
    Object { bucket_key: Vec<u8>, entry: ObjectEntry, which: Which },
    /// A part of an upload in progress.
    Part { part_key: Vec<u8>, part: PartRecord },
    /// A bucket's entry (its creation or deletion blob; `locate` found it has one).
    Bucket { name: String, entry: BucketEntry },
}

impl Located {
    /// The blob under repair; `None` only if the record no longer has the blob `locate`
    /// found in it (never: the record is not changed in between).
    fn blob_mut(&mut self) -> Option<&mut BlobRef> {
        match self {
            Located::Object { entry: ObjectEntry::Deleted { blob, .. }, .. } => Some(blob),
            Located::Object { entry: ObjectEntry::Live(record), which, .. } => match *which {
                Which::Part(i) if i < record.parts.len() => Some(&mut record.parts[i].blob),
                Which::Tags => record.tags_blob.as_mut().map(|t| &mut t.blob),
                _ => Some(&mut record.blob),
            },
            Located::Part { part, .. } => Some(&mut part.blob),
            Located::Bucket { entry, .. } => entry.blob_mut(),
        }
    }
}
