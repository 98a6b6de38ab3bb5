//! Replication across real volume processes: placement on exactly `replicas` volumes, reads
//! that survive a dead volume (also mid-stream), untorn overwrites, and uploads that fail
//! without leaving anything visible.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use compat_tests::{TestCluster, test_bytes};

fn blob_counts(cluster: &TestCluster) -> Vec<usize> {
    cluster.volumes.iter().map(|v| v.blob_files().len()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_object_lives_on_exactly_replicas_volumes() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    for i in 0..30 {
        s3.put_object()
            .bucket("bkt")
            .key(format!("obj-{i}"))
            .body(test_bytes(1000 + i, i as u64).into())
            .send()
            .await
            .unwrap();
    }
    let counts = blob_counts(&cluster);
    assert_eq!(counts.iter().sum::<usize>(), 62, "(30 objects + the bucket's blob) x 2 replicas: {counts:?}");
    assert!(counts.iter().all(|&c| c > 5), "placement spreads over all volumes: {counts:?}");
    // Each blob id (the objects' and the bucket's) appears on exactly two volumes.
    let mut per_blob = std::collections::HashMap::<String, usize>::new();
    for volume in &cluster.volumes {
        for file in volume.blob_files() {
            *per_blob.entry(file.file_name().unwrap().to_string_lossy().into_owned()).or_default() += 1;
        }
    }
    assert_eq!(per_blob.len(), 31);
    assert!(per_blob.values().all(|&n| n == 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_survive_a_dead_volume() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let objects: Vec<Vec<u8>> = (0..20).map(|i| test_bytes(50_000, 100 + i)).collect();
    for (i, data) in objects.iter().enumerate() {
        s3.put_object().bucket("bkt").key(format!("k{i}")).body(data.clone().into()).send().await.unwrap();
    }
    cluster.volumes[1].kill();
    for (i, data) in objects.iter().enumerate() {
        for _ in 0..3 {
            let got = s3.get_object().bucket("bkt").key(format!("k{i}")).send().await.unwrap();
            assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], &data[..], "k{i}");
        }
    }
    // Writes placed on the dead volume go to the next live one in ring order, at full count.
    for i in 0..20 {
        s3.put_object().bucket("bkt").key(format!("new{i}")).body(b"n".to_vec().into()).send().await.unwrap();
    }
    let live: usize = cluster.volumes.iter().map(|v| v.blob_files().len()).sum();
    assert_eq!(live, 2 + 20 * 2 + 20 * 2, "old blobs keep their copies; new ones have two on live volumes");
    let status = cluster.status().await;
    let down: Vec<bool> =
        status["volumes"].as_array().unwrap().iter().map(|v| v["healthy"].as_bool().unwrap()).collect();
    assert_eq!(down.iter().filter(|h| !**h).count(), 1, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_continues_when_its_volume_dies_mid_stream() {
    let mut cluster = TestCluster::start(2, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = test_bytes(64 * 1024 * 1024, 7);
    s3.put_object().bucket("bkt").key("big").body(data.clone().into()).send().await.unwrap();

    // Both volumes hold the object. Read slowly; kill volume 0, later restart it and kill
    // volume 1: whichever one was serving, at least one kill lands mid-stream.
    let url = s3
        .get_object()
        .bucket("bkt")
        .key("big")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap();
    let mut response = reqwest::get(url.uri()).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut received = Vec::with_capacity(data.len());
    let mut step = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
        if step == 0 && received.len() > 4 * 1024 * 1024 {
            cluster.volumes[0].kill();
            step = 1;
        } else if step == 1 && received.len() > 24 * 1024 * 1024 {
            cluster.volumes[0].start();
            cluster.volumes[1].kill();
            step = 2;
        }
    }
    assert_eq!(step, 2);
    assert_eq!(received.len(), data.len());
    assert!(received == data, "bytes after fail-over differ");
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrites_never_tear_a_reader_and_queue_the_old_blob() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let v1 = test_bytes(16 * 1024 * 1024, 1);
    let v2 = test_bytes(16 * 1024 * 1024, 2);
    s3.put_object().bucket("bkt").key("k").body(v1.clone().into()).send().await.unwrap();

    let reading = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    s3.put_object().bucket("bkt").key("k").body(v2.clone().into()).send().await.unwrap();
    let old = reading.body.collect().await.unwrap().into_bytes();
    assert!(old == v1, "a reader of the old version sees the old version whole");
    let new = s3.get_object().bucket("bkt").key("k").send().await.unwrap().body.collect().await.unwrap().into_bytes();
    assert!(new == v2);

    let status = cluster.status().await;
    assert_eq!(status["gc_queue"], 1, "{status}");
    assert_eq!(status["objects"], 1, "{status}");
    // Old blobs stay on disk until GC: 2 versions x 2 replicas, and the bucket's blob.
    assert_eq!(blob_counts(&cluster).iter().sum::<usize>(), 4 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_mid_upload_leaves_nothing_visible() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    s3.put_object().bucket("bkt").key("k").body(b"previous".to_vec().into()).send().await.unwrap();

    for key in ["k", "fresh"] {
        let url = s3
            .put_object()
            .bucket("bkt")
            .key(key)
            .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
            .await
            .unwrap();
        let uri: http::Uri = url.uri().parse().unwrap();
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", cluster.s3_port)).unwrap();
        let request = format!(
            "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 10000000\r\n\r\n",
            uri.path_and_query().unwrap(),
            uri.authority().unwrap()
        );
        socket.write_all(request.as_bytes()).unwrap();
        socket.write_all(&test_bytes(3_000_000, 9)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(socket);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let current = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(&current.body.collect().await.unwrap().into_bytes()[..], b"previous");
    let fresh = s3.head_object().bucket("bkt").key("fresh").send().await;
    assert!(fresh.is_err(), "an interrupted upload must not create the key");
    let listing = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    assert_eq!(listing.key_count(), Some(1));
    // Only the committed object's and the bucket's two replicas exist; aborted writes left
    // no blob and no temp file.
    assert_eq!(blob_counts(&cluster).iter().sum::<usize>(), 2 + 2);
    for volume in &cluster.volumes {
        for dir in &volume.dirs {
            assert!(!has_temp_files(dir), "temp file left in {}", dir.display());
        }
    }
}

fn has_temp_files(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let path = e.path();
            if path.is_dir() { has_temp_files(&path) } else { e.file_name().to_string_lossy().starts_with(".tmp.") }
        })
    })
}

#[test]
fn volume_requires_the_cluster_secret() {
    let cluster = TestCluster::start(1, 1);
    let url = cluster.volumes[0].url();
    let get = |path: &str, auth: Option<&str>| {
        let mut socket = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
        let auth = auth.map(|a| format!("Authorization: Bearer {a}\r\n")).unwrap_or_default();
        write!(socket, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).unwrap();
        response.lines().next().unwrap_or("").to_string()
    };
    assert!(get("/health", None).contains("200"));
    assert!(get("/stats", None).contains("401"));
    assert!(get("/stats", Some("wrong")).contains("401"));
    assert!(get("/stats", Some(compat_tests::CLUSTER_SECRET)).contains("200"));
}
