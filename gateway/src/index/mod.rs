//! The object index: the schema over an index engine (`crate::engine`), one table per kind of
//! record.
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
//! | `gateways`    | instance id                  | [`GatewayRecord`]: who serves the index, heartbeats |
//! | `in_flight`   | blob id `\0` claim id        | gateway id: blobs being written (shared index only) |
//! | `meta`        | name                         | clock, cluster id, membership and its epoch, `job/<kind>` [`JobRecord`]s |
//!
//! Every write that acknowledges a client request is one engine transaction, committed durably.

mod buckets;
mod forget;
mod gateways;
mod gc;
mod jobs;
mod keys;
mod lock;
mod multipart;
mod pages;
pub mod records;
mod repair;
mod restore;
mod tags;
mod unlogged;
mod versions;

pub use self::buckets::{BUCKET_KEY, BucketConfig, BucketTombstone, BucketUsage};
pub use self::forget::Forgotten;
pub use self::gateways::{GatewayRecord, claim_key, live_gateways};
pub use self::gc::{IdSlice, QueuedBlob, ReferencedCopies, Tombstone};
pub use self::jobs::{JobRecord, Lease as JobLease, RUNNING as JOB_RUNNING};
pub use self::multipart::{UploadItem, UploadPage};
pub use self::pages::{KeyedEntry, ObjectPages};
pub use self::restore::Restore;
pub use self::tags::VersionChange;
pub use self::unlogged::Unlogged;
pub use self::versions::{NULL_VERSION, NoncurrentPages, VersionItem, VersionPage, version_id};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use self::records::{BlobRef, CommitOrder, Membership, ObjectEntry, ObjectRecord, Versioning, decode, encode};
#[cfg(doc)]
use self::records::{BucketEntry, CompletedUpload, KeyRecord, PartRecord, RepairEntry, UploadRecord};
use crate::engine::rocks::RocksEngine;
use crate::engine::{Engine, Table, Transaction};
use crate::error::{Error, Result};
use crate::in_transaction;

const META_CLOCK: &[u8] = b"clock";
const META_MEMBERSHIP: &[u8] = b"membership";
/// The cluster's id: random, made when the index is created, never changed (a rebuild
/// restores it from the volumes).
const META_CLUSTER_ID: &[u8] = b"cluster_id";
/// Grows with every change of the membership; written in the same batch as it.
const META_EPOCH: &[u8] = b"membership_epoch";
/// Sorts after every byte of valid UTF-8, so `prefix + [0xFF]` is past every key under `prefix`.
const PAST_UTF8: u8 = 0xFF;
/// Rows read per scan of a whole table or range.
const SCAN_PAGE: usize = 1000;

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

/// How a commit of a tag change ended (object writes always become current: the last to
/// complete wins, see [`Index::stage_object`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The change is now the version's tag set.
    Current,
    /// A newer change had already committed; this one went straight to the GC queue.
    Superseded,
}

/// One item of a listing page.
#[derive(Debug, Clone, PartialEq)]
pub enum ListItem {
    /// An object and its record.
    Object(String, Box<ObjectRecord>),
    /// A key whose current version is a delete marker (only in listings of versions).
    Marker(String, ObjectEntry),
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

/// The index: the schema over an [`Engine`]. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Index {
    engine: Arc<dyn Engine>,
    clock: AtomicU64,
    /// Copies every blob should have; fewer queue a repair (0: never).
    replica_target: AtomicUsize,
    /// Unlogged marks waiting to be cleared in one commit.
    clears: unlogged::Clears,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Wall-clock microseconds, shifted by `CAIRN_TEST_CLOCK_OFFSET_MS` (a test knob: tests run
/// gateways whose clocks disagree, to show that write ordering does not depend on them).
fn now_us() -> u64 {
    static OFFSET_US: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let offset = *OFFSET_US.get_or_init(|| {
        std::env::var("CAIRN_TEST_CLOCK_OFFSET_MS").ok().and_then(|ms| ms.parse::<i64>().ok()).unwrap_or(0) * 1000
    });
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    now.saturating_add_signed(offset)
}

fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + 1 + key.len());
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The first key past every key that starts with `prefix` (`None`: no such key).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn condition_holds(condition: &WriteCondition, current: Option<&ObjectRecord>) -> Result<()> {
    match (condition, current) {
        (WriteCondition::IfNoneMatch, None) | (WriteCondition::IfExists, Some(_)) => Ok(()),
        (WriteCondition::IfMatch(etag), Some(record)) if *etag == record.etag => Ok(()),
        (WriteCondition::IfMatch(_) | WriteCondition::IfExists, None) => Err(Error::NoSuchKey),
        _ => Err(Error::PreconditionFailed),
    }
}

/// Reads and decodes a record inside a transaction.
async fn read_in<T: DeserializeOwned>(tx: &mut dyn Transaction, table: Table, key: &[u8]) -> Result<Option<T>> {
    tx.get(table, key).await?.map(|bytes| decode(&bytes)).transpose()
}

/// Encodes and writes a record inside a transaction.
fn write_in<T: serde::Serialize>(tx: &mut dyn Transaction, table: Table, key: &[u8], value: &T) -> Result<()> {
    tx.put(table, key, &encode(value)?);
    Ok(())
}

impl Index {
    /// Opens or creates the index at `path`, on the embedded engine.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::with_engine(Arc::new(RocksEngine::open(path)?)).await
    }

    /// The index over `engine`, made ready for use (cluster id created, clock restored).
    pub async fn with_engine(engine: Arc<dyn Engine>) -> Result<Self> {
        let index = Self {
            engine,
            clock: AtomicU64::new(0),
            replica_target: AtomicUsize::new(0),
            clears: unlogged::Clears::new(unlogged::MAX_CLEAR_BATCH, unlogged::MAX_CLEARS_WAITING),
        };
        let stored: u64 = index.read(Table::Meta, META_CLOCK).await?.unwrap_or(0);
        index.clock.store(stored, Ordering::SeqCst);
        in_transaction!(index.engine, tx, {
            if tx.get(Table::Meta, META_CLUSTER_ID).await?.is_none() {
                write_in(tx, Table::Meta, META_CLUSTER_ID, &hex::encode(rand::random::<[u8; 16]>()))?;
            }
            Ok(())
        })?;
        Ok(index)
    }

    /// The engine under the index.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Reads and decodes a record.
    async fn read<T: DeserializeOwned>(&self, table: Table, key: &[u8]) -> Result<Option<T>> {
        self.engine.get(table, key).await?.map(|bytes| decode(&bytes)).transpose()
    }

    /// A fresh write timestamp: wall-clock microseconds, but strictly greater than any handed
    /// out or seen before by this process. Object commits take theirs in the transaction, after
    /// the entry they replace (see [`Index::stage_object`]); bucket operations read the entry
    /// first ([`Index::bucket_write_ts`]).
    pub fn next_ts(&self) -> u64 {
        let now = now_us();
        let previous = self.clock.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1)));
        // fetch_update with a closure that always returns Some cannot fail.
        let last = previous.unwrap_or_else(|last| last);
        now.max(last + 1)
    }

    /// Moves the clock past `ts`, a timestamp read from the index (a hybrid logical clock:
    /// wall time, but never behind anything seen).
    fn observe(&self, ts: u64) {
        self.clock.fetch_max(ts, Ordering::SeqCst);
    }

    // ---- objects ----
    // ---- objects ----

    /// The entry (live or deleted) for a key. The clock moves past what it reads.
    pub async fn object_entry(&self, bucket: &str, key: &str) -> Result<Option<ObjectEntry>> {
        let entry: Option<ObjectEntry> = self.read(Table::Objects, &object_key(bucket, key)).await?;
        if let Some(entry) = &entry {
            self.observe(entry.newest_ts());
        }
        Ok(entry)
    }

    /// The live record for a key.
    pub async fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        Ok(self.object_entry(bucket, key).await?.and_then(ObjectEntry::live))
    }

    /// Makes `entry` the key's current version, ordered after the one it replaces (queued for
    /// GC), and returns its commit order (see [`Index::stage_object`]). With a `condition`, a
    /// failed check queues the new entry's blobs and fails with `PreconditionFailed` (or
    /// `NoSuchKey` for `If-Match` on a missing key). One transaction.
    pub async fn commit_object(
        &self,
        bucket: &str,
        key: &str,
        entry: &ObjectEntry,
        condition: Option<&WriteCondition>,
    ) -> Result<CommitOrder> {
        in_transaction!(self.engine, tx, {
            match self.stage_object(tx, bucket, key, entry, condition).await {
                Err(refusal @ (Error::PreconditionFailed | Error::NoSuchKey)) => {
                    for (blob, bytes) in entry.blobs_with_bytes() {
                        self.queue_gc(tx, bucket, key, blob, bytes)?;
                    }
                    Ok(Err(refusal))
                }
                staged => staged.map(Ok),
            }
        })?
    }

    /// Fails unless `condition` holds for the key's current version (a quick check before
    /// work; the commit checks again atomically).
    pub async fn check_condition(&self, bucket: &str, key: &str, condition: &WriteCondition) -> Result<()> {
        let current = self.object(bucket, key).await?;
        condition_holds(condition, current.as_ref())
    }

    /// Adds to `tx` what commits `entry` as the key's current version, and returns its
    /// commit order.
    ///
    /// The last write to *complete* wins, as on S3: the entry's timestamp becomes its commit
    /// order, taken now, in the transaction, and after the current entry's (so it holds
    /// across gateways whatever their clocks). The blob keeps the timestamp its write started
    /// with; the order goes into the volumes' commit logs with the blob's id, and a rebuild
    /// orders a key's versions by it.
    async fn stage_object(
        &self,
        tx: &mut dyn Transaction,
        bucket: &str,
        key: &str,
        entry: &ObjectEntry,
        condition: Option<&WriteCondition>,
    ) -> Result<CommitOrder> {
        let Some(bucket_record) = self.bucket_in(tx, bucket).await? else { return Err(Error::NoSuchBucket) };
        let current: Option<ObjectEntry> = read_in(tx, Table::Objects, &object_key(bucket, key)).await?;
        if let Some(condition) = condition {
            let live = current.clone().and_then(ObjectEntry::live);
            condition_holds(condition, live.as_ref())?;
        }
        let order = match bucket_record.versioning {
            // Nothing but the current entry: no noncurrent rows to look past.
            Versioning::Unversioned => self.next_ts().max(current.as_ref().map_or(0, |c| c.newest_ts() + 1)),
            _ => self.next_order(tx, bucket, key, current.as_ref()).await?,
        };
        let mut entry = entry.clone();
        entry.set_ts(order);
        let version = self.retire_current(tx, (bucket, key), bucket_record.versioning, current.as_ref()).await?;
        entry.set_version(version);
        let order = CommitOrder { order, version };
        self.consume_claim(tx, &entry.main_blob().id).await?;
        self.queue_repairs(tx, bucket, key, None, entry.blobs()).await?;
        self.stage_unlogged(tx, entry.main_blob(), order)?;
        write_in(tx, Table::Objects, &object_key(bucket, key), &entry)?;
        Ok(order)
    }

    fn queue_gc(&self, tx: &mut dyn Transaction, bucket: &str, key: &str, blob: &BlobRef, bytes: u64) -> Result<()> {
        self.queue_gc_at(tx, now_ms(), bucket, key, blob, bytes)
    }

    /// What the engine reports about itself (see [`Engine::stats`]).
    pub async fn engine_stats(&self) -> Result<Vec<crate::engine::EngineStat>> {
        self.engine.stats().await
    }

    /// Blobs in the GC queue and the object bytes they hold, a page at a time (from the
    /// queue's `gc_keys` twins, which carry the bytes; twins written before that count 0).
    pub async fn gc_queue_totals(&self) -> Result<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        let mut pages = self.pages(Table::GcKeys, b"", None);
        while let Some(page) = pages.next_page().await? {
            for (_, value) in &page {
                count += 1;
                bytes += <[u8; 8]>::try_from(value.as_slice()).map_or(0, u64::from_be_bytes);
            }
        }
        Ok((count, bytes))
    }

    /// The whole GC queue, oldest first (tests: jobs walk it a page at a time).
    #[cfg(test)]
    pub(crate) async fn gc_queue(&self) -> Result<Vec<records::GcEntry>> {
        self.scan_all(Table::Gc, b"", None).await?.iter().map(|(_, value)| decode(value)).collect()
    }

    /// Lists live objects of `bucket` under `prefix` in byte order, strictly after `after`
    /// (a key or a common prefix returned earlier), rolling keys that contain `delimiter`
    /// past the prefix into common prefixes. Each common prefix costs one new scan, never a
    /// read of the keys below it.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> Result<ListPage> {
        self.list_current(bucket, prefix, delimiter, after, max, false).await
    }

    /// [`Index::list_objects`], with keys whose current version is a delete marker too when
    /// `markers` (as [`ListItem::Marker`]).
    pub(super) async fn list_current(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
        markers: bool,
    ) -> Result<ListPage> {
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let scope = object_key(bucket, prefix);
        let mut scope_end = scope.clone();
        scope_end.push(PAST_UTF8);
        let base = bucket.len() + 1;
        let mut skip_exact: Option<Vec<u8>> = None;
        let mut at = match after.filter(|a| *a >= prefix) {
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
                at
            }
            None => scope.clone(),
        };
        let mut page = ListPage::default();
        'scans: loop {
            let want = (max.saturating_sub(page.items.len()) + 2).min(SCAN_PAGE);
            let rows = self.engine.scan(Table::Objects, &at, Some(&scope_end), want).await?;
            let exhausted = rows.len() < want;
            let mut next = None;
            for (raw_key, value) in &rows {
                if !raw_key.starts_with(&scope) {
                    break 'scans;
                }
                next = Some(raw_key.clone());
                if skip_exact.as_deref() == Some(raw_key.as_slice()) {
                    continue;
                }
                let key = String::from_utf8_lossy(&raw_key[base..]).into_owned();
                if let Some(d) = delimiter
                    && let Some(pos) = key[prefix.len()..].find(d)
                {
                    if page.items.len() == max {
                        page.truncated = true;
                        break 'scans;
                    }
                    let common = key[..prefix.len() + pos + d.len()].to_string();
                    at = object_key(bucket, &common);
                    at.push(PAST_UTF8);
                    page.items.push(ListItem::Prefix(common));
                    continue 'scans;
                }
                let item = match decode(value)? {
                    ObjectEntry::Live(record) => ListItem::Object(key, record),
                    marker if markers && version_id(&marker).is_some() => ListItem::Marker(key, marker),
                    ObjectEntry::Deleted { .. } => continue,
                };
                if page.items.len() == max {
                    page.truncated = true;
                    break 'scans;
                }
                page.items.push(item);
            }
            match next {
                Some(last) if !exhausted => {
                    at = last;
                    at.push(0);
                }
                _ => break,
            }
        }
        Ok(page)
    }

    /// Live objects and their bytes per bucket, every live bucket included (a full scan, a
    /// page at a time; memory grows with the buckets, not the objects).
    pub async fn bucket_usage(&self) -> Result<BTreeMap<String, BucketUsage>> {
        let mut usage: BTreeMap<String, BucketUsage> =
            self.buckets().await?.into_iter().map(|(name, _)| (name, BucketUsage::default())).collect();
        let mut pages = self.object_pages(None);
        while let Some(page) = pages.next_page().await? {
            for (bucket, _, entry) in page {
                if let ObjectEntry::Live(record) = entry {
                    let of_bucket = usage.entry(bucket).or_default();
                    of_bucket.objects += 1;
                    of_bucket.bytes += record.size;
                }
            }
        }
        Ok(usage)
    }

    // ---- cluster metadata ----

    /// The stored membership.
    pub async fn membership(&self) -> Result<Membership> {
        Ok(self.read(Table::Meta, META_MEMBERSHIP).await?.unwrap_or_default())
    }

    /// Replaces the stored membership; a change moves the epoch on. Returns the epoch.
    pub async fn set_membership(&self, membership: &Membership) -> Result<u64> {
        Ok(self
            .change_membership(|stored| {
                *stored = membership.clone();
                Ok(())
            })
            .await?
            .1)
    }

    /// Applies `change` to the stored membership, in one transaction (so that changes made
    /// through different gateways never overwrite each other); a change moves the epoch on.
    /// Returns the membership and its epoch. `change` runs again if the transaction does.
    pub async fn change_membership<F>(&self, mut change: F) -> Result<(Membership, u64)>
    where
        F: FnMut(&mut Membership) -> Result<()> + Send,
    {
        in_transaction!(self.engine, tx, {
            let epoch: u64 = read_in(tx, Table::Meta, META_EPOCH).await?.unwrap_or(0);
            let stored: Membership = read_in(tx, Table::Meta, META_MEMBERSHIP).await?.unwrap_or_default();
            let mut changed = stored.clone();
            change(&mut changed)?;
            if changed == stored {
                return Ok((stored, epoch));
            }
            Self::stage_membership(tx, &changed, epoch + 1)?;
            Ok((changed, epoch + 1))
        })
    }

    /// The stored membership and its epoch, read together.
    pub async fn membership_with_epoch(&self) -> Result<(Membership, u64)> {
        let mut tx = self.engine.begin().await?;
        let epoch: u64 = read_in(tx.as_mut(), Table::Meta, META_EPOCH).await?.unwrap_or(0);
        let membership = read_in(tx.as_mut(), Table::Meta, META_MEMBERSHIP).await?.unwrap_or_default();
        // Read only: dropped without a commit.
        Ok((membership, epoch))
    }

    /// Moves the epoch past `seen` (an epoch found on a volume), so that the membership of
    /// this index is newer than anything the volumes hold. Returns the epoch.
    pub async fn advance_epoch_past(&self, seen: u64) -> Result<u64> {
        in_transaction!(self.engine, tx, {
            let epoch: u64 = read_in(tx, Table::Meta, META_EPOCH).await?.unwrap_or(0);
            if epoch > seen {
                return Ok(epoch);
            }
            let stored: Membership = read_in(tx, Table::Meta, META_MEMBERSHIP).await?.unwrap_or_default();
            Self::stage_membership(tx, &stored, seen + 1)?;
            Ok(seen + 1)
        })
    }

    fn stage_membership(tx: &mut dyn Transaction, membership: &Membership, epoch: u64) -> Result<()> {
        write_in(tx, Table::Meta, META_MEMBERSHIP, membership)?;
        write_in(tx, Table::Meta, META_EPOCH, &epoch)
    }

    /// The membership epoch: 0 before the first membership is stored.
    pub async fn membership_epoch(&self) -> Result<u64> {
        Ok(self.read(Table::Meta, META_EPOCH).await?.unwrap_or(0))
    }

    /// The cluster's id (see [`META_CLUSTER_ID`]).
    pub async fn cluster_id(&self) -> Result<String> {
        self.read(Table::Meta, META_CLUSTER_ID).await?.ok_or_else(|| Error::Index("no cluster id".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::records::*;
    use super::*;

    /// The queued blob ids, sorted (the queue's own order depends on the millisecond).
    pub(super) async fn queued(index: &Index) -> Vec<String> {
        let mut ids: Vec<String> = index.gc_queue().await.unwrap().into_iter().map(|g| g.blob.id).collect();
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
            version: Default::default(),
            lock: Default::default(),
            lock_blob: None,
            acl: None,
            acl_blob: None,
        }))
    }

    fn keys(page: &ListPage) -> Vec<String> {
        page.items
            .iter()
            .map(|item| match item {
                ListItem::Object(key, _) | ListItem::Marker(key, _) => key.clone(),
                ListItem::Prefix(prefix) => format!("P:{prefix}"),
            })
            .collect()
    }

    async fn index_with(keys: &[&str]) -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.test_create_bucket("b").await.unwrap();
        index.test_create_bucket("bb").await.unwrap();
        for (i, key) in keys.iter().enumerate() {
            index.commit_object("b", key, &record(i as u64 + 1, key), None).await.unwrap();
        }
        index.commit_object("bb", "other", &record(1, "x"), None).await.unwrap();
        (dir, index)
    }

    /// The last write to complete wins, whenever it started: each commit is ordered after
    /// the key's current entry (its timestamp becomes its commit order, also what goes to the
    /// commit logs), and the entry it replaces goes to the GC queue.
    #[tokio::test]
    async fn the_last_commit_wins_and_what_it_replaces_is_queued() {
        let (_dir, index) = index_with(&[]).await;
        let first = index.commit_object("b", "k", &record(10, "new"), None).await.unwrap();
        // Started before "new" (an older timestamp), completed after it: it wins.
        let second = index.commit_object("b", "k", &record(5, "late"), None).await.unwrap();
        assert!(second.order > first.order, "{second:?} after {first:?}");
        let current = index.object("b", "k").await.unwrap().unwrap();
        assert_eq!((current.blob.id.as_str(), current.ts), ("late", second.order));
        let unlogged = index.unlogged(10).await.unwrap();
        assert!(unlogged.iter().any(|u| u.blob.id == "late" && u.commit == second), "{unlogged:?}");
        let third = index.commit_object("b", "k", &record(11, "newer"), None).await.unwrap();
        assert!(third.order > second.order);
        let mut queued: Vec<String> = index.gc_queue().await.unwrap().into_iter().map(|g| g.blob.id).collect();
        queued.sort();
        assert_eq!(queued, ["late", "new"]);
        let deleted = ObjectEntry::Deleted {
            ts: 12,
            blob: BlobRef { id: "tomb".into(), replicas: vec![] },
            version: Default::default(),
        };
        let fourth = index.commit_object("b", "k", &deleted, None).await.unwrap();
        assert!(fourth.order > third.order);
        assert!(index.object("b", "k").await.unwrap().is_none());
        assert!(matches!(index.commit_object("nope", "k", &record(1, "x"), None).await, Err(Error::NoSuchBucket)));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn of_conditional_creates_committed_together_exactly_one_wins() {
        let (_dir, index) = index_with(&[]).await;
        let index = Arc::new(index);
        // Eight racers for one key among writers of other keys, so that commits share batches.
        let commits = (0..24u64).map(|n| {
            let index = index.clone();
            tokio::spawn(async move {
                let (key, condition) = if n % 3 == 0 {
                    ("race".to_string(), Some(WriteCondition::IfNoneMatch))
                } else {
                    (format!("k{n}"), None)
                };
                let outcome =
                    index.commit_object("b", &key, &record(n + 1, &format!("blob{n}")), condition.as_ref()).await;
                (key, outcome)
            })
        });
        let mut winners = 0;
        for commit in futures::future::join_all(commits).await {
            match commit.unwrap() {
                (key, Ok(_)) if key == "race" => winners += 1,
                (_, Ok(_)) => {}
                (key, Err(Error::PreconditionFailed)) if key == "race" => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(winners, 1);
        assert_eq!(queued(&index).await.len(), 7, "the losers' blobs go to GC");
        for n in (0..24).filter(|n| n % 3 != 0) {
            assert!(index.object("b", &format!("k{n}")).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn a_write_is_newer_than_what_it_replaces_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let far_future = now_us() + 10_000_000_000;
        {
            let index = Index::open(dir.path()).await.unwrap();
            index.test_create_bucket("b").await.unwrap();
            index.clock.store(far_future, Ordering::SeqCst);
            index.commit_object("b", "k", &record(far_future, "x"), None).await.unwrap();
        }
        // A commit is ordered after the entry it replaces whatever the clock says after the
        // restart, and the clock moves past what it read.
        let index = Index::open(dir.path()).await.unwrap();
        let a = index.commit_object("b", "k", &record(1, "y"), None).await.unwrap().order;
        index.object_entry("b", "k").await.unwrap();
        let b = index.next_ts();
        assert!(a > far_future && b > a);
    }

    #[tokio::test]
    async fn the_cluster_id_stays_and_the_epoch_moves_on_with_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        let id = index.cluster_id().await.unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(index.membership_epoch().await.unwrap(), 0);
        let mut membership = Membership::default();
        membership.volumes.push(VolumeRecord {
            id: "v".into(),
            url: "u".into(),
            weight: 1.0,
            zone: None,
            subvolumes: 1,
        });
        assert_eq!(index.set_membership(&membership).await.unwrap(), 1);
        assert_eq!(index.set_membership(&membership).await.unwrap(), 1, "no change, no new epoch");
        membership.volumes[0].zone = Some("z".into());
        assert_eq!(index.set_membership(&membership).await.unwrap(), 2);
        assert_eq!(index.advance_epoch_past(1).await.unwrap(), 2);
        assert_eq!(index.advance_epoch_past(6).await.unwrap(), 7);
        drop(index);
        let index = Index::open(dir.path()).await.unwrap();
        assert_eq!((index.cluster_id().await.unwrap(), index.membership_epoch().await.unwrap()), (id, 7));
        assert_eq!(index.membership().await.unwrap(), membership);
        let mut restore = index.restore();
        restore.membership("other", &Membership::default(), 3).await.unwrap();
        restore.finish(0).await.unwrap();
        assert_eq!((index.cluster_id().await.unwrap().as_str(), index.membership_epoch().await.unwrap()), ("other", 3));
    }

    #[tokio::test]
    async fn lists_in_byte_order_with_prefix_and_delimiter() {
        let (_dir, index) = index_with(&["a/1", "a/2", "a/b/3", "b", "c/1", "ca", "z"]).await;
        let all = index.list_objects("b", "", None, None, 100).await.unwrap();
        assert_eq!(keys(&all), ["a/1", "a/2", "a/b/3", "b", "c/1", "ca", "z"]);
        let top = index.list_objects("b", "", Some("/"), None, 100).await.unwrap();
        assert_eq!(keys(&top), ["P:a/", "b", "P:c/", "ca", "z"]);
        let inner = index.list_objects("b", "a/", Some("/"), None, 100).await.unwrap();
        assert_eq!(keys(&inner), ["a/1", "a/2", "P:a/b/"]);
        let prefixed = index.list_objects("b", "c", None, None, 100).await.unwrap();
        assert_eq!(keys(&prefixed), ["c/1", "ca"]);
    }

    #[tokio::test]
    async fn pages_resume_after_keys_and_common_prefixes() {
        let (_dir, index) = index_with(&["a/1", "a/2", "b", "c/1", "c/2", "d"]).await;
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = index.list_objects("b", "", Some("/"), after.as_deref(), 1).await.unwrap();
            assert!(page.items.len() <= 1);
            seen.extend(keys(&page));
            match page.items.last() {
                Some(ListItem::Object(key, _)) if page.truncated => after = Some(key.clone()),
                Some(ListItem::Prefix(prefix)) if page.truncated => after = Some(prefix.clone()),
                _ => break,
            }
        }
        assert_eq!(seen, ["P:a/", "b", "P:c/", "d"]);
        let page = index.list_objects("b", "", None, Some("a/2"), 100).await.unwrap();
        assert_eq!(keys(&page), ["b", "c/1", "c/2", "d"]);
    }

    #[tokio::test]
    async fn deleted_keys_are_hidden_and_empty_bucket_can_go() {
        let (_dir, index) = index_with(&["k"]).await;
        assert!(matches!(index.test_delete_bucket("b").await, Err(Error::BucketNotEmpty)));
        let deleted = ObjectEntry::Deleted {
            ts: 100,
            blob: BlobRef { id: "t".into(), replicas: vec![] },
            version: Default::default(),
        };
        index.commit_object("b", "k", &deleted, None).await.unwrap();
        assert!(index.list_objects("b", "", None, None, 10).await.unwrap().items.is_empty());
        index.test_delete_bucket("b").await.unwrap();
        assert!(index.bucket("b").await.unwrap().is_none());
        assert_eq!(keys(&index.list_objects("bb", "", None, None, 10).await.unwrap()), ["other"]);
    }

    #[tokio::test]
    async fn a_prefix_with_many_keys_pages_without_rescanning() {
        let (_dir, index) = index_with(&[]).await;
        for i in 0..3000 {
            index.commit_object("b", &format!("big/{i:05}"), &record(i + 1, "x"), None).await.unwrap();
        }
        let mut after: Option<String> = None;
        let mut total = 0;
        loop {
            let page = index.list_objects("b", "big/", None, after.as_deref(), 1000).await.unwrap();
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
