//! A lean S3 client for the benchmark: SigV4 signed by hand over a pooled hyper connection, so
//! that on a small machine the load generator spends a small share of the CPU and the figures
//! measure the server. (aws-sdk-s3 spends ~120–200 µs of CPU per 4 KiB request, more than the
//! gateway does.) It signs exactly as the SDKs do over plain HTTP: `host`, `x-amz-date` and the
//! payload's SHA-256 in `x-amz-content-sha256`, the signing key derived once per day.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hmac::{KeyInit as _, Mac as _};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest as _, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

const REGION: &str = "us-east-1";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Longest any one request may take before it counts as an error.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One endpoint, one key pair, a pool of kept-alive connections.
pub(crate) struct Lean {
    http: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    host: String,
    access_key: String,
    secret_key: String,
    /// The signing key of the day it was derived for.
    signing_key: Mutex<Option<(String, [u8; 32])>>,
}

impl Lean {
    pub(crate) fn new(endpoint: &str, access_key: &str, secret_key: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            host: endpoint.trim_start_matches("http://").trim_end_matches('/').to_string(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            signing_key: Mutex::new(None),
        }
    }

    /// PUT of `data` at `bucket/key`: whether it answered 200.
    pub(crate) async fn put(&self, bucket: &str, key: &str, data: Bytes) -> bool {
        self.send(Method::PUT, bucket, key, data).await.is_some_and(|(status, _)| status == StatusCode::OK)
    }

    /// GET of `bucket/key`: whether it answered 200 with `expected_len` bytes.
    pub(crate) async fn get(&self, bucket: &str, key: &str, expected_len: usize) -> bool {
        self.send(Method::GET, bucket, key, Bytes::new())
            .await
            .is_some_and(|(status, body)| status == StatusCode::OK && body.len() == expected_len)
    }

    /// HEAD of `bucket/key`: its status, `None` if the request failed.
    pub(crate) async fn head(&self, bucket: &str, key: &str) -> Option<StatusCode> {
        self.send(Method::HEAD, bucket, key, Bytes::new()).await.map(|(status, _)| status)
    }

    /// DELETE of `bucket/key`: whether it answered 204.
    pub(crate) async fn delete(&self, bucket: &str, key: &str) -> bool {
        self.send(Method::DELETE, bucket, key, Bytes::new())
            .await
            .is_some_and(|(status, _)| status == StatusCode::NO_CONTENT)
    }

    async fn send(&self, method: Method, bucket: &str, key: &str, body: Bytes) -> Option<(StatusCode, Bytes)> {
        let path = format!("/{bucket}/{}", encode_key(key));
        let payload_sha = if body.is_empty() { EMPTY_SHA256.to_string() } else { hex::encode(Sha256::digest(&body)) };
        let amz_date = amz_date(SystemTime::now());
        let authorization = self.authorization(&method, &path, &payload_sha, &amz_date);
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint))
            .header("host", &self.host)
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", &payload_sha)
            .header("authorization", authorization)
            .header("content-length", body.len())
            .body(Full::new(body))
            .ok()?;
        let exchange = async {
            let response = self.http.request(request).await.ok()?;
            let status = response.status();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        };
        tokio::time::timeout(TIMEOUT, exchange).await.ok().flatten()
    }

    fn authorization(&self, method: &Method, path: &str, payload_sha: &str, amz_date: &str) -> String {
        let day = &amz_date[..8];
        let scope = format!("{day}/{REGION}/s3/aws4_request");
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical_request = format!(
            "{method}\n{path}\n\nhost:{}\nx-amz-content-sha256:{payload_sha}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{payload_sha}",
            self.host
        );
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request)));
        let signature = hex::encode(hmac(&self.signing_key(day), string_to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key
        )
    }

    fn signing_key(&self, day: &str) -> [u8; 32] {
        let mut cached = self.signing_key.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((for_day, key)) = cached.as_ref().filter(|(for_day, _)| for_day == day) {
            let _ = for_day;
            return *key;
        }
        let key = [REGION.as_bytes(), b"s3", b"aws4_request"]
            .iter()
            .fold(hmac(format!("AWS4{}", self.secret_key).as_bytes(), day.as_bytes()), |key, part| hmac(&key, part));
        *cached = Some((day.to_string(), key));
        key
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A key as a SigV4 canonical URI segment: everything but unreserved characters and `/`
/// percent-encoded.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `YYYYMMDDTHHMMSSZ` for `now` (UTC).
fn amz_date(now: SystemTime) -> String {
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_sigv4_wants() {
        let at = |secs| amz_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_796_428_799), "20261204T235959Z");
    }

    #[test]
    fn keys_encode_like_the_sdks() {
        assert_eq!(encode_key("bench/0/12"), "bench/0/12");
        assert_eq!(encode_key("a b+c"), "a%20b%2Bc");
    }
}
