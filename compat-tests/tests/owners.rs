//! Owners and keys through aws-sdk-s3: a key acts for an owner and the keys of one owner share
//! its buckets; only keys allowed to (`cairn-admin key create NAME --create-bucket`) create
//! buckets, which their owner then owns and other owners cannot touch; BucketAlreadyExists
//! and BucketAlreadyOwnedByYou; ListBuckets shows the caller's buckets with its Owner, a page
//! at a time; `x-amz-expected-bucket-owner` is checked; a rebuild (with the keys imported
//! from an export) keeps every bucket's owner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use compat_tests::{ROOT_OWNER_ID, TestCluster, denied, refusal, skip_unless_rocksdb};

async fn bucket_names(s3: &Client) -> (Vec<String>, Option<String>) {
    let listed = s3.list_buckets().send().await.unwrap();
    let names = listed.buckets().iter().map(|b| b.name().unwrap().to_string()).collect();
    (names, listed.owner().and_then(|o| o.id()).map(str::to_string))
}

async fn put(s3: &Client, bucket: &str, key: &str) -> Result<(), (String, u16)> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(b"data".to_vec().into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| refusal(&e))
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_create_buckets_their_owner_owns_and_other_owners_cannot_touch() {
    let cluster = TestCluster::start(3, 2);
    let root = cluster.client();
    root.create_bucket().bucket("root-bucket").send().await.unwrap();

    // A key without --create-bucket cannot create one, and sees no bucket it does not own.
    let (plain, plain_owner) = cluster.new_key("plain", &[]);
    let err = plain.create_bucket().bucket("plain-bucket").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    assert_eq!(bucket_names(&plain).await, (vec![], Some(plain_owner.clone())));
    let err = plain.list_objects_v2().bucket("no-such-bucket").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied(), "a key that may not create buckets learns nothing of names");

    // A key with it owns what it creates; creating it again is BucketAlreadyOwnedByYou.
    let (alice, alice_owner) = cluster.new_key("alice", &["--create-bucket"]);
    assert_ne!(alice_owner, plain_owner, "every key gets its own owner unless told");
    assert_eq!(alice_owner.len(), 64);
    alice.create_bucket().bucket("alice-photos").send().await.unwrap();
    let err = alice.create_bucket().bucket("alice-photos").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("BucketAlreadyOwnedByYou".into(), 409));
    put(&alice, "alice-photos", "cat.jpg").await.unwrap();
    assert_eq!(bucket_names(&alice).await, (vec!["alice-photos".to_string()], Some(alice_owner.clone())));
    let err = alice.list_objects_v2().bucket("no-such-bucket").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchBucket".into(), 404));
    let listed = alice.list_objects_v2().bucket("alice-photos").fetch_owner(true).send().await.unwrap();
    assert_eq!(listed.contents()[0].owner().and_then(|o| o.id()), Some(alice_owner.as_str()));

    // Another owner: the name is taken, and nothing of the bucket is reachable.
    let (bob, bob_owner) = cluster.new_key("bob", &["--create-bucket"]);
    for taken in ["alice-photos", "root-bucket"] {
        let err = bob.create_bucket().bucket(taken).send().await.unwrap_err();
        assert_eq!(refusal(&err), ("BucketAlreadyExists".into(), 409), "{taken}");
    }
    assert_eq!(put(&bob, "alice-photos", "intruder").await, Err(denied()));
    let err = bob.get_object().bucket("alice-photos").key("cat.jpg").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = bob.list_objects_v2().bucket("alice-photos").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = bob.delete_object().bucket("alice-photos").key("cat.jpg").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = bob.delete_bucket().bucket("alice-photos").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = bob.copy_object().bucket("bob-stuff").key("stolen").copy_source("alice-photos/cat.jpg").send().await;
    assert_eq!(refusal(&err.unwrap_err()), denied());
    bob.create_bucket().bucket("bob-stuff").send().await.unwrap();
    let err = bob.copy_object().bucket("bob-stuff").key("stolen").copy_source("alice-photos/cat.jpg").send().await;
    assert_eq!(refusal(&err.unwrap_err()), denied(), "no copying out of another owner's bucket");
    assert_eq!(bucket_names(&bob).await, (vec!["bob-stuff".to_string()], Some(bob_owner.clone())));
    // The root key's buckets are the root owner's: root creating one again is its own.
    let err = root.create_bucket().bucket("root-bucket").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("BucketAlreadyOwnedByYou".into(), 409));
    let err = root.create_bucket().bucket("alice-photos").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("BucketAlreadyExists".into(), 409));
    let (names, root_owner) = bucket_names(&root).await;
    assert_eq!(names, ["alice-photos", "bob-stuff", "root-bucket"], "the root key sees every bucket");
    assert_eq!(root_owner.as_deref(), Some(ROOT_OWNER_ID));

    // A second key of alice's owner shares her buckets, without --create-bucket.
    let (alice2, alice2_owner) = cluster.new_key("alice-laptop", &["--owner", &alice_owner]);
    assert_eq!(alice2_owner, alice_owner);
    assert_eq!(bucket_names(&alice2).await, (vec!["alice-photos".to_string()], Some(alice_owner.clone())));
    put(&alice2, "alice-photos", "dog.jpg").await.unwrap();
    let got = alice2.get_object().bucket("alice-photos").key("cat.jpg").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"data");
    let err = alice2.create_bucket().bucket("alice-more").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied(), "creating buckets is the key's permission, not the owner's");
    let listing = cluster.admin_ok(&["key", "list"]);
    assert!(listing.lines().filter(|l| l.contains(&alice_owner)).count() == 2, "{listing}");
    let unknown = cluster.admin(&["key", "create", "stray", "--owner", &"0".repeat(64)]);
    assert!(!unknown.status.success(), "an owner no key acts for is refused");

    // x-amz-expected-bucket-owner: the bucket's owner passes, any other is refused.
    alice.put_object().bucket("alice-photos").key("checked").expected_bucket_owner(&alice_owner).send().await.unwrap();
    let err = alice
        .put_object()
        .bucket("alice-photos")
        .key("checked")
        .expected_bucket_owner(ROOT_OWNER_ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = root.list_objects_v2().bucket("alice-photos").expected_bucket_owner(&bob_owner).send().await.unwrap_err();
    assert_eq!(refusal(&err), denied(), "even for the root key");
    root.list_objects_v2().bucket("alice-photos").expected_bucket_owner(&alice_owner).send().await.unwrap();
    let err = root
        .copy_object()
        .bucket("root-bucket")
        .key("copied")
        .copy_source("alice-photos/cat.jpg")
        .expected_source_bucket_owner(&bob_owner)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), denied());
    root.copy_object()
        .bucket("root-bucket")
        .key("copied")
        .copy_source("alice-photos/cat.jpg")
        .expected_source_bucket_owner(&alice_owner)
        .expected_bucket_owner(ROOT_OWNER_ID)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn list_buckets_pages_by_name_with_a_prefix() {
    let cluster = TestCluster::start(3, 2);
    let root = cluster.client();
    for name in ["pg-4", "pg-0", "other", "pg-2", "pg-1", "pg-3"] {
        root.create_bucket().bucket(name).send().await.unwrap();
    }
    let (mut names, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = root
            .list_buckets()
            .prefix("pg-")
            .max_buckets(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.buckets().len() <= 2);
        assert_eq!(page.prefix(), Some("pg-"));
        names.extend(page.buckets().iter().map(|b| b.name().unwrap().to_string()));
        token = page.continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["pg-0", "pg-1", "pg-2", "pg-3", "pg-4"]);
    assert_eq!(pages, 3);
    // Without paging parameters, every bucket in one answer.
    assert_eq!(bucket_names(&root).await.0.len(), 6);
    let err = root.list_buckets().max_buckets(0).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("InvalidArgument".into(), 400));
    let err = root.list_buckets().max_buckets(10_001).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("InvalidArgument".into(), 400));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_keeps_every_buckets_owner() {
    if skip_unless_rocksdb("a_rebuild_keeps_every_buckets_owner", "rebuild writes a RocksDB index") {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let root = cluster.client();
    root.create_bucket().bucket("root-bucket").send().await.unwrap();
    let (alice, alice_owner) = cluster.new_key("alice", &["--create-bucket"]);
    alice.create_bucket().bucket("alice-photos").send().await.unwrap();
    put(&alice, "alice-photos", "cat.jpg").await.unwrap();
    // A configuration change after the creation writes a new bucket blob: it keeps the owner.
    let versioning = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    alice.put_bucket_versioning().bucket("alice-photos").versioning_configuration(versioning).send().await.unwrap();

    cluster.serve_rebuilt_index_with_keys("rebuilt");

    assert_eq!(bucket_names(&alice).await, (vec!["alice-photos".to_string()], Some(alice_owner.clone())));
    let got = alice.get_object().bucket("alice-photos").key("cat.jpg").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"data");
    let acl = root.get_bucket_acl().bucket("alice-photos").send().await.unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(alice_owner.as_str()));
    let acl = root.get_bucket_acl().bucket("root-bucket").send().await.unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(ROOT_OWNER_ID));
    let err = alice.get_object().bucket("root-bucket").key("x").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
}
