//! Garbage collection as a background job of the cluster (`jobs`): one at a time, progress
//! readable on every gateway while it runs and after. It is safe to interrupt: every step is
//! idempotent (deleting a blob twice is fine; a queue entry goes only after its blob is gone
//! everywhere). The checkpoint is the number of steps below that are complete; a job taken
//! over resumes at the first step not complete, with the cutoffs it was started with. The
//! step it was in runs again: for the queue, expired uploads and tombstones that redoes
//! nothing (what was handled is gone from the index); orphans are listed again.
//!
//! 0. Multipart uploads created more than `--upload-ttl` ago are aborted: their records go
//!    and their parts' blobs are queued (stamped with when they were uploaded: nothing ever
//!    reads a part of an upload in progress, so they are due at once).
//! 1. The GC queue: blobs of overwritten and deleted versions and of aborted or replaced
//!    parts, queued more than `grace` ago, are deleted on their replicas.
//! 2. Orphans, one slice of the blob-id space at a time (docs/design.md, "Memory of a job"):
//!    every subvolume is listed; blob copies older than `grace` that no record names at that place (writes that failed after reaching a volume, copies an interrupted
//!    rebalance left behind) are deleted. The order makes a write in
//!    flight safe whatever the grace: volumes are listed first, then the in-flight registry
//!    is read, then the index. A listed blob's write either still holds its registration,
//!    or committed before releasing it, and so before the index is read.
//! 3. Completed uploads remembered for retried Completes are forgotten after an hour.
//! 4. Tombstones older than `grace` go, blob and record, once no blob of their key is queued
//!    any more: by then every blob of the versions they deleted is gone from every volume
//!    (a queue entry goes only then), so a rebuild cannot resurrect them. A blob whose delete
//!    failed (a volume was down) keeps its key's tombstone until a later run deletes it.
//!    Deleted buckets' entries (and deletion blobs) go by the same rule, once no bucket blob
//!    of the name is queued: an older creation blob would otherwise bring the bucket back.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::jobs::{JobSlot, JobStatus, Progress, from_json};
use super::{AdminApi, Failure, json, read_json};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::in_flight::InFlight;
use crate::index::records::BlobRef;
use crate::index::{BUCKET_KEY, IdSlice, Index, Tombstone};
use crate::time::now_ms;
use crate::volume_client::VolumeClient;

/// Blobs per listing page.
const LIST_PAGE: usize = 1000;
/// Blob copies the orphan phase holds at a time (a few tens of MiB): the id space is cut into
/// slices of about this many referenced copies. Debug builds cut it small so that the tests
/// walk several slices.
const ORPHAN_SLICE_COPIES: u64 = if cfg!(debug_assertions) { 50 } else { 250_000 };
/// Default grace period: an hour, far longer than any single write.
const DEFAULT_GRACE_SECS: u64 = 3600;
/// How long a completed multipart upload is remembered, so a retried Complete gets the same
/// 200 instead of `NoSuchUpload`. SDKs retry within seconds to minutes; an hour covers every
/// retry policy with room to spare, and the records are small.
const COMPLETED_UPLOAD_MEMORY_MS: u64 = 3600 * 1000;

/// `POST /jobs/gc` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct GcRequest {
    /// Only blobs older than this many seconds are touched (default: an hour).
    pub grace_secs: Option<u64>,
    /// Count what would be deleted; delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Progress and outcome of a GC job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GcProgress {
    /// State, times, errors.
    #[serde(flatten)]
    pub status: JobStatus,
    /// Counted only; nothing deleted.
    pub dry_run: bool,
    /// Grace period used.
    pub grace_secs: u64,
    /// Queue entries due.
    pub queue_total: u64,
    /// Queue entries whose blobs are deleted everywhere.
    pub queue_done: u64,
    /// Blobs listed on the volumes.
    pub blobs_listed: u64,
    /// Orphans (unreferenced, older than the grace period) found.
    pub orphans: u64,
    /// Bytes of the orphans.
    pub orphan_bytes: u64,
    /// Tombstones dropped.
    pub tombstones: u64,
    /// Deleted buckets' entries dropped (with their deletion blobs).
    #[serde(default)]
    pub bucket_tombstones: u64,
    /// Incomplete multipart uploads aborted because they were older than `--upload-ttl`.
    #[serde(default)]
    pub uploads_aborted: u64,
    /// Blob replicas deleted (queue, orphans and tombstones).
    pub deleted: u64,
}

impl Progress for GcProgress {
    fn status(&mut self) -> &mut JobStatus {
        &mut self.status
    }

    fn done_of(&self) -> (u64, u64) {
        (self.queue_done, self.queue_total)
    }
}

/// What a GC job runs with, stored with its record to resume it elsewhere.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct GcParams {
    dry_run: bool,
    /// Blobs queued or written before this (unix ms, the starting gateway's clock) go.
    cutoff_ms: u64,
    /// Uploads created before this (unix ms) are aborted.
    upload_cutoff_ms: u64,
}

/// Steps complete (see the module docs), from 0 to 4.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct GcCheckpoint {
    steps_done: u8,
}

pub(super) async fn start(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let body: GcRequest = read_json(req).await?;
    let grace_secs = body.grace_secs.unwrap_or(DEFAULT_GRACE_SECS);
    let params = GcParams {
        dry_run: body.dry_run,
        cutoff_ms: now_ms().saturating_sub(grace_secs.saturating_mul(1000)),
        upload_cutoff_ms: now_ms().saturating_sub(u64::try_from(api.upload_ttl.as_millis()).unwrap_or(u64::MAX)),
    };
    let progress =
        api.gc.begin(GcProgress { dry_run: body.dry_run, grace_secs, ..Default::default() }, &params).await?;
    let job = GcJob::new(api, params, GcCheckpoint::default());
    api.gc.spawn(async move { job.run().await });
    Ok(json(StatusCode::ACCEPTED, &Some(progress)))
}

/// Resumes here the GC whose owner died, if its record still has lease `seen`.
pub(super) async fn resume(api: &AdminApi, seen: u64) -> Result<()> {
    let Some((record, _)) = api.gc.take_over(seen).await? else { return Ok(()) };
    let params: GcParams = from_json(&record.params)?;
    let checkpoint: GcCheckpoint = record.checkpoint.as_deref().map(from_json).transpose()?.unwrap_or_default();
    tracing::info!(from = %record.owner_address, steps_done = checkpoint.steps_done, "GC taken over; resuming it here");
    let job = GcJob::new(api, params, checkpoint);
    api.gc.spawn(async move { job.run().await });
    Ok(())
}

struct GcJob {
    index: Arc<Index>,
    cluster: Cluster,
    volumes: VolumeClient,
    runner: JobSlot<GcProgress>,
    in_flight: InFlight,
    cutoff_ms: u64,
    /// Uploads created before this (unix ms) are aborted.
    upload_cutoff_ms: u64,
    dry_run: bool,
    /// Where it starts.
    resume: GcCheckpoint,
}

impl GcJob {
    fn new(api: &AdminApi, params: GcParams, resume: GcCheckpoint) -> Self {
        GcJob {
            index: api.index.clone(),
            cluster: api.cluster.clone(),
            volumes: api.volumes.clone(),
            runner: api.gc.clone(),
            in_flight: api.in_flight.clone(),
            cutoff_ms: params.cutoff_ms,
            upload_cutoff_ms: params.upload_cutoff_ms,
            dry_run: params.dry_run,
            resume,
        }
    }

    async fn run(&self) -> Result<()> {
        let from = self.resume.steps_done;
        if from < 1 {
            self.expire_uploads().await?;
            self.step_done(1);
        }
        if from < 2 {
            self.collect_queue().await?;
            self.step_done(2);
        }
        if from < 3 {
            self.collect_orphans().await?;
            self.step_done(3);
        }
        if from < 4 {
            if !self.dry_run {
                let before = now_ms().saturating_sub(COMPLETED_UPLOAD_MEMORY_MS);
                self.index.forget_completed(before).await?;
            }
            self.step_done(4);
        }
        self.drop_tombstones().await
    }

    fn step_done(&self, steps_done: u8) {
        self.runner.advance(&GcCheckpoint { steps_done }, |_| {});
    }

    /// Deletes every replica of `blob`; whether all are gone (an unknown volume counts as
    /// failed: its blob may still be there).
    async fn delete_everywhere(&self, blob: &BlobRef) -> bool {
        let mut all = true;
        for replica in &blob.replicas {
            let Some(url) = self.cluster.url_of(&replica.volume) else {
                all = false;
                continue;
            };
            match self.volumes.delete(&url, replica.subvolume, &blob.id).await {
                Ok(()) => self.runner.update(|p| p.deleted += 1),
                Err(err) => {
                    self.runner.failed(&err);
                    all = false;
                }
            }
        }
        all
    }

    async fn expire_uploads(&self) -> Result<()> {
        let cutoff = self.upload_cutoff_ms;
        let expired = self.index.uploads_before(cutoff).await?;
        for (bucket, key, upload_id) in expired {
            let aborted = self.dry_run || self.index.expire_upload(&bucket, &key, &upload_id).await?;
            if aborted {
                self.runner.update(|p| p.uploads_aborted += 1);
            }
        }
        Ok(())
    }

    async fn collect_queue(&self) -> Result<()> {
        let cutoff = self.cutoff_ms;
        // Counted first, so the progress has a total; walked page by page, so memory does not
        // grow with the queue.
        let mut due = 0u64;
        let mut pages = self.index.gc_due(cutoff);
        while let Some(page) = pages.next_page().await? {
            due += page.len() as u64;
        }
        // Resumed, the entries already collected are gone from the queue; a dry run counts
        // them all again.
        let dry_run = self.dry_run;
        self.runner.update(|p| {
            if dry_run {
                p.queue_done = 0;
            }
            p.queue_total = p.queue_done + due;
        });
        let mut pages = self.index.gc_due(cutoff);
        while let Some(page) = pages.next_page().await? {
            for queued in page {
                if self.dry_run {
                    self.runner.update(|p| p.queue_done += 1);
                    continue;
                }
                if self.delete_everywhere(&queued.entry.blob).await {
                    self.index.gc_remove(&queued.queue_key).await?;
                    self.runner.update(|p| p.queue_done += 1);
                }
            }
        }
        Ok(())
    }

    async fn collect_orphans(&self) -> Result<()> {
        // Resumed, the volumes are listed again.
        self.runner.update(|p| {
            p.blobs_listed = 0;
            p.orphans = 0;
            p.orphan_bytes = 0;
        });
        // One slice of the blob-id space at a time, so the job holds the listed and the
        // referenced copies of a slice, never of the whole cluster: one more walk of the index
        // per slice is the price.
        let slices = self.index.referenced_copy_count().await?.div_ceil(ORPHAN_SLICE_COPIES);
        for slice in IdSlice::split(u32::try_from(slices).unwrap_or(u32::MAX)) {
            self.collect_orphans_in(&slice).await?;
        }
        Ok(())
    }

    async fn collect_orphans_in(&self, slice: &IdSlice) -> Result<()> {
        // List first, read the index second: see the module docs.
        let mut candidates = Vec::new();
        let membership = self.cluster.membership();
        for volume in &membership.volumes {
            for subvolume in 0..volume.subvolumes {
                // Listing is in id order: from the slice's start to its end.
                let mut after = slice.from.clone();
                loop {
                    let page = self.volumes.list(&volume.url, subvolume, after.as_deref(), LIST_PAGE).await;
                    let (blobs, next) = match page {
                        Ok(page) => page,
                        Err(err) => {
                            self.runner.failed(&err);
                            break;
                        }
                    };
                    let past_end = blobs.last().is_some_and(|last| slice.ends_before(&last.id));
                    let blobs: Vec<_> = blobs.into_iter().filter(|b| slice.contains(&b.id)).collect();
                    self.runner.update(|p| p.blobs_listed += blobs.len() as u64);
                    for blob in blobs.into_iter().filter(|b| b.written_at_ms < self.cutoff_ms) {
                        candidates.push((volume.id.clone(), volume.url.clone(), subvolume, blob.id, blob.data_len));
                    }
                    match next {
                        Some(next) if !past_end => after = Some(next),
                        _ => break,
                    }
                }
            }
        }
        let in_flight = self.in_flight.blob_ids().await?;
        let referenced = self.index.referenced_copies(slice).await?;
        let orphans = candidates.into_iter().filter(|(volume, _, subvolume, id, _)| {
            !in_flight.contains(id) && !referenced.contains(id, volume, *subvolume)
        });
        for (_, url, subvolume, id, size) in orphans {
            self.runner.update(|p| {
                p.orphans += 1;
                p.orphan_bytes += size;
            });
            if self.dry_run {
                continue;
            }
            match self.volumes.delete(&url, subvolume, &id).await {
                Ok(()) => self.runner.update(|p| p.deleted += 1),
                Err(err) => self.runner.failed(&err),
            }
        }
        Ok(())
    }

    async fn drop_tombstones(&self) -> Result<()> {
        // The clock is in microseconds, the cutoff in milliseconds. Whether a blob of the key
        // is still queued is asked by `drop_tombstone`, under the commit lock.
        let before_ts = self.cutoff_ms.saturating_mul(1000);
        if self.dry_run {
            // Resumed, a dry run counts them all again (a real one finds the dropped ones gone).
            self.runner.update(|p| {
                p.tombstones = 0;
                p.bucket_tombstones = 0;
            });
        }
        // Tombstones are current entries; records of versions deleted by id, noncurrent rows.
        for mut pages in [self.index.object_pages(None), self.index.version_pages()] {
            while let Some(page) = pages.next_page().await? {
                for tombstone in page.into_iter().filter_map(|entry| Tombstone::written_before(entry, before_ts)) {
                    self.drop_tombstone(tombstone).await?;
                }
            }
        }
        let tombstones = self.index.bucket_tombstones_before(before_ts).await?;
        for tombstone in tombstones {
            if self.dry_run {
                let name = tombstone.name.clone();
                if !self.index.gc_queued(&name, BUCKET_KEY).await? {
                    self.runner.update(|p| p.bucket_tombstones += 1);
                }
                continue;
            }
            let dropped = {
                let t = tombstone.clone();
                self.index.drop_bucket_tombstone(&t).await?
            };
            if dropped {
                self.delete_everywhere(&tombstone.blob).await;
                self.runner.update(|p| p.bucket_tombstones += 1);
            }
        }
        Ok(())
    }

    async fn drop_tombstone(&self, tombstone: Tombstone) -> Result<()> {
        if self.dry_run {
            if !self.index.gc_queued(&tombstone.bucket, &tombstone.key).await? {
                self.runner.update(|p| p.tombstones += 1);
            }
            return Ok(());
        }
        // The record goes first: a crash in between leaves an orphan blob, which the next
        // run collects, never a record without its blob.
        if self.index.drop_tombstone(&tombstone).await? {
            self.delete_everywhere(&tombstone.blob).await;
            self.runner.update(|p| p.tombstones += 1);
        }
        Ok(())
    }
}
