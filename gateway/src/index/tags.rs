//! Tags changed after the write (PutObjectTagging, DeleteObjectTagging). The new tag set is
//! first written to the volumes as a tags blob naming its version, then committed here: the
//! record takes the tags and references the blob, the blob it replaces goes to the GC queue,
//! and the blob is marked for the volumes' commit logs, so a rebuild finds the newest
//! committed tag set of every version on the volumes.

use rocksdb::WriteBatch;

use super::records::{ObjectEntry, TagsBlob, encode};
use super::{CF_META, CF_OBJECTS, Committed, Index, META_CLOCK, object_key, synced};
use crate::error::{Error, Result};

impl Index {
    /// Sets the tags of the key's version whose blob is `version` to `tags`, recorded on the
    /// volumes by `change`. If that version is no longer current (overwritten or deleted
    /// since the caller looked), or a newer tag change of it has committed, the change loses:
    /// it is ordered before what replaced it, as a rebuild will order it, and its blob goes
    /// to the GC queue. `NoSuchKey` only if the key has no live version at all. One synced
    /// batch.
    pub fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: &str,
        tags: Vec<(String, String)>,
        change: TagsBlob,
    ) -> Result<Committed> {
        let _guard = self.lock()?;
        let mut batch = WriteBatch::default();
        let current = self.object_entry(bucket, key)?;
        let outcome = match current {
            Some(ObjectEntry::Live(mut record))
                if record.blob.id == version && record.tags_blob.as_ref().is_none_or(|t| t.ts < change.ts) =>
            {
                if let Some(old) = &record.tags_blob {
                    self.queue_gc(&mut batch, bucket, key, &old.blob)?;
                }
                self.queue_repairs(&mut batch, bucket, key, None, [&change.blob])?;
                // Committed: it goes into the volumes' commit logs, which is what a rebuild
                // trusts.
                self.stage_unlogged(&mut batch, &change.blob)?;
                record.tags = tags;
                record.tags_blob = Some(change);
                batch.put_cf(self.cf(CF_OBJECTS)?, object_key(bucket, key), encode(&ObjectEntry::Live(record))?);
                Committed::Current
            }
            Some(ObjectEntry::Live(_)) => {
                self.queue_gc(&mut batch, bucket, key, &change.blob)?;
                Committed::Superseded
            }
            _ => {
                self.queue_gc(&mut batch, bucket, key, &change.blob)?;
                self.db.write_opt(batch, &synced())?;
                return Err(Error::NoSuchKey);
            }
        };
        batch.put_cf(self.cf(CF_META)?, META_CLOCK, encode(&self.clock.load(std::sync::atomic::Ordering::SeqCst))?);
        self.db.write_opt(batch, &synced())?;
        Ok(outcome)
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
        }))
    }

    fn tags(name: &str) -> Vec<(String, String)> {
        vec![(name.to_string(), "x".to_string())]
    }

    fn change(ts: u64, id: &str) -> TagsBlob {
        TagsBlob { ts, blob: blob(id) }
    }

    fn queued(index: &Index) -> Vec<String> {
        super::super::tests::queued(index)
    }

    /// A tag change is referenced by its version's record until the version or the tags are
    /// replaced; a change that lost (to an overwrite, or to a newer change) is queued at once.
    #[test]
    fn tags_blobs_follow_their_version() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.test_create_bucket("b").unwrap();
        index.commit_object("b", "k", &live(10, "v1"), None).unwrap();

        assert_eq!(index.set_tags("b", "k", "v1", tags("a"), change(20, "t1")).unwrap(), Committed::Current);
        let record = index.object("b", "k").unwrap().unwrap();
        assert_eq!((record.tags, record.tags_blob), (tags("a"), Some(change(20, "t1"))));
        assert!(index.referenced_copies().unwrap().contains(&("t1".into(), "v1".into(), 0)));

        let unlogged: Vec<String> = index.unlogged(100).unwrap().into_iter().map(|b| b.id).collect();
        assert!(unlogged.contains(&"t1".to_string()), "a committed change goes to the commit logs");

        // Older than the committed change: it loses, and is never logged.
        assert_eq!(index.set_tags("b", "k", "v1", tags("old"), change(15, "t0")).unwrap(), Committed::Superseded);
        assert_eq!(index.object("b", "k").unwrap().unwrap().tags, tags("a"));
        assert_eq!(queued(&index), ["t0"]);
        assert!(!index.unlogged(100).unwrap().iter().any(|b| b.id == "t0"));

        assert_eq!(index.set_tags("b", "k", "v1", vec![], change(30, "t2")).unwrap(), Committed::Current);
        assert!(index.object("b", "k").unwrap().unwrap().tags.is_empty());
        assert_eq!(queued(&index), ["t0", "t1"]);

        // The tags blob of a replaced version goes with it.
        index.commit_object("b", "k", &live(40, "v2"), None).unwrap();
        assert_eq!(queued(&index), ["t0", "t1", "t2", "v1"]);
        assert_eq!(index.object("b", "k").unwrap().unwrap().tags, tags("written"));
        // A change made for the replaced version is ordered before the overwrite.
        assert_eq!(index.set_tags("b", "k", "v1", tags("late"), change(50, "t3")).unwrap(), Committed::Superseded);
        assert_eq!(index.object("b", "k").unwrap().unwrap().tags, tags("written"));
        assert!(queued(&index).contains(&"t3".to_string()));

        let deleted = ObjectEntry::Deleted { ts: 60, blob: blob("tomb") };
        index.commit_object("b", "k", &deleted, None).unwrap();
        assert!(matches!(index.set_tags("b", "k", "v2", tags("gone"), change(70, "t4")), Err(Error::NoSuchKey)));
        assert!(queued(&index).contains(&"t4".to_string()));
    }

    /// Rebalance, repair and `volume remove --force` find a version's tags blob.
    #[test]
    fn tags_blobs_are_moved_repaired_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.test_create_bucket("b").unwrap();
        index.commit_object("b", "k", &live(10, "v1"), None).unwrap();
        index.set_tags("b", "k", "v1", tags("a"), change(20, "t1")).unwrap();
        let tags_copies = |index: &Index| index.object("b", "k").unwrap().unwrap().tags_blob.unwrap().blob.replicas;

        let moved = [Replica { volume: "v2".into(), subvolume: 1 }, Replica { volume: "v3".into(), subvolume: 0 }];
        assert!(index.move_blob("b", "k", "t1", &moved).unwrap());
        assert_eq!(tags_copies(&index), moved);

        index.set_replica_target(3);
        let forgotten = index.forget_volume("v2").unwrap();
        assert_eq!(forgotten.copies, 1);
        assert_eq!(tags_copies(&index), [moved[1].clone()]);
        let repairs = index.repairs(None, 10).unwrap();
        let (_, entry) = repairs.iter().find(|(id, _)| id == "t1").unwrap();
        assert_eq!(index.repair_blob("t1", entry).unwrap().unwrap().replicas, [moved[1].clone()]);
        let added = Replica { volume: "v4".into(), subvolume: 0 };
        index.add_copies("t1", entry, std::slice::from_ref(&added), &[]).unwrap();
        assert_eq!(tags_copies(&index), [moved[1].clone(), added]);
    }
}
