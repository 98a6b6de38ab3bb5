//! Object operations with aws-sdk-s3 (current defaults, so CRC32 checksums ride along).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use compat_tests::{TestCluster, test_bytes};

fn content_md5(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(<md5::Md5 as md5::Digest>::digest(data))
}

async fn body(output: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    output.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn put_get_head_with_metadata_and_headers() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();

    let data = test_bytes(300_000, 1);
    let expires = DateTime::from_secs(1_900_000_000);
    let put = s3
        .put_object()
        .bucket("bkt")
        .key("dir/file.bin")
        .body(data.clone().into())
        .content_type("application/x-test")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"f.bin\"")
        .content_language("en-GB")
        .cache_control("max-age=60")
        .expires(expires)
        .metadata("color", "blue")
        .metadata("Mixed-Case", "Value with spaces")
        .send()
        .await
        .unwrap();
    let expected_etag = format!("\"{}\"", hex::encode(<md5::Md5 as md5::Digest>::digest(&data)));
    assert_eq!(put.e_tag(), Some(expected_etag.as_str()));

    let got = s3.get_object().bucket("bkt").key("dir/file.bin").send().await.unwrap();
    assert_eq!(got.e_tag(), Some(expected_etag.as_str()));
    assert_eq!(got.content_type(), Some("application/x-test"));
    assert_eq!(got.content_encoding(), Some("identity"));
    assert_eq!(got.content_disposition(), Some("attachment; filename=\"f.bin\""));
    assert_eq!(got.content_language(), Some("en-GB"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(got.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
    assert_eq!(got.content_length(), Some(300_000));
    let meta = got.metadata().unwrap();
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("mixed-case").map(String::as_str), Some("Value with spaces"));
    assert_eq!(body(got).await, data);

    let head = s3.head_object().bucket("bkt").key("dir/file.bin").send().await.unwrap();
    assert_eq!(head.content_length(), Some(300_000));
    assert_eq!(head.e_tag(), Some(expected_etag.as_str()));
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.metadata().unwrap().get("color").map(String::as_str), Some("blue"));
    assert!(head.last_modified().is_some());

    let missing = s3.get_object().bucket("bkt").key("nope").send().await.unwrap_err();
    assert_eq!(missing.code(), Some("NoSuchKey"));
    assert_eq!(missing.raw_response().unwrap().status().as_u16(), 404);
    let missing_head = s3.head_object().bucket("bkt").key("nope").send().await.unwrap_err();
    assert_eq!(missing_head.raw_response().unwrap().status().as_u16(), 404);

    // Empty object.
    s3.put_object().bucket("bkt").key("empty").body(Vec::new().into()).send().await.unwrap();
    let empty = s3.get_object().bucket("bkt").key("empty").send().await.unwrap();
    assert_eq!(empty.e_tag(), Some("\"d41d8cd98f00b204e9800998ecf8427e\""));
    assert!(body(empty).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = test_bytes(1_000_000, 2);
    s3.put_object().bucket("bkt").key("r").body(data.clone().into()).send().await.unwrap();

    let cases: [(&str, std::ops::Range<usize>); 5] = [
        ("bytes=0-0", 0..1),
        ("bytes=10-19", 10..20),
        ("bytes=999990-", 999_990..1_000_000),
        ("bytes=-100", 999_900..1_000_000),
        ("bytes=500000-2000000", 500_000..1_000_000),
    ];
    for (range, span) in cases {
        let got = s3.get_object().bucket("bkt").key("r").range(range).send().await.unwrap();
        let expected_range = format!("bytes {}-{}/1000000", span.start, span.end - 1);
        assert_eq!(got.content_range(), Some(expected_range.as_str()), "{range}");
        assert_eq!(got.content_length(), Some(span.len() as i64), "{range}");
        assert_eq!(body(got).await, &data[span], "{range}");
    }

    let unsatisfiable = s3.get_object().bucket("bkt").key("r").range("bytes=1000000-").send().await.unwrap_err();
    assert_eq!(unsatisfiable.code(), Some("InvalidRange"));
    assert_eq!(unsatisfiable.raw_response().unwrap().status().as_u16(), 416);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_stored_exactly() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let keys = [
        "with space",
        "plus+sign",
        "percent%20literal",
        "unicode/ünïcødé/日本語/🙂",
        "/leading-slash",
        "double//slash",
        "dots/../up",
        "./dot",
        "question?mark&amp=1#hash",
        "tilde~and'quote\"",
        "trailing/",
        &"k".repeat(1024),
    ];
    for (i, key) in keys.iter().enumerate() {
        s3.put_object()
            .bucket("bkt")
            .key(*key)
            .body(format!("value {i}").into_bytes().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
    }
    for (i, key) in keys.iter().enumerate() {
        let got = s3.get_object().bucket("bkt").key(*key).send().await.unwrap_or_else(|e| panic!("{key}: {e:?}"));
        assert_eq!(body(got).await, format!("value {i}").into_bytes(), "{key}");
    }
    let mut listed = Vec::new();
    let mut pages = s3.list_objects_v2().bucket("bkt").into_paginator().send();
    while let Some(page) = pages.next().await {
        listed.extend(page.unwrap().contents().iter().map(|o| o.key().unwrap().to_string()));
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected, "listing is in byte order and exact");

    let too_long =
        s3.put_object().bucket("bkt").key("k".repeat(1025)).body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(too_long.code(), Some("KeyTooLongError"));
}

#[tokio::test(flavor = "multi_thread")]
async fn content_md5_is_checked_and_failures_leave_the_old_version() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    s3.put_object().bucket("bkt").key("k").body(b"version one".to_vec().into()).send().await.unwrap();

    let good = s3
        .put_object()
        .bucket("bkt")
        .key("md5")
        .body(b"checked".to_vec().into())
        .content_md5(content_md5(b"checked"))
        .send()
        .await;
    assert!(good.is_ok(), "{good:?}");

    let bad = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(b"version two".to_vec().into())
        .content_md5(content_md5(b"something else"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("BadDigest"));
    assert_eq!(bad.raw_response().unwrap().status().as_u16(), 400);
    let invalid = s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(b"v".to_vec().into())
        .content_md5("not-base64!")
        .send()
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Some("InvalidDigest"));

    let current = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(body(current).await, b"version one");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    for i in 0..5 {
        s3.put_object().bucket("bkt").key(format!("k{i}")).body(b"x".to_vec().into()).send().await.unwrap();
    }
    let deleted = s3.delete_object().bucket("bkt").key("k0").send().await.unwrap();
    assert!(deleted.delete_marker().is_none());
    // Deleting again, or a key that never existed, still answers 204.
    s3.delete_object().bucket("bkt").key("k0").send().await.unwrap();
    s3.delete_object().bucket("bkt").key("never").send().await.unwrap();
    let gone = s3.get_object().bucket("bkt").key("k0").send().await.unwrap_err();
    assert_eq!(gone.code(), Some("NoSuchKey"));

    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let ids =
        |keys: &[&str]| keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().unwrap()).collect::<Vec<_>>();
    let verbose = s3
        .delete_objects()
        .bucket("bkt")
        .delete(Delete::builder().set_objects(Some(ids(&["k1", "k2", "missing"]))).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut keys: Vec<&str> = verbose.deleted().iter().map(|d| d.key().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["k1", "k2", "missing"]);
    assert!(verbose.errors().is_empty());

    let quiet = s3
        .delete_objects()
        .bucket("bkt")
        .delete(Delete::builder().set_objects(Some(ids(&["k3", "k4"]))).quiet(true).build().unwrap())
        .send()
        .await
        .unwrap();
    assert!(quiet.deleted().is_empty());
    assert!(quiet.errors().is_empty());
    let listing = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    assert_eq!(listing.key_count(), Some(0));

    // Deleted keys stay deleted; a new put makes the key visible again.
    s3.put_object().bucket("bkt").key("k1").body(b"again".to_vec().into()).send().await.unwrap();
    let again = s3.get_object().bucket("bkt").key("k1").send().await.unwrap();
    assert_eq!(body(again).await, b"again");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_objects_unlinks_hundreds_of_keys_at_once() {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("many/{i:03}")).collect();
    futures::future::join_all(keys.iter().map(|key| {
        let s3 = s3.clone();
        async move { s3.put_object().bucket("bkt").key(key).body(test_bytes(4096, 9).into()).send().await.unwrap() }
    }))
    .await;
    s3.put_object().bucket("bkt").key("kept").body(b"stays".to_vec().into()).send().await.unwrap();
    // Every key once, one twice, and one that never existed.
    let mut asked: Vec<String> = keys.clone();
    asked.push(keys[7].clone());
    asked.push("many/never".into());
    let ids = asked.iter().map(|k| ObjectIdentifier::builder().key(k).build().unwrap()).collect::<Vec<_>>();
    let started = std::time::Instant::now();
    let result = s3
        .delete_objects()
        .bucket("bkt")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await;
    let result = result.unwrap();
    eprintln!("DeleteObjects of {} keys took {:?}", asked.len(), started.elapsed());
    assert!(result.errors().is_empty(), "{:?}", result.errors());
    let mut deleted: Vec<&str> = result.deleted().iter().map(|d| d.key().unwrap()).collect();
    deleted.sort();
    let mut expected: Vec<&str> = asked.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(deleted, expected, "one entry per key asked for, in any order");
    let listing = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    let left: Vec<&str> = listing.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(left, ["kept"]);
    for key in keys.iter().step_by(37) {
        let gone = s3.head_object().bucket("bkt").key(key).send().await.unwrap_err();
        assert_eq!(gone.raw_response().unwrap().status().as_u16(), 404, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_object_streams_through() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = test_bytes(40 * 1024 * 1024, 3);
    s3.put_object().bucket("bkt").key("big").body(ByteStream::from(data.clone())).send().await.unwrap();
    let got = s3.get_object().bucket("bkt").key("big").send().await.unwrap();
    assert_eq!(got.content_length(), Some(data.len() as i64));
    let back = body(got).await;
    assert!(back == data, "40 MiB object came back different");
}
