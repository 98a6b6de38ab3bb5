//! CORS, around s3s on the S3 listener: a bucket's rules (Put/Get/DeleteBucketCors, kept in
//! its configuration) answer browsers' preflight `OPTIONS` requests, and add the CORS
//! headers to every actual response of a request with an `Origin` — errors and presigned
//! requests included, since a page must be able to read a 403 or a 404 too. s3s knows
//! nothing of CORS, so both happen here, before and after it.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::index::Index;
use crate::index::records::CorsRule;
use crate::policy::wildcard_match;

/// The methods a CORS rule may allow.
pub const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// The first rule allowing `origin` to make a `method` request with `headers` (lowercase
/// names).
pub fn matching_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'a CorsRule> {
    rules.iter().find(|rule| {
        rule.allowed_origins.iter().any(|allowed| wildcard_match(allowed, origin))
            && rule.allowed_methods.iter().any(|allowed| allowed == method)
            && headers.iter().all(|wanted| {
                rule.allowed_headers.iter().any(|allowed| wildcard_match(&allowed.to_ascii_lowercase(), wanted))
            })
    })
}

fn value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// The CORS headers `rule` gives a request from `origin`.
fn allow(headers: &mut HeaderMap, rule: &CorsRule, origin: &str) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    if let Some(v) = value(if any_origin { "*" } else { origin }) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if !any_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if let Some(v) = value(&rule.allowed_methods.join(", ")) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !rule.expose_headers.is_empty()
        && let Some(v) = value(&rule.expose_headers.join(", "))
    {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

fn vary(headers: &mut HeaderMap) {
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
    );
}

/// The answer to a preflight: 200 with what the first matching rule allows, or S3's 403.
pub async fn preflight(index: &Index, bucket: Option<&str>, origin: &str, request: &HeaderMap) -> s3s::HttpResponse {
    let forbidden = |message: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessForbidden</Code><Message>{message}</Message></Error>"
        );
        let mut response = http::Response::new(s3s::Body::from(body));
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        response
    };
    let Some(method) = request.get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|m| m.to_str().ok()) else {
        let mut response = forbidden("CORSResponse: Access-Control-Request-Method header is missing.");
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let wanted: Vec<String> = request
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let record = match bucket {
        Some(bucket) => match index.bucket(bucket).await {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(%err, "CORS preflight: the bucket could not be read");
                let mut response = http::Response::new(s3s::Body::empty());
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return response;
            }
        },
        None => None,
    };
    let Some(record) = record.filter(|r| !r.cors.is_empty()) else {
        return forbidden("CORSResponse: CORS is not enabled for this bucket.");
    };
    let Some(rule) = matching_rule(&record.cors, origin, method, &wanted) else {
        return forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        );
    };
    let mut response = http::Response::new(s3s::Body::empty());
    let headers = response.headers_mut();
    allow(headers, rule, origin);
    if !wanted.is_empty()
        && let Some(v) = value(&wanted.join(", "))
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(v) = rule.max_age_seconds.and_then(|age| value(&age.to_string())) {
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, v);
    }
    vary(headers);
    response
}

/// Adds the CORS headers of `bucket`'s first rule matching `origin` and `method` to an actual
/// response; `Vary` whenever the bucket has rules.
pub async fn decorate(index: &Index, bucket: &str, origin: &str, method: &Method, response: &mut s3s::HttpResponse) {
    let record = match index.bucket(bucket).await {
        Ok(Some(record)) if !record.cors.is_empty() => record,
        Ok(_) => return,
        Err(err) => {
            tracing::debug!(%err, "CORS headers left out: the bucket could not be read");
            return;
        }
    };
    let headers = response.headers_mut();
    vary(headers);
    if let Some(rule) = matching_rule(&record.cors, origin, method.as_str(), &[]) {
        allow(headers, rule, origin);
    }
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ORIGIN)
}

/// The request's `Origin`, if any.
pub fn origin(headers: &HeaderMap) -> Option<String> {
    headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_first_rule_allowing_origin_method_and_headers_matches() {
        let rules = vec![
            rule(&["https://*.example.com"], &["PUT", "POST"], &["content-type", "x-amz-*"]),
            rule(&["*"], &["GET", "HEAD"], &[]),
        ];
        let wanted = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let put = matching_rule(&rules, "https://app.example.com", "PUT", &wanted(&["content-type", "x-amz-date"]));
        assert_eq!(put, Some(&rules[0]));
        assert_eq!(matching_rule(&rules, "https://app.example.com", "PUT", &wanted(&["authorization"])), None);
        assert_eq!(matching_rule(&rules, "https://evil.test", "PUT", &[]), None);
        assert_eq!(matching_rule(&rules, "https://evil.test", "GET", &[]), Some(&rules[1]));
        assert_eq!(matching_rule(&rules, "https://evil.test", "DELETE", &[]), None);
    }
}
