//! One file per blob: the store for blobs of unknown size or above the packing threshold, and
//! for everything written before packing existed.
//!
//! The file for id `abcd…` lives at `root/ab/cd/abcd…`. Writes go to a temp file in the same
//! directory, are fsynced, renamed into place, and the directory is fsynced, so a crash leaves
//! either the whole blob or nothing (plus at worst a temp file, which listing skips and
//! startup removes). The fan-out directories are created one level at a time, and the parent
//! of each is fsynced before anything is written into it: a directory whose entry is not
//! durable could vanish in a crash with every blob acknowledged inside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::backend::{BlobStore, OpenBlob};
use crate::blob::{self, Encoder};
use crate::error::{Error, Result};
use crate::store::{BLOB_ID_LEN, WriteReceipt, now_ms};

pub(crate) const TEMP_PREFIX: &str = ".tmp.";
const WRITE_BUFFER: usize = 256 * 1024;

/// The blob files of one subvolume directory.
#[derive(Debug)]
pub(crate) struct FileBlobs {
    root: PathBuf,
    /// The fan-out directories known durable; see [`DurableDirs`].
    durable: DurableDirs,
}

/// The fan-out directories of one subvolume this process has made durable: created, or found,
/// and then the parent fsynced. A directory found already there is synced once too, since its
/// creator (a write racing this one, or a process that died before its fsync) may not have
/// synced it yet. One flag per possible directory (256 + 65 536), so the check is lock-free and
/// the memory bounded.
#[derive(Debug)]
struct DurableDirs {
    level1: Box<[AtomicBool]>,
    level2: Box<[AtomicBool]>,
}

impl DurableDirs {
    fn new() -> Self {
        let flags = |n: usize| (0..n).map(|_| AtomicBool::new(false)).collect();
        Self { level1: flags(1 << 8), level2: flags(1 << 16) }
    }
}

impl FileBlobs {
    /// The blob files under `root`; removes temp files a crash left behind.
    pub(crate) fn open(root: &Path) -> Result<Self> {
        remove_temp_files(root)?;
        Ok(Self { root: root.to_path_buf(), durable: DurableDirs::new() })
    }

    /// Where blob `id` (validated by the caller) lives.
    pub(crate) fn path(&self, id: &str) -> PathBuf {
        self.root.join(&id[0..2]).join(&id[2..4]).join(id)
    }

    /// Makes the two fan-out directories of `id` exist durably, one level at a time: each one
    /// not yet known durable is created if missing and then its parent is fsynced, so that its
    /// entry survives a crash before any blob is acknowledged inside it. Returns the blob's
    /// directory.
    async fn make_fanout_durable(&self, id: &str) -> Result<PathBuf> {
        let root = self.root.as_path();
        let known = &self.durable;
        let hex = |range: std::ops::Range<usize>| {
            usize::from_str_radix(&id[range], 16).map_err(|_| Error::BadRequest(format!("invalid blob id {id:?}")))
        };
        let level1 = root.join(&id[0..2]);
        let level2 = level1.join(&id[2..4]);
        let levels = [
            (root, level1.as_path(), known.level1.get(hex(0..2)?)),
            (level1.as_path(), level2.as_path(), known.level2.get(hex(0..4)?)),
        ];
        for (parent, dir, flag) in levels {
            let flag = flag.ok_or_else(|| Error::BadRequest(format!("invalid blob id {id:?}")))?;
            // Acquire pairs with the Release below: seeing `true` means the fsync is done.
            if flag.load(Ordering::Acquire) {
                continue;
            }
            match tokio::fs::create_dir(dir).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err.into()),
            }
            sync_dir(parent).await?;
            flag.store(true, Ordering::Release);
        }
        Ok(level2)
    }

    /// Clears the known-durable flags of `id`'s fan-out directories.
    fn forget_fanout(&self, id: &str) {
        let known = &self.durable;
        let flags = [
            usize::from_str_radix(&id[0..2], 16).ok().and_then(|i| known.level1.get(i)),
            usize::from_str_radix(&id[0..4], 16).ok().and_then(|i| known.level2.get(i)),
        ];
        for flag in flags.into_iter().flatten() {
            flag.store(false, Ordering::Release);
        }
    }
}

impl BlobStore for FileBlobs {
    async fn write<S, E>(&self, id: &str, meta: &[u8], expected_size: Option<u64>, mut body: S) -> Result<WriteReceipt>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        let path = self.path(id);
        let parent = self.make_fanout_durable(id).await?;
        let temp = TempFile::new(parent.join(format!("{TEMP_PREFIX}{id}.{}", hex::encode(rand::random::<[u8; 4]>()))));
        let file = match tokio::fs::File::create(&temp.path).await {
            Ok(file) => file,
            // A directory known durable was removed behind our back (an operator pruning empty
            // directories): forget what we knew and make the fan-out again, once.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                self.forget_fanout(id);
                self.make_fanout_durable(id).await?;
                tokio::fs::File::create(&temp.path).await?
            }
            Err(err) => return Err(err.into()),
        };
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut encoder = Encoder::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::Body(e.to_string()))?;
            encoder.update(&chunk);
            if expected_size.is_some_and(|want| encoder.size() > want) {
                return Err(Error::Body("body longer than announced".into()));
            }
            out.write_all(&chunk).await?;
        }
        let size = encoder.size();
        if expected_size.is_some_and(|want| size != want) {
            return Err(Error::Body(format!("body ended after {size} bytes")));
        }
        let (tail, footer) = encoder.finish(meta, now_ms())?;
        out.write_all(&tail).await?;
        out.flush().await?;
        let file = out.into_inner();
        let started = std::time::Instant::now();
        file.sync_all().await?;
        metrics::histogram!("cairn_volume_fsync_seconds", "file" => "blob").record(started.elapsed().as_secs_f64());
        drop(file);
        tokio::fs::rename(&temp.path, &path).await?;
        temp.disarm();
        sync_dir(&parent).await?;
        Ok(WriteReceipt::of(&footer))
    }

    async fn open(&self, id: &str) -> Result<OpenBlob> {
        let path = self.path(id);
        blocking(move || {
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
                Err(err) => return Err(err.into()),
            };
            let len = file.metadata()?.len();
            let tail = blob::read_tail(&file, 0, len, None)?;
            Ok(OpenBlob { file: Arc::new(file), base: 0, footer: tail.footer, meta: tail.meta, crcs: tail.crcs })
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let path = self.path(id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
            Err(err) => return Err(err.into()),
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent).await?;
        }
        Ok(())
    }

    async fn list_ids(&self, after: &str, limit: usize) -> Result<Vec<String>> {
        let root = self.root.clone();
        let after = after.to_string();
        blocking(move || collect_ids(&root, &after, limit)).await
    }
}

/// Runs blocking file work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(format!("task failed: {e}"))))?
}

pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.len() == BLOB_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!("invalid blob id {id:?}")))
    }
}

/// Ids under `root` greater than `after`, sorted, at most `limit`. Walks the two fan-out
/// levels in order and skips whole directories that sort before `after`.
fn collect_ids(root: &Path, after: &str, limit: usize) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    if limit == 0 {
        return Ok(ids);
    }
    for level1 in sorted_hex_dirs(root, 2)? {
        if after.len() >= 2 && level1.as_str() < &after[..2] {
            continue;
        }
        for level2 in sorted_hex_dirs(&root.join(&level1), 2)? {
            let prefix = format!("{level1}{level2}");
            if after.len() >= 4 && prefix.as_str() < &after[..4] {
                continue;
            }
            let mut names: Vec<String> = std::fs::read_dir(root.join(&level1).join(&level2))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| check_id(name).is_ok() && name.as_str() > after)
                .collect();
            names.sort_unstable();
            for name in names {
                ids.push(name);
                if ids.len() == limit {
                    return Ok(ids);
                }
            }
        }
    }
    Ok(ids)
}

fn sorted_hex_dirs(dir: &Path, len: usize) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err.into()),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.len() == len && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    names.sort_unstable();
    Ok(names)
}

fn remove_temp_files(root: &Path) -> Result<()> {
    for level1 in sorted_hex_dirs(root, 2)? {
        for level2 in sorted_hex_dirs(&root.join(&level1), 2)? {
            let dir = root.join(&level1).join(&level2);
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
    }
    Ok(())
}

async fn sync_dir(dir: &Path) -> Result<()> {
    let file = tokio::fs::File::open(dir).await?;
    file.sync_all().await?;
    #[cfg(test)]
    SYNCED_DIRS.with(|synced| synced.borrow_mut().push(dir.to_path_buf()));
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Directories `sync_dir` fsynced on this thread (tests run on their own thread, and
    /// `#[tokio::test]` polls on it), in order.
    pub(crate) static SYNCED_DIRS: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Removes its file on drop unless disarmed, so an aborted write leaves no temp file.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::conformance;

    #[tokio::test]
    async fn file_per_blob_conforms() {
        let dir = tempfile::tempdir().unwrap();
        conformance::run(dir.path(), |root| FileBlobs::open(root).unwrap()).await;
    }
}
