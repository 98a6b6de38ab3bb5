//! Moving object bytes between a client stream and several replicas at once.
//!
//! Writes fan one body out to every replica through small bounded channels, so memory per
//! upload is a few chunks whatever the object size, and the slowest replica sets the pace.
//! Reads stream from one replica and, if it fails mid-way, continue from the next replica at
//! the same offset; a full read is checked against the recorded SHA-256 and its last chunk is
//! held back until the check passes, so a corrupt replica never yields a complete body.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::checksum::{Expected, Hasher};
use crate::error::{Error, Result};
use crate::index::records::Replica;
use crate::volume_client::{ByteStream, VolumeClient};

/// Chunks in flight per replica during a write; bounds memory per upload.
const WRITE_DEPTH: usize = 8;
/// Chunks buffered between a volume read and the client.
const READ_DEPTH: usize = 4;
/// Mid-stream fail-overs one read may make.
const MAX_FAILOVERS: u32 = 8;

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

/// Streams `body` to every target and waits until at least `quorum` of them confirm they
/// stored exactly what the gateway hashed. On a body error, or a body that fails `checks`,
/// every replica write is aborted before it commits (the volumes discard their temp files);
/// nothing here touches the index.
#[allow(clippy::too_many_arguments)]
pub async fn write<S, E>(
    client: &VolumeClient,
    targets: &[(Replica, String)],
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
    let mut senders = Vec::with_capacity(targets.len());
    let mut tasks = Vec::with_capacity(targets.len());
    for (replica, url) in targets {
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(WRITE_DEPTH);
        let (client, url, id, meta, subvolume) =
            (client.clone(), url.clone(), blob_id.to_string(), meta.to_vec(), replica.subvolume);
        tasks.push(tokio::spawn(async move {
            client.put(&url, subvolume, &id, &meta, size, reqwest::Body::wrap_stream(ReceiverStream::new(rx))).await
        }));
        senders.push(Some(tx));
    }

    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    let mut hasher = checks.checksum.as_ref().map(|expected| Hasher::new(expected.algorithm));
    let mut received = 0u64;
    let streamed: Result<()> = loop {
        match body.next().await {
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
                for slot in &mut senders {
                    if let Some(tx) = slot
                        && tx.send(Ok(chunk.clone())).await.is_err()
                    {
                        // That replica's PUT already failed; its task reports why.
                        *slot = None;
                    }
                }
                if senders.iter().filter(|s| s.is_some()).count() < quorum {
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
    let verified = streamed.and_then(|()| {
        if checks.content_md5.is_some_and(|want| want != md5) {
            return Err(Error::BadDigest);
        }
        match (&checks.checksum, hasher) {
            (Some(expected), Some(hasher)) => expected.check(&hasher.finalize()).map(Some),
            _ => Ok(None),
        }
    });
    let checksum = match verified {
        Ok(checksum) => checksum,
        Err(err) => {
            abort(senders, tasks).await;
            return Err(err);
        }
    };
    drop(senders);

    let sha256: [u8; 32] = sha.finalize().into();
    let expected_sha = hex::encode(sha256);
    let mut confirmed = Vec::with_capacity(targets.len());
    let mut failures = Vec::new();
    for (task, (replica, url)) in tasks.into_iter().zip(targets) {
        match task.await {
            Ok(Ok(receipt)) if receipt.sha256 == expected_sha && receipt.size == received => {
                confirmed.push(replica.clone())
            }
            Ok(Ok(receipt)) => failures.push(format!("{url} stored sha256 {} size {}", receipt.sha256, receipt.size)),
            Ok(Err(err)) => failures.push(err.to_string()),
            Err(err) => failures.push(format!("{url}: {err}")),
        }
    }
    if !failures.is_empty() {
        tracing::warn!(?failures, confirmed = confirmed.len(), "replica writes failed");
    }
    if confirmed.len() < quorum {
        return Err(Error::Unavailable(format!(
            "{} of {quorum} replicas confirmed: {}",
            confirmed.len(),
            failures.join("; ")
        )));
    }
    Ok(Written { size: received, md5, sha256, checksum, replicas: confirmed })
}

/// Makes every replica write fail: an error item breaks the volume connection, so no
/// replica commits a prefix of the body.
async fn abort<T>(
    senders: Vec<Option<mpsc::Sender<Result<Bytes, std::io::Error>>>>,
    tasks: Vec<tokio::task::JoinHandle<T>>,
) {
    for tx in senders.into_iter().flatten() {
        let _ = tx.send(Err(std::io::Error::other("upload aborted"))).await;
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// A source of a blob's bytes: one replica with its current URL.
#[derive(Debug, Clone)]
pub struct Source {
    /// Volume URL.
    pub url: String,
    /// Subvolume on that volume.
    pub subvolume: u32,
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
    /// The blob's SHA-256, when the range is the whole blob: checked before the segment's
    /// last chunk is released, so a corrupt replica never completes a body.
    pub verify: Option<[u8; 32]>,
}

/// Streams the segments in order, each from the first of its sources that answers, failing
/// over to the next source at the current offset. The first segment is opened before this
/// returns, so "no replica readable" is an error the client sees as a status, not a cut body.
pub async fn read(client: &VolumeClient, segments: Vec<Segment>) -> Result<ReceiverStream<Result<Bytes>>> {
    let (tx, rx) = mpsc::channel(READ_DEPTH);
    let mut segments = segments.into_iter();
    let Some(first) = segments.next() else { return Ok(ReceiverStream::new(rx)) };
    let mut reader = FailoverReader::new(client, first);
    let stream = reader.open().await?;
    let client = client.clone();
    tokio::spawn(async move {
        let mut current = (reader, stream);
        loop {
            let (mut reader, stream) = current;
            if let Err(err) = reader.pump(stream, &tx).await {
                tracing::error!(blob = %reader.segment.blob_id, %err, "read aborted");
                let _ = tx.send(Err(err)).await;
                return;
            }
            let Some(next) = segments.next().filter(|_| !tx.is_closed()) else { return };
            let mut reader = FailoverReader::new(&client, next);
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
    /// Index (modulo the number of sources) of the source to try next.
    next_source: usize,
    /// Mid-stream fail-overs still allowed; a source that failed may have come back, so
    /// sources are retried in turn, but never forever.
    failovers_left: u32,
    /// Where the next byte comes from.
    offset: u64,
}

impl FailoverReader {
    fn new(client: &VolumeClient, segment: Segment) -> Self {
        let offset = segment.start;
        Self { client: client.clone(), segment, next_source: 0, failovers_left: MAX_FAILOVERS, offset }
    }

    /// Opens the next source that answers at the current offset, trying each source once.
    async fn open(&mut self) -> Result<ByteStream> {
        let mut last_error = None;
        let (sources, id, end) = (&self.segment.sources, &self.segment.blob_id, self.segment.end);
        for _ in 0..sources.len() {
            let source = &sources[self.next_source % sources.len()];
            self.next_source += 1;
            match self.client.get(&source.url, source.subvolume, id, Some((self.offset, end))).await {
                Ok(stream) => return Ok(stream),
                Err(err) => {
                    tracing::warn!(url = %source.url, blob = %id, %err, "replica unreadable, trying the next");
                    last_error = Some(err);
                }
            }
        }
        Err(Error::Unavailable(format!(
            "no replica of blob {} could be read: {}",
            id,
            last_error.map_or_else(|| "no replicas".to_string(), |e| e.to_string())
        )))
    }

    async fn pump(&mut self, mut stream: ByteStream, tx: &mpsc::Sender<Result<Bytes>>) -> Result<()> {
        let verify = self.segment.verify;
        let mut sha = verify.map(|_| Sha256::new());
        let mut held: Option<Bytes> = None;
        while self.offset < self.segment.end {
            match stream.next().await {
                Some(Ok(chunk)) if !chunk.is_empty() => {
                    let room = (self.segment.end - self.offset) as usize;
                    let chunk = if chunk.len() > room { chunk.slice(..room) } else { chunk };
                    self.offset += chunk.len() as u64;
                    if let Some(sha) = sha.as_mut() {
                        sha.update(&chunk);
                    }
                    if let Some(previous) = held.replace(chunk)
                        && tx.send(Ok(previous)).await.is_err()
                    {
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
                    if self.failovers_left == 0 {
                        return Err(Error::Unavailable(format!("blob {blob}: too many replica failures")));
                    }
                    self.failovers_left -= 1;
                    stream = self.open().await?;
                }
            }
        }
        if let (Some(sha), Some(expected)) = (sha, verify) {
            let actual: [u8; 32] = sha.finalize().into();
            if actual != expected {
                return Err(Error::Volume(format!(
                    "blob {} failed its SHA-256 check; replica needs repair",
                    self.segment.blob_id
                )));
            }
        }
        if let Some(last) = held {
            let _ = tx.send(Ok(last)).await;
        }
        Ok(())
    }
}
