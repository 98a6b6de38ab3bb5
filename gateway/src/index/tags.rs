//! Changes of a version after its write: its tags (PutObjectTagging, DeleteObjectTagging) and
//! its ACL (PutObjectAcl). The new tag set or ACL is first written to the volumes as a change
//! blob naming its version, then committed here: the record takes the change and references
//! the blob, the blob it replaces goes to the GC queue, and the blob is marked for the volumes'
//! commit logs, so a rebuild finds the newest committed change of every version on the volumes.

use super::records::{ObjectEntry, TagsBlob};
use super::{Committed, Index, object_key, read_in, write_in};
use crate::acl::Acl;
use crate::engine::{Table, Transaction};
use crate::error::{Error, Result};
use crate::in_transaction;

/// What a change sets on a version.
#[derive(Debug, Clone)]
pub enum VersionChange {
    /// Its tags.
    Tags(Vec<(String, String)>),
    /// Its ACL (`None`: the bucket owner's, private).
    Acl(Option<Acl>),
}

impl Index {
    /// Where the version of `bucket`/`key` whose blob is `version` is, as `tx` sees it: current,
    /// or a noncurrent row. When it is in neither, the key's current entry (whatever it is)
    /// with its place, or `None`.
    pub(super) async fn version_by_blob(
        tx: &mut dyn Transaction,
        bucket: &str,
        key: &str,
        version: &str,
    ) -> Result<(Table, Vec<u8>, Option<ObjectEntry>)> {
        let at = object_key(bucket, key);
        let current = read_in::<ObjectEntry>(tx, Table::Objects, &at).await?;
        if current.as_ref().is_none_or(|entry| entry.main_blob().id != version)
            && let Some((at, entry)) = Self::noncurrent_using(tx, bucket, key, version).await?
            && entry.main_blob().id == version
        {
            return Ok((Table::Versions, at, Some(entry)));
        }
        Ok((Table::Objects, at, current))
    }

    /// Sets the tags of the key's version whose blob is `version` (see [`Index::change_version`]).
    pub async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: &str,
        tags: Vec<(String, String)>,
        change: TagsBlob,
    ) -> Result<Committed> {
        self.change_version(bucket, key, version, VersionChange::Tags(tags), change).await
    }

    /// Makes `change` to the key's version whose blob is `version` (current or noncurrent),
    /// recorded on the volumes by `blob`. If that version is gone (overwritten in a bucket
    /// without versioning, or deleted, since the caller looked), or a newer change of the same
    /// kind has committed, the change loses: it is ordered before what replaced it, as a
    /// rebuild will order it, and its blob goes to the GC queue. `NoSuchKey` only if the key
    /// has no live version at all. One transaction.
    pub async fn change_version(
        &self,
        bucket: &str,
        key: &str,
        version: &str,
        change: VersionChange,
        blob: TagsBlob,
    ) -> Result<Committed> {
        in_transaction!(self.engine, tx, {
            let (table, at, entry) = Self::version_by_blob(tx, bucket, key, version).await?;
            // A refusal still commits: the blob it wrote goes to the GC queue.
            let outcome = match entry {
                Some(ObjectEntry::Live(mut record)) if record.blob.id == version => {
                    let slot = match &change {
                        VersionChange::Tags(_) => &mut record.tags_blob,
                        VersionChange::Acl(_) => &mut record.acl_blob,
                    };
                    if slot.as_ref().is_none_or(|t| t.ts < blob.ts) {
                        if let Some(old) = slot.replace(blob.clone()) {
                            self.queue_gc(tx, bucket, key, &old.blob, 0)?;
                        }
                        match change.clone() {
                            VersionChange::Tags(tags) => record.tags = tags,
                            VersionChange::Acl(acl) => record.acl = acl,
                        }
                        self.consume_claim(tx, &blob.blob.id).await?;
                        self.queue_repairs(tx, bucket, key, None, [&blob.blob]).await?;
                        // Committed: it goes into the volumes' commit logs, which is what a
                        // rebuild trusts.
                        self.stage_unlogged(tx, &blob.blob, super::records::CommitOrder::plain(blob.ts))?;
                        write_in(tx, table, &at, &ObjectEntry::Live(record))?;
                        Ok(Committed::Current)
                    } else {
                        self.queue_gc(tx, bucket, key, &blob.blob, 0)?;
                        Ok(Committed::Superseded)
                    }
                }
                Some(ObjectEntry::Live(_)) => {
                    self.queue_gc(tx, bucket, key, &blob.blob, 0)?;
                    Ok(Committed::Superseded)
                }
                _ => {
                    self.queue_gc(tx, bucket, key, &blob.blob, 0)?;
                    Err(Error::NoSuchKey)
                }
            };
            Ok(outcome)
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::*;
    use super::*;

    fn blob(id: &str) -> BlobRef {
        BlobRef { id: id.into(), replicas: vec![Replica { volume: "v1".into(), subvolume: 0 }] }
    }

    fn live(ts: u64, id: &str) -> ObjectEntry {
        ObjectEntry::Live(Box::new(ObjectRecord {
            ts,
            modified_ms: ts,
            size: 1,
            etag: "e".into(),
            sha256: "s".into(),
            headers: SystemHeaders::default(),
            user_meta: vec![],
            tags: tags("written"),
            checksum: None,
            parts: vec![],
            blob: blob(id),
            tags_blob: None,
            version: Default::default(),
            lock: Default::default(),
            lock_blob: None,
            acl: None,
            acl_blob: None,
        }))
    }

    fn tags(name: &str) -> Vec<(String, String)> {
        vec![(name.to_string(), "x".to_string())]
    }

    fn change(ts: u64, id: &str) -> TagsBlob {
        TagsBlob { ts, blob: blob(id) }
    }

    async fn queued(index: &Index) -> Vec<String> {
        super::super::tests::queued(index).await
    }

    /// A tag change is referenced by its version's record until the version or the tags are
    /// replaced; a change that lost (to an overwrite, or to a newer change) is queued at once.
    #[tokio::test]
    async fn tags_blobs_follow_their_version() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.test_create_bucket("b").await.unwrap();
        index.commit_object("b", "k", &live(10, "v1"), None).await.unwrap();

        assert_eq!(index.set_tags("b", "k", "v1", tags("a"), change(20, "t1")).await.unwrap(), Committed::Current);
        let record = index.object("b", "k").await.unwrap().unwrap();
        assert_eq!((record.tags, record.tags_blob), (tags("a"), Some(change(20, "t1"))));
        assert!(index.referenced_copies(&crate::index::IdSlice::default()).await.unwrap().contains("t1", "v1", 0));

        let unlogged: Vec<String> = index.unlogged(100).await.unwrap().into_iter().map(|u| u.blob.id).collect();
        assert!(unlogged.contains(&"t1".to_string()), "a committed change goes to the commit logs");

        // Older than the committed change: it loses, and is never logged.
        assert_eq!(index.set_tags("b", "k", "v1", tags("old"), change(15, "t0")).await.unwrap(), Committed::Superseded);
        assert_eq!(index.object("b", "k").await.unwrap().unwrap().tags, tags("a"));
        assert_eq!(queued(&index).await, ["t0"]);
        assert!(!index.unlogged(100).await.unwrap().iter().any(|u| u.blob.id == "t0"));

        assert_eq!(index.set_tags("b", "k", "v1", vec![], change(30, "t2")).await.unwrap(), Committed::Current);
        assert!(index.object("b", "k").await.unwrap().unwrap().tags.is_empty());
        assert_eq!(queued(&index).await, ["t0", "t1"]);

        // The tags blob of a replaced version goes with it.
        index.commit_object("b", "k", &live(40, "v2"), None).await.unwrap();
        assert_eq!(queued(&index).await, ["t0", "t1", "t2", "v1"]);
        assert_eq!(index.object("b", "k").await.unwrap().unwrap().tags, tags("written"));
        // A change made for the replaced version is ordered before the overwrite.
        assert_eq!(
            index.set_tags("b", "k", "v1", tags("late"), change(50, "t3")).await.unwrap(),
            Committed::Superseded
        );
        assert_eq!(index.object("b", "k").await.unwrap().unwrap().tags, tags("written"));
        assert!(queued(&index).await.contains(&"t3".to_string()));

        let deleted = ObjectEntry::Deleted { ts: 60, blob: blob("tomb"), version: Default::default() };
        index.commit_object("b", "k", &deleted, None).await.unwrap();
        assert!(matches!(index.set_tags("b", "k", "v2", tags("gone"), change(70, "t4")).await, Err(Error::NoSuchKey)));
        assert!(queued(&index).await.contains(&"t4".to_string()));
    }

    /// Rebalance, repair and `volume remove --force` find a version's tags blob.
    #[tokio::test]
    async fn tags_blobs_are_moved_repaired_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.test_create_bucket("b").await.unwrap();
        index.commit_object("b", "k", &live(10, "v1"), None).await.unwrap();
        index.set_tags("b", "k", "v1", tags("a"), change(20, "t1")).await.unwrap();
        let tags_copies =
            async |index: &Index| index.object("b", "k").await.unwrap().unwrap().tags_blob.unwrap().blob.replicas;

        let moved = [Replica { volume: "v2".into(), subvolume: 1 }, Replica { volume: "v3".into(), subvolume: 0 }];
        assert!(index.move_blob("b", "k", "t1", &moved).await.unwrap());
        assert_eq!(tags_copies(&index).await, moved);

        index.set_replica_target(3);
        let forgotten = index.forget_volume("v2").await.unwrap();
        assert_eq!(forgotten.copies, 1);
        assert_eq!(tags_copies(&index).await, [moved[1].clone()]);
        let repairs = index.repairs(None, 10).await.unwrap();
        let (_, entry) = repairs.iter().find(|(id, _)| id == "t1").unwrap();
        assert_eq!(index.repair_blob("t1", entry).await.unwrap().unwrap().0.replicas, [moved[1].clone()]);
        let added = Replica { volume: "v4".into(), subvolume: 0 };
        index.add_copies("t1", entry, std::slice::from_ref(&added), &[]).await.unwrap();
        assert_eq!(tags_copies(&index).await, [moved[1].clone(), added]);
    }
}
