//! Lifecycle as a background job of the cluster (`jobs`): one at a time, started by the
//! gateways' schedulers once a lifecycle day (`--lifecycle-day-secs`, a day by default) while
//! some bucket has rules, or on demand (`cairn-admin lifecycle run`), progress readable on
//! every gateway.
//!
//! For each bucket with enabled rules it walks, a page at a time, the current versions, then
//! the noncurrent ones, then the incomplete uploads, and does what the rules say through the
//! same paths as S3 requests: an expired current version is deleted as DeleteObject without a
//! version id deletes it (a tombstone, or a delete marker in a versioned bucket); an expired
//! noncurrent version, or a delete marker left alone, as DeleteObject with its version id,
//! never bypassing GOVERNANCE retention, so that object lock refuses what it protects (counted
//! as `locked`, and left); an expired upload as AbortMultipartUpload. Every step is safe to
//! repeat, so a job taken over starts again from the beginning, with the time it was started
//! with.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};

use super::jobs::{JobSlot, JobStatus, Progress, from_json};
use super::{AdminApi, Failure, json};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::records::{Expiration, LifecycleFilter, LifecycleRule, ObjectEntry, ObjectRecord, Version};
use crate::s3::Gateway;
use crate::time::now_ms;

/// Progress and outcome of a lifecycle job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LifecycleProgress {
    /// State, times, errors.
    #[serde(flatten)]
    pub status: JobStatus,
    /// Buckets with enabled rules.
    pub buckets: u64,
    /// Of those, walked.
    pub buckets_done: u64,
    /// Current versions looked at.
    pub objects_scanned: u64,
    /// Current versions expired (a tombstone, or a delete marker in a versioned bucket).
    pub expired: u64,
    /// Noncurrent versions deleted.
    pub noncurrent_deleted: u64,
    /// Delete markers removed (the only version left of their key).
    pub markers_removed: u64,
    /// Incomplete multipart uploads aborted.
    pub uploads_aborted: u64,
    /// Versions due that object lock keeps.
    pub locked: u64,
}

impl Progress for LifecycleProgress {
    fn status(&mut self) -> &mut JobStatus {
        &mut self.status
    }

    fn done_of(&self) -> (u64, u64) {
        (self.buckets_done, self.buckets)
    }
}

/// What a lifecycle job runs with, stored with its record to resume it elsewhere.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LifecycleParams {
    /// "Now" for the rules (unix ms, the starting gateway's clock).
    now_ms: u64,
    /// How long a lifecycle day is, in ms.
    day_ms: u64,
}

/// Starts a lifecycle job now (`POST /jobs/lifecycle`), unless one runs.
pub(super) async fn start(api: &AdminApi) -> Result<Response<Full<Bytes>>, Failure> {
    let progress = begin(api).await?;
    Ok(json(StatusCode::ACCEPTED, &Some(progress)))
}

async fn begin(api: &AdminApi) -> Result<LifecycleProgress, Failure> {
    let gateway =
        api.gateway.clone().ok_or_else(|| Failure::from(Error::Config("no S3 gateway to act through".into())))?;
    let params = LifecycleParams { now_ms: now_ms(), day_ms: api.lifecycle_day_ms };
    let progress = api.lifecycle.begin(LifecycleProgress::default(), &params).await?;
    let job = LifecycleJob { gw: gateway, runner: api.lifecycle.clone(), params };
    api.lifecycle.spawn(async move { job.run().await });
    Ok(progress)
}

/// Resumes here the lifecycle job whose owner died, if its record still has lease `seen`.
pub(super) async fn resume(api: &AdminApi, seen: u64) -> Result<()> {
    let Some(gateway) = api.gateway.clone() else { return Ok(()) };
    let Some((record, _)) = api.lifecycle.take_over(seen).await? else { return Ok(()) };
    let params: LifecycleParams = from_json(&record.params)?;
    tracing::info!(from = %record.owner_address, "lifecycle job taken over; running it again here");
    let job = LifecycleJob { gw: gateway, runner: api.lifecycle.clone(), params };
    api.lifecycle.spawn(async move { job.run().await });
    Ok(())
}

/// Starts a lifecycle job when some bucket has enabled rules and no job has started for a
/// lifecycle day, anywhere in the cluster (the job record is shared): called by the
/// scheduler every so often.
pub(super) async fn start_if_due(api: &AdminApi) -> Result<()> {
    let last_started = api.lifecycle.read().await?.map(|p| p.status.started_ms);
    if last_started.is_some_and(|at| at.saturating_add(api.lifecycle_day_ms) > now_ms()) {
        return Ok(());
    }
    let rules = |record: &crate::index::records::BucketRecord| {
        record.lifecycle.as_ref().is_some_and(|l| l.rules.iter().any(|r| r.enabled))
    };
    if !api.index.buckets().await?.iter().any(|(_, record)| rules(record)) {
        return Ok(());
    }
    match begin(api).await {
        Ok(_) => Ok(()),
        // Another gateway's started meanwhile.
        Err(Failure(StatusCode::CONFLICT, _)) => Ok(()),
        Err(Failure(_, why)) => Err(Error::Index(why)),
    }
}

struct LifecycleJob {
    gw: Gateway,
    runner: JobSlot<LifecycleProgress>,
    params: LifecycleParams,
}

impl LifecycleFilter {
    /// Whether a version (`None` for a delete marker, which has no tags nor size) of `key`
    /// matches.
    fn matches(&self, key: &str, version: Option<&ObjectRecord>) -> bool {
        if !key.starts_with(&self.prefix) {
            return false;
        }
        let Some(record) = version else { return self.tags.is_empty() };
        self.tags.iter().all(|tag| record.tags.contains(tag))
            && self.size_greater_than.is_none_or(|n| record.size > n)
            && self.size_less_than.is_none_or(|n| record.size < n)
    }
}

/// When an entry was written, unix ms.
fn written_ms(entry: &ObjectEntry) -> u64 {
    match entry {
        ObjectEntry::Live(record) => record.modified_ms,
        // Commit orders are microseconds.
        ObjectEntry::Deleted { ts, .. } => ts / 1000,
    }
}

impl LifecycleJob {
    fn index(&self) -> &Arc<Index> {
        &self.gw.index
    }

    /// Whether something written (or made noncurrent) at `since_ms` is `days` old.
    fn older_than(&self, since_ms: u64, days: u32) -> bool {
        since_ms.saturating_add(u64::from(days).saturating_mul(self.params.day_ms)) <= self.params.now_ms
    }

    async fn run(&self) -> Result<()> {
        let buckets: Vec<(String, Vec<LifecycleRule>)> = self
            .index()
            .buckets()
            .await?
            .into_iter()
            .filter_map(|(name, record)| {
                let rules: Vec<_> = record.lifecycle?.rules.into_iter().filter(|r| r.enabled).collect();
                (!rules.is_empty()).then_some((name, rules))
            })
            .collect();
        self.runner.update(|p| p.buckets = buckets.len() as u64);
        for (bucket, rules) in &buckets {
            self.current_versions(bucket, rules).await?;
            self.noncurrent_versions(bucket, rules).await?;
            self.uploads(bucket, rules).await?;
            self.runner.update(|p| p.buckets_done += 1);
        }
        Ok(())
    }

    /// Counts the outcome of deleting a version by id: object lock's refusal is an outcome,
    /// not a failure.
    fn count_deletion(&self, outcome: Result<()>, counter: fn(&mut LifecycleProgress) -> &mut u64) -> Result<()> {
        match outcome {
            Ok(()) => self.runner.update(|p| *counter(p) += 1),
            Err(Error::ObjectLocked(_)) => self.runner.update(|p| p.locked += 1),
            Err(err) => return Err(err),
        }
        Ok(())
    }

    async fn current_versions(&self, bucket: &str, rules: &[LifecycleRule]) -> Result<()> {
        let mut pages = self.index().bucket_object_pages(bucket);
        while let Some(page) = pages.next_page().await? {
            for (_, key, entry) in page {
                self.runner.update(|p| p.objects_scanned += 1);
                match &entry {
                    ObjectEntry::Live(record) => {
                        let expired = rules.iter().any(|rule| {
                            rule.filter.matches(&key, Some(record))
                                && match rule.expiration {
                                    Some(Expiration::Days(days)) => self.older_than(record.modified_ms, days),
                                    Some(Expiration::Date(ms)) => self.params.now_ms >= ms,
                                    _ => false,
                                }
                        });
                        if expired {
                            self.gw.expire_current(bucket, &key).await?;
                            self.runner.update(|p| p.expired += 1);
                        }
                    }
                    ObjectEntry::Deleted { .. } => {
                        // A tombstone of an unversioned bucket has no version id: nothing to do.
                        let Some(id) = crate::index::version_id(&entry) else { continue };
                        let wanted = rules.iter().any(|rule| {
                            rule.expiration == Some(Expiration::ExpiredObjectDeleteMarker)
                                && rule.filter.matches(&key, None)
                        });
                        if wanted && self.alone(bucket, &key).await? {
                            let outcome = self.gw.remove_version(bucket, &key, &id).await;
                            self.count_deletion(outcome, |p| &mut p.markers_removed)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether `bucket`/`key` has no noncurrent version (removal records of deleted versions
    /// do not count), so that its current delete marker is the only version left.
    async fn alone(&self, bucket: &str, key: &str) -> Result<bool> {
        let mut pages = self.index().noncurrent_pages(bucket, key);
        while let Some(page) = pages.next_page().await? {
            if page.iter().any(|entry| entry.version() != Version::Removed) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Noncurrent versions, newest first per key: each became noncurrent when the next newer
    /// version was written; the newest `newer_versions` of a key are kept whatever their age.
    async fn noncurrent_versions(&self, bucket: &str, rules: &[LifecycleRule]) -> Result<()> {
        if rules.iter().all(|r| r.noncurrent.is_none()) {
            return Ok(());
        }
        let mut pages = self.index().bucket_version_pages(bucket);
        // The key walked, when its newest row seen so far was written, and how many versions
        // of it came before.
        let mut walking: Option<(String, u64, u32)> = None;
        while let Some(page) = pages.next_page().await? {
            for (_, key, entry) in page {
                if entry.version() == Version::Removed {
                    continue;
                }
                if walking.as_ref().is_none_or(|(k, _, _)| *k != key) {
                    let current = self.index().object_entry(bucket, &key).await?;
                    walking = Some((key.clone(), current.as_ref().map_or(0, written_ms), 0));
                }
                let Some((_, successor_ms, newer)) = walking.as_mut() else { continue };
                let since_ms = *successor_ms;
                let rank = *newer;
                *successor_ms = written_ms(&entry);
                *newer += 1;
                let version = match &entry {
                    ObjectEntry::Live(record) => Some(record.as_ref()),
                    ObjectEntry::Deleted { .. } => None,
                };
                let due = rules.iter().any(|rule| {
                    rule.noncurrent
                        .is_some_and(|n| rank >= n.newer_versions.unwrap_or(0) && self.older_than(since_ms, n.days))
                        && rule.filter.matches(&key, version)
                });
                if let (true, Some(id)) = (due, crate::index::version_id(&entry)) {
                    let outcome = self.gw.remove_version(bucket, &key, &id).await;
                    self.count_deletion(outcome, |p| &mut p.noncurrent_deleted)?;
                }
            }
        }
        Ok(())
    }

    async fn uploads(&self, bucket: &str, rules: &[LifecycleRule]) -> Result<()> {
        for rule in rules {
            let Some(days) = rule.abort_uploads_after_days else { continue };
            let before = self.params.now_ms.saturating_sub(u64::from(days).saturating_mul(self.params.day_ms));
            for (upload_bucket, key, upload_id) in self.index().uploads_before(before).await? {
                if upload_bucket != bucket || !key.starts_with(&rule.filter.prefix) {
                    continue;
                }
                match self.index().abort_upload(bucket, &key, &upload_id).await {
                    Ok(()) => self.runner.update(|p| p.uploads_aborted += 1),
                    // Completed or aborted meanwhile (or by an earlier rule).
                    Err(Error::NoSuchUpload) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(())
    }
}
