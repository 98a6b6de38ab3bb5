//! Features Cairn does not have, refused loudly instead of silently ignored: server-side
//! encryption of any kind (Cairn does not encrypt at rest; an SSE-C upload answered 200 would
//! claim an encryption that never happened). Checked for every request once it is
//! authenticated and authorized (`auth::AccessPolicy`), before any handler runs or any body is
//! read.

use http::HeaderMap;
use s3s::{S3Result, s3_error};

/// Refuses what Cairn does not do, for an authenticated and authorized request: server-side
/// encryption of any kind.
pub fn refuse_unsupported(headers: &HeaderMap) -> S3Result<()> {
    refuse_unsupported_headers(headers)
}

/// The feature a request header asks for that Cairn does not implement, if any.
fn unsupported_feature(name: &str) -> Option<&'static str> {
    if name.starts_with("x-amz-server-side-encryption-customer-")
        || name.starts_with("x-amz-copy-source-server-side-encryption-customer-")
    {
        Some("server-side encryption with customer-provided keys (SSE-C)")
    } else if name.starts_with("x-amz-server-side-encryption") {
        Some("server-side encryption (SSE-S3, SSE-KMS): Cairn does not encrypt data at rest")
    } else {
        None
    }
}

fn refuse_unsupported_headers(headers: &HeaderMap) -> S3Result<()> {
    for name in headers.keys() {
        if let Some(feature) = unsupported_feature(name.as_str()) {
            return Err(s3_error!(
                NotImplemented,
                "A header you provided implies functionality that is not implemented: {feature} ({name})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use s3s::S3ErrorCode;

    use super::*;

    #[test]
    fn encryption_headers_are_not_implemented() {
        let refused = |name: &'static str, value: &'static str| {
            let headers: HeaderMap =
                [(http::HeaderName::from_static(name), http::HeaderValue::from_static(value))].into_iter().collect();
            refuse_unsupported_headers(&headers).err().map(|e| (e.code().clone(), e.message().map(str::to_string)))
        };
        for name in [
            "x-amz-server-side-encryption-customer-algorithm",
            "x-amz-server-side-encryption-customer-key",
            "x-amz-copy-source-server-side-encryption-customer-key-md5",
        ] {
            let (code, message) = refused(name, "AES256").unwrap();
            assert_eq!(code, S3ErrorCode::NotImplemented);
            assert!(message.unwrap().contains("SSE-C"), "{name}");
        }
        for (name, value) in [("x-amz-server-side-encryption", "AES256"), ("x-amz-server-side-encryption", "aws:kms")] {
            let (_, message) = refused(name, value).unwrap();
            assert!(message.unwrap().contains("does not encrypt data at rest"));
        }
        // Object lock is implemented (s3/lock.rs).
        assert_eq!(refused("x-amz-object-lock-mode", "GOVERNANCE"), None);
        assert_eq!(refused("x-amz-bucket-object-lock-enabled", "true"), None);
        assert_eq!(refused("x-amz-meta-server-side-encryption", "AES256"), None);
    }
}
