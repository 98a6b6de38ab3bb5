//! The one error type of the volume daemon, and how each case maps to an HTTP status.

use http::StatusCode;

/// Everything that can go wrong in `volumed`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Missing or wrong cluster secret.
    #[error("unauthorized")]
    Unauthorized,
    /// The request is malformed (bad id, bad range, bad metadata…).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No such blob or route.
    #[error("not found")]
    NotFound,
    /// The request contradicts what the volume holds (a membership of another cluster).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The requested range lies outside the blob.
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    /// A blob file on disk does not parse.
    #[error("corrupt blob: {0}")]
    Corrupt(String),
    /// The request body ended early or failed.
    #[error("body: {0}")]
    Body(String),
    /// The daemon is out of a bounded resource for now (read buffers); try another replica.
    #[error("busy: {0}")]
    Busy(String),
    /// Disk or other I/O failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Configuration problem at startup.
    #[error("config: {0}")]
    Config(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::BadRequest(_) | Error::Body(_) => StatusCode::BAD_REQUEST,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            // 422, not 500: the request was fine and the daemon is healthy, this one file is
            // bad. The gateway tells it apart (with `x-cairn-error: corrupt`) to count and
            // repair the replica; see the contract in `http`.
            Error::Corrupt(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Io(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
