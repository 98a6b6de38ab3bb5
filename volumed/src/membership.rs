//! What a volume knows of the cluster it belongs to, so that a rebuild can recover the
//! membership from the volumes alone and tell a missing volume or one of another cluster.
//!
//! **The membership document** (`PUT`/`GET /membership`) is pushed by the gateway after every
//! membership change: the cluster id, an epoch that grows with every change, and every volume
//! with its URL, weight, zone and subvolume count, plus the ids of removed volumes. It is
//! opaque here except for two rules: the first document a volume stores binds it to that
//! cluster id (a document of another cluster is refused with `409`), and an older epoch never
//! replaces a newer one. It is written durably into every data directory (temp file, fsync,
//! rename, fsync of the directory), so any one disk of the volume is enough to recover it;
//! at startup the newest copy wins.
//!
//! **Gateways seen.** A gateway names itself ([`GATEWAY_HEADER`]) on its health probe, and says
//! goodbye (`DELETE /gateway`) when it shuts down cleanly. The daemon remembers, in memory,
//! when each gateway last did so, and `/stats` reports the most recent as
//! `gateway_seen_ms_ago`: an offline rebuild refuses to run while a gateway still uses the
//! volumes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the membership file in every data directory.
pub const FILE: &str = "cairn-membership.json";
/// Header by which a gateway names itself (its cluster id and a per-process id).
pub const GATEWAY_HEADER: &str = "x-cairn-gateway";
/// Largest membership document accepted (thousands of volumes fit).
pub const MAX_DOCUMENT: usize = 1024 * 1024;
/// Most gateways remembered at once; the one heard from longest ago is forgotten first.
const MAX_GATEWAYS: usize = 64;
/// Longest gateway name remembered.
const MAX_GATEWAY_NAME: usize = 200;

/// The cluster's membership as the gateway pushes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The cluster's id, made when its index was created.
    pub cluster_id: String,
    /// Grows with every membership change; the highest wins.
    pub epoch: u64,
    /// Every member volume, in ring order.
    pub volumes: Vec<Member>,
    /// Ids of volumes removed from the cluster.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// One member volume in a [`Document`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The volume's id (from its data directories).
    pub id: String,
    /// Where the gateway last reached it.
    pub url: String,
    /// Placement weight.
    pub weight: f64,
    /// Failure domain.
    pub zone: Option<String>,
    /// Number of subvolumes.
    pub subvolumes: u32,
}

/// `PUT /membership` answer: the epoch the volume holds afterwards (higher than the one sent
/// if it already had a newer document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The epoch of the document the volume now holds.
    pub epoch: u64,
}

/// The stored document and the gateways heard from, shared by all requests.
#[derive(Debug)]
pub struct Membership {
    dirs: Vec<PathBuf>,
    /// The newest document; the lock also serialises writes of the files.
    current: tokio::sync::Mutex<Option<Document>>,
    /// When each gateway last named itself.
    gateways: Mutex<HashMap<String, Instant>>,
}

impl Membership {
    /// Loads the newest document found in `dirs` (none is fine: a volume no gateway has told
    /// yet). Copies naming different clusters are refused: the disks of two clusters' volumes
    /// were mixed up.
    pub fn open(dirs: &[PathBuf]) -> Result<Self> {
        let mut newest: Option<(Document, &Path)> = None;
        for dir in dirs {
            let path = dir.join(FILE);
            let text = match std::fs::read(&path) {
                Ok(text) => text,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err.into()),
            };
            let document: Document = match serde_json::from_slice(&text) {
                Ok(document) => document,
                Err(err) => {
                    // Another directory very likely has a good copy; the gateway pushes again.
                    tracing::warn!(path = %path.display(), %err, "unreadable membership file ignored");
                    continue;
                }
            };
            match &newest {
                Some((other, other_dir)) if other.cluster_id != document.cluster_id => {
                    return Err(Error::Config(format!(
                        "{} belongs to cluster {} but {} to cluster {}",
                        other_dir.display(),
                        other.cluster_id,
                        dir.display(),
                        document.cluster_id
                    )));
                }
                Some((other, _)) if other.epoch >= document.epoch => {}
                _ => newest = Some((document, dir)),
            }
        }
        Ok(Self {
            dirs: dirs.to_vec(),
            current: tokio::sync::Mutex::new(newest.map(|(document, _)| document)),
            gateways: Mutex::default(),
        })
    }

    /// The stored document, if any.
    pub async fn get(&self) -> Option<Document> {
        self.current.lock().await.clone()
    }

    /// Stores `document` unless the volume holds a newer one; refuses one of another cluster.
    pub async fn put(&self, document: Document) -> Result<Stored> {
        if document.cluster_id.is_empty() {
            return Err(Error::BadRequest("membership without a cluster id".into()));
        }
        let mut current = self.current.lock().await;
        if let Some(held) = current.as_ref() {
            if held.cluster_id != document.cluster_id {
                return Err(Error::Conflict(format!(
                    "this volume belongs to cluster {}, not to cluster {}",
                    held.cluster_id, document.cluster_id
                )));
            }
            if held.epoch > document.epoch || *held == document {
                return Ok(Stored { epoch: held.epoch });
            }
        }
        let bytes = serde_json::to_vec_pretty(&document).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let dirs = self.dirs.clone();
        tokio::task::spawn_blocking(move || {
            dirs.iter().try_for_each(|dir| crate::store::write_file_durably(&dir.join(FILE), &bytes))
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        let epoch = document.epoch;
        *current = Some(document);
        Ok(Stored { epoch })
    }

    /// A gateway named itself in a request.
    pub fn gateway_seen(&self, name: &str) {
        if name.is_empty() || name.len() > MAX_GATEWAY_NAME {
            return;
        }
        let mut gateways = self.gateways.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !gateways.contains_key(name) && gateways.len() >= MAX_GATEWAYS {
            let oldest = gateways.iter().min_by_key(|(_, at)| **at).map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                gateways.remove(&oldest);
            }
        }
        gateways.insert(name.to_string(), Instant::now());
    }

    /// A gateway shut down cleanly.
    pub fn gateway_left(&self, name: &str) {
        self.gateways.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(name);
    }

    /// How long ago the gateway heard from most recently named itself (`None`: never, or
    /// every gateway has left).
    pub fn gateway_seen_ago(&self) -> Option<Duration> {
        let gateways = self.gateways.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        gateways.values().map(Instant::elapsed).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(cluster: &str, epoch: u64) -> Document {
        let member =
            Member { id: "v1".into(), url: "http://a".into(), weight: 2.0, zone: Some("z".into()), subvolumes: 2 };
        Document { cluster_id: cluster.into(), epoch, volumes: vec![member], removed: vec!["v0".into()] }
    }

    #[tokio::test]
    async fn keeps_the_newest_epoch_in_every_directory_and_refuses_other_clusters() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("a"), root.path().join("b")];
        for dir in &dirs {
            std::fs::create_dir(dir).unwrap();
        }
        let membership = Membership::open(&dirs).unwrap();
        assert_eq!(membership.get().await, None);
        assert_eq!(membership.put(document("c1", 3)).await.unwrap(), Stored { epoch: 3 });
        // An older epoch does not replace it; the answer says what the volume holds.
        assert_eq!(membership.put(document("c1", 2)).await.unwrap(), Stored { epoch: 3 });
        let refused = membership.put(document("c2", 9)).await.unwrap_err();
        assert!(matches!(refused, Error::Conflict(_)) && refused.to_string().contains("belongs to cluster c1"));
        assert_eq!(membership.put(document("c1", 4)).await.unwrap(), Stored { epoch: 4 });
        drop(membership);

        // Each directory holds it; the newest copy wins when they differ (a disk written to
        // before a crash cut the other's write short).
        std::fs::write(dirs[1].join(FILE), serde_json::to_vec(&document("c1", 1)).unwrap()).unwrap();
        assert_eq!(Membership::open(&dirs).unwrap().get().await, Some(document("c1", 4)));
        std::fs::write(dirs[0].join(FILE), b"{torn").unwrap();
        assert_eq!(Membership::open(&dirs).unwrap().get().await, Some(document("c1", 1)));
        std::fs::write(dirs[0].join(FILE), serde_json::to_vec(&document("c2", 1)).unwrap()).unwrap();
        let mixed = Membership::open(&dirs).unwrap_err().to_string();
        assert!(mixed.contains("cluster c2") && mixed.contains("cluster c1"), "{mixed}");
    }

    #[test]
    fn remembers_gateways_until_they_leave() {
        let membership = Membership::open(&[]).unwrap();
        assert_eq!(membership.gateway_seen_ago(), None);
        membership.gateway_seen("c1/a");
        membership.gateway_seen("c1/b");
        assert!(membership.gateway_seen_ago().unwrap() < Duration::from_secs(1));
        membership.gateway_left("c1/a");
        assert!(membership.gateway_seen_ago().is_some(), "b is still there");
        membership.gateway_left("c1/b");
        assert_eq!(membership.gateway_seen_ago(), None);
        for i in 0..MAX_GATEWAYS * 2 {
            membership.gateway_seen(&format!("g{i}"));
        }
        assert_eq!(membership.gateways.lock().unwrap().len(), MAX_GATEWAYS);
    }
}
