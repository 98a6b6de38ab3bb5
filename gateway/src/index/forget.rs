//! Forgetting a volume that is gone for good (`cairn-admin volume remove --force`): every
//! record that names a copy on it loses that copy, and each blob left short of the target
//! count is queued for repair, so the repairer rebuilds the lost copies from the others.

use std::collections::HashMap;

use rocksdb::{IteratorMode, WriteBatch};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::buckets::BUCKET_KEY;
use super::records::{BlobRef, BucketEntry, GcEntry, ObjectEntry, PartRecord, decode, encode};
use super::{CF_BUCKETS, CF_GC, CF_OBJECTS, CF_PARTS, CF_UPLOADS, Index, synced};
use crate::error::Result;

/// Records rewritten per synced batch: the commit lock is held for one batch at a time.
const CHUNK: usize = 1000;

/// What forgetting a volume changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    /// Copies dropped from object, part and GC records.
    pub copies: u64,
    /// Blobs queued for repair.
    pub repairs: u64,
    /// Blobs whose only copies were on the volume: their data is lost.
    pub lost: u64,
}

/// Drops `volume`'s copies from `blob`; whether it had any.
fn strip(blob: &mut BlobRef, volume: &str, report: &mut Forgotten) -> bool {
    let before = blob.replicas.len();
    blob.replicas.retain(|r| r.volume != volume);
    let dropped = before - blob.replicas.len();
    report.copies += dropped as u64;
    if dropped > 0 && blob.replicas.is_empty() {
        report.lost += 1;
    }
    dropped > 0
}

/// Bucket and key of an `objects` or `uploads` key (`bucket \0 key [\0 upload]`).
fn split_key(raw: &[u8]) -> Option<(String, String)> {
    let at = raw.iter().position(|b| *b == 0)?;
    let rest = &raw[at + 1..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    Some((String::from_utf8_lossy(&raw[..at]).into_owned(), String::from_utf8_lossy(&rest[..end]).into_owned()))
}

impl Index {
    /// Removes every mention of `volume_id`'s copies from the records and queues repairs.
    pub fn forget_volume(&self, volume_id: &str) -> Result<Forgotten> {
        let mut report = Forgotten::default();
        self.rewrite::<ObjectEntry>(CF_OBJECTS, volume_id, &mut report, |index, batch, raw, entry, report| {
            let Some((bucket, key)) = split_key(raw) else { return Ok(()) };
            let blobs = entry.blobs();
            let short: Vec<&BlobRef> = blobs.into_iter().filter(|b| !b.replicas.is_empty()).collect();
            report.repairs += short.iter().filter(|b| b.replicas.len() < index.replica_target()).count() as u64;
            index.queue_repairs(batch, &bucket, &key, None, short)
        })?;
        self.rewrite::<BucketEntry>(CF_BUCKETS, volume_id, &mut report, |index, batch, raw, entry, report| {
            let name = String::from_utf8_lossy(raw).into_owned();
            let short: Vec<&BlobRef> = entry.blob().into_iter().filter(|b| !b.replicas.is_empty()).collect();
            report.repairs += short.iter().filter(|b| b.replicas.len() < index.replica_target()).count() as u64;
            index.queue_repairs(batch, &name, BUCKET_KEY, None, short)
        })?;
        let mut uploads: HashMap<String, (String, String)> = HashMap::new();
        for item in self.db.iterator_cf(self.cf(CF_UPLOADS)?, IteratorMode::Start) {
            let (raw, _) = item?;
            if let (Some((bucket, key)), Some(at)) = (split_key(&raw), raw.iter().rposition(|b| *b == 0)) {
                uploads.insert(String::from_utf8_lossy(&raw[at + 1..]).into_owned(), (bucket, key));
            }
        }
        self.rewrite::<PartRecord>(CF_PARTS, volume_id, &mut report, |index, batch, raw, part, report| {
            let upload_id = String::from_utf8_lossy(&raw[..raw.iter().position(|b| *b == 0).unwrap_or(0)]).into_owned();
            let Some((bucket, key)) = uploads.get(&upload_id) else { return Ok(()) };
            if !part.blob.replicas.is_empty() && part.blob.replicas.len() < index.replica_target() {
                report.repairs += 1;
                index.queue_repair(batch, &part.blob.id, bucket, key, Some(&upload_id))?;
            }
            Ok(())
        })?;
        // A queued blob left with no copy has nothing left to delete: its entry goes, from the
        // queue and from the queue by key (which holds its key's tombstone back).
        self.rewrite::<GcEntry>(CF_GC, volume_id, &mut report, |index, batch, raw, entry, _| {
            if entry.blob.replicas.is_empty() {
                index.unqueue_gc_by_key(batch, raw, entry)?;
            }
            Ok(())
        })?;
        Ok(report)
    }

    /// Rewrites, a chunk at a time under the commit lock, every record of `cf` that names a
    /// copy on `volume`, after `then` adds what else the change needs to the batch. A GC
    /// entry left with no copy is dropped: there is nothing left to delete.
    fn rewrite<T>(
        &self,
        cf: &str,
        volume: &str,
        report: &mut Forgotten,
        mut then: impl FnMut(&Index, &mut WriteBatch, &[u8], &T, &mut Forgotten) -> Result<()>,
    ) -> Result<()>
    where
        T: DeserializeOwned + Serialize + Blobs,
    {
        let uses = |record: &T| record.blob_refs().iter().any(|b| b.replicas.iter().any(|r| r.volume == volume));
        let mut after: Option<Vec<u8>> = None;
        loop {
            // Find a chunk of affected keys without the lock, then rewrite them under it,
            // reading each again: a commit may have changed it meanwhile.
            let mut keys = Vec::new();
            let mode = match &after {
                Some(after) => IteratorMode::From(after, rocksdb::Direction::Forward),
                None => IteratorMode::Start,
            };
            for item in self.db.iterator_cf(self.cf(cf)?, mode) {
                let (raw, value) = item?;
                if after.as_deref() == Some(&raw[..]) {
                    continue;
                }
                if uses(&decode::<T>(&value)?) {
                    keys.push(raw.to_vec());
                    if keys.len() == CHUNK {
                        break;
                    }
                }
            }
            let Some(last) = keys.last().cloned() else { return Ok(()) };
            let _guard = self.lock()?;
            let mut batch = WriteBatch::default();
            for raw in &keys {
                let Some(value) = self.db.get_cf(self.cf(cf)?, raw)? else { continue };
                let mut record: T = decode(&value)?;
                let mut changed = false;
                let mut counted = Forgotten::default();
                for blob in record.blob_refs_mut() {
                    changed |= strip(blob, volume, &mut counted);
                }
                report.copies += counted.copies;
                if cf != CF_GC {
                    report.lost += counted.lost;
                }
                if !changed {
                    continue;
                }
                if cf == CF_GC && record.blob_refs().iter().all(|b| b.replicas.is_empty()) {
                    then(self, &mut batch, raw, &record, report)?;
                    batch.delete_cf(self.cf(cf)?, raw);
                    continue;
                }
                then(self, &mut batch, raw, &record, report)?;
                batch.put_cf(self.cf(cf)?, raw, encode(&record)?);
            }
            self.db.write_opt(batch, &synced())?;
            after = Some(last);
        }
    }
}

/// Records that hold blob references.
trait Blobs {
    fn blob_refs(&self) -> Vec<&BlobRef>;
    fn blob_refs_mut(&mut self) -> Vec<&mut BlobRef>;
}

impl Blobs for ObjectEntry {
    fn blob_refs(&self) -> Vec<&BlobRef> {
        self.blobs()
    }

    fn blob_refs_mut(&mut self) -> Vec<&mut BlobRef> {
        match self {
            ObjectEntry::Live(record) => std::iter::once(&mut record.blob)
                .chain(record.parts.iter_mut().map(|p| &mut p.blob))
                .chain(record.tags_blob.as_mut().map(|t| &mut t.blob))
                .collect(),
            ObjectEntry::Deleted { blob, .. } => vec![blob],
        }
    }
}

impl Blobs for BucketEntry {
    fn blob_refs(&self) -> Vec<&BlobRef> {
        self.blob().into_iter().collect()
    }

    fn blob_refs_mut(&mut self) -> Vec<&mut BlobRef> {
        self.blob_mut().into_iter().collect()
    }
}

impl Blobs for PartRecord {
    fn blob_refs(&self) -> Vec<&BlobRef> {
        vec![&self.blob]
    }

    fn blob_refs_mut(&mut self) -> Vec<&mut BlobRef> {
        vec![&mut self.blob]
    }
}

impl Blobs for GcEntry {
    fn blob_refs(&self) -> Vec<&BlobRef> {
        vec![&self.blob]
    }

    fn blob_refs_mut(&mut self) -> Vec<&mut BlobRef> {
        vec![&mut self.blob]
    }
}
