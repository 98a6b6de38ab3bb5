//! The repair queue: blobs that have fewer copies than the cluster keeps, or a copy a read
//! found damaged. A write that reached fewer than `replicas` volumes (but its quorum) is
//! acknowledged, and its blob is queued here in the same transaction that makes it visible; a
//! read that met a corrupt or missing copy reports it here. The repairer copies the blob to
//! more volumes (recording each new copy in a transaction) and rewrites damaged copies.

use std::sync::atomic::Ordering;

use super::buckets::BUCKET_KEY;
use super::records::{BlobRef, BucketEntry, CommitOrder, ObjectEntry, PartRecord, RepairEntry, Replica, decode};
use super::{Index, object_key, read_in, write_in};
use crate::engine::{Table, Transaction};
use crate::error::Result;
use crate::in_transaction;

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

    /// Adds to `tx` a repair of each of `blobs` that has fewer copies than the target.
    pub(super) async fn queue_repairs<'a>(
        &self,
        tx: &mut dyn Transaction,
        bucket: &str,
        key: &str,
        upload_id: Option<&str>,
        blobs: impl IntoIterator<Item = &'a BlobRef>,
    ) -> Result<()> {
        let target = self.replica_target();
        let short: Vec<&BlobRef> = blobs.into_iter().filter(|b| b.replicas.len() < target).collect();
        for blob in short {
            Self::queue_repair(tx, &blob.id, bucket, key, upload_id).await?;
        }
        Ok(())
    }

    /// Adds to `tx` a repair of blob `blob_id`, used by `bucket`/`key` (or by a part of
    /// `upload_id`).
    pub(crate) async fn queue_repair(
        tx: &mut dyn Transaction,
        blob_id: &str,
        bucket: &str,
        key: &str,
        upload_id: Option<&str>,
    ) -> Result<()> {
        // A queued entry may carry damage reports: they stay.
        let entry = match read_in::<RepairEntry>(tx, Table::Repair, blob_id.as_bytes()).await? {
            Some(queued) => queued,
            None => RepairEntry::new(bucket, key, upload_id),
        };
        write_in(tx, Table::Repair, blob_id.as_bytes(), &entry)
    }

    /// Queues `replica` of blob `blob_id` (used by `bucket`/`key`) as damaged: a read found it
    /// corrupt or missing. Returns whether it was not queued already.
    pub async fn report_damage(&self, blob_id: &str, bucket: &str, key: &str, replica: &Replica) -> Result<bool> {
        in_transaction!(self.engine, tx, {
            let queued = read_in::<RepairEntry>(tx, Table::Repair, blob_id.as_bytes()).await?;
            let mut entry = queued.unwrap_or_else(|| RepairEntry::new(bucket, key, None));
            if entry.damaged.contains(replica) {
                return Ok(false);
            }
            entry.damaged.push(replica.clone());
            write_in(tx, Table::Repair, blob_id.as_bytes(), &entry)?;
            Ok(true)
        })
    }

    /// The queued repair of blob `blob_id`, if any.
    pub async fn repair_entry(&self, blob_id: &str) -> Result<Option<RepairEntry>> {
        self.read(Table::Repair, blob_id.as_bytes()).await
    }

    /// Up to `max` queued repairs (blob id and entry), in blob id order after `after`.
    pub async fn repairs(&self, after: Option<&str>, max: usize) -> Result<Vec<(String, RepairEntry)>> {
        let start = match after {
            Some(after) => {
                let mut start = after.as_bytes().to_vec();
                start.push(0);
                start
            }
            None => Vec::new(),
        };
        let rows = self.engine.scan(Table::Repair, &start, None, max).await?;
        rows.into_iter().map(|(id, value)| Ok((String::from_utf8_lossy(&id).into_owned(), decode(&value)?))).collect()
    }

    /// Number of queued repairs.
    pub async fn repair_queue_len(&self) -> Result<u64> {
        self.count_rows(Table::Repair).await
    }

    /// The blob a repair is for, with its current copies and its commit order (what its new
    /// copies log), if a record still uses it.
    pub async fn repair_blob(&self, blob_id: &str, entry: &RepairEntry) -> Result<Option<(BlobRef, CommitOrder)>> {
        // Read only: the transaction is dropped without a commit.
        let mut tx = self.engine.begin().await?;
        Ok(Self::locate(tx.as_mut(), blob_id, entry).await?.and_then(|mut found| {
            let order = found.order();
            found.blob_mut().cloned().map(|blob| (blob, order))
        }))
    }

    /// Records `added` copies of a blob under repair, and that the damaged copies `rewritten`
    /// are whole again; drops the repair once the blob has the target count and no damaged
    /// copy left (damage reported meanwhile stays queued), or when no record uses the blob any
    /// more (the copies are then orphans for GC). Returns the blob's copies now, or `None` if
    /// it is no longer used.
    pub async fn add_copies(
        &self,
        blob_id: &str,
        entry: &RepairEntry,
        added: &[Replica],
        rewritten: &[Replica],
    ) -> Result<Option<Vec<Replica>>> {
        in_transaction!(self.engine, tx, {
            let mut found = Self::locate(tx, blob_id, entry).await?;
            let Some(blob) = found.as_mut().and_then(Located::blob_mut) else {
                tx.delete(Table::Repair, blob_id.as_bytes());
                return Ok(None);
            };
            if !added.is_empty() {
                // The new copies were claimed while the repairer made them.
                self.consume_claim(tx, blob_id).await?;
            }
            for replica in added {
                if !blob.replicas.contains(replica) {
                    blob.replicas.push(replica.clone());
                }
            }
            let copies = blob.replicas.clone();
            let mut queued = read_in::<RepairEntry>(tx, Table::Repair, blob_id.as_bytes()).await?;
            if let Some(queued) = queued.as_mut() {
                // Damage on copies the record no longer has (a volume removed) is moot.
                queued.damaged.retain(|r| !rewritten.contains(r) && copies.contains(r));
            }
            match queued {
                Some(queued) if !queued.damaged.is_empty() || copies.len() < self.replica_target() => {
                    write_in(tx, Table::Repair, blob_id.as_bytes(), &queued)?
                }
                _ => tx.delete(Table::Repair, blob_id.as_bytes()),
            }
            match found {
                None => {}
                Some(Located::Object { table, at, entry, .. }) => write_in(tx, table, &at, &entry)?,
                Some(Located::Part { part_key, part }) => write_in(tx, Table::Parts, &part_key, &part)?,
                Some(Located::Bucket { name, entry }) => write_in(tx, Table::Buckets, name.as_bytes(), &entry)?,
            }
            Ok(Some(copies))
        })
    }

    /// Where the record using a blob under repair is: the key's entry (its blob, a part, its
    /// tags blob, or its tombstone), else one of its noncurrent versions, else a part of the
    /// upload in progress; for the empty key, the bucket's entry.
    async fn locate(tx: &mut dyn Transaction, blob_id: &str, entry: &RepairEntry) -> Result<Option<Located>> {
        if entry.key == BUCKET_KEY {
            let found = read_in::<BucketEntry>(tx, Table::Buckets, entry.bucket.as_bytes())
                .await?
                .filter(|b| b.blob().is_some_and(|b| b.id == blob_id));
            return Ok(found.map(|bucket| Located::Bucket { name: entry.bucket.clone(), entry: bucket }));
        }
        let at = object_key(&entry.bucket, &entry.key);
        if let Some(object) = read_in::<ObjectEntry>(tx, Table::Objects, &at).await?
            && let Some(which) = Which::of(&object, blob_id)
        {
            return Ok(Some(Located::Object { table: Table::Objects, at, entry: object, which }));
        }
        if let Some((at, object)) = Self::noncurrent_using(tx, &entry.bucket, &entry.key, blob_id).await? {
            let which = Which::of(&object, blob_id).unwrap_or(Which::Main);
            return Ok(Some(Located::Object { table: Table::Versions, at, entry: object, which }));
        }
        let Some(upload_id) = &entry.upload_id else { return Ok(None) };
        for (part_key, value) in super::multipart::parts_in(tx, upload_id).await? {
            let part: PartRecord = decode(&value)?;
            if part.blob.id == blob_id {
                return Ok(Some(Located::Part { part_key, part }));
            }
        }
        Ok(None)
    }
}

/// Which blob of an object entry.
#[derive(Debug, Clone, Copy)]
pub(super) enum Which {
    /// The entry's own blob (data, manifest or tombstone).
    Main,
    /// The blob of its part at this position.
    Part(usize),
    /// The blob of the change (tags, lock, ACL) at this position of `ObjectRecord::changes`.
    Change(usize),
}

impl Which {
    /// Which blob of `entry` blob `blob_id` is, if it is one of its blobs.
    pub(super) fn of(entry: &ObjectEntry, blob_id: &str) -> Option<Which> {
        match entry {
            ObjectEntry::Live(record) if record.blob.id == blob_id => Some(Which::Main),
            ObjectEntry::Live(record) => record
                .changes()
                .position(|c| c.blob.id == blob_id)
                .map(Which::Change)
                .or_else(|| record.parts.iter().position(|p| p.blob.id == blob_id).map(Which::Part)),
            ObjectEntry::Deleted { blob, .. } => (blob.id == blob_id).then_some(Which::Main),
        }
    }
}

/// A record that uses a blob under repair.
#[derive(Debug)]
enum Located {
    /// A key's entry, current (in `objects`) or noncurrent (in `versions`), at `at`.
    Object { table: Table, at: Vec<u8>, entry: ObjectEntry, which: Which },
    /// A part of an upload in progress.
    Part { part_key: Vec<u8>, part: PartRecord },
    /// A bucket's entry (its creation or deletion blob; `locate` found it has one).
    Bucket { name: String, entry: BucketEntry },
}

impl Located {
    /// The commit order of the blob under repair: what the record keeps with it (order 0
    /// for parts, which are not logged).
    fn order(&self) -> CommitOrder {
        match self {
            Located::Object { entry: ObjectEntry::Live(record), which: Which::Change(i), .. } => {
                CommitOrder::plain(record.changes().nth(*i).map_or(0, |c| c.ts))
            }
            Located::Object { which: Which::Part(_), .. } | Located::Part { .. } => CommitOrder::plain(0),
            Located::Object { entry, .. } => CommitOrder::of(entry),
            Located::Bucket { entry, .. } => CommitOrder::plain(entry.ts()),
        }
    }

    /// The blob under repair; `None` only if the record no longer has the blob `locate`
    /// found in it (never: the record is not changed in between).
    fn blob_mut(&mut self) -> Option<&mut BlobRef> {
        match self {
            Located::Object { entry: ObjectEntry::Deleted { blob, .. }, .. } => Some(blob),
            Located::Object { entry: ObjectEntry::Live(record), which, .. } => match *which {
                Which::Part(i) if i < record.parts.len() => Some(&mut record.parts[i].blob),
                Which::Change(i) => record.changes_mut().nth(i).map(|c| &mut c.blob),
                _ => Some(&mut record.blob),
            },
            Located::Part { part, .. } => Some(&mut part.blob),
            Located::Bucket { entry, .. } => entry.blob_mut(),
        }
    }
}
