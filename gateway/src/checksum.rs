//! Client checksums (`x-amz-checksum-*`): which one a request carries (header or aws-chunked
//! trailer), computing it while the body streams, checking it before anything is committed,
//! and combining part checksums into a multipart object's checksum.

use base64::Engine as _;
use http::HeaderMap;
use s3s::TrailingHeaders;
use s3s::crypto::Checksum as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The checksum algorithms S3 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// CRC-32 (ISO-HDLC).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

/// Every algorithm, for scanning request headers.
pub const ALGORITHMS: [Algorithm; 5] =
    [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256];

impl Algorithm {
    /// Parses S3's name for it (`CRC32`, `crc64nvme`, …).
    pub fn parse(name: &str) -> Option<Self> {
        ALGORITHMS.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// S3's name, as in `x-amz-checksum-algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header (or trailer) that carries a value of this algorithm.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Digest length in bytes.
    fn len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// CRCs can be combined into a full-object checksum; hashes only into a composite one.
    pub fn supports_full_object(self) -> bool {
        matches!(self, Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64Nvme)
    }

    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }
}

/// How a multipart object's checksum was formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    /// The checksum of the whole content (every single-part object; CRC multipart objects).
    FullObject,
    /// The checksum of the concatenated part checksums, suffixed `-N`.
    Composite,
}

impl ChecksumType {
    /// Parses `x-amz-checksum-type`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "FULL_OBJECT" => Some(ChecksumType::FullObject),
            "COMPOSITE" => Some(ChecksumType::Composite),
            _ => None,
        }
    }

    /// S3's name.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::FullObject => "FULL_OBJECT",
            ChecksumType::Composite => "COMPOSITE",
        }
    }
}

/// A stored checksum: the value is base64, with `-N` for a composite of N parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// How it was formed.
    pub kind: ChecksumType,
    /// The value as S3 returns it.
    pub value: String,
}

/// An incremental digest of one algorithm.
pub enum Hasher {
    /// CRC-32.
    Crc32(s3s::crypto::Crc32),
    /// CRC-32C.
    Crc32c(s3s::crypto::Crc32c),
    /// CRC-64/NVME.
    Crc64Nvme(s3s::crypto::Crc64Nvme),
    /// SHA-1.
    Sha1(s3s::crypto::Sha1),
    /// SHA-256.
    Sha256(s3s::crypto::Sha256),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// A fresh digest.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Crc32 => Hasher::Crc32(s3s::crypto::Crc32::new()),
            Algorithm::Crc32c => Hasher::Crc32c(s3s::crypto::Crc32c::new()),
            Algorithm::Crc64Nvme => Hasher::Crc64Nvme(s3s::crypto::Crc64Nvme::new()),
            Algorithm::Sha1 => Hasher::Sha1(s3s::crypto::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(s3s::crypto::Sha256::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(h) => h.update(data),
            Hasher::Crc64Nvme(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest bytes.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Crc32(h) => h.finalize().to_vec(),
            Hasher::Crc32c(h) => h.finalize().to_vec(),
            Hasher::Crc64Nvme(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Where the client's value for a body checksum comes from.
#[derive(Debug, Clone)]
pub enum Claimed {
    /// An `x-amz-checksum-*` header (already validated).
    Header(String),
    /// An aws-chunked trailer, readable once the body has ended.
    Trailer(TrailingHeaders),
    /// Only the algorithm was named (`x-amz-sdk-checksum-algorithm` or the upload's); the
    /// gateway computes and stores it.
    Nothing,
}

/// The checksum a request body must match.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Algorithm to compute.
    pub algorithm: Algorithm,
    /// The client's value, if any.
    pub claimed: Claimed,
}

impl Expected {
    /// Reads the checksum a request declares: one `x-amz-checksum-*` header, or an
    /// `x-amz-trailer` naming one, or `x-amz-sdk-checksum-algorithm` alone. `default` is
    /// the algorithm to compute when the request names none (a multipart upload's).
    pub fn from_request(
        headers: &HeaderMap,
        trailers: Option<&TrailingHeaders>,
        default: Option<Algorithm>,
    ) -> Result<Option<Self>> {
        let mut found = None;
        for algorithm in ALGORITHMS {
            if let Some(value) = headers.get(algorithm.header()) {
                if found.is_some() {
                    return Err(Error::InvalidRequest("Expecting a single x-amz-checksum- header".into()));
                }
                let value = value.to_str().unwrap_or_default().to_string();
                decode_value(algorithm, &value)?;
                found = Some(Expected { algorithm, claimed: Claimed::Header(value) });
            }
        }
        if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            let trailer = trailer.trim().to_ascii_lowercase();
            let algorithm = ALGORITHMS.into_iter().find(|a| a.header() == trailer).ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "The value specified in the x-amz-trailer header is not supported: {trailer}"
                ))
            })?;
            if found.is_some() {
                return Err(Error::InvalidRequest("Expecting a single x-amz-checksum- header".into()));
            }
            let trailers = trailers.ok_or_else(|| {
                Error::InvalidRequest("x-amz-trailer requires an aws-chunked body with trailers".into())
            })?;
            found = Some(Expected { algorithm, claimed: Claimed::Trailer(trailers.clone()) });
        }
        let sdk = headers.get("x-amz-sdk-checksum-algorithm").and_then(|v| v.to_str().ok());
        if let Some(name) = sdk {
            let algorithm = Algorithm::parse(name)
                .ok_or_else(|| Error::InvalidRequest(format!("Invalid x-amz-sdk-checksum-algorithm: {name}")))?;
            match &found {
                Some(expected) if expected.algorithm != algorithm => {
                    return Err(Error::InvalidRequest(
                        "Value for x-amz-sdk-checksum-algorithm header is invalid.".into(),
                    ));
                }
                Some(_) => {}
                None => found = Some(Expected { algorithm, claimed: Claimed::Nothing }),
            }
        }
        Ok(found.or_else(|| default.map(|algorithm| Expected { algorithm, claimed: Claimed::Nothing })))
    }

    /// Checks the computed digest against the client's value; returns the value to store.
    pub fn check(&self, digest: &[u8]) -> Result<String> {
        let computed = base64::engine::general_purpose::STANDARD.encode(digest);
        let claimed = match &self.claimed {
            Claimed::Header(value) => Some(value.clone()),
            Claimed::Trailer(trailers) => {
                let value = trailers
                    .read(|h| h.get(self.algorithm.header()).and_then(|v| v.to_str().ok()).map(str::to_string))
                    .flatten()
                    .ok_or_else(|| {
                        Error::InvalidRequest(format!(
                            "The trailer {} was declared but not sent",
                            self.algorithm.header()
                        ))
                    })?;
                decode_value(self.algorithm, &value)?;
                Some(value)
            }
            Claimed::Nothing => None,
        };
        match claimed {
            Some(value) if value.trim() != computed => Err(Error::ChecksumMismatch(self.algorithm.name())),
            _ => Ok(computed),
        }
    }
}

/// Decodes a base64 checksum value, checking its length for the algorithm.
pub fn decode_value(algorithm: Algorithm, value: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .filter(|bytes| bytes.len() == algorithm.len())
        .ok_or_else(|| Error::InvalidRequest(format!("Value for {} header is invalid.", algorithm.header())))
}

/// A part's checksum with its size, for combining.
#[derive(Debug, Clone, Copy)]
pub struct PartDigest<'a> {
    /// Base64 value of the part's checksum.
    pub value: &'a str,
    /// Part size in bytes.
    pub size: u64,
}

/// The object checksum of a completed multipart upload.
pub fn combine(algorithm: Algorithm, kind: ChecksumType, parts: &[PartDigest<'_>]) -> Result<Checksum> {
    let value = match kind {
        ChecksumType::Composite => {
            let mut hasher = Hasher::new(algorithm);
            for part in parts {
                hasher.update(&decode_value(algorithm, part.value)?);
            }
            let digest = base64::engine::general_purpose::STANDARD.encode(hasher.finalize());
            format!("{digest}-{}", parts.len())
        }
        ChecksumType::FullObject => {
            let crc = algorithm.crc().ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "The FULL_OBJECT checksum type is not supported for {}",
                    algorithm.name()
                ))
            })?;
            let mut combined: Option<u64> = None;
            for part in parts {
                let bytes = decode_value(algorithm, part.value)?;
                let value = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                combined = Some(match combined {
                    None => value,
                    Some(acc) => crc_fast::checksum_combine(crc, acc, value, part.size),
                });
            }
            let value = combined.unwrap_or_else(|| crc_fast::checksum(crc, b""));
            let bytes = value.to_be_bytes();
            base64::engine::general_purpose::STANDARD.encode(&bytes[bytes.len() - algorithm.len()..])
        }
    };
    Ok(Checksum { algorithm, kind, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: Algorithm, data: &[u8]) -> String {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
    }

    #[test]
    fn known_values() {
        // Reference values from the AWS documentation examples / the CRC catalogue ("123456789").
        let check = |a, want: u64| {
            let bytes = decode_value(a, &digest(a, b"123456789")).unwrap();
            assert_eq!(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)), want, "{a:?}");
        };
        check(Algorithm::Crc32, 0xcbf4_3926);
        check(Algorithm::Crc32c, 0xe306_9283);
        check(Algorithm::Crc64Nvme, 0xae8b_1486_0a79_9888);
        assert_eq!(digest(Algorithm::Sha256, b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn full_object_crc_combines_parts() {
        let data = b"hello multipart world, split in three";
        let (a, b, c) = (&data[..5], &data[5..20], &data[20..]);
        for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let parts =
                [(digest(algorithm, a), a.len()), (digest(algorithm, b), b.len()), (digest(algorithm, c), c.len())];
            let parts: Vec<PartDigest<'_>> =
                parts.iter().map(|(v, n)| PartDigest { value: v, size: *n as u64 }).collect();
            let combined = combine(algorithm, ChecksumType::FullObject, &parts).unwrap();
            assert_eq!(combined.value, digest(algorithm, data), "{algorithm:?}");
        }
    }

    #[test]
    fn composite_is_digest_of_digests() {
        let (a, b) = (digest(Algorithm::Sha256, b"one"), digest(Algorithm::Sha256, b"two"));
        let mut concat = decode_value(Algorithm::Sha256, &a).unwrap();
        concat.extend(decode_value(Algorithm::Sha256, &b).unwrap());
        let parts = [PartDigest { value: &a, size: 3 }, PartDigest { value: &b, size: 3 }];
        let combined = combine(Algorithm::Sha256, ChecksumType::Composite, &parts).unwrap();
        assert_eq!(combined.value, format!("{}-2", digest(Algorithm::Sha256, &concat)));
        assert!(combine(Algorithm::Sha1, ChecksumType::FullObject, &parts).is_err());
    }

    #[test]
    fn request_declarations() {
        let mut headers = HeaderMap::new();
        assert!(Expected::from_request(&headers, None, None).unwrap().is_none());
        headers.insert("x-amz-checksum-crc32", "not base64!".parse().unwrap());
        assert!(matches!(Expected::from_request(&headers, None, None), Err(Error::InvalidRequest(_))));
        headers.insert("x-amz-checksum-crc32", digest(Algorithm::Crc32, b"abc").parse().unwrap());
        let expected = Expected::from_request(&headers, None, None).unwrap().unwrap();
        assert_eq!(expected.algorithm, Algorithm::Crc32);
        let mut hasher = Hasher::new(Algorithm::Crc32);
        hasher.update(b"abc");
        assert!(expected.check(&hasher.finalize()).is_ok());
        let mut hasher = Hasher::new(Algorithm::Crc32);
        hasher.update(b"abd");
        assert!(matches!(expected.check(&hasher.finalize()), Err(Error::ChecksumMismatch(_))));
        headers.insert("x-amz-checksum-sha1", digest(Algorithm::Sha1, b"abc").parse().unwrap());
        assert!(Expected::from_request(&headers, None, None).is_err(), "two checksum headers");
    }
}
