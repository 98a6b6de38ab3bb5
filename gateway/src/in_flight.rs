//! Blobs being written right now: registered before their first byte reaches a volume and
//! released only after the index commit that references them (or the failure that orphans
//! them). GC never takes a registered blob for an orphan.
//!
//! On an embedded index (one gateway) the registry is this process's memory. On a shared index
//! every registration is also a claim row in the index (`index::gateways`), written before the
//! first byte leaves, so GC on any gateway sees it; the commit that makes the blob current
//! consumes the claim in its own transaction. A released claim is deleted in the background
//! (batched, by [`InFlight::flush`]): until then GC only leaves the blob alone a little longer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::index::{Index, claim_key};

/// The registry, shared by the S3 handlers and the jobs.
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Claim id → blob id.
    local: Mutex<HashMap<String, String>>,
    /// Set on a shared index: the index and this gateway's instance id.
    shared: Option<(Arc<Index>, String)>,
    /// Claim keys released but not yet deleted from the index.
    released: Mutex<Vec<Vec<u8>>>,
}

/// Keeps a blob registered until dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    inner: Arc<Inner>,
    claim: String,
    blob: String,
}

impl InFlight {
    /// A registry whose claims are also rows of the shared `index`, owned by gateway `gateway`.
    pub fn shared(index: Arc<Index>, gateway: String) -> Self {
        Self { inner: Arc::new(Inner { shared: Some((index, gateway)), ..Inner::default() }) }
    }

    /// Registers `blob_id` until the guard is dropped; on a shared index, once the claim is
    /// durable in the index.
    pub async fn register(&self, blob_id: &str) -> Result<InFlightGuard> {
        let claim = hex::encode(rand::random::<[u8; 8]>());
        if let Ok(mut local) = self.inner.local.lock() {
            local.insert(claim.clone(), blob_id.to_string());
        }
        let guard = InFlightGuard { inner: self.inner.clone(), claim, blob: blob_id.to_string() };
        if let Some((index, gateway)) = &self.inner.shared {
            // On failure the guard's drop forgets the claim again.
            index.claim(blob_id, &guard.claim, gateway).await?;
        }
        Ok(guard)
    }

    /// Every blob being written: by this process and, on a shared index, by any gateway.
    pub async fn blob_ids(&self) -> Result<HashSet<String>> {
        let mut ids: HashSet<String> =
            self.inner.local.lock().map(|local| local.values().cloned().collect()).unwrap_or_default();
        if let Some((index, _)) = &self.inner.shared {
            ids.extend(index.claimed_blobs().await?);
        }
        Ok(ids)
    }

    /// Deletes the claims released since the last call from the index, in one transaction
    /// (those a commit consumed are gone already; deleting them again is harmless). On failure
    /// they are kept for the next call.
    pub async fn flush(&self) -> Result<()> {
        let Some((index, _)) = &self.inner.shared else { return Ok(()) };
        let released = self.inner.released.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
        if released.is_empty() {
            return Ok(());
        }
        if let Err(err) = index.unclaim(&released).await {
            if let Ok(mut kept) = self.inner.released.lock() {
                kept.extend(released);
            }
            return Err(err);
        }
        Ok(())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut local) = self.inner.local.lock() {
            local.remove(&self.claim);
        }
        if self.inner.shared.is_some()
            && let Ok(mut released) = self.inner.released.lock()
        {
            released.push(claim_key(&self.blob, &self.claim));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn guards_register_until_dropped() {
        let in_flight = InFlight::default();
        let guard = in_flight.register("a").await.unwrap();
        assert!(in_flight.blob_ids().await.unwrap().contains("a"));
        drop(guard);
        assert!(in_flight.blob_ids().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn on_a_shared_index_claims_are_rows_until_flushed_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(Index::open(dir.path()).await.unwrap());
        let mine = InFlight::shared(index.clone(), "gw1".into());
        // Another gateway's view: only the index.
        let theirs = InFlight::shared(index.clone(), "gw2".into());
        let guard = mine.register("blob").await.unwrap();
        assert!(theirs.blob_ids().await.unwrap().contains("blob"));
        drop(guard);
        assert!(theirs.blob_ids().await.unwrap().contains("blob"), "still claimed until flushed");
        mine.flush().await.unwrap();
        assert!(theirs.blob_ids().await.unwrap().is_empty());
    }
}
