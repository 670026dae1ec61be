//! What the engine task sends the console after every tick: an owned copy
//! of everything the screen shows, so drawing never waits on IO.

use crate::engine::{Decision, ExecReport, Mode, Observation, Standing, StandingKind, TickReport};
use crate::ports::{LockRecord, OpKind, OpRecord, Reading, Timestamp};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Marker {
    None,
    /// Being drained by a scale-down.
    Draining,
    /// Launched by a scale-up, not yet a Ready node.
    Launching,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRow {
    pub name: String,
    pub instance_id: String,
    pub zone: String,
    pub instance_type: String,
    /// `None`: an instance with no node yet.
    pub ready: Option<bool>,
    pub cordoned: bool,
    pub cpu_percent: Option<f64>,
    pub pods: usize,
    pub created: Timestamp,
    pub marker: Marker,
    /// Its standing for a scale-down (`Decision::standing`); for an
    /// instance with no node, its state; `None` when the view was not known.
    pub scale_down: Option<Standing>,
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub at: Timestamp,
    pub mode: Mode,
    pub paused: bool,
    pub owner: Option<String>,
    pub observation: Observation,
    pub decision: Decision,
    pub lock: Option<LockRecord>,
    pub record: Option<OpRecord>,
    pub state_error: Option<String>,
    pub exec: Option<ExecReport>,
    pub workers: Vec<WorkerRow>,
    /// Backend name → what went wrong on the last tick.
    pub errors: BTreeMap<&'static str, String>,
    /// Reconciliation findings (the `R` view).
    pub findings: Vec<crate::engine::reconcile::Finding>,
    /// Launches booting and the last ones verified, with the percentiles
    /// (the node detail view).
    pub boot: Vec<crate::engine::boot::BootTimeline>,
    pub boot_stats: Vec<crate::engine::boot::BootStats>,
    /// How the cluster was read: `watch · 3 s`, or `None` for lists.
    pub cluster_source: Option<String>,
    /// This process's recent scale-up and verify latencies.
    pub latency: crate::engine::latency::LatencySummary,
}

impl Snapshot {
    pub fn build(
        report: TickReport,
        node_cpu: Result<BTreeMap<String, f64>, String>,
        mode: Mode,
        paused: bool,
        owner: Option<String>,
    ) -> Snapshot {
        let (lock, record, state_error) = match report.state {
            Ok(s) => (s.lock, Some(s.record), None),
            Err(e) => (None, None, Some(e)),
        };
        let mut errors = BTreeMap::new();
        if let Reading::Unknown { reason } = &report.observation.cpu {
            errors.insert("prometheus", reason.clone());
        }
        if let Err(e) = &report.observation.cluster {
            errors.insert("kubernetes", e.clone());
        }
        if let Err(e) = &report.observation.fleet {
            errors.insert("ec2", e.clone());
        }
        if let Some(e) = &state_error {
            errors.insert("dynamodb", e.clone());
        }
        if let Some(e) = report.exec.as_ref().and_then(|x| x.error.as_ref()) {
            errors.insert("operation", format!("{} refused: {e}", e.backend));
        }
        let cpu = node_cpu.unwrap_or_default();
        let workers = worker_rows(
            &report.observation,
            &cpu,
            record.as_ref(),
            &report.decision.standing,
        );
        Snapshot {
            at: report.at,
            mode,
            paused,
            owner,
            observation: report.observation,
            decision: report.decision,
            lock,
            record,
            state_error,
            exec: report.exec,
            workers,
            errors,
            findings: report.findings,
            boot: report.boot,
            boot_stats: report.boot_stats,
            cluster_source: report.cluster_source,
            latency: report.latency,
        }
    }

    pub fn pending_pods(&self) -> Option<usize> {
        self.observation
            .cluster
            .as_ref()
            .ok()
            .map(|v| v.unschedulable().len())
    }
}

/// Nodes joined with their instances, plus instances that are not nodes
/// yet; the operation in flight marks the rows it touches.
fn worker_rows(
    obs: &Observation,
    cpu: &BTreeMap<String, f64>,
    record: Option<&OpRecord>,
    standing: &BTreeMap<String, Standing>,
) -> Vec<WorkerRow> {
    let op = record.and_then(|r| r.in_flight());
    let (draining, launching): (Option<&str>, &[String]) = match op.map(|o| &o.kind) {
        Some(OpKind::ScaleDown { node, .. }) => (Some(node.as_str()), &[]),
        Some(OpKind::ScaleUp { instance_ids, .. }) => (None, instance_ids.as_slice()),
        _ => (None, &[]),
    };
    let fleet = obs.fleet.as_ref().map(Vec::as_slice).unwrap_or(&[]);
    let mut rows = Vec::new();
    if let Ok(view) = &obs.cluster {
        for node in &view.nodes {
            let instance = node
                .instance_id
                .as_deref()
                .and_then(|id| fleet.iter().find(|i| i.id == id));
            let pods = view
                .pods_on(&node.name)
                .filter(|p| !p.is_finished())
                .count();
            let marker = if draining == Some(node.name.as_str()) {
                Marker::Draining
            } else if node
                .instance_id
                .as_ref()
                .is_some_and(|id| launching.contains(id))
            {
                Marker::Launching
            } else {
                Marker::None
            };
            rows.push(WorkerRow {
                name: node.name.clone(),
                instance_id: node.instance_id.clone().unwrap_or_else(|| "-".into()),
                zone: node
                    .zone()
                    .or(instance.map(|i| i.zone.as_str()))
                    .unwrap_or("-")
                    .to_string(),
                instance_type: node
                    .instance_type()
                    .or(instance.map(|i| i.instance_type.as_str()))
                    .unwrap_or("-")
                    .to_string(),
                ready: Some(node.ready),
                cordoned: node.cordoned,
                cpu_percent: cpu.get(&node.name).copied(),
                pods,
                created: node.created,
                marker,
                scale_down: standing.get(&node.name).cloned(),
            });
        }
        // Once, not a scan of the nodes per instance (quadratic at 5 000).
        let with_node: crate::engine::id_map::IdSet = view
            .nodes
            .iter()
            .filter_map(|n| n.instance_id.as_deref())
            .collect();
        for instance in fleet {
            if with_node.contains(instance.id.as_str()) {
                continue;
            }
            rows.push(WorkerRow {
                name: format!("({})", instance.state.as_str()),
                instance_id: instance.id.clone(),
                zone: instance.zone.clone(),
                instance_type: instance.instance_type.clone(),
                ready: None,
                cordoned: false,
                cpu_percent: None,
                pods: 0,
                created: instance.launched_at,
                marker: if launching.contains(&instance.id) {
                    Marker::Launching
                } else {
                    Marker::None
                },
                // The state the NAME column shows, for when it is hidden.
                scale_down: Some(Standing {
                    kind: StandingKind::NoNode,
                    text: format!("no node yet: instance {}", instance.state.as_str()),
                }),
            });
        }
    }
    rows
}
