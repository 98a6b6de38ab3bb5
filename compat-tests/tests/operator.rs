//! Rough edges an operator meets first: settings that cannot be crossed between the daemons.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use compat_tests::{CLUSTER_SECRET, TestCluster, binary, free_port};

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
        .arg("--init")
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

#[tokio::test(flavor = "multi_thread")]
async fn secrets_can_come_from_files_and_stay_out_of_the_process_list() {
    let mut cluster = compat_tests::TestCluster::start(1, 1);
    // Restart both daemons with their secrets in files only.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cluster_secret = write("cluster-secret", CLUSTER_SECRET);
    let secret_key = write("secret-key", compat_tests::SECRET_KEY);
    let admin_token = write("admin-token", compat_tests::ADMIN_TOKEN);
    cluster.gateway.take();
    let volume = &mut cluster.volumes[0];
    volume.kill();
    let mut cmd = Command::new(binary("cairn-volumed"));
    cmd.args(["--listen", &format!("127.0.0.1:{}", volume.port), "--cluster-secret-file", &cluster_secret]);
    cmd.arg("--allow-shared-fs");
    for d in &volume.dirs {
        cmd.arg("--dir").arg(d);
    }
    let mut volumed = cmd.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut gateway = Command::new(binary("cairn-gateway"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{}", cluster.s3_port)])
        .args(["--admin-listen", &format!("127.0.0.1:{}", cluster.admin_port)])
        .arg("--db")
        .arg(cluster.db_dir())
        .args(["--volumes", &cluster.volumes[0].url(), "--replicas", "1"])
        .args(["--access-key", compat_tests::ACCESS_KEY, "--secret-key-file", &secret_key])
        .args(["--cluster-secret-file", &cluster_secret, "--admin-token-file", &admin_token])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    for pid in [volumed.id(), gateway.id()] {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline);
        for secret in [CLUSTER_SECRET, compat_tests::SECRET_KEY, compat_tests::ADMIN_TOKEN] {
            assert!(!cmdline.contains(secret), "a secret is in the process list of {pid}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let s3 = cluster.client();
    loop {
        // The gateway signs with the key from the file, the volume accepts the secret from its file.
        if s3.create_bucket().bucket("bkt").send().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no answer with secrets from files");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s3.put_object().bucket("bkt").key("k").body(b"v".to_vec().into()).send().await.unwrap();
    assert_eq!(cluster.status().await["objects"], 1, "the admin token from its file works");
    for child in [&mut volumed, &mut gateway] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// Whether something on `port` answers an HTTP request (any status).
fn answers_http(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let request = b"GET /status HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n";
    let mut answer = [0u8; 8];
    stream.write_all(request).is_ok() && stream.read_exact(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.")
}

#[test]
fn the_gateway_says_where_it_listens_and_when_it_has_stopped() {
    let mut cluster = compat_tests::TestCluster::start(1, 1);
    cluster.gateway.take();
    let gateway = Command::new(binary("cairn-gateway"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{}", cluster.s3_port)])
        .args(["--admin-listen", &format!("127.0.0.1:{}", cluster.admin_port)])
        .arg("--db")
        .arg(cluster.db_dir())
        .args(["--volumes", &cluster.volumes[0].url(), "--replicas", "1", "--cluster-secret", CLUSTER_SECRET])
        .args(["--access-key", compat_tests::ACCESS_KEY, "--secret-key", compat_tests::SECRET_KEY])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The listeners are bound before the gateway joins its volumes, and a signal before it has
    // joined stops it there: wait until the admin API answers, not only accepts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers_http(cluster.admin_port) {
        assert!(Instant::now() < deadline, "the admin API did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill").args(["-TERM", &gateway.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = gateway.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let admin_addr = format!("127.0.0.1:{}", cluster.admin_port);
    assert!(log.lines().any(|l| l.contains("admin API serving") && l.contains(&admin_addr)), "{log}");
    assert!(log.lines().last().is_some_and(|l| l.contains("shutdown complete")), "{log}");
}

#[test]
fn a_second_volumed_on_the_same_disks_is_refused() {
    let cluster = compat_tests::TestCluster::start(1, 1);
    let volume = &cluster.volumes[0];
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(binary("cairn-volumed"));
        cmd.args(["--listen", &format!("127.0.0.1:{}", free_port()), "--cluster-secret", CLUSTER_SECRET]);
        cmd.args(extra);
        for d in &volume.dirs {
            cmd.arg("--dir").arg(d);
        }
        cmd.stdout(Stdio::null()).output().unwrap()
    };
    let second = run(&["--allow-shared-fs"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "two daemons on one volume's directories");
    assert!(stderr.contains("in use by another cairn-volumed"), "{stderr}");
    let fresh = [cluster.root.path().join("new/a"), cluster.root.path().join("new/b")];
    let shared = Command::new(binary("cairn-volumed"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--cluster-secret", CLUSTER_SECRET, "--init"])
        .args(["--dir", fresh[0].to_str().unwrap(), "--dir", fresh[1].to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!shared.status.success());
    assert!(String::from_utf8_lossy(&shared.stderr).contains("--allow-shared-fs"), "two --dir on one file system");
    let missing = Command::new(binary("cairn-volumed"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--cluster-secret", CLUSTER_SECRET, "--dir"])
        .arg(cluster.root.path().join("not-mounted"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--init"), "a missing disk is refused");
    assert!(!cluster.root.path().join("not-mounted").exists(), "and not created");
}

/// A volume that refuses the gateway's cluster secret is named as such, not as a volume that
/// does not answer, and takes no writes until it accepts it.
#[test]
fn a_volume_that_rejects_the_cluster_secret_is_reported_as_such() {
    use std::io::BufRead as _;
    let mut cluster = compat_tests::TestCluster::start(1, 1);
    cluster.gateway.take();
    let mut gateway = Command::new(binary("cairn-gateway"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{}", cluster.s3_port)])
        .args(["--admin-listen", &format!("127.0.0.1:{}", cluster.admin_port)])
        .arg("--db")
        .arg(cluster.root.path().join("fresh-index"))
        .args(["--volumes", &cluster.volumes[0].url(), "--replicas", "1", "--cluster-secret", "not-the-secret"])
        .args(["--access-key", compat_tests::ACCESS_KEY, "--secret-key", compat_tests::SECRET_KEY])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = gateway.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = Vec::new();
    let named = |l: &String| l.contains("ERROR") && l.contains("rejected the cluster secret");
    while !log.iter().any(named) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => break,
        }
    }
    let _ = gateway.kill();
    let _ = gateway.wait();
    let log = log.join("\n");
    let line = log.lines().find(|l| named(&l.to_string())).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&cluster.volumes[0].url()), "{log}");
    assert!(!log.contains("does not answer"), "{log}");
}

/// A frozen volume makes the gateway's start wait for its answer (up to the answer timeout),
/// but never makes it deaf to a signal.
#[test]
fn a_signal_stops_a_gateway_still_waiting_for_a_frozen_volume() {
    let mut cluster = compat_tests::TestCluster::start(2, 1);
    cluster.gateway.take();
    cluster.volumes[1].pause();
    let urls: Vec<String> = cluster.volumes.iter().map(compat_tests::Volume::url).collect();
    let mut gateway = Command::new(binary("cairn-gateway"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{}", cluster.s3_port)])
        .args(["--admin-listen", &format!("127.0.0.1:{}", cluster.admin_port)])
        .arg("--db")
        .arg(cluster.db_dir())
        .args(["--volumes", &urls.join(","), "--replicas", "1", "--cluster-secret", CLUSTER_SECRET])
        .args(["--access-key", compat_tests::ACCESS_KEY, "--secret-key", compat_tests::SECRET_KEY])
        .args(["--volume-timeout", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It binds before it asks the volumes; give it time to be asking.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", cluster.s3_port)).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not bind");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    assert!(Command::new("kill").args(["-INT", &gateway.id().to_string()]).status().unwrap().success());
    let exited = loop {
        if let Some(status) = gateway.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(30) {
            let _ = gateway.kill();
            panic!("the gateway ignored SIGINT for 30 s while a volume was frozen");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    cluster.volumes[1].resume();
    println!("stopped {:?} after SIGINT", signalled.elapsed());
    assert!(exited.success(), "{exited:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "took {:?}", signalled.elapsed());
}

/// `--log-format json`: every line the daemons write is one JSON object, and the access line
/// keeps the request id of its span.
#[tokio::test(flavor = "multi_thread")]
async fn both_daemons_log_json_lines_when_asked() {
    let mut cluster = compat_tests::TestCluster::start_logging(1, 1, Some("info"));
    cluster.stop_gateway();
    let before = cluster.gateway_log().len();
    cluster.gateway_args.extend(["--log-format".to_string(), "json".to_string()]);
    cluster.start_gateway();
    let s3 = cluster.client();
    s3.create_bucket().bucket("json").send().await.unwrap();
    let log = cluster.gateway_log()[before..].to_string();
    let lines: Vec<serde_json::Value> =
        log.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect();
    let access = lines.iter().find(|l| l["target"] == "access").unwrap_or_else(|| panic!("{log}"));
    assert_eq!(access["fields"]["op"], "CreateBucket", "{access}");
    assert_eq!(access["span"]["request_id"].as_str().map(str::len), Some(16), "{access}");

    let mut volumed = Command::new(binary("cairn-volumed"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--cluster-secret", CLUSTER_SECRET])
        .args(["--init", "--log-format", "json"])
        .arg("--dir")
        .arg(cluster.root.path().join("json-volume"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Every line up to the one saying it serves is JSON (opening the stores logs first).
    let stderr = volumed.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let Some(Ok(text)) = lines.next() else { break };
        let line: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        seen.push(line);
        if seen.last().is_some_and(|line| line["fields"]["message"] == "volume daemon serving") {
            break;
        }
    }
    let _ = volumed.kill();
    let _ = volumed.wait();
    let serving = seen.last().map(|line| line["fields"]["message"].clone());
    assert_eq!(serving, Some("volume daemon serving".into()), "{seen:?}");
}

/// `cairn-admin completions SHELL` prints a completion script that names the commands, needs no
/// token or gateway, and (bash) is a script bash accepts.
#[test]
fn cairn_admin_prints_shell_completions() {
    let completions = |shell: &str| {
        let out = std::process::Command::new(compat_tests::binary("cairn-admin"))
            .args(["completions", shell])
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = completions("bash");
    for command in ["status", "rebalance", "verify", "rebuild", "completions"] {
        assert!(bash.contains(command), "bash completion names {command}");
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("cairn-admin.bash");
    std::fs::write(&script, &bash).unwrap();
    let checked = std::process::Command::new("bash").arg("-n").arg(&script).status().unwrap();
    assert!(checked.success(), "bash -n accepts the script");
    assert!(completions("zsh").starts_with("#compdef cairn-admin"));
    assert!(completions("fish").contains("complete -c cairn-admin"));
}

/// SIGHUP reloads what can be reloaded (the TLS certificate, see `tls.rs`) and never ends the
/// gateway, so `systemctl reload` is safe without TLS too.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_does_not_stop_a_gateway_without_tls() {
    let mut cluster = TestCluster::start(1, 1);
    let pid = cluster.gateway.as_ref().unwrap().pid().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(cluster.gateway.as_mut().unwrap().try_wait().is_none(), "the gateway runs on");
    let s3 = cluster.client();
    s3.create_bucket().bucket("after-hup").send().await.unwrap();
}
