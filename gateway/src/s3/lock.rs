//! Object lock through S3: the bucket's configuration (Put/GetObjectLockConfiguration), each
//! version's retention and legal hold (Put/GetObjectRetention, Put/GetObjectLegalHold), and
//! the lock a write asks for in its headers or gets from the bucket's default retention.
//!
//! What a lock forbids is refused below the S3 layer, in the index (`index/lock.rs`), for
//! every path that deletes or changes a version; the checks here only refuse early, before a
//! blob is written. A lock change is written to the volumes first, as a lock blob naming the
//! version (as tags are), so that a rebuild restores it.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::object::lookup_version;
use super::write;
use crate::blob_meta::{BlobKind, BlobMeta};
use crate::error::Error;
use crate::index::Committed;
use crate::index::records::{
    BucketRecord, CommitOrder, DefaultRetention, Lock, LockMode, ObjectLockConfig, Retention, TagsBlob,
};
use crate::time::{ms_from_timestamp, now_ms, timestamp_from_ms_exact};

/// S3 caps a default retention at 100 years (36,500 days).
const MAX_RETENTION_DAYS: i32 = 36_500;
const MAX_RETENTION_YEARS: i32 = 100;

fn missing_configuration() -> s3s::S3Error {
    s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration")
}

fn malformed() -> s3s::S3Error {
    s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
}

fn mode_of(name: &str) -> S3Result<LockMode> {
    match name {
        ObjectLockMode::GOVERNANCE => Ok(LockMode::Governance),
        ObjectLockMode::COMPLIANCE => Ok(LockMode::Compliance),
        _ => Err(s3_error!(InvalidArgument, "Unknown wormMode directive.")),
    }
}

fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => ObjectLockMode::GOVERNANCE,
        LockMode::Compliance => ObjectLockMode::COMPLIANCE,
    }
}

fn legal_hold_of(status: &str) -> S3Result<bool> {
    match status {
        ObjectLockLegalHoldStatus::ON => Ok(true),
        ObjectLockLegalHoldStatus::OFF => Ok(false),
        _ => Err(s3_error!(InvalidArgument, "Legal Hold must be either of 'ON' or 'OFF'")),
    }
}

/// A retention date a client sets must lie in the future.
fn until_of(date: &Timestamp, now_ms: u64) -> S3Result<u64> {
    let until_ms = ms_from_timestamp(date);
    if until_ms <= now_ms {
        return Err(s3_error!(InvalidRequest, "The retain until date must be in the future!"));
    }
    Ok(until_ms)
}

/// The object lock headers of a write (PutObject, CopyObject, CreateMultipartUpload).
#[derive(Debug, Default)]
pub(super) struct LockHeaders {
    pub(super) mode: Option<ObjectLockMode>,
    pub(super) until: Option<Timestamp>,
    pub(super) legal_hold: Option<ObjectLockLegalHoldStatus>,
}

/// Fills [`LockHeaders`] from a write input's fields, which every such input names alike.
macro_rules! lock_headers {
    ($input:expr) => {
        $crate::s3::lock::LockHeaders {
            mode: $input.object_lock_mode.take(),
            until: $input.object_lock_retain_until_date.take(),
            legal_hold: $input.object_lock_legal_hold_status.take(),
        }
    };
}
pub(super) use lock_headers;

impl LockHeaders {
    /// Whether the write names a lock (S3 then wants a Content-MD5 or checksum on PutObject).
    pub(super) fn any(&self) -> bool {
        self.mode.is_some() || self.until.is_some() || self.legal_hold.is_some()
    }

    /// The lock the version written now into `bucket` gets: what the headers ask for, else the
    /// bucket's default retention. Lock headers are refused in a bucket without object lock,
    /// and a mode and a date come together.
    pub(super) fn lock_for(&self, bucket: &BucketRecord, now_ms: u64) -> S3Result<Lock> {
        if bucket.object_lock.is_none() {
            return if self.any() { Err(missing_configuration()) } else { Ok(Lock::default()) };
        }
        let retention = match (&self.mode, &self.until) {
            (Some(mode), Some(until)) => {
                Some(Retention { mode: mode_of(mode.as_str())?, until_ms: until_of(until, now_ms)? })
            }
            (None, None) => default_retention(bucket, now_ms),
            _ => {
                return Err(s3_error!(
                    InvalidRequest,
                    "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
                ));
            }
        };
        let legal_hold = self.legal_hold.as_ref().map(|s| legal_hold_of(s.as_str())).transpose()?.unwrap_or(false);
        Ok(Lock { retention, legal_hold })
    }
}

/// The retention a version written into `bucket` at `now_ms` gets when its write names none.
pub(super) fn default_retention(bucket: &BucketRecord, now_ms: u64) -> Option<Retention> {
    let default = bucket.object_lock.as_ref()?.default_retention?;
    Some(Retention { mode: default.mode, until_ms: default.until_ms(now_ms) })
}

/// A version's lock as its blob's metadata carries it (none when it has none).
pub(super) fn carried(lock: Lock) -> Option<Lock> {
    (lock != Lock::default()).then_some(lock)
}

/// The lock headers of GET and HEAD: retention when the version has one, the legal hold when
/// it is on.
pub(super) fn lock_output(
    lock: &Lock,
) -> (Option<ObjectLockMode>, Option<Timestamp>, Option<ObjectLockLegalHoldStatus>) {
    let mode = lock.retention.map(|r| ObjectLockMode::from_static(mode_name(r.mode)));
    let until = lock.retention.map(|r| timestamp_from_ms_exact(r.until_ms));
    let hold = lock.legal_hold.then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON));
    (mode, until, hold)
}

/// S3 wants a digest of the body of every request that changes a lock.
fn require_digest(content_md5: Option<&String>, headers: &http::HeaderMap) -> S3Result<()> {
    let checksum = crate::checksum::ALGORITHMS.iter().any(|a| headers.contains_key(a.header()));
    if content_md5.is_none() && !checksum {
        return Err(s3_error!(
            InvalidRequest,
            "Missing required header for this request: Content-MD5 OR x-amz-checksum-*"
        ));
    }
    Ok(())
}

/// The bucket's record, which must have object lock.
async fn locking_bucket(gw: &Gateway, bucket: &str) -> S3Result<BucketRecord> {
    match gw.index.bucket(bucket).await? {
        None => Err(Error::NoSuchBucket.into()),
        Some(record) if record.object_lock.is_none() => Err(missing_configuration()),
        Some(record) => Ok(record),
    }
}

fn default_retention_of(rule: Option<ObjectLockRule>) -> S3Result<Option<DefaultRetention>> {
    let Some(rule) = rule else { return Ok(None) };
    let retention = rule.default_retention.ok_or_else(malformed)?;
    let mode = mode_of(retention.mode.as_ref().ok_or_else(malformed)?.as_str())?;
    let (days, years) = match (retention.days, retention.years) {
        (Some(days), None) if days > MAX_RETENTION_DAYS => return Err(too_long()),
        (None, Some(years)) if years > MAX_RETENTION_YEARS => return Err(too_long()),
        (Some(days), None) if days > 0 => (days.unsigned_abs(), 0),
        (None, Some(years)) if years > 0 => (0, years.unsigned_abs()),
        (Some(_), None) | (None, Some(_)) => {
            return Err(s3_error!(InvalidArgument, "Default retention period must be a positive integer value."));
        }
        _ => return Err(malformed()),
    };
    Ok(Some(DefaultRetention { mode, days, years }))
}

fn too_long() -> s3s::S3Error {
    s3_error!(InvalidArgument, "Default retention period is too large.")
}

pub(super) async fn put_object_lock_configuration(
    gw: &Gateway,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let input = req.input;
    require_digest(input.content_md5.as_ref(), &req.headers)?;
    let configuration = input.object_lock_configuration.ok_or_else(malformed)?;
    if configuration.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
        return Err(malformed());
    }
    let config = ObjectLockConfig { default_retention: default_retention_of(configuration.rule)? };
    super::bucket::reconfigure(gw, &input.bucket, |bucket| {
        bucket.object_lock = Some(config);
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(super) async fn get_object_lock_configuration(
    gw: &Gateway,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let Some(record) = gw.index.bucket(&req.input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let Some(config) = record.object_lock else {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    };
    let rule = config.default_retention.map(|d| ObjectLockRule {
        default_retention: Some(s3s::dto::DefaultRetention {
            mode: Some(ObjectLockRetentionMode::from_static(mode_name(d.mode))),
            days: (d.days > 0).then(|| i32::try_from(d.days).unwrap_or(i32::MAX)),
            years: (d.years > 0).then(|| i32::try_from(d.years).unwrap_or(i32::MAX)),
        }),
    });
    let configuration = ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule,
    };
    Ok(S3Response::new(GetObjectLockConfigurationOutput { object_lock_configuration: Some(configuration) }))
}

/// Changes the lock of a version of `bucket`/`key` (the current one, or the one `versionId`
/// names) to what `change` makes of it: a lock blob carrying the new lock goes to the
/// volumes, then the index commits it if the lock is still what was read and the change does
/// not weaken a retention in force (see `Index::set_lock`).
async fn change_lock(
    gw: &Gateway,
    (bucket, key, version_id): (&str, &str, Option<&str>),
    bypass_governance: bool,
    change: impl FnOnce(Lock) -> S3Result<Lock>,
) -> S3Result<()> {
    locking_bucket(gw, bucket).await?;
    let (record, _) = lookup_version(gw, bucket, key, version_id).await?;
    let (expected, now) = (record.lock, now_ms());
    let new = change(expected)?;
    if let Some(why) = expected.forbids_change(&new, now, bypass_governance) {
        return Err(Error::ObjectLocked(why).into());
    }
    let version = record.blob.id;
    let ts = gw.index.next_ts();
    let meta = BlobMeta {
        lock: Some(new),
        version: Some(version.clone()),
        ..BlobMeta::new(BlobKind::Lock, bucket, key, ts, now)
    };
    let stored = write::store_empty(gw, &meta).await?;
    let change = TagsBlob { ts, blob: stored.blob.clone() };
    let committed = gw.index.set_lock((bucket, key, &version), expected, new, &change, bypass_governance, now).await?;
    if committed == Committed::Current {
        crate::commit_log::log(&gw.index, &gw.cluster, &gw.volumes, &stored.blob, CommitOrder::plain(ts)).await;
    }
    // Registered in flight until here, so GC cannot take the blob for an orphan first.
    drop(stored);
    Ok(())
}

pub(super) async fn put_object_retention(
    gw: &Gateway,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let input = req.input;
    require_digest(input.content_md5.as_ref(), &req.headers)?;
    let retention = input.retention.ok_or_else(malformed)?;
    let now = now_ms();
    // An empty Retention removes it (GOVERNANCE with the bypass only; never COMPLIANCE).
    let retention = match (retention.mode, retention.retain_until_date) {
        (Some(mode), Some(until)) => {
            Some(Retention { mode: mode_of(mode.as_str())?, until_ms: until_of(&until, now)? })
        }
        (None, None) => None,
        _ => return Err(malformed()),
    };
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let target = (input.bucket.as_str(), input.key.as_str(), input.version_id.as_deref());
    change_lock(gw, target, bypass, |lock| Ok(Lock { retention, ..lock })).await?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(super) async fn get_object_retention(
    gw: &Gateway,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let input = req.input;
    locking_bucket(gw, &input.bucket).await?;
    let (record, _) = lookup_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let Some(retention) = record.lock.retention else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from_static(mode_name(retention.mode))),
            retain_until_date: Some(timestamp_from_ms_exact(retention.until_ms)),
        }),
    }))
}

pub(super) async fn put_object_legal_hold(
    gw: &Gateway,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let input = req.input;
    require_digest(input.content_md5.as_ref(), &req.headers)?;
    let status = input.legal_hold.and_then(|h| h.status).ok_or_else(malformed)?;
    let legal_hold = legal_hold_of(status.as_str())?;
    let target = (input.bucket.as_str(), input.key.as_str(), input.version_id.as_deref());
    change_lock(gw, target, false, |lock| Ok(Lock { legal_hold, ..lock })).await?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(super) async fn get_object_legal_hold(
    gw: &Gateway,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let input = req.input;
    locking_bucket(gw, &input.bucket).await?;
    let (record, _) = lookup_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let status = if record.lock.legal_hold { ObjectLockLegalHoldStatus::ON } else { ObjectLockLegalHoldStatus::OFF };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) }),
    }))
}
