//! Verify (and repair) as a background job: every replica of every live object's data blobs
//! is read whole by its own volume (no data crosses the network), checked there against its
//! block CRCs and SHA-256, and the SHA-256 compared with the record's. A missing or corrupt
//! replica is reported; with `repair`, it is rewritten in place (same volume, subvolume and
//! id, so the record stays valid) from a replica that checked good, and the copy is checked
//! again. Each problem line ends with what was done about it.
//!
//! Objects are checked in key order; the checkpoint is the last one checked. A verify taken
//! over by another gateway (`jobs`) resumes after it, with its counters and problems as the
//! dead owner last wrote them: the objects checked after its last renewal are checked again.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::jobs::{JobSlot, JobStatus, Progress, from_json};
use super::{AdminApi, Failure, json, read_json};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::records::{BlobRef, CommitOrder, ObjectEntry, ObjectRecord, Replica};
use crate::volume_client::Commit;
use crate::volume_client::VolumeClient;

/// Problems listed in the progress (the counters count them all).
const MAX_LISTED_PROBLEMS: usize = 100;

/// `POST /jobs/verify` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyRequest {
    /// Rewrite missing and corrupt copies from a good one.
    #[serde(default)]
    pub repair: bool,
}

/// Progress and outcome of a verify job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyProgress {
    /// State, times, errors.
    #[serde(flatten)]
    pub status: JobStatus,
    /// Rewrite bad replicas from good ones.
    pub repair: bool,
    /// Live objects to check.
    pub objects_total: u64,
    /// Objects checked.
    pub objects_done: u64,
    /// Replicas read.
    pub replicas_checked: u64,
    /// Bytes read.
    pub bytes_checked: u64,
    /// Replicas missing.
    pub missing: u64,
    /// Replicas whose bytes differ from the record's SHA-256, or that their volume refuses
    /// as corrupt (footer or metadata failed its checksum).
    pub corrupt: u64,
    /// Replicas rewritten from a good copy and checked.
    pub repaired: u64,
    /// What was found and done, as `bucket/key blob on volume/subvolume: missing|corrupt`,
    /// followed with `repair` by `: repaired` or `: NOT repaired (why)`.
    pub problems: Vec<String>,
}

impl Progress for VerifyProgress {
    fn status(&mut self) -> &mut JobStatus {
        &mut self.status
    }

    fn done_of(&self) -> (u64, u64) {
        (self.objects_done, self.objects_total)
    }
}

/// What a verify runs with, stored with its record to resume it elsewhere.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct VerifyParams {
    repair: bool,
}

/// The last object checked (bucket, key), and how many were checked up to it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct VerifyCheckpoint {
    after: Option<(String, String)>,
    done: u64,
}

pub(super) async fn start(api: &AdminApi, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let body: VerifyRequest = read_json(req).await?;
    let params = VerifyParams { repair: body.repair };
    let progress = api.verify.begin(VerifyProgress { repair: body.repair, ..Default::default() }, &params).await?;
    let job = VerifyJob::new(api, params, VerifyCheckpoint::default());
    api.verify.spawn(async move { job.run().await });
    Ok(json(StatusCode::ACCEPTED, &Some(progress)))
}

/// Resumes here the verify whose owner died, if its record still has lease `seen`.
pub(super) async fn resume(api: &AdminApi, seen: u64) -> Result<()> {
    let Some((record, _)) = api.verify.take_over(seen).await? else { return Ok(()) };
    let params: VerifyParams = from_json(&record.params)?;
    let checkpoint: VerifyCheckpoint = record.checkpoint.as_deref().map(from_json).transpose()?.unwrap_or_default();
    tracing::info!(from = %record.owner_address, done = checkpoint.done, "verify taken over; resuming it here");
    let job = VerifyJob::new(api, params, checkpoint);
    api.verify.spawn(async move { job.run().await });
    Ok(())
}

/// What one replica turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Good,
    Missing,
    Corrupt,
}

struct VerifyJob {
    index: Arc<Index>,
    cluster: Cluster,
    volumes: VolumeClient,
    slot: JobSlot<VerifyProgress>,
    repair: bool,
    resume: VerifyCheckpoint,
}

impl VerifyJob {
    fn new(api: &AdminApi, params: VerifyParams, resume: VerifyCheckpoint) -> Self {
        VerifyJob {
            index: api.index.clone(),
            cluster: api.cluster.clone(),
            volumes: api.volumes.clone(),
            slot: api.verify.clone(),
            repair: params.repair,
            resume,
        }
    }

    async fn run(&self) -> Result<()> {
        // Key order, page by page from the checkpoint: memory holds one page, whatever the
        // number of objects. Counted first, so the progress has a total.
        let after = self.resume.after.as_ref().map(|(bucket, key)| (bucket.as_str(), key.as_str()));
        let mut left = 0u64;
        let mut pages = self.index.object_pages(after);
        while let Some(page) = pages.next_page().await? {
            left += page.iter().filter(|(_, _, entry)| matches!(entry, ObjectEntry::Live(_))).count() as u64;
        }
        let mut done = self.resume.done;
        self.slot.update(|p| {
            p.objects_done = done;
            p.objects_total = done + left;
        });
        let mut pages = self.index.object_pages(after);
        while let Some(page) = pages.next_page().await? {
            for (bucket, key, entry) in page {
                // Noncurrent versions hold data as much as current ones (a key whose current
                // version is a delete marker may have many).
                let mut noncurrent = self.index.noncurrent_pages(&bucket, &key);
                while let Some(versions) = noncurrent.next_page().await? {
                    for record in versions.into_iter().filter_map(ObjectEntry::live) {
                        self.check_record(&bucket, &key, &record).await;
                    }
                }
                let Some(record) = entry.live() else { continue };
                self.check_record(&bucket, &key, &record).await;
                done += 1;
                let checkpoint = VerifyCheckpoint { after: Some((bucket.clone(), key.clone())), done };
                // Objects written since the count make the walk longer than the total.
                self.slot.advance(&checkpoint, |p| {
                    p.objects_done = done;
                    p.objects_total = p.objects_total.max(done);
                });
            }
        }
        Ok(())
    }

    /// Checks (and with `repair`, mends) the data blobs of one version: the blob itself, or
    /// every part.
    async fn check_record(&self, bucket: &str, key: &str, record: &ObjectRecord) {
        // With their digests, sizes and commit orders (what a repaired copy logs; parts are
        // not logged: 0).
        let blobs: Vec<(&BlobRef, &str, u64, CommitOrder)> = if record.parts.is_empty() {
            vec![(
                &record.blob,
                record.sha256.as_str(),
                record.size,
                CommitOrder { order: record.ts, version: record.version },
            )]
        } else {
            record.parts.iter().map(|p| (&p.blob, p.sha256.as_str(), p.size, CommitOrder::plain(0))).collect()
        };
        for (blob, sha256, size, commit) in blobs {
            self.check_blob(bucket, key, blob, (sha256, size), commit).await;
        }
    }

    async fn check_blob(
        &self,
        bucket: &str,
        key: &str,
        blob: &BlobRef,
        (sha256, size): (&str, u64),
        commit: CommitOrder,
    ) {
        let mut health = Vec::with_capacity(blob.replicas.len());
        for replica in &blob.replicas {
            match self.check_replica(replica, &blob.id, sha256, size).await {
                Ok(state) => health.push((replica, state)),
                Err(err) => self.slot.failed(&err),
            }
        }
        let good = health.iter().find(|(_, state)| *state == Health::Good).map(|(r, _)| *r);
        for (bad, state) in health.iter().filter(|(_, state)| *state != Health::Good) {
            let what = if *state == Health::Missing { "missing" } else { "corrupt" };
            let mut problem = format!("{bucket}/{key} blob {} on {}/{}: {what}", blob.id, bad.volume, bad.subvolume);
            if self.repair {
                let outcome = match good {
                    Some(good) => {
                        self.copy_replica(good, bad, sha256, &crate::commit_log::record(&blob.id, commit)).await
                    }
                    None => Err(Error::Volume("no good copy left".into())),
                };
                match outcome {
                    Ok(()) => {
                        problem.push_str(": repaired");
                        self.slot.update(|p| p.repaired += 1);
                    }
                    Err(err) => {
                        problem.push_str(&format!(": NOT repaired ({err})"));
                        self.slot.failed(&err);
                    }
                }
            }
            tracing::warn!(%problem, "verify");
            self.slot.update(|p| {
                match state {
                    Health::Missing => p.missing += 1,
                    _ => p.corrupt += 1,
                }
                if p.problems.len() < MAX_LISTED_PROBLEMS {
                    p.problems.push(problem);
                }
            });
        }
    }

    fn url(&self, replica: &Replica) -> Result<String> {
        self.cluster.url_of(&replica.volume).ok_or_else(|| Error::Volume(format!("unknown volume {}", replica.volume)))
    }

    async fn check_replica(&self, replica: &Replica, id: &str, sha256: &str, size: u64) -> Result<Health> {
        let url = self.url(replica)?;
        // A volume that calls its copy corrupt (a block, the footer or the metadata failed its
        // checksum) has answered the question; any other error means it could not be asked.
        match self.volumes.verify(&url, replica.subvolume, id, size).await {
            Ok(Some(verified)) => {
                self.slot.update(|p| {
                    p.replicas_checked += 1;
                    p.bytes_checked += verified.size;
                });
                Ok(if verified.sha256 == sha256 { Health::Good } else { Health::Corrupt })
            }
            Ok(None) => Ok(Health::Missing),
            Err(Error::CorruptReplica(reason)) => Ok(self.counted_corrupt(id, &reason)),
            Err(err) => Err(err),
        }
    }

    /// A replica its volume refused as corrupt: it was checked, and it is bad.
    fn counted_corrupt(&self, id: &str, reason: &str) -> Health {
        tracing::debug!(blob = %id, %reason, "volume reports the replica corrupt");
        self.slot.update(|p| p.replicas_checked += 1);
        Health::Corrupt
    }

    async fn copy_replica(&self, from: &Replica, to: &Replica, sha256: &str, commit: &Commit) -> Result<()> {
        let (source, target, id) = (self.url(from)?, self.url(to)?, &commit.id);
        let receipt = self.volumes.copy(&source, from.subvolume, &target, to.subvolume, commit).await?;
        if receipt.sha256 != sha256 {
            return Err(Error::Volume(format!("repaired copy of {id} on {target} does not match")));
        }
        tracing::info!(blob = %id, from = %source, to = %target, "replica repaired");
        Ok(())
    }
}
