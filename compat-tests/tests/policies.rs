//! Bucket policies and public access blocks: aws-sdk-s3 puts them, anonymous `curl` and other
//! owners' keys use what they allow, and nothing else. A public prefix, an explicit Deny that
//! binds even the owner's keys (also key by key in DeleteObjects), conditions on the source
//! address, the transport, a listing's prefix and the object's tags, S3's refusals of
//! malformed policies, RestrictPublicBuckets and BlockPublicPolicy, and a rebuild that keeps
//! both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{Delete, ObjectIdentifier, PublicAccessBlockConfiguration, Tag, Tagging};
use compat_tests::tools::anonymous_curl as curl;
use compat_tests::{TestCluster, denied, refusal, require_tool, skip_unless_rocksdb};

async fn put(s3: &Client, bucket: &str, key: &str, body: &str) {
    s3.put_object().bucket(bucket).key(key).body(body.as_bytes().to_vec().into()).send().await.unwrap();
}

async fn set_policy(s3: &Client, bucket: &str, policy: &str) -> Result<(), (String, u16)> {
    s3.put_bucket_policy().bucket(bucket).policy(policy).send().await.map(|_| ()).map_err(|e| refusal(&e))
}

fn block(restrict: bool, block_policy: bool) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .restrict_public_buckets(restrict)
        .block_public_policy(block_policy)
        .block_public_acls(true)
        .ignore_public_acls(true)
        .build()
}

const PUBLIC_SITE: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow",
  "Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/public/*"}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_public_prefix_is_readable_anonymously_and_nothing_else() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("site").send().await.unwrap();
    put(&s3, "site", "public/index.html", "<h1>hello</h1>").await;
    put(&s3, "site", "private/secret.txt", "secret").await;
    let url = |key: &str| format!("{}/site/{key}", cluster.endpoint());

    // Without a policy nothing is anonymous.
    assert_eq!(curl("GET", &url("public/index.html"), None).0, 403);
    let err = s3.get_bucket_policy().bucket("site").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchBucketPolicy".into(), 404));
    let err = s3.get_bucket_policy_status().bucket("site").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchBucketPolicy".into(), 404));

    set_policy(&s3, "site", PUBLIC_SITE).await.unwrap();
    assert_eq!(s3.get_bucket_policy().bucket("site").send().await.unwrap().policy(), Some(PUBLIC_SITE));
    let status = s3.get_bucket_policy_status().bucket("site").send().await.unwrap();
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(true));
    assert_eq!(curl("GET", &url("public/index.html"), None), (200, "<h1>hello</h1>".to_string()));
    assert_eq!(curl("HEAD", &url("public/index.html"), None).0, 200);
    assert_eq!(curl("GET", &url("private/secret.txt"), None).0, 403);
    assert_eq!(curl("PUT", &url("public/defaced.html"), None).0, 403);
    assert_eq!(curl("DELETE", &url("public/index.html"), None).0, 403);
    assert_eq!(curl("GET", &format!("{}/site?list-type=2", cluster.endpoint()), None).0, 403);
    // A key that does not exist is 403 to whoever may not list the bucket, as on S3, so that
    // reading tells nothing of what else exists; 404 once listing is allowed too.
    let (status, body) = curl("GET", &url("public/missing.html"), None);
    assert_eq!((status, body.contains("<Code>AccessDenied</Code>")), (403, true), "{body}");
    let listable = PUBLIC_SITE.replace(
        r#""Resource":"arn:aws:s3:::site/public/*"}"#,
        r#""Resource":"arn:aws:s3:::site/public/*"},{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::site"}"#,
    );
    set_policy(&s3, "site", &listable).await.unwrap();
    let (status, body) = curl("GET", &url("public/missing.html"), None);
    assert_eq!((status, body.contains("<Code>NoSuchKey</Code>")), (404, true), "{body}");
    set_policy(&s3, "site", PUBLIC_SITE).await.unwrap();
    assert_eq!(curl("GET", &format!("{}/", cluster.endpoint()), None).0, 403, "no ListBuckets for anonymous");
    assert!(s3.head_object().bucket("site").key("public/defaced.html").send().await.is_err());

    // RestrictPublicBuckets: the public policy gives anonymous callers nothing; the owner's
    // keys keep everything.
    s3.put_public_access_block()
        .bucket("site")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .unwrap();
    assert_eq!(curl("GET", &url("public/index.html"), None).0, 403);
    let got = s3.get_public_access_block().bucket("site").send().await.unwrap();
    let got = got.public_access_block_configuration().unwrap();
    assert_eq!((got.restrict_public_buckets(), got.block_public_policy()), (Some(true), Some(false)));
    s3.delete_public_access_block().bucket("site").send().await.unwrap();
    assert_eq!(curl("GET", &url("public/index.html"), None).0, 200);
    let err = s3.get_public_access_block().bucket("site").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchPublicAccessBlockConfiguration".into(), 404));

    // BlockPublicPolicy: a public policy is refused; the one in place stays.
    s3.put_public_access_block()
        .bucket("site")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    let wider = PUBLIC_SITE.replace("site/public/*", "site/*");
    assert_eq!(set_policy(&s3, "site", &wider).await, Err(denied()));
    assert_eq!(s3.get_bucket_policy().bucket("site").send().await.unwrap().policy(), Some(PUBLIC_SITE));

    s3.delete_bucket_policy().bucket("site").send().await.unwrap();
    assert_eq!(curl("GET", &url("public/index.html"), None).0, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_are_checked_as_s3_checks_them() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("site").send().await.unwrap();
    let malformed = [
        "not json",
        r#"{"Version":"2012-10-17","Statement":[]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::elsewhere/*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"iam:PassRole","Resource":"arn:aws:s3:::site/*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Perhaps","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#,
    ];
    for policy in malformed {
        assert_eq!(set_policy(&s3, "site", policy).await, Err(("MalformedPolicy".into(), 400)), "{policy}");
    }
    let unsupported = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
      "Resource":"arn:aws:s3:::site/*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}]}"#;
    assert_eq!(set_policy(&s3, "site", unsupported).await, Err(("NotImplemented".into(), 501)));
    let err = s3.get_bucket_policy().bucket("site").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchBucketPolicy".into(), 404), "nothing refused was kept");
    let err = s3.put_bucket_policy().bucket("nope").policy(PUBLIC_SITE).send().await.unwrap_err();
    assert_eq!(refusal(&err).0, "MalformedPolicy", "its resources name another bucket");
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_give_other_owners_access_and_deny_even_the_owner() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let new_key = |name: &str, extra: &[&str]| {
        let args = [&["key", "create", name, "--json"][..], extra].concat();
        let created: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&args)).unwrap();
        let id = created["access_key_id"].as_str().unwrap().to_string();
        (cluster.client_with(&id, created["secret_access_key"].as_str().unwrap()), id)
    };
    let (alice, _) = new_key("alice", &["--create-bucket"]);
    let (bob, bob_id) = new_key("bob", &["--create-bucket"]);
    alice.create_bucket().bucket("shared").send().await.unwrap();
    for key in ["docs/a.txt", "docs/b.txt", "private/p.txt", "uploads/u.txt", "lan/l.txt", "far/f.txt"] {
        put(&alice, "shared", key, key).await;
    }
    put(&alice, "shared", "tagged/yes.txt", "tagged").await;
    let tags = Tagging::builder().tag_set(Tag::builder().key("public").value("yes").build().unwrap()).build().unwrap();
    alice.put_object_tagging().bucket("shared").key("tagged/yes.txt").tagging(tags).send().await.unwrap();
    put(&alice, "shared", "tagged/no.txt", "untagged").await;

    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
      {{"Sid":"BobReadsDocs","Effect":"Allow","Principal":{{"AWS":["{bob_id}"]}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/docs/*"}},
      {{"Sid":"BobListsDocs","Effect":"Allow","Principal":{{"AWS":"{bob_id}"}},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::shared",
        "Condition":{{"StringLike":{{"s3:prefix":"docs/*"}}}}}},
      {{"Sid":"NobodyDeletesPrivate","Effect":"Deny","Principal":"*","Action":["s3:DeleteObject","s3:DeleteObjectVersion"],"Resource":"arn:aws:s3:::shared/private/*"}},
      {{"Sid":"UploadsOnlyOverTls","Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::shared/uploads/*",
        "Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}},
      {{"Sid":"Lan","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/lan/*",
        "Condition":{{"IpAddress":{{"aws:SourceIp":"127.0.0.0/8"}}}}}},
      {{"Sid":"Far","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/far/*",
        "Condition":{{"IpAddress":{{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}}}}},
      {{"Sid":"Tagged","Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::shared/tagged/*",
        "Condition":{{"StringEquals":{{"s3:ExistingObjectTag/public":"yes"}}}}}}]}}"#
    );
    set_policy(&alice, "shared", &policy).await.unwrap();
    // Only the owner (or a key with the bucket's --owner grant) sets a policy.
    assert_eq!(set_policy(&bob, "shared", &policy).await, Err(denied()));

    // Bob, another owner: docs only, listing docs/ only.
    let got = bob.get_object().bucket("shared").key("docs/a.txt").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"docs/a.txt");
    let err = bob.get_object().bucket("shared").key("private/p.txt").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let listed = bob.list_objects_v2().bucket("shared").prefix("docs/").send().await.unwrap();
    assert_eq!(listed.contents().len(), 2);
    let err = bob.list_objects_v2().bucket("shared").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied(), "listing without the prefix");
    let err = bob.put_object().bucket("shared").key("docs/c.txt").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());

    // The explicit Deny binds the owner's own key too, key by key in DeleteObjects.
    let err = alice.delete_object().bucket("shared").key("private/p.txt").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let both = Delete::builder()
        .objects(ObjectIdentifier::builder().key("private/p.txt").build().unwrap())
        .objects(ObjectIdentifier::builder().key("docs/b.txt").build().unwrap())
        .build()
        .unwrap();
    let deleted = alice.delete_objects().bucket("shared").delete(both).send().await.unwrap();
    let deleted_keys: Vec<_> = deleted.deleted().iter().map(|d| d.key().unwrap()).collect();
    let refused: Vec<_> = deleted.errors().iter().map(|e| (e.key().unwrap(), e.code().unwrap())).collect();
    assert_eq!((deleted_keys, refused), (vec!["docs/b.txt"], vec![("private/p.txt", "AccessDenied")]));
    assert!(alice.head_object().bucket("shared").key("private/p.txt").send().await.is_ok());
    // Over plain HTTP no upload under uploads/, for anyone; elsewhere the owner writes.
    let err = alice.put_object().bucket("shared").key("uploads/v.txt").body(b"x".to_vec().into()).send().await;
    assert_eq!(refusal(&err.unwrap_err()), denied());
    put(&alice, "shared", "docs/c.txt", "c").await;

    // Anonymous: by source address and by the object's tags.
    let url = |key: &str| format!("{}/shared/{key}", cluster.endpoint());
    assert_eq!(curl("GET", &url("lan/l.txt"), None), (200, "lan/l.txt".to_string()));
    assert_eq!(curl("GET", &url("far/f.txt"), None).0, 403);
    assert_eq!(curl("GET", &url("tagged/yes.txt"), None), (200, "tagged".to_string()));
    assert_eq!(curl("GET", &url("tagged/no.txt"), None).0, 403);
    assert_eq!(curl("GET", &url("docs/a.txt"), None).0, 403, "bob's statements name bob");

    // The tags judged are those of the version asked for: a newer untagged version is not
    // public, the tagged one by its id still is.
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    alice.put_bucket_versioning().bucket("shared").versioning_configuration(enabled).send().await.unwrap();
    put(&alice, "shared", "tagged/yes.txt", "newer").await;
    assert_eq!(curl("GET", &url("tagged/yes.txt"), None).0, 403);
    assert_eq!(curl("GET", &url("tagged/yes.txt?versionId=null"), None), (200, "tagged".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_keeps_policies_and_public_access_blocks() {
    if skip_unless_rocksdb("a_rebuild_keeps_policies_and_public_access_blocks", "rebuild writes a RocksDB index")
        || require_tool("curl").is_none()
    {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("site").send().await.unwrap();
    put(&s3, "site", "public/index.html", "hello").await;
    set_policy(&s3, "site", PUBLIC_SITE).await.unwrap();
    s3.put_public_access_block()
        .bucket("site")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();

    cluster.serve_rebuilt_index("rebuilt");
    let s3 = cluster.client();
    assert_eq!(s3.get_bucket_policy().bucket("site").send().await.unwrap().policy(), Some(PUBLIC_SITE));
    let got = s3.get_public_access_block().bucket("site").send().await.unwrap();
    assert_eq!(got.public_access_block_configuration().and_then(|c| c.block_public_policy()), Some(true));
    assert_eq!(curl("GET", &format!("{}/site/public/index.html", cluster.endpoint()), None).0, 200);
}
