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
    /// Object lock forbids it: the reason says which lock holds.
    #[error("Access Denied because object protected by object lock: {0}")]
    ObjectLocked(String),
    /// The bucket's configuration forbids the change (object lock forbids suspending
    /// versioning).
    #[error("{0}")]
    InvalidBucketState(String),
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
    /// A volume refused the gateway's cluster secret (401): a configuration mistake, not an
    /// outage.
    #[error("{0} rejected the cluster secret")]
    ClusterSecretRejected(String),
    /// A volume the record names does not have its copy of a blob: read another replica;
    /// the repairer rewrites it.
    #[error("missing replica: {0}")]
    MissingReplica(String),
    /// RocksDB or record encoding failure.
    #[error("index: {0}")]
    Index(String),
    /// The index server cannot be reached or did not answer in time (nothing was changed, or
    /// the statement was a read): the client should retry.
    #[error("index unavailable: {0}")]
    IndexUnavailable(String),
    /// This gateway's claim on a blob it wrote is gone: peers took the gateway for dead
    /// (its heartbeats stopped) and GC may have collected the blob, so it must not commit.
    #[error("in-flight claim on blob {0} lost: the other gateways took this one for dead")]
    ClaimLost(String),
    /// A transaction lost to a concurrent one and wrote nothing; run it again.
    #[error("transaction conflict: {0}")]
    Conflict(String),
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
            Error::ObjectLocked(_) => S3ErrorCode::AccessDenied,
            Error::InvalidBucketState(_) => S3ErrorCode::InvalidBucketState,
            Error::NotImplemented(_) => S3ErrorCode::NotImplemented,
            Error::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
            Error::RequestTimeout => S3ErrorCode::RequestTimeout,
            Error::Unavailable(_) | Error::IndexUnavailable(_) | Error::ClaimLost(_) => {
                tracing::error!(%err, "request failed: unavailable");
                return S3Error::with_message(S3ErrorCode::ServiceUnavailable, "Please reduce your request rate.");
            }
            Error::Volume(_)
            | Error::CorruptReplica(_)
            | Error::MissingReplica(_)
            | Error::ClusterSecretRejected(_)
            | Error::Index(_)
            | Error::Conflict(_)
            | Error::Config(_)
            | Error::Io(_) => {
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

/// Gives an error answer without a `<Message>` the one S3 sends with its code, and returns
/// the error as the client reads it. Cairn's own errors all carry a message; s3s builds many
/// without one (InvalidBucketName, SignatureDoesNotMatch, KeyTooLongError, …), which clients
/// then show as "Unknown" or nothing.
pub fn complete_message(response: &mut s3s::HttpResponse) -> Option<WireError> {
    let mut error = wire_error(response)?;
    if !error.message.is_empty() {
        return Some(error);
    }
    error.message = default_message(&error.code);
    let body = response.body().bytes()?;
    let text = std::str::from_utf8(&body).ok()?.replace("<Message></Message>", "").replace("<Message/>", "");
    let at = text.find("</Code>")? + "</Code>".len();
    let completed = format!("{}<Message>{}</Message>{}", &text[..at], xml_escape(&error.message), &text[at..]);
    *response.body_mut() = s3s::Body::from(completed);
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    Some(error)
}

/// The message S3 sends with `code` (the wording of AWS's error reference), for errors built
/// without one; any other code is spelled out ("InvalidObjectState" → "Invalid Object State.").
pub fn default_message(code: &str) -> String {
    let message = match code {
        "AccessDenied" => "Access Denied",
        "AuthorizationHeaderMalformed" => "The authorization header you provided is not valid.",
        "AuthorizationQueryParametersError" => "The authorization query parameters you provided are not valid.",
        "BadDigest" => "The Content-MD5 or checksum value that you specified did not match what the server received.",
        "BucketAlreadyOwnedByYou" => {
            "Your previous request to create the named bucket succeeded and you already own it."
        }
        "BucketNotEmpty" => "The bucket you tried to delete is not empty.",
        "EntityTooLarge" => "Your proposed upload exceeds the maximum allowed object size.",
        "EntityTooSmall" => "Your proposed upload is smaller than the minimum allowed object size.",
        "ExpiredToken" => "The provided token has expired.",
        "IncompleteBody" => "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        "InternalError" => "We encountered an internal error. Please try again.",
        "InvalidAccessKeyId" => "The AWS access key ID that you provided does not exist in our records.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidDigest" => "The Content-MD5 or checksum value that you specified is not valid.",
        "InvalidPart" => "One or more of the specified parts could not be found.",
        "InvalidPartOrder" => "The list of parts was not in ascending order.",
        "InvalidPolicyDocument" => {
            "The content of the form does not meet the conditions specified in the policy document."
        }
        "InvalidRange" => "The requested range cannot be satisfied.",
        "InvalidRequest" => "The request is not valid.",
        "InvalidStorageClass" => "The storage class you specified is not valid.",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long.",
        "MalformedPOSTRequest" => "The body of your POST request is not well-formed multipart/form-data.",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema.",
        "MaxMessageLengthExceeded" => "Your request was too big.",
        "MetadataTooLarge" => "Your metadata headers exceed the maximum allowed metadata size.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "MissingRequestBodyError" => "Request body is empty.",
        "MissingSecurityHeader" => "Your request is missing a required header.",
        "NoSuchBucket" => "The specified bucket does not exist.",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchUpload" => "The specified multipart upload does not exist.",
        "NoSuchVersion" => "The version ID specified in the request does not match an existing version.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "OperationAborted" => "A conflicting conditional operation is currently in progress against this resource.",
        "PreconditionFailed" => "At least one of the preconditions that you specified did not hold.",
        "RequestTimeTooSkewed" => "The difference between the request time and the server's time is too large.",
        "RequestTimeout" => {
            "Your socket connection to the server was not read from or written to within the timeout period."
        }
        "ServiceUnavailable" | "SlowDown" => "Please reduce your request rate.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "XAmzContentSHA256Mismatch" => "The provided 'x-amz-content-sha256' header does not match what was computed.",
        _ => return spelled_out(code),
    };
    message.to_string()
}

/// `InvalidObjectState` → `Invalid Object State.`: words split where a capital follows a
/// lower-case letter or digit.
fn spelled_out(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + 8);
    let mut previous: Option<char> = None;
    for c in code.chars() {
        if c.is_ascii_uppercase() && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
            out.push(' ');
        }
        out.push(c);
        previous = Some(c);
    }
    if out.is_empty() {
        out.push_str("Error");
    }
    out.push('.');
    out
}

/// Escapes text for an XML element.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
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

#[cfg(test)]
mod tests {
    use s3s::{S3Error, S3ErrorCode, s3_error};

    use super::*;

    fn answer(err: S3Error) -> s3s::HttpResponse {
        err.to_http_response().unwrap_or_else(|_| unreachable!("a fixed error serialises"))
    }

    fn body_of(response: &s3s::HttpResponse) -> String {
        String::from_utf8(response.body().bytes().unwrap_or_default().to_vec()).unwrap_or_default()
    }

    #[test]
    fn errors_without_a_message_get_the_one_s3_sends() {
        let mut response = answer(s3_error!(InvalidBucketName));
        assert!(!body_of(&response).contains("<Message>"), "s3s writes none: {}", body_of(&response));
        let error = complete_message(&mut response).unwrap();
        assert_eq!(error.code, "InvalidBucketName");
        assert_eq!(error.message, "The specified bucket is not valid.");
        assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
        assert!(
            body_of(&response).ends_with(
                "<Error><Code>InvalidBucketName</Code><Message>The specified bucket is not valid.</Message></Error>"
            ),
            "{}",
            body_of(&response)
        );
        assert_eq!(wire_error(&response), Some(error), "what the client reads");

        let mut empty = answer(S3Error::with_message(S3ErrorCode::SignatureDoesNotMatch, ""));
        let error = complete_message(&mut empty).unwrap();
        assert!(error.message.starts_with("The request signature we calculated"));
        assert_eq!(body_of(&empty).matches("<Message>").count(), 1, "{}", body_of(&empty));
    }

    #[test]
    fn messages_already_there_are_kept_and_read_unescaped() {
        let mut response = answer(s3_error!(InvalidRequest, "a <tag> & \"quotes\""));
        let before = body_of(&response);
        let error = complete_message(&mut response).unwrap();
        assert_eq!(error.message, "a <tag> & \"quotes\"");
        assert_eq!(body_of(&response), before);
    }

    #[test]
    fn every_code_has_a_message() {
        assert_eq!(default_message("KeyTooLongError"), "Your key is too long.");
        assert_eq!(default_message("InvalidObjectState"), "Invalid Object State.");
        assert_eq!(default_message("InvalidURIThing"), "Invalid URIThing.");
        assert_eq!(default_message(""), "Error.");
        for code in [S3ErrorCode::InvalidTag, S3ErrorCode::NoSuchLifecycleConfiguration, S3ErrorCode::TooManyBuckets] {
            assert!(!default_message(code.as_str()).is_empty());
        }
    }

    #[test]
    fn only_error_answers_are_read() {
        let mut ok = s3s::HttpResponse::new(s3s::Body::from("<Error><Code>NoSuchKey</Code></Error>".to_string()));
        assert_eq!(complete_message(&mut ok), None, "a 200 whose object happens to look like an error");
        let mut not_modified = answer(S3Error::new(S3ErrorCode::NotModified));
        assert_eq!(not_modified.status(), http::StatusCode::NOT_MODIFIED);
        assert_eq!(complete_message(&mut not_modified), None);
    }

    #[test]
    fn internal_failures_reach_the_client_without_their_cause() {
        let err = S3Error::from(Error::Index("disk on fire at /var/lib/cairn".into()));
        assert_eq!(err.code(), &S3ErrorCode::InternalError);
        assert!(!err.message().unwrap_or_default().contains("disk"));
    }
}
