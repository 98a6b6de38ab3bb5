//! Availability under single faults, with real processes: a volume killed, a volume frozen
//! (SIGSTOP), the gateway restarted while a volume is down, an upload abandoned mid-way.
//! Clients here never retry, so every failure counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use compat_tests::{TestCluster, client_without_retries, test_bytes};

/// Outcomes of one kind of request.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    slowest_ms: AtomicU64,
}

impl Tally {
    fn record(&self, ok: bool, took: Duration) {
        if ok { &self.ok } else { &self.failed }.fetch_add(1, Ordering::Relaxed);
        self.slowest_ms.fetch_max(took.as_millis() as u64, Ordering::Relaxed);
    }

    fn counts(&self) -> (u64, u64) {
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

#[derive(Default)]
struct Load {
    writes: Tally,
    reads: Tally,
}

/// `clients` tasks that put, overwrite, delete and read their own keys (reading only what
/// they know is there) until `until`; every outcome goes into the returned tallies.
async fn run_load(endpoint: String, clients: usize, keys_before: usize, until: Instant) -> Arc<Load> {
    let load = Arc::new(Load::default());
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (endpoint, load) = (endpoint.clone(), load.clone());
        tasks.push(tokio::spawn(async move {
            let s3 = client_without_retries(&endpoint, Duration::from_secs(20));
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                // Objects written before the fault: every read of them must succeed.
                let old = format!("before-{}", (c * 7 + n as usize) % keys_before);
                let started = Instant::now();
                let got = s3.get_object().bucket("bkt").key(&old).send().await;
                let ok = match got {
                    Ok(out) => out.body.collect().await.is_ok_and(|b| b.into_bytes().len() == 20_000),
                    Err(_) => false,
                };
                load.reads.record(ok, started.elapsed());

                let key = format!("c{c}-{}", n % 5);
                let started = Instant::now();
                let ok = if n.is_multiple_of(4) {
                    s3.delete_object().bucket("bkt").key(&key).send().await.is_ok()
                } else {
                    let body = test_bytes(1000 + (n as usize % 7) * 3000, n);
                    s3.put_object().bucket("bkt").key(&key).body(body.into()).send().await.is_ok()
                };
                load.writes.record(ok, started.elapsed());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    load
}

async fn seed(cluster: &TestCluster, keys: usize) {
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    for i in 0..keys {
        s3.put_object()
            .bucket("bkt")
            .key(format!("before-{i}"))
            .body(test_bytes(20_000, i as u64).into())
            .send()
            .await
            .unwrap();
    }
}

fn share(ok: u64, failed: u64) -> f64 {
    ok as f64 / (ok + failed).max(1) as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_volume_costs_no_reads_and_almost_no_writes() {
    let mut cluster = TestCluster::start(3, 2);
    seed(&cluster, 40).await;
    let until = Instant::now() + Duration::from_secs(8);
    let load = tokio::spawn(run_load(cluster.endpoint(), 16, 40, until));
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.volumes[1].kill();
    let load = load.await.unwrap();
    let (reads_ok, reads_failed) = load.reads.counts();
    let (writes_ok, writes_failed) = load.writes.counts();
    println!(
        "one volume killed: reads {reads_ok} ok / {reads_failed} failed, writes {writes_ok} ok / {writes_failed} failed ({:.2}% ok)",
        100.0 * share(writes_ok, writes_failed)
    );
    assert_eq!(reads_failed, 0, "every read must be served by the surviving replica");
    assert!(writes_ok > 200, "the load ran: {writes_ok} writes");
    assert!(share(writes_ok, writes_failed) >= 0.99, "writes ok: {writes_ok}, failed: {writes_failed}");
    let status = cluster.status().await;
    let healthy: Vec<bool> =
        status["volumes"].as_array().unwrap().iter().map(|v| v["healthy"].as_bool().unwrap()).collect();
    assert_eq!(healthy.iter().filter(|h| !**h).count(), 1, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_degraded_write_is_repaired_when_the_volume_returns() {
    // Three copies on three volumes: with one down, writes reach two (the quorum) and queue
    // a repair, which the repairer completes once the volume answers again.
    let mut cluster = TestCluster::start(3, 3);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    cluster.volumes[2].kill();
    for i in 0..10 {
        s3.put_object().bucket("bkt").key(format!("k{i}")).body(test_bytes(3000, i).into()).send().await.unwrap();
    }
    s3.delete_object().bucket("bkt").key("k0").send().await.unwrap();
    let status = cluster.status().await;
    assert_eq!(status["repair_queue"], 10, "9 objects and a tombstone written with 2 of 3 copies: {status}");
    assert_eq!(cluster.volumes[2].blob_files().len(), 1, "only the bucket's blob, written before");

    cluster.volumes[2].start();
    let returned = Instant::now();
    loop {
        let status = cluster.status().await;
        if status["repair_queue"] == 0 {
            break;
        }
        assert!(returned.elapsed() < Duration::from_secs(15), "repair did not finish: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("repaired within {:?} of the volume's return", returned.elapsed());
    assert_eq!(cluster.volumes[2].blob_files().len(), 11, "every blob now has its third copy");
    let verify = cluster.admin_ok(&["verify"]);
    assert!(verify.contains("replicas 27") && verify.contains("missing 0"), "{verify}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_volume_never_hangs_a_request() {
    let cluster = TestCluster::start_with(3, 2, &["--volume-timeout", "2s", "--volume-idle-timeout", "2s"]);
    seed(&cluster, 40).await;
    let until = Instant::now() + Duration::from_secs(10);
    let load = tokio::spawn(run_load(cluster.endpoint(), 8, 40, until));
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.volumes[0].pause();
    let load = load.await.unwrap();
    let (reads_ok, reads_failed) = load.reads.counts();
    let (writes_ok, writes_failed) = load.writes.counts();
    let slowest_read = load.reads.slowest_ms.load(Ordering::Relaxed);
    let slowest_write = load.writes.slowest_ms.load(Ordering::Relaxed);
    println!(
        "one volume frozen: reads {reads_ok} ok / {reads_failed} failed (slowest {slowest_read} ms), writes {writes_ok} ok / {writes_failed} failed (slowest {slowest_write} ms)"
    );
    // A read waits at most for one replica's answer timeout before the next replica; a
    // write at most for an idle or answer timeout before the replica is dropped.
    assert!(slowest_read < 6_000 && slowest_write < 6_000, "a request waited on the frozen volume");
    assert_eq!(reads_failed, 0, "reads fail over to the other replica");
    assert!(share(writes_ok, writes_failed) >= 0.99, "writes ok: {writes_ok}, failed: {writes_failed}");
    let status = cluster.status().await;
    assert_eq!(status["volumes"][0]["healthy"], false, "{status}");

    cluster.volumes[0].resume();
    let resumed = Instant::now();
    while cluster.status().await["volumes"][0]["healthy"] != true {
        assert!(resumed.elapsed() < Duration::from_secs(10), "the volume did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s3 = cluster.client();
    for i in 0..20 {
        s3.put_object().bucket("bkt").key(format!("after-{i}")).body(b"x".to_vec().into()).send().await.unwrap();
    }
    assert!(!cluster.volumes[0].blob_files().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_restarts_and_serves_with_a_volume_down() {
    let mut cluster = TestCluster::start(3, 2);
    seed(&cluster, 10).await;
    cluster.volumes[2].kill();
    cluster.gateway.take();
    let started = Instant::now();
    cluster.start_gateway();
    let s3 = cluster.client();
    for i in 0..10 {
        let got = s3.get_object().bucket("bkt").key(format!("before-{i}")).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), 20_000);
    }
    for i in 0..20 {
        s3.put_object().bucket("bkt").key(format!("new-{i}")).body(b"n".to_vec().into()).send().await.unwrap();
    }
    println!("gateway served {:?} after its restart with a volume down", started.elapsed());
    let status = cluster.status().await;
    assert_eq!(status["volumes"][2]["healthy"], false, "{status}");
    assert_eq!(status["repair_queue"], 0, "writes went to the two live volumes at full count");

    // A volume the index has never seen, down at start, joins once it answers.
    let extra = cluster.start_extra_volume();
    let extra_url = cluster.volumes[extra].url();
    cluster.volumes[extra].kill();
    cluster.gateway.take();
    cluster.start_gateway(); // --volumes now names the extra volume too
    assert_eq!(cluster.status().await["volumes"].as_array().unwrap().len(), 3);
    cluster.volumes[extra].start();
    let waiting = Instant::now();
    loop {
        let status = cluster.status().await;
        let urls: Vec<&str> =
            status["volumes"].as_array().unwrap().iter().map(|v| v["url"].as_str().unwrap()).collect();
        if urls.contains(&extra_url.as_str()) {
            break;
        }
        assert!(waiting.elapsed() < Duration::from_secs(10), "the new volume did not join: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_dropped_mid_way_leaves_no_prefix_on_any_volume() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let mut before = cluster.blob_files();
    before.sort();
    // No Content-Length: a chunked body. The volumes must not take the end of the client's
    // connection for the end of the object.
    let url = s3
        .put_object()
        .bucket("bkt")
        .key("chunked")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = url.uri().parse().unwrap();
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", cluster.s3_port)).unwrap();
    write!(
        socket,
        "PUT {} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        uri.path_and_query().unwrap(),
        uri.authority().unwrap()
    )
    .unwrap();
    let chunk = test_bytes(256 * 1024, 3);
    for _ in 0..8 {
        write!(socket, "{:x}\r\n", chunk.len()).unwrap();
        socket.write_all(&chunk).unwrap();
        socket.write_all(b"\r\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(socket);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(s3.head_object().bucket("bkt").key("chunked").send().await.is_err(), "nothing visible");
    let mut files = cluster.blob_files();
    files.sort();
    assert_eq!(files, before, "a prefix was committed on a volume (only the bucket's blob was there)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_volume_gone_for_good_is_removed_and_its_copies_rebuilt() {
    let mut cluster = TestCluster::start(3, 2);
    seed(&cluster, 30).await;
    cluster.client().delete_object().bucket("bkt").key("before-0").send().await.unwrap();
    assert!(!cluster.volumes[2].blob_files().is_empty());
    cluster.volumes[2].kill();
    for dir in &cluster.volumes[2].dirs {
        std::fs::remove_dir_all(dir).unwrap();
    }
    let url = cluster.volumes[2].url();
    let refused = cluster.admin(&["volume", "remove", &url]);
    assert!(!refused.status.success(), "records still name copies on it");
    let removed = cluster.admin_ok(&["volume", "remove", &url, "--force"]);
    assert!(removed.contains("queued for repair") && removed.contains("0 blobs had no other copy"), "{removed}");

    let waiting = Instant::now();
    loop {
        let status = cluster.status().await;
        if status["repair_queue"] == 0 {
            assert_eq!(status["volumes"].as_array().unwrap().len(), 2, "{status}");
            break;
        }
        assert!(waiting.elapsed() < Duration::from_secs(15), "repair did not finish: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let verify = cluster.admin_ok(&["verify"]);
    assert!(verify.contains("replicas 58") && verify.contains("missing 0") && verify.contains("corrupt 0"), "{verify}");
    let s3 = cluster.client();
    for i in 1..30 {
        let got = s3.get_object().bucket("bkt").key(format!("before-{i}")).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), 20_000);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_refuses_a_missing_volume_unless_partial() {
    let mut cluster = TestCluster::start(3, 2);
    seed(&cluster, 20).await;
    cluster.stop_gateway();
    cluster.volumes[1].kill();
    let (_, refused) = cluster.rebuild("full", &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a rebuild missing a volume must not pass for complete");
    assert!(stderr.contains(&cluster.volumes[1].url()) && stderr.contains("--partial"), "{stderr}");

    let (_, partial) = cluster.rebuild("partial", &["--partial"]);
    let stderr = String::from_utf8_lossy(&partial.stderr);
    assert!(partial.status.success(), "{stderr}");
    assert!(stderr.contains("left out of the index") && stderr.contains(&cluster.volumes[1].url()), "{stderr}");
    // Every object had a copy on one of the two readable volumes.
    assert!(
        String::from_utf8_lossy(&partial.stdout).contains("20 objects"),
        "{}",
        String::from_utf8_lossy(&partial.stdout)
    );
}
