//! The blob file format: raw bytes first, then the writer's metadata, then a fixed footer.
//!
//! ```text
//! [data: data_len bytes][block CRCs: 4 bytes per block][meta: meta_len bytes of JSON][footer]
//! block CRCs = crc32c u32 LE of each block_len-byte block of the data (the last may be short)
//! footer = magic "CAIRNBLB" | version u8 (3) | 3 zero bytes | meta_len u32 LE | data_len u64 LE
//!          | block_len u32 LE | sha256 of data (32) | md5 of data (16) | written_at unix ms u64 LE
//!          | crc32c of meta u32 LE | crc32c of the footer bytes before it u32 LE
//! ```
//!
//! Data comes first so a `Range` read is a plain offset into the file; the block CRCs, metadata
//! and footer are written last because they are only known once the stream has ended. The
//! metadata is opaque JSON supplied by the writer (the gateway puts bucket, key, timestamp and
//! S3 headers there), which makes every blob self-describing: a lost index can be rebuilt from
//! the files alone.
//!
//! Every byte of the file is covered by a checksum, checked before anything that depends on it
//! leaves the volume: each data block by its CRC32C (a reader checks every block it touches
//! before sending a byte of it, see [`crate::read`]), the whole data by the SHA-256 (checked by
//! a full verify), the metadata by its CRC32C, and the footer by its own trailing CRC32C. A
//! flipped bit in a block CRC makes its block fail the check, which is the right answer: that
//! copy is damaged. Versions 1 and 2 (no block CRCs) were never released and are refused.

use md5::Md5;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

pub(crate) const MAGIC: &[u8; 8] = b"CAIRNBLB";
pub(crate) const FORMAT_VERSION: u8 = 3;
/// Footer bytes covered by the footer's own CRC: everything before it.
const FOOTER_BODY_LEN: usize = 8 + 1 + 3 + 4 + 8 + 4 + 32 + 16 + 8 + 4;
pub(crate) const FOOTER_LEN: u64 = FOOTER_BODY_LEN as u64 + 4;
/// Largest metadata a blob may carry. S3 limits a request's headers to 8 KiB (user metadata
/// to 2 KiB); the metadata travels base64-encoded in a request header, so this bound also sets
/// the request-head limit of the volume daemon's listener (`http::MAX_REQUEST_HEAD`).
pub const MAX_META_LEN: usize = 64 * 1024;
/// Data bytes per checked block. A read verifies whole blocks, so this is both the most a
/// small range read has to read and check, and what a read holds in memory at a time; blobs up
/// to this size are verified whole before their first byte is sent.
pub const BLOCK_LEN: u32 = 1024 * 1024;
/// Bytes per entry of the block CRC table.
const BLOCK_CRC_LEN: u64 = 4;

/// CRC32C (Castagnoli), the checksum of the metadata and of the footer itself.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// What the footer says about a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Footer {
    /// Number of data bytes.
    pub data_len: u64,
    /// Data bytes per checked block.
    #[serde(skip)]
    pub block_len: u32,
    /// Length of the metadata JSON.
    #[serde(skip)]
    pub meta_len: u32,
    /// SHA-256 of the data, hex.
    #[serde(serialize_with = "hex_bytes")]
    pub sha256: [u8; 32],
    /// MD5 of the data, hex.
    #[serde(serialize_with = "hex_bytes")]
    pub md5: [u8; 16],
    /// When the blob was written (unix milliseconds), by the volume's clock.
    pub written_at_ms: u64,
    /// CRC32C of the metadata JSON.
    #[serde(skip)]
    pub meta_crc32c: u32,
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

impl Footer {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FOOTER_LEN as usize);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&self.meta_len.to_le_bytes());
        out.extend_from_slice(&self.data_len.to_le_bytes());
        out.extend_from_slice(&self.block_len.to_le_bytes());
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&self.md5);
        out.extend_from_slice(&self.written_at_ms.to_le_bytes());
        out.extend_from_slice(&self.meta_crc32c.to_le_bytes());
        let crc = crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self> {
        if buf.len() as u64 != FOOTER_LEN {
            return Err(corrupt("short footer"));
        }
        let (body, stored_crc) = buf.split_at(FOOTER_BODY_LEN);
        if &body[..8] != MAGIC {
            return Err(corrupt("bad footer magic"));
        }
        // Checked before any field is believed: a flipped bit anywhere in the footer (a
        // digest, a length, the version) is caught here.
        if u32::from_le_bytes(stored_crc.try_into().map_err(|_| corrupt("short footer"))?) != crc32c(body) {
            return Err(corrupt("footer checksum mismatch"));
        }
        if body[8] != FORMAT_VERSION {
            return Err(Error::Corrupt(format!("unknown blob format version {}", body[8])));
        }
        let mut at = 12;
        let mut take = |n: usize| {
            let part = &body[at..at + n];
            at += n;
            part
        };
        let short = || corrupt("short footer");
        let meta_len = u32::from_le_bytes(take(4).try_into().map_err(|_| short())?);
        let data_len = u64::from_le_bytes(take(8).try_into().map_err(|_| short())?);
        let block_len = u32::from_le_bytes(take(4).try_into().map_err(|_| short())?);
        if block_len == 0 {
            return Err(corrupt("zero block length"));
        }
        let sha256 = take(32).try_into().map_err(|_| short())?;
        let md5 = take(16).try_into().map_err(|_| short())?;
        let written_at_ms = u64::from_le_bytes(take(8).try_into().map_err(|_| short())?);
        let meta_crc32c = u32::from_le_bytes(take(4).try_into().map_err(|_| short())?);
        Ok(Self { data_len, block_len, meta_len, sha256, md5, written_at_ms, meta_crc32c })
    }

    /// Number of data blocks (the last one may be short).
    pub(crate) fn blocks(&self) -> u64 {
        self.data_len.div_ceil(u64::from(self.block_len))
    }

    /// Where block `n`'s data starts and ends.
    pub(crate) fn block_span(&self, n: u64) -> (u64, u64) {
        let start = n * u64::from(self.block_len);
        (start, (start + u64::from(self.block_len)).min(self.data_len))
    }

    /// Where the metadata starts: after the data and the block CRC table.
    pub(crate) fn meta_offset(&self) -> u64 {
        self.data_len + self.blocks() * BLOCK_CRC_LEN
    }

    /// The whole file's length as the footer describes it; `None` if it overflows.
    pub(crate) fn file_len(&self) -> Option<u64> {
        self.blocks()
            .checked_mul(BLOCK_CRC_LEN)?
            .checked_add(self.data_len)?
            .checked_add(u64::from(self.meta_len))?
            .checked_add(FOOTER_LEN)
    }
}

/// The CRC32C of every block of a data stream, computed as it is written.
pub(crate) struct BlockSums {
    block_len: u64,
    /// Bytes of the current block seen so far.
    filled: u64,
    current: crc_fast::Digest,
    /// The table so far, encoded.
    table: Vec<u8>,
}

impl BlockSums {
    pub(crate) fn new(block_len: u32) -> Self {
        Self {
            block_len: u64::from(block_len),
            filled: 0,
            current: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi),
            table: Vec::new(),
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (self.block_len - self.filled) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.current.update(now);
            self.filled += now.len() as u64;
            if self.filled == self.block_len {
                self.close_block();
            }
            data = rest;
        }
    }

    fn close_block(&mut self) {
        let crc = self.current.finalize_reset() as u32;
        self.table.extend_from_slice(&crc.to_le_bytes());
        self.filled = 0;
    }

    /// The encoded table, with the last (short) block closed.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.close_block();
        }
        self.table
    }
}

/// Reads the CRCs of blocks `first..end` from the table of the blob at `base` in `file`.
pub(crate) fn read_block_crcs(
    file: &std::fs::File,
    base: u64,
    footer: &Footer,
    first: u64,
    end: u64,
) -> Result<Vec<u32>> {
    use std::os::unix::fs::FileExt as _;
    let mut table = vec![0; ((end - first) * BLOCK_CRC_LEN) as usize];
    file.read_exact_at(&mut table, base + footer.data_len + first * BLOCK_CRC_LEN)?;
    Ok(table.chunks_exact(BLOCK_CRC_LEN as usize).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn corrupt(why: &str) -> Error {
    Error::Corrupt(why.into())
}

/// What the end of a blob holds: its footer, its metadata, and (when the read covered it) its
/// block CRC table.
pub(crate) struct Tail {
    pub(crate) footer: Footer,
    pub(crate) meta: Vec<u8>,
    pub(crate) crcs: Option<Vec<u32>>,
}

/// Reads and checks the footer and metadata of the blob that occupies `[base, base + len)` of
/// `file` (a whole blob file has base 0; a packed one sits inside a segment). The footer's
/// lengths must describe exactly `len` bytes. With `meta_len_hint` (a segment's index knows it)
/// the block CRC table, metadata and footer come in one read; otherwise footer and metadata
/// come in two, and the table is left to the data read.
pub(crate) fn read_tail(file: &std::fs::File, base: u64, len: u64, meta_len_hint: Option<u32>) -> Result<Tail> {
    use std::os::unix::fs::FileExt as _;
    let tail_len = tail_len(len, meta_len_hint)?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact_at(&mut tail, base + len - tail_len)?;
    let footer = match parse_tail(&tail, len)? {
        TailRead::Whole(tail) => return Ok(tail),
        TailRead::MetaBefore(footer) => footer,
    };
    let mut meta = vec![0; footer.meta_len as usize];
    file.read_exact_at(&mut meta, base + footer.meta_offset())?;
    check_meta_crc(&meta, &footer)?;
    Ok(Tail { footer, meta, crcs: None })
}

/// How many bytes from the end of a blob of `len` bytes to read for its tail: the footer, or
/// with `meta_len_hint` everything after the data (the table has at most one entry per block
/// of `len` bytes, a bound known before the footer).
pub(crate) fn tail_len(len: u64, meta_len_hint: Option<u32>) -> Result<u64> {
    if len < FOOTER_LEN {
        return Err(corrupt("blob shorter than a footer"));
    }
    Ok(meta_len_hint
        .map_or(FOOTER_LEN, |m| u64::from(m) + FOOTER_LEN + len.div_ceil(u64::from(BLOCK_LEN)) * BLOCK_CRC_LEN)
        .min(len))
}

/// What the last [`tail_len`] bytes of a blob gave.
pub(crate) enum TailRead {
    /// Footer and metadata, both checked, and the table if the bytes reached back that far.
    Whole(Tail),
    /// Only the (checked) footer: the metadata starts before the bytes read.
    MetaBefore(Footer),
}

/// Checks the footer at the end of `tail` (the last bytes of a blob of `len` bytes) and takes
/// the metadata and the block CRC table from `tail` as far as it holds them.
pub(crate) fn parse_tail(tail: &[u8], len: u64) -> Result<TailRead> {
    let tail_len = tail.len() as u64;
    if tail_len < FOOTER_LEN {
        return Err(corrupt("blob shorter than a footer"));
    }
    let footer = Footer::decode(&tail[tail.len() - FOOTER_LEN as usize..])?;
    if footer.file_len() != Some(len) {
        return Err(corrupt("footer lengths disagree with the blob's size"));
    }
    // Offsets in `tail` of the metadata and the table, if the read reached back that far.
    let meta_len = footer.meta_len as u64;
    let table_len = footer.blocks() * BLOCK_CRC_LEN;
    let Some(meta_at) = (tail_len - FOOTER_LEN).checked_sub(meta_len) else {
        return Ok(TailRead::MetaBefore(footer));
    };
    let meta = tail[meta_at as usize..(meta_at + meta_len) as usize].to_vec();
    check_meta_crc(&meta, &footer)?;
    let crcs = meta_at.checked_sub(table_len).map(|table_at| {
        let table = &tail[table_at as usize..(table_at + table_len) as usize];
        table.chunks_exact(BLOCK_CRC_LEN as usize).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    });
    Ok(TailRead::Whole(Tail { footer, meta, crcs }))
}

fn check_meta_crc(meta: &[u8], footer: &Footer) -> Result<()> {
    if crc32c(meta) == footer.meta_crc32c { Ok(()) } else { Err(corrupt("metadata checksum mismatch")) }
}

/// Refuses metadata a blob may not carry: too large, or not JSON.
pub(crate) fn check_meta(meta: &[u8]) -> Result<()> {
    if meta.len() > MAX_META_LEN {
        return Err(Error::BadRequest("metadata too large".into()));
    }
    serde_json::from_slice::<&serde_json::value::RawValue>(meta)
        .map_err(|e| Error::BadRequest(format!("metadata is not JSON: {e}")))?;
    Ok(())
}

/// Everything the bytes after a blob's data depend on, computed while the data streams in, so
/// both stores (file per blob, packed segments) write the same layout from one place.
pub(crate) struct Encoder {
    sha: Sha256,
    md5: Md5,
    blocks: BlockSums,
    size: u64,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Self { sha: Sha256::new(), md5: Md5::new(), blocks: BlockSums::new(BLOCK_LEN), size: 0 }
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.sha.update(chunk);
        self.md5.update(chunk);
        self.blocks.update(chunk);
        self.size += chunk.len() as u64;
    }

    /// Data bytes seen so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The bytes that follow the data (block CRC table, metadata, footer), and the footer.
    pub(crate) fn finish(self, meta: &[u8], written_at_ms: u64) -> Result<(Vec<u8>, Footer)> {
        let footer = Footer {
            data_len: self.size,
            block_len: BLOCK_LEN,
            meta_len: u32::try_from(meta.len()).map_err(|_| Error::BadRequest("metadata too large".into()))?,
            sha256: self.sha.finalize().into(),
            md5: self.md5.finalize().into(),
            written_at_ms,
            meta_crc32c: crc32c(meta),
        };
        let mut tail = self.blocks.finish();
        tail.extend_from_slice(meta);
        tail.extend_from_slice(&footer.encode());
        Ok((tail, footer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer() -> Footer {
        Footer {
            data_len: 42,
            block_len: 16,
            meta_len: 7,
            sha256: [3; 32],
            md5: [9; 16],
            written_at_ms: 1234,
            meta_crc32c: 0xdead_beef,
        }
    }

    #[test]
    fn footer_round_trips() {
        let bytes = footer().encode();
        assert_eq!(bytes.len() as u64, FOOTER_LEN);
        assert_eq!(Footer::decode(&bytes).unwrap(), footer());
    }

    #[test]
    fn footer_rejects_garbage() {
        let mut bytes = footer().encode();
        bytes[0] = b'X';
        assert!(Footer::decode(&bytes).is_err());
        assert!(Footer::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn every_flipped_footer_byte_is_caught() {
        let good = footer().encode();
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bytes = good.clone();
                bytes[at] ^= 1 << bit;
                assert!(
                    matches!(Footer::decode(&bytes), Err(Error::Corrupt(_))),
                    "flip of bit {bit} of byte {at} passed"
                );
            }
        }
    }

    #[test]
    fn older_footers_are_refused() {
        // A footer claiming an unreleased older version, with a valid CRC for good measure:
        // its version alone must be enough to refuse it.
        for version in [1, 2] {
            let mut bytes = footer().encode();
            bytes[8] = version;
            let crc = crc32c(&bytes[..FOOTER_BODY_LEN]);
            bytes[FOOTER_BODY_LEN..].copy_from_slice(&crc.to_le_bytes());
            let refused = matches!(Footer::decode(&bytes), Err(Error::Corrupt(why)) if why.contains(&format!("version {version}")));
            assert!(refused, "version {version} accepted");
        }
    }

    #[test]
    fn block_sums_match_whole_block_crcs_however_the_stream_is_cut() {
        let data: Vec<u8> = (0..100u32).map(|i| (i * 7) as u8).collect();
        let expected: Vec<u8> = data.chunks(16).flat_map(|block| crc32c(block).to_le_bytes()).collect();
        for cut in [1, 3, 16, 17, 100] {
            let mut sums = BlockSums::new(16);
            data.chunks(cut).for_each(|piece| sums.update(piece));
            assert_eq!(sums.finish(), expected, "pieces of {cut}");
        }
        assert!(BlockSums::new(16).finish().is_empty());
        let f = footer();
        assert_eq!((f.blocks(), f.block_span(2), f.meta_offset()), (3, (32, 42), 42 + 12));
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value of CRC-32C (iSCSI), so files stay readable by other tools.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
