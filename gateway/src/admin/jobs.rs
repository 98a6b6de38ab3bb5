//! What every background job shares: one run at a time per kind, and progress that the
//! admin API reads while it runs and after it ends.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::Failure;
use crate::time::now_ms;

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
}

/// A job's progress: its own counters around a [`JobStatus`].
pub trait Progress: Clone + Default + Send + 'static {
    /// The shared part.
    fn status(&mut self) -> &mut JobStatus;
    /// Items done and items in all, for a progress bar.
    fn done_of(&self) -> (u64, u64);
}

/// Holds the running or last job of one kind.
#[derive(Debug, Default)]
pub(crate) struct JobSlot<P> {
    progress: Arc<Mutex<Option<P>>>,
}

impl<P> Clone for JobSlot<P> {
    fn clone(&self) -> Self {
        Self { progress: self.progress.clone() }
    }
}

impl<P: Progress> JobSlot<P> {
    /// The running or last job.
    pub(crate) fn last(&self) -> Option<P> {
        self.progress.lock().ok().and_then(|p| p.clone())
    }

    /// Claims the slot for a new job with `initial` counters; `409` if one is running.
    pub(crate) fn begin(&self, mut initial: P) -> Result<(), Failure> {
        let mut guard = self.progress.lock().map_err(|_| Failure(StatusCode::INTERNAL_SERVER_ERROR, "lock".into()))?;
        if let Some(current) = guard.as_mut()
            && current.status().state == "running"
        {
            return Err(Failure(StatusCode::CONFLICT, "a job of this kind is already running".into()));
        }
        *initial.status() = JobStatus { state: "running".into(), started_ms: now_ms(), ..Default::default() };
        *guard = Some(initial);
        Ok(())
    }

    /// Changes the counters.
    pub(crate) fn update(&self, change: impl FnOnce(&mut P)) {
        if let Ok(mut guard) = self.progress.lock()
            && let Some(progress) = guard.as_mut()
        {
            change(progress);
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

    /// Runs `job` in the background and records how it ended.
    pub(crate) fn spawn<F>(&self, kind: &'static str, job: F)
    where
        P: std::fmt::Debug,
        F: std::future::Future<Output = crate::Result<()>> + Send + 'static,
    {
        let slot = self.clone();
        tokio::spawn(async move {
            let outcome = job.await;
            slot.finish(&outcome);
            match outcome {
                Ok(()) => tracing::info!(kind, progress = ?slot.last(), "job finished"),
                Err(err) => tracing::error!(kind, %err, "job failed"),
            }
        });
    }

    /// Records how the job ended.
    fn finish(&self, outcome: &crate::Result<()>) {
        self.update(|p| {
            let status = p.status();
            status.finished_ms = Some(now_ms());
            match outcome {
                Ok(()) => status.state = "done".into(),
                Err(err) => {
                    status.state = "failed".into();
                    status.last_error = Some(err.to_string());
                }
            }
        });
    }
}
