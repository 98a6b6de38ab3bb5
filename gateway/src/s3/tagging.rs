//! GetObjectTagging, PutObjectTagging, DeleteObjectTagging. Tags live in the object's index
//! record; a change rewrites the record in place (same version, same blobs).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::object::lookup;
use super::write::check_tags;

fn check_version(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        Some(v) if v != "null" => Err(s3_error!(NoSuchVersion, "The specified version does not exist.")),
        _ => Ok(()),
    }
}

pub(super) async fn get_object_tagging(
    gw: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    check_version(input.version_id.as_deref())?;
    let record = lookup(gw, &input.bucket, &input.key)?;
    let tag_set = record.tags.into_iter().map(|(key, value)| Tag { key: Some(key), value: Some(value) }).collect();
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set, version_id: None }))
}

async fn set_tags(gw: &Gateway, bucket: String, key: String, tags: Vec<(String, String)>) -> S3Result<()> {
    lookup(gw, &bucket, &key)?;
    gw.blocking(move |index| index.set_tags(&bucket, &key, tags)).await?;
    Ok(())
}

pub(super) async fn put_object_tagging(
    gw: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    check_version(input.version_id.as_deref())?;
    let tags: Vec<(String, String)> = input
        .tagging
        .tag_set
        .into_iter()
        .map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default()))
        .collect();
    check_tags(&tags)?;
    set_tags(gw, input.bucket, input.key, tags).await?;
    Ok(S3Response::new(PutObjectTaggingOutput::default()))
}

pub(super) async fn delete_object_tagging(
    gw: &Gateway,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    check_version(input.version_id.as_deref())?;
    set_tags(gw, input.bucket, input.key, Vec::new()).await?;
    Ok(S3Response::with_status(DeleteObjectTaggingOutput::default(), http::StatusCode::NO_CONTENT))
}
