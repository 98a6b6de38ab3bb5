//! Small blobs packed into append-only segment files, one writer per subvolume.
//!
//! Haystack's needles, SeaweedFS's volumes, bitcask's log: a blob of known size up to the
//! packing threshold is appended as one record ([`record`]) to `segments/NNNNNN.seg`, the
//! newest segment, rolled over at `segment_size`. One thread ([`writer`]) appends everything
//! waiting, makes it durable with one `fdatasync`, then answers every waiter: one sync per
//! batch instead of two (file and directory) per blob. A delete appends a delete record.
//!
//! An index in memory maps each id to its newest record (segment, offset, lengths). It is
//! rebuilt at open by scanning the segments in order, later records winning: a put sets the
//! entry, a delete removes it. A torn tail of the newest segment (a crash mid-append; nothing
//! in it was acknowledged) is cut off. A damaged stretch anywhere else is reported and skipped
//! up to the next good record, so nothing after it is lost.
//!
//! Reads look the id up and read the blob inside the record through a segment file kept open
//! (no open or close per request); the blob layout is that of a blob file, so the read path
//! ([`crate::read`]) is shared.

mod compact;
mod record;
mod writer;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::backend::OpenBlob;
use crate::blob::{self, TailRead};
use crate::cached;
use crate::error::{Error, Result};
use crate::files::blocking;
use crate::store::PackOptions;
#[cfg(not(test))]
use compact::Compaction;
#[cfg(test)]
pub(crate) use compact::{Compaction, Report};
pub(crate) use record::{HEADER_LEN, RawId, seal_put};
use record::{Kind, Scan};
use writer::{Op, Writer};

/// Name of the directory of segment files in a subvolume.
pub(crate) const SEGMENT_DIR: &str = "segments";
const SEGMENT_EXT: &str = "seg";
/// Operations waiting for the writer at most; a full queue makes writers wait (back-pressure).
const QUEUE: usize = 256;

/// Where the newest record of a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) segment: u32,
    /// Offset of the record (its header) in the segment.
    pub(crate) offset: u64,
    pub(crate) body_len: u64,
    pub(crate) meta_len: u32,
}

impl Loc {
    pub(crate) fn record_len(&self) -> u64 {
        HEADER_LEN + self.body_len + record::TRAILER_LEN
    }
}

/// One segment file, open for the life of the segment.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) file: Arc<std::fs::File>,
    pub(crate) path: PathBuf,
    /// Bytes in the file.
    pub(crate) len: u64,
    /// Bytes of records the index points to.
    pub(crate) live: u64,
}

/// The index and the open segments, behind one lock so that a reader always gets a location
/// and the file it is in together.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) map: BTreeMap<RawId, Loc>,
    pub(crate) segments: BTreeMap<u32, Segment>,
    /// Batches made durable (tests check that concurrent writes share them).
    #[cfg(test)]
    pub(crate) syncs: u64,
}

impl Index {
    /// Points `id` at `loc` (or nowhere), keeping each segment's live bytes right.
    pub(crate) fn set(&mut self, id: RawId, loc: Option<Loc>) {
        let old = match loc {
            Some(loc) => self.map.insert(id, loc),
            None => self.map.remove(&id),
        };
        if let Some(old) = old
            && let Some(segment) = self.segments.get_mut(&old.segment)
        {
            segment.live = segment.live.saturating_sub(old.record_len());
        }
        if let Some(loc) = loc
            && let Some(segment) = self.segments.get_mut(&loc.segment)
        {
            segment.live += loc.record_len();
        }
    }
}

/// The packed blobs of one subvolume.
#[derive(Debug)]
pub(crate) struct Packed {
    inner: Arc<Inner>,
}

/// What readers, the writer's clients and the compactor share. The compactor holds it weakly:
/// once the store is dropped, the queue's last sender goes with it and the writer stops.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) index: Arc<RwLock<Index>>,
    pub(crate) ops: mpsc::Sender<Op>,
}

impl Inner {
    /// Where `id`'s newest record is, if it has one.
    fn lookup(&self, id: &RawId) -> Option<(Loc, Arc<std::fs::File>, PathBuf)> {
        let index = self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let loc = *index.map.get(id)?;
        let segment = index.segments.get(&loc.segment)?;
        Some((loc, segment.file.clone(), segment.path.clone()))
    }
}

impl Packed {
    /// Opens (creating) `root/segments`, rebuilds the index from the segment files, and starts
    /// the writer.
    pub(crate) fn open(root: &Path, options: &PackOptions) -> Result<Self> {
        let dir = root.join(SEGMENT_DIR);
        if !dir.is_dir() {
            std::fs::create_dir(&dir)?;
            std::fs::File::open(root)?.sync_all()?;
        }
        let started = std::time::Instant::now();
        let mut index = load(&dir)?;
        // The scan reads every segment whole (there are no hint files yet): say what it cost.
        let bytes: u64 = index.segments.values().map(|segment| segment.len).sum();
        tracing::info!(
            dir = %dir.display(),
            segments = index.segments.len(),
            blobs = index.map.len(),
            bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "segments scanned"
        );
        let active = match index.segments.last_key_value() {
            Some((&number, _)) => number,
            None => {
                let segment = writer::create_segment(&dir, 1)?;
                index.segments.insert(1, segment);
                1
            }
        };
        let index = Arc::new(RwLock::new(index));
        let (ops, queue) = mpsc::channel(QUEUE);
        let writer = Writer::new(dir.clone(), index.clone(), options.segment_size, active)?;
        let name = format!("segment-writer-{}", root.display());
        std::thread::Builder::new().name(name).spawn(move || writer.run(queue))?;
        let inner = Arc::new(Inner { index, ops });
        if options.compact_below > 0.0 {
            let (weak, compaction) = (Arc::downgrade(&inner), Compaction::from(options));
            let name = format!("segment-compactor-{}", root.display());
            std::thread::Builder::new().name(name).spawn(move || compact::run(weak, compaction))?;
        }
        Ok(Self { inner })
    }

    fn lookup(&self, id: &RawId) -> Option<(Loc, Arc<std::fs::File>, PathBuf)> {
        self.inner.lookup(id)
    }

    /// Whether `id` is packed here.
    pub(crate) fn contains(&self, id: &str) -> bool {
        raw_id(id).is_ok_and(|raw| self.lookup(&raw).is_some())
    }

    /// Appends a sealed put record (see [`seal_put`]) for `id`; returns once it is durable and
    /// the index points at it.
    pub(crate) async fn put(&self, id: &str, record: Vec<u8>) -> Result<()> {
        let id = raw_id(id)?;
        self.submit(|done| Op::Put { id, record, done }).await.map(drop)
    }

    /// Deletes `id` with a durable delete record; [`Error::NotFound`] if it is not packed here.
    pub(crate) async fn delete(&self, id: &str) -> Result<()> {
        let id = raw_id(id)?;
        if self.submit(|done| Op::Delete { id, done }).await? { Ok(()) } else { Err(Error::NotFound) }
    }

    async fn submit(&self, op: impl FnOnce(oneshot::Sender<Result<bool>>) -> Op) -> Result<bool> {
        let stopped = || Error::Io(std::io::Error::other("segment writer stopped"));
        let (done, answer) = oneshot::channel();
        self.inner.ops.send(op(done)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Opens the packed blob `id`: one read for its block CRCs, metadata and footer, from a file
    /// kept open (a read of its data is then one more).
    pub(crate) async fn open_blob(&self, id: &str) -> Result<OpenBlob> {
        let (loc, file, _) = self.lookup(&raw_id(id)?).ok_or(Error::NotFound)?;
        let base = loc.offset + HEADER_LEN;
        let tail_len = blob::tail_len(loc.body_len, Some(loc.meta_len))?;
        let at = base + loc.body_len - tail_len;
        let body_len = loc.body_len;
        let tail =
            cached::read_with(&file, tail_len as usize, at, move |bytes| blob::parse_tail(&bytes, body_len)).await?;
        let tail = match tail {
            TailRead::Whole(tail) => tail,
            // The index's metadata length fell short of the footer's: read as a file would.
            TailRead::MetaBefore(_) => {
                let file = file.clone();
                blocking(move || blob::read_tail(&file, base, body_len, None)).await?
            }
        };
        Ok(OpenBlob { file, base, footer: tail.footer, meta: tail.meta, crcs: tail.crcs })
    }

    /// Up to `limit` packed ids greater than `after`, ascending.
    pub(crate) fn list_ids(&self, after: &str, limit: usize) -> Vec<String> {
        let index = self.inner.index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Lowercase hex of fixed length sorts like the raw bytes, so a valid id is a range bound.
        // (Anything else, e.g. uppercase hex, is only filtered: it would decode to a wrong bound.)
        let from = match crate::files::check_id(after).and_then(|()| raw_id(after)) {
            Ok(raw) => Bound::Excluded(raw),
            Err(_) => Bound::Unbounded,
        };
        index
            .map
            .range((from, Bound::Unbounded))
            .map(|(id, _)| hex::encode(id))
            .filter(|id| id.as_str() > after)
            .take(limit)
            .collect()
    }

    /// Batches the writer has made durable.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.inner.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()).syncs
    }

    /// Compacts now, on the calling thread (which must not be an async worker): every segment
    /// but the newest whose live share is below `compaction.below`.
    #[cfg(test)]
    pub(crate) fn compact_now(&self, compaction: &Compaction) -> Result<Report> {
        compact::pass(&self.inner, compaction)
    }

    /// The numbers of the segments there are.
    #[cfg(test)]
    pub(crate) fn segments(&self) -> Vec<u32> {
        self.inner.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()).segments.keys().copied().collect()
    }

    /// The segment file holding `id` and the offset of its blob (tests damage blobs through it).
    #[cfg(test)]
    pub(crate) fn locate(&self, id: &str) -> Option<(PathBuf, u64)> {
        let (loc, _, path) = self.lookup(&raw_id(id).ok()?)?;
        Some((path, loc.offset + HEADER_LEN))
    }
}

pub(crate) fn raw_id(id: &str) -> Result<RawId> {
    let mut raw = [0u8; 16];
    hex::decode_to_slice(id, &mut raw).map_err(|_| Error::BadRequest(format!("invalid blob id {id:?}")))?;
    Ok(raw)
}

fn segment_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:06}.{SEGMENT_EXT}"))
}

/// Scans every segment of `dir` in order into an index. The newest segment's torn tail is cut
/// off; damage anywhere else is reported and skipped.
fn load(dir: &Path) -> Result<Index> {
    let mut numbers: Vec<u32> = std::fs::read_dir(dir)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(&format!(".{SEGMENT_EXT}"))?.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    let mut index = Index::default();
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment_path(dir, number);
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
        let mut len = file.metadata()?.len();
        let Scan { records, damaged, torn_from } = record::scan(&file, len)?;
        for (start, end) in damaged {
            tracing::error!(path = %path.display(), start, end, "damaged bytes in a segment skipped; the records after them are kept");
        }
        if let Some(torn) = torn_from {
            if i + 1 == numbers.len() {
                // Only the newest segment is ever appended to: what follows its last good
                // record is a write that was never acknowledged.
                tracing::warn!(path = %path.display(), from = torn, len, "cutting off a torn tail of the newest segment");
                file.set_len(torn)?;
                file.sync_all()?;
                len = torn;
            } else {
                tracing::error!(path = %path.display(), start = torn, end = len, "damaged bytes at the end of an older segment skipped");
            }
        }
        index.segments.insert(number, Segment { file: Arc::new(file), path, len, live: 0 });
        for found in records {
            let loc = match found.header.kind {
                Kind::Put => Some(Loc {
                    segment: number,
                    offset: found.offset,
                    body_len: found.header.body_len,
                    meta_len: found.header.meta_len,
                }),
                Kind::Delete => None,
            };
            index.set(found.header.id, loc);
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests;
