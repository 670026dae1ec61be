//! Reconciliation: the three sources of truth — managed EC2
//! instances, Kubernetes nodes and the operation record — compared every
//! tick. What does not add up is classified; only the first class is ever
//! acted on automatically (the engine's own clean-up rule: docs/architecture.md §2 rule 3 and
//! §5, "Never joined, confirmed").

use super::observation::{FleetMatch, Observation};
use super::settings::Settings;
use crate::ports::{OpKind, OpPhase, OpRecord, Timestamp, format_duration};
use serde::Serialize;
use std::time::Duration;

/// How long a node without an instance must have been NotReady before it
/// counts as a ghost: a kubelet that missed a few heartbeats, or whose
/// instance a lagging Describe does not show yet, comes back within it.
/// Five minutes is the default `tolerationSeconds` of the unreachable and
/// not-ready taints, after which the node lifecycle controller evicts the
/// node's pods anyway.
pub const GHOST_NOT_READY_FOR: Duration = Duration::from_secs(300);

/// Whether a node with no live instance behind it may be deleted as a
/// ghost: NotReady, and for long enough.
pub fn not_ready_long_enough(node: &crate::ports::Node, now: Timestamp) -> bool {
    !node.ready && now.since(node.ready_since) >= GHOST_NOT_READY_FOR
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Finding {
    /// A managed instance past its join timeout with no node, outside any
    /// operation. Auto mode terminates it.
    NeverJoined {
        instance: String,
        #[serde(serialize_with = "secs")]
        age: Duration,
        op_id: Option<String>,
        /// The tail of its console output, when EC2 has one.
        console_tail: Option<String>,
        /// The last clean-up found a node for it outside the worker
        /// selector: it did join, under other labels. Never terminated
        /// automatically; the selector or the labels need a person.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        outside_selector: bool,
    },
    /// A node whose instance is gone (or was never a managed instance).
    GhostNode {
        node: String,
        instance: Option<String>,
    },
    /// A node cordoned outside any operation.
    StrayCordon { node: String },
    /// A managed instance, not yet a node, that no operation launched.
    OrphanInstance {
        instance: String,
        #[serde(serialize_with = "secs")]
        age: Duration,
        op_id: Option<String>,
    },
    /// A scale-up in flight whose instances are all gone.
    OperationInstancesGone {
        op_id: String,
        instances: Vec<String>,
    },
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Finding {
    pub fn class(&self) -> &'static str {
        match self {
            Finding::NeverJoined { .. } => "never joined",
            Finding::GhostNode { .. } => "ghost node",
            Finding::StrayCordon { .. } => "stray cordon",
            Finding::OrphanInstance { .. } => "orphan instance",
            Finding::OperationInstancesGone { .. } => "operation's instances gone",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Finding::NeverJoined {
                instance,
                outside_selector: true,
                ..
            } => format!(
                "{instance} has a node outside kubernetes.worker_selector (its labels changed, or the selector is wrong): kept"
            ),
            Finding::NeverJoined { instance, age, .. } => {
                format!(
                    "{instance} launched {} ago and never joined",
                    format_duration(*age)
                )
            }
            Finding::GhostNode { node, instance } => match instance {
                Some(i) => format!("node {node}: its instance {i} is gone"),
                None => format!("node {node} maps to no instance"),
            },
            Finding::StrayCordon { node } => {
                format!("node {node} is cordoned outside any operation")
            }
            Finding::OrphanInstance { instance, age, .. } => {
                format!(
                    "{instance} ({} old) runs outside any operation",
                    format_duration(*age)
                )
            }
            Finding::OperationInstancesGone { op_id, instances } => {
                format!(
                    "{op_id}: its instances {} are all gone",
                    instances.join(", ")
                )
            }
        }
    }

    /// What the one-key fix does.
    pub fn fix(&self) -> &'static str {
        match self {
            Finding::NeverJoined { .. } | Finding::OrphanInstance { .. } => {
                "terminate the instance"
            }
            Finding::GhostNode { .. } => "delete the node object",
            Finding::StrayCordon { .. } => "uncordon the node",
            Finding::OperationInstancesGone { .. } => "close the operation as failed",
        }
    }
}

/// The last `max_lines` lines of an instance's console output, fit to show:
/// terminal control sequences removed (they would repaint the operator's
/// screen), and the value of anything that looks like a token or password
/// replaced, in case a boot script printed one.
pub fn console_tail(text: &str, max_lines: usize) -> Option<String> {
    let lines: Vec<String> = text
        .lines()
        .map(printable)
        .filter(|l| !l.trim().is_empty())
        .map(|l| redact(&l))
        .collect();
    let tail = lines[lines.len().saturating_sub(max_lines)..].join("\n");
    (!tail.is_empty()).then_some(tail)
}

fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ … final byte (CSI), or ESC + one character.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

const SECRET_WORDS: [&str; 4] = ["token", "password", "secret", "passwd"];

fn redact(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    let Some((word_at, word)) = SECRET_WORDS
        .iter()
        .filter_map(|w| lower.find(w).map(|at| (at, w.len())))
        .min()
    else {
        return line.to_string();
    };
    // Keep the key (`K3S_TOKEN`, `password_file`) and an `=` or `:` right
    // after it; everything after that could be the value.
    let rest = &line[word_at + word..];
    let key_tail = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .unwrap_or(rest.len());
    let after_key = &rest[key_tail..];
    let spaces = after_key.len() - after_key.trim_start().len();
    let separator = if after_key[spaces..].starts_with(['=', ':']) {
        spaces + 1
    } else {
        0
    };
    let keep = word_at + word + key_tail + separator;
    format!("{}<redacted>", &line[..keep])
}

pub fn reconcile(
    settings: &Settings,
    obs: &Observation,
    record: &OpRecord,
    now: Timestamp,
) -> Vec<Finding> {
    let (Ok(view), Ok(fleet)) = (&obs.cluster, &obs.fleet) else {
        return Vec::new();
    };
    reconcile_matched(settings, obs, &FleetMatch::new(view, fleet), record, now)
}

/// As `reconcile`, with the view matched to the fleet by the caller once
/// for this tick (`matched` must be of `obs`'s view and fleet).
pub fn reconcile_matched(
    settings: &Settings,
    obs: &Observation,
    matched: &FleetMatch<'_>,
    record: &OpRecord,
    now: Timestamp,
) -> Vec<Finding> {
    let (Ok(view), Ok(fleet)) = (&obs.cluster, &obs.fleet) else {
        return Vec::new();
    };
    let in_flight = record.in_flight();
    let (op_instances, op_node): (&[String], Option<&str>) = match in_flight.map(|o| &o.kind) {
        Some(OpKind::ScaleUp { instance_ids, .. }) => (instance_ids.as_slice(), None),
        Some(OpKind::ScaleDown { node, .. } | OpKind::Cordon { node, .. }) => {
            (&[], Some(node.as_str()))
        }
        Some(OpKind::TerminateStrays { instances, .. }) => (instances.as_slice(), None),
        Some(OpKind::DeleteGhost { node }) => (&[], Some(node.as_str())),
        None => (&[], None),
    };
    let op_id = in_flight.map(|o| o.id.as_str());
    let kept: &[String] = match record.op.as_ref().map(|o| &o.kind) {
        Some(OpKind::TerminateStrays { kept, .. }) => kept,
        _ => &[],
    };
    // Every tick, on every worker: one look-up per instance, not a scan
    // (a 1 000-worker cluster would cost a million comparisons per tick).
    // `backed[f]`: the instance of the nodes whose first is node f is live.
    let mut backed = vec![false; view.nodes.len()];
    let mut findings = Vec::new();
    for (at, i) in fleet.iter().enumerate() {
        if !i.state.is_live() {
            continue;
        }
        let node = matched.node_of_fleet(at);
        if let Some(n) = node {
            backed[n] = true;
        }
        let ours = op_instances.contains(&i.id) || (op_id.is_some() && i.op_id.as_deref() == op_id);
        if !i.managed || ours || node.is_some() {
            continue;
        }
        let age = now.since(i.launched_at);
        if age > settings.join_timeout {
            findings.push(Finding::NeverJoined {
                instance: i.id.clone(),
                age,
                op_id: i.op_id.clone(),
                console_tail: None,
                outside_selector: kept.contains(&i.id),
            });
        } else {
            findings.push(Finding::OrphanInstance {
                instance: i.id.clone(),
                age,
                op_id: i.op_id.clone(),
            });
        }
    }
    for (at, n) in view.nodes.iter().enumerate() {
        let first = matched.first_with_instance_of(at);
        if Some(n.name.as_str()) == op_node {
            continue;
        }
        // A ghost is a node whose instance is gone *and* that has not been
        // Ready for a while: a Ready node is a kubelet talking to the API
        // server, whatever our (tag-filtered) instance list says: an
        // unmanaged instance, another cluster's tags, a Describe that lags.
        // Deleting it would let the pod garbage collector kill every pod
        // on a live machine.
        if !first.is_some_and(|f| backed[f]) && not_ready_long_enough(n, now) {
            findings.push(Finding::GhostNode {
                node: n.name.clone(),
                instance: n.instance_id.clone(),
            });
        } else if n.cordoned {
            findings.push(Finding::StrayCordon {
                node: n.name.clone(),
            });
        }
    }
    if let Some(op) = in_flight
        && let OpKind::ScaleUp { instance_ids, .. } = &op.kind
        && matches!(op.phase, OpPhase::Launched | OpPhase::Verifying)
        && !instance_ids.is_empty()
        && instance_ids
            .iter()
            .all(|id| !fleet.iter().any(|i| &i.id == id && i.state.is_live()))
        && instance_ids
            .iter()
            .all(|id| matched.node_of(id).is_none_or(|n| !view.nodes[n].ready))
    {
        findings.push(Finding::OperationInstancesGone {
            op_id: op.id.clone(),
            instances: instance_ids.clone(),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::operation::{Intent, start};
    use crate::engine::testkit::*;
    use crate::ports::Origin;

    #[test]
    fn each_class_is_found_and_a_clean_cluster_has_none() {
        let s = Settings::default();
        let now = at(10_000);
        let clean = cluster(4, 50.0, now);
        assert_eq!(reconcile(&s, &clean, &OpRecord::default(), now), vec![]);

        let mut obs = cluster(4, 50.0, now);
        let fleet = obs.fleet.as_mut().unwrap();
        let mut late = instance("i-late");
        late.launched_at = at(10_000 - 700);
        let mut young = instance("i-young");
        young.launched_at = at(10_000 - 60);
        fleet.push(late);
        fleet.push(young);
        fleet.retain(|i| i.id != "w1"); // w1's instance is gone: ghost
        fleet.retain(|i| i.id != "w3"); // w3's too, but it is Ready: never a ghost
        let view = view_mut(&mut obs);
        view.nodes[0].ready = false;
        view.nodes[0].ready_since = at(10_000 - 300);
        view.nodes[1].cordoned = true; // w2: stray cordon
        let classes = |obs: &Observation| -> Vec<&'static str> {
            reconcile(&s, obs, &OpRecord::default(), now)
                .iter()
                .map(|f| f.class())
                .collect()
        };
        assert_eq!(
            classes(&obs),
            [
                "never joined",
                "orphan instance",
                "ghost node",
                "stray cordon"
            ]
        );
        // NotReady for less than five minutes: a missed heartbeat, not yet
        // a ghost (its node is no stray cordon either).
        view_mut(&mut obs).nodes[0].ready_since = at(10_000 - 299);
        assert_eq!(
            classes(&obs),
            ["never joined", "orphan instance", "stray cordon"]
        );

        // A scale-up whose instances vanished.
        let record = start(
            &OpRecord::default(),
            &Intent::ScaleUp { count: 1 },
            "op-9",
            Origin::Engine,
            vec![],
            1,
            now,
        );
        let mut record = record;
        if let Some(op) = record.op.as_mut() {
            op.phase = OpPhase::Verifying;
            if let OpKind::ScaleUp { instance_ids, .. } = &mut op.kind {
                *instance_ids = vec!["i-vanished".into()];
            }
        }
        let found = reconcile(&s, &cluster(3, 50.0, now), &record, now);
        assert!(
            matches!(&found[..], [Finding::OperationInstancesGone { op_id, .. }] if op_id == "op-9"),
            "{found:?}"
        );
    }

    #[test]
    fn a_console_tail_is_printable_short_and_without_secrets() {
        let text = "boot 1\r\n\u{1b}[31mred\u{1b}[0m line\n\nK3S_TOKEN=K10abc::server:xyz\nDB password: hunter2\nusing token K10def\nlast\n";
        assert_eq!(
            console_tail(text, 5).as_deref(),
            Some(
                "red line\nK3S_TOKEN=<redacted>\nDB password:<redacted>\nusing token<redacted>\nlast"
            )
        );
        assert_eq!(console_tail("\n \n", 5), None);
    }

    #[test]
    fn what_an_operation_touches_is_not_a_finding() {
        let s = Settings::default();
        let now = at(10_000);
        let mut obs = cluster(4, 50.0, now);
        view_mut(&mut obs).nodes[3].cordoned = true;
        let record = start(
            &OpRecord::default(),
            &Intent::ScaleDown {
                node: "w4".into(),
                instance_id: "w4".into(),
            },
            "op-1",
            Origin::Engine,
            vec![],
            1,
            now,
        );
        assert_eq!(reconcile(&s, &obs, &record, now), vec![]);
    }
}
