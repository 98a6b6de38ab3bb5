//! The one writer of a subvolume's segments: group commit.
//!
//! It runs on a thread of its own, fed by a bounded queue, so no async worker ever blocks on
//! a write or an fsync. It takes every operation waiting (up to [`MAX_BATCH`] bytes), appends
//! their records to the newest segment, makes them durable with one `fdatasync`, and only then
//! points the index at them and answers the waiters. The index lock is taken only for those
//! few pointer updates, never across I/O.
//!
//! Segments roll over when a record would take the newest past `segment_size`: the full one is
//! synced first and the new file's directory entry is made durable before anything in it is
//! acknowledged, so only the newest segment can ever have a torn tail. A new segment joins the
//! index only with the batch that rolled over to it: until then the one it follows stays the
//! newest the index knows, so compaction (which never takes the newest) cannot take a segment
//! holding records whose index entries are not written yet.

use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use super::record::{self, RawId};
use super::{Index, Loc, Segment, segment_path};
use crate::error::{Error, Result};

/// Bytes of records one batch takes at most before it is committed.
const MAX_BATCH: usize = 16 * 1024 * 1024;

/// Answer to a waiter: `true` if its record was written, `false` if there was nothing to do
/// (a delete of an id not packed, a compaction copy of a record since replaced, a carried
/// delete record of an id written again since).
type Done = oneshot::Sender<Result<bool>>;

/// What the writer is asked to append.
#[derive(Debug)]
pub(crate) enum Op {
    /// A sealed put record.
    Put { id: RawId, record: Vec<u8>, done: Done },
    /// A delete of `id`, if it is packed here.
    Delete { id: RawId, done: Done },
    /// A compaction copy of the put record at `from`, written only if the index still points
    /// there: a newer put or a delete since then wins, and the copy must not undo it.
    Copy { id: RawId, from: Loc, record: Vec<u8>, done: Done },
    /// A delete record carried forward by compaction (an older segment may still hold a put it
    /// hides), written only while `id` has no record: one written since is newer than any put
    /// the delete hid, and a delete appended after it would wrongly hide it on the next scan.
    Tombstone { id: RawId, done: Done },
}

impl Op {
    fn len(&self) -> usize {
        match self {
            Op::Put { record, .. } | Op::Copy { record, .. } => record.len(),
            Op::Delete { .. } | Op::Tombstone { .. } => (record::HEADER_LEN + record::TRAILER_LEN) as usize,
        }
    }
}

/// The appending end of the segments.
pub(crate) struct Writer {
    dir: PathBuf,
    index: Arc<RwLock<Index>>,
    segment_size: u64,
    /// Number, file and length of the newest segment.
    active: u32,
    file: Arc<std::fs::File>,
    pos: u64,
    /// Segments rolled over to whose batch is not applied yet (see the module docs), oldest first.
    rolled: Vec<(u32, Segment)>,
}

impl Writer {
    pub(crate) fn new(dir: PathBuf, index: Arc<RwLock<Index>>, segment_size: u64, active: u32) -> Result<Self> {
        let (file, pos) = {
            let index = index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            let segment = index.segments.get(&active).ok_or_else(|| Error::Config("no active segment".into()))?;
            (segment.file.clone(), segment.len)
        };
        Ok(Self { dir, index, segment_size, active, file, pos, rolled: Vec::new() })
    }

    /// Commits batches until every sender is gone.
    pub(crate) fn run(mut self, mut queue: mpsc::Receiver<Op>) {
        while let Some(first) = queue.blocking_recv() {
            let mut bytes = first.len();
            let mut batch = vec![first];
            while bytes < MAX_BATCH {
                match queue.try_recv() {
                    Ok(op) => {
                        bytes += op.len();
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<Op>) {
        let start = (self.active, self.pos);
        // The index changes this batch makes, in order; applied only once they are durable.
        let mut changes: Vec<(RawId, Option<Loc>)> = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let written = self.append_all(&batch, &mut changes, &mut outcomes).and_then(|()| {
            let started = std::time::Instant::now();
            let synced = self.file.sync_data();
            metrics::histogram!("cairn_volume_fsync_seconds", "file" => "segment")
                .record(started.elapsed().as_secs_f64());
            synced
        });
        match written {
            Ok(()) => {
                let mut index = self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                for (number, segment) in self.rolled.drain(..) {
                    index.segments.insert(number, segment);
                }
                for (id, loc) in changes {
                    index.set(id, loc);
                }
                if let Some(segment) = index.segments.get_mut(&self.active) {
                    segment.len = self.pos;
                }
                #[cfg(test)]
                {
                    index.syncs += 1;
                }
                drop(index);
                for (op, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = done(op).send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(%err, segment = self.active, "segment append failed");
                // Take back what this batch appended to the segment it ends in, so the next batch
                // does not follow a half-written record. (Records of this batch in a segment
                // already rolled over from are synced but were never acknowledged; a scan keeps
                // them, which is harmless: a write reported failed may still exist, as with files.)
                let keep = if self.active == start.0 { start.1 } else { 0 };
                self.pos = keep;
                if let Err(err) = self.file.set_len(keep) {
                    tracing::error!(%err, "could not cut a failed append off the segment");
                }
                for op in batch {
                    let _ = done(op).send(Err(Error::Io(std::io::Error::new(err.kind(), err.to_string()))));
                }
            }
        }
    }

    /// Appends each operation's record (if it has one to write), noting index changes and
    /// whether each one wrote.
    fn append_all(
        &mut self,
        batch: &[Op],
        changes: &mut Vec<(RawId, Option<Loc>)>,
        outcomes: &mut Vec<bool>,
    ) -> std::io::Result<()> {
        for op in batch {
            let current =
                |id: &RawId, changes: &[(RawId, Option<Loc>)]| match changes.iter().rev().find(|(i, _)| i == id) {
                    Some((_, loc)) => *loc,
                    None => self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()).map.get(id).copied(),
                };
            let (id, bytes, put) = match op {
                Op::Put { id, record, .. } => (id, record.as_slice(), true),
                Op::Copy { id, from, record, .. } => {
                    if current(id, changes) != Some(*from) {
                        outcomes.push(false);
                        continue;
                    }
                    (id, record.as_slice(), true)
                }
                Op::Delete { id, .. } => {
                    if current(id, changes).is_none() {
                        outcomes.push(false);
                        continue;
                    }
                    (id, &[][..], false)
                }
                Op::Tombstone { id, .. } => {
                    if current(id, changes).is_some() {
                        outcomes.push(false);
                        continue;
                    }
                    (id, &[][..], false)
                }
            };
            let delete;
            let bytes = if put {
                bytes
            } else {
                delete = record::delete_record(*id);
                delete.as_slice()
            };
            let len = bytes.len() as u64;
            if self.pos > 0 && self.pos + len > self.segment_size {
                self.roll()?;
            }
            self.file.write_all_at(bytes, self.pos)?;
            if put {
                let header = record::Header::decode(
                    bytes[..record::HEADER_LEN as usize]
                        .try_into()
                        .map_err(|_| std::io::Error::other("short record"))?,
                )
                .ok_or_else(|| std::io::Error::other("bad record header"))?;
                let loc = Loc {
                    segment: self.active,
                    offset: self.pos,
                    body_len: header.body_len,
                    meta_len: header.meta_len,
                };
                changes.push((*id, Some(loc)));
            } else if matches!(op, Op::Delete { .. }) {
                changes.push((*id, None));
            }
            self.pos += len;
            outcomes.push(true);
        }
        Ok(())
    }

    /// Syncs the full segment and starts the next one, its directory entry durable; the new one
    /// joins the index with this batch (see the module docs).
    fn roll(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        let number = self.active + 1;
        let segment = create_segment(&self.dir, number).map_err(std::io::Error::other)?;
        let file = segment.file.clone();
        match self.rolled.last_mut() {
            Some((_, full)) => full.len = self.pos,
            None => {
                let mut index = self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(full) = index.segments.get_mut(&self.active) {
                    full.len = self.pos;
                }
            }
        }
        self.rolled.push((number, segment));
        self.active = number;
        self.file = file;
        self.pos = 0;
        Ok(())
    }
}

fn done(op: Op) -> Done {
    match op {
        Op::Put { done, .. } | Op::Delete { done, .. } | Op::Copy { done, .. } | Op::Tombstone { done, .. } => done,
    }
}

/// Creates segment `number` in `dir`, its directory entry durable.
pub(crate) fn create_segment(dir: &Path, number: u32) -> Result<Segment> {
    let path = segment_path(dir, number);
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(Segment { file: Arc::new(file), path, len: 0, live: 0 })
}
