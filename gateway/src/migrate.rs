//! `cairn-admin index migrate`: a whole index copied into another engine or place, offline,
//! then verified, so that a one-machine install can move (RocksDB to PostgreSQL, or back).
//!
//! Refused before anything is written: the same index on both sides; a source a gateway holds
//! (RocksDB's directory lock; on PostgreSQL a gateway whose heartbeat moves); a source with no rows
//! (a mistyped directory or database); a target with any row in any table, which is named, so
//! that two indexes are never merged. Then every table is copied verbatim and both sides are
//! compared in full (`engine::copy`); the caller reports and decides on the comparison.

use crate::config::IndexLocation;
use crate::engine::copy::{Progress, TableComparison, TableCount, compare_all, copy_all, first_nonempty_table};
use crate::error::{Error, Result};
use crate::index::live_gateways;

/// What a migration copied and what the comparison after it found.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Rows and bytes copied, per table (every table, in [`crate::engine::Table::ALL`] order).
    pub copied: Vec<TableCount>,
    /// Both sides compared afterwards, per table.
    pub compared: Vec<TableComparison>,
}

impl Migration {
    /// Rows copied in all.
    pub fn rows(&self) -> u64 {
        self.copied.iter().map(|c| c.rows).sum()
    }

    /// The first table whose copy is not equal to its source: a differing key or count, or a
    /// source whose count changed while it was copied (something wrote to it: not offline).
    pub fn first_mismatch(&self) -> Option<(&TableCount, &TableComparison)> {
        self.copied.iter().zip(&self.compared).find(|(copied, compared)| {
            compared.difference.is_some()
                || compared.first_rows != compared.second_rows
                || compared.first_rows != copied.rows
        })
    }
}

/// Copies the index at `from` into the empty index at `to` and compares them; see the module
/// docs. `progress` hears after each page copied.
pub async fn migrate(from: &IndexLocation, to: &IndexLocation, progress: impl FnMut(&Progress)) -> Result<Migration> {
    if same_place(from, to) {
        return Err(Error::Config(format!("--from and --to are the same index ({from}); nothing to migrate")));
    }
    if let IndexLocation::RocksDb(dir) = from
        && !dir.join("CURRENT").exists()
    {
        // Opening would create an empty index there.
        return Err(Error::Config(format!("--from {from}: no RocksDB index in this directory")));
    }
    let source = crate::engine::open(from).await.map_err(|e| Error::Config(format!("--from {from}: {e}")))?;
    // Gateways beat every second: watching for a little more shows whether any still serves.
    if let Some(live) = live_gateways(&*source, crate::gateways::BEAT * 5 / 2).await?.first() {
        return Err(Error::Config(format!(
            "--from {from}: a gateway ({} at {}) serves this index; stop every gateway first: migrate works offline",
            live.id, live.s3_address
        )));
    }
    if first_nonempty_table(&*source).await?.is_none() {
        return Err(Error::Config(format!("--from {from}: every table is empty; nothing to migrate")));
    }
    let target = crate::engine::open(to).await.map_err(|e| Error::Config(format!("--to {to}: {e}")))?;
    if let Some(table) = first_nonempty_table(&*target).await? {
        return Err(Error::Config(format!(
            "--to {to} is not empty: table {} has rows; migrate fills only an empty index, so that two indexes are never merged (give a new database or directory)",
            table.name()
        )));
    }
    let copied = copy_all(&*source, &*target, progress).await?;
    let compared = compare_all(&*source, &*target).await?;
    Ok(Migration { copied, compared })
}

/// Whether two locations name the same index: the same directory (however spelled, when it
/// exists) or the same URL.
fn same_place(a: &IndexLocation, b: &IndexLocation) -> bool {
    match (a, b) {
        (IndexLocation::RocksDb(a), IndexLocation::RocksDb(b)) => {
            let real = |dir: &std::path::Path| std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            real(a) == real(b)
        }
        (IndexLocation::Postgres(a), IndexLocation::Postgres(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Table;
    use crate::index::Index;
    use crate::index::records::{BlobRef, Replica};

    fn rocksdb(dir: &std::path::Path) -> IndexLocation {
        IndexLocation::RocksDb(dir.to_path_buf())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_migration_copies_everything_and_refuses_what_could_lose_or_merge() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (rocksdb(&dir.path().join("from")), rocksdb(&dir.path().join("to")));
        let err = migrate(&from, &to, |_| {}).await.unwrap_err().to_string();
        assert!(err.contains("no RocksDB index"), "{err}");
        assert!(!dir.path().join("from").exists(), "a missing source was created");
        {
            let index = Index::open(&dir.path().join("from")).await.unwrap();
            let blob = BlobRef { id: "c1".into(), replicas: vec![Replica { volume: "v".into(), subvolume: 0 }] };
            assert!(index.create_bucket("b", 10, 1000, &blob).await.unwrap());
        }
        let same = rocksdb(&dir.path().join("from/."));
        let err = migrate(&from, &same, |_| {}).await.unwrap_err().to_string();
        assert!(err.contains("the same index"), "{err}");

        let migration = migrate(&from, &to, |_| {}).await.unwrap();
        assert!(migration.first_mismatch().is_none(), "{migration:?}");
        assert!(migration.rows() >= 2, "a bucket and the cluster id at least: {migration:?}");
        let buckets = migration.copied.iter().find(|c| c.table == Table::Buckets).unwrap();
        assert_eq!(buckets.rows, 1);

        // Again into the now full target: refused, naming the table.
        let err = migrate(&from, &to, |_| {}).await.unwrap_err().to_string();
        assert!(err.contains("not empty") && err.contains("table buckets"), "{err}");
    }
}
