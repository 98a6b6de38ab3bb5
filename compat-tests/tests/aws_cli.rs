//! aws cli against a cluster of real processes: the everyday commands, a 100 MB multipart
//! copy, sync of a 300-file tree both ways, conditional put, checksums, presigned URLs, the
//! versioning walk through `s3api`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use compat_tests::tools::{Tool, assert_same_tree, make_tree};
use compat_tests::{TestCluster, require_tool, test_bytes};

fn setup() -> Option<(TestCluster, tempfile::TempDir, Tool)> {
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let aws = Tool::aws(&cluster, work.path())?;
    Some((cluster, work, aws))
}

#[test]
fn smoke_mb_cp_ls_rm_rb() {
    let Some((_cluster, work, aws)) = setup() else { return };
    let source = work.path().join("five-mb.bin");
    let data = test_bytes(5 * 1024 * 1024, 42);
    std::fs::write(&source, &data).unwrap();
    let back = work.path().join("back.bin");

    aws.run(&["s3", "mb", "s3://smoke"]);
    aws.run(&["s3", "cp", source.to_str().unwrap(), "s3://smoke/dir/five mb.bin"]);
    let listing = aws.run(&["s3", "ls", "s3://smoke/dir/"]);
    assert!(listing.contains("five mb.bin") && listing.contains(&data.len().to_string()), "{listing}");
    aws.run(&["s3", "cp", "s3://smoke/dir/five mb.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "downloaded bytes differ");
    aws.run(&["s3", "rm", "s3://smoke/dir/five mb.bin"]);
    assert!(aws.run(&["s3", "ls", "s3://smoke/", "--recursive"]).trim().is_empty());
    aws.run(&["s3", "rb", "s3://smoke"]);
    assert!(!aws.run(&["s3", "ls"]).contains("smoke"));
}

#[test]
fn hundred_megabyte_copy_is_multipart_both_ways() {
    let Some((_cluster, work, aws)) = setup() else { return };
    let source = work.path().join("big.bin");
    let data = test_bytes(100 * 1000 * 1000, 7);
    std::fs::write(&source, &data).unwrap();
    aws.run(&["s3", "mb", "s3://big"]);
    aws.run(&["s3", "cp", source.to_str().unwrap(), "s3://big/big.bin"]);
    let head = aws.run(&["s3api", "head-object", "--bucket", "big", "--key", "big.bin"]);
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentLength"], 100_000_000);
    assert!(head["ETag"].as_str().unwrap().contains('-'), "uploaded in parts: {head}");
    let back = work.path().join("back.bin");
    aws.run(&["s3", "cp", "s3://big/big.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "downloaded bytes differ");
}

#[test]
fn sync_a_tree_up_and_down_then_nothing_to_do() {
    let Some((_cluster, work, aws)) = setup() else { return };
    let source = work.path().join("source tree");
    let files = make_tree(&source, 300);
    aws.run(&["s3", "mb", "s3://tree"]);
    let up = aws.output(&["s3", "sync", source.to_str().unwrap(), "s3://tree/backup/", "--no-progress", "--debug"]);
    assert!(up.status.success());
    // The tree has empty files: botocore sends them with `Expect: 100-continue`, and unless
    // the gateway closes that connection, misparses the next response on it (boto/botocore#3755).
    let debug = String::from_utf8_lossy(&up.stderr);
    assert!(!debug.contains("MissingHeaderBodySeparatorDefect"), "a response was misparsed");
    assert!(!debug.contains("retry needed, "), "no request had to be retried");
    let up = String::from_utf8_lossy(&up.stdout);
    assert_eq!(up.lines().filter(|l| l.starts_with("upload:")).count(), files.len(), "{up}");
    let again = aws.run(&["s3", "sync", source.to_str().unwrap(), "s3://tree/backup/", "--no-progress"]);
    assert!(again.trim().is_empty(), "a second sync transfers nothing: {again}");
    let listing = aws.run(&["s3", "ls", "s3://tree/backup/", "--recursive"]);
    assert_eq!(listing.lines().count(), files.len());

    let down = work.path().join("restored");
    aws.run(&["s3", "sync", "s3://tree/backup/", down.to_str().unwrap(), "--no-progress"]);
    assert_same_tree(&source, &down);
    let again = aws.run(&["s3", "sync", "s3://tree/backup/", down.to_str().unwrap(), "--no-progress"]);
    assert!(again.trim().is_empty(), "a second sync down transfers nothing: {again}");
}

#[test]
fn s3api_conditional_put_checksums_and_presign() {
    let Some((_cluster, work, aws)) = setup() else { return };
    let Some(curl) = require_tool("curl") else { return };
    let file = work.path().join("body.txt");
    std::fs::write(&file, b"conditional body").unwrap();
    let body = file.to_str().unwrap();
    aws.run(&["s3", "mb", "s3://api"]);

    aws.run(&["s3api", "put-object", "--bucket", "api", "--key", "once", "--body", body, "--if-none-match", "*"]);
    let second = aws.output(&[
        "s3api",
        "put-object",
        "--bucket",
        "api",
        "--key",
        "once",
        "--body",
        body,
        "--if-none-match",
        "*",
    ]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("PreconditionFailed"), "{second:?}");

    let put = aws.run(&[
        "s3api",
        "put-object",
        "--bucket",
        "api",
        "--key",
        "summed",
        "--body",
        body,
        "--checksum-algorithm",
        "SHA256",
    ]);
    let put: serde_json::Value = serde_json::from_str(&put).unwrap();
    let sum = put["ChecksumSHA256"].as_str().expect("PutObject returns the checksum").to_string();
    let head = aws.run(&["s3api", "head-object", "--bucket", "api", "--key", "summed", "--checksum-mode", "ENABLED"]);
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ChecksumSHA256"].as_str(), Some(sum.as_str()));
    use sha2::Digest as _;
    let local =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sha2::Sha256::digest(b"conditional body"));
    assert_eq!(sum, local);

    let url = aws.run(&["s3", "presign", "s3://api/summed", "--expires-in", "300"]);
    let fetched = Command::new(curl).args(["-sS", "--fail", url.trim()]).output().unwrap();
    assert!(fetched.status.success(), "{fetched:?}");
    assert_eq!(fetched.stdout, b"conditional body");
}

/// The versioning walk: enable, two versions, list them, read the first by id, delete (a
/// marker), list the marker, undelete by deleting the marker.
#[test]
fn s3api_versioning_walk() {
    let Some((_cluster, work, aws)) = setup() else { return };
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&aws.run(args)).unwrap() };
    aws.run(&["s3", "mb", "s3://vers"]);
    aws.run(&["s3api", "put-bucket-versioning", "--bucket", "vers", "--versioning-configuration", "Status=Enabled"]);
    let status = json(&["s3api", "get-bucket-versioning", "--bucket", "vers"]);
    assert_eq!(status["Status"], "Enabled");
    let mut ids = Vec::new();
    for content in ["first", "second"] {
        let file = work.path().join(content);
        std::fs::write(&file, content).unwrap();
        let put = json(&["s3api", "put-object", "--bucket", "vers", "--key", "doc", "--body", file.to_str().unwrap()]);
        ids.push(put["VersionId"].as_str().expect("a version id").to_string());
    }
    let listed = json(&["s3api", "list-object-versions", "--bucket", "vers"]);
    let versions = listed["Versions"].as_array().unwrap();
    let listed_ids: Vec<&str> = versions.iter().map(|v| v["VersionId"].as_str().unwrap()).collect();
    assert_eq!(listed_ids, [ids[1].as_str(), ids[0].as_str()], "newest first");
    assert_eq!(versions[0]["IsLatest"], true);
    assert_eq!(versions[1]["IsLatest"], false);

    let out = work.path().join("out");
    let got = json(&[
        "s3api",
        "get-object",
        "--bucket",
        "vers",
        "--key",
        "doc",
        "--version-id",
        &ids[0],
        out.to_str().unwrap(),
    ]);
    assert_eq!(got["VersionId"].as_str(), Some(ids[0].as_str()));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "first");

    let deleted = json(&["s3api", "delete-object", "--bucket", "vers", "--key", "doc"]);
    assert_eq!(deleted["DeleteMarker"], true);
    let marker = deleted["VersionId"].as_str().unwrap().to_string();
    assert!(aws.run(&["s3", "ls", "s3://vers/"]).trim().is_empty(), "the marker hides the key");
    let listed = json(&["s3api", "list-object-versions", "--bucket", "vers"]);
    assert_eq!(listed["DeleteMarkers"][0]["VersionId"].as_str(), Some(marker.as_str()));
    assert_eq!(listed["DeleteMarkers"][0]["IsLatest"], true);
    assert_eq!(listed["Versions"].as_array().unwrap().len(), 2);

    aws.run(&["s3api", "delete-object", "--bucket", "vers", "--key", "doc", "--version-id", &marker]);
    aws.run(&["s3", "cp", "s3://vers/doc", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "second", "undeleted");
}
