//! A client's mistakes as the operator and the client see them: the gateway logs each refused
//! request once, at DEBUG, and never at ERROR.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
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
    let err = s3.get_bucket_policy().bucket("bkt").send().await.unwrap_err();
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
async fn client_mistakes_are_logged_once_at_debug_and_never_as_errors() {
    // The gateway at its default level (no RUST_LOG), as an operator runs it.
    let cluster = TestCluster::start_logging(3, 2, None);
    cluster.client().create_bucket().bucket("bkt").send().await.unwrap();
    let mistakes = make_mistakes(&cluster).await;
    assert_eq!(mistakes.len(), 5);
    let log = cluster.gateway_log();
    assert!(log.contains("S3 endpoint serving"), "the default level shows INFO:\n{log}");
    let loud: Vec<&str> = log.lines().filter(|line| matches!(level_of(line), "ERROR" | "WARN")).collect();
    assert!(loud.is_empty(), "client mistakes logged as errors at the default level:\n{}", loud.join("\n"));
    drop(cluster);

    // At DEBUG each mistake is one line, naming its code (the request's other DEBUG lines
    // trace routing and checks, and do not report the error again).
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
        assert_eq!(level_of(reports[0]), "DEBUG", "{}", reports[0]);
    }
}
