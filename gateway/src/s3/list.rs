//! ListObjects (v1), ListObjectsV2 and ListObjectVersions over the index's ordered scans:
//! listings of objects read current entries only; listings of versions add each key's
//! noncurrent versions from the `versions` table.

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::error::Error;
use crate::index::records::ObjectEntry;
use crate::index::{ListItem, ListPage};
use crate::time::timestamp_from_ms;

const DEFAULT_MAX_KEYS: i32 = 1000;

/// `encoding-type=url` escapes everything but unreserved characters and `/`; spaces become
/// `%20` (never `+`) so every client's decoder reads the key back exactly.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// Escapes a key for `encoding-type=url`.
pub(super) fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, KEY_ESCAPE).to_string()
}

struct Listing {
    page: ListPage,
    max_keys: i32,
    url_encode: bool,
    /// The bucket, whose ownership says who owns its objects.
    bucket: crate::index::records::BucketRecord,
}

impl Listing {
    fn encode(&self, s: &str) -> String {
        if self.url_encode { url_encode(s) } else { s.to_string() }
    }

    fn contents(&self, owner: bool) -> Vec<Object> {
        self.page
            .items
            .iter()
            .filter_map(|item| match item {
                ListItem::Object(key, record) => Some(Object {
                    key: Some(self.encode(key)),
                    size: Some(i64::try_from(record.size).unwrap_or(i64::MAX)),
                    e_tag: Some(ETag::Strong(record.etag.clone())),
                    last_modified: Some(timestamp_from_ms(record.modified_ms)),
                    storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                    owner: owner.then(|| crate::acl::object_owner(record.acl.as_ref(), &self.bucket)),
                    ..Default::default()
                }),
                ListItem::Prefix(_) | ListItem::Marker(..) => None,
            })
            .collect()
    }

    fn common_prefixes(&self) -> Vec<CommonPrefix> {
        self.page
            .items
            .iter()
            .filter_map(|item| match item {
                ListItem::Prefix(prefix) => Some(CommonPrefix { prefix: Some(self.encode(prefix)) }),
                ListItem::Object(..) | ListItem::Marker(..) => None,
            })
            .collect()
    }

    /// The last item returned: where the next page starts (exclusive).
    fn last(&self) -> Option<&str> {
        self.page.items.last().map(|item| match item {
            ListItem::Object(key, _) | ListItem::Marker(key, _) => key.as_str(),
            ListItem::Prefix(prefix) => prefix.as_str(),
        })
    }
}

async fn list(
    gw: &Gateway,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max_keys: Option<i32>,
    encoding: Option<&EncodingType>,
) -> S3Result<Listing> {
    let (max_keys, url_encode) = listing_options(max_keys, encoding)?;
    let Some(bucket_record) = gw.index.bucket(bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let max = usize::try_from(max_keys).unwrap_or(0);
    let mut page = gw.index.list_objects(bucket, prefix, delimiter, after, max).await?;
    // Asked for no keys, S3 says the listing is not truncated, whatever the bucket holds.
    if max == 0 {
        page.truncated = false;
    }
    Ok(Listing { page, max_keys, url_encode, bucket: bucket_record })
}

/// `max-keys` (capped at 1000) and whether keys are URL-encoded, as a listing asks for them.
fn listing_options(max_keys: Option<i32>, encoding: Option<&EncodingType>) -> S3Result<(i32, bool)> {
    let max_keys = max_keys.unwrap_or(DEFAULT_MAX_KEYS);
    if max_keys < 0 {
        return Err(s3_error!(InvalidArgument, "max-keys cannot be negative"));
    }
    let url_encode = match encoding.map(EncodingType::as_str) {
        None => false,
        Some(EncodingType::URL) => true,
        Some(other) => return Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {other}")),
    };
    Ok((max_keys.min(DEFAULT_MAX_KEYS), url_encode))
}

pub(super) async fn list_objects(
    gw: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
    let listing = list(
        gw,
        &input.bucket,
        &prefix,
        delimiter,
        input.marker.as_deref(),
        input.max_keys,
        input.encoding_type.as_ref(),
    )
    .await?;
    // S3 sends NextMarker only when a delimiter is given; clients use the last key otherwise.
    let next_marker =
        (listing.page.truncated && delimiter.is_some()).then(|| listing.last().map(|m| listing.encode(m))).flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(listing.encode(&prefix)),
        marker: Some(input.marker.as_deref().map(|m| listing.encode(m)).unwrap_or_default()),
        // An empty delimiter is no delimiter, and S3 does not echo it.
        delimiter: delimiter.map(|d| listing.encode(d)),
        max_keys: Some(listing.max_keys),
        is_truncated: Some(listing.page.truncated),
        contents: Some(listing.contents(true)),
        common_prefixes: Some(listing.common_prefixes()),
        next_marker,
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
    let after = match &input.continuation_token {
        Some(token) => Some(decode_token(token)?),
        None => input.start_after.clone(),
    };
    let listing =
        list(gw, &input.bucket, &prefix, delimiter, after.as_deref(), input.max_keys, input.encoding_type.as_ref())
            .await?;
    let next_token = if listing.page.truncated { listing.last().map(encode_token) } else { None };
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(listing.encode(&prefix)),
        // An empty delimiter is no delimiter, and S3 does not echo it.
        delimiter: delimiter.map(|d| listing.encode(d)),
        max_keys: Some(listing.max_keys),
        key_count: Some(i32::try_from(listing.page.items.len()).unwrap_or(i32::MAX)),
        is_truncated: Some(listing.page.truncated),
        contents: Some(listing.contents(input.fetch_owner.unwrap_or(false))),
        common_prefixes: Some(listing.common_prefixes()),
        continuation_token: input.continuation_token,
        next_continuation_token: next_token,
        start_after: input.start_after.as_deref().map(|s| listing.encode(s)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(super) async fn list_object_versions(
    gw: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
    let key_marker = input.key_marker.as_deref().filter(|m| !m.is_empty());
    let version_marker = input.version_id_marker.as_deref().filter(|m| !m.is_empty());
    if version_marker.is_some() && key_marker.is_none() {
        return Err(s3_error!(InvalidArgument, "A version-id marker cannot be specified without a key marker."));
    }
    let (max_keys, url_encode) = listing_options(input.max_keys, input.encoding_type.as_ref())?;
    let Some(bucket_record) = gw.index.bucket(&input.bucket).await? else { return Err(Error::NoSuchBucket.into()) };
    let max = usize::try_from(max_keys).unwrap_or(0);
    let page = gw.index.list_versions(&input.bucket, &prefix, delimiter, (key_marker, version_marker), max).await?;
    let encode = |s: &str| if url_encode { self::url_encode(s) } else { s.to_string() };
    let (mut versions, mut delete_markers, mut common_prefixes) = (Vec::new(), Vec::new(), Vec::new());
    for item in &page.items {
        let item = match item {
            Ok(item) => item,
            Err(prefix) => {
                common_prefixes.push(CommonPrefix { prefix: Some(encode(prefix)) });
                continue;
            }
        };
        let version_id = crate::index::version_id(&item.entry);
        match &item.entry {
            ObjectEntry::Live(record) => versions.push(ObjectVersion {
                key: Some(encode(&item.key)),
                version_id,
                is_latest: Some(item.latest),
                size: Some(i64::try_from(record.size).unwrap_or(i64::MAX)),
                e_tag: Some(ETag::Strong(record.etag.clone())),
                last_modified: Some(timestamp_from_ms(record.modified_ms)),
                owner: Some(crate::acl::object_owner(record.acl.as_ref(), &bucket_record)),
                storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                ..Default::default()
            }),
            ObjectEntry::Deleted { ts, .. } => delete_markers.push(DeleteMarkerEntry {
                key: Some(encode(&item.key)),
                version_id,
                is_latest: Some(item.latest),
                // The commit order is wall-clock microseconds.
                last_modified: Some(timestamp_from_ms(ts / 1000)),
                owner: Some(crate::owner::bucket_owner(&bucket_record)),
            }),
        }
    }
    let (next_key_marker, next_version_id_marker) = match page.items.last().filter(|_| page.truncated) {
        Some(Ok(item)) => (Some(encode(&item.key)), crate::index::version_id(&item.entry)),
        Some(Err(prefix)) => (Some(encode(prefix)), None),
        None => (None, None),
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(encode(&prefix)),
        // An empty delimiter is no delimiter, and S3 does not echo it.
        delimiter: delimiter.map(encode),
        key_marker: Some(input.key_marker.as_deref().map(encode).unwrap_or_default()),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(max_keys),
        is_truncated: Some(page.truncated),
        versions: Some(versions),
        delete_markers: Some(delete_markers),
        common_prefixes: Some(common_prefixes),
        next_key_marker,
        next_version_id_marker,
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

fn encode_token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_any_key() {
        for key in ["", "a b+c%/ü/..//x", "日本"] {
            assert_eq!(decode_token(&encode_token(key)).unwrap(), key);
        }
        assert!(decode_token("***").is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(utf8_percent_encode("a b+c/ü~", KEY_ESCAPE).to_string(), "a%20b%2Bc/%C3%BC~");
    }
}
