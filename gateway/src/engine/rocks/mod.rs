//! The embedded engine: RocksDB, one column family per table.
//!
//! Transactions are optimistic: they read committed data without holding anything, and their
//! writes go to one commit thread (`commits`) that checks each against what committed since it
//! started and writes everything that arrived meanwhile as one synced batch (group commit).
//! Each read is checked as it is made (`versions`), so a transaction sees the index as it was
//! when it started, even one dropped without a commit. Reads and the synced write run off the
//! async workers (the blocking pool, the commit thread).

mod commits;
mod versions;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode, Options,
};

use self::commits::Committer;
use self::versions::{KeyRange, ReadSet, TableKey};
use super::{Engine, Row, Table, Transaction};
use crate::error::{Error, Result};

/// Memory for cached index blocks, shared by every table: enough for the hot part of a large
/// index without letting the gateway grow with it.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// RocksDB under the index.
#[derive(Clone)]
pub struct RocksEngine {
    db: Arc<DB>,
    committer: Arc<Committer>,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

/// Every table compressed (values are JSON), with a bloom filter so that a point read of a
/// missing key (a HEAD of a key that is not there, a fresh blob id) rarely touches a data
/// block, and one block cache for all.
fn table_options(cache: &Cache) -> Options {
    let mut blocks = BlockBasedOptions::default();
    blocks.set_block_cache(cache);
    blocks.set_bloom_filter(10.0, false);
    blocks.set_cache_index_and_filter_blocks(true);
    blocks.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut options = Options::default();
    options.set_block_based_table_factory(&blocks);
    options.set_compression_type(DBCompressionType::Lz4);
    options
}

impl RocksEngine {
    /// Opens or creates the database at `path` with every table.
    pub fn open(path: &Path) -> Result<Self> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut options = table_options(&cache);
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let tables = Table::ALL.iter().map(|table| ColumnFamilyDescriptor::new(table.name(), table_options(&cache)));
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
        let db = Arc::new(db);
        let committer = Arc::new(Committer::start(db.clone())?);
        Ok(Self { db, committer })
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

/// `key` of `table` as the commit thread's bookkeeping knows it.
fn table_key(table: Table, key: &[u8]) -> TableKey {
    let mut tagged = Vec::with_capacity(key.len() + 1);
    tagged.push(table as u8);
    tagged.extend_from_slice(key);
    tagged
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
        let start = self.committer.versions().begin();
        Ok(Box::new(RocksTransaction { engine: self.clone(), start, reads: ReadSet::default(), writes: Vec::new() }))
    }
}

/// A pending write.
pub(super) enum Write {
    Put(Table, Vec<u8>, Vec<u8>),
    Delete(Table, Vec<u8>),
}

impl Write {
    fn table(&self) -> Table {
        match self {
            Write::Put(table, ..) | Write::Delete(table, _) => *table,
        }
    }
}

/// An open transaction: where it started, what it read, what it will write.
struct RocksTransaction {
    engine: RocksEngine,
    start: u64,
    reads: ReadSet,
    writes: Vec<Write>,
}

impl RocksTransaction {
    fn changed_since_start() -> Error {
        Error::Conflict("a commit since this transaction started wrote what it read".into())
    }
}

impl Drop for RocksTransaction {
    fn drop(&mut self) {
        self.engine.committer.versions().end(self.start);
    }
}

#[async_trait]
impl Transaction for RocksTransaction {
    async fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.engine.get(table, key).await?;
        let read = table_key(table, key);
        if self.engine.committer.versions().key_written_since(self.start, &read) {
            return Err(Self::changed_since_start());
        }
        self.reads.keys.push(read);
        Ok(value)
    }

    async fn scan(&mut self, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>> {
        let rows = self.engine.scan(table, start, end, limit).await?;
        // What the scan covered: up to its end, or just past its last row when the limit cut it.
        let to = match rows.last() {
            Some((last, _)) if rows.len() == limit => {
                let mut past = table_key(table, last);
                past.push(0);
                past
            }
            _ => match end {
                Some(end) => table_key(table, end),
                None => vec![table as u8 + 1],
            },
        };
        let read = KeyRange { from: table_key(table, start), to };
        if self.engine.committer.versions().range_written_since(self.start, &read) {
            return Err(Self::changed_since_start());
        }
        self.reads.ranges.push(read);
        Ok(rows)
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.writes.push(Write::Put(table, key.to_vec(), value.to_vec()));
    }

    fn delete(&mut self, table: Table, key: &[u8]) {
        self.writes.push(Write::Delete(table, key.to_vec()));
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.writes.is_empty() {
            // Every read was checked as it was made: they are the index as of the start.
            return Ok(());
        }
        let (reads, writes) = (std::mem::take(&mut self.reads), std::mem::take(&mut self.writes));
        // The transaction stays open (its start registered) until the commit thread answers.
        self.engine.committer.commit(self.start, reads, writes).await
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
