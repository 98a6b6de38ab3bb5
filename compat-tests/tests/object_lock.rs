//! Object lock through aws-sdk-s3: buckets created with object lock, their configuration and
//! default retention, retention and legal hold on PutObject, CopyObject and multipart uploads
//! and set later, what COMPLIANCE, GOVERNANCE (with and without the bypass, by keys with and
//! without the bucket's owner grant) and legal holds refuse on every delete path — DeleteObject
//! and DeleteObjects by version id, and GC — and a rebuild of the index from the volumes that
//! keeps every lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, VersioningConfiguration,
};
use compat_tests::{TestCluster, refusal, skip_unless_rocksdb};

fn locked() -> (String, u16) {
    ("AccessDenied".into(), 403)
}

/// A date `secs` seconds from now, to the millisecond (S3 keeps lock dates to the millisecond).
fn in_secs(secs: u64) -> DateTime {
    DateTime::from_millis(millis(&DateTime::from(SystemTime::now() + Duration::from_secs(secs))))
}

fn millis(date: &DateTime) -> i64 {
    date.to_millis().unwrap()
}

fn lock_configuration(rule: Option<(ObjectLockRetentionMode, Option<i32>, Option<i32>)>) -> ObjectLockConfiguration {
    let rule = rule.map(|(mode, days, years)| {
        let retention = DefaultRetention::builder().mode(mode).set_days(days).set_years(years).build();
        ObjectLockRule::builder().default_retention(retention).build()
    });
    ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).set_rule(rule).build()
}

async fn put(s3: &Client, bucket: &str, key: &str) -> String {
    let put = s3.put_object().bucket(bucket).key(key).body(key.as_bytes().to_vec().into()).send().await.unwrap();
    put.version_id.expect("a lock bucket is versioned")
}

fn retention(mode: ObjectLockRetentionMode, until: DateTime) -> ObjectLockRetention {
    ObjectLockRetention::builder().mode(mode).retain_until_date(until).build()
}

async fn delete_version(s3: &Client, key: &str, version: &str, bypass: bool) -> Result<(), (String, u16)> {
    let delete = s3.delete_object().bucket("locked").key(key).version_id(version);
    let delete = if bypass { delete.bypass_governance_retention(true) } else { delete };
    delete.send().await.map(|_| ()).map_err(|e| refusal(&e))
}

async fn version_exists(s3: &Client, key: &str, version: &str) -> bool {
    s3.head_object().bucket("locked").key(key).version_id(version).send().await.is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn object_lock_protects_versions_as_on_s3() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();

    // A bucket without object lock: no configuration, and lock requests are refused.
    s3.create_bucket().bucket("plain").send().await.unwrap();
    let err = s3.get_object_lock_configuration().bucket("plain").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("ObjectLockConfigurationNotFoundError".into(), 404));
    let err = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), ("InvalidRequest".into(), 400));
    assert_eq!(err.message(), Some("Bucket is missing Object Lock Configuration"));
    s3.put_object().bucket("plain").key("k").body(b"x".to_vec().into()).send().await.unwrap();
    let err = s3.get_object_retention().bucket("plain").key("k").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("InvalidRequest".into(), 400));
    let config = lock_configuration(None);
    let err = s3
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(config.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), ("InvalidBucketState".into(), 409), "versioning must be enabled first");

    // Created with object lock: versioned at once, and for good.
    s3.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let versioning = s3.get_bucket_versioning().bucket("locked").send().await.unwrap();
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    let got = s3.get_object_lock_configuration().bucket("locked").send().await.unwrap();
    assert_eq!(got.object_lock_configuration(), Some(&config));
    let suspend = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    let err = s3.put_bucket_versioning().bucket("locked").versioning_configuration(suspend).send().await.unwrap_err();
    assert_eq!(refusal(&err), ("InvalidBucketState".into(), 409));

    // A default retention: checked, then given to every version written without one.
    for (bad, code) in [
        ((ObjectLockRetentionMode::Governance, Some(0), None), "InvalidArgument"),
        ((ObjectLockRetentionMode::Governance, Some(1), Some(1)), "MalformedXML"),
        ((ObjectLockRetentionMode::Governance, None, Some(101)), "InvalidArgument"),
    ] {
        let err = s3
            .put_object_lock_configuration()
            .bucket("locked")
            .object_lock_configuration(lock_configuration(Some(bad.clone())))
            .send()
            .await
            .unwrap_err();
        assert_eq!(refusal(&err).0, code, "{bad:?}");
    }
    let one_day = lock_configuration(Some((ObjectLockRetentionMode::Governance, Some(1), None)));
    s3.put_object_lock_configuration()
        .bucket("locked")
        .object_lock_configuration(one_day.clone())
        .send()
        .await
        .unwrap();
    let got = s3.get_object_lock_configuration().bucket("locked").send().await.unwrap();
    assert_eq!(got.object_lock_configuration(), Some(&one_day));
    let before = SystemTime::now();
    let governed = put(&s3, "locked", "governed").await;
    let head = s3.head_object().bucket("locked").key("governed").send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let until = millis(head.object_lock_retain_until_date().unwrap());
    let expected = millis(&DateTime::from(before + Duration::from_secs(24 * 3600)));
    assert!((until - expected).abs() < 60_000, "one day from the write: {until} vs {expected}");
    assert_eq!(head.object_lock_legal_hold_status(), None, "no legal hold");

    // Retention and legal hold named by the write.
    let until = in_secs(3600);
    let written = s3
        .put_object()
        .bucket("locked")
        .key("compliant")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(b"kept".to_vec().into())
        .send()
        .await
        .unwrap();
    let compliant = written.version_id.unwrap();
    let got = s3.get_object().bucket("locked").key("compliant").send().await.unwrap();
    assert_eq!(got.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(got.object_lock_retain_until_date().map(millis), Some(millis(&until)));
    assert_eq!(got.object_lock_legal_hold_status(), Some(&ObjectLockLegalHoldStatus::On));
    let retained = s3.get_object_retention().bucket("locked").key("compliant").send().await.unwrap();
    assert_eq!(retained.retention(), Some(&retention(ObjectLockRetentionMode::Compliance, until)));
    let hold = s3.get_object_legal_hold().bucket("locked").key("compliant").send().await.unwrap();
    assert_eq!(hold.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));

    // Malformed lock headers.
    let bad_put = |mode: Option<ObjectLockMode>, until: Option<DateTime>| {
        s3.put_object()
            .bucket("locked")
            .key("bad")
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .body(b"x".to_vec().into())
            .send()
    };
    let err = bad_put(Some(ObjectLockMode::Governance), None).await.unwrap_err();
    assert_eq!(refusal(&err), ("InvalidRequest".into(), 400));
    let err = bad_put(Some(ObjectLockMode::Governance), Some(DateTime::from_secs(1_000_000))).await.unwrap_err();
    assert_eq!(
        (refusal(&err).0, err.message()),
        ("InvalidRequest".into(), Some("The retain until date must be in the future!"))
    );
    let err = bad_put(Some(ObjectLockMode::from("FOREVER")), Some(in_secs(60))).await.unwrap_err();
    assert_eq!(refusal(&err).0, "InvalidArgument");
    // S3 wants a digest with lock headers: a client that sends no checksum is refused.
    let no_checksums = Client::from_conf(
        s3.config()
            .to_builder()
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .build(),
    );
    let err = no_checksums
        .put_object()
        .bucket("locked")
        .key("bad")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), ("InvalidRequest".into(), 400), "{err:?}");
    assert!(s3.head_object().bucket("locked").key("bad").send().await.is_err(), "nothing was stored");

    // COMPLIANCE: extended, never shortened, weakened or removed, bypass or not.
    let later = in_secs(7200);
    let set_retention = |key: &str, version: &str, retention: ObjectLockRetention, bypass: bool| {
        let put = s3.put_object_retention().bucket("locked").key(key).version_id(version).retention(retention);
        if bypass { put.bypass_governance_retention(true) } else { put }.send()
    };
    set_retention("compliant", &compliant, retention(ObjectLockRetentionMode::Compliance, later), false).await.unwrap();
    for (weaker, bypass) in [
        (retention(ObjectLockRetentionMode::Compliance, in_secs(60)), true),
        (retention(ObjectLockRetentionMode::Governance, in_secs(9000)), true),
        (ObjectLockRetention::builder().build(), true),
    ] {
        let err = set_retention("compliant", &compliant, weaker.clone(), bypass).await.unwrap_err();
        assert_eq!(refusal(&err), locked(), "{weaker:?}");
    }
    let retained = s3.get_object_retention().bucket("locked").key("compliant").send().await.unwrap();
    assert_eq!(retained.retention().and_then(|r| r.retain_until_date()).map(millis), Some(millis(&later)));

    // The legal hold comes off; COMPLIANCE still keeps the version.
    let off = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::Off).build();
    s3.put_object_legal_hold().bucket("locked").key("compliant").legal_hold(off).send().await.unwrap();
    let hold = s3.get_object_legal_hold().bucket("locked").key("compliant").send().await.unwrap();
    assert_eq!(hold.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::Off));

    // Every delete path: by version id, bypass or not; DeleteObjects; GC.
    assert_eq!(delete_version(&s3, "compliant", &compliant, false).await, Err(locked()));
    assert_eq!(delete_version(&s3, "compliant", &compliant, true).await, Err(locked()), "COMPLIANCE is never bypassed");
    assert_eq!(delete_version(&s3, "governed", &governed, false).await, Err(locked()));
    let both = Delete::builder()
        .objects(ObjectIdentifier::builder().key("compliant").version_id(&compliant).build().unwrap())
        .objects(ObjectIdentifier::builder().key("governed").version_id(&governed).build().unwrap())
        .build()
        .unwrap();
    let deleted = s3.delete_objects().bucket("locked").delete(both.clone()).send().await.unwrap();
    assert!(deleted.deleted().is_empty(), "{deleted:?}");
    let codes: Vec<_> = deleted.errors().iter().map(|e| (e.key().unwrap(), e.code().unwrap())).collect();
    assert_eq!(codes, [("compliant", "AccessDenied"), ("governed", "AccessDenied")]);
    // Deleting without a version id writes a delete marker, as S3 does: the version stays.
    let marker = s3.delete_object().bucket("locked").key("compliant").send().await.unwrap();
    assert_eq!(marker.delete_marker(), Some(true));
    // An overwrite is a new version; the locked one stays.
    put(&s3, "locked", "governed").await;
    // The jobs that delete blobs or move them: none touches a locked version.
    for job in [&["gc", "--grace", "0"][..], &["rebalance"], &["verify", "--repair"], &["lifecycle", "run"]] {
        cluster.admin_ok(job);
    }
    assert!(version_exists(&s3, "compliant", &compliant).await);
    assert!(version_exists(&s3, "governed", &governed).await);

    // GOVERNANCE yields to the bypass, and only for the bucket's owner: a key that may write
    // but does not own the bucket is refused the bypass itself.
    let created: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["key", "create", "writer", "--json"])).unwrap();
    let id = created["access_key_id"].as_str().unwrap().to_string();
    let writer = cluster.client_with(&id, created["secret_access_key"].as_str().unwrap());
    cluster.admin_ok(&["key", "allow", &id, "locked", "--read", "--write"]);
    assert_eq!(delete_version(&writer, "governed", &governed, false).await, Err(locked()));
    assert_eq!(delete_version(&writer, "governed", &governed, true).await, Err(locked()), "no owner grant");
    let err = set_retention("governed", &governed, ObjectLockRetention::builder().build(), false).await.unwrap_err();
    assert_eq!(refusal(&err), locked(), "removing GOVERNANCE needs the bypass");
    cluster.admin_ok(&["key", "allow", &id, "locked", "--owner"]);
    delete_version(&writer, "governed", &governed, true).await.unwrap();
    assert!(!version_exists(&s3, "governed", &governed).await);
    let deleted =
        s3.delete_objects().bucket("locked").delete(both).bypass_governance_retention(true).send().await.unwrap();
    assert_eq!(deleted.errors().len(), 1, "COMPLIANCE still refuses: {deleted:?}");

    // Multipart uploads and copies take the lock their request names.
    let until = in_secs(600);
    let upload = s3
        .create_multipart_upload()
        .bucket("locked")
        .key("multi")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = s3.upload_part().bucket("locked").key("multi").upload_id(id).part_number(1);
    let part = part.body(b"one part".to_vec().into()).send().await.unwrap();
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    let done = s3.complete_multipart_upload().bucket("locked").key("multi").upload_id(id).multipart_upload(parts);
    let multi = done.send().await.unwrap().version_id.unwrap();
    let head = s3.head_object().bucket("locked").key("multi").send().await.unwrap();
    assert_eq!(head.object_lock_retain_until_date().map(millis), Some(millis(&until)));
    assert_eq!(delete_version(&s3, "multi", &multi, false).await, Err(locked()));
    let copy = s3
        .copy_object()
        .bucket("locked")
        .key("copied")
        .copy_source("plain/k")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .unwrap();
    let copied = copy.version_id.unwrap();
    let head = s3.head_object().bucket("locked").key("copied").send().await.unwrap();
    assert_eq!(head.object_lock_legal_hold_status(), Some(&ObjectLockLegalHoldStatus::On));
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance), "the bucket's default retention");
    assert_eq!(delete_version(&s3, "copied", &copied, true).await, Err(locked()), "a legal hold is never bypassed");

    // Without a default retention, a version without lock headers has none.
    s3.put_object_lock_configuration().bucket("locked").object_lock_configuration(config).send().await.unwrap();
    let free = put(&s3, "locked", "free").await;
    let err = s3.get_object_retention().bucket("locked").key("free").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchObjectLockConfiguration".into(), 404));
    let hold = s3.get_object_legal_hold().bucket("locked").key("free").send().await.unwrap();
    assert_eq!(hold.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::Off));
    delete_version(&s3, "free", &free, false).await.unwrap();
}

/// A rebuild from the volumes keeps the bucket's lock configuration and every version,
/// delete marker, retention and legal hold, as last changed (ListObjectVersions and the lock
/// of every version equal to the original's); the locks still refuse deletion afterwards.
/// Every version and delete marker of bucket `locked` as ListObjectVersions gives them
/// (key, version id, latest, marker), each version with its lock as HEAD reports it.
async fn versions_with_locks(s3: &Client) -> Vec<String> {
    let listed = s3.list_object_versions().bucket("locked").send().await.unwrap();
    assert!(!listed.is_truncated().unwrap_or(false));
    let mut out = Vec::new();
    for v in listed.versions() {
        let (key, id) = (v.key().unwrap(), v.version_id().unwrap());
        let head = s3.head_object().bucket("locked").key(key).version_id(id).send().await.unwrap();
        out.push(format!(
            "{key} {id} latest={:?} mode={:?} until={:?} hold={:?}",
            v.is_latest(),
            head.object_lock_mode(),
            head.object_lock_retain_until_date().map(millis),
            head.object_lock_legal_hold_status()
        ));
    }
    for m in listed.delete_markers() {
        out.push(format!("{} {} latest={:?} marker", m.key().unwrap(), m.version_id().unwrap(), m.is_latest()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_keeps_every_lock() {
    if skip_unless_rocksdb("a_rebuild_keeps_every_lock", "rebuild writes a RocksDB index") {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let config = lock_configuration(Some((ObjectLockRetentionMode::Governance, None, Some(1))));
    s3.put_object_lock_configuration().bucket("locked").object_lock_configuration(config.clone()).send().await.unwrap();
    let defaulted = put(&s3, "locked", "defaulted").await;
    let held = put(&s3, "locked", "held").await;
    let on = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build();
    s3.put_object_legal_hold().bucket("locked").key("held").legal_hold(on).send().await.unwrap();
    let extended = in_secs(5 * 365 * 24 * 3600);
    let compliance = retention(ObjectLockRetentionMode::Compliance, extended);
    s3.put_object_retention().bucket("locked").key("held").retention(compliance.clone()).send().await.unwrap();
    put(&s3, "locked", "held").await;
    s3.delete_object().bucket("locked").key("defaulted").send().await.unwrap();
    let before = s3.head_object().bucket("locked").key("defaulted").version_id(&defaulted).send().await.unwrap();
    cluster.admin_ok(&["gc", "--grace", "0"]);
    let versions_before = versions_with_locks(&s3).await;
    assert_eq!(versions_before.len(), 4, "{versions_before:#?}");

    cluster.serve_rebuilt_index("rebuilt");
    let s3 = cluster.client();
    assert_eq!(versions_with_locks(&s3).await, versions_before, "every version, marker and lock");

    let got = s3.get_object_lock_configuration().bucket("locked").send().await.unwrap();
    assert_eq!(got.object_lock_configuration(), Some(&config));
    let head = s3.head_object().bucket("locked").key("defaulted").version_id(&defaulted).send().await.unwrap();
    assert_eq!(head.object_lock_mode(), before.object_lock_mode());
    assert_eq!(head.object_lock_retain_until_date(), before.object_lock_retain_until_date());
    let retained = s3.get_object_retention().bucket("locked").key("held").version_id(&held).send().await.unwrap();
    assert_eq!(retained.retention(), Some(&compliance), "the newest change of the retention");
    let hold = s3.get_object_legal_hold().bucket("locked").key("held").version_id(&held).send().await.unwrap();
    assert_eq!(hold.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));
    assert_eq!(delete_version(&s3, "held", &held, true).await, Err(locked()));
    assert_eq!(delete_version(&s3, "defaulted", &defaulted, false).await, Err(locked()));
    delete_version(&s3, "defaulted", &defaulted, true).await.unwrap();
}
