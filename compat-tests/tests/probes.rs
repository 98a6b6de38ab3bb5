//! Probes for a load balancer: `/health` and `/ready` on the admin listener answer without
//! the admin token, and `/ready` follows whether the gateway can take writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use compat_tests::TestCluster;

async fn probe(cluster: &TestCluster, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{}{path}", cluster.admin_url())).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls `/ready` until its status is `want`; returns the body.
async fn ready_becomes(cluster: &TestCluster, want: u16) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (status, body) = probe(cluster, "/ready").await;
        if status == want {
            return serde_json::from_str(&body).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "/ready stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_follows_the_write_quorum_and_needs_no_token() {
    let mut cluster = TestCluster::start(3, 2);
    assert_eq!(probe(&cluster, "/health").await, (200, "ok".to_string()));
    assert_eq!(probe(&cluster, "/status").await.0, 401, "everything else still needs the token");

    let ready = ready_becomes(&cluster, 200).await;
    assert_eq!(
        (ready["ready"].as_bool(), ready["volumes_up"].as_u64(), ready["write_quorum"].as_u64()),
        (Some(true), Some(3), Some(2)),
        "{ready}"
    );

    // One volume down: writes still reach two, so still ready.
    cluster.volumes[0].kill();
    s3_write(&cluster, "one-down").await;
    let (status, body) = probe(&cluster, "/ready").await;
    assert_eq!(status, 200, "{body}");

    // Two down: a write cannot reach its quorum, and the gateway says so.
    cluster.volumes[1].kill();
    let not_ready = ready_becomes(&cluster, 503).await;
    assert_eq!((not_ready["ready"].as_bool(), not_ready["volumes_up"].as_u64()), (Some(false), Some(1)), "{not_ready}");
    assert!(not_ready["reasons"].to_string().contains("a write needs 2"), "{not_ready}");

    cluster.volumes[1].start();
    let again = ready_becomes(&cluster, 200).await;
    assert_eq!(again["volumes_up"].as_u64(), Some(2), "{again}");
    assert_eq!(probe(&cluster, "/health").await.0, 200);
}

async fn s3_write(cluster: &TestCluster, key: &str) {
    let s3 = cluster.client();
    let _ = s3.create_bucket().bucket("probes").send().await;
    s3.put_object().bucket("probes").key(key).body(b"x".to_vec().into()).send().await.unwrap();
}
