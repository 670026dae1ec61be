//! What one LIST or WATCH asks for: a label selector, a field selector and
//! a namespace, judged on the object as served (its JSON), so that a
//! watch and a list of the same query select the same objects.

use super::field_selector::{FieldSelector, Kind};
use crate::ports::label_selector::{self, Selector};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub struct Selection {
    labels: Option<Selector>,
    fields: FieldSelector,
    namespace: Option<String>,
}

impl Selection {
    /// The query's selectors, or the 400's message.
    pub fn parse(
        q: &HashMap<String, String>,
        kind: Kind,
        namespace: Option<String>,
    ) -> Result<Selection, String> {
        let labels = q
            .get("labelSelector")
            .filter(|s| !s.is_empty())
            .map(|s| label_selector::parse(s))
            .transpose()
            .map_err(|e| format!("unable to parse requirement: {e}"))?;
        let fields = FieldSelector::parse(
            q.get("fieldSelector").map(String::as_str).unwrap_or(""),
            kind,
        )?;
        Ok(Selection {
            labels,
            fields,
            namespace,
        })
    }

    pub fn matches(&self, item: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && item.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str())
        {
            return false;
        }
        if let Some(wanted) = &self.labels {
            let labels: BTreeMap<String, String> = item
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            if !wanted.matches(&labels) {
                return false;
            }
        }
        self.fields.matches(item)
    }
}
