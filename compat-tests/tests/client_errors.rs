//! A client's mistakes as the operator and the client see them: the gateway logs each refused
//! request once, in its access log line (INFO), and never at ERROR or WARN; every error the
//! client gets says what went wrong in its `<Message>`, including those s3s builds without
//! one. And every request, refused or not, has exactly one access log line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use compat_tests::tools::Tool;
use compat_tests::{ACCESS_KEY, TestCluster};

/// One refused request: what it was, the request id the gateway answered with, its code.
#[derive(Debug)]
struct Refused {
    what: &'static str,
    request_id: String,
    code: String,
}

fn refused<E: ProvideErrorMetadata + std::fmt::Debug>(
    what: &'static str,
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    code: &str,
) -> Refused {
    assert_eq!(err.code(), Some(code), "{what}: {err:?}");
    let response = err.raw_response().unwrap_or_else(|| panic!("{what}: no response: {err:?}"));
    let request_id = response.headers().get("x-amz-request-id").unwrap().to_string();
    Refused { what, request_id, code: code.to_string() }
}

/// Client mistakes of each kind: refused by a handler (a missing key, an S3 call Cairn does
/// not implement) and refused by s3s before any handler runs (an unsupported header, a bad
/// signature, no signature at all).
async fn make_mistakes(cluster: &TestCluster) -> Vec<Refused> {
    let s3 = cluster.client_without_retries(Duration::from_secs(10));
    let mut out = Vec::new();
    let err = s3.get_object().bucket("bkt").key("missing").send().await.unwrap_err();
    out.push(refused("GET of a missing key", &err, "NoSuchKey"));
    let err = s3.get_bucket_analytics_configuration().bucket("bkt").id("a").send().await.unwrap_err();
    out.push(refused("an S3 call Cairn does not implement", &err, "NotImplemented"));
    let sse = s3.put_object().bucket("bkt").key("k").body(b"x".to_vec().into());
    let err = sse.server_side_encryption("AES256".into()).send().await.unwrap_err();
    out.push(refused("server-side encryption asked for", &err, "NotImplemented"));
    // A 403 is not retried: one request.
    let wrong = cluster.client_with(ACCESS_KEY, "not-the-secret");
    let err = wrong.list_objects_v2().bucket("bkt").send().await.unwrap_err();
    out.push(refused("a bad signature", &err, "SignatureDoesNotMatch"));
    let anonymous = reqwest::get(format!("{}/bkt/k", cluster.endpoint())).await.unwrap();
    assert_eq!(anonymous.status(), 403);
    let request_id = anonymous.headers()["x-amz-request-id"].to_str().unwrap().to_string();
    let body = anonymous.text().await.unwrap();
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    out.push(Refused { what: "an anonymous GET", request_id, code: "AccessDenied".into() });
    out
}

/// The lines of `log` that belong to a request (its span names its id).
fn lines_of<'a>(log: &'a str, request_id: &str) -> Vec<&'a str> {
    let field = format!("request_id={request_id}");
    log.lines().filter(|line| line.contains(&field)).collect()
}

fn level_of(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_mistakes_are_logged_once_in_the_access_log_and_never_as_errors() {
    // The gateway at its default level (no RUST_LOG), as an operator runs it.
    let cluster = TestCluster::start_logging(3, 2, None);
    cluster.client().create_bucket().bucket("bkt").send().await.unwrap();
    let mistakes = make_mistakes(&cluster).await;
    assert_eq!(mistakes.len(), 5);
    let log = cluster.gateway_log();
    assert!(log.contains("S3 endpoint serving"), "the default level shows INFO:\n{log}");
    let loud: Vec<&str> = log.lines().filter(|line| matches!(level_of(line), "ERROR" | "WARN")).collect();
    assert!(loud.is_empty(), "client mistakes logged as errors at the default level:\n{}", loud.join("\n"));
    for mistake in &mistakes {
        let lines = lines_of(&log, &mistake.request_id);
        assert_eq!(lines.len(), 1, "{}: one line at the default level, not {lines:#?}", mistake.what);
        assert_eq!(level_of(lines[0]), "INFO", "{}", lines[0]);
        assert!(lines[0].contains(&format!("code={}", mistake.code)), "{}: {}", mistake.what, lines[0]);
    }
    drop(cluster);

    // At DEBUG each mistake is still named once, by its access line (the request's other
    // DEBUG lines trace routing and checks, and do not report the error again).
    let cluster = TestCluster::start_logging(3, 2, Some("debug"));
    cluster.client().create_bucket().bucket("bkt").send().await.unwrap();
    let mistakes = make_mistakes(&cluster).await;
    let log = cluster.gateway_log();
    for mistake in &mistakes {
        let lines = lines_of(&log, &mistake.request_id);
        assert!(!lines.is_empty(), "{}: no line at DEBUG", mistake.what);
        let loud: Vec<&&str> = lines.iter().filter(|line| matches!(level_of(line), "ERROR" | "WARN")).collect();
        assert!(loud.is_empty(), "{}: logged as an error at DEBUG: {loud:#?}", mistake.what);
        let reports: Vec<&&str> = lines.iter().filter(|line| line.contains(&mistake.code)).collect();
        assert_eq!(reports.len(), 1, "{}: one line names {}, not {reports:#?}", mistake.what, mistake.code);
        assert_eq!(level_of(reports[0]), "INFO", "{}", reports[0]);
        assert!(reports[0].contains(" access: "), "the access line: {}", reports[0]);
    }
}

/// Code and message of an SDK error.
fn code_and_message<E: ProvideErrorMetadata>(
    result: Result<impl std::fmt::Debug, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (String, String) {
    let err = result.expect_err("an error");
    (err.code().unwrap_or_default().to_string(), err.message().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_carries_a_message() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client_without_retries(Duration::from_secs(10));
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    s3.put_object().bucket("bkt").key("small").body(b"0123456789".to_vec().into()).send().await.unwrap();
    let app: serde_json::Value = serde_json::from_str(&cluster.admin_ok(&["key", "create", "app", "--json"])).unwrap();
    let ungranted =
        cluster.client_with(app["access_key_id"].as_str().unwrap(), app["secret_access_key"].as_str().unwrap());

    let mut answers: Vec<(&str, &str, (String, String))> = Vec::new();
    let mut expect = |what, code, answer| answers.push((what, code, answer));
    expect(
        "CreateBucket with a bad name",
        "InvalidBucketName",
        code_and_message(s3.create_bucket().bucket("Bad_Name").send().await),
    );
    expect(
        "GET of a missing key",
        "NoSuchKey",
        code_and_message(s3.get_object().bucket("bkt").key("nope").send().await),
    );
    expect(
        "GET in a missing bucket",
        "NoSuchBucket",
        code_and_message(s3.get_object().bucket("no-such-bucket").key("k").send().await),
    );
    expect(
        "ListParts of an unknown upload",
        "NoSuchUpload",
        code_and_message(s3.list_parts().bucket("bkt").key("small").upload_id("no-such-upload").send().await),
    );
    expect(
        "a range past the end",
        "InvalidRange",
        code_and_message(s3.get_object().bucket("bkt").key("small").range("bytes=100-200").send().await),
    );
    expect(
        "DeleteBucket of a bucket with objects",
        "BucketNotEmpty",
        code_and_message(s3.delete_bucket().bucket("bkt").send().await),
    );
    expect(
        "GetBucketAnalyticsConfiguration",
        "NotImplemented",
        code_and_message(s3.get_bucket_analytics_configuration().bucket("bkt").id("a").send().await),
    );
    let sse = s3.put_object().bucket("bkt").key("k").body(b"x".to_vec().into());
    expect(
        "server-side encryption",
        "NotImplemented",
        code_and_message(sse.server_side_encryption("AES256".into()).send().await),
    );
    expect(
        "a key without a grant",
        "AccessDenied",
        code_and_message(ungranted.list_objects_v2().bucket("bkt").send().await),
    );
    let wrong = cluster.client_with(ACCESS_KEY, "not-the-secret");
    expect(
        "a bad signature",
        "SignatureDoesNotMatch",
        code_and_message(wrong.list_objects_v2().bucket("bkt").send().await),
    );
    let unknown = cluster.client_with("AKIDUNKNOWN000000000", "whatever");
    expect("an unknown key", "InvalidAccessKeyId", code_and_message(unknown.list_buckets().send().await));
    expect(
        "an empty version id",
        "InvalidArgument",
        code_and_message(s3.get_object().bucket("bkt").key("small").version_id("").send().await),
    );
    let long_key = "k".repeat(1025);
    expect(
        "a key over 1024 bytes",
        "KeyTooLongError",
        code_and_message(s3.put_object().bucket("bkt").key(long_key).body(b"x".to_vec().into()).send().await),
    );
    let anonymous = reqwest::get(format!("{}/bkt/small", cluster.endpoint())).await.unwrap().text().await.unwrap();
    let element = |name: &str| {
        anonymous
            .split(&format!("<{name}>"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{name}>")).next())
            .unwrap_or("")
            .to_string()
    };
    expect("an anonymous GET", "AccessDenied", (element("Code"), element("Message")));

    let failures: Vec<String> = answers
        .iter()
        .filter(|(_, code, (got, message))| got != code || message.trim().is_empty())
        .map(|(what, code, (got, message))| format!("{what}: expected {code}, got {got} with message {message:?}"))
        .collect();
    assert!(failures.is_empty(), "errors without a message (or the wrong code):\n{}", failures.join("\n"));
}

/// boto3 prints an error's `<Message>`, or "Unknown" when there is none.
const BOTO3_ERRORS: &str = r#"
import os
import boto3
import botocore
from botocore.config import Config

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["CAIRN_ENDPOINT"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
wrong = boto3.client(
    "s3",
    endpoint_url=os.environ["CAIRN_ENDPOINT"],
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key="not-the-secret",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
for code, call in [
    ("InvalidBucketName", lambda: s3.create_bucket(Bucket="Bad_Name")),
    ("NoSuchKey", lambda: s3.get_object(Bucket="bkt", Key="missing")),
    ("SignatureDoesNotMatch", lambda: wrong.list_objects_v2(Bucket="bkt")),
]:
    try:
        call()
        raise AssertionError("expected " + code)
    except botocore.exceptions.ClientError as err:
        error = err.response["Error"]
        assert error["Code"] == code, str(err)
        assert error.get("Message") and "Unknown" not in str(err), str(err)
        print(err)
print("boto3 messages passed")
"#;

#[test]
fn boto3_shows_the_message_of_an_invalid_bucket_name() {
    let cluster = TestCluster::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let Some(python) = Tool::boto3(&cluster, work.path()) else { return };
    python.run(&[
        "-c",
        "import boto3, os; boto3.client('s3', endpoint_url=os.environ['CAIRN_ENDPOINT']).create_bucket(Bucket='bkt')",
    ]);
    let out = python.output(&["-c", BOTO3_ERRORS]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("boto3 messages passed"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("when calling the CreateBucket operation: The specified bucket is not valid."), "{stdout}");
}

/// The request id an SDK call was answered with.
fn id_of(output: &impl aws_sdk_s3::operation::RequestId) -> String {
    output.request_id().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_has_one_access_line_naming_op_bucket_key_status_and_key_id() {
    let cluster = TestCluster::start_logging(3, 2, None);
    let s3 = cluster.client_without_retries(Duration::from_secs(10));
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let put = s3.put_object().bucket("bkt").key("dir/k y").body(vec![7u8; 1234].into()).send().await.unwrap();
    let get = s3.get_object().bucket("bkt").key("dir/k y").send().await.unwrap();
    let get_id = id_of(&get);
    get.body.collect().await.unwrap();
    let list = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    let missing = s3.head_object().bucket("bkt").key("nope").send().await.unwrap_err();
    let missing_id = missing.raw_response().unwrap().headers().get("x-amz-request-id").unwrap().to_string();
    let log = cluster.gateway_log();

    let expected = [
        (id_of(&put), "PutObject", "\"dir/k y\"", "status=200", "bytes_in=1234"),
        (get_id, "GetObject", "\"dir/k y\"", "status=200", "bytes_out=1234"),
        (id_of(&list), "ListObjectsV2", "\"\"", "status=200", ""),
        (missing_id, "HeadObject", "\"nope\"", "status=404", ""),
    ];
    for (id, op, key, status, bytes) in expected {
        let lines: Vec<&str> = lines_of(&log, &id).into_iter().filter(|l| l.contains(" access: ")).collect();
        assert_eq!(lines.len(), 1, "{op}: {lines:#?}\n{log}");
        let line = lines[0];
        for part in [format!("op={op}"), "bucket=\"bkt\"".to_string(), format!("key={key}"), status.to_string()] {
            assert!(line.contains(&part), "{op}: no {part} in {line}");
        }
        assert!(line.contains(bytes), "{op}: no {bytes} in {line}");
        assert!(line.contains(&format!("access_key={ACCESS_KEY}")), "{line}");
    }
    assert!(!log.contains(compat_tests::SECRET_KEY), "the secret key is in the log");
    assert!(!log.contains("Signature="), "a signature is in the log");
}
