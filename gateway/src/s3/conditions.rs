//! Conditional reads (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`) in the order RFC 9110 §13.2.2 evaluates them, and the copy-source
//! variants of CopyObject / UploadPartCopy, which fail with 412 in every case.

use s3s::dto::{ETagCondition, Timestamp};

use crate::error::Error;
use crate::index::records::ObjectRecord;

/// The preconditions a request carries.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Preconditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// The read preconditions of a GetObject or HeadObject input.
macro_rules! read_preconditions {
    ($input:expr) => {
        $crate::s3::conditions::Preconditions {
            if_match: $input.if_match.as_ref(),
            if_none_match: $input.if_none_match.as_ref(),
            if_modified_since: $input.if_modified_since.as_ref(),
            if_unmodified_since: $input.if_unmodified_since.as_ref(),
        }
    };
}
pub(super) use read_preconditions;

/// The `x-amz-copy-source-if-*` preconditions of a CopyObject or UploadPartCopy input.
macro_rules! copy_source_preconditions {
    ($input:expr) => {
        $crate::s3::conditions::Preconditions {
            if_match: $input.copy_source_if_match.as_ref(),
            if_none_match: $input.copy_source_if_none_match.as_ref(),
            if_modified_since: $input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: $input.copy_source_if_unmodified_since.as_ref(),
        }
    };
}
pub(super) use copy_source_preconditions;

fn matches(condition: &ETagCondition, record: &ObjectRecord) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(etag) => etag.value() == record.etag,
    }
}

/// Whole seconds: HTTP dates have no sub-second part, and Last-Modified is reported in seconds.
fn seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

fn modified_seconds(record: &ObjectRecord) -> i64 {
    i64::try_from(record.modified_ms / 1000).unwrap_or(i64::MAX)
}

/// The outcome of evaluating preconditions that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Precondition,
    NotModified,
}

fn evaluate(record: &ObjectRecord, p: &Preconditions<'_>) -> Option<Failure> {
    let modified = modified_seconds(record);
    match p.if_match {
        Some(condition) if !matches(condition, record) => return Some(Failure::Precondition),
        Some(_) => {}
        None => {
            if p.if_unmodified_since.is_some_and(|since| modified > seconds(since)) {
                return Some(Failure::Precondition);
            }
        }
    }
    match p.if_none_match {
        Some(condition) if matches(condition, record) => return Some(Failure::NotModified),
        Some(_) => {}
        None => {
            if p.if_modified_since.is_some_and(|since| modified <= seconds(since)) {
                return Some(Failure::NotModified);
            }
        }
    }
    None
}

/// GET/HEAD: 412 `PreconditionFailed` or 304 Not Modified.
pub(super) fn check_read(record: &ObjectRecord, p: &Preconditions<'_>) -> Result<(), Error> {
    match evaluate(record, p) {
        Some(Failure::Precondition) => Err(Error::PreconditionFailed),
        Some(Failure::NotModified) => Err(Error::NotModified),
        None => Ok(()),
    }
}

/// `x-amz-copy-source-if-*`: any failure is 412.
pub(super) fn check_copy_source(record: &ObjectRecord, p: &Preconditions<'_>) -> Result<(), Error> {
    match evaluate(record, p) {
        Some(_) => Err(Error::PreconditionFailed),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::records::{BlobRef, SystemHeaders};
    use s3s::dto::ETag;

    fn record() -> ObjectRecord {
        ObjectRecord {
            ts: 1,
            modified_ms: 1_700_000_000_500,
            size: 0,
            etag: "abc".into(),
            sha256: String::new(),
            headers: SystemHeaders::default(),
            user_meta: vec![],
            tags: vec![],
            checksum: None,
            parts: vec![],
            blob: BlobRef { id: "x".into(), replicas: vec![] },
            tags_blob: None,
            version: Default::default(),
            lock: Default::default(),
            lock_blob: None,
            acl: None,
            acl_blob: None,
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from(time::OffsetDateTime::from_unix_timestamp(seconds).unwrap())
    }

    #[test]
    fn rfc_9110_order() {
        let r = record();
        let same = ETagCondition::ETag(ETag::Strong("abc".into()));
        let other = ETagCondition::ETag(ETag::Strong("zzz".into()));
        let (before, after) = (at(1_699_999_999), at(1_700_000_001));
        let modified = at(1_700_000_000);
        let check = |p: Preconditions<'_>| check_read(&r, &p);

        assert!(check(Preconditions::default()).is_ok());
        assert!(matches!(
            check(Preconditions { if_match: Some(&other), ..Default::default() }),
            Err(Error::PreconditionFailed)
        ));
        // If-Match true wins over a failing If-Unmodified-Since.
        assert!(
            check(Preconditions { if_match: Some(&same), if_unmodified_since: Some(&before), ..Default::default() })
                .is_ok()
        );
        assert!(matches!(
            check(Preconditions { if_unmodified_since: Some(&before), ..Default::default() }),
            Err(Error::PreconditionFailed)
        ));
        assert!(check(Preconditions { if_unmodified_since: Some(&modified), ..Default::default() }).is_ok());
        assert!(matches!(
            check(Preconditions { if_none_match: Some(&same), ..Default::default() }),
            Err(Error::NotModified)
        ));
        assert!(matches!(
            check(Preconditions { if_none_match: Some(&ETagCondition::Any), ..Default::default() }),
            Err(Error::NotModified)
        ));
        // If-None-Match false wins over If-Modified-Since.
        assert!(
            check(Preconditions { if_none_match: Some(&other), if_modified_since: Some(&after), ..Default::default() })
                .is_ok()
        );
        assert!(matches!(
            check(Preconditions { if_modified_since: Some(&modified), ..Default::default() }),
            Err(Error::NotModified)
        ));
        assert!(check(Preconditions { if_modified_since: Some(&before), ..Default::default() }).is_ok());
        assert!(matches!(
            check_copy_source(&r, &Preconditions { if_none_match: Some(&same), ..Default::default() }),
            Err(Error::PreconditionFailed)
        ));
    }
}
