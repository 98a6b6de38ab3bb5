//! The status console in headless Chromium (`python/console.py`, Selenium with Debian's
//! chromium and chromium-driver): sign in with the admin token, see three healthy volumes
//! with the buckets, queues and the last job, kill one volume, see it down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use aws_sdk_s3::primitives::ByteStream;
use compat_tests::{ADMIN_TOKEN, TestCluster, in_ci, require_tool};

#[tokio::test(flavor = "multi_thread")]
async fn console_shows_volumes_and_buckets_and_a_killed_volume_down() {
    let (Some(python), Some(chromium), Some(driver)) =
        (require_tool("python3"), require_tool("chromium"), require_tool("chromedriver"))
    else {
        return;
    };
    if !Command::new(&python).args(["-c", "import selenium"]).status().is_ok_and(|s| s.success()) {
        assert!(!in_ci(), "selenium is required in CI but is not installed");
        eprintln!("\n!!!!! SKIPPING: python3 cannot import selenium; this test needs it (CI installs it) !!!!!\n");
        return;
    }
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
    let mut browser = Command::new(python)
        .arg(script)
        .env("CAIRN_ADMIN_URL", cluster.admin_url())
        .env("CAIRN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CHROMIUM", chromium)
        .env("CHROMEDRIVER", driver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
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
