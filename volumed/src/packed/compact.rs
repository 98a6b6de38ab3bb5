//! Compaction: segments mostly dead are copied forward and removed.
//!
//! A segment other than the newest whose live bytes (records the index points to) fall below
//! `compact_below` of its size is read record by record, at most `compact_rate` bytes a second:
//! each put record the index still points to is handed to the writer as a copy, which appends
//! it to the newest segment in a group-committed batch and then switches the index to it, but
//! only if the index still points at the original (a write or delete since then wins). Delete
//! records are carried forward while an older segment exists that may hold a put they hide.
//! Once every copy is durable and no index entry points into the segment any more, the segment
//! is dropped from the index, its file unlinked, and the directory fsynced.
//!
//! A crash at any point leaves every live blob readable: until the unlink the original is
//! there, and after a copy is durable both are, the copy later in scan order (so it wins on
//! open, with identical content). A segment left behind with no live records is removed by the
//! next pass. Damage found in a segment keeps it: a live record that cannot be read is never
//! dropped by compaction.

use std::path::Path;
use std::sync::Weak;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::record::{self, Kind};
use super::{Inner, Loc};
use crate::error::{Error, Result};
use crate::store::PackOptions;

/// How often the background compactor looks for segments to compact.
const INTERVAL: Duration = Duration::from_secs(30);
/// Bytes of copies handed to the writer before waiting for them to be durable: enough to fill
/// large group commits, little enough to bound the memory of copies in flight.
const IN_FLIGHT: u64 = 8 * 1024 * 1024;

/// How compaction runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Compaction {
    /// Segments whose live share is below this are compacted; 0 never.
    pub(crate) below: f64,
    /// Bytes a second to read and copy at most; 0 is no limit.
    pub(crate) rate: u64,
    /// Tests: stop after the copies are durable, before the old segment is removed (a crash).
    #[cfg(test)]
    pub(crate) stop_before_unlink: bool,
}

impl From<&PackOptions> for Compaction {
    fn from(options: &PackOptions) -> Self {
        Self {
            below: options.compact_below,
            rate: options.compact_rate,
            #[cfg(test)]
            stop_before_unlink: false,
        }
    }
}

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// Segments removed.
    pub(crate) removed: Vec<u32>,
    /// Put records copied forward.
    pub(crate) copied: u64,
    /// Bytes read from the compacted segments.
    pub(crate) read: u64,
}

/// The background compactor of one subvolume: a pass every [`INTERVAL`] until the store goes.
pub(crate) fn run(inner: Weak<Inner>, compaction: Compaction) {
    loop {
        // Sleep in short steps, so a dropped store is noticed within a second.
        for _ in 0..INTERVAL.as_secs() {
            std::thread::sleep(Duration::from_secs(1));
            if inner.strong_count() == 0 {
                return;
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        match pass(&inner, &compaction) {
            Ok(report) if !report.removed.is_empty() => {
                tracing::info!(removed = ?report.removed, copied = report.copied, read = report.read, "segments compacted")
            }
            Ok(_) => {}
            Err(err) => tracing::error!(%err, "segment compaction failed"),
        }
    }
}

/// Compacts every segment but the newest whose live share is below `compaction.below`.
pub(crate) fn pass(inner: &Inner, compaction: &Compaction) -> Result<Report> {
    let candidates: Vec<u32> = {
        let index = inner.index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let newest = index.segments.last_key_value().map(|(&n, _)| n);
        index
            .segments
            .iter()
            .filter(|&(&n, s)| Some(n) != newest && (s.live == 0 || (s.live as f64) < compaction.below * s.len as f64))
            .map(|(&n, _)| n)
            .collect()
    };
    let mut report = Report::default();
    let mut limiter = Limiter::new(compaction.rate);
    for number in candidates {
        segment(inner, number, compaction, &mut limiter, &mut report)?;
    }
    Ok(report)
}

fn segment(
    inner: &Inner,
    number: u32,
    compaction: &Compaction,
    limiter: &mut Limiter,
    report: &mut Report,
) -> Result<()> {
    let (file, len, path, older_exists) = {
        let index = inner.index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(segment) = index.segments.get(&number) else { return Ok(()) };
        let older = index.segments.keys().next().is_some_and(|&first| first < number);
        (segment.file.clone(), segment.len, segment.path.clone(), older)
    };
    let mut waiting = Vec::new();
    let mut in_flight = 0u64;
    let mut offset = 0;
    while offset < len {
        let Some((header, bytes)) = record::read_record(&file, offset, len, true)? else {
            // Damage: whatever the index still points to in here stays, and so does the segment.
            tracing::error!(path = %path.display(), offset, "damaged record; segment kept, compaction skips the rest of it");
            break;
        };
        let here = offset;
        offset += header.record_len();
        limiter.take(header.record_len());
        report.read += header.record_len();
        let (done, answer) = oneshot::channel();
        let op = match header.kind {
            Kind::Put => {
                let from = Loc { segment: number, offset: here, body_len: header.body_len, meta_len: header.meta_len };
                let live = inner.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()).map.get(&header.id)
                    == Some(&from);
                if !live {
                    continue;
                }
                report.copied += 1;
                super::Op::Copy { id: header.id, from, record: bytes, done }
            }
            Kind::Delete if older_exists => super::Op::Tombstone { id: header.id, done },
            Kind::Delete => continue,
        };
        in_flight += header.record_len();
        inner.ops.blocking_send(op).map_err(|_| stopped())?;
        waiting.push(answer);
        if in_flight >= IN_FLIGHT {
            wait(&mut waiting)?;
            in_flight = 0;
        }
    }
    wait(&mut waiting)?;
    #[cfg(test)]
    if compaction.stop_before_unlink {
        return Ok(());
    }
    #[cfg(not(test))]
    let _ = compaction;
    remove(inner, number, &path)?;
    report.removed.push(number);
    Ok(())
}

/// Waits until every copy handed to the writer is durable (or was superseded).
fn wait(waiting: &mut Vec<oneshot::Receiver<Result<bool>>>) -> Result<()> {
    for answer in waiting.drain(..) {
        answer.blocking_recv().map_err(|_| stopped())??;
    }
    Ok(())
}

/// Drops segment `number` from the index and unlinks it, if nothing points into it any more.
fn remove(inner: &Inner, number: u32, path: &Path) -> Result<()> {
    {
        let mut index = inner.index.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let live = index.segments.get(&number).map_or(0, |segment| segment.live);
        if live > 0 {
            // A record that could not be copied (damaged) is still here: keep the segment.
            tracing::warn!(segment = number, live, "segment still holds live records; kept");
            return Ok(());
        }
        // Readers that looked up a record in it before hold the file open; unlinking leaves
        // their reads working.
        index.segments.remove(&number);
    }
    std::fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn stopped() -> Error {
    Error::Io(std::io::Error::other("segment writer stopped"))
}

/// Keeps reading at or below `rate` bytes a second.
struct Limiter {
    rate: u64,
    started: Instant,
    taken: u64,
}

impl Limiter {
    fn new(rate: u64) -> Self {
        Self { rate, started: Instant::now(), taken: 0 }
    }

    fn take(&mut self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        self.taken += bytes;
        let due = Duration::from_secs_f64(self.taken as f64 / self.rate as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}
