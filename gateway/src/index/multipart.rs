//! Multipart uploads in the index: the upload records, their parts, and completion, which
//! turns chosen parts into an object in one synced batch.

use rocksdb::WriteBatch;

use super::records::{CompletedUpload, ObjectEntry, PartRecord, UploadRecord, decode, encode};
use super::{CF_COMPLETED, CF_PARTS, CF_UPLOADS, Index, PAST_UTF8, WriteCondition, object_key, synced};
use crate::error::{Error, Result};

/// An upload in progress, as listed by ListMultipartUploads.
#[derive(Debug, Clone)]
pub struct UploadItem {
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// The upload.
    pub record: UploadRecord,
}

/// A page of ListMultipartUploads.
#[derive(Debug, Default)]
pub struct UploadPage {
    /// Uploads, by key then upload id.
    pub uploads: Vec<UploadItem>,
    /// Common prefixes when a delimiter was given.
    pub prefixes: Vec<String>,
    /// Whether more follow.
    pub truncated: bool,
}

fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut out = object_key(bucket, key);
    out.push(0);
    out.extend_from_slice(upload_id.as_bytes());
    out
}

pub(super) fn part_key(upload_id: &str, number: u32) -> Vec<u8> {
    let mut out = upload_id.as_bytes().to_vec();
    out.push(0);
    out.extend_from_slice(&number.to_be_bytes());
    out
}

impl Index {
    /// Records a new upload.
    pub fn create_upload(&self, bucket: &str, key: &str, upload_id: &str, record: &UploadRecord) -> Result<()> {
        let _guard = self.lock()?;
        if self.bucket(bucket)?.is_none() {
            return Err(Error::NoSuchBucket);
        }
        self.db.put_cf_opt(self.cf(CF_UPLOADS)?, upload_key(bucket, key, upload_id), encode(record)?, &synced())?;
        Ok(())
    }

    /// An upload in progress.
    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<UploadRecord>> {
        self.db.get_cf(self.cf(CF_UPLOADS)?, upload_key(bucket, key, upload_id))?.map(|b| decode(&b)).transpose()
    }

    fn require_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord> {
        self.upload(bucket, key, upload_id)?.ok_or(Error::NoSuchUpload)
    }

    /// Stores a part, replacing (and queueing for GC) any earlier part with its number. If
    /// the upload is gone (completed or aborted meanwhile) the new blob is queued instead.
    pub fn commit_part(&self, bucket: &str, key: &str, upload_id: &str, part: &PartRecord) -> Result<()> {
        let _guard = self.lock()?;
        let mut batch = WriteBatch::default();
        if self.upload(bucket, key, upload_id)?.is_none() {
            self.queue_gc(&mut batch, bucket, key, &part.blob)?;
            self.db.write_opt(batch, &synced())?;
            return Err(Error::NoSuchUpload);
        }
        let at = part_key(upload_id, part.number);
        if let Some(old) = self.db.get_cf(self.cf(CF_PARTS)?, &at)? {
            self.queue_gc(&mut batch, bucket, key, &decode::<PartRecord>(&old)?.blob)?;
        }
        self.queue_repairs(&mut batch, bucket, key, Some(upload_id), [&part.blob])?;
        batch.put_cf(self.cf(CF_PARTS)?, at, encode(part)?);
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Parts of an upload numbered above `after`, ascending, at most `max`; and whether more
    /// follow.
    pub fn parts(&self, upload_id: &str, after: u32, max: usize) -> Result<(Vec<PartRecord>, bool)> {
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_PARTS)?);
        iter.seek(part_key(upload_id, after.saturating_add(1)));
        let mut scope = upload_id.as_bytes().to_vec();
        scope.push(0);
        let mut parts = Vec::new();
        while iter.valid() {
            let Some(raw_key) = iter.key() else { break };
            if !raw_key.starts_with(&scope) {
                break;
            }
            if parts.len() == max {
                iter.status()?;
                return Ok((parts, true));
            }
            parts.push(decode(iter.value().unwrap_or_default())?);
            iter.next();
        }
        iter.status()?;
        Ok((parts, false))
    }

    fn all_parts(&self, upload_id: &str) -> Result<Vec<PartRecord>> {
        Ok(self.parts(upload_id, 0, usize::MAX)?.0)
    }

    /// Completes an upload: `entry` (whose parts were chosen from the stored ones) becomes the
    /// key's current version if `condition` holds, the upload and its part records go, and
    /// the blobs of unchosen parts and of the replaced version are queued for GC. A part
    /// replaced since `entry` was built fails the completion with `InvalidPart`. The same
    /// batch remembers the completion (see [`CompletedUpload`]) for retries.
    pub fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        entry: &ObjectEntry,
        condition: Option<&WriteCondition>,
    ) -> Result<()> {
        let _guard = self.lock()?;
        self.require_upload(bucket, key, upload_id)?;
        let stored = self.all_parts(upload_id)?;
        let record = match entry {
            ObjectEntry::Live(record) => record,
            ObjectEntry::Deleted { .. } => return Err(Error::Index("completing an upload into a tombstone".into())),
        };
        // Each part's copies as recorded now, under the lock: the repairer or a rebalance may
        // have added or moved copies since the request read the parts.
        let mut current = record.clone();
        for part in &mut current.parts {
            let stored = stored.iter().find(|s| s.number == part.number && s.blob.id == part.blob.id);
            part.blob.replicas = stored.ok_or(Error::InvalidPart)?.blob.replicas.clone();
        }
        let chosen = &current.parts;
        let mut batch = WriteBatch::default();
        self.stage_object(&mut batch, bucket, key, &ObjectEntry::Live(current.clone()), condition)?;
        for part in &stored {
            if !chosen.iter().any(|c| c.blob.id == part.blob.id) {
                self.queue_gc(&mut batch, bucket, key, &part.blob)?;
            }
            batch.delete_cf(self.cf(CF_PARTS)?, part_key(upload_id, part.number));
        }
        batch.delete_cf(self.cf(CF_UPLOADS)?, upload_key(bucket, key, upload_id));
        let completed = CompletedUpload {
            bucket: bucket.to_string(),
            key: key.to_string(),
            etag: record.etag.clone(),
            checksum: record.checksum.clone(),
            completed_ms: crate::time::now_ms(),
        };
        batch.put_cf(self.cf(CF_COMPLETED)?, upload_id.as_bytes(), encode(&completed)?);
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// The completion of `upload_id`, while it is remembered.
    pub fn completed_upload(&self, upload_id: &str) -> Result<Option<CompletedUpload>> {
        self.db.get_cf(self.cf(CF_COMPLETED)?, upload_id.as_bytes())?.map(|b| decode(&b)).transpose()
    }

    /// Forgets completions older than `before_ms`; how many.
    pub fn forget_completed(&self, before_ms: u64) -> Result<u64> {
        let mut batch = WriteBatch::default();
        let mut count = 0;
        for item in self.db.iterator_cf(self.cf(CF_COMPLETED)?, rocksdb::IteratorMode::Start) {
            let (upload_id, value) = item?;
            if decode::<CompletedUpload>(&value)?.completed_ms < before_ms {
                batch.delete_cf(self.cf(CF_COMPLETED)?, upload_id);
                count += 1;
            }
        }
        self.db.write_opt(batch, &synced())?;
        Ok(count)
    }

    /// Drops an upload; its parts' blobs go to the GC queue.
    pub fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let _guard = self.lock()?;
        self.require_upload(bucket, key, upload_id)?;
        let mut batch = WriteBatch::default();
        for part in self.all_parts(upload_id)? {
            self.queue_gc(&mut batch, bucket, key, &part.blob)?;
            batch.delete_cf(self.cf(CF_PARTS)?, part_key(upload_id, part.number));
        }
        batch.delete_cf(self.cf(CF_UPLOADS)?, upload_key(bucket, key, upload_id));
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Uploads (bucket, key, upload id) created before `before_ms`, in index order.
    pub fn uploads_before(&self, before_ms: u64) -> Result<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_UPLOADS)?, rocksdb::IteratorMode::Start) {
            let (raw_key, value) = item?;
            let record: UploadRecord = decode(&value)?;
            let first = raw_key.iter().position(|b| *b == 0);
            let last = raw_key.iter().rposition(|b| *b == 0);
            if record.initiated_ms < before_ms
                && let (Some(first), Some(last)) = (first, last)
                && first < last
            {
                let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
                out.push((text(&raw_key[..first]), text(&raw_key[first + 1..last]), text(&raw_key[last + 1..])));
            }
        }
        Ok(out)
    }

    /// Aborts an upload GC found expired; whether it was still there (a Complete or Abort may
    /// have come first). Unlike a client's abort, the parts' blobs are queued stamped with
    /// the time they were uploaded, not now: a part of an upload in progress is never read
    /// (no GET reaches it), so the grace that protects readers of replaced versions does not
    /// apply, and a GC run reclaims an expired upload's blobs at once.
    pub fn expire_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<bool> {
        let _guard = self.lock()?;
        if self.upload(bucket, key, upload_id)?.is_none() {
            return Ok(false);
        }
        let now = crate::time::now_ms();
        let mut batch = WriteBatch::default();
        for part in self.all_parts(upload_id)? {
            self.queue_gc_at(&mut batch, part.modified_ms.min(now), bucket, key, &part.blob)?;
            batch.delete_cf(self.cf(CF_PARTS)?, part_key(upload_id, part.number));
        }
        batch.delete_cf(self.cf(CF_UPLOADS)?, upload_key(bucket, key, upload_id));
        self.db.write_opt(batch, &synced())?;
        Ok(true)
    }

    /// Whether `bucket` has any upload in progress.
    pub fn has_uploads(&self, bucket: &str) -> Result<bool> {
        let scope = object_key(bucket, "");
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_UPLOADS)?);
        iter.seek(&scope);
        let found = iter.key().is_some_and(|k| k.starts_with(&scope));
        iter.status()?;
        Ok(found)
    }

    /// Uploads of `bucket` under `prefix`, ordered by key then upload id, strictly after
    /// (`key_marker`, `upload_id_marker`); keys with `delimiter` past the prefix roll up
    /// into common prefixes.
    pub fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> Result<UploadPage> {
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let scope = object_key(bucket, prefix);
        let base = bucket.len() + 1;
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_UPLOADS)?);
        match key_marker.filter(|m| !m.is_empty()) {
            // S3: without an upload-id marker, uploads of the marker key itself are skipped.
            Some(marker) => {
                let mut at = upload_key(bucket, marker, upload_id_marker.unwrap_or_default());
                if upload_id_marker.is_none() {
                    at.truncate(at.len() - 1);
                    at.push(1);
                } else {
                    at.push(0);
                }
                if delimiter.is_some_and(|d| marker.ends_with(d) && marker.len() > prefix.len()) {
                    at = object_key(bucket, marker);
                    at.push(PAST_UTF8);
                }
                iter.seek(at.max(scope.clone()));
            }
            None => iter.seek(&scope),
        }
        let mut page = UploadPage::default();
        while iter.valid() {
            let Some(raw_key) = iter.key() else { break };
            if !raw_key.starts_with(&scope) {
                break;
            }
            let Some(split) = raw_key[base..].iter().rposition(|b| *b == 0) else {
                iter.next();
                continue;
            };
            let key = String::from_utf8_lossy(&raw_key[base..base + split]).into_owned();
            let upload_id = String::from_utf8_lossy(&raw_key[base + split + 1..]).into_owned();
            if page.uploads.len() + page.prefixes.len() == max {
                page.truncated = true;
                break;
            }
            if let Some(d) = delimiter
                && let Some(pos) = key[prefix.len()..].find(d)
            {
                let common = key[..prefix.len() + pos + d.len()].to_string();
                let mut next = object_key(bucket, &common);
                next.push(PAST_UTF8);
                page.prefixes.push(common);
                iter.seek(&next);
                continue;
            }
            let record = decode(iter.value().unwrap_or_default())?;
            page.uploads.push(UploadItem { key, upload_id, record });
            iter.next();
        }
        iter.status()?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::*;
    use super::*;

    fn part(number: u32, id: &str) -> PartRecord {
        PartRecord {
            number,
            size: 5,
            etag: format!("etag{number}"),
            sha256: String::new(),
            checksum: None,
            modified_ms: 1,
            blob: BlobRef { id: id.into(), replicas: vec![] },
        }
    }

    fn object_with(parts: Vec<PartRecord>, ts: u64) -> ObjectEntry {
        ObjectEntry::Live(Box::new(ObjectRecord {
            ts,
            modified_ms: 1,
            size: 10,
            etag: "x-2".into(),
            sha256: String::new(),
            headers: SystemHeaders::default(),
            user_meta: vec![],
            tags: vec![],
            checksum: None,
            parts,
            blob: BlobRef { id: "manifest".into(), replicas: vec![] },
            tags_blob: None,
        }))
    }

    fn open() -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.test_create_bucket("b").unwrap();
        (dir, index)
    }

    fn queued(index: &Index) -> Vec<String> {
        super::super::tests::queued(index)
    }

    #[test]
    fn parts_replace_and_complete_queues_the_rest() {
        let (_dir, index) = open();
        index.create_upload("b", "k", "u1", &UploadRecord::default()).unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1")).unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1b")).unwrap();
        index.commit_part("b", "k", "u1", &part(2, "p2")).unwrap();
        index.commit_part("b", "k", "u1", &part(3, "p3")).unwrap();
        assert_eq!(queued(&index), ["p1"]);
        let (first, more) = index.parts("u1", 0, 2).unwrap();
        assert_eq!(first.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2]);
        assert!(more);
        assert_eq!(index.parts("u1", 2, 10).unwrap().0.len(), 1);

        // A stale part (p1 was replaced) is refused.
        let stale = object_with(vec![part(1, "p1"), part(3, "p3")], 10);
        assert!(matches!(index.complete_upload("b", "k", "u1", &stale, None), Err(Error::InvalidPart)));
        let entry = object_with(vec![part(1, "p1b"), part(3, "p3")], 10);
        index.complete_upload("b", "k", "u1", &entry, None).unwrap();
        assert_eq!(index.object("b", "k").unwrap().unwrap().parts.len(), 2);
        assert_eq!(queued(&index), ["p1", "p2"]);
        assert!(index.upload("b", "k", "u1").unwrap().is_none());
        assert!(index.parts("u1", 0, 10).unwrap().0.is_empty());
        assert!(matches!(index.commit_part("b", "k", "u1", &part(4, "late")), Err(Error::NoSuchUpload)));
        assert_eq!(queued(&index), ["late", "p1", "p2"]);

        // Overwriting the multipart object queues its manifest and every part.
        index.commit_object("b", "k", &object_with(vec![], 20), None).unwrap();
        assert_eq!(queued(&index), ["late", "manifest", "p1", "p1b", "p2", "p3"]);
    }

    #[test]
    fn completion_keeps_the_copies_a_repair_added_meanwhile() {
        let (_dir, index) = open();
        index.set_replica_target(2);
        let on = |volume: &str| Replica { volume: volume.into(), subvolume: 0 };
        let mut short = part(1, "p1");
        short.blob.replicas = vec![on("v1")];
        index.create_upload("b", "k", "u1", &UploadRecord::default()).unwrap();
        index.commit_part("b", "k", "u1", &short).unwrap();
        // The request read the part with one copy; the repairer adds the second before the
        // completion commits.
        let (_, entry) = index.repairs(None, 10).unwrap().remove(0);
        index.add_copies("p1", &entry, &[on("v2")], &[]).unwrap();
        index.complete_upload("b", "k", "u1", &object_with(vec![short], 10), None).unwrap();
        assert_eq!(index.object("b", "k").unwrap().unwrap().parts[0].blob.replicas, [on("v1"), on("v2")]);
        let queued: Vec<String> = index.repairs(None, 10).unwrap().into_iter().map(|(id, _)| id).collect();
        assert!(!queued.contains(&"p1".to_string()), "p1 is whole, nothing to repair: {queued:?}");
    }

    #[test]
    fn abort_queues_parts_and_conditions_guard_completion() {
        let (_dir, index) = open();
        index.create_upload("b", "k", "u1", &UploadRecord::default()).unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1")).unwrap();
        index.abort_upload("b", "k", "u1").unwrap();
        assert_eq!(queued(&index), ["p1"]);
        assert!(matches!(index.abort_upload("b", "k", "u1"), Err(Error::NoSuchUpload)));

        index.commit_object("b", "k", &object_with(vec![], 5), None).unwrap();
        index.create_upload("b", "k", "u2", &UploadRecord::default()).unwrap();
        index.commit_part("b", "k", "u2", &part(1, "q1")).unwrap();
        let entry = object_with(vec![part(1, "q1")], 10);
        let refused = index.complete_upload("b", "k", "u2", &entry, Some(&WriteCondition::IfNoneMatch));
        assert!(matches!(refused, Err(Error::PreconditionFailed)));
        assert!(index.upload("b", "k", "u2").unwrap().is_some(), "a refused completion changes nothing");
        index.complete_upload("b", "k", "u2", &entry, Some(&WriteCondition::IfMatch("x-2".into()))).unwrap();
    }

    #[test]
    fn a_bucket_with_an_upload_in_progress_is_not_empty() {
        let (_dir, index) = open();
        index.test_create_bucket("bb").unwrap();
        index.create_upload("b", "k", "u1", &UploadRecord::default()).unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1")).unwrap();
        assert!(matches!(index.test_delete_bucket("b"), Err(Error::BucketNotEmpty)));
        assert!(index.upload("b", "k", "u1").unwrap().is_some());
        // Another bucket whose name extends this one is not held up by it.
        index.test_delete_bucket("bb").unwrap();
        index.abort_upload("b", "k", "u1").unwrap();
        index.test_delete_bucket("b").unwrap();
        assert!(index.bucket("b").unwrap().is_none());
    }

    #[test]
    fn a_completion_is_remembered_until_forgotten() {
        let (_dir, index) = open();
        index.create_upload("b", "k", "u1", &UploadRecord::default()).unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1")).unwrap();
        assert!(index.completed_upload("u1").unwrap().is_none());
        index.complete_upload("b", "k", "u1", &object_with(vec![part(1, "p1")], 10), None).unwrap();
        let done = index.completed_upload("u1").unwrap().unwrap();
        assert_eq!((done.bucket.as_str(), done.key.as_str(), done.etag.as_str()), ("b", "k", "x-2"));
        assert_eq!(index.forget_completed(done.completed_ms).unwrap(), 0, "not older than itself");
        assert_eq!(index.forget_completed(done.completed_ms + 1).unwrap(), 1);
        assert!(index.completed_upload("u1").unwrap().is_none());
    }

    #[test]
    fn expired_uploads_go_and_their_parts_are_due_at_once() {
        let (_dir, index) = open();
        let old = UploadRecord { initiated_ms: 1_000, ..Default::default() };
        let young = UploadRecord { initiated_ms: 5_000, ..Default::default() };
        index.create_upload("b", "a/k", "u-old", &old).unwrap();
        index.create_upload("b", "a/k", "u-young", &young).unwrap();
        index.commit_part("b", "a/k", "u-old", &part(1, "old-p1")).unwrap();
        index.commit_part("b", "a/k", "u-old", &part(2, "old-p2")).unwrap();
        index.commit_part("b", "a/k", "u-young", &part(1, "young-p1")).unwrap();

        let expired = index.uploads_before(5_000).unwrap();
        assert_eq!(expired, [("b".to_string(), "a/k".to_string(), "u-old".to_string())]);
        assert!(index.expire_upload("b", "a/k", "u-old").unwrap());
        assert!(!index.expire_upload("b", "a/k", "u-old").unwrap(), "already gone");
        assert!(index.upload("b", "a/k", "u-old").unwrap().is_none());
        assert!(index.parts("u-old", 0, 10).unwrap().0.is_empty());
        assert!(index.upload("b", "a/k", "u-young").unwrap().is_some());
        assert_eq!(index.parts("u-young", 0, 10).unwrap().0.len(), 1);
        // Stamped with when the parts were uploaded (ms 1 in `part`), so due long ago.
        let due: Vec<String> = index.gc_due(1).unwrap().into_iter().map(|q| q.entry.blob.id).collect();
        assert_eq!(due, ["old-p1", "old-p2"]);
        assert!(index.gc_queued_for("b", "a/k").unwrap());
    }

    #[test]
    fn lists_uploads_with_markers_and_prefixes() {
        let (_dir, index) = open();
        for (key, id) in [("a/1", "u1"), ("a/1", "u2"), ("a/2", "u3"), ("b", "u4"), ("c/d/e", "u5")] {
            index.create_upload("b", key, id, &UploadRecord::default()).unwrap();
        }
        let ids = |page: &UploadPage| page.uploads.iter().map(|u| u.upload_id.clone()).collect::<Vec<_>>();
        let all = index.list_uploads("b", "", None, None, None, 100).unwrap();
        assert_eq!(ids(&all), ["u1", "u2", "u3", "u4", "u5"]);
        let after = index.list_uploads("b", "", None, Some("a/1"), Some("u1"), 100).unwrap();
        assert_eq!(ids(&after), ["u2", "u3", "u4", "u5"]);
        let after_key = index.list_uploads("b", "", None, Some("a/1"), None, 100).unwrap();
        assert_eq!(ids(&after_key), ["u3", "u4", "u5"]);
        let rolled = index.list_uploads("b", "", Some("/"), None, None, 100).unwrap();
        assert_eq!(rolled.prefixes, ["a/", "c/"]);
        assert_eq!(ids(&rolled), ["u4"]);
        let paged = index.list_uploads("b", "", None, None, None, 2).unwrap();
        assert!(paged.truncated);
        assert_eq!(ids(&paged), ["u1", "u2"]);
    }
}
