//! The object index: RocksDB with one column family per kind of record.
//!
//! | column family | key                          | value                    |
//! |---------------|------------------------------|--------------------------|
//! | `buckets`     | bucket name                  | [`BucketEntry`]          |
//! | `objects`     | bucket `\0` key              | [`ObjectEntry`]          |
//! | `uploads`     | bucket `\0` key `\0` upload  | [`UploadRecord`]         |
//! | `parts`       | upload id `\0` part (BE u32) | [`PartRecord`]           |
//! | `keys`        | access key id                | [`KeyRecord`]            |
//! | `gc`          | queued ms (BE) + blob id     | [`GcEntry`]              |
//! | `gc_keys`     | bucket `\0` key `\0` gc key  | empty: the queue by key  |
//! | `completed`   | upload id                    | [`CompletedUpload`]      |
//! | `repair`      | blob id                      | [`RepairEntry`]          |
//! | `unlogged`    | blob id                      | [`BlobRef`] committed, not yet in the volumes' commit logs |
//! | `meta`        | name                         | clock, cluster id, membership and its epoch |
//!
//! Every write that acknowledges a client request is one synced `WriteBatch`.

mod buckets;
mod forget;
mod gc;
mod keys;
mod multipart;
pub mod records;
mod repair;
mod restore;
mod tags;
mod unlogged;

pub use self::buckets::{BUCKET_KEY, BucketTombstone};
pub use self::forget::Forgotten;
pub use self::gc::{QueuedBlob, Tombstone};
pub use self::multipart::{UploadItem, UploadPage};

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use self::records::{BlobRef, GcEntry, Membership, ObjectEntry, ObjectRecord, decode, encode};
#[cfg(doc)]
use self::records::{BucketEntry, CompletedUpload, KeyRecord, PartRecord, RepairEntry, UploadRecord};
use crate::error::{Error, Result};

const CF_BUCKETS: &str = "buckets";
const CF_OBJECTS: &str = "objects";
const CF_UPLOADS: &str = "uploads";
const CF_PARTS: &str = "parts";
const CF_KEYS: &str = "keys";
const CF_GC: &str = "gc";
const CF_GC_KEYS: &str = "gc_keys";
const CF_COMPLETED: &str = "completed";
const CF_META: &str = "meta";
const CF_REPAIR: &str = "repair";
const CF_UNLOGGED: &str = "unlogged";
const ALL_CFS: [&str; 11] = [
    CF_BUCKETS,
    CF_OBJECTS,
    CF_UPLOADS,
    CF_PARTS,
    CF_KEYS,
    CF_GC,
    CF_GC_KEYS,
    CF_COMPLETED,
    CF_META,
    CF_REPAIR,
    CF_UNLOGGED,
];
const META_CLOCK: &[u8] = b"clock";
const META_MEMBERSHIP: &[u8] = b"membership";
/// The cluster's id: random, made when the index is created, never changed (a rebuild
/// restores it from the volumes).
const META_CLUSTER_ID: &[u8] = b"cluster_id";
/// Grows with every change of the membership; written in the same batch as it.
const META_EPOCH: &[u8] = b"membership_epoch";
/// Sorts after every byte of valid UTF-8, so `prefix + [0xFF]` is past every key under `prefix`.
const PAST_UTF8: u8 = 0xFF;

/// The condition of a conditional write, checked atomically with the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: only if the key has no live object.
    IfNoneMatch,
    /// `If-Match: *`: only if the key has a live object.
    IfExists,
    /// `If-Match: "etag"`: only if the live object has this ETag.
    IfMatch(String),
}

/// How a commit of an object write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The entry is now the key's current version.
    Current,
    /// A newer write had already committed; this one went straight to the GC queue.
    Superseded,
}

/// One item of a listing page.
#[derive(Debug, Clone, PartialEq)]
pub enum ListItem {
    /// An object and its record.
    Object(String, Box<ObjectRecord>),
    /// A common prefix (everything up to and including the delimiter).
    Prefix(String),
}

/// A page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    /// Objects and common prefixes, in byte order.
    pub items: Vec<ListItem>,
    /// Whether more items follow the last one.
    pub truncated: bool,
}

/// The index. Cheap to share behind an `Arc`.
pub struct Index {
    db: DB,
    clock: AtomicU64,
    /// Serialises read-modify-write commits so "newest timestamp wins" holds under races.
    commit_lock: Mutex<()>,
    /// Copies every blob should have; fewer queue a repair (0: never).
    replica_target: AtomicUsize,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + 1 + key.len());
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

fn condition_holds(condition: &WriteCondition, current: Option<&ObjectRecord>) -> Result<()> {
    match (condition, current) {
        (WriteCondition::IfNoneMatch, None) | (WriteCondition::IfExists, Some(_)) => Ok(()),
        (WriteCondition::IfMatch(etag), Some(record)) if *etag == record.etag => Ok(()),
        (WriteCondition::IfMatch(_) | WriteCondition::IfExists, None) => Err(Error::NoSuchKey),
        _ => Err(Error::PreconditionFailed),
    }
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

impl Index {
    /// Opens or creates the index at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, cfs)?;
        let index =
            Self { db, clock: AtomicU64::new(0), commit_lock: Mutex::new(()), replica_target: AtomicUsize::new(0) };
        let stored = match index.db.get_cf(index.cf(CF_META)?, META_CLOCK)? {
            Some(bytes) => decode::<u64>(&bytes)?,
            None => 0,
        };
        index.clock.store(stored, Ordering::SeqCst);
        if index.db.get_cf(index.cf(CF_META)?, META_CLUSTER_ID)?.is_none() {
            let id = hex::encode(rand::random::<[u8; 16]>());
            index.db.put_cf_opt(index.cf(CF_META)?, META_CLUSTER_ID, encode(&id)?, &synced())?;
        }
        Ok(index)
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| Error::Index(format!("missing column family {name}")))
    }

    /// A fresh write timestamp: wall-clock microseconds, but strictly greater than any handed
    /// out before (also across restarts, since commits persist the clock).
    pub fn next_ts(&self) -> u64 {
        let now = now_us();
        let previous = self.clock.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1)));
        // fetch_update with a closure that always returns Some cannot fail.
        let last = previous.unwrap_or_else(|last| last);
        now.max(last + 1)
    }

    // ---- objects ----

    /// The entry (live or deleted) for a key.
    pub fn object_entry(&self, bucket: &str, key: &str) -> Result<Option<ObjectEntry>> {
        self.db.get_cf(self.cf(CF_OBJECTS)?, object_key(bucket, key))?.map(|b| decode(&b)).transpose()
    }

    /// The live record for a key.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        Ok(self.object_entry(bucket, key)?.and_then(ObjectEntry::live))
    }

    /// Makes `entry` the key's current version unless a newer one already is; whatever loses
    /// (the old version or the new entry) is queued for GC. With a `condition`, a failed
    /// check queues the new entry's blobs and fails with `PreconditionFailed` (or `NoSuchKey`
    /// for `If-Match` on a missing key). One synced batch.
    pub fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        entry: &ObjectEntry,
        condition: Option<&WriteCondition>,
    ) -> Result<Committed> {
        let _guard = self.lock()?;
        let mut batch = WriteBatch::default();
        let staged = self.stage_object(&mut batch, bucket, key, entry, condition);
        if let Err(Error::PreconditionFailed | Error::NoSuchKey) = staged {
            for blob in entry.blobs() {
                self.queue_gc(&mut batch, bucket, key, blob)?;
            }
            self.db.write_opt(batch, &synced())?;
        } else if staged.is_ok() {
            self.db.write_opt(batch, &synced())?;
        }
        staged
    }

    /// Fails unless `condition` holds for the key's current version (a quick check before
    /// work; the commit checks again atomically).
    pub fn check_condition(&self, bucket: &str, key: &str, condition: &WriteCondition) -> Result<()> {
        let current = self.object_entry(bucket, key)?.and_then(ObjectEntry::live);
        condition_holds(condition, current.as_ref())
    }

    /// Adds to `batch` what commits `entry` as the key's version: the caller holds the commit
    /// lock and writes the batch.
    fn stage_object(
        &self,
        batch: &mut WriteBatch,
        bucket: &str,
        key: &str,
        entry: &ObjectEntry,
        condition: Option<&WriteCondition>,
    ) -> Result<Committed> {
        if self.bucket(bucket)?.is_none() {
            return Err(Error::NoSuchBucket);
        }
        let current = self.object_entry(bucket, key)?;
        if let Some(condition) = condition {
            let live = current.clone().and_then(ObjectEntry::live);
            condition_holds(condition, live.as_ref())?;
        }
        let outcome = match current {
            Some(current) if current.ts() > entry.ts() => {
                for blob in entry.blobs() {
                    self.queue_gc(batch, bucket, key, blob)?;
                }
                Committed::Superseded
            }
            current => {
                for blob in current.as_ref().map(ObjectEntry::blobs).unwrap_or_default() {
                    self.queue_gc(batch, bucket, key, blob)?;
                }
                self.queue_repairs(batch, bucket, key, None, entry.blobs())?;
                self.stage_unlogged(batch, entry.main_blob())?;
                batch.put_cf(self.cf(CF_OBJECTS)?, object_key(bucket, key), encode(entry)?);
                Committed::Current
            }
        };
        batch.put_cf(self.cf(CF_META)?, META_CLOCK, encode(&self.clock.load(Ordering::SeqCst))?);
        Ok(outcome)
    }

    fn queue_gc(&self, batch: &mut WriteBatch, bucket: &str, key: &str, blob: &BlobRef) -> Result<()> {
        self.queue_gc_at(batch, now_ms(), bucket, key, blob)
    }

    /// The GC queue, oldest first.
    pub fn gc_queue(&self) -> Result<Vec<GcEntry>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_GC)?, IteratorMode::Start) {
            let (_, value) = item?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// Lists live objects of `bucket` under `prefix` in byte order, strictly after `after`
    /// (a key or a common prefix returned earlier), rolling keys that contain `delimiter`
    /// past the prefix into common prefixes. Each common prefix costs one seek, never a scan
    /// of the keys below it.
    pub fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> Result<ListPage> {
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let scope = object_key(bucket, prefix);
        let base = bucket.len() + 1;
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_OBJECTS)?);
        let mut skip_exact: Option<Vec<u8>> = None;
        match after.filter(|a| *a >= prefix) {
            Some(after) => {
                let mut at = object_key(bucket, after);
                let is_common_prefix = delimiter.is_some_and(|d| {
                    after.starts_with(prefix)
                        && after[prefix.len()..].find(d).is_some_and(|pos| pos + d.len() == after.len() - prefix.len())
                });
                if is_common_prefix {
                    at.push(PAST_UTF8);
                } else {
                    skip_exact = Some(at.clone());
                }
                iter.seek(&at);
            }
            None => iter.seek(&scope),
        }
        let mut page = ListPage::default();
        while iter.valid() {
            let Some(raw_key) = iter.key() else { break };
            if !raw_key.starts_with(&scope) {
                break;
            }
            if skip_exact.as_deref() == Some(raw_key) {
                iter.next();
                continue;
            }
            let key = String::from_utf8_lossy(&raw_key[base..]).into_owned();
            if let Some(d) = delimiter
                && let Some(pos) = key[prefix.len()..].find(d)
            {
                if page.items.len() == max {
                    page.truncated = true;
                    break;
                }
                let common = key[..prefix.len() + pos + d.len()].to_string();
                let mut next = object_key(bucket, &common);
                next.push(PAST_UTF8);
                page.items.push(ListItem::Prefix(common));
                iter.seek(&next);
                continue;
            }
            let entry: ObjectEntry = decode(iter.value().unwrap_or_default())?;
            if let ObjectEntry::Live(record) = entry {
                if page.items.len() == max {
                    page.truncated = true;
                    break;
                }
                page.items.push(ListItem::Object(key, record));
            }
            iter.next();
        }
        iter.status()?;
        Ok(page)
    }

    /// Number of live objects and their bytes (a full scan; for status reports).
    pub fn object_totals(&self) -> Result<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for item in self.db.iterator_cf(self.cf(CF_OBJECTS)?, IteratorMode::From(&[], Direction::Forward)) {
            let (_, value) = item?;
            if let ObjectEntry::Live(record) = decode(&value)? {
                count += 1;
                bytes += record.size;
            }
        }
        Ok((count, bytes))
    }

    // ---- cluster metadata ----

    /// The stored membership.
    pub fn membership(&self) -> Result<Membership> {
        Ok(self.db.get_cf(self.cf(CF_META)?, META_MEMBERSHIP)?.map(|b| decode(&b)).transpose()?.unwrap_or_default())
    }

    /// Replaces the stored membership; a change moves the epoch on. Returns the epoch.
    pub fn set_membership(&self, membership: &Membership) -> Result<u64> {
        let epoch = self.membership_epoch()?;
        if *membership == self.membership()? {
            return Ok(epoch);
        }
        self.store_membership(membership, epoch + 1)?;
        Ok(epoch + 1)
    }

    /// Moves the epoch past `seen` (an epoch found on a volume), so that the membership of
    /// this index is newer than anything the volumes hold. Returns the epoch.
    pub fn advance_epoch_past(&self, seen: u64) -> Result<u64> {
        let epoch = self.membership_epoch()?;
        if epoch > seen {
            return Ok(epoch);
        }
        self.store_membership(&self.membership()?, seen + 1)?;
        Ok(seen + 1)
    }

    fn store_membership(&self, membership: &Membership, epoch: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, META_MEMBERSHIP, encode(membership)?);
        batch.put_cf(self.cf(CF_META)?, META_EPOCH, encode(&epoch)?);
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// The membership epoch: 0 before the first membership is stored.
    pub fn membership_epoch(&self) -> Result<u64> {
        Ok(self.db.get_cf(self.cf(CF_META)?, META_EPOCH)?.map(|b| decode(&b)).transpose()?.unwrap_or(0))
    }

    /// The cluster's id (see [`META_CLUSTER_ID`]).
    pub fn cluster_id(&self) -> Result<String> {
        let bytes = self.db.get_cf(self.cf(CF_META)?, META_CLUSTER_ID)?;
        decode(&bytes.ok_or_else(|| Error::Index("no cluster id".into()))?)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.commit_lock.lock().map_err(|_| Error::Index("commit lock poisoned".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::records::*;
    use super::*;

    /// The queued blob ids, sorted (the queue's own order depends on the millisecond).
    pub(super) fn queued(index: &Index) -> Vec<String> {
        let mut ids: Vec<String> = index.gc_queue().unwrap().into_iter().map(|g| g.blob.id).collect();
        ids.sort();
        ids
    }

    /// A live entry written at `ts` with blob `id`, for tests across the index.
    pub(super) fn record(ts: u64, id: &str) -> ObjectEntry {
        ObjectEntry::Live(Box::new(ObjectRecord {
            ts,
            modified_ms: ts,
            size: 1,
            etag: "e".into(),
            sha256: "s".into(),
            headers: SystemHeaders::default(),
            user_meta: vec![],
            tags: vec![],
            checksum: None,
            parts: vec![],
            blob: BlobRef { id: id.into(), replicas: vec![] },
            tags_blob: None,
        }))
    }

    fn keys(page: &ListPage) -> Vec<String> {
        page.items
            .iter()
            .map(|item| match item {
                ListItem::Object(key, _) => key.clone(),
                ListItem::Prefix(prefix) => format!("P:{prefix}"),
            })
            .collect()
    }

    fn index_with(keys: &[&str]) -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.test_create_bucket("b").unwrap();
        index.test_create_bucket("bb").unwrap();
        for (i, key) in keys.iter().enumerate() {
            index.commit_object("b", key, &record(i as u64 + 1, key), None).unwrap();
        }
        index.commit_object("bb", "other", &record(1, "x"), None).unwrap();
        (dir, index)
    }

    #[test]
    fn newest_timestamp_wins_and_losers_are_queued() {
        let (_dir, index) = index_with(&[]);
        assert_eq!(index.commit_object("b", "k", &record(10, "new"), None).unwrap(), Committed::Current);
        assert_eq!(index.commit_object("b", "k", &record(5, "late"), None).unwrap(), Committed::Superseded);
        assert_eq!(index.object("b", "k").unwrap().unwrap().blob.id, "new");
        assert_eq!(index.commit_object("b", "k", &record(11, "newer"), None).unwrap(), Committed::Current);
        let queued: Vec<String> = index.gc_queue().unwrap().into_iter().map(|g| g.blob.id).collect();
        assert_eq!(queued.len(), 2);
        assert!(queued.contains(&"late".to_string()) && queued.contains(&"new".to_string()));
        let deleted = ObjectEntry::Deleted { ts: 12, blob: BlobRef { id: "tomb".into(), replicas: vec![] } };
        index.commit_object("b", "k", &deleted, None).unwrap();
        assert!(index.object("b", "k").unwrap().is_none());
        assert!(matches!(index.commit_object("nope", "k", &record(1, "x"), None), Err(Error::NoSuchBucket)));
    }

    #[test]
    fn clock_is_monotonic_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let far_future = now_us() + 10_000_000_000;
        {
            let index = Index::open(dir.path()).unwrap();
            index.test_create_bucket("b").unwrap();
            index.clock.store(far_future, Ordering::SeqCst);
            index.commit_object("b", "k", &record(far_future, "x"), None).unwrap();
        }
        let index = Index::open(dir.path()).unwrap();
        let a = index.next_ts();
        let b = index.next_ts();
        assert!(a > far_future && b > a);
    }

    #[test]
    fn the_cluster_id_stays_and_the_epoch_moves_on_with_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let id = index.cluster_id().unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(index.membership_epoch().unwrap(), 0);
        let mut membership = Membership::default();
        membership.volumes.push(VolumeRecord {
            id: "v".into(),
            url: "u".into(),
            weight: 1.0,
            zone: None,
            subvolumes: 1,
        });
        assert_eq!(index.set_membership(&membership).unwrap(), 1);
        assert_eq!(index.set_membership(&membership).unwrap(), 1, "no change, no new epoch");
        membership.volumes[0].zone = Some("z".into());
        assert_eq!(index.set_membership(&membership).unwrap(), 2);
        assert_eq!(index.advance_epoch_past(1).unwrap(), 2);
        assert_eq!(index.advance_epoch_past(6).unwrap(), 7);
        drop(index);
        let index = Index::open(dir.path()).unwrap();
        assert_eq!((index.cluster_id().unwrap(), index.membership_epoch().unwrap()), (id, 7));
        assert_eq!(index.membership().unwrap(), membership);
        index.restore_membership("other", &Membership::default(), 3).unwrap();
        assert_eq!((index.cluster_id().unwrap().as_str(), index.membership_epoch().unwrap()), ("other", 3));
    }

    #[test]
    fn lists_in_byte_order_with_prefix_and_delimiter() {
        let (_dir, index) = index_with(&["a/1", "a/2", "a/b/3", "b", "c/1", "ca", "z"]);
        let all = index.list_objects("b", "", None, None, 100).unwrap();
        assert_eq!(keys(&all), ["a/1", "a/2", "a/b/3", "b", "c/1", "ca", "z"]);
        let top = index.list_objects("b", "", Some("/"), None, 100).unwrap();
        assert_eq!(keys(&top), ["P:a/", "b", "P:c/", "ca", "z"]);
        let inner = index.list_objects("b", "a/", Some("/"), None, 100).unwrap();
        assert_eq!(keys(&inner), ["a/1", "a/2", "P:a/b/"]);
        let prefixed = index.list_objects("b", "c", None, None, 100).unwrap();
        assert_eq!(keys(&prefixed), ["c/1", "ca"]);
    }

    #[test]
    fn pages_resume_after_keys_and_common_prefixes() {
        let (_dir, index) = index_with(&["a/1", "a/2", "b", "c/1", "c/2", "d"]);
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = index.list_objects("b", "", Some("/"), after.as_deref(), 1).unwrap();
            assert!(page.items.len() <= 1);
            seen.extend(keys(&page));
            match page.items.last() {
                Some(ListItem::Object(key, _)) if page.truncated => after = Some(key.clone()),
                Some(ListItem::Prefix(prefix)) if page.truncated => after = Some(prefix.clone()),
                _ => break,
            }
        }
        assert_eq!(seen, ["P:a/", "b", "P:c/", "d"]);
        let page = index.list_objects("b", "", None, Some("a/2"), 100).unwrap();
        assert_eq!(keys(&page), ["b", "c/1", "c/2", "d"]);
    }

    #[test]
    fn deleted_keys_are_hidden_and_empty_bucket_can_go() {
        let (_dir, index) = index_with(&["k"]);
        assert!(matches!(index.test_delete_bucket("b"), Err(Error::BucketNotEmpty)));
        let deleted = ObjectEntry::Deleted { ts: 100, blob: BlobRef { id: "t".into(), replicas: vec![] } };
        index.commit_object("b", "k", &deleted, None).unwrap();
        assert!(index.list_objects("b", "", None, None, 10).unwrap().items.is_empty());
        index.test_delete_bucket("b").unwrap();
        assert!(index.bucket("b").unwrap().is_none());
        assert_eq!(keys(&index.list_objects("bb", "", None, None, 10).unwrap()), ["other"]);
    }

    #[test]
    fn a_prefix_with_many_keys_pages_without_rescanning() {
        let (_dir, index) = index_with(&[]);
        for i in 0..3000 {
            index.commit_object("b", &format!("big/{i:05}"), &record(i + 1, "x"), None).unwrap();
        }
        let mut after: Option<String> = None;
        let mut total = 0;
        loop {
            let page = index.list_objects("b", "big/", None, after.as_deref(), 1000).unwrap();
            total += page.items.len();
            if !page.truncated {
                break;
            }
            if let Some(ListItem::Object(key, _)) = page.items.last() {
                after = Some(key.clone());
            }
        }
        assert_eq!(total, 3000);
    }
}
