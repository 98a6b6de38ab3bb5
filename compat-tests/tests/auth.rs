//! SigV4 with the root key, presigned URLs, and every way to be refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use compat_tests::{SECRET_KEY, TestCluster};

fn error_code(xml: &str) -> String {
    xml.split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next()).unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_and_presigned_urls() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    s3.put_object().bucket("bkt").key("k").body(b"secret data".to_vec().into()).send().await.unwrap();

    let unknown = cluster.client_with("AKIDUNKNOWN000000000", SECRET_KEY).list_buckets().send().await.unwrap_err();
    assert_eq!(unknown.code(), Some("InvalidAccessKeyId"));
    assert_eq!(unknown.raw_response().unwrap().status().as_u16(), 403);

    let wrong = cluster
        .client_with(compat_tests::ACCESS_KEY, "not-the-secret")
        .get_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some("SignatureDoesNotMatch"));
    assert_eq!(wrong.raw_response().unwrap().status().as_u16(), 403);

    let http = reqwest::Client::new();
    let anonymous = http.get(format!("{}/bkt/k", cluster.endpoint())).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 403);
    assert_eq!(error_code(&anonymous.text().await.unwrap()), "AccessDenied");

    let presigned = s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let fetched = http.get(presigned.uri()).send().await.unwrap();
    assert_eq!(fetched.status().as_u16(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), b"secret data");

    // A presigned URL plus an x-amz-* header that the signature does not cover.
    let tampered = http.get(presigned.uri()).header("x-amz-meta-injected", "1").send().await.unwrap();
    assert_eq!(tampered.status().as_u16(), 403);
    assert_eq!(error_code(&tampered.text().await.unwrap()), "AccessDenied");

    // A changed signature is refused.
    let uri = presigned.uri();
    let at = uri.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &uri[at..=at] == "0" { "1" } else { "0" };
    let forged = format!("{}{flipped}{}", &uri[..at], &uri[at + 1..]);
    let forged = http.get(forged).send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert_eq!(error_code(&forged.text().await.unwrap()), "SignatureDoesNotMatch");

    // Presigned PUT.
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("via-url")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uploaded = http.put(put.uri()).body("uploaded by url").send().await.unwrap();
    assert_eq!(uploaded.status().as_u16(), 200, "{}", uploaded.text().await.unwrap());
    let back = s3.get_object().bucket("bkt").key("via-url").send().await.unwrap();
    assert_eq!(back.body.collect().await.unwrap().into_bytes().as_ref(), b"uploaded by url");
}
