//! The boundary between a subvolume and the way it keeps blobs on disk.
//!
//! [`BlobStore`] is what [`crate::store::Store`] needs of one subvolume: write a streamed body,
//! open a blob for checked reads, delete, and list ids in order. Two stores implement it, a
//! file per blob ([`crate::files::FileBlobs`]) and packed segments with a file-per-blob
//! fallback ([`crate::subvolume::Subvolume`]); [`conformance`] is the one test suite both pass.
//!
//! A blob reads the same wherever it lives: [`OpenBlob`] is an open file, the offset where the
//! blob starts in it (0 for a file of its own), and its checked footer and metadata. The read
//! path ([`crate::read`]) works on that alone.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use crate::blob::Footer;
use crate::error::Result;
use crate::store::WriteReceipt;

/// A blob opened for reading: footer and metadata already checked against their CRCs.
#[derive(Debug)]
pub struct OpenBlob {
    /// The file holding the blob; shared, so a segment's file is opened once, not per read.
    pub(crate) file: Arc<std::fs::File>,
    /// Where the blob's first data byte is in `file`.
    pub(crate) base: u64,
    /// The blob's footer (CRC checked, lengths checked against the space it occupies).
    pub footer: Footer,
    /// The writer's metadata JSON (CRC checked).
    pub meta: Vec<u8>,
    /// The whole block CRC table, when opening already read it (packed blobs: it comes in the
    /// same read as the footer); otherwise a read fetches the entries it needs.
    pub(crate) crcs: Option<Vec<u32>>,
}

/// One subvolume's blobs. Ids are validated by the caller ([`crate::store::Store`]).
pub(crate) trait BlobStore: Send + Sync {
    /// Streams `body` into blob `id` durably (replacing any blob of that id) and reports what
    /// was written. `expected_size`, when given, must match exactly. On any error, including a
    /// body that fails or ends short, nothing of this write is left readable.
    fn write<S, E>(
        &self,
        id: &str,
        meta: &[u8],
        expected_size: Option<u64>,
        body: S,
    ) -> impl Future<Output = Result<WriteReceipt>> + Send
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send;

    /// Opens blob `id`; [`crate::Error::NotFound`] if there is none, `Corrupt` if its footer or
    /// metadata fail their checks.
    fn open(&self, id: &str) -> impl Future<Output = Result<OpenBlob>> + Send;

    /// Deletes blob `id` durably; [`crate::Error::NotFound`] if there is none.
    fn delete(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Up to `limit` ids greater than `after` (`""` for the start), ascending.
    fn list_ids(&self, after: &str, limit: usize) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// The behaviour every [`BlobStore`] must show, run by each implementation's tests.
#[cfg(test)]
pub(crate) mod conformance {
    use std::path::Path;

    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::error::Error;
    use crate::read::{CheckedRead, ReadBudget};

    /// Sizes of interest: the suite checks empty, one byte, and both sides of `threshold`.
    pub(crate) const THRESHOLD: u64 = 64 * 1024;

    pub(crate) fn id(n: u32) -> String {
        format!("{n:08x}").repeat(4)
    }

    pub(crate) fn data(len: u64, seed: u32) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed) as u8).collect()
    }

    pub(crate) fn body(data: &[u8]) -> impl Stream<Item = Result<Bytes, String>> + Unpin + Send + use<> {
        let chunks: Vec<Result<Bytes, String>> = data.chunks(7_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(chunks)
    }

    /// Reads `[start, end)` of `id` through the checked read path.
    pub(crate) async fn read<B: BlobStore>(store: &B, id: &str, start: u64, end: u64) -> Result<Vec<u8>> {
        let blob = store.open(id).await?;
        let mut read = CheckedRead::open(&blob, start, end, ReadBudget::new(16 << 20)).await?;
        let mut out = Vec::new();
        while let Some(piece) = read.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    /// Runs the whole suite against stores made by `open` on directory `dir`; `open` is called
    /// again after the store is dropped, to check that everything acknowledged survives.
    pub(crate) async fn run<B, F>(dir: &Path, open: F)
    where
        B: BlobStore,
        F: Fn(&Path) -> B,
    {
        let store = open(dir);
        let sizes = [0, 1, 1000, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 3 * 1024 * 1024 + 5];
        let mut written = Vec::new();
        for (n, &size) in sizes.iter().enumerate() {
            let n = n as u32 * 2 + 1; // odd ids; even ones are left for the listing checks
            let data = data(size, n);
            let meta = format!(r#"{{"n":{n}}}"#);
            // Known and unknown sizes both, as the HTTP API allows either.
            for (expected, id) in [(Some(size), id(n)), (None, id(n + 1000))] {
                let receipt = store.write(&id, meta.as_bytes(), expected, body(&data)).await.unwrap();
                assert_eq!(receipt.size, size);
                assert_eq!(receipt.sha256, hex::encode(Sha256::digest(&data)), "size {size}");
                written.push((id, data.clone(), meta.clone()));
            }
        }
        check_all(&store, &written).await;
        range_reads(&store, &written).await;
        failed_bodies_leave_nothing(&store).await;

        // Delete, then NotFound; twice is NotFound too.
        let (gone, _, _) = written.remove(0);
        store.delete(&gone).await.unwrap();
        assert!(matches!(store.open(&gone).await, Err(Error::NotFound)));
        assert!(matches!(store.delete(&gone).await, Err(Error::NotFound)));
        let (gone_big, _, _) = written.pop().unwrap();
        store.delete(&gone_big).await.unwrap();
        assert!(matches!(store.delete(&gone_big).await, Err(Error::NotFound)));

        // Overwrite: the new content wins, whatever kind either side is.
        let (small, _, _) = written[1].clone();
        let big = data(2 * THRESHOLD, 77);
        store.write(&small, b"{}", Some(big.len() as u64), body(&big)).await.unwrap();
        written[1] = (small.clone(), big, "{}".into());
        let (large, _, _) = written.last().unwrap().clone();
        let tiny = b"tiny".to_vec();
        store.write(&large, b"{}", Some(4), body(&tiny)).await.unwrap();
        let last = written.len() - 1;
        written[last] = (large, tiny, "{}".into());

        listing(&store, &written).await;
        check_all(&store, &written).await;

        drop(store);
        let store = open(dir);
        check_all(&store, &written).await;
        listing(&store, &written).await;
    }

    async fn check_all<B: BlobStore>(store: &B, written: &[(String, Vec<u8>, String)]) {
        for (id, data, meta) in written {
            let blob = store.open(id).await.unwrap();
            assert_eq!(blob.footer.data_len, data.len() as u64, "{id}");
            assert_eq!(blob.meta, meta.as_bytes(), "{id}");
            assert_eq!(&read(store, id, 0, data.len() as u64).await.unwrap(), data, "{id}");
        }
    }

    async fn range_reads<B: BlobStore>(store: &B, written: &[(String, Vec<u8>, String)]) {
        for (id, data, _) in written {
            let len = data.len() as u64;
            for (start, end) in [(0, len.min(1)), (len / 3, len / 2), (len.saturating_sub(5), len), (len, len)] {
                let got = read(store, id, start, end).await.unwrap();
                assert_eq!(got, &data[start as usize..end as usize], "{id} {start}..{end}");
            }
        }
    }

    async fn failed_bodies_leave_nothing<B: BlobStore>(store: &B) {
        let id = id(0xdead);
        for expected in [Some(10), Some(THRESHOLD + 10), None] {
            let parts: Vec<Result<Bytes, String>> =
                vec![Ok(Bytes::from_static(b"part")), Err("client went away".into())];
            let failed = store.write(&id, b"{}", expected, futures::stream::iter(parts)).await;
            assert!(matches!(failed, Err(Error::Body(_))), "{expected:?}: {failed:?}");
            assert!(matches!(store.open(&id).await, Err(Error::NotFound)));
        }
        for expected in [10, THRESHOLD, THRESHOLD + 10] {
            let short = store.write(&id, b"{}", Some(expected), body(b"part")).await;
            assert!(matches!(short, Err(Error::Body(_))), "{expected}: {short:?}");
            let long = store.write(&id, b"{}", Some(2), body(b"part")).await;
            assert!(matches!(long, Err(Error::Body(_))), "{expected}: {long:?}");
            assert!(matches!(store.open(&id).await, Err(Error::NotFound)));
        }
        assert!(!store.list_ids("", 1000).await.unwrap().contains(&id));
    }

    async fn listing<B: BlobStore>(store: &B, written: &[(String, Vec<u8>, String)]) {
        let mut want: Vec<String> = written.iter().map(|(id, _, _)| id.clone()).collect();
        want.sort();
        assert_eq!(store.list_ids("", 1000).await.unwrap(), want);
        for page in [1, 2, 3, 5] {
            let (mut got, mut after) = (Vec::new(), String::new());
            loop {
                let ids = store.list_ids(&after, page).await.unwrap();
                assert!(ids.len() <= page);
                let Some(last) = ids.last().cloned() else { break };
                got.extend(ids);
                after = last;
            }
            assert_eq!(got, want, "pages of {page}");
        }
        assert_eq!(store.list_ids(&want[2], 2).await.unwrap(), want[3..5]);
        // `after` need not be an id: the listing is by string order whatever it is.
        let upper = want[2].to_uppercase();
        for after in ["0", upper.as_str(), &want[2][..5], "zz"] {
            let expected: Vec<String> = want.iter().filter(|id| id.as_str() > after).cloned().collect();
            assert_eq!(store.list_ids(after, 1000).await.unwrap(), expected, "after {after:?}");
        }
    }
}
