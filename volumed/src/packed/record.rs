//! Records of a segment file, and the scan that finds them again after a restart.
//!
//! ```text
//! segment = record*
//! record  = header (40 bytes) | body (body_len bytes) | record CRC (u32 LE)
//! header  = magic "CNDL" | kind u8 (1 put, 2 delete) | 3 zero bytes | blob id (16 bytes)
//!           | body_len u64 LE | meta_len u32 LE | CRC32C of the 36 header bytes before it (u32 LE)
//! body    = a put's blob, laid out exactly like a blob file (data | block CRCs | metadata |
//!           footer, see `crate::blob`); empty for a delete
//! record CRC = CRC32C of header and body
//! ```
//!
//! The header has its own CRC so that a scan can trust a length before reading that far, and
//! can tell a real record from bytes that happen to spell the magic when it searches for the
//! next record past a damaged one. The record CRC covers everything, so a torn write (a crash
//! while the tail was being appended) is never taken for a record.

use std::os::unix::fs::FileExt as _;

use crate::blob::{FOOTER_LEN, crc32c};

pub(crate) const MAGIC: &[u8; 4] = b"CNDL";
/// Bytes of a record header.
pub(crate) const HEADER_LEN: u64 = 40;
/// Bytes of the trailing record CRC.
pub(crate) const TRAILER_LEN: u64 = 4;
const HEADER_BODY_LEN: usize = HEADER_LEN as usize - 4;
/// Largest body a header may claim. Far above any real one (a packed blob is at most the
/// packing threshold plus its metadata); it keeps lengths from overflowing on garbage that
/// happens to pass the header CRC.
const MAX_BODY_LEN: u64 = 1 << 40;
/// Raw blob id.
pub(crate) type RawId = [u8; 16];

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A blob: the body holds it.
    Put = 1,
    /// The blob of this id is gone (from this point of the log on).
    Delete = 2,
}

/// A decoded, checked record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    pub(crate) id: RawId,
    pub(crate) body_len: u64,
    pub(crate) meta_len: u32,
}

impl Header {
    /// Bytes of the whole record this header starts.
    pub(crate) fn record_len(&self) -> u64 {
        HEADER_LEN + self.body_len + TRAILER_LEN
    }

    pub(crate) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..4].copy_from_slice(MAGIC);
        out[4] = self.kind as u8;
        out[8..24].copy_from_slice(&self.id);
        out[24..32].copy_from_slice(&self.body_len.to_le_bytes());
        out[32..36].copy_from_slice(&self.meta_len.to_le_bytes());
        let crc = crc32c(&out[..HEADER_BODY_LEN]);
        out[36..40].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// The header in `bytes`, if the magic, the kind and its CRC are right.
    pub(crate) fn decode(bytes: &[u8; HEADER_LEN as usize]) -> Option<Self> {
        if &bytes[0..4] != MAGIC || bytes[5..8] != [0, 0, 0] {
            return None;
        }
        let crc = u32::from_le_bytes([bytes[36], bytes[37], bytes[38], bytes[39]]);
        if crc != crc32c(&bytes[..HEADER_BODY_LEN]) {
            return None;
        }
        let kind = match bytes[4] {
            1 => Kind::Put,
            2 => Kind::Delete,
            _ => return None,
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[8..24]);
        let body_len = u64::from_le_bytes(bytes[24..32].try_into().ok()?);
        let meta_len = u32::from_le_bytes(bytes[32..36].try_into().ok()?);
        // A put holds at least a footer; a delete holds nothing.
        let plausible = match kind {
            Kind::Put => {
                (FOOTER_LEN..=MAX_BODY_LEN).contains(&body_len) && u64::from(meta_len) + FOOTER_LEN <= body_len
            }
            Kind::Delete => body_len == 0 && meta_len == 0,
        };
        plausible.then_some(Self { kind, id, body_len, meta_len })
    }
}

/// A whole put record around `body` (a blob laid out as in a file): header, body, CRC.
/// `record` must hold [`HEADER_LEN`] placeholder bytes followed by the body; the header is
/// filled in and the CRC appended here, so the body is never copied.
pub(crate) fn seal_put(mut record: Vec<u8>, id: RawId, meta_len: u32) -> Vec<u8> {
    let body_len = record.len() as u64 - HEADER_LEN;
    let header = Header { kind: Kind::Put, id, body_len, meta_len };
    record[..HEADER_LEN as usize].copy_from_slice(&header.encode());
    let crc = crc32c(&record);
    record.extend_from_slice(&crc.to_le_bytes());
    record
}

/// A whole delete record for `id`.
pub(crate) fn delete_record(id: RawId) -> Vec<u8> {
    let header = Header { kind: Kind::Delete, id, body_len: 0, meta_len: 0 }.encode();
    let mut record = header.to_vec();
    record.extend_from_slice(&crc32c(&header).to_le_bytes());
    record
}

/// A record found by a scan, at `offset` in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) offset: u64,
    pub(crate) header: Header,
}

/// What a scan of one segment found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Every whole, checked record, in file order.
    pub(crate) records: Vec<Found>,
    /// Damaged ranges `[start, end)` between good records: skipped, reported, left in place.
    pub(crate) damaged: Vec<(u64, u64)>,
    /// Where the good records end if what follows is a torn tail (no good record after it).
    pub(crate) torn_from: Option<u64>,
}

/// The record at `offset`, if it is whole and its CRCs check, with its bytes when `keep`.
pub(crate) fn read_record(
    file: &std::fs::File,
    offset: u64,
    file_len: u64,
    keep: bool,
) -> std::io::Result<Option<(Header, Vec<u8>)>> {
    if file_len.saturating_sub(offset) < HEADER_LEN + TRAILER_LEN {
        return Ok(None);
    }
    let mut head = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut head, offset)?;
    let Some(header) = Header::decode(&head) else { return Ok(None) };
    if header.record_len() > file_len - offset {
        return Ok(None);
    }
    let mut rest = vec![0u8; (header.body_len + TRAILER_LEN) as usize];
    file.read_exact_at(&mut rest, offset + HEADER_LEN)?;
    let (body, stored) = rest.split_at(header.body_len as usize);
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    crc.update(&head);
    crc.update(body);
    if (crc.finalize() as u32).to_le_bytes() != stored {
        return Ok(None);
    }
    let bytes = if keep {
        let mut all = head.to_vec();
        all.extend_from_slice(&rest);
        all
    } else {
        Vec::new()
    };
    Ok(Some((header, bytes)))
}

/// Reads every record of a segment `file_len` bytes long. A stretch that is not a good record
/// is skipped up to the next good one (found by its magic and CRCs) and reported; one with no
/// good record after it is a torn tail.
pub(crate) fn scan(file: &std::fs::File, file_len: u64) -> std::io::Result<Scan> {
    let mut found = Scan::default();
    let mut offset = 0;
    while offset < file_len {
        if let Some((header, _)) = read_record(file, offset, file_len, false)? {
            found.records.push(Found { offset, header });
            offset += header.record_len();
            continue;
        }
        match next_record(file, offset + 1, file_len)? {
            Some(next) => {
                found.damaged.push((offset, next));
                offset = next;
            }
            None => {
                found.torn_from = Some(offset);
                break;
            }
        }
    }
    Ok(found)
}

/// The offset of the first good record at or after `from`.
fn next_record(file: &std::fs::File, from: u64, file_len: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: u64 = 64 * 1024;
    let mut at = from;
    while at < file_len {
        let len = CHUNK.min(file_len - at);
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, at)?;
        for (i, window) in buf.windows(MAGIC.len()).enumerate() {
            if window == MAGIC && read_record(file, at + i as u64, file_len, false)?.is_some() {
                return Ok(Some(at + i as u64));
            }
        }
        if at + len >= file_len {
            break;
        }
        // Overlap by the magic's length less one, so a magic across two chunks is seen.
        at += len - (MAGIC.len() as u64 - 1);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_every_flipped_bit_is_caught() {
        let header = Header { kind: Kind::Put, id: [7; 16], body_len: 500, meta_len: 20 };
        let bytes = header.encode();
        assert_eq!(Header::decode(&bytes), Some(header));
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes;
                bad[at] ^= 1 << bit;
                assert_eq!(Header::decode(&bad), None, "bit {bit} of byte {at}");
            }
        }
        let delete = delete_record([9; 16]);
        assert_eq!(delete.len() as u64, HEADER_LEN + TRAILER_LEN);
        let absurd = Header { body_len: u64::MAX - 8, ..header }.encode();
        assert_eq!(Header::decode(&absurd), None, "a length that would overflow is refused");
    }
}
