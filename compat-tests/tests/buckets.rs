//! Bucket operations with aws-sdk-s3 against real processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::error::ProvideErrorMetadata;
use compat_tests::TestCluster;

#[tokio::test(flavor = "multi_thread")]
async fn bucket_lifecycle() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();

    s3.create_bucket().bucket("alpha").send().await.unwrap();
    s3.create_bucket().bucket("beta").send().await.unwrap();

    let again = s3.create_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(again.code(), Some("BucketAlreadyOwnedByYou"));
    assert_eq!(again.raw_response().unwrap().status().as_u16(), 409);

    for bad in ["Upper", "ab", "bad_name", "-dash", "a..b", "192.168.1.1"] {
        let err = s3.create_bucket().bucket(bad).send().await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidBucketName"), "{bad}");
    }

    let names: Vec<String> =
        s3.list_buckets().send().await.unwrap().buckets().iter().map(|b| b.name().unwrap().to_string()).collect();
    assert_eq!(names, ["alpha", "beta"]);

    s3.head_bucket().bucket("alpha").send().await.unwrap();
    let missing = s3.head_bucket().bucket("missing").send().await.unwrap_err();
    assert_eq!(missing.raw_response().unwrap().status().as_u16(), 404);

    let location = s3.get_bucket_location().bucket("alpha").send().await.unwrap();
    assert!(location.location_constraint().is_none_or(|l| l.as_str().is_empty()));

    s3.put_object().bucket("alpha").key("k").body(b"x".to_vec().into()).send().await.unwrap();
    let not_empty = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(not_empty.code(), Some("BucketNotEmpty"));
    assert_eq!(not_empty.raw_response().unwrap().status().as_u16(), 409);

    s3.delete_object().bucket("alpha").key("k").send().await.unwrap();
    s3.delete_bucket().bucket("alpha").send().await.unwrap();
    let gone = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(gone.code(), Some("NoSuchBucket"));

    let put_missing = s3.put_object().bucket("alpha").key("k").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(put_missing.code(), Some("NoSuchBucket"));

    // A recreated bucket starts empty: the deleted key's tombstone does not leak back.
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    let listing = s3.list_objects_v2().bucket("alpha").send().await.unwrap();
    assert_eq!(listing.key_count(), Some(0));
}
