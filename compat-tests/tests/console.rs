//! The status console in headless Chromium (`python/console.py`, Selenium with Debian's
//! chromium and chromium-driver): sign in with the admin token, see three healthy volumes
//! with the buckets, queues and the last job, kill one volume, see it down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};

use aws_sdk_s3::primitives::ByteStream;
use compat_tests::tools::start_browser_script;
use compat_tests::{ADMIN_TOKEN, TestCluster};

#[tokio::test(flavor = "multi_thread")]
async fn console_shows_volumes_and_buckets_and_a_killed_volume_down() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("photos").send().await.unwrap();
    for key in ["a.jpg", "b.jpg", "c.jpg"] {
        s3.put_object().bucket("photos").key(key).body(ByteStream::from_static(b"jpeg")).send().await.unwrap();
    }
    // An overwrite leaves one blob (4 bytes) in the GC queue; a verify is the last job.
    s3.put_object().bucket("photos").key("a.jpg").body(ByteStream::from_static(b"jpeg2")).send().await.unwrap();
    cluster.admin_ok(&["verify"]);
    compat_tests::wait_for_job(&cluster.admin_url(), "verify", std::time::Duration::from_secs(60), |p| {
        p["state"] == "done"
    })
    .await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/console.py");
    let envs = [("CAIRN_ADMIN_URL", cluster.admin_url()), ("CAIRN_ADMIN_TOKEN", ADMIN_TOKEN.to_string())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let Some(mut browser) = start_browser_script(script, &envs) else { return };
    let mut said = BufReader::new(browser.stdout.take().unwrap()).lines();
    let first = said.next().map(Result::unwrap);
    if first.as_deref() != Some("three volumes up") {
        let status = browser.wait().unwrap();
        panic!("the console did not show three healthy volumes: {first:?} ({status})");
    }

    let killed = cluster.volumes[1].url();
    cluster.volumes[1].kill();
    writeln!(browser.stdin.as_mut().unwrap(), "killed {killed}").unwrap();
    let last = said.next().map(Result::unwrap);
    let status = browser.wait().unwrap();
    assert_eq!(last.as_deref(), Some("console passed"), "the console did not show the volume down ({status})");
    assert!(status.success(), "{status}");
}
