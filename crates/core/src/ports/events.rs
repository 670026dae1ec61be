//! Kubernetes Events (`events.k8s.io/v1`) in domain terms: what the engine
//! tells `kubectl describe` and `kubectl get events`. The limits are the
//! API server's (`pkg/apis/core/validation/events.go`): an event it would
//! refuse is cut to fit here, once, rather than lost at the server.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// `reportingController`: a qualified name, as the API server requires.
pub const REPORTING_CONTROLLER: &str = "k3s-autoscaler";
/// The API server refuses a longer `note` (bytes, not characters).
pub const NOTE_LIMIT: usize = 1024;
/// …and a longer `reportingInstance`, `action` or `reason`.
pub const FIELD_LIMIT: usize = 128;
/// Where events about cluster-scoped objects (nodes, the cluster itself)
/// go: the API server takes only `default` or `kube-system` for them.
pub const CLUSTER_EVENTS_NAMESPACE: &str = "default";

/// The object an event is about (`regarding`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventObject {
    /// `Pod`, `Node` or `Namespace`.
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    /// What `kubectl describe` searches by: a pod's `metadata.uid`; a
    /// node's name (kubectl describes a node with `uid` = its name, as the
    /// kubelet reports it).
    pub uid: String,
}

impl EventObject {
    pub fn pod(namespace: &str, name: &str, uid: &str) -> EventObject {
        EventObject {
            kind: "Pod".into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    pub fn node(name: &str) -> EventObject {
        EventObject {
            kind: "Node".into(),
            namespace: String::new(),
            name: name.into(),
            uid: name.into(),
        }
    }

    /// The cluster as a whole (the circuit breaker): the `kube-system`
    /// namespace object, which every cluster has.
    pub fn cluster() -> EventObject {
        EventObject {
            kind: "Namespace".into(),
            namespace: String::new(),
            name: "kube-system".into(),
            uid: String::new(),
        }
    }

    pub fn api_version(&self) -> &'static str {
        "v1"
    }

    /// The namespace the event itself lives in.
    pub fn event_namespace(&self) -> &str {
        if self.namespace.is_empty() {
            CLUSTER_EVENTS_NAMESPACE
        } else {
            &self.namespace
        }
    }
}

impl std::fmt::Display for EventObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.kind.to_ascii_lowercase();
        if self.namespace.is_empty() {
            write!(f, "{kind}/{}", self.name)
        } else {
            write!(f, "{kind}/{}/{}", self.namespace, self.name)
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event as written: created once, then only its series changes (the
/// API server keeps every other field immutable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// `metadata.name`: `<regarding name>.<hex of the first time in ns>`,
    /// as client-go names them.
    pub name: String,
    pub regarding: EventObject,
    pub reason: String,
    /// Machine-readable: `ScaleUp`, `ScaleDown`, `Terminate`, `Pause`.
    pub action: String,
    pub note: String,
    pub event_type: EventType,
    /// First seen (`eventTime`).
    pub at: Timestamp,
    /// `reportingInstance`: the engine's owner id.
    pub instance: String,
    /// Set from the second occurrence on.
    pub series: Option<EventSeries>,
}

impl ClusterEvent {
    pub fn namespace(&self) -> &str {
        self.regarding.event_namespace()
    }

    /// How many times it happened (1 until it has a series).
    pub fn count(&self) -> u32 {
        self.series.map_or(1, |s| s.count)
    }
}

/// `series`: the API server's aggregation of repeats (count at least 2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSeries {
    pub count: u32,
    pub last_observed: Timestamp,
}

/// `s` cut to at most `limit` bytes on a character boundary, with an
/// ellipsis when cut.
pub fn fit(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_note_is_cut_to_the_servers_limit_on_a_character_boundary() {
        let note = "é".repeat(700); // 1 400 bytes
        let cut = fit(&note, NOTE_LIMIT);
        assert!(cut.len() <= NOTE_LIMIT, "{} bytes", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(fit("short", NOTE_LIMIT), "short");
    }

    #[test]
    fn cluster_scoped_objects_have_their_events_in_default() {
        assert_eq!(EventObject::node("i-1").event_namespace(), "default");
        assert_eq!(EventObject::cluster().event_namespace(), "default");
        assert_eq!(
            EventObject::pod("shop", "web-0", "u").event_namespace(),
            "shop"
        );
        assert_eq!(
            EventObject::pod("shop", "web-0", "u").to_string(),
            "pod/shop/web-0"
        );
    }
}
