//! The internal HTTP API of a volume daemon.
//!
//! ```text
//! PUT    /blob/{sv}/{id}   body = data; x-cairn-meta: base64(JSON); x-cairn-size: n (optional)
//!                          → 201 {"size","sha256","md5"}
//! GET    /blob/{sv}/{id}   Range supported → data, every block checked before it is sent;
//!                          x-cairn-size, x-cairn-sha256
//! HEAD   /blob/{sv}/{id}   the same headers and x-cairn-meta, no body
//! GET    /verify/{sv}/{id} reads the blob whole here, checks every block and the SHA-256
//!                          → {"size","sha256"}
//! DELETE /blob/{sv}/{id}   → 204, or 404
//! GET    /list/{sv}?after=ID&limit=N → {"blobs":[…], "next": ID|null}
//! POST   /commits/{sv}     body = [{"id", "order", "kind"}, …] (or ["id", …]: neither known)
//!                          → 204 once they are durably in the commit log
//! GET    /commits/{sv}?from=N&limit=M → {"commits":[{"id","order","kind"}…], "ids":[…], "next": N|null}
//!                          (records in log order; `ids` repeats the ids for older gateways)
//! GET    /stats            → {"volume_id", "subvolumes":[{"index","free_bytes","total_bytes"}],
//!                             "gateway_seen_ms_ago"?}
//! PUT    /membership       body = membership document → {"epoch"} (409: another cluster's)
//! GET    /membership       → the membership document, or 404 if none was pushed yet
//! DELETE /gateway          a gateway (x-cairn-gateway) shut down → 204
//! GET    /health           → 200 (the only route without the cluster secret)
//! ```
//!
//! Errors answer with a status and a short `text/plain` reason. One of them is a contract the
//! gateway relies on (`volume_client::check`, `admin::verify`):
//!
//! **Corrupt blob.** When a blob's footer fails its CRC32C, its metadata fails its CRC32C, its
//! recorded lengths disagree with the file size, or (GET and verify) the first data block a
//! read touches fails its CRC32C, the request answers `422 Unprocessable Content` with the
//! header `x-cairn-error: corrupt` ([`ERROR_HEADER`], [`CORRUPT`]) and a short text body,
//! before any data is sent. A later block that fails its check ends the GET's body early
//! (the connection breaks before any byte of that block is sent): the reader continues from
//! another replica at that offset. The file is left in place: the gateway's repairer (or
//! `verify --repair`) overwrites it from a good copy (a `PUT` of the same id replaces it). A
//! 422 without that header is not this contract. Listings skip corrupt blobs (with a warning
//! naming the id in the daemon's log) rather than fail the page.

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures::TryStreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tracing::Instrument as _;

use crate::blob::MAX_META_LEN;
use crate::commit_log::Commit;
use crate::error::{Error, Result};
use crate::membership::{GATEWAY_HEADER, Membership};
use crate::read::{CheckedRead, ReadBudget};
use crate::store::Store;

/// Response body type of the volume API.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Header carrying the writer's metadata, base64 of JSON.
pub const META_HEADER: &str = "x-cairn-meta";
/// Header carrying the exact data length: expected on PUT, actual on GET/HEAD.
pub const SIZE_HEADER: &str = "x-cairn-size";
/// Header carrying the data's SHA-256 on GET/HEAD.
pub const SHA256_HEADER: &str = "x-cairn-sha256";
/// Header naming the gateway request a volume request serves; it goes into the daemon's log
/// lines for that request.
pub const REQUEST_ID_HEADER: &str = "x-cairn-request-id";
/// Longest request id taken from [`REQUEST_ID_HEADER`] (the gateway's are 16 characters).
const MAX_REQUEST_ID: usize = 64;
/// Header naming the kind of a machine-readable error; see the module doc.
pub const ERROR_HEADER: &str = "x-cairn-error";
/// [`ERROR_HEADER`] value of a corrupt blob (with status 422).
pub const CORRUPT: &str = "corrupt";
/// Largest request head (request line and headers) the daemon accepts: the metadata header is
/// base64 of up to [`MAX_META_LEN`] bytes (4/3 of it), plus room for the other headers.
pub const MAX_REQUEST_HEAD: usize = MAX_META_LEN.div_ceil(3) * 4 + 16 * 1024;
const MAX_LIST_LIMIT: usize = 10_000;
/// Memory all reads' block buffers may take together.
const READ_BUDGET: u64 = 256 * 1024 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct Api {
    store: Store,
    membership: Membership,
    secret: String,
    budget: ReadBudget,
}

impl Api {
    /// Wraps a store and its membership with the cluster secret every request must carry.
    pub fn new(store: Store, membership: Membership, secret: String) -> Arc<Self> {
        Arc::new(Self { store, membership, secret, budget: ReadBudget::new(READ_BUDGET) })
    }

    /// Handles one request; never fails at the HTTP level.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let span = match request_id(req.headers()) {
            // At ERROR so the span is on whatever the filter lets through: a warning logged
            // under `RUST_LOG=warn` still names its request.
            Some(id) => tracing::error_span!("request", request_id = %id),
            None => tracing::Span::none(),
        };
        self.handle_in_span(req).instrument(span).await
    }

    async fn handle_in_span(&self, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let started = std::time::Instant::now();
        let response = match self.route(req).await {
            Ok(response) => response,
            Err(err) => {
                if err.status().is_server_error() {
                    tracing::error!(%method, %path, %err, "volume request failed");
                } else if matches!(err, Error::Corrupt(_)) {
                    // The path names the blob; an operator needs to see this without debug logs.
                    tracing::warn!(%method, %path, %err, "corrupt blob refused");
                } else {
                    tracing::debug!(%method, %path, %err, "volume request refused");
                }
                let mut response = text(err.status(), err.to_string());
                if matches!(err, Error::Corrupt(_)) {
                    response.headers_mut().insert(ERROR_HEADER, http::HeaderValue::from_static(CORRUPT));
                }
                response
            }
        };
        // The operation is the method and the path's first segment (`GET /blob`): never an id.
        let op = format!("{method} /{}", path.trim_start_matches('/').split('/').next().unwrap_or(""));
        let status = response.status().as_u16().to_string();
        metrics::counter!("cairn_volume_requests_total", "op" => op.clone(), "status" => status).increment(1);
        metrics::histogram!("cairn_volume_request_seconds", "op" => op).record(started.elapsed().as_secs_f64());
        Ok(response)
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>> {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if segments == ["health"] {
            return Ok(text(StatusCode::OK, "ok".into()));
        }
        if segments == ["metrics"] && req.method() == Method::GET {
            return self.metrics();
        }
        self.authorize(req.headers())?;
        let gateway = req.headers().get(GATEWAY_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        if let Some(gateway) = &gateway
            && req.method() != Method::DELETE
        {
            self.membership.gateway_seen(gateway);
        }
        match (req.method(), segments.as_slice()) {
            (&Method::GET, ["stats"]) => {
                let mut stats = self.store.stats()?;
                stats.gateway_seen_ms_ago = self.membership.gateway_seen_ago().map(|ago| ago.as_millis() as u64);
                json(StatusCode::OK, &stats)
            }
            (&Method::GET, ["membership"]) => {
                json(StatusCode::OK, &self.membership.get().await.ok_or(Error::NotFound)?)
            }
            (&Method::PUT, ["membership"]) => self.put_membership(req).await,
            (&Method::DELETE, ["gateway"]) => {
                if let Some(gateway) = &gateway {
                    self.membership.gateway_left(gateway);
                }
                Ok(text(StatusCode::NO_CONTENT, String::new()))
            }
            (&Method::GET, ["list", sv]) => self.list(parse_sv(sv)?, req.uri().query().unwrap_or("")).await,
            (&Method::POST, ["commits", sv]) => {
                let sv = parse_sv(sv)?;
                self.append_commits(sv, req).await
            }
            (&Method::GET, ["commits", sv]) => self.read_commits(parse_sv(sv)?, req.uri().query().unwrap_or("")).await,
            (&Method::PUT, ["blob", sv, id]) => {
                let (sv, id) = (parse_sv(sv)?, (*id).to_string());
                self.put(sv, &id, req).await
            }
            (&Method::GET, ["blob", sv, id]) => self.get(parse_sv(sv)?, id, req.headers(), true).await,
            (&Method::HEAD, ["blob", sv, id]) => self.get(parse_sv(sv)?, id, req.headers(), false).await,
            (&Method::GET, ["verify", sv, id]) => self.verify(parse_sv(sv)?, id).await,
            (&Method::DELETE, ["blob", sv, id]) => {
                self.store.delete(parse_sv(sv)?, id).await?;
                Ok(text(StatusCode::NO_CONTENT, String::new()))
            }
            _ => Err(Error::NotFound),
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<()> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(self.secret.as_bytes())) { Ok(()) } else { Err(Error::Unauthorized) }
    }

    async fn put(&self, sv: usize, id: &str, req: Request<Incoming>) -> Result<Response<Body>> {
        let meta = match req.headers().get(META_HEADER) {
            Some(value) => base64::engine::general_purpose::STANDARD
                .decode(value.as_bytes())
                .map_err(|e| Error::BadRequest(format!("{META_HEADER}: {e}")))?,
            None => b"{}".to_vec(),
        };
        let expected_size = match req.headers().get(SIZE_HEADER) {
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::BadRequest(format!("bad {SIZE_HEADER}")))?,
            ),
            None => None,
        };
        let body = req.into_body().into_data_stream();
        let receipt = self.store.write(sv, id, &meta, expected_size, body).await?;
        metrics::counter!("cairn_volume_blob_writes_total").increment(1);
        metrics::counter!("cairn_volume_blob_written_bytes_total").increment(receipt.size);
        json(StatusCode::CREATED, &receipt)
    }

    /// `GET /metrics`: the recorded metrics, with each subvolume's space as of now.
    fn metrics(&self) -> Result<Response<Body>> {
        for subvolume in self.store.stats()?.subvolumes {
            let index = subvolume.index.to_string();
            metrics::gauge!("cairn_volume_free_bytes", "subvolume" => index.clone()).set(subvolume.free_bytes as f64);
            metrics::gauge!("cairn_volume_size_bytes", "subvolume" => index).set(subvolume.total_bytes as f64);
        }
        let mut response = text(StatusCode::OK, crate::metrics::render());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
        Ok(response)
    }

    async fn get(&self, sv: usize, id: &str, headers: &HeaderMap, with_body: bool) -> Result<Response<Body>> {
        // The metadata is read (and its CRC checked) on GET too, so a blob with any corrupt
        // part is refused as a whole: it is cheap (a few hundred bytes next to the footer), and
        // a reader never takes data from a blob that rebuild could not use.
        let blob = self.store.open_checked(sv, id).await?;
        let footer = &blob.footer;
        let range = match headers.get(header::RANGE) {
            Some(value) => Some(parse_range(value.to_str().unwrap_or(""), footer.data_len)?),
            None => None,
        };
        let (start, end) = range.unwrap_or((0, footer.data_len));
        let mut response = Response::builder()
            .header(header::CONTENT_LENGTH, end - start)
            .header(SIZE_HEADER, footer.data_len)
            .header(SHA256_HEADER, hex::encode(footer.sha256));
        if !with_body {
            response = response.header(META_HEADER, base64::engine::general_purpose::STANDARD.encode(&blob.meta));
        }
        if range.is_some() {
            response = response
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{}/{}", end.saturating_sub(1), footer.data_len));
        }
        if with_body {
            metrics::counter!("cairn_volume_blob_reads_total").increment(1);
            metrics::counter!("cairn_volume_blob_read_bytes_total").increment(end - start);
        }
        let body = if with_body && end > start {
            let mut read = CheckedRead::open(&blob, start, end, self.budget.clone()).await?;
            // The first block is checked before the status goes out: a damaged blob of one
            // block (most objects) is refused whole, and the reader tries another replica.
            let first = read.next().await.transpose()?;
            checked_body(first, read, id)
        } else {
            empty()
        };
        response.body(body).map_err(|e| Error::BadRequest(e.to_string()))
    }

    /// Reads a whole blob here and checks every block and the SHA-256 against its footer, so
    /// a verify costs no network transfer. A damaged blob answers the corrupt-blob contract.
    async fn verify(&self, sv: usize, id: &str) -> Result<Response<Body>> {
        let blob = self.store.open_checked(sv, id).await?;
        let (size, expected) = (blob.footer.data_len, blob.footer.sha256);
        let mut read = CheckedRead::open(&blob, 0, size, self.budget.clone()).await?;
        let mut sha = Sha256::new();
        while let Some(block) = read.next().await {
            sha.update(block?);
        }
        let sha256: [u8; 32] = sha.finalize().into();
        if sha256 != expected {
            return Err(Error::Corrupt("data does not match its SHA-256".into()));
        }
        json(StatusCode::OK, &VerifyReceipt { size, sha256: hex::encode(sha256) })
    }

    async fn list(&self, sv: usize, query: &str) -> Result<Response<Body>> {
        let mut after = None;
        let mut limit = 1000;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "after" if !value.is_empty() => after = Some(value.to_string()),
                "limit" => {
                    limit = value
                        .parse::<usize>()
                        .map_err(|_| Error::BadRequest("bad limit".into()))?
                        .clamp(1, MAX_LIST_LIMIT)
                }
                _ => {}
            }
        }
        let (blobs, next) = self.store.list(sv, after.as_deref(), limit).await?;
        json(StatusCode::OK, &serde_json::json!({ "blobs": blobs, "next": next }))
    }
}

impl Api {
    async fn put_membership(&self, req: Request<Incoming>) -> Result<Response<Body>> {
        let body = http_body_util::Limited::new(req.into_body(), crate::membership::MAX_DOCUMENT)
            .collect()
            .await
            .map_err(|e| Error::BadRequest(format!("membership body: {e}")))?
            .to_bytes();
        let document = serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("membership body: {e}")))?;
        let stored = self.membership.put(document).await;
        if let Err(err @ Error::Conflict(_)) = &stored {
            tracing::warn!(%err, "membership of another cluster refused");
        }
        json(StatusCode::OK, &stored?)
    }

    async fn append_commits(&self, sv: usize, req: Request<Incoming>) -> Result<Response<Body>> {
        let log = self.store.commit_log(sv)?;
        // `{"id":"<32 hex>","order":<u64>,"kind":<u8>}` and a comma: well under this.
        let limit = crate::commit_log::MAX_IDS * 96 + 2;
        let body = http_body_util::Limited::new(req.into_body(), limit)
            .collect()
            .await
            .map_err(|e| Error::BadRequest(format!("commit body: {e}")))?
            .to_bytes();
        let appended: Vec<Appended> =
            serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("commit body: {e}")))?;
        let commits: Vec<Commit> = appended.into_iter().map(Commit::from).collect();
        log.append(&commits).await?;
        Ok(text(StatusCode::NO_CONTENT, String::new()))
    }

    async fn read_commits(&self, sv: usize, query: &str) -> Result<Response<Body>> {
        let (mut from, mut limit) = (0u64, crate::commit_log::MAX_IDS);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || Error::BadRequest(format!("bad {name}"));
            match name {
                "from" => from = value.parse().map_err(|_| bad())?,
                "limit" => limit = value.parse().map_err(|_| bad())?,
                _ => {}
            }
        }
        let (commits, next) = self.store.commit_log(sv)?.read(from, limit).await?;
        let ids: Vec<&str> = commits.iter().map(|c| c.id.as_str()).collect();
        json(StatusCode::OK, &serde_json::json!({ "commits": commits, "ids": ids, "next": next }))
    }
}

/// One appended commit: with its order, or a bare id (from gateways before orders).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Appended {
    Ordered(Commit),
    Id(String),
}

impl From<Appended> for Commit {
    fn from(appended: Appended) -> Self {
        match appended {
            Appended::Ordered(commit) => commit,
            Appended::Id(id) => Commit { id, order: 0, kind: 0 },
        }
    }
}

/// The gateway's request id, if the request carries a plausible one (it is logged as is).
fn request_id(headers: &HeaderMap) -> Option<&str> {
    let id = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let plausible = !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_alphanumeric());
    plausible.then_some(id)
}

fn parse_sv(segment: &str) -> Result<usize> {
    segment.parse().map_err(|_| Error::BadRequest(format!("bad subvolume {segment:?}")))
}

/// Parses a single `bytes=` range against a blob of `len` bytes into `[start, end)`.
fn parse_range(value: &str, len: u64) -> Result<(u64, u64)> {
    let spec = value.strip_prefix("bytes=").ok_or_else(|| Error::BadRequest("bad range".into()))?;
    let (first, last) = spec.split_once('-').ok_or_else(|| Error::BadRequest("bad range".into()))?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| Error::BadRequest("bad range".into()));
    let (start, end) = if first.trim().is_empty() {
        let suffix = num(last)?;
        (len.saturating_sub(suffix), len)
    } else {
        let start = num(first)?;
        let end = if last.trim().is_empty() { len } else { num(last)?.saturating_add(1).min(len) };
        (start, end)
    };
    if start >= len && len > 0 || start > end {
        return Err(Error::RangeNotSatisfiable);
    }
    Ok((start, end))
}

/// The body of a read: `first` (already checked), then each further block once it is checked.
/// Blocks are read one ahead of the connection; a block that fails its check ends the body
/// with an error, which breaks the connection before any of its bytes are sent.
fn checked_body(first: Option<Bytes>, mut read: CheckedRead, id: &str) -> Body {
    if read.is_done() {
        // One block (most objects): no reader task needed.
        return full(first.unwrap_or_default());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
    let id = id.to_string();
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            if let Some(first) = first
                && tx.send(Ok(first)).await.is_err()
            {
                return;
            }
            while let Some(block) = read.next().await {
                let block = block.map_err(|err| {
                    tracing::warn!(blob = %id, %err, "read cut short");
                    std::io::Error::other(err.to_string())
                });
                let failed = block.is_err();
                if tx.send(block).await.is_err() || failed {
                    return;
                }
            }
        }
        .instrument(span),
    );
    BodyExt::boxed(StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx).map_ok(Frame::data)))
}

/// What `GET /verify` found: the data's length and SHA-256, both matching the footer.
#[derive(Debug, serde::Serialize)]
struct VerifyReceipt {
    size: u64,
    sha256: String,
}

fn empty() -> Body {
    full(Bytes::new())
}

fn full(bytes: Bytes) -> Body {
    BodyExt::boxed(Full::new(bytes).map_err(|never| match never {}))
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let mut response = Response::new(full(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use hyper_util::rt::TokioIo;

    use super::*;
    use crate::store::{OpenOptions, PackOptions};

    /// One request to the daemon at `addr`, on a connection of its own.
    async fn call(
        addr: std::net::SocketAddr,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, "Bearer s3cret");
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let response = sender.send_request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
    }

    /// The API answers the same whether a blob was packed or got a file of its own.
    #[tokio::test]
    async fn blobs_round_trip_over_http_packed_or_not() {
        for threshold in [PackOptions::default().pack_threshold, 0] {
            let dir = tempfile::tempdir().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let pack = PackOptions { pack_threshold: threshold, ..PackOptions::default() };
            let options = OpenOptions { init: true, allow_shared_fs: true };
            let stop = tokio_util::sync::CancellationToken::new();
            let server = tokio::spawn(crate::run_with(
                listener,
                vec![dir.path().join("sv")],
                options,
                pack,
                "s3cret".into(),
                stop.clone().cancelled_owned(),
            ));
            let meta = base64::engine::general_purpose::STANDARD.encode(br#"{"key":"k"}"#);
            let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
            // A known size (packed when packing is on) and an unknown one (always a file).
            for (id, size) in [("a1".repeat(16), Some(data.len())), ("b2".repeat(16), None)] {
                let mut headers = vec![(META_HEADER, meta.clone())];
                headers.extend(size.map(|n| (SIZE_HEADER, n.to_string())));
                let (status, _, body) = call(addr, Method::PUT, &format!("/blob/0/{id}"), &headers, data.clone()).await;
                assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
                let receipt: crate::WriteReceipt = serde_json::from_slice(&body).unwrap();
                assert_eq!(receipt.sha256, hex::encode(Sha256::digest(&data)));

                let (status, _, body) = call(addr, Method::GET, &format!("/blob/0/{id}"), &[], vec![]).await;
                assert_eq!((status, body.as_slice()), (StatusCode::OK, data.as_slice()));
                let range = vec![("range", "bytes=100-199".to_string())];
                let (status, headers, body) = call(addr, Method::GET, &format!("/blob/0/{id}"), &range, vec![]).await;
                assert_eq!((status, body.as_slice()), (StatusCode::PARTIAL_CONTENT, &data[100..200]));
                assert_eq!(headers[header::CONTENT_RANGE], "bytes 100-199/5000");
                let (status, headers, _) = call(addr, Method::HEAD, &format!("/blob/0/{id}"), &[], vec![]).await;
                assert_eq!((status, headers[META_HEADER].to_str().unwrap()), (StatusCode::OK, meta.as_str()));
                let (status, _, _) = call(addr, Method::GET, &format!("/verify/0/{id}"), &[], vec![]).await;
                assert_eq!(status, StatusCode::OK);
            }
            let (_, _, body) = call(addr, Method::GET, "/list/0?limit=1", &[], vec![]).await;
            let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(page["blobs"][0]["id"], "a1".repeat(16));
            assert_eq!(page["blobs"][0]["data_len"], 5000);
            let (_, _, body) =
                call(addr, Method::GET, &format!("/list/0?after={}", "a1".repeat(16)), &[], vec![]).await;
            let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(page["blobs"][0]["id"], "b2".repeat(16));
            for id in ["a1".repeat(16), "b2".repeat(16)] {
                let path = format!("/blob/0/{id}");
                assert_eq!(call(addr, Method::DELETE, &path, &[], vec![]).await.0, StatusCode::NO_CONTENT);
                assert_eq!(call(addr, Method::DELETE, &path, &[], vec![]).await.0, StatusCode::NOT_FOUND);
                assert_eq!(call(addr, Method::GET, &path, &[], vec![]).await.0, StatusCode::NOT_FOUND);
            }
            let segments = dir.path().join("sv").join("segments");
            let packed_bytes = std::fs::read_dir(&segments)
                .map(|entries| entries.map(|e| e.unwrap().metadata().unwrap().len()).sum::<u64>())
                .unwrap_or(0);
            assert_eq!(packed_bytes > 0, threshold > 0, "threshold {threshold}: {packed_bytes} bytes in segments");
            stop.cancel();
            server.await.unwrap().unwrap();
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), (0, 10));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), (90, 100));
        assert_eq!(parse_range("bytes=-5", 100).unwrap(), (95, 100));
        assert_eq!(parse_range("bytes=50-500", 100).unwrap(), (50, 100));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("items=1-2", 100).is_err());
    }
}
