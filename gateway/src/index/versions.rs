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

use super::BUCKET_KEY;
use super::records::{BlobRef, BucketEntry, CommitOrder, ObjectEntry, Version, Versioning, decode};
use super::{Index, object_key, prefix_end, read_in, write_in};
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
        (ObjectEntry::Deleted { .. }, Version::Unversioned) => None,
        (_, Version::Null | Version::Unversioned) => Some(NULL_VERSION.to_string()),
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

    /// Sets `bucket`'s versioning, which `blob` carries to the volumes: a bucket blob written
    /// at `ts` with the new state and the bucket's creation time. It becomes the bucket's blob
    /// (the one it replaces goes to GC), so a rebuild restores the newest state. A bucket once
    /// versioned cannot go back to unversioned (S3 answers that with
    /// `IllegalVersioningConfigurationException`). On any refusal `blob` goes to GC.
    pub async fn set_versioning(&self, bucket: &str, versioning: Versioning, ts: u64, blob: &BlobRef) -> Result<()> {
        in_transaction!(self.engine, tx, {
            let outcome = match read_in::<BucketEntry>(tx, Table::Buckets, bucket.as_bytes()).await? {
                Some(BucketEntry::Live(record)) if record.ts > ts => Err(Error::OperationAborted),
                Some(BucketEntry::Live(record))
                    if versioning == Versioning::Unversioned && record.versioning != Versioning::Unversioned =>
                {
                    Err(Error::InvalidRequest("a versioned bucket can only be suspended".into()))
                }
                Some(BucketEntry::Live(mut record)) => {
                    if let Some(old) = record.blob.replace(blob.clone()) {
                        self.queue_gc(tx, bucket, BUCKET_KEY, &old, 0)?;
                    }
                    record.ts = ts;
                    record.versioning = versioning;
                    self.consume_claim(tx, &blob.id).await?;
                    write_in(tx, Table::Buckets, bucket.as_bytes(), &BucketEntry::Live(record))?;
                    self.queue_repairs(tx, bucket, BUCKET_KEY, None, [blob]).await?;
                    self.stage_unlogged(tx, blob, CommitOrder::plain(ts))?;
                    Ok(())
                }
                _ => Err(Error::NoSuchBucket),
            };
            if outcome.is_err() {
                self.queue_gc(tx, bucket, BUCKET_KEY, blob, 0)?;
            }
            Ok(outcome)
        })?
    }

    /// Test shorthand: sets `bucket`'s versioning with a made-up bucket blob (claimed first on
    /// a shared index, by the gateway `t` the tests register).
    #[cfg(test)]
    pub(crate) async fn test_set_versioning(&self, bucket: &str, versioning: Versioning) -> Result<()> {
        let ts = self.next_ts();
        let blob = BlobRef { id: format!("versioning-{bucket}-{ts}"), replicas: vec![] };
        if self.engine.shared() {
            self.claim(&blob.id, "c", "t").await?;
        }
        self.set_versioning(bucket, versioning, ts, &blob).await
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
        read_in(tx, Table::Versions, &version_key(bucket, key, order)).await
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
    use crate::index::GatewayRecord;
    use crate::index::IdSlice;
    use crate::index::records::{BlobRef, ObjectRecord, Replica};

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
