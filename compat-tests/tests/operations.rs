//! Operator commands through `cairn-admin` against real processes: access keys with
//! per-bucket grants, and garbage collection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use compat_tests::{CLUSTER_SECRET, TestCluster, test_bytes};

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(err: &aws_sdk_s3::error::SdkError<E>) -> String {
    err.as_service_error().and_then(|e| e.code()).unwrap_or("<no code>").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_allowed_on_one_bucket_cannot_touch_another() {
    let cluster = TestCluster::start(3, 2);
    let root = cluster.client();
    for bucket in ["alpha", "beta"] {
        root.create_bucket().bucket(bucket).send().await.unwrap();
    }
    root.put_object().bucket("beta").key("secret").body(b"root only".to_vec().into()).send().await.unwrap();

    let created: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["key", "create", "app", "--json"])).unwrap();
    let (id, secret) = (
        created["access_key_id"].as_str().unwrap().to_string(),
        created["secret_access_key"].as_str().unwrap().to_string(),
    );
    let app = cluster.client_with(&id, &secret);

    // No grant yet: nothing is visible or reachable.
    assert!(app.list_buckets().send().await.unwrap().buckets().is_empty());
    let err = app.list_objects_v2().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&err), "AccessDenied");

    let nothing = cluster.admin(&["key", "allow", &id, "alpha"]);
    assert!(!nothing.status.success(), "an allow that names no permission is refused");
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("--read, --write and/or --owner"));
    cluster.admin_ok(&["key", "allow", &id, "gamma", "--owner"]);
    assert!(cluster.admin_ok(&["key", "list"]).contains("gamma:rwo"), "owner implies read and write");
    cluster.admin_ok(&["key", "allow", &id, "alpha", "--read", "--write"]);
    let listing = cluster.admin_ok(&["key", "list"]);
    assert!(listing.contains(&id) && listing.contains("alpha:rw-"), "{listing}");
    assert!(!listing.contains(&secret), "secrets are never listed");

    let names: Vec<String> =
        app.list_buckets().send().await.unwrap().buckets().iter().map(|b| b.name().unwrap().to_string()).collect();
    assert_eq!(names, ["alpha"]);
    app.put_object().bucket("alpha").key("mine").body(b"app data".to_vec().into()).send().await.unwrap();
    let got = app.get_object().bucket("alpha").key("mine").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"app data");
    assert_eq!(app.list_objects_v2().bucket("alpha").send().await.unwrap().key_count(), Some(1));

    // Bucket beta: no listing, no reading, no writing, no copying out, no deleting the bucket.
    assert_eq!(code(&app.list_objects_v2().bucket("beta").send().await.unwrap_err()), "AccessDenied");
    assert_eq!(code(&app.get_object().bucket("beta").key("secret").send().await.unwrap_err()), "AccessDenied");
    let put = app.put_object().bucket("beta").key("intruder").body(b"x".to_vec().into()).send().await;
    assert_eq!(code(&put.unwrap_err()), "AccessDenied");
    let copy = app.copy_object().bucket("alpha").key("stolen").copy_source("beta/secret").send().await;
    assert_eq!(code(&copy.unwrap_err()), "AccessDenied");
    assert_eq!(code(&app.delete_bucket().bucket("beta").send().await.unwrap_err()), "AccessDenied");
    assert_eq!(code(&app.delete_bucket().bucket("alpha").send().await.unwrap_err()), "AccessDenied", "needs owner");
    assert!(root.head_object().bucket("beta").key("intruder").send().await.is_err());

    // Deny write: reads still work, writes do not.
    cluster.admin_ok(&["key", "deny", &id, "alpha", "--write"]);
    let put = app.put_object().bucket("alpha").key("more").body(b"x".to_vec().into()).send().await;
    assert_eq!(code(&put.unwrap_err()), "AccessDenied");
    assert!(app.get_object().bucket("alpha").key("mine").send().await.is_ok());

    // A deleted key stops working at once.
    cluster.admin_ok(&["key", "delete", &id]);
    assert_eq!(code(&app.get_object().bucket("alpha").key("mine").send().await.unwrap_err()), "InvalidAccessKeyId");
    // The root key from config still sees everything.
    assert_eq!(root.list_buckets().send().await.unwrap().buckets().len(), 2);
}

/// Writes blob `id` straight to a volume, as a write that failed after reaching it would leave.
async fn plant_orphan(cluster: &TestCluster, id: &str) -> String {
    let id = id.to_string();
    let meta =
        serde_json::json!({"v": 1, "kind": "object", "bucket": "bkt", "key": "ghost", "ts": 1, "modified_ms": 1});
    let meta = base64::engine::general_purpose::STANDARD.encode(meta.to_string());
    let response = reqwest::Client::new()
        .put(format!("{}/blob/0/{id}", cluster.volumes[0].url()))
        .bearer_auth(CLUSTER_SECRET)
        .header("x-cairn-meta", meta)
        .body(b"never acknowledged".to_vec())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_frees_dead_blobs_and_never_a_live_one() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let mut live = Vec::new();
    for i in 0..5u64 {
        let data = test_bytes(10_000 * (i as usize + 1), i);
        s3.put_object().bucket("bkt").key(format!("keep-{i}")).body(data.clone().into()).send().await.unwrap();
        live.push((format!("keep-{i}"), data));
    }
    // Enough copies that a debug build's orphan phase walks several slices of the id space.
    for i in 0..30u64 {
        let data = test_bytes(100, 200 + i);
        s3.put_object().bucket("bkt").key(format!("small-{i}")).body(data.clone().into()).send().await.unwrap();
        live.push((format!("small-{i}"), data));
    }
    // An overwrite, a delete and an aborted multipart upload queue four blobs.
    s3.put_object().bucket("bkt").key("over").body(b"old".to_vec().into()).send().await.unwrap();
    s3.put_object().bucket("bkt").key("over").body(b"new".to_vec().into()).send().await.unwrap();
    live.push(("over".into(), b"new".to_vec()));
    s3.put_object().bucket("bkt").key("gone").body(b"bye".to_vec().into()).send().await.unwrap();
    s3.delete_object().bucket("bkt").key("gone").send().await.unwrap();
    let upload = s3.create_multipart_upload().bucket("bkt").key("aborted").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    for n in 1..=2 {
        let part = s3.upload_part().bucket("bkt").key("aborted").upload_id(upload_id).part_number(n);
        part.body(ByteStream::from(test_bytes(1000, 50 + n as u64))).send().await.unwrap();
    }
    s3.abort_multipart_upload().bucket("bkt").key("aborted").upload_id(upload_id).send().await.unwrap();
    let mut orphans = Vec::new();
    for id in [
        "0123456789abcdef0123456789abcdef",
        "7fffffff00000000000000000000000a",
        "80000000000000000000000000000000",
        "ffffffffffffffffffffffffffffffff",
    ] {
        orphans.push(plant_orphan(&cluster, id).await);
    }
    assert_eq!(cluster.status().await["gc_queue"], 4);

    // Within the default grace period (an hour) nothing is touched.
    let files_before = cluster.blob_files().len();
    cluster.admin_ok(&["gc"]);
    assert_eq!(cluster.status().await["gc_queue"], 4);
    assert_eq!(cluster.blob_files().len(), files_before);

    // A dry run counts and deletes nothing.
    let dry = cluster.admin_ok(&["gc", "--grace", "0", "--dry-run", "--json"]);
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["queue_total"], 4);
    assert_eq!(dry["orphans"], 4);
    assert_eq!(cluster.blob_files().len(), files_before);

    // An upload streams while GC runs.
    let slow_data = test_bytes(2 * 1024 * 1024, 99);
    let url = s3
        .put_object()
        .bucket("bkt")
        .key("in-flight")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_string();
    let chunks: Vec<Vec<u8>> = slow_data.chunks(256 * 1024).map(<[u8]>::to_vec).collect();
    let body = futures_body(chunks);
    let slow = tokio::spawn(async move {
        reqwest::Client::new()
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, 2 * 1024 * 1024)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = cluster.admin_ok(&["gc", "--grace", "0"]);
    assert!(out.contains("gc done"), "{out}");
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    live.push(("in-flight".into(), slow_data));
    // A second run catches whatever the first could not see yet (nothing should be left).
    cluster.admin_ok(&["gc", "--grace", "0"]);

    let status = cluster.status().await;
    assert_eq!(status["gc_queue"], 0, "{status}");
    for orphan in &orphans {
        assert!(!cluster.blob_files().iter().any(|p| p.ends_with(orphan)), "the orphan {orphan} is gone");
    }
    // What remains is exactly two replicas of every live object and of the bucket's blob:
    // the tombstone of "gone" went too, once the blob it ordered was deleted.
    assert_eq!(cluster.blob_files().len(), 2 * (live.len() + 1));
    for (key, data) in &live {
        let got = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes() == data[..], "{key} reads back");
    }
    assert!(s3.head_object().bucket("bkt").key("gone").send().await.is_err());
}

/// A body that yields its chunks slowly.
fn futures_body(chunks: Vec<Vec<u8>>) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(chunks.into_iter(), |mut chunks| async move {
        let chunk = chunks.next()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok(chunk), chunks))
    })
}

/// Everything a client can observe of a bucket: the listing and every HeadObject.
async fn observe(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let listing = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    for object in listing.contents() {
        let key = object.key().unwrap();
        let head = s3.head_object().bucket(bucket).key(key).send().await.unwrap();
        let mut meta: Vec<(String, String)> = head.metadata().cloned().unwrap_or_default().into_iter().collect();
        meta.sort();
        seen.push(format!(
            "{key} size={:?} etag={:?} modified={:?} | head type={:?} length={:?} etag={:?} modified={:?} meta={meta:?}",
            object.size(),
            object.e_tag(),
            object.last_modified(),
            head.content_type(),
            head.content_length(),
            head.e_tag(),
            head.last_modified(),
        ));
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_restores_what_clients_saw() {
    // `cairn-admin rebuild` writes a RocksDB directory, which this test swaps in.
    if compat_tests::skip_unless_rocksdb("rebuild_restores_what_clients_saw", "rebuild makes a RocksDB index") {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    for bucket in ["photos", "docs"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let mut data = Vec::new();
    for i in 0..20u64 {
        let body = test_bytes(1000 + 997 * i as usize, i);
        let bucket = if i % 2 == 0 { "photos" } else { "docs" };
        s3.put_object()
            .bucket(bucket)
            .key(format!("dir {i}/ü-{i}"))
            .content_type("image/x-test")
            .metadata("n", i.to_string())
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
        data.push((bucket, format!("dir {i}/ü-{i}"), body));
    }
    // Overwritten, deleted, and a multipart object.
    s3.put_object().bucket("docs").key("current").body(b"first".to_vec().into()).send().await.unwrap();
    s3.put_object().bucket("docs").key("current").body(b"second".to_vec().into()).send().await.unwrap();
    s3.put_object().bucket("docs").key("deleted").body(b"doomed".to_vec().into()).send().await.unwrap();
    s3.delete_object().bucket("docs").key("deleted").send().await.unwrap();
    let big = test_bytes(6 * 1024 * 1024, 77);
    let upload = s3.create_multipart_upload().bucket("photos").key("multi").content_type("video/x-test").send().await;
    let upload_id = upload.unwrap().upload_id().unwrap().to_string();
    let mut parts = Vec::new();
    for (n, chunk) in [(1, &big[..5 * 1024 * 1024]), (2, &big[5 * 1024 * 1024..])] {
        let out = s3
            .upload_part()
            .bucket("photos")
            .key("multi")
            .upload_id(&upload_id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(aws_sdk_s3::types::CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap()).build());
    }
    s3.complete_multipart_upload()
        .bucket("photos")
        .key("multi")
        .upload_id(&upload_id)
        .multipart_upload(aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    let before = (observe(&s3, "photos").await, observe(&s3, "docs").await);

    // Lose the index; rebuild it offline from the volumes; serve from the rebuilt one.
    cluster.stop_gateway();
    let (rebuilt, out) = cluster.rebuild_ok("rebuilt-index");
    assert!(out.contains("2 buckets, 22 objects, 1 deleted keys, 2 old blobs queued"), "{out}");
    std::fs::remove_dir_all(cluster.db_dir()).unwrap();
    std::fs::rename(&rebuilt, cluster.db_dir()).unwrap();
    cluster.start_gateway();

    let s3 = cluster.client();
    let after = (observe(&s3, "photos").await, observe(&s3, "docs").await);
    assert_eq!(before, after, "listings and heads equal what they were");
    for (bucket, key, body) in &data {
        let got = s3.get_object().bucket(*bucket).key(key).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes() == body[..]);
    }
    let current = s3.get_object().bucket("docs").key("current").send().await.unwrap();
    assert_eq!(&current.body.collect().await.unwrap().into_bytes()[..], b"second", "the newest version wins");
    assert!(s3.head_object().bucket("docs").key("deleted").send().await.is_err(), "deletes stay deleted");
    let multi = s3.get_object().bucket("photos").key("multi").send().await.unwrap();
    assert!(multi.e_tag().unwrap().ends_with("-2\""));
    assert!(multi.body.collect().await.unwrap().into_bytes() == big[..]);
    // The overwritten and the deleted versions are queued for GC; new writes still win.
    assert_eq!(cluster.status().await["gc_queue"], 2);
    s3.put_object().bucket("docs").key("current").body(b"third".to_vec().into()).send().await.unwrap();
    let current = s3.get_object().bucket("docs").key("current").send().await.unwrap();
    assert_eq!(&current.body.collect().await.unwrap().into_bytes()[..], b"third");
}

/// The blob files on disk whose data starts with `data` (blob files hold the data first).
fn files_holding(cluster: &TestCluster, data: &[u8]) -> Vec<std::path::PathBuf> {
    cluster.blob_files().into_iter().filter(|path| std::fs::read(path).unwrap().starts_with(data)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_and_repair_fixes_missing_and_corrupt_replicas() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let (damaged, lost) = (test_bytes(300_000, 1), test_bytes(200_000, 2));
    s3.put_object().bucket("bkt").key("damaged").body(damaged.clone().into()).send().await.unwrap();
    s3.put_object().bucket("bkt").key("lost").body(lost.clone().into()).send().await.unwrap();
    s3.put_object().bucket("bkt").key("fine").body(test_bytes(1000, 3).into()).send().await.unwrap();
    cluster.admin_ok(&["verify"]);

    // Flip a byte of one replica of "damaged"; delete one replica of "lost".
    let damaged_files = files_holding(&cluster, &damaged);
    assert_eq!(damaged_files.len(), 2);
    let mut bytes = std::fs::read(&damaged_files[0]).unwrap();
    bytes[1000] ^= 0xFF;
    std::fs::write(&damaged_files[0], &bytes).unwrap();
    let lost_files = files_holding(&cluster, &lost);
    std::fs::remove_file(&lost_files[0]).unwrap();

    // (No reads here: a read that meets a damaged copy sends it to the repairer, which
    // `reads_that_heal.rs` shows; this test is about what verify finds by itself.)
    let report = cluster.admin(&["verify", "--json"]);
    assert!(!report.status.success(), "problems make verify fail");
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!((report["missing"].as_u64(), report["corrupt"].as_u64()), (Some(1), Some(1)), "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("bkt/damaged") && problems.contains("corrupt"), "{problems}");
    assert!(problems.contains("bkt/lost") && problems.contains("missing"), "{problems}");

    let repaired: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["verify", "--repair", "--json"])).unwrap();
    assert_eq!(repaired["repaired"], 2, "{repaired}");
    let problems = repaired["problems"].to_string();
    assert!(problems.contains("corrupt: repaired") && problems.contains("missing: repaired"), "{problems}");
    let clean: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["verify", "--json"])).unwrap();
    assert_eq!((clean["missing"].as_u64(), clean["corrupt"].as_u64()), (Some(0), Some(0)));
    assert_eq!(files_holding(&cluster, &damaged).len(), 2);
    assert_eq!(files_holding(&cluster, &lost).len(), 2);
    for (key, data) in [("damaged", &damaged), ("lost", &lost)] {
        let got = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes() == data[..]);
    }
}
