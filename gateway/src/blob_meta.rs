//! The metadata the gateway writes into every blob, so that a lost index can be rebuilt from
//! the volumes alone: which bucket and key, which write (timestamp), and the S3 headers.
//! Size, SHA-256 and MD5 are in the volume's own footer.

use serde::{Deserialize, Serialize};

use crate::checksum::Checksum;
use crate::index::records::{PartRecord, SystemHeaders};

/// Version of this metadata layout.
pub const BLOB_META_VERSION: u8 = 1;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// The bytes of an object version.
    Object,
    /// A delete marker: no bytes; orders the delete against older writes.
    Tombstone,
    /// One part of a multipart upload (`upload_id`, `part_number` say which).
    Part,
    /// A completed multipart object: the body is a [`Manifest`] naming its part blobs.
    Manifest,
    /// No bytes: the tag set (`tags`) of the version whose blob id is `version`, as changed
    /// by PutObjectTagging or DeleteObjectTagging at `ts`; the newest one of the version that
    /// wins is its tag set after a rebuild.
    Tags,
    /// No bytes: bucket `bucket` was created (`key` is empty; `modified_ms` is the creation
    /// time), or its configuration changed (`versioning`; the same creation time). Lets a
    /// rebuild restore empty buckets, as they were last configured.
    Bucket,
    /// No bytes: bucket `bucket` was deleted at `ts` (`key` is empty). A rebuild restores a
    /// bucket only if a creation is newer than its newest deletion.
    BucketDeleted,
    /// No bytes: the version of `bucket`/`key` whose blob id is `version` was deleted by id
    /// (DeleteObject with a version id). A rebuild treats that version as garbage.
    VersionDeleted,
    /// No bytes: the object lock (`lock`) of the version whose blob id is `version`, as
    /// changed at `ts` (PutObjectRetention, PutObjectLegalHold); the newest one of the version
    /// is its lock after a rebuild, as for tags.
    Lock,
    /// No bytes: the ACL (`acl`) of the version whose blob id is `version`, as changed at `ts`
    /// (PutObjectAcl); the newest one of the version is its ACL after a rebuild, as for tags.
    Acl,
}

/// The metadata JSON stored with a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// Layout version.
    pub v: u8,
    /// Object bytes or tombstone.
    pub kind: BlobKind,
    /// Bucket name.
    pub bucket: String,
    /// Object key, exactly as sent.
    pub key: String,
    /// Write timestamp; the newest per key wins on rebuild.
    pub ts: u64,
    /// Last-Modified, unix milliseconds.
    pub modified_ms: u64,
    /// System headers.
    #[serde(default)]
    pub headers: SystemHeaders,
    /// User metadata.
    #[serde(default)]
    pub user_meta: Vec<(String, String)>,
    /// Object tags: as written, or for a tags blob as changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The ETag, where it is not the blob's MD5 (a manifest's `…-N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The object's client checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// A part's upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// A part's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<u32>,
    /// A tags or lock blob's version: the blob id of the data (or manifest) blob of the version
    /// its change applies to; a version deletion's: the blob id of the version deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A bucket blob's versioning state (written again with each change of it, so that a
    /// rebuild restores the newest); `None` for a bucket that never had versioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<crate::index::records::Versioning>,
    /// An object's lock as written, or a lock blob's as changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::index::records::Lock>,
    /// A bucket blob's object lock configuration, once enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<crate::index::records::ObjectLockConfig>,
    /// A bucket blob's lifecycle rules, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::index::records::Lifecycle>,
    /// A bucket blob's owner (canonical id); `None` for the root owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A bucket blob's policy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// A bucket blob's public access block, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<crate::index::records::PublicAccessBlock>,
    /// A bucket blob's CORS rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors: Vec<crate::index::records::CorsRule>,
    /// An object's ACL as written (none: the bucket owner's, private), an ACL blob's as
    /// changed, a bucket blob's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<crate::acl::Acl>,
    /// A bucket blob's object ownership; `None`: BucketOwnerEnforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<crate::acl::Ownership>,
}

impl BlobMeta {
    /// Metadata of the given kind for `bucket`/`key`, written at `ts`; the optional parts
    /// empty (callers fill them with struct update syntax).
    pub fn new(kind: BlobKind, bucket: &str, key: &str, ts: u64, modified_ms: u64) -> Self {
        Self {
            v: BLOB_META_VERSION,
            kind,
            bucket: bucket.to_string(),
            key: key.to_string(),
            ts,
            modified_ms,
            headers: SystemHeaders::default(),
            user_meta: Vec::new(),
            tags: Vec::new(),
            etag: None,
            checksum: None,
            upload_id: None,
            part_number: None,
            version: None,
            versioning: None,
            lock: None,
            object_lock: None,
            lifecycle: None,
            owner: None,
            policy: None,
            public_access_block: None,
            cors: Vec::new(),
            acl: None,
            ownership: None,
        }
    }

    /// A bucket blob (kind `bucket`, under the bucket key) carrying the bucket's owner
    /// (empty for the root owner) and its whole configuration, for a rebuild to restore.
    pub fn bucket(bucket: &str, ts: u64, created_ms: u64, owner: &str, config: &crate::index::BucketConfig) -> Self {
        use crate::index::records::Versioning;
        Self {
            versioning: (config.versioning != Versioning::Unversioned).then_some(config.versioning),
            object_lock: config.object_lock.clone(),
            lifecycle: config.lifecycle.clone(),
            tags: config.tags.clone(),
            policy: config.policy.clone(),
            public_access_block: config.public_access_block,
            cors: config.cors.clone(),
            acl: config.acl.clone(),
            ownership: (config.ownership != crate::acl::Ownership::default()).then_some(config.ownership),
            owner: (!owner.is_empty()).then(|| owner.to_string()),
            ..Self::new(BlobKind::Bucket, bucket, crate::index::BUCKET_KEY, ts, created_ms)
        }
    }

    /// The JSON bytes sent to the volumes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The body of a manifest blob: which part blobs, in order, make up a multipart object, so
/// that rebuild can restore the object from the volumes alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The upload the parts came from (their blob headers carry it too).
    pub upload_id: String,
    /// The parts, in object order.
    pub parts: Vec<ManifestPart>,
}

/// One part as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPart {
    /// Part number.
    pub number: u32,
    /// Blob id of the part.
    pub blob: String,
    /// Size in bytes.
    pub size: u64,
    /// The part's MD5, hex.
    pub etag: String,
    /// The part's SHA-256, hex.
    pub sha256: String,
    /// The part's checksum, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Manifest {
    /// The manifest of `parts` from `upload_id`.
    pub fn of(upload_id: &str, parts: &[PartRecord]) -> Self {
        let parts = parts
            .iter()
            .map(|p| ManifestPart {
                number: p.number,
                blob: p.blob.id.clone(),
                size: p.size,
                etag: p.etag.clone(),
                sha256: p.sha256.clone(),
                checksum: p.checksum.clone(),
            })
            .collect();
        Self { upload_id: upload_id.to_string(), parts }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
