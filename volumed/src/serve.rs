//! The accept loop shared by every Cairn HTTP listener (volumed, the S3 front, the admin API),
//! and its defences against clients that connect and then send nothing useful.
//!
//! A connection holds one of `MAX_CONNECTIONS` (4096) slots from accept to close. So that idle or
//! stalled sockets cannot keep slots from working clients:
//!
//! - a client must send a complete request head within [`HEADER_READ_TIMEOUT`] of the moment
//!   the connection is ready for one: when it is accepted (also if it never sends a byte), and
//!   again after every response. The clock is not reset by trickled bytes (slowloris). In hyper
//!   1.12 the same timer runs while a keep-alive connection waits for its next request, so it
//!   is also the idle limit;
//! - a request head is at most [`MAX_REQUEST_HEAD`] bytes (431 beyond), and what an unfinished
//!   head can make the server buffer is bounded by `READ_BUFFER`;
//! - TCP keepalive probes a silent peer, so a connection whose peer vanished in the middle of a
//!   request (no FIN, no RST) is closed in about two minutes instead of never.
//!
//! Only HTTP/1.1 is served (over TLS, ALPN offers only `http/1.1`). HTTP/2 (prior knowledge,
//! the only way without TLS) is used by none of Cairn's clients, S3 clients speak HTTP/1.1, and hyper's HTTP/2 server has no idle or
//! header-read timeout: an idle HTTP/2 connection would hold its slot forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Most connections one listener serves at once; further accepts wait for a slot.
const MAX_CONNECTIONS: usize = 4096;

/// Time a client has to send a whole request head, from accept or from the end of the previous
/// response; also the keep-alive idle limit (see the module doc). A working client sends its
/// head in one go right away: 10 s leaves room for three lost segments in a row (TCP
/// retransmits after about 1, 2 and 4 s) on a bad link, while a stalled socket holds a slot for
/// at most 10 s. A client that keeps idle connections longer than this (the gateway's volume
/// client pools them for 60 s) sees them closed and reconnects.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) the S3 and admin listeners accept: S3
/// itself allows 8 KiB of request headers; 64 KiB leaves room for long presigned URLs and
/// generous metadata, and bounds the header parsing and header maps an unauthenticated client
/// can cause. The volume daemon needs more for its metadata header and passes its own limit
/// to [`serve_with_max_head`].
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Largest read buffer of a connection. An unfinished head accumulates here (a complete head
/// over the limit gets 431 from `max_header_size`; an unfinished one is refused when it fills
/// this buffer), and so do request bodies, which are read in chunks of at most this size, so
/// it is not the head limit itself: with ~100 KiB chunks a volume spent about 8% more CPU per
/// uploaded byte than with hyper's default (~400 KiB), with 256 KiB about 4%, within the noise
/// (256 MiB PUTs to a release build; 64 KiB chunks would cost more still). 4096 connections ×
/// 256 KiB bound what stalled heads can pin to 1 GiB, the same as 4096 working uploads.
const READ_BUFFER: usize = 256 * 1024;

/// Idle time before the first TCP keepalive probe of a silent peer, and the time between
/// probes (Linux gives up after 9 unanswered probes: 30 s + 9 × 10 s = 2 min). Only a dead peer
/// stays silent to probes; a live but idle one answers them and is left to the timeouts above.
const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(30);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body a listener can send as an answer.
pub trait AnswerBody: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> AnswerBody for B where B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// Where a request came from, in every request's extensions: the peer's address and whether
/// the connection is TLS (bucket policies test both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The peer's address.
    pub peer: std::net::SocketAddr,
    /// Served over TLS.
    pub tls: bool,
}

/// A connection's service: puts its [`Connection`] into each request, then serves it.
#[derive(Clone)]
struct OnConnection<S> {
    service: S,
    connection: Connection,
}

impl<S: Service<Request<Incoming>>> Service<Request<Incoming>> for OnConnection<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.connection);
        self.service.call(req)
    }
}

/// A service a listener can serve its connections with.
pub trait Handler<B: AnswerBody>:
    Service<Request<Incoming>, Response = Response<B>, Error: Into<BoxError>, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S, B: AnswerBody> Handler<B> for S where
    S: Service<Request<Incoming>, Response = Response<B>, Error: Into<BoxError>, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves `service` on `listener` until `shutdown` resolves, then waits (at most 30 s) for the
/// connections in flight to finish. Request heads are limited to [`MAX_REQUEST_HEAD`].
pub async fn serve<S: Handler<B>, B: AnswerBody>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) {
    serve_with_max_head(listener, service, shutdown, MAX_REQUEST_HEAD).await;
}

/// [`serve`] over TLS: each connection first completes a TLS handshake, within
/// [`HEADER_READ_TIMEOUT`] of being accepted (a client that connects and never handshakes
/// holds its slot no longer than one that never sends a request head).
pub async fn serve_tls<S: Handler<B>, B: AnswerBody>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    tls: Arc<crate::tls::ReloadableTls>,
) {
    accept_loop(listener, service, shutdown, MAX_REQUEST_HEAD, Some(tls)).await;
}

/// [`serve`] with another limit on the size of a request head.
pub async fn serve_with_max_head<S: Handler<B>, B: AnswerBody>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    max_head: usize,
) {
    accept_loop(listener, service, shutdown, max_head, None).await;
}

/// Every accepted socket gets TCP_NODELAY (a small response must never wait on a delayed ACK)
/// and TCP keepalive; with `tls`, a handshake before HTTP.
async fn accept_loop<S: Handler<B>, B: AnswerBody>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    max_head: usize,
    tls: Option<Arc<crate::tls::ReloadableTls>>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(max_head)
        .max_buf_size(READ_BUFFER.max(max_head));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(err) = configure_socket(&stream) {
            tracing::debug!(%err, %peer, "socket options not set");
        }
        // The certificate in force when the connection came: a reload affects later ones.
        let tls = tls.as_ref().map(|tls| tokio_rustls::TlsAcceptor::from(tls.current()));
        let connection = Connection { peer, tls: tls.is_some() };
        let service = OnConnection { service: service.clone(), connection };
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let served = match tls {
                None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                Some(tls) => match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                    Ok(Err(err)) => {
                        tracing::debug!(%err, %peer, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "no TLS handshake within the header timeout");
                        Ok(())
                    }
                },
            };
            if let Err(err) = served {
                tracing::debug!(err = %err, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after 30 s; closing them");
    }
}

/// TCP_NODELAY and keepalive on an accepted socket.
fn configure_socket(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE_TIME).with_interval(TCP_KEEPALIVE_INTERVAL);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Logs to stderr (`RUST_LOG` filters, default `info`); colours only on a terminal.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// How log lines are written: for people, or one JSON object per line for log collectors
/// (the span fields, such as the request id, are under `span` and `spans`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `timestamp LEVEL span{fields}: target: message fields`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_get_nodelay_and_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        configure_socket(&accepted).unwrap();
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.tcp_nodelay().unwrap());
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), TCP_KEEPALIVE_TIME);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), TCP_KEEPALIVE_INTERVAL);
        drop(client);
    }
}
