//! Get/PutBucketAcl, Get/PutObjectAcl and the bucket's ownership controls (see `crate::acl`
//! for what ACLs mean and when they apply). A bucket's ACL and ownership travel in its bucket
//! blob (`bucket::reconfigure`); a version's ACL in its blob as written, then in an ACL blob
//! per PutObjectAcl (`tagging::change_version`), so that a rebuild restores both.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::bucket::reconfigure;
use super::object::lookup_version;
use super::settings::{not_found, require_bucket};
use super::tagging::change_version;
use crate::access::Caller;
use crate::acl::{self, Acl, Ownership, Requested};
use crate::index::VersionChange;
use crate::index::records::BucketRecord;
use crate::owner::bucket_owner_id;

/// The ACL a write (PutObject, CopyObject, CreateMultipartUpload, a form upload) gives the
/// version it makes in `bucket`: what its `x-amz-acl` or `x-amz-grant-*` headers ask for, owned
/// as the bucket's ownership says.
pub(super) fn new_object_acl(
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
    bucket: &BucketRecord,
) -> S3Result<Option<Acl>> {
    let requested = Requested::from_headers(headers)?;
    let writer = Caller::of(extensions)?;
    acl::for_object(requested.as_ref(), bucket, &writer.owner.id, None)
}

/// The ACL a PutBucketAcl or PutObjectAcl asks for: a canned one or grant headers, or an
/// `AccessControlPolicy` body (one of the two, as S3 requires) naming `owner`.
fn requested(headers: &http::HeaderMap, body: Option<&AccessControlPolicy>, owner: &str) -> S3Result<Requested> {
    match (Requested::from_headers(headers)?, body) {
        (Some(_), Some(_)) => Err(s3_error!(UnexpectedContent, "This request does not support content")),
        (Some(requested), None) => Ok(requested),
        (None, Some(policy)) => Requested::from_policy(policy, owner),
        (None, None) => Err(s3_error!(MissingSecurityHeader, "Your request was missing a required header")),
    }
}

pub(super) async fn get_bucket_acl(
    gw: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let record = require_bucket(gw, &req.input.bucket).await?;
    let (owner, grants) = acl::effective(record.acl.as_ref(), &record).to_s3();
    Ok(S3Response::new(GetBucketAclOutput { owner: Some(owner), grants: Some(grants) }))
}

pub(super) async fn put_bucket_acl(
    gw: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let record = require_bucket(gw, &req.input.bucket).await?;
    let requested = requested(&req.headers, req.input.access_control_policy.as_ref(), bucket_owner_id(&record))?;
    reconfigure(gw, &req.input.bucket, |config| {
        // Checked against the bucket as the change finds it.
        let current =
            BucketRecord { ownership: config.ownership, public_access_block: config.public_access_block, ..record };
        config.acl = acl::for_bucket(&requested, &current)?;
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub(super) async fn get_object_acl(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = req.input;
    let bucket = require_bucket(gw, &input.bucket).await?;
    let (record, _) = lookup_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let (owner, grants) = acl::effective(record.acl.as_ref(), &bucket).to_s3();
    Ok(S3Response::new(GetObjectAclOutput { owner: Some(owner), grants: Some(grants), ..Default::default() }))
}

/// Changes the ACL of the current version, or of the one `versionId` names; its owner stays.
pub(super) async fn put_object_acl(
    gw: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let (headers, input) = (req.headers, req.input);
    let bucket = require_bucket(gw, &input.bucket).await?;
    let policy = input.access_control_policy;
    change_version(gw, (input.bucket, input.key, input.version_id), |record| {
        let owner = acl::effective(record.acl.as_ref(), &bucket).owner;
        let requested = requested(&headers, policy.as_ref(), &owner)?;
        acl::for_object(Some(&requested), &bucket, &owner, Some(&owner)).map(VersionChange::Acl)
    })
    .await?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

pub(super) async fn get_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let record = require_bucket(gw, &req.input.bucket).await?;
    let Some(name) = record.ownership.name() else {
        return Err(not_found("OwnershipControlsNotFoundError", "The bucket ownership controls were not found"));
    };
    let rule = OwnershipControlsRule { object_ownership: ObjectOwnership::from_static(name) };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
    }))
}

/// Sets the bucket's object ownership. BucketOwnerEnforced disables ACLs, so the bucket's own
/// ACL must grant nothing beyond its owner's full control first (as on S3); the objects' ACLs
/// are kept, and ignored while it lasts.
pub(super) async fn put_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let input = req.input;
    let rules = &input.ownership_controls.rules;
    if rules.len() != 1 {
        return Err(s3_error!(MalformedXML, "OwnershipControls holds exactly one rule"));
    }
    let ownership = Ownership::parse(rules[0].object_ownership.as_str())?;
    reconfigure(gw, &input.bucket, |config| set_ownership(config, ownership)).await?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
}

fn set_ownership(config: &mut crate::index::BucketConfig, ownership: Ownership) -> S3Result<()> {
    if !ownership.acls_enabled() && config.acl.is_some() {
        return Err(acl::acl_against_ownership());
    }
    config.ownership = ownership;
    Ok(())
}

/// Removes the ownership controls: ACLs apply, objects are their writers' (S3's behaviour for a
/// bucket without them).
pub(super) async fn delete_bucket_ownership_controls(
    gw: &Gateway,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    reconfigure(gw, &req.input.bucket, |config| set_ownership(config, Ownership::Unset)).await?;
    Ok(S3Response::with_status(DeleteBucketOwnershipControlsOutput {}, http::StatusCode::NO_CONTENT))
}
