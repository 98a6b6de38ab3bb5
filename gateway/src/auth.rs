//! Who may call the S3 API: SigV4 secrets for access keys (s3s verifies the signature) and
//! the access check that runs on every authenticated request.

use http::HeaderMap;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq;

/// Secrets for SigV4: the root key from config.
#[derive(Debug)]
pub struct KeyStore {
    root_access_key: String,
    root_secret_key: SecretKey,
}

impl KeyStore {
    /// A key store holding only the root key.
    pub fn new(root_access_key: String, root_secret_key: String) -> Self {
        Self { root_access_key, root_secret_key: SecretKey::from(root_secret_key) }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyStore {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if bool::from(access_key.as_bytes().ct_eq(self.root_access_key.as_bytes())) {
            return Ok(self.root_secret_key.clone());
        }
        Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
    }
}

/// Denies anonymous requests and requests that carry `x-amz-*` headers outside the
/// signature: such a header could be added or changed in transit without detection.
#[derive(Debug, Default)]
pub struct AccessPolicy;

#[async_trait::async_trait]
impl S3Access for AccessPolicy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        if presigned_expiry(cx.uri().query()).is_some_and(|seconds| seconds > MAX_PRESIGNED_EXPIRY_SECS) {
            return Err(s3_error!(
                AuthorizationQueryParametersError,
                "X-Amz-Expires must be less than a week (in seconds) that is 604800"
            ));
        }
        let signed = signed_headers(cx.headers(), cx.uri().query());
        if let Some(name) = unsigned_amz_header(cx.headers(), &signed) {
            return Err(s3_error!(
                AccessDenied,
                "There were headers present in the request which were not signed: {name}"
            ));
        }
        Ok(())
    }
}

/// S3 refuses presigned URLs valid for more than seven days.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

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
    fn reads_presigned_expiry() {
        assert_eq!(presigned_expiry(Some("X-Amz-Date=x&X-Amz-Expires=604801&X-Amz-Signature=s")), Some(604_801));
        assert_eq!(presigned_expiry(Some("list-type=2")), None);
        assert_eq!(presigned_expiry(None), None);
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
