//! The blob file format: raw bytes first, then the writer's metadata, then a fixed footer.
//!
//! ```text
//! [data: data_len bytes][meta: meta_len bytes of JSON][footer: FOOTER_LEN bytes]
//! footer = magic "CAIRNBLB" | version u8 (2) | 3 zero bytes | meta_len u32 LE | data_len u64 LE
//!          | sha256 of data (32) | md5 of data (16) | written_at unix ms u64 LE
//!          | crc32c of meta u32 LE | crc32c of the footer bytes before it u32 LE
//! ```
//!
//! Data comes first so a `Range` read is a plain offset into the file; the footer is written
//! last because the digests are only known once the stream has ended. The metadata is opaque
//! JSON supplied by the writer (the gateway puts bucket, key, timestamp and S3 headers there),
//! which makes every blob self-describing: a lost index can be rebuilt from the files alone.
//!
//! Every byte of the file is covered by a checksum: the data by the SHA-256 (checked by whoever
//! reads it whole), the metadata by its CRC32C, and the footer by its own trailing CRC32C.
//! The footer CRC is checked on every footer read and the metadata CRC on every metadata read,
//! so a flipped bit in a digest, a length or the metadata is reported as [`Error::Corrupt`]
//! instead of being served. Version 1 (no CRCs) was never released and is refused as corrupt.

use std::io::SeekFrom;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{Error, Result};

pub(crate) const MAGIC: &[u8; 8] = b"CAIRNBLB";
pub(crate) const FORMAT_VERSION: u8 = 2;
/// Footer bytes covered by the footer's own CRC: everything before it.
const FOOTER_BODY_LEN: usize = 8 + 1 + 3 + 4 + 8 + 32 + 16 + 8 + 4;
pub(crate) const FOOTER_LEN: u64 = FOOTER_BODY_LEN as u64 + 4;
/// Largest metadata a blob may carry. S3 limits a request's headers to 8 KiB (user metadata
/// to 2 KiB); the metadata travels base64-encoded in a request header, so this bound also sets
/// the request-head limit of the volume daemon's listener (`http::MAX_REQUEST_HEAD`).
pub const MAX_META_LEN: usize = 64 * 1024;

/// CRC32C (Castagnoli), the checksum of the metadata and of the footer itself.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// What the footer says about a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Footer {
    /// Number of data bytes.
    pub data_len: u64,
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
        let sha256 = take(32).try_into().map_err(|_| short())?;
        let md5 = take(16).try_into().map_err(|_| short())?;
        let written_at_ms = u64::from_le_bytes(take(8).try_into().map_err(|_| short())?);
        let meta_crc32c = u32::from_le_bytes(take(4).try_into().map_err(|_| short())?);
        Ok(Self { data_len, meta_len, sha256, md5, written_at_ms, meta_crc32c })
    }
}

fn corrupt(why: &str) -> Error {
    Error::Corrupt(why.into())
}

/// Reads and checks the footer of an open blob file against the file's length.
pub(crate) async fn read_footer(file: &mut tokio::fs::File) -> Result<Footer> {
    let file_len = file.metadata().await?.len();
    if file_len < FOOTER_LEN {
        return Err(corrupt("file shorter than a footer"));
    }
    file.seek(SeekFrom::Start(file_len - FOOTER_LEN)).await?;
    let mut buf = vec![0; FOOTER_LEN as usize];
    file.read_exact(&mut buf).await?;
    let footer = Footer::decode(&buf)?;
    let expected = footer.data_len.checked_add(u64::from(footer.meta_len) + FOOTER_LEN);
    if expected != Some(file_len) {
        return Err(corrupt("footer lengths disagree with the file size"));
    }
    Ok(footer)
}

/// Reads the metadata JSON of an open blob file whose footer is known, and checks its CRC.
pub(crate) async fn read_meta(file: &mut tokio::fs::File, footer: &Footer) -> Result<Vec<u8>> {
    file.seek(SeekFrom::Start(footer.data_len)).await?;
    let mut meta = vec![0; footer.meta_len as usize];
    file.read_exact(&mut meta).await?;
    if crc32c(&meta) != footer.meta_crc32c {
        return Err(corrupt("metadata checksum mismatch"));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer() -> Footer {
        Footer {
            data_len: 42,
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
    fn version_1_footers_are_refused() {
        // A well-formed footer of the unreleased version 1, with a valid CRC for good measure:
        // its version alone must be enough to refuse it.
        let mut bytes = footer().encode();
        bytes[8] = 1;
        let crc = crc32c(&bytes[..FOOTER_BODY_LEN]);
        bytes[FOOTER_BODY_LEN..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(Footer::decode(&bytes), Err(Error::Corrupt(why)) if why.contains("version 1")));
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value of CRC-32C (iSCSI), so files stay readable by other tools.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
