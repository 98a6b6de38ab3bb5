//! Owners: whom buckets belong to, S3's accounts. Every access key acts for an owner (a
//! canonical id and a display name), and the keys of one owner share its buckets. The root key
//! from config acts for the root owner, which also owns every bucket made before owners
//! existed. A key stored before owners existed is an owner of its own, its id derived from the
//! key's, so it stays the same without a migration.

use rand::Rng as _;
use sha2::{Digest, Sha256};

use crate::index::records::{BucketRecord, KeyRecord};

/// The root owner's canonical id (stored as the empty string in bucket records and blobs).
pub const ROOT_ID: &str = "422b9b954c60e550413a729ddd087922673fd0264e6192f1f45deab34099d298";
/// The root owner's display name.
pub const ROOT_NAME: &str = "root";

/// An owner as S3 shows one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Canonical id: 64 lowercase hex digits.
    pub id: String,
    /// Display name.
    pub name: String,
}

impl Owner {
    /// The root owner.
    pub fn root() -> Self {
        Self { id: ROOT_ID.to_string(), name: ROOT_NAME.to_string() }
    }

    /// The owner key `access_key_id` acts for.
    pub fn of_key(access_key_id: &str, record: &KeyRecord) -> Self {
        if !record.owner.is_empty() {
            return Self { id: record.owner.clone(), name: record.owner_name.clone() };
        }
        let id = hex::encode(Sha256::digest(format!("cairn key owner:{access_key_id}")));
        Self { id, name: record.name.clone() }
    }

    /// A new owner with a random canonical id.
    pub fn new(name: &str) -> Self {
        let bytes: [u8; 32] = rand::rng().random();
        Self { id: hex::encode(bytes), name: name.to_string() }
    }

    /// The form bucket records keep: empty for the root owner.
    pub fn stored_id(&self) -> String {
        if self.id == ROOT_ID { String::new() } else { self.id.clone() }
    }

    /// Whether this owner owns `bucket`.
    pub fn owns(&self, bucket: &BucketRecord) -> bool {
        bucket_owner_id(bucket) == self.id
    }

    /// As S3 answers it.
    pub fn to_s3(&self) -> s3s::dto::Owner {
        s3s::dto::Owner { display_name: Some(self.name.clone()), id: Some(self.id.clone()) }
    }
}

/// The canonical id of `bucket`'s owner.
pub fn bucket_owner_id(bucket: &BucketRecord) -> &str {
    if bucket.owner.is_empty() { ROOT_ID } else { &bucket.owner }
}

/// `bucket`'s owner as S3 answers it (the display name only for the root owner: a bucket
/// record keeps only the owner's id, and S3 itself no longer promises display names).
pub fn bucket_owner(bucket: &BucketRecord) -> s3s::dto::Owner {
    s3_owner(bucket_owner_id(bucket))
}

/// The owner whose canonical id is `id`, as S3 answers it (see [`bucket_owner`] on names).
pub fn s3_owner(id: &str) -> s3s::dto::Owner {
    s3s::dto::Owner { display_name: (id == ROOT_ID).then(|| ROOT_NAME.to_string()), id: Some(id.to_string()) }
}

/// Whether `id` has the form of a canonical id.
pub fn is_canonical_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_of_keys_and_buckets() {
        let legacy = KeyRecord { name: "app".into(), ..Default::default() };
        let owner = Owner::of_key("CK1", &legacy);
        assert!(is_canonical_id(&owner.id), "{owner:?}");
        assert_eq!(owner, Owner::of_key("CK1", &legacy), "a legacy key's owner is stable");
        assert_ne!(owner.id, Owner::of_key("CK2", &legacy).id);
        let fresh = Owner::new("team");
        assert!(is_canonical_id(&fresh.id) && fresh.id != Owner::new("team").id);
        let keyed = KeyRecord { owner: fresh.id.clone(), owner_name: "team".into(), ..Default::default() };
        assert_eq!(Owner::of_key("CK3", &keyed), fresh);

        let rootless = BucketRecord::default();
        assert!(Owner::root().owns(&rootless), "buckets from before owners are the root's");
        assert_eq!(Owner::root().stored_id(), "");
        let bucket = BucketRecord { owner: fresh.stored_id(), ..Default::default() };
        assert!(fresh.owns(&bucket) && !Owner::root().owns(&bucket));
        assert_eq!(bucket_owner(&bucket).id.as_deref(), Some(fresh.id.as_str()));
        assert!(is_canonical_id(ROOT_ID));
    }
}
