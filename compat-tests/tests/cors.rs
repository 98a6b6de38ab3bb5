//! CORS: Put/Get/DeleteBucketCors through aws-sdk-s3 (checked as S3 checks them), preflight
//! `OPTIONS` answered from the rules (403 when none match), the CORS headers on actual
//! responses — presigned ones and errors included — and a rebuild that keeps the rules. The
//! browser's own enforcement is tested in headless Chromium (`python/cors.py`): a page on
//! another origin uploads with a presigned PUT (which needs a preflight) and reads it back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use compat_tests::tools::start_browser_script;
use compat_tests::{TestCluster, refusal, skip_unless_rocksdb};

const APP: &str = "https://app.example";

fn rules() -> Vec<CorsRule> {
    vec![
        CorsRule::builder()
            .id("app")
            .allowed_origins(APP)
            .allowed_methods("GET")
            .allowed_methods("PUT")
            .allowed_headers("content-type")
            .allowed_headers("x-amz-*")
            .expose_headers("ETag")
            .expose_headers("x-amz-version-id")
            .max_age_seconds(600)
            .build()
            .unwrap(),
        CorsRule::builder().allowed_origins("*").allowed_methods("GET").build().unwrap(),
    ]
}

async fn put_rules(s3: &Client, bucket: &str, rules: Vec<CorsRule>) -> Result<(), (String, u16)> {
    let config = CorsConfiguration::builder().set_cors_rules(Some(rules)).build().unwrap();
    s3.put_bucket_cors().bucket(bucket).cors_configuration(config).send().await.map(|_| ()).map_err(|e| refusal(&e))
}

async fn preflight(url: &str, origin: &str, method: &str, headers: Option<&str>) -> reqwest::Response {
    let request = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method);
    let request = match headers {
        Some(h) => request.header("access-control-request-headers", h),
        None => request,
    };
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

async fn presigned_get(s3: &Client, bucket: &str, key: &str) -> String {
    let config = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    s3.get_object().bucket(bucket).key(key).presigned(config).await.unwrap().uri().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_rules_answer_preflights_and_mark_every_response() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("web").send().await.unwrap();
    s3.put_object().bucket("web").key("hello.txt").body(b"hello".to_vec().into()).send().await.unwrap();
    let url = format!("{}/web/hello.txt", cluster.endpoint());

    // No rules: preflights are refused, and GetBucketCors says so.
    let refused = preflight(&url, APP, "GET", None).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("<Code>AccessForbidden</Code>"));
    let err = s3.get_bucket_cors().bucket("web").send().await.unwrap_err();
    assert_eq!(refusal(&err), ("NoSuchCORSConfiguration".into(), 404));

    put_rules(&s3, "web", rules()).await.unwrap();
    assert_eq!(s3.get_bucket_cors().bucket("web").send().await.unwrap().cors_rules(), rules());

    let allowed = preflight(&url, APP, "PUT", Some("Content-Type, X-Amz-Date")).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(header(&allowed, "access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(header(&allowed, "access-control-allow-methods").as_deref(), Some("GET, PUT"));
    assert_eq!(header(&allowed, "access-control-allow-headers").as_deref(), Some("content-type, x-amz-date"));
    assert_eq!(header(&allowed, "access-control-max-age").as_deref(), Some("600"));
    assert_eq!(header(&allowed, "access-control-allow-credentials").as_deref(), Some("true"));
    assert!(header(&allowed, "vary").unwrap().contains("Origin"));
    for (origin, method, headers) in
        [("https://evil.test", "PUT", None), (APP, "DELETE", None), (APP, "PUT", Some("authorization"))]
    {
        assert_eq!(preflight(&url, origin, method, headers).await.status(), 403, "{origin} {method} {headers:?}");
    }
    let anyone = preflight(&url, "https://evil.test", "GET", None).await;
    assert_eq!(header(&anyone, "access-control-allow-origin").as_deref(), Some("*"));
    assert_eq!(header(&anyone, "access-control-allow-credentials"), None);

    // Actual requests: presigned, and an error.
    let http = reqwest::Client::new();
    let got = http.get(presigned_get(&s3, "web", "hello.txt").await).header("origin", APP).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(header(&got, "access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(header(&got, "access-control-expose-headers").as_deref(), Some("ETag, x-amz-version-id"));
    let missing = http.get(presigned_get(&s3, "web", "missing").await).header("origin", APP).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "access-control-allow-origin").as_deref(), Some(APP), "errors too");
    let denied = http.get(&url).header("origin", APP).send().await.unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(header(&denied, "access-control-allow-origin").as_deref(), Some(APP), "refusals too");
    let plain = http.get(presigned_get(&s3, "web", "hello.txt").await).send().await.unwrap();
    assert_eq!(header(&plain, "access-control-allow-origin"), None, "no Origin, no CORS headers");

    // S3's refusals of bad rules; the rules in place stay.
    let patch = CorsRule::builder().allowed_origins(APP).allowed_methods("PATCH").build().unwrap();
    assert_eq!(put_rules(&s3, "web", vec![patch]).await, Err(("InvalidRequest".into(), 400)));
    let greedy = CorsRule::builder().allowed_origins("https://*.*.example").allowed_methods("GET").build().unwrap();
    assert_eq!(put_rules(&s3, "web", vec![greedy]).await, Err(("InvalidRequest".into(), 400)));
    assert_eq!(s3.get_bucket_cors().bucket("web").send().await.unwrap().cors_rules(), rules());

    s3.delete_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(preflight(&url, APP, "GET", None).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_keeps_the_cors_rules() {
    if skip_unless_rocksdb("a_rebuild_keeps_the_cors_rules", "rebuild writes a RocksDB index") {
        return;
    }
    let mut cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("web").send().await.unwrap();
    put_rules(&s3, "web", rules()).await.unwrap();
    cluster.serve_rebuilt_index("rebuilt");
    assert_eq!(cluster.client().get_bucket_cors().bucket("web").send().await.unwrap().cors_rules(), rules());
}

/// A page served from another origin (a local HTTP server on its own port) uploads a file
/// with a presigned PUT — Chromium sends the preflight first, because of the Content-Type —
/// and reads it back with a presigned GET; then, with the rules gone, the browser refuses.
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_on_another_origin_uploads_and_reads_back() {
    let cluster = TestCluster::start(3, 2);
    let s3 = cluster.client();
    s3.create_bucket().bucket("web").send().await.unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/cors.py");
    let Some(mut browser) = start_browser_script(script, &[]) else { return };
    let mut said = BufReader::new(browser.stdout.take().unwrap()).lines();
    // The script serves the page and says its origin; the rules allow exactly that origin.
    let origin = said.next().unwrap().unwrap().strip_prefix("origin ").unwrap().to_string();
    let rule = CorsRule::builder()
        .allowed_origins(&origin)
        .allowed_methods("PUT")
        .allowed_methods("GET")
        .allowed_headers("content-type")
        .expose_headers("ETag")
        .build()
        .unwrap();
    put_rules(&s3, "web", vec![rule]).await.unwrap();
    let config = || PresigningConfig::expires_in(Duration::from_secs(600)).unwrap();
    let put = s3.put_object().bucket("web").key("from-browser.txt").content_type("text/plain");
    let put_url = put.presigned(config()).await.unwrap().uri().to_string();
    let get_url = presigned_get(&s3, "web", "from-browser.txt").await;
    let stdin = browser.stdin.as_mut().unwrap();
    std::io::Write::write_all(stdin, format!("{put_url}\n{get_url}\n").as_bytes()).unwrap();
    let uploaded = said.next().map(Result::unwrap);
    assert_eq!(uploaded.as_deref(), Some("uploaded"), "the browser's upload");
    let object = s3.get_object().bucket("web").key("from-browser.txt").send().await.unwrap();
    assert_eq!(&object.body.collect().await.unwrap().into_bytes()[..], b"sent by a browser");

    s3.delete_bucket_cors().bucket("web").send().await.unwrap();
    std::io::Write::write_all(browser.stdin.as_mut().unwrap(), b"rules deleted\n").unwrap();
    let last = said.next().map(Result::unwrap);
    let status = browser.wait().unwrap();
    assert_eq!(last.as_deref(), Some("cors passed"), "({status})");
    assert!(status.success(), "{status}");
}
