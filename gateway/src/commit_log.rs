//! Proof of commit on the volumes. A rebuild has only the volumes to go by, so a blob that
//! reached them but was never committed (a crash between the volume writes and the index
//! commit, the loser of a conditional write) must not pass for a committed one: the id of
//! every blob a commit makes current goes into the commit log of each volume holding a copy
//! (volumed's `commit_log`), with its commit order, and rebuild trusts only blobs some log
//! names, ordering a key's versions as their commits were.
//!
//! The index commit stays the commit point. It also records the blob as unlogged; the request
//! then appends the id to the logs before it answers, and drops the unlogged mark once every
//! copy's log has it. Whatever is left unlogged (a volume down, a crash) is appended by the
//! repairer's next round. Appends to one log and clearings of marks are batched across
//! concurrent requests (`crate::batch`): one request per log and one commit carry all that
//! waited.

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::index::Index;
use crate::index::records::{BlobRef, CommitOrder};
use crate::volume_client::{Commit, VolumeClient};

/// The commit-log record of `blob_id` committed as `commit` says.
pub fn record(blob_id: &str, commit: CommitOrder) -> Commit {
    Commit { id: blob_id.to_string(), order: commit.order, kind: commit.version.code() }
}

/// Appends `blob`'s id with its commit order and version (what the index keeps with it) to
/// the commit log of every volume holding a copy; once all have it, drops its unlogged mark.
/// Whether every log has it now.
pub async fn log(
    index: &Arc<Index>,
    cluster: &Cluster,
    volumes: &VolumeClient,
    blob: &BlobRef,
    commit: CommitOrder,
) -> bool {
    let appends = blob.replicas.iter().map(|replica| async move {
        // A volume no longer in the cluster (removed for good) has no log to keep.
        let Some(url) = cluster.url_of(&replica.volume) else { return Some(()) };
        let commit = record(&blob.id, commit);
        match volumes.append_commit(&url, replica.subvolume, commit).await {
            Ok(()) => Some(()),
            Err(err) => {
                tracing::warn!(blob = %blob.id, %url, %err, "commit not logged on a volume yet; the repairer retries");
                None
            }
        }
    });
    let all = futures::future::join_all(appends).await.iter().all(Option::is_some);
    if all {
        index.logged(&blob.id);
    }
    all
}
