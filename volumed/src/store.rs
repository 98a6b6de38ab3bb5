//! Blobs on local subvolume directories: naming, durable writes, reads, deletes and listing.
//!
//! A blob id is 32 lowercase hex characters chosen by the gateway; the file for id
//! `abcd…` in subvolume `s` lives at `dir[s]/ab/cd/abcd…`. Writes go to a temp file in the
//! same directory, are fsynced, renamed into place, and the directory is fsynced, so a crash
//! leaves either the whole blob or nothing (plus at worst a temp file, which listing skips
//! and startup removes). The fan-out directories are created one level at a time, and the
//! parent of each is fsynced before anything is written into it: a directory whose entry is not
//! durable could vanish in a crash with every blob acknowledged inside it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::blob::{self, BLOCK_LEN, BlockSums, Footer, MAX_META_LEN};
use nix::fcntl::{Flock, FlockArg};

use crate::commit_log::CommitLog;
use crate::error::{Error, Result};

/// Length of a blob id in hex characters.
pub const BLOB_ID_LEN: usize = 32;
const TEMP_PREFIX: &str = ".tmp.";
const IDENTITY_FILE: &str = "cairn-volume.json";
const WRITE_BUFFER: usize = 256 * 1024;

/// Which volume a directory belongs to and at which position; written once per directory so
/// that a reordered `--dir` list or a disk from another volume is caught at startup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Identity {
    volume_id: String,
    subvolume: usize,
}

/// The blob store of one volume: its id and its subvolume directories.
#[derive(Debug)]
pub struct Store {
    volume_id: String,
    dirs: Vec<PathBuf>,
    /// Per subvolume, the fan-out directories known durable; see [`DurableDirs`].
    durable: Vec<DurableDirs>,
    /// Per subvolume, the ids of committed blobs.
    commit_logs: Vec<CommitLog>,
    /// Held for the life of the store: a second daemon on the same directories is refused.
    _locks: Vec<Flock<std::fs::File>>,
}

/// How strictly [`Store::open`] treats its directories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Make missing directories, and directories that are not yet subvolumes, into ones.
    pub init: bool,
    /// Accept several directories on one file system.
    pub allow_shared_fs: bool,
}

/// Name of the lock file in every subvolume directory.
const LOCK_FILE: &str = "cairn.lock";

/// Locks `dir` for this process alone (flock, released when the process ends, even by a crash).
fn lock_dir(dir: &Path) -> Result<Flock<std::fs::File>> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| Error::Config(format!("{} is in use by another cairn-volumed ({errno})", dir.display())))
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

/// What a finished write reports back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WriteReceipt {
    /// Data bytes written.
    pub size: u64,
    /// SHA-256 of the data, hex.
    pub sha256: String,
    /// MD5 of the data, hex.
    pub md5: String,
}

/// One entry of a subvolume listing.
#[derive(Debug, Serialize)]
pub struct ListedBlob {
    /// Blob id.
    pub id: String,
    /// Footer facts: sizes, digests, write time.
    #[serde(flatten)]
    pub footer: Footer,
    /// The writer's metadata, as it was written.
    pub meta: Box<serde_json::value::RawValue>,
}

/// Free and total space of one subvolume.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct SubvolumeStats {
    /// Position in the `--dir` list.
    pub index: usize,
    /// Bytes available to the daemon.
    pub free_bytes: u64,
    /// Size of the file system.
    pub total_bytes: u64,
}

/// `/stats` answer.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct VolumeStats {
    /// Stable id of this volume (kept in every data directory).
    pub volume_id: String,
    /// One entry per subvolume, in order.
    pub subvolumes: Vec<SubvolumeStats>,
    /// Milliseconds since a gateway last named itself to this volume (see
    /// [`crate::membership`]); `None` if none has, or every one has said goodbye.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_seen_ms_ago: Option<u64>,
}

impl Store {
    /// Opens the subvolume directories: locks each one for this process alone, checks their
    /// identity files and removes temp files a crash left behind. A directory that is missing
    /// or not yet a Cairn subvolume is refused unless `options.init` (an unmounted disk must
    /// not be filled on the root file system), and two directories on one file system unless
    /// `options.allow_shared_fs` (they would not be separate disks).
    pub fn open(dirs: &[PathBuf], options: OpenOptions) -> Result<Self> {
        if dirs.is_empty() {
            return Err(Error::Config("at least one --dir is required".into()));
        }
        for dir in dirs {
            let is_subvolume = dir.join(IDENTITY_FILE).is_file();
            if !is_subvolume && !options.init {
                let what = if dir.is_dir() { "is not a Cairn subvolume yet" } else { "does not exist" };
                return Err(Error::Config(format!(
                    "{} {what}; if it is the right disk, start once with --init to make it one",
                    dir.display()
                )));
            }
        }
        let mut found: Option<String> = None;
        let mut locks = Vec::with_capacity(dirs.len());
        let mut devices: Vec<(u64, &PathBuf)> = Vec::with_capacity(dirs.len());
        for (index, dir) in dirs.iter().enumerate() {
            if !dir.is_dir() {
                std::fs::create_dir_all(dir)?;
                // The subvolume root's own entry must be durable like the fan-out below it.
                // (Further ancestors, if any were missing, are the operator's layout.)
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::File::open(parent)?.sync_all()?;
                }
            }
            locks.push(lock_dir(dir)?);
            let device = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(dir)?);
            if let Some((_, other)) = devices.iter().find(|(d, _)| *d == device)
                && !options.allow_shared_fs
            {
                return Err(Error::Config(format!(
                    "{} and {} are on the same file system, so they are not two disks; pass --allow-shared-fs if that is meant",
                    other.display(),
                    dir.display()
                )));
            }
            devices.push((device, dir));
            let path = dir.join(IDENTITY_FILE);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let identity: Identity =
                    serde_json::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                if identity.subvolume != index {
                    return Err(Error::Config(format!(
                        "{} is subvolume {} but was given at position {index}",
                        dir.display(),
                        identity.subvolume
                    )));
                }
                match &found {
                    Some(id) if *id != identity.volume_id => {
                        return Err(Error::Config(format!(
                            "{} belongs to volume {}",
                            dir.display(),
                            identity.volume_id
                        )));
                    }
                    _ => found = Some(identity.volume_id),
                }
            }
        }
        let volume_id = found.unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()));
        for (index, dir) in dirs.iter().enumerate() {
            let path = dir.join(IDENTITY_FILE);
            if !path.exists() {
                let identity = Identity { volume_id: volume_id.clone(), subvolume: index };
                let text = serde_json::to_vec(&identity).map_err(|e| Error::Config(e.to_string()))?;
                write_file_durably(&path, &text)?;
            }
            remove_temp_files(dir)?;
        }
        let durable = dirs.iter().map(|_| DurableDirs::new()).collect();
        let commit_logs = dirs.iter().map(|dir| CommitLog::open(dir)).collect::<Result<_>>()?;
        Ok(Self { volume_id, dirs: dirs.to_vec(), durable, commit_logs, _locks: locks })
    }

    /// The commit log of `subvolume`.
    pub fn commit_log(&self, subvolume: usize) -> Result<&CommitLog> {
        self.commit_logs.get(subvolume).ok_or(Error::NotFound)
    }

    /// This volume's stable id.
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }

    fn dir(&self, subvolume: usize) -> Result<&Path> {
        self.dirs.get(subvolume).map(PathBuf::as_path).ok_or(Error::NotFound)
    }

    /// The path of blob `id` in `subvolume`, after validating both.
    pub fn blob_path(&self, subvolume: usize, id: &str) -> Result<PathBuf> {
        check_id(id)?;
        Ok(self.dir(subvolume)?.join(&id[0..2]).join(&id[2..4]).join(id))
    }

    /// Streams `body` into a new blob, durably. On any error (including a body that ends with
    /// an error) nothing is left behind. `expected_size`, when given, must match exactly.
    pub async fn write<S, E>(
        &self,
        subvolume: usize,
        id: &str,
        meta: &[u8],
        expected_size: Option<u64>,
        mut body: S,
    ) -> Result<WriteReceipt>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if meta.len() > MAX_META_LEN {
            return Err(Error::BadRequest("metadata too large".into()));
        }
        serde_json::from_slice::<&serde_json::value::RawValue>(meta)
            .map_err(|e| Error::BadRequest(format!("metadata is not JSON: {e}")))?;
        let path = self.blob_path(subvolume, id)?;
        let parent = self.make_fanout_durable(subvolume, id).await?;
        let temp = TempFile::new(parent.join(format!("{TEMP_PREFIX}{id}.{}", hex::encode(rand::random::<[u8; 4]>()))));
        let file = match tokio::fs::File::create(&temp.path).await {
            Ok(file) => file,
            // A directory known durable was removed behind our back (an operator pruning empty
            // directories): forget what we knew and make the fan-out again, once.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                self.forget_fanout(subvolume, id);
                self.make_fanout_durable(subvolume, id).await?;
                tokio::fs::File::create(&temp.path).await?
            }
            Err(err) => return Err(err.into()),
        };
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut sha = Sha256::new();
        let mut md5 = Md5::new();
        let mut blocks = BlockSums::new(BLOCK_LEN);
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::Body(e.to_string()))?;
            sha.update(&chunk);
            md5.update(&chunk);
            blocks.update(&chunk);
            size += chunk.len() as u64;
            if expected_size.is_some_and(|want| size > want) {
                return Err(Error::Body("body longer than announced".into()));
            }
            out.write_all(&chunk).await?;
        }
        if expected_size.is_some_and(|want| size != want) {
            return Err(Error::Body(format!("body ended after {size} bytes")));
        }
        let footer = Footer {
            data_len: size,
            block_len: BLOCK_LEN,
            meta_len: u32::try_from(meta.len()).map_err(|_| Error::BadRequest("metadata too large".into()))?,
            sha256: sha.finalize().into(),
            md5: md5.finalize().into(),
            written_at_ms: now_ms(),
            meta_crc32c: blob::crc32c(meta),
        };
        out.write_all(&blocks.finish()).await?;
        out.write_all(meta).await?;
        out.write_all(&footer.encode()).await?;
        out.flush().await?;
        let file = out.into_inner();
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp.path, &path).await?;
        temp.disarm();
        sync_dir(&parent).await?;
        Ok(WriteReceipt { size, sha256: hex::encode(footer.sha256), md5: hex::encode(footer.md5) })
    }

    /// Makes the two fan-out directories of `id` exist durably, one level at a time: each one
    /// not yet known durable is created if missing and then its parent is fsynced, so that its
    /// entry survives a crash before any blob is acknowledged inside it. Returns the blob's
    /// directory.
    async fn make_fanout_durable(&self, subvolume: usize, id: &str) -> Result<PathBuf> {
        let root = self.dir(subvolume)?;
        let known = self.durable.get(subvolume).ok_or(Error::NotFound)?;
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
    fn forget_fanout(&self, subvolume: usize, id: &str) {
        let Some(known) = self.durable.get(subvolume) else { return };
        let flags = [
            usize::from_str_radix(&id[0..2], 16).ok().and_then(|i| known.level1.get(i)),
            usize::from_str_radix(&id[0..4], 16).ok().and_then(|i| known.level2.get(i)),
        ];
        for flag in flags.into_iter().flatten() {
            flag.store(false, Ordering::Release);
        }
    }

    /// Opens a blob for reading and returns the file with its footer (CRC checked) and its
    /// metadata (CRC checked), so a blob with any corrupt part is refused before a byte is served.
    pub async fn open_checked(&self, subvolume: usize, id: &str) -> Result<(tokio::fs::File, Footer, Vec<u8>)> {
        let (mut file, footer) = self.open_blob(subvolume, id).await?;
        let meta = blob::read_meta(&mut file, &footer).await?;
        Ok((file, footer, meta))
    }

    /// Opens a blob for reading and returns the file with its footer (CRC checked).
    pub async fn open_blob(&self, subvolume: usize, id: &str) -> Result<(tokio::fs::File, Footer)> {
        let path = self.blob_path(subvolume, id)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
            Err(err) => return Err(err.into()),
        };
        let footer = blob::read_footer(&mut file).await?;
        Ok((file, footer))
    }

    /// Reads a blob's metadata JSON.
    pub async fn meta(&self, subvolume: usize, id: &str) -> Result<(Footer, Vec<u8>)> {
        let (_, footer, meta) = self.open_checked(subvolume, id).await?;
        Ok((footer, meta))
    }

    /// Deletes a blob durably.
    pub async fn delete(&self, subvolume: usize, id: &str) -> Result<()> {
        let path = self.blob_path(subvolume, id)?;
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

    /// Up to `limit` blobs of `subvolume` with ids greater than `after`, in id order, and
    /// the id to continue after if more may follow.
    pub async fn list(
        &self,
        subvolume: usize,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ListedBlob>, Option<String>)> {
        let root = self.dir(subvolume)?.to_path_buf();
        let after = after.unwrap_or("").to_string();
        let ids = tokio::task::spawn_blocking(move || collect_ids(&root, &after, limit))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        let mut blobs = Vec::with_capacity(ids.len());
        for id in &ids {
            let listed = self.meta(subvolume, id).await.and_then(|(footer, meta)| {
                // The CRC matched, so this is the JSON that was checked at write time; if it
                // still does not parse, the blob is skipped like any other corrupt one rather
                // than failing the whole page.
                let meta = String::from_utf8(meta).map_err(|e| Error::Corrupt(format!("metadata: {e}")))?;
                let meta = serde_json::value::RawValue::from_string(meta)
                    .map_err(|e| Error::Corrupt(format!("metadata: {e}")))?;
                Ok(ListedBlob { id: id.clone(), footer, meta })
            });
            match listed {
                Ok(blob) => blobs.push(blob),
                // Deleted between the directory walk and the read: not part of the listing.
                Err(Error::NotFound) => {}
                // A listing serves rebuild, GC and rebalance: one bad blob must not hide the
                // others. Verify (which reads every replica) reports and repairs it.
                Err(err) => {
                    tracing::warn!(%id, %err, "unreadable blob skipped in listing");
                }
            }
        }
        let next = if ids.len() == limit { ids.last().cloned() } else { None };
        Ok((blobs, next))
    }

    /// Space per subvolume.
    pub fn stats(&self) -> Result<VolumeStats> {
        let mut subvolumes = Vec::with_capacity(self.dirs.len());
        for (index, dir) in self.dirs.iter().enumerate() {
            let fs = nix::sys::statvfs::statvfs(dir).map_err(|e| Error::Io(std::io::Error::from(e)))?;
            let block = fs.fragment_size();
            subvolumes.push(SubvolumeStats {
                index,
                free_bytes: fs.blocks_available() * block,
                total_bytes: fs.blocks() * block,
            });
        }
        Ok(VolumeStats { volume_id: self.volume_id.clone(), subvolumes, gateway_seen_ms_ago: None })
    }
}

fn check_id(id: &str) -> Result<()> {
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

/// Writes `path` so that a crash leaves the old file or the new one, never a torn one.
pub(crate) fn write_file_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

async fn sync_dir(dir: &Path) -> Result<()> {
    let file = tokio::fs::File::open(dir).await?;
    file.sync_all().await?;
    #[cfg(test)]
    tests::SYNCED_DIRS.with(|synced| synced.borrow_mut().push(dir.to_path_buf()));
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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
    use std::cell::RefCell;

    use super::*;

    /// Fresh directories on the test's one disk.
    const FRESH: OpenOptions = OpenOptions { init: true, allow_shared_fs: true };

    #[test]
    fn directories_are_not_mixed_up() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let strict = OpenOptions::default();
        let missing = Store::open(std::slice::from_ref(&a), strict).unwrap_err().to_string();
        assert!(missing.contains("does not exist") && missing.contains("--init"), "{missing}");
        std::fs::create_dir(&a).unwrap();
        let bare = Store::open(std::slice::from_ref(&a), strict).unwrap_err().to_string();
        assert!(bare.contains("not a Cairn subvolume"), "{bare}");
        let store = Store::open(std::slice::from_ref(&a), OpenOptions { init: true, ..strict }).unwrap();
        let twice = Store::open(std::slice::from_ref(&a), strict).unwrap_err().to_string();
        assert!(twice.contains("in use by another cairn-volumed"), "{twice}");
        drop(store);
        Store::open(std::slice::from_ref(&a), strict).unwrap();
        let shared = Store::open(&[a, b], OpenOptions { init: true, ..strict }).unwrap_err().to_string();
        assert!(shared.contains("same file system") && shared.contains("--allow-shared-fs"), "{shared}");
    }

    thread_local! {
        /// Directories `sync_dir` fsynced on this thread (tests run on their own thread, and
        /// `#[tokio::test]` polls on it), in order.
        pub(super) static SYNCED_DIRS: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    fn take_synced() -> Vec<PathBuf> {
        SYNCED_DIRS.with(|synced| synced.take())
    }

    fn body(
        parts: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Stream<Item = Result<Bytes, &'static str>> + Unpin {
        futures::stream::iter(parts.into_iter().map(|p| p.map(Bytes::from_static)))
    }

    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(16)
    }

    #[tokio::test]
    async fn write_read_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&[dir.path().join("a"), dir.path().join("b")], FRESH).unwrap();
        let receipt =
            store.write(1, &id(7), br#"{"k":"v"}"#, Some(11), body(vec![Ok(b"hello "), Ok(b"world")])).await.unwrap();
        assert_eq!(receipt.size, 11);
        assert_eq!(receipt.sha256, hex::encode(Sha256::digest(b"hello world")));
        let (footer, meta) = store.meta(1, &id(7)).await.unwrap();
        assert_eq!(footer.data_len, 11);
        assert_eq!(meta, br#"{"k":"v"}"#);
        assert!(matches!(store.meta(0, &id(7)).await, Err(Error::NotFound)));

        store.write(1, &id(3), b"{}", None, body(vec![Ok(b"x")])).await.unwrap();
        let (listed, next) = store.list(1, None, 10).await.unwrap();
        assert_eq!(listed.iter().map(|b| b.id.clone()).collect::<Vec<_>>(), vec![id(3), id(7)]);
        assert_eq!(next, None);
        let (page, next) = store.list(1, None, 1).await.unwrap();
        assert_eq!(page[0].id, id(3));
        let (page, _) = store.list(1, next.as_deref(), 1).await.unwrap();
        assert_eq!(page[0].id, id(7));

        store.delete(1, &id(7)).await.unwrap();
        assert!(matches!(store.delete(1, &id(7)).await, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn failed_body_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&[dir.path().to_path_buf()], FRESH).unwrap();
        let err = store.write(0, &id(1), b"{}", None, body(vec![Ok(b"part"), Err("client went away")])).await;
        assert!(matches!(err, Err(Error::Body(_))));
        let short = store.write(0, &id(2), b"{}", Some(10), body(vec![Ok(b"part")])).await;
        assert!(matches!(short, Err(Error::Body(_))));
        assert!(matches!(store.meta(0, &id(1)).await, Err(Error::NotFound)));
        let leftovers: Vec<_> = walk(dir.path()).into_iter().filter(|p| p.contains(TEMP_PREFIX)).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn identity_is_kept_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let first = Store::open(&[a.clone(), b.clone()], FRESH).unwrap().volume_id().to_string();
        let again = Store::open(&[a.clone(), b.clone()], FRESH).unwrap().volume_id().to_string();
        assert_eq!(first, again);
        assert!(Store::open(&[b, a], FRESH).is_err(), "swapped disks must be refused");
    }

    #[test]
    fn ids_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&[dir.path().to_path_buf()], FRESH).unwrap();
        assert!(store.blob_path(0, "../../etc/passwd").is_err());
        assert!(store.blob_path(0, &"A".repeat(32)).is_err());
        assert!(store.blob_path(5, &id(1)).is_err());
    }

    #[tokio::test]
    async fn fanout_directories_are_synced_up_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sv");
        let store = Store::open(std::slice::from_ref(&root), FRESH).unwrap();
        let id = |prefix: &str, n: u8| format!("{prefix}{}", format!("{n:02x}").repeat(14));
        let write = |id: String| {
            let store = &store;
            async move { store.write(0, &id, b"{}", None, body(vec![Ok(b"x")])).await.unwrap() }
        };
        take_synced();

        // A fresh fan-out: each new directory's parent, then the blob's directory after the rename.
        write(id("aabb", 1)).await;
        assert_eq!(take_synced(), vec![root.clone(), root.join("aa"), root.join("aa/bb")]);
        assert!(root.join("aa/bb").join(id("aabb", 1)).is_file());

        // The same directories again: only the rename needs syncing.
        write(id("aabb", 2)).await;
        assert_eq!(take_synced(), vec![root.join("aa/bb")]);

        // A new second level under a known first level: only its parent.
        write(id("aacc", 3)).await;
        assert_eq!(take_synced(), vec![root.join("aa"), root.join("aa/cc")]);

        // A restarted daemon cannot know whether the directories it finds were synced (the
        // previous process may have died in between): it syncs each parent once.
        drop(store);
        let store = Store::open(std::slice::from_ref(&root), FRESH).unwrap();
        take_synced();
        store.write(0, &id("aabb", 4), b"{}", None, body(vec![Ok(b"x")])).await.unwrap();
        assert_eq!(take_synced(), vec![root.clone(), root.join("aa"), root.join("aa/bb")]);
        store.write(0, &id("aabb", 5), b"{}", None, body(vec![Ok(b"x")])).await.unwrap();
        assert_eq!(take_synced(), vec![root.join("aa/bb")]);

        // Directories removed behind the daemon's back are made again, durably.
        std::fs::remove_dir_all(root.join("aa")).unwrap();
        store.write(0, &id("aabb", 6), b"{}", None, body(vec![Ok(b"x")])).await.unwrap();
        assert_eq!(take_synced(), vec![root.clone(), root.join("aa"), root.join("aa/bb")]);
        assert!(root.join("aa/bb").join(id("aabb", 6)).is_file());
    }

    /// Flips one byte of a blob file, counted from its end.
    fn flip_from_end(path: &Path, from_end: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.len() - usize::try_from(from_end).unwrap();
        bytes[at] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    }

    #[tokio::test]
    async fn corrupt_footers_and_metadata_are_refused_and_skipped_in_listings() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&[dir.path().to_path_buf()], FRESH).unwrap();
        let meta = br#"{"bucket":"b","key":"k"}"#;
        for n in 1..=4 {
            store.write(0, &id(n), meta, None, body(vec![Ok(b"hello world")])).await.unwrap();
        }
        // 1: a byte of the stored MD5 (footer offset 56..72). 2: a byte of the metadata.
        // 3: one byte appended, so the lengths disagree with the file size. 4: untouched.
        flip_from_end(&store.blob_path(0, &id(1)).unwrap(), blob::FOOTER_LEN - 60);
        flip_from_end(&store.blob_path(0, &id(2)).unwrap(), blob::FOOTER_LEN + 5);
        let mut grown = std::fs::read(store.blob_path(0, &id(3)).unwrap()).unwrap();
        grown.push(0);
        std::fs::write(store.blob_path(0, &id(3)).unwrap(), grown).unwrap();

        for n in 1..=3 {
            assert!(matches!(store.meta(0, &id(n)).await, Err(Error::Corrupt(_))), "blob {n}: metadata read");
            assert!(matches!(store.open_checked(0, &id(n)).await, Err(Error::Corrupt(_))), "blob {n}: GET");
        }
        let (_, footer, got) = store.open_checked(0, &id(4)).await.unwrap();
        assert_eq!((footer.data_len, got.as_slice()), (11, &meta[..]));
        let (listed, _) = store.list(0, None, 10).await.unwrap();
        assert_eq!(listed.iter().map(|b| b.id.clone()).collect::<Vec<_>>(), vec![id(4)]);

        // A rewrite (what repair does) replaces a corrupt file.
        store.write(0, &id(1), meta, None, body(vec![Ok(b"hello world")])).await.unwrap();
        assert!(store.open_checked(0, &id(1)).await.is_ok());
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
        out
    }
}
