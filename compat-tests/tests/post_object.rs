//! POST Object, browser form uploads: forms signed as the SDKs' presigned-POST helpers sign
//! them (SigV4 policy, and SigV2), sent with `curl -F`: the policy's conditions (exact,
//! `starts-with`, `content-length-range`), `${filename}`, metadata, tags, content type,
//! `success_action_status` and `success_action_redirect`; every refusal (a tampered field, a
//! wrong signature, an expired policy, a field the policy does not cover, a file too large, an
//! anonymous form to a private bucket, a key not allowed to write) stores nothing. And a page
//! on another origin in headless Chromium uploads with a form and reads S3's answer (CORS).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::Command;

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use compat_tests::tools::start_browser_script;
use compat_tests::{ACCESS_KEY, SECRET_KEY, TestCluster, require_tool};
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};

/// A form's fields, in order.
type Form = Vec<(String, String)>;

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The fields of a SigV4-signed form for `bucket`: `fields` plus the signature's own, under a
/// policy of `conditions` (and the signature fields' conditions) expiring in `expires_in`
/// seconds, signed with `secret`.
fn signed_form(
    bucket: &str,
    fields: &[(&str, &str)],
    conditions: &[Value],
    expires_in: i64,
    secret: &str,
) -> Vec<(String, String)> {
    signed_form_as((ACCESS_KEY, secret), bucket, fields, conditions, expires_in)
}

/// [`signed_form`] by the key `access_key` with its `secret`.
fn signed_form_as(
    (access_key, secret): (&str, &str),
    bucket: &str,
    fields: &[(&str, &str)],
    conditions: &[Value],
    expires_in: i64,
) -> Vec<(String, String)> {
    let iso = DateTime::from_secs(now()).fmt(DateTimeFormat::DateTime).unwrap();
    let amz_date = iso.replace(['-', ':'], "");
    let day = &amz_date[..8];
    let credential = format!("{access_key}/{day}/us-east-1/s3/aws4_request");
    let expiration = DateTime::from_secs(now() + expires_in).fmt(DateTimeFormat::DateTime).unwrap();
    let mut all_conditions = conditions.to_vec();
    all_conditions.extend([
        json!({"bucket": bucket}),
        json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
        json!({"x-amz-credential": credential}),
        json!({"x-amz-date": amz_date}),
    ]);
    let policy = json!({"expiration": expiration, "conditions": all_conditions}).to_string();
    use base64::Engine as _;
    let policy = base64::engine::general_purpose::STANDARD.encode(policy);
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), day);
    for part in ["us-east-1", "s3", "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    let signature = hex::encode(hmac_sha256(&key, &policy));
    let mut out: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    out.extend([
        ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("x-amz-credential".into(), credential),
        ("x-amz-date".into(), amz_date),
        ("policy".into(), policy),
        ("x-amz-signature".into(), signature),
    ]);
    out
}

/// Posts a form with `file` as its file part; returns the status, the headers and the body.
fn post(url: &str, fields: &[(String, String)], file: &Path) -> (u16, String, String) {
    let curl = require_tool("curl").expect("curl");
    let mut command = Command::new(curl);
    command.args(["-s", "-D", "-", "--max-time", "60"]);
    for (name, value) in fields {
        command.arg("--form-string").arg(format!("{name}={value}"));
    }
    command.arg("-F").arg(format!("file=@{}", file.display())).arg(url);
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn file(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

const TAGGING: &str =
    "<Tagging><TagSet><Tag><Key>source</Key><Value>form &amp; browser</Value></Tag></TagSet></Tagging>";

#[tokio::test(flavor = "multi_thread")]
async fn form_uploads_are_checked_then_streamed_and_stored() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("forms").send().await.unwrap();
    let url = format!("{}/forms", cluster.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let hello = file(dir.path(), "hello.txt", b"hello form");
    let conditions = [
        json!(["starts-with", "$key", "uploads/"]),
        json!({"success_action_status": "201"}),
        json!(["starts-with", "$Content-Type", "text/"]),
        json!({"x-amz-meta-color": "blue"}),
        json!({"tagging": TAGGING}),
        json!(["content-length-range", 1, 1000]),
    ];
    let fields = [
        ("key", "uploads/${filename}"),
        ("success_action_status", "201"),
        ("Content-Type", "text/plain"),
        ("x-amz-meta-color", "blue"),
        ("tagging", TAGGING),
    ];
    let form = signed_form("forms", &fields, &conditions, 300, SECRET_KEY);
    let (status, head, body) = post(&url, &form, &hello);
    assert_eq!(status, 201, "{head}{body}");
    assert!(body.contains("<Key>uploads/hello.txt</Key>") && body.contains("<Bucket>forms</Bucket>"), "{body}");
    assert!(head.to_ascii_lowercase().contains("etag: \""), "{head}");
    let got = s3.get_object().bucket("forms").key("uploads/hello.txt").send().await.unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.metadata().and_then(|m| m.get("color")).map(String::as_str), Some("blue"));
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"hello form");
    let tags = s3.get_object_tagging().bucket("forms").key("uploads/hello.txt").send().await.unwrap();
    assert_eq!(tags.tag_set()[0].value(), "form & browser");

    // Without success_action_status: 204; with a redirect: 303 to it, naming what was stored.
    let plain = signed_form(
        "forms",
        &[("key", "uploads/plain")],
        &[json!(["starts-with", "$key", "uploads/"])],
        300,
        SECRET_KEY,
    );
    assert_eq!(post(&url, &plain, &hello).0, 204);
    let redirect = [("key", "uploads/redirected"), ("success_action_redirect", "http://app.example/done")];
    let redirect_conditions =
        [json!(["starts-with", "$key", "uploads/"]), json!({"success_action_redirect": "http://app.example/done"})];
    let (status, head, _) = post(&url, &signed_form("forms", &redirect, &redirect_conditions, 300, SECRET_KEY), &hello);
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("http://app.example/done?bucket=forms&key=uploads%2Fredirected&etag="), "{head}");

    // Refusals, none of which stores anything.
    let refusals: Vec<(&str, Form, u16, &str)> = vec![
        (
            "a key outside the policy",
            {
                let mut f = signed_form(
                    "forms",
                    &[("key", "uploads/x")],
                    &[json!(["starts-with", "$key", "uploads/"])],
                    300,
                    SECRET_KEY,
                );
                f[0].1 = "elsewhere/x".into();
                f
            },
            403,
            "Policy Condition failed",
        ),
        (
            "a wrong signature",
            signed_form("forms", &[("key", "uploads/y")], &[json!(["starts-with", "$key", ""])], 300, "not-the-secret"),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "an expired policy",
            signed_form("forms", &[("key", "uploads/z")], &[json!(["starts-with", "$key", ""])], -60, SECRET_KEY),
            403,
            "Policy expired",
        ),
        (
            "a field the policy does not name",
            signed_form(
                "forms",
                &[("key", "uploads/w"), ("x-amz-meta-extra", "1")],
                &[json!(["starts-with", "$key", ""])],
                300,
                SECRET_KEY,
            ),
            403,
            "Extra input fields: x-amz-meta-extra",
        ),
        (
            "a file over the range",
            signed_form(
                "forms",
                &[("key", "uploads/big")],
                &[json!(["starts-with", "$key", ""]), json!(["content-length-range", 1, 5])],
                300,
                SECRET_KEY,
            ),
            400,
            "EntityTooLarge",
        ),
        ("anonymous, no policy", vec![("key".to_string(), "uploads/anon".to_string())], 403, "AccessDenied"),
    ];
    for (what, form, want_status, want_text) in refusals {
        let (status, head, body) = post(&url, &form, &hello);
        assert_eq!(status, want_status, "{what}: {head}{body}");
        assert!(body.contains(want_text), "{what}: {body}");
    }
    let listed = s3.list_objects_v2().bucket("forms").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(keys, ["uploads/hello.txt", "uploads/plain", "uploads/redirected"], "nothing refused was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigv2_forms_and_keys_that_may_not_write() {
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("forms").send().await.unwrap();
    let url = format!("{}/forms", cluster.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let hello = file(dir.path(), "hello.txt", b"hello v2");

    // SigV2: the policy signed with HMAC-SHA1, as boto's old presigned POST did.
    let expiration = DateTime::from_secs(now() + 300).fmt(DateTimeFormat::DateTime).unwrap();
    let policy = json!({"expiration": expiration, "conditions": [{"bucket": "forms"}, ["eq", "$key", "v2/object"]]});
    use base64::Engine as _;
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(SECRET_KEY.as_bytes()).unwrap();
    mac.update(policy.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let form: Vec<(String, String)> =
        [("key", "v2/object"), ("AWSAccessKeyId", ACCESS_KEY), ("policy", &policy), ("signature", &signature)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let (status, head, body) = post(&url, &form, &hello);
    assert_eq!(status, 204, "{head}{body}");
    assert!(s3.head_object().bucket("forms").key("v2/object").send().await.is_ok());

    // A key that may not write the bucket signs a perfectly good form: refused.
    let created: serde_json::Value =
        serde_json::from_str(&cluster.admin_ok(&["key", "create", "reader", "--json"])).unwrap();
    let id = created["access_key_id"].as_str().unwrap();
    cluster.admin_ok(&["key", "allow", id, "forms", "--read"]);
    let secret = created["secret_access_key"].as_str().unwrap();
    let form =
        signed_form_as((id, secret), "forms", &[("key", "reader/x")], &[json!(["starts-with", "$key", ""])], 300);
    let (status, _, body) = post(&url, &form, &hello);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>") && !body.contains("Policy"), "{body}");
    assert!(s3.head_object().bucket("forms").key("reader/x").send().await.is_err());
}

/// A form's `acl` field sets the object's ACL as `x-amz-acl` does (where the bucket's ownership
/// enables ACLs, else AccessControlListNotSupported); a form without a signature succeeds where
/// the bucket's ACL lets anyone write.
#[tokio::test(flavor = "multi_thread")]
async fn form_acls_and_anonymous_forms_into_a_public_bucket() {
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectOwnership};
    if require_tool("curl").is_none() {
        return;
    }
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("locked").send().await.unwrap();
    s3.create_bucket()
        .bucket("drop")
        .acl(BucketCannedAcl::PublicReadWrite)
        .object_ownership(ObjectOwnership::BucketOwnerPreferred)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = file(dir.path(), "page.html", b"<p>public</p>");
    let anyone_reads = |bucket: &'static str, key: &'static str| {
        let url = format!("{}/{bucket}/{key}", cluster.endpoint());
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };

    let public = [json!({"acl": "public-read"}), json!(["starts-with", "$key", ""])];
    let form = signed_form("locked", &[("key", "page.html"), ("acl", "public-read")], &public, 300, SECRET_KEY);
    let (status, _, body) = post(&format!("{}/locked", cluster.endpoint()), &form, &page);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>AccessControlListNotSupported</Code>"), "{body}");
    assert!(s3.head_object().bucket("locked").key("page.html").send().await.is_err(), "nothing stored");

    let form = signed_form("drop", &[("key", "page.html"), ("acl", "public-read")], &public, 300, SECRET_KEY);
    let (status, _, body) = post(&format!("{}/drop", cluster.endpoint()), &form, &page);
    assert_eq!(status, 204, "{body}");
    assert_eq!(anyone_reads("drop", "page.html").await, 200);

    // Unsigned: anonymous, let in by the bucket's public-read-write ACL; private to its owner.
    let form = vec![("key".to_string(), "dropped.html".to_string())];
    let (status, _, body) = post(&format!("{}/drop", cluster.endpoint()), &form, &page);
    assert_eq!(status, 204, "{body}");
    let got = s3.get_object().bucket("drop").key("dropped.html").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"<p>public</p>");
    let acl = s3.get_object_acl().bucket("drop").key("dropped.html").send().await.unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some("65a011a29cdf8ec533ec3d1ccaae921c"), "S3's anonymous owner");
    let grants: Vec<_> =
        acl.grants().iter().map(|g| (g.grantee.as_ref().and_then(|g| g.uri.clone()), g.permission.clone())).collect();
    assert!(grants.iter().all(|(uri, _)| uri.is_none()), "no group is granted anything: {grants:?}");
    assert_eq!(anyone_reads("drop", "dropped.html").await, 403, "owning it gives anonymous callers nothing");
    let (status, _, body) = post(&format!("{}/locked", cluster.endpoint()), &form, &page);
    assert_eq!(status, 403, "{body}");
}

/// A page on another origin posts a form with fetch() and reads S3's answer, which it may
/// only do because the bucket's CORS rules allow its origin.
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_posts_a_form_from_another_origin() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("forms").send().await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/post_form.py");
    let Some(mut browser) = start_browser_script(script, &[]) else { return };
    let mut said = BufReader::new(browser.stdout.take().unwrap()).lines();
    let origin = said.next().unwrap().unwrap().strip_prefix("origin ").unwrap().to_string();
    let rule = CorsRule::builder().allowed_origins(&origin).allowed_methods("POST").build().unwrap();
    let cors = CorsConfiguration::builder().cors_rules(rule).build().unwrap();
    s3.put_bucket_cors().bucket("forms").cors_configuration(cors).send().await.unwrap();
    let form = signed_form(
        "forms",
        &[("key", "browser/${filename}"), ("success_action_status", "201")],
        &[json!(["starts-with", "$key", "browser/"]), json!({"success_action_status": "201"})],
        300,
        SECRET_KEY,
    );
    let request = json!({"url": format!("{}/forms", cluster.endpoint()), "fields": form});
    writeln!(browser.stdin.as_mut().unwrap(), "{request}").unwrap();
    let answer = said.next().map(Result::unwrap).unwrap_or_default();
    let status = browser.wait().unwrap();
    assert!(answer.starts_with("posted 201") && answer.contains("<Key>browser/photo.txt</Key>"), "{answer} ({status})");
    let got = s3.get_object().bucket("forms").key("browser/photo.txt").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"picked in a browser");
}

/// boto3's own presigned-POST helper signs the form; urllib3 (botocore's HTTP library) posts it.
#[test]
fn boto3_presigned_post_uploads() {
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let Some(python) = compat_tests::tools::Tool::boto3(&cluster, work.path()) else { return };
    let out = python.run(&["-c", BOTO3_PRESIGNED_POST]);
    assert!(out.contains("presigned post ok"), "{out}");
}

const BOTO3_PRESIGNED_POST: &str = r#"
import os, boto3, urllib3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["CAIRN_ENDPOINT"], config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="forms")
post = s3.generate_presigned_post("forms", "uploads/${filename}",
    Fields={"success_action_status": "201", "Content-Type": "image/png"},
    Conditions=[["starts-with", "$key", "uploads/"], {"success_action_status": "201"},
                {"Content-Type": "image/png"}, ["content-length-range", 1, 1000]],
    ExpiresIn=600)
fields = dict(post["fields"])
fields["file"] = ("pixel.png", b"\x89PNG not really", "image/png")
answer = urllib3.request("POST", post["url"], fields=fields)
assert answer.status == 201, (answer.status, answer.data)
assert b"<Key>uploads/pixel.png</Key>" in answer.data, answer.data
head = s3.head_object(Bucket="forms", Key="uploads/pixel.png")
assert head["ContentType"] == "image/png" and head["ContentLength"] == 15, head
fields["file"] = ("big.png", b"x" * 1001, "image/png")
too_big = urllib3.request("POST", post["url"], fields=fields)
assert too_big.status == 400 and b"EntityTooLarge" in too_big.data, (too_big.status, too_big.data)
print("presigned post ok")
"#;
