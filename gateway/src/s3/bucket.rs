//! Bucket operations.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::error::Error;
use crate::time::timestamp_from_ms;

/// Lists every bucket to the root key, and to a stored key the buckets it has a grant on.
pub(super) async fn list_buckets(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let stored_key = match &req.credentials {
        Some(credentials) => gw.index.key(&credentials.access_key)?,
        None => None,
    };
    let visible = |name: &str| stored_key.as_ref().is_none_or(|key| key.grants.iter().any(|g| g.bucket == name));
    let buckets = gw
        .index
        .buckets()?
        .into_iter()
        .filter(|(name, _)| visible(name))
        .map(|(name, record)| Bucket {
            name: Some(name),
            creation_date: Some(timestamp_from_ms(record.created_ms)),
            bucket_region: Some(gw.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Gateway::owner()),
        ..Default::default()
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
    let name = bucket.clone();
    if !gw.blocking(move |index| index.create_bucket(&name)).await? {
        return Err(s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ));
    }
    tracing::info!(%bucket, "bucket created");
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) }))
}

pub(super) async fn head_bucket(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    if gw.index.bucket(&req.input.bucket)?.is_none() {
        return Err(Error::NoSuchBucket.into());
    }
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(gw.region.clone()), ..Default::default() }))
}

pub(super) async fn delete_bucket(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = req.input.bucket;
    let name = bucket.clone();
    gw.blocking(move |index| index.delete_bucket(&name)).await?;
    tracing::info!(%bucket, "bucket deleted");
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn get_bucket_location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    if gw.index.bucket(&req.input.bucket)?.is_none() {
        return Err(Error::NoSuchBucket.into());
    }
    // S3 reports us-east-1 as an empty LocationConstraint.
    let location = (gw.region != "us-east-1").then(|| BucketLocationConstraint::from(gw.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
}

/// Buckets are never versioned: the status is absent, as for a bucket that never was.
pub(super) async fn get_bucket_versioning(
    gw: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    if gw.index.bucket(&req.input.bucket)?.is_none() {
        return Err(Error::NoSuchBucket.into());
    }
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}
