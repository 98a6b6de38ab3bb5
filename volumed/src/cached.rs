//! Small reads that the page cache can answer at once, done right on the async worker.
//!
//! A hop to the blocking pool and back costs two thread switches, several times the cost of
//! copying a few KiB out of the page cache. `preadv2` with `RWF_NOWAIT` reads only what is
//! cached and never waits for the disk, so a hot small read costs one system call on the worker,
//! and anything that would wait (not cached, partly cached, a file system that cannot say) goes
//! to the blocking pool as before. Reads larger than [`INLINE_MAX`] always go there: copying
//! them would hold the worker too long.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use rustix::io::{Errno, ReadWriteFlags};

use crate::error::Result;
use crate::files::blocking;

/// Largest read tried on the async worker.
pub(crate) const INLINE_MAX: usize = 64 * 1024;

/// `len` bytes at `offset` of `file` if the page cache holds all of them, `None` if any would
/// need the disk (or the read is larger than [`INLINE_MAX`]). Never blocks on I/O.
pub(crate) fn read_now(file: &File, len: usize, offset: u64) -> Result<Option<Vec<u8>>> {
    if len > INLINE_MAX {
        return Ok(None);
    }
    let mut buf = vec![0; len];
    match rustix::io::preadv2(file, &mut [IoSliceMut::new(&mut buf)], offset, ReadWriteFlags::NOWAIT) {
        Ok(n) if n == len => Ok(Some(buf)),
        // Partly cached, or the end of the file: the blocking read reads or reports it.
        Ok(_) => Ok(None),
        Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => Ok(None),
        Err(err) => Err(std::io::Error::from(err).into()),
    }
}

/// Reads exactly `len` bytes at `offset` of `file` and hands them to `then`: both on this worker
/// when the page cache holds all the bytes, else both on the blocking pool (so `then` may take
/// time in proportion to `len`, like a checksum).
pub(crate) async fn read_with<T: Send + 'static>(
    file: &Arc<File>,
    len: usize,
    offset: u64,
    then: impl FnOnce(Vec<u8>) -> Result<T> + Send + 'static,
) -> Result<T> {
    if let Some(bytes) = read_now(file, len, offset)? {
        return then(bytes);
    }
    let file = file.clone();
    blocking(move || {
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)?;
        then(buf)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[tokio::test]
    async fn reads_what_is_there_and_fails_past_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let file = Arc::new(file);
        // Just written, so cached (or the file system cannot say): either way the same bytes.
        if let Some(now) = read_now(&file, 4096, 100).unwrap() {
            assert_eq!(now, &data[100..4196]);
        }
        assert_eq!(read_now(&file, INLINE_MAX + 1, 0).unwrap(), None, "large reads go to the pool");
        let read = |len, offset| read_with(&file, len, offset, Ok);
        assert_eq!(read(4096, 100).await.unwrap(), &data[100..4196]);
        assert_eq!(read(INLINE_MAX + 10, 10).await.unwrap(), &data[10..INLINE_MAX + 20]);
        assert_eq!(read_now(&file, 100, 99_950).unwrap(), None, "a short read is left to the pool");
        assert!(read(100, 99_950).await.is_err(), "the pool reports the end of the file");
    }
}
