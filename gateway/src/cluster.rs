//! The cluster as the gateway sees it: volumes (id, URL, weight, zone, subvolumes) and the
//! placement ring over them. Membership is kept in the index and resolved against the
//! volumes' own ids at startup, so a volume that moves to another address keeps its data.
//! Every change moves the membership epoch on and wakes [`crate::membership::push`], which
//! writes the membership to the volumes; a volume that holds another cluster's membership
//! is never joined.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use volumed::membership::Document;

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
    current: Arc<RwLock<Current>>,
    /// Held across a change, index write included, so changes apply one at a time.
    updating: Arc<tokio::sync::Mutex<()>>,
    cluster_id: Arc<str>,
    /// Woken on every change, for the task that pushes the membership to the volumes.
    changed: Arc<tokio::sync::Notify>,
    /// When the membership was last read from the index, and the read a write may ask for.
    freshness: Arc<Freshness>,
}

/// When the membership was last confirmed from the index (unix ms), and at most one read on
/// behalf of writes that found it too old.
#[derive(Debug)]
struct Freshness {
    at: AtomicU64,
    confirming: AtomicBool,
    confirmed: tokio::sync::Notify,
}

/// The membership and its epoch, always replaced together.
#[derive(Debug, Clone)]
struct Current {
    membership: Arc<Membership>,
    epoch: u64,
}

/// What a volume says of itself when asked to join.
struct Answer {
    stats: volumed::VolumeStats,
    /// The membership it holds, if a gateway has pushed one.
    document: Option<Document>,
}

/// Asks the volume at `url` for its id and the membership it holds; refuses one that belongs
/// to another cluster than `cluster_id`.
async fn ask(client: &VolumeClient, url: &str, cluster_id: &str) -> Result<Answer> {
    let stats = client.stats(url).await?;
    let document = client.membership(url).await?;
    if let Some(document) = &document
        && document.cluster_id != cluster_id
    {
        return Err(Error::Config(format!(
            "volume {url} ({}) belongs to cluster {}, not to this cluster ({cluster_id}); it is not joined (a lost index is recreated with `cairn-admin rebuild`, not by starting on an empty one)",
            stats.volume_id, document.cluster_id
        )));
    }
    Ok(Answer { stats, document })
}

impl Cluster {
    /// Learns each configured volume's id and subvolume count from its `/stats` and merges
    /// them into the stored membership: a known volume (by id) keeps its weight and zone and
    /// takes the configured URL; a new one joins with weight 1. Membership changed online
    /// (`volume add/drain/weight/zone/remove`) is kept across restarts; config only seeds it.
    /// A volume that holds the membership of another cluster is left out, with an error in
    /// the log.
    ///
    /// Volumes that do not answer do not hold the start up: a known one stays a member (down
    /// until it answers), and the URLs of unknown ones are returned, for [`Cluster::keep_joining`].
    pub async fn join(index: &Index, client: &VolumeClient, urls: &[String]) -> Result<(Self, Vec<String>)> {
        let cluster_id = index.cluster_id().await?;
        let known = index.membership().await?;
        let answers = futures::future::join_all(urls.iter().map(|url| ask(client, url, &cluster_id))).await;
        let mut unjoined = Vec::new();
        let mut documents = Vec::new();
        let mut joining = Vec::new();
        for (url, answer) in urls.iter().zip(answers) {
            match answer {
                Ok(answer) if known.removed.contains(&answer.stats.volume_id) => {
                    tracing::warn!(
                        %url,
                        volume_id = %answer.stats.volume_id,
                        "volume was removed with `cairn-admin volume remove`; it stays out (`cairn-admin volume add` brings it back)"
                    );
                }
                Ok(answer) => {
                    documents.extend(answer.document);
                    joining.push((url, answer.stats));
                }
                Err(Error::Config(refused)) => tracing::error!("{refused}"),
                Err(Error::ClusterSecretRejected(_)) => {
                    tracing::error!(%url, "volume rejected the cluster secret: check --cluster-secret here and on the volume; it joins once it accepts it");
                    unjoined.push(url.clone());
                }
                Err(err) if known.volumes.iter().any(|v| v.url == *url) => {
                    tracing::warn!(%url, %err, "volume is down; starting without it, it rejoins when it answers");
                }
                Err(err) => {
                    tracing::warn!(%url, %err, "new volume does not answer; it joins when it does");
                    unjoined.push(url.clone());
                }
            }
        }
        // Merged into the membership as stored when the transaction runs: another gateway may
        // change it meanwhile.
        let (membership, mut epoch) = index
            .change_membership(|membership| {
                for (url, stats) in &joining {
                    if !membership.removed.contains(&stats.volume_id) {
                        merge(membership, url, stats, None, None)?;
                    }
                }
                Ok(())
            })
            .await?;
        // A volume holding a newer membership than the index (or another one of the same
        // epoch) means the index is older than the volumes: restored from a copy, say. The
        // index is what the gateway serves from, so its membership is pushed over it, under a
        // newer epoch.
        let ours = crate::membership::document(&cluster_id, epoch, &membership);
        if let Some(newer) =
            documents.iter().filter(|d| d.epoch > epoch || (d.epoch == epoch && **d != ours)).max_by_key(|d| d.epoch)
        {
            tracing::warn!(
                index_epoch = epoch,
                volume_epoch = newer.epoch,
                "the volumes hold a newer membership than this index; the index's membership replaces it"
            );
            epoch = index.advance_epoch_past(newer.epoch).await?;
        }
        let current = Current { membership: Arc::new(membership), epoch };
        let cluster = Self {
            current: Arc::new(RwLock::new(current)),
            updating: Arc::new(tokio::sync::Mutex::new(())),
            cluster_id: cluster_id.into(),
            changed: Arc::new(tokio::sync::Notify::new()),
            freshness: Arc::new(Freshness {
                at: AtomicU64::new(crate::time::now_ms()),
                confirming: AtomicBool::new(false),
                confirmed: tokio::sync::Notify::new(),
            }),
        };
        Ok((cluster, unjoined))
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
                let joined = match ask(&client, &url, &self.cluster_id).await {
                    Ok(answer) if self.membership().removed.contains(&answer.stats.volume_id) => {
                        tracing::warn!(%url, volume_id = %answer.stats.volume_id, "volume was removed; it stays out");
                        continue;
                    }
                    Ok(answer) => {
                        self.update(&index, |membership| merge(membership, &url, &answer.stats, None, None)).await
                    }
                    Err(Error::Config(refused)) => {
                        tracing::error!("{refused}");
                        continue;
                    }
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
    /// A volume of another cluster is refused (`Error::Config`).
    pub async fn add_volume(
        &self,
        index: &Index,
        client: &VolumeClient,
        url: &str,
        zone: Option<String>,
        weight: Option<f64>,
    ) -> Result<Membership> {
        let stats = ask(client, url, &self.cluster_id).await?.stats;
        self.update(index, |membership| {
            membership.removed.retain(|id| *id != stats.volume_id);
            merge(membership, url, &stats, zone.clone(), weight)
        })
        .await
    }

    /// Changes the stored membership with `change` (in one index transaction, so `change`
    /// may run more than once), makes the result current for new writes, and wakes the push
    /// to the volumes.
    pub async fn update(
        &self,
        index: &Index,
        change: impl FnMut(&mut Membership) -> Result<()> + Send,
    ) -> Result<Membership> {
        let _updating = self.updating.lock().await;
        let (membership, epoch) = index.change_membership(change).await?;
        self.install(membership.clone(), epoch);
        Ok(membership)
    }

    /// Takes the stored membership when another gateway changed it (its epoch moved on), and
    /// wakes the push to the volumes. Returns whether it changed.
    pub async fn refresh(&self, index: &Index) -> Result<bool> {
        // As of when it was asked for: the read may wait behind a busy index.
        let asked_at = crate::time::now_ms();
        let _updating = self.updating.lock().await;
        let (membership, epoch) = index.membership_with_epoch().await?;
        self.freshness.at.fetch_max(asked_at, Ordering::Relaxed);
        if epoch == self.current().epoch {
            return Ok(false);
        }
        self.install(membership, epoch);
        Ok(true)
    }

    fn install(&self, membership: Membership, epoch: u64) {
        let current = Current { membership: Arc::new(membership), epoch };
        match self.current.write() {
            Ok(mut guard) => *guard = current,
            Err(poisoned) => *poisoned.into_inner() = current,
        }
        self.changed.notify_one();
    }

    /// Milliseconds since the membership was last confirmed from the index (at the join, or
    /// by [`Cluster::refresh`]).
    pub fn staleness_ms(&self) -> u64 {
        crate::time::now_ms().saturating_sub(self.freshness.at.load(Ordering::Relaxed))
    }

    /// Makes sure the membership was confirmed from the index at most `max_age` ago. When the
    /// heartbeat has fallen behind (a busy index queues its reads behind the requests'), one
    /// read is made now on behalf of every waiting write, so that a busy index delays writes
    /// instead of failing them; an index that does not answer within `wait` fails them.
    pub async fn confirm_within(&self, index: &Arc<Index>, max_age: Duration, wait: Duration) -> Result<()> {
        let max_ms = max_age.as_millis() as u64;
        let confirmed = self.freshness.confirmed.notified();
        tokio::pin!(confirmed);
        // Registered before the check, so a read that ends in between still wakes this one.
        confirmed.as_mut().enable();
        if self.staleness_ms() <= max_ms {
            return Ok(());
        }
        if !self.freshness.confirming.swap(true, Ordering::AcqRel) {
            let (cluster, index) = (self.clone(), Arc::clone(index));
            tokio::spawn(async move {
                match tokio::time::timeout(wait, cluster.refresh(&index)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => tracing::warn!(%err, "membership not read for a write"),
                    Err(_) => tracing::warn!("membership not read for a write within {wait:?}"),
                }
                cluster.freshness.confirming.store(false, Ordering::Release);
                cluster.freshness.confirmed.notify_waiters();
            });
        }
        // The read is bounded by `wait`; so is this, in case another caller's read never ends.
        let _ = tokio::time::timeout(wait + Duration::from_millis(100), confirmed).await;
        let stale_ms = self.staleness_ms();
        if stale_ms > max_ms {
            return Err(Error::Unavailable(format!("membership not confirmed from the index for {stale_ms} ms")));
        }
        Ok(())
    }

    fn current(&self) -> Current {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A snapshot of the membership.
    pub fn membership(&self) -> Arc<Membership> {
        self.current().membership
    }

    /// The membership and its epoch as the document the volumes keep.
    pub fn document(&self) -> Document {
        let current = self.current();
        crate::membership::document(&self.cluster_id, current.epoch, &current.membership)
    }

    /// The cluster's id.
    pub fn id(&self) -> &str {
        &self.cluster_id
    }

    /// Resolves after the membership changed (at once if it did since the last call).
    pub async fn changed(&self) {
        self.changed.notified().await;
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
