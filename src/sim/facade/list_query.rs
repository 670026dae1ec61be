//! The query side of a LIST, as kube-apiserver answers it (issue 19):
//! `fieldSelector` with its operators and its 400 for a field it does not
//! index, and `limit` / `continue` paging.
//!
//! Paging follows the API conventions: items come in key order
//! (`namespace/name`), a page may hold *fewer* items than the `limit`
//! asked for, and `metadata.continue` is set while more remain. This
//! façade always answers short pages when a limit is given, so a client
//! that reads only the first page is caught at once.

use crate::ports::{Pod, PodPhase};
use serde_json::Value;
use std::collections::HashMap;

/// The most items one page holds here, whatever the limit asked.
pub const SHORT_PAGE: usize = 3;

const TOKEN_PREFIX: &str = "k3s-sim-continue:";

/// The key an item is stored under: `namespace/name`, or `name` for
/// cluster-scoped objects. Lists are served in this order.
fn key(item: &Value) -> String {
    let name = item
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match item.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// One page of `items` for the query, and the `continue` token for the
/// rest (`None` when this page is the last). `Err` is the 400's message.
pub fn page(
    mut items: Vec<Value>,
    q: &HashMap<String, String>,
) -> Result<(Vec<Value>, Option<String>), String> {
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            // The server treats 0 (and below) as "no limit".
            Ok(_) => None,
            Err(_) => return Err(format!("invalid limit {l:?}: not an integer")),
        },
    };
    let start = match q.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => match token.strip_prefix(TOKEN_PREFIX) {
            Some(after) => Some(after.to_string()),
            None => return Err("continue key is not valid: not issued by this server".into()),
        },
    };
    items.sort_by_key(key);
    if let Some(after) = &start {
        items.retain(|i| key(i).as_str() > after.as_str());
    }
    let Some(limit) = limit else {
        return Ok((items, None));
    };
    let size = limit.min(SHORT_PAGE);
    if items.len() <= size {
        return Ok((items, None));
    }
    items.truncate(size);
    let token = items.last().map(|i| format!("{TOKEN_PREFIX}{}", key(i)));
    Ok((items, token))
}

/// `fieldSelector` on pods: the fields the API server indexes that this
/// façade models (`metadata.name`, `metadata.namespace`, `spec.nodeName`,
/// `status.phase`), each with `=`, `==` or `!=`; terms are ANDed.
/// `spec.nodeName=` (empty) selects the pods not yet scheduled. Any other
/// field is the server's 400, `field label not supported`.
pub fn pod_filter(q: &HashMap<String, String>) -> Result<impl Fn(&Pod) -> bool + use<>, String> {
    let mut terms: Vec<(PodField, bool, String)> = Vec::new();
    for term in q
        .get("fieldSelector")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
    {
        let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, true, v)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{term}'; can't understand '{term}'"
            ));
        };
        let field = match field.trim() {
            "metadata.name" => PodField::Name,
            "metadata.namespace" => PodField::Namespace,
            "spec.nodeName" => PodField::NodeName,
            "status.phase" => PodField::Phase,
            other => return Err(format!("field label not supported: {other}")),
        };
        terms.push((field, equal, value.trim().to_string()));
    }
    Ok(move |p: &Pod| {
        terms
            .iter()
            .all(|(field, equal, value)| (field.of(p) == *value) == *equal)
    })
}

enum PodField {
    Name,
    Namespace,
    NodeName,
    Phase,
}

impl PodField {
    fn of(&self, p: &Pod) -> String {
        match self {
            PodField::Name => p.name.clone(),
            PodField::Namespace => p.namespace.clone(),
            PodField::NodeName => p.node_name.clone().unwrap_or_default(),
            PodField::Phase => match p.phase {
                PodPhase::Pending => "Pending",
                PodPhase::Running => "Running",
                PodPhase::Succeeded => "Succeeded",
                PodPhase::Failed => "Failed",
                PodPhase::Unknown => "Unknown",
            }
            .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(items: &[Value]) -> Vec<String> {
        items.iter().map(key).collect()
    }

    #[test]
    fn pages_are_short_in_key_order_and_continue_where_they_stopped() {
        let items: Vec<Value> = ["e", "a", "d", "b", "c"]
            .iter()
            .map(|n| json!({"metadata": {"name": n, "namespace": "shop"}}))
            .collect();
        // No limit: everything, in key order.
        let (all, token) = page(items.clone(), &query(&[])).unwrap();
        assert_eq!(
            names(&all),
            ["shop/a", "shop/b", "shop/c", "shop/d", "shop/e"]
        );
        assert_eq!(token, None);
        // A limit of 500 still gets a short page and a token for the rest.
        let (first, token) = page(items.clone(), &query(&[("limit", "500")])).unwrap();
        assert_eq!(names(&first), ["shop/a", "shop/b", "shop/c"]);
        let token = token.expect("more remain");
        let (rest, last) = page(
            items.clone(),
            &query(&[("limit", "500"), ("continue", &token)]),
        )
        .unwrap();
        assert_eq!(names(&rest), ["shop/d", "shop/e"]);
        assert_eq!(last, None);
        assert!(page(items, &query(&[("continue", "forged")])).is_err());
    }

    fn pod(name: &str, node: Option<&str>, phase: PodPhase) -> Pod {
        let mut p = crate::engine::testkit::pod(name, node, 100, Some("ReplicaSet"));
        p.namespace = "shop".into();
        p.phase = phase;
        p
    }

    #[test]
    fn field_selectors_take_each_operator_and_refuse_unknown_fields() {
        let pods = [
            pod("a", Some("n1"), PodPhase::Running),
            pod("b", Some("n2"), PodPhase::Running),
            pod("c", None, PodPhase::Pending),
        ];
        let pick = |selector: &str| -> Vec<String> {
            let keep = pod_filter(&query(&[("fieldSelector", selector)])).unwrap();
            pods.iter()
                .filter(|p| keep(p))
                .map(|p| p.name.clone())
                .collect()
        };
        assert_eq!(pick("spec.nodeName=n1"), ["a"]);
        assert_eq!(pick("spec.nodeName==n1"), ["a"]);
        assert_eq!(pick("spec.nodeName!=n1"), ["b", "c"]);
        assert_eq!(pick("spec.nodeName="), ["c"]);
        assert_eq!(pick("status.phase!=Pending,metadata.name!=a"), ["b"]);
        assert_eq!(pick("metadata.namespace=shop").len(), 3);
        let refused = pod_filter(&query(&[("fieldSelector", "spec.hostname=x")]));
        assert!(matches!(refused, Err(e) if e.contains("field label not supported")));
        assert!(pod_filter(&query(&[("fieldSelector", "spec.nodeName")])).is_err());
    }
}
