//! Put/Get/DeleteBucketLifecycleConfiguration: a bucket's lifecycle rules, checked as S3
//! checks them and kept in its configuration (a bucket blob carries them, so that a rebuild
//! restores them; see `bucket::reconfigure`). The lifecycle job applies them.
//!
//! Transitions to other storage classes are refused (`NotImplemented`): Cairn has one class,
//! and a rule accepted but never applied would be a silent lie.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::write::check_tags;
use crate::error::Error;
use crate::index::records::{Expiration, Lifecycle, LifecycleFilter, NoncurrentExpiration};
use crate::time::{ms_from_timestamp, timestamp_from_ms};

/// S3's limits.
const MAX_RULES: usize = 1000;
const MAX_ID_LEN: usize = 255;
const MAX_NEWER_NONCURRENT: i32 = 100;
const DAY_MS: u64 = 24 * 3600 * 1000;

fn malformed() -> s3s::S3Error {
    s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
}

fn invalid(message: &str) -> s3s::S3Error {
    s3_error!(InvalidArgument, "{message}")
}

/// A positive day count.
fn days(value: i32, what: &str) -> S3Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| invalid(&format!("'{what}' for {what} action must be a positive integer")))
}

fn size(value: i64) -> S3Result<u64> {
    u64::try_from(value).map_err(|_| invalid("'ObjectSize' must be a non-negative integer"))
}

fn tags_of(tags: impl IntoIterator<Item = Tag>) -> S3Result<Vec<(String, String)>> {
    let tags: Vec<_> = tags.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())).collect();
    check_tags(&tags)?;
    Ok(tags)
}

fn filter_of(rule_prefix: Option<String>, filter: Option<LifecycleRuleFilter>) -> S3Result<LifecycleFilter> {
    let filter = match (rule_prefix, filter) {
        (Some(_), Some(_)) => return Err(malformed()),
        (Some(prefix), None) => return Ok(LifecycleFilter { prefix, legacy_prefix: true, ..Default::default() }),
        (None, None) => return Err(malformed()),
        (None, Some(filter)) => filter,
    };
    let given = [filter.and.is_some(), filter.prefix.is_some(), filter.tag.is_some()]
        .into_iter()
        .chain([filter.object_size_greater_than.is_some(), filter.object_size_less_than.is_some()])
        .filter(|given| *given)
        .count();
    if given > 1 {
        return Err(malformed());
    }
    let mut out = LifecycleFilter {
        prefix: filter.prefix.unwrap_or_default(),
        tags: tags_of(filter.tag)?,
        size_greater_than: filter.object_size_greater_than.map(size).transpose()?,
        size_less_than: filter.object_size_less_than.map(size).transpose()?,
        legacy_prefix: false,
    };
    if let Some(and) = filter.and {
        out.prefix = and.prefix.unwrap_or_default();
        out.tags = tags_of(and.tags.unwrap_or_default())?;
        out.size_greater_than = and.object_size_greater_than.map(size).transpose()?;
        out.size_less_than = and.object_size_less_than.map(size).transpose()?;
    }
    if let (Some(above), Some(below)) = (out.size_greater_than, out.size_less_than)
        && below <= above
    {
        return Err(invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan"));
    }
    Ok(out)
}

fn expiration_of(expiration: LifecycleExpiration) -> S3Result<Expiration> {
    match (expiration.days, expiration.date, expiration.expired_object_delete_marker) {
        (Some(d), None, None | Some(false)) => Ok(Expiration::Days(days(d, "Days")?)),
        (None, Some(date), None | Some(false)) => {
            let ms = ms_from_timestamp(&date);
            if !ms.is_multiple_of(DAY_MS) {
                return Err(invalid("'Date' must be at midnight GMT"));
            }
            Ok(Expiration::Date(ms))
        }
        (None, None, Some(true)) => Ok(Expiration::ExpiredObjectDeleteMarker),
        _ => Err(malformed()),
    }
}

fn rule_of(rule: LifecycleRule, n: usize) -> S3Result<crate::index::records::LifecycleRule> {
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "Cairn has one storage class: lifecycle transitions are not implemented"
        ));
    }
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed()),
    };
    let id = rule.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("rule-{n}"));
    if id.len() > MAX_ID_LEN {
        return Err(invalid("ID length should not exceed allowed limit of 255"));
    }
    let filter = filter_of(rule.prefix, rule.filter)?;
    let expiration = rule.expiration.map(expiration_of).transpose()?;
    let noncurrent = rule
        .noncurrent_version_expiration
        .map(|n| {
            let days = days(n.noncurrent_days.ok_or_else(malformed)?, "NoncurrentDays")?;
            let newer_versions = n
                .newer_noncurrent_versions
                .map(|v| {
                    u32::try_from(v)
                        .ok()
                        .filter(|v| (1..=MAX_NEWER_NONCURRENT.unsigned_abs()).contains(v))
                        .ok_or_else(|| invalid("'NewerNoncurrentVersions' must be an integer between 1 and 100"))
                })
                .transpose()?;
            Ok::<_, s3s::S3Error>(NoncurrentExpiration { days, newer_versions })
        })
        .transpose()?;
    let abort_uploads_after_days = rule
        .abort_incomplete_multipart_upload
        .map(|a| days(a.days_after_initiation.ok_or_else(malformed)?, "DaysAfterInitiation"))
        .transpose()?;
    if expiration.is_none() && noncurrent.is_none() && abort_uploads_after_days.is_none() {
        return Err(invalid("At least one action needs to be specified in a rule"));
    }
    let tagged = !filter.tags.is_empty();
    if tagged && (expiration == Some(Expiration::ExpiredObjectDeleteMarker) || abort_uploads_after_days.is_some()) {
        return Err(invalid(
            "Tag-based filter cannot be used with ExpiredObjectDeleteMarker or AbortIncompleteMultipartUpload",
        ));
    }
    Ok(crate::index::records::LifecycleRule { id, enabled, filter, expiration, noncurrent, abort_uploads_after_days })
}

/// Checks a configuration as S3 does and turns it into Cairn's.
fn lifecycle_of(configuration: BucketLifecycleConfiguration) -> S3Result<Lifecycle> {
    if configuration.rules.is_empty() || configuration.rules.len() > MAX_RULES {
        return Err(malformed());
    }
    let rules = configuration
        .rules
        .into_iter()
        .enumerate()
        .map(|(n, rule)| rule_of(rule, n + 1))
        .collect::<S3Result<Vec<_>>>()?;
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.id == rule.id) {
            return Err(invalid("Rule ID must be unique. Found same ID for more than one rule"));
        }
    }
    Ok(Lifecycle { rules })
}

fn tag_dto((key, value): &(String, String)) -> Tag {
    Tag { key: Some(key.clone()), value: Some(value.clone()) }
}

/// A rule as S3 returns it: the filter in the form it was given.
fn rule_dto(rule: &crate::index::records::LifecycleRule) -> LifecycleRule {
    let f = &rule.filter;
    let size = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    let filter = if f.legacy_prefix {
        None
    } else if conditions > 1 {
        Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
                tags: (!f.tags.is_empty()).then(|| f.tags.iter().map(tag_dto).collect()),
                object_size_greater_than: size(f.size_greater_than),
                object_size_less_than: size(f.size_less_than),
            }),
            ..Default::default()
        })
    } else {
        Some(LifecycleRuleFilter {
            prefix: (conditions == 0 || !f.prefix.is_empty()).then(|| f.prefix.clone()),
            tag: f.tags.first().map(tag_dto),
            object_size_greater_than: size(f.size_greater_than),
            object_size_less_than: size(f.size_less_than),
            ..Default::default()
        })
    };
    let expiration = rule.expiration.map(|e| match e {
        Expiration::Days(d) => {
            LifecycleExpiration { days: Some(d.try_into().unwrap_or(i32::MAX)), ..Default::default() }
        }
        Expiration::Date(ms) => LifecycleExpiration { date: Some(timestamp_from_ms(ms)), ..Default::default() },
        Expiration::ExpiredObjectDeleteMarker => {
            LifecycleExpiration { expired_object_delete_marker: Some(true), ..Default::default() }
        }
    });
    let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    LifecycleRule {
        id: Some(rule.id.clone()),
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        prefix: f.legacy_prefix.then(|| f.prefix.clone()),
        filter,
        expiration,
        noncurrent_version_expiration: rule.noncurrent.map(|n| NoncurrentVersionExpiration {
            noncurrent_days: Some(as_i32(n.days)),
            newer_noncurrent_versions: n.newer_versions.map(as_i32),
        }),
        abort_incomplete_multipart_upload: rule
            .abort_uploads_after_days
            .map(|d| AbortIncompleteMultipartUpload { days_after_initiation: Some(as_i32(d)) }),
        transitions: None,
        noncurrent_version_transitions: None,
    }
}

pub(super) async fn put_bucket_lifecycle_configuration(
    gw: &Gateway,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let input = req.input;
    let lifecycle = lifecycle_of(input.lifecycle_configuration.ok_or_else(malformed)?)?;
    super::bucket::reconfigure(gw, &input.bucket, |config| {
        config.lifecycle = Some(lifecycle);
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
}

pub(super) async fn get_bucket_lifecycle_configuration(
    gw: &Gateway,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let Some(record) = gw.index.bucket(&req.input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let Some(lifecycle) = record.lifecycle else {
        return Err(s3_error!(NoSuchLifecycleConfiguration, "The lifecycle configuration does not exist"));
    };
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(lifecycle.rules.iter().map(rule_dto).collect()),
        ..Default::default()
    }))
}

pub(super) async fn delete_bucket_lifecycle(
    gw: &Gateway,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    super::bucket::reconfigure(gw, &req.input.bucket, |config| {
        config.lifecycle = None;
        Ok(())
    })
    .await?;
    Ok(S3Response::with_status(DeleteBucketLifecycleOutput::default(), http::StatusCode::NO_CONTENT))
}
