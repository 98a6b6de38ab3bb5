//! Forgetting a volume that is gone for good (`cairn-admin volume remove --force`): every
//! record that names a copy on it loses that copy, and each blob left short of the target
//! count is queued for repair, so the repairer rebuilds the lost copies from the others.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::buckets::BUCKET_KEY;
use super::records::{BlobRef, BucketEntry, GcEntry, ObjectEntry, PartRecord, decode, encode};
use super::{Index, read_in};
use crate::engine::{Table, Transaction};
use crate::error::Result;
use crate::in_transaction;

/// Records rewritten per transaction.
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

/// Which records a rewrite goes through, and what each change needs besides the record.
enum Kind<'a> {
    /// Object entries: repairs for blobs left short.
    Objects,
    /// Noncurrent versions: the same.
    Versions,
    /// Bucket entries: repairs for bucket blobs left short.
    Buckets,
    /// Parts of uploads in progress (upload id → bucket and key): repairs.
    Parts(&'a HashMap<String, (String, String)>),
    /// GC entries: one left with no copy leaves the queue (and the queue by key).
    Gc,
}

impl Kind<'_> {
    fn table(&self) -> Table {
        match self {
            Kind::Objects => Table::Objects,
            Kind::Versions => Table::Versions,
            Kind::Buckets => Table::Buckets,
            Kind::Parts(_) => Table::Parts,
            Kind::Gc => Table::Gc,
        }
    }
}

impl Index {
    /// Removes every mention of `volume_id`'s copies from the records and queues repairs.
    pub async fn forget_volume(&self, volume_id: &str) -> Result<Forgotten> {
        let mut report = Forgotten::default();
        self.rewrite::<ObjectEntry>(Kind::Objects, volume_id, &mut report).await?;
        self.rewrite::<ObjectEntry>(Kind::Versions, volume_id, &mut report).await?;
        self.rewrite::<BucketEntry>(Kind::Buckets, volume_id, &mut report).await?;
        let mut uploads: HashMap<String, (String, String)> = HashMap::new();
        for (raw, _) in self.scan_all(Table::Uploads, b"", None).await? {
            if let (Some((bucket, key)), Some(at)) = (split_key(&raw), raw.iter().rposition(|b| *b == 0)) {
                uploads.insert(String::from_utf8_lossy(&raw[at + 1..]).into_owned(), (bucket, key));
            }
        }
        self.rewrite::<PartRecord>(Kind::Parts(&uploads), volume_id, &mut report).await?;
        self.rewrite::<GcEntry>(Kind::Gc, volume_id, &mut report).await?;
        Ok(report)
    }

    /// Rewrites, a chunk per transaction, every record of `kind` that names a copy on
    /// `volume`, with what else the change needs (see [`Kind`]).
    async fn rewrite<T>(&self, kind: Kind<'_>, volume: &str, report: &mut Forgotten) -> Result<()>
    where
        T: DeserializeOwned + Serialize + Blobs + Send,
    {
        let uses = |record: &T| record.blob_refs().iter().any(|b| b.replicas.iter().any(|r| r.volume == volume));
        let table = kind.table();
        let mut from: Vec<u8> = Vec::new();
        loop {
            // Find a chunk of affected keys, then rewrite them in a transaction, reading each
            // again: a commit may have changed it meanwhile.
            let mut keys = Vec::new();
            let mut scanned_to = None;
            'find: loop {
                let rows = self.engine.scan(table, &from, None, CHUNK).await?;
                for (raw, value) in &rows {
                    scanned_to = Some(raw.clone());
                    if uses(&decode::<T>(value)?) {
                        keys.push(raw.clone());
                        if keys.len() == CHUNK {
                            break 'find;
                        }
                    }
                }
                match rows.last() {
                    Some((last, _)) if rows.len() == CHUNK => {
                        from = last.clone();
                        from.push(0);
                    }
                    _ => break,
                }
            }
            if keys.is_empty() {
                return Ok(());
            }
            let counted = in_transaction!(self.engine, tx, {
                let mut counted = Forgotten::default();
                for raw in &keys {
                    let Some(mut record) = read_in::<T>(tx, table, raw).await? else { continue };
                    let mut changed = false;
                    let mut stripped = Forgotten::default();
                    for blob in record.blob_refs_mut() {
                        changed |= strip(blob, volume, &mut stripped);
                    }
                    counted.copies += stripped.copies;
                    if !matches!(kind, Kind::Gc) {
                        counted.lost += stripped.lost;
                    }
                    if !changed {
                        continue;
                    }
                    counted.repairs += self.follow_up(tx, &kind, raw, &record).await?;
                    if matches!(kind, Kind::Gc) && record.blob_refs().iter().all(|b| b.replicas.is_empty()) {
                        tx.delete(table, raw);
                    } else {
                        tx.put(table, raw, &encode(&record)?);
                    }
                }
                Ok(counted)
            })?;
            report.copies += counted.copies;
            report.lost += counted.lost;
            report.repairs += counted.repairs;
            match scanned_to {
                Some(mut last) => {
                    last.push(0);
                    from = last;
                }
                None => return Ok(()),
            }
        }
    }

    /// What a rewritten record needs besides itself; returns the repairs queued.
    async fn follow_up<T: Blobs>(
        &self,
        tx: &mut dyn Transaction,
        kind: &Kind<'_>,
        raw: &[u8],
        record: &T,
    ) -> Result<u64> {
        let short: Vec<&BlobRef> = record
            .blob_refs()
            .into_iter()
            .filter(|b| !b.replicas.is_empty() && b.replicas.len() < self.replica_target())
            .collect();
        let owner = match kind {
            Kind::Objects => split_key(raw).map(|(bucket, key)| (bucket, key, None)),
            Kind::Versions => super::versions::split_version_key(raw).map(|(bucket, key, _)| (bucket, key, None)),
            Kind::Buckets => Some((String::from_utf8_lossy(raw).into_owned(), BUCKET_KEY.to_string(), None)),
            Kind::Parts(uploads) => {
                let upload_id =
                    String::from_utf8_lossy(&raw[..raw.iter().position(|b| *b == 0).unwrap_or(0)]).into_owned();
                uploads.get(&upload_id).map(|(bucket, key)| (bucket.clone(), key.clone(), Some(upload_id)))
            }
            Kind::Gc => {
                if let Some(entry) = record.as_gc_entry()
                    && entry.blob.replicas.is_empty()
                {
                    Index::unqueue_gc_by_key(tx, raw, entry);
                }
                None
            }
        };
        let Some((bucket, key, upload_id)) = owner else { return Ok(0) };
        for blob in &short {
            Index::queue_repair(tx, &blob.id, &bucket, &key, upload_id.as_deref()).await?;
        }
        Ok(short.len() as u64)
    }
}

/// Records that hold blob references.
trait Blobs {
    fn blob_refs(&self) -> Vec<&BlobRef>;
    fn blob_refs_mut(&mut self) -> Vec<&mut BlobRef>;
    /// The record as a GC queue entry, if it is one.
    fn as_gc_entry(&self) -> Option<&GcEntry> {
        None
    }
}

impl Blobs for ObjectEntry {
    fn blob_refs(&self) -> Vec<&BlobRef> {
        self.blobs()
    }

    fn blob_refs_mut(&mut self) -> Vec<&mut BlobRef> {
        match self {
            ObjectEntry::Live(record) => record.blobs_mut().collect(),
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

    fn as_gc_entry(&self) -> Option<&GcEntry> {
        Some(self)
    }

    fn blob_refs_mut(&mut self) -> Vec<&mut BlobRef> {
        vec![&mut self.blob]
    }
}
