//! The gateway lease: one gateway at a time serves an index. Several gateways over one index
//! (a shared PostgreSQL) need a cross-gateway clock, shared in-flight blobs for GC and
//! cluster-wide jobs, which are not built yet; until they are, a second gateway on an index
//! another one serves refuses to start instead of silently breaking those guarantees. (On
//! RocksDB the directory lock already keeps a second process out.)
//!
//! The holder renews its lease well before it expires and releases it on a clean shutdown; a
//! gateway that was killed holds the index until its lease runs out.

use serde::{Deserialize, Serialize};

use super::records::decode;
use super::{Index, read_in, write_in};
use crate::engine::{Engine, Table};
use crate::error::{Error, Result};
use crate::in_transaction;

const META_LEASE: &[u8] = b"gateway_lease";

/// Who serves the index, and until when (unless renewed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayLease {
    /// The holder's instance id (random per process).
    pub holder: String,
    /// Where it listens, for the refusal message.
    pub address: String,
    /// Unix milliseconds after which the lease is free.
    pub expires_ms: u64,
}

/// The lease stored in an engine, if any: an offline tool reads it to refuse an index a
/// gateway may still serve, without opening it as an index (which writes).
pub async fn stored_lease(engine: &dyn Engine) -> Result<Option<GatewayLease>> {
    engine.get(Table::Meta, META_LEASE).await?.map(|bytes| decode(&bytes)).transpose()
}

impl Index {
    /// Takes or renews the lease for `holder` until `now_ms + ttl_ms`. Refused with the holder
    /// named while another gateway's lease is unexpired.
    pub async fn claim_lease(&self, holder: &str, address: &str, now_ms: u64, ttl_ms: u64) -> Result<()> {
        in_transaction!(self.engine, tx, {
            if let Some(held) = read_in::<GatewayLease>(tx, Table::Meta, META_LEASE).await?
                && held.holder != holder
                && held.expires_ms > now_ms
            {
                return Err(Error::Config(format!(
                    "another gateway ({} at {}) serves this index for {} more ms; several gateways over one index are not supported yet (a gateway that was killed holds it until its lease runs out)",
                    held.holder,
                    held.address,
                    held.expires_ms - now_ms
                )));
            }
            let lease =
                GatewayLease { holder: holder.to_string(), address: address.to_string(), expires_ms: now_ms + ttl_ms };
            write_in(tx, Table::Meta, META_LEASE, &lease)
        })
    }

    /// Gives the lease up if `holder` has it (a clean shutdown).
    pub async fn release_lease(&self, holder: &str) -> Result<()> {
        in_transaction!(self.engine, tx, {
            if read_in::<GatewayLease>(tx, Table::Meta, META_LEASE).await?.is_some_and(|held| held.holder == holder) {
                tx.delete(Table::Meta, META_LEASE);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_gateway_holds_the_lease_until_it_expires_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.claim_lease("a", "10.0.0.1:9000", 1_000, 10_000).await.unwrap();
        index.claim_lease("a", "10.0.0.1:9000", 5_000, 10_000).await.unwrap();
        let refused = index.claim_lease("b", "10.0.0.2:9000", 14_000, 10_000).await.unwrap_err().to_string();
        assert!(refused.contains("a at 10.0.0.1:9000") && refused.contains("1000 more ms"), "{refused}");
        // Expired: free.
        index.claim_lease("b", "10.0.0.2:9000", 15_001, 10_000).await.unwrap();
        // Released by its holder only.
        index.release_lease("a").await.unwrap();
        assert!(index.claim_lease("c", "x", 16_000, 10_000).await.is_err());
        index.release_lease("b").await.unwrap();
        index.claim_lease("c", "x", 16_000, 10_000).await.unwrap();
    }
}
