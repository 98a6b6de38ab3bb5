//! Small blobs packed into segments, across processes: volume daemons SIGKILLed in the middle
//! of group commits while 16 clients PUT 4 KiB objects lose no acknowledged PUT, and come back
//! with every copy the index names readable and whole.
//!
//! The volumes pack explicitly (`--pack-threshold`), whatever `CAIRN_TEST_BLOBS` says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use compat_tests::{TestCluster, client_without_retries, test_bytes};

const WRITERS: usize = 16;
const SIZE: usize = 4096;

/// What the clients learned of their PUTs: seeds of the acknowledged ones by key, and how many
/// ended in an error answer or no answer.
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<String, u64>,
    refused: usize,
    unknown: usize,
}

fn segment_bytes(cluster: &TestCluster, volume: usize) -> u64 {
    let mut total = 0;
    for dir in &cluster.volumes[volume].dirs {
        for entry in std::fs::read_dir(dir.join("segments")).into_iter().flatten().flatten() {
            total += entry.metadata().unwrap().len();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_puts_acknowledged_while_volumes_are_killed_mid_commit_are_all_kept() {
    let mut cluster = TestCluster::start_with_volume_args(3, 2, &["--pack-threshold", "65536"], &[]);
    cluster.client().create_bucket().bucket("bkt").send().await.unwrap();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (ledger, stop) = (ledger.clone(), stop.clone());
            let s3 = client_without_retries(&cluster.endpoint(), Duration::from_secs(10));
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (key, seed) = (format!("w{writer:02}/{n:06}"), (writer as u64) << 32 | n);
                    let put = s3
                        .put_object()
                        .bucket("bkt")
                        .key(&key)
                        .body(ByteStream::from(test_bytes(SIZE, seed)))
                        .send()
                        .await;
                    let mut ledger = ledger.lock().unwrap();
                    match put {
                        Ok(_) => drop(ledger.acked.insert(key, seed)),
                        Err(SdkError::ServiceError(_)) => ledger.refused += 1,
                        Err(_) => ledger.unknown += 1,
                    }
                    n += 1;
                }
            })
        })
        .collect();

    // Each volume in turn is SIGKILLed under load (16 clients keep its group commits busy, so
    // the kill lands mid-batch) and brought back a second later.
    let acked = || ledger.lock().unwrap().acked.len();
    let mut acked_at_kill = Vec::new();
    for volume in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        acked_at_kill.push(acked());
        cluster.volumes[volume].kill();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        cluster.volumes[volume].start();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let ledger = Arc::into_inner(ledger).unwrap().into_inner().unwrap();
    eprintln!(
        "{} PUTs acknowledged, {} refused, {} unanswered; acknowledged before each kill: {acked_at_kill:?}",
        ledger.acked.len(),
        ledger.refused,
        ledger.unknown
    );
    assert!(
        acked_at_kill.windows(2).all(|w| w[1] > w[0]) && ledger.acked.len() > acked_at_kill[2],
        "the clients kept writing between and after the kills: {acked_at_kill:?}, {}",
        ledger.acked.len()
    );
    for volume in 0..3 {
        assert!(segment_bytes(&cluster, volume) > 0, "volume {volume} packed what it was sent into segments");
    }

    // Every acknowledged PUT reads back whole.
    let s3 = cluster.client();
    for (key, &seed) in &ledger.acked {
        let got = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
        let body = got.body.collect().await.unwrap().into_bytes();
        assert!(body.as_ref() == test_bytes(SIZE, seed).as_slice(), "{key} came back different");
    }

    // Every copy the index names (acknowledged or not) is on its volume and whole: nothing a
    // volume acknowledged before its SIGKILL was lost from a segment.
    let report: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["verify", "--json"])).unwrap();
    assert_eq!((report["missing"].as_u64(), report["corrupt"].as_u64()), (Some(0), Some(0)), "{report}");
    let replicas = report["replicas_checked"].as_u64().unwrap();
    assert!(replicas >= 2 * ledger.acked.len() as u64, "{replicas} replicas for {} objects", ledger.acked.len());

    // And once more after every volume restarts cleanly: segments reopen to the same blobs.
    let started = Instant::now();
    for volume in 0..3 {
        cluster.volumes[volume].kill();
        cluster.volumes[volume].start();
    }
    eprintln!("three volumes reopened their segments in {:?}", started.elapsed());
    let again: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["verify", "--json"])).unwrap();
    assert_eq!((again["replicas_checked"].as_u64(), again["missing"].as_u64()), (Some(replicas), Some(0)), "{again}");
}

/// Objects written while the volumes gave every blob a file stay readable, listable,
/// overwritable and deletable after the volumes restart packing, and verify finds both kinds.
#[tokio::test(flavor = "multi_thread")]
async fn objects_written_file_per_blob_keep_working_once_volumes_pack() {
    let mut cluster = TestCluster::start_with_volume_args(3, 2, &["--pack-threshold", "0"], &[]);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let put = |key: String, data: Vec<u8>| s3.put_object().bucket("bkt").key(key).body(ByteStream::from(data)).send();
    for i in 0..20u64 {
        put(format!("old/{i:02}"), test_bytes(3000 + i as usize, i)).await.unwrap();
    }
    let files = cluster.blob_files().len();
    assert_eq!(files, 2 * 21, "two copies of each object and of the bucket's blob, as files");

    for volume in &mut cluster.volumes {
        volume.kill();
        volume.args = vec!["--pack-threshold".into(), "65536".into()];
        volume.start();
    }
    cluster.wait_for_volumes_up(3).await;
    for i in 0..10u64 {
        put(format!("new/{i:02}"), test_bytes(2000, 100 + i)).await.unwrap();
    }
    put("old/00".into(), test_bytes(5000, 200)).await.unwrap();
    s3.delete_object().bucket("bkt").key("old/01").send().await.unwrap();
    for volume in 0..3 {
        assert!(segment_bytes(&cluster, volume) > 0, "volume {volume} packs the new writes");
    }

    let listed = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().map(|o| o.key().unwrap().to_string()).collect();
    assert_eq!(keys.len(), 29, "{keys:?}");
    for key in keys {
        let want = match key.split_once('/').unwrap() {
            ("old", "00") => test_bytes(5000, 200),
            ("old", i) => test_bytes(3000 + i.parse::<usize>().unwrap(), i.parse().unwrap()),
            (_, i) => test_bytes(2000, 100 + i.parse::<u64>().unwrap()),
        };
        let got = s3.get_object().bucket("bkt").key(&key).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes() == want[..], "{key}");
    }
    let report: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["verify", "--json"])).unwrap();
    assert_eq!((report["replicas_checked"].as_u64(), report["missing"].as_u64()), (Some(2 * 29), Some(0)), "{report}");
}
