//! Multipart uploads: Create, UploadPart, Complete, Abort, ListParts, ListMultipartUploads.
//! (UploadPartCopy lives with the other copies in `copy.rs`.)
//!
//! Parts are blobs placed like the object. Complete never copies data: it writes a small
//! manifest blob (the part list, for rebuild) and commits a record that points at the parts.

use md5::{Digest as _, Md5};
use s3s::dto::*;
use s3s::stream::ByteStream as _;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::lock::{carried, default_retention, lock_headers};
use super::object::{algorithm_from_dto, checksum_algorithm_dto, checksum_fields, system_headers};
use super::write::{self, new_id};
use crate::blob_meta::{BlobKind, BlobMeta, Manifest};
use crate::checksum::{self, Algorithm, Checksum, ChecksumType as ChecksumKind, Expected, PartDigest};
use crate::error::Error;
use crate::index::records::{ObjectEntry, ObjectRecord, PartRecord, UploadRecord, Version};
use crate::time::{now_ms, timestamp_from_ms};

/// S3's part numbers.
const MAX_PART_NUMBER: i32 = 10_000;
/// Every part but the last must be at least this big.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Default and largest page of ListParts / ListMultipartUploads.
const MAX_PAGE: usize = 1000;

pub(super) async fn create_multipart_upload(
    gw: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let mut input = req.input;
    super::object::check_storage_class(input.storage_class.as_ref())?;
    let Some(bucket_record) = gw.index.bucket(&input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let lock_headers = lock_headers!(input);
    let mut lock = lock_headers.lock_for(&bucket_record, now_ms())?;
    if lock_headers.mode.is_none() {
        // None asked for: the bucket's default retention applies when the upload completes,
        // counted from then.
        lock.retention = None;
    }
    let acl = super::acl::new_object_acl(&req.headers, &req.extensions, &bucket_record)?;
    let algorithm = input.checksum_algorithm.as_ref().map(algorithm_from_dto).transpose()?;
    let kind = input
        .checksum_type
        .as_ref()
        .map(|t| ChecksumKind::parse(t.as_str()).ok_or_else(|| s3_error!(InvalidRequest, "Invalid checksum type")))
        .transpose()?;
    let checksum = match (algorithm, kind) {
        (None, Some(_)) => {
            return Err(s3_error!(InvalidRequest, "The x-amz-checksum-type header requires x-amz-checksum-algorithm"));
        }
        (None, None) => None,
        (Some(a), Some(ChecksumKind::FullObject)) if !a.supports_full_object() => {
            return Err(s3_error!(
                InvalidRequest,
                "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                a.name()
            ));
        }
        (Some(a), Some(kind)) => Some((a, kind)),
        // S3's default: CRC64NVME combines to a full-object checksum, the others compose.
        (Some(Algorithm::Crc64Nvme), None) => Some((Algorithm::Crc64Nvme, ChecksumKind::FullObject)),
        (Some(a), None) => Some((a, ChecksumKind::Composite)),
    };
    let record = UploadRecord {
        initiated_ms: now_ms(),
        headers: system_headers!(input),
        user_meta: write::user_meta(input.metadata)?,
        tags: write::tagging_header(input.tagging.as_deref())?,
        checksum,
        lock,
        acl,
    };
    let upload_id = new_id();
    let (bucket, key, id) = (input.bucket.clone(), input.key.clone(), upload_id.clone());
    gw.index.create_upload(&bucket, &key, &id, &record).await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        checksum_algorithm: checksum.map(|(a, _)| checksum_algorithm_dto(a)),
        checksum_type: checksum.map(|(_, t)| ChecksumType::from(t.name().to_string())),
        ..Default::default()
    }))
}

pub(super) fn check_part_number(number: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&number) {
        Ok(number as u32)
    } else {
        Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
    }
}

/// The upload, or `NoSuchUpload` (or `NoSuchBucket`).
pub(super) async fn require_upload(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<UploadRecord, Error> {
    match gw.index.upload(bucket, key, upload_id).await? {
        Some(upload) => Ok(upload),
        None if gw.index.bucket(bucket).await?.is_none() => Err(Error::NoSuchBucket),
        None => Err(Error::NoSuchUpload),
    }
}

/// The metadata written into a part blob, so rebuild can tie it to its upload.
pub(super) fn part_meta(gw: &Gateway, bucket: &str, key: &str, upload_id: &str, number: u32) -> BlobMeta {
    BlobMeta {
        upload_id: Some(upload_id.to_string()),
        part_number: Some(number),
        ..BlobMeta::new(BlobKind::Part, bucket, key, gw.index.next_ts(), now_ms())
    }
}

/// Commits a stored part, checking its checksum algorithm against the upload's.
pub(super) async fn commit_part(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    upload_id: &str,
    number: u32,
    stored: write::Stored,
) -> Result<PartRecord, Error> {
    let part = PartRecord {
        number,
        size: stored.size,
        etag: hex::encode(stored.md5),
        sha256: hex::encode(stored.sha256),
        checksum: stored.checksum,
        modified_ms: now_ms(),
        blob: stored.blob,
    };
    let (bucket, key, upload_id, record) = (bucket.to_string(), key.to_string(), upload_id.to_string(), part.clone());
    gw.index.commit_part(&bucket, &key, &upload_id, &record).await?;
    Ok(part)
}

pub(super) async fn upload_part(
    gw: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = req.input;
    let number = check_part_number(input.part_number)?;
    let upload = require_upload(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let upload_algorithm = upload.checksum.map(|(a, _)| a);
    let expected = Expected::from_request(&req.headers, req.trailing_headers.as_ref(), upload_algorithm)?;
    if let (Some(want), Some(got)) = (upload_algorithm, expected.as_ref().map(|e| e.algorithm))
        && want != got
    {
        return Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            want.name().to_ascii_lowercase(),
            got.name().to_ascii_lowercase()
        ));
    }
    let algorithm = expected.as_ref().map(|e| e.algorithm);
    let meta = part_meta(gw, &input.bucket, &input.key, &input.upload_id, number);
    let body = super::object::body_or_empty(input.body);
    let size = body.remaining_length().exact().map(|n| n as u64);
    let content_md5 = write::content_md5(input.content_md5.as_deref())?;
    let stored = write::store(gw, &meta, size, content_md5, expected, body).await?;
    let part = commit_part(gw, &input.bucket, &input.key, &input.upload_id, number, stored).await?;
    let mut output = UploadPartOutput { e_tag: Some(ETag::Strong(part.etag)), ..Default::default() };
    if let (Some(algorithm), Some(value)) = (algorithm, part.checksum) {
        checksum_fields!(output, algorithm, Some(value));
    }
    Ok(S3Response::new(output))
}

/// A part's checksum as the client listed it in CompleteMultipartUpload.
fn listed_checksum(part: &CompletedPart, algorithm: Algorithm) -> Option<&str> {
    match algorithm {
        Algorithm::Crc32 => part.checksum_crc32.as_deref(),
        Algorithm::Crc32c => part.checksum_crc32c.as_deref(),
        Algorithm::Crc64Nvme => part.checksum_crc64nvme.as_deref(),
        Algorithm::Sha1 => part.checksum_sha1.as_deref(),
        Algorithm::Sha256 => part.checksum_sha256.as_deref(),
    }
}

/// Picks the listed parts out of the stored ones, enforcing S3's rules.
fn choose_parts(
    listed: &[CompletedPart],
    stored: &[PartRecord],
    algorithm: Option<Algorithm>,
) -> S3Result<Vec<PartRecord>> {
    if listed.is_empty() {
        return Err(s3_error!(MalformedXML, "You must specify at least one part"));
    }
    let mut chosen: Vec<PartRecord> = Vec::with_capacity(listed.len());
    for item in listed {
        let number = item.part_number.ok_or_else(|| s3_error!(MalformedXML, "A part is missing its PartNumber"))?;
        let number = check_part_number(number)?;
        if chosen.last().is_some_and(|last| last.number >= number) {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number."
            ));
        }
        let invalid_part = || {
            s3_error!(
                InvalidPart,
                "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
            )
        };
        let part = stored.iter().find(|p| p.number == number).ok_or_else(invalid_part)?;
        if item.e_tag.as_ref().is_some_and(|etag| etag.value() != part.etag) {
            return Err(invalid_part());
        }
        if let Some(algorithm) = algorithm
            && let Some(value) = listed_checksum(item, algorithm)
            && part.checksum.as_deref() != Some(value)
        {
            return Err(s3_error!(InvalidPart, "The checksum of part {number} does not match the uploaded part."));
        }
        chosen.push(part.clone());
    }
    if let Some(small) = chosen[..chosen.len() - 1].iter().find(|p| p.size < MIN_PART_SIZE) {
        return Err(s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size. Part {} is {} bytes.",
            small.number,
            small.size
        ));
    }
    Ok(chosen)
}

/// The S3 multipart ETag: MD5 of the parts' binary MD5s, then `-N`.
fn multipart_etag(parts: &[PartRecord]) -> String {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(hex::decode(&part.etag).unwrap_or_default());
    }
    format!("{}-{}", hex::encode(md5.finalize()), parts.len())
}

/// The answer to a successful CompleteMultipartUpload.
fn completed_output(
    bucket: &str,
    key: &str,
    etag: String,
    checksum: Option<Checksum>,
) -> CompleteMultipartUploadOutput {
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(bucket.to_string()),
        key: Some(key.to_string()),
        e_tag: Some(ETag::Strong(etag)),
        location: Some(format!("/{bucket}/{key}")),
        ..Default::default()
    };
    if let Some(checksum) = checksum {
        output.checksum_type = Some(ChecksumType::from(checksum.kind.name().to_string()));
        checksum_fields!(output, checksum.algorithm, Some(checksum.value));
    }
    output
}

/// If `upload_id` already completed into `bucket`/`key` (and is still remembered), the same
/// answer again: a retried Complete (the SDKs retry one that timed out) must not fail.
async fn already_completed(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Option<CompleteMultipartUploadOutput>, Error> {
    let Some(done) = gw.index.completed_upload(upload_id).await? else { return Ok(None) };
    if done.bucket != bucket || done.key != key || gw.index.bucket(bucket).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(completed_output(bucket, key, done.etag, done.checksum)))
}

pub(super) async fn complete_multipart_upload(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let (bucket, key, upload_id) = (input.bucket.clone(), input.key.clone(), input.upload_id.clone());
    // Before anything else: a retry must not fail a condition its first attempt satisfied.
    if gw.index.upload(&bucket, &key, &upload_id).await?.is_none()
        && let Some(output) = already_completed(gw, &bucket, &key, &upload_id).await?
    {
        return Ok(S3Response::new(output));
    }
    let condition = write::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    if let Some(condition) = &condition {
        gw.index.check_condition(&bucket, &key, condition).await?;
    }
    let upload = require_upload(gw, &bucket, &key, &upload_id).await?;
    let listed = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    let stored = gw.index.parts(&upload_id, 0, usize::MAX).await?.0;
    let chosen = choose_parts(&listed, &stored, upload.checksum.map(|(a, _)| a))?;
    let size: u64 = chosen.iter().map(|p| p.size).sum();
    if input.mpu_object_size.is_some_and(|want| u64::try_from(want).ok() != Some(size)) {
        return Err(s3_error!(
            InvalidRequest,
            "The provided x-amz-mp-object-size header does not match the object size"
        ));
    }

    let checksum = match upload.checksum {
        Some((algorithm, kind)) => {
            let digests = chosen
                .iter()
                .map(|p| {
                    p.checksum.as_deref().map(|value| PartDigest { value, size: p.size }).ok_or_else(|| {
                        s3_error!(
                            InvalidRequest,
                            "Part {} was uploaded without a {} checksum",
                            p.number,
                            algorithm.name()
                        )
                    })
                })
                .collect::<S3Result<Vec<_>>>()?;
            let combined = checksum::combine(algorithm, kind, &digests)?;
            if let Some(claimed) = super::object::claimed_checksum(&req.headers, algorithm)
                && claimed.trim() != combined.value
            {
                return Err(Error::ChecksumMismatch(algorithm.name()).into());
            }
            Some(combined)
        }
        None => None,
    };

    let Some(bucket_record) = gw.index.bucket(&bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    // When the write started; the commit takes the version's order (`Index::stage_object`).
    let ts = gw.index.next_ts();
    let modified_ms = now_ms();
    let mut lock = upload.lock;
    if lock.retention.is_none() {
        lock.retention = default_retention(&bucket_record, modified_ms);
    }
    let etag = multipart_etag(&chosen);
    let meta = BlobMeta {
        headers: upload.headers.clone(),
        user_meta: upload.user_meta.clone(),
        tags: upload.tags.clone(),
        etag: Some(etag.clone()),
        checksum: checksum.clone(),
        lock: carried(lock),
        acl: upload.acl.clone(),
        ..BlobMeta::new(BlobKind::Manifest, &bucket, &key, ts, modified_ms)
    };
    let manifest = Manifest::of(&upload_id, &chosen).to_json();
    let manifest_len = manifest.len() as u64;
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(manifest)) });
    let stored_manifest = write::store(gw, &meta, Some(manifest_len), None, None, Box::pin(body)).await?;

    let record = ObjectRecord {
        ts,
        modified_ms,
        size,
        etag: etag.clone(),
        sha256: String::new(),
        headers: upload.headers,
        user_meta: upload.user_meta,
        tags: upload.tags,
        checksum: checksum.clone(),
        parts: chosen,
        blob: stored_manifest.blob,
        tags_blob: None,
        version: Version::Unversioned,
        lock,
        lock_blob: None,
        acl: upload.acl,
        acl_blob: None,
    };
    let entry = ObjectEntry::Live(Box::new(record));
    match gw.complete_upload(&bucket, &key, &upload_id, entry, condition).await {
        Ok(version_id) => Ok(S3Response::new(CompleteMultipartUploadOutput {
            version_id,
            ..completed_output(&bucket, &key, etag, checksum)
        })),
        // A concurrent attempt at the same Complete won the commit; this one answers like it
        // (its manifest blob, never committed, is an orphan for GC).
        Err(Error::NoSuchUpload) => match already_completed(gw, &bucket, &key, &upload_id).await? {
            Some(output) => Ok(S3Response::new(output)),
            None => Err(Error::NoSuchUpload.into()),
        },
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn abort_multipart_upload(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    require_upload(gw, &input.bucket, &input.key, &input.upload_id).await?;
    gw.index.abort_upload(&input.bucket, &input.key, &input.upload_id).await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

fn page_size(requested: Option<i32>) -> usize {
    requested.map_or(MAX_PAGE, |n| usize::try_from(n).unwrap_or(0).min(MAX_PAGE))
}

pub(super) async fn list_parts(gw: &Gateway, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let upload = require_upload(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let Some(bucket_record) = gw.index.bucket(&input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let (owner, initiator) = owner_and_initiator(&bucket_record);
    let after = input.part_number_marker.and_then(|m| u32::try_from(m).ok()).unwrap_or(0);
    let max = page_size(input.max_parts);
    let (parts, truncated) = gw.index.parts(&input.upload_id, after, max).await?;
    let algorithm = upload.checksum.map(|(a, _)| a);
    let next_marker = parts.last().map(|p| p.number as i32);
    let parts = parts
        .into_iter()
        .map(|p| {
            let mut part = Part {
                part_number: Some(p.number as i32),
                e_tag: Some(ETag::Strong(p.etag)),
                size: Some(p.size as i64),
                last_modified: Some(timestamp_from_ms(p.modified_ms)),
                ..Default::default()
            };
            if let Some(algorithm) = algorithm {
                checksum_fields!(part, algorithm, p.checksum);
            }
            part
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        parts: Some(parts),
        is_truncated: Some(truncated),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next_marker,
        owner: Some(owner),
        initiator: Some(initiator),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        checksum_algorithm: upload.checksum.map(|(a, _)| checksum_algorithm_dto(a)),
        checksum_type: upload.checksum.map(|(_, t)| ChecksumType::from(t.name().to_string())),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let Some(bucket_record) = gw.index.bucket(&input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let (owner, initiator) = owner_and_initiator(&bucket_record);
    let max = page_size(input.max_uploads);
    let prefix = input.prefix.clone().unwrap_or_default();
    let page = gw
        .index
        .list_uploads(
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            input.key_marker.as_deref(),
            input.upload_id_marker.as_deref(),
            max,
        )
        .await?;
    let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
    let encode = |s: &str| if url { super::list::url_encode(s) } else { s.to_string() };
    let (next_key_marker, next_upload_id_marker) = match page.uploads.last() {
        Some(last) if page.truncated => (Some(encode(&last.key)), Some(last.upload_id.clone())),
        _ => (None, None),
    };
    let uploads = page
        .uploads
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(encode(&u.key)),
            upload_id: Some(u.upload_id),
            initiated: Some(timestamp_from_ms(u.record.initiated_ms)),
            owner: Some(owner.clone()),
            initiator: Some(initiator.clone()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: u.record.checksum.map(|(a, _)| checksum_algorithm_dto(a)),
            checksum_type: u.record.checksum.map(|(_, t)| ChecksumType::from(t.name().to_string())),
        })
        .collect();
    let common_prefixes = page.prefixes.iter().map(|p| CommonPrefix { prefix: Some(encode(p)) }).collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix.map(|p| encode(&p)),
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker,
        next_upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(page.truncated),
        uploads: Some(uploads),
        common_prefixes: Some(common_prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// The owner and initiator an upload is shown with: the bucket's owner, who owns every object
/// in it (S3's "bucket owner enforced"); uploads do not record which key started them.
fn owner_and_initiator(bucket: &crate::index::records::BucketRecord) -> (Owner, Initiator) {
    let owner = crate::owner::bucket_owner(bucket);
    let initiator = Initiator { display_name: owner.display_name.clone(), id: owner.id.clone() };
    (owner, initiator)
}
