//! Small S3 semantics that real clients and compatibility suites check: `x-amz-tagging-count`,
//! `max-keys=0`, empty delimiters, UploadPartCopy and partNumber range errors,
//! GetObjectAttributes with several attributes, the versioning and ACL walks (boto3, in
//! `python/s3_semantics.py`), and the content encoding stored for an aws-chunked upload
//! (aws-sdk-s3, here).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use compat_tests::TestCluster;
use compat_tests::tools::Tool;

#[test]
fn boto3_sees_s3_semantics() {
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let Some(python) = Tool::boto3(&cluster, work.path()) else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/s3_semantics.py");
    let out = python.run(&[script]);
    assert!(out.contains("s3 semantics passed"), "{out}");
}

/// The SDK streams a body with a checksum as aws-chunked, so it sends
/// `Content-Encoding: gzip,aws-chunked` for a gzip object: the object's encoding is `gzip`.
#[tokio::test(flavor = "multi_thread")]
async fn aws_chunked_is_not_part_of_the_stored_content_encoding() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    s3.put_object()
        .bucket("bkt")
        .key("z")
        .content_encoding("gzip")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(b"not really gzip".to_vec()))
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("bkt").key("z").send().await.unwrap();
    assert_eq!(head.content_encoding(), Some("gzip"));
    let got = s3.get_object().bucket("bkt").key("z").send().await.unwrap();
    assert_eq!(got.content_encoding(), Some("gzip"));
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"not really gzip");
}
