//! Moving object bytes between a client stream and several replicas at once.
//!
//! Writes fan one body out to every replica through small bounded channels, so memory per
//! upload is a few chunks whatever the object size. A replica stream ends cleanly only on an
//! explicit end marker, sent once the whole body has passed every check: a write abandoned
//! for any reason (a bad digest, the client gone, the request dropped mid-way) breaks every
//! replica's stream, so no volume ever commits a prefix. A replica that stalls is dropped by
//! its own timeouts (see `volume_client`) and the others carry on; a body small enough to
//! keep whole (most are) is resent to the next volume in ring order in place of a replica that
//! failed, so a volume dying mid-write costs the client nothing. The write returns once the
//! body is complete and the quorum has confirmed, waiting only briefly for stragglers.
//! Reads stream from one replica and, if it fails mid-way, continue from the next replica at
//! the same offset. Volumes check every block they send before sending it (see
//! `volumed::read`): a damaged copy is refused before the first byte, or cut at the damaged
//! block, and either way the read goes on from another copy and the damaged one is reported
//! to the repairer, so a corrupt replica costs the client nothing while a good one exists.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::checksum::{Expected, Hasher};
use crate::error::{Error, Result};
use crate::index::records::Replica;
use crate::repair::{Damage, DamageReports};
use crate::volume_client::{ByteStream, VolumeClient};

/// Chunks in flight per replica during a write; bounds memory per upload.
const WRITE_DEPTH: usize = 8;
/// Chunks buffered between a volume read and the client.
const READ_DEPTH: usize = 4;
/// Mid-stream fail-overs one read may make.
const MAX_FAILOVERS: u32 = 8;
/// Longest pause of a client's upload body (S3 answers `RequestTimeout`).
pub const CLIENT_BODY_IDLE: Duration = Duration::from_secs(30);
/// Largest body kept whole while it streams, so a replica that fails can be replaced on
/// another volume without the client resending: most objects are small, and this bounds
/// the memory a write holds.
const REPLAY_LIMIT: usize = 512 * 1024;
/// How long a write that has its quorum waits for the other replicas: long enough for a
/// healthy volume's fsync, short enough that one slow disk does not set every write's pace.
const STRAGGLER_WAIT: Duration = Duration::from_secs(2);

/// The outcome of a replicated write.
#[derive(Debug, Clone)]
pub struct Written {
    /// Bytes received from the client.
    pub size: u64,
    /// MD5 of the body.
    pub md5: [u8; 16],
    /// SHA-256 of the body.
    pub sha256: [u8; 32],
    /// The checksum `BodyChecks::checksum` asked for, base64.
    pub checksum: Option<String>,
    /// Replicas that confirmed the same size and SHA-256.
    pub replicas: Vec<Replica>,
}

/// What a body must satisfy before any replica may commit it.
#[derive(Debug)]
pub struct BodyChecks {
    /// Largest body accepted (`EntityTooLarge` beyond).
    pub max_size: u64,
    /// `Content-MD5`.
    pub content_md5: Option<[u8; 16]>,
    /// A client checksum to compute and, if the client sent a value, verify.
    pub checksum: Option<Expected>,
}

impl BodyChecks {
    /// No checks (bodies the gateway makes itself).
    pub fn none() -> Self {
        Self { max_size: u64::MAX, content_md5: None, checksum: None }
    }
}

/// What travels to one replica: data, then an end marker that alone lets it commit.
enum Chunk {
    Data(Bytes),
    End,
}

/// The body one replica's PUT sends: it ends cleanly only after [`Chunk::End`]; a channel
/// closed without it (the write abandoned, its future dropped) is an error, which makes the
/// volume discard what it received.
fn replica_body(rx: mpsc::Receiver<Chunk>) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Chunk::Data(bytes)) => Some((Ok(bytes), Some(rx))),
            Some(Chunk::End) => None,
            None => Some((Err(std::io::Error::other("upload abandoned before its end")), None)),
        }
    })
}

/// One replica's write in flight.
struct ReplicaWrite {
    replica: Replica,
    url: String,
    /// Its body; `None` once it took the end marker or dropped out.
    tx: Option<mpsc::Sender<Chunk>>,
    /// Taken when the write is awaited; the abort handle stays for the drop guard.
    task: Option<JoinHandle<Result<volumed::WriteReceipt>>>,
    abort: tokio::task::AbortHandle,
}

/// What a replica write needs besides its target.
struct BlobSpec {
    client: VolumeClient,
    id: String,
    meta: Vec<u8>,
    size: Option<u64>,
}

/// The replica writes of one upload. Dropped before they finish (an error, or the request's
/// future dropped), it stops them all: their streams break without an end marker, and the
/// tasks are aborted so no connection lingers.
struct Fanout {
    spec: BlobSpec,
    writes: Vec<ReplicaWrite>,
    /// Next volumes in ring order, to stand in for a replica that fails.
    spares: std::vec::IntoIter<(Replica, String)>,
    /// The whole body so far while it is at most [`REPLAY_LIMIT`] bytes: a replica that
    /// fails can then be replaced on a spare volume, at no cost to the client.
    replay: Option<Vec<Bytes>>,
    replay_bytes: usize,
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for write in &mut self.writes {
            write.tx = None;
            write.abort.abort();
        }
    }
}

impl Fanout {
    fn start(spec: BlobSpec, targets: &[(Replica, String)], spares: Vec<(Replica, String)>) -> Self {
        let mut fanout = Self {
            spec,
            writes: Vec::with_capacity(targets.len()),
            spares: spares.into_iter(),
            replay: Some(Vec::new()),
            replay_bytes: 0,
        };
        for (replica, url) in targets {
            fanout.spawn(replica, url);
        }
        fanout
    }

    /// Starts a replica write whose body comes through a channel.
    fn spawn(&mut self, replica: &Replica, url: &str) -> mpsc::Sender<Chunk> {
        let (tx, rx) = mpsc::channel::<Chunk>(WRITE_DEPTH);
        let spec = &self.spec;
        let (client, url_owned, id, meta, size) =
            (spec.client.clone(), url.to_string(), spec.id.clone(), spec.meta.clone(), spec.size);
        let subvolume = replica.subvolume;
        let task = crate::request_id::spawn(async move {
            client.put(&url_owned, subvolume, &id, &meta, size, replica_body(rx)).await
        });
        self.writes.push(ReplicaWrite {
            replica: replica.clone(),
            url: url.to_string(),
            tx: Some(tx.clone()),
            abort: task.abort_handle(),
            task: Some(task),
        });
        tx
    }

    fn live(&self) -> usize {
        self.writes.iter().filter(|w| w.tx.is_some()).count()
    }

    /// Whether a failed replica can still be replaced (the whole body is at hand).
    fn can_replace(&self) -> bool {
        self.replay.is_some()
    }

    /// Hands a data chunk to every replica still taking the body; a replica whose write
    /// already failed (its task reports why) drops out.
    async fn send_data(&mut self, chunk: Bytes) {
        if let Some(replay) = &mut self.replay {
            self.replay_bytes += chunk.len();
            if self.replay_bytes <= REPLAY_LIMIT {
                replay.push(chunk.clone());
            } else {
                self.replay = None;
            }
        }
        self.send(|| Chunk::Data(chunk.clone())).await;
    }

    async fn send(&mut self, chunk: impl Fn() -> Chunk) {
        for write in &mut self.writes {
            if let Some(tx) = &write.tx
                && tx.send(chunk()).await.is_err()
            {
                write.tx = None;
            }
        }
    }

    /// Starts a replacement for a failed replica on the next spare volume, with the whole
    /// body; whether there was a spare.
    async fn replace(&mut self) -> bool {
        let (Some(replay), Some((replica, url))) = (self.replay.clone(), self.spares.next()) else { return false };
        let tx = self.spawn(&replica, &url);
        for chunk in replay {
            if tx.send(Chunk::Data(chunk)).await.is_err() {
                return true; // it failed already; its task says why
            }
        }
        let _ = tx.send(Chunk::End).await;
        if let Some(write) = self.writes.last_mut() {
            write.tx = None;
        }
        true
    }

    /// Ends every replica's body and gathers the receipts, replacing failed replicas of a
    /// small body on spare volumes. Returns once every replica has answered, or the quorum
    /// has and the others had [`STRAGGLER_WAIT`] more.
    async fn finish(mut self, quorum: usize, size: u64, sha256: &str) -> Result<Vec<Replica>> {
        self.send(|| Chunk::End).await;
        for write in &mut self.writes {
            write.tx = None;
        }
        let mut pending = futures::stream::FuturesUnordered::new();
        let mut confirmed: Vec<usize> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        let mut straggler_deadline = None;
        loop {
            for (i, write) in self.writes.iter_mut().enumerate() {
                if let Some(task) = write.task.take() {
                    pending.push(async move { (i, task.await) });
                }
            }
            let next = match straggler_deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, pending.next()).await.ok().flatten(),
                None => pending.next().await,
            };
            let Some((i, joined)) = next else { break };
            let outcome = joined.unwrap_or_else(|e| Err(Error::Volume(format!("replica write task: {e}"))));
            match outcome {
                Ok(receipt) if receipt.sha256 == sha256 && receipt.size == size => confirmed.push(i),
                failed => {
                    failures.push(match failed {
                        Ok(receipt) => {
                            format!("{} stored sha256 {} size {}", self.writes[i].url, receipt.sha256, receipt.size)
                        }
                        Err(err) => err.to_string(),
                    });
                    if self.can_replace() {
                        self.replace().await;
                    }
                }
            }
            if confirmed.len() >= quorum && straggler_deadline.is_none() {
                straggler_deadline = Some(tokio::time::Instant::now() + STRAGGLER_WAIT);
            }
        }
        let late = pending.len();
        drop(pending);
        if !failures.is_empty() || late > 0 {
            tracing::warn!(?failures, late, confirmed = confirmed.len(), "replica writes failed");
        }
        if confirmed.len() < quorum {
            return Err(Error::Unavailable(format!(
                "{} of {quorum} replicas confirmed: {}",
                confirmed.len(),
                failures.join("; ")
            )));
        }
        // In the order the writes started: the ring's order, then stand-ins.
        confirmed.sort_unstable();
        Ok(confirmed.into_iter().map(|i| self.writes[i].replica.clone()).collect())
    }
}

/// Streams `body` to the first `replicas` of `placement` (volumes in ring order) and waits
/// until at least `quorum` of them confirm they stored exactly what the gateway hashed. A
/// replica that fails is replaced by the next volume of `placement` while the body is small
/// enough to resend. On a body error, or a body that fails `checks`, every replica write is
/// abandoned before it commits (the volumes discard their temp files); nothing here touches
/// the index.
#[allow(clippy::too_many_arguments)]
pub async fn write<S, E>(
    client: &VolumeClient,
    placement: &[(Replica, String)],
    replicas: usize,
    blob_id: &str,
    meta: &[u8],
    size: Option<u64>,
    quorum: usize,
    checks: &BodyChecks,
    mut body: S,
) -> Result<Written>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if placement.len() < quorum {
        return Err(Error::Unavailable(format!("{} volumes reachable, a write needs {quorum}", placement.len())));
    }
    let (targets, spares) = placement.split_at(replicas.min(placement.len()));
    let spec = BlobSpec { client: client.clone(), id: blob_id.to_string(), meta: meta.to_vec(), size };
    let mut fanout = Fanout::start(spec, targets, spares.to_vec());
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    let mut hasher = checks.checksum.as_ref().map(|expected| Hasher::new(expected.algorithm));
    let mut received = 0u64;
    let streamed: Result<()> = loop {
        let next = match tokio::time::timeout(CLIENT_BODY_IDLE, body.next()).await {
            Ok(next) => next,
            Err(_) => break Err(Error::RequestTimeout),
        };
        match next {
            Some(Ok(chunk)) => {
                md5.update(&chunk);
                sha.update(&chunk);
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(&chunk);
                }
                received += chunk.len() as u64;
                if size.is_some_and(|want| received > want) {
                    break Err(Error::IncompleteBody("body longer than Content-Length".into()));
                }
                if received > checks.max_size {
                    break Err(Error::EntityTooLarge);
                }
                fanout.send_data(chunk).await;
                if fanout.live() < quorum && !fanout.can_replace() {
                    break Err(Error::Unavailable("replicas failed during the upload".into()));
                }
            }
            Some(Err(err)) => break Err(Error::IncompleteBody(err.to_string())),
            None if size.is_some_and(|want| received != want) => {
                break Err(Error::IncompleteBody(format!("got {received} bytes, expected {size:?}")));
            }
            None => break Ok(()),
        }
    };

    let md5: [u8; 16] = md5.finalize().into();
    let checksum = streamed.and_then(|()| {
        if checks.content_md5.is_some_and(|want| want != md5) {
            return Err(Error::BadDigest);
        }
        match (&checks.checksum, hasher) {
            (Some(expected), Some(hasher)) => expected.check(&hasher.finalize()).map(Some),
            _ => Ok(None),
        }
    })?;
    // Only now may the replicas commit (dropping `fanout` on the error paths above stops them).
    let sha256: [u8; 32] = sha.finalize().into();
    let replicas = fanout.finish(quorum, received, &hex::encode(sha256)).await?;
    Ok(Written { size: received, md5, sha256, checksum, replicas })
}

/// A source of a blob's bytes: one replica with its current URL.
#[derive(Debug, Clone)]
pub struct Source {
    /// Volume URL.
    pub url: String,
    /// The replica.
    pub replica: Replica,
}

/// One blob range of a read: a single-blob object is one segment, a multipart object one
/// per part in range.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The blob's replicas.
    pub sources: Vec<Source>,
    /// Blob id.
    pub blob_id: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// The key a read is for, and where to report the damaged copies it meets.
#[derive(Debug, Clone)]
pub struct ReadFor {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The repairer's inbox.
    pub reports: DamageReports,
}

/// Streams the segments in order, each from the first of its sources that answers, failing
/// over to the next source at the current offset. The first segment is opened before this
/// returns, so "no replica readable" is an error the client sees as a status, not a cut body.
pub async fn read(
    client: &VolumeClient,
    segments: Vec<Segment>,
    owner: ReadFor,
) -> Result<ReceiverStream<Result<Bytes>>> {
    let (tx, rx) = mpsc::channel(READ_DEPTH);
    let owner = Arc::new(owner);
    let mut segments = segments.into_iter();
    let Some(first) = segments.next() else { return Ok(ReceiverStream::new(rx)) };
    let mut reader = FailoverReader::new(client, first, owner.clone());
    let stream = reader.open().await?;
    let client = client.clone();
    crate::request_id::spawn(async move {
        let mut current = (reader, stream);
        loop {
            let (mut reader, stream) = current;
            if let Err(err) = reader.pump(stream, &tx).await {
                tracing::error!(blob = %reader.segment.blob_id, %err, "read aborted");
                let _ = tx.send(Err(err)).await;
                return;
            }
            let Some(next) = segments.next().filter(|_| !tx.is_closed()) else { return };
            let mut reader = FailoverReader::new(&client, next, owner.clone());
            match reader.open().await {
                Ok(stream) => current = (reader, stream),
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

struct FailoverReader {
    client: VolumeClient,
    segment: Segment,
    owner: Arc<ReadFor>,
    /// Index (modulo the number of sources) of the source to try next.
    next_source: usize,
    /// Mid-stream fail-overs still allowed; a source that failed may have come back, so
    /// sources are retried in turn, but never forever.
    failovers_left: u32,
    /// Where the next byte comes from.
    offset: u64,
}

impl FailoverReader {
    fn new(client: &VolumeClient, segment: Segment, owner: Arc<ReadFor>) -> Self {
        let offset = segment.start;
        Self { client: client.clone(), segment, owner, next_source: 0, failovers_left: MAX_FAILOVERS, offset }
    }

    /// Opens the next source that answers at the current offset, trying each source once.
    async fn open(&mut self) -> Result<ByteStream> {
        let mut last_error = None;
        for _ in 0..self.segment.sources.len() {
            let source = self.segment.sources[self.next_source % self.segment.sources.len()].clone();
            self.next_source += 1;
            let range = Some((self.offset, self.segment.end));
            match self.client.get(&source.url, source.replica.subvolume, &self.segment.blob_id, range).await {
                Ok(stream) => return Ok(stream),
                Err(err) => {
                    tracing::warn!(url = %source.url, blob = %self.segment.blob_id, %err, "replica unreadable, trying the next");
                    if matches!(err, Error::CorruptReplica(_) | Error::MissingReplica(_)) {
                        self.report(&source);
                    }
                    last_error = Some(err);
                }
            }
        }
        Err(Error::Unavailable(format!(
            "no replica of blob {} could be read: {}",
            self.segment.blob_id,
            last_error.map_or_else(|| "no replicas".to_string(), |e| e.to_string())
        )))
    }

    /// Tells the repairer a copy looks damaged; it checks before it rewrites anything.
    fn report(&self, source: &Source) {
        self.owner.reports.report(Damage {
            blob_id: self.segment.blob_id.clone(),
            bucket: self.owner.bucket.clone(),
            key: self.owner.key.clone(),
            replica: source.replica.clone(),
        });
    }

    /// The source the current stream comes from (the last one opened).
    fn current_source(&self) -> Option<Source> {
        let count = self.segment.sources.len();
        (count > 0).then(|| self.segment.sources[(self.next_source + count - 1) % count].clone())
    }

    async fn pump(&mut self, mut stream: ByteStream, tx: &mpsc::Sender<Result<Bytes>>) -> Result<()> {
        while self.offset < self.segment.end {
            match stream.next().await {
                Some(Ok(chunk)) if !chunk.is_empty() => {
                    let room = (self.segment.end - self.offset) as usize;
                    let chunk = if chunk.len() > room { chunk.slice(..room) } else { chunk };
                    self.offset += chunk.len() as u64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        return Ok(()); // The client went away.
                    }
                }
                Some(Ok(_)) => {}
                failed => {
                    let reason = match failed {
                        Some(Err(err)) => err.to_string(),
                        _ => "ended early".to_string(),
                    };
                    let blob = &self.segment.blob_id;
                    tracing::warn!(%blob, offset = self.offset, %reason, "replica failed mid-stream");
                    // A volume cuts a read at a block that fails its check; one that stalled
                    // or died is down by now and has nothing to repair.
                    if let Some(source) = self.current_source().filter(|s| self.client.health().is_up(&s.url)) {
                        self.report(&source);
                    }
                    if self.failovers_left == 0 {
                        return Err(Error::Unavailable(format!("blob {blob}: too many replica failures")));
                    }
                    self.failovers_left -= 1;
                    metrics::counter!("cairn_read_failovers_total").increment(1);
                    stream = self.open().await?;
                }
            }
        }
        Ok(())
    }
}
