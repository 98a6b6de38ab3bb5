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

/// Parses a humane duration: `90s`, `30m`, `36h`, `7d`, or plain seconds (`0` included).
/// Shared by `cairn-admin gc --grace` and `cairn-gateway serve --upload-ttl`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 = number.parse().map_err(|_| format!("bad duration {text:?}"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("bad duration unit in {text:?} (use s, m, h or d)")),
    };
    let seconds = number.checked_mul(scale).ok_or_else(|| format!("duration {text:?} is too long"))?;
    Ok(Duration::from_secs(seconds))
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
        for bad in ["", "d", "1w", "1.5h", "-1s", "99999999999999999999d", "18446744073709551615d"] {
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
