//! Jobs are cluster-wide: over one PostgreSQL index, a job started through one gateway is the
//! one every gateway reports and refuses to start twice, and when the gateway running it dies
//! another takes it over once its lease has stood still for the TTL, and finishes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use compat_tests::postgres::TestPostgres;
use compat_tests::{ADMIN_TOKEN, TestCluster, test_bytes, wait_for_job};

async fn post_job(admin_url: &str, kind: &str, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{admin_url}/jobs/{kind}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_started_through_one_gateway_is_seen_everywhere_and_survives_its_gateway() {
    let Some(postgres) = TestPostgres::start("two_gateway_jobs") else { return };
    let url = postgres.create_database();
    let mut cluster = TestCluster::start_with(3, 2, &["--index", &url]);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let mut objects = Vec::new();
    for i in 0..120u64 {
        let (key, data) = (format!("k{i:03}"), test_bytes(100_000 + i as usize, i));
        s3.put_object().bucket("bkt").key(&key).body(data.clone().into()).send().await.unwrap();
        objects.push((key, data));
    }
    let b = cluster.start_another_gateway();
    let (a_admin, b_admin) = (cluster.admin_url(), cluster.more_gateways[b].admin_url());
    let b_address = b_admin.trim_start_matches("http://").to_string();
    // A volume added through A: B, which is running, places by it within a second or two.
    let fourth = cluster.start_extra_volume();
    let fourth_url = cluster.volumes[fourth].url();
    cluster.admin_ok(&["volume", "add", &fourth_url]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !compat_tests::admin_status(&b_admin).await["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["url"] == fourth_url.as_str())
    {
        assert!(Instant::now() < deadline, "B did not see the volume added through A");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Started through B, slowly (0.5 MB/s for about 6 MB to move), so that it is still
    // running when B dies.
    let started = post_job(&b_admin, "rebalance", serde_json::json!({"rate_mb_s": 0.5})).await;
    assert_eq!(started.status(), 202);
    let started: serde_json::Value = started.json().await.unwrap();
    let owner = started["owner"].as_str().unwrap().to_string();
    assert_eq!(started["owner_address"], b_address.as_str(), "{started}");

    // One at a time for the whole cluster: A refuses a second one, naming B.
    let refused = post_job(&a_admin, "rebalance", serde_json::json!({})).await;
    assert_eq!(refused.status(), 409);
    let why = refused.text().await.unwrap();
    assert!(why.contains("already running") && why.contains(&b_address), "{why}");

    // A reports B's job, its progress included.
    let seen = wait_for_job(&a_admin, "rebalance", Duration::from_secs(20), |p| {
        p["blobs_moved"].as_u64().is_some_and(|n| n > 0)
    })
    .await;
    assert_eq!((seen["state"].as_str(), seen["owner"].as_str()), (Some("running"), Some(owner.as_str())), "{seen}");
    let status = cluster.admin_ok(&["status"]);
    assert!(status.contains("rebalance running") && status.contains(&format!("on {b_address}")), "{status}");

    // B dies midway. A takes the job over once B's lease has not moved for the TTL (10 s by
    // A's own clock), and finishes it.
    cluster.more_gateways[b].proc.take().unwrap().kill();
    let killed = Instant::now();
    let taken = wait_for_job(&a_admin, "rebalance", Duration::from_secs(40), |p| p["owner"] != owner.as_str()).await;
    let waited = killed.elapsed();
    assert!(waited >= Duration::from_secs(8), "taken over after the TTL, not before: {waited:?}");
    assert_eq!(taken["state"], "running", "taken over midway: {taken}");
    assert_eq!(taken["takeovers"], 1, "{taken}");
    assert_eq!(taken["owner_address"], a_admin.trim_start_matches("http://"), "{taken}");
    let done = wait_for_job(&a_admin, "rebalance", Duration::from_secs(90), |p| p["state"] != "running").await;
    assert_eq!((done["state"].as_str(), done["errors"].as_u64()), (Some("done"), Some(0)), "{done}");
    assert_eq!(done["entries_done"], done["entries_total"], "{done}");
    eprintln!("taken over {waited:?} after the kill; finished: {done}");

    // Everything reads back, and every record matches the new ring.
    for (key, data) in &objects {
        let got = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes() == data[..], "{key} reads back");
    }
    let again: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["rebalance", "--dry-run", "--json"])).unwrap();
    assert_eq!(again["entries_misplaced"], 0, "{again}");
    assert!(!cluster.volumes[fourth].blob_files().is_empty(), "the new volume holds copies");
    // The copy B made when it died, if any, is an orphan for GC.
    cluster.admin_ok(&["gc", "--grace", "0"]);
    assert_eq!(cluster.blob_files().len(), 2 * (objects.len() + 1), "two copies of each blob, nothing else");
}
