//! The blob file format: raw bytes first, then the writer's metadata, then a fixed footer.
//!
//! ```text
//! [data: data_len bytes][meta: meta_len bytes of JSON][footer: FOOTER_LEN bytes]
//! footer = magic "CAIRNBLB" | version u8 | 3 zero bytes | meta_len u32 LE | data_len u64 LE
//!          | sha256 of data (32) | md5 of data (16) | written_at unix ms u64 LE
//! ```
//!
//! Data comes first so a `Range` read is a plain offset into the file; the footer is written
//! last because the digests are only known once the stream has ended. The metadata is opaque
//! JSON supplied by the writer (the gateway puts bucket, key, timestamp and S3 headers there),
//! which makes every blob self-describing: a lost index can be rebuilt from the files alone.

use std::io::SeekFrom;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{Error, Result};

pub(crate) const MAGIC: &[u8; 8] = b"CAIRNBLB";
pub(crate) const FORMAT_VERSION: u8 = 1;
pub(crate) const FOOTER_LEN: u64 = 8 + 1 + 3 + 4 + 8 + 32 + 16 + 8;
/// Largest metadata a blob may carry; S3 limits user metadata to 2 KiB, so this is generous.
pub const MAX_META_LEN: usize = 256 * 1024;

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
        out
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self> {
        if buf.len() as u64 != FOOTER_LEN || &buf[..8] != MAGIC {
            return Err(Error::Corrupt("bad footer magic".into()));
        }
        if buf[8] != FORMAT_VERSION {
            return Err(Error::Corrupt(format!("unknown blob format version {}", buf[8])));
        }
        let mut at = 12;
        let mut take = |n: usize| {
            let part = &buf[at..at + n];
            at += n;
            part
        };
        let meta_len = u32::from_le_bytes(take(4).try_into().map_err(|_| corrupt())?);
        let data_len = u64::from_le_bytes(take(8).try_into().map_err(|_| corrupt())?);
        let sha256 = take(32).try_into().map_err(|_| corrupt())?;
        let md5 = take(16).try_into().map_err(|_| corrupt())?;
        let written_at_ms = u64::from_le_bytes(take(8).try_into().map_err(|_| corrupt())?);
        Ok(Self { data_len, meta_len, sha256, md5, written_at_ms })
    }
}

fn corrupt() -> Error {
    Error::Corrupt("short footer".into())
}

/// Reads and checks the footer of an open blob file against the file's length.
pub(crate) async fn read_footer(file: &mut tokio::fs::File) -> Result<Footer> {
    let file_len = file.metadata().await?.len();
    if file_len < FOOTER_LEN {
        return Err(Error::Corrupt("file shorter than a footer".into()));
    }
    file.seek(SeekFrom::Start(file_len - FOOTER_LEN)).await?;
    let mut buf = vec![0; FOOTER_LEN as usize];
    file.read_exact(&mut buf).await?;
    let footer = Footer::decode(&buf)?;
    if footer.data_len + u64::from(footer.meta_len) + FOOTER_LEN != file_len {
        return Err(Error::Corrupt("footer lengths disagree with the file size".into()));
    }
    Ok(footer)
}

/// Reads the metadata JSON of an open blob file whose footer is known.
pub(crate) async fn read_meta(file: &mut tokio::fs::File, footer: &Footer) -> Result<Vec<u8>> {
    file.seek(SeekFrom::Start(footer.data_len)).await?;
    let mut meta = vec![0; footer.meta_len as usize];
    file.read_exact(&mut meta).await?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trips() {
        let footer = Footer { data_len: 42, meta_len: 7, sha256: [3; 32], md5: [9; 16], written_at_ms: 1234 };
        let bytes = footer.encode();
        assert_eq!(bytes.len() as u64, FOOTER_LEN);
        assert_eq!(Footer::decode(&bytes).unwrap(), footer);
    }

    #[test]
    fn footer_rejects_garbage() {
        let mut bytes = Footer { data_len: 1, meta_len: 1, sha256: [0; 32], md5: [0; 16], written_at_ms: 0 }.encode();
        bytes[0] = b'X';
        assert!(Footer::decode(&bytes).is_err());
        assert!(Footer::decode(&bytes[..10]).is_err());
    }
}
