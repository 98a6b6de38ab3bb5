//! Checksums with aws-sdk-s3 (which sends them by default, as aws-chunked trailers),
//! presigned URLs, and virtual-host-style addressing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use base64::Engine as _;
use compat_tests::{TestCluster, test_bytes};
use sha2::Digest as _;

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(err: &aws_sdk_s3::error::SdkError<E>) -> String {
    err.as_service_error().and_then(|e| e.code()).unwrap_or("<no code>").to_string()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The value S3 reports for `data` under `algorithm`, computed independently of the gateway.
fn expected(algorithm: &ChecksumAlgorithm, data: &[u8]) -> String {
    use crc_fast::CrcAlgorithm::{Crc32Iscsi, Crc32IsoHdlc, Crc64Nvme};
    match algorithm {
        ChecksumAlgorithm::Crc32 => b64(&crc_fast::checksum(Crc32IsoHdlc, data).to_be_bytes()[4..]),
        ChecksumAlgorithm::Crc32C => b64(&crc_fast::checksum(Crc32Iscsi, data).to_be_bytes()[4..]),
        ChecksumAlgorithm::Crc64Nvme => b64(&crc_fast::checksum(Crc64Nvme, data).to_be_bytes()),
        ChecksumAlgorithm::Sha1 => b64(&sha1::Sha1::digest(data)),
        ChecksumAlgorithm::Sha256 => b64(&sha2::Sha256::digest(data)),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_algorithm_is_verified_stored_and_returned() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = test_bytes(300_001, 11);
    let algorithms = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];
    for algorithm in &algorithms {
        let key = format!("obj-{}", algorithm.as_str());
        // The SDK streams the body aws-chunked and sends the checksum as a trailer.
        let put = s3
            .put_object()
            .bucket("bkt")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        let want = expected(algorithm, &data);
        let echoed = [
            put.checksum_crc32(),
            put.checksum_crc32_c(),
            put.checksum_crc64_nvme(),
            put.checksum_sha1(),
            put.checksum_sha256(),
        ];
        assert!(echoed.contains(&Some(want.as_str())), "{algorithm:?}: PutObject echoes the checksum");

        let got = s3.get_object().bucket("bkt").key(&key).checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
        let returned = [
            got.checksum_crc32(),
            got.checksum_crc32_c(),
            got.checksum_crc64_nvme(),
            got.checksum_sha1(),
            got.checksum_sha256(),
        ];
        assert!(returned.contains(&Some(want.as_str())), "{algorithm:?}: {returned:?}");
        assert!(got.body.collect().await.unwrap().into_bytes() == data);

        // Not on ranged reads.
        let ranged = s3
            .get_object()
            .bucket("bkt")
            .key(&key)
            .range("bytes=0-9")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let returned = [
            ranged.checksum_crc32(),
            ranged.checksum_crc32_c(),
            ranged.checksum_crc64_nvme(),
            ranged.checksum_sha1(),
            ranged.checksum_sha256(),
        ];
        assert!(returned.iter().all(Option::is_none), "{returned:?}");
    }

    // A checksum header that does not match: BadDigest, nothing stored, old version intact.
    s3.put_object().bucket("bkt").key("guarded").body(b"original".to_vec().into()).send().await.unwrap();
    let wrong = expected(&ChecksumAlgorithm::Crc32, b"something else");
    let err = s3
        .put_object()
        .bucket("bkt")
        .key("guarded")
        .checksum_crc32(wrong)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BadDigest");
    let err = s3
        .put_object()
        .bucket("bkt")
        .key("never")
        .checksum_sha256(expected(&ChecksumAlgorithm::Sha256, b"nope"))
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BadDigest");
    let got = s3.get_object().bucket("bkt").key("guarded").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"original");
    assert!(s3.head_object().bucket("bkt").key("never").send().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_put_and_get_with_expiry() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let http = reqwest::Client::new();
    let data = test_bytes(100_000, 12);

    let put = s3
        .put_object()
        .bucket("bkt")
        .key("pre signed")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let response = http.put(put.uri()).body(data.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let get = s3
        .get_object()
        .bucket("bkt")
        .key("pre signed")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let response = http.get(get.uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap() == data);

    // Expired URLs are refused.
    let expired = s3
        .get_object()
        .bucket("bkt")
        .key("pre signed")
        .presigned(
            PresigningConfig::builder()
                .start_time(std::time::SystemTime::now() - Duration::from_secs(3600))
                .expires_in(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let response = http.get(expired.uri()).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("AccessDenied"));
    // Expiry beyond seven days: boto3 can sign such a URL, so python/boto3_suite.py checks it.
}

#[tokio::test(flavor = "multi_thread")]
async fn virtual_host_style_with_domain() {
    let cluster = TestCluster::start_with(3, 2, &["--domain", "s3.cairn.test"]);
    // Path style by IP keeps working with a domain set.
    let s3 = cluster.client();
    s3.create_bucket().bucket("vhost").send().await.unwrap();
    s3.put_object().bucket("vhost").key("a/b.txt").body(b"by path".to_vec().into()).send().await.unwrap();

    // A virtual-host-style client signs for `vhost.s3.cairn.test`; DNS is pinned to the gateway.
    let endpoint = format!("http://s3.cairn.test:{}", cluster.s3_port);
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            compat_tests::ACCESS_KEY,
            compat_tests::SECRET_KEY,
            None,
            None,
            "test",
        ))
        .build();
    let vhost = aws_sdk_s3::Client::from_conf(config);
    let presign = || PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let get = vhost.get_object().bucket("vhost").key("a/b.txt").presigned(presign()).await.unwrap();
    assert!(get.uri().starts_with("http://vhost.s3.cairn.test:"), "{}", get.uri());
    let put = vhost.put_object().bucket("vhost").key("by-host").presigned(presign()).await.unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], cluster.s3_port));
    let http = reqwest::Client::builder().resolve("vhost.s3.cairn.test", addr).build().unwrap();

    let response = http.get(get.uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(&response.bytes().await.unwrap()[..], b"by path");
    let response = http.put(put.uri()).body("by host").send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let got = s3.get_object().bucket("vhost").key("by-host").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"by host");
}
