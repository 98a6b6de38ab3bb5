//! PutObject, GetObject, HeadObject.

use base64::Engine as _;
use rand::seq::SliceRandom;
use s3s::dto::*;
use s3s::stream::ByteStream;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::blob_meta::{BLOB_META_VERSION, BlobKind, BlobMeta};
use crate::error::Error;
use crate::index::records::{BlobRef, ObjectEntry, ObjectRecord, SystemHeaders};
use crate::replicated::{self, Source};
use crate::time::{http_date, now_ms, parse_http_date, timestamp_from_ms};

/// Largest single PUT S3 accepts (5 GiB).
const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// A fresh random blob id (128 bits, hex).
pub(crate) fn new_blob_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub(super) async fn put_object(gw: &Gateway, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let input = req.input;
    let (bucket, key) = (input.bucket, input.key);
    if gw.index.bucket(&bucket)?.is_none() {
        return Err(Error::NoSuchBucket.into());
    }
    let expected_md5 = input.content_md5.as_deref().map(parse_content_md5).transpose()?;
    let body = input
        .body
        .unwrap_or_else(|| StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>()));
    let size = body.remaining_length().exact().map(|n| n as u64);
    if size.is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(Error::EntityTooLarge.into());
    }

    let headers = SystemHeaders {
        content_type: input.content_type,
        content_encoding: input.content_encoding,
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
        expires: input.expires.as_ref().and_then(http_date),
    };
    let mut user_meta: Vec<(String, String)> =
        input.metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    user_meta.sort();

    let ts = gw.index.next_ts();
    let modified_ms = now_ms();
    let meta = BlobMeta {
        v: BLOB_META_VERSION,
        kind: BlobKind::Object,
        bucket: bucket.clone(),
        key: key.clone(),
        ts,
        modified_ms,
        headers,
        user_meta,
    };
    let targets = gw.cluster.place(&bucket, &key, gw.replicas)?;
    let blob_id = new_blob_id();
    let written =
        replicated::write(&gw.volumes, &targets, &blob_id, &meta.to_json(), size, gw.write_quorum, body).await?;
    if written.size > MAX_PUT_SIZE {
        return Err(Error::EntityTooLarge.into());
    }
    if expected_md5.is_some_and(|md5| md5 != written.md5) {
        return Err(Error::BadDigest.into());
    }

    let etag = hex::encode(written.md5);
    let record = ObjectRecord {
        ts,
        modified_ms,
        size: written.size,
        etag: etag.clone(),
        sha256: hex::encode(written.sha256),
        headers: meta.headers,
        user_meta: meta.user_meta,
        blob: BlobRef { id: blob_id, replicas: written.replicas },
    };
    let entry = ObjectEntry::Live(Box::new(record));
    gw.blocking(move |index| index.commit_object(&bucket, &key, &entry)).await?;
    tracing::debug!(size = written.size, %etag, "object stored");
    Ok(S3Response::new(PutObjectOutput { e_tag: Some(ETag::Strong(etag)), ..Default::default() }))
}

fn parse_content_md5(value: &str) -> Result<[u8; 16], Error> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .ok_or(Error::InvalidDigest)
}

fn lookup(gw: &Gateway, bucket: &str, key: &str) -> Result<ObjectRecord, Error> {
    if let Some(record) = gw.index.object(bucket, key)? {
        return Ok(record);
    }
    if gw.index.bucket(bucket)?.is_none() {
        return Err(Error::NoSuchBucket);
    }
    Err(Error::NoSuchKey)
}

/// The replicas of a record with their current URLs, starting at a random one to spread reads.
fn sources(gw: &Gateway, record: &ObjectRecord) -> Vec<Source> {
    let mut sources: Vec<Source> = record
        .blob
        .replicas
        .iter()
        .filter_map(|replica| Some(Source { url: gw.cluster.url_of(&replica.volume)?, subvolume: replica.subvolume }))
        .collect();
    sources.shuffle(&mut rand::rng());
    sources
}

fn metadata(record: &ObjectRecord) -> Option<Metadata> {
    (!record.user_meta.is_empty()).then(|| record.user_meta.iter().cloned().collect())
}

/// GetObjectOutput and HeadObjectOutput share every header field but are distinct types:
/// this fills the shared ones from the record, plus the given extra fields.
macro_rules! object_output {
    ($output:ident, $record:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let record: &ObjectRecord = &$record;
        let h = &record.headers;
        $output {
            $($field: $value,)*
            accept_ranges: Some("bytes".into()),
            e_tag: Some(ETag::Strong(record.etag.clone())),
            last_modified: Some(timestamp_from_ms(record.modified_ms)),
            content_type: h.content_type.clone(),
            content_encoding: h.content_encoding.clone(),
            content_disposition: h.content_disposition.clone(),
            content_language: h.content_language.clone(),
            cache_control: h.cache_control.clone(),
            expires: h.expires.as_deref().and_then(parse_http_date),
            metadata: metadata(record),
            ..Default::default()
        }
    }};
}

pub(super) async fn get_object(gw: &Gateway, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let record = lookup(gw, &input.bucket, &input.key)?;
    let (start, end, range_header) = match &input.range {
        Some(range) => {
            let span = range
                .check(record.size)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            let content_range = format!("bytes {}-{}/{}", span.start, span.end - 1, record.size);
            (span.start, span.end, Some(content_range))
        }
        None => (0, record.size, None),
    };
    let verify = if range_header.is_none() {
        let mut sha = [0u8; 32];
        hex::decode_to_slice(&record.sha256, &mut sha)
            .map_err(|e| Error::Index(format!("bad sha256 in record: {e}")))?;
        Some(sha)
    } else {
        None
    };
    let stream = replicated::read(&gw.volumes, sources(gw, &record), &record.blob.id, start, end, verify).await?;
    let output = object_output!(GetObjectOutput, record, {
        body: Some(StreamingBlob::wrap(stream)),
        content_length: Some(i64::try_from(end - start).unwrap_or(i64::MAX)),
        content_range: range_header,
    });
    Ok(S3Response::new(output))
}

pub(super) async fn head_object(
    gw: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let record = lookup(gw, &input.bucket, &input.key)?;
    let output = object_output!(HeadObjectOutput, record, {
        content_length: Some(i64::try_from(record.size).unwrap_or(i64::MAX)),
    });
    Ok(S3Response::new(output))
}
