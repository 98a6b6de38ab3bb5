//! Buckets in the index (`buckets` column family: name → [`BucketEntry`]).
//!
//! Every bucket operation is first written to the volumes as a bucket blob (kind `bucket` for
//! a creation, `bucket_deleted` for a deletion, under the empty key) and then committed here
//! with the blob's timestamp; a committed one is marked for the volumes' commit logs, so a
//! rebuild trusts it (and never a refused one). Like object writes, a bucket operation older than the entry it
//! would replace loses (`OperationAborted`, S3's answer to conflicting bucket operations), so
//! the index and a rebuild ("the newest bucket blob wins") agree. A deleted bucket keeps a
//! `Deleted` entry until GC has deleted every older bucket blob of the name (their queue
//! entries are filed under the empty key), since until then its deletion blob is what keeps
//! a rebuild from bringing the bucket back.

use super::records::{
    BlobRef, BucketEntry, BucketRecord, CommitOrder, CorsRule, Lifecycle, ObjectLockConfig, PublicAccessBlock, Replica,
    Versioning, decode, encode,
};
use super::{Index, object_key, prefix_end, read_in, version_id, write_in};
use crate::engine::{Table, Transaction};
use crate::error::{Error, Result};
use crate::in_transaction;

/// The key bucket blobs, and their GC queue and repair entries, are filed under: no object
/// has it (S3 keys are at least one byte long).
pub const BUCKET_KEY: &str = "";

/// What a bucket blob carries of a bucket's configuration, so that a rebuild restores it
/// (versioning, object lock, lifecycle, tags, policy, public access block, CORS,
/// ownership, ACL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketConfig {
    /// S3 versioning.
    pub versioning: Versioning,
    /// Object lock, once enabled.
    pub object_lock: Option<ObjectLockConfig>,
    /// Lifecycle rules, if any.
    pub lifecycle: Option<Lifecycle>,
    /// Bucket tags.
    pub tags: Vec<(String, String)>,
    /// The bucket policy, as put.
    pub policy: Option<String>,
    /// The public access block, if any.
    pub public_access_block: Option<PublicAccessBlock>,
    /// CORS rules.
    pub cors: Vec<CorsRule>,
    /// Object ownership: whether ACLs apply.
    pub ownership: crate::acl::Ownership,
    /// The bucket's ACL (`None`: private).
    pub acl: Option<crate::acl::Acl>,
}

impl BucketConfig {
    /// Why S3 refuses to change a bucket's configuration from this to `new`, if it does: a
    /// versioned bucket never goes back to unversioned; object lock needs versioning enabled
    /// first, keeps it enabled, and stays once enabled.
    pub fn refuses(&self, new: &BucketConfig) -> Option<Error> {
        if new.versioning == Versioning::Unversioned && self.versioning != Versioning::Unversioned {
            return Some(Error::InvalidRequest("a versioned bucket can only be suspended".into()));
        }
        if self.object_lock.is_some() && new.versioning != Versioning::Enabled {
            return Some(Error::InvalidBucketState(
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
                    .into(),
            ));
        }
        if self.object_lock.is_some() && new.object_lock.is_none() {
            return Some(Error::InvalidBucketState("Object Lock cannot be disabled once enabled".into()));
        }
        if self.object_lock.is_none() && new.object_lock.is_some() && self.versioning != Versioning::Enabled {
            return Some(Error::InvalidBucketState(
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration".into(),
            ));
        }
        None
    }
}

impl BucketRecord {
    /// The configuration its bucket blob carries.
    pub fn config(&self) -> BucketConfig {
        BucketConfig {
            versioning: self.versioning,
            object_lock: self.object_lock.clone(),
            lifecycle: self.lifecycle.clone(),
            tags: self.tags.clone(),
            policy: self.policy.clone(),
            public_access_block: self.public_access_block,
            cors: self.cors.clone(),
            ownership: self.ownership,
            acl: self.acl.clone(),
        }
    }

    /// Takes `config` as its configuration.
    pub fn configure(&mut self, config: &BucketConfig) {
        self.versioning = config.versioning;
        self.object_lock = config.object_lock.clone();
        self.lifecycle = config.lifecycle.clone();
        self.tags = config.tags.clone();
        self.policy = config.policy.clone();
        self.public_access_block = config.public_access_block;
        self.cors = config.cors.clone();
        self.ownership = config.ownership;
        self.acl = config.acl.clone();
    }
}

/// A deleted bucket's entry that may be dropped.
#[derive(Debug, Clone)]
pub struct BucketTombstone {
    /// Bucket name.
    pub name: String,
    /// Delete timestamp.
    pub ts: u64,
    /// The deletion blob on the volumes.
    pub blob: BlobRef,
}

/// Live objects of a bucket and their bytes (one copy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketUsage {
    /// Live objects.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Index {
    /// The bucket's entry (live or deleted). The clock moves past what it reads.
    pub async fn bucket_entry(&self, name: &str) -> Result<Option<BucketEntry>> {
        let entry: Option<BucketEntry> = self.read(Table::Buckets, name.as_bytes()).await?;
        if let Some(entry) = &entry {
            self.observe(entry.ts());
        }
        Ok(entry)
    }

    /// The timestamp for a bucket operation on `name` starting now: newer than its current
    /// entry, read from the index first, so that an operation that starts after another was
    /// acknowledged, on any gateway, is ordered after it whatever the clocks say.
    pub async fn bucket_write_ts(&self, name: &str) -> Result<u64> {
        self.bucket_entry(name).await?;
        Ok(self.next_ts())
    }

    /// The bucket's record, if it exists.
    pub async fn bucket(&self, name: &str) -> Result<Option<BucketRecord>> {
        Ok(self.bucket_entry(name).await?.and_then(BucketEntry::live))
    }

    /// The bucket's record as `tx` sees it.
    pub(super) async fn bucket_in(&self, tx: &mut dyn Transaction, name: &str) -> Result<Option<BucketRecord>> {
        Ok(read_in::<BucketEntry>(tx, Table::Buckets, name.as_bytes()).await?.and_then(BucketEntry::live))
    }

    /// Changes `bucket`'s configuration from `expected` (what the caller read) to `new`, which
    /// `blob` — a bucket blob written at `ts` — carries to the volumes; in one transaction,
    /// `blob` becomes the bucket's blob (the one it replaces goes to GC), so that a rebuild
    /// restores the newest configuration. Refused, with `blob` going to GC: a change S3
    /// refuses ([`BucketConfig::refuses`]); `OperationAborted` when another change or a newer
    /// bucket operation got in first (the configuration is no longer `expected`, so `blob`
    /// would not carry it whole); `NoSuchBucket`.
    pub async fn configure_bucket(
        &self,
        bucket: &str,
        expected: &BucketConfig,
        new: &BucketConfig,
        ts: u64,
        blob: &BlobRef,
    ) -> Result<()> {
        in_transaction!(self.engine, tx, {
            let outcome = match read_in::<BucketEntry>(tx, Table::Buckets, bucket.as_bytes()).await? {
                Some(BucketEntry::Live(record)) if record.ts > ts || record.config() != *expected => {
                    Err(Error::OperationAborted)
                }
                Some(BucketEntry::Live(mut record)) => match expected.refuses(new) {
                    Some(refused) => Err(refused),
                    None => {
                        if let Some(old) = record.blob.replace(blob.clone()) {
                            self.queue_gc(tx, bucket, BUCKET_KEY, &old, 0)?;
                        }
                        record.ts = ts;
                        record.configure(new);
                        self.consume_claim(tx, &blob.id).await?;
                        write_in(tx, Table::Buckets, bucket.as_bytes(), &BucketEntry::Live(record))?;
                        self.queue_repairs(tx, bucket, BUCKET_KEY, None, [blob]).await?;
                        self.stage_unlogged(tx, blob, CommitOrder::plain(ts))?;
                        Ok(())
                    }
                },
                _ => Err(Error::NoSuchBucket),
            };
            if outcome.is_err() {
                self.queue_gc(tx, bucket, BUCKET_KEY, blob, 0)?;
            }
            Ok(outcome)
        })?
    }

    /// Every entry (live or deleted), by name.
    pub async fn bucket_entries(&self) -> Result<Vec<(String, BucketEntry)>> {
        let rows = self.scan_all(Table::Buckets, b"", None).await?;
        rows.into_iter()
            .map(|(name, value)| Ok((String::from_utf8_lossy(&name).into_owned(), decode(&value)?)))
            .collect()
    }

    /// All buckets that exist, by name.
    pub async fn buckets(&self) -> Result<Vec<(String, BucketRecord)>> {
        Ok(self.bucket_entries().await?.into_iter().filter_map(|(name, entry)| Some((name, entry.live()?))).collect())
    }

    /// Creates a bucket whose creation blob `blob` was written at `ts`; `false` (and the
    /// blob queued for GC) if it already exists. `OperationAborted` if a deletion newer than
    /// `ts` has committed meanwhile.
    pub async fn create_bucket(&self, name: &str, ts: u64, created_ms: u64, blob: &BlobRef) -> Result<bool> {
        let record = BucketRecord { created_ms, ts, blob: Some(blob.clone()), ..Default::default() };
        self.create_bucket_as(name, record).await
    }

    /// [`Index::create_bucket`] with the bucket's owner and configuration at creation:
    /// `record`, whose `ts` and `blob` are the creation's.
    pub async fn create_bucket_as(&self, name: &str, record: BucketRecord) -> Result<bool> {
        let ts = record.ts;
        let Some(blob) = record.blob.clone() else { return Err(Error::Index("a new bucket needs its blob".into())) };
        let blob = &blob;
        in_transaction!(self.engine, tx, {
            let outcome = match read_in::<BucketEntry>(tx, Table::Buckets, name.as_bytes()).await? {
                Some(BucketEntry::Live(_)) => Ok(false),
                Some(BucketEntry::Deleted { ts: deleted, .. }) if deleted > ts => Err(Error::OperationAborted),
                current => {
                    // A newer creation outranks every older bucket blob of the name: the
                    // deletion blob has done its job.
                    if let Some(BucketEntry::Deleted { blob: deletion, .. }) = &current {
                        self.queue_gc(tx, name, BUCKET_KEY, deletion, 0)?;
                    }
                    self.consume_claim(tx, &blob.id).await?;
                    write_in(tx, Table::Buckets, name.as_bytes(), &BucketEntry::Live(record.clone()))?;
                    self.queue_repairs(tx, name, BUCKET_KEY, None, [blob]).await?;
                    self.stage_unlogged(tx, blob, CommitOrder::plain(ts))?;
                    Ok(true)
                }
            };
            if !matches!(outcome, Ok(true)) {
                self.queue_gc(tx, name, BUCKET_KEY, blob, 0)?;
            }
            Ok(outcome)
        })?
    }

    /// Fails unless the bucket exists and may be deleted: no objects, no multipart uploads
    /// in progress (S3 refuses both with `BucketNotEmpty`; deleting the uploads would orphan
    /// their parts). A quick check before the deletion blob is written; the commit checks
    /// again.
    pub async fn check_bucket_deletable(&self, name: &str) -> Result<()> {
        let mut tx = self.engine.begin().await?;
        // Read only: dropped without a commit.
        Self::deletable_in(tx.as_mut(), name).await
    }

    async fn deletable_in(tx: &mut dyn Transaction, name: &str) -> Result<()> {
        if read_in::<BucketEntry>(tx, Table::Buckets, name.as_bytes()).await?.and_then(BucketEntry::live).is_none() {
            return Err(Error::NoSuchBucket);
        }
        // Every version counts, current or not, delete markers too (S3 refuses a bucket that
        // holds any); tombstones and removal records do not: scan past them.
        let scope = object_key(name, "");
        let end = prefix_end(&scope);
        for table in [Table::Objects, Table::Versions] {
            let mut from = scope.clone();
            loop {
                let rows = tx.scan(table, &from, end.as_deref(), 100).await?;
                for (_, value) in &rows {
                    if version_id(&decode(value)?).is_some() {
                        return Err(Error::BucketNotEmpty);
                    }
                }
                match rows.last() {
                    Some((last, _)) if rows.len() == 100 => {
                        from = last.clone();
                        from.push(0);
                    }
                    _ => break,
                }
            }
        }
        if Self::has_uploads_in(tx, name).await? {
            return Err(Error::BucketNotEmpty);
        }
        Ok(())
    }

    /// Deletes a bucket (see [`Index::check_bucket_deletable`]) with the deletion blob
    /// `blob` written at `ts`: the entry becomes `Deleted` and the creation blob goes to the
    /// GC queue. On any refusal the deletion blob goes to the GC queue instead.
    ///
    /// The bucket's object tombstones stay until GC drops them like any other: until the
    /// versions they deleted are gone from the volumes, they are what keeps a rebuild from
    /// resurrecting them. A bucket created again under the name finds them harmless: its
    /// writes carry newer timestamps, and listings skip tombstones.
    pub async fn delete_bucket(&self, name: &str, ts: u64, blob: &BlobRef) -> Result<()> {
        in_transaction!(self.engine, tx, {
            let outcome = match read_in::<BucketEntry>(tx, Table::Buckets, name.as_bytes()).await? {
                Some(BucketEntry::Live(record)) if record.ts > ts => Err(Error::OperationAborted),
                Some(BucketEntry::Live(record)) => match Self::deletable_in(tx, name).await {
                    Ok(()) => {
                        if let Some(creation) = &record.blob {
                            self.queue_gc(tx, name, BUCKET_KEY, creation, 0)?;
                        }
                        let entry = BucketEntry::Deleted { ts, blob: blob.clone() };
                        self.consume_claim(tx, &blob.id).await?;
                        write_in(tx, Table::Buckets, name.as_bytes(), &entry)?;
                        self.queue_repairs(tx, name, BUCKET_KEY, None, [blob]).await?;
                        self.stage_unlogged(tx, blob, CommitOrder::plain(ts))?;
                        Ok(())
                    }
                    Err(err) => Err(err),
                },
                _ => Err(Error::NoSuchBucket),
            };
            if outcome.is_err() {
                self.queue_gc(tx, name, BUCKET_KEY, blob, 0)?;
            }
            Ok(outcome)
        })?
    }

    /// Deleted buckets' entries written before `before_ts`.
    pub async fn bucket_tombstones_before(&self, before_ts: u64) -> Result<Vec<BucketTombstone>> {
        Ok(self
            .bucket_entries()
            .await?
            .into_iter()
            .filter_map(|(name, entry)| match entry {
                BucketEntry::Deleted { ts, blob } if ts < before_ts => Some(BucketTombstone { name, ts, blob }),
                _ => None,
            })
            .collect())
    }

    /// Drops a deleted bucket's entry if it is still the name's entry and no bucket blob of
    /// the name is queued for GC any more (a queued one may be an older creation blob, which
    /// without the deletion blob would bring the bucket back in a rebuild); whether it was
    /// dropped. Checked in the transaction that drops it.
    pub async fn drop_bucket_tombstone(&self, tombstone: &BucketTombstone) -> Result<bool> {
        in_transaction!(self.engine, tx, {
            if Self::gc_queued_for(tx, &tombstone.name, BUCKET_KEY).await? {
                return Ok(false);
            }
            match read_in::<BucketEntry>(tx, Table::Buckets, tombstone.name.as_bytes()).await? {
                Some(BucketEntry::Deleted { ts, .. }) if ts == tombstone.ts => {
                    tx.delete(Table::Buckets, tombstone.name.as_bytes());
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    /// Points the bucket blob `blob_id` of `name`'s entry at `replicas`, if the entry still
    /// uses it; whether it did.
    pub(super) async fn move_bucket_blob(&self, name: &str, blob_id: &str, replicas: &[Replica]) -> Result<bool> {
        in_transaction!(self.engine, tx, {
            let Some(mut entry) = read_in::<BucketEntry>(tx, Table::Buckets, name.as_bytes()).await? else {
                return Ok(false);
            };
            let Some(blob) = entry.blob_mut().filter(|b| b.id == blob_id) else { return Ok(false) };
            blob.replicas = replicas.to_vec();
            // The new copies were claimed while rebalance made them (see `consume_claim`).
            self.consume_claim(tx, blob_id).await?;
            tx.put(Table::Buckets, name.as_bytes(), &encode(&entry)?);
            Ok(true)
        })
    }
}

#[cfg(test)]
impl Index {
    /// Test shorthand: creates `name` as CreateBucket would, with a made-up bucket blob.
    pub(crate) async fn test_create_bucket(&self, name: &str) -> Result<bool> {
        let ts = self.next_ts();
        self.create_bucket(name, ts, ts / 1000, &BlobRef { id: format!("bucket-{name}-{ts}"), replicas: vec![] }).await
    }

    /// Test shorthand: deletes `name` as DeleteBucket would, with a made-up deletion blob.
    pub(crate) async fn test_delete_bucket(&self, name: &str) -> Result<()> {
        let ts = self.next_ts();
        self.delete_bucket(name, ts, &BlobRef { id: format!("deleted-{name}-{ts}"), replicas: vec![] }).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::*;
    use super::*;

    fn blob(id: &str) -> BlobRef {
        BlobRef { id: id.into(), replicas: vec![Replica { volume: "v".into(), subvolume: 0 }] }
    }

    async fn index() -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        (dir, index)
    }

    async fn queued(index: &Index) -> Vec<String> {
        super::super::tests::queued(index).await
    }

    /// Every bucket operation leaves exactly the blobs a rebuild needs referenced, and queues
    /// the rest.
    #[tokio::test]
    async fn bucket_blobs_are_referenced_or_queued() {
        let (_dir, index) = index().await;
        assert!(index.create_bucket("b", 10, 1000, &blob("c1")).await.unwrap());
        assert_eq!(index.bucket("b").await.unwrap().unwrap().blob, Some(blob("c1")));
        assert!(!index.create_bucket("b", 11, 2000, &blob("c2")).await.unwrap(), "exists already");
        assert_eq!(queued(&index).await, ["c2"]);
        assert_eq!(index.bucket("b").await.unwrap().unwrap().created_ms, 1000);

        index.delete_bucket("b", 12, &blob("d1")).await.unwrap();
        assert!(index.bucket("b").await.unwrap().is_none());
        assert!(index.buckets().await.unwrap().is_empty());
        assert_eq!(index.bucket_entry("b").await.unwrap(), Some(BucketEntry::Deleted { ts: 12, blob: blob("d1") }));
        assert_eq!(queued(&index).await, ["c1", "c2"]);
        // The deletion blob is referenced by the entry, the others by the queue: GC's
        // orphan pass takes none of them.
        let referenced = index.referenced_copies(&crate::index::IdSlice::default()).await.unwrap();
        for id in ["c1", "c2", "d1"] {
            assert!(referenced.contains(id, "v", 0), "{id}");
        }
        assert!(index.volume_in_use("v").await.unwrap());

        assert!(matches!(index.delete_bucket("b", 13, &blob("d2")).await, Err(Error::NoSuchBucket)));
        assert!(queued(&index).await.contains(&"d2".to_string()));
        // A creation older than the committed deletion lost the race.
        assert!(matches!(index.create_bucket("b", 11, 3000, &blob("c-old")).await, Err(Error::OperationAborted)));
        assert!(index.bucket("b").await.unwrap().is_none());

        assert!(index.create_bucket("b", 14, 4000, &blob("c3")).await.unwrap());
        assert!(queued(&index).await.contains(&"d1".to_string()), "the deletion blob is outranked");
        assert_eq!(index.bucket("b").await.unwrap().unwrap().created_ms, 4000);
        // A deletion that started before the creation committed loses.
        assert!(matches!(index.delete_bucket("b", 13, &blob("d-old")).await, Err(Error::OperationAborted)));
        assert!(index.bucket("b").await.unwrap().is_some());
    }

    /// Only committed bucket blobs go to the volumes' commit logs: a refused DeleteBucket's
    /// deletion blob is newer than the creation blob, but a rebuild never trusts it.
    #[tokio::test]
    async fn only_committed_bucket_blobs_are_logged() {
        let (_dir, index) = index().await;
        let unlogged = async |index: &Index| {
            let mut ids: Vec<String> = index.unlogged(100).await.unwrap().into_iter().map(|u| u.blob.id).collect();
            ids.sort();
            ids
        };
        index.create_bucket("b", 10, 1000, &blob("c1")).await.unwrap();
        assert!(!index.create_bucket("b", 11, 1100, &blob("c2")).await.unwrap());
        index.create_upload("b", "k", "u1", &UploadRecord::default()).await.unwrap();
        assert!(matches!(index.check_bucket_deletable("b").await, Err(Error::BucketNotEmpty)));
        assert!(matches!(index.delete_bucket("b", 12, &blob("d1")).await, Err(Error::BucketNotEmpty)));
        assert_eq!(queued(&index).await, ["c2", "d1"]);
        assert_eq!(unlogged(&index).await, ["c1"]);
        index.abort_upload("b", "k", "u1").await.unwrap();
        index.delete_bucket("b", 13, &blob("d2")).await.unwrap();
        assert_eq!(unlogged(&index).await, ["c1", "d2"]);
    }

    /// Rebalance, repair and `volume remove --force` find a bucket's blob, of a bucket and of
    /// a deleted bucket's entry.
    #[tokio::test]
    async fn bucket_blobs_are_moved_repaired_and_forgotten() {
        let (_dir, index) = index().await;
        index.create_bucket("b", 10, 1000, &blob("c1")).await.unwrap();
        let copies =
            async |index: &Index| index.bucket_entry("b").await.unwrap().unwrap().blob().unwrap().replicas.clone();
        let moved = [Replica { volume: "v2".into(), subvolume: 1 }, Replica { volume: "v3".into(), subvolume: 0 }];
        assert!(index.move_blob("b", BUCKET_KEY, "c1", &moved).await.unwrap());
        assert!(!index.move_blob("b", BUCKET_KEY, "other", &moved).await.unwrap());
        assert_eq!(copies(&index).await, moved);
        assert!(index.volume_in_use("v2").await.unwrap() && !index.volume_in_use("v").await.unwrap());

        index.set_replica_target(3);
        let forgotten = index.forget_volume("v2").await.unwrap();
        assert_eq!((forgotten.copies, forgotten.repairs), (1, 1));
        assert_eq!(copies(&index).await, [moved[1].clone()]);
        let repairs = index.repairs(None, 10).await.unwrap();
        let (_, entry) = repairs.iter().find(|(id, _)| id == "c1").unwrap();
        assert_eq!((entry.bucket.as_str(), entry.key.as_str()), ("b", BUCKET_KEY));
        let added = Replica { volume: "v4".into(), subvolume: 0 };
        index.add_copies("c1", entry, std::slice::from_ref(&added), &[]).await.unwrap();
        assert_eq!(copies(&index).await, [moved[1].clone(), added.clone()]);

        index.delete_bucket("b", 20, &blob("d1")).await.unwrap();
        assert!(index.move_blob("b", BUCKET_KEY, "d1", std::slice::from_ref(&added)).await.unwrap());
        assert_eq!(copies(&index).await, [added]);
    }

    /// A deleted bucket's entry stays while a bucket blob of its name is queued.
    #[tokio::test]
    async fn a_bucket_tombstone_stays_while_an_older_bucket_blob_is_queued() {
        let (_dir, index) = index().await;
        index.create_bucket("b", 10, 1000, &blob("c1")).await.unwrap();
        index.delete_bucket("b", 20, &blob("d1")).await.unwrap();
        let tombstones = index.bucket_tombstones_before(u64::MAX).await.unwrap();
        assert_eq!(tombstones.len(), 1);
        assert!(index.bucket_tombstones_before(20).await.unwrap().is_empty());
        assert!(!index.drop_bucket_tombstone(&tombstones[0]).await.unwrap(), "c1 is still queued");
        for due in index.gc_due_all(u64::MAX).await.unwrap() {
            index.gc_remove(&due.queue_key).await.unwrap();
        }
        assert!(index.drop_bucket_tombstone(&tombstones[0]).await.unwrap());
        assert!(index.bucket_entry("b").await.unwrap().is_none());
    }
}
