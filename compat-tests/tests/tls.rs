//! HTTPS on the S3 listener (`--tls-cert`, `--tls-key`), with a test CA: aws cli and boto3
//! copy in and out, multipart included, with their default checksum settings (over TLS the
//! SDKs send aws-chunked bodies with trailing checksums, so this drives that path with real
//! clients); plain HTTP to that port gets no HTTP answer; a certificate that does not load
//! stops the gateway at start; SIGHUP makes it serve renewed files to new connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use compat_tests::TestCluster;
use compat_tests::tools::Tool;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA, and a server certificate it signed for `localhost` and 127.0.0.1: (CA, chain, key).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Cairn test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let paths = (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, server.pem()).unwrap();
    std::fs::write(&paths.2, server_key.serialize_pem()).unwrap();
    paths
}

const BOTO3_OVER_TLS: &str = r#"
import hashlib, os, sys
import boto3
from botocore.config import Config
work = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=os.environ["CAIRN_ENDPOINT"],
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
s3.create_bucket(Bucket="boto-tls")
body = os.urandom(300_001)
put = s3.put_object(Bucket="boto-tls", Key="small", Body=body)
got = s3.get_object(Bucket="boto-tls", Key="small", ChecksumMode="ENABLED")
assert got["Body"].read() == body
assert "ChecksumCRC32" in got or "ChecksumCRC64NVME" in got or "ChecksumCRC32C" in got, got
big = os.path.join(work, "big.bin")
with open(big, "wb") as f:
    f.write(os.urandom(20 * 1000 * 1000))
s3.upload_file(big, "boto-tls", "big")
assert "-" in s3.head_object(Bucket="boto-tls", Key="big")["ETag"], "multipart expected"
back = os.path.join(work, "big.back")
s3.download_file("boto-tls", "big", back)
assert hashlib.sha256(open(back, "rb").read()).digest() == hashlib.sha256(open(big, "rb").read()).digest()
print("boto3 over TLS passed")
"#;

#[test]
fn aws_cli_and_boto3_copy_in_and_out_over_tls() {
    let work = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(work.path());
    let (cert, key, ca) = (cert.to_str().unwrap(), key.to_str().unwrap(), ca.to_str().unwrap());
    let cluster = TestCluster::start_with(3, 2, &["--tls-cert", cert, "--tls-key", key]);
    let https = format!("https://localhost:{}", cluster.s3_port);

    if let Some(aws) = Tool::aws(&cluster, work.path()) {
        let aws = aws.with_endpoint(&https).with_args(&["--ca-bundle", ca]);
        aws.run(&["s3", "mb", "s3://tls"]);
        let big = work.path().join("big-cli.bin");
        std::fs::write(&big, compat_tests::test_bytes(20 * 1000 * 1000, 5)).unwrap();
        aws.run(&["s3", "cp", big.to_str().unwrap(), "s3://tls/big"]);
        let head = aws.run(&["s3api", "head-object", "--bucket", "tls", "--key", "big"]);
        assert!(head.contains("-3\\\"") || head.contains("-2\\\""), "aws cli went multipart: {head}");
        let back = work.path().join("big-cli.back");
        aws.run(&["s3", "cp", "s3://tls/big", back.to_str().unwrap()]);
        assert!(std::fs::read(&back).unwrap() == std::fs::read(&big).unwrap(), "the object came back whole");
    }

    if let Some(python) = Tool::boto3(&cluster, work.path()) {
        let python = python.with_endpoint(&https).with_env("AWS_CA_BUNDLE", ca);
        let out = python.run(&["-c", BOTO3_OVER_TLS, work.path().to_str().unwrap()]);
        assert!(out.contains("boto3 over TLS passed"), "{out}");
    }

    // Plain HTTP to the TLS port: the server answers with a TLS alert, never with HTTP.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", cluster.s3_port)).unwrap();
    plain.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /tls HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP got an HTTP answer: {:?}", String::from_utf8_lossy(&answer));
}

#[test]
fn a_certificate_that_does_not_load_stops_the_start() {
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("not-a-cert.pem");
    std::fs::write(&bad, "no PEM here").unwrap();
    let out = std::process::Command::new(compat_tests::binary("cairn-gateway"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--db", work.path().join("db").to_str().unwrap(), "--volumes", "http://127.0.0.1:9"])
        .args(["--cluster-secret", "s", "--access-key", "AKIDEXAMPLE", "--secret-key", "sk"])
        .args(["--tls-cert", bad.to_str().unwrap(), "--tls-key", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a configuration error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-cert.pem"), "{stderr}");
}

/// Whether a TLS handshake with the gateway succeeds for a client that trusts only `ca`.
fn handshake_trusting(ca: &Path, port: u16) -> bool {
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost"):
        pass
"#;
    std::process::Command::new("python3")
        .args(["-c", script, ca.to_str().unwrap(), &port.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn sighup_serves_a_renewed_certificate_and_keeps_the_old_one_if_the_new_does_not_load() {
    if compat_tests::require_tool("python3").is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (first_ca, cert, key) = test_ca(&work.path().join("first"));
    let (served_cert, served_key) = (work.path().join("served.pem"), work.path().join("served.key"));
    std::fs::copy(&cert, &served_cert).unwrap();
    std::fs::copy(&key, &served_key).unwrap();
    let mut cluster = TestCluster::start_with(
        1,
        1,
        &["--tls-cert", served_cert.to_str().unwrap(), "--tls-key", served_key.to_str().unwrap()],
    );
    let port = cluster.s3_port;
    let (second_ca, renewed_cert, renewed_key) = test_ca(&work.path().join("second"));
    assert!(handshake_trusting(&first_ca, port));
    assert!(!handshake_trusting(&second_ca, port), "a client of another CA is refused");

    let hangup = || {
        let pid = cluster.gateway.as_ref().unwrap().pid().to_string();
        assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    };
    std::fs::copy(&renewed_cert, &served_cert).unwrap();
    std::fs::copy(&renewed_key, &served_key).unwrap();
    hangup();
    let start = std::time::Instant::now();
    while !handshake_trusting(&second_ca, port) {
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "the renewed certificate is never served");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!handshake_trusting(&first_ca, port), "the old certificate is no longer served");

    // Files that do not load: logged, and the certificate in use stays.
    std::fs::write(&served_cert, "not PEM").unwrap();
    hangup();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(handshake_trusting(&second_ca, port), "still served after a failed reload");
    assert!(cluster.gateway.as_mut().unwrap().try_wait().is_none(), "the gateway runs on");
}
