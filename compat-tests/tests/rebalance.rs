//! Membership changes and rebalance against real processes: add a fourth volume and
//! rebalance while a client keeps reading and writing; drain a volume until it is empty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use std::time::Duration;

use compat_tests::{TestCluster, test_bytes, wait_for_job};

fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// PUTs objects eight at a time.
async fn put_all(s3: &aws_sdk_s3::Client, objects: &[(String, Vec<u8>)]) {
    use futures::StreamExt as _;
    futures::stream::iter(objects)
        .map(|(key, data)| s3.put_object().bucket("bkt").key(key).body(data.clone().into()).send())
        .buffer_unordered(8)
        .for_each(|result| async move {
            result.unwrap();
        })
        .await;
}

async fn read_back(s3: &aws_sdk_s3::Client, objects: &[(String, Vec<u8>)]) {
    for (key, data) in objects {
        let got = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes() == data[..], "{key} reads back");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn add_a_volume_and_drain_one_while_serving() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> =
        (0..800u64).map(|i| (format!("obj/{i:04}"), test_bytes((i as usize * 397) % 20_000, i))).collect();
    put_all(&s3, &objects).await;
    let mut objects = objects;
    // One multipart object: a manifest and two parts to move.
    let big = test_bytes(6 * 1024 * 1024, 1000);
    let upload = s3.create_multipart_upload().bucket("bkt").key("multi").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, chunk) in [(1, &big[..5 * 1024 * 1024]), (2, &big[5 * 1024 * 1024..])] {
        let part = s3.upload_part().bucket("bkt").key("multi").upload_id(id).part_number(n);
        let out = part.body(ByteStream::from(chunk.to_vec())).send().await.unwrap();
        parts.push(aws_sdk_s3::types::CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap()).build());
    }
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("multi")
        .upload_id(id)
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    objects.push(("multi".into(), big));

    // A fourth volume joins online.
    let fourth = cluster.start_extra_volume();
    let url = cluster.volumes[fourth].url();
    cluster.admin_ok(&["volume", "add", &url]);
    let dry = json_of(&cluster.admin_ok(&["rebalance", "--dry-run", "--json"]));
    let misplaced = dry["entries_misplaced"].as_u64().unwrap();
    assert!(misplaced > 240 && misplaced < 560, "about half the objects gain a replica on the new volume: {dry}");
    assert_eq!(cluster.volumes[fourth].blob_files().len(), 0, "a dry run moves nothing");

    // Rebalance while a client writes and reads.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (s3, stop, sample) = (s3.clone(), stop.clone(), objects[..50].to_vec());
        tokio::spawn(async move {
            let mut written = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let data = test_bytes(5000, 5000 + i);
                let key = format!("during/{i:04}");
                s3.put_object().bucket("bkt").key(&key).body(data.clone().into()).send().await.unwrap();
                written.push((key, data));
                let (key, data) = &sample[i as usize % sample.len()];
                let got = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
                assert!(got.body.collect().await.unwrap().into_bytes() == data[..], "{key} during rebalance");
                i += 1;
            }
            written
        })
    };
    let out = cluster.admin_ok(&["rebalance"]);
    assert!(out.contains("rebalance done"), "{out}");
    stop.store(true, Ordering::SeqCst);
    objects.extend(client.await.unwrap());

    let again = json_of(&cluster.admin_ok(&["rebalance", "--dry-run", "--json"]));
    assert_eq!(again["entries_misplaced"], 0, "every record matches the ring: {again}");
    cluster.admin_ok(&["gc", "--grace", "0"]);
    // Blobs: one per single-part object, a manifest and two parts for the multipart one, and
    // the bucket's blob.
    let single = objects.len() - 1;
    assert_eq!(cluster.blob_files().len(), 2 * (single + 3 + 1), "two copies of each blob, nothing else");
    assert!(!cluster.volumes[fourth].blob_files().is_empty());
    read_back(&s3, &objects).await;

    // Drain the first volume: it ends empty, everything keeps two replicas.
    let first = cluster.volumes[0].url();
    cluster.admin_ok(&["volume", "drain", &first]);
    let refused = cluster.admin(&["volume", "remove", &first]);
    assert!(!refused.status.success(), "a volume that still holds data cannot be removed");
    cluster.admin_ok(&["rebalance"]);
    cluster.admin_ok(&["gc", "--grace", "0"]);
    assert_eq!(cluster.volumes[0].blob_files().len(), 0, "the drained volume is empty");
    assert_eq!(cluster.blob_files().len(), 2 * (single + 3 + 1));
    read_back(&s3, &objects).await;
    let verify = json_of(&cluster.admin_ok(&["verify", "--json"]));
    assert_eq!((verify["missing"].as_u64(), verify["corrupt"].as_u64()), (Some(0), Some(0)));
    assert_eq!(verify["replicas_checked"].as_u64(), Some(2 * (single as u64 + 2)), "full replica count");
    cluster.admin_ok(&["volume", "remove", &first]);
    let status = cluster.status().await;
    assert_eq!(status["volumes"].as_array().unwrap().len(), 3, "{status}");

    // Its URL is still in the gateway's --volumes: a restart must not bring it back.
    cluster.gateway.take();
    cluster.start_gateway();
    let urls = |status: &serde_json::Value| -> Vec<String> {
        status["volumes"].as_array().unwrap().iter().map(|v| v["url"].as_str().unwrap().to_string()).collect()
    };
    let status = cluster.status().await;
    assert!(!urls(&status).contains(&first), "a removed volume stays removed: {status}");
    assert_eq!(urls(&status).len(), 3);
    cluster.admin_ok(&["volume", "add", &first]);
    assert!(urls(&cluster.status().await).contains(&first), "volume add brings it back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_killed_midway_loses_nothing_and_reruns() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let mut objects = Vec::new();
    for i in 0..200u64 {
        let data = test_bytes(100_000 + i as usize, i);
        s3.put_object().bucket("bkt").key(format!("k{i:03}")).body(data.clone().into()).send().await.unwrap();
        objects.push((format!("k{i:03}"), data));
    }
    let fourth = cluster.start_extra_volume();
    cluster.admin_ok(&["volume", "add", &cluster.volumes[fourth].url()]);

    // Start a slow rebalance (2 MB/s for ~10 MB to move) and SIGKILL the gateway midway.
    let started = reqwest::Client::new()
        .post(format!("{}/jobs/rebalance", cluster.admin_url()))
        .bearer_auth(compat_tests::ADMIN_TOKEN)
        .json(&serde_json::json!({"rate_mb_s": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let progress: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/jobs/rebalance", cluster.admin_url()))
        .bearer_auth(compat_tests::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(progress["state"], "running", "killed midway: {progress}");
    assert!(progress["blobs_moved"].as_u64().unwrap() > 0, "{progress}");
    cluster.gateway.take().unwrap().kill();
    cluster.start_gateway();
    let s3 = cluster.client();
    read_back(&s3, &objects).await;

    // The restarted gateway is alone on its RocksDB index, so the job's owner is surely dead:
    // it resumes the job at once from its checkpoint, at the rate it was started with.
    let admin = cluster.admin_url();
    let resumed = wait_for_job(&admin, "rebalance", Duration::from_secs(60), |p| p["state"] != "running").await;
    assert_eq!((resumed["state"].as_str(), resumed["takeovers"].as_u64()), (Some("done"), Some(1)), "{resumed}");
    assert_eq!(resumed["errors"], 0, "{resumed}");
    read_back(&s3, &objects).await;

    // A rerun finds the work finished; leftovers are orphans for GC.
    let out = cluster.admin_ok(&["rebalance"]);
    assert!(out.contains("rebalance done"), "{out}");
    let again = json_of(&cluster.admin_ok(&["rebalance", "--dry-run", "--json"]));
    assert_eq!(again["entries_misplaced"], 0, "{again}");
    cluster.admin_ok(&["gc", "--grace", "0"]);
    assert_eq!(cluster.blob_files().len(), 2 * (objects.len() + 1), "every object's blob and the bucket's");
    read_back(&s3, &objects).await;
}

/// What rebalance walks, against what `status` counts: its objects are status's objects, and
/// every other entry it walks (deleted keys and buckets whose blobs GC has not taken yet,
/// buckets) is named as such; parts of uploads in progress are counted apart, not moved.
#[tokio::test(flavor = "multi_thread")]
async fn rebalance_counts_what_status_counts_and_names_the_rest() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..20u64).map(|i| (format!("k{i:02}"), test_bytes(1000, i))).collect();
    put_all(&s3, &objects).await;
    for key in ["k00", "k01"] {
        s3.delete_object().bucket("bkt").key(key).send().await.unwrap();
    }
    s3.create_bucket().bucket("gone").send().await.unwrap();
    s3.delete_bucket().bucket("gone").send().await.unwrap();

    // An upload in progress with one part; the volumes it landed on are the ones that gained
    // a blob file.
    let upload = s3.create_multipart_upload().bucket("bkt").key("big").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let files_before: Vec<usize> = cluster.volumes.iter().map(|v| v.blob_files().len()).collect();
    let part = s3.upload_part().bucket("bkt").key("big").upload_id(id).part_number(1);
    part.body(ByteStream::from(test_bytes(5 * 1024 * 1024, 99))).send().await.unwrap();
    let holder = (0..cluster.volumes.len())
        .find(|&v| cluster.volumes[v].blob_files().len() > files_before[v])
        .expect("a volume holds the part");
    // Drained, its volume is not where the ring places the part any more.
    cluster.admin_ok(&["volume", "drain", &cluster.volumes[holder].url()]);

    let status = cluster.status().await;
    assert_eq!((status["objects"].as_u64(), status["buckets"].as_u64()), (Some(18), Some(1)), "{status}");
    let dry = json_of(&cluster.admin_ok(&["rebalance", "--dry-run", "--json"]));
    assert_eq!(dry["objects"], status["objects"], "rebalance's objects are status's: {dry}");
    assert_eq!(dry["buckets"], status["buckets"], "{dry}");
    assert_eq!(dry["deleted_keys"], 2, "{dry}");
    assert_eq!(dry["deleted_buckets"], 1, "{dry}");
    assert_eq!(dry["entries_total"], 18 + 2 + 1 + 1, "the entries are those four kinds and nothing else: {dry}");
    assert_eq!(dry["entries_done"], dry["entries_total"], "{dry}");
    assert_eq!((dry["upload_parts"].as_u64(), dry["upload_parts_misplaced"].as_u64()), (Some(1), Some(1)), "{dry}");

    // The operator reads the same numbers side by side.
    let status_text = cluster.admin_ok(&["status"]);
    assert!(status_text.contains("objects 18 ") && status_text.contains("buckets 1 "), "{status_text}");
    let out = cluster.admin_ok(&["rebalance"]);
    assert!(out.contains("entries 22/22 (18 objects, 2 deleted keys, 1 bucket, 1 deleted bucket)"), "{out}");
    assert!(out.contains("parts of uploads in progress: 1, misplaced 1 (not moved"), "{out}");

    // Completed, the part is the object's and moves with it.
    let parts = s3.list_parts().bucket("bkt").key("big").upload_id(id).send().await.unwrap();
    let etag = parts.parts()[0].e_tag().unwrap();
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(etag).build())
        .build();
    let complete = s3.complete_multipart_upload().bucket("bkt").key("big").upload_id(id);
    complete.multipart_upload(done).send().await.unwrap();
    let out = cluster.admin_ok(&["rebalance"]);
    assert!(out.contains("(19 objects, 2 deleted keys, 1 bucket, 1 deleted bucket)"), "{out}");
    assert!(!out.contains("uploads in progress"), "{out}");
    let again = json_of(&cluster.admin_ok(&["rebalance", "--dry-run", "--json"]));
    assert_eq!((again["entries_misplaced"].as_u64(), again["upload_parts"].as_u64()), (Some(0), Some(0)), "{again}");
}
