//! Who may do what to a bucket: the decision `auth::AccessPolicy` makes for each request,
//! once the signature is checked. The root key may do everything. A stored key has full
//! control of its owner's buckets (`owner.rs`), what its grants say on buckets of other
//! owners, and creates buckets only if allowed to. A bucket's policy (`policy.rs`) is asked
//! first, for stored keys and anonymous callers alike: its explicit Deny wins over
//! everything, its Allow gives what ownership and grants do not; then the ACLs of the bucket
//! and of the object version (`acl.rs`) where the bucket's ownership enables them. Anonymous
//! callers get only what a policy or an ACL allows. The decided [`Caller`] goes into the
//! request's extensions for the handlers (ListBuckets, CreateBucket, and DeleteObjects's per-key
//! [`BucketRules`]).

use http::HeaderMap;
use s3s::access::S3AccessContext;
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use volumed::serve::Connection;

use crate::acl::{self, AclNeed};
use crate::index::Index;
use crate::index::records::{BucketRecord, Grant, KeyRecord, ObjectEntry, ObjectRecord};
use crate::owner::{Owner, bucket_owner_id};
use crate::policy::{Decision, Policy, Request, action_of};

/// Whom a request acts for, as the access check found it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The owner it acts for (none for an anonymous caller: see [`Caller::anonymous`]).
    pub owner: Owner,
    /// Which kind of caller.
    pub who: Who,
    /// Where the request came from.
    pub connection: Option<Connection>,
}

/// The kinds of caller.
#[derive(Debug, Clone)]
pub enum Who {
    /// The root key from config.
    Root,
    /// A stored key: its id and record.
    Key(String, Box<KeyRecord>),
    /// No credentials.
    Anonymous,
}

/// S3's canonical id for anonymous requests.
const ANONYMOUS_ID: &str = "65a011a29cdf8ec533ec3d1ccaae921c";

impl Caller {
    /// The caller of a request (the access check put it there).
    pub fn of(extensions: &http::Extensions) -> S3Result<&Caller> {
        extensions.get::<Caller>().ok_or_else(denied)
    }

    fn anonymous(connection: Option<Connection>) -> Self {
        let owner = Owner { id: ANONYMOUS_ID.to_string(), name: "anonymous".to_string() };
        Caller { owner, who: Who::Anonymous, connection }
    }

    /// Whether `bucket` is one the caller sees in ListBuckets: every bucket for the root key;
    /// its owner's buckets and those it has a grant on for a stored key.
    pub fn lists(&self, name: &str, bucket: &BucketRecord) -> bool {
        match &self.who {
            Who::Root => true,
            Who::Key(_, key) => self.owner.owns(bucket) || key.grants.iter().any(|g| g.bucket == name),
            Who::Anonymous => false,
        }
    }

    /// The canonical id ACL grants name the caller by; `None` for anonymous.
    fn acl_id(&self) -> Option<&str> {
        match &self.who {
            Who::Anonymous => None,
            Who::Root | Who::Key(..) => Some(self.owner.id.as_str()),
        }
    }

    /// The principal a policy sees: the key's id and its owner's; `None` for anonymous.
    fn principal(&self) -> Option<(&str, &str)> {
        match &self.who {
            Who::Key(id, _) => Some((id.as_str(), self.owner.id.as_str())),
            Who::Root | Who::Anonymous => None,
        }
    }

    /// Whether ownership or grants let the caller do what `need` says on `bucket` (`None`:
    /// it does not exist), without asking the bucket's policy.
    fn entitled(&self, name: &str, bucket: Option<&BucketRecord>, need: Need) -> bool {
        match &self.who {
            Who::Root => true,
            Who::Anonymous => false,
            Who::Key(_, key) => {
                allows(&key.grants, name, need)
                    || match bucket {
                        Some(record) => self.owner.owns(record),
                        // The handler answers NoSuchBucket, as S3 does, to a key that may
                        // create buckets; any other learns nothing of names.
                        None => key.create_bucket,
                    }
            }
        }
    }
}

/// What an operation needs of ownership and grants on a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Read,
    Write,
    Owner,
}

pub(crate) fn need_of(operation: &str) -> Need {
    match operation {
        // A bucket's configuration is its owner's to set (lifecycle rules and object lock
        // decide what may be deleted, policies and public access blocks who may do what).
        "CreateBucket"
        | "DeleteBucket"
        | "PutObjectLockConfiguration"
        | "PutPublicAccessBlock"
        | "DeletePublicAccessBlock" => Need::Owner,
        op if op.contains("Bucket") && (op.starts_with("Put") || op.starts_with("Delete")) => Need::Owner,
        op if op.starts_with("Get") || op.starts_with("Head") || op.starts_with("List") => Need::Read,
        _ => Need::Write,
    }
}

pub(crate) fn allows(grants: &[Grant], bucket: &str, need: Need) -> bool {
    grants.iter().filter(|g| g.bucket == bucket).any(|g| match need {
        Need::Read => g.read || g.owner,
        Need::Write => g.write || g.owner,
        Need::Owner => g.owner,
    })
}

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// Whether the request asks to bypass GOVERNANCE retention.
fn bypasses_governance(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-bypass-governance-retention")
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"true"))
}

/// The bucket and key of an `x-amz-copy-source` header (`bucket/key`, maybe `/`-led,
/// URL-encoded, maybe with `?versionId=`).
pub(crate) fn copy_source(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("x-amz-copy-source")?.to_str().ok()?;
    let path = value.trim_start_matches('/').split('?').next().unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
    decoded.split_once('/').map(|(bucket, key)| (bucket.to_string(), key.to_string()))
}

/// The version id an `x-amz-copy-source` header names, if any.
fn copy_source_version(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-amz-copy-source")?.to_str().ok()?;
    query_param(Some(value.split_once('?')?.1), "versionId")
}

/// One query parameter, decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').filter_map(|pair| pair.split_once('=').or(Some((pair, "")))).find(|(n, _)| *n == name).map(
        |(_, value)| percent_encoding::percent_decode_str(&value.replace('+', " ")).decode_utf8_lossy().into_owned(),
    )
}

/// What a request asks of a bucket's policy.
struct Asked<'a> {
    action: &'a str,
    key: Option<&'a str>,
    /// The version id the request names, if any.
    version: Option<&'a str>,
    /// A listing's prefix (empty when it names none).
    prefix: Option<&'a str>,
}

/// One bucket's rules for one caller: the bucket's policy, parsed once for all the decisions a
/// request needs, then its ownership and the caller's grants.
pub struct BucketRules<'a> {
    caller: &'a Caller,
    name: &'a str,
    bucket: Option<&'a BucketRecord>,
    policy: Option<Policy>,
}

impl<'a> BucketRules<'a> {
    /// The rules of bucket `name` (`None`: it does not exist) for `caller`.
    pub fn new(caller: &'a Caller, name: &'a str, bucket: Option<&'a BucketRecord>) -> S3Result<Self> {
        let policy = match bucket.and_then(|b| b.policy.as_deref()) {
            Some(text) => Some(Policy::parse(text, name).map_err(|err| {
                crate::error::Error::Index(format!("the stored policy of {name} does not parse: {err:?}"))
            })?),
            None => None,
        };
        Ok(Self { caller, name, bucket, policy })
    }

    /// What the policy says of the caller doing `asked`. A public policy gives nothing to
    /// callers outside the bucket owner's keys when the bucket restricts public buckets.
    async fn decision(&self, index: &Index, asked: &Asked<'_>) -> S3Result<Decision> {
        let (Some(policy), Some(bucket)) = (&self.policy, self.bucket) else { return Ok(Decision::NotApplicable) };
        let name = self.name;
        let tags = match asked.key {
            Some(key) if policy.reads_object_tags() => self.version(index, key, asked.version).await?.map(|r| r.tags),
            _ => None,
        };
        let resource = match asked.key {
            Some(key) => format!("arn:aws:s3:::{name}/{key}"),
            None => format!("arn:aws:s3:::{name}"),
        };
        let caller = self.caller;
        let request = Request {
            principal: caller.principal(),
            action: asked.action,
            resource,
            source_ip: caller.connection.map(|c| c.peer.ip()),
            secure_transport: caller.connection.is_some_and(|c| c.tls),
            prefix: asked.prefix,
            object_tags: tags.as_deref(),
        };
        let decision = policy.evaluate(&request);
        let restricted = bucket.public_access_block.is_some_and(|b| b.restrict_public_buckets) && policy.is_public();
        let own_key = caller.principal().is_some_and(|(_, owner)| owner == bucket_owner_id(bucket));
        if decision == Decision::Allow && restricted && !own_key {
            return Ok(Decision::NotApplicable);
        }
        Ok(decision)
    }

    /// The policy first (Deny refuses, Allow admits), then ownership and grants, then the
    /// ACLs (what `operation` needs of them; `version`: the version id it names).
    async fn allow(&self, index: &Index, asked: &Asked<'_>, operation: &str) -> S3Result<bool> {
        Ok(match self.decision(index, asked).await? {
            Decision::Deny => false,
            Decision::Allow => true,
            Decision::NotApplicable => self.granted(index, operation, asked).await?,
        })
    }

    /// What decides when the policy does not: ownership and grants, then the ACLs.
    async fn granted(&self, index: &Index, operation: &str, asked: &Asked<'_>) -> S3Result<bool> {
        Ok(self.caller.entitled(self.name, self.bucket, need_of(operation))
            || self.acl_allows(index, operation, asked.key, asked.version).await?)
    }

    /// The version of `key` that `version` names (the current one without an id), if it is an
    /// object; a version id that names nothing valid names nothing. An index error is an error:
    /// taken for "no such version" it would skip a Deny that judges the version's tags.
    async fn version(&self, index: &Index, key: &str, version: Option<&str>) -> S3Result<Option<ObjectRecord>> {
        Ok(match version {
            None => index.object(self.name, key).await?,
            Some(id) => match index.object_version(self.name, key, id).await? {
                Some(ObjectEntry::Live(record)) => Some(*record),
                _ => None,
            },
        })
    }

    /// Whether the bucket's ACL, or the ACL of the object version `key` and `version` name (the
    /// current one without a version id), lets the caller do `operation`. ACLs count only where
    /// the bucket's ownership enables them; grants to the public groups not at all where its
    /// public access block ignores public ACLs.
    async fn acl_allows(
        &self,
        index: &Index,
        operation: &str,
        key: Option<&str>,
        version: Option<&str>,
    ) -> S3Result<bool> {
        let Some(bucket) = self.bucket.filter(|b| b.ownership.acls_enabled()) else { return Ok(false) };
        let ignore_public = bucket.public_access_block.is_some_and(|b| b.ignore_public_acls);
        let caller = self.caller.acl_id();
        // A bucket's WRITE grant lets others delete current objects, never versions: on S3 only
        // the bucket owner may delete a version, and it is entitled without ACLs.
        if version.is_some() && matches!(operation, "DeleteObject" | "DeleteObjects") {
            return Ok(false);
        }
        Ok(match (acl::need_of(operation), key) {
            (Some(AclNeed::Bucket(permission)), _) => {
                acl::effective(bucket.acl.as_ref(), bucket).allows(caller, permission, ignore_public)
            }
            (Some(AclNeed::Object(permission)), Some(key)) => {
                let record = self.version(index, key, version).await?;
                record.is_some_and(|r| acl::effective(r.acl.as_ref(), bucket).allows(caller, permission, ignore_public))
            }
            _ => false,
        })
    }

    /// Whether a GET or HEAD of `key`, allowed, must still be refused because the key does not
    /// exist and the caller may not list the bucket: S3 answers 403 rather than 404 then, so
    /// that what may be read does not tell what else exists. The caller's own buckets are
    /// spared the read this costs.
    async fn hides_missing_key(
        &self,
        index: &Index,
        operation: &str,
        key: Option<&str>,
        version: Option<&str>,
    ) -> S3Result<bool> {
        let (Some(key), None, "GetObject" | "HeadObject") = (key, version, operation) else { return Ok(false) };
        if self.caller.entitled(self.name, self.bucket, Need::Read) || index.object(self.name, key).await?.is_some() {
            return Ok(false);
        }
        let listing = Asked { action: "s3:ListBucket", key: None, version: None, prefix: None };
        Ok(!self.allow(index, &listing, "ListObjects").await?)
    }

    /// Whether the caller may delete `key`, or its version `version` (one key of a
    /// DeleteObjects).
    pub async fn may_delete(&self, index: &Index, key: &str, version: Option<&str>) -> S3Result<bool> {
        if matches!(self.caller.who, Who::Root) {
            return Ok(true);
        }
        let action = action_of("DeleteObject", version.is_some());
        let asked = Asked { action: &action, key: Some(key), version, prefix: None };
        self.allow(index, &asked, "DeleteObject").await
    }
}

/// What a request asks, as the access decision needs it.
pub(crate) struct Asking<'a> {
    /// The S3 operation (as s3s names it).
    pub operation: &'a str,
    /// The bucket, if the request names one.
    pub bucket: Option<&'a str>,
    /// The key, if the request names one.
    pub key: Option<&'a str>,
    /// The query string.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> Asking<'a> {
    /// What an S3 request asks.
    pub(crate) fn of(cx: &'a S3AccessContext<'_>) -> Self {
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.as_ref()), None),
            S3Path::Object { bucket, key } => (Some(bucket.as_ref()), Some(key.as_ref())),
        };
        Asking { operation: cx.s3_op().name(), bucket, key, query: cx.uri().query(), headers: cx.headers() }
    }
}

/// Decides whether `caller` (not the root key) may make the request: `Ok` or AccessDenied.
pub(crate) async fn authorize(index: &Index, caller: &Caller, asking: &Asking<'_>) -> S3Result<()> {
    let (operation, key) = (asking.operation, asking.key);
    let name = match asking.bucket {
        // ListBuckets is filtered by `Caller::lists`; anonymous callers have no buckets.
        None if matches!(caller.who, Who::Anonymous) => return Err(denied()),
        None => return Ok(()),
        Some(name) => name,
    };
    if operation == "CreateBucket" {
        // Whether the name is taken, and by whom, is the handler's to say.
        let allowed = match &caller.who {
            Who::Key(_, record) => record.create_bucket || allows(&record.grants, name, Need::Owner),
            Who::Root => true,
            Who::Anonymous => false,
        };
        return if allowed { Ok(()) } else { Err(denied()) };
    }
    let bucket = index.bucket(name).await?;
    let rules = BucketRules::new(caller, name, bucket.as_ref())?;
    let query = asking.query;
    let versioned = query_param(query, "versionId").is_some();
    let action = action_of(operation, versioned);
    let listing = matches!(operation, "ListObjects" | "ListObjectsV2" | "ListObjectVersions");
    let prefix = listing.then(|| query_param(query, "prefix").unwrap_or_default());
    let version = query_param(query, "versionId");
    let asked = Asked { action: &action, key, version: version.as_deref(), prefix: prefix.as_deref() };
    // DeleteObjects names its keys in the body: let through a caller whom the policy may allow
    // some deletes, and its handler asks of each key (`BucketRules::may_delete`).
    let may_delete_some = || {
        operation == "DeleteObjects"
            && rules.policy.as_ref().is_some_and(|p| p.may_allow(caller.principal(), "s3:DeleteObject"))
    };
    let allowed = match rules.decision(index, &asked).await? {
        Decision::Deny => false,
        Decision::Allow => true,
        Decision::NotApplicable => rules.granted(index, operation, &asked).await? || may_delete_some(),
    };
    if !allowed || rules.hides_missing_key(index, operation, key, version.as_deref()).await? {
        return Err(denied());
    }
    // Bypassing GOVERNANCE retention is the bucket owner's (S3's
    // s3:BypassGovernanceRetention permission), never a policy's to give.
    if bypasses_governance(asking.headers) && !caller.entitled(name, bucket.as_ref(), Need::Owner) {
        return Err(denied());
    }
    if let Some((source_name, source_key)) = copy_source(asking.headers) {
        let source = index.bucket(&source_name).await?;
        let version = copy_source_version(asking.headers);
        let action = action_of("GetObject", version.is_some());
        let asked = Asked { action: &action, key: Some(&source_key), version: version.as_deref(), prefix: None };
        let rules = BucketRules::new(caller, &source_name, source.as_ref())?;
        if !rules.allow(index, &asked, "GetObject").await? {
            return Err(denied());
        }
    }
    Ok(())
}

/// The caller of a request with these credentials (`None`: anonymous): the root key, or a
/// stored key (`InvalidAccessKeyId` if it is gone).
pub(crate) async fn caller_of(
    index: &Index,
    root_access_key: &str,
    access_key: Option<&str>,
    connection: Option<Connection>,
) -> S3Result<Caller> {
    use subtle::ConstantTimeEq as _;
    let Some(access_key) = access_key else { return Ok(Caller::anonymous(connection)) };
    if bool::from(access_key.as_bytes().ct_eq(root_access_key.as_bytes())) {
        return Ok(Caller { owner: Owner::root(), who: Who::Root, connection });
    }
    let key = index.key(access_key).await?.ok_or_else(crate::auth::unknown_key)?;
    let owner = Owner::of_key(access_key, &key);
    Ok(Caller { owner, who: Who::Key(access_key.to_string(), Box::new(key)), connection })
}

/// `x-amz-expected-bucket-owner` (and `x-amz-source-expected-bucket-owner` for a copy's
/// source): a request naming an owner other than the bucket's is refused, for every caller.
pub(crate) async fn check_expected_owners(index: &Index, cx: &S3AccessContext<'_>) -> S3Result<()> {
    let bucket = match cx.s3_path() {
        S3Path::Root => None,
        S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
    };
    let checks = [
        ("x-amz-expected-bucket-owner", bucket),
        ("x-amz-source-expected-bucket-owner", copy_source(cx.headers()).map(|(bucket, _)| bucket)),
    ];
    for (header, bucket) in checks {
        let Some(expected) = cx.headers().get(header) else { continue };
        let Some(bucket) = bucket else { continue };
        // A bucket that does not exist is the handler's to report.
        if let Some(record) = index.bucket(&bucket).await?
            && expected.as_bytes() != bucket_owner_id(&record).as_bytes()
        {
            return Err(denied());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), http::HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn operations_need_the_right_grant() {
        let grants = vec![
            Grant { bucket: "a".into(), read: true, ..Default::default() },
            Grant { bucket: "b".into(), owner: true, ..Default::default() },
        ];
        assert!(allows(&grants, "a", need_of("GetObject")));
        assert!(allows(&grants, "a", need_of("ListObjectsV2")));
        assert!(!allows(&grants, "a", need_of("PutObject")));
        assert!(!allows(&grants, "a", need_of("DeleteBucket")));
        assert!(!allows(&grants, "a", need_of("PutBucketPolicy")));
        assert!(!allows(&grants, "a", need_of("PutPublicAccessBlock")));
        assert!(allows(&grants, "b", need_of("DeleteObjects")));
        assert!(allows(&grants, "b", need_of("CreateBucket")));
        assert!(!allows(&grants, "c", need_of("HeadObject")));
        let h = headers(&[("x-amz-copy-source", "/src%20bucket/key/with/slashes?versionId=3")]);
        assert_eq!(copy_source(&h), Some(("src bucket".to_string(), "key/with/slashes".to_string())));
    }

    #[test]
    fn reads_query_parameters() {
        assert_eq!(query_param(Some("list-type=2&prefix=a%2Fb+c"), "prefix").as_deref(), Some("a/b c"));
        assert_eq!(query_param(Some("versionId"), "versionId").as_deref(), Some(""));
        assert_eq!(query_param(Some("list-type=2"), "prefix"), None);
        assert_eq!(query_param(None, "prefix"), None);
    }
}
