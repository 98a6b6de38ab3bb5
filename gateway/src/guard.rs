//! How a request reaches s3s: what is refused before s3s sees it, the limits s3s gets, and
//! what happens to a body s3s refused without reading.
//!
//! - Browser POST uploads (`multipart/form-data`) are refused before s3s reads them: s3s
//!   parses the form and buffers the whole file part *before* the access check, so an
//!   anonymous client could otherwise make the gateway hold gigabytes in memory.
//! - A request refused before its body was read (AccessDenied, MetadataTooLarge,
//!   NotImplemented, MaxMessageLengthExceeded on an upload) would otherwise end in a
//!   connection reset: hyper closes the connection on the unread body, and a client still
//!   sending gets a broken pipe instead of the error (SDKs retry, then report a network
//!   failure). Up to `DRAIN_MAX_BYTES` of such a body is read and discarded, never held, so
//!   the client reads the S3 error.

use http::HeaderMap;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

/// Largest XML request body s3s buffers (after the access check, so only for authenticated
/// clients). The largest legitimate bodies are:
/// - DeleteObjects: 1,000 keys of up to 1,024 bytes. SDKs escape `"` and `'` as `&quot;` /
///   `&apos;` (6 bytes), so a key can take 6,144 bytes on the wire: about 6.3 MB in all,
///   with the `<Object><Key>` tags and an optional version id or ETag per key.
/// - CompleteMultipartUpload: 10,000 parts, each with its number, an escaped ETag and, at
///   worst, all five checksum elements: about 370 bytes a part, 3.7 MB in all.
///
/// 8 MiB holds both with room for whitespace, and is well under s3s's 20 MB default.
pub const XML_MAX_BODY_SIZE: usize = 8 * 1024 * 1024;

/// How far in the future a presigned URL's signing time may be (client clock skew); s3s's
/// default, set explicitly because SigV2 expiry checks (`auth.rs`) allow the same slack.
pub const PRESIGNED_MAX_SKEW_SECS: u32 = 15 * 60;

/// The limits s3s applies while it parses requests.
pub fn s3_config() -> std::sync::Arc<StaticConfigProvider> {
    let mut config = S3Config::default();
    config.xml_max_body_size = XML_MAX_BODY_SIZE;
    // Cairn serves no PostObject: `refuse_before_s3s` turns every form POST away. These
    // bound what s3s would buffer if a form upload ever got past that: no file bytes, and
    // S3's own cap on the form fields before the file (20 KB, else
    // MaxPostPreDataLengthExceededError).
    config.post_object_max_file_size = 0;
    config.form_max_field_size = 20 * 1024;
    config.form_max_fields_size = 20 * 1024;
    config.form_max_parts = 32;
    config.presigned_url_max_skew_time_secs = PRESIGNED_MAX_SKEW_SECS;
    std::sync::Arc::new(StaticConfigProvider::new(std::sync::Arc::new(config)))
}

/// Operations whose body s3s streams to the handler; it buffers every other body whole.
const STREAMING_OPERATIONS: &[&str] = &["PutObject", "UploadPart", "WriteGetObjectResponse"];

/// Refuses, before s3s reads it, a body s3s would buffer and that is over its limit. s3s
/// itself would read `XML_MAX_BODY_SIZE` bytes and then answer `InternalError` (500, which
/// SDKs retry), because the limit error it gets back is not the type it looks for. A body
/// of unknown length (chunked) is refused as S3 does for these operations.
pub fn check_buffered_body(operation: &str, headers: &HeaderMap) -> S3Result<()> {
    if STREAMING_OPERATIONS.contains(&operation) {
        return Ok(());
    }
    let length = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match length {
        Some(length) if length > XML_MAX_BODY_SIZE as u64 => {
            Err(s3_error!(MaxMessageLengthExceeded, "Your request was too big."))
        }
        None if headers.contains_key(http::header::TRANSFER_ENCODING) => {
            Err(s3_error!(MissingContentLength, "You must provide the Content-Length HTTP header."))
        }
        _ => Ok(()),
    }
}

/// Most of an unread body read and discarded after a refusal, so the client gets the error
/// instead of a reset. Bigger than any XML body s3s accepts and than common part sizes
/// (aws cli and boto3 send 8 MiB parts); a larger refused upload still ends in a reset.
const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Longest a refused body is drained, so a slow sender cannot hold the task.
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one S3 request through s3s, after `refuse_before_s3s`; a body s3s drops unread is
/// drained, bounded, in the background.
pub async fn serve(
    s3: &s3s::service::S3Service,
    req: http::Request<hyper::body::Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    if let Some(refusal) = refuse_before_s3s(&req) {
        return Ok(refusal);
    }
    // A client that sent `Expect: 100-continue` sends no body until told to, so there is
    // nothing to drain, and reading would make hyper send `100 Continue` after the answer.
    let expects_continue = req.headers().contains_key(http::header::EXPECT);
    let req = req.map(|body| {
        if expects_continue { s3s::Body::from(body) } else { s3s::Body::http_body(DrainOnDrop { body: Some(body) }) }
    });
    s3.call(req).await
}

/// A request body that, dropped before its end, is drained in the background (bounded in
/// bytes and time, nothing kept) so hyper can answer the request before closing.
struct DrainOnDrop {
    body: Option<hyper::body::Incoming>,
}

impl http_body::Body for DrainOnDrop {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.body.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.body.take().filter(|body| !http_body::Body::is_end_stream(body)) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let _ = tokio::time::timeout(DRAIN_MAX_TIME, discard(body, DRAIN_MAX_BYTES)).await;
        });
    }
}

/// Reads and drops up to about `max` bytes of `body`; dropping the rest makes hyper close.
async fn discard(mut body: hyper::body::Incoming, max: u64) {
    use http_body_util::BodyExt as _;
    let mut seen = 0u64;
    while seen <= max {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |data| data.len() as u64),
            _ => return,
        }
    }
}

/// The answer to a request Cairn refuses before s3s reads any of it, or `None` to serve it.
///
/// Only a `multipart/form-data` POST that is not a form upload to a bucket's URL (those are
/// served before s3s, by `s3::serve_post_object`) is refused here: s3s would buffer it whole.
/// Its body is never read; the response asks for the connection to be closed, since the
/// unread body would otherwise have to be drained before the next request.
pub fn refuse_before_s3s<B>(req: &http::Request<B>) -> Option<s3s::HttpResponse> {
    if req.method() != http::Method::POST || !is_form_data(req.headers()) {
        return None;
    }
    tracing::debug!("browser POST upload refused before reading its body");
    let err = S3Error::with_message(
        S3ErrorCode::NotImplemented,
        "A header you provided implies functionality that is not implemented: a form upload (POST Object) goes to a bucket's URL",
    );
    let mut response = match err.to_http_response() {
        Ok(response) => response,
        // Serialising a fixed error cannot fail in practice; a bare 501 still refuses.
        Err(_) => {
            let mut response = s3s::HttpResponse::new(s3s::Body::empty());
            *response.status_mut() = http::StatusCode::NOT_IMPLEMENTED;
            response
        }
    };
    response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    Some(response)
}

/// Whether `Content-Type` is `multipart/form-data` (any parameters, any case).
pub(crate) fn is_form_data(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::CONTENT_TYPE).iter().any(|value| {
        let media_type = value.as_bytes().split(|&b| b == b';').next().unwrap_or_default();
        media_type.trim_ascii().eq_ignore_ascii_case(b"multipart/form-data")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: http::Method, content_type: Option<&'static str>) -> http::Request<()> {
        let mut builder = http::Request::builder().method(method).uri("/bkt");
        if let Some(content_type) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn form_posts_are_refused_before_s3s() {
        let refused =
            refuse_before_s3s(&request(http::Method::POST, Some("Multipart/Form-Data ; boundary=xyz"))).unwrap();
        assert_eq!(refused.status(), http::StatusCode::NOT_IMPLEMENTED);
        assert_eq!(refused.headers()[http::header::CONNECTION], "close");
        assert!(refuse_before_s3s(&request(http::Method::POST, Some("application/xml"))).is_none());
        assert!(refuse_before_s3s(&request(http::Method::POST, None)).is_none());
        assert!(refuse_before_s3s(&request(http::Method::PUT, Some("multipart/form-data; boundary=x"))).is_none());
    }

    #[test]
    fn buffered_bodies_are_bounded_before_they_are_read() {
        let headers = |pairs: &[(http::HeaderName, String)]| -> HeaderMap {
            pairs.iter().map(|(k, v)| (k.clone(), http::HeaderValue::from_str(v).unwrap())).collect()
        };
        let length = |n: usize| headers(&[(http::header::CONTENT_LENGTH, n.to_string())]);
        assert!(check_buffered_body("DeleteObjects", &length(XML_MAX_BODY_SIZE)).is_ok());
        let err = check_buffered_body("DeleteObjects", &length(XML_MAX_BODY_SIZE + 1)).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::MaxMessageLengthExceeded);
        assert_eq!(err.status_code(), Some(http::StatusCode::BAD_REQUEST));
        assert!(check_buffered_body("PutObject", &length(1 << 32)).is_ok(), "object bodies stream");
        let chunked = headers(&[(http::header::TRANSFER_ENCODING, "chunked".into())]);
        let err = check_buffered_body("CompleteMultipartUpload", &chunked).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::MissingContentLength);
        assert!(check_buffered_body("UploadPart", &chunked).is_ok());
        assert!(check_buffered_body("GetObject", &HeaderMap::new()).is_ok());
    }

    #[test]
    fn config_limits_are_set() {
        use s3s::config::S3ConfigProvider as _;
        let config = s3_config().snapshot();
        assert_eq!(config.xml_max_body_size, XML_MAX_BODY_SIZE);
        assert_eq!(config.post_object_max_file_size, 0);
    }
}
