//! The embedded engine: RocksDB, one column family per table.
//!
//! Transactions are serialised by one writer lock taken at `begin` and released after the
//! commit's synced write, so they never conflict: a transaction's reads cannot be overtaken
//! by another's writes. This is the commit lock the index always had; batching commits of
//! concurrent transactions into one synced write is the next step ("Fast small objects").
//! Reads and the synced write run on the blocking pool, never on an async worker.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Engine, Row, Table, Transaction};
use crate::error::{Error, Result};

/// RocksDB under the index.
#[derive(Clone)]
pub struct RocksEngine {
    db: Arc<DB>,
    writer: Arc<Mutex<()>>,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

impl RocksEngine {
    /// Opens or creates the database at `path` with every table.
    pub fn open(path: &Path) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let tables = Table::ALL.iter().map(|table| ColumnFamilyDescriptor::new(table.name(), Options::default()));
        let db = DB::open_cf_descriptors(&options, path, tables).map_err(|err| {
            // RocksDB admits one process per directory (its LOCK file): the one that holds it
            // is almost always a gateway, which is what the person needs to hear.
            if err.to_string().contains("LOCK:") {
                Error::Index(format!(
                    "{} is in use by another process (a running gateway?); stop it first: {err}",
                    path.display()
                ))
            } else {
                Error::from(err)
            }
        })?;
        Ok(Self { db: Arc::new(db), writer: Arc::new(Mutex::new(())) })
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&DB) -> Result<T> + Send + 'static) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| Error::Index(format!("index task failed: {e}")))?
    }
}

fn cf(db: &DB, table: Table) -> Result<&rocksdb::ColumnFamily> {
    db.cf_handle(table.name()).ok_or_else(|| Error::Index(format!("missing column family {}", table.name())))
}

fn get(db: &DB, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(db.get_cf(cf(db, table)?, key)?)
}

fn scan(db: &DB, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if limit == 0 {
        return Ok(rows);
    }
    for item in db.iterator_cf(cf(db, table)?, IteratorMode::From(start, Direction::Forward)) {
        let (key, value) = item?;
        if end.is_some_and(|end| *key >= *end) {
            break;
        }
        rows.push((key.into_vec(), value.into_vec()));
        if rows.len() == limit {
            break;
        }
    }
    Ok(rows)
}

#[async_trait]
impl Engine for RocksEngine {
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = key.to_vec();
        self.blocking(move |db| get(db, table, &key)).await
    }

    async fn scan(&self, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>> {
        let (start, end) = (start.to_vec(), end.map(<[u8]>::to_vec));
        self.blocking(move |db| scan(db, table, &start, end.as_deref(), limit)).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let guard = self.writer.clone().lock_owned().await;
        Ok(Box::new(RocksTransaction { engine: self.clone(), writes: Vec::new(), _writer: guard }))
    }
}

/// A pending write.
enum Write {
    Put(Table, Vec<u8>, Vec<u8>),
    Delete(Table, Vec<u8>),
}

/// A transaction holding the writer lock until it commits or is dropped.
struct RocksTransaction {
    engine: RocksEngine,
    writes: Vec<Write>,
    _writer: OwnedMutexGuard<()>,
}

#[async_trait]
impl Transaction for RocksTransaction {
    async fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.engine.get(table, key).await
    }

    async fn scan(&mut self, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>> {
        self.engine.scan(table, start, end, limit).await
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.writes.push(Write::Put(table, key.to_vec(), value.to_vec()));
    }

    fn delete(&mut self, table: Table, key: &[u8]) {
        self.writes.push(Write::Delete(table, key.to_vec()));
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let RocksTransaction { engine, writes, _writer } = *self;
        if writes.is_empty() {
            return Ok(());
        }
        engine
            .blocking(move |db| {
                let mut batch = WriteBatch::default();
                for write in writes {
                    match write {
                        Write::Put(table, key, value) => batch.put_cf(cf(db, table)?, key, value),
                        Write::Delete(table, key) => batch.delete_cf(cf(db, table)?, key),
                    }
                }
                let mut options = WriteOptions::default();
                options.set_sync(true);
                Ok(db.write_opt(batch, &options)?)
            })
            .await
        // The writer lock is released here, after the write is durable.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_another_open_holds_is_refused_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let _held = RocksEngine::open(dir.path()).unwrap();
        let err = RocksEngine::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another process") && err.contains("gateway"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn rocksdb_passes_the_engine_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        super::super::conformance::run(|| {
            let path = path.clone();
            async move { Ok(Box::new(RocksEngine::open(&path)?) as Box<dyn Engine>) }
        })
        .await;
    }
}
