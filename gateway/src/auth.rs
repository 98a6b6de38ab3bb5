//! Who may call the S3 API: SigV4 secrets for access keys (s3s verifies the signature) and
//! the access check that runs on every authenticated request: per-bucket grants of keys
//! stored in the index; the root key from config may do everything.

use std::sync::Arc;

use http::HeaderMap;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq;

use crate::index::Index;
use crate::index::records::Grant;

/// Secrets for SigV4: the root key from config, then the keys in the index.
#[derive(Debug)]
pub struct KeyStore {
    root_access_key: String,
    root_secret_key: SecretKey,
    index: Arc<Index>,
}

impl KeyStore {
    /// A key store with the root key and the index's keys.
    pub fn new(root_access_key: String, root_secret_key: String, index: Arc<Index>) -> Self {
        Self { root_access_key, root_secret_key: SecretKey::from(root_secret_key), index }
    }
}

fn unknown_key() -> s3s::S3Error {
    s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
}

#[async_trait::async_trait]
impl S3Auth for KeyStore {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if bool::from(access_key.as_bytes().ct_eq(self.root_access_key.as_bytes())) {
            return Ok(self.root_secret_key.clone());
        }
        match self.index.key(access_key).await? {
            Some(record) => Ok(SecretKey::from(record.secret)),
            None => Err(unknown_key()),
        }
    }
}

/// What an operation needs on a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
    Owner,
}

fn need_of(operation: &str) -> Need {
    match operation {
        // Lifecycle rules and object lock decide what may be deleted: the owner's to set.
        "CreateBucket"
        | "DeleteBucket"
        | "PutObjectLockConfiguration"
        | "PutBucketLifecycleConfiguration"
        | "DeleteBucketLifecycle" => Need::Owner,
        op if op.starts_with("Get") || op.starts_with("Head") || op.starts_with("List") => Need::Read,
        _ => Need::Write,
    }
}

fn allows(grants: &[Grant], bucket: &str, need: Need) -> bool {
    grants.iter().filter(|g| g.bucket == bucket).any(|g| match need {
        Need::Read => g.read || g.owner,
        Need::Write => g.write || g.owner,
        Need::Owner => g.owner,
    })
}

/// Whether the request asks to bypass GOVERNANCE retention.
fn bypasses_governance(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-bypass-governance-retention")
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"true"))
}

/// The bucket of an `x-amz-copy-source` header (`bucket/key`, maybe `/`-led, URL-encoded).
fn copy_source_bucket(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-amz-copy-source")?.to_str().ok()?;
    let decoded = percent_encoding::percent_decode_str(value.trim_start_matches('/')).decode_utf8_lossy().into_owned();
    decoded.split_once('/').map(|(bucket, _)| bucket.to_string())
}

/// Denies anonymous requests, requests that carry `x-amz-*` headers outside the signature
/// (such a header could be added or changed in transit without detection), presigned URLs
/// valid for more than a week, and requests of stored keys on buckets they are not granted.
/// Then refuses bodies too large to buffer (`guard.rs`) and what Cairn does not implement
/// (`unsupported.rs`).
#[derive(Debug)]
pub struct AccessPolicy {
    root_access_key: String,
    index: Arc<Index>,
}

impl AccessPolicy {
    /// A policy where `root_access_key` may do everything.
    pub fn new(root_access_key: String, index: Arc<Index>) -> Self {
        Self { root_access_key, index }
    }

    /// Checks a stored key's grants for the operation (ListBuckets is filtered instead).
    async fn authorize(&self, access_key: &str, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let denied = || s3_error!(AccessDenied, "Access Denied");
        let record = self.index.key(access_key).await?.ok_or_else(unknown_key)?;
        let operation = cx.s3_op().name();
        let bucket = match cx.s3_path() {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket,
        };
        if !allows(&record.grants, bucket, need_of(operation)) {
            return Err(denied());
        }
        // Bypassing GOVERNANCE retention is the bucket owner's (S3's
        // s3:BypassGovernanceRetention permission).
        if bypasses_governance(cx.headers()) && !allows(&record.grants, bucket, Need::Owner) {
            return Err(denied());
        }
        if let Some(source) = copy_source_bucket(cx.headers())
            && !allows(&record.grants, &source, Need::Read)
        {
            return Err(denied());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3Access for AccessPolicy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            s3s::path::S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        crate::request_id::note_access(crate::request_id::Access {
            op: Some(cx.s3_op().name().to_string()),
            bucket,
            key,
            access_key: cx.credentials().map(|c| c.access_key.clone()),
        });
        let Some(access_key) = cx.credentials().map(|c| c.access_key.clone()) else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        if presigned_expiry(cx.uri().query()).is_some_and(|seconds| seconds > MAX_PRESIGNED_EXPIRY_SECS) {
            return Err(s3_error!(
                AuthorizationQueryParametersError,
                "X-Amz-Expires must be less than a week (in seconds) that is 604800"
            ));
        }
        if sigv2_presigned_lifetime(cx.uri().query(), now_unix())
            .is_some_and(|seconds| seconds > MAX_SIGV2_LIFETIME_SECS)
        {
            // No AWS wording exists for SigV2 (AWS lets SigV2 URLs live longer); this is the
            // SigV4 refusal, same code and status, with SigV2's parameter named.
            return Err(s3_error!(
                AuthorizationQueryParametersError,
                "Expires must be less than a week (604800 seconds) from now"
            ));
        }
        let signed = signed_headers(cx.headers(), cx.uri().query());
        if let Some(name) = unsigned_amz_header(cx.headers(), &signed) {
            return Err(s3_error!(
                AccessDenied,
                "There were headers present in the request which were not signed: {name}"
            ));
        }
        if !bool::from(access_key.as_bytes().ct_eq(self.root_access_key.as_bytes())) {
            self.authorize(&access_key, cx).await?;
        }
        // Only a client allowed to make the request gets this far; nothing has read the body.
        crate::guard::check_buffered_body(cx.s3_op().name(), cx.headers())?;
        crate::unsupported::refuse_unsupported(cx.headers())
    }
}

/// S3 refuses presigned URLs valid for more than seven days.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// A SigV2 presigned URL names no signing time, only `Expires` (absolute unix seconds), so
/// its lifetime is counted from now. A SigV4 URL may be dated up to the clock-skew allowance
/// in the future and then live a week; a SigV2 URL gets the same.
const MAX_SIGV2_LIFETIME_SECS: u64 = MAX_PRESIGNED_EXPIRY_SECS + crate::guard::PRESIGNED_MAX_SKEW_SECS as u64;

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seconds from `now` until a SigV2 presigned URL (query `Signature` and `Expires`, as s3s
/// recognises one) expires; `None` for any other request or an `Expires` already past.
fn sigv2_presigned_lifetime(query: Option<&str>, now: u64) -> Option<u64> {
    let params: Vec<(&str, &str)> = query?.split('&').filter_map(|pair| pair.split_once('=')).collect();
    if !params.iter().any(|(name, _)| *name == "Signature") {
        return None;
    }
    let expires: u64 = params.iter().find(|(name, _)| *name == "Expires")?.1.parse().ok()?;
    expires.checked_sub(now)
}

/// `X-Amz-Expires` of a presigned URL.
fn presigned_expiry(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("X-Amz-Expires"))
        .and_then(|(_, value)| value.parse().ok())
}

/// The `SignedHeaders` list of a SigV4 request, from the Authorization header or, for a
/// presigned URL, the `X-Amz-SignedHeaders` query parameter. Lowercase names.
fn signed_headers(headers: &HeaderMap, query: Option<&str>) -> Vec<String> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return auth
            .split(',')
            .filter_map(|part| part.trim().strip_prefix("SignedHeaders="))
            .flat_map(|list| list.split(';'))
            .map(str::to_ascii_lowercase)
            .collect();
    }
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.eq_ignore_ascii_case("X-Amz-SignedHeaders"))
        .flat_map(|(_, value)| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .split(';')
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn unsigned_amz_header(headers: &HeaderMap, signed: &[String]) -> Option<String> {
    headers
        .keys()
        .map(http::HeaderName::as_str)
        .find(|name| name.starts_with("x-amz-") && !signed.iter().any(|s| s == name))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), http::HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn finds_unsigned_amz_headers() {
        let h = headers(&[
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host;x-amz-date;x-amz-content-sha256, Signature=f",
            ),
            ("x-amz-date", "x"),
            ("x-amz-content-sha256", "x"),
        ]);
        let signed = signed_headers(&h, None);
        assert_eq!(unsigned_amz_header(&h, &signed), None);
        let mut extra = h.clone();
        extra.insert("x-amz-meta-sneaky", http::HeaderValue::from_static("1"));
        assert_eq!(unsigned_amz_header(&extra, &signed).as_deref(), Some("x-amz-meta-sneaky"));
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
        assert!(allows(&grants, "b", need_of("DeleteObjects")));
        assert!(allows(&grants, "b", need_of("CreateBucket")));
        assert!(!allows(&grants, "c", need_of("HeadObject")));
        let h = headers(&[("x-amz-copy-source", "/src%20bucket/key/with/slashes")]);
        assert_eq!(copy_source_bucket(&h).as_deref(), Some("src bucket"));
    }

    #[test]
    fn reads_presigned_expiry() {
        assert_eq!(presigned_expiry(Some("X-Amz-Date=x&X-Amz-Expires=604801&X-Amz-Signature=s")), Some(604_801));
        assert_eq!(presigned_expiry(Some("list-type=2")), None);
        assert_eq!(presigned_expiry(None), None);
    }

    #[test]
    fn sigv2_presigned_lifetime_counts_from_now() {
        let query = |expires: u64| format!("AWSAccessKeyId=AK&Expires={expires}&Signature=abc%3D");
        let now = 1_700_000_000;
        assert_eq!(sigv2_presigned_lifetime(Some(&query(now + 3600)), now), Some(3600));
        assert_eq!(sigv2_presigned_lifetime(Some(&query(now - 1)), now), None);
        assert_eq!(sigv2_presigned_lifetime(Some("Expires=99999999999&list-type=2"), now), None);
        assert_eq!(sigv2_presigned_lifetime(None, now), None);
        let week = query(now + MAX_PRESIGNED_EXPIRY_SECS);
        assert!(sigv2_presigned_lifetime(Some(&week), now).is_some_and(|s| s <= MAX_SIGV2_LIFETIME_SECS));
        let longer = query(now + MAX_SIGV2_LIFETIME_SECS + 1);
        assert!(sigv2_presigned_lifetime(Some(&longer), now).is_some_and(|s| s > MAX_SIGV2_LIFETIME_SECS));
    }

    #[test]
    fn reads_presigned_signed_headers() {
        let signed = signed_headers(
            &HeaderMap::new(),
            Some("X-Amz-Algorithm=x&X-Amz-SignedHeaders=host%3Bx-amz-meta-a&X-Amz-Signature=s"),
        );
        assert_eq!(signed, ["host", "x-amz-meta-a"]);
    }
}
