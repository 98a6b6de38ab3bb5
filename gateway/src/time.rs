//! Time conversions between the index (unix milliseconds) and S3 timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use s3s::dto::{Timestamp, TimestampFormat};
use time::OffsetDateTime;

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An S3 timestamp for unix milliseconds (S3 reports whole seconds).
pub fn timestamp_from_ms(ms: u64) -> Timestamp {
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    Timestamp::from(OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

/// Formats a timestamp as an HTTP date for storage.
pub fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// Parses a stored HTTP date back.
pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip() {
        let ts = timestamp_from_ms(1_700_000_000_123);
        let text = http_date(&ts).unwrap();
        assert_eq!(text, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(&parse_http_date(&text).unwrap()).unwrap(), text);
    }
}
