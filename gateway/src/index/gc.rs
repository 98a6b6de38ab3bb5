//! What garbage collection reads from and removes from the index: the GC queue, the set of
//! blobs records still reference, and tombstones that have done their job.

use std::collections::{HashMap, HashSet};

use super::pages::{KeyedEntry, Pages};
use super::records::{BlobRef, BucketEntry, GcEntry, ObjectEntry, PartRecord, Version, decode, encode};
use super::repair::Which;
use super::versions::version_key;
use super::{Index, object_key, read_in, write_in};
use crate::engine::{Table, Transaction};
use crate::error::Result;
use crate::in_transaction;

/// A queued blob and the queue key that removes it.
#[derive(Debug, Clone)]
pub struct QueuedBlob {
    /// Key in the `gc` table.
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
    /// Whether it is the record of a version deleted by id, among the key's noncurrent rows
    /// (else the key's current entry).
    pub removal: bool,
}

impl Tombstone {
    /// The entry as a tombstone, if it is one written before `before_ts`: a tombstone (the
    /// current entry) or the record of a version deleted by id (a noncurrent row). A delete
    /// marker (a deletion in a versioned bucket) is a version a client can see and ask for,
    /// not a tombstone: it stays.
    pub fn written_before((bucket, key, entry): KeyedEntry, before_ts: u64) -> Option<Tombstone> {
        match entry {
            ObjectEntry::Deleted { ts, blob, version: version @ (Version::Unversioned | Version::Removed) }
                if ts < before_ts =>
            {
                Some(Tombstone { bucket, key, ts, blob, removal: version == Version::Removed })
            }
            _ => None,
        }
    }
}

/// A range of blob ids, `from` included, `to` excluded (`None`: unbounded), so that a job
/// can hold the blobs of one slice of the id space at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSlice {
    /// The first id of the slice (at or after it).
    pub from: Option<String>,
    /// Where the next slice starts.
    pub to: Option<String>,
}

impl IdSlice {
    /// The id space cut into `count` slices of equal width for ids that are random hex (as
    /// the gateway makes them); any other id still falls in exactly one slice.
    pub fn split(count: u32) -> Vec<IdSlice> {
        let count = u64::from(count.max(1));
        // Bounds are 8 hex digits: an id of 32 compares past the bound it starts with.
        let bound = |i: u64| (i > 0 && i < count).then(|| format!("{:08x}", (i << 32) / count));
        (0..count).map(|i| IdSlice { from: bound(i), to: bound(i + 1) }).collect()
    }

    /// Whether `id` is in the slice.
    pub fn contains(&self, id: &str) -> bool {
        self.from.as_deref().is_none_or(|from| id >= from) && self.to.as_deref().is_none_or(|to| id < to)
    }

    /// Whether every id after `id` is past the slice.
    pub fn ends_before(&self, id: &str) -> bool {
        self.to.as_deref().is_some_and(|to| id >= to)
    }
}

/// A set of blob copies (id, volume id, subvolume), compact: an id as the gateway makes them
/// (32 lowercase hex digits) is held as 16 bytes, under its volume, so a GC slice of 250,000
/// copies takes a few MiB and no allocation per copy. Any other id is held as given.
#[derive(Debug, Default)]
pub struct ReferencedCopies {
    by_volume: HashMap<String, HashSet<(u128, u32)>>,
    other: HashSet<(String, String, u32)>,
}

impl ReferencedCopies {
    fn insert(&mut self, id: &str, volume: &str, subvolume: u32) {
        match compact_id(id) {
            Some(id) => match self.by_volume.get_mut(volume) {
                Some(copies) => drop(copies.insert((id, subvolume))),
                None => drop(self.by_volume.insert(volume.to_string(), HashSet::from([(id, subvolume)]))),
            },
            None => drop(self.other.insert((id.to_string(), volume.to_string(), subvolume))),
        }
    }

    /// Whether the copy of `id` on `volume`'s `subvolume` is in the set.
    pub fn contains(&self, id: &str, volume: &str, subvolume: u32) -> bool {
        match compact_id(id) {
            Some(id) => self.by_volume.get(volume).is_some_and(|copies| copies.contains(&(id, subvolume))),
            None => self.other.contains(&(id.to_string(), volume.to_string(), subvolume)),
        }
    }

    /// How many copies.
    pub fn len(&self) -> usize {
        self.by_volume.values().map(HashSet::len).sum::<usize>() + self.other.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `id` as a number when it is 32 lowercase hex digits: one number per such id and none for
/// any other, so no two ids meet.
fn compact_id(id: &str) -> Option<u128> {
    let canonical = id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    canonical.then(|| u128::from_str_radix(id, 16).ok()).flatten()
}

/// A page-by-page walk over the GC queue's due entries, oldest first.
pub struct DueBlobs<'a>(Pages<'a>);

impl DueBlobs<'_> {
    /// The next page of due entries, or `None` once the walk is over.
    pub async fn next_page(&mut self) -> Result<Option<Vec<QueuedBlob>>> {
        let Some(rows) = self.0.next_page().await? else { return Ok(None) };
        let blobs = rows.into_iter().map(|(queue_key, value)| Ok(QueuedBlob { queue_key, entry: decode(&value)? }));
        Ok(Some(blobs.collect::<Result<_>>()?))
    }
}

/// Where the `gc_keys` entries of a key start: `bucket \0 key \0`.
fn gc_keys_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = object_key(bucket, key);
    out.push(0);
    out
}

impl Index {
    /// Adds to `tx` a queue entry for `blob` of `bucket`/`key` holding `bytes` of object data,
    /// stamped `queued_ms`, and its (counted in [`Index::gc_queue_totals`])
    /// `gc_keys` twin, which lets a tombstone ask "is anything of my key still queued?" with
    /// one short scan.
    pub(super) fn queue_gc_at(
        &self,
        tx: &mut dyn Transaction,
        queued_ms: u64,
        bucket: &str,
        key: &str,
        blob: &BlobRef,
        bytes: u64,
    ) -> Result<()> {
        // A blob on its way out needs no more copies.
        tx.delete(Table::Repair, blob.id.as_bytes());
        let mut gc_key = queued_ms.to_be_bytes().to_vec();
        gc_key.extend_from_slice(blob.id.as_bytes());
        let mut by_key = gc_keys_prefix(bucket, key);
        by_key.extend_from_slice(&gc_key);
        let entry = GcEntry { queued_ms, bucket: bucket.to_string(), key: key.to_string(), blob: blob.clone() };
        write_in(tx, Table::Gc, &gc_key, &entry)?;
        // The twin carries the bytes (records are postcard, which has no optional trailing
        // fields: a new field in `GcEntry` would make queued entries unreadable).
        tx.put(Table::GcKeys, &by_key, &bytes.to_be_bytes());
        Ok(())
    }

    /// Whether any blob of `bucket`/`key` is queued, as `tx` sees it.
    pub(super) async fn gc_queued_for(tx: &mut dyn Transaction, bucket: &str, key: &str) -> Result<bool> {
        let prefix = gc_keys_prefix(bucket, key);
        let end = super::prefix_end(&prefix);
        Ok(!tx.scan(Table::GcKeys, &prefix, end.as_deref(), 1).await?.is_empty())
    }

    /// Whether any blob of `bucket`/`key` is queued.
    pub async fn gc_queued(&self, bucket: &str, key: &str) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        Self::gc_queued_for(tx.as_mut(), bucket, key).await
    }

    /// Queue entries queued at or before `cutoff_ms`, oldest first, a page at a time.
    pub fn gc_due(&self, cutoff_ms: u64) -> DueBlobs<'_> {
        // Queue keys start with the queue time, big-endian.
        let end = cutoff_ms.checked_add(1).map(u64::to_be_bytes);
        DueBlobs(self.pages(Table::Gc, b"", end.as_ref().map(|e| &e[..])))
    }

    /// Removes a queue entry (and its `gc_keys` twin) once its blob is deleted everywhere.
    pub async fn gc_remove(&self, queue_key: &[u8]) -> Result<()> {
        in_transaction!(self.engine, tx, {
            let Some(entry) = read_in::<GcEntry>(tx, Table::Gc, queue_key).await? else { return Ok(()) };
            tx.delete(Table::Gc, queue_key);
            Self::unqueue_gc_by_key(tx, queue_key, &entry);
            Ok(())
        })
    }

    /// Adds to `tx` the removal of a queue entry from the queue by key.
    pub(super) fn unqueue_gc_by_key(tx: &mut dyn Transaction, queue_key: &[u8], entry: &GcEntry) {
        let mut by_key = gc_keys_prefix(&entry.bucket, &entry.key);
        by_key.extend_from_slice(queue_key);
        tx.delete(Table::GcKeys, &by_key);
    }

    /// Every blob copy (id, volume id, subvolume) with its id in `slice` that a record still
    /// needs: object versions, current and noncurrent (with parts, manifests and tags blobs),
    /// tombstones and delete markers, bucket blobs
    /// (of buckets and of deleted buckets' entries), parts of uploads in progress, and queued
    /// blobs (they go by the queue, after their grace period, never as orphans). A copy of a
    /// live blob at a place no record names (left by an interrupted rebalance) is not needed.
    pub async fn referenced_copies(&self, slice: &IdSlice) -> Result<ReferencedCopies> {
        let mut copies = ReferencedCopies::default();
        self.for_each_blob(|blob| {
            if slice.contains(&blob.id) {
                for replica in &blob.replicas {
                    copies.insert(&blob.id, &replica.volume, replica.subvolume);
                }
            }
            false
        })
        .await?;
        Ok(copies)
    }

    /// How many blob copies records name (as [`Index::referenced_copies`] counts them, with
    /// repeats), in one walk holding a page at a time.
    pub async fn referenced_copy_count(&self) -> Result<u64> {
        let mut count = 0u64;
        self.for_each_blob(|blob| {
            count += blob.replicas.len() as u64;
            false
        })
        .await?;
        Ok(count)
    }

    /// Calls `visit` on every blob a record names (as [`Index::referenced_copies`] counts them)
    /// until it returns true; whether it did. One page in memory at a time.
    async fn for_each_blob(&self, mut visit: impl FnMut(&BlobRef) -> bool) -> Result<bool> {
        let mut objects = self.object_pages(None);
        while let Some(page) = objects.next_page().await? {
            if page.iter().any(|(_, _, entry)| entry.blobs().into_iter().any(&mut visit)) {
                return Ok(true);
            }
        }
        // Noncurrent versions are as live as current ones.
        let mut versions = self.pages(Table::Versions, b"", None);
        while let Some(page) = versions.next_page().await? {
            for (_, value) in page {
                if decode::<ObjectEntry>(&value)?.blobs().into_iter().any(&mut visit) {
                    return Ok(true);
                }
            }
        }
        for (table, blob_of) in [
            (Table::Buckets, bucket_blob as fn(&[u8]) -> Result<Option<BlobRef>>),
            (Table::Parts, |value: &[u8]| Ok(Some(decode::<PartRecord>(value)?.blob))),
            (Table::Gc, |value: &[u8]| Ok(Some(decode::<GcEntry>(value)?.blob))),
        ] {
            let mut pages = self.pages(table, b"", None);
            while let Some(page) = pages.next_page().await? {
                for (_, value) in page {
                    if blob_of(&value)?.as_ref().is_some_and(&mut visit) {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Points blob `blob_id` of the key's entry that uses it, current or noncurrent (of the
    /// bucket's entry for the empty key), at `replicas`, if one still does (a newer write may
    /// have replaced it); whether one did.
    pub async fn move_blob(
        &self,
        bucket: &str,
        key: &str,
        blob_id: &str,
        replicas: &[super::records::Replica],
    ) -> Result<bool> {
        if key == super::buckets::BUCKET_KEY {
            return self.move_bucket_blob(bucket, blob_id, replicas).await;
        }
        in_transaction!(self.engine, tx, {
            let at = object_key(bucket, key);
            let current = read_in::<ObjectEntry>(tx, Table::Objects, &at).await?;
            let (table, at, mut entry) = match current.filter(|e| Which::of(e, blob_id).is_some()) {
                Some(entry) => (Table::Objects, at, entry),
                None => match Self::noncurrent_using(tx, bucket, key, blob_id).await? {
                    Some((at, entry)) => (Table::Versions, at, entry),
                    None => return Ok(false),
                },
            };
            let target = match &mut entry {
                ObjectEntry::Live(record) => {
                    if record.blob.id == blob_id {
                        Some(&mut record.blob)
                    } else if let Some(change) = record.changes_mut().find(|c| c.blob.id == blob_id) {
                        Some(&mut change.blob)
                    } else {
                        record.parts.iter_mut().map(|p| &mut p.blob).find(|b| b.id == blob_id)
                    }
                }
                ObjectEntry::Deleted { blob, .. } => Some(blob).filter(|b| b.id == blob_id),
            };
            let Some(blob) = target else { return Ok(false) };
            blob.replicas = replicas.to_vec();
            // The new copies were claimed while rebalance made them (see `consume_claim`).
            self.consume_claim(tx, blob_id).await?;
            tx.put(table, &at, &encode(&entry)?);
            Ok(true)
        })
    }

    /// Whether any record or queued blob still has a replica on volume `volume_id`.
    pub async fn volume_in_use(&self, volume_id: &str) -> Result<bool> {
        self.for_each_blob(|blob| blob.replicas.iter().any(|r| r.volume == volume_id)).await
    }

    /// Tombstones and removal records written before `before_ts` (all at once: for tests).
    #[cfg(test)]
    pub(crate) async fn tombstones_before(&self, before_ts: u64) -> Result<Vec<Tombstone>> {
        let mut out = Vec::new();
        for mut pages in [self.object_pages(None), self.version_pages()] {
            while let Some(page) = pages.next_page().await? {
                out.extend(page.into_iter().filter_map(|entry| Tombstone::written_before(entry, before_ts)));
            }
        }
        Ok(out)
    }

    /// The due queue entries (all at once: for tests).
    #[cfg(test)]
    pub(crate) async fn gc_due_all(&self, cutoff_ms: u64) -> Result<Vec<QueuedBlob>> {
        let (mut pages, mut out) = (self.gc_due(cutoff_ms), Vec::new());
        while let Some(page) = pages.next_page().await? {
            out.extend(page);
        }
        Ok(out)
    }

    /// Drops a tombstone from the index if it is still the key's entry (a newer write may
    /// have replaced it meanwhile) and no blob of its key is queued for GC; whether it was
    /// dropped. A queued blob may be a version the tombstone deleted, and until that blob is
    /// gone from every volume the tombstone blob is what keeps a rebuild from resurrecting
    /// it. Checked in one transaction with the drop, because every queue entry is written in
    /// the transaction that makes its blob lose.
    pub async fn drop_tombstone(&self, tombstone: &Tombstone) -> Result<bool> {
        in_transaction!(self.engine, tx, {
            if Self::gc_queued_for(tx, &tombstone.bucket, &tombstone.key).await? {
                return Ok(false);
            }
            let (table, at, kind) = match tombstone.removal {
                false => (Table::Objects, object_key(&tombstone.bucket, &tombstone.key), Version::Unversioned),
                true => {
                    (Table::Versions, version_key(&tombstone.bucket, &tombstone.key, tombstone.ts), Version::Removed)
                }
            };
            match read_in::<ObjectEntry>(tx, table, &at).await? {
                Some(ObjectEntry::Deleted { ts, version, .. }) if ts == tombstone.ts && version == kind => {
                    tx.delete(table, &at);
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }
}

/// The blob a `buckets` row names, if any.
fn bucket_blob(value: &[u8]) -> Result<Option<BlobRef>> {
    Ok(decode::<BucketEntry>(value)?.blob().cloned())
}

#[cfg(test)]
mod tests {
    /// Slices cover the id space once: every id in exactly one, in order, and what the
    /// slices' referenced copies add up to is the whole.
    #[tokio::test]
    async fn id_slices_partition_the_referenced_copies() {
        for count in [1, 2, 3, 7, 16] {
            let slices = IdSlice::split(count);
            assert_eq!(slices.len(), count as usize);
            for id in [
                "",
                "0",
                "00000000",
                "0000000000000000",
                "7fffffffffff",
                "80000000aa",
                "ffffffffffffffff",
                "seed0001",
                "zz",
            ] {
                assert_eq!(slices.iter().filter(|s| s.contains(id)).count(), 1, "{id} in {count} slices");
            }
            for pair in slices.windows(2) {
                assert_eq!(pair[0].to, pair[1].from);
                assert!(pair[0].ends_before(pair[1].from.as_deref().unwrap_or_default()));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.test_create_bucket("b").await.unwrap();
        for i in 0..200u32 {
            let id = format!("{:032x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            let entry = ObjectEntry::Deleted {
                ts: 10,
                blob: BlobRef { id, replicas: vec![Replica { volume: "v".into(), subvolume: 0 }] },
                version: Default::default(),
            };
            index.commit_object("b", &format!("k{i}"), &entry, None).await.unwrap();
        }
        let whole = index.referenced_copies(&IdSlice::default()).await.unwrap();
        assert_eq!(whole.len(), 200);
        assert_eq!(index.referenced_copy_count().await.unwrap(), 200);
        let parts: Vec<ReferencedCopies> = {
            let mut parts = Vec::new();
            for slice in IdSlice::split(5) {
                parts.push(index.referenced_copies(&slice).await.unwrap());
            }
            parts
        };
        for part in &parts {
            assert!(part.len() < 80, "slices of random ids are about even: {}", part.len());
        }
        assert_eq!(parts.iter().map(ReferencedCopies::len).sum::<usize>(), 200);
        for i in 0..200u32 {
            let id = format!("{:032x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            assert!(whole.contains(&id, "v", 0) && !whole.contains(&id, "v", 1) && !whole.contains(&id, "w", 0));
            assert_eq!(parts.iter().filter(|part| part.contains(&id, "v", 0)).count(), 1, "{id}");
        }
    }

    #[test]
    fn referenced_copies_hold_hex_ids_compactly_and_others_as_given() {
        let mut copies = ReferencedCopies::default();
        let hex = "0123456789abcdef0123456789abcdef";
        copies.insert(hex, "v", 1);
        copies.insert(&hex.to_uppercase(), "v", 1);
        copies.insert("seed0001", "v", 0);
        assert_eq!(copies.len(), 3);
        assert!(copies.contains(hex, "v", 1) && copies.contains(&hex.to_uppercase(), "v", 1));
        assert!(!copies.contains(hex, "v", 0) && !copies.contains(hex, "w", 1));
        assert!(copies.contains("seed0001", "v", 0) && !copies.contains("seed0002", "v", 0));
        // Distinct strings stay distinct copies: the upper-case id is not the lower-case one.
        let mut upper_only = ReferencedCopies::default();
        upper_only.insert(&hex.to_uppercase(), "v", 1);
        assert!(!upper_only.contains(hex, "v", 1));
    }

    use super::super::records::*;
    use super::*;

    fn live(ts: u64, id: &str) -> ObjectEntry {
        super::super::tests::record(ts, id)
    }

    fn deleted(ts: u64, id: &str) -> ObjectEntry {
        ObjectEntry::Deleted { ts, blob: BlobRef { id: id.into(), replicas: vec![] }, version: Default::default() }
    }

    /// The version a tombstone deleted may still be on a volume (its delete failed); while it
    /// is queued, the tombstone must stay, or a rebuild brings the version back.
    #[tokio::test]
    async fn a_tombstone_stays_while_a_blob_of_its_key_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.test_create_bucket("b").await.unwrap();
        index.commit_object("b", "k", &live(1, "old"), None).await.unwrap();
        index.commit_object("b", "k", &deleted(2, "tomb"), None).await.unwrap();
        // Another key whose name extends this one, with a queued blob of its own.
        index.commit_object("b", "k2", &live(3, "k2-old"), None).await.unwrap();
        index.commit_object("b", "k2", &live(4, "k2-new"), None).await.unwrap();

        let tombstones = index.tombstones_before(u64::MAX).await.unwrap();
        assert_eq!(tombstones.len(), 1);
        assert!(!index.drop_tombstone(&tombstones[0]).await.unwrap(), "the old version is still queued");
        assert!(index.object_entry("b", "k").await.unwrap().is_some());

        // GC deleted the other key's blob: still blocked by this key's own.
        let due = index.gc_due_all(u64::MAX).await.unwrap();
        let of = |id: &str| due.iter().find(|q| q.entry.blob.id == id).unwrap().queue_key.clone();
        index.gc_remove(&of("k2-old")).await.unwrap();
        assert!(!index.drop_tombstone(&tombstones[0]).await.unwrap());

        // Once the old version's blob is gone everywhere, the tombstone may go.
        index.gc_remove(&of("old")).await.unwrap();
        assert!(index.drop_tombstone(&tombstones[0]).await.unwrap());
        assert!(index.object_entry("b", "k").await.unwrap().is_none());
        assert!(index.gc_due_all(u64::MAX).await.unwrap().is_empty());
    }

    /// DeleteBucket keeps the bucket's tombstones: they still order late writes and guard
    /// against resurrection, and a bucket created again under the name works as new.
    #[tokio::test]
    async fn a_deleted_bucket_keeps_its_tombstones_until_gc() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.test_create_bucket("b").await.unwrap();
        index.commit_object("b", "k", &live(10, "v1"), None).await.unwrap();
        index.commit_object("b", "k", &deleted(20, "tomb"), None).await.unwrap();
        index.test_delete_bucket("b").await.unwrap();
        assert!(index.bucket("b").await.unwrap().is_none());
        let tombstone = index.object_entry("b", "k").await.unwrap().unwrap();
        assert!(matches!(&tombstone, ObjectEntry::Deleted { blob, .. } if blob.id == "tomb"), "{tombstone:?}");

        index.test_create_bucket("b").await.unwrap();
        assert!(index.list_objects("b", "", None, None, 10).await.unwrap().items.is_empty());
        assert!(index.object("b", "k").await.unwrap().is_none());
        // A write that started before the delete but completes now lands in the new bucket,
        // ordered after the tombstone; a newer one replaces it, and the bucket can go again
        // once it is empty.
        index.commit_object("b", "k", &live(15, "late"), None).await.unwrap();
        assert_eq!(index.object("b", "k").await.unwrap().unwrap().blob.id, "late");
        index.commit_object("b", "k", &live(30, "v2"), None).await.unwrap();
        assert_eq!(index.object("b", "k").await.unwrap().unwrap().blob.id, "v2");
        assert!(matches!(index.test_delete_bucket("b").await, Err(crate::error::Error::BucketNotEmpty)));
        index.commit_object("b", "k", &deleted(40, "tomb2"), None).await.unwrap();
        index.test_delete_bucket("b").await.unwrap();

        // GC drops the tombstone like any other once nothing of its key is queued.
        for queued in index.gc_due_all(u64::MAX).await.unwrap() {
            index.gc_remove(&queued.queue_key).await.unwrap();
        }
        let tombstones = index.tombstones_before(u64::MAX).await.unwrap();
        assert_eq!(tombstones.len(), 1);
        assert!(index.drop_tombstone(&tombstones[0]).await.unwrap());
        assert!(index.object_entry("b", "k").await.unwrap().is_none());
    }
}
