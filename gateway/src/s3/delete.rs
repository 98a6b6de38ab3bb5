//! DeleteObject and DeleteObjects: unlink with a tombstone (a delete marker in a versioned
//! bucket), or delete a version by id; reclaim later. DeleteObjects deletes its keys 32 at a
//! time.
//!
//! A delete writes a blob to the key's replicas first — a tombstone or marker, or a version
//! deletion naming the version deleted — so that a rebuild from the volumes sees the delete
//! and never resurrects anything, then commits in the index with one synced batch that also
//! queues what became garbage for GC.

use futures::StreamExt as _;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::write::store_empty;
use crate::access::{BucketRules, Caller};
use crate::blob_meta::{BlobKind, BlobMeta};
use crate::error::{Error, Result};
use crate::index::NULL_VERSION;
use crate::index::records::{ObjectEntry, Version, Versioning};
use crate::time::now_ms;

/// S3 caps DeleteObjects at 1000 keys per request.
const MAX_DELETE_KEYS: usize = 1000;
/// Keys of one DeleteObjects unlinked at once: their tombstone writes overlap and their commits
/// share the index's group commits, instead of a round trip and an fsync each, one after another.
const DELETES_AT_ONCE: usize = 32;

/// What a deletion did, as S3 reports it.
#[derive(Debug, Default)]
struct Deleted {
    /// The version written (a delete marker) or deleted by id.
    version_id: Option<String>,
    /// Whether that version is a delete marker.
    marker: bool,
}

/// Deletes `key` without a version id. In a bucket that never had versioning, it unlinks the
/// key with a tombstone (deleting a key that does not exist succeeds and changes nothing);
/// in a versioned one, it always writes a delete marker, as S3 does.
async fn unlink(gw: &Gateway, bucket: &str, key: &str) -> Result<Deleted> {
    let Some(bucket_record) = gw.index.bucket(bucket).await? else { return Err(Error::NoSuchBucket) };
    if bucket_record.versioning == Versioning::Unversioned
        && !matches!(gw.index.object_entry(bucket, key).await?, Some(ObjectEntry::Live(_)))
    {
        return Ok(Deleted::default());
    }
    let ts = gw.index.next_ts();
    let stored = store_empty(gw, &BlobMeta::new(BlobKind::Tombstone, bucket, key, ts, now_ms())).await?;
    // Tombstone or delete marker: the commit decides by the bucket's versioning.
    let entry = ObjectEntry::Deleted { ts, blob: stored.blob.clone(), version: Version::Unversioned };
    let version_id = gw.commit_object(bucket, key, entry, None).await?;
    Ok(Deleted { marker: version_id.is_some(), version_id })
}

/// Deletes version `version_id` of `key` for good (see `Index::delete_version`): a version
/// deletion blob naming the version's blob goes to the key's replicas first, so that a
/// rebuild does not bring the version back. Deleting a version that does not exist succeeds
/// and changes nothing. In a bucket that never had versioning, `null` is the current object.
async fn delete_version(gw: &Gateway, bucket: &str, key: &str, version_id: &str, bypass: bool) -> S3Result<Deleted> {
    let Some(bucket_record) = gw.index.bucket(bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let version_id = super::object::check_version_id(version_id)?;
    if bucket_record.versioning == Versioning::Unversioned && version_id == NULL_VERSION {
        unlink(gw, bucket, key).await?;
        return Ok(Deleted { version_id: Some(NULL_VERSION.into()), marker: false });
    }
    Ok(remove_version(gw, bucket, key, version_id, bypass).await?)
}

/// Deletes the version `version_id` (valid) of `bucket`/`key` for good: see [`delete_version`].
async fn remove_version(gw: &Gateway, bucket: &str, key: &str, version_id: &str, bypass: bool) -> Result<Deleted> {
    let Some(version) = gw.index.object_version(bucket, key, version_id).await? else {
        return Ok(Deleted { version_id: Some(version_id.to_string()), marker: false });
    };
    // Refused early, before a blob is written; the index refuses it again when it commits.
    if let ObjectEntry::Live(record) = &version
        && let Some(why) = record.lock.forbids_deletion(now_ms(), bypass)
    {
        return Err(Error::ObjectLocked(why));
    }
    let ts = gw.index.next_ts();
    let meta = BlobMeta {
        version: Some(version.main_blob().id.clone()),
        ..BlobMeta::new(BlobKind::VersionDeleted, bucket, key, ts, now_ms())
    };
    let stored = store_empty(gw, &meta).await?;
    let removed = gw.index.delete_version(bucket, key, version_id, &stored.blob, bypass).await?;
    let marker = match removed {
        Some((removed, commit)) => {
            crate::commit_log::log(&gw.index, &gw.cluster, &gw.volumes, &stored.blob, commit).await;
            matches!(removed, ObjectEntry::Deleted { .. })
        }
        // Deleted meanwhile by another request.
        None => matches!(version, ObjectEntry::Deleted { .. }),
    };
    Ok(Deleted { version_id: Some(version_id.to_string()), marker })
}

impl Gateway {
    /// Expires the current version of `bucket`/`key` as DeleteObject without a version id
    /// deletes it (the lifecycle job).
    pub(crate) async fn expire_current(&self, bucket: &str, key: &str) -> Result<()> {
        unlink(self, bucket, key).await.map(|_| ())
    }

    /// Deletes version `version_id` of `bucket`/`key` as DeleteObject with a version id does,
    /// never bypassing GOVERNANCE retention (the lifecycle job): `ObjectLocked` when a lock
    /// keeps it.
    pub(crate) async fn remove_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<()> {
        remove_version(self, bucket, key, version_id, false).await.map(|_| ())
    }
}

/// DeleteObject or one key of DeleteObjects; `bypass` is `x-amz-bypass-governance-retention`.
async fn delete(gw: &Gateway, bucket: &str, key: &str, version_id: Option<&str>, bypass: bool) -> S3Result<Deleted> {
    match version_id {
        Some(version_id) => delete_version(gw, bucket, key, version_id, bypass).await,
        None => Ok(unlink(gw, bucket, key).await?),
    }
}

pub(super) async fn delete_object(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let deleted = delete(gw, &input.bucket, &input.key, input.version_id.as_deref(), bypass).await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: deleted.marker.then_some(true),
        version_id: deleted.version_id,
        ..Default::default()
    }))
}

pub(super) async fn delete_objects(
    gw: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let Some(bucket_record) = gw.index.bucket(&input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let rules = BucketRules::new(Caller::of(&req.extensions)?, &input.bucket, Some(&bucket_record))?;
    let quiet = input.delete.quiet.unwrap_or(false);
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let bucket = &input.bucket;
    let rules = &rules;
    let outcomes: Vec<_> = futures::stream::iter(input.delete.objects)
        .map(|object| async move {
            // The bucket's policy may allow or deny each key on its own.
            let result = match rules.may_delete(&gw.index, &object.key, object.version_id.as_deref()).await {
                Ok(true) => delete(gw, bucket, &object.key, object.version_id.as_deref(), bypass).await,
                Ok(false) => Err(s3_error!(AccessDenied, "Access Denied")),
                Err(err) => Err(err),
            };
            (object, result)
        })
        .buffered(DELETES_AT_ONCE)
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (object, result) in outcomes {
        match result {
            Ok(_) if quiet => {}
            Ok(done) => deleted.push(DeletedObject {
                key: Some(object.key),
                version_id: object.version_id,
                delete_marker: done.marker.then_some(true),
                // A marker written now, or deleted by id.
                delete_marker_version_id: done.version_id.filter(|_| done.marker),
            }),
            Err(err) => {
                errors.push(s3s::dto::Error {
                    code: Some(err.code().as_str().to_string()),
                    key: Some(object.key),
                    message: err.message().map(str::to_string),
                    version_id: object.version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}
