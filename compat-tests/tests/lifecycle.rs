//! Bucket lifecycle configuration through aws-sdk-s3: Put/Get/DeleteBucketLifecycleConfiguration
//! with rules filtered by prefix, tags and object size, every action S3 has but transitions
//! (refused: Cairn has one storage class), S3's refusals of malformed rules, and a rebuild of
//! the index from the volumes that keeps the rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration, Tag, Transition,
    TransitionStorageClass,
};
use compat_tests::{TestCluster, refusal, skip_unless_rocksdb};

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

fn rule(id: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder().id(id).status(ExpirationStatus::Enabled)
}

/// Rules of every kind Cairn keeps: each filter form and each action.
fn rules() -> Vec<LifecycleRule> {
    let days = |d| LifecycleExpiration::builder().days(d).build();
    vec![
        rule("logs")
            .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
            .expiration(days(30))
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(2).build(),
            )
            .build()
            .unwrap(),
        rule("tagged-and-sized")
            .filter(
                LifecycleRuleFilter::builder()
                    .and(
                        LifecycleRuleAndOperator::builder()
                            .prefix("data/")
                            .tags(tag("class", "scratch"))
                            .object_size_greater_than(1024)
                            .object_size_less_than(1 << 30)
                            .build(),
                    )
                    .build(),
            )
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder().noncurrent_days(7).newer_noncurrent_versions(3).build(),
            )
            .build()
            .unwrap(),
        rule("one-tag")
            .filter(LifecycleRuleFilter::builder().tag(tag("temp", "yes")).build())
            .expiration(LifecycleExpiration::builder().date(DateTime::from_secs(4_102_444_800)).build())
            .build()
            .unwrap(),
        rule("markers")
            .status(ExpirationStatus::Disabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .expiration(LifecycleExpiration::builder().expired_object_delete_marker(true).build())
            .build()
            .unwrap(),
    ]
}

async fn put_rules(s3: &Client, bucket: &str, rules: Vec<LifecycleRule>) -> Result<(), (String, u16)> {
    let configuration = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().unwrap();
    let put = s3.put_bucket_lifecycle_configuration().bucket(bucket).lifecycle_configuration(configuration);
    put.send().await.map(|_| ()).map_err(|e| refusal(&e))
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_rules_are_kept_as_given_and_checked_as_on_s3() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let err = s3.get_bucket_lifecycle_configuration().bucket("bkt").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchLifecycleConfiguration".into(), 404));

    put_rules(&s3, "bkt", rules()).await.unwrap();
    let got = s3.get_bucket_lifecycle_configuration().bucket("bkt").send().await.unwrap();
    assert_eq!(got.rules(), rules(), "returned as given");

    // Malformed rules: each refused with S3's code, and the rules in place stay.
    let expire = LifecycleExpiration::builder().days(1).build();
    let no_filter = LifecycleRule::builder().id("x").status(ExpirationStatus::Enabled).expiration(expire.clone());
    let everything = || LifecycleRuleFilter::builder().prefix("").build();
    let bad: Vec<(Vec<LifecycleRule>, &str, u16)> = vec![
        (vec![no_filter.build().unwrap()], "MalformedXML", 400),
        (vec![rule("no-action").filter(everything()).build().unwrap()], "InvalidArgument", 400),
        (
            vec![
                rule("zero")
                    .filter(everything())
                    .expiration(LifecycleExpiration::builder().days(0).build())
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
            400,
        ),
        (
            vec![
                rule("twice").filter(everything()).expiration(expire.clone()).build().unwrap(),
                rule("twice").filter(everything()).expiration(expire.clone()).build().unwrap(),
            ],
            "InvalidArgument",
            400,
        ),
        (
            vec![
                rule("too-many")
                    .filter(everything())
                    .noncurrent_version_expiration(
                        NoncurrentVersionExpiration::builder()
                            .noncurrent_days(1)
                            .newer_noncurrent_versions(101)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
            400,
        ),
        (
            vec![
                rule("not-midnight")
                    .filter(everything())
                    .expiration(LifecycleExpiration::builder().date(DateTime::from_secs(4_102_444_801)).build())
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
            400,
        ),
        (
            vec![
                rule("tags-and-uploads")
                    .filter(LifecycleRuleFilter::builder().tag(tag("a", "b")).build())
                    .abort_incomplete_multipart_upload(
                        AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
                    )
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
            400,
        ),
        (
            vec![
                rule("glacier")
                    .filter(everything())
                    .transitions(Transition::builder().days(30).storage_class(TransitionStorageClass::Glacier).build())
                    .build()
                    .unwrap(),
            ],
            "NotImplemented",
            501,
        ),
    ];
    for (rules, code, status) in bad {
        let id = rules[0].id().unwrap().to_string();
        assert_eq!(put_rules(&s3, "bkt", rules).await, Err((code.to_string(), status)), "{id}");
    }
    let got = s3.get_bucket_lifecycle_configuration().bucket("bkt").send().await.unwrap();
    assert_eq!(got.rules(), rules());

    // A key that may write but does not own the bucket cannot change what gets deleted.
    let created: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["key", "create", "writer", "--json"])).unwrap();
    let id = created["access_key_id"].as_str().unwrap().to_string();
    let writer = cluster.client_with(&id, created["secret_access_key"].as_str().unwrap());
    cluster.admin_ok(&["key", "allow", &id, "bkt", "--read", "--write"]);
    assert_eq!(put_rules(&writer, "bkt", rules()).await, Err(("AccessDenied".into(), 403)));
    let err = writer.delete_bucket_lifecycle().bucket("bkt").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("AccessDenied".into(), 403));
    assert_eq!(writer.get_bucket_lifecycle_configuration().bucket("bkt").send().await.unwrap().rules(), rules());

    s3.delete_bucket_lifecycle().bucket("bkt").send().await.unwrap();
    let err = s3.get_bucket_lifecycle_configuration().bucket("bkt").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchLifecycleConfiguration".into(), 404));
    s3.delete_bucket_lifecycle().bucket("bkt").send().await.unwrap();
    let err = s3.get_bucket_lifecycle_configuration().bucket("nope").send().await.unwrap_err();
    assert_eq!(refusal(&err).0, "NoSuchBucket");
}

/// A rebuild from the volumes restores a bucket's lifecycle rules, as last changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_keeps_the_lifecycle_rules() {
    if skip_unless_rocksdb("a_rebuild_keeps_the_lifecycle_rules", "rebuild writes a RocksDB index") {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("kept").send().await.unwrap();
    s3.create_bucket().bucket("dropped").send().await.unwrap();
    put_rules(&s3, "kept", rules()[..1].to_vec()).await.unwrap();
    put_rules(&s3, "kept", rules()).await.unwrap();
    put_rules(&s3, "dropped", rules()).await.unwrap();
    s3.delete_bucket_lifecycle().bucket("dropped").send().await.unwrap();
    cluster.admin_ok(&["gc", "--grace", "0"]);

    cluster.serve_rebuilt_index("rebuilt");
    let s3 = cluster.client();
    assert_eq!(s3.get_bucket_lifecycle_configuration().bucket("kept").send().await.unwrap().rules(), rules());
    let err = s3.get_bucket_lifecycle_configuration().bucket("dropped").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchLifecycleConfiguration".into(), 404));
}

/// Keys of `bucket`, sorted (ListObjectsV2 returns them so).
async fn keys(s3: &Client, bucket: &str) -> Vec<String> {
    let page = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    page.contents().iter().map(|o| o.key().unwrap().to_string()).collect()
}

/// Version ids of `key` (newest first, as listed), then its delete markers' marked `M:`.
async fn versions(s3: &Client, bucket: &str, key: &str) -> Vec<String> {
    let listed = s3.list_object_versions().bucket(bucket).prefix(key).send().await.unwrap();
    let versions = listed.versions().iter().map(|v| v.version_id().unwrap().to_string());
    let markers = listed.delete_markers().iter().map(|m| format!("M:{}", m.version_id().unwrap()));
    versions.chain(markers).collect()
}

async fn put(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) -> String {
    let put = s3.put_object().bucket(bucket).key(key).body(body.into()).send().await.unwrap();
    put.version_id.unwrap_or_default()
}

/// `cairn-admin lifecycle run` applies the rules at once and reports what it did; a rule
/// dated in the past expires what it names now, and a lone delete marker goes.
#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_run_expires_by_date_and_removes_lone_delete_markers() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("plain").send().await.unwrap();
    s3.create_bucket().bucket("versioned").send().await.unwrap();
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    s3.put_bucket_versioning().bucket("versioned").versioning_configuration(enabled).send().await.unwrap();
    // Midnight, 1 January 2020: long past.
    let past = LifecycleExpiration::builder().date(DateTime::from_secs(1_577_836_800)).build();
    let everything_old = || {
        vec![
            rule("old")
                .filter(LifecycleRuleFilter::builder().prefix("old/").build())
                .expiration(past.clone())
                .build()
                .unwrap(),
        ]
    };
    put_rules(&s3, "plain", everything_old()).await.unwrap();
    let mut versioned_rules = everything_old();
    versioned_rules.push(
        rule("markers")
            .filter(LifecycleRuleFilter::builder().prefix("gone/").build())
            .expiration(LifecycleExpiration::builder().expired_object_delete_marker(true).build())
            .build()
            .unwrap(),
    );
    put_rules(&s3, "versioned", versioned_rules).await.unwrap();
    for key in ["old/a", "old/b", "new/c"] {
        put(&s3, "plain", key, key.as_bytes().to_vec()).await;
    }
    let kept = put(&s3, "versioned", "old/v", b"v".to_vec()).await;
    // A key with only a delete marker left, and one whose marker still hides a version.
    let gone = put(&s3, "versioned", "gone/x", b"x".to_vec()).await;
    s3.delete_object().bucket("versioned").key("gone/x").send().await.unwrap();
    s3.delete_object().bucket("versioned").key("gone/x").version_id(&gone).send().await.unwrap();
    put(&s3, "versioned", "gone/y", b"y".to_vec()).await;
    s3.delete_object().bucket("versioned").key("gone/y").send().await.unwrap();

    let out = cluster.admin_ok(&["--json", "lifecycle", "run"]);
    let progress: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(progress["state"], "done", "{progress}");
    assert_eq!(progress["buckets"], 2, "{progress}");
    assert_eq!(progress["expired"], 3, "old/a, old/b, and old/v (a delete marker): {progress}");
    assert_eq!(progress["markers_removed"], 1, "gone/x only: {progress}");
    assert_eq!(keys(&s3, "plain").await, ["new/c"]);
    assert!(keys(&s3, "versioned").await.is_empty());
    let old_v = versions(&s3, "versioned", "old/v").await;
    assert_eq!(old_v.len(), 2, "a delete marker over the version: {old_v:?}");
    assert!(old_v.contains(&kept) && old_v.iter().any(|v| v.starts_with("M:")), "{old_v:?}");
    assert!(versions(&s3, "versioned", "gone/x").await.is_empty(), "the lone marker went");
    assert_eq!(versions(&s3, "versioned", "gone/y").await.len(), 2, "a marker over a version stays");

    // Run again: nothing more to do (an expired object's marker is not expired again).
    let again: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["--json", "lifecycle", "run"])).unwrap();
    assert_eq!((again["expired"].as_u64(), again["markers_removed"].as_u64()), (Some(0), Some(0)), "{again}");
    let status = cluster.admin_ok(&["status"]);
    assert!(status.contains("lifecycle done: buckets 2/2"), "{status}");
}

/// With a lifecycle day of a second (the test knob), the gateway runs the rules by itself:
/// current versions expire by age (filtered by tags and size), noncurrent versions past the
/// newest ones kept go, old uploads are aborted, and object lock keeps what it protects.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_applies_the_rules_once_a_lifecycle_day() {
    let cluster = TestCluster::start_with(3, 2, &["--lifecycle-day-secs", "1"]);
    let s3 = cluster.client();
    s3.create_bucket().bucket("plain").send().await.unwrap();
    let scratch = rule("scratch")
        .filter(
            LifecycleRuleFilter::builder()
                .and(
                    LifecycleRuleAndOperator::builder()
                        .prefix("tmp/")
                        .tags(tag("class", "scratch"))
                        .object_size_greater_than(100)
                        .build(),
                )
                .build(),
        )
        .expiration(LifecycleExpiration::builder().days(2).build())
        .build()
        .unwrap();
    let uploads = rule("uploads")
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(2).build())
        .build()
        .unwrap();
    put_rules(&s3, "plain", vec![scratch, uploads]).await.unwrap();
    let tagged = |key: &str, size: usize| {
        s3.put_object().bucket("plain").key(key).tagging("class=scratch").body(vec![b'x'; size].into()).send()
    };
    tagged("tmp/big", 1000).await.unwrap();
    tagged("tmp/small", 10).await.unwrap();
    put(&s3, "plain", "tmp/untagged", vec![b'x'; 1000]).await;
    tagged("keep/big", 1000).await.unwrap();
    s3.create_multipart_upload().bucket("plain").key("up").send().await.unwrap();

    // Versions: the newest noncurrent one is kept, older ones go; a locked one stays.
    s3.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let noncurrent = rule("noncurrent")
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder().noncurrent_days(1).newer_noncurrent_versions(1).build(),
        )
        .build()
        .unwrap();
    put_rules(&s3, "locked", vec![noncurrent]).await.unwrap();
    let v1 = put(&s3, "locked", "k", b"1".to_vec()).await;
    let v2 = put(&s3, "locked", "k", b"2".to_vec()).await;
    let v3 = put(&s3, "locked", "k", b"3".to_vec()).await;
    let until = DateTime::from(std::time::SystemTime::now() + std::time::Duration::from_secs(3600));
    let held = s3
        .put_object()
        .bucket("locked")
        .key("held")
        .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Governance)
        .object_lock_retain_until_date(until)
        .body(b"held".to_vec().into())
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let h2 = put(&s3, "locked", "held", b"h2".to_vec()).await;
    let h3 = put(&s3, "locked", "held", b"h3".to_vec()).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let plain = keys(&s3, "plain").await;
        let uploads = s3.list_multipart_uploads().bucket("plain").send().await.unwrap();
        let k = versions(&s3, "locked", "k").await;
        let status = compat_tests::admin_status(&cluster.admin_url()).await;
        let locked = status["jobs"]["lifecycle"]["locked"].as_u64().unwrap_or(0);
        if plain == ["keep/big", "tmp/small", "tmp/untagged"]
            && uploads.uploads().is_empty()
            && k == [v3.clone(), v2.clone()]
            && locked > 0
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not applied: {plain:?} {uploads:?} {k:?} {status}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(!versions(&s3, "locked", "k").await.contains(&v1));
    assert_eq!(versions(&s3, "locked", "held").await, [h3, h2, held], "GOVERNANCE keeps the oldest");
}
