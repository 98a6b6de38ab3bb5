//! Cluster-wide jobs: one record per kind (`gc`, `verify`, `rebalance`, and the `repair`
//! lease), in `meta` under `job/<kind>`, so that every gateway over the index sees the same
//! job and at most one runs each kind.
//!
//! A record is a lease without clocks: its owner bumps `lease` with every write (at least
//! every couple of seconds while it runs), and other gateways judge it dead only by their own
//! monotonic clocks, when they have seen the same `lease` for long enough (`admin::jobs`).
//! Every write here checks, in one transaction, that the record is still what its writer
//! last saw: a start refuses while a job runs, a renewal or the end is fenced once another
//! owner took over, and a takeover happens only if nobody wrote meanwhile.

use serde::{Deserialize, Serialize};

use super::{Index, read_in, write_in};
use crate::engine::Table;
use crate::error::Result;
use crate::in_transaction;

/// `running`: its owner runs it (or died, and it waits for a takeover).
pub const RUNNING: &str = "running";

fn key_of(kind: &str) -> Vec<u8> {
    format!("job/{kind}").into_bytes()
}

/// The running or last job of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `gc`, `verify`, `rebalance`, `repair`.
    pub kind: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// The owning gateway's instance id (random per process).
    pub owner: String,
    /// The owner's admin API address, for the operator.
    pub owner_address: String,
    /// Bumped by every write: the owner's renewals are how others see it alive.
    pub lease: u64,
    /// The owner stopped cleanly without finishing: take it over without waiting.
    pub released: bool,
    /// Times another gateway took the job over from a dead (or stopped) owner.
    pub takeovers: u64,
    /// Unix ms of the last write, for the operator only: liveness never compares clocks.
    pub written_ms: u64,
    /// What the job was started with (JSON), to resume it.
    pub params: String,
    /// The job's progress (JSON), as the admin API shows it.
    pub progress: String,
    /// Where to resume (JSON); what it means is the job's business.
    pub checkpoint: Option<String>,
}

impl JobRecord {
    /// Whether its owner runs it (or ran it until it died).
    pub fn running(&self) -> bool {
        self.state == RUNNING
    }
}

/// What a renewal or the end of a job found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Still ours; the record's `lease` is now this.
    Held(u64),
    /// Another owner took over (or the record changed under us): stop, write nothing more.
    Lost,
}

impl Index {
    /// The record of a kind of job.
    pub async fn job(&self, kind: &str) -> Result<Option<JobRecord>> {
        self.read(Table::Meta, &key_of(kind)).await
    }

    /// Starts `record` (state `running`, lease 0) unless a job of its kind is running: `None`
    /// when started, else the running job's record (and nothing is written).
    pub async fn begin_job(&self, record: &JobRecord) -> Result<Option<JobRecord>> {
        let key = key_of(&record.kind);
        in_transaction!(self.engine, tx, {
            if let Some(current) = read_in::<JobRecord>(tx, Table::Meta, &key).await?
                && current.running()
            {
                return Ok(Some(current));
            }
            write_in(tx, Table::Meta, &key, record)?;
            Ok(None)
        })
    }

    /// The owner's renewal: writes its progress and checkpoint and bumps the lease, if the
    /// record is still its own at lease `lease`.
    pub async fn renew_job(
        &self,
        kind: &str,
        owner: &str,
        lease: u64,
        progress: &str,
        checkpoint: Option<&str>,
        now_ms: u64,
    ) -> Result<Lease> {
        let key = key_of(kind);
        in_transaction!(self.engine, tx, {
            let Some(mut record) = read_in::<JobRecord>(tx, Table::Meta, &key)
                .await?
                .filter(|r| r.running() && r.owner == owner && r.lease == lease)
            else {
                return Ok(Lease::Lost);
            };
            record.lease += 1;
            record.written_ms = now_ms;
            record.progress = progress.to_string();
            record.checkpoint = checkpoint.map(str::to_string);
            write_in(tx, Table::Meta, &key, &record)?;
            Ok(Lease::Held(record.lease))
        })
    }

    /// Records how the owner's job ended (`done` or `failed`) with its last progress, if the
    /// record is still its own at lease `lease`.
    pub async fn finish_job(
        &self,
        kind: &str,
        owner: &str,
        lease: u64,
        state: &str,
        progress: &str,
        now_ms: u64,
    ) -> Result<Lease> {
        let key = key_of(kind);
        in_transaction!(self.engine, tx, {
            let Some(mut record) = read_in::<JobRecord>(tx, Table::Meta, &key)
                .await?
                .filter(|r| r.running() && r.owner == owner && r.lease == lease)
            else {
                return Ok(Lease::Lost);
            };
            record.lease += 1;
            record.written_ms = now_ms;
            record.state = state.to_string();
            record.progress = progress.to_string();
            write_in(tx, Table::Meta, &key, &record)?;
            Ok(Lease::Held(record.lease))
        })
    }

    /// The owner stops without finishing (a clean shutdown): the job stays `running` with its
    /// progress and checkpoint, marked for another gateway to take over at once.
    pub async fn release_job(
        &self,
        kind: &str,
        owner: &str,
        lease: u64,
        progress: &str,
        checkpoint: Option<&str>,
        now_ms: u64,
    ) -> Result<Lease> {
        let key = key_of(kind);
        in_transaction!(self.engine, tx, {
            let Some(mut record) = read_in::<JobRecord>(tx, Table::Meta, &key)
                .await?
                .filter(|r| r.running() && r.owner == owner && r.lease == lease)
            else {
                return Ok(Lease::Lost);
            };
            record.lease += 1;
            record.written_ms = now_ms;
            record.released = true;
            record.progress = progress.to_string();
            record.checkpoint = checkpoint.map(str::to_string);
            write_in(tx, Table::Meta, &key, &record)?;
            Ok(Lease::Held(record.lease))
        })
    }

    /// Makes `owner` the owner of a running job whose lease is still `seen` (nobody wrote it
    /// since the caller judged its owner dead); the record as taken over, or `None`.
    pub async fn take_over_job(
        &self,
        kind: &str,
        owner: &str,
        owner_address: &str,
        seen: u64,
        now_ms: u64,
    ) -> Result<Option<JobRecord>> {
        let key = key_of(kind);
        in_transaction!(self.engine, tx, {
            let Some(mut record) =
                read_in::<JobRecord>(tx, Table::Meta, &key).await?.filter(|r| r.running() && r.lease == seen)
            else {
                return Ok(None);
            };
            record.lease += 1;
            record.written_ms = now_ms;
            record.owner = owner.to_string();
            record.owner_address = owner_address.to_string();
            record.released = false;
            record.takeovers += 1;
            write_in(tx, Table::Meta, &key, &record)?;
            Ok(Some(record))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(kind: &str, owner: &str) -> JobRecord {
        JobRecord {
            kind: kind.into(),
            state: RUNNING.into(),
            owner: owner.into(),
            owner_address: format!("{owner}:9001"),
            lease: 0,
            released: false,
            takeovers: 0,
            written_ms: 1,
            params: "{}".into(),
            progress: "{}".into(),
            checkpoint: None,
        }
    }

    /// The record's rules on any engine: one running job per kind, renewals and the end fenced
    /// by the lease, takeovers only of the lease the taker saw.
    async fn lease_rules(index: &Index) {
        assert_eq!(index.begin_job(&started("gc", "a")).await.unwrap(), None);
        let refused = index.begin_job(&started("gc", "b")).await.unwrap().unwrap();
        assert_eq!(refused.owner, "a", "a second start is refused while the first runs");
        // Another kind is independent.
        assert_eq!(index.begin_job(&started("verify", "b")).await.unwrap(), None);

        assert_eq!(index.renew_job("gc", "a", 0, "{\"n\":1}", Some("\"k\""), 2).await.unwrap(), Lease::Held(1));
        // A takeover of a lease that was renewed since it was seen does nothing.
        assert_eq!(index.take_over_job("gc", "b", "b:9001", 0, 3).await.unwrap(), None);
        let taken = index.take_over_job("gc", "b", "b:9001", 1, 3).await.unwrap().unwrap();
        assert_eq!((taken.owner.as_str(), taken.lease, taken.takeovers), ("b", 2, 1));
        assert_eq!((taken.progress.as_str(), taken.checkpoint.as_deref()), ("{\"n\":1}", Some("\"k\"")));
        // The old owner is fenced: neither its renewal nor its end writes anything.
        assert_eq!(index.renew_job("gc", "a", 1, "{}", None, 4).await.unwrap(), Lease::Lost);
        assert_eq!(index.finish_job("gc", "a", 1, "done", "{}", 4).await.unwrap(), Lease::Lost);
        assert_eq!(index.job("gc").await.unwrap().unwrap(), taken);

        // A clean stop releases the job, still running, for the next owner.
        assert_eq!(index.release_job("gc", "b", 2, "{\"n\":2}", Some("\"m\""), 5).await.unwrap(), Lease::Held(3));
        let released = index.job("gc").await.unwrap().unwrap();
        assert!(released.running() && released.released, "{released:?}");
        let resumed = index.take_over_job("gc", "c", "c:9001", 3, 6).await.unwrap().unwrap();
        assert!(!resumed.released && resumed.takeovers == 2 && resumed.checkpoint.as_deref() == Some("\"m\""));

        // Once it ends, a new job may start.
        assert_eq!(index.finish_job("gc", "c", 4, "done", "{\"n\":3}", 7).await.unwrap(), Lease::Held(5));
        assert_eq!(
            index.take_over_job("gc", "d", "d:9001", 5, 8).await.unwrap(),
            None,
            "an ended job is not taken over"
        );
        assert_eq!(index.begin_job(&started("gc", "d")).await.unwrap(), None);
        assert_eq!(index.job("gc").await.unwrap().unwrap().owner, "d");
    }

    #[tokio::test]
    async fn job_leases_on_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        lease_rules(&index).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn job_leases_on_postgres() {
        use crate::engine::postgres::PostgresEngine;
        use crate::engine::postgres::test_postgres::TestPostgres;
        let Some(server) = TestPostgres::start("job_leases_on_postgres") else { return };
        let url = server.create_database();
        let engine = std::sync::Arc::new(PostgresEngine::connect(&url).await.unwrap());
        let index = Index::with_engine(engine).await.unwrap();
        lease_rules(&index).await;
    }
}
