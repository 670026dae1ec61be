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
    pub reasons: Vec<Reason>,
    /// Set when the view is implausible (engine/sanity.rs): nothing
    /// destructive runs until it is plausible again. The console shows it
    /// as a banner, `/healthz` as degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanity_stop: Option<String>,
    /// Each worker's standing for a scale-down, by node name
    /// (`policy::standing`, filled by the engine loop, not by `decide`):
    /// the console's SCALE-DOWN column. Empty when the view was not known.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub standing: std::collections::BTreeMap<String, Standing>,
    /// Why no scale-up starts for pods that wait (their
    /// `NotTriggerScaleUp` event, `engine/events.rs`). `None` when nothing
    /// holds one back, or when one is in flight for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up_held: Option<ScaleUpHeld>,
    /// What holds every scale-down this tick that the standing of each
    /// worker could not tell by itself (the forecast's peak, within the
    /// lead): the console's SCALE-DOWN column says it instead of "next to
    /// go".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_held: Option<String>,
}

/// What holds a scale-up back, as data. Its words are an event's note,
/// which the API server never lets change: they name the rule, never a
/// time left, so that each tick's repeat bumps the same event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleUpHeld {
    /// These backends could not be read (`CPU`, `EC2`).
    Unknown(Vec<String>),
    Paused {
        by: String,
    },
    CircuitOpen,
    /// Another operation holds the lock first.
    InFlight {
        kind: String,
    },
    /// The view shows no Ready worker: a launch would join where it
    /// cannot be seen.
    NoReadyWorker,
    /// The clean-up of a launch that never joined goes first.
    CleanUpFirst,
    MaxWorkers(u32),
    Cooldown(std::time::Duration),
    Backoff {
        failures: u32,
    },
}

impl ScaleUpHeld {
    pub fn note(&self) -> String {
        match self {
            ScaleUpHeld::Unknown(what) => {
                format!("{} Unknown: Unknown never scales", what.join(", "))
            }
            ScaleUpHeld::Paused { by } => format!("scaling paused by {by}"),
            ScaleUpHeld::CircuitOpen => {
                "the circuit breaker is open: scaling paused until an operator resumes it".into()
            }
            ScaleUpHeld::InFlight { kind } => format!("a {kind} is in flight"),
            ScaleUpHeld::NoReadyWorker => {
                "no Ready worker in view (check kubernetes.worker_selector and the context)".into()
            }
            ScaleUpHeld::CleanUpFirst => {
                "the clean-up of a launch that never joined goes first".into()
            }
            ScaleUpHeld::MaxWorkers(max) => format!("max_workers ({max}) reached"),
            ScaleUpHeld::Cooldown(d) => format!(
                "scale_up_cooldown ({}) since the last scale-up",
                crate::ports::format_duration(*d)
            ),
            ScaleUpHeld::Backoff { failures } => {
                format!("backing off after {failures} failed scale-up(s)")
            }
        }
    }
}

/// One reason of a decision, in the operator's words, and whether it is a
/// concern: something that holds the engine back and may need the
/// operator (data Unknown, a sanity stop, a blocked scale-up or
/// scale-down). The console marks concerns by this flag, never by the
/// words. Serialised, a reason is its words alone (as it was when reasons
/// were strings); read back, it is not a concern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub text: String,
    pub concern: bool,
}

impl Reason {
    pub fn concern(text: String) -> Reason {
        Reason {
            text,
            concern: true,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<String> for Reason {
    fn from(text: String) -> Reason {
        Reason {
            text,
            concern: false,
        }
    }
}

impl From<&str> for Reason {
    fn from(text: &str) -> Reason {
        Reason::from(text.to_string())
    }
}

// A reason reads as its words: `reasons.join("; ")`, `r.contains(…)`.
impl std::ops::Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::borrow::Borrow<str> for Reason {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Reason, D::Error> {
        String::deserialize(deserializer).map(Reason::from)
    }
}

/// One worker's standing for a scale-down: the operator's words and which
/// kind of answer they are. The console styles the column by the kind,
/// never by the words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub kind: StandingKind,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StandingKind {
    /// The node a scale-down removes now.
    NextToGo,
    /// Something about the node or its pods rules it out.
    Blocked,
    /// It may go, but not now or not first.
    Eligible,
    /// An instance with no node yet (the console's row for it says its
    /// state): nothing to stand for.
    NoNode,
}

impl Standing {
    pub fn next_to_go(text: String) -> Standing {
        Standing {
            kind: StandingKind::NextToGo,
            text,
        }
    }

    /// "blocked: " and why.
    pub fn blocked(why: &str) -> Standing {
        Standing {
            kind: StandingKind::Blocked,
            text: format!("blocked: {why}"),
        }
    }

    pub fn eligible(text: String) -> Standing {
        Standing {
            kind: StandingKind::Eligible,
            text,
        }
    }
}

impl Decision {
    pub fn hold(at: Timestamp, reasons: Vec<Reason>) -> Self {
        Decision {
            at,
            action: Action::Hold,
            reasons,
            sanity_stop: None,
            standing: Default::default(),
            scale_up_held: None,
            scale_down_held: None,
        }
    }

    pub(crate) fn held(mut self, why: Option<ScaleUpHeld>) -> Self {
        self.scale_up_held = why;
        self
    }

    pub(crate) fn holding_scale_down(mut self, why: String) -> Self {
        self.scale_down_held = Some(why);
        self
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
