//! Walks over whole tables one page at a time, so that a job or a status report over a
//! million objects holds one page of rows, never the table.

use super::records::{ObjectEntry, decode};
use super::{Index, SCAN_PAGE, object_key};
use crate::engine::{Row, Table};
use crate::error::Result;

/// A walk over `table` in key order from a start key (up to an end key), [`SCAN_PAGE`] rows at
/// a time. Each page is read on its own, so rows written during the walk may or may not be
/// seen: the jobs that walk are built for that (see `admin::gc` and `admin::verify`).
pub(crate) struct Pages<'a> {
    index: &'a Index,
    table: Table,
    from: Vec<u8>,
    end: Option<Vec<u8>>,
    finished: bool,
}

impl Pages<'_> {
    /// The next page, or `None` once the walk is over.
    pub(crate) async fn next_page(&mut self) -> Result<Option<Vec<Row>>> {
        if self.finished {
            return Ok(None);
        }
        let page = self.index.engine.scan(self.table, &self.from, self.end.as_deref(), SCAN_PAGE).await?;
        match page.last() {
            Some((last, _)) if page.len() == SCAN_PAGE => {
                self.from.clone_from(last);
                self.from.push(0);
            }
            _ => self.finished = true,
        }
        Ok(Some(page).filter(|page| !page.is_empty()))
    }
}

/// An object entry with its bucket and key.
pub type KeyedEntry = (String, String, ObjectEntry);

/// A walk over the `objects` table (or the `versions` table) that decodes each page.
pub struct ObjectPages<'a> {
    rows: Pages<'a>,
    /// Bucket and key of a row key.
    split: fn(&[u8]) -> Option<(String, String)>,
}

impl ObjectPages<'_> {
    /// The next page of entries (live and tombstones) in key order, or `None` once the walk is over.
    pub async fn next_page(&mut self) -> Result<Option<Vec<KeyedEntry>>> {
        let Some(rows) = self.rows.next_page().await? else { return Ok(None) };
        let mut entries = Vec::with_capacity(rows.len());
        for (raw_key, value) in rows {
            if let Some((bucket, key)) = (self.split)(&raw_key) {
                entries.push((bucket, key, decode(&value)?));
            }
        }
        Ok(Some(entries))
    }
}

/// The row keys of `bucket` in the `objects` and `versions` tables: both begin with the
/// bucket's name and a zero byte.
fn bucket_range(bucket: &str) -> (Vec<u8>, Vec<u8>) {
    let start = [bucket.as_bytes(), &[0]].concat();
    let end = [bucket.as_bytes(), &[1]].concat();
    (start, end)
}

/// Bucket and key of an `objects` table key.
pub(super) fn split_object_key(raw_key: &[u8]) -> Option<(String, String)> {
    let split = raw_key.iter().position(|b| *b == 0)?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Some((text(&raw_key[..split]), text(&raw_key[split + 1..])))
}

impl Index {
    /// A page-by-page walk over `table` from `start` (up to `end`).
    pub(crate) fn pages(&self, table: Table, start: &[u8], end: Option<&[u8]>) -> Pages<'_> {
        Pages { index: self, table, from: start.to_vec(), end: end.map(<[u8]>::to_vec), finished: false }
    }

    /// How many rows `table` holds, counted a page at a time (nothing is kept).
    pub(super) async fn count_rows(&self, table: Table) -> Result<u64> {
        let mut pages = self.pages(table, b"", None);
        let mut count = 0;
        while let Some(page) = pages.next_page().await? {
            count += page.len() as u64;
        }
        Ok(count)
    }

    /// Every row of `table` from `start` (up to `end`), for tables that stay small (buckets,
    /// keys, gateways, uploads); whole-index walks use [`Index::pages`].
    pub(super) async fn scan_all(&self, table: Table, start: &[u8], end: Option<&[u8]>) -> Result<Vec<Row>> {
        let mut pages = self.pages(table, start, end);
        let mut rows = Vec::new();
        while let Some(page) = pages.next_page().await? {
            rows.extend(page);
        }
        Ok(rows)
    }

    /// A page-by-page walk over every object entry, in key order, strictly after
    /// `after` (bucket, key) if given.
    pub fn object_pages(&self, after: Option<(&str, &str)>) -> ObjectPages<'_> {
        let start = match after {
            Some((bucket, key)) => {
                let mut start = object_key(bucket, key);
                start.push(0);
                start
            }
            None => Vec::new(),
        };
        ObjectPages { rows: self.pages(Table::Objects, &start, None), split: split_object_key }
    }

    /// A page-by-page walk over the current entries of `bucket`, in key order.
    pub fn bucket_object_pages(&self, bucket: &str) -> ObjectPages<'_> {
        let (start, end) = bucket_range(bucket);
        ObjectPages { rows: self.pages(Table::Objects, &start, Some(&end)), split: split_object_key }
    }

    /// A page-by-page walk over the noncurrent rows of `bucket` (versions and removal
    /// records), by key, newest first per key.
    pub fn bucket_version_pages(&self, bucket: &str) -> ObjectPages<'_> {
        let (start, end) = bucket_range(bucket);
        let split = |raw: &[u8]| super::versions::split_version_key(raw).map(|(bucket, key, _)| (bucket, key));
        ObjectPages { rows: self.pages(Table::Versions, &start, Some(&end)), split }
    }

    /// A page-by-page walk over every noncurrent row (versions and removal records), by
    /// bucket and key, newest first per key.
    pub fn version_pages(&self) -> ObjectPages<'_> {
        let split = |raw: &[u8]| super::versions::split_version_key(raw).map(|(bucket, key, _)| (bucket, key));
        ObjectPages { rows: self.pages(Table::Versions, b"", None), split }
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::{BlobRef, ObjectEntry};
    use super::*;

    /// Past one page: every entry once, in key order, from the start and from any key; the
    /// totals and the GC queue walk the same way.
    #[tokio::test]
    async fn walks_cross_pages_and_resume_strictly_after_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        index.test_create_bucket("b").await.unwrap();
        let count = 2 * SCAN_PAGE + 345;
        let keys: Vec<String> = (0..count).map(|i| format!("k{i:05}")).collect();
        for (i, key) in keys.iter().enumerate() {
            index.commit_object("b", key, &super::super::tests::record(10, &format!("v{i}")), None).await.unwrap();
            // Every third key deleted again: a tombstone, and the old version queued for GC.
            if i % 3 == 0 {
                let tombstone = ObjectEntry::Deleted {
                    ts: 20,
                    blob: BlobRef { id: format!("t{i}"), replicas: vec![] },
                    version: Default::default(),
                };
                index.commit_object("b", key, &tombstone, None).await.unwrap();
            }
        }
        let walk = |after: Option<(&'static str, &'static str)>| {
            let index = &index;
            async move {
                let mut pages = index.object_pages(after);
                let mut seen = Vec::new();
                while let Some(page) = pages.next_page().await.unwrap() {
                    assert!(page.len() <= SCAN_PAGE);
                    seen.extend(page.into_iter().map(|(bucket, key, _)| (bucket, key)));
                }
                seen
            }
        };
        let all: Vec<(String, String)> = keys.iter().map(|k| ("b".to_string(), k.clone())).collect();
        assert_eq!(walk(None).await, all);
        assert_eq!(walk(Some(("b", "k01000"))).await, all[1001..]);
        assert_eq!(walk(Some(("b", "k00999"))).await, all[1000..]);
        assert!(walk(Some(("b", "k99999"))).await.is_empty());

        let deleted = count.div_ceil(3);
        let live = (count - deleted) as u64;
        let usage = index.bucket_usage().await.unwrap();
        assert_eq!(usage.get("b"), Some(&crate::index::BucketUsage { objects: live, bytes: live }));
        assert_eq!(index.gc_due_all(u64::MAX).await.unwrap().len(), deleted);
        assert_eq!(index.tombstones_before(u64::MAX).await.unwrap().len(), deleted);
        assert!(index.gc_due_all(0).await.unwrap().is_empty());
    }
}
