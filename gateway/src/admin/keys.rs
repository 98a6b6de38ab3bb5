//! Access keys over the admin API. The secret is returned at creation, and to
//! `GET /keys/export`, which `cairn-admin key export` seals with a passphrase before it
//! touches a disk: access keys live only in the index, so an export is how they survive
//! its loss (`cairn-admin key import` brings them back after a rebuild).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::{AdminApi, Failure, json, read_json, read_json_limited, reply};
use crate::index::records::{Grant, KeyRecord};
use crate::owner::Owner;
use crate::time::now_ms;

/// `POST /keys` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateKey {
    /// A name for people.
    pub name: String,
    /// May create buckets (which its owner then owns).
    #[serde(default)]
    pub create_bucket: bool,
    /// The canonical id of an existing owner (of another key, or the root owner's) the key
    /// is to act for; a new owner, named after the key, when absent.
    #[serde(default)]
    pub owner: Option<String>,
}

/// `POST /keys` answer: the only time the secret is shown.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedKey {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Name.
    pub name: String,
    /// The canonical id of the owner it acts for.
    #[serde(default)]
    pub owner_id: String,
}

/// One key in `GET /keys`.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Access key id.
    pub access_key_id: String,
    /// Name.
    pub name: String,
    /// Creation time, unix milliseconds.
    pub created_ms: u64,
    /// Grants per bucket.
    pub grants: Vec<Grant>,
    /// The canonical id of the owner it acts for.
    #[serde(default)]
    pub owner_id: String,
    /// The owner's display name.
    #[serde(default)]
    pub owner_name: String,
    /// May create buckets.
    #[serde(default)]
    pub create_bucket: bool,
}

impl KeyInfo {
    fn of(access_key_id: String, record: KeyRecord) -> Self {
        let owner = Owner::of_key(&access_key_id, &record);
        Self {
            access_key_id,
            name: record.name,
            created_ms: record.created_ms,
            grants: record.grants,
            owner_id: owner.id,
            owner_name: owner.name,
            create_bucket: record.create_bucket,
        }
    }
}

/// `POST /keys/{id}/grants` body: `allow` adds the named permissions, otherwise removes them
/// (all of them when none is named).
#[derive(Debug, Serialize, Deserialize)]
pub struct GrantChange {
    /// The bucket.
    pub bucket: String,
    /// Read objects and list.
    #[serde(default)]
    pub read: bool,
    /// Write and delete objects.
    #[serde(default)]
    pub write: bool,
    /// Create and delete the bucket.
    #[serde(default)]
    pub owner: bool,
    /// Add the permissions (else take them away).
    pub allow: bool,
}

/// One key with its secret, as `GET /keys/export` lists it and `POST /keys/import` takes it.
#[derive(Clone, Serialize, Deserialize)]
pub struct ExportedKey {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Name.
    pub name: String,
    /// Creation time, unix milliseconds.
    pub created_ms: u64,
    /// Grants per bucket.
    pub grants: Vec<Grant>,
    /// The canonical id of its owner (absent in exports from before owners: such a key
    /// stays its own owner).
    #[serde(default)]
    pub owner_id: String,
    /// The owner's display name.
    #[serde(default)]
    pub owner_name: String,
    /// May create buckets.
    #[serde(default)]
    pub create_bucket: bool,
}

impl std::fmt::Debug for ExportedKey {
    /// The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedKey")
            .field("access_key_id", &self.access_key_id)
            .field("name", &self.name)
            .field("grants", &self.grants)
            .field("owner_id", &self.owner_id)
            .field("create_bucket", &self.create_bucket)
            .finish_non_exhaustive()
    }
}

/// `POST /keys/import` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Imported {
    /// Keys stored.
    pub imported: usize,
    /// Of those, how many replaced a key with the same id.
    pub replaced: usize,
}

/// Largest import body: ample for tens of thousands of keys.
const MAX_IMPORT_BODY: usize = 16 * 1024 * 1024;

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

pub(super) async fn create(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let body: CreateKey = read_json(req).await?;
    if body.name.trim().is_empty() {
        return Err(Failure(StatusCode::BAD_REQUEST, "a key needs a name".into()));
    }
    let owner = match &body.owner {
        None => Owner::new(&body.name),
        Some(id) => existing_owner(api, id).await?,
    };
    let access_key_id = format!("CK{}", random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"));
    let secret_access_key = random_string(40, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    let record = KeyRecord {
        name: body.name.clone(),
        secret: secret_access_key.clone(),
        created_ms: now_ms(),
        grants: vec![],
        owner: owner.id.clone(),
        owner_name: owner.name,
        create_bucket: body.create_bucket,
    };
    api.index.put_key(&access_key_id, &record).await?;
    tracing::info!(%access_key_id, name = %body.name, owner = %owner.id, create_bucket = body.create_bucket, "access key created");
    Ok(json(StatusCode::CREATED, &CreatedKey { access_key_id, secret_access_key, name: body.name, owner_id: owner.id }))
}

/// The owner with canonical id `id`: the root owner, or one some key acts for.
async fn existing_owner(api: &AdminApi, id: &str) -> Result<Owner, Failure> {
    if id == crate::owner::ROOT_ID {
        return Ok(Owner::root());
    }
    let keys = api.index.keys().await?;
    keys.iter()
        .map(|(key_id, record)| Owner::of_key(key_id, record))
        .find(|owner| owner.id == id)
        .ok_or_else(|| Failure(StatusCode::BAD_REQUEST, format!("no key acts for owner {id}")))
}

pub(super) async fn list(api: &AdminApi) -> Result<Response<Full<Bytes>>, Failure> {
    let keys: Vec<KeyInfo> = api.index.keys().await?.into_iter().map(|(id, record)| KeyInfo::of(id, record)).collect();
    Ok(json(StatusCode::OK, &keys))
}

pub(super) async fn delete(api: &AdminApi, id: &str) -> Result<Response<Full<Bytes>>, Failure> {
    if !api.index.delete_key(id).await? {
        return Err(Failure(StatusCode::NOT_FOUND, format!("no key {id}")));
    }
    tracing::info!(access_key_id = %id, "access key deleted");
    Ok(reply(StatusCode::NO_CONTENT, String::new()))
}

pub(super) async fn grant(api: &AdminApi, id: &str, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let change: GrantChange = read_json(req).await?;
    let none_named = !(change.read || change.write || change.owner);
    if change.allow && none_named {
        // It would change nothing, and an operator who typed it meant something.
        return Err(Failure(StatusCode::BAD_REQUEST, "name what to allow: --read, --write and/or --owner".into()));
    }
    let found = api
        .index
        .update_grant(id, &change.bucket, |grant: &mut Grant| {
            if change.allow {
                grant.read |= change.read;
                grant.write |= change.write;
                grant.owner |= change.owner;
            } else if none_named {
                *grant = Grant { bucket: grant.bucket.clone(), ..Default::default() };
            } else {
                grant.read &= !change.read;
                grant.write &= !change.write;
                grant.owner &= !change.owner;
            }
        })
        .await?;
    if !found {
        return Err(Failure(StatusCode::NOT_FOUND, format!("no key {id}")));
    }
    list(api).await
}

pub(super) async fn export(api: &AdminApi) -> Result<Response<Full<Bytes>>, Failure> {
    let keys: Vec<ExportedKey> = api
        .index
        .keys()
        .await?
        .into_iter()
        .map(|(id, record)| ExportedKey {
            access_key_id: id,
            secret_access_key: record.secret,
            name: record.name,
            created_ms: record.created_ms,
            grants: record.grants,
            owner_id: record.owner,
            owner_name: record.owner_name,
            create_bucket: record.create_bucket,
        })
        .collect();
    tracing::info!(keys = keys.len(), "access keys exported");
    Ok(json(StatusCode::OK, &keys))
}

/// Stores every key of the body, replacing keys with the same id (so an import can be run
/// again), all in one batch; nothing is stored if any key is malformed.
pub(super) async fn import(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let keys: Vec<ExportedKey> = read_json_limited(req, MAX_IMPORT_BODY).await?;
    let mut records = Vec::with_capacity(keys.len());
    for key in keys {
        let id_ok = !key.access_key_id.is_empty()
            && key.access_key_id.len() <= 128
            && key.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok || key.secret_access_key.is_empty() || key.name.trim().is_empty() {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("key {:?}: an id of letters and digits, a secret and a name are required", key.access_key_id),
            ));
        }
        if !key.owner_id.is_empty() && !crate::owner::is_canonical_id(&key.owner_id) {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("key {:?}: the owner id must be 64 lowercase hex digits", key.access_key_id),
            ));
        }
        let record = KeyRecord {
            name: key.name,
            secret: key.secret_access_key,
            created_ms: key.created_ms,
            grants: key.grants,
            owner: key.owner_id,
            owner_name: key.owner_name,
            create_bucket: key.create_bucket,
        };
        records.push((key.access_key_id, record));
    }
    let replaced = api.index.put_keys(&records).await?;
    tracing::info!(imported = records.len(), replaced, "access keys imported");
    Ok(json(StatusCode::OK, &Imported { imported: records.len(), replaced }))
}
