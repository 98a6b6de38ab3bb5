//! Presence: each gateway registers in the index and beats every second; the same task takes
//! the membership other gateways changed, deletes released in-flight claims, and reaps peers
//! that stopped beating (see `index::gateways` for why reaping keeps GC exact).
//!
//! Liveness never compares two machines' clocks: a peer is dead when its beat counter has not
//! moved for [`DEAD_AFTER`] by this gateway's own monotonic clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::in_flight::InFlight;
use crate::index::{GatewayRecord, Index};

/// How often a gateway beats, reads the membership and looks at its peers.
pub const BEAT: Duration = Duration::from_secs(1);
/// A peer whose counter has not moved for this long is taken for dead and reaped.
pub const DEAD_AFTER: Duration = Duration::from_secs(10);
/// A shared-index gateway refuses writes when its membership was last confirmed from the
/// index longer ago than this (the index is unreachable): another gateway may have changed it.
pub const MEMBERSHIP_STALE_AFTER: Duration = Duration::from_secs(3);
/// How long a write waits for the membership to be read for it, when its confirmation is
/// older than [`MEMBERSHIP_STALE_AFTER`], before it is refused.
pub const MEMBERSHIP_CONFIRM_WAIT: Duration = Duration::from_secs(10);

/// This gateway, as registered.
#[derive(Debug, Clone)]
pub struct Presence {
    /// The index it registers in.
    pub index: Arc<Index>,
    /// Its row.
    pub record: GatewayRecord,
    /// The membership it refreshes.
    pub cluster: Cluster,
    /// Its in-flight registry, whose released claims it deletes.
    pub in_flight: InFlight,
}

impl Presence {
    /// Registers this gateway. On an embedded index no other process can be serving it, so
    /// rows left by earlier runs (killed ones) are removed at once.
    pub async fn register(&self) -> crate::Result<()> {
        if !self.index.engine().shared() {
            for stale in self.index.gateways().await? {
                self.index.unregister_gateway(&stale.id).await?;
            }
        }
        self.index.register_gateway(&self.record).await?;
        tracing::info!(gateway = %self.record.id, "gateway registered in the index");
        Ok(())
    }

    /// Beats until `shutdown`; stops the gateway (cancels `shutdown`) if its peers reaped it,
    /// since its in-flight claims are gone and its writes can no longer commit.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut peers: HashMap<String, (u64, Instant)> = HashMap::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(BEAT) => {}
                () = shutdown.cancelled() => return,
            }
            match self.index.beat(&self.record.id, crate::time::now_ms()).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(
                        gateway = %self.record.id,
                        "the other gateways took this one for dead (no heartbeat for {DEAD_AFTER:?}) and dropped its writes in flight; stopping"
                    );
                    shutdown.cancel();
                    return;
                }
                Err(err) => tracing::warn!(%err, "heartbeat not written; retrying"),
            }
            if let Err(err) = self.in_flight.flush().await {
                tracing::warn!(%err, "released in-flight claims not deleted; retrying");
            }
            match self.cluster.refresh(&self.index).await {
                Ok(true) => {
                    tracing::info!(epoch = self.cluster.document().epoch, "membership changed by another gateway")
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, "membership not read; retrying"),
            }
            if let Err(err) = self.watch_peers(&mut peers).await {
                tracing::warn!(%err, "gateways not read; retrying");
            }
        }
    }

    /// Reaps every peer whose beat counter has not moved for [`DEAD_AFTER`].
    async fn watch_peers(&self, peers: &mut HashMap<String, (u64, Instant)>) -> crate::Result<()> {
        let now = Instant::now();
        let registered = self.index.gateways().await?;
        peers.retain(|id, _| registered.iter().any(|g| g.id == *id));
        for peer in registered.iter().filter(|g| g.id != self.record.id) {
            let seen = peers.entry(peer.id.clone()).or_insert((peer.beats, now));
            if seen.0 != peer.beats {
                *seen = (peer.beats, now);
                continue;
            }
            if now.duration_since(seen.1) < DEAD_AFTER {
                continue;
            }
            if let Some(claims) = self.index.reap_gateway(&peer.id, peer.beats).await? {
                tracing::warn!(
                    gateway = %peer.id,
                    s3_address = %peer.s3_address,
                    claims,
                    "gateway stopped beating; reaped it and the blobs it was writing"
                );
                peers.remove(&peer.id);
            }
        }
        Ok(())
    }

    /// Unregisters on a clean stop, so peers need not wait to reap it.
    pub async fn leave(&self) {
        if let Err(err) = self.index.unregister_gateway(&self.record.id).await {
            tracing::warn!(%err, "could not unregister; the other gateways reap this one in {DEAD_AFTER:?}");
        }
    }
}
