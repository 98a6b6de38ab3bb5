//! Time conversions between the index (unix milliseconds) and S3 timestamps, and the
//! humane durations operators type.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// An S3 timestamp for unix milliseconds, milliseconds kept (object lock dates are compared
/// to the millisecond: a date read back must be the date set).
pub fn timestamp_from_ms_exact(ms: u64) -> Timestamp {
    let nanos = i128::from(ms) * 1_000_000;
    Timestamp::from(OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

/// Unix milliseconds of an S3 timestamp (0 before 1970).
pub fn ms_from_timestamp(ts: &Timestamp) -> u64 {
    let at = OffsetDateTime::from(ts.clone());
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
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

/// Parses a duration: a number with a unit (`500ms`, `2s`, `5m`, `1h`, `7d`) or bare seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("bad duration {text:?} (e.g. 500ms, 2s, 5m, 36h, 7d)"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return Err(format!("bad duration unit in {text:?} (use ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_or_without_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration(" 7d "), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("120"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["", "d", "1w", "2 parsecs", "-1s", "99999999999999999999d", "18446744073709551615d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http_dates_round_trip() {
        let ts = timestamp_from_ms(1_700_000_000_123);
        let text = http_date(&ts).unwrap();
        assert_eq!(text, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(&parse_http_date(&text).unwrap()).unwrap(), text);
    }
}
