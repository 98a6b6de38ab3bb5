//! Rough edges an operator meets first: settings that cannot be crossed between the daemons.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use compat_tests::{CLUSTER_SECRET, binary, free_port};

#[test]
fn volumed_reads_its_own_environment_not_the_gateways() {
    // One host, one environment file for both daemons: the gateway's CAIRN_LISTEN must not
    // move the volume daemon onto the S3 port.
    let dir = tempfile::tempdir().unwrap();
    let (gateway_port, volume_port) = (free_port(), free_port());
    let mut child = Command::new(binary("cairn-volumed"))
        .env("CAIRN_LISTEN", format!("127.0.0.1:{gateway_port}"))
        .env("CAIRN_VOLUMED_LISTEN", format!("127.0.0.1:{volume_port}"))
        .env("CAIRN_VOLUMED_DIRS", dir.path().join("sv0"))
        .env("CAIRN_CLUSTER_SECRET", CLUSTER_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", volume_port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "cairn-volumed exited");
        assert!(Instant::now() < deadline, "cairn-volumed did not listen on CAIRN_VOLUMED_LISTEN");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", gateway_port)).is_err(), "it took the gateway's port");
    child.kill().unwrap();
    child.wait().unwrap();
}
