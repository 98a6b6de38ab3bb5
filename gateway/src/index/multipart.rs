//! Multipart uploads in the index: the upload records, their parts, and completion, which
//! turns chosen parts into an object in one transaction.

use super::records::{CompletedUpload, ObjectEntry, PartRecord, UploadRecord, decode};
use super::{Index, PAST_UTF8, WriteCondition, object_key, prefix_end, read_in, write_in};
use crate::engine::{Row, Table, Transaction};
use crate::error::{Error, Result};
use crate::in_transaction;

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

/// The part rows (key and record) of an upload, in part order, as `tx` sees them.
pub(super) async fn parts_in(tx: &mut dyn Transaction, upload_id: &str) -> Result<Vec<Row>> {
    let mut scope = upload_id.as_bytes().to_vec();
    scope.push(0);
    let end = prefix_end(&scope);
    // At most 10,000 parts per upload.
    tx.scan(Table::Parts, &scope, end.as_deref(), 10_001).await
}

async fn require_upload_in(tx: &mut dyn Transaction, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord> {
    read_in(tx, Table::Uploads, &upload_key(bucket, key, upload_id)).await?.ok_or(Error::NoSuchUpload)
}

impl Index {
    /// Records a new upload.
    pub async fn create_upload(&self, bucket: &str, key: &str, upload_id: &str, record: &UploadRecord) -> Result<()> {
        in_transaction!(self.engine, tx, {
            if self.bucket_in(tx, bucket).await?.is_none() {
                return Err(Error::NoSuchBucket);
            }
            write_in(tx, Table::Uploads, &upload_key(bucket, key, upload_id), record)
        })
    }

    /// An upload in progress.
    pub async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<UploadRecord>> {
        self.read(Table::Uploads, &upload_key(bucket, key, upload_id)).await
    }

    /// Stores a part, replacing (and queueing for GC) any earlier part with its number. If
    /// the upload is gone (completed or aborted meanwhile) the new blob is queued instead.
    pub async fn commit_part(&self, bucket: &str, key: &str, upload_id: &str, part: &PartRecord) -> Result<()> {
        in_transaction!(self.engine, tx, {
            if read_in::<UploadRecord>(tx, Table::Uploads, &upload_key(bucket, key, upload_id)).await?.is_none() {
                self.queue_gc(tx, bucket, key, &part.blob, part.size)?;
                return Ok(Err(Error::NoSuchUpload));
            }
            let at = part_key(upload_id, part.number);
            if let Some(old) = read_in::<PartRecord>(tx, Table::Parts, &at).await? {
                self.queue_gc(tx, bucket, key, &old.blob, old.size)?;
            }
            self.consume_claim(tx, &part.blob.id).await?;
            self.queue_repairs(tx, bucket, key, Some(upload_id), [&part.blob]).await?;
            write_in(tx, Table::Parts, &at, part)?;
            Ok(Ok(()))
        })?
    }

    /// Parts of an upload numbered above `after`, ascending, at most `max`; and whether more
    /// follow.
    pub async fn parts(&self, upload_id: &str, after: u32, max: usize) -> Result<(Vec<PartRecord>, bool)> {
        let Some(first) = after.checked_add(1) else { return Ok((Vec::new(), false)) };
        let mut scope = upload_id.as_bytes().to_vec();
        scope.push(0);
        let end = prefix_end(&scope);
        let rows =
            self.engine.scan(Table::Parts, &part_key(upload_id, first), end.as_deref(), max.saturating_add(1)).await?;
        let more = rows.len() > max;
        let parts = rows.iter().take(max).map(|(_, value)| decode(value)).collect::<Result<Vec<_>>>()?;
        Ok((parts, more))
    }

    /// Completes an upload: `entry` (whose parts were chosen from the stored ones) becomes the
    /// key's current version if `condition` holds, the upload and its part records go, and
    /// the blobs of unchosen parts and of the replaced version are queued for GC. A part
    /// replaced since `entry` was built fails the completion with `InvalidPart`. The same
    /// transaction remembers the completion (see [`CompletedUpload`]) for retries.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        entry: &ObjectEntry,
        condition: Option<&WriteCondition>,
    ) -> Result<super::records::CommitOrder> {
        let record = match entry {
            ObjectEntry::Live(record) => record,
            ObjectEntry::Deleted { .. } => return Err(Error::Index("completing an upload into a tombstone".into())),
        };
        in_transaction!(self.engine, tx, {
            require_upload_in(tx, bucket, key, upload_id).await?;
            let stored: Vec<PartRecord> =
                parts_in(tx, upload_id).await?.iter().map(|(_, value)| decode(value)).collect::<Result<_>>()?;
            // Each part's copies as recorded now, in this transaction: the repairer or a
            // rebalance may have added or moved copies since the request read the parts.
            let mut current = record.clone();
            for part in &mut current.parts {
                let stored = stored.iter().find(|s| s.number == part.number && s.blob.id == part.blob.id);
                part.blob.replicas = stored.ok_or(Error::InvalidPart)?.blob.replicas.clone();
            }
            let chosen = current.parts.clone();
            let order = self.stage_object(tx, bucket, key, &ObjectEntry::Live(current), condition).await?;
            for part in &stored {
                if !chosen.iter().any(|c| c.blob.id == part.blob.id) {
                    self.queue_gc(tx, bucket, key, &part.blob, part.size)?;
                }
                tx.delete(Table::Parts, &part_key(upload_id, part.number));
            }
            tx.delete(Table::Uploads, &upload_key(bucket, key, upload_id));
            let completed = CompletedUpload {
                bucket: bucket.to_string(),
                key: key.to_string(),
                etag: record.etag.clone(),
                checksum: record.checksum.clone(),
                completed_ms: crate::time::now_ms(),
            };
            write_in(tx, Table::Completed, upload_id.as_bytes(), &completed)?;
            Ok(order)
        })
    }

    /// The completion of `upload_id`, while it is remembered.
    pub async fn completed_upload(&self, upload_id: &str) -> Result<Option<CompletedUpload>> {
        self.read(Table::Completed, upload_id.as_bytes()).await
    }

    /// Forgets completions older than `before_ms`; how many.
    pub async fn forget_completed(&self, before_ms: u64) -> Result<u64> {
        let mut old = Vec::new();
        for (upload_id, value) in self.scan_all(Table::Completed, b"", None).await? {
            if decode::<CompletedUpload>(&value)?.completed_ms < before_ms {
                old.push(upload_id);
            }
        }
        in_transaction!(self.engine, tx, {
            for upload_id in &old {
                tx.delete(Table::Completed, upload_id);
            }
            Ok(())
        })?;
        Ok(old.len() as u64)
    }

    /// Drops an upload; its parts' blobs go to the GC queue.
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        in_transaction!(self.engine, tx, {
            require_upload_in(tx, bucket, key, upload_id).await?;
            for (at, value) in parts_in(tx, upload_id).await? {
                let part: PartRecord = decode(&value)?;
                self.queue_gc(tx, bucket, key, &part.blob, part.size)?;
                tx.delete(Table::Parts, &at);
            }
            tx.delete(Table::Uploads, &upload_key(bucket, key, upload_id));
            Ok(())
        })
    }

    /// Uploads (bucket, key, upload id) created before `before_ms`, in index order.
    pub async fn uploads_before(&self, before_ms: u64) -> Result<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        for (raw_key, value) in self.scan_all(Table::Uploads, b"", None).await? {
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
    pub async fn expire_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<bool> {
        in_transaction!(self.engine, tx, {
            if read_in::<UploadRecord>(tx, Table::Uploads, &upload_key(bucket, key, upload_id)).await?.is_none() {
                return Ok(false);
            }
            let now = crate::time::now_ms();
            for (at, value) in parts_in(tx, upload_id).await? {
                let part: PartRecord = decode(&value)?;
                self.queue_gc_at(tx, part.modified_ms.min(now), bucket, key, &part.blob, part.size)?;
                tx.delete(Table::Parts, &at);
            }
            tx.delete(Table::Uploads, &upload_key(bucket, key, upload_id));
            Ok(true)
        })
    }

    /// Whether `bucket` has any upload in progress.
    pub async fn has_uploads(&self, bucket: &str) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        Self::has_uploads_in(tx.as_mut(), bucket).await
    }

    /// Whether `bucket` has any upload in progress, as `tx` sees it.
    pub(super) async fn has_uploads_in(tx: &mut dyn Transaction, bucket: &str) -> Result<bool> {
        let scope = object_key(bucket, "");
        let end = prefix_end(&scope);
        Ok(!tx.scan(Table::Uploads, &scope, end.as_deref(), 1).await?.is_empty())
    }

    /// Uploads of `bucket` under `prefix`, ordered by key then upload id, strictly after
    /// (`key_marker`, `upload_id_marker`); keys with `delimiter` past the prefix roll up
    /// into common prefixes.
    pub async fn list_uploads(
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
        let mut scope_end = scope.clone();
        scope_end.push(PAST_UTF8);
        let base = bucket.len() + 1;
        let mut at = match key_marker.filter(|m| !m.is_empty()) {
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
                at.max(scope.clone())
            }
            None => scope.clone(),
        };
        let mut page = UploadPage::default();
        'scans: loop {
            let want = (max.saturating_sub(page.uploads.len() + page.prefixes.len()) + 2).min(1000);
            let rows = self.engine.scan(Table::Uploads, &at, Some(&scope_end), want).await?;
            let exhausted = rows.len() < want;
            let mut next = None;
            for (raw_key, value) in &rows {
                if !raw_key.starts_with(&scope) {
                    break 'scans;
                }
                next = Some(raw_key.clone());
                let Some(split) = raw_key[base..].iter().rposition(|b| *b == 0) else { continue };
                let key = String::from_utf8_lossy(&raw_key[base..base + split]).into_owned();
                let upload_id = String::from_utf8_lossy(&raw_key[base + split + 1..]).into_owned();
                if page.uploads.len() + page.prefixes.len() == max {
                    page.truncated = true;
                    break 'scans;
                }
                if let Some(d) = delimiter
                    && let Some(pos) = key[prefix.len()..].find(d)
                {
                    let common = key[..prefix.len() + pos + d.len()].to_string();
                    at = object_key(bucket, &common);
                    at.push(PAST_UTF8);
                    page.prefixes.push(common);
                    continue 'scans;
                }
                page.uploads.push(UploadItem { key, upload_id, record: decode(value)? });
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
            version: Default::default(),
            lock: Default::default(),
            lock_blob: None,
            acl: None,
            acl_blob: None,
        }))
    }

    async fn open() -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.test_create_bucket("b").await.unwrap();
        (dir, index)
    }

    async fn queued(index: &Index) -> Vec<String> {
        super::super::tests::queued(index).await
    }

    #[tokio::test]
    async fn parts_replace_and_complete_queues_the_rest() {
        let (_dir, index) = open().await;
        index.create_upload("b", "k", "u1", &UploadRecord::default()).await.unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1")).await.unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1b")).await.unwrap();
        index.commit_part("b", "k", "u1", &part(2, "p2")).await.unwrap();
        index.commit_part("b", "k", "u1", &part(3, "p3")).await.unwrap();
        assert_eq!(queued(&index).await, ["p1"]);
        let (first, more) = index.parts("u1", 0, 2).await.unwrap();
        assert_eq!(first.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2]);
        assert!(more);
        assert_eq!(index.parts("u1", 2, 10).await.unwrap().0.len(), 1);

        // A stale part (p1 was replaced) is refused.
        let stale = object_with(vec![part(1, "p1"), part(3, "p3")], 10);
        assert!(matches!(index.complete_upload("b", "k", "u1", &stale, None).await, Err(Error::InvalidPart)));
        let entry = object_with(vec![part(1, "p1b"), part(3, "p3")], 10);
        index.complete_upload("b", "k", "u1", &entry, None).await.unwrap();
        assert_eq!(index.object("b", "k").await.unwrap().unwrap().parts.len(), 2);
        assert_eq!(queued(&index).await, ["p1", "p2"]);
        assert!(index.upload("b", "k", "u1").await.unwrap().is_none());
        assert!(index.parts("u1", 0, 10).await.unwrap().0.is_empty());
        assert!(matches!(index.commit_part("b", "k", "u1", &part(4, "late")).await, Err(Error::NoSuchUpload)));
        assert_eq!(queued(&index).await, ["late", "p1", "p2"]);

        // Overwriting the multipart object queues its manifest and every part.
        index.commit_object("b", "k", &object_with(vec![], 20), None).await.unwrap();
        assert_eq!(queued(&index).await, ["late", "manifest", "p1", "p1b", "p2", "p3"]);
    }

    #[tokio::test]
    async fn completion_keeps_the_copies_a_repair_added_meanwhile() {
        let (_dir, index) = open().await;
        index.set_replica_target(2);
        let on = |volume: &str| Replica { volume: volume.into(), subvolume: 0 };
        let mut short = part(1, "p1");
        short.blob.replicas = vec![on("v1")];
        index.create_upload("b", "k", "u1", &UploadRecord::default()).await.unwrap();
        index.commit_part("b", "k", "u1", &short).await.unwrap();
        // The request read the part with one copy; the repairer adds the second before the
        // completion commits.
        let (_, entry) = index.repairs(None, 10).await.unwrap().remove(0);
        index.add_copies("p1", &entry, &[on("v2")], &[]).await.unwrap();
        index.complete_upload("b", "k", "u1", &object_with(vec![short], 10), None).await.unwrap();
        assert_eq!(index.object("b", "k").await.unwrap().unwrap().parts[0].blob.replicas, [on("v1"), on("v2")]);
        let queued: Vec<String> = index.repairs(None, 10).await.unwrap().into_iter().map(|(id, _)| id).collect();
        assert!(!queued.contains(&"p1".to_string()), "p1 is whole, nothing to repair: {queued:?}");
    }

    #[tokio::test]
    async fn abort_queues_parts_and_conditions_guard_completion() {
        let (_dir, index) = open().await;
        index.create_upload("b", "k", "u1", &UploadRecord::default()).await.unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1")).await.unwrap();
        index.abort_upload("b", "k", "u1").await.unwrap();
        assert_eq!(queued(&index).await, ["p1"]);
        assert!(matches!(index.abort_upload("b", "k", "u1").await, Err(Error::NoSuchUpload)));

        index.commit_object("b", "k", &object_with(vec![], 5), None).await.unwrap();
        index.create_upload("b", "k", "u2", &UploadRecord::default()).await.unwrap();
        index.commit_part("b", "k", "u2", &part(1, "q1")).await.unwrap();
        let entry = object_with(vec![part(1, "q1")], 10);
        let refused = index.complete_upload("b", "k", "u2", &entry, Some(&WriteCondition::IfNoneMatch)).await;
        assert!(matches!(refused, Err(Error::PreconditionFailed)));
        assert!(index.upload("b", "k", "u2").await.unwrap().is_some(), "a refused completion changes nothing");
        index.complete_upload("b", "k", "u2", &entry, Some(&WriteCondition::IfMatch("x-2".into()))).await.unwrap();
    }

    #[tokio::test]
    async fn a_bucket_with_an_upload_in_progress_is_not_empty() {
        let (_dir, index) = open().await;
        index.test_create_bucket("bb").await.unwrap();
        index.create_upload("b", "k", "u1", &UploadRecord::default()).await.unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1")).await.unwrap();
        assert!(matches!(index.test_delete_bucket("b").await, Err(Error::BucketNotEmpty)));
        assert!(index.upload("b", "k", "u1").await.unwrap().is_some());
        // Another bucket whose name extends this one is not held up by it.
        index.test_delete_bucket("bb").await.unwrap();
        index.abort_upload("b", "k", "u1").await.unwrap();
        index.test_delete_bucket("b").await.unwrap();
        assert!(index.bucket("b").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_completion_is_remembered_until_forgotten() {
        let (_dir, index) = open().await;
        index.create_upload("b", "k", "u1", &UploadRecord::default()).await.unwrap();
        index.commit_part("b", "k", "u1", &part(1, "p1")).await.unwrap();
        assert!(index.completed_upload("u1").await.unwrap().is_none());
        index.complete_upload("b", "k", "u1", &object_with(vec![part(1, "p1")], 10), None).await.unwrap();
        let done = index.completed_upload("u1").await.unwrap().unwrap();
        assert_eq!((done.bucket.as_str(), done.key.as_str(), done.etag.as_str()), ("b", "k", "x-2"));
        assert_eq!(index.forget_completed(done.completed_ms).await.unwrap(), 0, "not older than itself");
        assert_eq!(index.forget_completed(done.completed_ms + 1).await.unwrap(), 1);
        assert!(index.completed_upload("u1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn expired_uploads_go_and_their_parts_are_due_at_once() {
        let (_dir, index) = open().await;
        let old = UploadRecord { initiated_ms: 1_000, ..Default::default() };
        let young = UploadRecord { initiated_ms: 5_000, ..Default::default() };
        index.create_upload("b", "a/k", "u-old", &old).await.unwrap();
        index.create_upload("b", "a/k", "u-young", &young).await.unwrap();
        index.commit_part("b", "a/k", "u-old", &part(1, "old-p1")).await.unwrap();
        index.commit_part("b", "a/k", "u-old", &part(2, "old-p2")).await.unwrap();
        index.commit_part("b", "a/k", "u-young", &part(1, "young-p1")).await.unwrap();

        let expired = index.uploads_before(5_000).await.unwrap();
        assert_eq!(expired, [("b".to_string(), "a/k".to_string(), "u-old".to_string())]);
        assert!(index.expire_upload("b", "a/k", "u-old").await.unwrap());
        assert!(!index.expire_upload("b", "a/k", "u-old").await.unwrap(), "already gone");
        assert!(index.upload("b", "a/k", "u-old").await.unwrap().is_none());
        assert!(index.parts("u-old", 0, 10).await.unwrap().0.is_empty());
        assert!(index.upload("b", "a/k", "u-young").await.unwrap().is_some());
        assert_eq!(index.parts("u-young", 0, 10).await.unwrap().0.len(), 1);
        // Stamped with when the parts were uploaded (ms 1 in `part`), so due long ago.
        let due: Vec<String> = index.gc_due_all(1).await.unwrap().into_iter().map(|q| q.entry.blob.id).collect();
        assert_eq!(due, ["old-p1", "old-p2"]);
        assert!(index.gc_queued("b", "a/k").await.unwrap());
    }

    #[tokio::test]
    async fn lists_uploads_with_markers_and_prefixes() {
        let (_dir, index) = open().await;
        for (key, id) in [("a/1", "u1"), ("a/1", "u2"), ("a/2", "u3"), ("b", "u4"), ("c/d/e", "u5")] {
            index.create_upload("b", key, id, &UploadRecord::default()).await.unwrap();
        }
        let ids = |page: &UploadPage| page.uploads.iter().map(|u| u.upload_id.clone()).collect::<Vec<_>>();
        let all = index.list_uploads("b", "", None, None, None, 100).await.unwrap();
        assert_eq!(ids(&all), ["u1", "u2", "u3", "u4", "u5"]);
        let after = index.list_uploads("b", "", None, Some("a/1"), Some("u1"), 100).await.unwrap();
        assert_eq!(ids(&after), ["u2", "u3", "u4", "u5"]);
        let after_key = index.list_uploads("b", "", None, Some("a/1"), None, 100).await.unwrap();
        assert_eq!(ids(&after_key), ["u3", "u4", "u5"]);
        let rolled = index.list_uploads("b", "", Some("/"), None, None, 100).await.unwrap();
        assert_eq!(rolled.prefixes, ["a/", "c/"]);
        assert_eq!(ids(&rolled), ["u4"]);
        let paged = index.list_uploads("b", "", None, None, None, 2).await.unwrap();
        assert!(paged.truncated);
        assert_eq!(ids(&paged), ["u1", "u2"]);
    }
}
