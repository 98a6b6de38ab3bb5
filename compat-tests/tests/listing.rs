//! ListObjects v1 and v2: prefix, delimiter, pagination, start-after, encoding, owner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use compat_tests::TestCluster;

async fn put_keys(s3: &aws_sdk_s3::Client, keys: &[&str]) {
    for key in keys {
        s3.put_object().bucket("bkt").key(*key).body(b"x".to_vec().into()).send().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_v2_prefix_delimiter_and_pages() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    put_keys(&s3, &["a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "ca", "z"]).await;

    let top = s3.list_objects_v2().bucket("bkt").delimiter("/").send().await.unwrap();
    let keys: Vec<&str> = top.contents().iter().map(|o| o.key().unwrap()).collect();
    let prefixes: Vec<&str> = top.common_prefixes().iter().map(|p| p.prefix().unwrap()).collect();
    assert_eq!(keys, ["b", "ca", "z"]);
    assert_eq!(prefixes, ["a/", "c/"]);
    assert_eq!(top.key_count(), Some(5));
    assert_eq!(top.is_truncated(), Some(false));
    assert!(top.contents()[0].owner().is_none(), "owner only with fetch-owner");

    let inner = s3.list_objects_v2().bucket("bkt").prefix("a/").delimiter("/").fetch_owner(true).send().await.unwrap();
    let keys: Vec<&str> = inner.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(keys, ["a/1", "a/2"]);
    assert_eq!(inner.common_prefixes()[0].prefix(), Some("a/b/"));
    assert_eq!(inner.contents()[0].owner().and_then(|o| o.id()), Some(compat_tests::ROOT_OWNER_ID));
    assert_eq!(inner.contents()[0].size(), Some(1));
    assert_eq!(inner.contents()[0].e_tag(), Some("\"9dd4e461268c8034f5c8564e155c67a6\""));

    // Pages of two, following continuation tokens, with the delimiter rolling prefixes up.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("bkt")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.key_count().unwrap() <= 2);
        seen.extend(page.contents().iter().map(|o| o.key().unwrap().to_string()));
        seen.extend(page.common_prefixes().iter().map(|p| format!("P:{}", p.prefix().unwrap())));
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(str::to_string);
        assert!(token.is_some());
    }
    seen.sort();
    assert_eq!(seen, ["P:a/", "P:c/", "b", "ca", "z"]);

    let after = s3.list_objects_v2().bucket("bkt").start_after("c/1").send().await.unwrap();
    let keys: Vec<&str> = after.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(keys, ["c/2", "ca", "z"]);

    let none = s3.list_objects_v2().bucket("bkt").max_keys(0).send().await.unwrap();
    assert_eq!(none.key_count(), Some(0));

    let bad = s3.list_objects_v2().bucket("bkt").continuation_token("!!!").send().await.unwrap_err();
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&bad), Some("InvalidArgument"));
}

#[tokio::test(flavor = "multi_thread")]
async fn list_v1_markers_and_url_encoding() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    put_keys(&s3, &["k1", "k2", "k3", "dir/x", "dir/y", "sp ace/ü+"]).await;

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = s3.list_objects().bucket("bkt").max_keys(2).set_marker(marker.clone()).send().await.unwrap();
        let keys: Vec<String> = page.contents().iter().map(|o| o.key().unwrap().to_string()).collect();
        assert!(page.contents().iter().all(|o| o.owner().is_some()), "v1 always has owners");
        seen.extend(keys.clone());
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = keys.last().cloned();
    }
    assert_eq!(seen, ["dir/x", "dir/y", "k1", "k2", "k3", "sp ace/ü+"]);

    let delimited = s3.list_objects().bucket("bkt").delimiter("/").max_keys(1).send().await.unwrap();
    assert_eq!(delimited.common_prefixes()[0].prefix(), Some("dir/"));
    assert_eq!(delimited.next_marker(), Some("dir/"));
    let next = s3.list_objects().bucket("bkt").delimiter("/").max_keys(10).marker("dir/").send().await.unwrap();
    let keys: Vec<&str> = next.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(keys, ["k1", "k2", "k3"]);
    assert_eq!(next.common_prefixes()[0].prefix(), Some("sp ace/"));

    // With encoding-type=url the keys and prefixes come back escaped (the Rust SDK does not
    // decode them; boto3 and aws cli do).
    let encoded = s3
        .list_objects_v2()
        .bucket("bkt")
        .delimiter("/")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = encoded.common_prefixes().iter().map(|p| p.prefix().unwrap()).collect();
    assert_eq!(prefixes, ["dir/", "sp%20ace/"]);
    let inner = s3
        .list_objects_v2()
        .bucket("bkt")
        .prefix("sp ace/")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .unwrap();
    assert_eq!(inner.contents()[0].key(), Some("sp%20ace/%C3%BC%2B"));
    assert_eq!(inner.prefix(), Some("sp%20ace/"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_prefix_pages_in_order() {
    let cluster = TestCluster::start(3, 1);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let total = 2500;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..10 {
        let s3 = s3.clone();
        tasks.spawn(async move {
            for i in (chunk * total / 10)..((chunk + 1) * total / 10) {
                s3.put_object().bucket("bkt").key(format!("many/{i:06}")).body(Vec::new().into()).send().await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    put_keys(&s3, &["other"]).await;
    let mut pages = 0;
    let mut keys = Vec::new();
    let mut stream = s3.list_objects_v2().bucket("bkt").prefix("many/").into_paginator().send();
    while let Some(page) = stream.next().await {
        pages += 1;
        keys.extend(page.unwrap().contents().iter().map(|o| o.key().unwrap().to_string()));
    }
    assert_eq!(pages, 3);
    assert_eq!(keys.len(), total);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
}
