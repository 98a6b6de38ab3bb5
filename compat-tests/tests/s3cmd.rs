//! s3cmd, an S3 client that signs with SigV2: make a bucket, put with `x-amz-meta-*` headers
//! (which SigV2 signs), get, list, info, delete, remove the bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use compat_tests::tools::Tool;
use compat_tests::{TestCluster, test_bytes};

#[tokio::test(flavor = "multi_thread")]
async fn s3cmd_signs_with_sigv2_for_every_everyday_command() {
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let Some(s3cmd) = Tool::s3cmd(&cluster, work.path()) else { return };
    let source = work.path().join("photo.bin");
    let data = test_bytes(300_000, 7);
    std::fs::write(&source, &data).unwrap();

    s3cmd.run(&["mb", "s3://v2-bucket"]);
    s3cmd.run(&["put", "--add-header=x-amz-meta-color:blue", source.to_str().unwrap(), "s3://v2-bucket/dir/photo.bin"]);
    let listing = s3cmd.run(&["ls", "s3://v2-bucket/dir/"]);
    assert!(listing.contains("s3://v2-bucket/dir/photo.bin") && listing.contains("300000"), "{listing}");
    let back = work.path().join("back.bin");
    s3cmd.run(&["get", "s3://v2-bucket/dir/photo.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "downloaded bytes differ");

    // The metadata header arrived signed and is stored.
    let head = cluster.client().head_object().bucket("v2-bucket").key("dir/photo.bin").send().await.unwrap();
    assert_eq!(head.metadata().and_then(|m| m.get("color")).map(String::as_str), Some("blue"));
    let info = s3cmd.run(&["info", "s3://v2-bucket/dir/photo.bin"]);
    assert!(info.contains("x-amz-meta-color: blue"), "{info}");

    s3cmd.run(&["del", "s3://v2-bucket/dir/photo.bin"]);
    assert!(!s3cmd.run(&["ls", "--recursive", "s3://v2-bucket"]).contains("photo.bin"));
    s3cmd.run(&["rb", "s3://v2-bucket"]);
    assert!(!s3cmd.run(&["ls"]).contains("v2-bucket"));
}
