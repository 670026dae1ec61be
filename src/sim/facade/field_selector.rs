//! `fieldSelector`, as kube-apiserver reads it
//! (`apimachinery/pkg/fields/selector.go`): terms split on unescaped commas,
//! each `field=value`, `field==value` or `field!=value`, ANDed; `\`
//! escapes `\`, `,` and `=` in a value, and any other escape, or a bare
//! `=` left in a value, is a 400. Each kind indexes its own fields; any
//! other is the server's 400, `field label not supported`.
//!
//! Terms are judged on the object as it is served (its JSON), so what a
//! selector matches is exactly what a client reads back.

use serde_json::Value;

/// A field a kind can be selected by, where it lives in the served
/// object, and what the server takes it to be when the object omits it.
struct Indexed {
    field: &'static str,
    pointer: &'static str,
    default: &'static str,
}

const fn indexed(field: &'static str, pointer: &'static str, default: &'static str) -> Indexed {
    Indexed {
        field,
        pointer,
        default,
    }
}

/// The fields kube-apiserver 1.33 indexes for pods
/// (`pkg/registry/core/pod/strategy.go` `ToSelectableFields`).
const POD_FIELDS: &[Indexed] = &[
    indexed("metadata.name", "/metadata/name", ""),
    indexed("metadata.namespace", "/metadata/namespace", ""),
    indexed("spec.nodeName", "/spec/nodeName", ""),
    indexed("spec.restartPolicy", "/spec/restartPolicy", "Always"),
    indexed(
        "spec.schedulerName",
        "/spec/schedulerName",
        "default-scheduler",
    ),
    indexed(
        "spec.serviceAccountName",
        "/spec/serviceAccountName",
        "default",
    ),
    indexed("spec.hostNetwork", "/spec/hostNetwork", "false"),
    indexed("status.phase", "/status/phase", ""),
    indexed("status.podIP", "/status/podIP", ""),
    indexed("status.nominatedNodeName", "/status/nominatedNodeName", ""),
];

/// Nodes: a cluster-scoped object's name, and `spec.unschedulable`.
const NODE_FIELDS: &[Indexed] = &[
    indexed("metadata.name", "/metadata/name", ""),
    indexed("spec.unschedulable", "/spec/unschedulable", "false"),
];

/// Every other namespaced kind (PodDisruptionBudgets): its metadata only.
const META_FIELDS: &[Indexed] = &[
    indexed("metadata.name", "/metadata/name", ""),
    indexed("metadata.namespace", "/metadata/namespace", ""),
];

/// `events.k8s.io/v1` Events (`pkg/registry/core/event/strategy.go`,
/// under this group's names for the core/v1 fields).
const EVENT_FIELDS: &[Indexed] = &[
    indexed("metadata.name", "/metadata/name", ""),
    indexed("metadata.namespace", "/metadata/namespace", ""),
    indexed("regarding.kind", "/regarding/kind", ""),
    indexed("regarding.namespace", "/regarding/namespace", ""),
    indexed("regarding.name", "/regarding/name", ""),
    indexed("regarding.uid", "/regarding/uid", ""),
    indexed("reason", "/reason", ""),
    indexed("reportingController", "/reportingController", ""),
    indexed("type", "/type", ""),
];

/// The kinds this façade lists, for their indexed fields.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Pod,
    Node,
    PodDisruptionBudget,
    Event,
}

impl Kind {
    fn fields(self) -> &'static [Indexed] {
        match self {
            Kind::Pod => POD_FIELDS,
            Kind::Node => NODE_FIELDS,
            Kind::PodDisruptionBudget => META_FIELDS,
            Kind::Event => EVENT_FIELDS,
        }
    }
}

/// A parsed `fieldSelector`: every term must hold.
pub struct FieldSelector {
    terms: Vec<Term>,
}

struct Term {
    field: &'static Indexed,
    equal: bool,
    value: String,
}

impl FieldSelector {
    /// Parse `selector` for `kind`; `Err` is the 400's message.
    pub fn parse(selector: &str, kind: Kind) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in split_unescaped(selector, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, equal, raw) = split_term(term).ok_or_else(|| {
                format!("invalid selector: '{selector}'; can't understand '{term}'")
            })?;
            // Not trimmed: the server's `splitTerm` takes the field as written.
            let indexed = kind
                .fields()
                .iter()
                .find(|f| f.field == field)
                .ok_or_else(|| format!("field label not supported: {field}"))?;
            let value = unescape(raw).map_err(|e| format!("invalid field selector: {e}"))?;
            terms.push(Term {
                field: indexed,
                equal,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the served object `item` is selected.
    pub fn matches(&self, item: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = match item.pointer(t.field.pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => t.field.default.to_string(),
            };
            (actual == t.value) == t.equal
        })
    }
}

/// Pieces of `s` between unescaped `sep`s (a `\` escapes the next byte).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == sep => {
                pieces.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    pieces.push(&s[start..]);
    pieces
}

/// A term's field, operator (`true` for `=`/`==`) and still-escaped value,
/// split at the first unescaped operator, as `splitTerm` does.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &term[i..];
        if c == '\\' {
            escaped = true;
        } else if rest.starts_with("!=") {
            return Some((&term[..i], false, &term[i + 2..]));
        } else if rest.starts_with("==") {
            return Some((&term[..i], true, &term[i + 2..]));
        } else if c == '=' {
            return Some((&term[..i], true, &term[i + 1..]));
        }
    }
    None
}

/// A value with its escapes undone; `\` may only escape `\`, `,` or `=`,
/// and neither of the last two may stand unescaped.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(other) => return Err(format!("invalid escape sequence: \\{other}")),
                None => return Err("invalid escape sequence: a trailing \\".into()),
            },
            '=' | ',' => return Err(format!("invalid selector: unescaped {c} in {raw:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Vec<Value> {
        vec![
            json!({"metadata": {"name": "a", "namespace": "shop"},
                   "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}),
            json!({"metadata": {"name": "b", "namespace": "shop"},
                   "spec": {"nodeName": "n2", "schedulerName": "other"}, "status": {"phase": "Running"}}),
            json!({"metadata": {"name": "c", "namespace": "shop"},
                   "spec": {"nodeName": null}, "status": {"phase": "Pending"}}),
            json!({"metadata": {"name": "d,e=f", "namespace": "odd"},
                   "spec": {}, "status": {"phase": "Pending"}}),
        ]
    }

    fn pick(selector: &str) -> Vec<String> {
        let s = FieldSelector::parse(selector, Kind::Pod).unwrap();
        pods()
            .iter()
            .filter(|p| s.matches(p))
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn each_operator_selects_what_it_says_and_terms_are_anded() {
        assert_eq!(pick("spec.nodeName=n1"), ["a"]);
        assert_eq!(pick("spec.nodeName==n1"), ["a"]);
        assert_eq!(pick("spec.nodeName!=n1"), ["b", "c", "d,e=f"]);
        // Empty selects the pods not yet scheduled (null or absent).
        assert_eq!(pick("spec.nodeName="), ["c", "d,e=f"]);
        assert_eq!(pick("status.phase!=Pending,metadata.name!=a"), ["b"]);
        assert_eq!(pick("metadata.namespace=shop").len(), 3);
        assert_eq!(pick("").len(), 4);
        // A field the object omits has the server's default.
        assert_eq!(
            pick("spec.schedulerName=default-scheduler"),
            ["a", "c", "d,e=f"]
        );
    }

    #[test]
    fn escaped_commas_and_equals_are_part_of_the_value() {
        assert_eq!(pick(r"metadata.name=d\,e\=f"), ["d,e=f"]);
        for refused in [
            r"metadata.name=d\x",
            "metadata.name=a=b",
            r"metadata.name=a\",
        ] {
            assert!(
                FieldSelector::parse(refused, Kind::Pod).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn each_kind_refuses_the_fields_it_does_not_index() {
        let refused = FieldSelector::parse("spec.hostname=x", Kind::Pod);
        assert!(matches!(refused, Err(e) if e.contains("field label not supported")));
        assert!(FieldSelector::parse("spec.nodeName", Kind::Pod).is_err());
        // The field is taken as written, as `splitTerm` takes it.
        assert!(FieldSelector::parse(" spec.nodeName=x", Kind::Pod).is_err());
        // Indexed for pods, not for nodes; nodes are cluster-scoped.
        assert!(FieldSelector::parse("spec.nodeName=x", Kind::Node).is_err());
        assert!(FieldSelector::parse("metadata.namespace=x", Kind::Node).is_err());
        let cordoned = FieldSelector::parse("spec.unschedulable=true", Kind::Node).unwrap();
        assert!(cordoned.matches(&json!({"spec": {"unschedulable": true}})));
        assert!(!cordoned.matches(&json!({"spec": {}})));
        assert!(FieldSelector::parse("status.phase=Running", Kind::PodDisruptionBudget).is_err());
        assert!(FieldSelector::parse("metadata.namespace=shop", Kind::PodDisruptionBudget).is_ok());
    }
}
