//! The gateways serving the index, and the blobs they are writing.
//!
//! Every gateway registers itself (a random instance id, its addresses) and beats: it bumps a
//! counter in its row every second. A peer takes a gateway for dead when its counter has not
//! moved for a while *by the peer's own clock* (see `crate::gateways`), so no two machines'
//! clocks are ever compared; it then **reaps** it: the row goes, and with it the in-flight
//! claims of the blobs that gateway was writing, in one transaction.
//!
//! A claim (`in_flight` table, blob id `\0` claim id → gateway id) is written before a blob's
//! first byte leaves the gateway, and GC on any gateway never collects a blob that has one.
//! The commit that makes the blob current **consumes** its claim in the same transaction
//! ([`Index::consume_claim`]): it reads the claim and deletes it, and fails when it is gone.
//! That is what keeps GC exact across gateways: a gateway that was reaped (paused, cut off)
//! while writing can never commit the blob afterwards, because the reaper deleted the same
//! row (the engine lets only one of two transactions deleting one row commit), and GC could
//! only have taken the blob once the claim was gone.
//!
//! An embedded (RocksDB) index admits one process: claims stay in that process's memory
//! (`crate::in_flight`) and nothing is written here for them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Index, read_in, write_in};
use crate::engine::{Engine, Table, Transaction};
use crate::error::{Error, Result};
use crate::in_transaction;

/// One gateway serving the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRecord {
    /// Its instance id (random per process).
    pub id: String,
    /// Its S3 listener.
    pub s3_address: String,
    /// Its admin listener.
    pub admin_address: String,
    /// When it started, unix milliseconds (its clock).
    pub started_ms: u64,
    /// Heartbeats so far; peers watch it move.
    pub beats: u64,
    /// The last heartbeat, unix milliseconds (its clock; for people, not for liveness).
    pub beat_ms: u64,
}

/// Claims whose blob id starts a key: `blob id \0`.
fn claim_prefix(blob_id: &str) -> Vec<u8> {
    let mut key = blob_id.as_bytes().to_vec();
    key.push(0);
    key
}

/// A claim's key: `blob id \0 claim id`.
pub fn claim_key(blob_id: &str, claim_id: &str) -> Vec<u8> {
    let mut key = claim_prefix(blob_id);
    key.extend_from_slice(claim_id.as_bytes());
    key
}

/// The blob id of a claim's key.
fn claim_blob(key: &[u8]) -> String {
    let end = key.iter().position(|&b| b == 0).unwrap_or(key.len());
    String::from_utf8_lossy(&key[..end]).into_owned()
}

/// The gateways registered in `engine` whose heartbeats move while watched for `watch` (more
/// than a beat): those that are serving it. An offline tool asks this without opening the
/// engine as an index (which writes); rows that do not move were left by killed gateways.
pub async fn live_gateways(engine: &dyn Engine, watch: std::time::Duration) -> Result<Vec<GatewayRecord>> {
    let registered = |rows: Vec<crate::engine::Row>| -> Result<Vec<GatewayRecord>> {
        rows.iter().map(|(_, value)| super::records::decode(value)).collect()
    };
    let before = registered(engine.scan(Table::Gateways, b"", None, 1000).await?)?;
    if before.is_empty() {
        return Ok(before);
    }
    tokio::time::sleep(watch).await;
    let after = registered(engine.scan(Table::Gateways, b"", None, 1000).await?)?;
    Ok(after.into_iter().filter(|now| before.iter().all(|then| then.id != now.id || then.beats != now.beats)).collect())
}

impl Index {
    /// Registers (or re-registers) a gateway.
    pub async fn register_gateway(&self, record: &GatewayRecord) -> Result<()> {
        in_transaction!(self.engine, tx, { write_in(tx, Table::Gateways, record.id.as_bytes(), record) })
    }

    /// Bumps the heartbeat of gateway `id`; `false` if it is not registered any more (peers
    /// reaped it).
    pub async fn beat(&self, id: &str, now_ms: u64) -> Result<bool> {
        in_transaction!(self.engine, tx, {
            let Some(mut record) = read_in::<GatewayRecord>(tx, Table::Gateways, id.as_bytes()).await? else {
                return Ok(false);
            };
            record.beats += 1;
            record.beat_ms = now_ms;
            write_in(tx, Table::Gateways, id.as_bytes(), &record)?;
            Ok(true)
        })
    }

    /// Every registered gateway.
    pub async fn gateways(&self) -> Result<Vec<GatewayRecord>> {
        let rows = self.scan_all(Table::Gateways, b"", None).await?;
        rows.iter().map(|(_, value)| super::records::decode(value)).collect()
    }

    /// Removes gateway `id` and its claims, if its heartbeat count is still `beats` (it did
    /// not beat since the caller judged it dead); returns the claims dropped, or `None` when
    /// it beat meanwhile or is gone already.
    pub async fn reap_gateway(&self, id: &str, beats: u64) -> Result<Option<usize>> {
        in_transaction!(self.engine, tx, {
            match read_in::<GatewayRecord>(tx, Table::Gateways, id.as_bytes()).await? {
                Some(record) if record.beats == beats => {
                    tx.delete(Table::Gateways, id.as_bytes());
                    Ok(Some(self.drop_claims_of(tx, id).await?))
                }
                _ => Ok(None),
            }
        })
    }

    /// Removes gateway `id` and its claims (its own clean stop).
    pub async fn unregister_gateway(&self, id: &str) -> Result<()> {
        in_transaction!(self.engine, tx, {
            tx.delete(Table::Gateways, id.as_bytes());
            self.drop_claims_of(tx, id).await?;
            Ok(())
        })
    }

    /// Deletes in `tx` every claim of gateway `id`; returns how many. Claims live only while
    /// blobs are written, so the table is small.
    async fn drop_claims_of(&self, tx: &mut dyn Transaction, id: &str) -> Result<usize> {
        let mut dropped = 0;
        let mut from = Vec::new();
        loop {
            let rows = tx.scan(Table::InFlight, &from, None, super::SCAN_PAGE).await?;
            for (key, owner) in &rows {
                if owner == id.as_bytes() {
                    tx.delete(Table::InFlight, key);
                    dropped += 1;
                }
            }
            match rows.last() {
                Some((last, _)) if rows.len() == super::SCAN_PAGE => {
                    from = last.clone();
                    from.push(0);
                }
                _ => return Ok(dropped),
            }
        }
    }

    /// Records that gateway `gateway` is writing blob `blob_id` (claim `claim_id`).
    pub async fn claim(&self, blob_id: &str, claim_id: &str, gateway: &str) -> Result<()> {
        in_transaction!(self.engine, tx, {
            tx.put(Table::InFlight, &claim_key(blob_id, claim_id), gateway.as_bytes());
            Ok(())
        })
    }

    /// Drops claims (a write that ended without a commit, or a job's copy that ended).
    pub async fn unclaim(&self, keys: &[Vec<u8>]) -> Result<()> {
        in_transaction!(self.engine, tx, {
            for key in keys {
                tx.delete(Table::InFlight, key);
            }
            Ok(())
        })
    }

    /// Blob ids any gateway is writing.
    pub async fn claimed_blobs(&self) -> Result<HashSet<String>> {
        let rows = self.scan_all(Table::InFlight, b"", None).await?;
        Ok(rows.iter().map(|(key, _)| claim_blob(key)).collect())
    }

    /// On a shared index, consumes in `tx` the claims of `blob_id`, which a commit making it
    /// current must do: fails with [`Error::ClaimLost`] when there is none left, because peers
    /// reaped this gateway and GC may have taken the blob. (No-op on an embedded index.)
    pub(super) async fn consume_claim(&self, tx: &mut dyn Transaction, blob_id: &str) -> Result<()> {
        if !self.engine.shared() {
            return Ok(());
        }
        let prefix = claim_prefix(blob_id);
        let end = super::prefix_end(&prefix);
        let claims = tx.scan(Table::InFlight, &prefix, end.as_deref(), 16).await?;
        if claims.is_empty() {
            return Err(Error::ClaimLost(blob_id.to_string()));
        }
        for (key, _) in &claims {
            tx.delete(Table::InFlight, key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(id: &str) -> GatewayRecord {
        GatewayRecord {
            id: id.into(),
            s3_address: "127.0.0.1:9000".into(),
            admin_address: "127.0.0.1:9001".into(),
            started_ms: 1,
            beats: 0,
            beat_ms: 1,
        }
    }

    #[tokio::test]
    async fn a_gateway_is_reaped_with_its_claims_only_if_it_did_not_beat_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.register_gateway(&gateway("a")).await.unwrap();
        index.register_gateway(&gateway("b")).await.unwrap();
        index.claim("blob1", "c1", "a").await.unwrap();
        index.claim("blob2", "c2", "b").await.unwrap();
        assert!(index.beat("a", 5).await.unwrap());
        assert_eq!(index.claimed_blobs().await.unwrap(), HashSet::from(["blob1".into(), "blob2".into()]));

        // Judged dead at 0 beats, but it beat since: not reaped.
        assert_eq!(index.reap_gateway("a", 0).await.unwrap(), None);
        assert_eq!(index.reap_gateway("a", 1).await.unwrap(), Some(1));
        assert!(!index.beat("a", 6).await.unwrap(), "a reaped gateway learns it on its next beat");
        assert_eq!(index.claimed_blobs().await.unwrap(), HashSet::from(["blob2".into()]));
        assert_eq!(index.gateways().await.unwrap().iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["b"]);
        index.unregister_gateway("b").await.unwrap();
        assert!(index.claimed_blobs().await.unwrap().is_empty());
    }
}

#[cfg(test)]
mod on_postgres {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;
    use crate::engine::postgres::PostgresEngine;
    use crate::engine::postgres::test_postgres::TestPostgres;
    use crate::index::records::{BlobRef, ObjectEntry, ObjectRecord, Replica, SystemHeaders};

    fn entry(ts: u64, blob: &str) -> ObjectEntry {
        ObjectEntry::Live(Box::new(ObjectRecord {
            ts,
            modified_ms: ts / 1000,
            size: 1,
            etag: "e".into(),
            sha256: "s".into(),
            headers: SystemHeaders::default(),
            user_meta: vec![],
            tags: vec![],
            checksum: None,
            parts: vec![],
            blob: BlobRef { id: blob.into(), replicas: vec![Replica { volume: "v".into(), subvolume: 0 }] },
            tags_blob: None,
            version: Default::default(),
            lock: Default::default(),
            lock_blob: None,
            acl: None,
            acl_blob: None,
        }))
    }

    /// A gateway reaped while writing can never commit the blob afterwards, so GC (which
    /// collects a blob once its claim is gone) can never take one that a record then names.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_commit_consumes_its_claim_and_fails_once_the_gateway_was_reaped() {
        let Some(server) = TestPostgres::start("a_commit_consumes_its_claim") else { return };
        let url = server.create_database();
        let index = Arc::new(Index::with_engine(Arc::new(PostgresEngine::connect(&url).await.unwrap())).await.unwrap());
        index.register_gateway(&GatewayRecord { id: "a".into(), ..gateway_record() }).await.unwrap();
        let bucket_blob = BlobRef { id: "bucket-blob".into(), replicas: vec![] };
        let refused = index.create_bucket("b", index.next_ts(), 1, &bucket_blob).await.unwrap_err();
        assert!(matches!(refused, Error::ClaimLost(_)), "no commit without a claim on a shared index: {refused:?}");
        index.claim("bucket-blob", "c0", "a").await.unwrap();
        assert!(index.create_bucket("b", index.next_ts(), 1, &bucket_blob).await.unwrap());

        index.claim("blob1", "c1", "a").await.unwrap();
        index.commit_object("b", "k1", &entry(index.next_ts(), "blob1"), None).await.unwrap();
        assert!(index.claimed_blobs().await.unwrap().is_empty(), "the commit consumed the claim");

        index.claim("blob2", "c2", "a").await.unwrap();
        assert_eq!(index.reap_gateway("a", 0).await.unwrap(), Some(1));
        let refused = index.commit_object("b", "k2", &entry(index.next_ts(), "blob2"), None).await.unwrap_err();
        assert!(matches!(refused, Error::ClaimLost(ref id) if id == "blob2"), "{refused:?}");
        assert!(index.object("b", "k2").await.unwrap().is_none());
    }

    fn gateway_record() -> GatewayRecord {
        GatewayRecord {
            id: String::new(),
            s3_address: "127.0.0.1:1".into(),
            admin_address: "127.0.0.1:2".into(),
            started_ms: 0,
            beats: 0,
            beat_ms: 0,
        }
    }
}
