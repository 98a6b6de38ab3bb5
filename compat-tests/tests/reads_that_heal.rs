//! Reads that heal: a corrupt or missing replica costs a client nothing while a good copy
//! exists. Volumes check every block before sending it, so a damaged copy is refused before
//! the first byte or cut at the damaged block, and the gateway goes on from another copy at
//! that offset; the damaged copy goes to the repairer at once, which rewrites it in place.
//! Tested with curl, which neither retries nor hides a body cut short.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use compat_tests::{TestCluster, require_tool, test_bytes};
use rand::Rng as _;

const MIB: usize = 1024 * 1024;

/// The blob files of the cluster whose data starts like `data`.
fn replica_files(cluster: &TestCluster, data: &[u8]) -> Vec<PathBuf> {
    let head = &data[..data.len().min(4096)];
    cluster
        .blob_files()
        .into_iter()
        .filter(|path| {
            let mut start = vec![0; head.len()];
            std::fs::File::open(path).and_then(|f| f.read_exact_at(&mut start, 0)).is_ok() && start == head
        })
        .collect()
}

/// Makes sure byte `at` of the file differs from `good`, in place; returns whether it had to
/// (the copy was whole: rewritten by the repairer since the last time).
fn ensure_damaged(path: &Path, at: usize, good: u8) -> bool {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0];
    file.read_exact_at(&mut byte, at as u64).unwrap();
    if byte[0] != good {
        return false;
    }
    file.write_all_at(&[good ^ 0x40], at as u64).unwrap();
    true
}

fn is_damaged(path: &Path, at: usize, good: u8) -> bool {
    let mut byte = [0];
    std::fs::File::open(path).unwrap().read_exact_at(&mut byte, at as u64).unwrap();
    byte[0] != good
}

/// GETs `url` (presigned) with curl, optionally a `Range`, and returns the body; fails the
/// test on any curl error, including a transfer closed early.
async fn curl(url: &str, range: Option<(usize, usize)>) -> Vec<u8> {
    let mut command = tokio::process::Command::new("curl");
    command.args(["--silent", "--show-error", "--fail", "--max-time", "120", "--output", "-"]);
    if let Some((start, end)) = range {
        command.args(["--range", &format!("{start}-{}", end - 1)]);
    }
    let output = command.arg(url).output().await.unwrap();
    assert!(output.status.success(), "curl {range:?}: {:?} {}", output.status, String::from_utf8_lossy(&output.stderr));
    output.stdout
}

async fn presigned_get(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let config = PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap();
    s3.get_object().bucket("bkt").key(key).presigned(config).await.unwrap().uri().to_string()
}

/// A range of `len` bytes: half the time one that covers byte `at`, else anywhere.
fn some_range(len: usize, at: usize) -> (usize, usize) {
    let mut rng = rand::rng();
    if rng.random_bool(0.5) {
        let start = rng.random_range(at.saturating_sub(3 * MIB)..=at);
        (start, rng.random_range(at + 1..=len.min(at + 3 * MIB)))
    } else {
        let start = rng.random_range(0..len);
        (start, rng.random_range(start + 1..=len.min(start + 4 * MIB)))
    }
}

/// Waits (reading now and then, since reads are what notice) until the copy is whole again.
async fn wait_until_healed(url: &str, data: &[u8], path: &Path, at: usize) -> Duration {
    let start = Instant::now();
    while is_damaged(path, at, data[at]) {
        assert!(start.elapsed() < Duration::from_secs(60), "{} still damaged after 60 s", path.display());
        assert!(curl(url, None).await == data, "a read while healing returned wrong bytes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_replica_costs_curl_nothing_and_the_repairer_rewrites_it() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();

    // One byte of one replica is wrong: the only block of a small object, a middle block of a
    // 5 MiB one, and a block deep inside a 100 MiB one.
    let cases = [("small", 3321, 1000), ("medium", 5 * MIB, 3 * MIB + MIB / 2 + 7), ("large", 100 * MIB, 61 * MIB + 3)];
    for (seed, (key, len, at)) in cases.into_iter().enumerate() {
        let data = test_bytes(len, seed as u64 + 40);
        s3.put_object().bucket("bkt").key(key).body(data.clone().into()).send().await.unwrap();
        let files = replica_files(&cluster, &data);
        assert_eq!(files.len(), 2, "{key}: two replicas");
        let victim = &files[0];
        let url = presigned_get(&s3, key).await;

        // The copy is damaged again before every GET, so reads keep meeting it; each time it
        // had to be damaged again, the repairer had rewritten it.
        let mut damaged = 0;
        let started = Instant::now();
        for i in 0..100 {
            damaged += u32::from(ensure_damaged(victim, at, data[at]));
            if i < 50 {
                assert!(curl(&url, None).await == data, "{key}: plain GET {i} returned wrong bytes");
            } else {
                let (start, end) = some_range(len, at);
                let got = curl(&url, Some((start, end))).await;
                assert!(got == data[start..end], "{key}: GET of bytes {start}-{end} returned wrong bytes");
            }
        }
        let rewrites = damaged - 1;
        println!(
            "{key}: 100 curl GETs right in {:?}; the repairer rewrote the copy {rewrites} times",
            started.elapsed()
        );
        assert!(rewrites >= 1, "{key}: reads never sent the damaged copy to the repairer");

        let healed = wait_until_healed(&url, &data, victim, at).await;
        println!("{key}: whole again {healed:?} after the last damage");
    }

    // A replica gone from its volume is put back the same way.
    let data = test_bytes(200_000, 50);
    s3.put_object().bucket("bkt").key("lost").body(data.clone().into()).send().await.unwrap();
    let files = replica_files(&cluster, &data);
    std::fs::remove_file(&files[0]).unwrap();
    let url = presigned_get(&s3, "lost").await;
    let start = Instant::now();
    while !files[0].exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "the lost copy was not put back");
        assert!(curl(&url, None).await == data, "lost: a read returned wrong bytes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let verify: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["verify", "--json"])).unwrap();
    assert_eq!((verify["missing"].as_u64(), verify["corrupt"].as_u64()), (Some(0), Some(0)), "{verify}");
    assert_eq!(verify["replicas_checked"].as_u64(), Some(8), "{verify}");
}
