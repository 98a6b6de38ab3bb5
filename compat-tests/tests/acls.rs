//! S3 ACLs through aws-sdk-s3, with anonymous `curl` and other owners' keys as the callers they
//! let in: a new bucket's ownership (BucketOwnerEnforced) disables them and CreateBucket says so;
//! ObjectWriter, BucketOwnerPreferred or no ownership controls enable them. Canned ACLs, grant
//! headers and AccessControlPolicy bodies on buckets, objects, copies, multipart uploads and
//! older versions; the AllUsers and AuthenticatedUsers groups and grants to canonical ids;
//! who owns what another owner writes; BlockPublicAcls, IgnorePublicAcls and a policy's Deny
//! over an ACL; and a rebuild from the volumes that keeps every ACL and the ownership.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Grant,
    Grantee, ObjectCannedAcl, ObjectOwnership, Owner, OwnershipControls, OwnershipControlsRule, Permission,
    PublicAccessBlockConfiguration, Type, VersioningConfiguration,
};
use compat_tests::tools::anonymous_curl as curl;
use compat_tests::{ROOT_OWNER_ID, TestCluster, denied, refusal, require_tool, skip_unless_rocksdb};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const FULL_CONTROL: &str = "FULL_CONTROL";
const READ: &str = "READ";
const WRITE: &str = "WRITE";

/// A PutObject of `body`, for the test to add an ACL to and send.
fn put(s3: &Client, bucket: &str, key: &str, body: &str) -> PutObjectFluentBuilder {
    s3.put_object().bucket(bucket).key(key).body(body.as_bytes().to_vec().into())
}

async fn body(s3: &Client, bucket: &str, key: &str) -> Result<String, (String, u16)> {
    let got = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| refusal(&e))?;
    Ok(String::from_utf8(got.body.collect().await.unwrap().into_bytes().to_vec()).unwrap())
}

/// An ACL as the tests compare them: its owner's canonical id and its grants, each as
/// `<grantee type> <id or group uri> <permission>`, sorted (S3 promises no order).
type AclView = (String, Vec<String>);

fn acl_view(owner: Option<&Owner>, grants: &[Grant]) -> AclView {
    let mut grants: Vec<String> = grants
        .iter()
        .map(|g| {
            let grantee = g.grantee().unwrap();
            let who = grantee.id().or(grantee.uri()).unwrap();
            format!("{} {who} {}", grantee.r#type().as_str(), g.permission().unwrap().as_str())
        })
        .collect();
    grants.sort();
    (owner.and_then(|o| o.id()).unwrap_or_default().to_string(), grants)
}

/// The ACL owned by `owner` with `grants`, each a grantee (a canonical id or a group's uri) and
/// a permission.
fn expected(owner: &str, grants: &[(&str, &str)]) -> AclView {
    let mut grants: Vec<String> = grants
        .iter()
        .map(|(who, permission)| {
            let kind = if who.starts_with("http://") { "Group" } else { "CanonicalUser" };
            format!("{kind} {who} {permission}")
        })
        .collect();
    grants.sort();
    (owner.to_string(), grants)
}

/// S3's `private`: the owner's full control and nothing else.
fn private(owner: &str) -> AclView {
    expected(owner, &[(owner, FULL_CONTROL)])
}

async fn bucket_acl(s3: &Client, bucket: &str) -> AclView {
    let got = s3.get_bucket_acl().bucket(bucket).send().await.unwrap();
    acl_view(got.owner(), got.grants())
}

async fn object_acl(s3: &Client, bucket: &str, key: &str, version: Option<&str>) -> AclView {
    let got =
        s3.get_object_acl().bucket(bucket).key(key).set_version_id(version.map(str::to_string)).send().await.unwrap();
    acl_view(got.owner(), got.grants())
}

async fn ownership(s3: &Client, bucket: &str) -> Result<ObjectOwnership, (String, u16)> {
    let got = s3.get_bucket_ownership_controls().bucket(bucket).send().await.map_err(|e| refusal(&e))?;
    let rules = got.ownership_controls().unwrap().rules();
    assert_eq!(rules.len(), 1, "{rules:?}");
    Ok(rules[0].object_ownership().clone())
}

async fn set_ownership(s3: &Client, bucket: &str, ownership: ObjectOwnership) -> Result<(), (String, u16)> {
    let rule = OwnershipControlsRule::builder().object_ownership(ownership).build().unwrap();
    let controls = OwnershipControls::builder().rules(rule).build().unwrap();
    let put = s3.put_bucket_ownership_controls().bucket(bucket).ownership_controls(controls);
    put.send().await.map(|_| ()).map_err(|e| refusal(&e))
}

fn grant(grantee: Grantee, permission: Permission) -> Grant {
    Grant::builder().grantee(grantee).permission(permission).build()
}

fn user(id: &str) -> Grantee {
    Grantee::builder().r#type(Type::CanonicalUser).id(id).build().unwrap()
}

fn everyone() -> Grantee {
    Grantee::builder().r#type(Type::Group).uri(ALL_USERS).build().unwrap()
}

fn block(block_public_acls: bool, ignore_public_acls: bool) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(block_public_acls)
        .ignore_public_acls(ignore_public_acls)
        .block_public_policy(false)
        .restrict_public_buckets(false)
        .build()
}

/// A bucket made without an ACL is BucketOwnerEnforced, as on S3: an object takes no ACL but
/// what its bucket owner has anyway, and a CreateBucket asking for a public ACL is refused
/// (making no bucket) unless it also asks for an ownership that enables ACLs. Ownership
/// controls switch them: BucketOwnerEnforced only once the bucket's own ACL is private, and
/// then the objects' ACLs give nothing and show the bucket owner's full control alone; without
/// ownership controls ACLs apply again.
#[tokio::test(flavor = "multi_thread")]
async fn acls_are_disabled_until_ownership_enables_them() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    let anonymous = |path: &str| curl("GET", &format!("{}/{path}", cluster.endpoint()), None);
    s3.create_bucket().bucket("plain").send().await.unwrap();
    assert_eq!(ownership(&s3, "plain").await, Ok(ObjectOwnership::BucketOwnerEnforced));
    let err = put(&s3, "plain", "public", "x").acl(ObjectCannedAcl::PublicRead).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("AccessControlListNotSupported".into(), 400));
    let err = s3.head_object().bucket("plain").key("public").send().await.unwrap_err();
    assert_eq!(refusal(&err).1, 404, "nothing was stored");
    for canned in [ObjectCannedAcl::Private, ObjectCannedAcl::BucketOwnerFullControl] {
        put(&s3, "plain", canned.as_str(), "x").acl(canned.clone()).send().await.unwrap();
        assert_eq!(object_acl(&s3, "plain", canned.as_str(), None).await, private(ROOT_OWNER_ID), "{canned:?}");
        assert_eq!(anonymous(&format!("plain/{}", canned.as_str())).0, 403);
    }

    // A public bucket ACL needs an ownership that enables ACLs.
    let err = s3.create_bucket().bucket("public").acl(BucketCannedAcl::PublicRead).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("InvalidBucketAclWithObjectOwnership".into(), 400));
    let err = s3.head_bucket().bucket("public").send().await.unwrap_err();
    assert_eq!(refusal(&err).1, 404, "no bucket was made");
    let err = s3
        .create_bucket()
        .bucket("public")
        .acl(BucketCannedAcl::PublicRead)
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), ("InvalidBucketAclWithObjectOwnership".into(), 400));
    let err = s3.head_bucket().bucket("public").send().await.unwrap_err();
    assert_eq!(refusal(&err).1, 404, "no bucket was made");
    s3.create_bucket()
        .bucket("public")
        .acl(BucketCannedAcl::PublicRead)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    put(&s3, "public", "page", "hello").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
    assert_eq!(anonymous("public/page"), (200, "hello".to_string()));

    // BucketOwnerEnforced: refused while the bucket's ACL is public; once it is private, the
    // object's public-read is kept but gives nothing, and shows as the owner's full control.
    let refused = set_ownership(&s3, "public", ObjectOwnership::BucketOwnerEnforced).await;
    assert_eq!(refused, Err(("InvalidBucketAclWithObjectOwnership".into(), 400)));
    assert_eq!(ownership(&s3, "public").await, Ok(ObjectOwnership::ObjectWriter), "unchanged");
    assert_eq!(anonymous("public/page").0, 200);
    s3.put_bucket_acl().bucket("public").acl(BucketCannedAcl::Private).send().await.unwrap();
    assert_eq!(bucket_acl(&s3, "public").await, private(ROOT_OWNER_ID));
    set_ownership(&s3, "public", ObjectOwnership::BucketOwnerEnforced).await.unwrap();
    assert_eq!(ownership(&s3, "public").await, Ok(ObjectOwnership::BucketOwnerEnforced));
    assert_eq!(anonymous("public/page").0, 403, "ACLs are disabled");
    assert_eq!(object_acl(&s3, "public", "page", None).await, private(ROOT_OWNER_ID));
    let err = s3.put_object_acl().bucket("public").key("page").acl(ObjectCannedAcl::PublicRead).send().await;
    assert_eq!(refusal(&err.unwrap_err()), ("AccessControlListNotSupported".into(), 400));

    // Without ownership controls, ACLs apply again.
    s3.delete_bucket_ownership_controls().bucket("public").send().await.unwrap();
    assert_eq!(ownership(&s3, "public").await, Err(("OwnershipControlsNotFoundError".into(), 404)));
    s3.put_object_acl().bucket("public").key("page").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
    let public = expected(ROOT_OWNER_ID, &[(ROOT_OWNER_ID, FULL_CONTROL), (ALL_USERS, READ)]);
    assert_eq!(object_acl(&s3, "public", "page", None).await, public);
    assert_eq!(anonymous("public/page"), (200, "hello".to_string()));
    put(&s3, "public", "new", "also public").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
    assert_eq!(anonymous("public/new"), (200, "also public".to_string()));
}

/// A bucket created public-read with ObjectWriter ownership: its ACL is its creator's full
/// control and AllUsers' READ, so anyone lists it; an object put public-read (also by a copy
/// or a multipart upload that asks for it) is anyone's to GET and HEAD, one put without an ACL
/// or changed back to `private` is not, and a copy does not take its source's ACL. A private
/// bucket lists to nobody anonymous.
#[tokio::test(flavor = "multi_thread")]
async fn canned_acls_make_objects_public_where_ownership_allows() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let anonymous = |path: &str| curl("GET", &format!("{}/{path}", cluster.endpoint()), None);
    let (alice, alice_id) = cluster.new_key("alice", &["--create-bucket"]);
    alice
        .create_bucket()
        .bucket("downloads")
        .acl(BucketCannedAcl::PublicRead)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    let public = expected(&alice_id, &[(&alice_id, FULL_CONTROL), (ALL_USERS, READ)]);
    assert_eq!(bucket_acl(&alice, "downloads").await, public);
    assert_eq!(ownership(&alice, "downloads").await, Ok(ObjectOwnership::ObjectWriter));

    let report = String::from_utf8(compat_tests::test_bytes(3000, 7).iter().map(|b| b'a' + b % 26).collect()).unwrap();
    put(&alice, "downloads", "report.txt", &report).acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
    put(&alice, "downloads", "notes.txt", "my notes").send().await.unwrap();
    let (status, listing) = anonymous("downloads");
    assert_eq!(status, 200, "{listing}");
    assert!(listing.contains("<ListBucketResult"), "{listing}");
    assert!(listing.contains("<Key>notes.txt</Key>") && listing.contains("<Key>report.txt</Key>"), "{listing}");
    assert_eq!(anonymous("downloads/report.txt"), (200, report.clone()));
    assert_eq!(curl("HEAD", &format!("{}/downloads/report.txt", cluster.endpoint()), None).0, 200);
    assert_eq!(anonymous("downloads/notes.txt").0, 403);
    assert_eq!(curl("HEAD", &format!("{}/downloads/notes.txt", cluster.endpoint()), None).0, 403);
    assert_eq!(object_acl(&alice, "downloads", "report.txt", None).await, public);
    assert_eq!(object_acl(&alice, "downloads", "notes.txt", None).await, private(&alice_id));

    // Back to private: anonymous callers are refused again.
    alice.put_object_acl().bucket("downloads").key("report.txt").acl(ObjectCannedAcl::Private).send().await.unwrap();
    assert_eq!(anonymous("downloads/report.txt").0, 403);
    assert_eq!(object_acl(&alice, "downloads", "report.txt", None).await, private(&alice_id));
    assert_eq!(body(&alice, "downloads", "report.txt").await.unwrap(), report, "the owner still reads it");

    // A copy and a multipart upload take the ACL their own request asks for.
    alice
        .copy_object()
        .bucket("downloads")
        .key("notes-copy.txt")
        .copy_source("downloads/notes.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous("downloads/notes-copy.txt"), (200, "my notes".to_string()));
    alice
        .copy_object()
        .bucket("downloads")
        .key("copy-of-copy.txt")
        .copy_source("downloads/notes-copy.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous("downloads/copy-of-copy.txt").0, 403, "a copy does not take its source's ACL");
    assert_eq!(object_acl(&alice, "downloads", "copy-of-copy.txt", None).await, private(&alice_id));
    let upload = alice
        .create_multipart_upload()
        .bucket("downloads")
        .key("big.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = alice
        .upload_part()
        .bucket("downloads")
        .key("big.txt")
        .upload_id(upload_id)
        .part_number(1)
        .body(b"in one part".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous("downloads/big.txt").0, 403, "nothing to read before the upload completes");
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    alice
        .complete_multipart_upload()
        .bucket("downloads")
        .key("big.txt")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous("downloads/big.txt"), (200, "in one part".to_string()));
    assert_eq!(object_acl(&alice, "downloads", "big.txt", None).await, public);

    // A bucket made without an ACL lists to nobody anonymous, nor reads.
    alice.create_bucket().bucket("vault").send().await.unwrap();
    put(&alice, "vault", "secret.txt", "secret").send().await.unwrap();
    assert_eq!(anonymous("vault").0, 403);
    assert_eq!(anonymous("vault/secret.txt").0, 403);
}

/// Grants set exactly what they say: an AccessControlPolicy body and `x-amz-grant-*` headers
/// make an object public as `public-read` does, and an ACL of grant headers holds those grants
/// and no others (as on S3, the owner's full control only if granted). A canned ACL together
/// with grant headers, and a grant by email address, are refused as S3 refuses them. An
/// anonymous PUT needs the bucket's WRITE for AllUsers (`public-read-write`), not just READ. A
/// PutObjectAcl naming an older version makes that version public and leaves the current one
/// private; the bucket's WRITE for everyone lets anyone delete the current object, no version.
#[tokio::test(flavor = "multi_thread")]
async fn grants_and_access_control_policies_set_exactly_the_grants_given() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    let anonymous = |path: &str| curl("GET", &format!("{}/{path}", cluster.endpoint()), None);
    s3.create_bucket().bucket("photos").send().await.unwrap();
    set_ownership(&s3, "photos", ObjectOwnership::BucketOwnerPreferred).await.unwrap();
    assert_eq!(ownership(&s3, "photos").await, Ok(ObjectOwnership::BucketOwnerPreferred));
    let public = expected(ROOT_OWNER_ID, &[(ROOT_OWNER_ID, FULL_CONTROL), (ALL_USERS, READ)]);

    // An AccessControlPolicy body.
    put(&s3, "photos", "cat.jpg", "meow").send().await.unwrap();
    assert_eq!(anonymous("photos/cat.jpg").0, 403);
    let policy = AccessControlPolicy::builder()
        .owner(Owner::builder().id(ROOT_OWNER_ID).build())
        .grants(grant(user(ROOT_OWNER_ID), Permission::FullControl))
        .grants(grant(everyone(), Permission::Read))
        .build();
    s3.put_object_acl().bucket("photos").key("cat.jpg").access_control_policy(policy).send().await.unwrap();
    assert_eq!(anonymous("photos/cat.jpg"), (200, "meow".to_string()));
    assert_eq!(object_acl(&s3, "photos", "cat.jpg", None).await, public);

    // Grant headers: the grants given, no more.
    put(&s3, "photos", "dog.jpg", "woof")
        .grant_read(format!("uri=\"{ALL_USERS}\""))
        .grant_full_control(format!("id=\"{ROOT_OWNER_ID}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous("photos/dog.jpg"), (200, "woof".to_string()));
    assert_eq!(object_acl(&s3, "photos", "dog.jpg", None).await, public);
    put(&s3, "photos", "bird.jpg", "tweet").grant_read(format!("uri=\"{ALL_USERS}\"")).send().await.unwrap();
    assert_eq!(anonymous("photos/bird.jpg"), (200, "tweet".to_string()));
    assert_eq!(object_acl(&s3, "photos", "bird.jpg", None).await, expected(ROOT_OWNER_ID, &[(ALL_USERS, READ)]));

    // Refused as on S3, storing nothing.
    let both =
        put(&s3, "photos", "both.jpg", "x").acl(ObjectCannedAcl::PublicRead).grant_read(format!("uri=\"{ALL_USERS}\""));
    assert_eq!(refusal(&both.send().await.unwrap_err()), ("InvalidRequest".into(), 400));
    let by_email = put(&s3, "photos", "email.jpg", "x").grant_read("emailAddress=\"a@b.c\"");
    assert_eq!(refusal(&by_email.send().await.unwrap_err()), ("UnresolvableGrantByEmailAddress".into(), 400));
    for key in ["both.jpg", "email.jpg"] {
        let err = s3.head_object().bucket("photos").key(key).send().await.unwrap_err();
        assert_eq!(refusal(&err).1, 404, "{key} was not stored");
    }

    // Anonymous writes: READ on the bucket is not enough, WRITE is.
    let anonymous_put =
        |key: &str, body: &str| curl("PUT", &format!("{}/photos/{key}", cluster.endpoint()), Some(body));
    s3.put_bucket_acl().bucket("photos").acl(BucketCannedAcl::PublicRead).send().await.unwrap();
    assert_eq!(anonymous_put("dropped.txt", "dropped").0, 403);
    let err = s3.head_object().bucket("photos").key("dropped.txt").send().await.unwrap_err();
    assert_eq!(refusal(&err).1, 404, "nothing was stored");
    s3.put_bucket_acl().bucket("photos").acl(BucketCannedAcl::PublicReadWrite).send().await.unwrap();
    let read_write = [(ROOT_OWNER_ID, FULL_CONTROL), (ALL_USERS, READ), (ALL_USERS, WRITE)];
    assert_eq!(bucket_acl(&s3, "photos").await, expected(ROOT_OWNER_ID, &read_write));
    let (status, answer) = anonymous_put("dropped.txt", "dropped");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(body(&s3, "photos", "dropped.txt").await.unwrap(), "dropped");

    // An older version made public alone.
    s3.create_bucket().bucket("history").object_ownership(ObjectOwnership::ObjectWriter).send().await.unwrap();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("history").versioning_configuration(enabled).send().await.unwrap();
    let v1 = put(&s3, "history", "doc", "first").send().await.unwrap().version_id.unwrap();
    let v2 = put(&s3, "history", "doc", "second").send().await.unwrap().version_id.unwrap();
    s3.put_object_acl()
        .bucket("history")
        .key("doc")
        .version_id(&v1)
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&format!("history/doc?versionId={v1}")), (200, "first".to_string()));
    assert_eq!(anonymous(&format!("history/doc?versionId={v2}")).0, 403);
    assert_eq!(anonymous("history/doc").0, 403, "the current version stays private");
    assert_eq!(object_acl(&s3, "history", "doc", Some(&v1)).await, public);
    assert_eq!(object_acl(&s3, "history", "doc", None).await, private(ROOT_OWNER_ID));
    assert_eq!(object_acl(&s3, "history", "doc", Some(&v2)).await, private(ROOT_OWNER_ID));

    // A bucket's WRITE for everyone lets anyone delete the current object (a delete marker),
    // never a version: that is the bucket owner's alone.
    s3.put_bucket_acl().bucket("history").acl(BucketCannedAcl::PublicReadWrite).send().await.unwrap();
    let anonymous_delete = |path: &str| curl("DELETE", &format!("{}/history/{path}", cluster.endpoint()), None);
    assert_eq!(anonymous_delete(&format!("doc?versionId={v1}")).0, 403);
    assert_eq!(anonymous_delete("doc").0, 204);
    let err = s3.get_object().bucket("history").key("doc").send().await.unwrap_err();
    assert_eq!(refusal(&err).1, 404, "a delete marker is current");
    for (version, text) in [(&v1, "first"), (&v2, "second")] {
        let got = s3.get_object().bucket("history").key("doc").version_id(version).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), text.as_bytes());
    }
}

/// Other owners' keys by ACL: `authenticated-read` lets any key read (not anonymous callers),
/// a private object none; a READ grant to a canonical id lets that owner read and no third one;
/// a bucket's WRITE grant lets its grantee put objects, which under ObjectWriter are the
/// writer's (GetObjectAcl and listings say so), with the bucket owner's full control or READ
/// when written `bucket-owner-full-control` or `bucket-owner-read`; under BucketOwnerPreferred
/// `bucket-owner-full-control` makes the bucket owner the object's owner.
#[tokio::test(flavor = "multi_thread")]
async fn acls_let_other_owners_in_by_group_and_canonical_id() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let anonymous = |path: &str| curl("GET", &format!("{}/{path}", cluster.endpoint()), None);
    let (alice, alice_id) = cluster.new_key("alice", &["--create-bucket"]);
    let (bob, bob_id) = cluster.new_key("bob", &[]);
    let (carol, carol_id) = cluster.new_key("carol", &[]);
    assert!(alice_id != bob_id && bob_id != carol_id && alice_id != carol_id);
    alice.create_bucket().bucket("team").object_ownership(ObjectOwnership::ObjectWriter).send().await.unwrap();

    // AuthenticatedUsers: every key, no anonymous caller.
    put(&alice, "team", "members.txt", "for keys").acl(ObjectCannedAcl::AuthenticatedRead).send().await.unwrap();
    put(&alice, "team", "private.txt", "for alice").send().await.unwrap();
    let members = expected(&alice_id, &[(&alice_id, FULL_CONTROL), (AUTHENTICATED_USERS, READ)]);
    assert_eq!(object_acl(&alice, "team", "members.txt", None).await, members);
    assert_eq!(body(&bob, "team", "members.txt").await.unwrap(), "for keys");
    assert_eq!(anonymous("team/members.txt").0, 403);
    assert_eq!(body(&bob, "team", "private.txt").await, Err(denied()));

    // A grant to a canonical id: that owner reads, no other.
    put(&alice, "team", "for-bob.txt", "hi bob")
        .grant_read(format!("id=\"{bob_id}\""))
        .grant_full_control(format!("id=\"{alice_id}\""))
        .send()
        .await
        .unwrap();
    let for_bob = expected(&alice_id, &[(&alice_id, FULL_CONTROL), (&bob_id, READ)]);
    assert_eq!(object_acl(&alice, "team", "for-bob.txt", None).await, for_bob);
    assert_eq!(body(&bob, "team", "for-bob.txt").await.unwrap(), "hi bob");
    assert_eq!(body(&carol, "team", "for-bob.txt").await, Err(denied()));
    assert_eq!(anonymous("team/for-bob.txt").0, 403);

    // The bucket's WRITE grant: bob writes, carol does not.
    let err = put(&bob, "team", "from-bob.txt", "by bob").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied(), "no grant yet");
    alice
        .put_bucket_acl()
        .bucket("team")
        .grant_write(format!("id=\"{bob_id}\""))
        .grant_full_control(format!("id=\"{alice_id}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(bucket_acl(&alice, "team").await, expected(&alice_id, &[(&alice_id, FULL_CONTROL), (&bob_id, WRITE)]));
    put(&bob, "team", "from-bob.txt", "by bob").send().await.unwrap();
    let err = put(&carol, "team", "from-carol.txt", "by carol").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = bob.list_objects_v2().bucket("team").send().await.unwrap_err();
    assert_eq!(refusal(&err), denied(), "WRITE is not READ");

    // Under ObjectWriter what bob writes is bob's; the canned ACLs for the bucket owner add
    // its grant. The writer reads its ACL, and so does the bucket owner.
    put(&bob, "team", "bob-full.txt", "x").acl(ObjectCannedAcl::BucketOwnerFullControl).send().await.unwrap();
    put(&bob, "team", "bob-read.txt", "x").acl(ObjectCannedAcl::BucketOwnerRead).send().await.unwrap();
    let written = [
        ("from-bob.txt", private(&bob_id)),
        ("bob-full.txt", expected(&bob_id, &[(&bob_id, FULL_CONTROL), (&alice_id, FULL_CONTROL)])),
        ("bob-read.txt", expected(&bob_id, &[(&bob_id, FULL_CONTROL), (&alice_id, READ)])),
    ];
    for (key, acl) in &written {
        assert_eq!(&object_acl(&bob, "team", key, None).await, acl, "{key} read by its writer");
        assert_eq!(&object_acl(&alice, "team", key, None).await, acl, "{key} read by the bucket owner");
    }
    assert_eq!(body(&alice, "team", "bob-read.txt").await.unwrap(), "x");
    assert_eq!(body(&carol, "team", "from-bob.txt").await, Err(denied()));
    let listed = alice.list_objects_v2().bucket("team").fetch_owner(true).send().await.unwrap();
    let owners: Vec<(&str, &str)> =
        listed.contents().iter().map(|o| (o.key().unwrap(), o.owner().and_then(|o| o.id()).unwrap())).collect();
    let mut expected_owners = vec![
        ("bob-full.txt", bob_id.as_str()),
        ("bob-read.txt", bob_id.as_str()),
        ("for-bob.txt", alice_id.as_str()),
        ("from-bob.txt", bob_id.as_str()),
        ("members.txt", alice_id.as_str()),
        ("private.txt", alice_id.as_str()),
    ];
    expected_owners.sort();
    assert_eq!(owners, expected_owners);

    // Under BucketOwnerPreferred, bucket-owner-full-control hands the object to the bucket
    // owner; without it the writer keeps it.
    set_ownership(&alice, "team", ObjectOwnership::BucketOwnerPreferred).await.unwrap();
    put(&bob, "team", "handed-over.txt", "x").acl(ObjectCannedAcl::BucketOwnerFullControl).send().await.unwrap();
    put(&bob, "team", "kept.txt", "x").send().await.unwrap();
    assert_eq!(object_acl(&alice, "team", "handed-over.txt", None).await, private(&alice_id));
    assert_eq!(object_acl(&alice, "team", "kept.txt", None).await, private(&bob_id));
}

/// What overrules an ACL: BlockPublicAcls refuses public ACLs (on PutObject, PutBucketAcl and
/// PutObjectAcl, canned or granted) with 403 and leaves public ones in place alone;
/// IgnorePublicAcls makes them give nothing until the block is deleted; a bucket policy's
/// explicit Deny wins over an object's public-read.
#[tokio::test(flavor = "multi_thread")]
async fn public_access_blocks_and_policy_denials_overrule_acls() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    let anonymous = |path: &str| curl("GET", &format!("{}/{path}", cluster.endpoint()), None);
    s3.create_bucket()
        .bucket("guarded")
        .acl(BucketCannedAcl::PublicRead)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    put(&s3, "guarded", "open", "for all").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
    put(&s3, "guarded", "closed", "for me").send().await.unwrap();
    assert_eq!(anonymous("guarded/open"), (200, "for all".to_string()));
    let public = expected(ROOT_OWNER_ID, &[(ROOT_OWNER_ID, FULL_CONTROL), (ALL_USERS, READ)]);

    // BlockPublicAcls: no new public ACL anywhere; what is public stays so.
    s3.put_public_access_block()
        .bucket("guarded")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .unwrap();
    let err = put(&s3, "guarded", "new", "x").acl(ObjectCannedAcl::PublicRead).send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = put(&s3, "guarded", "new", "x").grant_read(format!("uri=\"{ALL_USERS}\"")).send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = s3.head_object().bucket("guarded").key("new").send().await.unwrap_err();
    assert_eq!(refusal(&err).1, 404, "nothing was stored");
    let err = s3.put_bucket_acl().bucket("guarded").acl(BucketCannedAcl::PublicRead).send().await.unwrap_err();
    assert_eq!(refusal(&err), denied());
    let err = s3.put_object_acl().bucket("guarded").key("closed").acl(ObjectCannedAcl::PublicRead).send().await;
    assert_eq!(refusal(&err.unwrap_err()), denied());
    assert_eq!(object_acl(&s3, "guarded", "closed", None).await, private(ROOT_OWNER_ID));
    assert_eq!(anonymous("guarded/closed").0, 403);
    put(&s3, "guarded", "new", "x").acl(ObjectCannedAcl::Private).send().await.unwrap();
    assert_eq!(anonymous("guarded/open"), (200, "for all".to_string()), "BlockPublicAcls spares existing ACLs");
    assert_eq!(anonymous("guarded").0, 200);

    // IgnorePublicAcls: the public ACLs stay, and give nothing until the block goes.
    s3.put_public_access_block()
        .bucket("guarded")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous("guarded/open").0, 403);
    assert_eq!(anonymous("guarded").0, 403, "nor the bucket's ACL");
    assert_eq!(object_acl(&s3, "guarded", "open", None).await, public, "kept");
    s3.delete_public_access_block().bucket("guarded").send().await.unwrap();
    assert_eq!(anonymous("guarded/open"), (200, "for all".to_string()));
    assert_eq!(anonymous("guarded").0, 200);

    // A policy's explicit Deny wins over the object's public-read.
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Sid":"NotThisOne","Effect":"Deny","Principal":"*",
      "Action":"s3:GetObject","Resource":"arn:aws:s3:::guarded/open"}]}"#;
    s3.put_bucket_policy().bucket("guarded").policy(deny).send().await.unwrap();
    assert_eq!(anonymous("guarded/open").0, 403);
    assert_eq!(object_acl(&s3, "guarded", "open", None).await, public, "the ACL is unchanged");
    assert_eq!(anonymous("guarded").0, 200, "the Deny names GetObject only");
    s3.delete_bucket_policy().bucket("guarded").send().await.unwrap();
    assert_eq!(anonymous("guarded/open"), (200, "for all".to_string()));
}

/// What a rebuild must keep of bucket `kept`, as lines to compare: its ACL and ownership, the
/// ACL of each of `keys`, and what an anonymous caller gets listing the bucket and reading each.
async fn acl_state(cluster: &TestCluster, keys: &[&str]) -> Vec<String> {
    let s3 = cluster.client();
    let anonymous = |path: &str| curl("GET", &format!("{}/{path}", cluster.endpoint()), None).0;
    let mut out = vec![
        format!("bucket {:?}", bucket_acl(&s3, "kept").await),
        format!("ownership {:?}", ownership(&s3, "kept").await),
        format!("anonymous list {}", anonymous("kept")),
    ];
    for key in keys {
        let acl = object_acl(&s3, "kept", key, None).await;
        out.push(format!("{key} {acl:?} anonymous {}", anonymous(&format!("kept/{key}"))));
    }
    out
}

/// A rebuild of the index from the volumes keeps the bucket's ACL and ownership and every
/// object's ACL: the one written with it, the newest one PutObjectAcl set (also over one given
/// at write), the default, and another owner's object under ObjectWriter; anonymous callers
/// and other owners' keys (imported from an export) get the same as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_keeps_every_acl_and_the_ownership() {
    if skip_unless_rocksdb("a_rebuild_keeps_every_acl_and_the_ownership", "rebuild writes a RocksDB index")
        || require_tool("curl").is_none()
    {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    let (bob, bob_id) = cluster.new_key("bob", &[]);
    s3.create_bucket().bucket("kept").send().await.unwrap();
    set_ownership(&s3, "kept", ObjectOwnership::ObjectWriter).await.unwrap();
    // Public-read, and bob may write.
    s3.put_bucket_acl()
        .bucket("kept")
        .grant_full_control(format!("id=\"{ROOT_OWNER_ID}\""))
        .grant_read(format!("uri=\"{ALL_USERS}\""))
        .grant_write(format!("id=\"{bob_id}\""))
        .send()
        .await
        .unwrap();
    put(&s3, "kept", "public", "public").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
    put(&s3, "kept", "members", "members").send().await.unwrap();
    s3.put_object_acl().bucket("kept").key("members").acl(ObjectCannedAcl::AuthenticatedRead).send().await.unwrap();
    put(&s3, "kept", "withdrawn", "withdrawn").acl(ObjectCannedAcl::PublicRead).send().await.unwrap();
    s3.put_object_acl().bucket("kept").key("withdrawn").acl(ObjectCannedAcl::Private).send().await.unwrap();
    put(&s3, "kept", "plain", "plain").send().await.unwrap();
    put(&bob, "kept", "bobs", "bobs").acl(ObjectCannedAcl::BucketOwnerRead).send().await.unwrap();

    let keys = ["public", "members", "withdrawn", "plain", "bobs"];
    let before = acl_state(&cluster, &keys).await;
    let root_full = (ROOT_OWNER_ID, FULL_CONTROL);
    let bucket = expected(ROOT_OWNER_ID, &[root_full, (ALL_USERS, READ), (&bob_id, WRITE)]);
    let mut wanted = vec![
        format!("bucket {bucket:?}"),
        format!("ownership {:?}", Ok::<_, (String, u16)>(ObjectOwnership::ObjectWriter)),
        "anonymous list 200".to_string(),
    ];
    let objects = [
        ("public", expected(ROOT_OWNER_ID, &[root_full, (ALL_USERS, READ)]), 200),
        ("members", expected(ROOT_OWNER_ID, &[root_full, (AUTHENTICATED_USERS, READ)]), 403),
        ("withdrawn", private(ROOT_OWNER_ID), 403),
        ("plain", private(ROOT_OWNER_ID), 403),
        ("bobs", expected(&bob_id, &[(&bob_id, FULL_CONTROL), (ROOT_OWNER_ID, READ)]), 403),
    ];
    wanted.extend(objects.iter().map(|(key, acl, status)| format!("{key} {acl:?} anonymous {status}")));
    assert_eq!(before, wanted);
    assert_eq!(body(&bob, "kept", "members").await.unwrap(), "members");

    cluster.serve_rebuilt_index_with_keys("rebuilt");

    assert_eq!(acl_state(&cluster, &keys).await, before);
    assert_eq!(body(&bob, "kept", "members").await.unwrap(), "members", "authenticated-read still");
    assert_eq!(body(&bob, "kept", "plain").await, Err(denied()));
    put(&bob, "kept", "after", "after").send().await.unwrap();
    assert_eq!(object_acl(&cluster.client(), "kept", "after", None).await, private(&bob_id), "bob still writes");
}
