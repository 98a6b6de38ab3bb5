//! The cluster as the gateway sees it: volumes (id, URL, weight, zone, subvolumes) and the
//! placement ring over them. Membership is kept in the index and resolved against the
//! volumes' own ids at startup, so a volume that moves to another address keeps its data.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::health::Health;
use crate::index::Index;
use crate::index::records::{Membership, Replica, VolumeRecord};
use crate::placement::{self, RingMember};
use crate::volume_client::VolumeClient;

/// How often a volume that has not answered yet is asked again.
const JOIN_RETRY: Duration = Duration::from_secs(2);

/// Current membership, shared by all requests; replaced whole when it changes.
#[derive(Debug, Clone)]
pub struct Cluster {
    membership: Arc<RwLock<Arc<Membership>>>,
}

impl Cluster {
    /// Learns each configured volume's id and subvolume count from its `/stats` and merges
    /// them into the stored membership: a known volume (by id) keeps its weight and zone and
    /// takes the configured URL; a new one joins with weight 1. Membership changed online
    /// (`volume add/drain/weight/remove`) is kept across restarts; config only seeds it.
    ///
    /// Volumes that do not answer do not hold the start up: a known one stays a member (down
    /// until it answers), and the URLs of unknown ones are returned, for [`Cluster::keep_joining`].
    pub async fn join(index: &Index, client: &VolumeClient, urls: &[String]) -> Result<(Self, Vec<String>)> {
        let mut membership = index.membership()?;
        let answers = futures::future::join_all(urls.iter().map(|url| client.stats(url))).await;
        let mut unjoined = Vec::new();
        for (url, answer) in urls.iter().zip(answers) {
            match answer {
                Ok(stats) if membership.removed.contains(&stats.volume_id) => {
                    tracing::warn!(
                        %url,
                        volume_id = %stats.volume_id,
                        "volume was removed with `cairn-admin volume remove`; it stays out (`cairn-admin volume add` brings it back)"
                    );
                }
                Ok(stats) => merge(&mut membership, url, &stats, None, None)?,
                Err(Error::ClusterSecretRejected(_)) => {
                    tracing::error!(%url, "volume rejected the cluster secret: check --cluster-secret here and on the volume; it joins once it accepts it");
                    unjoined.push(url.clone());
                }
                Err(err) if membership.volumes.iter().any(|v| v.url == *url) => {
                    tracing::warn!(%url, %err, "volume is down; starting without it, it rejoins when it answers");
                }
                Err(err) => {
                    tracing::warn!(%url, %err, "new volume does not answer; it joins when it does");
                    unjoined.push(url.clone());
                }
            }
        }
        index.set_membership(&membership)?;
        Ok((Self { membership: Arc::new(RwLock::new(Arc::new(membership))) }, unjoined))
    }

    /// Retries the volumes [`Cluster::join`] could not reach until each has answered and
    /// joined, or `shutdown`.
    pub async fn keep_joining(
        self,
        index: Arc<Index>,
        client: VolumeClient,
        mut urls: Vec<String>,
        shutdown: CancellationToken,
    ) {
        while !urls.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(JOIN_RETRY) => {}
                () = shutdown.cancelled() => return,
            }
            let mut still = Vec::new();
            for url in urls {
                let joined = match client.stats(&url).await {
                    Ok(stats) if self.membership().removed.contains(&stats.volume_id) => {
                        tracing::warn!(%url, volume_id = %stats.volume_id, "volume was removed; it stays out");
                        continue;
                    }
                    Ok(stats) => self.update(&index, |membership| merge(membership, &url, &stats, None, None)),
                    Err(err) => Err(err),
                };
                match joined {
                    Ok(_) => tracing::info!(%url, "volume joined"),
                    Err(_) => still.push(url),
                }
            }
            urls = still;
        }
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
        self.update(index, |membership| {
            membership.removed.retain(|id| *id != stats.volume_id);
            merge(membership, url, &stats, zone, weight)
        })
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

    /// Where a new version of `(bucket, key)` goes: the first `replicas` volumes in the
    /// key's rendezvous order that `health` takes to be up, each with its URL. Fewer when
    /// fewer are up (the caller decides whether that meets its quorum); a write never waits
    /// on a volume known to be down.
    pub fn place(&self, bucket: &str, key: &str, replicas: usize, health: &Health) -> Vec<(Replica, String)> {
        self.place_excluding(bucket, key, replicas, health, &[])
    }

    /// Where the ring wants `(bucket, key)`, whatever the volumes' health: the home that
    /// rebalance moves blobs to.
    pub fn ring_place(&self, bucket: &str, key: &str, replicas: usize) -> Result<Vec<(Replica, String)>> {
        let slots = self.place(bucket, key, replicas, &Health::default());
        if slots.len() < replicas {
            return Err(Error::Unavailable(format!("{} volumes in the ring, {replicas} replicas wanted", slots.len())));
        }
        Ok(slots)
    }

    /// Like [`Cluster::place`], skipping the volumes in `exclude` (those that already hold a
    /// copy being repaired).
    pub fn place_excluding(
        &self,
        bucket: &str,
        key: &str,
        replicas: usize,
        health: &Health,
        exclude: &[String],
    ) -> Vec<(Replica, String)> {
        let membership = self.membership();
        let (volumes, members): (Vec<&VolumeRecord>, Vec<RingMember>) = membership
            .volumes
            .iter()
            .filter(|v| health.is_up(&v.url) && !exclude.contains(&v.id))
            .map(|v| {
                let member =
                    RingMember { id: v.id.clone(), weight: v.weight, zone: v.zone.clone(), subvolumes: v.subvolumes };
                (v, member)
            })
            .unzip();
        placement::place(&members, bucket, key, replicas)
            .into_iter()
            .map(|slot| {
                let volume = volumes[slot.member];
                (Replica { volume: volume.id.clone(), subvolume: slot.subvolume }, volume.url.clone())
            })
            .collect()
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
