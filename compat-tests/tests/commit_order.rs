//! The last write to *complete* wins: of two overlapping PUTs of one key, the one whose
//! request finished last is current, even though it started first — and a rebuild of the
//! index from the volumes agrees, because the volumes' commit logs carry the commit order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use compat_tests::{CLUSTER_SECRET, TestCluster, test_bytes};
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;

/// A request body the test feeds chunk by chunk, so the request stays open between them.
struct FedBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for FedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }
}

/// The timestamp each object blob of `key` was written with (when its write started), by
/// data length, from every volume's listing.
async fn blob_start_times(cluster: &TestCluster, key: &str) -> Vec<(u64, u64)> {
    let mut found = Vec::new();
    for volume in &cluster.volumes {
        for sv in 0..2 {
            let listing: serde_json::Value = reqwest::Client::new()
                .get(format!("{}/list/{sv}?limit=1000", volume.url()))
                .bearer_auth(CLUSTER_SECRET)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for blob in listing["blobs"].as_array().unwrap() {
                if blob["meta"]["key"] == key && blob["meta"]["kind"] == "object" {
                    found.push((blob["data_len"].as_u64().unwrap(), blob["meta"]["ts"].as_u64().unwrap()));
                }
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn the_put_that_completes_last_wins_and_a_rebuild_agrees() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();

    // A starts first and stays open; B starts and completes while A is still sending.
    const HALF: usize = 64 * 1024;
    let slow = test_bytes(2 * HALF, 1);
    let (feed, body) = mpsc::channel(1);
    let put_slow = {
        let s3 = s3.clone();
        tokio::spawn(async move {
            s3.put_object()
                .bucket("bkt")
                .key("k")
                .content_length((2 * HALF) as i64)
                .body(ByteStream::from_body_1_x(FedBody(body).boxed()))
                .send()
                .await
        })
    };
    feed.send(Bytes::copy_from_slice(&slow[..HALF])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fast = test_bytes(1000, 2);
    s3.put_object().bucket("bkt").key("k").body(fast.clone().into()).send().await.unwrap();
    assert!(!put_slow.is_finished(), "the slow PUT is still sending");
    feed.send(Bytes::copy_from_slice(&slow[HALF..])).await.unwrap();
    drop(feed);
    put_slow.await.unwrap().unwrap();

    // The slow write started first: its blob carries the older timestamp.
    let started = blob_start_times(&cluster, "k").await;
    assert_eq!(started.len(), 2, "{started:?}");
    let (fast_started, slow_started) = (started[0].1, started[1].1);
    assert!(slow_started < fast_started, "the slow PUT started first: {started:?}");

    assert_eq!(body_of(&s3, "k").await.len(), slow.len(), "the last to complete wins");
    assert!(body_of(&s3, "k").await == slow);

    // A rebuild from the volumes alone orders the two the same way.
    cluster.stop_gateway();
    let (rebuilt, _) = cluster.rebuild_ok("rebuilt-index");
    std::fs::remove_dir_all(cluster.db_dir()).unwrap();
    std::fs::rename(&rebuilt, cluster.db_dir()).unwrap();
    cluster.start_gateway();
    let s3 = cluster.client();
    assert_eq!(body_of(&s3, "k").await.len(), slow.len(), "the rebuild agrees");
    assert!(body_of(&s3, "k").await == slow);

    // And a new write after the rebuild is newer than both.
    s3.put_object().bucket("bkt").key("k").body(b"after".to_vec().into()).send().await.unwrap();
    assert_eq!(body_of(&s3, "k").await, b"after");
}

async fn body_of(s3: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    let got = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}
