//! aws cli smoke test: mb, cp of a 5 MB file, ls, cp back, compare, rm, rb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use compat_tests::{ACCESS_KEY, SECRET_KEY, TestCluster, require_tool, test_bytes};

#[test]
fn aws_cli_smoke() {
    let Some(aws) = require_tool("aws") else { return };
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(&aws)
            .arg("--endpoint-url")
            .arg(cluster.endpoint())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", work.path().join("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", work.path().join("no-credentials"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "aws {args:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        stdout
    };
    let source = work.path().join("five-mb.bin");
    let data = test_bytes(5 * 1024 * 1024, 42);
    std::fs::write(&source, &data).unwrap();
    let back = work.path().join("back.bin");

    run(&["s3", "mb", "s3://smoke"]);
    run(&["s3", "cp", source.to_str().unwrap(), "s3://smoke/dir/five mb.bin"]);
    let listing = run(&["s3", "ls", "s3://smoke/dir/"]);
    assert!(listing.contains("five mb.bin") && listing.contains(&data.len().to_string()), "{listing}");
    run(&["s3", "cp", "s3://smoke/dir/five mb.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "downloaded bytes differ");
    run(&["s3", "rm", "s3://smoke/dir/five mb.bin"]);
    assert!(run(&["s3", "ls", "s3://smoke/", "--recursive"]).trim().is_empty());
    run(&["s3", "rb", "s3://smoke"]);
    assert!(!run(&["s3", "ls"]).contains("smoke"));
}
