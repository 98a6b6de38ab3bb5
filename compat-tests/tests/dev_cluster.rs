//! `cairn-gateway dev`, the README's main command: it serves S3 with generated credentials,
//! keeps the data across a restart, and shuts down cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use compat_tests::{binary, free_port, test_bytes};

struct Dev {
    child: std::process::Child,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path, s3_port: u16, admin_port: u16) -> Dev {
    start_with(data, s3_port, admin_port, &[])
}

fn start_with(data: &std::path::Path, s3_port: u16, admin_port: u16, extra: &[&str]) -> Dev {
    let child = Command::new(binary("cairn-gateway"))
        .arg("dev")
        .arg("--data")
        .arg(data)
        .args(extra)
        .args(["--listen", &format!("127.0.0.1:{s3_port}"), "--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err() {
        assert!(Instant::now() < deadline, "dev cluster did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Dev { child }
}

fn client_credentials(data: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data.join("credentials.json")).unwrap()).unwrap()
}

fn client(data: &std::path::Path, s3_port: u16) -> aws_sdk_s3::Client {
    use std::os::unix::fs::PermissionsExt as _;
    let path = data.join("credentials.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the credentials file is the owner's alone");
    let credentials = client_credentials(data);
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{s3_port}"))
        .force_path_style(true)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            credentials["access_key"].as_str().unwrap(),
            credentials["secret_key"].as_str().unwrap(),
            None,
            None,
            "dev",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_cluster_serves_and_keeps_data_across_restarts() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("cairn-data");
    let (s3_port, admin_port) = (free_port(), free_port());
    let payload = test_bytes(5 * 1024 * 1024, 5);

    let mut dev = start(&data, s3_port, admin_port);
    let s3 = client(&data, s3_port);
    s3.create_bucket().bucket("demo").send().await.unwrap();
    s3.put_object().bucket("demo").key("five-mb").body(payload.clone().into()).send().await.unwrap();

    // The object's blob (the only one of 5 MB; the bucket has a small blob of its own) is on
    // exactly two of the three volumes.
    let holders = (1..=3)
        .filter(|v| {
            let mut found = false;
            for sv in 0..2 {
                let dir = data.join(format!("volume-{v}/sv{sv}"));
                found |= walk(&dir).iter().any(|(name, len)| name.len() == 32 && *len >= payload.len() as u64);
            }
            found
        })
        .count();
    assert_eq!(holders, 2);

    // SIGTERM: a clean shutdown (exit code 0), and the banner told users how to connect.
    let status = Command::new("kill").args(["-TERM", &dev.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = dev.child.wait().unwrap();
    assert!(exit.success(), "dev exited with {exit}");
    let mut banner = String::new();
    std::io::Read::read_to_string(dev.child.stdout.as_mut().unwrap(), &mut banner).unwrap();
    assert!(banner.contains(&format!("http://127.0.0.1:{s3_port}")), "{banner}");
    assert!(banner.contains("aws --endpoint-url"), "{banner}");
    let admin_token = client_credentials(&data)["admin_token"].as_str().unwrap().to_string();
    assert!(
        banner
            .contains(&format!("export CAIRN_ADMIN_URL=http://127.0.0.1:{admin_port} CAIRN_ADMIN_TOKEN={admin_token}")),
        "{banner}"
    );
    drop(dev);

    let _dev = start(&data, s3_port, admin_port);
    let s3 = client(&data, s3_port);
    let back = s3.get_object().bucket("demo").key("five-mb").send().await.unwrap();
    assert!(back.body.collect().await.unwrap().into_bytes() == payload, "data survives a restart");
}

/// `scripts/dev --index postgres://…`: the dev cluster keeps its index in PostgreSQL (no
/// RocksDB directory under its data), says where in its banner, and finds its data again.
#[tokio::test(flavor = "multi_thread")]
async fn dev_cluster_keeps_its_index_in_postgresql() {
    let Some(postgres) = compat_tests::postgres::TestPostgres::start("dev_cluster on PostgreSQL") else { return };
    let url = postgres.create_database();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("cairn-data");
    let (s3_port, admin_port) = (free_port(), free_port());
    let payload = test_bytes(100_000, 6);

    let mut dev = start_with(&data, s3_port, admin_port, &["--index", &url]);
    let s3 = client(&data, s3_port);
    s3.create_bucket().bucket("demo").send().await.unwrap();
    s3.put_object().bucket("demo").key("pg").body(payload.clone().into()).send().await.unwrap();

    let status = Command::new("kill").args(["-TERM", &dev.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = dev.child.wait().unwrap();
    assert!(exit.success(), "dev exited with {exit}");
    let mut banner = String::new();
    std::io::Read::read_to_string(dev.child.stdout.as_mut().unwrap(), &mut banner).unwrap();
    assert!(banner.contains(&format!("Index         {url}")), "{banner}");
    drop(dev);
    assert!(!data.join("index").exists(), "a RocksDB index was made next to PostgreSQL");
    let rows = postgres.psql(&url, "SELECT count(*) FROM cairn_objects");
    assert_eq!(rows, "1", "the object's record is in PostgreSQL");

    // What it acknowledged is there after a restart on the same database.
    let _dev = start_with(&data, s3_port, admin_port, &["--index", &url]);
    let s3 = client(&data, s3_port);
    let back = s3.get_object().bucket("demo").key("pg").send().await.unwrap();
    assert!(back.body.collect().await.unwrap().into_bytes() == payload, "data survives a restart");
}

/// Every file under `dir`: its name and length.
fn walk(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                out.extend(walk(&entry.path()));
            } else {
                let len = entry.metadata().map_or(0, |m| m.len());
                out.push((entry.file_name().to_string_lossy().into_owned(), len));
            }
        }
    }
    out
}
