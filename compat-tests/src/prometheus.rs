//! A strict reader of the Prometheus text exposition format (0.0.4), enough to check what
//! `/metrics` says: every line must be a comment (`# HELP`, `# TYPE` with a known type) or a
//! sample `name{label="value",…} value`, or parsing panics with the line.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of an exposition; panics on a line that is not valid text format.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            if words.first() == Some(&"TYPE") {
                assert!(
                    words.len() == 3
                        && ["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2])
                        && valid_name(words[1]),
                    "bad TYPE line: {line}"
                );
            }
            continue;
        }
        samples.push(sample(line).unwrap_or_else(|| panic!("not a sample line: {line}")));
    }
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !valid_name(name) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let close = inner.find('}')?;
        for pair in inner[..close].split(',').filter(|p| !p.is_empty()) {
            let (key, quoted) = pair.split_once('=')?;
            let value = quoted.strip_prefix('"')?.strip_suffix('"')?;
            if !valid_name(key) || labels.insert(key.to_string(), value.to_string()).is_some() {
                return None;
            }
        }
        rest = &inner[close + 1..];
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number.parse().ok()?,
    };
    // An optional timestamp (integer milliseconds), then nothing.
    if fields.next().is_some_and(|ts| ts.parse::<i64>().is_err()) || fields.next().is_some() {
        return None;
    }
    Some(Sample { name: name.to_string(), labels, value })
}

/// The sum of the samples named `name` whose labels include all of `labels` (0 if none).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// Whether any sample is named `name` with labels including all of `labels`.
pub fn has(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> bool {
    samples
        .iter()
        .any(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_and_refuses_what_is_not_text_format() {
        let text = "# HELP x_total things\n# TYPE x_total counter\nx_total{op=\"Put\",status=\"200\"} 10\nx_total{op=\"Get\",status=\"200\"} 2.5 1700000000000\nh_bucket{le=\"+Inf\"} 3\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 3);
        assert_eq!(value(&samples, "x_total", &[]), 12.5);
        assert_eq!(value(&samples, "x_total", &[("op", "Put")]), 10.0);
        assert!(has(&samples, "h_bucket", &[("le", "+Inf")]));
        for bad in ["x_total{op=Put} 1", "x_total 1 2 3", "1x 2", "x_total{op=\"a\",op=\"b\"} 1", "x_total one"] {
            assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "{bad}");
        }
        assert!(std::panic::catch_unwind(|| parse("# TYPE x_total countr")).is_err());
    }
}
