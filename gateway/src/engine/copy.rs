//! Copying every table of one engine into another, and comparing two engines row by row: what
//! `cairn-admin index migrate` is made of (the offline checks around it are in
//! `crate::migrate`).
//!
//! Both stream: the source is read in scans of [`PAGE_ROWS`] rows, each page is written in
//! transactions of at most [`PAGE_ROWS`] rows and [`BATCH_BYTES`] bytes, and a comparison holds
//! one page of each side. A table is never in memory whole, whatever its size. Rows are copied
//! verbatim (the schema above is not decoded), so a copy is exactly as new as its source.

use std::cmp::Ordering;

use super::{Engine, Row, Table};
use crate::error::Result;
use crate::in_transaction;

/// Rows read per scan (copy and comparison).
pub const PAGE_ROWS: usize = 1000;

/// Bytes of keys and values written per transaction, at most (one row always fits). The
/// PostgreSQL engine sends a commit in statements of this size anyway.
pub const BATCH_BYTES: usize = 4 << 20;

/// Rows and bytes of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCount {
    /// The table.
    pub table: Table,
    /// Its rows.
    pub rows: u64,
    /// Bytes of its keys and values.
    pub bytes: u64,
}

/// How far a copy is, after each page.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The table being copied.
    pub table: Table,
    /// Rows of it copied so far.
    pub rows: u64,
    /// Bytes of it copied so far.
    pub bytes: u64,
    /// Whether the table is done.
    pub done: bool,
}

/// The first table holding a row, if any.
pub async fn first_nonempty_table(engine: &dyn Engine) -> Result<Option<Table>> {
    for table in Table::ALL {
        if !engine.scan(table, &[], None, 1).await?.is_empty() {
            return Ok(Some(table));
        }
    }
    Ok(None)
}

/// Copies every row of every table of `from` into `to` (which should be empty: rows already in
/// `to` stay, and equal keys are overwritten), reporting `progress` after each page; returns
/// what each table held.
pub async fn copy_all(
    from: &dyn Engine,
    to: &dyn Engine,
    mut progress: impl FnMut(&Progress),
) -> Result<Vec<TableCount>> {
    let mut counts = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        counts.push(copy_table(from, to, table, &mut progress).await?);
    }
    Ok(counts)
}

async fn copy_table(
    from: &dyn Engine,
    to: &dyn Engine,
    table: Table,
    progress: &mut impl FnMut(&Progress),
) -> Result<TableCount> {
    let mut count = TableCount { table, rows: 0, bytes: 0 };
    let mut start = Vec::new();
    loop {
        let page = from.scan(table, &start, None, PAGE_ROWS).await?;
        let more = page.len() == PAGE_ROWS;
        let mut rest = &page[..];
        while !rest.is_empty() {
            let (batch, after) = rest.split_at(batch_len(rest));
            // Blind writes only: nothing read, so a retry after a conflict writes the same.
            in_transaction!(to, tx, {
                for (key, value) in batch {
                    tx.put(table, key, value);
                }
                Ok(())
            })?;
            count.rows += batch.len() as u64;
            count.bytes += batch.iter().map(row_bytes).sum::<u64>();
            rest = after;
        }
        let done = !more;
        progress(&Progress { table, rows: count.rows, bytes: count.bytes, done });
        match page.last() {
            Some((last, _)) if more => start = successor(last),
            _ => return Ok(count),
        }
    }
}

/// How many of the first `rows` fit in one transaction: at most [`BATCH_BYTES`], at least one.
fn batch_len(rows: &[Row]) -> usize {
    let mut bytes = 0;
    for (n, row) in rows.iter().enumerate() {
        bytes += row_bytes(row);
        if bytes > BATCH_BYTES as u64 {
            return n.max(1);
        }
    }
    rows.len()
}

fn row_bytes((key, value): &Row) -> u64 {
    (key.len() + value.len()) as u64
}

/// The smallest key after `key` in unsigned byte order: where the next page starts.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// Where two engines first differ in a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The key.
    pub key: Vec<u8>,
    /// How it differs.
    pub kind: DifferenceKind,
}

/// How a key differs between the two sides of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceKind {
    /// Only the first engine (the source) has it.
    OnlyInFirst,
    /// Only the second engine (the target) has it.
    OnlyInSecond,
    /// Both have it, with different values.
    ValueDiffers,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.kind {
            DifferenceKind::OnlyInFirst => "only in the source",
            DifferenceKind::OnlyInSecond => "only in the target",
            DifferenceKind::ValueDiffers => "values differ",
        };
        write!(f, "key 0x{} ({how})", hex::encode(&self.key))
    }
}

/// One table compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableComparison {
    /// The table.
    pub table: Table,
    /// Rows in the first engine.
    pub first_rows: u64,
    /// Rows in the second engine.
    pub second_rows: u64,
    /// The first (lowest) key where they differ; `None` when every key and value is equal.
    pub difference: Option<Difference>,
}

/// Compares every table of two engines key by key and value by value, streaming both sides in
/// order, and counts the rows of each. A table is compared to its end even after a
/// difference, so the counts are whole.
pub async fn compare_all(first: &dyn Engine, second: &dyn Engine) -> Result<Vec<TableComparison>> {
    let mut tables = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        tables.push(compare_table(first, second, table).await?);
    }
    Ok(tables)
}

async fn compare_table(first: &dyn Engine, second: &dyn Engine, table: Table) -> Result<TableComparison> {
    let mut result = TableComparison { table, first_rows: 0, second_rows: 0, difference: None };
    let mut note = |key: &[u8], kind| {
        result.difference.get_or_insert_with(|| Difference { key: key.to_vec(), kind });
    };
    let (mut a, mut b) = (Cursor::new(first, table), Cursor::new(second, table));
    let (mut first_rows, mut second_rows) = (0u64, 0u64);
    let (mut next_a, mut next_b) = (a.next().await?, b.next().await?);
    loop {
        // The lower key goes first; it is missing on the other side unless the keys are equal.
        let order = match (&next_a, &next_b) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match (order, &next_a, &next_b) {
            (Ordering::Less, Some((key, _)), _) => note(key, DifferenceKind::OnlyInFirst),
            (Ordering::Greater, _, Some((key, _))) => note(key, DifferenceKind::OnlyInSecond),
            (Ordering::Equal, Some((key, va)), Some((_, vb))) if va != vb => note(key, DifferenceKind::ValueDiffers),
            _ => {}
        }
        if order != Ordering::Greater {
            first_rows += 1;
            next_a = a.next().await?;
        }
        if order != Ordering::Less {
            second_rows += 1;
            next_b = b.next().await?;
        }
    }
    result.first_rows = first_rows;
    result.second_rows = second_rows;
    Ok(result)
}

/// The rows of one table of an engine in key order, a page at a time.
struct Cursor<'a> {
    engine: &'a dyn Engine,
    table: Table,
    page: std::vec::IntoIter<Row>,
    /// Where the next page starts; `None` after the last (short) page.
    next_start: Option<Vec<u8>>,
}

impl<'a> Cursor<'a> {
    fn new(engine: &'a dyn Engine, table: Table) -> Self {
        Self { engine, table, page: Vec::new().into_iter(), next_start: Some(Vec::new()) }
    }

    async fn next(&mut self) -> Result<Option<Row>> {
        loop {
            if let Some(row) = self.page.next() {
                return Ok(Some(row));
            }
            let Some(start) = self.next_start.take() else { return Ok(None) };
            let page = self.engine.scan(self.table, &start, None, PAGE_ROWS).await?;
            if page.len() == PAGE_ROWS {
                self.next_start = page.last().map(|(last, _)| successor(last));
            }
            self.page = page.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::postgres::PostgresEngine;
    use crate::engine::postgres::test_postgres::TestPostgres;
    use crate::engine::rocks::RocksEngine;

    /// Keys at the edges of the byte order, values with every byte, a table of several pages
    /// and one whose rows overflow a batch's bytes.
    async fn fill(engine: &dyn Engine) -> Vec<TableCount> {
        let edges: Vec<Vec<u8>> = vec![
            vec![0x00],
            vec![0x00, 0x00],
            b"a".to_vec(),
            b"a\x00".to_vec(),
            b"a\xff".to_vec(),
            vec![0xff],
            vec![0xff, 0xff, 0x00],
        ];
        let objects: Vec<Row> = (0..2 * PAGE_ROWS as u32 + 7)
            .map(|i| (format!("bucket\x00key/{i:05}").into_bytes(), i.to_be_bytes().to_vec()))
            .chain(edges.iter().map(|k| (k.clone(), [k.as_slice(), &[0x00, 0xff]].concat())))
            .collect();
        let parts: Vec<Row> = (0..5u8).map(|i| (vec![i, 0xff], vec![i; 1 << 20])).collect();
        let meta: Vec<Row> = vec![(b"clock".to_vec(), vec![0xff; 8]), (b"cluster_id".to_vec(), vec![0x00; 3])];
        let mut counts = Vec::new();
        for (table, rows) in [(Table::Objects, &objects), (Table::Parts, &parts), (Table::Meta, &meta)] {
            for chunk in rows.chunks(500) {
                put_all(engine, table, chunk).await.unwrap();
            }
            counts.push(TableCount { table, rows: rows.len() as u64, bytes: rows.iter().map(row_bytes).sum() });
        }
        counts
    }

    async fn put_all(engine: &dyn Engine, table: Table, rows: &[Row]) -> Result<()> {
        in_transaction!(engine, tx, {
            for (key, value) in rows {
                tx.put(table, key, value);
            }
            Ok(())
        })
    }

    /// Puts `key` (or deletes it, without a value).
    async fn edit(engine: &dyn Engine, table: Table, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        in_transaction!(engine, tx, {
            match value {
                Some(value) => tx.put(table, key, value),
                None => tx.delete(table, key),
            }
            Ok(())
        })
    }

    /// Copies a filled `from` into the empty `to`, checks the copy equal, then that each kind
    /// of difference is found at its key.
    async fn copies_and_compares(from: &dyn Engine, to: &dyn Engine) {
        let filled = fill(from).await;
        assert_eq!(first_nonempty_table(to).await.unwrap(), None);
        let mut pages = 0;
        let copied = copy_all(from, to, |_| pages += 1).await.unwrap();
        assert_eq!(copied.len(), Table::ALL.len());
        for count in &copied {
            let expected = filled.iter().find(|c| c.table == count.table).copied();
            assert_eq!(*count, expected.unwrap_or(TableCount { table: count.table, rows: 0, bytes: 0 }));
        }
        assert!(pages >= Table::ALL.len() + 2, "objects take three pages: {pages} reports");
        assert_eq!(first_nonempty_table(to).await.unwrap(), Some(Table::Objects));

        let compared = compare_all(from, to).await.unwrap();
        for table in &compared {
            assert_eq!(table.difference, None, "{:?}", table.table);
            assert_eq!(table.first_rows, table.second_rows);
        }
        let objects = compared.iter().find(|c| c.table == Table::Objects).unwrap();
        assert_eq!(objects.first_rows, 2 * PAGE_ROWS as u64 + 7 + 7);

        // A changed value, a row missing from the target, an extra one in it: each is found,
        // at the lowest differing key, and the counts stay whole.
        let differs = |key: &[u8], kind| Some(Difference { key: key.to_vec(), kind });
        edit(to, Table::Meta, b"clock", Some(&b"\x00"[..])).await.unwrap();
        edit(to, Table::Objects, b"\xff\xff\x00", None).await.unwrap();
        edit(to, Table::Objects, b"bucket\x00key/01500", None).await.unwrap();
        edit(to, Table::Parts, b"\x00", Some(&b"extra"[..])).await.unwrap();
        let compared = compare_all(from, to).await.unwrap();
        let of = |table: Table| compared.iter().find(|c| c.table == table).unwrap().clone();
        assert_eq!(of(Table::Meta).difference, differs(b"clock", DifferenceKind::ValueDiffers));
        let objects = of(Table::Objects);
        assert_eq!(objects.difference, differs(b"bucket\x00key/01500", DifferenceKind::OnlyInFirst));
        assert_eq!((objects.first_rows, objects.second_rows), (2 * PAGE_ROWS as u64 + 14, 2 * PAGE_ROWS as u64 + 12));
        assert_eq!(of(Table::Parts).difference, differs(b"\x00", DifferenceKind::OnlyInSecond));
        assert_eq!(of(Table::Buckets).difference, None);
        let shown = of(Table::Parts).difference.unwrap().to_string();
        assert_eq!(shown, "key 0x00 (only in the target)");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_copy_between_rocksdb_engines_is_complete_and_differences_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let from = RocksEngine::open(&dir.path().join("from")).unwrap();
        let to = RocksEngine::open(&dir.path().join("to")).unwrap();
        copies_and_compares(&from, &to).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_copy_between_rocksdb_and_postgresql_is_complete_both_ways() {
        let Some(server) = TestPostgres::start("a_copy_between_rocksdb_and_postgresql_is_complete_both_ways") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let rocks: Arc<dyn Engine> = Arc::new(RocksEngine::open(&dir.path().join("from")).unwrap());
        let postgres: Arc<dyn Engine> = Arc::new(PostgresEngine::connect(&server.create_database()).await.unwrap());
        copies_and_compares(&*rocks, &*postgres).await;
        let back: Arc<dyn Engine> = Arc::new(PostgresEngine::connect(&server.create_database()).await.unwrap());
        let rocks_again: Arc<dyn Engine> = Arc::new(RocksEngine::open(&dir.path().join("to")).unwrap());
        copies_and_compares(&*back, &*rocks_again).await;
    }
}
