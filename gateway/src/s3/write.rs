//! What every write (PutObject, UploadPart, CopyObject, UploadPartCopy, Complete) shares:
//! reading the object attributes a request sets, checking conditions, and storing one body
//! as a replicated blob.

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use s3s::dto::{ETagCondition, Metadata};
use s3s::{S3Result, s3_error};

use super::Gateway;
use crate::blob_meta::BlobMeta;
use crate::checksum::{Algorithm, Checksum, ChecksumType, Expected};
use crate::error::{Error, Result};
use crate::in_flight::InFlightGuard;
use crate::index::WriteCondition;
use crate::index::records::{BlobRef, ObjectRecord, Version};
use crate::replicated::{self, BodyChecks};

/// Largest single PUT (and part) S3 accepts: 5 GiB.
pub(super) const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// A fresh random id (128 bits, hex), for blobs and uploads.
pub(crate) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A body stored on its replicas, not yet referenced by the index.
#[derive(Debug)]
pub(super) struct Stored {
    pub blob: BlobRef,
    pub size: u64,
    pub md5: [u8; 16],
    pub sha256: [u8; 32],
    /// The checksum computed for `Expected`, base64.
    pub checksum: Option<String>,
    /// Keeps the blob hidden from GC until this is dropped, after the index commit.
    pub _in_flight: InFlightGuard,
}

impl Stored {
    /// The record of a single-blob version written with `meta`; its checksum, when one was
    /// computed, is a full-object checksum of `algorithm`.
    pub(super) fn record(&self, meta: BlobMeta, algorithm: Option<Algorithm>) -> ObjectRecord {
        let checksum = algorithm.zip(self.checksum.clone()).map(|(algorithm, value)| Checksum {
            algorithm,
            kind: ChecksumType::FullObject,
            value,
        });
        ObjectRecord {
            ts: meta.ts,
            modified_ms: meta.modified_ms,
            size: self.size,
            etag: hex::encode(self.md5),
            sha256: hex::encode(self.sha256),
            headers: meta.headers,
            user_meta: meta.user_meta,
            tags: meta.tags,
            checksum,
            parts: Vec::new(),
            blob: self.blob.clone(),
            tags_blob: None,
            // The commit decides by the bucket's versioning.
            version: Version::Unversioned,
            // As written with the blob, so that a rebuild restores it.
            lock: meta.lock.unwrap_or_default(),
            lock_blob: None,
            acl: meta.acl,
            acl_blob: None,
        }
    }
}

/// Writes an empty blob of `meta` (a tombstone, a bucket, tags or lock change…) to the replicas
/// of its key; the returned [`Stored`] keeps it hidden from GC until it is committed.
pub(super) async fn store_empty(gw: &Gateway, meta: &BlobMeta) -> Result<Stored> {
    let empty = futures::stream::empty::<std::result::Result<Bytes, std::io::Error>>();
    store(gw, meta, Some(0), None, None, empty).await
}

/// Streams `body` into a new blob on the replicas the ring picks for `bucket`/`key`. Every
/// digest is checked before the replicas commit, so a bad body leaves nothing behind.
pub(super) async fn store<S, E>(
    gw: &Gateway,
    meta: &BlobMeta,
    size: Option<u64>,
    content_md5: Option<[u8; 16]>,
    checksum: Option<Expected>,
    body: S,
) -> Result<Stored>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if size.is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(Error::EntityTooLarge);
    }
    // On a shared index another gateway may have changed the membership: never write by a
    // ring that may be older than what the index has held for a few seconds.
    if gw.index.engine().shared() {
        use crate::gateways::{MEMBERSHIP_CONFIRM_WAIT, MEMBERSHIP_STALE_AFTER};
        gw.cluster.confirm_within(&gw.index, MEMBERSHIP_STALE_AFTER, MEMBERSHIP_CONFIRM_WAIT).await?;
    }
    let targets = gw.place(&meta.bucket, &meta.key);
    let blob_id = new_id();
    let in_flight = gw.in_flight.register(&blob_id).await?;
    let checks = BodyChecks { max_size: MAX_PUT_SIZE, content_md5, checksum };
    let written = replicated::write(
        &gw.volumes,
        &targets,
        gw.replicas,
        &blob_id,
        &meta.to_json(),
        size,
        gw.write_quorum,
        &checks,
        body,
    )
    .await?;
    Ok(Stored {
        blob: BlobRef { id: blob_id, replicas: written.replicas },
        size: written.size,
        md5: written.md5,
        sha256: written.sha256,
        checksum: written.checksum,
        _in_flight: in_flight,
    })
}

/// Parses `Content-MD5` (base64 of 16 bytes).
pub(super) fn content_md5(value: Option<&str>) -> Result<Option<[u8; 16]>> {
    value
        .map(|value| {
            base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
                .ok_or(Error::InvalidDigest)
        })
        .transpose()
}

/// S3's cap on user metadata: the UTF-8 bytes of every name (without `x-amz-meta-`, as
/// SDKs and the metadata map name it) and value, summed.
const MAX_USER_META_SIZE: usize = 2 * 1024;

/// User metadata as stored: names lowercased, sorted. More than S3 allows is refused with
/// `MetadataTooLarge`, before anything is written.
pub(super) fn user_meta(metadata: Option<Metadata>) -> S3Result<Vec<(String, String)>> {
    let mut meta: Vec<(String, String)> =
        metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let size: usize = meta.iter().map(|(name, value)| name.len() + value.len()).sum();
    if size > MAX_USER_META_SIZE {
        return Err(s3_error!(MetadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size."));
    }
    meta.sort();
    Ok(meta)
}

/// S3's limits on object tags.
const MAX_TAGS: usize = 10;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// A tag set as S3 sends it, as pairs (a missing key or value is empty).
pub(super) fn tag_pairs(tag_set: Vec<s3s::dto::Tag>) -> Vec<(String, String)> {
    tag_set.into_iter().map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default())).collect()
}

/// A bucket has at most this many tags.
const MAX_BUCKET_TAGS: usize = 50;

/// Validates an object's tag set (at most 10, unique keys, S3's lengths).
pub(super) fn check_tags(tags: &[(String, String)]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidTag("Object tags cannot be greater than 10".into()));
    }
    check_each_tag(tags)
}

/// Validates a bucket's tag set (at most 50, unique keys, S3's lengths, none of the `aws:`
/// system tags).
pub(super) fn check_bucket_tags(tags: &[(String, String)]) -> Result<()> {
    if tags.len() > MAX_BUCKET_TAGS {
        return Err(Error::InvalidTag("Bucket tag count cannot be greater than 50".into()));
    }
    if tags.iter().any(|(key, _)| key.starts_with("aws:")) {
        return Err(Error::InvalidTag("System tags cannot be added/updated by requester".into()));
    }
    check_each_tag(tags)
}

fn check_each_tag(tags: &[(String, String)]) -> Result<()> {
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY {
            return Err(Error::InvalidTag("The TagKey you have provided is invalid".into()));
        }
        if value.chars().count() > MAX_TAG_VALUE {
            return Err(Error::InvalidTag("The TagValue you have provided is invalid".into()));
        }
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(Error::InvalidTag("Cannot provide multiple Tags with the same key".into()));
        }
    }
    Ok(())
}

/// Parses `x-amz-tagging` (a URL query string: `k1=v1&k2=v2`).
pub(super) fn tagging_header(value: Option<&str>) -> Result<Vec<(String, String)>> {
    let Some(value) = value.filter(|v| !v.is_empty()) else { return Ok(Vec::new()) };
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    let tags: Vec<(String, String)> = value
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect();
    check_tags(&tags)?;
    Ok(tags)
}

/// The condition of a conditional write (`If-None-Match: *` or `If-Match: "etag"`).
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> Result<Option<WriteCondition>> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(Error::NotImplemented("If-Match together with If-None-Match on a write".into())),
        (_, Some(ETagCondition::Any)) => Ok(Some(WriteCondition::IfNoneMatch)),
        (_, Some(ETagCondition::ETag(_))) => {
            Err(Error::NotImplemented("If-None-Match on a write supports only the value *".into()))
        }
        (Some(ETagCondition::ETag(etag)), None) => Ok(Some(WriteCondition::IfMatch(etag.value().to_string()))),
        (Some(ETagCondition::Any), None) => Ok(Some(WriteCondition::IfExists)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_header_is_a_query_string() {
        let tags = tagging_header(Some("a=1&b%20c=two+words&empty=")).unwrap();
        assert_eq!(
            tags,
            [("a".into(), "1".into()), ("b c".into(), "two words".into()), ("empty".into(), String::new())]
        );
        assert!(tagging_header(Some("a=1&a=2")).is_err());
        let eleven = (0..11).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join("&");
        assert!(tagging_header(Some(&eleven)).is_err());
    }

    #[test]
    fn user_metadata_is_capped_at_2_kib() {
        let meta = |value: &str| Some(Metadata::from_iter([("Name".to_string(), value.to_string())]));
        // Bytes, not characters: "name" is 4 bytes and each "é" 2, so 4 + 2044 = 2048 fits.
        let at_limit = "é".repeat(1022);
        assert_eq!(user_meta(meta(&at_limit)).unwrap(), [("name".to_string(), at_limit.clone())]);
        let err = user_meta(meta(&format!("{at_limit}x"))).unwrap_err();
        assert_eq!(err.code(), &s3s::S3ErrorCode::MetadataTooLarge);
        assert_eq!(err.message(), Some("Your metadata headers exceed the maximum allowed metadata size."));
    }

    #[test]
    fn content_md5_must_be_16_bytes() {
        assert!(content_md5(Some("1B2M2Y8AsgTpgAmY7PhCfg==")).unwrap().is_some());
        assert!(matches!(content_md5(Some("abc")), Err(Error::InvalidDigest)));
        assert!(content_md5(None).unwrap().is_none());
    }
}
