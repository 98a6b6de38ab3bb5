//! Rebalance as a background job: every blob whose record disagrees with the ring is copied
//! to the volumes the ring names (volume to volume, checked against the source's SHA-256),
//! the record is switched under the commit lock unless the object changed meanwhile, and
//! only then are the old copies deleted. Interrupted at any point, nothing is lost: before
//! the switch the record still names the old copies, after it the new ones; a rerun finishes
//! the work, and copies left behind are orphans for GC.
//!
//! It walks every entry that names blobs: live objects (what `GET /status` counts as
//! objects), deleted keys whose tombstone GC has not dropped yet, buckets, and deleted buckets
//! whose entry GC has not dropped yet; the progress counts each kind, so its total is never
//! taken for an object count. Parts of uploads in progress are counted but not moved: Complete
//! builds the object from the part records it read before taking the commit lock, so a part
//! moved meanwhile would leave the object naming copies rebalance deleted. They move with
//! their object once the upload completes (or go when it is aborted).
//!
//! Entries are walked in order (objects by bucket and key, then buckets), several at once; the
//! checkpoint is the last entry before which every entry is done. A rebalance taken over by
//! another gateway (`jobs`) resumes after it, with its parameters: the entries done after the
//! checkpoint (at most [`CONCURRENCY`] - 1 ahead of it, and those done since the dead owner's
//! last renewal) are looked at again and found in place, and the blob that was moving when the
//! owner died is copied again (or its copies left for GC, if the switch happened).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::jobs::{JobSlot, JobStatus, Progress, from_json};
use super::{AdminApi, Failure, json, read_json};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::in_flight::InFlight;
use crate::index::records::{BlobRef, BucketEntry, CommitOrder, ObjectEntry, Replica};
use crate::index::{BUCKET_KEY, Index};
use crate::volume_client::VolumeClient;

/// Objects moved at once: enough to keep every volume busy, few enough to leave room for
/// client traffic.
const CONCURRENCY: usize = 8;

/// The blobs of one key's entry (or of a bucket), each with the bytes moving it costs.
/// Blobs of an entry, each with its data bytes and its commit order (what its copies log:
/// what the index keeps with it; order 0 for parts, which are not logged).
type Blobs = Vec<(BlobRef, u64, CommitOrder)>;

/// The blob of every part of every upload in progress, with the upload's bucket and key.
async fn upload_parts(index: &Index) -> Result<Vec<(String, String, BlobRef)>> {
    let mut out = Vec::new();
    for (bucket, key, upload_id) in index.uploads_before(u64::MAX).await? {
        let (parts, _) = index.parts(&upload_id, 0, usize::MAX).await?;
        out.extend(parts.into_iter().map(|part| (bucket.clone(), key.clone(), part.blob)));
    }
    Ok(out)
}

/// `POST /jobs/rebalance` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct RebalanceRequest {
    /// Count what would move; move nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Copy budget in MB/s; none = as fast as the volumes go.
    pub rate_mb_s: Option<f64>,
}

/// Progress and outcome of a rebalance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RebalanceProgress {
    /// State, times, errors.
    #[serde(flatten)]
    pub status: JobStatus,
    /// Only counted.
    pub dry_run: bool,
    /// Entries to look at: `objects + deleted_keys + buckets + deleted_buckets`.
    pub entries_total: u64,
    /// Looked at.
    pub entries_done: u64,
    /// Entries with at least one misplaced blob.
    pub entries_misplaced: u64,
    /// Of the entries: live objects (`GET /status`'s `objects` when the walk began).
    pub objects: u64,
    /// Of the entries: deleted keys, whose tombstone blob stays until GC drops it.
    pub deleted_keys: u64,
    /// Of the entries: buckets (`GET /status`'s `buckets`), each with its bucket blob.
    pub buckets: u64,
    /// Of the entries: deleted buckets, whose deletion blob stays until GC drops it.
    pub deleted_buckets: u64,
    /// Parts of multipart uploads in progress. Not entries: they are not moved (see the
    /// module docs).
    pub upload_parts: u64,
    /// Of those parts, the ones not where the ring places them.
    pub upload_parts_misplaced: u64,
    /// Blobs moved (or, in a dry run, to move).
    pub blobs_moved: u64,
    /// Bytes copied (or, in a dry run, to copy; manifests and tombstones count 0).
    pub bytes_moved: u64,
    /// Blobs whose object changed during the copy; left for the next run.
    pub skipped_changed: u64,
}

impl Progress for RebalanceProgress {
    fn status(&mut self) -> &mut JobStatus {
        &mut self.status
    }

    fn done_of(&self) -> (u64, u64) {
        (self.entries_done, self.entries_total)
    }
}

/// What a rebalance runs with, stored with its record to resume it elsewhere.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct RebalanceParams {
    dry_run: bool,
    rate_bytes_s: Option<f64>,
}

/// Where an entry is in the walk: objects (0) by bucket and key, then buckets (1) by name.
type Position = (u8, String, String);

/// Every entry up to `after` is done, `done` of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RebalanceCheckpoint {
    after: Option<Position>,
    done: u64,
}

pub(super) async fn start(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let body: RebalanceRequest = read_json(req).await?;
    let params =
        RebalanceParams { dry_run: body.dry_run, rate_bytes_s: body.rate_mb_s.filter(|r| *r > 0.0).map(|r| r * 1e6) };
    let progress =
        api.rebalance.begin(RebalanceProgress { dry_run: body.dry_run, ..Default::default() }, &params).await?;
    let job = RebalanceJob::new(api, params, RebalanceCheckpoint::default());
    api.rebalance.spawn(async move { job.run().await });
    Ok(json(StatusCode::ACCEPTED, &Some(progress)))
}

/// Resumes here the rebalance whose owner died, if its record still has lease `seen`.
pub(super) async fn resume(api: &AdminApi, seen: u64) -> Result<()> {
    let Some((record, _)) = api.rebalance.take_over(seen).await? else { return Ok(()) };
    let params: RebalanceParams = from_json(&record.params)?;
    let checkpoint: RebalanceCheckpoint = record.checkpoint.as_deref().map(from_json).transpose()?.unwrap_or_default();
    tracing::info!(from = %record.owner_address, done = checkpoint.done, "rebalance taken over; resuming it here");
    let job = RebalanceJob::new(api, params, checkpoint);
    api.rebalance.spawn(async move { job.run().await });
    Ok(())
}

/// The entries done so far: every one before `next`, and some after it; and the positions
/// of the entries walked but not yet behind the watermark (at most [`CONCURRENCY`] and those
/// done ahead of it), so memory does not grow with the walk.
#[derive(Debug, Default)]
struct Watermark {
    next: usize,
    ahead: std::collections::BTreeSet<usize>,
    positions: std::collections::BTreeMap<usize, Position>,
}

impl Watermark {
    /// Notes that entry `i` of the walk is at `position`.
    fn walked(&mut self, i: usize, position: Position) {
        self.positions.insert(i, position);
    }

    /// Notes entry `i` done; if that moved the watermark, the last entry behind it (every entry
    /// up to it is done) and how many entries are behind it.
    fn done(&mut self, i: usize) -> Option<(Position, usize)> {
        self.ahead.insert(i);
        let before = self.next;
        while self.ahead.remove(&self.next) {
            self.next += 1;
        }
        if self.next == before {
            return None;
        }
        let behind = self.positions.split_off(&self.next);
        let last = std::mem::replace(&mut self.positions, behind).pop_last()?.1;
        Some((last, self.next))
    }
}

/// What a walk will meet, counted before it starts.
#[derive(Debug, Default)]
struct Census {
    objects: u64,
    deleted_keys: u64,
    buckets: u64,
    deleted_buckets: u64,
    /// Entries after the checkpoint.
    left: u64,
}

/// The blobs of an object entry with their sizes (manifests, tombstones, tags and lock blobs
/// count 0 bytes) and commit orders.
fn entry_blobs(entry: &ObjectEntry) -> Blobs {
    match entry {
        ObjectEntry::Live(record) => {
            let own = CommitOrder::of(entry);
            let data: Blobs = if record.parts.is_empty() {
                vec![(record.blob.clone(), record.size, own)]
            } else {
                std::iter::once((record.blob.clone(), 0, own))
                    .chain(record.parts.iter().map(|p| (p.blob.clone(), p.size, CommitOrder::plain(0))))
                    .collect()
            };
            let changes = record.changes();
            let changes = changes.map(|change| (change.blob.clone(), 0, CommitOrder::plain(change.ts)));
            data.into_iter().chain(changes).collect()
        }
        ObjectEntry::Deleted { blob, .. } => vec![(blob.clone(), 0, CommitOrder::of(entry))],
    }
}

struct RebalanceJob {
    index: Arc<Index>,
    cluster: Cluster,
    volumes: VolumeClient,
    slot: JobSlot<RebalanceProgress>,
    in_flight: InFlight,
    replicas: usize,
    dry_run: bool,
    rate_bytes_s: Option<f64>,
    resume: RebalanceCheckpoint,
    watermark: std::sync::Mutex<Watermark>,
    /// Bytes moved before this run began (a job taken over), for the rate.
    bytes_before: std::sync::atomic::AtomicU64,
}

impl RebalanceJob {
    fn new(api: &AdminApi, params: RebalanceParams, resume: RebalanceCheckpoint) -> Self {
        RebalanceJob {
            index: api.index.clone(),
            cluster: api.cluster.clone(),
            volumes: api.volumes.clone(),
            slot: api.rebalance.clone(),
            in_flight: api.in_flight.clone(),
            replicas: api.replicas,
            dry_run: params.dry_run,
            rate_bytes_s: params.rate_bytes_s,
            resume,
            watermark: std::sync::Mutex::default(),
            bytes_before: std::sync::atomic::AtomicU64::new(0),
        }
    }

    async fn run(&self) -> Result<()> {
        let parts = upload_parts(&self.index).await?;
        let census = self.census().await?;
        let mut misplaced_parts = 0;
        for (bucket, key, blob) in &parts {
            misplaced_parts += u64::from(self.misplaced(bucket, key, blob)?);
        }
        let done = self.resume.done;
        self.slot.update(|p| {
            p.entries_done = done;
            p.entries_total = done + census.left;
            p.objects = census.objects;
            p.deleted_keys = census.deleted_keys;
            p.buckets = census.buckets;
            p.deleted_buckets = census.deleted_buckets;
            p.upload_parts = parts.len() as u64;
            p.upload_parts_misplaced = misplaced_parts;
        });
        let started = Instant::now();
        self.bytes_before.store(self.slot.last().map_or(0, |p| p.bytes_moved), std::sync::atomic::Ordering::Relaxed);
        self.entries()
            .enumerate()
            .map(|(i, entry)| entry.map(|entry| (i, entry)))
            .try_for_each_concurrent(CONCURRENCY, |(i, (position, blobs))| {
                self.watermark.lock().unwrap_or_else(std::sync::PoisonError::into_inner).walked(i, position.clone());
                let (_, bucket, key) = position;
                self.rebalance_entry(i, bucket, key, blobs, started)
            })
            .await
    }

    /// Counts the entries of each kind, and those after the checkpoint, a page at a time.
    async fn census(&self) -> Result<Census> {
        let mut census = Census::default();
        let after = self.resume.after.as_ref();
        let mut pages = self.index.object_pages(None);
        while let Some(page) = pages.next_page().await? {
            for (bucket, key, entry) in page {
                match entry {
                    ObjectEntry::Live(_) => census.objects += 1,
                    ObjectEntry::Deleted { .. } => census.deleted_keys += 1,
                }
                census.left += u64::from(after.is_none_or(|after| (0, bucket, key) > *after));
            }
        }
        for (name, entry) in self.index.bucket_entries().await? {
            match entry {
                BucketEntry::Live(_) => census.buckets += 1,
                BucketEntry::Deleted { .. } => census.deleted_buckets += 1,
            }
            census.left += u64::from(after.is_none_or(|after| (1, name, BUCKET_KEY.to_string()) > *after));
        }
        Ok(census)
    }

    /// The walk, strictly after the checkpoint: object entries by bucket and key, a page at a
    /// time, then buckets by name (a bucket's blobs are placed and filed under the empty key).
    fn entries(&self) -> impl futures::Stream<Item = Result<(Position, Blobs)>> + '_ {
        let after = self.resume.after.clone();
        let objects = match &after {
            Some((1, ..)) => None,
            Some((_, bucket, key)) => Some(self.index.object_pages(Some((bucket, key)))),
            None => Some(self.index.object_pages(None)),
        };
        let object_entries = futures::stream::try_unfold(objects, |mut pages| async move {
            let Some(walk) = pages.as_mut() else { return Ok::<_, crate::Error>(None) };
            Ok(walk.next_page().await?.map(|page| (page, pages)))
        })
        .map_ok(|page| {
            futures::stream::iter(
                page.into_iter().map(|(bucket, key, entry)| Ok(((0, bucket, key), entry_blobs(&entry)))),
            )
        })
        .try_flatten();
        let bucket_entries = futures::stream::once(self.index.bucket_entries())
            .map_ok(move |buckets| {
                let after = after.clone();
                let entries = buckets.into_iter().filter_map(move |(name, entry)| {
                    let position = (1, name, BUCKET_KEY.to_string());
                    let blobs = entry
                        .blob()
                        .map(|blob| (blob.clone(), 0, CommitOrder::plain(entry.ts())))
                        .into_iter()
                        .collect();
                    after.as_ref().is_none_or(|after| position > *after).then_some(Ok((position, blobs)))
                });
                futures::stream::iter(entries)
            })
            .try_flatten();
        object_entries.chain(bucket_entries)
    }

    /// Moves the blobs of one key's entry (or a bucket's), the `i`-th of the walk, that are
    /// not where the ring wants them.
    async fn rebalance_entry(
        &self,
        i: usize,
        bucket: String,
        key: String,
        blobs: Blobs,
        started: Instant,
    ) -> Result<()> {
        let targets: Vec<Replica> =
            self.cluster.ring_place(&bucket, &key, self.replicas)?.into_iter().map(|(r, _)| r).collect();
        let mut misplaced = false;
        for blob in blobs {
            misplaced |= self.place_blob(&bucket, &key, blob, &targets, started).await;
        }
        if key != BUCKET_KEY {
            // The key's noncurrent versions belong where its current one does.
            let mut noncurrent = self.index.noncurrent_pages(&bucket, &key);
            loop {
                match noncurrent.next_page().await {
                    Ok(Some(versions)) => {
                        for blob in versions.iter().flat_map(entry_blobs) {
                            misplaced |= self.place_blob(&bucket, &key, blob, &targets, started).await;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        self.slot.failed(&err);
                        break;
                    }
                }
            }
        }
        let count = |p: &mut RebalanceProgress| {
            p.entries_done += 1;
            p.entries_misplaced += u64::from(misplaced);
        };
        let behind = self.watermark.lock().unwrap_or_else(std::sync::PoisonError::into_inner).done(i);
        match behind {
            Some((after, next)) => {
                let checkpoint = RebalanceCheckpoint { after: Some(after), done: self.resume.done + next as u64 };
                self.slot.advance(&checkpoint, count);
            }
            None => self.slot.update(count),
        }
        Ok(())
    }

    /// Moves one blob of `bucket`/`key` (with its size and commit order) to `targets` unless it
    /// is there (in a dry run, counts it); whether it was misplaced.
    async fn place_blob(
        &self,
        bucket: &str,
        key: &str,
        (blob, size, commit): (BlobRef, u64, CommitOrder),
        targets: &[Replica],
        started: Instant,
    ) -> bool {
        if blob.replicas.iter().collect::<HashSet<_>>() == targets.iter().collect::<HashSet<_>>() {
            return false;
        }
        if self.dry_run {
            self.slot.update(|p| {
                p.blobs_moved += 1;
                p.bytes_moved += size;
            });
            return true;
        }
        match self.move_blob(bucket, key, &blob, commit, targets).await {
            Ok(true) => self.slot.update(|p| {
                p.blobs_moved += 1;
                p.bytes_moved += size;
            }),
            Ok(false) => self.slot.update(|p| p.skipped_changed += 1),
            Err(err) => self.slot.failed(&err),
        }
        self.pace(started).await;
        true
    }

    /// Whether `blob` of `bucket`/`key` is anywhere but where the ring places it.
    fn misplaced(&self, bucket: &str, key: &str, blob: &BlobRef) -> Result<bool> {
        let targets = self.cluster.ring_place(bucket, key, self.replicas)?;
        let wanted: HashSet<&Replica> = targets.iter().map(|(replica, _)| replica).collect();
        Ok(blob.replicas.iter().collect::<HashSet<_>>() != wanted)
    }

    /// Keeps the copy rate under the budget.
    async fn pace(&self, started: Instant) {
        let Some(rate) = self.rate_bytes_s else { return };
        let before = self.bytes_before.load(std::sync::atomic::Ordering::Relaxed);
        let moved = self.slot.last().map_or(0, |p| p.bytes_moved).saturating_sub(before) as f64;
        let due = Duration::from_secs_f64(moved / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }

    fn url(&self, replica: &Replica) -> Result<String> {
        self.cluster.url_of(&replica.volume).ok_or_else(|| Error::Volume(format!("unknown volume {}", replica.volume)))
    }

    /// Copies `blob` (committed as `commit` says) onto `targets` it is not on yet, switches
    /// the record, deletes the copies the ring no longer wants. `false` if the object changed
    /// meanwhile.
    async fn move_blob(
        &self,
        bucket: &str,
        key: &str,
        blob: &BlobRef,
        commit: CommitOrder,
        targets: &[Replica],
    ) -> Result<bool> {
        // The new copies are in no record until the switch: hide them from GC until then.
        let _in_flight = self.in_flight.register(&blob.id).await?;
        let record = crate::commit_log::record(&blob.id, commit);
        for target in targets.iter().filter(|t| !blob.replicas.contains(t)) {
            let to = self.url(target)?;
            let mut copied = false;
            let mut last_error = None;
            for source in &blob.replicas {
                let from = self.url(source)?;
                match self.volumes.copy(&from, source.subvolume, &to, target.subvolume, &record).await {
                    Ok(_) => {
                        copied = true;
                        break;
                    }
                    Err(err) => last_error = Some(err),
                }
            }
            if !copied {
                return Err(last_error.unwrap_or_else(|| Error::Volume(format!("blob {} has no replicas", blob.id))));
            }
        }
        let switched = self.index.move_blob(bucket, key, &blob.id, targets).await?;
        if !switched {
            // The copies just made are orphans now; GC takes them.
            return Ok(false);
        }
        for old in blob.replicas.iter().filter(|r| !targets.contains(r)) {
            let url = self.url(old)?;
            if let Err(err) = self.volumes.delete(&url, old.subvolume, &blob.id).await {
                // The record no longer names it: an orphan for GC, not a loss.
                self.slot.failed(&err);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(i: usize) -> Position {
        (0, "b".into(), format!("k{i}"))
    }

    /// The checkpoint names the last entry before which all are done, whatever order they
    /// finish in, and positions behind it are let go.
    #[test]
    fn watermark_moves_over_entries_done_out_of_order_and_forgets_them() {
        let mut watermark = Watermark::default();
        for i in 0..5 {
            watermark.walked(i, at(i));
        }
        assert_eq!(watermark.done(1), None);
        assert_eq!(watermark.done(2), None);
        assert_eq!(watermark.done(0), Some((at(2), 3)));
        assert_eq!(watermark.positions.keys().copied().collect::<Vec<_>>(), [3, 4]);
        watermark.walked(5, at(5));
        assert_eq!(watermark.done(4), None);
        assert_eq!(watermark.done(3), Some((at(4), 5)));
        assert_eq!(watermark.done(5), Some((at(5), 6)));
        assert!(watermark.positions.is_empty() && watermark.ahead.is_empty());
    }
}
