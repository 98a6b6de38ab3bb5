//! Who may call the S3 API: secrets for access keys (s3s verifies the signature), and the
//! access check that runs on every request: what signatures must cover, how long presigned
//! URLs live, then who may do what (`access.rs`).

use std::sync::Arc;

use http::HeaderMap;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq;

use crate::index::Index;

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

pub(crate) fn unknown_key() -> s3s::S3Error {
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

/// Refuses requests that carry `x-amz-*` headers outside the signature (such a header could
/// be added or changed in transit without detection) and presigned URLs valid for more than a
/// week; then decides who may do what (`access.rs`: ownership, grants, bucket policies;
/// anonymous requests only where a policy allows them) and checks expected bucket owners.
/// Then refuses bodies too large to buffer (`guard.rs`) and what Cairn does not implement
/// (`unsupported.rs`).
#[derive(Debug)]
pub struct AccessPolicy {
    root_access_key: String,
    index: Arc<Index>,
    /// SigV2 signatures are accepted.
    sigv2: bool,
}

impl AccessPolicy {
    /// A policy where `root_access_key` may do everything.
    pub fn new(root_access_key: String, index: Arc<Index>) -> Self {
        Self { root_access_key, index, sigv2: true }
    }

    /// Accepts SigV2 signatures, or refuses them (`--sigv2 off`).
    pub fn with_sigv2(self, sigv2: bool) -> Self {
        Self { sigv2, ..self }
    }

    /// SigV2: refused when turned off; a header-signed request dated (`x-amz-date`, else
    /// `Date`) more than the allowed skew from now is `RequestTimeTooSkewed`, as for SigV4
    /// (s3s checks neither for SigV2).
    fn check_sigv2(&self, headers: &HeaderMap) -> S3Result<()> {
        if !self.sigv2 {
            return Err(s3_error!(
                InvalidRequest,
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
            ));
        }
        if !headers.get(http::header::AUTHORIZATION).is_some_and(|a| a.as_bytes().starts_with(b"AWS ")) {
            return Ok(());
        }
        let date = headers.get("x-amz-date").or_else(|| headers.get(http::header::DATE)).and_then(|d| d.to_str().ok());
        let signed_at = date.and_then(sigv2_date);
        let Some(signed_at) = signed_at else {
            return Err(s3_error!(AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"));
        };
        if now_unix().abs_diff(signed_at) > MAX_SIGV2_SKEW_SECS {
            return Err(s3_error!(
                RequestTimeTooSkewed,
                "The difference between the request time and the current time is too large."
            ));
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
        let access_key = cx.credentials().map(|c| c.access_key.clone());
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
        let sigv2 = access_key.is_some() && is_sigv2(cx.headers(), cx.uri().query());
        if sigv2 {
            self.check_sigv2(cx.headers())?;
        }
        let signed = signed_headers(cx.headers(), cx.uri().query());
        // SigV2 signs every x-amz-* header (its canonicalized amz headers); anonymous
        // requests sign nothing.
        if access_key.is_some()
            && !sigv2
            && let Some(name) = unsigned_amz_header(cx.headers(), &signed)
        {
            return Err(s3_error!(
                AccessDenied,
                "There were headers present in the request which were not signed: {name}"
            ));
        }
        let connection = cx.extensions_mut().get::<volumed::serve::Connection>().copied();
        let caller =
            crate::access::caller_of(&self.index, &self.root_access_key, access_key.as_deref(), connection).await?;
        if !matches!(caller.who, crate::access::Who::Root) {
            crate::access::authorize(&self.index, &caller, &crate::access::Asking::of(cx)).await?;
        }
        crate::access::check_expected_owners(&self.index, cx).await?;
        cx.extensions_mut().insert(caller);
        // Only a client allowed to make the request gets this far; nothing has read the body.
        crate::guard::check_buffered_body(cx.s3_op().name(), cx.headers())?;
        crate::unsupported::refuse_unsupported(cx.headers())
    }
}

/// Unix seconds of a SigV2 request's date: an HTTP date, also with a `+0000` zone as s3cmd
/// writes it, or ISO 8601 basic (`20261204T223000Z`).
fn sigv2_date(text: &str) -> Option<u64> {
    let text = text.trim();
    let http = text.strip_suffix("+0000").map(|t| format!("{}GMT", t)).unwrap_or_else(|| text.to_string());
    if let Some(at) = crate::time::parse_http_date(&http) {
        return Some(crate::time::ms_from_timestamp(&at) / 1000);
    }
    let basic = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::PrimitiveDateTime::parse(text, basic).ok()?.assume_utc();
    u64::try_from(at.unix_timestamp()).ok()
}

/// How far a SigV2 request's date may be from now: S3's 15 minutes.
const MAX_SIGV2_SKEW_SECS: u64 = 15 * 60;

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

/// Whether a request is signed with SigV2: `Authorization: AWS id:signature`, or a presigned
/// URL with `AWSAccessKeyId` and `Signature`.
fn is_sigv2(headers: &HeaderMap, query: Option<&str>) -> bool {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
        return auth.as_bytes().starts_with(b"AWS ");
    }
    let names: Vec<&str> =
        query.unwrap_or("").split('&').map(|pair| pair.split_once('=').map_or(pair, |(n, _)| n)).collect();
    names.contains(&"AWSAccessKeyId") && names.contains(&"Signature")
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
    fn tells_sigv2_from_sigv4() {
        assert!(is_sigv2(&headers(&[("authorization", "AWS AKID:c2lnbmF0dXJl")]), None));
        assert!(!is_sigv2(&headers(&[("authorization", "AWS4-HMAC-SHA256 Credential=a/b, Signature=f")]), None));
        assert!(is_sigv2(&HeaderMap::new(), Some("AWSAccessKeyId=AK&Expires=1&Signature=abc%3D")));
        assert!(!is_sigv2(&HeaderMap::new(), Some("X-Amz-Algorithm=x&X-Amz-Signature=s")));
        assert!(!is_sigv2(&HeaderMap::new(), None));
    }

    #[test]
    fn reads_sigv2_dates() {
        assert_eq!(sigv2_date("Fri, 04 Dec 2026 22:30:00 GMT"), Some(1_796_423_400));
        assert_eq!(sigv2_date("Fri, 04 Dec 2026 22:30:00 +0000"), Some(1_796_423_400));
        assert_eq!(sigv2_date("20261204T223000Z"), Some(1_796_423_400));
        assert_eq!(sigv2_date("yesterday"), None);
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
