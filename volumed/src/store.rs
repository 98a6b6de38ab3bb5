//! The blob store of one volume: its identity, its subvolume directories, and per subvolume a
//! [`BlobStore`] that keeps the blobs and a commit log.
//!
//! A blob id is 32 lowercase hex characters chosen by the gateway, validated here before any
//! subvolume sees it. How a subvolume keeps its blobs on disk is [`crate::subvolume`]'s
//! business (small blobs packed into segments, the rest a file each); reads, metadata and
//! listings go through the same boundary, [`BlobStore`].

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::Stream;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::backend::{BlobStore, OpenBlob};
use crate::blob::{self, Footer};
use crate::commit_log::CommitLog;
use crate::error::{Error, Result};
use crate::files::check_id;
use crate::subvolume::Subvolume;

/// Length of a blob id in hex characters.
pub const BLOB_ID_LEN: usize = 32;
const IDENTITY_FILE: &str = "cairn-volume.json";

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
    /// Per subvolume, its blobs.
    subvolumes: Vec<Subvolume>,
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

/// How subvolumes keep small blobs ([`crate::packed`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackOptions {
    /// Blobs of announced size up to this many bytes go into segments; 0 turns packing off.
    pub pack_threshold: u64,
    /// Bytes at which a segment is full and the next one started.
    pub segment_size: u64,
    /// Segments whose live bytes fall below this share of their size are compacted.
    pub compact_below: f64,
    /// Bytes per second compaction may read and copy.
    pub compact_rate: u64,
}

impl Default for PackOptions {
    fn default() -> Self {
        Self {
            pack_threshold: 1024 * 1024,
            segment_size: 1024 * 1024 * 1024,
            compact_below: 0.5,
            compact_rate: 32 * 1024 * 1024,
        }
    }
}

/// Name of the lock file in every subvolume directory.
const LOCK_FILE: &str = "cairn.lock";

/// Locks `dir` for this process alone (flock, released when the process ends, even by a crash).
fn lock_dir(dir: &Path) -> Result<Flock<std::fs::File>> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| Error::Config(format!("{} is in use by another cairn-volumed ({errno})", dir.display())))
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

impl WriteReceipt {
    pub(crate) fn of(footer: &Footer) -> Self {
        Self { size: footer.data_len, sha256: hex::encode(footer.sha256), md5: hex::encode(footer.md5) }
    }
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
        Self::open_with(dirs, options, PackOptions::default())
    }

    /// [`Store::open`] with the given packing of small blobs.
    pub fn open_with(dirs: &[PathBuf], options: OpenOptions, pack: PackOptions) -> Result<Self> {
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
        }
        let subvolumes = dirs.iter().map(|dir| Subvolume::open(dir, &pack)).collect::<Result<_>>()?;
        let commit_logs = dirs.iter().map(|dir| CommitLog::open(dir)).collect::<Result<_>>()?;
        Ok(Self { volume_id, dirs: dirs.to_vec(), subvolumes, commit_logs, _locks: locks })
    }

    /// The commit log of `subvolume`.
    pub fn commit_log(&self, subvolume: usize) -> Result<&CommitLog> {
        self.commit_logs.get(subvolume).ok_or(Error::NotFound)
    }

    /// This volume's stable id.
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }

    /// The blobs of `subvolume`, once `id` is known to be a valid blob id.
    fn blobs(&self, subvolume: usize, id: &str) -> Result<&Subvolume> {
        check_id(id)?;
        self.subvolumes.get(subvolume).ok_or(Error::NotFound)
    }

    /// The path blob `id` of `subvolume` has when kept in a file of its own (tests damage
    /// blobs through it).
    #[cfg(test)]
    pub(crate) fn blob_path(&self, subvolume: usize, id: &str) -> Result<PathBuf> {
        let (path, base) = self.blobs(subvolume, id)?.locate(id);
        assert_eq!(base, 0, "{id} is packed");
        Ok(path)
    }

    /// Where blob `id` of `subvolume` is: the file holding it and the offset of its first byte
    /// (tests damage blobs through it, wherever they are kept).
    #[cfg(test)]
    pub(crate) async fn locate(&self, subvolume: usize, id: &str) -> Result<(PathBuf, u64)> {
        Ok(self.blobs(subvolume, id)?.locate(id))
    }

    /// Streams `body` into a new blob, durably. On any error (including a body that ends with
    /// an error) nothing is left behind. `expected_size`, when given, must match exactly.
    pub async fn write<S, E>(
        &self,
        subvolume: usize,
        id: &str,
        meta: &[u8],
        expected_size: Option<u64>,
        body: S,
    ) -> Result<WriteReceipt>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        blob::check_meta(meta)?;
        self.blobs(subvolume, id)?.write(id, meta, expected_size, body).await
    }

    /// Opens a blob for reading, its footer and metadata checked, so a blob with any corrupt
    /// part is refused before a byte is served.
    pub async fn open_checked(&self, subvolume: usize, id: &str) -> Result<OpenBlob> {
        self.blobs(subvolume, id)?.open(id).await
    }

    /// Reads a blob's footer and metadata JSON.
    pub async fn meta(&self, subvolume: usize, id: &str) -> Result<(Footer, Vec<u8>)> {
        let blob = self.open_checked(subvolume, id).await?;
        Ok((blob.footer, blob.meta))
    }

    /// Deletes a blob durably.
    pub async fn delete(&self, subvolume: usize, id: &str) -> Result<()> {
        self.blobs(subvolume, id)?.delete(id).await
    }

    /// Up to `limit` blobs of `subvolume` with ids greater than `after`, in id order, and
    /// the id to continue after if more may follow.
    pub async fn list(
        &self,
        subvolume: usize,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ListedBlob>, Option<String>)> {
        let blobs_of = self.subvolumes.get(subvolume).ok_or(Error::NotFound)?;
        let ids = blobs_of.list_ids(after.unwrap_or(""), limit).await?;
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

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use futures::Stream;
    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::files::{SYNCED_DIRS, TEMP_PREFIX};

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

    fn take_synced() -> Vec<PathBuf> {
        SYNCED_DIRS.with(|synced| synced.take())
    }

    fn body(
        parts: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Stream<Item = Result<Bytes, &'static str>> + Unpin + Send {
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
        let got = store.open_checked(0, &id(4)).await.unwrap();
        assert_eq!((got.footer.data_len, got.meta.as_slice()), (11, &meta[..]));
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
