//! s3cmd, an S3 client that signs with SigV2: make a bucket, put with `x-amz-meta-*` headers
//! (which SigV2 signs), get, list, info, delete, remove the bucket; SigV2 requests dated far
//! from now are RequestTimeTooSkewed; `--sigv2 off` refuses SigV2 and keeps SigV4.

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

/// A SigV2 header-signed GET of `path`, dated `date` (an HTTP date).
async fn sigv2_get(cluster: &TestCluster, path: &str, date: &str) -> reqwest::Response {
    use base64::Engine as _;
    use hmac::{KeyInit as _, Mac as _};
    let string_to_sign = format!("GET\n\n\n{date}\n{path}");
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(compat_tests::SECRET_KEY.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    reqwest::Client::new()
        .get(format!("{}{path}", cluster.endpoint()))
        .header("date", date)
        .header("authorization", format!("AWS {}:{signature}", compat_tests::ACCESS_KEY))
        .send()
        .await
        .unwrap()
}

fn http_date(unix: u64) -> String {
    use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
    DateTime::from_secs(unix as i64).fmt(DateTimeFormat::HttpDate).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigv2_requests_must_be_dated_now() {
    let cluster = TestCluster::start(3, 2);
    cluster.client().create_bucket().bucket("bkt").send().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(sigv2_get(&cluster, "/bkt/", &http_date(now)).await.status(), 200);
    for skewed in [now - 20 * 60, now + 20 * 60] {
        let refused = sigv2_get(&cluster, "/bkt/", &http_date(skewed)).await;
        assert_eq!(refused.status(), 403);
        assert!(refused.text().await.unwrap().contains("<Code>RequestTimeTooSkewed</Code>"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigv2_off_refuses_sigv2_and_keeps_sigv4() {
    let cluster = TestCluster::start_with(3, 2, &["--sigv2", "off"]);
    let work = tempfile::tempdir().unwrap();
    cluster.client().create_bucket().bucket("bkt").send().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let refused = sigv2_get(&cluster, "/bkt/", &http_date(now)).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("Please use AWS4-HMAC-SHA256"));
    let Some(s3cmd) = Tool::s3cmd(&cluster, work.path()) else { return };
    // S3's own wording, which s3cmd recognises: it switches to SigV4 and goes on.
    let out = s3cmd.output(&["ls", "s3://bkt", "--debug"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("Using signature v2") && log.contains("Endpoint requires signature v4"), "{log}");
}

/// s3cmd's ACL commands (SigV2, the ACL as an XML body read, changed and put back): a file put
/// with `--acl-public` is readable without credentials; `setacl --acl-private` takes that away,
/// `setacl --acl-public` gives it back; `info` shows the grants. The bucket's ownership must
/// enable ACLs first, as on S3.
#[tokio::test(flavor = "multi_thread")]
async fn s3cmd_makes_objects_public_and_private() {
    use aws_sdk_s3::types::{ObjectOwnership, OwnershipControls, OwnershipControlsRule};
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let Some(s3cmd) = Tool::s3cmd(&cluster, work.path()) else { return };
    let s3 = cluster.client();
    s3.create_bucket().bucket("shared").send().await.unwrap();
    let source = work.path().join("page.html");
    std::fs::write(&source, b"<h1>hello</h1>").unwrap();
    let out = s3cmd.output(&["put", "--acl-public", source.to_str().unwrap(), "s3://shared/page.html"]);
    assert!(!out.status.success(), "ACLs are disabled on a new bucket");
    assert!(String::from_utf8_lossy(&out.stderr).contains("AccessControlListNotSupported"));

    let rule = OwnershipControlsRule::builder().object_ownership(ObjectOwnership::ObjectWriter).build().unwrap();
    let controls = OwnershipControls::builder().rules(rule).build().unwrap();
    s3.put_bucket_ownership_controls().bucket("shared").ownership_controls(controls).send().await.unwrap();
    s3cmd.run(&["put", "--acl-public", source.to_str().unwrap(), "s3://shared/page.html"]);
    let anonymous = || async {
        let response = reqwest::get(format!("{}/shared/page.html", cluster.endpoint())).await.unwrap();
        (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
    };
    assert_eq!(anonymous().await, (200, b"<h1>hello</h1>".to_vec()));
    let info = s3cmd.run(&["info", "s3://shared/page.html"]);
    assert!(info.contains("*anon*: READ"), "{info}");

    s3cmd.run(&["setacl", "--acl-private", "s3://shared/page.html"]);
    assert_eq!(anonymous().await.0, 403);
    assert!(!s3cmd.run(&["info", "s3://shared/page.html"]).contains("*anon*"));
    s3cmd.run(&["setacl", "--acl-public", "s3://shared/page.html"]);
    assert_eq!(anonymous().await.0, 200);
}
