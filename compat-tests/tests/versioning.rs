//! S3 versioning through aws-sdk-s3: Put/GetBucketVersioning, version ids on every write,
//! reads, copies, tags and attributes by version id, delete markers, deleting versions by id
//! (DeleteObject and DeleteObjects), ListObjectVersions with its markers, suspended buckets
//! writing the `null` version; and a rebuild of the index from the volumes that lists the same
//! versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::types::{
    BucketVersioningStatus, Delete, ObjectAttributes, ObjectIdentifier, Tag, Tagging, VersioningConfiguration,
};
use compat_tests::{TestCluster, skip_unless_rocksdb};

async fn set_versioning(s3: &Client, bucket: &str, status: BucketVersioningStatus) {
    let configuration = VersioningConfiguration::builder().status(status).build();
    s3.put_bucket_versioning().bucket(bucket).versioning_configuration(configuration).send().await.unwrap();
}

async fn put(s3: &Client, bucket: &str, key: &str, body: &str) -> Option<String> {
    let put = s3.put_object().bucket(bucket).key(key).body(body.as_bytes().to_vec().into()).send().await.unwrap();
    put.version_id
}

/// The body of `key` (of version `version` if given).
async fn body(s3: &Client, bucket: &str, key: &str, version: Option<&str>) -> String {
    let got = s3.get_object().bucket(bucket).key(key).set_version_id(version.map(str::to_string)).send().await.unwrap();
    String::from_utf8(got.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
}

/// Every version and delete marker, as `key:version_id:latest` (`:M` for a marker), sorted,
/// read a page of `page` at a time through the key and version-id markers.
async fn list_versions(s3: &Client, bucket: &str, page: i32) -> Vec<String> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let listed = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        assert!(listed.versions().len() + listed.delete_markers().len() <= page as usize);
        let latest = |latest: Option<bool>| if latest.unwrap() { "latest" } else { "old" };
        for v in listed.versions() {
            out.push(format!("{}:{}:{}", v.key().unwrap(), v.version_id().unwrap(), latest(v.is_latest())));
        }
        for m in listed.delete_markers() {
            out.push(format!("{}:{}:{}:M", m.key().unwrap(), m.version_id().unwrap(), latest(m.is_latest())));
        }
        if !listed.is_truncated().unwrap() {
            out.sort();
            return out;
        }
        key_marker = listed.next_key_marker().map(str::to_string);
        version_marker = listed.next_version_id_marker().map(str::to_string);
    }
}

/// The S3 error code of a failed call, with its HTTP status and response headers.
fn refusal<E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (Option<String>, u16, http::HeaderMap) {
    match err {
        SdkError::ServiceError(err) => {
            let raw = err.raw();
            let status = raw.status().as_u16();
            let mut headers = http::HeaderMap::new();
            for (name, value) in raw.headers() {
                headers.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(value).unwrap(),
                );
            }
            (err.err().code().map(str::to_string), status, headers)
        }
        other => panic!("not a service error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_delete_markers_and_version_ids_work_as_on_s3() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let status = s3.get_bucket_versioning().bucket("bkt").send().await.unwrap();
    assert_eq!(status.status(), None, "never versioned: no status");

    // Written before versioning: the null version, no version id in the answer.
    assert_eq!(put(&s3, "bkt", "k", "v0").await, None);
    set_versioning(&s3, "bkt", BucketVersioningStatus::Enabled).await;
    let status = s3.get_bucket_versioning().bucket("bkt").send().await.unwrap();
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Enabled));

    let v1 = put(&s3, "bkt", "k", "v1").await.expect("a version id");
    let v2 = put(&s3, "bkt", "k", "v2").await.expect("a version id");
    assert_ne!(v1, v2);
    let current = s3.get_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(current.version_id(), Some(v2.as_str()));
    assert_eq!(body(&s3, "bkt", "k", None).await, "v2");
    assert_eq!(body(&s3, "bkt", "k", Some(&v1)).await, "v1");
    assert_eq!(body(&s3, "bkt", "k", Some("null")).await, "v0");
    let head = s3.head_object().bucket("bkt").key("k").version_id(&v1).send().await.unwrap();
    assert_eq!((head.content_length(), head.version_id()), (Some(2), Some(v1.as_str())));
    let unknown = s3.get_object().bucket("bkt").key("k").version_id("00000000000000ff").send().await.unwrap_err();
    assert_eq!(refusal(unknown).0.as_deref(), Some("NoSuchVersion"));

    // Attributes, tags and copies by version id.
    let attributes = s3
        .get_object_attributes()
        .bucket("bkt")
        .key("k")
        .version_id(&v1)
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!((attributes.object_size(), attributes.version_id()), (Some(2), Some(v1.as_str())));
    let tagging = Tagging::builder().tag_set(Tag::builder().key("t").value("2").build().unwrap()).build().unwrap();
    let tagged = s3.put_object_tagging().bucket("bkt").key("k").version_id(&v2).tagging(tagging).send().await.unwrap();
    assert_eq!(tagged.version_id(), Some(v2.as_str()));
    let tags = s3.get_object_tagging().bucket("bkt").key("k").version_id(&v2).send().await.unwrap();
    assert_eq!(tags.tag_set().len(), 1);
    assert!(s3.get_object_tagging().bucket("bkt").key("k").version_id(&v1).send().await.unwrap().tag_set().is_empty());
    // A noncurrent version's tags change too, and only its own.
    let tagging = Tagging::builder().tag_set(Tag::builder().key("t").value("1").build().unwrap()).build().unwrap();
    s3.put_object_tagging().bucket("bkt").key("k").version_id(&v1).tagging(tagging).send().await.unwrap();
    let tags = s3.get_object_tagging().bucket("bkt").key("k").version_id(&v1).send().await.unwrap();
    assert_eq!(tags.tag_set()[0].value(), "1");
    let tags = s3.get_object_tagging().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(tags.tag_set()[0].value(), "2", "the current version keeps its own");
    s3.delete_object_tagging().bucket("bkt").key("k").version_id("null").send().await.unwrap();
    let copied =
        s3.copy_object().bucket("bkt").key("copy").copy_source(format!("bkt/k?versionId={v1}")).send().await.unwrap();
    assert_eq!(copied.copy_source_version_id(), Some(v1.as_str()));
    assert!(copied.version_id().is_some());
    assert_eq!(body(&s3, "bkt", "copy", None).await, "v1");

    // A delete without a version id writes a delete marker.
    let deleted = s3.delete_object().bucket("bkt").key("k").send().await.unwrap();
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().expect("the marker's version id").to_string();
    let (code, status, headers) = refusal(s3.get_object().bucket("bkt").key("k").send().await.unwrap_err());
    assert_eq!((code.as_deref(), status), (Some("NoSuchKey"), 404));
    assert_eq!(headers.get("x-amz-delete-marker").unwrap(), "true");
    assert_eq!(headers.get("x-amz-version-id").unwrap(), marker.as_str());
    let (_, status, headers) = refusal(s3.head_object().bucket("bkt").key("k").send().await.unwrap_err());
    assert_eq!((status, headers.get("x-amz-delete-marker").unwrap().to_str().unwrap()), (404, "true"));
    let (code, status, _) =
        refusal(s3.get_object().bucket("bkt").key("k").version_id(&marker).send().await.unwrap_err());
    assert_eq!((code.as_deref(), status), (Some("MethodNotAllowed"), 405));
    let source = format!("bkt/k?versionId={marker}");
    let (code, status, _) =
        refusal(s3.copy_object().bucket("bkt").key("from-marker").copy_source(source).send().await.unwrap_err());
    assert_eq!((code.as_deref(), status), (Some("InvalidRequest"), 400), "a copy may not name a delete marker");
    // Listings of objects skip it; the old versions are still there.
    let listed = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    assert_eq!(listed.contents().iter().map(|o| o.key().unwrap()).collect::<Vec<_>>(), ["copy"]);
    assert_eq!(body(&s3, "bkt", "k", Some(&v1)).await, "v1");
    let copy_version = copied.version_id().unwrap();
    let mut expected = vec![
        format!("copy:{copy_version}:latest"),
        format!("k:{marker}:latest:M"),
        format!("k:{v2}:old"),
        format!("k:{v1}:old"),
        "k:null:old".to_string(),
    ];
    expected.sort();
    for page in [1, 2, 1000] {
        assert_eq!(list_versions(&s3, "bkt", page).await, expected, "pages of {page}");
    }
    // Newest first within a key.
    let listed = s3.list_object_versions().bucket("bkt").prefix("k").send().await.unwrap();
    let order: Vec<&str> = listed.versions().iter().map(|v| v.version_id().unwrap()).collect();
    assert_eq!(order, [v2.as_str(), v1.as_str(), "null"]);

    // Deleting the marker by id brings v2 back; deleting v1 removes it for good.
    let undeleted = s3.delete_object().bucket("bkt").key("k").version_id(&marker).send().await.unwrap();
    assert_eq!((undeleted.delete_marker(), undeleted.version_id()), (Some(true), Some(marker.as_str())));
    assert_eq!(body(&s3, "bkt", "k", None).await, "v2");
    s3.delete_object().bucket("bkt").key("k").version_id(&v1).send().await.unwrap();
    let gone = s3.get_object().bucket("bkt").key("k").version_id(&v1).send().await.unwrap_err();
    assert_eq!(refusal(gone).0.as_deref(), Some("NoSuchVersion"));
    // A bucket with versions is not empty.
    let (code, _, _) = refusal(s3.delete_bucket().bucket("bkt").send().await.unwrap_err());
    assert_eq!(code.as_deref(), Some("BucketNotEmpty"));

    // DeleteObjects by version id: the rest of k's versions, and the copy.
    let ids = [("k", "null"), ("k", v2.as_str()), ("copy", copy_version)];
    let objects: Vec<ObjectIdentifier> = ids
        .iter()
        .map(|(key, version)| ObjectIdentifier::builder().key(*key).version_id(*version).build().unwrap())
        .collect();
    let delete = Delete::builder().set_objects(Some(objects)).build().unwrap();
    let result = s3.delete_objects().bucket("bkt").delete(delete).send().await.unwrap();
    assert!(result.errors().is_empty(), "{:?}", result.errors());
    assert_eq!(result.deleted().len(), 3);
    assert!(list_versions(&s3, "bkt", 1000).await.is_empty());

    // Suspended: every write is the null version, replacing the previous null version.
    set_versioning(&s3, "bkt", BucketVersioningStatus::Suspended).await;
    assert_eq!(put(&s3, "bkt", "s", "n1").await.as_deref(), Some("null"));
    assert_eq!(put(&s3, "bkt", "s", "n2").await.as_deref(), Some("null"));
    assert_eq!(list_versions(&s3, "bkt", 1000).await, ["s:null:latest"]);
    assert_eq!(body(&s3, "bkt", "s", Some("null")).await, "n2");
    let suspended_delete = s3.delete_object().bucket("bkt").key("s").send().await.unwrap();
    assert_eq!(suspended_delete.version_id(), Some("null"));
    assert_eq!(list_versions(&s3, "bkt", 1000).await, ["s:null:latest:M"]);
    // Never back to unversioned (the SDK cannot even say it; raw XML would be refused).
    s3.delete_object().bucket("bkt").key("s").version_id("null").send().await.unwrap();
    s3.delete_bucket().bucket("bkt").send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_uploads_and_conditional_writes_make_versions() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    set_versioning(&s3, "bkt", BucketVersioningStatus::Enabled).await;
    let v1 = put(&s3, "bkt", "k", "first").await.unwrap();
    s3.delete_object().bucket("bkt").key("k").send().await.unwrap();
    // The current version is a delete marker: the key has no object to match.
    let create = s3.put_object().bucket("bkt").key("k").if_none_match("*").body(b"again".to_vec().into());
    let v2 = create.send().await.unwrap().version_id.unwrap();
    let upload = s3.create_multipart_upload().bucket("bkt").key("k").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(upload_id)
        .part_number(1)
        .body(b"multipart".to_vec().into())
        .send()
        .await
        .unwrap();
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    let completed = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    let v3 = completed.version_id().expect("a version id").to_string();
    assert_eq!(body(&s3, "bkt", "k", None).await, "multipart");
    for (version, expected) in [(&v1, "first"), (&v2, "again"), (&v3, "multipart")] {
        assert_eq!(body(&s3, "bkt", "k", Some(version)).await, expected);
    }
    assert_eq!(list_versions(&s3, "bkt", 1000).await.len(), 4, "three versions and a marker");
}

/// A rebuild from the volumes restores every version and delete marker, versions deleted by
/// id stay deleted, and the bucket's state stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_lists_the_same_versions() {
    if skip_unless_rocksdb("a_rebuild_lists_the_same_versions", "rebuild writes a RocksDB index") {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    put(&s3, "bkt", "a", "a0").await;
    set_versioning(&s3, "bkt", BucketVersioningStatus::Enabled).await;
    for n in 1..=3 {
        put(&s3, "bkt", "a", &format!("a{n}")).await.unwrap();
        put(&s3, "bkt", &format!("k{n}"), "x").await.unwrap();
    }
    s3.delete_object().bucket("bkt").key("k1").send().await.unwrap();
    // The current version deleted by id (a2 becomes current), and a noncurrent one.
    let listed = s3.list_object_versions().bucket("bkt").prefix("a").send().await.unwrap();
    let ids: Vec<String> = listed.versions().iter().map(|v| v.version_id().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 4, "a3, a2, a1 and the null version");
    let (a3, a1) = (ids[0].clone(), ids[2].clone());
    s3.delete_object().bucket("bkt").key("a").version_id(&a3).send().await.unwrap();
    s3.delete_object().bucket("bkt").key("a").version_id(&a1).send().await.unwrap();
    set_versioning(&s3, "bkt", BucketVersioningStatus::Suspended).await;
    put(&s3, "bkt", "k2", "null-now").await;
    // Tags changed on a noncurrent version travel with it.
    let tagging = Tagging::builder().tag_set(Tag::builder().key("old").value("yes").build().unwrap()).build().unwrap();
    s3.put_object_tagging().bucket("bkt").key("a").version_id("null").tagging(tagging).send().await.unwrap();
    let before = list_versions(&s3, "bkt", 1000).await;
    assert_eq!(before.len(), 7, "{before:?}");
    assert_eq!(body(&s3, "bkt", "a", None).await, "a2");

    let bodies = every_body(&s3, &before).await;
    assert!(bodies.contains(&"a@null=a0 [\"old=yes\"]".to_string()), "{bodies:?}");

    // Rebuilt with the deleted versions' blobs still on the volumes (GC has not run): they
    // stay deleted, and everything else comes back.
    cluster.serve_rebuilt_index("rebuilt-before-gc");
    let s3 = cluster.client();
    assert_eq!(list_versions(&s3, "bkt", 1000).await, before);
    assert_eq!(every_body(&s3, &before).await, bodies);
    assert_eq!(body(&s3, "bkt", "a", None).await, "a2");
    assert_eq!(body(&s3, "bkt", "k2", None).await, "null-now");
    let status = s3.get_bucket_versioning().bucket("bkt").send().await.unwrap();
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Suspended));

    // GC collects the deleted versions and nothing else, then drops the two removal records
    // (held while the versions' blobs were queued); a second run finds nothing to do.
    let first: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["gc", "--grace", "0", "--json"])).unwrap();
    assert_eq!(first["tombstones"], 2, "{first}");
    let second: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["gc", "--grace", "0", "--json"])).unwrap();
    assert_eq!((second["tombstones"].as_u64(), second["queue_total"].as_u64()), (Some(0), Some(0)), "{second}");
    assert_eq!(cluster.status().await["gc_queue"], 0);
    assert_eq!(list_versions(&s3, "bkt", 1000).await, before);
    assert_eq!(every_body(&s3, &before).await, bodies, "every noncurrent version survived GC");

    cluster.serve_rebuilt_index("rebuilt-after-gc");
    let s3 = cluster.client();
    assert_eq!(list_versions(&s3, "bkt", 1000).await, before);
    assert_eq!(every_body(&s3, &before).await, bodies);
}

/// The body and tags of every version (not marker) of `listed` (as [`list_versions`] gives
/// them).
async fn every_body(s3: &Client, listed: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for line in listed.iter().filter(|line| !line.ends_with(":M")) {
        let mut fields = line.split(':');
        let (key, id) = (fields.next().unwrap(), fields.next().unwrap());
        let tagging = s3.get_object_tagging().bucket("bkt").key(key).version_id(id).send().await.unwrap();
        let tags: Vec<String> = tagging.tag_set().iter().map(|t| format!("{}={}", t.key(), t.value())).collect();
        out.push(format!("{key}@{id}={} {tags:?}", body(s3, "bkt", key, Some(id)).await));
    }
    out
}
