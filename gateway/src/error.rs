//! The gateway's one error type, and its single mapping onto S3 errors.

use s3s::{S3Error, S3ErrorCode};

/// Everything that can go wrong inside the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bucket does not exist.
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    /// The key does not exist.
    #[error("the specified key does not exist")]
    NoSuchKey,
    /// DeleteBucket on a bucket that still holds objects.
    #[error("the bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// A bucket operation lost a race with a newer one on the same bucket.
    #[error("A conflicting conditional operation is currently in progress against this resource. Please try again.")]
    OperationAborted,
    /// The body's MD5 differs from `Content-MD5`.
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    /// `Content-MD5` is not base64 of 16 bytes.
    #[error("the Content-MD5 you specified is not valid")]
    InvalidDigest,
    /// A client checksum (`x-amz-checksum-*`) differs from the body's.
    #[error("The {0} you specified did not match the calculated checksum.")]
    ChecksumMismatch(&'static str),
    /// The multipart upload does not exist (never did, or was completed or aborted).
    #[error(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )]
    NoSuchUpload,
    /// CompleteMultipartUpload named a part that is not (or no longer) there.
    #[error(
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
    )]
    InvalidPart,
    /// A precondition (`If-Match`, `If-None-Match: *`, `If-Unmodified-Since`, …) failed.
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    /// A conditional read whose object has not changed (HTTP 304).
    #[error("Not Modified")]
    NotModified,
    /// A request S3 would refuse as malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// A bad object tag set.
    #[error("{0}")]
    InvalidTag(String),
    /// Something S3 has that Cairn does not do; never answered with a wrong success.
    #[error("{0}")]
    NotImplemented(String),
    /// The body is larger than S3 allows for the operation.
    #[error("your proposed upload exceeds the maximum allowed object size")]
    EntityTooLarge,
    /// The client's body stream failed or ended early.
    #[error("the request body ended before it was complete: {0}")]
    IncompleteBody(String),
    /// The client's upload body paused for longer than the gateway waits.
    #[error("Your socket connection to the server was not read from or written to within the timeout period.")]
    RequestTimeout,
    /// Not enough volumes are reachable to place or serve the data.
    #[error("not enough volumes available: {0}")]
    Unavailable(String),
    /// A volume answered with an error or disagreed on what it stored.
    #[error("volume: {0}")]
    Volume(String),
    /// A volume reports its copy of a blob corrupt (footer or metadata failed its checksum):
    /// read another replica; verify counts it and repair rewrites it.
    #[error("corrupt replica: {0}")]
    CorruptReplica(String),
    /// RocksDB or record encoding failure.
    #[error("index: {0}")]
    Index(String),
    /// Bad configuration.
    #[error("config: {0}")]
    Config(String),
    /// I/O outside the volumes (data dir, listeners…).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for the gateway.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rocksdb::Error> for Error {
    fn from(err: rocksdb::Error) -> Self {
        Error::Index(err.to_string())
    }
}

impl From<Error> for S3Error {
    /// The S3 error a client sees. Internal failures become `InternalError` (or
    /// `ServiceUnavailable`) for the client; their cause is logged here, with the request's
    /// span, and never sent out.
    fn from(err: Error) -> Self {
        let code = match &err {
            Error::NoSuchBucket => S3ErrorCode::NoSuchBucket,
            Error::NoSuchKey => S3ErrorCode::NoSuchKey,
            Error::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
            Error::OperationAborted => S3ErrorCode::OperationAborted,
            Error::BadDigest => S3ErrorCode::BadDigest,
            Error::InvalidDigest => S3ErrorCode::InvalidDigest,
            Error::EntityTooLarge => S3ErrorCode::EntityTooLarge,
            Error::ChecksumMismatch(_) => S3ErrorCode::BadDigest,
            Error::NoSuchUpload => S3ErrorCode::NoSuchUpload,
            Error::InvalidPart => S3ErrorCode::InvalidPart,
            Error::PreconditionFailed => S3ErrorCode::PreconditionFailed,
            Error::NotModified => S3ErrorCode::NotModified,
            Error::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
            Error::InvalidTag(_) => S3ErrorCode::InvalidTag,
            Error::NotImplemented(_) => S3ErrorCode::NotImplemented,
            Error::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
            Error::RequestTimeout => S3ErrorCode::RequestTimeout,
            Error::Unavailable(_) => {
                tracing::error!(%err, "request failed: volumes unavailable");
                return S3Error::with_message(S3ErrorCode::ServiceUnavailable, "Please reduce your request rate.");
            }
            Error::Volume(_) | Error::CorruptReplica(_) | Error::Index(_) | Error::Config(_) | Error::Io(_) => {
                tracing::error!(%err, "request failed");
                return S3Error::with_message(
                    S3ErrorCode::InternalError,
                    "We encountered an internal error. Please try again.",
                );
            }
        };
        S3Error::with_message(code, err.to_string())
    }
}

/// An S3 error as the client reads it from an answer's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// `<Code>`.
    pub code: String,
    /// `<Message>` (empty when the body has none).
    pub message: String,
}

/// The error an answer carries: a 4xx or 5xx whose body is S3's `<Error>` document (s3s
/// builds those whole, so the body is at hand). `None` for any other answer.
pub fn wire_error(response: &s3s::HttpResponse) -> Option<WireError> {
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return None;
    }
    let body = response.body().bytes()?;
    let error = std::str::from_utf8(&body).ok()?.split_once("<Error>")?.1;
    let code = element(error, "Code")?;
    let message = element(error, "Message").unwrap_or_default();
    Some(WireError { code: xml_unescape(code), message: xml_unescape(message) })
}

/// The text of the first `<name>…</name>` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + len])
}

/// Undoes XML's five escapes (all s3s writes).
fn xml_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
