//! The repairer: a background task of the gateway that brings every blob on the repair
//! queue back to the full replica count of whole copies. Each second it walks the queue; for
//! each blob still in use it first has every copy a read reported damaged checked by its own
//! volume, and rewrites in place (same volume, subvolume and id) each one that is corrupt or
//! gone, from a good copy; then it copies a good copy (volume to volume, checked by SHA-256)
//! onto the next healthy volumes in the key's ring order that do not hold one yet, and records
//! the new copies under the commit lock. A blob with no healthy volume to go to waits for the
//! next round: a volume that comes back is used within a second or two of answering.
//!
//! Reads report damage through [`DamageReports`] without waiting: the repairer queues the
//! report durably and repairs the blob at once.
//!
//! Each round first appends to the volumes' commit logs the commits that requests could not
//! log themselves (see `commit_log`).
//!
//! The copy is registered in flight while it runs, so GC never takes it for an orphan; a
//! copy whose blob was replaced meanwhile is not recorded and is collected by GC.
//!
//! One gateway of the cluster repairs: the one holding the repairer's lease
//! (`admin::jobs::RepairLease`, kept by the admin API's job watcher and taken over when its
//! holder dies). Every other gateway only queues the damage its reads report; the holder's
//! next round handles it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::commit_log::record;
use crate::error::{Error, Result};
use crate::in_flight::InFlight;
use crate::index::Index;
use crate::index::records::{CommitOrder, RepairEntry, Replica};
use crate::volume_client::VolumeClient;

/// Pause between two walks of the queue.
const ROUND_EVERY: Duration = Duration::from_secs(1);
/// Queue entries read per index call.
const PAGE: usize = 256;
/// Damage reports waiting for the repairer; more are dropped (and `verify` finds them).
const DAMAGE_BACKLOG: usize = 1024;

/// A copy of a blob a read found corrupt or missing on its volume.
#[derive(Debug, Clone)]
pub struct Damage {
    /// The blob.
    pub blob_id: String,
    /// Bucket of the key that uses it.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The damaged copy.
    pub replica: Replica,
}

/// Where reads report damaged copies, for the repairer.
#[derive(Debug, Clone)]
pub struct DamageReports(mpsc::Sender<Damage>);

/// The reports a [`DamageReports`] sends, for [`Repairer::run`].
#[derive(Debug)]
pub struct DamageInbox(mpsc::Receiver<Damage>);

/// A bounded channel from reads to the repairer.
pub fn damage_channel() -> (DamageReports, DamageInbox) {
    let (tx, rx) = mpsc::channel(DAMAGE_BACKLOG);
    (DamageReports(tx), DamageInbox(rx))
}

impl DamageReports {
    /// Hands a report to the repairer without waiting; a full backlog drops it (logged).
    pub fn report(&self, damage: Damage) {
        if let Err(err) = self.0.try_send(damage) {
            let damage = match err {
                mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => d,
            };
            tracing::warn!(blob = %damage.blob_id, volume = %damage.replica.volume, "repairer is behind; damage report dropped (verify --repair finds it)");
        }
    }
}

/// What the repairer needs of the gateway.
#[derive(Debug, Clone)]
pub struct Repairer {
    /// The index holding the queue and the records.
    pub index: Arc<Index>,
    /// Membership and placement.
    pub cluster: Cluster,
    /// Volume client (and its health).
    pub volumes: VolumeClient,
    /// Blobs being written or copied, hidden from GC.
    pub in_flight: InFlight,
    /// Whether this gateway is the one that repairs.
    pub lease: crate::admin::jobs::RepairLease,
}

impl Repairer {
    /// Repairs until `shutdown`: the queue every second, reported damage as it comes.
    pub async fn run(self, mut inbox: DamageInbox, shutdown: CancellationToken) {
        let mut next_round = tokio::time::Instant::now() + ROUND_EVERY;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next_round) => {
                    if !self.lease.held() {
                        next_round = tokio::time::Instant::now() + ROUND_EVERY;
                        continue;
                    }
                    if let Err(err) = self.round(&shutdown).await {
                        tracing::warn!(%err, "repair round failed");
                    }
                    next_round = tokio::time::Instant::now() + ROUND_EVERY;
                }
                Some(first) = inbox.0.recv() => {
                    // Reads of one damaged copy report it once each: handle it once.
                    let mut reports = vec![first];
                    while let Ok(more) = inbox.0.try_recv() {
                        if !reports.iter().any(|r| r.blob_id == more.blob_id && r.replica == more.replica) {
                            reports.push(more);
                        }
                    }
                    for damage in reports {
                        if let Err(err) = self.damaged(damage).await {
                            tracing::warn!(%err, "damage report not handled; verify --repair finds it");
                        }
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Queues a reported damaged copy and, if it was new, repairs its blob now.
    async fn damaged(&self, damage: Damage) -> Result<()> {
        let new = self.index.report_damage(&damage.blob_id, &damage.bucket, &damage.key, &damage.replica).await?;
        if !new || !self.lease.held() {
            // Queued: the gateway holding the lease repairs it in its next round.
            return Ok(());
        }
        tracing::warn!(blob = %damage.blob_id, bucket = %damage.bucket, key = %damage.key, volume = %damage.replica.volume, subvolume = damage.replica.subvolume, "damaged copy queued for repair");
        let entry = self.index.repair_entry(&damage.blob_id).await?;
        match entry {
            Some(entry) => self.repair(&damage.blob_id, &entry).await,
            None => Ok(()),
        }
    }

    /// One walk over the whole queue, after logging the commits requests left unlogged.
    async fn round(&self, shutdown: &CancellationToken) -> Result<()> {
        for unlogged in self.index.unlogged(PAGE).await? {
            crate::commit_log::log(&self.index, &self.cluster, &self.volumes, &unlogged.blob, unlogged.commit).await;
        }
        let mut after: Option<String> = None;
        let mut queued = 0;
        loop {
            let from = after.clone();
            let page = self.index.repairs(from.as_deref(), PAGE).await?;
            let full = page.len() == PAGE;
            queued += page.len();
            if !full {
                // The queue as this walk found it (a walk cut short by a lost lease says nothing).
                metrics::gauge!("cairn_repair_queue_length").set(queued as f64);
            }
            for (blob_id, entry) in page {
                // Stops at once when another gateway took the lease over.
                if shutdown.is_cancelled() || !self.lease.held() {
                    return Ok(());
                }
                if let Err(err) = self.repair(&blob_id, &entry).await {
                    tracing::warn!(blob = %blob_id, bucket = %entry.bucket, key = %entry.key, %err, "repair failed; retrying later");
                }
                after = Some(blob_id);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Rewrites the blob's damaged copies and brings it to the target count, as far as
    /// healthy volumes allow.
    pub async fn repair(&self, blob_id: &str, entry: &RepairEntry) -> Result<()> {
        let target = self.index.replica_target();
        let (id, e) = (blob_id.to_string(), entry.clone());
        let blob = self.index.repair_blob(&id, &e).await?;
        let missing = blob.as_ref().map_or(0, |(b, _)| target.saturating_sub(b.replicas.len()));
        let Some((blob, commit)) = blob.filter(|_| missing > 0 || !entry.damaged.is_empty()) else {
            // No longer used, or already whole: the entry goes.
            let (id, e) = (blob_id.to_string(), entry.clone());
            self.index.add_copies(&id, &e, &[], &[]).await?;
            return Ok(());
        };
        let _in_flight = self.in_flight.register(blob_id).await?;
        let mut last_error = None;
        let rewritten = self.rewrite_damaged((blob_id, commit), &blob.replicas, &entry.damaged, &mut last_error).await;
        let added = if missing > 0 {
            self.add_missing((blob_id, commit), entry, &blob.replicas, missing, &mut last_error).await
        } else {
            Vec::new()
        };
        if !added.is_empty() || !rewritten.is_empty() {
            let (id, e, copies, fixed) = (blob_id.to_string(), entry.clone(), added.clone(), rewritten.clone());
            let now = self.index.add_copies(&id, &e, &copies, &fixed).await?;
            tracing::info!(blob = %blob_id, bucket = %entry.bucket, key = %entry.key, added = added.len(), rewritten = rewritten.len(), copies = now.map_or(0, |c| c.len()), "blob repaired");
        }
        match last_error {
            Some(err) if added.is_empty() && rewritten.is_empty() => Err(err),
            _ => Ok(()),
        }
    }

    /// The healthy copies of a blob to read from, other than `except`, with their URLs.
    fn sources<'a>(&self, replicas: &'a [Replica], except: Option<&Replica>) -> Vec<(String, &'a Replica)> {
        let health = self.volumes.health();
        replicas
            .iter()
            .filter(|r| Some(*r) != except)
            .filter_map(|r| Some((self.cluster.url_of(&r.volume)?, r)))
            .filter(|(url, _)| health.is_up(url))
            .collect()
    }

    /// Has each damaged copy checked by its volume and rewrites those that are corrupt or
    /// gone from a good copy. Returns the copies now known whole (rewritten, or found fine);
    /// a copy on a volume that is down, or with no good source yet, waits for the next round.
    /// New copies log the blob's `commit`.
    async fn rewrite_damaged(
        &self,
        (blob_id, commit): (&str, CommitOrder),
        replicas: &[Replica],
        damaged: &[Replica],
        last_error: &mut Option<Error>,
    ) -> Vec<Replica> {
        let mut whole = Vec::new();
        for replica in damaged.iter().filter(|r| replicas.contains(r)) {
            let Some(url) = self.cluster.url_of(&replica.volume).filter(|url| self.volumes.health().is_up(url)) else {
                continue;
            };
            match self.volumes.head(&url, replica.subvolume, blob_id).await {
                Ok(Some(head)) => match self.volumes.verify(&url, replica.subvolume, blob_id, head.size).await {
                    Ok(Some(_)) => {
                        // Whole after all: the read failed for another reason (the volume
                        // restarting, a connection cut).
                        whole.push(replica.clone());
                        continue;
                    }
                    Ok(None) | Err(Error::CorruptReplica(_)) => {}
                    Err(err) => {
                        *last_error = Some(err);
                        continue;
                    }
                },
                Ok(None) | Err(Error::CorruptReplica(_)) => {}
                Err(err) => {
                    *last_error = Some(err);
                    continue;
                }
            }
            for (source, from) in self.sources(replicas, Some(replica)) {
                match self
                    .volumes
                    .copy(&source, from.subvolume, &url, replica.subvolume, &record(blob_id, commit))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(blob = %blob_id, from = %source, to = %url, "damaged copy rewritten");
                        whole.push(replica.clone());
                        break;
                    }
                    Err(err) => *last_error = Some(err),
                }
            }
        }
        whole
    }

    /// Copies the blob onto `missing` more healthy volumes, logging its `commit` there;
    /// returns the new copies.
    async fn add_missing(
        &self,
        (blob_id, commit): (&str, CommitOrder),
        entry: &RepairEntry,
        replicas: &[Replica],
        missing: usize,
        last_error: &mut Option<Error>,
    ) -> Vec<Replica> {
        let holders: Vec<String> = replicas.iter().map(|r| r.volume.clone()).collect();
        let targets = self.cluster.place_excluding(&entry.bucket, &entry.key, missing, self.volumes.health(), &holders);
        let sources = self.sources(replicas, None);
        let mut added = Vec::new();
        for (replica, url) in targets {
            for (source, from) in &sources {
                match self.volumes.copy(source, from.subvolume, &url, replica.subvolume, &record(blob_id, commit)).await
                {
                    Ok(_) => {
                        added.push(replica.clone());
                        break;
                    }
                    Err(err) => *last_error = Some(err),
                }
            }
        }
        added
    }
}
