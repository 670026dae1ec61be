//! The label-selector language of a `labelSelector=` query, as the API
//! server parses it (apimachinery's `labels.Parse`): equality terms
//! (`k=v`, `k==v`, `k!=v`), set terms (`k in (a,b)`, `k notin (a,b)`) and
//! existence (`k`, `!k`), joined by commas, with keys and values checked
//! the way the API server checks them. One parser for the two places that
//! must agree with the API server: the config's `kubernetes.worker_selector`
//! (refused at load when the server would refuse it, rather than found out
//! when every node list fails) and the simulator's façade (400, as the
//! server answers).

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            // As the API server: a label that is absent is "not equal".
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    /// Every requirement holds (an empty selector selects everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }
}

/// Parse a selector; the error says which term and why.
pub fn parse(text: &str) -> Result<Selector, String> {
    let mut out = Vec::new();
    for term in split_terms(text)? {
        let term = term.trim();
        if term.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(format!("empty term in selector \"{text}\""));
        }
        out.push(requirement(term).map_err(|why| format!("selector term \"{term}\": {why}"))?);
    }
    Ok(Selector(out))
}

/// Split at the commas that are not inside `( … )`.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(format!("unbalanced parentheses in selector \"{text}\""));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in selector \"{text}\""));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn requirement(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Requirement::DoesNotExist(key.to_string()));
    }
    for (op, make) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((k, v)) = term.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k)?;
            check_value(v)?;
            return Ok(make(k.to_string(), v.to_string()));
        }
    }
    if let Some(open) = term.find('(') {
        let (head, rest) = term.split_at(open);
        let mut words = head.split_whitespace();
        let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
            return Err("expected \"key in (values)\" or \"key notin (values)\"".into());
        };
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.trim_end().strip_suffix(')'))
            .ok_or("the value list must end with \")\"")?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().all(String::is_empty) {
            return Err("a set needs at least one value".into());
        }
        check_key(key)?;
        for v in &values {
            check_value(v)?;
        }
        return match op {
            "in" => Ok(Requirement::In(key.to_string(), values)),
            "notin" => Ok(Requirement::NotIn(key.to_string(), values)),
            other => Err(format!(
                "unknown operator \"{other}\" (in, notin, =, ==, !=)"
            )),
        };
    }
    if term.split_whitespace().count() != 1 {
        return Err(
            "expected key=value, key!=value, key in (…), key notin (…), key or !key".into(),
        );
    }
    check_key(term)?;
    Ok(Requirement::Exists(term.to_string()))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 characters.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "the key's prefix \"{p}\" is not a DNS subdomain (lower-case letters, digits, '-' and '.')"
            ));
        }
    }
    if name.is_empty() {
        return Err("a key must not be empty".into());
    }
    check_name(name).map_err(|why| format!("key \"{key}\": {why}"))
}

/// A label value: empty, or like a key's name.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value).map_err(|why| format!("value \"{value}\": {why}"))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let inner = |c: char| alnum(c) || matches!(c, '-' | '_' | '.');
    let ends_ok = name.chars().next().is_some_and(alnum) && name.chars().last().is_some_and(alnum);
    if !ends_ok || !name.chars().all(inner) {
        return Err(
            "must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_form_the_api_server_parses_matches_as_it_does() {
        let worker = labels(&[("k3s-autoscaler/role", "worker"), ("zone", "a")]);
        let master = labels(&[("k3s-autoscaler/role", "master")]);
        let bare = labels(&[]);
        for (text, want) in [
            ("k3s-autoscaler/role=worker", [true, false, false]),
            ("k3s-autoscaler/role==worker", [true, false, false]),
            ("k3s-autoscaler/role!=master", [true, false, true]),
            (
                "k3s-autoscaler/role in (worker, spot)",
                [true, false, false],
            ),
            ("k3s-autoscaler/role notin (master)", [true, false, true]),
            ("zone", [true, false, false]),
            ("!zone", [false, true, true]),
            ("zone=a,k3s-autoscaler/role!=master", [true, false, false]),
            ("", [true, true, true]),
        ] {
            let s = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let got = [s.matches(&worker), s.matches(&master), s.matches(&bare)];
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn what_the_api_server_refuses_is_refused_naming_the_term() {
        for (text, why) in [
            ("role=worker,", "empty term"),
            ("role in (a,b", "unbalanced"),
            ("role in ()", "at least one value"),
            ("role within (a)", "unknown operator"),
            ("role = bad value", "alphanumerics"),
            ("Bad_Prefix/role=w", "DNS subdomain"),
            ("role=-worker", "alphanumerics"),
            ("role worker", "expected"),
            ("/role=w", "DNS subdomain"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let long = format!("role={}", "w".repeat(64));
        assert!(parse(&long).unwrap_err().contains("63"));
    }
}
