//! HTTP client for the volume daemons: pooled keep-alive connections with TCP_NODELAY.
//!
//! Nothing here waits forever. Every request has a connect timeout; a request's answer must
//! start within `response` of the request (for a PUT: of its body's end); a body that stops
//! moving for `idle` fails, in either direction: a GET whose volume sends nothing, or a PUT
//! whose volume stops taking bytes while the gateway has some ready. Every outcome is
//! reported to [`Health`], so a volume that fails is skipped by placement until it answers.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use tokio::time::Instant;
pub use volumed::commit_log::Commit;
use volumed::http::{META_HEADER, SHA256_HEADER, SIZE_HEADER};
use volumed::membership::{Document, GATEWAY_HEADER, Stored};
use volumed::{VolumeStats, WriteReceipt};

use crate::error::{Error, Result};
use crate::health::{Fault, Health};

/// The slowest disk read a verify allows for before giving up on the volume's answer: a
/// verify reads the whole blob before it answers.
const VERIFY_BYTES_PER_SEC: u64 = 20 * 1024 * 1024;

/// A byte stream read from a volume.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// How long volume requests may take; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// From the request (a PUT: its last byte) to the first byte of the answer.
    pub response: Duration,
    /// Longest pause of a body in flight.
    pub idle: Duration,
}

impl Default for Timeouts {
    /// Seconds, not minutes: a volume on a healthy disk answers in milliseconds, and one that
    /// takes longer than this is better skipped than waited for.
    fn default() -> Self {
        Self { connect: Duration::from_secs(2), response: Duration::from_secs(10), idle: Duration::from_secs(10) }
    }
}

/// Talks to volume daemons on behalf of the gateway.
#[derive(Debug, Clone)]
pub struct VolumeClient {
    http: reqwest::Client,
    auth: String,
    timeouts: Timeouts,
    health: Health,
    /// Commit-log appends waiting for one request per volume and subvolume.
    commit_appends: CommitAppends,
}

/// Ids per commit-log append request (volumed takes up to 10,000).
const MAX_COMMIT_BATCH: usize = 1000;
/// Ids that may wait for one volume's log; more are refused (and left to the repairer).
const MAX_COMMITS_WAITING: usize = 10_000;
type CommitAppends = crate::batch::Batcher<(String, u32), Commit, std::result::Result<(), String>>;

/// Names the S3 request this volume request serves, if any (see `request_id`).
fn with_request_id(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match crate::request_id::current() {
        Some(id) => request.header(crate::request_id::REQUEST_ID_HEADER, id),
        None => request,
    }
}

/// Counts a volume request by volume, operation and outcome: `ok` (any answer but a 5xx),
/// `error_status` (a 5xx), `error` (no answer: refused, reset) or `timeout`.
fn count_outcome(volume: &str, op: &str, outcome: &'static str) {
    metrics::counter!(
        "cairn_volume_client_requests_total",
        "volume" => volume.to_string(), "op" => op.to_string(), "outcome" => outcome
    )
    .increment(1);
}

/// How a failed request reflects on the volume's health.
fn fault_of(err: &reqwest::Error) -> Option<Fault> {
    if err.is_connect() || err.is_timeout() {
        Some(Fault::Unreachable)
    } else if err.is_body() || err.is_builder() {
        // The gateway's own body stream failed (an aborted upload): not the volume's fault.
        None
    } else {
        // The connection broke mid-request.
        Some(Fault::Unreachable)
    }
}

impl VolumeClient {
    /// A client presenting `cluster_secret` to every volume, with the default timeouts.
    pub fn new(cluster_secret: &str) -> Result<Self> {
        Self::with_timeouts(cluster_secret, Timeouts::default())
    }

    /// A client with the given timeouts.
    pub fn with_timeouts(cluster_secret: &str, timeouts: Timeouts) -> Result<Self> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            // Below volumed's 10 s idle limit, so the pool never hands out a connection the
            // volume is closing.
            .pool_idle_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .connect_timeout(timeouts.connect)
            .http1_only()
            .build()
            .map_err(|e| Error::Config(format!("volume client: {e}")))?;
        Ok(Self {
            http,
            auth: format!("Bearer {cluster_secret}"),
            timeouts,
            health: Health::default(),
            commit_appends: CommitAppends::new(MAX_COMMIT_BATCH, MAX_COMMITS_WAITING),
        })
    }

    /// The health every request of this client (and its clones) reports to.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn blob_url(base: &str, subvolume: u32, id: &str) -> String {
        format!("{}/blob/{subvolume}/{id}", base.trim_end_matches('/'))
    }

    /// Sends a request whose answer must start within the response timeout, and checks its
    /// status; records the outcome.
    async fn send(&self, base: &str, what: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        self.send_within(base, what, request, self.timeouts.response).await
    }

    /// [`Self::send`] with an answer allowed to take up to `within`.
    async fn send_within(
        &self,
        base: &str,
        what: &str,
        request: reqwest::RequestBuilder,
        within: Duration,
    ) -> Result<reqwest::Response> {
        let request = with_request_id(request.header(reqwest::header::AUTHORIZATION, &self.auth));
        match tokio::time::timeout(within, request.send()).await {
            Ok(sent) => self.checked(base, what, sent).await,
            Err(_) => Err(self.timed_out(base, what, "no answer", within)),
        }
    }

    /// Turns a sent request's outcome into a response with a success status (404 counts,
    /// callers decide what it means) or an error, and tells [`Health`].
    async fn checked(
        &self,
        base: &str,
        what: &str,
        sent: reqwest::Result<reqwest::Response>,
    ) -> Result<reqwest::Response> {
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                if let Some(fault) = fault_of(&err) {
                    self.health.failed(base, fault, &err);
                }
                count_outcome(base, what, "error");
                return Err(Error::Volume(format!("{what} {base}: {err}")));
            }
        };
        let status = response.status();
        count_outcome(base, what, if status.is_server_error() { "error_status" } else { "ok" });
        if status.is_server_error() {
            self.health.failed(base, Fault::ErrorAnswer, &status);
        } else if status == StatusCode::UNAUTHORIZED {
            self.health.failed(base, Fault::Refused, &"it rejected the cluster secret");
        } else {
            self.health.succeeded(base);
        }
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        // The volume's corrupt-blob contract (see `volumed::http`): 422 *and* the marker header,
        // so no other 422 is ever taken for a corrupt replica.
        let corrupt = status == StatusCode::UNPROCESSABLE_ENTITY
            && response
                .headers()
                .get(volumed::http::ERROR_HEADER)
                .is_some_and(|value| value.as_bytes() == volumed::http::CORRUPT.as_bytes());
        let text = tokio::time::timeout(self.timeouts.idle, response.text()).await.ok().and_then(|t| t.ok());
        let text = text.unwrap_or_default();
        if corrupt {
            return Err(Error::CorruptReplica(format!("{what} {base}: {}", text.trim())));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(Error::ClusterSecretRejected(base.to_string()));
        }
        Err(Error::Volume(format!("{what} {base} answered {status}: {}", text.trim())))
    }

    fn timed_out(&self, base: &str, what: &str, doing: &str, after: Duration) -> Error {
        count_outcome(base, what, "timeout");
        let err = Error::Volume(format!("{what} {base}: {doing} within {after:?}"));
        self.health.failed(base, Fault::Unreachable, &err);
        err
    }

    /// A volume's answer body as a stream that fails if the volume pauses longer than the
    /// idle timeout while it is being read.
    fn idle_checked(&self, base: &str, what: &'static str, response: reqwest::Response) -> ByteStream {
        let client = self.clone();
        let base = base.to_string();
        let inner = Box::pin(response.bytes_stream());
        Box::pin(futures::stream::unfold(Some(inner), move |state| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let mut inner = state?;
                match tokio::time::timeout(client.timeouts.idle, inner.next()).await {
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(inner))),
                    Ok(None) => None,
                    // A body cut short is not counted against the volume's health: a volume
                    // cuts a read at a damaged block (see `volumed::read`) and is otherwise
                    // fine; one that died fails its next connection, which does count.
                    Ok(Some(Err(err))) => Some((Err(Error::Volume(format!("{what} {base}: {err}"))), None)),
                    Err(_) => {
                        let err = client.timed_out(&base, what, "body stalled", client.timeouts.idle);
                        Some((Err(err), None))
                    }
                }
            }
        }))
    }

    /// Streams `body` into blob `id` on one volume and returns what the volume wrote. The
    /// volume keeps the blob only if `body` ends cleanly; an error item makes it discard it.
    pub async fn put<S, E>(
        &self,
        base: &str,
        subvolume: u32,
        id: &str,
        meta: &[u8],
        size: Option<u64>,
        body: S,
    ) -> Result<WriteReceipt>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let progress = Progress::new();
        let watched = Watched { inner: Box::pin(body), progress: progress.clone() };
        let mut request = with_request_id(self.http.put(Self::blob_url(base, subvolume, id)))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(META_HEADER, base64::engine::general_purpose::STANDARD.encode(meta))
            .body(reqwest::Body::wrap_stream(watched));
        if let Some(size) = size {
            request = request.header(SIZE_HEADER, size);
        }
        let sent = request.send();
        tokio::pin!(sent);
        let sent = loop {
            let (phase, since) = progress.get();
            let limit = match phase {
                Phase::WaitingForData => None,
                Phase::Sending => Some((self.timeouts.idle, "stopped taking the body")),
                Phase::Sent => Some((self.timeouts.response, "no answer after the body")),
            };
            let Some((limit, doing)) = limit else {
                // The volume waits on the gateway's own body; only a change of phase matters.
                tokio::select! {
                    sent = &mut sent => break sent,
                    () = progress.changed() => continue,
                }
            };
            if since.elapsed() >= limit {
                return Err(self.timed_out(base, "PUT", doing, limit));
            }
            tokio::select! {
                sent = &mut sent => break sent,
                () = tokio::time::sleep_until(since + limit) => {}
                () = progress.changed() => {}
            }
        };
        if sent.is_err() && progress.body_failed() {
            // The gateway abandoned the body (a failed check, the client gone): the volume
            // did nothing wrong, and discarded what it got.
            return Err(Error::Volume(format!("PUT {base}: upload abandoned")));
        }
        let response = self.checked(base, "PUT", sent).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::Volume(format!("PUT {base}: no such subvolume {subvolume}")));
        }
        let receipt = tokio::time::timeout(self.timeouts.idle, response.json()).await;
        match receipt {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(err)) => Err(Error::Volume(format!("PUT {base}: bad receipt: {err}"))),
            Err(_) => Err(self.timed_out(base, "PUT", "no receipt", self.timeouts.idle)),
        }
    }

    /// Opens `[start, end)` of a blob (the whole blob when `range` is `None`).
    pub async fn get(&self, base: &str, subvolume: u32, id: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let mut request = self.http.get(Self::blob_url(base, subvolume, id));
        if let Some((start, end)) = range {
            if end <= start {
                return Ok(Box::pin(futures::stream::empty()));
            }
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-{}", end - 1));
        }
        let response = self.send(base, "GET", request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::MissingReplica(format!("GET {base}: blob {id} not found")));
        }
        Ok(self.idle_checked(base, "GET", response))
    }

    /// Has the volume read blob `id` whole and check it against its own digests (every block
    /// CRC and the SHA-256), without sending the data. `Ok(None)`: the volume does not have it;
    /// a damaged copy is [`Error::CorruptReplica`]. `size` (what the caller expects) sets how
    /// long the volume may take.
    pub async fn verify(&self, base: &str, subvolume: u32, id: &str, size: u64) -> Result<Option<Verified>> {
        let url = format!("{}/verify/{subvolume}/{id}", base.trim_end_matches('/'));
        let within = self.timeouts.response + Duration::from_secs(size / VERIFY_BYTES_PER_SEC);
        let response = self.send_within(base, "VERIFY", self.http.get(url), within).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        match tokio::time::timeout(self.timeouts.idle, response.json()).await {
            Ok(Ok(value)) => Ok(Some(value)),
            Ok(Err(err)) => Err(Error::Volume(format!("VERIFY {base}: bad answer: {err}"))),
            Err(_) => Err(self.timed_out(base, "VERIFY", "answer stalled", self.timeouts.idle)),
        }
    }

    /// Copies the blob `commit` names from one volume to another (same id, same metadata),
    /// volume to volume through this client, and logs `commit` there (see `commit_log`);
    /// returns what the target wrote, which the caller checks.
    pub async fn copy(
        &self,
        from: &str,
        from_subvolume: u32,
        to: &str,
        to_subvolume: u32,
        commit: &Commit,
    ) -> Result<WriteReceipt> {
        let id = commit.id.as_str();
        let head = self
            .head(from, from_subvolume, id)
            .await?
            .ok_or_else(|| Error::Volume(format!("blob {id} is not on {from}")))?;
        let stream = self.get(from, from_subvolume, id, None).await?;
        let receipt = self.put(to, to_subvolume, id, &head.meta, Some(head.size), stream).await?;
        if receipt.sha256 != head.sha256 {
            return Err(Error::Volume(format!("copy of {id} to {to} does not match its source")));
        }
        // Only committed blobs are copied (repair, rebalance, verify): the copy carries that
        // proof to its new volume, which may outlive the old ones.
        self.append_commits(to, to_subvolume, std::slice::from_ref(commit)).await?;
        Ok(receipt)
    }

    /// Appends `commits` to the commit log of a subvolume; returns once they are durable there.
    pub async fn append_commits(&self, base: &str, subvolume: u32, commits: &[Commit]) -> Result<()> {
        let url = format!("{}/commits/{subvolume}", base.trim_end_matches('/'));
        let response = self.send(base, "COMMIT", self.http.post(url).json(commits)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::Volume(format!("COMMIT {base}: no such subvolume {subvolume}")));
        }
        Ok(())
    }

    /// Appends `commit` to a subvolume's commit log together with the commits other requests
    /// are appending there meanwhile: one request carries all that waited for the one before it.
    pub async fn append_commit(&self, base: &str, subvolume: u32, commit: Commit) -> Result<()> {
        let client = self.clone();
        let outcome = self.commit_appends.submit((base.to_string(), subvolume), commit, move |(base, sv), commits| {
            let client = client.clone();
            async move { client.append_commits(&base, sv, &commits).await.map_err(|err| err.to_string()) }
        });
        match outcome.await {
            Ok(outcome) => outcome.map_err(Error::Volume),
            Err(_) => {
                Err(Error::Volume(format!("COMMIT {base}: not sent (too many appends waiting, or the sender failed)")))
            }
        }
    }

    /// Up to `limit` commits of a subvolume's commit log from record `from` on, and the record
    /// to continue from if more follow.
    pub async fn read_commits(
        &self,
        base: &str,
        subvolume: u32,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<Commit>, Option<u64>)> {
        let url = format!("{}/commits/{subvolume}?from={from}&limit={limit}", base.trim_end_matches('/'));
        let page: CommitPage = self.json(base, "COMMITS", self.http.get(url)).await?;
        // A volume from before commit orders sends ids only.
        let commits = if page.commits.is_empty() {
            page.ids.into_iter().map(|id| Commit { id, order: 0, kind: 0 }).collect()
        } else {
            page.commits
        };
        Ok((commits, page.next))
    }

    /// What a volume knows of a blob without reading it, or `None` if it does not have it.
    pub async fn head(&self, base: &str, subvolume: u32, id: &str) -> Result<Option<BlobHead>> {
        let response = self.send(base, "HEAD", self.http.head(Self::blob_url(base, subvolume, id))).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let meta = header(META_HEADER)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .ok_or_else(|| Error::Volume(format!("HEAD {base}: no metadata")))?;
        let sha256 = header(SHA256_HEADER).ok_or_else(|| Error::Volume(format!("HEAD {base}: no sha256")))?;
        let size = header(SIZE_HEADER)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Volume(format!("HEAD {base}: no size")))?;
        Ok(Some(BlobHead { meta, sha256, size }))
    }

    /// Deletes a blob; a blob that is already gone counts as deleted.
    pub async fn delete(&self, base: &str, subvolume: u32, id: &str) -> Result<()> {
        self.send(base, "DELETE", self.http.delete(Self::blob_url(base, subvolume, id))).await.map(drop)
    }

    /// Reads a small JSON answer whole, within the idle timeout.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T> {
        let response = self.send(base, what, request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::Volume(format!("{what} {base}: not found")));
        }
        match tokio::time::timeout(self.timeouts.idle, response.json()).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(Error::Volume(format!("{what} {base}: bad answer: {err}"))),
            Err(_) => Err(self.timed_out(base, what, "answer stalled", self.timeouts.idle)),
        }
    }

    /// One page of the blobs of a subvolume, in id order after `after`; and the id to
    /// continue after, if there are more.
    pub async fn list(
        &self,
        base: &str,
        subvolume: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ListedBlob>, Option<String>)> {
        let mut url = format!("{}/list/{subvolume}?limit={limit}", base.trim_end_matches('/'));
        if let Some(after) = after {
            url.push_str("&after=");
            url.push_str(after);
        }
        let page: ListPage = self.json(base, "LIST", self.http.get(&url)).await?;
        Ok((page.blobs, page.next))
    }

    /// The volume's id and space per subvolume.
    pub async fn stats(&self, base: &str) -> Result<VolumeStats> {
        self.json(base, "STATS", self.http.get(format!("{}/stats", base.trim_end_matches('/')))).await
    }

    /// Like [`VolumeClient::stats`], naming this gateway ([`volumed::membership::GATEWAY_HEADER`]):
    /// the health probe, by which a volume knows a gateway uses it.
    pub async fn probe(&self, base: &str, gateway: &str) -> Result<VolumeStats> {
        let request = self.http.get(format!("{}/stats", base.trim_end_matches('/')));
        self.json(base, "STATS", request.header(GATEWAY_HEADER, gateway)).await
    }

    /// Tells a volume that this gateway has stopped using it.
    pub async fn leave(&self, base: &str, gateway: &str) -> Result<()> {
        let request = self.http.delete(format!("{}/gateway", base.trim_end_matches('/')));
        self.send(base, "LEAVE", request.header(GATEWAY_HEADER, gateway)).await.map(drop)
    }

    /// The membership a volume holds, or `None` if no gateway has pushed one yet.
    pub async fn membership(&self, base: &str) -> Result<Option<Document>> {
        let url = format!("{}/membership", base.trim_end_matches('/'));
        let response = self.send(base, "MEMBERSHIP", self.http.get(url)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        match tokio::time::timeout(self.timeouts.idle, response.json()).await {
            Ok(Ok(document)) => Ok(Some(document)),
            Ok(Err(err)) => Err(Error::Volume(format!("MEMBERSHIP {base}: bad answer: {err}"))),
            Err(_) => Err(self.timed_out(base, "MEMBERSHIP", "answer stalled", self.timeouts.idle)),
        }
    }

    /// Writes the membership to a volume; returns the epoch it holds afterwards (newer than
    /// `document`'s if it had a newer one). A volume of another cluster refuses it:
    /// `Error::Config` saying so.
    pub async fn put_membership(&self, base: &str, document: &Document) -> Result<u64> {
        let url = format!("{}/membership", base.trim_end_matches('/'));
        let request = self.http.put(url).header(reqwest::header::AUTHORIZATION, &self.auth).json(document);
        let sent = match tokio::time::timeout(self.timeouts.response, request.send()).await {
            Ok(sent) => sent,
            Err(_) => return Err(self.timed_out(base, "MEMBERSHIP", "no answer", self.timeouts.response)),
        };
        let sent = match sent {
            Ok(response) if response.status() == StatusCode::CONFLICT => {
                self.health.succeeded(base);
                let text = tokio::time::timeout(self.timeouts.idle, response.text()).await.ok().and_then(|t| t.ok());
                let text = text.unwrap_or_default();
                return Err(Error::Config(format!("volume {base} refused the membership: {}", text.trim())));
            }
            sent => sent,
        };
        let response = self.checked(base, "MEMBERSHIP", sent).await?;
        match tokio::time::timeout(self.timeouts.idle, response.json::<Stored>()).await {
            Ok(Ok(stored)) => Ok(stored.epoch),
            Ok(Err(err)) => Err(Error::Volume(format!("MEMBERSHIP {base}: bad answer: {err}"))),
            Err(_) => Err(self.timed_out(base, "MEMBERSHIP", "answer stalled", self.timeouts.idle)),
        }
    }
}

/// Where a PUT's body stands, for its stall and answer timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The volume asked for the next chunk and the gateway has none yet.
    WaitingForData,
    /// The volume has a chunk and has not asked for the next one.
    Sending,
    /// The body has ended; the answer is due.
    Sent,
}

/// The phase of a PUT body and when it began, shared between the body and the request.
#[derive(Debug, Clone)]
struct Progress {
    state: Arc<Mutex<(Phase, Instant)>>,
    changed: Arc<tokio::sync::Notify>,
    /// The body yielded an error: the gateway abandoned the write.
    body_failed: Arc<std::sync::atomic::AtomicBool>,
}

impl Progress {
    fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new((Phase::Sending, Instant::now()))),
            changed: Arc::new(tokio::sync::Notify::new()),
            body_failed: Arc::default(),
        }
    }

    fn body_failed(&self) -> bool {
        self.body_failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn get(&self) -> (Phase, Instant) {
        *self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set(&self, phase: Phase) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.0 != phase || phase == Phase::Sending {
            *state = (phase, Instant::now());
            self.changed.notify_one();
        }
    }

    async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// A PUT body that reports its [`Phase`] as the HTTP client pulls it.
struct Watched<S> {
    inner: Pin<Box<S>>,
    progress: Progress,
}

impl<S, E> Stream for Watched<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.progress.body_failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.progress.set(match &polled {
            Poll::Pending => Phase::WaitingForData,
            Poll::Ready(Some(_)) => Phase::Sending,
            Poll::Ready(None) => Phase::Sent,
        });
        polled
    }
}

/// A blob's metadata and footer facts, from a HEAD.
#[derive(Debug, Clone)]
pub struct BlobHead {
    /// The gateway's metadata.
    pub meta: Vec<u8>,
    /// SHA-256 of the data as the volume wrote it, hex.
    pub sha256: String,
    /// Data bytes.
    pub size: u64,
}

/// What a volume's own check of a blob found: it is whole, with this length and digest.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Verified {
    /// Data bytes.
    pub size: u64,
    /// SHA-256 of the data as read back, hex.
    pub sha256: String,
}

/// A blob as a volume lists it: its footer facts and the gateway's metadata.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ListedBlob {
    /// Blob id.
    pub id: String,
    /// Data bytes.
    pub data_len: u64,
    /// SHA-256 of the data, hex.
    pub sha256: String,
    /// MD5 of the data, hex.
    pub md5: String,
    /// When the volume wrote it, unix milliseconds.
    pub written_at_ms: u64,
    /// The metadata the gateway wrote with it.
    pub meta: serde_json::Value,
}

#[derive(Debug, serde::Deserialize)]
struct CommitPage {
    #[serde(default)]
    commits: Vec<Commit>,
    #[serde(default)]
    ids: Vec<String>,
    next: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
struct ListPage {
    blobs: Vec<ListedBlob>,
    next: Option<String>,
}
