//! Bucket policies: the part of IAM's policy language S3 users write for public and
//! cross-key access. A policy is checked when it is put (`Policy::parse`, S3's
//! `MalformedPolicy` for what is wrong, `NotImplemented` for valid IAM that Cairn does not
//! evaluate, so nothing is silently ignored) and evaluated on each request
//! (`Policy::evaluate`): an explicit Deny wins, then an Allow; otherwise the policy does not
//! apply and the owner's and grants' rules decide.
//!
//! Written here rather than taken from a crate: the IAM evaluators on crates.io (`iam-rs`,
//! `aws-iam`) are young, general-purpose and know nothing of S3's actions, ARNs or condition
//! keys, which is most of the work; the subset below is small and tested on its own.

use std::net::IpAddr;

use serde_json::Value;

/// Largest policy S3 accepts.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Why a policy is refused: S3's `MalformedPolicy` (a wrong policy) or `NotImplemented` (IAM
/// that Cairn does not evaluate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Not a valid bucket policy.
    Malformed(String),
    /// Valid IAM, but an element, operator or key Cairn does not evaluate.
    Unsupported(String),
}

/// A parsed bucket policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    allow: bool,
    /// `None`: everyone, anonymous callers included (`"*"`).
    principals: Option<Vec<String>>,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

/// Wildcard patterns (`*`, `?`), or everything but them (`NotAction`, `NotResource`).
#[derive(Debug, Clone, PartialEq)]
struct Patterns {
    patterns: Vec<String>,
    negated: bool,
    ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    operator: Operator,
    if_exists: bool,
    key: ConditionKey,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    IpAddress,
    NotIpAddress,
    Bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ConditionKey {
    SourceIp,
    SecureTransport,
    Prefix,
    ExistingObjectTag(String),
}

/// The request a policy is asked about.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The caller: its access key id and its owner's canonical id; `None` if anonymous.
    pub principal: Option<(&'a str, &'a str)>,
    /// The S3 action (`s3:GetObject`).
    pub action: &'a str,
    /// The resource's ARN (`arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`).
    pub resource: String,
    /// Where the request came from.
    pub source_ip: Option<IpAddr>,
    /// Whether it came over TLS.
    pub secure_transport: bool,
    /// A listing's `prefix` (s3:prefix; empty when a listing names none).
    pub prefix: Option<&'a str>,
    /// The tags of the object the request names, if it exists (s3:ExistingObjectTag).
    pub object_tags: Option<&'a [(String, String)]>,
}

/// What a policy says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A statement denies it.
    Deny,
    /// No statement speaks of it.
    NotApplicable,
}

impl Policy {
    /// Parses and checks `text` as a policy of bucket `bucket`: every resource must be the
    /// bucket or within it.
    pub fn parse(text: &str, bucket: &str) -> Result<Policy, PolicyError> {
        let malformed = |m: &str| PolicyError::Malformed(m.to_string());
        if text.len() > MAX_POLICY_BYTES {
            return Err(malformed("Policies must be less than 20 KB"));
        }
        let document: Value = serde_json::from_str(text)
            .map_err(|_| malformed("Policies must be valid JSON and the first byte must be '{'"))?;
        let Value::Object(document) = document else {
            return Err(malformed("Policies must be valid JSON and the first byte must be '{'"));
        };
        for (name, value) in &document {
            match name.as_str() {
                "Version" if matches!(value.as_str(), Some("2012-10-17" | "2008-10-17")) => {}
                "Version" => return Err(malformed("The policy must contain a valid version string")),
                "Id" if value.is_string() => {}
                "Statement" => {}
                other => return Err(malformed(&format!("Unknown field {other}"))),
            }
        }
        let statements = match document.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(malformed("Missing required field Statement")),
        };
        let statements = statements.into_iter().map(|s| Statement::parse(s, bucket)).collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { statements })
    }

    /// What the policy says of `request`.
    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut decision = Decision::NotApplicable;
        for statement in self.statements.iter().filter(|s| s.applies(request)) {
            if !statement.allow {
                return Decision::Deny;
            }
            decision = Decision::Allow;
        }
        decision
    }

    /// Whether some statement allows anyone at all (`"*"`) without limiting them to source
    /// addresses: S3's test of a public policy.
    pub fn is_public(&self) -> bool {
        self.statements
            .iter()
            .any(|s| s.allow && s.principals.is_none() && !s.conditions.iter().any(|c| c.key == ConditionKey::SourceIp))
    }

    /// Whether evaluating it may need the tags of the object a request names.
    pub fn reads_object_tags(&self) -> bool {
        self.statements.iter().any(|s| s.conditions.iter().any(|c| matches!(c.key, ConditionKey::ExistingObjectTag(_))))
    }

    /// Whether some statement could allow `principal` an action matching `action` (ignoring
    /// resources and conditions): DeleteObjects lets such a caller through, and its handler
    /// asks of each key.
    pub fn may_allow(&self, principal: Option<(&str, &str)>, action: &str) -> bool {
        self.statements.iter().any(|s| s.allow && s.names(principal) && s.actions.matches(action))
    }
}

impl Statement {
    fn parse(value: &Value, bucket: &str) -> Result<Statement, PolicyError> {
        let malformed = |m: &str| PolicyError::Malformed(m.to_string());
        let Value::Object(fields) = value else { return Err(malformed("Statements must be objects")) };
        for name in fields.keys() {
            match name.as_str() {
                "Sid" | "Effect" | "Principal" | "Action" | "NotAction" | "Resource" | "NotResource" | "Condition" => {}
                "NotPrincipal" => return Err(PolicyError::Unsupported("NotPrincipal is not supported".into())),
                other => return Err(malformed(&format!("Unknown field {other}"))),
            }
        }
        let allow = match fields.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            Some(other) => return Err(malformed(&format!("Invalid effect: {other}"))),
            None => return Err(malformed("Missing required field Effect")),
        };
        let principals = match fields.get("Principal") {
            None => return Err(malformed("Missing required field Principal")),
            Some(value) => parse_principals(value)?,
        };
        let actions = Patterns::parse(fields, "Action", "NotAction", true)?;
        for action in &actions.patterns {
            if action != "*" && !action.to_ascii_lowercase().starts_with("s3:") {
                return Err(malformed("Policy has invalid action"));
            }
        }
        let resources = Patterns::parse(fields, "Resource", "NotResource", false)?;
        let bucket_arn = format!("arn:aws:s3:::{bucket}");
        for resource in &resources.patterns {
            let inside = resource == &bucket_arn || resource.starts_with(&format!("{bucket_arn}/"));
            if !inside {
                return Err(malformed("Policy has invalid resource"));
            }
        }
        let conditions = match fields.get("Condition") {
            None => Vec::new(),
            Some(Value::Object(blocks)) => parse_conditions(blocks)?,
            Some(_) => return Err(malformed("Conditions must be objects")),
        };
        Ok(Statement { allow, principals, actions, resources, conditions })
    }

    fn names(&self, principal: Option<(&str, &str)>) -> bool {
        let Some(named) = &self.principals else { return true };
        let Some((key_id, owner_id)) = principal else { return false };
        named.iter().any(|n| {
            n == key_id
                || n == owner_id
                || n == &format!("arn:aws:iam::{owner_id}:root")
                || n == &format!("arn:aws:iam::{owner_id}:user/{key_id}")
        })
    }

    fn applies(&self, request: &Request<'_>) -> bool {
        self.names(request.principal)
            && self.actions.matches(request.action)
            && self.resources.matches(&request.resource)
            && self.conditions.iter().all(|c| c.holds(request))
    }
}

fn parse_principals(value: &Value) -> Result<Option<Vec<String>>, PolicyError> {
    let invalid = || PolicyError::Malformed("Invalid principal in policy".into());
    match value {
        Value::String(s) if s == "*" => Ok(None),
        Value::Object(kinds) if !kinds.is_empty() => {
            let mut named = Vec::new();
            for (kind, ids) in kinds {
                if kind != "AWS" && kind != "CanonicalUser" {
                    return Err(invalid());
                }
                let ids = strings(ids).ok_or_else(invalid)?;
                if ids.iter().any(|id| id == "*") {
                    if kind == "AWS" {
                        return Ok(None);
                    }
                    return Err(invalid());
                }
                if ids.iter().any(String::is_empty) {
                    return Err(invalid());
                }
                named.extend(ids);
            }
            Ok(Some(named))
        }
        _ => Err(invalid()),
    }
}

fn parse_conditions(blocks: &serde_json::Map<String, Value>) -> Result<Vec<Condition>, PolicyError> {
    let mut conditions = Vec::new();
    for (operator_name, keys) in blocks {
        let (base, if_exists) = match operator_name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (operator_name.as_str(), false),
        };
        let operator = match base {
            "StringEquals" => Operator::StringEquals,
            "StringNotEquals" => Operator::StringNotEquals,
            "StringLike" => Operator::StringLike,
            "StringNotLike" => Operator::StringNotLike,
            "IpAddress" => Operator::IpAddress,
            "NotIpAddress" => Operator::NotIpAddress,
            "Bool" => Operator::Bool,
            other => return Err(PolicyError::Unsupported(format!("the condition operator {other} is not supported"))),
        };
        let Value::Object(keys) = keys else {
            return Err(PolicyError::Malformed(format!("Invalid Condition block for {operator_name}")));
        };
        for (key, values) in keys {
            let parsed = match key.to_ascii_lowercase().as_str() {
                "aws:sourceip" => ConditionKey::SourceIp,
                "aws:securetransport" => ConditionKey::SecureTransport,
                "s3:prefix" => ConditionKey::Prefix,
                lower if lower.starts_with("s3:existingobjecttag/") => {
                    ConditionKey::ExistingObjectTag(key["s3:ExistingObjectTag/".len()..].to_string())
                }
                _ => return Err(PolicyError::Unsupported(format!("the condition key {key} is not supported"))),
            };
            let fits = match (&parsed, operator) {
                (ConditionKey::SourceIp, Operator::IpAddress | Operator::NotIpAddress) => true,
                (ConditionKey::SecureTransport, Operator::Bool) => true,
                (ConditionKey::Prefix | ConditionKey::ExistingObjectTag(_), op) => {
                    !matches!(op, Operator::IpAddress | Operator::NotIpAddress | Operator::Bool)
                }
                _ => false,
            };
            if !fits {
                return Err(PolicyError::Malformed(format!("Invalid Condition: {operator_name} cannot test {key}")));
            }
            let values =
                strings(values).ok_or_else(|| PolicyError::Malformed(format!("Invalid Condition values for {key}")))?;
            if parsed == ConditionKey::SourceIp && values.iter().any(|v| parse_cidr(v).is_none()) {
                return Err(PolicyError::Malformed(format!("Invalid IP address in Condition: {values:?}")));
            }
            conditions.push(Condition { operator, if_exists, key: parsed, values });
        }
    }
    Ok(conditions)
}

/// A string or a list of strings (booleans and numbers as their text, as IAM reads them).
fn strings(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Value::Array(list) if !list.is_empty() => list.iter().map(one).collect(),
        Value::Array(_) => None,
        other => one(other).map(|s| vec![s]),
    }
}

impl Patterns {
    fn parse(
        fields: &serde_json::Map<String, Value>,
        name: &str,
        negated_name: &str,
        ignore_case: bool,
    ) -> Result<Patterns, PolicyError> {
        let (value, negated) = match (fields.get(name), fields.get(negated_name)) {
            (Some(value), None) => (value, false),
            (None, Some(value)) => (value, true),
            (Some(_), Some(_)) => {
                return Err(PolicyError::Malformed(format!("A statement cannot have both {name} and {negated_name}")));
            }
            (None, None) => return Err(PolicyError::Malformed(format!("Missing required field {name}"))),
        };
        let patterns = strings(value).ok_or_else(|| PolicyError::Malformed(format!("Invalid {name}")))?;
        Ok(Patterns { patterns, negated, ignore_case })
    }

    fn matches(&self, subject: &str) -> bool {
        let any = self.patterns.iter().any(|p| {
            if self.ignore_case {
                wildcard_match(&p.to_ascii_lowercase(), &subject.to_ascii_lowercase())
            } else {
                wildcard_match(p, subject)
            }
        });
        any != self.negated
    }
}

impl Condition {
    fn holds(&self, request: &Request<'_>) -> bool {
        let present: Option<Vec<String>> = match &self.key {
            ConditionKey::SourceIp => request.source_ip.map(|ip| vec![ip.to_string()]),
            ConditionKey::SecureTransport => Some(vec![request.secure_transport.to_string()]),
            ConditionKey::Prefix => request.prefix.map(|p| vec![p.to_string()]),
            ConditionKey::ExistingObjectTag(tag) => {
                request.object_tags.and_then(|tags| tags.iter().find(|(k, _)| k == tag)).map(|(_, v)| vec![v.clone()])
            }
        };
        let Some(present) = present else {
            // A key the request does not have: only IfExists (and the negated string
            // operators, which hold for a missing value) pass.
            return self.if_exists || matches!(self.operator, Operator::StringNotEquals | Operator::StringNotLike);
        };
        let value = &present[0];
        match self.operator {
            Operator::StringEquals => self.values.iter().any(|v| v == value),
            Operator::StringNotEquals => !self.values.iter().any(|v| v == value),
            Operator::StringLike => self.values.iter().any(|v| wildcard_match(v, value)),
            Operator::StringNotLike => !self.values.iter().any(|v| wildcard_match(v, value)),
            Operator::Bool => self.values.iter().any(|v| v.eq_ignore_ascii_case(value)),
            Operator::IpAddress | Operator::NotIpAddress => {
                let inside = request
                    .source_ip
                    .is_some_and(|ip| self.values.iter().filter_map(|v| parse_cidr(v)).any(|net| net.contains(ip)));
                inside == (self.operator == Operator::IpAddress)
            }
        }
    }
}

/// An address block (`192.0.2.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy)]
struct Cidr {
    network: IpAddr,
    bits: u32,
}

fn parse_cidr(text: &str) -> Option<Cidr> {
    let (address, bits) = match text.split_once('/') {
        Some((address, bits)) => (address.parse::<IpAddr>().ok()?, Some(bits.parse::<u32>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some(Cidr { network: address, bits })
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        let masked = |bits: u128, width: u32| if self.bits == 0 { 0 } else { bits >> (width - self.bits) };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => masked(u32::from(net).into(), 32) == masked(u32::from(ip).into(), 32),
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(net), 128) == masked(u128::from(ip), 128),
            _ => false,
        }
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn wildcard_match(pattern: &str, subject: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), subject.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, si));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            si = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The IAM action of an S3 operation (as s3s names it), where it is not `s3:` + the name.
pub fn action_of(operation: &str, versioned: bool) -> String {
    let action = match operation {
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "ListParts" => "ListMultipartUploadParts",
        "ListBuckets" => "ListAllMyBuckets",
        "HeadObject" | "GetObjectAttributes" if versioned => "GetObjectVersion",
        "HeadObject" | "GetObjectAttributes" => "GetObject",
        "GetObject" if versioned => "GetObjectVersion",
        "GetObjectTagging" if versioned => "GetObjectVersionTagging",
        "PutObjectTagging" if versioned => "PutObjectVersionTagging",
        "DeleteObjectTagging" if versioned => "DeleteObjectVersionTagging",
        "GetObjectAcl" if versioned => "GetObjectVersionAcl",
        "PutObjectAcl" if versioned => "PutObjectVersionAcl",
        "DeleteObject" if versioned => "DeleteObjectVersion",
        "DeleteObjects" => "DeleteObject",
        "CreateMultipartUpload" | "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload" | "CopyObject" => {
            "PutObject"
        }
        "AbortMultipartUpload" => "AbortMultipartUpload",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "PutLifecycleConfiguration",
        "GetObjectLockConfiguration" => "GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "PutBucketObjectLockConfiguration",
        "DeleteBucketTagging" => "PutBucketTagging",
        "DeleteBucketOwnershipControls" => "PutBucketOwnershipControls",
        "DeletePublicAccessBlock" => "PutBucketPublicAccessBlock",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" => "PutBucketPublicAccessBlock",
        "DeleteBucketCors" | "PutBucketCors" => "PutBucketCORS",
        "GetBucketCors" => "GetBucketCORS",
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "GetBucketReplication" => "GetReplicationConfiguration",
        "GetBucketAccelerateConfiguration" => "GetAccelerateConfiguration",
        "GetBucketNotificationConfiguration" => "GetBucketNotification",
        other => other,
    };
    format!("s3:{action}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(principal: Option<(&'a str, &'a str)>, action: &'a str, resource: &str) -> Request<'a> {
        Request { principal, action, resource: resource.to_string(), ..Default::default() }
    }

    const PUBLIC_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow",
        "Principal":"*","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::site/public/*"}]}"#;

    #[test]
    fn a_public_prefix_is_readable_by_anyone_and_nothing_else() {
        let policy = Policy::parse(PUBLIC_READ, "site").unwrap();
        assert!(policy.is_public());
        let get = |resource: &str| policy.evaluate(&request(None, "s3:GetObject", resource));
        assert_eq!(get("arn:aws:s3:::site/public/index.html"), Decision::Allow);
        assert_eq!(get("arn:aws:s3:::site/private/x"), Decision::NotApplicable);
        assert_eq!(
            policy.evaluate(&request(None, "s3:PutObject", "arn:aws:s3:::site/public/x")),
            Decision::NotApplicable
        );
        assert_eq!(
            policy.evaluate(&request(Some(("CK1", "o1")), "S3:getobject", "arn:aws:s3:::site/public/x")),
            Decision::Allow,
            "actions ignore case"
        );
    }

    #[test]
    fn an_explicit_deny_wins() {
        let text = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
            {"Effect":"Deny","Principal":{"AWS":["CKBAD"]},"Action":"s3:Delete*","Resource":"arn:aws:s3:::b/*"}]}"#;
        let policy = Policy::parse(text, "b").unwrap();
        assert_eq!(
            policy.evaluate(&request(Some(("CKBAD", "o")), "s3:DeleteObject", "arn:aws:s3:::b/k")),
            Decision::Deny
        );
        assert_eq!(
            policy.evaluate(&request(Some(("CKOK", "o")), "s3:DeleteObject", "arn:aws:s3:::b/k")),
            Decision::Allow
        );
        assert_eq!(
            policy.evaluate(&request(Some(("CKBAD", "o")), "s3:GetObject", "arn:aws:s3:::b/k")),
            Decision::Allow
        );
        assert!(policy.may_allow(None, "s3:DeleteObject"));
    }

    #[test]
    fn principals_name_keys_and_owners() {
        let owner = "a".repeat(64);
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":["CK1","arn:aws:iam::{owner}:root"],"CanonicalUser":"{owner}"}},
            "Action":"s3:ListBucket","Resource":"arn:aws:s3:::b"}}}}"#
        );
        let policy = Policy::parse(&text, "b").unwrap();
        assert!(!policy.is_public());
        let list = |principal| policy.evaluate(&request(principal, "s3:ListBucket", "arn:aws:s3:::b"));
        assert_eq!(list(Some(("CK1", "other"))), Decision::Allow);
        assert_eq!(list(Some(("CK9", owner.as_str()))), Decision::Allow);
        assert_eq!(list(Some(("CK9", "other"))), Decision::NotApplicable);
        assert_eq!(list(None), Decision::NotApplicable, "anonymous is nobody named");
    }

    #[test]
    fn conditions_on_address_transport_prefix_and_tags() {
        let text = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
             "Condition":{"StringLike":{"s3:prefix":["docs/*",""]},"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}},
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
             "Condition":{"StringEquals":{"s3:ExistingObjectTag/public":"yes"}}},
            {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*",
             "Condition":{"Bool":{"aws:SecureTransport":false}}}]}"#;
        let policy = Policy::parse(text, "b").unwrap();
        assert!(policy.reads_object_tags());
        let list = |ip: &str, prefix: &str| {
            let r = Request {
                source_ip: ip.parse().ok(),
                prefix: Some(prefix),
                ..request(None, "s3:ListBucket", "arn:aws:s3:::b")
            };
            policy.evaluate(&r)
        };
        assert_eq!(list("10.1.2.3", "docs/a"), Decision::Allow);
        assert_eq!(list("10.1.2.3", ""), Decision::Allow);
        assert_eq!(list("10.1.2.3", "secret/"), Decision::NotApplicable);
        assert_eq!(list("192.0.2.1", "docs/a"), Decision::NotApplicable);
        assert_eq!(list("2001:db8::5", "docs/"), Decision::Allow);
        assert_eq!(list("::ffff:10.0.0.1", "docs/"), Decision::Allow, "IPv4-mapped addresses");
        let tags = vec![("public".to_string(), "yes".to_string())];
        let get = |tags: Option<&[(String, String)]>, tls: bool| {
            let r = Request {
                object_tags: tags,
                secure_transport: tls,
                ..request(None, "s3:GetObject", "arn:aws:s3:::b/k")
            };
            policy.evaluate(&r)
        };
        assert_eq!(get(Some(&tags), true), Decision::Allow);
        assert_eq!(get(Some(&tags), false), Decision::Deny, "the deny over plain HTTP wins");
        assert_eq!(get(Some(&[]), true), Decision::NotApplicable);
        assert_eq!(get(None, true), Decision::NotApplicable);
    }

    #[test]
    fn malformed_and_unsupported_policies_are_refused() {
        let malformed = |text: &str| match Policy::parse(text, "b") {
            Err(PolicyError::Malformed(_)) => true,
            other => panic!("{text}: {other:?}"),
        };
        let statement = |s: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{s}]}}"#);
        malformed("not json");
        malformed("[]");
        malformed(r#"{"Version":"2012-10-17"}"#);
        malformed(r#"{"Version":"2013-01-01","Statement":[]}"#);
        malformed(&statement(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#));
        malformed(&statement(
            r#"{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
        ));
        malformed(&statement(r#"{"Effect":"Allow","Principal":"*","Action":"ec2:Run","Resource":"arn:aws:s3:::b/*"}"#));
        malformed(&statement(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}"#,
        ));
        malformed(&statement(r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}"#));
        malformed(&statement(
            r#"{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
        ));
        malformed(&statement(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"not-an-ip"}}}"#,
        ));
        malformed(&"x".repeat(MAX_POLICY_BYTES + 1));
        let unsupported = statement(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}"#,
        );
        assert!(matches!(Policy::parse(&unsupported, "b"), Err(PolicyError::Unsupported(_))));
        let not_principal = statement(
            r#"{"Effect":"Deny","NotPrincipal":{"AWS":"CK1"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}"#,
        );
        assert!(matches!(Policy::parse(&not_principal, "b"), Err(PolicyError::Unsupported(_))));
    }

    #[test]
    fn not_action_and_not_resource() {
        let text = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","NotAction":"s3:Get*","NotResource":"arn:aws:s3:::b/open/*"}}"#;
        let policy = Policy::parse(text, "b").unwrap();
        assert_eq!(policy.evaluate(&request(None, "s3:PutObject", "arn:aws:s3:::b/x")), Decision::Deny);
        assert_eq!(policy.evaluate(&request(None, "s3:PutObject", "arn:aws:s3:::b/open/x")), Decision::NotApplicable);
        assert_eq!(policy.evaluate(&request(None, "s3:GetObject", "arn:aws:s3:::b/x")), Decision::NotApplicable);
    }

    #[test]
    fn wildcards_and_actions() {
        assert!(wildcard_match("a*c", "abbbc") && wildcard_match("a?c", "abc") && wildcard_match("*", ""));
        assert!(!wildcard_match("a?c", "ac") && !wildcard_match("a*d", "abc"));
        assert!(wildcard_match("arn:aws:s3:::b/*/x", "arn:aws:s3:::b/1/2/x"));
        assert_eq!(action_of("ListObjectsV2", false), "s3:ListBucket");
        assert_eq!(action_of("GetObject", true), "s3:GetObjectVersion");
        assert_eq!(action_of("UploadPart", false), "s3:PutObject");
        assert_eq!(action_of("PutBucketPolicy", false), "s3:PutBucketPolicy");
    }
}
