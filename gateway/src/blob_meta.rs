//! The metadata the gateway writes into every blob, so that a lost index can be rebuilt from
//! the volumes alone: which bucket and key, which write (timestamp), and the S3 headers.
//! Size, SHA-256 and MD5 are in the volume's own footer.

use serde::{Deserialize, Serialize};

use crate::index::records::SystemHeaders;

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
}

impl BlobMeta {
    /// The JSON bytes sent to the volumes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
