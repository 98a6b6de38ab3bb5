//! Bucket tags, and what tools that manage buckets (Terraform's `aws_s3_bucket`, the
//! consoles) read of every bucket: encryption, website, logging, replication, request payment,
//! transfer acceleration, notifications. And the bucket's CORS rules (applied by `cors.rs`).
//! Cairn has none of the other features, so each Get answers what S3 answers for a bucket
//! without the setting (its "not configured" error or an empty configuration), never
//! NotImplemented; the Puts stay NotImplemented. ACLs and ownership controls are `acl.rs`'s.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::bucket::reconfigure;
use super::write::{check_bucket_tags, tag_pairs};
use crate::error::Error;
use crate::index::records::{BucketRecord, CorsRule};

/// The bucket's record, or NoSuchBucket.
pub(super) async fn require_bucket(gw: &Gateway, bucket: &str) -> S3Result<BucketRecord> {
    gw.index.bucket(bucket).await?.ok_or_else(|| Error::NoSuchBucket.into())
}

/// An S3 error with its own status (for codes s3s does not know or maps differently).
pub(super) fn not_found(code: &str, message: &str) -> S3Error {
    let mut err = S3Error::with_message(S3ErrorCode::Custom(code.to_string().into()), message.to_string());
    err.set_status_code(http::StatusCode::NOT_FOUND);
    err
}

pub(super) async fn get_bucket_tagging(
    gw: &Gateway,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let record = require_bucket(gw, &req.input.bucket).await?;
    if record.tags.is_empty() {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    }
    let tag_set = record.tags.into_iter().map(|(key, value)| Tag { key: Some(key), value: Some(value) }).collect();
    Ok(S3Response::new(GetBucketTaggingOutput { tag_set }))
}

/// Replaces the bucket's tags; they travel in its bucket blob (see `bucket::reconfigure`).
pub(super) async fn put_bucket_tagging(
    gw: &Gateway,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let input = req.input;
    let tags = tag_pairs(input.tagging.tag_set);
    check_bucket_tags(&tags)?;
    reconfigure(gw, &input.bucket, |config| {
        config.tags = tags;
        Ok(())
    })
    .await?;
    Ok(S3Response::with_status(PutBucketTaggingOutput {}, http::StatusCode::NO_CONTENT))
}

pub(super) async fn delete_bucket_tagging(
    gw: &Gateway,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    reconfigure(gw, &req.input.bucket, |config| {
        config.tags.clear();
        Ok(())
    })
    .await?;
    Ok(S3Response::with_status(DeleteBucketTaggingOutput {}, http::StatusCode::NO_CONTENT))
}

pub(super) async fn get_bucket_encryption(
    gw: &Gateway,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    Err(not_found(
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    ))
}

pub(super) async fn get_bucket_website(
    gw: &Gateway,
    req: S3Request<GetBucketWebsiteInput>,
) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    Err(s3_error!(NoSuchWebsiteConfiguration, "The specified bucket does not have a website configuration"))
}

pub(super) async fn get_bucket_replication(
    gw: &Gateway,
    req: S3Request<GetBucketReplicationInput>,
) -> S3Result<S3Response<GetBucketReplicationOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    Err(s3_error!(ReplicationConfigurationNotFoundError, "The replication configuration was not found"))
}

pub(super) async fn get_bucket_logging(
    gw: &Gateway,
    req: S3Request<GetBucketLoggingInput>,
) -> S3Result<S3Response<GetBucketLoggingOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketLoggingOutput { logging_enabled: None }))
}

pub(super) async fn get_bucket_request_payment(
    gw: &Gateway,
    req: S3Request<GetBucketRequestPaymentInput>,
) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketRequestPaymentOutput { payer: Some(Payer::from_static(Payer::BUCKET_OWNER)) }))
}

pub(super) async fn get_bucket_accelerate_configuration(
    gw: &Gateway,
    req: S3Request<GetBucketAccelerateConfigurationInput>,
) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketAccelerateConfigurationOutput::default()))
}

pub(super) async fn get_bucket_notification_configuration(
    gw: &Gateway,
    req: S3Request<GetBucketNotificationConfigurationInput>,
) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
    require_bucket(gw, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketNotificationConfigurationOutput::default()))
}

/// Most rules a CORS configuration holds.
const MAX_CORS_RULES: usize = 100;

/// Checks and converts S3's CORS rules as S3 does: at least one, at most 100; each with
/// origins and methods; only GET, PUT, POST, DELETE and HEAD; at most one `*` in an origin or
/// an allowed header.
fn cors_rules(given: Vec<CORSRule>) -> S3Result<Vec<CorsRule>> {
    if given.is_empty() || given.len() > MAX_CORS_RULES {
        return Err(s3_error!(MalformedXML, "A CORS configuration holds 1 to {MAX_CORS_RULES} rules"));
    }
    let one_wildcard = |what: &str, values: &[String]| -> S3Result<()> {
        match values.iter().find(|v| v.matches('*').count() > 1) {
            Some(v) => Err(s3_error!(InvalidRequest, "{what} \"{v}\" can not have more than one wildcard.")),
            None => Ok(()),
        }
    };
    given
        .into_iter()
        .map(|rule| {
            if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
                return Err(s3_error!(MalformedXML, "A CORS rule needs an AllowedOrigin and an AllowedMethod"));
            }
            if let Some(method) = rule.allowed_methods.iter().find(|m| !crate::cors::METHODS.contains(&m.as_str())) {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
                ));
            }
            let allowed_headers = rule.allowed_headers.unwrap_or_default();
            one_wildcard("AllowedOrigin", &rule.allowed_origins)?;
            one_wildcard("AllowedHeader", &allowed_headers)?;
            Ok(CorsRule {
                id: rule.id,
                allowed_origins: rule.allowed_origins,
                allowed_methods: rule.allowed_methods,
                allowed_headers,
                expose_headers: rule.expose_headers.unwrap_or_default(),
                max_age_seconds: rule.max_age_seconds,
            })
        })
        .collect()
}

pub(super) async fn put_bucket_cors(
    gw: &Gateway,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let input = req.input;
    let rules = cors_rules(input.cors_configuration.cors_rules)?;
    reconfigure(gw, &input.bucket, |config| {
        config.cors = rules;
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub(super) async fn get_bucket_cors(
    gw: &Gateway,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let record = require_bucket(gw, &req.input.bucket).await?;
    if record.cors.is_empty() {
        return Err(s3_error!(NoSuchCORSConfiguration, "The CORS configuration does not exist"));
    }
    let rules = record
        .cors
        .into_iter()
        .map(|rule| CORSRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: (!rule.allowed_headers.is_empty()).then_some(rule.allowed_headers),
            expose_headers: (!rule.expose_headers.is_empty()).then_some(rule.expose_headers),
            max_age_seconds: rule.max_age_seconds,
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(rules) }))
}

pub(super) async fn delete_bucket_cors(
    gw: &Gateway,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    reconfigure(gw, &req.input.bucket, |config| {
        config.cors.clear();
        Ok(())
    })
    .await?;
    Ok(S3Response::with_status(DeleteBucketCorsOutput {}, http::StatusCode::NO_CONTENT))
}
