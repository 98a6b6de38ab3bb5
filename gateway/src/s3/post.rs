//! POST Object: browser uploads with an HTML form (`multipart/form-data` to the bucket's URL).
//! s3s would buffer the whole file part before any check, so such a request never reaches it:
//! the S3 listener hands it here (`server.rs`). The form's fields, which come before the file,
//! are read (each and all of them bounded), the policy and its signature (SigV4, or SigV2 when
//! allowed) checked, and who may put the key decided as for a PutObject (`access.rs`) — all
//! before a byte of the file is read. The file part is then streamed to the volumes through
//! PutObject's own path, `content-length-range` enforced as it flows.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use hmac::{KeyInit as _, Mac as _};
use http::{HeaderMap, HeaderValue, StatusCode};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Result, s3_error};
use serde_json::Value;

use super::Gateway;
use crate::access::{Asking, Caller, Who, authorize, caller_of};

/// Most bytes of one form field other than the file.
const MAX_FIELD_BYTES: u64 = 64 * 1024;
/// Most bytes of all form fields together, and most fields.
const MAX_FIELDS_BYTES: usize = 1024 * 1024;
const MAX_FIELDS: usize = 200;
/// Longest the fields (at most `MAX_FIELDS_BYTES`) may take to arrive: the body idle timeout.
const FIELDS_DEADLINE: std::time::Duration = crate::replicated::CLIENT_BODY_IDLE;

/// What checking a form's signature needs.
#[derive(Clone)]
pub struct PostAuth {
    /// The root key's id.
    pub root_access_key: String,
    /// The root key's secret.
    pub root_secret_key: String,
    /// SigV2 signatures are accepted.
    pub sigv2: bool,
}

impl std::fmt::Debug for PostAuth {
    /// The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostAuth").field("root_access_key", &self.root_access_key).finish_non_exhaustive()
    }
}

fn malformed() -> S3Error {
    s3_error!(MalformedPOSTRequest, "The body of your POST request is not well-formed multipart/form-data.")
}

fn policy_failed(detail: &str) -> S3Error {
    s3_error!(AccessDenied, "Invalid according to Policy: {detail}")
}

/// The form's fields, names lowercased (S3 matches them without regard to case), in order.
type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Serves a form upload to `bucket`: the answer, success or S3 error.
pub async fn serve(
    gw: &Gateway,
    auth: &PostAuth,
    bucket: String,
    req: http::Request<hyper::body::Incoming>,
) -> s3s::HttpResponse {
    let connection = req.extensions().get::<volumed::serve::Connection>().copied();
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    match upload(gw, auth, &bucket, connection, req).await {
        Ok(done) => done.answer(&bucket, &host, connection.is_some_and(|c| c.tls)),
        Err(err) => {
            let mut response = err.to_http_response().unwrap_or_else(|_| {
                let mut r = http::Response::new(s3s::Body::empty());
                *r.status_mut() = StatusCode::BAD_REQUEST;
                r
            });
            // The rest of the body may be unread: never read it, close instead.
            response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// A stored upload and how to answer it.
struct Done {
    key: String,
    etag: String,
    version_id: Option<String>,
    redirect: Option<String>,
    status: Option<String>,
}

impl Done {
    fn answer(self, bucket: &str, host: &str, tls: bool) -> s3s::HttpResponse {
        let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        let scheme = if tls { "https" } else { "http" };
        let location = format!("{scheme}://{host}/{}/{}", encode(bucket), super::list::url_encode(&self.key));
        let etag = format!("\"{}\"", self.etag);
        let mut response = http::Response::new(s3s::Body::empty());
        if let Some(redirect) = self.redirect.filter(|r| r.starts_with("http://") || r.starts_with("https://")) {
            let separator = if redirect.contains('?') { '&' } else { '?' };
            let target = format!(
                "{redirect}{separator}bucket={}&key={}&etag={}",
                encode(bucket),
                encode(&self.key),
                encode(&etag)
            );
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&target) {
                response.headers_mut().insert(http::header::LOCATION, v);
            }
            return response;
        }
        match self.status.as_deref() {
            Some("200") => *response.status_mut() = StatusCode::OK,
            Some("201") => {
                let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    escape(&location),
                    escape(bucket),
                    escape(&self.key),
                    escape(&etag)
                );
                response = http::Response::new(s3s::Body::from(body));
                *response.status_mut() = StatusCode::CREATED;
                response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            }
            _ => *response.status_mut() = StatusCode::NO_CONTENT,
        }
        let headers = response.headers_mut();
        for (name, value) in [("etag", Some(etag)), ("location", Some(location)), ("x-amz-version-id", self.version_id)]
        {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, v);
            }
        }
        response
    }
}

async fn upload(
    gw: &Gateway,
    auth: &PostAuth,
    bucket: &str,
    connection: Option<volumed::serve::Connection>,
    req: http::Request<hyper::body::Incoming>,
) -> S3Result<Done> {
    let content_type = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| malformed())?;
    let body = http_body_util::BodyDataStream::new(req.into_body());
    let limits = multer::SizeLimit::new().per_field(MAX_FIELD_BYTES).for_field("file", u64::MAX);
    let mut form = multer::Multipart::with_constraints(body, boundary, multer::Constraints::new().size_limit(limits));

    // The fields, up to the file, within a deadline: a client that stalls there holds no
    // connection for long (the file part itself is held to the body idle timeout).
    let (fields, file) = tokio::time::timeout(FIELDS_DEADLINE, read_fields(&mut form)).await.map_err(|_| {
        s3_error!(
            RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period."
        )
    })??;
    let file_name = file.file_name().unwrap_or_default().to_string();
    crate::request_id::note_access(crate::request_id::Access {
        op: Some("PostObject".into()),
        bucket: Some(bucket.to_string()),
        key: field(&fields, "key").map(str::to_string),
        access_key: signer(&fields).map(|(id, _)| id.to_string()),
    });

    // Who signed, and what the policy allows.
    let caller = match signer(&fields) {
        Some((access_key, sigv4)) => {
            let secret = secret_of(gw, auth, access_key).await?;
            check_signature(&fields, &secret, sigv4, auth.sigv2, &gw.region)?;
            caller_of(&gw.index, &auth.root_access_key, Some(access_key), connection).await?
        }
        None => caller_of(&gw.index, &auth.root_access_key, None, connection).await?,
    };
    let length_range = match field(&fields, "policy") {
        Some(policy) => check_policy(policy, bucket, &fields)?,
        None if signer(&fields).is_some() => return Err(policy_failed("a signed form needs a policy")),
        None => None,
    };
    let key = field(&fields, "key")
        .ok_or_else(|| s3_error!(InvalidArgument, "Bucket POST must contain a field named 'key'."))?;
    let key = key.replace("${filename}", &file_name);
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "User key must have a length greater than 0."));
    }
    if !matches!(caller.who, Who::Root) {
        let headers = HeaderMap::new();
        let asking =
            Asking { operation: "PutObject", bucket: Some(bucket), key: Some(&key), query: None, headers: &headers };
        authorize(&gw.index, &caller, &asking).await?;
    }
    // The fields that stand for PutObject's headers are refused as those headers are
    // (server-side encryption).
    crate::unsupported::refuse_unsupported(&header_fields(&fields)?)?;

    // The file, to the volumes through PutObject.
    let violation = Arc::new(Mutex::new(None));
    let range = length_range.unwrap_or((0, u64::MAX));
    let body = Limited { file: Box::pin(file), seen: 0, range, violation: violation.clone(), ended: false };
    let request = put_request(bucket, &key, &fields, body, caller)?;
    let stored = super::object::put_object(gw, request).await;
    let violated = violation.lock().ok().and_then(|mut v| v.take());
    let output = match (stored, violated) {
        (_, Some(err)) => return Err(err),
        (stored, None) => stored?.output,
    };
    let etag = match output.e_tag {
        Some(ETag::Strong(etag) | ETag::Weak(etag)) => etag,
        None => String::new(),
    };
    Ok(Done {
        key,
        etag,
        version_id: output.version_id,
        redirect: field(&fields, "success_action_redirect").or(field(&fields, "redirect")).map(str::to_string),
        status: field(&fields, "success_action_status").map(str::to_string),
    })
}

/// The form's fields that stand for request headers (`acl` for `x-amz-acl`, the `x-amz-*`
/// ones), as headers; one that cannot be a header makes the form malformed (a checksum field
/// dropped here would go unverified).
fn header_fields(fields: &Fields) -> S3Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        let header = if name == "acl" { "x-amz-acl" } else { name.as_str() };
        if header.starts_with("x-amz-") {
            let name = http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| malformed())?;
            headers.append(name, HeaderValue::from_str(value).map_err(|_| malformed())?);
        }
    }
    Ok(headers)
}

/// Reads the form's fields (names lowercased, each and all bounded) up to its file part.
async fn read_fields(form: &mut multer::Multipart<'static>) -> S3Result<(Fields, multer::Field<'static>)> {
    let mut fields: Fields = Vec::new();
    let mut fields_bytes = 0;
    loop {
        let Some(part) = form.next_field().await.map_err(|_| malformed())? else {
            return Err(s3_error!(InvalidArgument, "POST requires exactly one file upload per request."));
        };
        let name = part.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            return Ok((fields, part));
        }
        let value =
            part.text().await.map_err(|_| s3_error!(MaxMessageLengthExceeded, "Your form field is too large."))?;
        fields_bytes += name.len() + value.len();
        if fields.len() >= MAX_FIELDS || fields_bytes > MAX_FIELDS_BYTES {
            return Err(s3_error!(MaxMessageLengthExceeded, "Your POST request fields are too large."));
        }
        fields.push((name, value));
    }
}

/// The key id a form is signed with, and whether with SigV4.
fn signer(fields: &Fields) -> Option<(&str, bool)> {
    if field(fields, "x-amz-signature").is_some() {
        let credential = field(fields, "x-amz-credential")?;
        return Some((credential.split('/').next().unwrap_or_default(), true));
    }
    field(fields, "signature")?;
    Some((field(fields, "awsaccesskeyid")?, false))
}

async fn secret_of(gw: &Gateway, auth: &PostAuth, access_key: &str) -> S3Result<String> {
    use subtle::ConstantTimeEq as _;
    if bool::from(access_key.as_bytes().ct_eq(auth.root_access_key.as_bytes())) {
        return Ok(auth.root_secret_key.clone());
    }
    Ok(gw.index.key(access_key).await?.ok_or_else(crate::auth::unknown_key)?.secret)
}

/// HMAC takes keys of any length; the error case is only the type's.
fn bad_key() -> S3Error {
    s3_error!(InternalError, "an HMAC key was refused")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> S3Result<Vec<u8>> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).map_err(|_| bad_key())?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The policy's signature: SigV4 (hex HMAC-SHA256 with the key derived for the credential's
/// date and region) or SigV2 (base64 HMAC-SHA1).
fn check_signature(fields: &Fields, secret: &str, sigv4: bool, sigv2_allowed: bool, region: &str) -> S3Result<()> {
    let policy = field(fields, "policy").unwrap_or_default();
    let (expected, given) = if sigv4 {
        if field(fields, "x-amz-algorithm") != Some("AWS4-HMAC-SHA256") {
            return Err(s3_error!(InvalidArgument, "x-amz-algorithm must be AWS4-HMAC-SHA256"));
        }
        let credential = field(fields, "x-amz-credential").unwrap_or_default();
        let parts: Vec<&str> = credential.split('/').collect();
        let [_, date, credential_region, "s3", "aws4_request"] = parts[..] else {
            return Err(s3_error!(InvalidArgument, "x-amz-credential is malformed: {credential}"));
        };
        if credential_region != region {
            return Err(s3_error!(
                AuthorizationHeaderMalformed,
                "the region '{credential_region}' is wrong; expecting '{region}'"
            ));
        }
        let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes())?;
        for part in [credential_region, "s3", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes())?;
        }
        (hex::encode(hmac_sha256(&key, policy.as_bytes())?), field(fields, "x-amz-signature").unwrap_or_default())
    } else {
        if !sigv2_allowed {
            return Err(s3_error!(
                InvalidRequest,
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
            ));
        }
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).map_err(|_| bad_key())?;
        mac.update(policy.as_bytes());
        use base64::Engine as _;
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        (signature, field(fields, "signature").unwrap_or_default())
    };
    use subtle::ConstantTimeEq as _;
    if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        ))
    }
}

/// Checks the policy (base64 JSON: `expiration` and `conditions`) against the form: not
/// expired, every condition met, every field but the signature's own covered by a condition.
/// Returns `content-length-range`, if the policy sets one.
fn check_policy(encoded: &str, bucket: &str, fields: &Fields) -> S3Result<Option<(u64, u64)>> {
    use base64::Engine as _;
    let bad = || s3_error!(InvalidPolicyDocument, "Invalid Policy: Invalid JSON.");
    let text = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let policy: Value = serde_json::from_slice(&text).map_err(|_| bad())?;
    let expiration = policy
        .get("expiration")
        .and_then(Value::as_str)
        .ok_or_else(|| s3_error!(InvalidPolicyDocument, "Invalid Policy: Policy missing expiration."))?;
    let expires = time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
        .map_err(|_| s3_error!(InvalidPolicyDocument, "Invalid Policy: Invalid 'expiration' value: '{expiration}'"))?;
    if expires < time::OffsetDateTime::now_utc() {
        return Err(policy_failed("Policy expired."));
    }
    let conditions = policy
        .get("conditions")
        .and_then(Value::as_array)
        .ok_or_else(|| s3_error!(InvalidPolicyDocument, "Invalid Policy: Policy missing conditions."))?;
    let value_of = |name: &str| if name == "bucket" { Some(bucket) } else { field(fields, name) };
    let mut covered: Vec<String> = Vec::new();
    let mut length_range = None;
    for condition in conditions {
        let failed = || policy_failed(&format!("Policy Condition failed: {condition}"));
        let (op, name, wanted) = match condition {
            Value::Object(map) if map.len() == 1 => {
                let (name, wanted) = map.iter().next().ok_or_else(failed)?;
                ("eq".to_string(), name.to_ascii_lowercase(), wanted.as_str().ok_or_else(failed)?.to_string())
            }
            Value::Array(items) if items.len() == 3 => {
                let op = items[0].as_str().ok_or_else(failed)?.to_ascii_lowercase();
                if op == "content-length-range" {
                    let number = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
                    length_range = Some((number(&items[1]).ok_or_else(failed)?, number(&items[2]).ok_or_else(failed)?));
                    continue;
                }
                let name = items[1].as_str().and_then(|n| n.strip_prefix('$')).ok_or_else(failed)?.to_ascii_lowercase();
                (op, name, items[2].as_str().ok_or_else(failed)?.to_string())
            }
            _ => return Err(s3_error!(InvalidPolicyDocument, "Invalid Policy: Invalid Condition: {condition}")),
        };
        let actual = value_of(&name).unwrap_or("");
        let holds = match op.as_str() {
            "eq" => actual == wanted,
            "starts-with" => actual.starts_with(&wanted),
            _ => return Err(s3_error!(InvalidPolicyDocument, "Invalid Policy: Invalid Condition: {condition}")),
        };
        if !holds {
            return Err(failed());
        }
        covered.push(name);
    }
    let exempt = |name: &str| {
        matches!(name, "policy" | "x-amz-signature" | "signature" | "awsaccesskeyid" | "file")
            || name.starts_with("x-ignore-")
    };
    if let Some((name, _)) = fields.iter().find(|(name, _)| !exempt(name) && !covered.contains(name)) {
        return Err(policy_failed(&format!("Extra input fields: {name}")));
    }
    Ok(length_range)
}

/// The file part as a body, held to the policy's `content-length-range`: past its maximum
/// (`EntityTooLarge`) or short of its minimum (`EntityTooSmall`) the stream ends with an error,
/// so nothing is stored, and the refusal is left in `violation` for the answer.
struct Limited {
    file: Pin<Box<multer::Field<'static>>>,
    seen: u64,
    range: (u64, u64),
    violation: Arc<Mutex<Option<S3Error>>>,
    ended: bool,
}

impl Limited {
    fn refuse(&mut self, err: S3Error) -> std::io::Error {
        self.ended = true;
        if let Ok(mut slot) = self.violation.lock() {
            *slot = Some(err);
        }
        std::io::Error::other("the upload is outside the policy's content-length-range")
    }
}

impl Stream for Limited {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.file.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if self.seen > self.range.1 {
                    let err = s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size");
                    return Poll::Ready(Some(Err(self.refuse(err))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => {
                self.ended = true;
                Poll::Ready(Some(Err(std::io::Error::other(err))))
            }
            Poll::Ready(None) if self.seen < self.range.0 => {
                let err = s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed size");
                Poll::Ready(Some(Err(self.refuse(err))))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
        }
    }
}

/// The tag set of a form's `tagging` field (S3's `<Tagging>` XML), as `x-amz-tagging` writes
/// it (`k1=v1&k2=v2`).
fn tagging_query(xml: &str) -> S3Result<String> {
    let unescape = |s: &str| {
        s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
    };
    let inner = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("<{name}>"))? + name.len() + 2;
        let end = tag[start..].find(&format!("</{name}>"))? + start;
        Some(unescape(&tag[start..end]))
    };
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let mut pairs = Vec::new();
    for tag in xml.split("<Tag>").skip(1) {
        let (Some(key), Some(value)) = (inner(tag, "Key"), inner(tag, "Value")) else {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        };
        pairs.push(format!("{}={}", encode(&key), encode(&value)));
    }
    Ok(pairs.join("&"))
}

/// The PutObject the form asks for: key, body, system and user metadata, tags, checksums.
fn put_request(
    bucket: &str,
    key: &str,
    fields: &Fields,
    body: Limited,
    caller: Caller,
) -> S3Result<S3Request<PutObjectInput>> {
    let text = |name: &str| field(fields, name).map(str::to_string);
    let metadata: HashMap<String, String> = fields
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("x-amz-meta-")?.to_string(), value.clone())))
        .collect();
    let expires = match field(fields, "expires") {
        Some(date) => Some(
            crate::time::parse_http_date(date)
                .ok_or_else(|| s3_error!(InvalidArgument, "Expires must be an HTTP date: {date}"))?,
        ),
        None => None,
    };
    // The fields PutObject reads as headers: checksums and the ACL.
    let wanted = |name: &str| ["x-amz-checksum-", "x-amz-acl", "x-amz-grant-"].iter().any(|p| name.starts_with(p));
    let mut headers = HeaderMap::new();
    for (name, value) in header_fields(fields)?.iter().filter(|(name, _)| wanted(name.as_str())) {
        headers.append(name.clone(), value.clone());
    }
    let input = PutObjectInput {
        bucket: bucket.to_string(),
        key: key.to_string(),
        body: Some(StreamingBlob::wrap(body)),
        content_type: text("content-type"),
        cache_control: text("cache-control"),
        content_disposition: text("content-disposition"),
        content_encoding: text("content-encoding"),
        expires,
        metadata: (!metadata.is_empty()).then_some(metadata),
        tagging: field(fields, "tagging").map(tagging_query).transpose()?,
        storage_class: text("x-amz-storage-class").map(StorageClass::from),
        ..Default::default()
    };
    let mut extensions = http::Extensions::new();
    extensions.insert(caller);
    Ok(S3Request {
        input,
        method: http::Method::PUT,
        uri: http::Uri::from_static("/"),
        headers,
        extensions,
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    })
}
