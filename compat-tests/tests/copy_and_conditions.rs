//! CopyObject (directives, onto itself, copy-source conditions), conditional reads and
//! conditional writes (including eight writers racing), tagging, and the versioning calls
//! tools make on unversioned buckets — all with aws-sdk-s3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{MetadataDirective, ObjectAttributes, Tag, Tagging, TaggingDirective};
use compat_tests::{TestCluster, test_bytes};

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(err: &aws_sdk_s3::error::SdkError<E>) -> String {
    err.as_service_error().and_then(|e| e.code()).unwrap_or("<no code>").to_string()
}

fn status<E>(err: &aws_sdk_s3::error::SdkError<E>) -> u16 {
    err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_object_directives_and_source_conditions() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    for bucket in ["bkt", "other"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let data = test_bytes(3 * 1024 * 1024 + 7, 9);
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("src")
        .content_type("text/plain")
        .cache_control("max-age=60")
        .metadata("color", "blue")
        .tagging("team=storage")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let src_etag = put.e_tag().unwrap().to_string();

    // COPY (the default) keeps metadata and system headers; across buckets too.
    let copied = s3.copy_object().bucket("other").key("copy").copy_source("bkt/src").send().await.unwrap();
    assert_eq!(copied.copy_object_result().unwrap().e_tag(), Some(src_etag.as_str()));
    let head = s3.head_object().bucket("other").key("copy").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.metadata().unwrap().get("color").map(String::as_str), Some("blue"));
    let got = s3.get_object().bucket("other").key("copy").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes() == data);
    let tags = s3.get_object_tagging().bucket("other").key("copy").send().await.unwrap();
    assert_eq!(tags.tag_set().len(), 1);

    // REPLACE replaces user metadata and the system headers.
    s3.copy_object()
        .bucket("bkt")
        .key("replaced")
        .copy_source("bkt/src")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("shape", "round")
        .tagging_directive(TaggingDirective::Replace)
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("bkt").key("replaced").send().await.unwrap();
    assert_eq!(head.content_type(), Some("application/json"));
    assert_eq!(head.cache_control(), None);
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("shape").map(String::as_str), Some("round"));
    assert!(!meta.contains_key("color"));
    assert!(s3.get_object_tagging().bucket("bkt").key("replaced").send().await.unwrap().tag_set().is_empty());

    // Onto itself: only with REPLACE (rclone's way of changing a modtime).
    let err = s3.copy_object().bucket("bkt").key("src").copy_source("bkt/src").send().await.unwrap_err();
    assert_eq!(code(&err), "InvalidRequest");
    s3.copy_object()
        .bucket("bkt")
        .key("src")
        .copy_source("bkt/src")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("mtime", "1700000000.5")
        .content_type("text/plain")
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("bkt").key("src").send().await.unwrap();
    assert_eq!(head.metadata().unwrap().get("mtime").map(String::as_str), Some("1700000000.5"));
    assert_eq!(head.e_tag(), Some(src_etag.as_str()), "same bytes, same ETag");

    // Copy-source conditions fail with 412.
    let err = s3
        .copy_object()
        .bucket("bkt")
        .key("never")
        .copy_source("bkt/src")
        .copy_source_if_match("\"0123\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&err), status(&err)), ("PreconditionFailed".into(), 412));
    let err = s3
        .copy_object()
        .bucket("bkt")
        .key("never")
        .copy_source("bkt/src")
        .copy_source_if_none_match(&src_etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 412);
    let future = DateTime::from_secs(4_000_000_000);
    let err = s3
        .copy_object()
        .bucket("bkt")
        .key("never")
        .copy_source("bkt/src")
        .copy_source_if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 412);
    s3.copy_object()
        .bucket("bkt")
        .key("kept")
        .copy_source("bkt/src")
        .copy_source_if_match(&src_etag)
        .copy_source_if_unmodified_since(future)
        .send()
        .await
        .unwrap();
    let err = s3.head_object().bucket("bkt").key("never").send().await.unwrap_err();
    assert_eq!(status(&err), 404);
    let err = s3.copy_object().bucket("bkt").key("x").copy_source("bkt/missing").send().await.unwrap_err();
    assert_eq!(code(&err), "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_reads_follow_rfc_9110() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let etag = s3.put_object().bucket("bkt").key("k").body(b"hello".to_vec().into()).send().await.unwrap();
    let etag = etag.e_tag().unwrap().to_string();
    let (past, future) = (DateTime::from_secs(1_000_000_000), DateTime::from_secs(4_000_000_000));

    let get = || s3.get_object().bucket("bkt").key("k");
    assert!(get().if_match(&etag).send().await.is_ok());
    assert_eq!(status(&get().if_match("\"nope\"").send().await.unwrap_err()), 412);
    assert_eq!(status(&get().if_none_match(&etag).send().await.unwrap_err()), 304);
    assert!(get().if_none_match("\"nope\"").send().await.is_ok());
    assert_eq!(status(&get().if_modified_since(future).send().await.unwrap_err()), 304);
    assert!(get().if_modified_since(past).send().await.is_ok());
    assert_eq!(status(&get().if_unmodified_since(past).send().await.unwrap_err()), 412);
    assert!(get().if_unmodified_since(future).send().await.is_ok());
    // If-Match true overrides a failing If-Unmodified-Since; If-None-Match false overrides If-Modified-Since.
    assert!(get().if_match(&etag).if_unmodified_since(past).send().await.is_ok());
    assert!(get().if_none_match("\"nope\"").if_modified_since(future).send().await.is_ok());
    let head = s3.head_object().bucket("bkt").key("k").if_none_match(&etag).send().await.unwrap_err();
    assert_eq!(status(&head), 304);
    let head = s3.head_object().bucket("bkt").key("k").if_match("\"nope\"").send().await.unwrap_err();
    assert_eq!(status(&head), 412);
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_writes_let_exactly_one_racer_win() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let s3 = s3.clone();
        tasks.push(tokio::spawn(async move {
            let body = test_bytes(256 * 1024, 100 + i);
            let result =
                s3.put_object().bucket("bkt").key("race").if_none_match("*").body(body.clone().into()).send().await;
            (result.map(|_| ()).map_err(|e| (code(&e), status(&e))), body)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (result, body) = task.await.unwrap();
        match result {
            Ok(()) => winners.push(body),
            Err((code, status)) => assert_eq!((code.as_str(), status), ("PreconditionFailed", 412)),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one conditional create wins");
    let stored = s3.get_object().bucket("bkt").key("race").send().await.unwrap();
    assert!(stored.body.collect().await.unwrap().into_bytes() == winners[0], "the winner's bytes are stored");

    // If-Match: only against the current ETag.
    let current = s3.head_object().bucket("bkt").key("race").send().await.unwrap().e_tag().unwrap().to_string();
    let err = s3.put_object().bucket("bkt").key("race").if_match("\"0000\"").body(b"x".to_vec().into()).send().await;
    assert_eq!(status(&err.unwrap_err()), 412);
    let err = s3.put_object().bucket("bkt").key("absent").if_match(&current).body(b"x".to_vec().into()).send().await;
    assert_eq!(status(&err.unwrap_err()), 404, "If-Match on a missing key is NoSuchKey");
    s3.put_object().bucket("bkt").key("race").if_match(&current).body(b"next".to_vec().into()).send().await.unwrap();
    let stored = s3.get_object().bucket("bkt").key("race").send().await.unwrap();
    assert_eq!(&stored.body.collect().await.unwrap().into_bytes()[..], b"next");

    // CompleteMultipartUpload honours If-None-Match too.
    let created = s3.create_multipart_upload().bucket("bkt").key("race").send().await.unwrap();
    let id = created.upload_id().unwrap();
    let part = s3.upload_part().bucket("bkt").key("race").upload_id(id).part_number(1).body(b"p".to_vec().into());
    let etag = part.send().await.unwrap().e_tag().unwrap().to_string();
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(etag).build())
        .build();
    let err = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("race")
        .upload_id(id)
        .if_none_match("*")
        .multipart_upload(parts)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 412);
    let stored = s3.get_object().bucket("bkt").key("race").send().await.unwrap();
    assert_eq!(&stored.body.collect().await.unwrap().into_bytes()[..], b"next", "a lost race never overwrites");
}

#[tokio::test(flavor = "multi_thread")]
async fn tagging_versioning_attributes_and_storage_class() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    s3.put_object()
        .bucket("bkt")
        .key("k")
        .tagging("a=1&b=two%20words")
        .storage_class(aws_sdk_s3::types::StorageClass::Standard)
        .body(b"data".to_vec().into())
        .send()
        .await
        .unwrap();
    let tags = s3.get_object_tagging().bucket("bkt").key("k").send().await.unwrap();
    let mut pairs: Vec<(String, String)> = tags.tag_set().iter().map(|t| (t.key().into(), t.value().into())).collect();
    pairs.sort();
    assert_eq!(pairs, [("a".into(), "1".into()), ("b".into(), "two words".into())]);
    let tagging = Tagging::builder().tag_set(Tag::builder().key("x").value("y").build().unwrap()).build().unwrap();
    s3.put_object_tagging().bucket("bkt").key("k").tagging(tagging).send().await.unwrap();
    let tags = s3.get_object_tagging().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(tags.tag_set().len(), 1);
    assert_eq!(tags.tag_set()[0].key(), "x");
    s3.delete_object_tagging().bucket("bkt").key("k").send().await.unwrap();
    assert!(s3.get_object_tagging().bucket("bkt").key("k").send().await.unwrap().tag_set().is_empty());
    let err = s3.get_object_tagging().bucket("bkt").key("missing").send().await.unwrap_err();
    assert_eq!(code(&err), "NoSuchKey");

    let err = s3
        .put_object()
        .bucket("bkt")
        .key("glacier")
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidStorageClass");

    let versioning = s3.get_bucket_versioning().bucket("bkt").send().await.unwrap();
    assert!(versioning.status().is_none(), "never versioned");
    s3.put_object().bucket("bkt").key("k2").body(b"more".to_vec().into()).send().await.unwrap();
    let versions = s3.list_object_versions().bucket("bkt").send().await.unwrap();
    let listed: Vec<(&str, &str, bool)> = versions
        .versions()
        .iter()
        .map(|v| (v.key().unwrap(), v.version_id().unwrap(), v.is_latest().unwrap()))
        .collect();
    assert_eq!(listed, [("k", "null", true), ("k2", "null", true)]);
    assert!(versions.delete_markers().is_empty());

    let attributes = s3
        .get_object_attributes()
        .bucket("bkt")
        .key("k2")
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::StorageClass)
        .send()
        .await
        .unwrap();
    assert_eq!(attributes.object_size(), Some(4));
    assert!(attributes.e_tag().is_some());
    assert_eq!(attributes.storage_class(), Some(&aws_sdk_s3::types::StorageClass::Standard));
}
