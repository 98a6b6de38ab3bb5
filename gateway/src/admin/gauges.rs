//! Gauges read from the index when Prometheus scrapes `/metrics`: the GC queue (length and
//! bytes), the engine's own figures and the jobs' progress. The GC queue is counted by walking
//! it, so a walk is skipped while the last one is recent compared with how long it took: a
//! scrape every few seconds never spends more than a tenth of a core on it, however long the
//! queue grows, while a short queue is counted afresh at every scrape.

use std::time::{Duration, Instant};

use metrics::{describe_gauge, gauge};

use super::AdminApi;
use super::jobs::{JobSlot, Progress};

/// A walk is repeated only after ten times its own duration has passed.
const IDLE_FACTOR: u32 = 10;
/// A scrape waits at most this long for the walk; the gauges keep their last values meanwhile.
const WALK_WAIT: Duration = Duration::from_secs(5);

/// When the GC queue was last walked and how long that took.
#[derive(Debug, Default)]
pub(crate) struct IndexGauges {
    last_walk: tokio::sync::Mutex<Option<(Instant, Duration)>>,
}

impl IndexGauges {
    /// Sets the gauges from the index (see the module docs); failures are logged and leave
    /// the old values, so a scrape always answers.
    pub(crate) async fn refresh(&self, api: &AdminApi) {
        describe();
        self.walk_gc_queue(api).await;
        match api.index.engine_stats().await {
            Ok(stats) => {
                for stat in stats {
                    describe_gauge!(stat.name, stat.help);
                    match stat.table {
                        Some(table) => gauge!(stat.name, "table" => table.name()).set(stat.value),
                        None => gauge!(stat.name).set(stat.value),
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "reading the index engine's statistics failed"),
        }
        job(&api.gc).await;
        job(&api.verify).await;
        job(&api.rebalance).await;
    }

    async fn walk_gc_queue(&self, api: &AdminApi) {
        // One walk at a time: a scrape that comes while another walks waits for it, then
        // finds it recent.
        let Ok(mut last_walk) = tokio::time::timeout(WALK_WAIT, self.last_walk.lock()).await else { return };
        if let Some((at, took)) = *last_walk
            && at.elapsed() < took * IDLE_FACTOR
        {
            return;
        }
        let started = Instant::now();
        match tokio::time::timeout(WALK_WAIT, api.index.gc_queue_totals()).await {
            Ok(Ok((blobs, bytes))) => {
                gauge!("cairn_gc_queue_length").set(blobs as f64);
                gauge!("cairn_gc_queue_bytes").set(bytes as f64);
            }
            Ok(Err(err)) => tracing::warn!(%err, "counting the GC queue failed"),
            Err(_) => {
                tracing::warn!("counting the GC queue took longer than {WALK_WAIT:?}; the gauges keep their values")
            }
        }
        *last_walk = Some((Instant::now(), started.elapsed()));
    }
}

/// Sets the gauges of one kind of job from its running or last run.
async fn job<P: Progress + serde::Serialize + serde::de::DeserializeOwned + Sync>(slot: &JobSlot<P>) {
    let kind = slot.kind();
    match slot.read().await {
        Ok(Some(mut progress)) => {
            let (done, total) = progress.done_of();
            let status = progress.status();
            let running = status.state == crate::index::JOB_RUNNING;
            gauge!("cairn_job_running", "job" => kind).set(if running { 1.0 } else { 0.0 });
            gauge!("cairn_job_items_done", "job" => kind).set(done as f64);
            gauge!("cairn_job_items_total", "job" => kind).set(total as f64);
            gauge!("cairn_job_errors", "job" => kind).set(status.errors as f64);
        }
        Ok(None) => gauge!("cairn_job_running", "job" => kind).set(0.0),
        Err(err) => tracing::warn!(%err, job = kind, "reading the job's progress failed"),
    }
}

fn describe() {
    describe_gauge!("cairn_gc_queue_length", "Blobs waiting for GC");
    describe_gauge!("cairn_gc_queue_bytes", "Object bytes in the blobs waiting for GC");
    describe_gauge!("cairn_job_running", "Whether a job of this kind runs in the cluster now (1) or not (0)");
    describe_gauge!("cairn_job_items_done", "Items the running or last job of this kind has done");
    describe_gauge!("cairn_job_items_total", "Items the running or last job of this kind had to do (0: not known yet)");
    describe_gauge!("cairn_job_errors", "Failures the running or last job of this kind went on after");
}
