//! `cairn-admin rebuild` restores everything a client can see: besides objects, the tags
//! changed after a write, empty buckets (and not deleted ones), and, through a sealed
//! `key export` / `key import`, the access keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use compat_tests::{ADMIN_TOKEN, TestCluster, test_bytes};

const PASSPHRASE: &str = "a long and sincere passphrase";

/// Runs `cairn-admin` with extra environment variables (and never an inherited passphrase).
fn admin_env(cluster: &TestCluster, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(compat_tests::binary("cairn-admin"))
        .args(["--admin-url", &cluster.admin_url()])
        .args(args)
        .env("CAIRN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("CAIRN_KEY_PASSPHRASE")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    let tags = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap()).collect();
    Tagging::builder().set_tag_set(Some(tags)).build().unwrap()
}

/// Everything a client can observe: the buckets with their creation dates, and in each the
/// listing, every HeadObject and every object's tag set.
async fn observe(s3: &aws_sdk_s3::Client) -> Vec<String> {
    let mut seen = Vec::new();
    let buckets = s3.list_buckets().send().await.unwrap();
    for bucket in buckets.buckets() {
        let name = bucket.name().unwrap();
        seen.push(format!("bucket {name} created {:?}", bucket.creation_date()));
        let listing = s3.list_objects_v2().bucket(name).send().await.unwrap();
        for object in listing.contents() {
            let key = object.key().unwrap();
            let head = s3.head_object().bucket(name).key(key).send().await.unwrap();
            let tags = s3.get_object_tagging().bucket(name).key(key).send().await.unwrap();
            let tags: Vec<(String, String)> =
                tags.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
            seen.push(format!(
                "{name}/{key} size={:?} etag={:?} modified={:?} type={:?} tags={tags:?}",
                object.size(),
                head.e_tag(),
                head.last_modified(),
                head.content_type(),
            ));
        }
    }
    seen
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8], tags: Option<&str>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .set_tagging(tags.map(str::to_string))
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_restores_tags_buckets_and_imported_keys() {
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    for bucket in ["data", "empty", "emptied", "gone", "phoenix", "other"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }

    // Tags as written, replaced, removed, replaced twice, replaced and then overwritten.
    put(&s3, "data", "plain", b"plain", Some("w=1")).await;
    put(&s3, "data", "retagged", b"retagged", Some("w=1")).await;
    s3.put_object_tagging()
        .bucket("data")
        .key("retagged")
        .tagging(tagging(&[("a", "1"), ("b", "2")]))
        .send()
        .await
        .unwrap();
    put(&s3, "data", "untagged", b"untagged", Some("w=1")).await;
    s3.delete_object_tagging().bucket("data").key("untagged").send().await.unwrap();
    put(&s3, "data", "twice", b"twice", None).await;
    for v in ["1", "2"] {
        s3.put_object_tagging().bucket("data").key("twice").tagging(tagging(&[("v", v)])).send().await.unwrap();
    }
    put(&s3, "data", "overwritten", b"v1", None).await;
    s3.put_object_tagging().bucket("data").key("overwritten").tagging(tagging(&[("old", "1")])).send().await.unwrap();
    put(&s3, "data", "overwritten", b"v2", Some("new=1")).await;
    // A copy takes the source's current tags.
    s3.copy_object().bucket("data").key("copied").copy_source("data/retagged").send().await.unwrap();
    // A multipart object retagged after completion.
    let big = test_bytes(5 * 1024 * 1024 + 1000, 3);
    let upload = s3.create_multipart_upload().bucket("data").key("multi").tagging("m=1").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, chunk) in [(1, &big[..5 * 1024 * 1024]), (2, &big[5 * 1024 * 1024..])] {
        let part = s3.upload_part().bucket("data").key("multi").upload_id(upload_id).part_number(n);
        let out = part.body(ByteStream::from(chunk.to_vec())).send().await.unwrap();
        parts.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap()).build());
    }
    let completed = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    s3.complete_multipart_upload()
        .bucket("data")
        .key("multi")
        .upload_id(upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .unwrap();
    s3.put_object_tagging().bucket("data").key("multi").tagging(tagging(&[("m", "2")])).send().await.unwrap();

    // GC with no grace: what it reclaims now (replaced tags, overwritten versions, orphans)
    // must not include any blob the index still needs.
    cluster.admin_ok(&["gc", "--grace", "0"]);

    // A bucket emptied but kept; one emptied and deleted (its tombstones are not collected
    // yet); one deleted and created again.
    put(&s3, "emptied", "k", b"x", None).await;
    s3.delete_object().bucket("emptied").key("k").send().await.unwrap();
    put(&s3, "gone", "k", b"x", None).await;
    s3.delete_object().bucket("gone").key("k").send().await.unwrap();
    s3.delete_bucket().bucket("gone").send().await.unwrap();
    put(&s3, "phoenix", "k", b"x", None).await;
    s3.delete_object().bucket("phoenix").key("k").send().await.unwrap();
    s3.delete_bucket().bucket("phoenix").send().await.unwrap();
    s3.create_bucket().bucket("phoenix").send().await.unwrap();

    // An access key allowed on one bucket, exported sealed.
    let created: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["key", "create", "app", "--json"])).unwrap();
    let (id, secret) = (created["access_key_id"].as_str().unwrap(), created["secret_access_key"].as_str().unwrap());
    cluster.admin_ok(&["key", "allow", id, "data", "--read", "--write"]);
    cluster
        .client_with(id, secret)
        .put_object()
        .bucket("data")
        .key("by-app")
        .body(b"app".to_vec().into())
        .send()
        .await
        .unwrap();
    let export = cluster.root.path().join("keys.sealed");
    let exported = admin_env(
        &cluster,
        &["key", "export", "--out", export.to_str().unwrap()],
        &[("CAIRN_KEY_PASSPHRASE", PASSPHRASE)],
    );
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let sealed = std::fs::read_to_string(&export).unwrap();
    assert!(!sealed.contains(secret) && !sealed.contains(id), "the export is sealed: {sealed}");
    let again = admin_env(
        &cluster,
        &["key", "export", "--out", export.to_str().unwrap()],
        &[("CAIRN_KEY_PASSPHRASE", PASSPHRASE)],
    );
    assert!(!again.status.success(), "an export never overwrites a file");

    let before = observe(&s3).await;
    assert!(before.iter().any(|l| l.starts_with("bucket empty ")), "{before:#?}");
    assert!(
        before.iter().any(|l| l.contains("data/retagged") && l.contains(r#"("a", "1"), ("b", "2")"#)),
        "{before:#?}"
    );

    // Lose the index; rebuild it offline from the volumes; serve from the rebuilt one.
    cluster.stop_gateway();
    let (rebuilt, out) = cluster.rebuild_ok("rebuilt-index");
    assert!(out.contains("5 buckets, 8 objects"), "{out}");
    assert!(out.contains("1 deleted buckets, 4 tag sets changed after the write"), "{out}");
    assert!(out.contains("access keys are not on the volumes") && out.contains("key import"), "{out}");
    std::fs::remove_dir_all(cluster.db_dir()).unwrap();
    std::fs::rename(&rebuilt, cluster.db_dir()).unwrap();
    cluster.start_gateway();

    let s3 = cluster.client();
    assert_eq!(observe(&s3).await, before, "buckets, listings, heads and tags equal what they were");
    let gone = s3.head_bucket().bucket("gone").send().await.unwrap_err();
    assert_eq!(gone.raw_response().unwrap().status().as_u16(), 404, "a deleted bucket stays deleted");

    // The key is not back until it is imported; a wrong passphrase imports nothing.
    let app = cluster.client_with(id, secret);
    let denied = app.list_objects_v2().bucket("data").send().await.unwrap_err();
    assert_eq!(denied.code(), Some("InvalidAccessKeyId"));
    let wrong = cluster.root.path().join("wrong-passphrase");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let failed = admin_env(
        &cluster,
        &["key", "import", export.to_str().unwrap(), "--passphrase-file", wrong.to_str().unwrap()],
        &[],
    );
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("wrong passphrase"), "{failed:?}");
    assert!(!cluster.admin_ok(&["key", "list"]).contains(id));
    let right = cluster.root.path().join("passphrase");
    std::fs::write(&right, format!("{PASSPHRASE}\n")).unwrap();
    let import = ["key", "import", export.to_str().unwrap(), "--passphrase-file", right.to_str().unwrap()];
    let first = admin_env(&cluster, &import, &[]);
    assert!(String::from_utf8_lossy(&first.stdout).contains("imported 1 keys (0 replaced)"), "{first:?}");
    let second = admin_env(&cluster, &import, &[]);
    assert!(String::from_utf8_lossy(&second.stdout).contains("imported 1 keys (1 replaced)"), "{second:?}");
    assert!(cluster.admin_ok(&["key", "list"]).contains("data:rw-"));
    let got = app.get_object().bucket("data").key("by-app").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"app");
    app.put_object().bucket("data").key("after").body(b"new".to_vec().into()).send().await.unwrap();
    let other = app.list_objects_v2().bucket("other").send().await.unwrap_err();
    assert_eq!(other.code(), Some("AccessDenied"), "grants came back too");

    // GC on the rebuilt index keeps everything visible, then lets the deleted bucket's
    // record go once its older blobs are gone; the name can be used again.
    let gc: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["gc", "--grace", "0", "--json"])).unwrap();
    assert_eq!(gc["bucket_tombstones"], 1, "{gc}");
    app.delete_object().bucket("data").key("after").send().await.unwrap();
    assert_eq!(observe(&s3).await, before, "GC took nothing still in use");
    s3.create_bucket().bucket("gone").send().await.unwrap();
    assert_eq!(s3.list_objects_v2().bucket("gone").send().await.unwrap().key_count(), Some(0));
}
