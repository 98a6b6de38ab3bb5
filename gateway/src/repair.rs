//! The repairer: a background task of the gateway that brings every blob on the repair
//! queue back to the full replica count. Each second it walks the queue; for each blob still
//! in use it copies a good copy (volume to volume, checked by SHA-256) onto the next
//! healthy volumes in the key's ring order that do not hold one yet, then records the new
//! copies under the commit lock. A blob with no healthy volume to go to waits for the next
//! round: a volume that comes back is used within a second or two of answering.
//!
//! Each round first appends to the volumes' commit logs the commits that requests could not
//! log themselves (see `commit_log`).
//!
//! The copy is registered in flight while it runs, so GC never takes it for an orphan; a
//! copy whose blob was replaced meanwhile is not recorded and is collected by GC.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::in_flight::InFlight;
use crate::index::Index;
use crate::index::records::{RepairEntry, Replica};
use crate::volume_client::VolumeClient;

/// Pause between two walks of the queue.
const ROUND_EVERY: Duration = Duration::from_secs(1);
/// Queue entries read per index call.
const PAGE: usize = 256;

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
}

impl Repairer {
    /// Repairs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(ROUND_EVERY) => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(err) = self.round(&shutdown).await {
                tracing::warn!(%err, "repair round failed");
            }
        }
    }

    /// One walk over the whole queue, after logging the commits requests left unlogged.
    async fn round(&self, shutdown: &CancellationToken) -> Result<()> {
        for blob in self.blocking(|index| index.unlogged(PAGE)).await? {
            crate::commit_log::log(&self.index, &self.cluster, &self.volumes, &blob).await;
        }
        let mut after: Option<String> = None;
        loop {
            let from = after.clone();
            let page = self.blocking(move |index| index.repairs(from.as_deref(), PAGE)).await?;
            let full = page.len() == PAGE;
            for (blob_id, entry) in page {
                if shutdown.is_cancelled() {
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

    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&Index) -> Result<T> + Send + 'static) -> Result<T> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || work(&index))
            .await
            .map_err(|e| Error::Index(format!("repair task failed: {e}")))?
    }

    /// Brings one blob to the target count, as far as healthy volumes allow.
    pub async fn repair(&self, blob_id: &str, entry: &RepairEntry) -> Result<()> {
        let target = self.index.replica_target();
        let (id, e) = (blob_id.to_string(), entry.clone());
        let blob = self.blocking(move |index| index.repair_blob(&id, &e)).await?;
        let missing = blob.as_ref().map_or(0, |b| target.saturating_sub(b.replicas.len()));
        let Some(blob) = blob.filter(|_| missing > 0) else {
            // No longer used, or already whole: the entry goes.
            let (id, e) = (blob_id.to_string(), entry.clone());
            self.blocking(move |index| index.add_copies(&id, &e, &[])).await?;
            return Ok(());
        };
        let health = self.volumes.health();
        let holders: Vec<String> = blob.replicas.iter().map(|r| r.volume.clone()).collect();
        let targets = self.cluster.place_excluding(&entry.bucket, &entry.key, missing, health, &holders);
        let sources: Vec<(String, u32)> = blob
            .replicas
            .iter()
            .filter_map(|r| Some((self.cluster.url_of(&r.volume)?, r.subvolume)))
            .filter(|(url, _)| health.is_up(url))
            .collect();
        if targets.is_empty() || sources.is_empty() {
            return Ok(());
        }
        let _in_flight = self.in_flight.register(blob_id);
        let mut added: Vec<Replica> = Vec::new();
        let mut last_error = None;
        for (replica, url) in targets {
            for (source, subvolume) in &sources {
                match self.volumes.copy(source, *subvolume, &url, replica.subvolume, blob_id).await {
                    Ok(_) => {
                        added.push(replica.clone());
                        break;
                    }
                    Err(err) => last_error = Some(err),
                }
            }
        }
        if !added.is_empty() {
            let (id, e, copies) = (blob_id.to_string(), entry.clone(), added.clone());
            let now = self.blocking(move |index| index.add_copies(&id, &e, &copies)).await?;
            tracing::info!(blob = %blob_id, bucket = %entry.bucket, key = %entry.key, added = added.len(), copies = now.map_or(0, |c| c.len()), "blob repaired");
        }
        match last_error {
            Some(err) if added.is_empty() => Err(err),
            _ => Ok(()),
        }
    }
}
