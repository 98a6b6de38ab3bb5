//! CopyObject and UploadPartCopy. The bytes stream from the source's replicas into new blobs
//! on the destination's replicas inside the cluster; they never go back to the client.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::conditions::{check_copy_source, copy_source_preconditions};
use super::lock::{carried, lock_headers};
use super::object::{algorithm_from_dto, checksum_fields, lookup_version, open_object, system_headers};
use super::write;
use crate::blob_meta::{BlobKind, BlobMeta};
use crate::checksum::{Claimed, Expected};
use crate::error::Error;
use crate::index::records::{ObjectEntry, ObjectRecord};
use crate::time::{now_ms, timestamp_from_ms};

/// Bucket, key and version (if named) of a copy source.
fn source_of(copy_source: &CopySource) -> S3Result<(&str, &str, Option<&str>)> {
    match copy_source {
        CopySource::Bucket { bucket, key, version_id } => Ok((bucket, key, version_id.as_deref())),
        _ => Err(s3_error!(NotImplemented, "Access point copy sources are not supported")),
    }
}

fn directive_is_replace(value: Option<&str>, what: &str) -> S3Result<bool> {
    match value {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("COPY") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("REPLACE") => Ok(true),
        Some(v) => Err(s3_error!(InvalidArgument, "Unknown {what} directive: {v}")),
    }
}

/// The checksum a copy computes: the one the request asks for, else the source's algorithm
/// (so a copy keeps its integrity check), else none.
fn copy_checksum(requested: Option<&ChecksumAlgorithm>, source: &ObjectRecord) -> S3Result<Option<Expected>> {
    let algorithm = match requested {
        Some(a) => Some(algorithm_from_dto(a)?),
        None => source.checksum.as_ref().map(|c| c.algorithm),
    };
    Ok(algorithm.map(|algorithm| Expected { algorithm, claimed: Claimed::Nothing }))
}

/// The version a copy reads (see `lookup_version`); a delete marker named by id is S3's
/// `InvalidRequest` here, not the 405 a GET of it gets.
async fn copy_source(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<(ObjectRecord, Option<String>)> {
    lookup_version(gw, bucket, key, version_id).await.map_err(|err| match err.code() {
        s3s::S3ErrorCode::MethodNotAllowed => s3_error!(
            InvalidRequest,
            "The source of a copy request may not specifically refer to a delete marker by version id."
        ),
        _ => err,
    })
}

pub(super) async fn copy_object(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let mut input = req.input;
    super::object::check_storage_class(input.storage_class.as_ref())?;
    let lock_headers = lock_headers!(input);
    let (src_bucket, src_key, src_version) = source_of(&input.copy_source)?;
    let (source, source_version_id) = copy_source(gw, src_bucket, src_key, src_version).await?;
    check_copy_source(&source, &copy_source_preconditions!(input))?;
    let Some(bucket_record) = gw.index.bucket(&input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    // The copy's own lock (or the bucket's default), never the source's, as on S3.
    let lock = lock_headers.lock_for(&bucket_record, now_ms())?;
    // The copy's own ACL, never the source's, as on S3.
    let acl = super::acl::new_object_acl(&req.headers, &req.extensions, &bucket_record)?;
    let replace_meta =
        directive_is_replace(input.metadata_directive.as_ref().map(MetadataDirective::as_str), "metadata")?;
    let replace_tags = directive_is_replace(input.tagging_directive.as_ref().map(TaggingDirective::as_str), "tagging")?;
    let onto_itself = src_bucket == input.bucket && src_key == input.key;
    if onto_itself
        && !replace_meta
        && !replace_tags
        && input.storage_class.is_none()
        && input.checksum_algorithm.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }

    let (headers, user_meta) = if replace_meta {
        let headers = system_headers!(input);
        (headers, write::user_meta(input.metadata)?)
    } else {
        (source.headers.clone(), source.user_meta.clone())
    };
    let tags = if replace_tags { write::tagging_header(input.tagging.as_deref())? } else { source.tags.clone() };
    let expected = copy_checksum(input.checksum_algorithm.as_ref(), &source)?;
    let algorithm = expected.as_ref().map(|e| e.algorithm);

    // When the write started; the commit takes the version's order (`Index::stage_object`).
    let ts = gw.index.next_ts();
    let modified_ms = now_ms();
    let meta = BlobMeta {
        headers,
        user_meta,
        tags,
        lock: carried(lock),
        acl,
        ..BlobMeta::new(BlobKind::Object, &input.bucket, &input.key, ts, modified_ms)
    };
    let body = open_object(gw, src_bucket, src_key, &source, 0, source.size).await?;
    let stored = write::store(gw, &meta, Some(source.size), None, expected, body).await?;
    let record = stored.record(meta, algorithm);
    let (etag, checksum) = (record.etag.clone(), record.checksum.clone());
    let entry = ObjectEntry::Live(Box::new(record));
    let version_id = gw.commit_object(&input.bucket, &input.key, entry, None).await?;

    let mut result = CopyObjectResult {
        e_tag: Some(ETag::Strong(etag)),
        last_modified: Some(timestamp_from_ms(modified_ms)),
        ..Default::default()
    };
    if let Some(checksum) = checksum {
        result.checksum_type = Some(ChecksumType::from(checksum.kind.name().to_string()));
        checksum_fields!(result, checksum.algorithm, Some(checksum.value));
    }
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        version_id,
        copy_source_version_id: source_version_id,
        ..Default::default()
    }))
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against the source size: a value not of
/// that form is `InvalidArgument`, a range the source does not cover `InvalidRange` (as S3
/// compatibility suites expect).
fn copy_range(value: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(value) = value else { return Ok((0, size)) };
    let malformed = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = value.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(malformed)?;
    let (first, last): (u64, u64) = (first.parse().map_err(|_| malformed())?, last.parse().map_err(|_| malformed())?);
    if first > last {
        return Err(malformed());
    }
    if last >= size {
        return Err(s3_error!(InvalidRange, "Range specified is not valid for source object of size: {size}"));
    }
    Ok((first, last + 1))
}

pub(super) async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    let number = super::multipart::check_part_number(input.part_number)?;
    let upload = super::multipart::require_upload(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let (src_bucket, src_key, src_version) = source_of(&input.copy_source)?;
    let (source, source_version_id) = copy_source(gw, src_bucket, src_key, src_version).await?;
    check_copy_source(&source, &copy_source_preconditions!(input))?;
    let (start, end) = copy_range(input.copy_source_range.as_deref(), source.size)?;
    if end - start > write::MAX_PUT_SIZE {
        return Err(Error::EntityTooLarge.into());
    }
    let algorithm = upload.checksum.map(|(a, _)| a);
    let expected = algorithm.map(|algorithm| Expected { algorithm, claimed: Claimed::Nothing });
    let meta = super::multipart::part_meta(gw, &input.bucket, &input.key, &input.upload_id, number);
    let body = open_object(gw, src_bucket, src_key, &source, start, end).await?;
    let stored = write::store(gw, &meta, Some(end - start), None, expected, body).await?;
    let part = super::multipart::commit_part(gw, &input.bucket, &input.key, &input.upload_id, number, stored).await?;
    let mut result = CopyPartResult {
        e_tag: Some(ETag::Strong(part.etag)),
        last_modified: Some(timestamp_from_ms(part.modified_ms)),
        ..Default::default()
    };
    if let Some(algorithm) = algorithm {
        checksum_fields!(result, algorithm, part.checksum);
    }
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(result),
        copy_source_version_id: source_version_id,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_ranges() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).unwrap(), (2, 6));
        assert!(copy_range(Some("bytes=5-10"), 10).is_err());
        assert!(copy_range(Some("bytes=6-5"), 10).is_err());
        assert!(copy_range(Some("2-5"), 10).is_err());
    }
}
