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
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Direction, ErrorKind,
    IteratorMode, Options, ReadOptions, ReadTier,
};

use self::commits::Committer;
use self::versions::{KeyRange, ReadSet, TableKey};
use super::{Engine, EngineStat, Row, Table, Transaction};
use crate::error::{Error, Result};

/// Memory for cached index blocks, shared by every table: enough for the hot part of a large
/// index without letting the gateway grow with it.
const BLOCK_CACHE_BYTES: usize = 64 << 20;
/// Memtables of all tables together: without a cap each of the fourteen could grow to 128 MiB
/// (two of RocksDB's default 64 MiB buffers), so a burst of writes (a rebuild, an import) would
/// grow the process with what it wrote.
const WRITE_BUFFER_BYTES: usize = 64 << 20;

/// Scans of at most this many rows are tried in memory first (see [`in_memory`]); longer ones
/// always go to the blocking pool, since walking them is work enough to hold up a worker.
const SMALL_SCAN: usize = 16;

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
pub(crate) fn table_options(cache: &Cache) -> Options {
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
        options.set_db_write_buffer_size(WRITE_BUFFER_BYTES);
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

type RocksResult<T> = std::result::Result<T, rocksdb::Error>;

fn cf(db: &DB, table: Table) -> Result<&ColumnFamily> {
    db.cf_handle(table.name()).ok_or_else(|| Error::Index(format!("missing column family {}", table.name())))
}

/// `key` of `table` as the commit thread's bookkeeping knows it.
fn table_key(table: Table, key: &[u8]) -> TableKey {
    let mut tagged = Vec::with_capacity(key.len() + 1);
    tagged.push(table as u8);
    tagged.extend_from_slice(key);
    tagged
}

fn get(db: &DB, table: &ColumnFamily, key: &[u8], options: &ReadOptions) -> RocksResult<Option<Vec<u8>>> {
    db.get_cf_opt(table, key, options)
}

fn scan(
    db: &DB,
    table: &ColumnFamily,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
    options: ReadOptions,
) -> RocksResult<Vec<Row>> {
    let mut rows = Vec::new();
    if limit == 0 {
        return Ok(rows);
    }
    for item in db.iterator_cf_opt(table, options, IteratorMode::From(start, Direction::Forward)) {
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

/// Reads that may only use the memtables and the block cache: RocksDB answers them without a
/// single I/O, or says it would need one ([`ErrorKind::Incomplete`]). Most point reads of a
/// busy index are answered so, right on the async worker, saving the hop to the blocking pool
/// and back (two thread switches, which cost more than the read).
fn in_memory() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_read_tier(ReadTier::BlockCache);
    options
}

/// The outcome of a read tried in memory, or `None` when it needs the disk.
fn unless_on_disk<T>(outcome: RocksResult<T>) -> Option<Result<T>> {
    match outcome {
        Err(err) if err.kind() == ErrorKind::Incomplete => None,
        other => Some(other.map_err(Error::from)),
    }
}

#[async_trait]
impl Engine for RocksEngine {
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(found) = unless_on_disk(get(&self.db, cf(&self.db, table)?, key, &in_memory())) {
            return found;
        }
        let key = key.to_vec();
        self.blocking(move |db| Ok(get(db, cf(db, table)?, &key, &ReadOptions::default())?)).await
    }

    async fn scan(&self, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>> {
        if limit <= SMALL_SCAN {
            let in_memory = scan(&self.db, cf(&self.db, table)?, start, end, limit, in_memory());
            if let Some(rows) = unless_on_disk(in_memory) {
                return rows;
            }
        }
        let (start, end) = (start.to_vec(), end.map(<[u8]>::to_vec));
        self.blocking(move |db| Ok(scan(db, cf(db, table)?, &start, end.as_deref(), limit, ReadOptions::default())?))
            .await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let start = self.committer.versions().begin();
        Ok(Box::new(RocksTransaction { engine: self.clone(), start, reads: ReadSet::default(), writes: Vec::new() }))
    }

    async fn stats(&self) -> Result<Vec<EngineStat>> {
        self.blocking(|db| {
            let int = |cf: Option<&ColumnFamily>, name: &str| -> Result<f64> {
                let value = match cf {
                    Some(cf) => db.property_int_value_cf(cf, name)?,
                    None => db.property_int_value(name)?,
                };
                Ok(value.unwrap_or(0) as f64)
            };
            let mut stats = Vec::with_capacity(2 * Table::ALL.len() + 4);
            let (mut memtables, mut pending) = (0.0, 0.0);
            for table in Table::ALL {
                let cf = cf(db, table)?;
                stats.push(EngineStat::table_rows(table, int(Some(cf), "rocksdb.estimate-num-keys")?));
                stats.push(EngineStat::table_bytes(table, int(Some(cf), "rocksdb.total-sst-files-size")?));
                memtables += int(Some(cf), "rocksdb.cur-size-all-mem-tables")?;
                pending += int(Some(cf), "rocksdb.estimate-pending-compaction-bytes")?;
            }
            let db_wide = |name, help, value| EngineStat { name, help, table: None, value };
            stats.push(db_wide(
                "cairn_index_memtable_bytes",
                "Bytes in RocksDB memtables (writes not yet flushed)",
                memtables,
            ));
            stats.push(db_wide(
                "cairn_index_pending_compaction_bytes",
                "Bytes RocksDB estimates compaction has yet to rewrite",
                pending,
            ));
            stats.push(db_wide(
                "cairn_index_running_compactions",
                "RocksDB compactions running now",
                int(None, "rocksdb.num-running-compactions")?,
            ));
            stats.push(db_wide(
                "cairn_index_block_cache_bytes",
                "Bytes in RocksDB's block cache",
                int(Some(cf(db, Table::Objects)?), "rocksdb.block-cache-usage")?,
            ));
            Ok(stats)
        })
        .await
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
    async fn reads_that_need_the_disk_leave_memory_for_the_blocking_pool_and_agree() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = RocksEngine::open(dir.path()).unwrap();
            let mut tx = engine.begin().await.unwrap();
            for n in 0..100u32 {
                tx.put(Table::Objects, &n.to_be_bytes(), &n.to_le_bytes());
            }
            tx.commit().await.unwrap();
            engine.db.flush_cf(cf(&engine.db, Table::Objects).unwrap()).unwrap();
        }
        // Reopened: the rows are in a table file, none of its blocks cached yet.
        let engine = RocksEngine::open(dir.path()).unwrap();
        let objects = cf(&engine.db, Table::Objects).unwrap();
        let first = get(&engine.db, objects, &7u32.to_be_bytes(), &in_memory());
        assert!(unless_on_disk(first).is_none(), "a cold read needs the disk");
        assert_eq!(engine.get(Table::Objects, &7u32.to_be_bytes()).await.unwrap(), Some(7u32.to_le_bytes().to_vec()));
        let again = get(&engine.db, objects, &7u32.to_be_bytes(), &in_memory());
        assert_eq!(unless_on_disk(again).unwrap().unwrap(), Some(7u32.to_le_bytes().to_vec()), "now in the cache");
        let rows = engine.scan(Table::Objects, &5u32.to_be_bytes(), None, 3).await.unwrap();
        let keys: Vec<Vec<u8>> = rows.into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, [5u32, 6, 7].map(|n| n.to_be_bytes().to_vec()));
        assert_eq!(engine.get(Table::Objects, &1000u32.to_be_bytes()).await.unwrap(), None);
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
