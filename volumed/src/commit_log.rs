//! The commit log of a subvolume: the ids of blobs whose writes the gateway committed, each
//! with its commit order and kind, so that a rebuild of a lost index can tell a committed blob
//! from one that reached the disk but whose commit never happened (a crash in between, a
//! conditional write that lost), order the versions of a key as their commits were ordered
//! (the last write to *complete* wins, not the last to start), and know what each commit made
//! of its blob (the kind is the gateway's: which version of its key it became; opaque here).
//!
//! ```text
//! commit-order.log = record*   record = blob id (16 bytes) | order (u64 LE) | kind (u8)
//!                                       | crc32c of the rest (u32 LE)
//! commits.log      = record*   record = blob id (16 bytes) | crc32c of the id (u32 LE)
//! ```
//!
//! `commits.log` is the first format, without orders; a subvolume that has one keeps it for
//! reading (its records come first, with order 0, "not known") and appends to
//! `commit-order.log` only. Order 0 also stands for a commit whose order the appender did not
//! know.
//!
//! Appends are group-committed: one thread per subvolume takes every append waiting, writes
//! them in one go and makes them durable with one `fdatasync`, then answers them all. A crash
//! can leave a torn last record, never acknowledged; opening the log cuts it off. A record
//! whose CRC fails is skipped when read. Appending an id twice is harmless.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::blob::crc32c;
use crate::error::{Error, Result};
use crate::store::BLOB_ID_LEN;

/// Name of the log file in a subvolume directory.
pub const FILE_NAME: &str = "commit-order.log";
/// Name of the first format's log, read but no longer appended to.
pub const LEGACY_FILE_NAME: &str = "commits.log";
const ID_BYTES: usize = BLOB_ID_LEN / 2;
/// Bytes of one record.
pub const RECORD_LEN: u64 = ID_BYTES as u64 + 8 + 1 + 4;
/// Bytes of one record of the first format.
const LEGACY_RECORD_LEN: u64 = ID_BYTES as u64 + 4;
/// Largest number of ids one append or one read may carry.
pub const MAX_IDS: usize = 10_000;

/// One committed blob: its id (hex), the order of its commit among the versions of its key
/// (the gateway's commit timestamp; 0 when not known) and its kind (the gateway's; 0 when not
/// given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Blob id, hex.
    pub id: String,
    /// Commit order; 0: not known.
    #[serde(default)]
    pub order: u64,
    /// What the commit made of the blob, as the gateway counts; 0 when not given.
    #[serde(default)]
    pub kind: u8,
}

type Record = [u8; RECORD_LEN as usize - 4];
type Append = (Vec<Record>, oneshot::Sender<std::io::Result<()>>);

/// The commit log of one subvolume.
#[derive(Debug)]
pub struct CommitLog {
    path: PathBuf,
    legacy: Option<PathBuf>,
    appends: mpsc::Sender<Append>,
}

impl CommitLog {
    /// Opens (creating) the log in `dir`, cuts off a torn last record, and starts its writer.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        cut_torn_tail(&file, &path, RECORD_LEN)?;
        file.seek(SeekFrom::End(0))?;
        let legacy = dir.join(LEGACY_FILE_NAME);
        let legacy = match OpenOptions::new().write(true).open(&legacy) {
            Ok(old) => {
                cut_torn_tail(&old, &legacy, LEGACY_RECORD_LEN)?;
                Some(legacy)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err.into()),
        };
        let (appends, queue) = mpsc::channel::<Append>();
        let name = format!("commit-log-{}", dir.display());
        std::thread::Builder::new().name(name).spawn(move || write_loop(file, queue))?;
        Ok(Self { path, legacy, appends })
    }

    /// Appends `commits` durably (ids validated).
    pub async fn append(&self, commits: &[Commit]) -> Result<()> {
        if commits.len() > MAX_IDS {
            return Err(Error::BadRequest(format!("at most {MAX_IDS} ids per append")));
        }
        let records = commits.iter().map(record).collect::<Result<Vec<_>>>()?;
        let (done, answer) = oneshot::channel();
        self.appends
            .send((records, done))
            .map_err(|_| Error::Io(std::io::Error::other("commit log writer stopped")))?;
        answer.await.map_err(|_| Error::Io(std::io::Error::other("commit log writer stopped")))??;
        Ok(())
    }

    /// Up to `limit` commits from record `from` on (the first format's records first), and
    /// the record to continue from if more follow.
    pub async fn read(&self, from: u64, limit: usize) -> Result<(Vec<Commit>, Option<u64>)> {
        let (path, legacy) = (self.path.clone(), self.legacy.clone());
        let limit = limit.clamp(1, MAX_IDS);
        tokio::task::spawn_blocking(move || {
            let legacy_records = match &legacy {
                Some(legacy) => std::fs::metadata(legacy)?.len() / LEGACY_RECORD_LEN,
                None => 0,
            };
            match &legacy {
                Some(legacy) if from < legacy_records => {
                    let (commits, next) = read_records(legacy, LEGACY_RECORD_LEN, from, limit)?;
                    // The new log follows the old one: a page ends where the old log does.
                    Ok((commits, Some(next.unwrap_or(legacy_records))))
                }
                _ => {
                    let (commits, next) = read_records(&path, RECORD_LEN, from - legacy_records, limit)?;
                    Ok((commits, next.map(|n| n + legacy_records)))
                }
            }
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

/// Cuts a torn last record off `file` (a crash mid-append).
fn cut_torn_tail(file: &File, path: &Path, record_len: u64) -> Result<()> {
    let len = file.metadata()?.len();
    if len % record_len != 0 {
        tracing::warn!(path = %path.display(), len, "cutting off a torn record at the end of the commit log");
        file.set_len(len - len % record_len)?;
        file.sync_data()?;
    }
    Ok(())
}

fn record(commit: &Commit) -> Result<Record> {
    let id = &commit.id;
    if id.len() != BLOB_ID_LEN || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::BadRequest(format!("invalid blob id {id:?}")));
    }
    let mut raw = [0u8; RECORD_LEN as usize - 4];
    hex::decode_to_slice(id, &mut raw[..ID_BYTES]).map_err(|e| Error::BadRequest(e.to_string()))?;
    raw[ID_BYTES..ID_BYTES + 8].copy_from_slice(&commit.order.to_le_bytes());
    raw[ID_BYTES + 8] = commit.kind;
    Ok(raw)
}

/// The writer thread: takes every append waiting, one write and one fdatasync for all.
fn write_loop(mut file: File, queue: mpsc::Receiver<Append>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let records = batch.iter().map(|(records, _)| records.len()).sum::<usize>();
        let mut bytes = Vec::with_capacity(records * RECORD_LEN as usize);
        for record in batch.iter().flat_map(|(records, _)| records) {
            bytes.extend_from_slice(record);
            bytes.extend_from_slice(&crc32c(record).to_le_bytes());
        }
        let written = file.write_all(&bytes).and_then(|()| {
            let started = std::time::Instant::now();
            let synced = file.sync_data();
            metrics::histogram!("cairn_volume_fsync_seconds", "file" => "commit_log")
                .record(started.elapsed().as_secs_f64());
            synced
        });
        if let Err(err) = &written {
            tracing::error!(%err, "commit log append failed");
        }
        for (_, done) in batch {
            let _ = done.send(written.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string())));
        }
    }
}

/// Up to `limit` records of `path` (records of `record_len` bytes) from record `from` on.
fn read_records(path: &Path, record_len: u64, from: u64, limit: usize) -> Result<(Vec<Commit>, Option<u64>)> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(err) => return Err(err.into()),
    };
    let records = file.metadata()?.len() / record_len;
    if from >= records {
        return Ok((Vec::new(), None));
    }
    let count = (records - from).min(limit as u64);
    file.seek(SeekFrom::Start(from * record_len))?;
    let mut bytes = vec![0u8; (count * record_len) as usize];
    file.read_exact(&mut bytes)?;
    let mut commits = Vec::with_capacity(count as usize);
    for (i, record) in bytes.chunks_exact(record_len as usize).enumerate() {
        let (covered, crc) = record.split_at(record.len() - 4);
        if crc32c(covered).to_le_bytes() != crc {
            tracing::warn!(path = %path.display(), record = from + i as u64, "commit log record fails its CRC; skipped");
            continue;
        }
        let (id, rest) = covered.split_at(ID_BYTES);
        let order = rest.get(..8).and_then(|o| o.try_into().ok()).map_or(0, u64::from_le_bytes);
        let kind = rest.get(8).copied().unwrap_or(0);
        commits.push(Commit { id: hex::encode(id), order, kind });
    }
    let next = from + count;
    Ok((commits, (next < records).then_some(next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(16)
    }

    fn commit(n: u8) -> Commit {
        Commit { id: id(n), order: 1000 + u64::from(n), kind: n % 3 }
    }

    #[tokio::test]
    async fn appends_survive_reopening_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = CommitLog::open(dir.path()).unwrap();
            let commits: Vec<[Commit; 1]> = (0..20u8).map(|n| [commit(n)]).collect();
            let appends: Vec<_> = commits.iter().map(|one| log.append(one)).collect();
            for append in futures::future::join_all(appends).await {
                append.unwrap();
            }
            assert!(log.append(&[Commit { id: "nothex".into(), order: 1, kind: 0 }]).await.is_err());
        }
        let path = dir.path().join(FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[1, 2, 3]).unwrap(); // a crash mid-record
        drop(file);
        let log = CommitLog::open(dir.path()).unwrap();
        log.append(&[commit(99)]).await.unwrap();
        let (first, next) = log.read(0, 15).await.unwrap();
        assert_eq!(first.len(), 15);
        let (rest, end) = log.read(next.unwrap(), 100).await.unwrap();
        assert_eq!(end, None);
        let mut all: Vec<Commit> = first.into_iter().chain(rest).collect();
        assert_eq!(all.pop(), Some(commit(99)), "appended after the cut, aligned");
        all.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(all, (0..20u8).map(commit).collect::<Vec<_>>(), "ids with their orders");
    }

    #[tokio::test]
    async fn a_damaged_record_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path()).unwrap();
        log.append(&[commit(1), commit(2), commit(3)]).await.unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[RECORD_LEN as usize + 20] ^= 0x40; // in the second record's order
        std::fs::write(&path, bytes).unwrap();
        let (commits, _) = log.read(0, 10).await.unwrap();
        assert_eq!(commits, [commit(1), commit(3)]);
    }

    /// A subvolume written before commits had orders: its old records read first, order 0
    /// (a torn one cut off), then the new log's, and paging crosses from one to the other.
    #[tokio::test]
    async fn a_first_format_log_is_read_before_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Vec::new();
        for n in [1u8, 2, 3] {
            let raw = hex::decode(id(n)).unwrap();
            old.extend_from_slice(&raw);
            old.extend_from_slice(&crc32c(&raw).to_le_bytes());
        }
        old.extend_from_slice(&[9, 9]); // torn
        std::fs::write(dir.path().join(LEGACY_FILE_NAME), &old).unwrap();
        let log = CommitLog::open(dir.path()).unwrap();
        log.append(&[commit(4), commit(5)]).await.unwrap();
        let unordered = |n| Commit { id: id(n), order: 0, kind: 0 };
        let (page, next) = log.read(0, 2).await.unwrap();
        assert_eq!(page, [unordered(1), unordered(2)]);
        let (page, next) = log.read(next.unwrap(), 2).await.unwrap();
        assert_eq!(page, [unordered(3)], "a page ends where the old log does");
        let (page, next) = log.read(next.unwrap(), 10).await.unwrap();
        assert_eq!((page, next), (vec![commit(4), commit(5)], None));
        assert_eq!(std::fs::metadata(dir.path().join(LEGACY_FILE_NAME)).unwrap().len(), 3 * LEGACY_RECORD_LEN);
    }
}
