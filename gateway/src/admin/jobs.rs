//! What every background job shares: one run at a time per kind for the whole cluster, and
//! progress that every gateway's admin API reads while it runs and after it ends.
//!
//! The job of a kind is a record in the index (`index::jobs`): its owner (this process's
//! [`Instance`]), its parameters, its progress and its checkpoint. Starting one is a
//! transaction that refuses while one runs. The owner keeps the progress in memory and
//! writes it with the checkpoint every [`RENEW_EVERY`], which bumps the record's lease; the
//! admin API of every gateway reads the record.
//!
//! Liveness never compares clocks between machines: every gateway's watcher
//! ([`super::AdminApi::watch_jobs`]) reads the records each second and notes, by its own
//! monotonic clock, when each running record's lease last changed. One unchanged for [`TTL`]
//! is taken over (a transaction that checks the lease is still the one seen) and its job
//! resumes here from its checkpoint with its stored parameters. An owner whose renewal finds
//! the record changed stops its job at once and writes nothing more; one that cannot renew
//! for [`SELF_FENCE`] (half the TTL) stops too, before anyone may take over. On a RocksDB
//! index the gateway is alone ([`Instance::sole`]): a running record it does not run is a
//! dead process's, taken over at once.
//!
//! The lease keeps two runs of a kind apart in all but pathological cases (a renewal whose
//! commit outcome is unknown, a process paused for longer than the TTL); each job's steps are
//! safe to run twice or concurrently anyway (conditional index writes, idempotent deletes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Failure;
use crate::error::{Error, Result};
use crate::index::{Index, JOB_RUNNING, JobLease, JobRecord};
use crate::time::now_ms;

/// A running record unchanged this long (by the watcher's own clock) has a dead owner.
pub const TTL: Duration = Duration::from_secs(10);
/// How often an owner writes its progress and bumps its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// An owner that could not renew for this long stops its job: well before [`TTL`], so that
/// it has stopped before another gateway may take over.
pub const SELF_FENCE: Duration = Duration::from_secs(5);
/// A renewal slower than this counts as failed.
const RENEW_TIMEOUT: Duration = Duration::from_secs(2);
/// How often each gateway reads the job records.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// The kind of the repairer's lease.
pub const REPAIR: &str = "repair";

/// The state every job reports, flattened into its progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobStatus {
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Start, unix milliseconds.
    pub started_ms: u64,
    /// End, unix milliseconds.
    pub finished_ms: Option<u64>,
    /// Failures the job went on after (a volume down, …); a rerun retries them.
    pub errors: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// The instance id of the gateway running it (or that ran it last).
    #[serde(default)]
    pub owner: String,
    /// That gateway's admin API address.
    #[serde(default)]
    pub owner_address: String,
    /// Times a gateway took the job over from one that died or stopped.
    #[serde(default)]
    pub takeovers: u64,
}

/// A job's progress: its own counters around a [`JobStatus`].
pub trait Progress: Clone + Default + Send + 'static {
    /// The shared part.
    fn status(&mut self) -> &mut JobStatus;
    /// Items done and items in all, for a progress bar.
    fn done_of(&self) -> (u64, u64);
}

/// This gateway process as the owner of jobs.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Random per process: a restarted gateway is a new owner.
    pub id: String,
    /// Its admin API address, shown as the owner's.
    pub address: String,
    /// The only gateway of its index (RocksDB, whose directory lock admits one process): any
    /// running job it does not run itself belongs to a dead process.
    pub sole: bool,
}

impl Instance {
    /// A new instance listening at `address`.
    pub fn new(address: impl Into<String>, sole: bool) -> Self {
        Self { id: hex::encode(rand::random::<[u8; 8]>()), address: address.into(), sole }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Index(format!("job record: {e}")))
}

/// Decodes a JSON part of a job record.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Index(format!("job record: {e}")))
}

/// The job of one kind that runs in this process.
#[derive(Debug)]
struct Local<P> {
    progress: P,
    /// JSON, the job's own format.
    checkpoint: Option<String>,
    /// The record's lease as this process last wrote it.
    lease: u64,
    /// Cancelled to stop the job (fenced, or the gateway stopping).
    stop: CancellationToken,
    /// Stopping because the gateway stops: hand the job over instead of abandoning it.
    release: bool,
}

/// What a renewal writes, taken from [`Local`] at once.
struct Snapshot {
    lease: u64,
    progress: String,
    checkpoint: Option<String>,
    release: bool,
}

/// The job of one kind: the record in the index, and the run in this process if it runs here.
#[derive(Debug)]
pub(crate) struct JobSlot<P> {
    kind: &'static str,
    index: Arc<Index>,
    me: Instance,
    local: Arc<Mutex<Option<Local<P>>>>,
}

impl<P> Clone for JobSlot<P> {
    fn clone(&self) -> Self {
        Self { kind: self.kind, index: self.index.clone(), me: self.me.clone(), local: self.local.clone() }
    }
}

impl<P: Progress + Serialize + DeserializeOwned + Sync> JobSlot<P> {
    pub(crate) fn new(kind: &'static str, index: Arc<Index>, me: Instance) -> Self {
        Self { kind, index, me, local: Arc::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Local<P>>> {
        // The guarded state stays consistent whatever panicked while holding it.
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kind of job (`gc`, `verify`, `rebalance`).
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether the job of this kind runs in this process.
    pub(crate) fn runs_here(&self) -> bool {
        self.lock().is_some()
    }

    /// The progress of the job running here.
    pub(crate) fn last(&self) -> Option<P> {
        self.lock().as_ref().map(|local| local.progress.clone())
    }

    /// The running or last job of this kind in the cluster: this process's own progress if it
    /// runs it (fresher than its last renewal), else the record's.
    pub(crate) async fn read(&self) -> Result<Option<P>> {
        if let Some(progress) = self.last() {
            return Ok(Some(progress));
        }
        let Some(record) = self.index.job(self.kind).await? else { return Ok(None) };
        progress_of(&record).map(Some)
    }

    /// Starts a job of this kind with `initial` counters and `params` (what resuming it
    /// needs); `409` if one runs anywhere in the cluster.
    pub(crate) async fn begin<Q: Serialize>(&self, mut initial: P, params: &Q) -> Result<P, Failure> {
        *initial.status() = JobStatus {
            state: JOB_RUNNING.into(),
            started_ms: now_ms(),
            owner: self.me.id.clone(),
            owner_address: self.me.address.clone(),
            ..Default::default()
        };
        {
            let mut local = self.lock();
            if local.is_some() {
                return Err(Failure(StatusCode::CONFLICT, self.refusal(&self.me.address, &self.me.id)));
            }
            // Claimed here first, so that this process's watcher never takes the new record
            // for a dead owner's.
            *local = Some(Local {
                progress: initial.clone(),
                checkpoint: None,
                lease: 0,
                stop: CancellationToken::new(),
                release: false,
            });
        }
        let outcome = async {
            let record = JobRecord {
                kind: self.kind.to_string(),
                state: JOB_RUNNING.into(),
                owner: self.me.id.clone(),
                owner_address: self.me.address.clone(),
                lease: 0,
                released: false,
                takeovers: 0,
                written_ms: now_ms(),
                params: to_json(params)?,
                progress: to_json(&initial)?,
                checkpoint: None,
            };
            self.index.begin_job(&record).await
        }
        .await;
        match outcome {
            Ok(None) => Ok(initial),
            Ok(Some(current)) => {
                *self.lock() = None;
                Err(Failure(StatusCode::CONFLICT, self.refusal(&current.owner_address, &current.owner)))
            }
            Err(err) => {
                *self.lock() = None;
                Err(err.into())
            }
        }
    }

    fn refusal(&self, address: &str, owner: &str) -> String {
        format!(
            "a job of this kind is already running (the {} of the gateway at {address}, instance {owner})",
            self.kind
        )
    }

    /// Changes the counters.
    pub(crate) fn update(&self, change: impl FnOnce(&mut P)) {
        if let Some(local) = self.lock().as_mut() {
            change(&mut local.progress);
        }
    }

    /// Changes the counters and the checkpoint together (they are written together).
    pub(crate) fn advance<C: Serialize>(&self, checkpoint: &C, change: impl FnOnce(&mut P)) {
        let Ok(checkpoint) = to_json(checkpoint) else { return };
        if let Some(local) = self.lock().as_mut() {
            change(&mut local.progress);
            local.checkpoint = Some(checkpoint);
        }
    }

    /// Counts a failure the job goes on after.
    pub(crate) fn failed(&self, err: &crate::Error) {
        self.update(|p| {
            let status = p.status();
            status.errors += 1;
            status.last_error = Some(err.to_string());
        });
    }

    /// Takes over the running job whose record still has lease `seen`: returns the record
    /// and its progress, now this process's, for the caller to resume; `None` if the record
    /// changed meanwhile or a job of this kind already runs here.
    pub(crate) async fn take_over(&self, seen: u64) -> Result<Option<(JobRecord, P)>> {
        {
            let mut local = self.lock();
            if local.is_some() {
                return Ok(None);
            }
            // Reserved while the transaction runs, so that a start here waits its turn.
            *local = Some(Local {
                progress: P::default(),
                checkpoint: None,
                lease: 0,
                stop: CancellationToken::new(),
                release: false,
            });
        }
        let taken = self.index.take_over_job(self.kind, &self.me.id, &self.me.address, seen, now_ms()).await;
        let outcome = match taken {
            Ok(Some(record)) => progress_of::<P>(&record).map(|progress| Some((record, progress))),
            Ok(None) => Ok(None),
            Err(err) => Err(err),
        };
        let mut local = self.lock();
        match &outcome {
            Ok(Some((record, progress))) => {
                if let Some(local) = local.as_mut() {
                    local.progress = progress.clone();
                    local.checkpoint = record.checkpoint.clone();
                    local.lease = record.lease;
                }
            }
            _ => *local = None,
        }
        outcome
    }

    /// Runs `job` (begun or taken over) in the background, renewing the lease meanwhile, and
    /// records how it ended; stops it when another gateway takes it over.
    pub(crate) fn spawn<F>(&self, job: F)
    where
        F: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let Some(stop) = self.lock().as_ref().map(|local| local.stop.clone()) else { return };
        let slot = self.clone();
        tokio::spawn(async move {
            let done = CancellationToken::new();
            let keeper = tokio::spawn(slot.clone().keep(stop.clone(), done.clone()));
            let outcome = tokio::select! {
                outcome = job => Some(outcome),
                () = stop.cancelled() => None,
            };
            done.cancel();
            let _ = keeper.await;
            slot.end(outcome).await;
        });
    }

    /// Renews the lease every [`RENEW_EVERY`] until `done`; cancels `stop` when the record is
    /// lost to another owner or could not be renewed for [`SELF_FENCE`].
    async fn keep(self, stop: CancellationToken, done: CancellationToken) {
        let kind = self.kind;
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(RENEW_EVERY) => {}
                () = done.cancelled() => return,
            }
            match tokio::time::timeout(RENEW_TIMEOUT, self.renew()).await {
                Ok(Ok(JobLease::Held(_))) => renewed = Instant::now(),
                Ok(Ok(JobLease::Lost)) => {
                    tracing::warn!(kind, "another gateway took the job over; stopping it here");
                    stop.cancel();
                    return;
                }
                Ok(Err(err)) => tracing::warn!(kind, %err, "job lease not renewed"),
                Err(_) => tracing::warn!(kind, "job lease not renewed in time"),
            }
            if renewed.elapsed() >= SELF_FENCE {
                tracing::error!(
                    kind,
                    "job lease not renewed for {SELF_FENCE:?}; stopping the job for another gateway to take over"
                );
                stop.cancel();
                return;
            }
        }
    }

    /// The owner's state as a renewal writes it.
    fn snapshot(&self) -> Result<Option<Snapshot>> {
        let local = self.lock();
        let Some(local) = local.as_ref() else { return Ok(None) };
        Ok(Some(Snapshot {
            lease: local.lease,
            progress: to_json(&local.progress)?,
            checkpoint: local.checkpoint.clone(),
            release: local.release,
        }))
    }

    async fn renew(&self) -> Result<JobLease> {
        let Some(Snapshot { lease, progress, checkpoint, .. }) = self.snapshot()? else { return Ok(JobLease::Lost) };
        let renewed =
            self.index.renew_job(self.kind, &self.me.id, lease, &progress, checkpoint.as_deref(), now_ms()).await?;
        if let JobLease::Held(lease) = renewed
            && let Some(local) = self.lock().as_mut()
        {
            local.lease = lease;
        }
        Ok(renewed)
    }

    /// Records how the job ended (`None`: stopped), then frees the slot.
    async fn end(&self, outcome: Option<Result<()>>) {
        let kind = self.kind;
        let state = match &outcome {
            Some(Ok(())) => "done",
            Some(Err(_)) => "failed",
            None => JOB_RUNNING,
        };
        self.update(|p| {
            let status = p.status();
            if let Some(outcome) = &outcome {
                status.state = state.into();
                status.finished_ms = Some(now_ms());
                if let Err(err) = outcome {
                    status.last_error = Some(err.to_string());
                }
            }
        });
        let written = match self.snapshot() {
            Ok(Some(Snapshot { lease, progress, checkpoint, release })) => match &outcome {
                Some(_) => self.index.finish_job(kind, &self.me.id, lease, state, &progress, now_ms()).await,
                None if release => {
                    self.index.release_job(kind, &self.me.id, lease, &progress, checkpoint.as_deref(), now_ms()).await
                }
                // Fenced: the record is another owner's now.
                None => Ok(JobLease::Lost),
            },
            Ok(None) => Ok(JobLease::Lost),
            Err(err) => Err(err),
        };
        match (&outcome, written) {
            (Some(Ok(())), Ok(JobLease::Held(_))) => {
                tracing::info!(kind, progress = ?self.last().map(|p| to_json(&p).ok()), "job finished")
            }
            (Some(Err(err)), Ok(JobLease::Held(_))) => tracing::error!(kind, %err, "job failed"),
            (None, Ok(JobLease::Held(_))) => tracing::info!(kind, "job handed over for another gateway to resume"),
            (None, Ok(JobLease::Lost)) => tracing::info!(kind, "job stopped here"),
            (Some(_), Ok(JobLease::Lost)) => {
                tracing::warn!(kind, "job ended after another gateway took it over; its end is not recorded")
            }
            (_, Err(err)) => {
                tracing::error!(kind, %err, "could not record how the job ended; another gateway resumes it")
            }
        }
        *self.lock() = None;
    }

    /// Stops the job running here for another gateway to resume at once (the gateway stops).
    pub(crate) async fn release(&self) {
        let stop = {
            let mut local = self.lock();
            let Some(local) = local.as_mut() else { return };
            local.release = true;
            local.stop.clone()
        };
        stop.cancel();
        let deadline = Instant::now() + RENEW_TIMEOUT * 2;
        while self.runs_here() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A record's progress, with the record's state and owner.
fn progress_of<P: Progress + DeserializeOwned>(record: &JobRecord) -> Result<P> {
    let mut progress: P = from_json(&record.progress)?;
    let status = progress.status();
    status.state = record.state.clone();
    status.owner = record.owner.clone();
    status.owner_address = record.owner_address.clone();
    status.takeovers = record.takeovers;
    Ok(progress)
}

/// What a gateway's watcher has seen of each running record: its owner and lease, and when
/// (by this gateway's monotonic clock) it last saw them change.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    seen: HashMap<String, (String, u64, Instant)>,
}

impl Observer {
    /// Notes `record` as read at `now`; whether its owner counts as dead: it released the
    /// job, or this gateway is the index's only one, or the lease has not changed for
    /// [`TTL`]. (Whether the job runs in this very process is the caller's to check.)
    pub(crate) fn dead_owner(&mut self, record: &JobRecord, now: Instant, sole: bool) -> bool {
        let seen = self.seen.entry(record.kind.clone()).or_insert_with(|| (record.owner.clone(), record.lease, now));
        if seen.0 != record.owner || seen.1 != record.lease {
            *seen = (record.owner.clone(), record.lease, now);
        }
        record.running() && (record.released || sole || now.duration_since(seen.2) >= TTL)
    }
}

/// The repairer's lease: one gateway of the cluster repairs; the others only queue the
/// damage their reads find. A record of kind [`REPAIR`] that stays `running` while its
/// holder lives, renewed by the holder's watcher, taken over like a job's when it dies.
#[derive(Debug, Clone, Default)]
pub struct RepairLease {
    /// The lease as last written, and when.
    held: Arc<Mutex<Option<(u64, Instant)>>>,
}

impl RepairLease {
    fn lock(&self) -> MutexGuard<'_, Option<(u64, Instant)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this gateway holds the lease (renewed within [`SELF_FENCE`]).
    pub fn held(&self) -> bool {
        self.lock().is_some_and(|(_, at)| at.elapsed() < SELF_FENCE)
    }

    /// One turn of the watcher: renews the lease held here, or claims it when nobody holds
    /// it or its holder is dead (`dead_holder`, the [`Observer`]'s verdict on `record`).
    pub(crate) async fn tick(
        &self,
        index: &Index,
        me: &Instance,
        record: Option<JobRecord>,
        dead_holder: bool,
    ) -> Result<()> {
        let held = *self.lock();
        let now = now_ms();
        let result = match (held, record) {
            (Some((lease, _)), _) => match index.renew_job(REPAIR, &me.id, lease, "{}", None, now).await? {
                JobLease::Held(lease) => Some(lease),
                JobLease::Lost => {
                    tracing::warn!("another gateway took the repairer's lease; this one stops repairing");
                    None
                }
            },
            (None, Some(current)) if current.running() => {
                if dead_holder {
                    index.take_over_job(REPAIR, &me.id, &me.address, current.lease, now).await?.map(|r| r.lease)
                } else {
                    None
                }
            }
            // Nobody holds it: claim it (the first gateway to get there does).
            (None, _) => {
                let record = JobRecord {
                    kind: REPAIR.into(),
                    state: JOB_RUNNING.into(),
                    owner: me.id.clone(),
                    owner_address: me.address.clone(),
                    lease: 0,
                    released: false,
                    takeovers: 0,
                    written_ms: now,
                    params: "{}".into(),
                    progress: "{}".into(),
                    checkpoint: None,
                };
                index.begin_job(&record).await?.is_none().then_some(0)
            }
        };
        if result.is_some() && held.is_none() {
            tracing::info!(instance = %me.id, "this gateway repairs for the cluster");
        }
        *self.lock() = result.map(|lease| (lease, Instant::now()));
        Ok(())
    }

    /// Hands the lease over (the gateway stops), for another gateway to claim at once.
    pub(crate) async fn release(&self, index: &Index, me: &Instance) {
        let Some((lease, _)) = self.lock().take() else { return };
        if let Err(err) = index.release_job(REPAIR, &me.id, lease, "{}", None, now_ms()).await {
            tracing::warn!(%err, "could not hand the repairer's lease over; another gateway takes it when it expires");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct Count {
        #[serde(flatten)]
        status: JobStatus,
        n: u64,
    }

    impl Progress for Count {
        fn status(&mut self) -> &mut JobStatus {
            &mut self.status
        }
        fn done_of(&self) -> (u64, u64) {
            (self.n, 0)
        }
    }

    fn record(owner: &str, lease: u64) -> JobRecord {
        JobRecord {
            kind: "gc".into(),
            state: "running".into(),
            owner: owner.into(),
            owner_address: String::new(),
            lease,
            released: false,
            takeovers: 0,
            written_ms: 0,
            params: "{}".into(),
            progress: "{}".into(),
            checkpoint: None,
        }
    }

    #[test]
    fn an_owner_is_dead_only_once_its_lease_is_unchanged_for_the_ttl() {
        let mut observer = Observer::default();
        let t0 = Instant::now();
        assert!(!observer.dead_owner(&record("a", 1), t0, false));
        assert!(!observer.dead_owner(&record("a", 1), t0 + TTL - Duration::from_millis(1), false));
        // A renewal restarts the wait.
        assert!(!observer.dead_owner(&record("a", 2), t0 + TTL, false));
        assert!(!observer.dead_owner(&record("a", 2), t0 + TTL + TTL / 2, false));
        assert!(observer.dead_owner(&record("a", 2), t0 + TTL * 2, false));
        // A new owner restarts it too; a released record or a sole gateway does not wait.
        assert!(!observer.dead_owner(&record("b", 2), t0 + TTL * 3, false));
        assert!(observer.dead_owner(&JobRecord { released: true, ..record("b", 3) }, t0 + TTL * 3, false));
        assert!(observer.dead_owner(&record("c", 9), t0 + TTL * 3, true));
        // An ended job has no owner to outlive.
        assert!(!observer.dead_owner(&JobRecord { state: "done".into(), ..record("c", 9) }, t0 + TTL * 9, false));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_runs_once_reports_everywhere_and_stops_when_fenced() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(Index::open(dir.path()).await.unwrap());
        let a = JobSlot::<Count>::new("gc", index.clone(), Instance::new("a:9001", false));
        let b = JobSlot::<Count>::new("gc", index.clone(), Instance::new("b:9001", false));
        a.begin(Count::default(), &()).await.unwrap();
        let refused = b.begin(Count::default(), &()).await.unwrap_err();
        assert_eq!(refused.0, StatusCode::CONFLICT);
        assert!(refused.1.starts_with("a job of this kind is already running") && refused.1.contains("a:9001"));
        assert!(!b.runs_here());

        // A job that counts until stopped.
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job = {
            let (a, stopped) = (a.clone(), stopped.clone());
            async move {
                let _flag = scopeguard(stopped);
                for _ in 0..1000 {
                    a.advance(&"k", |p| p.n += 1);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(())
            }
        };
        a.spawn(job);
        // Renewed every second: two renewals, however busy the machine (a deadline, not a
        // timing: the test suite runs many tests at once).
        let deadline = Instant::now() + RENEW_EVERY * 20;
        loop {
            let lease = index.job("gc").await.unwrap().unwrap().lease;
            if lease >= 2 {
                break;
            }
            assert!(Instant::now() < deadline, "renewed every second: {lease}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen = b.read().await.unwrap().unwrap();
        assert!(seen.n > 0 && seen.status.owner == a.me.id && seen.status.state == "running", "{seen:?}");

        // b takes over (as its watcher does once the lease stood still): a stops promptly.
        let current = index.job("gc").await.unwrap().unwrap();
        let (taken, progress) = b.take_over(current.lease).await.unwrap().unwrap();
        assert_eq!(
            (taken.owner.as_str(), taken.takeovers, taken.checkpoint.as_deref()),
            (b.me.id.as_str(), 1, Some("\"k\""))
        );
        assert!(progress.n > 0);
        // Its next renewal finds the record taken (within a second, or a few on a busy machine).
        let deadline = Instant::now() + RENEW_EVERY * 10;
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stopped.load(std::sync::atomic::Ordering::SeqCst), "the fenced owner stopped its job");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!a.runs_here());
        assert_eq!(index.job("gc").await.unwrap().unwrap(), taken, "the fenced owner wrote nothing more");

        // b finishes it: done for everyone, and a new job may start.
        b.spawn(async { Ok(()) });
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.runs_here() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = a.read().await.unwrap().unwrap();
        assert_eq!((done.status.state.as_str(), done.status.owner.as_str()), ("done", b.me.id.as_str()));
        a.begin(Count::default(), &()).await.unwrap();
    }

    /// Sets the flag when dropped: the job's future was dropped (stopped).
    fn scopeguard(flag: Arc<std::sync::atomic::AtomicBool>) -> impl Drop {
        struct Guard(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Guard(flag)
    }

    #[tokio::test]
    async fn one_gateway_repairs_and_another_takes_over_when_it_dies() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        let (a, b) = (Instance::new("a", false), Instance::new("b", false));
        let (lease_a, lease_b) = (RepairLease::default(), RepairLease::default());
        lease_a.tick(&index, &a, index.job(REPAIR).await.unwrap(), false).await.unwrap();
        lease_b.tick(&index, &b, index.job(REPAIR).await.unwrap(), false).await.unwrap();
        assert!(lease_a.held() && !lease_b.held());
        lease_a.tick(&index, &a, index.job(REPAIR).await.unwrap(), false).await.unwrap();
        assert_eq!(index.job(REPAIR).await.unwrap().unwrap().lease, 1);
        // a's holder is judged dead: b takes over, and a's next renewal finds it lost.
        lease_b.tick(&index, &b, index.job(REPAIR).await.unwrap(), true).await.unwrap();
        assert!(lease_b.held());
        lease_a.tick(&index, &a, index.job(REPAIR).await.unwrap(), false).await.unwrap();
        assert!(!lease_a.held());
        // A clean stop hands it over.
        lease_b.release(&index, &b).await;
        let released = index.job(REPAIR).await.unwrap().unwrap();
        assert!(released.released && !lease_b.held());
    }
}
