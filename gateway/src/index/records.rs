//! The records the index stores, and their versioned encoding (a version byte, then postcard).
//!
//! **Records grow by appending.** Postcard has no optional fields: a struct that gains a field
//! can no longer read what was written before. So a field may only be appended at the end of
//! a record's last struct (the one whose fields end the encoding, e.g. `ObjectRecord` within
//! `ObjectEntry::Live`), and its default must encode as one zero byte (`Option` None, an empty
//! `Vec` or `String`, 0, false, an enum's first unit variant), and the version byte goes up. A
//! record with an older version byte that ends early is read again with zero bytes appended,
//! which decode as those defaults (postcard ignores what follows a complete value); a record
//! with the current version byte must decode exactly. A newer version byte is refused.
//!
//! Version 2 appended S3 versioning (`BucketRecord::versioning`, `ObjectRecord::version`,
//! `ObjectEntry::Deleted::version`); version 3 object lock (`BucketRecord::object_lock`,
//! `ObjectRecord::lock`, `ObjectRecord::lock_blob`); version 4 the lock of an upload's object
//! (`UploadRecord::lock`) and lifecycle rules (`BucketRecord::lifecycle`); version 5 owners
//! (`BucketRecord::owner`, `KeyRecord::owner`, `KeyRecord::owner_name`,
//! `KeyRecord::create_bucket`), bucket tags, policies, public access blocks and CORS rules
//! (`BucketRecord::tags`, `policy`, `public_access_block`, `cors`); version 6 ACLs
//! (`BucketRecord::ownership`, `BucketRecord::acl`, `ObjectRecord::acl`, `ObjectRecord::acl_blob`,
//! `UploadRecord::acl`). Version 1 records had grown once before the rule (the
//! membership's `removed`), which made older ones unreadable; they read now.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::checksum::{Algorithm, Checksum, ChecksumType};
use crate::error::{Error, Result};

const RECORD_VERSION: u8 = 6;
/// The oldest version byte this code reads.
const FIRST_RECORD_VERSION: u8 = 1;
/// Zero bytes appended to a record that ends early: one per field appended since it was
/// written, at most.
const GROWTH_PADDING: [u8; 16] = [0; 16];

/// Encodes a record with its version byte.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    let mut out = vec![RECORD_VERSION];
    postcard::to_io(record, &mut out).map_err(|e| Error::Index(format!("encode: {e}")))?;
    Ok(out)
}

/// Decodes a record written by [`encode`], by this version or an earlier one (see the module
/// docs on how records grow).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| Error::Index(format!("decode: {e}"))),
        Some((&(FIRST_RECORD_VERSION..RECORD_VERSION), rest)) => match postcard::from_bytes(rest) {
            Err(postcard::Error::DeserializeUnexpectedEnd) => postcard::from_bytes(&[rest, &GROWTH_PADDING].concat())
                .map_err(|e| Error::Index(format!("decode (a record from before fields were added): {e}"))),
            decoded => decoded.map_err(|e| Error::Index(format!("decode: {e}"))),
        },
        Some((version, _)) => Err(Error::Index(format!("unknown record version {version}"))),
        None => Err(Error::Index("empty record".into())),
    }
}

/// A bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// Creation time, unix milliseconds.
    pub created_ms: u64,
    /// Timestamp of the bucket blob: bucket operations are ordered by it, like object
    /// writes, so that the index and a rebuild agree on which one won.
    pub ts: u64,
    /// The bucket blob (kind `bucket`) that lets a rebuild restore the bucket even when it
    /// is empty. `None` only for a bucket a rebuild recreated from its objects alone,
    /// because no bucket blob of it was found.
    pub blob: Option<BlobRef>,
    /// S3 versioning (appended: see the module docs).
    pub versioning: Versioning,
    /// Object lock, once enabled (appended).
    pub object_lock: Option<ObjectLockConfig>,
    /// Lifecycle rules, if any (appended).
    pub lifecycle: Option<Lifecycle>,
    /// The canonical id of the bucket's owner; empty for the root owner (buckets made before
    /// owners existed are the root's). Appended.
    pub owner: String,
    /// The bucket's tags (Put/GetBucketTagging), in the order given. Appended.
    pub tags: Vec<(String, String)>,
    /// The bucket policy, as put (JSON; checked by `policy::Policy::parse`). Appended.
    pub policy: Option<String>,
    /// The bucket's public access block, if one was put. Appended.
    pub public_access_block: Option<PublicAccessBlock>,
    /// The bucket's CORS rules, in the order given (none: CORS is not enabled). Appended.
    pub cors: Vec<CorsRule>,
    /// The bucket's object ownership: whether ACLs apply. Appended.
    pub ownership: crate::acl::Ownership,
    /// The bucket's ACL; `None`: its owner's full control only. Appended.
    pub acl: Option<crate::acl::Acl>,
}

/// One CORS rule of a bucket (S3's `CORSRule`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// The rule's id, if given.
    pub id: Option<String>,
    /// Origins it allows (each with at most one `*`).
    pub allowed_origins: Vec<String>,
    /// Methods it allows: GET, PUT, POST, DELETE, HEAD.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for (each with at most one `*`).
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may show the page.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight's answer.
    pub max_age_seconds: Option<i32>,
}

/// S3's four public access block flags of a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse ACLs that grant public access.
    pub block_public_acls: bool,
    /// Ignore ACLs that grant public access.
    pub ignore_public_acls: bool,
    /// Refuse bucket policies that grant public access.
    pub block_public_policy: bool,
    /// Let a public policy give access only to the bucket owner's keys.
    pub restrict_public_buckets: bool,
}

/// A bucket's lifecycle configuration: what the lifecycle job expires and aborts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// In the order given.
    pub rules: Vec<LifecycleRule>,
}

/// One lifecycle rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    /// Its id (S3 makes one up when none is given).
    pub id: String,
    /// `Enabled`; a disabled rule is kept but does nothing.
    pub enabled: bool,
    /// Which objects it applies to.
    pub filter: LifecycleFilter,
    /// When current versions expire.
    pub expiration: Option<Expiration>,
    /// When noncurrent versions are deleted.
    pub noncurrent: Option<NoncurrentExpiration>,
    /// Incomplete multipart uploads are aborted this many days after they were created.
    pub abort_uploads_after_days: Option<u32>,
}

/// The objects a rule applies to: all of its conditions hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleFilter {
    /// Key prefix (empty: every key).
    pub prefix: String,
    /// Tags the object must have.
    pub tags: Vec<(String, String)>,
    /// Size strictly greater than this.
    pub size_greater_than: Option<u64>,
    /// Size strictly less than this.
    pub size_less_than: Option<u64>,
    /// Given as the rule's top-level `Prefix` (S3's older form), returned the same way.
    pub legacy_prefix: bool,
}

/// When a rule expires current versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// This many days after the version was written.
    Days(u32),
    /// From this date on (unix ms, midnight UTC).
    Date(u64),
    /// A delete marker that is the only version left of its key is removed.
    ExpiredObjectDeleteMarker,
}

/// When a rule deletes noncurrent versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// This many days after the version became noncurrent.
    pub days: u32,
    /// The newest this many noncurrent versions are kept whatever their age.
    pub newer_versions: Option<u32>,
}

/// A bucket's object lock configuration. Once enabled, object lock cannot be turned off, and
/// the bucket's versioning cannot be suspended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockConfig {
    /// The retention a new version gets when its write names none.
    pub default_retention: Option<DefaultRetention>,
}

/// A bucket's default retention: a mode and a period (days or years, as S3 takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// How strongly.
    pub mode: LockMode,
    /// Days, or 0 when given in years.
    pub days: u32,
    /// Years, or 0 when given in days.
    pub years: u32,
}

impl DefaultRetention {
    /// Until when a version written at `written_ms` is retained (a year counted as 365 days).
    pub fn until_ms(&self, written_ms: u64) -> u64 {
        let days = u64::from(self.days) + 365 * u64::from(self.years);
        written_ms.saturating_add(days * 24 * 3600 * 1000)
    }
}

/// How strongly a retention protects a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockMode {
    /// Keys allowed to bypass governance retention may delete the version, shorten or remove
    /// the retention.
    Governance,
    /// Nobody may delete the version before the date, nor shorten or remove the retention.
    Compliance,
}

/// Until when, and how strongly, a version is protected from deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// How strongly.
    pub mode: LockMode,
    /// Until when, unix milliseconds.
    pub until_ms: u64,
}

/// A version's object lock: its retention and legal hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Retention, if any (it protects only until its date).
    pub retention: Option<Retention>,
    /// A legal hold protects until it is removed.
    pub legal_hold: bool,
}

impl Lock {
    /// Why the version may not be deleted at `now_ms`, or `None` when it may: a legal hold,
    /// COMPLIANCE retention, or GOVERNANCE retention unless `bypass_governance`.
    pub fn forbids_deletion(&self, now_ms: u64, bypass_governance: bool) -> Option<String> {
        if self.legal_hold {
            return Some("the version is under a legal hold".into());
        }
        match self.retention {
            Some(Retention { mode, until_ms }) if until_ms > now_ms => match mode {
                LockMode::Compliance => Some(format!("the version is under COMPLIANCE retention until {until_ms} ms")),
                LockMode::Governance if !bypass_governance => {
                    Some(format!("the version is under GOVERNANCE retention until {until_ms} ms"))
                }
                LockMode::Governance => None,
            },
            _ => None,
        }
    }
}

/// A bucket's S3 versioning state. Once enabled it can be suspended, never undone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Never enabled: a write replaces the key's entry.
    #[default]
    Unversioned,
    /// Every write adds a version; the one it replaces becomes noncurrent.
    Enabled,
    /// Writes replace the key's `null` version; versions with ids stay.
    Suspended,
}

/// Where a commit put its blob among the versions of its key: its commit order (the
/// timestamp the index keeps with it) and which version it became. The volumes' commit logs
/// keep both with the blob's id, for a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOrder {
    /// Commit order (0: not known).
    pub order: u64,
    /// Which version of its key the blob became.
    pub version: Version,
}

impl CommitOrder {
    /// The commit order of `entry`'s own blobs.
    pub fn of(entry: &ObjectEntry) -> Self {
        Self { order: entry.ts(), version: entry.version() }
    }

    /// A commit that is no object version (a bucket blob, a tags change, a part), at `order`.
    pub fn plain(order: u64) -> Self {
        Self { order, version: Version::Unversioned }
    }
}

/// Which version of its key an entry is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    /// Written while the bucket was never versioned: the `null` version of a live record; for
    /// a deletion, a tombstone, which is no version at all.
    #[default]
    Unversioned,
    /// Written while versioning was suspended: the `null` version (for a deletion, a delete
    /// marker whose id is `null`).
    Null,
    /// Written while versioning was enabled: a version whose id is its commit order.
    Id,
    /// No version: the record, among a key's noncurrent versions, that one of them was
    /// deleted by id. Its blob is the deletion blob, which keeps a rebuild from bringing the
    /// version back; GC drops it once no blob of the key is queued (as a tombstone).
    Removed,
}

impl Version {
    /// The byte the volumes' commit logs keep for it.
    pub fn code(self) -> u8 {
        match self {
            Version::Unversioned => 0,
            Version::Null => 1,
            Version::Id => 2,
            Version::Removed => 3,
        }
    }

    /// The version a commit log's byte names (unknown bytes, and 0: `Unversioned`).
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Version::Null,
            2 => Version::Id,
            3 => Version::Removed,
            _ => Version::Unversioned,
        }
    }
}

/// What the buckets column family holds for a name: the bucket, or the record of its
/// deletion, kept (like an object tombstone) until GC has deleted every older bucket blob
/// of the name, so that a rebuild cannot bring the bucket back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketEntry {
    /// The bucket exists.
    Live(BucketRecord),
    /// Deleted at `ts`; `blob` is the deletion blob (kind `bucket_deleted`) on the volumes.
    Deleted {
        /// Delete timestamp.
        ts: u64,
        /// The deletion blob.
        blob: BlobRef,
    },
}

impl BucketEntry {
    /// The timestamp of the operation that made the entry.
    pub fn ts(&self) -> u64 {
        match self {
            BucketEntry::Live(record) => record.ts,
            BucketEntry::Deleted { ts, .. } => *ts,
        }
    }

    /// The entry's blob on the volumes, if it has one.
    pub fn blob(&self) -> Option<&BlobRef> {
        match self {
            BucketEntry::Live(record) => record.blob.as_ref(),
            BucketEntry::Deleted { blob, .. } => Some(blob),
        }
    }

    /// The entry's blob, to point it at other copies.
    pub fn blob_mut(&mut self) -> Option<&mut BlobRef> {
        match self {
            BucketEntry::Live(record) => record.blob.as_mut(),
            BucketEntry::Deleted { blob, .. } => Some(blob),
        }
    }

    /// The bucket, if it exists.
    pub fn live(self) -> Option<BucketRecord> {
        match self {
            BucketEntry::Live(record) => Some(record),
            BucketEntry::Deleted { .. } => None,
        }
    }
}

/// Where one replica of a blob lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct Replica {
    /// Volume id.
    pub volume: String,
    /// Subvolume within the volume.
    pub subvolume: u32,
}

/// A blob and the replicas that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Blob id (hex), the same on every replica.
    pub id: String,
    /// Where the copies are.
    pub replicas: Vec<Replica>,
}

/// S3 system headers kept with an object and returned on GET/HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemHeaders {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Expires`, as an HTTP date.
    pub expires: Option<String>,
}

/// The current version of a live object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Write timestamp (gateway clock, microseconds, strictly increasing); newest wins.
    pub ts: u64,
    /// Last-Modified, unix milliseconds.
    pub modified_ms: u64,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// System headers.
    pub headers: SystemHeaders,
    /// User metadata (`x-amz-meta-*`), names lowercased, sorted.
    pub user_meta: Vec<(String, String)>,
    /// Object tags, in the order given.
    pub tags: Vec<(String, String)>,
    /// The client checksum (`x-amz-checksum-*`), when one was sent or asked for.
    pub checksum: Option<Checksum>,
    /// For a multipart object, its parts in order (and `blob` is the manifest); empty for a
    /// single-blob object.
    pub parts: Vec<PartRecord>,
    /// The blob holding the bytes (or, for a multipart object, the manifest).
    pub blob: BlobRef,
    /// The tags blob of the last PutObjectTagging or DeleteObjectTagging of this version,
    /// which carries `tags` to a rebuild; `None` while the tags are those of the write.
    pub tags_blob: Option<TagsBlob>,
    /// Which version of the key this is (appended: see the module docs).
    pub version: Version,
    /// Object lock: retention and legal hold (appended).
    pub lock: Lock,
    /// The lock blob of the last PutObjectRetention or PutObjectLegalHold of this version,
    /// which carries `lock` to a rebuild; `None` while the lock is that of the write (appended).
    pub lock_blob: Option<TagsBlob>,
    /// The version's ACL; `None`: the bucket owner's, granting nothing else (appended).
    pub acl: Option<crate::acl::Acl>,
    /// The ACL blob of the last PutObjectAcl of this version, which carries `acl` to a
    /// rebuild; `None` while the ACL is that of the write (appended).
    pub acl_blob: Option<TagsBlob>,
}

impl ObjectRecord {
    /// Every blob the version uses: its blob, its parts for a multipart object, and the
    /// blobs of its changes (tags, lock, ACL).
    pub fn blobs(&self) -> impl Iterator<Item = &BlobRef> {
        std::iter::once(&self.blob).chain(self.parts.iter().map(|p| &p.blob)).chain(self.changes().map(|c| &c.blob))
    }

    /// The blobs of changes made since the write: tags, lock, ACL.
    pub fn changes(&self) -> impl Iterator<Item = &TagsBlob> {
        [&self.tags_blob, &self.lock_blob, &self.acl_blob].into_iter().flatten()
    }

    /// [`Self::changes`], to point them at other copies.
    pub fn changes_mut(&mut self) -> impl Iterator<Item = &mut TagsBlob> {
        [&mut self.tags_blob, &mut self.lock_blob, &mut self.acl_blob].into_iter().flatten()
    }

    /// [`Self::blobs`], to point them at other copies.
    pub fn blobs_mut(&mut self) -> impl Iterator<Item = &mut BlobRef> {
        let changes = [&mut self.tags_blob, &mut self.lock_blob, &mut self.acl_blob].into_iter().flatten();
        std::iter::once(&mut self.blob)
            .chain(self.parts.iter_mut().map(|p| &mut p.blob))
            .chain(changes.map(|c| &mut c.blob))
    }

    /// [`Self::blobs`], each with the object bytes it holds (a multipart object's bytes are in
    /// its parts, not its manifest; a tags blob holds none).
    pub fn blobs_with_bytes(&self) -> impl Iterator<Item = (&BlobRef, u64)> {
        let own = if self.parts.is_empty() { self.size } else { 0 };
        std::iter::once((&self.blob, own))
            .chain(self.parts.iter().map(|p| (&p.blob, p.size)))
            .chain(self.changes().map(|c| (&c.blob, 0)))
    }
}

/// A tags blob (kind `tags`, no data): the tag set of one version as changed after its
/// write, so that a rebuild restores it; or a lock blob (kind `lock`): its retention and legal
/// hold as changed. It names the version by its blob id; `ts` orders changes of the same
/// version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagsBlob {
    /// When the change was made (gateway clock).
    pub ts: u64,
    /// The blob.
    pub blob: BlobRef,
}

/// One part of a multipart upload, and then of the object it completed into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part number, 1..=10000.
    pub number: u32,
    /// Size in bytes.
    pub size: u64,
    /// MD5 of the part, hex (its ETag).
    pub etag: String,
    /// SHA-256 of the part, hex; reads verify it.
    pub sha256: String,
    /// The part's checksum in the upload's algorithm, base64.
    pub checksum: Option<String>,
    /// When it was uploaded, unix milliseconds.
    pub modified_ms: u64,
    /// The blob holding the part.
    pub blob: BlobRef,
}

/// A multipart upload in progress: what CreateMultipartUpload fixed for the object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// When it was created, unix milliseconds.
    pub initiated_ms: u64,
    /// System headers of the object to be.
    pub headers: SystemHeaders,
    /// User metadata of the object to be.
    pub user_meta: Vec<(String, String)>,
    /// Tags of the object to be.
    pub tags: Vec<(String, String)>,
    /// The checksum algorithm parts carry, and how the object's checksum is formed.
    pub checksum: Option<(Algorithm, ChecksumType)>,
    /// The object lock of the object to be (appended).
    pub lock: Lock,
    /// The ACL of the object to be (appended).
    pub acl: Option<crate::acl::Acl>,
}

/// A multipart upload that completed, remembered for a while (upload id → this) so that a
/// retried CompleteMultipartUpload (SDKs retry on a timeout) gets the same answer instead of
/// `NoSuchUpload`. Holds what that answer carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedUpload {
    /// Bucket of the object it became.
    pub bucket: String,
    /// Key of the object it became.
    pub key: String,
    /// The object's ETag, without quotes.
    pub etag: String,
    /// The object's checksum, when the upload had one.
    pub checksum: Option<Checksum>,
    /// When it completed, unix milliseconds.
    pub completed_ms: u64,
}

/// What the objects column family holds for a key: the live version, or a tombstone that
/// keeps a delete ordered against older writes until GC drops it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectEntry {
    /// A readable object.
    Live(Box<ObjectRecord>),
    /// Deleted at `ts`; `blob` is the tombstone (or delete marker) blob written to the volumes.
    Deleted {
        /// Delete timestamp.
        ts: u64,
        /// The tombstone blob.
        blob: BlobRef,
        /// A tombstone (`Unversioned`) or a delete marker (appended: see the module docs).
        version: Version,
    },
}

impl ObjectEntry {
    /// The entry's write timestamp.
    pub fn ts(&self) -> u64 {
        match self {
            ObjectEntry::Live(record) => record.ts,
            ObjectEntry::Deleted { ts, .. } => *ts,
        }
    }

    /// Sets the entry's timestamp (its commit order, see `Index::stage_object`).
    pub fn set_ts(&mut self, order: u64) {
        match self {
            ObjectEntry::Live(record) => record.ts = order,
            ObjectEntry::Deleted { ts, .. } => *ts = order,
        }
    }

    /// The newest timestamp the entry carries: its write's, or a later tag or lock change's.
    pub fn newest_ts(&self) -> u64 {
        match self {
            ObjectEntry::Live(record) => record.changes().map(|c| c.ts).fold(record.ts, u64::max),
            ObjectEntry::Deleted { ts, .. } => *ts,
        }
    }

    /// Every blob this entry uses (for GC when it is replaced).
    pub fn blobs(&self) -> Vec<&BlobRef> {
        match self {
            ObjectEntry::Live(record) => record.blobs().collect(),
            ObjectEntry::Deleted { blob, .. } => vec![blob],
        }
    }

    /// [`Self::blobs`] with the object bytes each holds (for the GC queue's byte count).
    pub fn blobs_with_bytes(&self) -> Vec<(&BlobRef, u64)> {
        match self {
            ObjectEntry::Live(record) => record.blobs_with_bytes().collect(),
            ObjectEntry::Deleted { blob, .. } => vec![(blob, 0)],
        }
    }

    /// The blob that makes this entry what it is: the object's data (or its manifest), or the
    /// tombstone. Its id goes into the volumes' commit logs.
    pub fn main_blob(&self) -> &BlobRef {
        match self {
            ObjectEntry::Live(record) => &record.blob,
            ObjectEntry::Deleted { blob, .. } => blob,
        }
    }

    /// The live record, if any.
    pub fn live(self) -> Option<ObjectRecord> {
        match self {
            ObjectEntry::Live(record) => Some(*record),
            ObjectEntry::Deleted { .. } => None,
        }
    }
}

/// An access key: its SigV4 secret and the buckets it may use. The root key from config is
/// not stored here and may use every bucket.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// A name for people.
    pub name: String,
    /// The secret access key (SigV4 needs it in the clear to compute signatures).
    pub secret: String,
    /// When it was created, unix milliseconds.
    pub created_ms: u64,
    /// What it may do on buckets of other owners.
    pub grants: Vec<Grant>,
    /// The canonical id of the owner the key acts for: it has full control of that owner's
    /// buckets, as every key of the owner has. Empty for a key stored before owners existed,
    /// which is its own owner (see `auth::key_owner`). Appended.
    pub owner: String,
    /// The owner's display name (S3's `Owner.DisplayName`). Appended.
    pub owner_name: String,
    /// May create buckets, which its owner then owns. Appended.
    pub create_bucket: bool,
}

impl std::fmt::Debug for KeyRecord {
    /// The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("name", &self.name)
            .field("grants", &self.grants)
            .field("owner", &self.owner)
            .field("create_bucket", &self.create_bucket)
            .finish_non_exhaustive()
    }
}

/// Permissions of a key on one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Bucket name.
    pub bucket: String,
    /// Read objects and list.
    pub read: bool,
    /// Write and delete objects.
    pub write: bool,
    /// Create and delete the bucket itself (implies read and write).
    pub owner: bool,
}

/// A blob no longer referenced, waiting for GC after `queued_ms` plus the grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcEntry {
    /// When it was queued, unix milliseconds.
    pub queued_ms: u64,
    /// The bucket of the key the blob belonged to: a tombstone of that key stays while the
    /// blob does, or a rebuild could resurrect the version the tombstone deleted.
    pub bucket: String,
    /// The key the blob belonged to.
    pub key: String,
    /// The blob to delete.
    pub blob: BlobRef,
}

/// A blob with fewer copies than the cluster keeps, or with copies a read found damaged,
/// waiting for the repairer (keyed by blob id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairEntry {
    /// Bucket of the key that uses the blob.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// For a part of an upload in progress, the upload.
    pub upload_id: Option<String>,
    /// When it was queued, unix milliseconds.
    pub queued_ms: u64,
    /// Recorded copies a read found corrupt or missing: the repairer checks each on its
    /// volume and rewrites it in place from a good copy.
    pub damaged: Vec<Replica>,
}

impl RepairEntry {
    /// A new entry, queued now, with no damage reported.
    pub fn new(bucket: &str, key: &str, upload_id: Option<&str>) -> Self {
        Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.map(str::to_string),
            queued_ms: crate::time::now_ms(),
            damaged: Vec::new(),
        }
    }
}

/// A volume of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// Stable id (from the volume's data directories).
    pub id: String,
    /// Where it answers.
    pub url: String,
    /// Placement weight; 0 = takes no new data.
    pub weight: f64,
    /// Failure domain.
    pub zone: Option<String>,
    /// Number of subvolumes.
    pub subvolumes: u32,
}

/// The cluster's volumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    /// All known volumes, in ring order.
    pub volumes: Vec<VolumeRecord>,
    /// Ids of volumes removed with `volume remove`: the gateway's `--volumes` list may still
    /// name them, but they stay out until `volume add` brings one back.
    #[serde(default)]
    pub removed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_unknown_versions() {
        let entry = ObjectEntry::Live(Box::new(ObjectRecord {
            ts: 7,
            modified_ms: 8,
            size: 9,
            etag: "abc".into(),
            sha256: "def".into(),
            headers: SystemHeaders { content_type: Some("text/plain".into()), ..Default::default() },
            user_meta: vec![("a".into(), "b".into())],
            tags: vec![],
            checksum: None,
            parts: vec![],
            blob: BlobRef { id: "00".repeat(16), replicas: vec![Replica { volume: "v".into(), subvolume: 1 }] },
            tags_blob: None,
            version: Default::default(),
            lock: Default::default(),
            lock_blob: None,
            acl: None,
            acl_blob: None,
        }));
        let bytes = encode(&entry).unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<ObjectEntry>(&bytes).unwrap(), entry);
        // As version 2 wrote it: without the lock and lock blob (three zero bytes) at the end.
        let mut version_2 = bytes[..bytes.len() - 3].to_vec();
        version_2[0] = 2;
        assert_eq!(decode::<ObjectEntry>(&version_2).unwrap(), entry);
        let mut future = bytes.clone();
        future[0] = 99;
        assert!(decode::<ObjectEntry>(&future).is_err());
        assert!(decode::<ObjectEntry>(&[]).is_err());
    }

    /// A record written before fields were appended to its last struct reads with their
    /// defaults, in either variant of an enum; a record cut short elsewhere still fails.
    #[test]
    fn records_written_before_fields_were_appended_still_read() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Before {
            ts: u64,
            name: String,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum EntryBefore {
            Live(Box<Before>),
            Gone { ts: u64 },
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Kind {
            Plain,
            Special,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct After {
            ts: u64,
            name: String,
            note: Option<String>,
            list: Vec<u64>,
            count: u64,
            flag: bool,
            kind: Kind,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum EntryAfter {
            Live(Box<After>),
            Gone { ts: u64, marker: bool },
        }
        let old = written_by_version_1(&EntryBefore::Live(Box::new(Before { ts: 5, name: "x".into() })));
        let expected =
            After { ts: 5, name: "x".into(), note: None, list: vec![], count: 0, flag: false, kind: Kind::Plain };
        assert_eq!(decode::<EntryAfter>(&old).unwrap(), EntryAfter::Live(Box::new(expected)));
        let old = written_by_version_1(&EntryBefore::Gone { ts: 9 });
        assert_eq!(decode::<EntryAfter>(&old).unwrap(), EntryAfter::Gone { ts: 9, marker: false });
        let written = EntryAfter::Gone { ts: 9, marker: true };
        assert_eq!(decode::<EntryAfter>(&encode(&written).unwrap()).unwrap(), written, "new records read exactly");
        // The membership as stored before `removed` was added to it.
        #[derive(Serialize)]
        struct MembershipBefore {
            volumes: Vec<VolumeRecord>,
        }
        let old = written_by_version_1(&MembershipBefore { volumes: vec![] });
        assert_eq!(decode::<Membership>(&old).unwrap(), Membership::default());
        // A current record must be whole.
        let cut = encode(&Before { ts: 1, name: "a longer name".into() }).unwrap();
        assert!(decode::<Before>(&cut[..cut.len() - 3]).is_err());
        assert!(decode::<After>(&cut).is_err());
    }

    fn written_by_version_1<T: Serialize>(record: &T) -> Vec<u8> {
        let mut bytes = encode(record).unwrap();
        bytes[0] = 1;
        bytes
    }
}
