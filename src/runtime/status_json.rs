//! The shape of `status --json`: typed, so a field cannot vanish or change
//! its type unnoticed (the test below pins it). Printed through
//! `serde_json::Value`, whose keys are sorted, so the text is stable.

use crate::engine::Standing;
use crate::engine::reconcile::Finding;
use crate::ports::{Instance, LockRecord, Node, OpKind, OpRecord, Origin, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct StatusReport<'a> {
    pub cluster: &'a str,
    pub table: &'a str,
    pub region: &'a str,
    pub backends: BackendsJson,
    pub worker_cpu_percent: Option<f64>,
    pub nodes: Option<Vec<NodeJson<'a>>>,
    /// Why the nodes carry no scale-down standing (pods or budgets not
    /// read), when they do not.
    pub scale_down_unknown: Option<&'a str>,
    pub lock: Option<LockJson<'a>>,
    pub operation: Option<OperationJson<'a>>,
    pub workers: Option<Vec<InstanceJson<'a>>>,
    pub findings: Option<Vec<FindingJson<'a>>>,
    /// How close the circuit breaker is to opening (engine/circuit.rs).
    pub circuit: Option<CircuitJson>,
    /// The launches there are, as far as one look can time them
    /// (`engine/boot.rs::reconstruct`), and their percentiles.
    pub boot: Option<BootJson>,
    /// The last operation's latencies (`engine/latency.rs`), as far as the
    /// record and one look tell them; a running engine's p50/p95 are on
    /// its `/metrics`.
    pub latency: Option<LatencyJson>,
}

/// Seconds. `scale_up_s`: the last scale-up's oldest triggering pod
/// unschedulable → its launch (absent when the record is not a scale-up or
/// was written before the field existed). `verify_s`: per instance the
/// boot timelines could time, node Ready → verified.
#[derive(Debug, Serialize)]
pub struct LatencyJson {
    pub scale_up_op: Option<String>,
    pub scale_up_s: Option<f64>,
    pub verify_s: BTreeMap<String, f64>,
}

impl LatencyJson {
    pub fn of(record: &OpRecord, timelines: &[crate::engine::boot::BootTimeline]) -> LatencyJson {
        let scale_up = record
            .op
            .as_ref()
            .filter(|o| matches!(o.kind, crate::ports::OpKind::ScaleUp { .. }));
        let scale_up_s = scale_up
            .and_then(|o| o.pending_since.map(|since| o.started.since(since)))
            .map(|d| d.as_secs_f64());
        let verify_s = timelines
            .iter()
            .filter_map(|t| {
                let waited = t.verified?.since(t.ready?);
                Some((t.instance_id.clone(), waited.as_secs_f64()))
            })
            .collect();
        LatencyJson {
            scale_up_op: scale_up.map(|o| o.id.clone()),
            scale_up_s,
            verify_s,
        }
    }
}

/// Times as RFC 3339, durations in seconds, like the rest of `status`.
#[derive(Debug, Serialize)]
pub struct BootJson {
    pub timelines: Vec<serde_json::Value>,
    pub stats: Vec<serde_json::Value>,
}

impl BootJson {
    pub fn of(timelines: Vec<crate::engine::boot::BootTimeline>) -> BootJson {
        let time = |t: Option<Timestamp>| t.map(Timestamp::to_rfc3339);
        let stats = crate::engine::boot::stats(timelines.iter())
            .into_iter()
            .map(|s| {
                let of = |pick: fn(&(f64, f64)) -> f64| -> BTreeMap<&str, f64> {
                    s.steps.iter().map(|(k, v)| (*k, pick(v))).collect()
                };
                serde_json::json!({
                    "instance_type": s.instance_type,
                    "zone": s.zone,
                    "count": s.count,
                    "p50_s": of(|v| v.0),
                    "p95_s": of(|v| v.1),
                })
            })
            .collect();
        let timelines = timelines
            .iter()
            .map(|t| {
                let steps: BTreeMap<&str, f64> = t
                    .durations()
                    .into_iter()
                    .map(|(k, d)| (k, d.as_secs_f64()))
                    .collect();
                serde_json::json!({
                    "instance_id": t.instance_id,
                    "op_id": t.op_id,
                    "instance_type": t.instance_type,
                    "zone": t.zone,
                    "launched": t.launched.to_rfc3339(),
                    "running": time(t.running),
                    "registered": time(t.registered),
                    "ready": time(t.ready),
                    "verified": time(t.verified),
                    "steps_s": steps,
                })
            })
            .collect();
        BootJson { timelines, stats }
    }
}

#[derive(Debug, Serialize)]
pub struct CircuitJson {
    pub enabled: bool,
    pub open: bool,
    pub window_s: u64,
    /// Within the window, against the limit that opens it (0: not on it).
    pub never_joined: u64,
    pub never_joined_limit: u32,
    pub failed_operations: u64,
    pub failed_operations_limit: u32,
}

impl CircuitJson {
    pub fn of(
        rules: &crate::engine::settings::CircuitRules,
        record: &OpRecord,
        now: Timestamp,
    ) -> CircuitJson {
        let recent = crate::engine::circuit::recent(rules, record, now);
        let never = recent
            .iter()
            .filter(|t| t.kind == crate::ports::TroubleKind::NeverJoined)
            .count() as u64;
        CircuitJson {
            enabled: rules.enabled,
            open: record.paused_at(now).is_some_and(|p| p.circuit),
            window_s: rules.window.as_secs(),
            never_joined: never,
            never_joined_limit: rules.never_joined,
            failed_operations: recent.len() as u64 - never,
            failed_operations_limit: rules.failed_operations,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BackendsJson {
    pub dynamodb: BackendJson,
    pub ec2: BackendJson,
    pub kubernetes: BackendJson,
    pub prometheus: BackendJson,
}

impl BackendsJson {
    /// In the order the text report lists them.
    pub fn named(&self) -> [(&'static str, &BackendJson); 4] {
        [
            ("dynamodb", &self.dynamodb),
            ("ec2", &self.ec2),
            ("kubernetes", &self.kubernetes),
            ("prometheus", &self.prometheus),
        ]
    }
}

#[derive(Debug, Serialize)]
pub struct BackendJson {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u128,
}

impl BackendJson {
    pub fn of(result: Result<(), String>, latency_ms: u128) -> BackendJson {
        BackendJson {
            ok: result.is_ok(),
            error: result.err(),
            latency_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct NodeJson<'a> {
    pub name: &'a str,
    pub instance_id: Option<&'a str>,
    pub ready: bool,
    pub cordoned: bool,
    /// Its own standing for a scale-down (`engine::node_standing`); null
    /// when the pods, budgets or instances could not be read.
    pub scale_down: Option<&'a str>,
}

impl<'a> NodeJson<'a> {
    pub fn of(n: &'a Node, standing: Option<&'a BTreeMap<String, Standing>>) -> NodeJson<'a> {
        NodeJson {
            name: &n.name,
            instance_id: n.instance_id.as_deref(),
            ready: n.ready,
            cordoned: n.cordoned,
            scale_down: standing
                .and_then(|s| s.get(&n.name))
                .map(|s| s.text.as_str()),
        }
    }
}

/// A lock never taken says so with `held: false`, `fence: 0` and no owner;
/// a lock record carries its lease.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LockJson<'a> {
    Never {
        held: bool,
        fence: u64,
        owner: Option<&'a str>,
    },
    Record {
        held: bool,
        in_progress: bool,
        owner: &'a str,
        fence: u64,
        until: String,
        lease_left_ms: i64,
    },
}

impl<'a> LockJson<'a> {
    pub fn of(lock: Option<&'a LockRecord>, now: Timestamp) -> LockJson<'a> {
        match lock {
            None => LockJson::Never {
                held: false,
                fence: 0,
                owner: None,
            },
            Some(l) => LockJson::Record {
                held: l.is_held_at(now),
                in_progress: l.in_progress,
                owner: &l.owner,
                fence: l.fence,
                until: l.until.to_rfc3339(),
                lease_left_ms: if l.is_held_at(now) {
                    l.until.0 - now.0
                } else {
                    0
                },
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OperationJson<'a> {
    pub rev: u64,
    pub current: Option<CurrentOpJson<'a>>,
    pub last_scale_up: Option<String>,
    pub last_scale_end: Option<String>,
    pub pause: Option<PauseJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct CurrentOpJson<'a> {
    pub id: &'a str,
    pub kind: &'static str,
    pub detail: &'a OpKind,
    pub phase: &'static str,
    pub in_flight: bool,
    pub origin: Origin,
    pub started: String,
    pub deadline: Option<String>,
    pub deadline_in_ms: Option<i64>,
    pub reasons: &'a [String],
    pub steps: Vec<StepJson<'a>>,
    pub outcome: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct StepJson<'a> {
    pub at: String,
    pub text: &'a str,
}

#[derive(Debug, Serialize)]
pub struct PauseJson<'a> {
    pub by: &'a str,
    pub reason: &'a str,
    pub since: String,
    pub until: String,
    /// Opened by the circuit breaker, not by a person.
    pub circuit: bool,
}

impl<'a> OperationJson<'a> {
    pub fn of(record: &'a OpRecord, now: Timestamp) -> OperationJson<'a> {
        OperationJson {
            rev: record.rev,
            current: record.op.as_ref().map(|op| CurrentOpJson {
                id: &op.id,
                kind: op.kind.name(),
                detail: &op.kind,
                phase: op.phase.as_str(),
                in_flight: op.is_in_flight(),
                origin: op.origin,
                started: op.started.to_rfc3339(),
                deadline: op.deadline.map(|d| d.to_rfc3339()),
                deadline_in_ms: op
                    .deadline
                    .filter(|_| op.is_in_flight())
                    .map(|d| d.0 - now.0),
                reasons: &op.reasons,
                steps: op
                    .steps
                    .iter()
                    .map(|s| StepJson {
                        at: s.at.to_rfc3339(),
                        text: &s.text,
                    })
                    .collect(),
                outcome: op.outcome.as_deref(),
            }),
            last_scale_up: record.last_scale_up.map(|t| t.to_rfc3339()),
            last_scale_end: record.last_scale_end.map(|t| t.to_rfc3339()),
            pause: record.paused_at(now).map(|p| PauseJson {
                by: &p.by,
                reason: &p.reason,
                since: p.since.to_rfc3339(),
                until: p.until.to_rfc3339(),
                circuit: p.circuit,
            }),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct InstanceJson<'a> {
    pub id: &'a str,
    pub state: &'static str,
    #[serde(rename = "type")]
    pub instance_type: &'a str,
    pub zone: &'a str,
    pub private_ip: Option<&'a str>,
    pub launched: String,
    pub op_id: Option<&'a str>,
}

impl<'a> InstanceJson<'a> {
    pub fn of(i: &'a Instance) -> InstanceJson<'a> {
        InstanceJson {
            id: &i.id,
            state: i.state.as_str(),
            instance_type: &i.instance_type,
            zone: &i.zone,
            private_ip: i.private_ip.as_deref(),
            launched: i.launched_at.to_rfc3339(),
            op_id: i.op_id.as_deref(),
        }
    }
}

/// A finding as the engine serialises it (its `class` and fields), with
/// the sentence and the fix the text report shows.
#[derive(Debug, Serialize)]
pub struct FindingJson<'a> {
    #[serde(flatten)]
    pub finding: &'a Finding,
    pub text: String,
    pub fix: &'static str,
}

impl<'a> FindingJson<'a> {
    pub fn of(f: &'a Finding) -> FindingJson<'a> {
        FindingJson {
            finding: f,
            text: f.describe(),
            fix: f.fix(),
        }
    }
}

#[cfg(test)]
#[path = "status_json_tests.rs"]
mod tests;
