//! Multipart uploads with aws-sdk-s3: the whole lifecycle, S3's rules, checksums (COMPOSITE
//! CRC32 and FULL_OBJECT CRC64NVME), UploadPartCopy, listing uploads, and restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use compat_tests::{TestCluster, test_bytes};

const MIB: usize = 1024 * 1024;

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(err: &aws_sdk_s3::error::SdkError<E>) -> String {
    err.as_service_error().and_then(|e| e.code()).unwrap_or("<no code>").to_string()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn crc32(data: &[u8]) -> Vec<u8> {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data).to_be_bytes()[4..].to_vec()
}

async fn upload_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: &[&[u8]],
    algorithm: Option<ChecksumAlgorithm>,
) -> Vec<CompletedPart> {
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let mut request = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part.to_vec()));
        if let Some(algorithm) = algorithm.clone() {
            request = request.checksum_algorithm(algorithm);
        }
        let out = request.send().await.unwrap();
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap())
                .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_string))
                .build(),
        );
    }
    completed
}

async fn read_all(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn composite_crc32_upload_reads_back_whole_by_part_and_by_range_across_restarts() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = test_bytes(11 * MIB + 123, 1);
    let parts: Vec<&[u8]> = vec![&data[..5 * MIB], &data[5 * MIB..10 * MIB], &data[10 * MIB..]];

    let created = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("big/object")
        .content_type("application/x-test")
        .metadata("origin", "multipart")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    let upload_id = created.upload_id().unwrap().to_string();
    let completed = upload_parts(&s3, "bkt", "big/object", &upload_id, &parts, Some(ChecksumAlgorithm::Crc32)).await;
    assert_eq!(completed[0].checksum_crc32().unwrap(), b64(&crc32(parts[0])));

    let listed = s3.list_parts().bucket("bkt").key("big/object").upload_id(&upload_id).send().await.unwrap();
    let sizes: Vec<i64> = listed.parts().iter().map(|p| p.size().unwrap()).collect();
    assert_eq!(sizes, [5 * MIB as i64, 5 * MIB as i64, MIB as i64 + 123]);
    let page = s3.list_parts().bucket("bkt").key("big/object").upload_id(&upload_id).max_parts(2).send().await.unwrap();
    assert!(page.is_truncated().unwrap());
    assert_eq!(page.next_part_number_marker(), Some("2"));

    let done = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("big/object")
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap();
    let etag = done.e_tag().unwrap().trim_matches('"').to_string();
    assert!(etag.ends_with("-3"), "{etag}");
    let mut concat = Vec::new();
    for part in &parts {
        concat.extend(crc32(part));
    }
    let composite = format!("{}-3", b64(&crc32(&concat)));
    assert_eq!(done.checksum_crc32(), Some(composite.as_str()));

    let check = |s3: Client| {
        let (data, composite, etag) = (data.clone(), composite.clone(), etag.clone());
        async move {
            assert!(read_all(&s3, "bkt", "big/object").await == data, "whole object");
            let head = s3
                .head_object()
                .bucket("bkt")
                .key("big/object")
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            assert_eq!(head.content_length(), Some(data.len() as i64));
            assert_eq!(head.e_tag().unwrap().trim_matches('"'), etag);
            assert_eq!(head.checksum_crc32(), Some(composite.as_str()));
            assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
            assert_eq!(head.content_type(), Some("application/x-test"));
            assert_eq!(head.metadata().unwrap().get("origin").map(String::as_str), Some("multipart"));

            let second = s3.get_object().bucket("bkt").key("big/object").part_number(2).send().await.unwrap();
            assert_eq!(second.parts_count(), Some(3));
            assert_eq!(second.content_length(), Some(5 * MIB as i64));
            assert!(second.body.collect().await.unwrap().into_bytes() == data[5 * MIB..10 * MIB]);

            let (from, to) = (5 * MIB - 10, 10 * MIB + 9); // spans all three parts
            let ranged = s3
                .get_object()
                .bucket("bkt")
                .key("big/object")
                .range(format!("bytes={from}-{to}"))
                .send()
                .await
                .unwrap();
            assert!(ranged.body.collect().await.unwrap().into_bytes() == data[from..=to]);
        }
    };
    check(s3.clone()).await;

    // The record, the parts and the manifest survive a gateway restart.
    cluster.gateway.take().unwrap().kill();
    cluster.start_gateway();
    check(cluster.client()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_object_crc64nvme_and_upload_part_copy() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let source = test_bytes(7 * MIB, 2);
    s3.put_object().bucket("bkt").key("source").body(ByteStream::from(source.clone())).send().await.unwrap();

    let created = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("assembled")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap();
    let upload_id = created.upload_id().unwrap();
    // Part 1: the first 6 MiB of "source", copied inside the cluster; part 2: uploaded.
    let copied = s3
        .upload_part_copy()
        .bucket("bkt")
        .key("assembled")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source("bkt/source")
        .copy_source_range(format!("bytes=0-{}", 6 * MIB - 1))
        .send()
        .await
        .unwrap();
    let copy_result = copied.copy_part_result().unwrap();
    let tail = test_bytes(MIB / 2, 3);
    let uploaded = s3
        .upload_part()
        .bucket("bkt")
        .key("assembled")
        .upload_id(upload_id)
        .part_number(2)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(ByteStream::from(tail.clone()))
        .send()
        .await
        .unwrap();
    let mut expected = source[..6 * MIB].to_vec();
    expected.extend_from_slice(&tail);
    let full = b64(&crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &expected).to_be_bytes());
    let parts = vec![
        CompletedPart::builder()
            .part_number(1)
            .e_tag(copy_result.e_tag().unwrap())
            .set_checksum_crc64_nvme(copy_result.checksum_crc64_nvme().map(str::to_string))
            .build(),
        CompletedPart::builder()
            .part_number(2)
            .e_tag(uploaded.e_tag().unwrap())
            .set_checksum_crc64_nvme(uploaded.checksum_crc64_nvme().map(str::to_string))
            .build(),
    ];
    let done = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("assembled")
        .upload_id(upload_id)
        .checksum_crc64_nvme(&full)
        .checksum_type(ChecksumType::FullObject)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    assert_eq!(done.checksum_crc64_nvme(), Some(full.as_str()));
    assert!(read_all(&s3, "bkt", "assembled").await == expected);
    let got = s3.get_object().bucket("bkt").key("assembled").checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
    assert_eq!(got.checksum_crc64_nvme(), Some(full.as_str()));
    assert_eq!(got.checksum_type(), Some(&ChecksumType::FullObject));
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_rules_are_enforced_and_leave_nothing_behind() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let small = test_bytes(1024, 4);
    let big = test_bytes(5 * MIB, 5);

    let upload = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            let out = s3.create_multipart_upload().bucket("bkt").key(key).send().await.unwrap();
            out.upload_id().unwrap().to_string()
        }
    };
    let complete = |key: &'static str, id: String, parts: Vec<CompletedPart>| {
        s3.complete_multipart_upload()
            .bucket("bkt")
            .key(key)
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
    };

    // Every part but the last must be at least 5 MiB.
    let id = upload("small").await;
    let parts = upload_parts(&s3, "bkt", "small", &id, &[&small, &small], None).await;
    assert_eq!(code(&complete("small", id.clone(), parts.clone()).await.unwrap_err()), "EntityTooSmall");
    // Parts must ascend, and exist with the listed ETag.
    let reversed = vec![parts[1].clone(), parts[0].clone()];
    assert_eq!(code(&complete("small", id.clone(), reversed).await.unwrap_err()), "InvalidPartOrder");
    let wrong = vec![CompletedPart::builder().part_number(1).e_tag("\"00000000000000000000000000000000\"").build()];
    assert_eq!(code(&complete("small", id.clone(), wrong).await.unwrap_err()), "InvalidPart");
    let missing = vec![CompletedPart::builder().part_number(7).e_tag(parts[0].e_tag().unwrap()).build()];
    assert_eq!(code(&complete("small", id.clone(), missing).await.unwrap_err()), "InvalidPart");
    let bad_number =
        s3.upload_part().bucket("bkt").key("small").upload_id(&id).part_number(10_001).body(small.clone().into());
    assert_eq!(code(&bad_number.send().await.unwrap_err()), "InvalidArgument");
    // A single small part is fine (the last part may be small); gaps in numbering are allowed.
    let gap = vec![parts[1].clone()];
    complete("small", id.clone(), gap).await.unwrap();
    assert!(read_all(&s3, "bkt", "small").await == small);
    // The upload is gone after completing.
    let gone = s3.list_parts().bucket("bkt").key("small").upload_id(&id).send().await.unwrap_err();
    assert_eq!(code(&gone), "NoSuchUpload");

    // Re-uploading a part number replaces it.
    let id = upload("replaced").await;
    upload_parts(&s3, "bkt", "replaced", &id, &[&small], None).await;
    let parts = upload_parts(&s3, "bkt", "replaced", &id, &[&big], None).await;
    complete("replaced", id, parts).await.unwrap();
    assert!(read_all(&s3, "bkt", "replaced").await == big);

    // Abort: the upload disappears, its parts are queued for GC, nothing is visible.
    let gc_before = cluster.status().await["gc_queue"].as_u64().unwrap();
    let id = upload("aborted").await;
    upload_parts(&s3, "bkt", "aborted", &id, &[&small, &small], None).await;
    s3.abort_multipart_upload().bucket("bkt").key("aborted").upload_id(&id).send().await.unwrap();
    assert_eq!(cluster.status().await["gc_queue"].as_u64().unwrap(), gc_before + 2);
    let err = s3.upload_part().bucket("bkt").key("aborted").upload_id(&id).part_number(1).body(small.clone().into());
    assert_eq!(code(&err.send().await.unwrap_err()), "NoSuchUpload");
    assert_eq!(code(&s3.head_object().bucket("bkt").key("aborted").send().await.unwrap_err()), "NotFound");
    let err = s3.abort_multipart_upload().bucket("bkt").key("aborted").upload_id(&id).send().await.unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_multipart_uploads_with_prefix_delimiter_and_markers() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let mut ids = Vec::new();
    for key in ["a/1", "a/1", "a/2", "b", "c/d"] {
        let out = s3.create_multipart_upload().bucket("bkt").key(key).send().await.unwrap();
        ids.push((key, out.upload_id().unwrap().to_string()));
    }
    ids.sort();

    let all = s3.list_multipart_uploads().bucket("bkt").send().await.unwrap();
    let listed: Vec<(String, String)> =
        all.uploads().iter().map(|u| (u.key().unwrap().to_string(), u.upload_id().unwrap().to_string())).collect();
    let want: Vec<(String, String)> = ids.iter().map(|(k, id)| (k.to_string(), id.clone())).collect();
    assert_eq!(listed, want);

    let rolled = s3.list_multipart_uploads().bucket("bkt").delimiter("/").send().await.unwrap();
    let prefixes: Vec<&str> = rolled.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["a/", "c/"]);
    assert_eq!(rolled.uploads().len(), 1);

    let prefixed = s3.list_multipart_uploads().bucket("bkt").prefix("a/").send().await.unwrap();
    assert_eq!(prefixed.uploads().len(), 3);

    let mut seen = Vec::new();
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_multipart_uploads()
            .bucket("bkt")
            .max_uploads(2)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap();
        seen.extend(page.uploads().iter().map(|u| u.upload_id().unwrap().to_string()));
        if !page.is_truncated().unwrap() {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        id_marker = page.next_upload_id_marker().map(str::to_string);
    }
    assert_eq!(seen, want.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>());
}
