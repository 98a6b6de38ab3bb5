//! Prometheus metrics: after a known workload, the gateway's `/metrics` (admin listener, no
//! token) and each volume daemon's count what was done, in valid text format, and a volume that
//! dies shows as down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use compat_tests::TestCluster;
use compat_tests::prometheus::{self, Sample, has, value};

async fn scrape(url: &str) -> Vec<Sample> {
    let response = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200, "{url}/metrics needs no credentials");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    prometheus::parse(&response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_known_workload_and_show_a_dead_volume() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let before = scrape(&cluster.admin_url()).await;
    let puts =
        |samples: &[Sample]| value(samples, "cairn_s3_requests_total", &[("op", "PutObject"), ("status", "200")]);

    let body = vec![7u8; 1000];
    for n in 0..10 {
        s3.put_object().bucket("bkt").key(format!("k{n}")).body(body.clone().into()).send().await.unwrap();
    }
    for n in 0..4 {
        let got = s3.get_object().bucket("bkt").key(format!("k{n}")).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), 1000);
    }
    assert!(s3.head_object().bucket("bkt").key("missing").send().await.is_err());

    let after = scrape(&cluster.admin_url()).await;
    let text = reqwest::get(format!("{}/metrics", cluster.admin_url())).await.unwrap().text().await.unwrap();
    assert!(text.contains("# HELP cairn_s3_requests_total "), "metrics are described");
    assert_eq!(puts(&after) - puts(&before), 10.0, "ten PUTs");
    let gets =
        |samples: &[Sample]| value(samples, "cairn_s3_requests_total", &[("op", "GetObject"), ("status", "200")]);
    assert_eq!(gets(&after) - gets(&before), 4.0, "four GETs");
    assert_eq!(value(&after, "cairn_s3_requests_total", &[("op", "HeadObject"), ("status", "404")]), 1.0);
    let put_latencies =
        |samples: &[Sample]| value(samples, "cairn_s3_request_duration_seconds_count", &[("op", "PutObject")]);
    assert_eq!(put_latencies(&after) - put_latencies(&before), 10.0, "a latency sample per PUT");
    assert!(
        has(&after, "cairn_s3_request_duration_seconds_bucket", &[("op", "PutObject"), ("le", "+Inf")]),
        "a histogram"
    );
    let received =
        value(&after, "cairn_s3_received_bytes_total", &[]) - value(&before, "cairn_s3_received_bytes_total", &[]);
    assert!(received >= 10_000.0, "bytes in ≥ what was sent: {received}");
    let sent = value(&after, "cairn_s3_sent_bytes_total", &[]) - value(&before, "cairn_s3_sent_bytes_total", &[]);
    assert!(sent >= 4_000.0, "bytes out ≥ what was read: {sent}");
    assert!(value(&after, "cairn_index_commit_seconds_count", &[]) >= 10.0, "every PUT commits");
    assert!(has(&after, "cairn_s3_requests_in_flight", &[]));
    assert_eq!(value(&after, "cairn_s3_requests_in_flight", &[]), 0.0, "no S3 request is in flight between them");
    for volume in &cluster.volumes {
        assert_eq!(value(&after, "cairn_volume_up", &[("volume", &volume.url())]), 1.0, "{} is up", volume.url());
        assert!(
            value(&after, "cairn_volume_client_requests_total", &[("volume", &volume.url()), ("outcome", "ok")]) > 0.0,
            "requests to {}",
            volume.url()
        );
    }

    // The volumes: 10 objects at 2 replicas are 20 blob writes among them, each fsynced.
    let mut writes = 0.0;
    for volume in &cluster.volumes {
        let samples = scrape(&volume.url()).await;
        writes += value(&samples, "cairn_volume_blob_writes_total", &[]);
        assert!(value(&samples, "cairn_volume_free_bytes", &[("subvolume", "0")]) > 0.0, "free space of subvolume 0");
        assert!(value(&samples, "cairn_volume_fsync_seconds_count", &[]) > 0.0, "fsyncs timed");
        assert!(value(&samples, "cairn_volume_requests_total", &[("op", "PUT /blob"), ("status", "201")]) > 0.0);
    }
    assert!(writes >= 20.0, "blob writes on the volumes: {writes}");

    // A volume that dies is down in the gateway's metrics within a few probe rounds.
    let dead = cluster.volumes[0].url();
    cluster.volumes[0].kill();
    let start = Instant::now();
    loop {
        let samples = scrape(&cluster.admin_url()).await;
        if value(&samples, "cairn_volume_up", &[("volume", &dead)]) == 0.0
            && has(&samples, "cairn_volume_up", &[("volume", &dead)])
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{dead} never shown down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gauges read from the index at scrape time: the GC queue grows by the blobs overwrites
/// replaced (and their bytes), a finished verify shows its progress, and the engine reports
/// every table.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_gc_queue_jobs_and_the_index_engine() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    for n in 0..6 {
        s3.put_object().bucket("bkt").key(format!("k{n}")).body(vec![1u8; 3000].into()).send().await.unwrap();
    }
    let before = scrape(&cluster.admin_url()).await;
    for n in 0..4 {
        s3.put_object().bucket("bkt").key(format!("k{n}")).body(vec![2u8; 10].into()).send().await.unwrap();
    }
    cluster.admin_ok(&["verify"]);
    compat_tests::wait_for_job(&cluster.admin_url(), "verify", Duration::from_secs(60), |p| p["state"] == "done").await;

    let after = scrape(&cluster.admin_url()).await;
    let gc_blobs = value(&after, "cairn_gc_queue_length", &[]) - value(&before, "cairn_gc_queue_length", &[]);
    assert_eq!(gc_blobs, 4.0, "four overwritten blobs queued");
    let gc_bytes = value(&after, "cairn_gc_queue_bytes", &[]) - value(&before, "cairn_gc_queue_bytes", &[]);
    assert_eq!(gc_bytes, 12_000.0, "their bytes");

    let verify = [("job", "verify")];
    assert_eq!(value(&after, "cairn_job_running", &verify), 0.0);
    assert_eq!(value(&after, "cairn_job_items_total", &verify), 6.0, "six objects to verify");
    assert_eq!(value(&after, "cairn_job_items_done", &verify), 6.0, "all verified");
    assert_eq!(value(&after, "cairn_job_errors", &verify), 0.0);
    assert!(has(&after, "cairn_job_running", &[("job", "gc")]), "a job that never ran shows as not running");
    assert_eq!(value(&after, "cairn_job_running", &[("job", "gc")]), 0.0);

    for table in ["objects", "buckets", "gc"] {
        assert!(has(&after, "cairn_index_table_rows", &[("table", table)]), "rows of {table}");
        assert!(has(&after, "cairn_index_table_bytes", &[("table", table)]), "bytes of {table}");
    }
    let text = reqwest::get(format!("{}/metrics", cluster.admin_url())).await.unwrap().text().await.unwrap();
    for described in ["cairn_gc_queue_bytes", "cairn_job_items_done", "cairn_index_table_rows"] {
        assert!(text.contains(&format!("# HELP {described} ")), "{described} is described");
    }
}
