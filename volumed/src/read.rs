//! Reading a blob's data with every block checked before a byte of it leaves the daemon.
//!
//! A read covers whole blocks (see [`crate::blob::BLOCK_LEN`]): each block it touches is read
//! into memory and checked against its CRC32C from the blob's table, and only then is the part
//! of it inside the requested range handed out. The first block is checked before the response
//! starts, so a damaged blob up to one block long (most objects) is refused with a status
//! (422, see `http`) and the reader goes to another replica before anything was sent; a damaged
//! later block ends the body early, and the reader resumes from another replica at that offset.
//!
//! Block buffers come out of one memory budget shared by all reads ([`ReadBudget`]), held until
//! the connection has written the bytes out, so memory stays bounded whatever the number of
//! concurrent reads; a read that cannot get its budget in time fails instead of waiting forever.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backend::OpenBlob;
use crate::blob::{self, Footer};
use crate::cached;
use crate::error::{Error, Result};
use crate::files::blocking;

/// Budget granularity: permits are KiB.
const PERMIT_BYTES: u64 = 1024;
/// Longest wait for budget before a read gives up (the gateway then reads another replica).
const BUDGET_WAIT: Duration = Duration::from_secs(10);

/// The memory all block buffers of in-flight reads may use together.
#[derive(Debug, Clone)]
pub struct ReadBudget(Arc<Semaphore>);

impl ReadBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let permits = usize::try_from(bytes / PERMIT_BYTES).unwrap_or(Semaphore::MAX_PERMITS);
        Self(Arc::new(Semaphore::new(permits.clamp(1, Semaphore::MAX_PERMITS))))
    }

    async fn take(&self, bytes: u64) -> Result<OwnedSemaphorePermit> {
        let permits = u32::try_from(bytes.div_ceil(PERMIT_BYTES).max(1))
            .map_err(|_| Error::BadRequest("block too large".into()))?;
        match tokio::time::timeout(BUDGET_WAIT, self.0.clone().acquire_many_owned(permits)).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Error::Busy("read budget closed".into())),
            Err(_) => Err(Error::Busy(format!("no read buffer free within {BUDGET_WAIT:?}"))),
        }
    }
}

/// A checked block's bytes; its budget is returned when the last slice of it is dropped.
struct Budgeted {
    bytes: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// `[start, end)` of a blob's data, handed out block by block, each checked.
pub struct CheckedRead {
    file: Arc<std::fs::File>,
    /// Where the blob starts in `file` (0 unless it is packed in a segment).
    base: u64,
    footer: Footer,
    budget: ReadBudget,
    /// CRCs of the blocks `first_block..`, as the table holds them.
    crcs: Vec<u32>,
    first_block: u64,
    next_block: u64,
    start: u64,
    end: u64,
}

impl CheckedRead {
    /// Prepares to read `[start, end)` (already checked against the blob's length) of an open
    /// blob whose footer was checked.
    pub async fn open(blob: &OpenBlob, start: u64, end: u64, budget: ReadBudget) -> Result<Self> {
        let (file, base, footer) = (blob.file.clone(), blob.base, blob.footer.clone());
        let block_len = u64::from(footer.block_len);
        let (first_block, end_block) = if end > start { (start / block_len, end.div_ceil(block_len)) } else { (0, 0) };
        let known = blob.crcs.as_ref().and_then(|all| all.get(first_block as usize..end_block as usize));
        let crcs = match known {
            Some(crcs) => crcs.to_vec(),
            None => {
                let (file, footer) = (file.clone(), footer.clone());
                blocking(move || blob::read_block_crcs(&file, base, &footer, first_block, end_block)).await?
            }
        };
        Ok(Self { file, base, footer, budget, crcs, first_block, next_block: first_block, start, end })
    }

    /// Whether every block of the range has been handed out.
    pub fn is_done(&self) -> bool {
        self.next_block - self.first_block >= self.crcs.len() as u64
    }

    /// The next checked piece of the range, `None` once it is all out. After an error the
    /// read is over.
    pub async fn next(&mut self) -> Option<Result<Bytes>> {
        let n = self.next_block;
        let crc = *self.crcs.get((n - self.first_block) as usize)?;
        self.next_block += 1;
        Some(self.block(n, crc).await)
    }

    async fn block(&mut self, n: u64, crc: u32) -> Result<Bytes> {
        let (block_start, block_end) = self.footer.block_span(n);
        let permit = self.budget.take(block_end - block_start).await?;
        let bytes =
            cached::read_with(&self.file, (block_end - block_start) as usize, self.base + block_start, move |bytes| {
                if blob::crc32c(&bytes) == crc {
                    Ok(bytes)
                } else {
                    Err(Error::Corrupt(format!(
                        "data block {n} (bytes {block_start}-{}) failed its CRC32C",
                        block_end - 1
                    )))
                }
            })
            .await?;
        let from = (self.start.max(block_start) - block_start) as usize;
        let to = (self.end.min(block_end) - block_start) as usize;
        Ok(Bytes::from_owner(Budgeted { bytes, _permit: permit }).slice(from..to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpenOptions, Store};

    const BLOCK: u64 = blob::BLOCK_LEN as u64;

    fn data(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// A store holding one blob of `len` bytes with one byte flipped at each of `flips`.
    async fn damaged_blob(dir: &std::path::Path, len: u64, flips: &[u64]) -> Store {
        let store = Store::open(&[dir.join("sv")], OpenOptions { init: true, allow_shared_fs: true }).unwrap();
        let body = futures::stream::iter(
            data(len).chunks(100_000).map(|c| Ok::<_, String>(Bytes::copy_from_slice(c))).collect::<Vec<_>>(),
        );
        store.write(0, &"ab".repeat(16), b"{}", Some(len), body).await.unwrap();
        // Wherever the store keeps it (a file of its own, or inside a segment).
        let (path, base) = store.locate(0, &"ab".repeat(16)).await.unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        for &at in flips {
            bytes[(base + at) as usize] ^= 0x40;
        }
        std::fs::write(&path, bytes).unwrap();
        store
    }

    /// Reads `[start, end)` and returns the bytes handed out before the first error, and it.
    async fn read(store: &Store, start: u64, end: u64) -> (Vec<u8>, Option<Error>) {
        let blob = store.open_checked(0, &"ab".repeat(16)).await.unwrap();
        let mut read = CheckedRead::open(&blob, start, end, ReadBudget::new(8 * BLOCK)).await.unwrap();
        let mut out = Vec::new();
        while let Some(piece) = read.next().await {
            match piece {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(err) => return (out, Some(err)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn a_damaged_block_is_never_handed_out_and_the_others_are() {
        let dir = tempfile::tempdir().unwrap();
        let len = 2 * BLOCK + BLOCK / 2;
        let store = damaged_blob(dir.path(), len, &[BLOCK + 17]).await;
        let good = data(len);

        // A whole read stops exactly at the damaged block's start.
        let (out, err) = read(&store, 0, len).await;
        assert_eq!(out, good[..BLOCK as usize]);
        assert!(matches!(&err, Some(Error::Corrupt(why)) if why.contains("block 1")), "{err:?}");

        // Ranges that do not touch it read clean, ranges that touch it do not.
        for (start, end) in [(10, BLOCK), (2 * BLOCK + 3, len)] {
            let (out, err) = read(&store, start, end).await;
            assert!(err.is_none(), "{start}..{end}: {err:?}");
            assert_eq!(out, good[start as usize..end as usize]);
        }
        let (out, err) = read(&store, BLOCK + 100, BLOCK + 200).await;
        assert!(out.is_empty() && matches!(err, Some(Error::Corrupt(_))));
        let (out, err) = read(&store, BLOCK - 5, BLOCK + 5).await;
        assert_eq!(out, good[(BLOCK - 5) as usize..BLOCK as usize]);
        assert!(matches!(err, Some(Error::Corrupt(_))));
    }

    #[tokio::test]
    async fn a_flipped_table_entry_fails_its_block() {
        let dir = tempfile::tempdir().unwrap();
        // The table follows the data: entry 0 is at data_len.
        let store = damaged_blob(dir.path(), 3000, &[3000]).await;
        let (out, err) = read(&store, 0, 3000).await;
        assert!(out.is_empty() && matches!(err, Some(Error::Corrupt(_))));
    }

    #[tokio::test]
    async fn reads_wait_for_budget_and_return_it() {
        let budget = ReadBudget::new(2 * 1024);
        let held = budget.take(2048).await.unwrap();
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take(1).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "took budget that was all held");
        drop(held);
        waiting.await.unwrap().unwrap();
    }
}
