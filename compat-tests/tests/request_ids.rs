//! A request can be followed from the client into the volumes: the gateway's request id
//! (`x-amz-request-id`, which the SDKs expose) goes to every volume request it makes and into
//! the volume daemons' log lines for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::operation::RequestId as _;
use compat_tests::{CLUSTER_SECRET, TestCluster, binary, test_bytes};

#[tokio::test(flavor = "multi_thread")]
async fn a_volume_logs_the_request_id_of_the_client_request_it_serves() {
    let mut cluster = TestCluster::start(2, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = test_bytes(3000, 7);
    s3.put_object().bucket("bkt").key("k").body(data.clone().into()).send().await.unwrap();

    // Volume 0 again, its log in a file.
    cluster.volumes[0].kill();
    let log_path = cluster.root.path().join("volume0.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let volume = &cluster.volumes[0];
    let mut command = Command::new(binary("cairn-volumed"));
    command.args([
        "--listen",
        &format!("127.0.0.1:{}", volume.port),
        "--cluster-secret",
        CLUSTER_SECRET,
        "--allow-shared-fs",
    ]);
    for dir in &volume.dirs {
        command.arg("--dir").arg(dir);
    }
    let mut daemon = command.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(log).spawn().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", volume.port)).is_err() {
        assert!(daemon.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(&log_path).unwrap());
        assert!(started.elapsed() < Duration::from_secs(20), "volume did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Its copy is damaged: a read that meets it makes the volume log a warning.
    let file = cluster.volumes[0]
        .dirs
        .iter()
        .flat_map(|dir| walk(dir))
        .find(|path| std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(&data[..100])))
        .expect("volume 0 holds a copy");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 0x20;
    std::fs::write(&file, bytes).unwrap();

    let mut ids = Vec::new();
    let mut logged = String::new();
    for _ in 0..40 {
        let got = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
        ids.push(got.request_id().unwrap().to_string());
        assert!(got.body.collect().await.unwrap().into_bytes() == data[..]);
        logged = std::fs::read_to_string(&log_path).unwrap();
        if logged.contains("corrupt blob refused") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let line = logged.lines().find(|l| l.contains("corrupt blob refused")).unwrap_or_else(|| panic!("{logged}"));
    assert!(ids.iter().any(|id| line.contains(&format!("request_id={id}"))), "{line} names none of {ids:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
