//! Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus and Put/Get/DeletePublicAccessBlock.
//! Both live in the bucket's configuration, so its bucket blob carries them and a rebuild
//! restores them (see `bucket::reconfigure`); `auth.rs` evaluates them on every request.

use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::bucket::reconfigure;
use super::settings::{not_found, require_bucket};
use crate::error::Error;
use crate::index::records::PublicAccessBlock;
use crate::policy::{Policy, PolicyError};

fn no_policy() -> S3Error {
    s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")
}

fn no_public_access_block() -> S3Error {
    not_found("NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found")
}

/// Checks the policy (S3's `MalformedPolicy`, or `NotImplemented` for IAM Cairn does not
/// evaluate) and, when the bucket blocks public policies, refuses a public one.
pub(super) async fn put_bucket_policy(
    gw: &Gateway,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let input = req.input;
    let parsed = Policy::parse(&input.policy, &input.bucket).map_err(|err| match err {
        PolicyError::Malformed(message) => s3_error!(MalformedPolicy, "{message}"),
        PolicyError::Unsupported(message) => {
            s3_error!(NotImplemented, "Cairn does not evaluate this policy: {message}")
        }
    })?;
    let text = input.policy;
    reconfigure(gw, &input.bucket, |config| {
        if parsed.is_public() && config.public_access_block.is_some_and(|b| b.block_public_policy) {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied: the bucket's public access block forbids public policies"
            ));
        }
        config.policy = Some(text);
        Ok(())
    })
    .await?;
    tracing::info!(bucket = %input.bucket, public = parsed.is_public(), "bucket policy set");
    Ok(S3Response::with_status(PutBucketPolicyOutput {}, http::StatusCode::NO_CONTENT))
}

pub(super) async fn get_bucket_policy(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let record = require_bucket(gw, &req.input.bucket).await?;
    let policy = record.policy.ok_or_else(no_policy)?;
    Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) }))
}

pub(super) async fn delete_bucket_policy(
    gw: &Gateway,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    reconfigure(gw, &req.input.bucket, |config| {
        config.policy = None;
        Ok(())
    })
    .await?;
    Ok(S3Response::with_status(DeleteBucketPolicyOutput {}, http::StatusCode::NO_CONTENT))
}

/// Whether the bucket's policy is public (see `Policy::is_public`).
pub(super) async fn get_bucket_policy_status(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let record = require_bucket(gw, &req.input.bucket).await?;
    let text = record.policy.ok_or_else(no_policy)?;
    let policy =
        Policy::parse(&text, &req.input.bucket).map_err(|_| Error::Index("a stored policy does not parse".into()))?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus { is_public: Some(policy.is_public()) }),
    }))
}

pub(super) async fn put_public_access_block(
    gw: &Gateway,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let input = req.input;
    let given = input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: given.block_public_acls.unwrap_or(false),
        ignore_public_acls: given.ignore_public_acls.unwrap_or(false),
        block_public_policy: given.block_public_policy.unwrap_or(false),
        restrict_public_buckets: given.restrict_public_buckets.unwrap_or(false),
    };
    reconfigure(gw, &input.bucket, |config| {
        config.public_access_block = Some(block);
        Ok(())
    })
    .await?;
    tracing::info!(bucket = %input.bucket, ?block, "public access block set");
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub(super) async fn get_public_access_block(
    gw: &Gateway,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let record = require_bucket(gw, &req.input.bucket).await?;
    let block = record.public_access_block.ok_or_else(no_public_access_block)?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(block.block_public_acls),
            ignore_public_acls: Some(block.ignore_public_acls),
            block_public_policy: Some(block.block_public_policy),
            restrict_public_buckets: Some(block.restrict_public_buckets),
        }),
    }))
}

pub(super) async fn delete_public_access_block(
    gw: &Gateway,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    reconfigure(gw, &req.input.bucket, |config| {
        config.public_access_block = None;
        Ok(())
    })
    .await?;
    Ok(S3Response::with_status(DeletePublicAccessBlockOutput {}, http::StatusCode::NO_CONTENT))
}
