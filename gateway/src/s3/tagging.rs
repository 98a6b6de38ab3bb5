//! GetObjectTagging, PutObjectTagging, DeleteObjectTagging. Tags live in the object's index
//! record; a change writes a tags blob to the volumes (so a rebuild restores it) and then
//! rewrites the record (same version, same data blobs, the new tags blob). PutObjectAcl changes
//! a version the same way (`change_version`).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::Gateway;
use super::object::lookup_version;
use super::write::{self, check_tags, tag_pairs};
use crate::blob_meta::{BlobKind, BlobMeta};
use crate::index::records::{CommitOrder, ObjectRecord, TagsBlob};
use crate::index::{Committed, VersionChange};
use crate::time::now_ms;

pub(super) async fn get_object_tagging(
    gw: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    let (record, version_id) = lookup_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let tag_set = record.tags.into_iter().map(|(key, value)| Tag { key: Some(key), value: Some(value) }).collect();
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set, version_id }))
}

/// Makes a change to a version after its write (its tags, its ACL): writes it to the volumes as a
/// change blob naming the version, commits it (see `index/tags.rs`), and logs it in the volumes'
/// commit logs. A change that lost to an overwrite or a newer change is ordered before it, as a
/// rebuild orders it, and still succeeds. The version is the current one, or the one
/// `versionId` names; `make` says the change from its record. Returns the version id to answer
/// with.
pub(super) async fn change_version(
    gw: &Gateway,
    (bucket, key, version_id): (String, String, Option<String>),
    make: impl FnOnce(&ObjectRecord) -> S3Result<VersionChange>,
) -> S3Result<Option<String>> {
    let (record, version_id) = lookup_version(gw, &bucket, &key, version_id.as_deref()).await?;
    let change = make(&record)?;
    let version = record.blob.id;
    let ts = gw.index.next_ts();
    let (kind, tags, acl) = match &change {
        VersionChange::Tags(tags) => (BlobKind::Tags, tags.clone(), None),
        VersionChange::Acl(acl) => (BlobKind::Acl, Vec::new(), acl.clone()),
    };
    let meta =
        BlobMeta { tags, acl, version: Some(version.clone()), ..BlobMeta::new(kind, &bucket, &key, ts, now_ms()) };
    let stored = write::store_empty(gw, &meta).await?;
    let blob = TagsBlob { ts, blob: stored.blob.clone() };
    let committed = gw.index.change_version(&bucket, &key, &version, change, blob).await?;
    if committed == Committed::Current {
        crate::commit_log::log(&gw.index, &gw.cluster, &gw.volumes, &stored.blob, CommitOrder::plain(ts)).await;
    }
    // Registered in flight until here, so GC cannot take the blob for an orphan before the
    // record references it.
    drop(stored);
    Ok(version_id)
}

pub(super) async fn put_object_tagging(
    gw: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    let tags = tag_pairs(input.tagging.tag_set);
    check_tags(&tags)?;
    let version_id =
        change_version(gw, (input.bucket, input.key, input.version_id), |_| Ok(VersionChange::Tags(tags))).await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub(super) async fn delete_object_tagging(
    gw: &Gateway,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    let version_id =
        change_version(gw, (input.bucket, input.key, input.version_id), |_| Ok(VersionChange::Tags(Vec::new())))
            .await?;
    Ok(S3Response::with_status(DeleteObjectTaggingOutput { version_id }, http::StatusCode::NO_CONTENT))
}
