//! S3 versioning in the index (see docs/design.md, "Versioned schema"). The `objects` table
//! keeps each key's current entry, so reads and listings of current objects cost what they
//! did; noncurrent versions go to the `versions` table under the key, newest first. A
//! version's id is its commit order (the timestamp its commit took), in hex; the `null`
//! version is the one written while the bucket was unversioned or suspended.
//!
//! What a commit does with the entry it replaces depends on the bucket: never versioned — it
//! goes to GC (as before versioning); enabled — it becomes noncurrent (a tombstone, which is
//! no version, still goes to GC); suspended — versions with ids become noncurrent, while the
//! key's `null` version, current or not, goes to GC, since the new entry is the `null` version.

use super::records::{BlobRef, CommitOrder, ObjectEntry, Version, Versioning, decode};
use super::{Index, ListItem, object_key, prefix_end, read_in, write_in};
use crate::engine::{Table, Transaction};
use crate::error::{Error, Result};
use crate::in_transaction;

/// The id S3 gives the `null` version.
pub const NULL_VERSION: &str = "null";
/// Noncurrent versions read per scan while looking for a key's `null` version.
const VERSIONS_PAGE: usize = 100;

/// The version of its key `entry` is, as S3 names it: `None` for a tombstone (no version).
pub fn version_id(entry: &ObjectEntry) -> Option<String> {
    match (entry, entry.version()) {
        (_, Version::Id) => Some(format!("{:016x}", entry.ts())),
        (_, Version::Removed) => None,
        (ObjectEntry::Deleted { .. }, Version::Unversioned) => None,
        (_, Version::Null | Version::Unversioned) => Some(NULL_VERSION.to_string()),
    }
}

/// Whether `entry` is a version (a live one or a delete marker; tombstones and removal
/// records are none).
fn is_version(entry: &ObjectEntry) -> bool {
    version_id(entry).is_some()
}

/// Why object lock forbids deleting `entry` now, if it does (delete markers are never locked).
fn locked(entry: &ObjectEntry, bypass_governance: bool) -> Option<String> {
    match entry {
        ObjectEntry::Live(record) => record.lock.forbids_deletion(crate::time::now_ms(), bypass_governance),
        ObjectEntry::Deleted { .. } => None,
    }
}

/// Whether `entry` is its key's `null` version.
fn is_null_version(entry: &ObjectEntry) -> bool {
    version_id(entry).is_some_and(|id| id == NULL_VERSION)
}

/// The commit order a version id names (`None`: not one of ours, so no such version).
fn order_of(version_id: &str) -> Option<u64> {
    (version_id.len() == 16 && version_id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| u64::from_str_radix(version_id, 16).ok())
        .flatten()
}

/// Where noncurrent versions of `bucket`/`key` are: the key, escaped so that no other key's
/// versions fall under it (a zero byte in the key becomes 0x00 0xFF), then 0x00 0x00; keys
/// still sort as they do in `objects`.
fn versions_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + key.len() + 3);
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    for &byte in key.as_bytes() {
        out.push(byte);
        if byte == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// Bucket, key and commit order of a `versions` table key (the inverse of [`version_key`]).
pub(super) fn split_version_key(raw: &[u8]) -> Option<(String, String, u64)> {
    let split = raw.iter().position(|b| *b == 0)?;
    let (rest, order_bytes) = raw.split_last_chunk::<8>()?;
    let escaped = rest.get(split + 1..)?.strip_suffix(&[0, 0])?;
    let mut key = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    while let Some(&byte) = bytes.next() {
        key.push(byte);
        if byte == 0 && bytes.next() != Some(&0xFF) {
            return None;
        }
    }
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Some((text(&raw[..split]), text(&key), !u64::from_be_bytes(*order_bytes)))
}

/// The noncurrent version of `bucket`/`key` committed in `order`: newest first under the key.
pub(super) fn version_key(bucket: &str, key: &str, order: u64) -> Vec<u8> {
    let mut out = versions_prefix(bucket, key);
    out.extend_from_slice(&(!order).to_be_bytes());
    out
}

/// The newest noncurrent version of `bucket`/`key` that `wanted` accepts, with its row key, as
/// `tx` sees it: reads the key's noncurrent versions, a page at a time, until one is found.
async fn find_noncurrent(
    tx: &mut dyn Transaction,
    bucket: &str,
    key: &str,
    wanted: impl Fn(&ObjectEntry) -> bool,
) -> Result<Option<(Vec<u8>, ObjectEntry)>> {
    let prefix = versions_prefix(bucket, key);
    let end = prefix_end(&prefix);
    let mut from = prefix;
    loop {
        let rows = tx.scan(Table::Versions, &from, end.as_deref(), VERSIONS_PAGE).await?;
        for (at, value) in &rows {
            let entry: ObjectEntry = decode(value)?;
            if wanted(&entry) {
                return Ok(Some((at.clone(), entry)));
            }
        }
        match rows.last() {
            Some((last, _)) if rows.len() == VERSIONS_PAGE => from = [last.as_slice(), &[0]].concat(),
            _ => return Ok(None),
        }
    }
}

/// One version in a listing of versions.
#[derive(Debug, Clone)]
pub struct VersionItem {
    /// Its key.
    pub key: String,
    /// The version: a live record or a delete marker.
    pub entry: ObjectEntry,
    /// Whether it is its key's current version.
    pub latest: bool,
}

/// A page of a listing of versions: versions (newest first per key) and common prefixes, in
/// key order.
#[derive(Debug, Default)]
pub struct VersionPage {
    /// Versions, or common prefixes (`Err`).
    pub items: Vec<std::result::Result<VersionItem, String>>,
    /// Whether more items follow the last one.
    pub truncated: bool,
}

impl VersionPage {
    /// Adds `item` unless the page holds `max` already (then it is truncated); whether it did.
    fn push(&mut self, item: std::result::Result<VersionItem, String>, max: usize) -> bool {
        if self.items.len() >= max {
            self.truncated = true;
            return false;
        }
        self.items.push(item);
        true
    }
}

impl ObjectEntry {
    /// Which version of its key the entry is.
    pub fn version(&self) -> Version {
        match self {
            ObjectEntry::Live(record) => record.version,
            ObjectEntry::Deleted { version, .. } => *version,
        }
    }

    /// Sets which version of its key the entry is.
    pub fn set_version(&mut self, to: Version) {
        match self {
            ObjectEntry::Live(record) => record.version = to,
            ObjectEntry::Deleted { version, .. } => *version = to,
        }
    }
}

impl CommitOrder {
    /// The id of the version the commit wrote, as `x-amz-version-id` gives it: none for a
    /// write to a bucket that never had versioning.
    pub fn version_id(&self) -> Option<String> {
        match self.version {
            Version::Id => Some(format!("{:016x}", self.order)),
            Version::Null => Some(NULL_VERSION.to_string()),
            Version::Unversioned | Version::Removed => None,
        }
    }
}

impl Versioning {
    /// The version a write committed under this state is.
    fn version_written(self) -> Version {
        match self {
            Versioning::Unversioned => Version::Unversioned,
            Versioning::Enabled => Version::Id,
            Versioning::Suspended => Version::Null,
        }
    }
}

/// A walk over the noncurrent versions of one key, newest first, a page at a time (see
/// [`Index::noncurrent_pages`]).
pub struct NoncurrentPages<'a> {
    index: &'a Index,
    bucket: String,
    key: String,
    before: Option<u64>,
    finished: bool,
}

impl NoncurrentPages<'_> {
    /// The next page, or `None` once the walk is over.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectEntry>>> {
        if self.finished {
            return Ok(None);
        }
        let page = self.index.noncurrent_versions(&self.bucket, &self.key, self.before, VERSIONS_PAGE).await?;
        self.finished = page.len() < VERSIONS_PAGE;
        self.before = page.last().map(ObjectEntry::ts);
        Ok(Some(page).filter(|page| !page.is_empty()))
    }
}

impl Index {
    /// The noncurrent versions of `bucket`/`key`, newest first, a page at a time, so that a
    /// job holds one page whatever the number of versions.
    pub fn noncurrent_pages(&self, bucket: &str, key: &str) -> NoncurrentPages<'_> {
        NoncurrentPages { index: self, bucket: bucket.into(), key: key.into(), before: None, finished: false }
    }

    /// Test shorthand: sets `bucket`'s versioning with a made-up bucket blob (claimed first on
    /// a shared index, by the gateway `t` the tests register).
    #[cfg(test)]
    pub(crate) async fn test_set_versioning(&self, bucket: &str, versioning: Versioning) -> Result<()> {
        self.test_configure(bucket, |config| config.versioning = versioning).await
    }

    /// Test shorthand: changes `bucket`'s configuration with `change`, by a made-up bucket
    /// blob (claimed first on a shared index, by the gateway `t` the tests register).
    #[cfg(test)]
    pub(crate) async fn test_configure(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut super::BucketConfig),
    ) -> Result<()> {
        let expected = self.bucket(bucket).await?.ok_or(Error::NoSuchBucket)?.config();
        let mut new = expected.clone();
        change(&mut new);
        let ts = self.next_ts();
        let blob = BlobRef { id: format!("config-{bucket}-{ts}"), replicas: vec![] };
        if self.engine.shared() {
            self.claim(&blob.id, "c", "t").await?;
        }
        self.configure_bucket(bucket, &expected, &new, ts, &blob).await
    }

    /// Adds to `tx` what becomes of `current`, the entry of `bucket`/`key` a commit under
    /// `versioning` replaces (see the module docs), and returns the version the new entry is.
    pub(super) async fn retire_current(
        &self,
        tx: &mut dyn Transaction,
        (bucket, key): (&str, &str),
        versioning: Versioning,
        current: Option<&ObjectEntry>,
    ) -> Result<Version> {
        if let Some(current) = current {
            let keep = match versioning {
                Versioning::Unversioned => false,
                Versioning::Enabled => version_id(current).is_some(),
                Versioning::Suspended => current.version() == Version::Id,
            };
            if keep {
                write_in(tx, Table::Versions, &version_key(bucket, key, current.ts()), current)?;
            } else if let Some(why) = locked(current, false) {
                // Never reached while lock-enabled buckets cannot be suspended; held here too,
                // below every caller.
                return Err(Error::ObjectLocked(why));
            } else {
                for (blob, bytes) in current.blobs_with_bytes() {
                    self.queue_gc(tx, bucket, key, blob, bytes)?;
                }
            }
        }
        if versioning == Versioning::Suspended {
            self.drop_noncurrent_null(tx, bucket, key).await?;
        }
        Ok(versioning.version_written())
    }

    /// Adds to `tx` the removal of the noncurrent `null` version of `bucket`/`key`, if there
    /// is one (its blobs go to GC). There is at most one; finding it reads every noncurrent
    /// version of the key.
    async fn drop_noncurrent_null(&self, tx: &mut dyn Transaction, bucket: &str, key: &str) -> Result<()> {
        if let Some((at, entry)) = find_noncurrent(tx, bucket, key, is_null_version).await? {
            tx.delete(Table::Versions, &at);
            for (blob, bytes) in entry.blobs_with_bytes() {
                self.queue_gc(tx, bucket, key, blob, bytes)?;
            }
        }
        Ok(())
    }

    /// The version `wanted` (a version id) of `bucket`/`key`, current or noncurrent (a delete marker is
    /// a version; a tombstone is none).
    pub async fn object_version(&self, bucket: &str, key: &str, wanted: &str) -> Result<Option<ObjectEntry>> {
        let mut tx = self.engine.begin().await?;
        let tx = tx.as_mut();
        if let Some(current) = read_in::<ObjectEntry>(tx, Table::Objects, &object_key(bucket, key)).await?
            && version_id(&current).as_deref() == Some(wanted)
        {
            return Ok(Some(current));
        }
        if wanted == NULL_VERSION {
            return Ok(find_noncurrent(tx, bucket, key, is_null_version).await?.map(|(_, entry)| entry));
        }
        let Some(order) = order_of(wanted) else { return Ok(None) };
        Ok(read_in(tx, Table::Versions, &version_key(bucket, key, order)).await?.filter(is_version))
    }

    /// Deletes version `wanted` of `bucket`/`key` for good, with `removal`: a deletion blob,
    /// written before the call, that names the version's blob so that a rebuild does not bring
    /// the version back. When the version was current, the newest noncurrent one becomes
    /// current. The version's blobs go to GC; `removal` is kept among the key's noncurrent
    /// rows as a [`Version::Removed`] record until GC has deleted them. Returns the version
    /// deleted and the removal's commit (to log), or `None` when there is no such version
    /// (`removal` then goes to GC). A version object lock protects is not deleted
    /// (`ObjectLocked`; GOVERNANCE retention yields to `bypass_governance`). One transaction.
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        wanted: &str,
        removal: &BlobRef,
        bypass_governance: bool,
    ) -> Result<Option<(ObjectEntry, CommitOrder)>> {
        in_transaction!(self.engine, tx, {
            if self.bucket_in(tx, bucket).await?.is_none() {
                return Ok(Err(Error::NoSuchBucket));
            }
            let at = object_key(bucket, key);
            let current: Option<ObjectEntry> = read_in(tx, Table::Objects, &at).await?;
            let order = self.next_order(tx, bucket, key, current.as_ref()).await?;
            // Where the version is: current (`None`), or this noncurrent row.
            let found = match current {
                Some(current) if version_id(&current).as_deref() == Some(wanted) => Some((None, current)),
                _ => {
                    let row = if wanted == NULL_VERSION {
                        find_noncurrent(tx, bucket, key, is_null_version).await?
                    } else {
                        match order_of(wanted) {
                            Some(order) => {
                                let row = version_key(bucket, key, order);
                                read_in::<ObjectEntry>(tx, Table::Versions, &row)
                                    .await?
                                    .filter(is_version)
                                    .map(|entry| (row, entry))
                            }
                            None => None,
                        }
                    };
                    row.map(|(row, entry)| (Some(row), entry))
                }
            };
            let refusal = found.as_ref().and_then(|(_, entry)| locked(entry, bypass_governance));
            let Some((row, removed)) = found.filter(|_| refusal.is_none()) else {
                self.queue_gc(tx, bucket, key, removal, 0)?;
                return Ok(refusal.map_or(Ok(None), |why| Err(Error::ObjectLocked(why))));
            };
            match row {
                Some(row) => tx.delete(Table::Versions, &row),
                None => match find_noncurrent(tx, bucket, key, is_version).await? {
                    Some((promoted_at, promoted)) => {
                        tx.delete(Table::Versions, &promoted_at);
                        write_in(tx, Table::Objects, &at, &promoted)?;
                    }
                    None => tx.delete(Table::Objects, &at),
                },
            }
            for (blob, bytes) in removed.blobs_with_bytes() {
                self.queue_gc(tx, bucket, key, blob, bytes)?;
            }
            let commit = CommitOrder { order, version: Version::Removed };
            let record = ObjectEntry::Deleted { ts: order, blob: removal.clone(), version: Version::Removed };
            self.consume_claim(tx, &removal.id).await?;
            self.queue_repairs(tx, bucket, key, None, [removal]).await?;
            self.stage_unlogged(tx, removal, commit)?;
            write_in(tx, Table::Versions, &version_key(bucket, key, order), &record)?;
            Ok(Ok(Some((removed, commit))))
        })?
    }

    /// The commit order of the next commit to `bucket`/`key`, whose current entry is
    /// `current`: the clock, but after everything the key holds, so that orders (and version
    /// ids) grow per key whichever gateway commits. Noncurrent rows count too: after the
    /// current version was deleted, the newest row may be newer than the current entry.
    pub(super) async fn next_order(
        &self,
        tx: &mut dyn Transaction,
        bucket: &str,
        key: &str,
        current: Option<&ObjectEntry>,
    ) -> Result<u64> {
        let prefix = versions_prefix(bucket, key);
        let end = prefix_end(&prefix);
        let newest_row = tx.scan(Table::Versions, &prefix, end.as_deref(), 1).await?;
        let newest_noncurrent = match newest_row.first() {
            Some((_, value)) => decode::<ObjectEntry>(value)?.newest_ts(),
            None => 0,
        };
        let newest = current.map_or(0, ObjectEntry::newest_ts).max(newest_noncurrent);
        Ok(self.next_ts().max(newest + 1))
    }

    /// Lists the versions of `bucket`'s keys under `prefix` (ListObjectVersions): each key's
    /// current version, then its noncurrent ones, newest first; keys that contain `delimiter`
    /// past the prefix rolled into common prefixes. Starts after key `key_marker`, or with
    /// `version_marker` after that version of it. Up to `max` items; a key's versions are
    /// read a page at a time.
    pub async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        (key_marker, version_marker): (Option<&str>, Option<&str>),
        max: usize,
    ) -> Result<VersionPage> {
        let mut page = VersionPage::default();
        if max == 0 {
            return Ok(page);
        }
        let mut after = key_marker.map(str::to_string);
        if let (Some(key), Some(version)) = (key_marker, version_marker)
            && key.starts_with(prefix)
            && !delimiter.is_some_and(|d| !d.is_empty() && key[prefix.len()..].contains(d))
            && let Some(marked) = self.object_version(bucket, key, version).await?
            && !self.push_noncurrent(&mut page, bucket, key, Some(marked.ts()), max).await?
        {
            return Ok(page);
        }
        loop {
            // At least one key, so that a full page learns whether anything follows.
            let room = max.saturating_sub(page.items.len()).max(1);
            let keys = self.list_current(bucket, prefix, delimiter, after.as_deref(), room, true).await?;
            for item in keys.items {
                let (key, entry) = match item {
                    ListItem::Prefix(common) => {
                        if !page.push(Err(common.clone()), max) {
                            return Ok(page);
                        }
                        after = Some(common);
                        continue;
                    }
                    ListItem::Object(key, record) => (key, ObjectEntry::Live(record)),
                    ListItem::Marker(key, entry) => (key, entry),
                };
                if !page.push(Ok(VersionItem { key: key.clone(), entry, latest: true }), max)
                    || !self.push_noncurrent(&mut page, bucket, &key, None, max).await?
                {
                    return Ok(page);
                }
                after = Some(key);
            }
            if !keys.truncated {
                return Ok(page);
            }
        }
    }

    /// Adds the noncurrent versions of `bucket`/`key` older than `before` (all when `None`) to
    /// `page`, up to `max` items; whether all fit.
    async fn push_noncurrent(
        &self,
        page: &mut VersionPage,
        bucket: &str,
        key: &str,
        before: Option<u64>,
        max: usize,
    ) -> Result<bool> {
        let mut before = before;
        loop {
            let rows = self.noncurrent_versions(bucket, key, before, VERSIONS_PAGE).await?;
            for entry in &rows {
                if is_version(entry)
                    && !page.push(Ok(VersionItem { key: key.to_string(), entry: entry.clone(), latest: false }), max)
                {
                    return Ok(false);
                }
            }
            match rows.last() {
                Some(last) if rows.len() == VERSIONS_PAGE => before = Some(last.ts()),
                _ => return Ok(true),
            }
        }
    }

    /// The noncurrent version of `bucket`/`key` that uses blob `blob_id`, with its row key,
    /// as `tx` sees it.
    pub(super) async fn noncurrent_using(
        tx: &mut dyn Transaction,
        bucket: &str,
        key: &str,
        blob_id: &str,
    ) -> Result<Option<(Vec<u8>, ObjectEntry)>> {
        find_noncurrent(tx, bucket, key, |entry| entry.blobs().iter().any(|b| b.id == blob_id)).await
    }

    /// Up to `max` noncurrent versions of `bucket`/`key`, newest first, strictly older than
    /// the version committed in `before` when given.
    pub async fn noncurrent_versions(
        &self,
        bucket: &str,
        key: &str,
        before: Option<u64>,
        max: usize,
    ) -> Result<Vec<ObjectEntry>> {
        let prefix = versions_prefix(bucket, key);
        let end = prefix_end(&prefix);
        let from = match before {
            Some(order) => [version_key(bucket, key, order).as_slice(), &[0]].concat(),
            None => prefix,
        };
        let rows = self.engine.scan(Table::Versions, &from, end.as_deref(), max).await?;
        rows.iter().map(|(_, value)| decode(value)).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::engine::postgres::PostgresEngine;
    use crate::engine::postgres::test_postgres::TestPostgres;
    use crate::index::BUCKET_KEY;
    use crate::index::records::{BlobRef, ObjectRecord, Replica};
    use crate::index::{GatewayRecord, IdSlice, Tombstone};

    fn live(id: &str) -> ObjectEntry {
        ObjectEntry::Live(Box::new(ObjectRecord {
            ts: 1,
            modified_ms: 1,
            size: 3,
            etag: "e".into(),
            sha256: String::new(),
            headers: Default::default(),
            user_meta: vec![],
            tags: vec![],
            checksum: None,
            parts: vec![],
            blob: BlobRef { id: id.into(), replicas: vec![Replica { volume: format!("vol-{id}"), subvolume: 0 }] },
            tags_blob: None,
            version: Version::Unversioned,
            lock: Default::default(),
            lock_blob: None,
            acl: None,
            acl_blob: None,
        }))
    }

    fn marker(id: &str) -> ObjectEntry {
        ObjectEntry::Deleted { ts: 1, blob: BlobRef { id: id.into(), replicas: vec![] }, version: Version::Unversioned }
    }

    fn blob_of(entry: &ObjectEntry) -> &str {
        &entry.main_blob().id
    }

    /// The object blobs in the GC queue (bucket blobs left out).
    async fn queued(index: &Index) -> Vec<String> {
        let queue = index.gc_queue().await.unwrap();
        let mut ids: Vec<String> = queue.into_iter().filter(|g| g.key != BUCKET_KEY).map(|g| g.blob.id).collect();
        ids.sort();
        ids
    }

    async fn versions(index: &Index, key: &str) -> Vec<(String, String)> {
        let current = index.object_entry("b", key).await.unwrap();
        let noncurrent = index.noncurrent_versions("b", key, None, 100).await.unwrap();
        current
            .iter()
            .chain(&noncurrent)
            .filter_map(|entry| Some((blob_of(entry).to_string(), version_id(entry)?)))
            .collect()
    }

    async fn commit(index: &Index, key: &str, entry: ObjectEntry) -> String {
        if index.engine().shared() {
            // A shared index commits only blobs a live gateway claimed.
            index.claim(blob_of(&entry), "c", "t").await.unwrap();
        }
        let commit = index.commit_object("b", key, &entry, None).await.unwrap();
        format!("{:016x}", commit.order)
    }

    /// Runs `test` on a fresh index with bucket `b`, on RocksDB and then on PostgreSQL.
    async fn with_index(who: &str, test: impl AsyncFn(&Index)) {
        let dir = tempfile::tempdir().unwrap();
        let rocks = Index::open(dir.path()).await.unwrap();
        rocks.test_create_bucket("b").await.unwrap();
        test(&rocks).await;
        let Some(server) = TestPostgres::start(who) else { return };
        let engine = PostgresEngine::connect(&server.create_database()).await.unwrap();
        let pg = Index::with_engine(Arc::new(engine)).await.unwrap();
        let gateway = GatewayRecord {
            id: "t".into(),
            s3_address: String::new(),
            admin_address: String::new(),
            started_ms: 0,
            beats: 0,
            beat_ms: 0,
        };
        pg.register_gateway(&gateway).await.unwrap();
        pg.claim("bucket-blob", "c", "t").await.unwrap();
        pg.create_bucket("b", pg.next_ts(), 1, &BlobRef { id: "bucket-blob".into(), replicas: vec![] }).await.unwrap();
        test(&pg).await;
    }

    /// Unversioned, then enabled, then suspended, then enabled again: each write keeps or
    /// drops what it replaces as S3 does, on both engines.
    #[tokio::test]
    async fn writes_keep_or_replace_versions_by_the_buckets_state() {
        with_index("writes_keep_or_replace_versions", async |index: &Index| {
            // Never versioned: an overwrite replaces, a delete leaves a tombstone (no version).
            commit(index, "k", live("u1")).await;
            commit(index, "k", live("u2")).await;
            assert_eq!(versions(index, "k").await, [("u2".into(), "null".into())]);
            assert_eq!(queued(index).await, ["u1"]);
            commit(index, "gone", live("g1")).await;
            commit(index, "gone", marker("tomb")).await;
            assert!(versions(index, "gone").await.is_empty(), "a tombstone is no version");

            assert!(index.test_set_versioning("b", Versioning::Unversioned).await.is_ok(), "still never versioned");
            index.test_set_versioning("b", Versioning::Enabled).await.unwrap();
            assert!(matches!(
                index.test_set_versioning("b", Versioning::Unversioned).await,
                Err(Error::InvalidRequest(_))
            ));
            assert!(matches!(index.test_set_versioning("nope", Versioning::Enabled).await, Err(Error::NoSuchBucket)));

            // Enabled: every write is a version with an id; the null version stays noncurrent.
            let v3 = commit(index, "k", live("v3")).await;
            let v4 = commit(index, "k", live("v4")).await;
            let m5 = commit(index, "k", marker("m5")).await;
            assert_eq!(
                versions(index, "k").await,
                [
                    ("m5".into(), m5.clone()),
                    ("v4".into(), v4.clone()),
                    ("v3".into(), v3.clone()),
                    ("u2".into(), "null".into())
                ]
            );
            assert!(index.object("b", "k").await.unwrap().is_none(), "a delete marker is current");
            // The tombstone written while unversioned is replaced, not kept.
            let g = commit(index, "gone", live("g2")).await;
            assert_eq!(versions(index, "gone").await, [("g2".into(), g)]);
            assert_eq!(queued(index).await, ["g1", "tomb", "u1"]);

            // Suspended: the write is the null version and the old null version goes.
            index.test_set_versioning("b", Versioning::Suspended).await.unwrap();
            commit(index, "k", live("n6")).await;
            assert_eq!(
                versions(index, "k").await,
                [
                    ("n6".into(), "null".into()),
                    ("m5".into(), m5.clone()),
                    ("v4".into(), v4.clone()),
                    ("v3".into(), v3.clone())
                ]
            );
            assert_eq!(queued(index).await, ["g1", "tomb", "u1", "u2"]);
            commit(index, "k", marker("n7")).await;
            assert_eq!(versions(index, "k").await[0], ("n7".into(), "null".into()), "a null delete marker");
            assert_eq!(queued(index).await, ["g1", "n6", "tomb", "u1", "u2"], "it replaced the null version");

            // Enabled again: the null marker becomes noncurrent, and reads find every version.
            index.test_set_versioning("b", Versioning::Enabled).await.unwrap();
            let v8 = commit(index, "k", live("v8")).await;
            assert_eq!(versions(index, "k").await.len(), 5);
            for (blob, id) in [("v8", &v8), ("n7", &"null".to_string()), ("m5", &m5), ("v3", &v3)] {
                let found = index.object_version("b", "k", id).await.unwrap().unwrap();
                assert_eq!(blob_of(&found), blob);
            }
            assert!(index.object_version("b", "k", "00000000000000ff").await.unwrap().is_none());
            assert!(index.object_version("b", "k", "not-an-id").await.unwrap().is_none());
            assert!(index.object_version("b", "k", &v8.to_uppercase()).await.unwrap().is_none());
            // Each change of the state replaced the bucket's blob (five went to GC: the creation
            // blob, three replaced ones, and the refused change's own), and the current one
            // carries the state.
            let bucket_blobs: Vec<String> = index
                .gc_queue()
                .await
                .unwrap()
                .into_iter()
                .filter(|g| g.bucket == "b" && g.key == BUCKET_KEY)
                .map(|g| g.blob.id)
                .collect();
            let record = index.bucket("b").await.unwrap().unwrap();
            assert_eq!(record.versioning, Versioning::Enabled);
            assert_eq!(bucket_blobs.len(), 5, "{bucket_blobs:?}");
            assert!(!bucket_blobs.contains(&record.blob.unwrap().id));
            // Noncurrent versions page from a version on.
            let order = u64::from_str_radix(&m5, 16).unwrap();
            let older = index.noncurrent_versions("b", "k", Some(order), 10).await.unwrap();
            assert_eq!(older.iter().map(blob_of).collect::<Vec<_>>(), ["v4", "v3"]);
            // Current listings see only current objects.
            let listed = index.list_objects("b", "", None, None, 10).await.unwrap();
            assert_eq!(listed.items.len(), 2, "{:?}", listed.items);
        })
        .await;
    }

    /// Deletes version `id` of `k` with removal blob `removal`, as S3's DeleteObject with a
    /// version id does: the version's blob, or `None` if there was no such version.
    async fn delete_version(index: &Index, key: &str, id: &str, removal: &str) -> Option<String> {
        if index.engine().shared() {
            index.claim(removal, "c", "t").await.unwrap();
        }
        let removal = BlobRef { id: removal.into(), replicas: vec![] };
        let deleted = index.delete_version("b", key, id, &removal, false).await.unwrap();
        deleted.map(|(entry, commit)| {
            assert_eq!(commit.version, Version::Removed);
            blob_of(&entry).to_string()
        })
    }

    /// A version deleted by id is gone for good: its blobs go to GC, the next newest becomes
    /// current if it was, and a removal record stays (as a tombstone does) until GC has
    /// deleted the blobs; later writes are ordered after it.
    #[tokio::test]
    async fn versions_deleted_by_id_go_and_the_next_newest_becomes_current() {
        with_index("versions_deleted_by_id", async |index: &Index| {
            index.test_set_versioning("b", Versioning::Enabled).await.unwrap();
            let v1 = commit(index, "k", live("v1")).await;
            let v2 = commit(index, "k", live("v2")).await;
            let m3 = commit(index, "k", marker("m3")).await;
            assert!(matches!(index.test_delete_bucket("b").await, Err(Error::BucketNotEmpty)));

            // The current delete marker: v2 is current again.
            assert_eq!(delete_version(index, "k", &m3, "d1").await.as_deref(), Some("m3"));
            assert_eq!(index.object("b", "k").await.unwrap().unwrap().blob.id, "v2");
            assert_eq!(versions(index, "k").await, [("v2".into(), v2.clone()), ("v1".into(), v1.clone())]);
            // A noncurrent one; then one that is gone already, and one that never was.
            assert_eq!(delete_version(index, "k", &v1, "d2").await.as_deref(), Some("v1"));
            assert_eq!(delete_version(index, "k", &v1, "d3").await, None);
            assert_eq!(delete_version(index, "k", "null", "d4").await, None);
            assert_eq!(versions(index, "k").await, [("v2".into(), v2.clone())]);
            assert_eq!(queued(index).await, ["d3", "d4", "m3", "v1"]);
            // The last one: the key has no version left and lists nowhere.
            assert_eq!(delete_version(index, "k", &v2, "d5").await.as_deref(), Some("v2"));
            assert!(index.object_entry("b", "k").await.unwrap().is_none());
            let listed = index.list_versions("b", "", None, (None, None), 10).await.unwrap();
            assert!(listed.items.is_empty(), "{listed:?}");
            // A bucket left with removal records only may go.
            index.check_bucket_deletable("b").await.unwrap();

            // A new version is ordered after every removal.
            let v6 = commit(index, "k", live("v6")).await;
            assert!(v6 > v2, "{v6} after {v2}");

            // Removal records are dropped like tombstones, once nothing of the key is queued.
            let removals: Vec<Tombstone> =
                index.tombstones_before(u64::MAX).await.unwrap().into_iter().filter(|t| t.removal).collect();
            let mut named: Vec<&str> = removals.iter().map(|t| t.blob.id.as_str()).collect();
            named.sort();
            assert_eq!(named, ["d1", "d2", "d5"]);
            assert!(!index.drop_tombstone(&removals[0]).await.unwrap(), "the versions' blobs are queued");
            for queued in index.gc_due_all(u64::MAX).await.unwrap().into_iter().filter(|q| q.entry.key == "k") {
                index.gc_remove(&queued.queue_key).await.unwrap();
            }
            for removal in &removals {
                assert!(index.drop_tombstone(removal).await.unwrap());
            }
            assert_eq!(versions(index, "k").await, [("v6".into(), v6)]);
        })
        .await;
    }

    /// A locked version is deleted by no path: not by id (COMPLIANCE even with the bypass),
    /// not by a change that would weaken its lock; the bucket cannot be suspended; a legal
    /// hold holds until lifted. Every refused blob goes to GC.
    #[tokio::test]
    async fn locked_versions_stay_whatever_asks() {
        use crate::index::Committed;
        use crate::index::records::{DefaultRetention, Lock, LockMode, ObjectLockConfig, Retention, TagsBlob};
        with_index("locked_versions_stay", async |index: &Index| {
            let far = crate::time::now_ms() + 3_600_000;
            let blob = |id: &str| BlobRef { id: id.into(), replicas: vec![] };
            let claimed = async |id: &str| {
                if index.engine().shared() {
                    index.claim(id, "c", "t").await.unwrap();
                }
                blob(id)
            };
            let enable_lock =
                |config: &mut crate::index::BucketConfig| config.object_lock = Some(ObjectLockConfig::default());
            let refused = index.test_configure("b", enable_lock).await;
            assert!(matches!(refused, Err(Error::InvalidBucketState(_))), "versioning first: {refused:?}");
            index.test_set_versioning("b", Versioning::Enabled).await.unwrap();
            index.test_configure("b", enable_lock).await.unwrap();
            let suspend = index.test_set_versioning("b", Versioning::Suspended).await;
            assert!(matches!(suspend, Err(Error::InvalidBucketState(_))), "{suspend:?}");
            let unlock = index.test_configure("b", |config| config.object_lock = None).await;
            assert!(matches!(unlock, Err(Error::InvalidBucketState(_))), "{unlock:?}");
            // A change made from a configuration read before another change is refused: its
            // bucket blob would carry the older configuration.
            let stale = index.bucket("b").await.unwrap().unwrap().config();
            let retention = DefaultRetention { mode: LockMode::Governance, days: 1, years: 0 };
            index
                .test_configure("b", |c| c.object_lock = Some(ObjectLockConfig { default_retention: Some(retention) }))
                .await
                .unwrap();
            let late = claimed("late").await;
            let raced = index.configure_bucket("b", &stale, &stale, index.next_ts(), &late).await;
            assert!(matches!(raced, Err(Error::OperationAborted)), "{raced:?}");
            // Created with object lock: versioned from the start.
            let creation = claimed("locked-bucket").await;
            let config = ObjectLockConfig::default();
            assert!(index.create_locked_bucket("lb", index.next_ts(), 1, &creation, config.clone()).await.unwrap());
            let record = index.bucket("lb").await.unwrap().unwrap();
            assert_eq!((record.versioning, record.object_lock), (Versioning::Enabled, Some(config)));

            let locked = |id: &str, lock: Lock| {
                let mut entry = live(id);
                if let ObjectEntry::Live(record) = &mut entry {
                    record.lock = lock;
                }
                entry
            };
            let retained = |mode| Lock { retention: Some(Retention { mode, until_ms: far }), legal_hold: false };
            let compliance = commit(index, "k", locked("c1", retained(LockMode::Compliance))).await;
            let governance = commit(index, "k", locked("g1", retained(LockMode::Governance))).await;
            let free = commit(index, "k", live("f1")).await;
            let delete = async |id: &str, removal: &str, bypass: bool| {
                let removal = claimed(removal).await;
                index.delete_version("b", "k", id, &removal, bypass).await
            };
            for bypass in [false, true] {
                let refused = delete(&compliance, &format!("r-c-{bypass}"), bypass).await;
                assert!(matches!(&refused, Err(Error::ObjectLocked(why)) if why.contains("COMPLIANCE")), "{refused:?}");
            }
            assert!(matches!(delete(&governance, "r-g", false).await, Err(Error::ObjectLocked(_))));
            assert!(delete(&governance, "r-g2", true).await.unwrap().is_some(), "bypassed");
            assert!(delete(&free, "r-f", false).await.unwrap().is_some());
            assert_eq!(index.object("b", "k").await.unwrap().unwrap().blob.id, "c1", "still there");

            // Changes: a legal hold comes and goes; COMPLIANCE is never weakened; a stale
            // change (another got in first) is refused.
            let change = async |id: &str| TagsBlob { ts: index.next_ts(), blob: claimed(id).await };
            let held = Lock { legal_hold: true, ..retained(LockMode::Compliance) };
            let set = async |expected: Lock, new: Lock, id: &str| {
                let change = change(id).await;
                index.set_lock(("b", "k", "c1"), expected, new, &change, true, crate::time::now_ms()).await
            };
            assert_eq!(set(retained(LockMode::Compliance), held, "l1").await.unwrap(), Committed::Current);
            assert!(matches!(set(retained(LockMode::Compliance), held, "l2").await, Err(Error::OperationAborted)));
            let weaker = Lock { retention: None, legal_hold: true };
            assert!(matches!(set(held, weaker, "l3").await, Err(Error::ObjectLocked(_))));
            let record = index.object("b", "k").await.unwrap().unwrap();
            assert_eq!((record.lock, record.lock_blob.unwrap().blob.id), (held, "l1".to_string()));
            // The bucket may not go while it has versions; refused blobs went to GC.
            assert!(matches!(index.test_delete_bucket("b").await, Err(Error::BucketNotEmpty)));
            let queued = queued(index).await;
            for refused in ["r-c-false", "r-c-true", "r-g", "l2", "l3"] {
                assert!(queued.contains(&refused.to_string()), "{refused} in {queued:?}");
            }
        })
        .await;
    }

    /// ListObjectVersions' view: every key's current version then its noncurrent ones, delete
    /// markers included, paged by key and version markers, with prefixes and delimiters.
    #[tokio::test]
    async fn versions_list_newest_first_per_key_and_page_anywhere() {
        with_index("versions_list", async |index: &Index| {
            commit(index, "a", live("a0")).await;
            index.test_set_versioning("b", Versioning::Enabled).await.unwrap();
            let a1 = commit(index, "a", live("a1")).await;
            let a2 = commit(index, "a", marker("a2")).await;
            commit(index, "d/x", live("dx1")).await;
            commit(index, "d/y", live("dy1")).await;
            let z1 = commit(index, "z", live("z1")).await;
            let z2 = commit(index, "z", live("z2")).await;
            let removed = commit(index, "z", live("z3")).await;
            delete_version(index, "z", &removed, "rz").await.unwrap();

            let describe = |page: &VersionPage| -> Vec<String> {
                page.items
                    .iter()
                    .map(|item| match item {
                        Ok(v) => format!("{}:{}{}", v.key, blob_of(&v.entry), if v.latest { "*" } else { "" }),
                        Err(prefix) => format!("P:{prefix}"),
                    })
                    .collect()
            };
            let all = index.list_versions("b", "", None, (None, None), 100).await.unwrap();
            assert_eq!(describe(&all), ["a:a2*", "a:a1", "a:a0", "d/x:dx1*", "d/y:dy1*", "z:z2*", "z:z1"]);
            assert!(!all.truncated);
            let rolled = index.list_versions("b", "", Some("/"), (None, None), 100).await.unwrap();
            assert_eq!(describe(&rolled), ["a:a2*", "a:a1", "a:a0", "P:d/", "z:z2*", "z:z1"]);
            let prefixed = index.list_versions("b", "d/", None, (None, None), 100).await.unwrap();
            assert_eq!(describe(&prefixed), ["d/x:dx1*", "d/y:dy1*"]);

            // One item a page, resuming from each page's last item, sees everything once.
            let mut seen = Vec::new();
            let mut marker: (Option<String>, Option<String>) = (None, None);
            loop {
                let page = index
                    .list_versions("b", "", Some("/"), (marker.0.as_deref(), marker.1.as_deref()), 2)
                    .await
                    .unwrap();
                seen.extend(describe(&page));
                if !page.truncated {
                    break;
                }
                marker = match page.items.last().unwrap() {
                    Ok(v) => (Some(v.key.clone()), version_id(&v.entry)),
                    Err(prefix) => (Some(prefix.clone()), None),
                };
            }
            assert_eq!(seen, describe(&rolled));
            // Markers in the middle of a key's versions.
            let after_a1 = index.list_versions("b", "", None, (Some("a"), Some(&a1)), 2).await.unwrap();
            assert_eq!(describe(&after_a1), ["a:a0", "d/x:dx1*"]);
            assert!(after_a1.truncated);
            let after_a2 = index.list_versions("b", "", None, (Some("a"), Some(&a2)), 1).await.unwrap();
            assert_eq!(describe(&after_a2), ["a:a1"]);
            let after_null = index.list_versions("b", "", None, (Some("a"), Some("null")), 10).await.unwrap();
            assert_eq!(describe(&after_null)[0], "d/x:dx1*");
            let after_z1 = index.list_versions("b", "", None, (Some("z"), Some(&z1)), 10).await.unwrap();
            assert!(after_z1.items.is_empty() && !after_z1.truncated);
            let after_z2 = index.list_versions("b", "", None, (Some("z"), Some(&z2)), 1).await.unwrap();
            assert_eq!((describe(&after_z2), after_z2.truncated), (vec!["z:z1".to_string()], false));
            let none = index.list_versions("b", "", None, (None, None), 0).await.unwrap();
            assert!(none.items.is_empty());
        })
        .await;
    }

    #[test]
    fn version_keys_split_back_into_bucket_key_and_order() {
        for key in ["k", "", "a\u{0}b", "\u{0}", "dir/ünï"] {
            let raw = version_key("bucket", key, 1234);
            assert_eq!(split_version_key(&raw), Some(("bucket".into(), key.into(), 1234)), "{key:?}");
        }
        assert_eq!(split_version_key(b"short"), None);
    }

    /// A key whose name extends another's, or holds a zero byte, keeps its versions apart.
    #[tokio::test]
    async fn versions_of_keys_that_share_a_prefix_stay_apart() {
        with_index("versions_of_keys_that_share_a_prefix", async |index: &Index| {
            index.test_set_versioning("b", Versioning::Enabled).await.unwrap();
            for key in ["a", "a\u{0}", "a\u{0}b", "ab"] {
                commit(index, key, live(&format!("{key}-1"))).await;
                commit(index, key, live(&format!("{key}-2"))).await;
            }
            for key in ["a", "a\u{0}", "a\u{0}b", "ab"] {
                let noncurrent = index.noncurrent_versions("b", key, None, 10).await.unwrap();
                assert_eq!(noncurrent.iter().map(blob_of).collect::<Vec<_>>(), [format!("{key}-1")], "{key:?}");
            }
        })
        .await;
    }

    /// GC's view: a noncurrent version's blobs are referenced (never orphans), the volumes
    /// they are on are in use, and a delete marker is no tombstone to drop.
    #[tokio::test]
    async fn noncurrent_versions_and_delete_markers_are_kept_from_gc() {
        with_index("noncurrent_versions_are_kept_from_gc", async |index: &Index| {
            index.test_set_versioning("b", Versioning::Enabled).await.unwrap();
            commit(index, "k", live("old")).await;
            commit(index, "k", marker("gone")).await;
            let copies = index.referenced_copies(&IdSlice::default()).await.unwrap();
            assert!(copies.contains("old", "vol-old", 0), "the noncurrent version's copy is needed");
            assert!(index.volume_in_use("vol-old").await.unwrap());
            assert!(!index.volume_in_use("vol-none").await.unwrap());
            assert!(index.tombstones_before(u64::MAX).await.unwrap().is_empty(), "a delete marker stays");
            assert!(queued(index).await.is_empty(), "nothing of the key is garbage");
        })
        .await;
    }

    /// Rebalance, `volume remove --force` and the repairer find a noncurrent version's blob:
    /// its copies are moved, forgotten and repaired like a current one's, and its id, order
    /// and version id stay.
    #[tokio::test]
    async fn noncurrent_versions_are_moved_forgotten_and_repaired() {
        with_index("noncurrent_versions_are_moved_forgotten_and_repaired", async |index: &Index| {
            index.test_set_versioning("b", Versioning::Enabled).await.unwrap();
            let old = commit(index, "k", live("old")).await;
            commit(index, "k", live("new")).await;
            let at = |volume: &str| Replica { volume: volume.into(), subvolume: 0 };
            let moved = [at("v1"), at("v2")];
            if index.engine().shared() {
                index.claim("old", "c", "t").await.unwrap();
            }
            assert!(index.move_blob("b", "k", "old", &moved).await.unwrap());
            let noncurrent = index.object_version("b", "k", &old).await.unwrap().unwrap();
            assert_eq!(noncurrent.main_blob().replicas, moved);
            assert_eq!(version_id(&noncurrent), Some(old.clone()), "still the same version");
            assert!(!index.move_blob("b", "k", "nothing", &moved).await.unwrap());

            index.set_replica_target(2);
            let forgotten = index.forget_volume("v2").await.unwrap();
            assert_eq!((forgotten.copies, forgotten.repairs, forgotten.lost), (1, 1, 0));
            let noncurrent = index.object_version("b", "k", &old).await.unwrap().unwrap();
            assert_eq!(noncurrent.main_blob().replicas, [at("v1")]);

            let repairs = index.repairs(None, 10).await.unwrap();
            let (_, entry) = repairs.iter().find(|(id, _)| id == "old").unwrap();
            let (blob, commit) = index.repair_blob("old", entry).await.unwrap().unwrap();
            assert_eq!((blob.replicas, format!("{:016x}", commit.order)), (vec![at("v1")], old.clone()));
            assert_eq!(commit.version, Version::Id, "copies log the commit");
            if index.engine().shared() {
                index.claim("old", "c", "t").await.unwrap();
            }
            let copies = index.add_copies("old", entry, &[at("v3")], &[]).await.unwrap();
            assert_eq!(copies, Some(vec![at("v1"), at("v3")]));
            let noncurrent = index.object_version("b", "k", &old).await.unwrap().unwrap();
            assert_eq!(noncurrent.main_blob().replicas, [at("v1"), at("v3")]);
            assert!(index.repairs(None, 10).await.unwrap().is_empty(), "whole again");
        })
        .await;
    }
}
