//! What Terraform's `aws_s3_bucket` and the consoles read of every bucket, through
//! aws-sdk-s3: bucket tags (kept, checked as S3 checks them, restored by a rebuild), the ACLs
//! of buckets and objects (the owner's full control, which every bucket has), and for the
//! settings Cairn does not have the answer S3 gives a bucket without them — never
//! NotImplemented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectOwnership, Payer, Permission, Tag, Tagging, Type,
};
use compat_tests::{ROOT_OWNER_ID, TestCluster, refusal, skip_unless_rocksdb};

fn tagging(tags: &[(&str, &str)]) -> Tagging {
    let tags = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap()).collect();
    Tagging::builder().set_tag_set(Some(tags)).build().unwrap()
}

async fn bucket_tags(s3: &Client, bucket: &str) -> Result<Vec<(String, String)>, (String, u16)> {
    let got = s3.get_bucket_tagging().bucket(bucket).send().await.map_err(|e| refusal(&e))?;
    Ok(got.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_tags_are_kept_and_checked_as_on_s3() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("tfstate").send().await.unwrap();
    assert_eq!(bucket_tags(&s3, "tfstate").await, Err(("NoSuchTagSet".into(), 404)));
    s3.put_bucket_tagging()
        .bucket("tfstate")
        .tagging(tagging(&[("team", "storage"), ("env", "prod")]))
        .send()
        .await
        .unwrap();
    assert_eq!(bucket_tags(&s3, "tfstate").await.unwrap(), owned(&[("team", "storage"), ("env", "prod")]));

    // Refused, and the tags in place stay.
    let many: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), "v".to_string())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    let bad: [&[(&str, &str)]; 4] = [&many, &[("aws:createdBy", "me")], &[(&long_key, "v")], &[("a", "1"), ("a", "2")]];
    for tags in bad {
        let err = s3.put_bucket_tagging().bucket("tfstate").tagging(tagging(tags)).send().await.unwrap_err();
        assert_eq!(refusal(&err), ("InvalidTag".into(), 400), "{:?}", &tags[..tags.len().min(2)]);
    }
    let err =
        s3.put_bucket_tagging().bucket("tfstate").tagging(tagging(&[("k", &long_value)])).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("InvalidTag".into(), 400));
    assert_eq!(bucket_tags(&s3, "tfstate").await.unwrap(), owned(&[("team", "storage"), ("env", "prod")]));
    let err = s3.put_bucket_tagging().bucket("none").tagging(tagging(&[("a", "1")])).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchBucket".into(), 404));

    s3.delete_bucket_tagging().bucket("tfstate").send().await.unwrap();
    assert_eq!(bucket_tags(&s3, "tfstate").await, Err(("NoSuchTagSet".into(), 404)));
    // A key that may write objects but does not own the bucket cannot tag it.
    let created: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["key", "create", "app", "--json"])).unwrap();
    let id = created["access_key_id"].as_str().unwrap();
    cluster.admin_ok(&["key", "allow", id, "tfstate", "--read", "--write"]);
    let app = cluster.client_with(id, created["secret_access_key"].as_str().unwrap());
    let err = app.put_bucket_tagging().bucket("tfstate").tagging(tagging(&[("a", "1")])).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("AccessDenied".into(), 403));
    assert_eq!(bucket_tags(&app, "tfstate").await, Err(("NoSuchTagSet".into(), 404)), "reading them is a read");
}

#[tokio::test(flavor = "multi_thread")]
async fn unset_bucket_settings_answer_as_s3_and_acls_are_the_owners() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("tfstate").send().await.unwrap();
    s3.put_object().bucket("tfstate").key("obj").body(b"x".to_vec().into()).send().await.unwrap();

    // The settings Cairn does not have: S3's answer for a bucket without them.
    let not_set = [
        ("encryption", s3.get_bucket_encryption().bucket("tfstate").send().await.map(|_| ()).map_err(|e| refusal(&e))),
        ("website", s3.get_bucket_website().bucket("tfstate").send().await.map(|_| ()).map_err(|e| refusal(&e))),
        (
            "replication",
            s3.get_bucket_replication().bucket("tfstate").send().await.map(|_| ()).map_err(|e| refusal(&e)),
        ),
        ("policy", s3.get_bucket_policy().bucket("tfstate").send().await.map(|_| ()).map_err(|e| refusal(&e))),
        (
            "policy status",
            s3.get_bucket_policy_status().bucket("tfstate").send().await.map(|_| ()).map_err(|e| refusal(&e)),
        ),
        ("cors", s3.get_bucket_cors().bucket("tfstate").send().await.map(|_| ()).map_err(|e| refusal(&e))),
        (
            "public access block",
            s3.get_public_access_block().bucket("tfstate").send().await.map(|_| ()).map_err(|e| refusal(&e)),
        ),
    ];
    let expected = [
        ("encryption", "ServerSideEncryptionConfigurationNotFoundError"),
        ("website", "NoSuchWebsiteConfiguration"),
        ("replication", "ReplicationConfigurationNotFoundError"),
        ("policy", "NoSuchBucketPolicy"),
        ("policy status", "NoSuchBucketPolicy"),
        ("cors", "NoSuchCORSConfiguration"),
        ("public access block", "NoSuchPublicAccessBlockConfiguration"),
    ];
    for ((name, got), (_, code)) in not_set.into_iter().zip(expected) {
        assert_eq!(got, Err((code.to_string(), 404)), "{name}");
    }
    let logging = s3.get_bucket_logging().bucket("tfstate").send().await.unwrap();
    assert!(logging.logging_enabled().is_none());
    let payment = s3.get_bucket_request_payment().bucket("tfstate").send().await.unwrap();
    assert_eq!(payment.payer(), Some(&Payer::BucketOwner));
    let accelerate = s3.get_bucket_accelerate_configuration().bucket("tfstate").send().await.unwrap();
    assert!(accelerate.status().is_none());
    let notifications = s3.get_bucket_notification_configuration().bucket("tfstate").send().await.unwrap();
    assert!(notifications.topic_configurations().is_empty() && notifications.queue_configurations().is_empty());
    let ownership = s3.get_bucket_ownership_controls().bucket("tfstate").send().await.unwrap();
    let rules = ownership.ownership_controls().unwrap().rules();
    assert_eq!(rules[0].object_ownership(), &ObjectOwnership::BucketOwnerEnforced);
    // Setting it succeeds (Terraform's aws_s3_bucket_ownership_controls does), enabling ACLs
    // too; deleting the controls leaves none to get (and ACLs enabled, see acls.rs).
    let controls = |ownership: ObjectOwnership| {
        let rule = aws_sdk_s3::types::OwnershipControlsRule::builder().object_ownership(ownership).build().unwrap();
        aws_sdk_s3::types::OwnershipControls::builder().rules(rule).build().unwrap()
    };
    let put = |ownership| s3.put_bucket_ownership_controls().bucket("tfstate").ownership_controls(controls(ownership));
    let ownership = || async {
        let got = s3.get_bucket_ownership_controls().bucket("tfstate").send().await?;
        Ok::<_, aws_sdk_s3::error::SdkError<_>>(got.ownership_controls().unwrap().rules()[0].object_ownership().clone())
    };
    put(ObjectOwnership::BucketOwnerEnforced).send().await.unwrap();
    put(ObjectOwnership::ObjectWriter).send().await.unwrap();
    assert_eq!(ownership().await.unwrap(), ObjectOwnership::ObjectWriter);
    s3.delete_bucket_ownership_controls().bucket("tfstate").send().await.unwrap();
    let err = ownership().await.unwrap_err();
    assert_eq!(refusal(&err), ("OwnershipControlsNotFoundError".into(), 404));
    put(ObjectOwnership::BucketOwnerEnforced).send().await.unwrap();
    assert_eq!(ownership().await.unwrap(), ObjectOwnership::BucketOwnerEnforced);
    // Each of them on a bucket that does not exist: NoSuchBucket.
    let err = s3.get_bucket_encryption().bucket("none").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchBucket".into(), 404));
    let err = s3.get_bucket_logging().bucket("none").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchBucket".into(), 404));

    // ACLs: the bucket owner's full control, on the bucket and on its objects.
    let acl = s3.get_bucket_acl().bucket("tfstate").send().await.unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(ROOT_OWNER_ID));
    let grants = acl.grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].permission(), Some(&Permission::FullControl));
    assert_eq!(grants[0].grantee().and_then(|g| g.id()), Some(ROOT_OWNER_ID));
    let object_acl = s3.get_object_acl().bucket("tfstate").key("obj").send().await.unwrap();
    assert_eq!(object_acl.grants(), grants);
    let err = s3.get_object_acl().bucket("tfstate").key("missing").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchKey".into(), 404));

    // Setting what it already is succeeds; anything else is refused as S3 refuses it on a
    // bucket whose ownership is "bucket owner enforced".
    s3.put_bucket_acl().bucket("tfstate").acl(BucketCannedAcl::Private).send().await.unwrap();
    let same = AccessControlPolicy::builder().set_grants(Some(grants.to_vec())).set_owner(acl.owner().cloned()).build();
    s3.put_bucket_acl().bucket("tfstate").access_control_policy(same.clone()).send().await.unwrap();
    s3.put_object_acl().bucket("tfstate").key("obj").access_control_policy(same).send().await.unwrap();
    let err = s3.put_bucket_acl().bucket("tfstate").acl(BucketCannedAcl::PublicRead).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("AccessControlListNotSupported".into(), 400));
    let everyone = Grant::builder()
        .grantee(
            Grantee::builder()
                .r#type(Type::Group)
                .uri("http://acs.amazonaws.com/groups/global/AllUsers")
                .build()
                .unwrap(),
        )
        .permission(Permission::Read)
        .build();
    let wider = AccessControlPolicy::builder()
        .set_grants(Some([grants.to_vec(), vec![everyone]].concat()))
        .set_owner(acl.owner().cloned())
        .build();
    let err = s3.put_bucket_acl().bucket("tfstate").access_control_policy(wider.clone()).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("AccessControlListNotSupported".into(), 400));
    let err = s3.put_object_acl().bucket("tfstate").key("obj").access_control_policy(wider).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("AccessControlListNotSupported".into(), 400));
    // Setting one is still not implemented, and says so.
    let err = s3
        .put_bucket_encryption()
        .bucket("tfstate")
        .server_side_encryption_configuration(
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), ("NotImplemented".into(), 501));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_keeps_bucket_tags() {
    if skip_unless_rocksdb("a_rebuild_keeps_bucket_tags", "rebuild writes a RocksDB index") {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("tagged").send().await.unwrap();
    s3.put_bucket_tagging().bucket("tagged").tagging(tagging(&[("a", "1")])).send().await.unwrap();
    s3.put_bucket_tagging().bucket("tagged").tagging(tagging(&[("team", "storage"), ("b", "2")])).send().await.unwrap();
    s3.create_bucket().bucket("untagged").send().await.unwrap();
    s3.put_bucket_tagging().bucket("untagged").tagging(tagging(&[("gone", "soon")])).send().await.unwrap();
    s3.delete_bucket_tagging().bucket("untagged").send().await.unwrap();

    cluster.serve_rebuilt_index("rebuilt");
    let s3 = cluster.client();
    assert_eq!(bucket_tags(&s3, "tagged").await.unwrap(), owned(&[("team", "storage"), ("b", "2")]), "the newest");
    assert_eq!(bucket_tags(&s3, "untagged").await, Err(("NoSuchTagSet".into(), 404)));
}
