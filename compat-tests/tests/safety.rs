//! What must never be lost or brought back, with real processes: a tombstone outlives the
//! version it deleted even when GC cannot reach a volume, DeleteBucket leaves no upload
//! behind, expired uploads are reclaimed, and a retried CompleteMultipartUpload succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use compat_tests::{CLUSTER_SECRET, TestCluster, test_bytes};

/// Runs `cairn-admin gc --grace 0 --json` (which fails when a volume is down) and returns
/// its report.
fn gc_now(cluster: &TestCluster) -> serde_json::Value {
    let output = cluster.admin(&["gc", "--grace", "0", "--json"]);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("gc report: {e}: {}", String::from_utf8_lossy(&output.stderr)))
}

/// Blob files of volume `v` whose bytes contain `needle`.
fn files_with(cluster: &TestCluster, v: usize, needle: &[u8]) -> usize {
    cluster.volumes[v]
        .blob_files()
        .iter()
        .filter(|path| std::fs::read(path).unwrap().windows(needle.len()).any(|w| w == needle))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tombstone_outlives_the_version_it_deleted() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = test_bytes(40_000, 11);
    s3.put_object().bucket("bkt").key("k").body(data.clone().into()).send().await.unwrap();
    let holders: Vec<usize> = (0..3).filter(|v| files_with(&cluster, *v, &data[..1000]) > 0).collect();
    assert_eq!(holders.len(), 2);

    // One holder goes down; the delete writes its tombstone to the two live volumes.
    let down = holders[0];
    cluster.volumes[down].kill();
    s3.delete_object().bucket("bkt").key("k").send().await.unwrap();
    assert!(s3.head_object().bucket("bkt").key("k").send().await.is_err());

    // GC cannot delete the old version on the dead volume, so the tombstone must stay.
    let report = gc_now(&cluster);
    assert_eq!(report["queue_total"], 1, "{report}");
    assert_eq!(report["queue_done"], 0, "{report}");
    assert_eq!(report["tombstones"], 0, "{report}");
    let tombstone_files: usize = (0..3).filter(|v| *v != down).map(|v| files_with(&cluster, v, b"tombstone")).sum();
    assert_eq!(tombstone_files, 2, "the tombstone blob is still on both live volumes");

    // The volume comes back with the old version on it: a rebuild still sees the delete.
    cluster.volumes[down].start();
    cluster.stop_gateway();
    let out = cluster.rebuild_ok("rebuilt-1").1;
    assert!(out.contains("0 objects, 1 deleted keys"), "the deleted key stays deleted: {out}");
    cluster.start_gateway();

    // Now GC can finish: the old version goes, and then the tombstone.
    let report = gc_now(&cluster);
    assert_eq!((report["queue_done"].as_u64(), report["tombstones"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(cluster.blob_files().len(), 2, "only the bucket's blob is left: {:?}", cluster.blob_files());
    assert_eq!(cluster.status().await["gc_queue"], 0);
    assert!(s3.head_object().bucket("bkt").key("k").send().await.is_err());
}

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(err: &aws_sdk_s3::error::SdkError<E>) -> String {
    err.as_service_error().and_then(|e| e.code()).unwrap_or("<no code>").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_bucket_refuses_uploads_in_progress_and_keeps_tombstones() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let upload = s3.create_multipart_upload().bucket("bkt").key("big").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = s3.upload_part().bucket("bkt").key("big").upload_id(upload_id).part_number(1);
    part.body(test_bytes(1000, 1).into()).send().await.unwrap();

    // S3: a bucket with an upload in progress is not empty.
    let err = s3.delete_bucket().bucket("bkt").send().await.unwrap_err();
    assert_eq!(code(&err), "BucketNotEmpty");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(409));
    let uploads = s3.list_multipart_uploads().bucket("bkt").send().await.unwrap();
    assert_eq!(uploads.uploads().len(), 1, "the refused delete changed nothing");
    s3.abort_multipart_upload().bucket("bkt").key("big").upload_id(upload_id).send().await.unwrap();

    // A deleted key leaves a tombstone; the bucket can go, and come back as new.
    s3.put_object().bucket("bkt").key("k").body(b"first life".to_vec().into()).send().await.unwrap();
    s3.delete_object().bucket("bkt").key("k").send().await.unwrap();
    s3.delete_bucket().bucket("bkt").send().await.unwrap();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let listing = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    assert_eq!(listing.key_count(), Some(0));
    assert_eq!(code(&s3.head_object().bucket("bkt").key("k").send().await.unwrap_err()), "NotFound");
    s3.delete_object().bucket("bkt").key("k").send().await.unwrap();
    s3.put_object().bucket("bkt").key("k").body(b"second life".to_vec().into()).send().await.unwrap();
    let listing = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    let keys: Vec<&str> = listing.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["k"]);

    // GC reclaims everything of the first life and nothing of the second.
    let report = gc_now(&cluster);
    assert_eq!(report["errors"], 0, "{report}");
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"second life");
    assert_eq!(cluster.blob_files().len(), 4, "two replicas of the live object and of the bucket's blob");

    // A bucket whose only keys are deleted can go; GC then drops what is left of it.
    s3.delete_object().bucket("bkt").key("k").send().await.unwrap();
    s3.delete_bucket().bucket("bkt").send().await.unwrap();
    let report = gc_now(&cluster);
    assert_eq!((report["errors"].as_u64(), report["tombstones"].as_u64()), (Some(0), Some(1)), "{report}");
    assert_eq!(report["bucket_tombstones"], 1, "{report}");
    assert!(cluster.blob_files().is_empty(), "{:?}", cluster.blob_files());
    assert_eq!(cluster.status().await["gc_queue"], 0);
}

/// Blob files holding exactly `data` (blob files hold the data first).
fn files_holding(cluster: &TestCluster, data: &[u8]) -> usize {
    cluster.blob_files().iter().filter(|path| std::fs::read(path).unwrap().starts_with(data)).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_aborts_uploads_older_than_the_ttl() {
    let cluster = TestCluster::start_with(3, 2, &["--upload-ttl", "3s"]);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let (old_part, young_part) = (test_bytes(20_000, 21), test_bytes(20_000, 22));
    let old = s3.create_multipart_upload().bucket("bkt").key("old").send().await.unwrap();
    let old_id = old.upload_id().unwrap();
    let part = s3.upload_part().bucket("bkt").key("old").upload_id(old_id).part_number(1);
    part.body(old_part.clone().into()).send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let young = s3.create_multipart_upload().bucket("bkt").key("young").send().await.unwrap();
    let young_id = young.upload_id().unwrap();
    let part = s3.upload_part().bucket("bkt").key("young").upload_id(young_id).part_number(1);
    part.body(young_part.clone().into()).send().await.unwrap();
    assert_eq!(files_holding(&cluster, &old_part), 2);

    let out = cluster.admin_ok(&["gc", "--grace", "0"]);
    assert!(out.contains("uploads aborted 1 "), "{out}");
    let uploads = s3.list_multipart_uploads().bucket("bkt").send().await.unwrap();
    let ids: Vec<&str> = uploads.uploads().iter().filter_map(|u| u.upload_id()).collect();
    assert_eq!(ids, [young_id], "only the young upload is left");
    assert_eq!(files_holding(&cluster, &old_part), 0, "the expired upload's part is gone");
    assert_eq!(files_holding(&cluster, &young_part), 2, "the young upload's part stays");
    assert_eq!(cluster.status().await["gc_queue"], 0);
    let err = s3.list_parts().bucket("bkt").key("old").upload_id(old_id).send().await.unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");

    // The young upload still completes.
    let parts = s3.list_parts().bucket("bkt").key("young").upload_id(young_id).send().await.unwrap();
    let etag = parts.parts()[0].e_tag().unwrap();
    let completed = aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(etag).build();
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("young")
        .upload_id(young_id)
        .multipart_upload(aws_sdk_s3::types::CompletedMultipartUpload::builder().parts(completed).build())
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket("bkt").key("young").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes() == young_part[..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_complete_gets_the_same_answer() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = test_bytes(30_000, 31);
    let create = s3.create_multipart_upload().bucket("bkt").key("k").checksum_algorithm(ChecksumAlgorithm::Crc32);
    let upload_id = create.send().await.unwrap().upload_id().unwrap().to_string();
    let part = s3
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(&upload_id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(data.clone().into())
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .checksum_crc32(part.checksum_crc32().unwrap())
                .build(),
        )
        .build();
    // With If-None-Match: * the retry would fail its condition if it were evaluated again.
    let complete = || {
        s3.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(&upload_id)
            .if_none_match("*")
            .multipart_upload(parts.clone())
    };
    let first = complete().send().await.unwrap();
    let head = s3.head_object().bucket("bkt").key("k").send().await.unwrap();
    let (files, queue) = (cluster.blob_files().len(), cluster.status().await["gc_queue"].clone());

    let again = complete().send().await.unwrap();
    assert_eq!(again.e_tag(), first.e_tag());
    assert!(first.e_tag().unwrap().ends_with("-1\""), "{:?}", first.e_tag());
    assert_eq!(again.checksum_crc32(), first.checksum_crc32());
    assert!(first.checksum_crc32().is_some());
    assert_eq!(again.checksum_type(), first.checksum_type());
    assert_eq!((again.bucket(), again.key()), (Some("bkt"), Some("k")));

    // Nothing changed: same object, no new blob, nothing queued.
    let head_again = s3.head_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!((head_again.e_tag(), head_again.last_modified()), (head.e_tag(), head.last_modified()));
    assert_eq!(cluster.blob_files().len(), files);
    assert_eq!(cluster.status().await["gc_queue"], queue);
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes() == data[..]);

    // The upload id answers only for the key it completed into.
    let other = s3.complete_multipart_upload().bucket("bkt").key("other").upload_id(&upload_id);
    let err = other.multipart_upload(parts.clone()).send().await.unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
    // And it is still not an upload in progress.
    let err = s3.list_parts().bucket("bkt").key("k").upload_id(&upload_id).send().await.unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
}

/// Writes a blob for `bucket`/`key` with timestamp `ts` straight to volume `v`, as a write
/// whose index commit never happened leaves it (a crash in between, a conditional-write loser).
async fn plant_uncommitted(cluster: &TestCluster, v: usize, bucket: &str, key: &str, ts: u64, body: &[u8]) {
    use base64::Engine as _;
    let meta = serde_json::json!({"v": 1, "kind": "object", "bucket": bucket, "key": key, "ts": ts, "modified_ms": 1});
    let meta = base64::engine::general_purpose::STANDARD.encode(meta.to_string());
    let id = hex::encode(rand::random::<[u8; 16]>());
    let response = reqwest::Client::new()
        .put(format!("{}/blob/0/{id}", cluster.volumes[v].url()))
        .bearer_auth(CLUSTER_SECRET)
        .header("x-cairn-meta", meta)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_whose_commit_never_happened_does_not_win_a_rebuild() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    s3.put_object().bucket("bkt").key("k").body(b"acknowledged".to_vec().into()).send().await.unwrap();
    // Newer than anything the gateway's clock handed out, on two volumes: it would win any
    // newest-timestamp contest.
    for v in 0..2 {
        plant_uncommitted(&cluster, v, "bkt", "k", u64::MAX / 2, b"never acknowledged").await;
    }
    plant_uncommitted(&cluster, 2, "bkt", "phantom", u64::MAX / 2, b"never acknowledged").await;

    cluster.stop_gateway();
    let out = cluster.rebuild_ok("rebuilt").1;
    assert!(out.contains("1 buckets, 1 objects") && out.contains("3 never committed"), "{out}");
    std::fs::remove_dir_all(cluster.db_dir()).unwrap();
    std::fs::rename(cluster.root.path().join("rebuilt"), cluster.db_dir()).unwrap();
    cluster.start_gateway();
    let s3 = cluster.client();
    let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"acknowledged");
    assert!(s3.head_object().bucket("bkt").key("phantom").send().await.is_err(), "an uncommitted key stays absent");
    // GC takes the uncommitted blobs for the orphans they are.
    let report = gc_now(&cluster);
    assert_eq!(report["orphans"], 3, "{report}");
}
