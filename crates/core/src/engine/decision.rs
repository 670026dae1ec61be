//! The engine's answer for one tick: an action and every reason for it.

use crate::ports::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Hold,
    ScaleUp {
        count: u32,
    },
    ScaleDown {
        node: String,
        instance_id: String,
    },
    /// The engine's own clean-up: managed instances that never joined.
    TerminateStrays {
        instances: Vec<String>,
    },
}

impl Action {
    pub fn is_hold(&self) -> bool {
        matches!(self, Action::Hold)
    }

    pub fn label(&self) -> String {
        match self {
            Action::Hold => "hold".into(),
            Action::ScaleUp { count } => format!("scale-up +{count}"),
            Action::ScaleDown { node, .. } => format!("scale-down {node}"),
            Action::TerminateStrays { instances } => {
                format!("terminate never-joined {}", instances.join(", "))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: Timestamp,
    pub action: Action,
    /// Why, in the operator's words: every rule that was looked at.
    pub reasons: Vec<String>,
    /// Set when the view is implausible (engine/sanity.rs): nothing
    /// destructive runs until it is plausible again. The console shows it
    /// as a banner, `/healthz` as degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanity_stop: Option<String>,
    /// Each worker's standing for a scale-down, by node name
    /// (`policy::standing`, filled by the engine loop, not by `decide`):
    /// the console's SCALE-DOWN column. Empty when the view was not known.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub standing: std::collections::BTreeMap<String, String>,
}

impl Decision {
    pub fn hold(at: Timestamp, reasons: Vec<String>) -> Self {
        Decision {
            at,
            action: Action::Hold,
            reasons,
            sanity_stop: None,
            standing: Default::default(),
        }
    }

    pub(crate) fn with_sanity(mut self, why: Option<String>) -> Self {
        self.sanity_stop = why;
        self
    }

    /// One line: `hold: CPU 64% < 70%; 0 pending; scale-down blocked: idle for 4m12s of 10m`.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.action.label(), self.reasons.join("; "))
    }
}

/// Why an operator's request was refused, shown in the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
