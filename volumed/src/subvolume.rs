//! One subvolume: small blobs packed into segments, the rest a file each.
//!
//! A write whose size is announced and at most `pack_threshold` is buffered in memory (bounded
//! by that size, and all such buffers together by [`PACK_BUFFERS`]) and appended to a segment
//! as one record ([`crate::packed`]); a write of unknown or larger size, or one that finds the
//! buffer budget spent, streams into a file of its own ([`crate::files`]) exactly as before
//! packing existed. Blobs written before packing stay in their files and keep working: a
//! lookup tries the segment index first, then the file.
//!
//! An id lives in one place at a time. A packed write removes an older file of the same id
//! once the record is durable, and a file write deletes an older packed record once the file
//! is durable; a crash in between leaves both, and the packed one (looked up first) wins,
//! which is fine because a rewrite of an id carries the same content (repair, rebalance).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::Semaphore;

use crate::backend::{BlobStore, OpenBlob};
use crate::blob::Encoder;
use crate::error::{Error, Result};
use crate::files::FileBlobs;
use crate::packed::{self, HEADER_LEN, Packed};
use crate::store::{PackOptions, WriteReceipt, now_ms};

/// Memory all bodies being buffered for packing may take together, per subvolume. A write that
/// finds it spent goes to a file instead of waiting.
pub(crate) const PACK_BUFFERS: u64 = 64 * 1024 * 1024;
/// Budget granularity: permits are KiB.
const PERMIT_BYTES: u64 = 1024;

/// The blobs of one subvolume directory.
#[derive(Debug)]
pub(crate) struct Subvolume {
    files: FileBlobs,
    /// `None` when packing is off (`pack_threshold` 0).
    packed: Option<Packed>,
    threshold: u64,
    buffers: Arc<Semaphore>,
}

impl Subvolume {
    pub(crate) fn open(root: &Path, options: &PackOptions) -> Result<Self> {
        let files = FileBlobs::open(root)?;
        // Segments written while packing was on stay readable after it is turned off.
        let packed = if options.pack_threshold > 0 || root.join(packed::SEGMENT_DIR).is_dir() {
            Some(Packed::open(root, options)?)
        } else {
            None
        };
        let permits = usize::try_from(PACK_BUFFERS / PERMIT_BYTES).unwrap_or(Semaphore::MAX_PERMITS);
        Ok(Self { files, packed, threshold: options.pack_threshold, buffers: Arc::new(Semaphore::new(permits)) })
    }

    /// The file holding `id` and the offset of its blob (tests damage blobs through it).
    #[cfg(test)]
    pub(crate) fn locate(&self, id: &str) -> (std::path::PathBuf, u64) {
        match self.packed.as_ref().and_then(|packed| packed.locate(id)) {
            Some(found) => found,
            None => (self.files.path(id), 0),
        }
    }

    /// The packed side, if packing is on.
    #[cfg(test)]
    pub(crate) fn packed(&self) -> Option<&Packed> {
        self.packed.as_ref()
    }

    /// Batches the segment writer has made durable.
    #[cfg(test)]
    pub(crate) fn packed_syncs(&self) -> u64 {
        self.packed.as_ref().map_or(0, Packed::syncs)
    }

    /// Buffers `body` (exactly `size` bytes) into a sealed segment record and appends it.
    async fn write_packed<S, E>(
        &self,
        packed: &Packed,
        id: &str,
        meta: &[u8],
        size: u64,
        mut body: S,
    ) -> Result<WriteReceipt>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        let mut record = Vec::with_capacity((HEADER_LEN + size) as usize + meta.len() + 256);
        record.resize(HEADER_LEN as usize, 0);
        let mut encoder = Encoder::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::Body(e.to_string()))?;
            encoder.update(&chunk);
            // Checked before copying, so the buffer never grows past the announced size.
            if encoder.size() > size {
                return Err(Error::Body("body longer than announced".into()));
            }
            record.extend_from_slice(&chunk);
        }
        if encoder.size() != size {
            return Err(Error::Body(format!("body ended after {} bytes", encoder.size())));
        }
        let (tail, footer) = encoder.finish(meta, now_ms())?;
        record.extend_from_slice(&tail);
        let record = packed::seal_put(record, packed::raw_id(id)?, footer.meta_len);
        packed.put(id, record).await?;
        // An older file of this id (written before packing, or while the budget was spent)
        // would otherwise come back if the packed record is deleted.
        match self.files.delete(id).await {
            Ok(()) | Err(Error::NotFound) => {}
            Err(err) => tracing::warn!(%id, %err, "older blob file not removed after a packed rewrite"),
        }
        Ok(WriteReceipt::of(&footer))
    }
}

impl BlobStore for Subvolume {
    async fn write<S, E>(&self, id: &str, meta: &[u8], expected_size: Option<u64>, body: S) -> Result<WriteReceipt>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        if let (Some(packed), Some(size)) = (&self.packed, expected_size)
            && self.threshold > 0
            && size <= self.threshold
        {
            let permits = u32::try_from(size.div_ceil(PERMIT_BYTES).max(1)).unwrap_or(u32::MAX);
            if let Ok(_budget) = self.buffers.clone().try_acquire_many_owned(permits) {
                return self.write_packed(packed, id, meta, size, body).await;
            }
        }
        let receipt = self.files.write(id, meta, expected_size, body).await?;
        if let Some(packed) = &self.packed
            && packed.contains(id)
        {
            // The file is durable now; an older packed record would shadow it.
            match packed.delete(id).await {
                Ok(()) | Err(Error::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(receipt)
    }

    async fn open(&self, id: &str) -> Result<OpenBlob> {
        if let Some(packed) = &self.packed {
            match packed.open_blob(id).await {
                Err(Error::NotFound) => {}
                other => return other,
            }
        }
        self.files.open(id).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let packed = match &self.packed {
            Some(packed) => packed.delete(id).await,
            None => Err(Error::NotFound),
        };
        // Both, always: a crash between a rewrite and its cleanup can leave one of each.
        let file = self.files.delete(id).await;
        match (packed, file) {
            (Ok(()), Ok(()) | Err(Error::NotFound)) | (Err(Error::NotFound), Ok(())) => Ok(()),
            (Err(Error::NotFound), Err(Error::NotFound)) => Err(Error::NotFound),
            (Err(err), _) | (_, Err(err)) => Err(err),
        }
    }

    async fn list_ids(&self, after: &str, limit: usize) -> Result<Vec<String>> {
        let files = self.files.list_ids(after, limit).await?;
        let Some(packed) = &self.packed else { return Ok(files) };
        let packed = packed.list_ids(after, limit);
        // Both lists are sorted and each has at most `limit` ids past `after`: their merged
        // first `limit` are the subvolume's.
        let mut ids: Vec<String> = files.into_iter().chain(packed).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(limit);
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::conformance::{self, THRESHOLD};

    /// Segments small enough that the suite's blobs fill several.
    fn options(threshold: u64) -> PackOptions {
        PackOptions { pack_threshold: threshold, segment_size: 100 * 1024, ..PackOptions::default() }
    }

    #[tokio::test]
    async fn packed_conforms() {
        let dir = tempfile::tempdir().unwrap();
        conformance::run(dir.path(), |root| Subvolume::open(root, &options(THRESHOLD)).unwrap()).await;
        // Small known sizes went to segments (several, at this segment size), the rest to files.
        let segments = std::fs::read_dir(dir.path().join(packed::SEGMENT_DIR)).unwrap().count();
        assert!(segments > 1, "{segments} segments");
    }

    #[tokio::test]
    async fn only_known_sizes_up_to_the_threshold_are_packed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Subvolume::open(dir.path(), &options(THRESHOLD)).unwrap();
        for (n, size, expected) in
            [(1, THRESHOLD, Some(THRESHOLD)), (2, THRESHOLD + 1, Some(THRESHOLD + 1)), (3, 5, None)]
        {
            let data = conformance::data(size, n);
            store.write(&conformance::id(n), b"{}", expected, conformance::body(&data)).await.unwrap();
        }
        let in_segment = |n| store.locate(&conformance::id(n)).0.starts_with(dir.path().join(packed::SEGMENT_DIR));
        assert!(in_segment(1), "exactly the threshold is packed");
        assert!(!in_segment(2) && !in_segment(3), "above it, or of unknown size, a file");
    }

    #[tokio::test]
    async fn blobs_of_several_blocks_pack_and_read_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = Subvolume::open(dir.path(), &options(4 << 20)).unwrap();
        let block = u64::from(crate::blob::BLOCK_LEN);
        let len = 2 * block + 12_345;
        let data = conformance::data(len, 5);
        store.write(&conformance::id(1), br#"{"big":true}"#, Some(len), conformance::body(&data)).await.unwrap();
        assert!(store.locate(&conformance::id(1)).0.starts_with(dir.path().join(packed::SEGMENT_DIR)));
        let blob = store.open(&conformance::id(1)).await.unwrap();
        assert_eq!(blob.crcs.as_ref().map(Vec::len), Some(3), "the table came with the footer");
        for (start, end) in [(0, len), (block - 1, block + 1), (2 * block, len), (len - 1, len)] {
            let got = conformance::read(&store, &conformance::id(1), start, end).await.unwrap();
            assert_eq!(got, &data[start as usize..end as usize], "{start}..{end}");
        }
    }

    #[tokio::test]
    async fn packing_off_conforms_and_reads_what_was_packed() {
        let dir = tempfile::tempdir().unwrap();
        conformance::run(dir.path(), |root| Subvolume::open(root, &options(0)).unwrap()).await;
        assert!(!dir.path().join(packed::SEGMENT_DIR).exists(), "packing off makes no segments");

        let dir = tempfile::tempdir().unwrap();
        let data = conformance::data(100, 1);
        let on = Subvolume::open(dir.path(), &options(THRESHOLD)).unwrap();
        on.write(&conformance::id(1), b"{}", Some(100), conformance::body(&data)).await.unwrap();
        drop(on);
        let off = Subvolume::open(dir.path(), &options(0)).unwrap();
        assert_eq!(conformance::read(&off, &conformance::id(1), 0, 100).await.unwrap(), data);
    }
}
