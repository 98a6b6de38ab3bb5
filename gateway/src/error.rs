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
    /// The body's MD5 differs from `Content-MD5`.
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    /// `Content-MD5` is not base64 of 16 bytes.
    #[error("the Content-MD5 you specified is not valid")]
    InvalidDigest,
    /// The body is larger than S3 allows for the operation.
    #[error("your proposed upload exceeds the maximum allowed object size")]
    EntityTooLarge,
    /// The client's body stream failed or ended early.
    #[error("the request body ended before it was complete: {0}")]
    IncompleteBody(String),
    /// Not enough volumes are reachable to place or serve the data.
    #[error("not enough volumes available: {0}")]
    Unavailable(String),
    /// A volume answered with an error or disagreed on what it stored.
    #[error("volume: {0}")]
    Volume(String),
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
            Error::BadDigest => S3ErrorCode::BadDigest,
            Error::InvalidDigest => S3ErrorCode::InvalidDigest,
            Error::EntityTooLarge => S3ErrorCode::EntityTooLarge,
            Error::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
            Error::Unavailable(_) => {
                tracing::error!(%err, "request failed: volumes unavailable");
                return S3Error::with_message(S3ErrorCode::ServiceUnavailable, "Please reduce your request rate.");
            }
            Error::Volume(_) | Error::Index(_) | Error::Config(_) | Error::Io(_) => {
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
