//! DeleteObject and DeleteObjects: unlink with a tombstone, reclaim later. DeleteObjects unlinks
//! its keys 32 at a time.
//!
//! A delete writes tombstone blobs to the key's replicas first (so a rebuild from the volumes
//! sees the delete and never resurrects the key), then commits a tombstone entry in the index
//! with one synced batch that also queues the old version's blobs for GC.

use futures::StreamExt as _;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::blob_meta::{BlobKind, BlobMeta};
use crate::error::{Error, Result};
use crate::index::records::{ObjectEntry, Version};
use crate::time::now_ms;

/// S3 caps DeleteObjects at 1000 keys per request.
const MAX_DELETE_KEYS: usize = 1000;
/// Keys of one DeleteObjects unlinked at once: their tombstone writes overlap and their commits
/// share the index's group commits, instead of a round trip and an fsync each, one after another.
const DELETES_AT_ONCE: usize = 32;

/// Unlinks `key`; deleting a key that does not exist succeeds and changes nothing.
async fn unlink(gw: &Gateway, bucket: &str, key: &str) -> Result<()> {
    match gw.index.object_entry(bucket, key).await? {
        Some(ObjectEntry::Live(_)) => {}
        Some(ObjectEntry::Deleted { .. }) => return Ok(()),
        None if gw.index.bucket(bucket).await?.is_none() => return Err(Error::NoSuchBucket),
        None => return Ok(()),
    }
    let ts = gw.index.next_ts();
    let meta = BlobMeta::new(BlobKind::Tombstone, bucket, key, ts, now_ms());
    let empty = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
    // `stored` keeps the tombstone blob hidden from GC until it is committed.
    let stored = super::write::store(gw, &meta, Some(0), None, None, empty).await?;
    // Tombstone or delete marker: the commit decides by the bucket's versioning.
    let entry = ObjectEntry::Deleted { ts, blob: stored.blob.clone(), version: Version::Unversioned };
    gw.commit_object(bucket, key, entry, None).await?;
    Ok(())
}

pub(super) async fn delete_object(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    unlink(gw, &req.input.bucket, &req.input.key).await?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
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
    if gw.index.bucket(&input.bucket).await?.is_none() {
        return Err(Error::NoSuchBucket.into());
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bucket = &input.bucket;
    let outcomes: Vec<_> = futures::stream::iter(input.delete.objects)
        .map(|object| async move {
            // Buckets are never versioned: only the `null` version exists.
            let result = match object.version_id.as_deref().map_or(Ok(()), crate::unsupported::check_version_id) {
                Ok(()) => unlink(gw, bucket, &object.key).await.map_err(s3s::S3Error::from),
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
            Ok(()) if quiet => {}
            Ok(()) => deleted.push(DeletedObject { key: Some(object.key), ..Default::default() }),
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
