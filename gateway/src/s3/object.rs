//! PutObject, GetObject, HeadObject, GetObjectAttributes, and what reading an object takes:
//! lookup, conditions, ranges and part numbers over single-blob and multipart objects.

use s3s::dto::*;
use s3s::stream::ByteStream as _;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::conditions::{check_read, read_preconditions};
use super::lock::{carried, lock_headers, lock_output};
use super::write;
use crate::blob_meta::{BlobKind, BlobMeta};
use crate::checksum::{Algorithm, Checksum, Expected};
use crate::error::Error;
use crate::index::records::{BlobRef, ObjectEntry, ObjectRecord, Version};
use crate::replicated::{self, ReadFor, Segment, Source};
use crate::time::{now_ms, parse_http_date, timestamp_from_ms};

/// Sets the `checksum_<algorithm>` field of an S3 output (every output that carries
/// checksums names the fields alike).
macro_rules! checksum_fields {
    ($output:expr, $algorithm:expr, $value:expr) => {{
        let value: Option<String> = $value;
        match $algorithm {
            $crate::checksum::Algorithm::Crc32 => $output.checksum_crc32 = value,
            $crate::checksum::Algorithm::Crc32c => $output.checksum_crc32c = value,
            $crate::checksum::Algorithm::Crc64Nvme => $output.checksum_crc64nvme = value,
            $crate::checksum::Algorithm::Sha1 => $output.checksum_sha1 = value,
            $crate::checksum::Algorithm::Sha256 => $output.checksum_sha256 = value,
        }
    }};
}
pub(super) use checksum_fields;

/// The DTO for an algorithm.
pub(super) fn checksum_algorithm_dto(algorithm: Algorithm) -> ChecksumAlgorithm {
    ChecksumAlgorithm::from(algorithm.name().to_string())
}

/// The algorithm a DTO names.
pub(super) fn algorithm_from_dto(algorithm: &ChecksumAlgorithm) -> S3Result<Algorithm> {
    Algorithm::parse(algorithm.as_str())
        .ok_or_else(|| s3_error!(InvalidRequest, "Invalid checksum algorithm: {}", algorithm.as_str()))
}

/// The value of an `x-amz-checksum-<algorithm>` request header.
pub(super) fn claimed_checksum(headers: &http::HeaderMap, algorithm: Algorithm) -> Option<String> {
    headers.get(algorithm.header()).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Cairn stores everything one way; STANDARD is the only class it can honestly report.
pub(super) fn check_storage_class(class: Option<&StorageClass>) -> S3Result<()> {
    match class.map(StorageClass::as_str) {
        None | Some(StorageClass::STANDARD) => Ok(()),
        Some(other) => Err(s3_error!(InvalidStorageClass, "The storage class you specified is not valid: {other}")),
    }
}

/// The system headers a write input (PutObject, CreateMultipartUpload, CopyObject) sets.
macro_rules! system_headers {
    ($input:expr) => {
        $crate::index::records::SystemHeaders {
            content_type: $input.content_type,
            content_encoding: $input.content_encoding,
            content_disposition: $input.content_disposition,
            content_language: $input.content_language,
            cache_control: $input.cache_control,
            expires: $input.expires.as_ref().and_then($crate::time::http_date),
        }
    };
}
pub(super) use system_headers;

/// A request body, or an empty one.
pub(super) fn body_or_empty(body: Option<StreamingBlob>) -> StreamingBlob {
    body.unwrap_or_else(|| StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>()))
}

pub(super) async fn put_object(gw: &Gateway, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let mut input = req.input;
    let (bucket, key) = (input.bucket, input.key);
    let Some(bucket_record) = gw.index.bucket(&bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    check_storage_class(input.storage_class.as_ref())?;
    let lock_headers = lock_headers!(input);
    let lock = lock_headers.lock_for(&bucket_record, now_ms())?;
    let acl = super::acl::new_object_acl(&req.headers, &req.extensions, &bucket_record)?;
    let condition = write::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    if let Some(condition) = &condition {
        gw.index.check_condition(&bucket, &key, condition).await?;
    }
    let content_md5 = write::content_md5(input.content_md5.as_deref())?;
    let expected = Expected::from_request(&req.headers, req.trailing_headers.as_ref(), None)?;
    if lock_headers.any() && content_md5.is_none() && expected.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"
        ));
    }
    let algorithm = expected.as_ref().map(|e| e.algorithm);
    let body = body_or_empty(input.body);
    let size = body.remaining_length().exact().map(|n| n as u64);

    // When the write started; the commit takes the version's order (`Index::stage_object`).
    let ts = gw.index.next_ts();
    let modified_ms = now_ms();
    let meta = BlobMeta {
        headers: system_headers!(input),
        user_meta: write::user_meta(input.metadata)?,
        tags: write::tagging_header(input.tagging.as_deref())?,
        lock: carried(lock),
        acl,
        ..BlobMeta::new(BlobKind::Object, &bucket, &key, ts, modified_ms)
    };
    let stored = write::store(gw, &meta, size, content_md5, expected, body).await?;
    let record = stored.record(meta, algorithm);
    let (etag, checksum) = (record.etag.clone(), record.checksum.clone());
    let entry = ObjectEntry::Live(Box::new(record));
    let version_id = gw.commit_object(&bucket, &key, entry, condition).await?;
    tracing::debug!(size = stored.size, %etag, "object stored");
    let mut output = PutObjectOutput { e_tag: Some(ETag::Strong(etag)), version_id, ..Default::default() };
    if let Some(checksum) = checksum {
        output.checksum_type = Some(ChecksumType::from(checksum.kind.name().to_string()));
        checksum_fields!(output, checksum.algorithm, Some(checksum.value));
    }
    Ok(S3Response::new(output))
}

/// The version of `bucket`/`key` a request names (`versionId`; the current one without it),
/// with the version id to answer with in `x-amz-version-id` (none for an object of a bucket
/// that never had versioning). A delete marker is no object: `NoSuchKey` when it is current,
/// `MethodNotAllowed` when asked for by id, either with `x-amz-delete-marker: true`.
pub(super) async fn lookup_version(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<(ObjectRecord, Option<String>)> {
    let entry = match version_id {
        None => gw.index.object_entry(bucket, key).await?,
        Some(wanted) => match gw.index.object_version(bucket, key, check_version_id(wanted)?).await? {
            Some(entry) => Some(entry),
            None if gw.index.bucket(bucket).await?.is_none() => return Err(Error::NoSuchBucket.into()),
            None => return Err(s3_error!(NoSuchVersion, "The specified version does not exist.")),
        },
    };
    let marker_headers = |entry: &ObjectEntry| {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
        if let Some(id) = version_id_of(entry).and_then(|id| http::HeaderValue::from_str(&id).ok()) {
            headers.insert("x-amz-version-id", id);
        }
        headers
    };
    let reported = match (version_id, &entry) {
        (Some(asked), _) => Some(asked.to_string()),
        (None, entry) => entry.as_ref().and_then(version_id_of),
    };
    match entry {
        Some(ObjectEntry::Live(record)) => Ok((*record, reported)),
        Some(marker) if version_id.is_some() => {
            let mut err = s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource.");
            let mut headers = marker_headers(&marker);
            let date = crate::time::http_date(&timestamp_from_ms(marker.ts() / 1000));
            if let Some(date) = date.and_then(|d| http::HeaderValue::from_str(&d).ok()) {
                headers.insert(http::header::LAST_MODIFIED, date);
            }
            err.set_headers(headers);
            Err(err)
        }
        Some(marker) if version_id_of(&marker).is_some() => {
            let mut err = s3s::S3Error::from(Error::NoSuchKey);
            err.set_headers(marker_headers(&marker));
            Err(err)
        }
        // No such key, or no such bucket: only the bucket is left to read.
        _ if gw.index.bucket(bucket).await?.is_none() => Err(Error::NoSuchBucket.into()),
        _ => Err(Error::NoSuchKey.into()),
    }
}

/// The id `x-amz-version-id` gives `entry`: none for what a bucket that never had versioning
/// wrote.
pub(super) fn version_id_of(entry: &ObjectEntry) -> Option<String> {
    (entry.version() != Version::Unversioned).then(|| crate::index::version_id(entry)).flatten()
}

/// A `versionId` as given, unless empty (S3's error for that).
pub(super) fn check_version_id(version_id: &str) -> S3Result<&str> {
    match version_id {
        "" => Err(s3_error!(InvalidArgument, "Version id cannot be the empty string")),
        id => Ok(id),
    }
}

/// Streams `[start, end)` of object `bucket`/`key` (its `record`): from its blob, or part by
/// part for a multipart object.
pub(super) async fn open_object(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    start: u64,
    end: u64,
) -> Result<tokio_stream::wrappers::ReceiverStream<crate::Result<bytes::Bytes>>, Error> {
    let mut segments = Vec::new();
    if record.parts.is_empty() {
        segments.push(Segment { sources: sources(gw, &record.blob), blob_id: record.blob.id.clone(), start, end });
    } else {
        let mut offset = 0u64;
        for part in &record.parts {
            let (part_start, part_end) = (offset, offset + part.size);
            offset = part_end;
            if part_end <= start || part_start >= end || part.size == 0 {
                continue;
            }
            let (from, to) = (start.max(part_start) - part_start, end.min(part_end) - part_start);
            segments.push(Segment {
                sources: sources(gw, &part.blob),
                blob_id: part.blob.id.clone(),
                start: from,
                end: to,
            });
        }
    }
    let owner = ReadFor { bucket: bucket.to_string(), key: key.to_string(), reports: gw.damage.clone() };
    replicated::read(&gw.volumes, segments, owner).await
}

/// The replicas of a blob with their current URLs: those on volumes that are up first, in
/// random order to spread reads, then the others (health may be stale; they are still worth
/// a try if every other fails).
fn sources(gw: &Gateway, blob: &BlobRef) -> Vec<Source> {
    use rand::seq::SliceRandom as _;
    let mut sources: Vec<Source> = blob
        .replicas
        .iter()
        .filter_map(|replica| Some(Source { url: gw.cluster.url_of(&replica.volume)?, replica: replica.clone() }))
        .collect();
    sources.shuffle(&mut rand::rng());
    let health = gw.volumes.health();
    sources.sort_by_key(|source| !health.is_up(&source.url));
    sources
}

fn metadata(record: &ObjectRecord) -> Option<Metadata> {
    (!record.user_meta.is_empty()).then(|| record.user_meta.iter().cloned().collect())
}

/// What a GET or HEAD answers: the byte span and the headers that depend on it.
struct ReadPlan {
    start: u64,
    end: u64,
    content_range: Option<String>,
    parts_count: Option<i32>,
    /// Returned only for whole-object reads with `x-amz-checksum-mode: ENABLED`.
    checksum: Option<Checksum>,
}

fn invalid_part_number() -> s3s::S3Error {
    let mut err = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
        "The requested partnumber is not satisfiable",
    );
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    err
}

fn plan_read(
    record: &ObjectRecord,
    range: Option<&Range>,
    part_number: Option<i32>,
    checksum_mode: Option<&ChecksumMode>,
) -> S3Result<ReadPlan> {
    let content_range = |start: u64, end: u64| format!("bytes {}-{}/{}", start, end.saturating_sub(1), record.size);
    let (start, end, content_range, parts_count) = match (range, part_number) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        (Some(range), None) => {
            let span = range
                .check(record.size)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            (span.start, span.end, Some(content_range(span.start, span.end)), None)
        }
        (None, Some(n)) if record.parts.is_empty() => match n {
            1 => (0, record.size, None, None),
            _ => return Err(invalid_part_number()),
        },
        (None, Some(n)) => {
            let index = usize::try_from(n)
                .ok()
                .filter(|i| (1..=record.parts.len()).contains(i))
                .ok_or_else(invalid_part_number)?;
            let start: u64 = record.parts[..index - 1].iter().map(|p| p.size).sum();
            let end = start + record.parts[index - 1].size;
            (start, end, Some(content_range(start, end)), Some(record.parts.len() as i32))
        }
        (None, None) => (0, record.size, None, None),
    };
    let enabled = checksum_mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
    let whole = start == 0 && end == record.size && part_number.is_none();
    let checksum = record.checksum.clone().filter(|_| enabled && whole);
    Ok(ReadPlan { start, end, content_range, parts_count, checksum })
}

/// GetObjectOutput and HeadObjectOutput share every header field but are distinct types:
/// this fills the shared ones from the record and the read plan.
macro_rules! object_output {
    ($output:ident, $record:expr, $plan:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let record: &ObjectRecord = &$record;
        let plan: ReadPlan = $plan;
        let h = &record.headers;
        let mut output = $output {
            $($field: $value,)*
            content_length: Some(i64::try_from(plan.end - plan.start).unwrap_or(i64::MAX)),
            content_range: plan.content_range,
            parts_count: plan.parts_count,
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
        };
        (output.object_lock_mode, output.object_lock_retain_until_date, output.object_lock_legal_hold_status) =
            lock_output(&record.lock);
        if let Some(checksum) = plan.checksum {
            output.checksum_type = Some(ChecksumType::from(checksum.kind.name().to_string()));
            checksum_fields!(output, checksum.algorithm, Some(checksum.value));
        }
        output
    }};
}

pub(super) async fn get_object(gw: &Gateway, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let (record, version_id) = lookup_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    check_read(&record, &read_preconditions!(input))?;
    let plan = plan_read(&record, input.range.as_ref(), input.part_number, input.checksum_mode.as_ref())?;
    let stream = open_object(gw, &input.bucket, &input.key, &record, plan.start, plan.end).await?;
    let body = Some(StreamingBlob::wrap(stream));
    let mut output = object_output!(GetObjectOutput, record, plan, { body: body, version_id: version_id });
    // Presigned URLs may ask for different response headers.
    if input.response_content_type.is_some() {
        output.content_type = input.response_content_type;
    }
    if input.response_content_disposition.is_some() {
        output.content_disposition = input.response_content_disposition;
    }
    if input.response_content_encoding.is_some() {
        output.content_encoding = input.response_content_encoding;
    }
    if input.response_content_language.is_some() {
        output.content_language = input.response_content_language;
    }
    if input.response_cache_control.is_some() {
        output.cache_control = input.response_cache_control;
    }
    if input.response_expires.is_some() {
        output.expires = input.response_expires;
    }
    output.tag_count = tag_count(&record);
    Ok(S3Response::new(output))
}

/// `x-amz-tagging-count`: sent when the object has tags.
fn tag_count(record: &ObjectRecord) -> Option<i32> {
    (!record.tags.is_empty()).then(|| i32::try_from(record.tags.len()).unwrap_or(i32::MAX))
}

pub(super) async fn head_object(
    gw: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let (record, version_id) = lookup_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    check_read(&record, &read_preconditions!(input))?;
    let plan = plan_read(&record, input.range.as_ref(), input.part_number, input.checksum_mode.as_ref())?;
    let output = object_output!(HeadObjectOutput, record, plan, { version_id: version_id });
    let mut response = S3Response::new(output);
    // S3 sends it on HEAD as on GET, though its model (and so s3s's output) only has it on GET.
    if let Some(count) = tag_count(&record) {
        response.headers.insert(http::HeaderName::from_static("x-amz-tagging-count"), http::HeaderValue::from(count));
    }
    Ok(response)
}

pub(super) async fn get_object_attributes(
    gw: &Gateway,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    let (record, version_id) = lookup_version(gw, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    // One header value may name several, comma-separated (boto3 and the CLI send them so);
    // s3s takes each header value as one.
    let wants =
        |name: &str| input.object_attributes.iter().flat_map(|a| a.as_str().split(',')).any(|a| a.trim() == name);
    let mut output = GetObjectAttributesOutput {
        last_modified: Some(timestamp_from_ms(record.modified_ms)),
        version_id,
        ..Default::default()
    };
    if wants(ObjectAttributes::ETAG) {
        output.e_tag = Some(ETag::Strong(record.etag.clone()));
    }
    if wants(ObjectAttributes::OBJECT_SIZE) {
        output.object_size = Some(i64::try_from(record.size).unwrap_or(i64::MAX));
    }
    if wants(ObjectAttributes::STORAGE_CLASS) {
        output.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
    }
    if wants(ObjectAttributes::CHECKSUM)
        && let Some(checksum) = &record.checksum
    {
        let mut dto = s3s::dto::Checksum {
            checksum_type: Some(ChecksumType::from(checksum.kind.name().to_string())),
            ..Default::default()
        };
        checksum_fields!(dto, checksum.algorithm, Some(checksum.value.clone()));
        output.checksum = Some(dto);
    }
    if wants(ObjectAttributes::OBJECT_PARTS) && !record.parts.is_empty() {
        let after = input.part_number_marker.and_then(|m| u32::try_from(m).ok()).unwrap_or(0);
        let max = input.max_parts.map_or(1000, |m| usize::try_from(m).unwrap_or(0).min(1000));
        let remaining: Vec<_> = record.parts.iter().filter(|p| p.number > after).collect();
        let page = &remaining[..remaining.len().min(max)];
        let algorithm = record.checksum.as_ref().map(|c| c.algorithm);
        let parts = page
            .iter()
            .map(|p| {
                let mut part = ObjectPart {
                    part_number: Some(p.number as i32),
                    size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                    ..Default::default()
                };
                if let Some(algorithm) = algorithm {
                    checksum_fields!(part, algorithm, p.checksum.clone());
                }
                part
            })
            .collect();
        output.object_parts = Some(GetObjectAttributesParts {
            total_parts_count: Some(record.parts.len() as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: page.last().map(|p| p.number as i32),
            max_parts: Some(max as i32),
            is_truncated: Some(remaining.len() > page.len()),
            parts: Some(parts),
        });
    }
    Ok(S3Response::new(output))
}
