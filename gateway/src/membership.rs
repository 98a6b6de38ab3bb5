//! The membership written to the volumes, so that a rebuild can restore it from them.
//!
//! The index keeps the membership, the cluster id and an epoch that grows with every change
//! (`Index::set_membership`). [`push`] runs beside the gateway and writes the membership as a
//! [`Document`] to every member volume: once after the start, after every change, and to a
//! volume that was down once it answers again. It remembers which epoch each volume holds;
//! every push is best effort with the volume client's timeouts, and nothing waits for it.
//! A volume bound to another cluster refuses the document, which is logged as an error.
//!
//! The gateway also names itself to the volumes on its health probe and says goodbye when it
//! shuts down ([`leave`]): an offline rebuild refuses to run while a gateway uses the volumes.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use volumed::membership::{Document, Member};

use crate::cluster::Cluster;
use crate::error::Error;
use crate::index::records::{Membership, VolumeRecord};
use crate::volume_client::VolumeClient;

/// How often volumes that do not hold the current membership yet are tried again.
const RETRY: Duration = Duration::from_secs(1);
/// Longest a shutting-down gateway waits for the volumes to take its goodbye.
const LEAVE_WITHIN: Duration = Duration::from_secs(3);

/// The document the volumes keep for `membership` at `epoch`.
pub fn document(cluster_id: &str, epoch: u64, membership: &Membership) -> Document {
    let volumes = membership
        .volumes
        .iter()
        .map(|v| Member {
            id: v.id.clone(),
            url: v.url.clone(),
            weight: v.weight,
            zone: v.zone.clone(),
            subvolumes: v.subvolumes,
        })
        .collect();
    Document { cluster_id: cluster_id.to_string(), epoch, volumes, removed: membership.removed.clone() }
}

/// The membership a document describes.
pub fn membership_of(document: &Document) -> Membership {
    let volumes = document
        .volumes
        .iter()
        .map(|m| VolumeRecord {
            id: m.id.clone(),
            url: m.url.clone(),
            weight: m.weight,
            zone: m.zone.clone(),
            subvolumes: m.subvolumes,
        })
        .collect();
    Membership { volumes, removed: document.removed.clone() }
}

/// The name a gateway process gives itself on its probes: the cluster id and a random
/// per-process part, so that one gateway's goodbye does not hide another that still runs.
pub fn gateway_name(cluster_id: &str) -> String {
    format!("{cluster_id}/{}", hex::encode(rand::random::<[u8; 8]>()))
}

/// Writes the current membership to every member volume that does not hold it yet, until
/// `shutdown`; see the module docs.
pub async fn push(cluster: Cluster, client: VolumeClient, shutdown: CancellationToken) {
    // The epoch each volume (by id) is known to hold.
    let mut held: HashMap<String, u64> = HashMap::new();
    loop {
        let document = cluster.document();
        let due: Vec<&Member> = document
            .volumes
            .iter()
            .filter(|v| held.get(&v.id).is_none_or(|epoch| *epoch < document.epoch))
            .filter(|v| client.health().is_up(&v.url))
            .collect();
        let results = futures::future::join_all(due.iter().map(|v| client.put_membership(&v.url, &document))).await;
        for (volume, result) in due.iter().zip(results) {
            match result {
                Ok(epoch) => {
                    if epoch > document.epoch {
                        tracing::warn!(
                            url = %volume.url,
                            volume_epoch = epoch,
                            epoch = document.epoch,
                            "volume holds a newer membership than this gateway's index; it keeps it until the next change"
                        );
                    }
                    held.insert(volume.id.clone(), epoch);
                }
                Err(Error::Config(refused)) => {
                    tracing::error!(volume_id = %volume.id, "{refused}");
                    // Not again until the membership changes.
                    held.insert(volume.id.clone(), document.epoch);
                }
                Err(err) => tracing::debug!(url = %volume.url, %err, "membership not written yet; tried again"),
            }
        }
        held.retain(|id, _| document.volumes.iter().any(|v| v.id == *id));
        // A change made before the shutdown is still pushed.
        tokio::select! {
            biased;
            () = cluster.changed() => {}
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Tells every member volume that the gateway named `gateway` stopped (on a clean shutdown),
/// so that a rebuild may start at once; waits [`LEAVE_WITHIN`] at most.
pub async fn leave(cluster: &Cluster, client: &VolumeClient, gateway: &str) {
    let urls: Vec<String> = cluster.membership().volumes.iter().map(|v| v.url.clone()).collect();
    let said = futures::future::join_all(urls.iter().map(|url| client.leave(url, gateway)));
    match tokio::time::timeout(LEAVE_WITHIN, said).await {
        Ok(results) => {
            for (url, result) in urls.iter().zip(results) {
                if let Err(err) = result {
                    tracing::warn!(%url, %err, "volume did not take the gateway's goodbye; a rebuild waits until it has not heard from the gateway for a few seconds");
                }
            }
        }
        Err(_) => tracing::warn!("volumes did not take the gateway's goodbye in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_the_whole_membership() {
        let membership = Membership {
            volumes: vec![VolumeRecord {
                id: "v1".into(),
                url: "http://a".into(),
                weight: 2.5,
                zone: Some("rack-1".into()),
                subvolumes: 3,
            }],
            removed: vec!["v0".into()],
        };
        let document = document("c", 7, &membership);
        assert_eq!((document.cluster_id.as_str(), document.epoch), ("c", 7));
        assert_eq!(membership_of(&document), membership);
    }
}
