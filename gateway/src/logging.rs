//! The gateway's log: stderr, filtered by `RUST_LOG` (default `info`), with s3s's own
//! reports of refused requests taken out so that every request is reported once.
//!
//! s3s logs a request it refuses before a handler runs (a bad signature, access denied, an
//! unsupported header, a malformed body) two or three times at ERROR, and every answer again
//! (at ERROR for a 5xx, NotImplemented included). Most of those are the client's mistakes,
//! and s3s cannot be told otherwise. Cairn reports each request itself instead: `server.rs`
//! logs every answer in its access log line (INFO) with its error code and message, and
//! `error.rs` logs the cause of each internal failure at ERROR. So [`S3sEchoes`] drops, from s3s's targets only:
//!
//! - its answer lines (`s3s::service`, those with a `resp` field);
//! - the ERROR event of `#[instrument(err)]` on its request preparation (an `error` field),
//!   which the next line repeats;
//! - "failed to prepare" / "op returns error" (an `err` field) when the error is the
//!   client's: a 4xx, or NotImplemented. A server error keeps its line, the only one that
//!   carries its cause (a body that failed to read, a response that failed to serialise);
//! - "malformed xml body", which dumps the client's body at ERROR (the client gets
//!   MalformedXML, and the answer line says so).
//!
//! Everything else s3s logs (its DEBUG trail of routing and signature checks, its WARN about
//! virtual-hosted-style requests) passes through `RUST_LOG` as usual.

use std::fmt::Debug;

use s3s::S3ErrorCode;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
pub use volumed::serve::LogFormat;

/// Logs to stderr (`RUST_LOG` filters, default `info`) as text (colours only on a terminal)
/// or as one JSON object per line.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let registry = tracing_subscriber::registry().with(filter).with(S3sEchoes);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry.with(layer.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))).init(),
        LogFormat::Json => registry.with(layer.json()).init(),
    }
}

/// Drops s3s's duplicate reports of a request's outcome (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct S3sEchoes;

impl<S: Subscriber> Layer<S> for S3sEchoes {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        keep(event)
    }
}

/// Whether an event is logged: everything but s3s's echoes.
fn keep(event: &Event<'_>) -> bool {
    let meta = event.metadata();
    let has = |name: &str| meta.fields().field(name).is_some();
    let error = *meta.level() == Level::ERROR;
    match meta.target() {
        "s3s::service" => !has("resp"),
        "s3s::http::de" => !error,
        "s3s::ops" if error && has("error") => false,
        "s3s::ops" if error && has("err") => {
            let mut err = ErrField(None);
            event.record(&mut err);
            !err.0.as_deref().is_some_and(is_client_error)
        }
        _ => true,
    }
}

/// The `err` field of an event, as its `Debug` text.
struct ErrField(Option<String>);

impl Visit for ErrField {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "err" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// Whether the `Debug` text of an `S3Error` names a client error: a code S3 answers with a
/// 4xx, or NotImplemented. Anything unrecognised counts as a server error, so its line stays.
fn is_client_error(debug: &str) -> bool {
    let Some((_, rest)) = debug.split_once("code: ") else { return false };
    let code = rest.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or_default();
    let Some(code) = S3ErrorCode::from_bytes(code.as_bytes()) else { return false };
    code == S3ErrorCode::NotImplemented || code.status_code().is_some_and(|status| status.is_client_error())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use s3s::{S3Error, s3_error};

    use super::*;

    #[test]
    fn s3s_errors_are_told_apart_by_their_debug_text() {
        let client = [
            s3_error!(SignatureDoesNotMatch),
            s3_error!(InvalidBucketName),
            s3_error!(AccessDenied, "Access Denied"),
            s3_error!(NotImplemented, "A header you provided implies functionality that is not implemented"),
            S3Error::with_source(S3ErrorCode::MaxMessageLengthExceeded, "too big".into()),
        ];
        for err in client {
            assert!(is_client_error(&format!("{err:?}")), "{err:?}");
        }
        let server = [
            S3Error::with_source(S3ErrorCode::InternalError, "connection reset".into()),
            s3_error!(ServiceUnavailable),
            S3Error::new(S3ErrorCode::Custom("SomethingNew".into())),
        ];
        for err in server {
            assert!(!is_client_error(&format!("{err:?}")), "{err:?}");
        }
        assert!(!is_client_error("not an S3Error"));
    }

    /// Collects the messages of the events that reach it.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
            struct Message(String);
            impl Visit for Message {
                fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            if let Ok(mut seen) = self.0.lock() {
                seen.push(format!("{} {}", event.metadata().target(), message.0));
            }
        }
    }

    #[test]
    fn only_s3s_echoes_of_client_errors_are_dropped() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(S3sEchoes).with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let client = s3_error!(SignatureDoesNotMatch);
            let server = S3Error::with_source(S3ErrorCode::InternalError, "body read failed".into());
            tracing::error!(target: "s3s::ops", error = %client);
            tracing::error!(target: "s3s::ops", err = ?client, "failed to prepare");
            tracing::error!(target: "s3s::ops", op = "GetObject", err = ?server, "op returns error");
            tracing::error!(target: "s3s::service", duration = 1, resp = "501", "");
            tracing::debug!(target: "s3s::service", duration = 1, resp = "404", "");
            tracing::error!(target: "s3s::service", duration = 1, err = "serialise", "http error");
            tracing::error!(target: "s3s::http::de", bytes = "<oops", "malformed xml body");
            tracing::warn!(target: "s3s::ops", host_header = "b.example", "virtual-hosted-style hint");
            tracing::debug!(target: "s3s::ops", "resolved route");
            tracing::error!(target: "gateway::error", err = ?client, "request failed");
        });
        let seen = seen.0.lock().map(|seen| seen.clone()).unwrap_or_default();
        assert_eq!(
            seen,
            [
                "s3s::ops op returns error",
                "s3s::service http error",
                "s3s::ops virtual-hosted-style hint",
                "s3s::ops resolved route",
                "gateway::error request failed",
            ]
        );
    }
}
