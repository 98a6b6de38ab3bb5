//! The commit log of a subvolume: the ids of blobs whose writes the gateway committed, so
//! that a rebuild of a lost index can tell a committed blob from one that reached the disk
//! but whose commit never happened (a crash in between, a conditional write that lost).
//!
//! ```text
//! commits.log = record*      record = blob id (16 bytes) | crc32c of the id (u32 LE)
//! ```
//!
//! Appends are group-committed: one thread per subvolume takes every append waiting, writes
//! them in one go and makes them durable with one `fdatasync`, then answers them all. A crash
//! can leave a torn last record, never acknowledged; opening the log cuts it off. A record
//! whose CRC fails is skipped when read. Appending an id twice is harmless.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::blob::crc32c;
use crate::error::{Error, Result};
use crate::store::BLOB_ID_LEN;

/// Name of the log file in a subvolume directory.
pub const FILE_NAME: &str = "commits.log";
const ID_BYTES: usize = BLOB_ID_LEN / 2;
/// Bytes of one record.
pub const RECORD_LEN: u64 = ID_BYTES as u64 + 4;
/// Largest number of ids one append or one read may carry.
pub const MAX_IDS: usize = 10_000;

type Append = (Vec<[u8; ID_BYTES]>, oneshot::Sender<std::io::Result<()>>);

/// The commit log of one subvolume.
#[derive(Debug)]
pub struct CommitLog {
    path: PathBuf,
    appends: mpsc::Sender<Append>,
}

impl CommitLog {
    /// Opens (creating) the log in `dir`, cuts off a torn last record, and starts its writer.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        if len % RECORD_LEN != 0 {
            tracing::warn!(path = %path.display(), len, "cutting off a torn record at the end of the commit log");
            file.set_len(len - len % RECORD_LEN)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::End(0))?;
        let (appends, queue) = mpsc::channel::<Append>();
        let name = format!("commit-log-{}", dir.display());
        std::thread::Builder::new().name(name).spawn(move || write_loop(file, queue))?;
        Ok(Self { path, appends })
    }

    /// Appends `ids` durably (hex blob ids, validated).
    pub async fn append(&self, ids: &[String]) -> Result<()> {
        if ids.len() > MAX_IDS {
            return Err(Error::BadRequest(format!("at most {MAX_IDS} ids per append")));
        }
        let raw = ids.iter().map(|id| parse_id(id)).collect::<Result<Vec<_>>>()?;
        let (done, answer) = oneshot::channel();
        self.appends.send((raw, done)).map_err(|_| Error::Io(std::io::Error::other("commit log writer stopped")))?;
        answer.await.map_err(|_| Error::Io(std::io::Error::other("commit log writer stopped")))??;
        Ok(())
    }

    /// Up to `limit` ids from record `from` on, and the record to continue from if more follow.
    pub async fn read(&self, from: u64, limit: usize) -> Result<(Vec<String>, Option<u64>)> {
        let path = self.path.clone();
        let limit = limit.clamp(1, MAX_IDS);
        tokio::task::spawn_blocking(move || read_records(&path, from, limit))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

fn parse_id(id: &str) -> Result<[u8; ID_BYTES]> {
    let mut raw = [0u8; ID_BYTES];
    if id.len() != BLOB_ID_LEN || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::BadRequest(format!("invalid blob id {id:?}")));
    }
    hex::decode_to_slice(id, &mut raw).map_err(|e| Error::BadRequest(e.to_string()))?;
    Ok(raw)
}

/// The writer thread: takes every append waiting, one write and one fdatasync for all.
fn write_loop(mut file: File, queue: mpsc::Receiver<Append>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let mut bytes = Vec::with_capacity(batch.iter().map(|(ids, _)| ids.len()).sum::<usize>() * RECORD_LEN as usize);
        for id in batch.iter().flat_map(|(ids, _)| ids) {
            bytes.extend_from_slice(id);
            bytes.extend_from_slice(&crc32c(id).to_le_bytes());
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

fn read_records(path: &Path, from: u64, limit: usize) -> Result<(Vec<String>, Option<u64>)> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(err) => return Err(err.into()),
    };
    let records = file.metadata()?.len() / RECORD_LEN;
    if from >= records {
        return Ok((Vec::new(), None));
    }
    let count = (records - from).min(limit as u64);
    file.seek(SeekFrom::Start(from * RECORD_LEN))?;
    let mut bytes = vec![0u8; (count * RECORD_LEN) as usize];
    file.read_exact(&mut bytes)?;
    let mut ids = Vec::with_capacity(count as usize);
    for (i, record) in bytes.chunks_exact(RECORD_LEN as usize).enumerate() {
        let (id, crc) = record.split_at(ID_BYTES);
        if crc32c(id).to_le_bytes() == crc {
            ids.push(hex::encode(id));
        } else {
            tracing::warn!(path = %path.display(), record = from + i as u64, "commit log record fails its CRC; skipped");
        }
    }
    let next = from + count;
    Ok((ids, (next < records).then_some(next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(16)
    }

    #[tokio::test]
    async fn appends_survive_reopening_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = CommitLog::open(dir.path()).unwrap();
            let ids: Vec<[String; 1]> = (0..20u8).map(|n| [id(n)]).collect();
            let appends: Vec<_> = ids.iter().map(|one| log.append(one)).collect();
            for append in futures::future::join_all(appends).await {
                append.unwrap();
            }
            assert!(log.append(&["nothex".into()]).await.is_err());
        }
        let path = dir.path().join(FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[1, 2, 3]).unwrap(); // a crash mid-record
        drop(file);
        let log = CommitLog::open(dir.path()).unwrap();
        log.append(&[id(99)]).await.unwrap();
        let (first, next) = log.read(0, 15).await.unwrap();
        assert_eq!(first.len(), 15);
        let (rest, end) = log.read(next.unwrap(), 100).await.unwrap();
        assert_eq!(end, None);
        let mut all: Vec<String> = first.into_iter().chain(rest).collect();
        assert_eq!(all.pop(), Some(id(99)), "appended after the cut, aligned");
        all.sort();
        assert_eq!(all, (0..20u8).map(id).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_damaged_record_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path()).unwrap();
        log.append(&[id(1), id(2), id(3)]).await.unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[RECORD_LEN as usize + 3] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let (ids, _) = log.read(0, 10).await.unwrap();
        assert_eq!(ids, [id(1), id(3)]);
    }
}
