//! The storage engine under the index: a small ordered key-value store with tables and
//! transactions, so the schema above it (records, commit rules, conditional writes, listings,
//! queues) is written once for every engine.
//!
//! Shaped like `object_store`: [`Engine`] is the small trait an engine implements (point get,
//! forward range scan, and a [`Transaction`] that reads, then writes a batch atomically);
//! [`transaction`] is the convenience the schema uses, which runs a piece of work in a
//! transaction and runs it again when the engine reports a conflict. Every engine passes the
//! same conformance suite (`conformance`, run by each engine's tests).
//!
//! Semantics every engine gives:
//! - keys and values are arbitrary bytes; scans return keys in unsigned byte order;
//! - a transaction's reads see committed data only (not its own pending writes), and its
//!   commit makes all its writes durable at once, or none of them;
//! - transactions are serializable: if another transaction committed a write to anything
//!   this one read (or would have read, for scans) after it read it, the commit fails with
//!   [`Error::Conflict`] and nothing is written;
//! - a commit that returned is durable (it survives a crash of the process and the machine).

pub mod copy;
pub mod postgres;
pub mod rocks;

#[cfg(test)]
pub(crate) mod conformance;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::config::IndexLocation;
use crate::error::{Error, Result};

/// Opens the engine at `location`: the RocksDB directory (created if missing) or the
/// PostgreSQL database (its tables created if missing). The gateway and the offline tools open
/// an index the same way.
pub async fn open(location: &IndexLocation) -> Result<Arc<dyn Engine>> {
    Ok(match location {
        IndexLocation::RocksDb(dir) => Arc::new(rocks::RocksEngine::open(dir)?),
        IndexLocation::Postgres(url) => Arc::new(postgres::PostgresEngine::connect(url).await?),
    })
}

/// The index's tables (a RocksDB column family, an SQL table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Buckets by name.
    Buckets,
    /// Object entries by bucket and key.
    Objects,
    /// Multipart uploads in progress.
    Uploads,
    /// Their parts.
    Parts,
    /// Access keys.
    Keys,
    /// The GC queue.
    Gc,
    /// The GC queue by bucket and key.
    GcKeys,
    /// Recently completed uploads (for retried completions).
    Completed,
    /// Clock, membership, cluster id.
    Meta,
    /// The repair queue.
    Repair,
    /// Commits not yet in the volumes' commit logs.
    Unlogged,
    /// The gateways serving the index, with their heartbeats.
    Gateways,
    /// Blobs being written, by any gateway of a shared index.
    InFlight,
    /// Noncurrent versions of objects, by bucket, key and newest first.
    Versions,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 14] = [
        Table::Buckets,
        Table::Objects,
        Table::Uploads,
        Table::Parts,
        Table::Keys,
        Table::Gc,
        Table::GcKeys,
        Table::Completed,
        Table::Meta,
        Table::Repair,
        Table::Unlogged,
        Table::Gateways,
        Table::InFlight,
        Table::Versions,
    ];

    /// Its name in the engine (column family, table name).
    pub fn name(self) -> &'static str {
        match self {
            Table::Buckets => "buckets",
            Table::Objects => "objects",
            Table::Uploads => "uploads",
            Table::Parts => "parts",
            Table::Keys => "keys",
            Table::Gc => "gc",
            Table::GcKeys => "gc_keys",
            Table::Completed => "completed",
            Table::Meta => "meta",
            Table::Repair => "repair",
            Table::Unlogged => "unlogged",
            Table::Gateways => "gateways",
            Table::InFlight => "in_flight",
            Table::Versions => "versions",
        }
    }
}

/// A key and its value.
pub type Row = (Vec<u8>, Vec<u8>);

/// An ordered, durable key-value store with tables and serializable transactions.
#[async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug + 'static {
    /// The committed value of `key`.
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Committed rows with `start <= key` (and `key < end` when given), in key order, at most
    /// `limit` of them.
    async fn scan(&self, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>>;

    /// Starts a transaction.
    async fn begin(&self) -> Result<Box<dyn Transaction>>;

    /// Whether other processes may serve the same index at once (a database server), so that
    /// what one gateway keeps in memory (blobs in flight) must be in the index instead. An
    /// embedded engine admits one process.
    fn shared(&self) -> bool {
        false
    }

    /// What the engine reports about itself, exported as gauges (`cairn_index_*`). Every
    /// engine gives the estimated rows and the bytes on disk of each table; the rest are its own.
    async fn stats(&self) -> Result<Vec<EngineStat>>;
}

/// One figure an engine reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStat {
    /// Gauge name, `cairn_index_…`.
    pub name: &'static str,
    /// Its `# HELP` text.
    pub help: &'static str,
    /// The table it is about, if one.
    pub table: Option<Table>,
    /// The value.
    pub value: f64,
}

impl EngineStat {
    /// Estimated rows of `table`.
    #[must_use]
    pub fn table_rows(table: Table, value: f64) -> Self {
        Self {
            name: "cairn_index_table_rows",
            help: "Rows of an index table (the engine's estimate)",
            table: Some(table),
            value,
        }
    }

    /// Bytes `table` takes on disk.
    #[must_use]
    pub fn table_bytes(table: Table, value: f64) -> Self {
        Self { name: "cairn_index_table_bytes", help: "Bytes an index table takes on disk", table: Some(table), value }
    }
}

/// Reads, then a batch of writes committed atomically; see the module docs.
#[async_trait]
pub trait Transaction: Send {
    /// The committed value of `key`, as this transaction sees it.
    async fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Like [`Engine::scan`], inside the transaction.
    async fn scan(&mut self, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>>;

    /// Sets `key` to `value` at commit.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]);

    /// Removes `key` at commit (nothing if it is not there).
    fn delete(&mut self, table: Table, key: &[u8]);

    /// Writes everything at once, durably; [`Error::Conflict`] when a concurrent transaction
    /// got in the way, and then nothing is written.
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// Runs of a transaction before a conflict is given up on.
pub const MAX_ATTEMPTS: u32 = 20;

/// Waits a little before a transaction runs again after its `attempt`-th conflict, so racing
/// transactions spread apart.
pub async fn back_off(attempt: u32, why: &str) {
    tracing::debug!(attempt, %why, "transaction conflict; running it again");
    let jitter = rand::random::<u64>() % (1 << attempt.min(6));
    tokio::time::sleep(Duration::from_millis(jitter)).await;
}

/// Records how long one commit took (`cairn_index_commit_seconds`), for [`in_transaction!`].
pub fn record_commit(took: std::time::Duration) {
    metrics::histogram!("cairn_index_commit_seconds").record(took.as_secs_f64());
}

/// Runs a block in a transaction of an engine and commits it, running it again on a new
/// transaction after a conflict (so the block must decide only from what it reads); evaluates
/// to the block's `Result`. The block sees the transaction as `&mut dyn Transaction` under the
/// given name and may use `?`.
///
/// ```text
/// let created = in_transaction!(engine, tx, {
///     if tx.get(Table::Buckets, name).await?.is_some() { return Ok(false) }
///     tx.put(Table::Buckets, name, &value);
///     Ok(true)
/// })?;
/// ```
#[macro_export]
macro_rules! in_transaction {
    ($engine:expr, $tx:ident, $body:block) => {{
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut transaction = $crate::engine::Engine::begin(&*$engine).await?;
            let outcome = {
                let $tx: &mut dyn $crate::engine::Transaction = transaction.as_mut();
                async { $body }.await
            };
            let result = match outcome {
                Ok(value) => {
                    let started = std::time::Instant::now();
                    let committed = transaction.commit().await.map(|()| value);
                    $crate::engine::record_commit(started.elapsed());
                    committed
                }
                Err(err) => Err(err),
            };
            match result {
                Err($crate::error::Error::Conflict(why)) if attempt < $crate::engine::MAX_ATTEMPTS => {
                    $crate::engine::back_off(attempt, &why).await;
                }
                other => break other,
            }
        }
    }};
}

/// Runs `work` in a transaction of `engine` and commits it, running it again (from the start,
/// on a new transaction) after a conflict; `work` must therefore decide only from what it
/// reads. A conflict that keeps coming back is returned after a few tries.
pub async fn transaction<T, F>(engine: &dyn Engine, mut work: F) -> Result<T>
where
    T: Send,
    F: for<'t> FnMut(&'t mut dyn Transaction) -> BoxFuture<'t, Result<T>> + Send,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = engine.begin().await?;
        let outcome = work(tx.as_mut()).await;
        let result = match outcome {
            Ok(value) => tx.commit().await.map(|()| value),
            Err(err) => Err(err),
        };
        match result {
            Err(Error::Conflict(why)) if attempt < MAX_ATTEMPTS => back_off(attempt, &why).await,
            other => return other,
        }
    }
}
