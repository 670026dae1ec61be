//! Requests checked against what the real service accepts, not what an
//! emulator happens to let through.
//!
//! * DynamoDB: botocore's service model (`service-2.json`, shipped with
//!   moto's botocore; scripts/test.sh decompresses it and names it in
//!   `K3SA_DYNAMODB_MODEL`). Every member of every request is walked and its
//!   `required`, `min`, `max`, `pattern` and `enum` traits are checked.
//! * EC2: its model carries no such traits (the limits are in the
//!   documentation text), so the ones our adapter's parameters can break are
//!   written out by hand from the EC2 API reference.
//!
//! A trait this checker does not understand is itself a violation: it never
//! passes a request it could not check.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;

/// botocore's model of one JSON-protocol service.
pub struct ServiceModel {
    operations: BTreeMap<String, String>,
    shapes: serde_json::Map<String, Value>,
}

impl ServiceModel {
    /// The DynamoDB model scripts/test.sh prepared; a clear failure when it
    /// is missing (never a silent skip).
    pub fn dynamodb() -> ServiceModel {
        let path = std::env::var("K3SA_DYNAMODB_MODEL").unwrap_or_else(|_| {
            panic!("K3SA_DYNAMODB_MODEL is not set: run the tests with scripts/test.sh, which decompresses botocore's DynamoDB model")
        });
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading the DynamoDB service model {path}: {e}"));
        ServiceModel::parse(&text)
    }

    pub fn parse(text: &str) -> ServiceModel {
        let model: Value = serde_json::from_str(text).expect("a botocore service model");
        let operations = model["operations"]
            .as_object()
            .expect("operations")
            .iter()
            .map(|(name, op)| {
                let input = op["input"]["shape"].as_str().unwrap_or("").to_string();
                (name.clone(), input)
            })
            .collect();
        let shapes = model["shapes"].as_object().expect("shapes").clone();
        ServiceModel { operations, shapes }
    }

    /// Every way `body` breaks the model's constraints for `operation`.
    pub fn check(&self, operation: &str, body: &Value) -> Vec<String> {
        let mut out = Vec::new();
        match self.operations.get(operation) {
            None => out.push(format!("{operation}: not an operation of the service")),
            Some(input) if input.is_empty() => {}
            Some(input) => self.walk(input, body, operation, &mut out),
        }
        check_dynamodb_limits(body, operation, &mut out);
        out
    }

    fn walk(&self, shape_name: &str, value: &Value, at: &str, out: &mut Vec<String>) {
        let Some(shape) = self.shapes.get(shape_name) else {
            out.push(format!("{at}: unknown shape {shape_name}"));
            return;
        };
        let kind = shape["type"].as_str().unwrap_or("");
        for (trait_name, _) in shape.as_object().into_iter().flatten() {
            let understood = matches!(
                trait_name.as_str(),
                "type"
                    | "documentation"
                    | "members"
                    | "required"
                    | "member"
                    | "key"
                    | "value"
                    | "min"
                    | "max"
                    | "pattern"
                    | "enum"
                    | "box"
                    | "exception"
                    | "error"
                    | "union"
                    | "deprecated"
                    | "deprecatedMessage"
                    | "sensitive"
                    | "event"
                    | "eventstream"
                    | "fault"
                    | "wrapper"
                    | "timestampFormat"
            );
            if !understood {
                out.push(format!(
                    "{at}: shape {shape_name} has the trait {trait_name}, which this checker does not understand"
                ));
            }
        }
        let min = shape["min"].as_i64();
        let max = shape["max"].as_i64();
        match (kind, value) {
            ("structure", Value::Object(members)) => {
                for required in shape["required"].as_array().into_iter().flatten() {
                    let name = required.as_str().unwrap_or("");
                    if !members.contains_key(name) {
                        out.push(format!("{at}: required member {name} is missing"));
                    }
                }
                let declared = shape["members"].as_object();
                for (name, member) in members {
                    let path = format!("{at}.{name}");
                    match declared.and_then(|d| d.get(name)) {
                        Some(decl) => {
                            let target = decl["shape"].as_str().unwrap_or("");
                            self.walk(target, member, &path, out);
                        }
                        None => out.push(format!("{path}: not a member of {shape_name}")),
                    }
                }
                if shape["union"].as_bool() == Some(true) && members.len() != 1 {
                    out.push(format!(
                        "{at}: a {shape_name} must set exactly one member, not {}",
                        members.len()
                    ));
                }
            }
            ("list", Value::Array(items)) => {
                check_count(at, items.len(), min, max, "items", out);
                let member = shape["member"]["shape"].as_str().unwrap_or("");
                for (i, item) in items.iter().enumerate() {
                    self.walk(member, item, &format!("{at}[{i}]"), out);
                }
            }
            ("map", Value::Object(entries)) => {
                check_count(at, entries.len(), min, max, "entries", out);
                let key = shape["key"]["shape"].as_str().unwrap_or("");
                let val = shape["value"]["shape"].as_str().unwrap_or("");
                for (k, v) in entries {
                    self.walk(
                        key,
                        &Value::String(k.clone()),
                        &format!("{at} key {k:?}"),
                        out,
                    );
                    self.walk(val, v, &format!("{at}[{k:?}]"), out);
                }
            }
            ("string", Value::String(text)) => {
                check_count(at, text.chars().count(), min, max, "characters", out);
                if let Some(pattern) = shape["pattern"].as_str()
                    && let Err(why) = matches_pattern(pattern, text)
                {
                    out.push(format!("{at}: {text:?} {why}"));
                }
                if let Some(allowed) = shape["enum"].as_array()
                    && !allowed.iter().any(|a| a.as_str() == Some(text))
                {
                    out.push(format!("{at}: {text:?} is not one of {allowed:?}"));
                }
            }
            ("integer" | "long", Value::Number(n)) => {
                let v = n.as_i64().unwrap_or(i64::MAX);
                if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                    out.push(format!("{at}: {v} outside {min:?}..={max:?}"));
                }
            }
            ("boolean", Value::Bool(_)) | ("blob", Value::String(_)) => {}
            ("double" | "float", Value::Number(_)) | ("timestamp", _) => {}
            (kind, value) => out.push(format!(
                "{at}: expected a {kind} ({shape_name}), found {value}"
            )),
        }
    }
}

/// DynamoDB's limits that the model does not carry (the Developer Guide's
/// "Service, account, and table quotas"; botocore types `TableName` as a
/// table ARN, 1 to 1024 characters, and gives expression attribute names
/// no pattern): a table name of 3 to 255 characters of `[a-zA-Z0-9_.-]`
/// (or an ARN), expression attribute names `#` and then letters, digits
/// or `_`, and an item of at most 400 KB, counted here as its JSON (which
/// is larger than DynamoDB's own measure, so never lenient).
pub fn check_dynamodb_limits(value: &Value, at: &str, out: &mut Vec<String>) {
    const ITEM_MAX_BYTES: usize = 400 * 1024;
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                let path = format!("{at}.{name}");
                match (name.as_str(), member) {
                    ("TableName", Value::String(table)) if !table.starts_with("arn:") => {
                        let n = table.chars().count();
                        let legal = table
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                        if !(3..=255).contains(&n) || !legal {
                            out.push(format!(
                                "{path}: table name {table:?} must be 3 to 255 characters of a-z, A-Z, 0-9, _, . and -"
                            ));
                        }
                    }
                    ("ExpressionAttributeNames", Value::Object(names)) => {
                        for key in names.keys() {
                            let legal = key.strip_prefix('#').is_some_and(|rest| {
                                !rest.is_empty()
                                    && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            });
                            if !legal {
                                out.push(format!(
                                    "{path}: {key:?} is not # followed by letters, digits or _"
                                ));
                            }
                        }
                    }
                    // An update's item is at least its key and the values
                    // it sets (the operation record is written this way).
                    ("UpdateExpression", Value::String(_)) => {
                        let bytes = members.get("Key").map_or(0, |k| k.to_string().len())
                            + members
                                .get("ExpressionAttributeValues")
                                .map_or(0, |v| v.to_string().len());
                        if bytes > ITEM_MAX_BYTES {
                            out.push(format!(
                                "{at}: an update of at least {bytes} bytes (an item is at most {ITEM_MAX_BYTES})"
                            ));
                        }
                    }
                    ("Item", Value::Object(_)) => {
                        let bytes = member.to_string().len();
                        if bytes > ITEM_MAX_BYTES {
                            out.push(format!(
                                "{path}: an item of {bytes} bytes (at most {ITEM_MAX_BYTES})"
                            ));
                        }
                    }
                    _ => {}
                }
                check_dynamodb_limits(member, &path, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_dynamodb_limits(item, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn check_count(
    at: &str,
    n: usize,
    min: Option<i64>,
    max: Option<i64>,
    what: &str,
    out: &mut Vec<String>,
) {
    if let Some(min) = min
        && (n as i64) < min
    {
        out.push(format!(
            "{at}: {n} {what}, the service needs at least {min}"
        ));
    }
    if let Some(max) = max
        && (n as i64) > max
    {
        out.push(format!(
            "{at}: {n} {what}, the service allows at most {max}"
        ));
    }
}

/// The patterns botocore uses on the members we send: one character class
/// repeated (`[a-zA-Z0-9_.-]+`), optionally anchored. Any other pattern is
/// reported as not understood rather than passed.
pub fn matches_pattern(pattern: &str, text: &str) -> Result<(), String> {
    let body = pattern.trim_start_matches('^').trim_end_matches('$');
    let (class, repeat) = match body.strip_suffix('+') {
        Some(c) => (c, 1),
        None => match body.strip_suffix('*') {
            Some(c) => (c, 0),
            None => return Err(format!("cannot be checked against the pattern {pattern}")),
        },
    };
    let Some(inner) = class.strip_prefix('[').and_then(|c| c.strip_suffix(']')) else {
        return Err(format!("cannot be checked against the pattern {pattern}"));
    };
    let chars: Vec<char> = inner.chars().collect();
    let mut allowed: Vec<(char, char)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' || chars[i] == '^' || chars[i] == '[' {
            return Err(format!("cannot be checked against the pattern {pattern}"));
        }
        if i + 2 < chars.len() && chars[i + 1] == '-' {
            allowed.push((chars[i], chars[i + 2]));
            i += 3;
        } else {
            allowed.push((chars[i], chars[i]));
            i += 1;
        }
    }
    if text.chars().count() < repeat {
        return Err(format!("does not match {pattern}"));
    }
    match text
        .chars()
        .find(|c| !allowed.iter().any(|(lo, hi)| lo <= c && c <= hi))
    {
        Some(c) => Err(format!("does not match {pattern} (character {c:?})")),
        None => Ok(()),
    }
}

/// An EC2 Query-protocol request (`Action=…&Key=value…`), decoded.
pub fn decode_form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// EC2's documented limits on what our adapter sends (EC2 API reference:
/// RunInstances, TagSpecification, Tag, DescribeInstances).
pub fn check_ec2(form: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let action = form.get("Action").map(String::as_str).unwrap_or("");
    if let Some(token) = form.get("ClientToken")
        && (token.is_empty() || token.len() > 64 || !token.is_ascii())
    {
        out.push(format!(
            "{action}: ClientToken {token:?} must be 1 to 64 ASCII characters"
        ));
    }
    // TagSpecification.N.Tag.M.Key / .Value
    let mut tags_per_spec: BTreeMap<String, usize> = BTreeMap::new();
    for (key, value) in form {
        let Some(rest) = key.strip_prefix("TagSpecification.") else {
            continue;
        };
        let spec = rest.split('.').next().unwrap_or("").to_string();
        if key.ends_with(".Key") {
            *tags_per_spec.entry(spec).or_default() += 1;
            let n = value.chars().count();
            if n == 0 || n > 127 {
                out.push(format!(
                    "{action}: tag key {value:?} has {n} characters (1 to 127)"
                ));
            }
            if value.to_ascii_lowercase().starts_with("aws:") {
                out.push(format!(
                    "{action}: tag key {value:?} starts with the reserved aws:"
                ));
            }
        } else if key.ends_with(".Value") {
            let n = value.chars().count();
            if n > 256 {
                out.push(format!(
                    "{action}: tag value of {n} characters (at most 256)"
                ));
            }
        }
    }
    for (spec, n) in tags_per_spec {
        if n > 50 {
            out.push(format!(
                "{action}: TagSpecification {spec} has {n} tags (at most 50)"
            ));
        }
    }
    if let Some(data) = form.get("UserData") {
        match decode_base64(data) {
            Some(raw) if raw.len() > 16 * 1024 => out.push(format!(
                "{action}: user data is {} bytes before base64 (at most 16384)",
                raw.len()
            )),
            Some(_) => {}
            None => out.push(format!("{action}: UserData is not base64")),
        }
    }
    if action == "RunInstances" {
        let count = |k: &str| form.get(k).and_then(|v| v.parse::<i64>().ok());
        match (count("MinCount"), count("MaxCount")) {
            (Some(min), Some(max)) if min >= 1 && min <= max => {}
            other => out.push(format!("RunInstances: MinCount/MaxCount {other:?}")),
        }
        if !form.contains_key("ImageId") {
            out.push("RunInstances: no ImageId".into());
        }
    }
    if action == "DescribeInstances" {
        let ids = form.keys().any(|k| k.starts_with("InstanceId."));
        if let Some(max) = form.get("MaxResults") {
            if ids {
                out.push(
                    "DescribeInstances: MaxResults cannot be combined with InstanceIds".into(),
                );
            }
            if !max.parse::<i64>().is_ok_and(|m| (5..=1000).contains(&m)) {
                out.push(format!(
                    "DescribeInstances: MaxResults {max} outside 5..=1000"
                ));
            }
        }
    }
    out
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}
