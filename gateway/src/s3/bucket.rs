//! Bucket operations. CreateBucket and DeleteBucket write a bucket blob to the volumes
//! before they commit and log it in the volumes' commit logs after (see `index/buckets.rs`),
//! so a rebuild restores empty buckets and never brings back deleted ones.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::write::{self, Stored};
use crate::access::Caller;
use crate::blob_meta::{BlobKind, BlobMeta};
use crate::error::{Error, Result};
use crate::index::records::{BucketRecord, CommitOrder, ObjectLockConfig, Versioning};
use crate::index::{BUCKET_KEY, BucketConfig};
use crate::owner::Owner;
use crate::time::{now_ms, timestamp_from_ms};

/// The most buckets one ListBuckets page holds, and the page size S3 applies when a request
/// pages (names a prefix or a continuation token) without `max-buckets`.
const MAX_BUCKETS_PAGE: i32 = 10_000;

/// Lists the caller's buckets (see [`Caller::lists`]) by name, a page at a time when asked
/// (`max-buckets`, `continuation-token`: the last name of the previous page, `prefix`).
pub(super) async fn list_buckets(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let caller = Caller::of(&req.extensions)?;
    let input = &req.input;
    let pages = input.max_buckets.is_some() || input.continuation_token.is_some() || input.prefix.is_some();
    let limit = match input.max_buckets {
        Some(n) if !(1..=MAX_BUCKETS_PAGE).contains(&n) => {
            return Err(s3_error!(InvalidArgument, "max-buckets must be between 1 and {MAX_BUCKETS_PAGE}"));
        }
        Some(n) => n as usize,
        None if pages => MAX_BUCKETS_PAGE as usize,
        None => usize::MAX,
    };
    if let Some(region) = &input.bucket_region
        && *region != gw.region
    {
        // Every bucket is in this endpoint's region.
        return Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(Vec::new()),
            owner: Some(caller.owner.to_s3()),
            prefix: input.prefix.clone(),
            ..Default::default()
        }));
    }
    let prefix = input.prefix.as_deref().unwrap_or("");
    let after = input.continuation_token.as_deref().unwrap_or("");
    let mut listed = gw
        .index
        .buckets()
        .await?
        .into_iter()
        .filter(|(name, record)| name.starts_with(prefix) && name.as_str() > after && caller.lists(name, record));
    let buckets: Vec<Bucket> = listed
        .by_ref()
        .take(limit)
        .map(|(name, record)| Bucket {
            name: Some(name),
            creation_date: Some(timestamp_from_ms(record.created_ms)),
            bucket_region: Some(gw.region.clone()),
        })
        .collect();
    let more = listed.next().is_some();
    let continuation_token = more.then(|| buckets.last().and_then(|b| b.name.clone())).flatten();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(caller.owner.to_s3()),
        continuation_token,
        prefix: input.prefix.clone(),
    }))
}

pub(super) async fn create_bucket(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let bucket = req.input.bucket;
    let wanted_region = req
        .input
        .create_bucket_configuration
        .and_then(|c| c.location_constraint)
        .map(|l| l.as_str().to_string())
        .filter(|l| !l.is_empty());
    if let Some(region) = wanted_region
        && region != gw.region
    {
        return Err(s3_error!(
            InvalidLocationConstraint,
            "The specified location-constraint is not valid: this endpoint serves {}",
            gw.region
        ));
    }
    let owner = Caller::of(&req.extensions)?.owner.clone();
    let requested = crate::acl::Requested::from_headers(&req.headers)?;
    let ownership = req.input.object_ownership.map(|o| crate::acl::Ownership::parse(o.as_str())).transpose()?;
    let (acl, ownership) = crate::acl::for_new_bucket(requested.as_ref(), ownership, &owner.id)?;
    // Fail fast, before a blob is written; the commit checks again.
    if let Some(existing) = gw.index.bucket(&bucket).await? {
        return Err(name_taken(&owner, &existing));
    }
    let ts = gw.index.bucket_write_ts(&bucket).await?;
    let created_ms = now_ms();
    // Object lock enabled at creation turns versioning on, as on S3.
    let locked = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
    let config = BucketConfig {
        versioning: if locked { Versioning::Enabled } else { Versioning::Unversioned },
        object_lock: locked.then(ObjectLockConfig::default),
        acl,
        ownership,
        ..Default::default()
    };
    let meta = BlobMeta::bucket(&bucket, ts, created_ms, &owner.stored_id(), &config);
    let stored = write::store_empty(gw, &meta).await?;
    let mut record = BucketRecord {
        created_ms,
        ts,
        blob: Some(stored.blob.clone()),
        owner: owner.stored_id(),
        ..Default::default()
    };
    record.configure(&config);
    if !gw.index.create_bucket_as(&bucket, record).await? {
        let existing = gw.index.bucket(&bucket).await?;
        return Err(existing.map_or_else(|| Error::OperationAborted.into(), |b| name_taken(&owner, &b)));
    }
    crate::commit_log::log(&gw.index, &gw.cluster, &gw.volumes, &stored.blob, CommitOrder::plain(ts)).await;
    tracing::info!(%bucket, "bucket created");
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) }))
}

/// S3's answer to creating a bucket whose name is taken: yours, or somebody else's.
fn name_taken(owner: &Owner, existing: &BucketRecord) -> s3s::S3Error {
    if owner.owns(existing) {
        s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        )
    } else {
        s3_error!(
            BucketAlreadyExists,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
        )
    }
}

/// Writes a bucket blob (no data; kind `bucket` or `bucket_deleted`, under the empty key) to
/// the volumes the ring picks for the bucket, as every blob is written, so that a rebuild
/// knows the bucket exists, even empty, or was deleted. `modified_ms` is the bucket's
/// creation time for a creation blob.
async fn store_bucket_blob(gw: &Gateway, kind: BlobKind, bucket: &str, ts: u64, modified_ms: u64) -> Result<Stored> {
    write::store_empty(gw, &BlobMeta::new(kind, bucket, BUCKET_KEY, ts, modified_ms)).await
}

/// Changes `bucket`'s configuration (versioning, object lock, lifecycle, tags) with `change`, which may refuse
/// it. The whole new configuration goes to the volumes first, in a bucket blob that replaces
/// the bucket's (see `Index::configure_bucket`), so that a rebuild restores it.
pub(super) async fn reconfigure(
    gw: &Gateway,
    bucket: &str,
    change: impl FnOnce(&mut BucketConfig) -> S3Result<()>,
) -> S3Result<BucketConfig> {
    let Some(record) = gw.index.bucket(bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let expected = record.config();
    let mut new = expected.clone();
    change(&mut new)?;
    if let Some(refused) = expected.refuses(&new) {
        return Err(refused.into());
    }
    if new == expected {
        return Ok(new);
    }
    let ts = gw.index.bucket_write_ts(bucket).await?;
    let meta = BlobMeta::bucket(bucket, ts, record.created_ms, &record.owner, &new);
    let stored = write::store_empty(gw, &meta).await?;
    gw.index.configure_bucket(bucket, &expected, &new, ts, &stored.blob).await?;
    crate::commit_log::log(&gw.index, &gw.cluster, &gw.volumes, &stored.blob, CommitOrder::plain(ts)).await;
    Ok(new)
}

pub(super) async fn head_bucket(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    if gw.index.bucket(&req.input.bucket).await?.is_none() {
        return Err(Error::NoSuchBucket.into());
    }
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(gw.region.clone()), ..Default::default() }))
}

pub(super) async fn delete_bucket(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = req.input.bucket;
    // Refuse before writing anything when the answer is already known; the commit checks
    // again, because objects or uploads may arrive while the deletion blob is written.
    let name = bucket.clone();
    gw.index.check_bucket_deletable(&name).await?;
    let ts = gw.index.bucket_write_ts(&bucket).await?;
    let stored = store_bucket_blob(gw, BlobKind::BucketDeleted, &bucket, ts, now_ms()).await?;
    let (name, blob) = (bucket.clone(), stored.blob.clone());
    // A refusal here (objects or uploads arrived meanwhile) leaves the deletion blob on the
    // volumes until GC, but never in a commit log, so no rebuild trusts it.
    gw.index.delete_bucket(&name, ts, &blob).await?;
    crate::commit_log::log(&gw.index, &gw.cluster, &gw.volumes, &stored.blob, CommitOrder::plain(ts)).await;
    tracing::info!(%bucket, "bucket deleted");
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn get_bucket_location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    if gw.index.bucket(&req.input.bucket).await?.is_none() {
        return Err(Error::NoSuchBucket.into());
    }
    // S3 reports us-east-1 as an empty LocationConstraint.
    let location = (gw.region != "us-east-1").then(|| BucketLocationConstraint::from(gw.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
}

/// The status is absent for a bucket that never had versioning.
pub(super) async fn get_bucket_versioning(
    gw: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let Some(record) = gw.index.bucket(&req.input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let status = match record.versioning {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
        Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
    };
    Ok(S3Response::new(GetBucketVersioningOutput { status, ..Default::default() }))
}

/// Enables or suspends versioning (see [`reconfigure`]).
pub(super) async fn put_bucket_versioning(
    gw: &Gateway,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let input = req.input;
    let illegal = || {
        s3_error!(
            IllegalVersioningConfigurationException,
            "The Versioning element must be specified as Enabled or Suspended"
        )
    };
    let configuration = input.versioning_configuration;
    if configuration.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) || input.mfa.is_some() {
        return Err(s3_error!(NotImplemented, "Cairn does not implement MFA delete"));
    }
    let versioning = match configuration.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => return Err(illegal()),
    };
    let bucket = input.bucket;
    reconfigure(gw, &bucket, |config| {
        config.versioning = versioning;
        Ok(())
    })
    .await?;
    tracing::info!(%bucket, ?versioning, "bucket versioning changed");
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}
