//! A rebuild's working set on disk: what the listings found, grouped and sorted by RocksDB in a
//! temporary database next to the new index, so the rebuild's memory is RocksDB's bounded
//! buffers and one page at a time, whatever the number of blobs. Nothing here needs to survive
//! a crash (a rebuild that dies is started again into an empty directory), so writes skip the
//! write-ahead log and the directory is removed when the scratch space is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{Cache, ColumnFamilyDescriptor, DB, WriteBatch};

use crate::engine::rocks::table_options;
use crate::error::{Error, Result};

/// Memtables of all spaces together; RocksDB flushes to sorted files beyond it.
const WRITE_BUFFERS: usize = 32 * 1024 * 1024;
/// Block cache for the point reads and walks.
const BLOCK_CACHE: usize = 16 * 1024 * 1024;

/// The keyspaces of the scratch database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Space {
    /// Blob id → what was found of it (metadata and every replica), JSON.
    Found,
    /// Blob id → (), for every id some commit log names.
    Committed,
    /// (bucket, key, timestamp, id) → id: the versions of each key, oldest first.
    Versions,
    /// (version, timestamp, id) → id: the tags blobs naming each version, oldest first.
    Tags,
    /// (bucket, id) → id: the bucket blobs of each bucket.
    Buckets,
    /// Blob id → id of the committed version deletion naming it: versions deleted by id.
    Removals,
    /// (version, timestamp, id) → id: the lock blobs naming each version, oldest first.
    Locks,
    /// (version, timestamp, id) → id: the ACL blobs naming each version, oldest first.
    Acls,
}

impl Space {
    const ALL: [Space; 8] = [
        Space::Found,
        Space::Committed,
        Space::Versions,
        Space::Tags,
        Space::Buckets,
        Space::Removals,
        Space::Locks,
        Space::Acls,
    ];

    fn name(self) -> &'static str {
        match self {
            Space::Found => "found",
            Space::Committed => "committed",
            Space::Versions => "versions",
            Space::Tags => "tags",
            Space::Buckets => "buckets",
            Space::Removals => "removals",
            Space::Locks => "locks",
            Space::Acls => "acls",
        }
    }
}

/// The scratch database; removed from disk when dropped.
pub(super) struct Scratch {
    // Every blocking task holding a clone has been awaited by the time this drops, so the
    // database closes here, before its directory is removed.
    db: Arc<DB>,
    _dir: ScratchDir,
}

impl Scratch {
    /// Creates the scratch database beside `index_dir` (replacing one a killed rebuild of the
    /// same index left behind).
    pub(super) fn create(index_dir: &Path) -> Result<Self> {
        let name = index_dir.file_name().map_or_else(|| "index".into(), |n| n.to_string_lossy().into_owned());
        let path = index_dir.with_file_name(format!(".{name}.rebuild-scratch"));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        // The index's own table settings (bloom filters for the point reads, LZ4), smaller buffers.
        let cache = Cache::new_lru_cache(BLOCK_CACHE);
        let mut options = table_options(&cache);
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_db_write_buffer_size(WRITE_BUFFERS);
        let spaces = Space::ALL.iter().map(|space| ColumnFamilyDescriptor::new(space.name(), table_options(&cache)));
        let dir = ScratchDir(path);
        let db = DB::open_cf_descriptors(&options, &dir.0, spaces)?;
        Ok(Self { db: Arc::new(db), _dir: dir })
    }

    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&DB) -> Result<T> + Send + 'static) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| Error::Index(format!("rebuild scratch task failed: {e}")))?
    }

    /// Writes every pair into `space`.
    pub(super) async fn put_all(&self, space: Space, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        self.write(space, pairs.into_iter().map(|(key, value)| (key, Some(value))).collect()).await
    }

    /// Removes `keys` from `space`.
    pub(super) async fn delete_all(&self, space: Space, keys: Vec<Vec<u8>>) -> Result<()> {
        self.write(space, keys.into_iter().map(|key| (key, None)).collect()).await
    }

    /// Puts (`Some`) and deletes (`None`) in one batch, without the write-ahead log.
    async fn write(&self, space: Space, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        self.blocking(move |db| {
            let cf = handle(db, space)?;
            let mut batch = WriteBatch::default();
            for (key, value) in writes {
                match value {
                    Some(value) => batch.put_cf(cf, key, value),
                    None => batch.delete_cf(cf, key),
                }
            }
            let mut options = rocksdb::WriteOptions::default();
            options.disable_wal(true);
            Ok(db.write_opt(batch, &options)?)
        })
        .await
    }

    /// The values of `keys` in `space`, in the same order.
    pub(super) async fn get_all(&self, space: Space, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking(move |db| {
            let cf = handle(db, space)?;
            db.multi_get_cf(keys.iter().map(|key| (cf, key))).into_iter().map(|got| Ok(got?)).collect()
        })
        .await
    }

    /// Up to `limit` pairs of `space` from `start` on (inclusive) whose keys begin with
    /// `prefix`, in key order.
    pub(super) async fn scan(
        &self,
        space: Space,
        start: Vec<u8>,
        prefix: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.blocking(move |db| {
            let cf = handle(db, space)?;
            let mut out = Vec::new();
            let from = if start < prefix { &prefix } else { &start };
            for item in db.iterator_cf(cf, rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward)) {
                let (key, value) = item?;
                if !key.starts_with(&prefix) || out.len() == limit {
                    break;
                }
                out.push((key.into_vec(), value.into_vec()));
            }
            Ok(out)
        })
        .await
    }

    /// Walks all of `space` whose keys begin with `prefix`, a page at a time.
    pub(super) fn walk(&self, space: Space, prefix: Vec<u8>) -> Walk<'_> {
        Walk { scratch: self, space, next: prefix.clone(), prefix, done: false }
    }
}

/// The scratch directory, removed when dropped: after the database, which is declared before it
/// in [`Scratch`] and so closed first.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(path = %self.0.display(), %err, "could not remove the rebuild's scratch space");
        }
    }
}

fn handle(db: &DB, space: Space) -> Result<&rocksdb::ColumnFamily> {
    db.cf_handle(space.name()).ok_or_else(|| Error::Index(format!("missing scratch space {}", space.name())))
}

/// A page-at-a-time walk over a prefix of a space.
pub(super) struct Walk<'a> {
    scratch: &'a Scratch,
    space: Space,
    prefix: Vec<u8>,
    next: Vec<u8>,
    done: bool,
}

impl Walk<'_> {
    /// Pairs per page; debug builds take a few, so that the tests' small clusters cross pages
    /// (a key's versions split over two pages, say).
    const PAGE: usize = if cfg!(debug_assertions) { 3 } else { 1000 };

    /// The next page; empty once the walk is over.
    pub(super) async fn page(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(Vec::new());
        }
        let page = self.scratch.scan(self.space, self.next.clone(), self.prefix.clone(), Self::PAGE).await?;
        match page.last() {
            Some((last, _)) if page.len() == Self::PAGE => {
                // The smallest key after `last`.
                self.next = last.clone();
                self.next.push(0);
            }
            _ => self.done = true,
        }
        Ok(page)
    }
}

/// `parts` joined so that no sequence of them is a prefix of another's encoding: each with its
/// length first.
pub(super) fn key_of(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        key.extend_from_slice(&len.to_be_bytes());
        key.extend_from_slice(part);
    }
    key
}

/// The first `parts` length-prefixed parts of a key made by [`key_of`] (and perhaps more).
pub(super) fn prefix_of(key: &[u8], parts: usize) -> &[u8] {
    let mut end = 0;
    for _ in 0..parts {
        let Some(len) = key.get(end..end + 4) else { return key };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        end = (end + 4 + len).min(key.len());
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_a_prefix_of_another_keys_group() {
        // Without the lengths, "a" + "b\0…" and "a\0b" + "…" could interleave.
        let one = key_of(&[b"a", b"b\0x"]);
        let two = key_of(&[b"a\0b", b"x"]);
        assert!(!one.starts_with(&two) && !two.starts_with(&one));
        let mut version = key_of(&[b"bkt", b"k"]);
        version.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(prefix_of(&version, 2), key_of(&[b"bkt", b"k"]));
        assert_eq!(prefix_of(&version, 1), key_of(&[b"bkt"]));
    }

    #[tokio::test]
    async fn walks_page_through_a_prefix_and_the_directory_goes_with_the_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        let scratch = Scratch::create(&index).unwrap();
        let pairs = |bucket: &str, n: u32| {
            (0..n).map(|i| (key_of(&[bucket.as_bytes(), &i.to_be_bytes()]), i.to_be_bytes().to_vec())).collect()
        };
        scratch.put_all(Space::Buckets, pairs("a", 2500)).await.unwrap();
        scratch.put_all(Space::Buckets, pairs("b", 3)).await.unwrap();
        let mut walk = scratch.walk(Space::Buckets, key_of(&[b"a"]));
        let mut seen = Vec::new();
        loop {
            let page = walk.page().await.unwrap();
            if page.is_empty() {
                break;
            }
            seen.extend(page.into_iter().map(|(_, v)| u32::from_be_bytes(v.try_into().unwrap())));
        }
        assert_eq!(seen, (0..2500).collect::<Vec<_>>());
        let keys = vec![key_of(&[b"b", &1u32.to_be_bytes()]), key_of(&[b"c"])];
        assert_eq!(
            scratch.get_all(Space::Buckets, keys.clone()).await.unwrap(),
            [Some(1u32.to_be_bytes().to_vec()), None]
        );
        scratch.delete_all(Space::Buckets, keys.clone()).await.unwrap();
        assert_eq!(scratch.get_all(Space::Buckets, keys).await.unwrap(), [None, None]);
        let path = dir.path().join(".index.rebuild-scratch");
        assert!(path.is_dir());
        drop(scratch);
        assert!(!path.exists(), "the scratch space is removed");
    }
}
