//! The cluster as the gateway sees it: volumes (id, URL, weight, zone, subvolumes) and the
//! placement ring over them. Membership is kept in the index and resolved against the
//! volumes' own ids at startup, so a volume that moves to another address keeps its data.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::records::{Membership, Replica, VolumeRecord};
use crate::placement::{self, RingMember};
use crate::volume_client::VolumeClient;

/// Current membership, shared by all requests; replaced whole when it changes.
#[derive(Debug, Clone)]
pub struct Cluster {
    membership: Arc<RwLock<Arc<Membership>>>,
}

impl Cluster {
    /// Learns each configured volume's id and subvolume count from its `/stats` (waiting up
    /// to `wait` for it to come up) and merges them into the stored membership: a known volume
    /// (by id) keeps its weight and zone and takes the configured URL; a new one joins with
    /// weight 1. Membership changed online (`volume add/drain/weight/remove`) is kept across
    /// restarts; config only seeds it.
    pub async fn join(index: &Index, client: &VolumeClient, urls: &[String], wait: Duration) -> Result<Self> {
        let mut membership = index.membership()?;
        for url in urls {
            let stats = wait_for_stats(client, url, wait).await?;
            merge(&mut membership, url, &stats, None, None)?;
        }
        index.set_membership(&membership)?;
        Ok(Self { membership: Arc::new(RwLock::new(Arc::new(membership))) })
    }

    /// Adds the volume at `url` online (or updates it, known by id), storing the membership.
    pub async fn add_volume(
        &self,
        index: &Index,
        client: &VolumeClient,
        url: &str,
        zone: Option<String>,
        weight: Option<f64>,
    ) -> Result<Membership> {
        let stats = client.stats(url).await?;
        self.update(index, |membership| merge(membership, url, &stats, zone, weight))
    }

    /// Changes the membership with `change`, stores it, and makes it current for new writes.
    pub fn update(&self, index: &Index, change: impl FnOnce(&mut Membership) -> Result<()>) -> Result<Membership> {
        let mut guard = self.membership.write().map_err(|_| Error::Index("membership lock poisoned".into()))?;
        let mut membership = Membership::clone(&guard);
        change(&mut membership)?;
        index.set_membership(&membership)?;
        *guard = Arc::new(membership.clone());
        Ok(membership)
    }

    /// A snapshot of the membership.
    pub fn membership(&self) -> Arc<Membership> {
        match self.membership.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The URL of a volume id.
    pub fn url_of(&self, volume_id: &str) -> Option<String> {
        self.membership().volumes.iter().find(|v| v.id == volume_id).map(|v| v.url.clone())
    }

    /// Where a new version of `(bucket, key)` goes: `replicas` volumes, each with its URL.
    pub fn place(&self, bucket: &str, key: &str, replicas: usize) -> Result<Vec<(Replica, String)>> {
        let membership = self.membership();
        let members: Vec<RingMember> = membership
            .volumes
            .iter()
            .map(|v| RingMember { id: v.id.clone(), weight: v.weight, zone: v.zone.clone(), subvolumes: v.subvolumes })
            .collect();
        let slots = placement::place(&members, bucket, key, replicas);
        if slots.len() < replicas {
            return Err(Error::Unavailable(format!("{} volumes in the ring, {replicas} replicas wanted", slots.len())));
        }
        Ok(slots
            .into_iter()
            .map(|slot| {
                let volume = &membership.volumes[slot.member];
                (Replica { volume: volume.id.clone(), subvolume: slot.subvolume }, volume.url.clone())
            })
            .collect())
    }
}

fn merge(
    membership: &mut Membership,
    url: &str,
    stats: &volumed::VolumeStats,
    zone: Option<String>,
    weight: Option<f64>,
) -> Result<()> {
    let subvolumes = u32::try_from(stats.subvolumes.len()).map_err(|_| Error::Config("too many subvolumes".into()))?;
    match membership.volumes.iter_mut().find(|v| v.id == stats.volume_id) {
        Some(known) => {
            known.url = url.to_string();
            known.subvolumes = subvolumes;
            if zone.is_some() {
                known.zone = zone;
            }
            if let Some(weight) = weight {
                known.weight = weight;
            }
        }
        None => membership.volumes.push(VolumeRecord {
            id: stats.volume_id.clone(),
            url: url.to_string(),
            weight: weight.unwrap_or(1.0),
            zone,
            subvolumes,
        }),
    }
    Ok(())
}

async fn wait_for_stats(client: &VolumeClient, url: &str, wait: Duration) -> Result<volumed::VolumeStats> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match client.stats(url).await {
            Ok(stats) => return Ok(stats),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(Error::Unavailable(format!("volume {url} did not answer: {err}")));
            }
            Err(err) => {
                tracing::info!(%url, %err, "waiting for volume");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}
