//! boto3 with its default checksum behaviour: upload_file / download_file of 50 MB, put with
//! each checksum algorithm, get with ChecksumMode, a bad checksum, presigned URL expiry.
//! The checks themselves are in `python/boto3_suite.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use compat_tests::TestCluster;
use compat_tests::tools::Tool;

#[test]
fn boto3_suite() {
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let Some(python) = Tool::boto3(&cluster, work.path()) else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/boto3_suite.py");
    let out = python.run(&[script, work.path().to_str().unwrap()]);
    assert!(out.contains("boto3 suite passed"), "{out}");
}
