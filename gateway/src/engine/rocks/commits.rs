//! Group commit: one thread writes every transaction's batch to RocksDB, gathering all the
//! commits that arrived while the previous synced write ran into the next one, so concurrent
//! commits share one WAL fsync instead of queueing behind each other's.
//!
//! The thread also decides conflicts (see `versions`): it checks each gathered transaction's
//! reads against the batches registered since it started, in arrival order, registering each
//! accepted one's writes before checking the next, so two transactions of one batch are
//! ordered exactly as if they had committed one after the other. A refused transaction is
//! answered at once with a conflict (its caller runs it again) and never waits for the write.
//! The bookkeeping lock is held only around those checks, never across the write.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::{mpsc, oneshot};

use super::versions::{ReadSet, TableKey, Versions};
use super::{Write, cf, table_key};
use crate::error::{Error, Result};

/// Commits waiting for the thread; a full queue makes committers wait (it is bounded).
const QUEUE: usize = 1024;
/// Transactions written in one batch at most, so one fsync's latency stays bounded.
const MAX_BATCH: usize = 512;

/// A transaction handed to the commit thread.
struct Commit {
    start: u64,
    reads: ReadSet,
    writes: Vec<Write>,
    done: oneshot::Sender<Result<()>>,
}

/// The commit thread and the conflict bookkeeping it shares with transactions.
pub(super) struct Committer {
    versions: Arc<Mutex<Versions>>,
    queue: Option<mpsc::Sender<Commit>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(super) fn start(db: Arc<DB>) -> Result<Self> {
        let versions = Arc::new(Mutex::new(Versions::default()));
        let (queue, waiting) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("index-commit".into())
            .spawn({
                let versions = versions.clone();
                move || run(&db, &versions, waiting)
            })
            .map_err(|e| Error::Index(format!("cannot start the index commit thread: {e}")))?;
        Ok(Self { versions, queue: Some(queue), thread: Some(thread) })
    }

    pub(super) fn versions(&self) -> MutexGuard<'_, Versions> {
        lock(&self.versions)
    }

    /// Commits `writes` unless a batch after `start` wrote what `reads` covers.
    pub(super) async fn commit(&self, start: u64, reads: ReadSet, writes: Vec<Write>) -> Result<()> {
        let queue = self.queue.as_ref().ok_or_else(|| Error::Index("the index is closing".into()))?;
        let (done, outcome) = oneshot::channel();
        queue
            .send(Commit { start, reads, writes, done })
            .await
            .map_err(|_| Error::Index("the index commit thread has stopped".into()))?;
        outcome.await.map_err(|_| Error::Index("the index commit thread has stopped".into()))?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has answered what it holds; waiting for it
        // means the database is closed (its lock released) when the engine is gone.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(versions: &Mutex<Versions>) -> MutexGuard<'_, Versions> {
    // The bookkeeping stays consistent even if a holder panicked: every change is one step.
    versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run(db: &DB, versions: &Mutex<Versions>, mut waiting: mpsc::Receiver<Commit>) {
    while let Some(first) = waiting.blocking_recv() {
        let mut gathered = vec![first];
        while gathered.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(commit) => gathered.push(commit),
                Err(_) => break,
            }
        }
        let mut batch = WriteBatch::default();
        let mut accepted = Vec::with_capacity(gathered.len());
        let number = {
            let mut versions = lock(versions);
            let number = versions.next_batch();
            for commit in gathered {
                if versions.conflicts(commit.start, &commit.reads) {
                    let _ =
                        commit.done.send(Err(Error::Conflict("a concurrent commit wrote what this one read".into())));
                    continue;
                }
                match add_writes(db, &mut batch, commit.writes) {
                    Ok(keys) => {
                        versions.register(number, keys);
                        accepted.push(commit.done);
                    }
                    Err(err) => {
                        let _ = commit.done.send(Err(err));
                    }
                }
            }
            number
        };
        let written = if batch.is_empty() {
            Ok(())
        } else {
            let mut options = WriteOptions::default();
            options.set_sync(true);
            db.write_opt(batch, &options).map_err(|e| e.to_string())
        };
        lock(versions).applied(number);
        for done in accepted {
            let _ = done.send(written.clone().map_err(Error::Index));
        }
    }
}

/// Adds one transaction's writes to `batch` (all of them or, on an error, none); returns the
/// keys they write.
fn add_writes(db: &DB, batch: &mut WriteBatch, writes: Vec<Write>) -> Result<Vec<TableKey>> {
    let tables = writes.iter().map(|write| cf(db, write.table())).collect::<Result<Vec<_>>>()?;
    let mut keys = Vec::with_capacity(writes.len());
    for (write, table) in writes.into_iter().zip(tables) {
        match write {
            Write::Put(name, key, value) => {
                batch.put_cf(table, &key, value);
                keys.push(table_key(name, &key));
            }
            Write::Delete(name, key) => {
                batch.delete_cf(table, &key);
                keys.push(table_key(name, &key));
            }
        }
    }
    Ok(keys)
}
