//! `status`: one look at every backend, the lock, the operation, the
//! workers and the reconciliation findings; text for people, `--json` for
//! scripts.

use super::backends::Backends;
use super::console_tails::ConsoleTails;
use super::settings::engine_settings;
use super::status_json::{
    BackendJson, BackendsJson, BootJson, CircuitJson, FindingJson, InstanceJson, LatencyJson,
    LockJson, NodeJson, OperationJson, StatusReport,
};
use crate::adapters::SystemClock;
use crate::config::Config;
use crate::engine::reconcile::{Finding, reconcile};
use crate::engine::{ClusterView, Observation};
use crate::exit::Exit;
use crate::ports::{
    Clock, CloudApi, ClusterApi, Instance, MetricsSource, Node, OpRecord, Ports, Reading, Signal,
    StateSnapshot, StateStore, Timestamp, format_duration,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// What `status` reads: the real backends, or the simulated cluster of
/// `--demo` (whose Kubernetes and Prometheus are always configured).
pub struct Sources {
    pub state: Arc<dyn StateStore>,
    pub cloud: Arc<dyn CloudApi>,
    pub cluster: Result<Arc<dyn ClusterApi>, String>,
    pub metrics: Result<Arc<dyn MetricsSource>, String>,
    pub clock: Arc<dyn Clock>,
    pub region: String,
}

impl Sources {
    pub fn of(ports: &Ports, region: &str) -> Sources {
        Sources {
            state: ports.state.clone(),
            cloud: ports.cloud.clone(),
            cluster: Ok(ports.cluster.clone()),
            metrics: Ok(ports.metrics.clone()),
            clock: ports.clock.clone(),
            region: region.into(),
        }
    }
}

/// `status` on the configured backends.
pub async fn status(config: &Config, path: Option<&Path>, as_json: bool) -> Exit {
    let aws = match Backends::for_command(config, path, false).await {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    let sources = Sources {
        state: aws.state.clone(),
        cloud: aws.cloud.clone(),
        cluster: aws.cluster.clone().map(|c| c as Arc<dyn ClusterApi>),
        metrics: aws.metrics.clone().map(|m| m as Arc<dyn MetricsSource>),
        clock: Arc::new(SystemClock::new()),
        region: aws.region.clone(),
    };
    report(config, &sources, as_json).await
}

/// The state table must be readable (exit 1 otherwise); every other
/// backend is reported as it is, ok or not, without stopping the rest.
pub async fn report(config: &Config, aws: &Sources, as_json: bool) -> Exit {
    let now = aws.clock.now();
    let started = Instant::now();
    let state = aws.state.read().await;
    let state_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let fleet = aws.cloud.managed_instances().await;
    let fleet_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let nodes = match &aws.cluster {
        Ok(k) => k.nodes().await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("not configured: {e}")),
    };
    let nodes_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let cpu = match &aws.metrics {
        Ok(m) => match m.instant(Signal::WorkerCpu).await {
            Reading::Known { value, .. } => Ok(value),
            Reading::Unknown { reason } => Err(reason),
        },
        Err(e) => Err(format!("not configured: {e}")),
    };
    let cpu_ms = started.elapsed().as_millis();
    let findings = match (&state, &fleet, &nodes) {
        (Ok(s), Ok(f), Ok(n)) => {
            Some(findings(config, aws.cloud.as_ref(), &s.record, f, n, now).await)
        }
        _ => None,
    };
    // Each node's own standing for a scale-down needs its pods and the
    // budgets too: read only when the nodes and instances were.
    let standing: Result<_, String> = match (&aws.cluster, &nodes, &fleet, &state) {
        (Ok(k), Ok(ns), Ok(f), Ok(s)) => match (k.pods().await, k.pdbs().await) {
            (Ok(pods), Ok(pdbs)) => {
                let view = ClusterView {
                    nodes: ns.clone(),
                    pods,
                    pdbs,
                };
                Ok(crate::engine::node_standing(
                    &engine_settings(config),
                    &view,
                    f,
                    &s.record,
                    now,
                ))
            }
            (Err(e), _) => Err(format!("listing pods: {e}")),
            (_, Err(e)) => Err(format!("listing PDBs: {e}")),
        },
        _ => Err("needs the nodes, the instances and the state table".into()),
    };
    // Launches as far as one look can time them (`engine/boot.rs`).
    let timelines = match (&fleet, &nodes, &state) {
        (Ok(f), Ok(ns), Ok(s)) => Some(crate::engine::boot::reconstruct(f, ns, &s.record)),
        _ => None,
    };
    let report = StatusReport {
        cluster: &config.cluster.name,
        table: &config.dynamodb.table,
        region: &aws.region,
        backends: BackendsJson {
            dynamodb: BackendJson::of(
                state.as_ref().map(|_| ()).map_err(|e| e.to_string()),
                state_ms,
            ),
            ec2: BackendJson::of(
                fleet.as_ref().map(|_| ()).map_err(|e| e.to_string()),
                fleet_ms,
            ),
            kubernetes: BackendJson::of(nodes.as_ref().map(|_| ()).map_err(Clone::clone), nodes_ms),
            prometheus: BackendJson::of(cpu.as_ref().map(|_| ()).map_err(Clone::clone), cpu_ms),
        },
        worker_cpu_percent: cpu.as_ref().ok().copied(),
        nodes: nodes.as_ref().ok().map(|ns| {
            ns.iter()
                .map(|n| NodeJson::of(n, standing.as_ref().ok()))
                .collect()
        }),
        scale_down_unknown: standing.as_ref().err().map(String::as_str),
        lock: state
            .as_ref()
            .ok()
            .map(|s| LockJson::of(s.lock.as_ref(), now)),
        operation: state
            .as_ref()
            .ok()
            .map(|s| OperationJson::of(&s.record, now)),
        workers: fleet
            .as_ref()
            .ok()
            .map(|f| f.iter().map(InstanceJson::of).collect()),
        findings: findings
            .as_ref()
            .map(|fs| fs.iter().map(FindingJson::of).collect()),
        circuit: state
            .as_ref()
            .ok()
            .map(|s| CircuitJson::of(&engine_settings(config).circuit, &s.record, now)),
        boot: timelines.clone().map(BootJson::of),
        latency: match (&state, &timelines) {
            (Ok(s), Some(t)) => Some(LatencyJson::of(&s.record, t)),
            (Ok(s), None) => Some(LatencyJson::of(&s.record, &[])),
            _ => None,
        },
    };
    if as_json {
        // Through a Value: sorted keys, the same text whatever the field
        // order above.
        match serde_json::to_value(&report) {
            Ok(value) => println!("{value}"),
            Err(e) => return Exit::Failed.with_error(format!("status as JSON: {e}")),
        }
    } else {
        print_text(&report, state.as_ref().ok(), fleet.as_ref().ok(), now);
        match &nodes {
            Ok(ns) => {
                let ready = ns.iter().filter(|n| n.ready).count();
                println!("nodes       {} workers, {ready} Ready", ns.len());
                for n in ns {
                    let scale_down = standing
                        .as_ref()
                        .ok()
                        .and_then(|s| s.get(&n.name))
                        .map_or(String::new(), |s| format!("  scale-down: {}", s.text));
                    println!(
                        "            {:<22} {:<8} {:<8}{scale_down}",
                        n.name,
                        if n.ready { "Ready" } else { "NotReady" },
                        if n.cordoned { "cordoned" } else { "" }
                    );
                }
            }
            Err(e) => println!("nodes       unknown ({e})"),
        }
        if let (Ok(_), Err(e)) = (&nodes, &standing) {
            println!("scale-down  unknown ({e})");
        }
        match &cpu {
            Ok(v) => println!("worker CPU  {v:.1}%"),
            Err(e) => println!("worker CPU  Unknown ({e})"),
        }
        for s in report.boot.iter().flat_map(|b| &b.stats) {
            let secs = |q: &str| {
                s[q]["total"]
                    .as_f64()
                    .map(|v| format_duration(std::time::Duration::from_secs_f64(v.max(0.0))))
                    .unwrap_or_else(|| "?".into())
            };
            println!(
                "boot        {}/{}: {} launch(es) verified, launch to verified p50 {} p95 {}",
                s["instance_type"].as_str().unwrap_or("?"),
                s["zone"].as_str().unwrap_or("?"),
                s["count"],
                secs("p50_s"),
                secs("p95_s")
            );
        }
        if let Some(l) = &report.latency {
            print_latency(l);
        }
        print_findings(findings.as_deref());
    }
    match state {
        Ok(_) => Exit::Ok,
        Err(e) => {
            eprintln!("error: the state table could not be read: {e}");
            Exit::Failed
        }
    }
}

/// Reconciliation needs the instances, the nodes and the record: with any
/// of them unknown there is nothing to compare.
async fn findings(
    config: &Config,
    cloud: &dyn CloudApi,
    record: &OpRecord,
    fleet: &[Instance],
    nodes: &[Node],
    now: Timestamp,
) -> Vec<Finding> {
    let observation = Observation {
        cpu_partial: None,
        at: now,
        cpu: Reading::unknown("not read by status"),
        cluster: Ok(ClusterView {
            nodes: nodes.to_vec(),
            ..ClusterView::default()
        }),
        fleet: Ok(fleet.to_vec()),
    };
    let mut found = reconcile(&engine_settings(config), &observation, record, now);
    ConsoleTails::default().fill(cloud, &mut found, now).await;
    found
}

fn print_latency(l: &LatencyJson) {
    let secs = |v: f64| format!("{:.1}s", v.max(0.0));
    if let (Some(op), Some(v)) = (&l.scale_up_op, l.scale_up_s) {
        println!("latency     {op}: unschedulable to launch {}", secs(v));
    }
    if !l.verify_s.is_empty() {
        let each: Vec<String> = l
            .verify_s
            .iter()
            .map(|(id, v)| format!("{id} {}", secs(*v)))
            .collect();
        println!("latency     Ready to verified: {}", each.join(", "));
    }
}

fn print_findings(findings: Option<&[Finding]>) {
    match findings {
        None => println!("reconcile   unknown (needs EC2, Kubernetes and the state table)"),
        Some([]) => println!("reconcile   instances, nodes and the operation record agree"),
        Some(fs) => {
            println!("reconcile   {} finding(s)", fs.len());
            for f in fs {
                println!(
                    "            {:<26} {} → fix: {}",
                    f.class(),
                    f.describe(),
                    f.fix()
                );
                if let Finding::NeverJoined {
                    console_tail: Some(tail),
                    ..
                } = f
                {
                    for line in tail.lines() {
                        println!("              │ {line}");
                    }
                }
            }
        }
    }
}

fn print_text(
    report: &StatusReport<'_>,
    state: Option<&StateSnapshot>,
    fleet: Option<&Vec<Instance>>,
    now: Timestamp,
) {
    println!(
        "cluster {} · table {} · region {}",
        report.cluster, report.table, report.region
    );
    for (name, b) in report.backends.named() {
        match &b.error {
            None => println!("  {name:<11} ok ({} ms)", b.latency_ms),
            Some(e) => println!("  {name:<11} unavailable: {e}"),
        }
    }
    match state {
        None => println!("lock        unknown (state table unreadable)"),
        Some(s) => {
            match &s.lock {
                None => println!("lock        free · never taken"),
                Some(l) if l.is_held_at(now) => println!(
                    "lock        held by {} · fence {} · lease {} left",
                    l.owner,
                    l.fence,
                    format_duration(l.until.since(now))
                ),
                Some(l) => println!("lock        free · fence {} (last: {})", l.fence, l.owner),
            }
            if let Some(p) = s.record.paused_at(now) {
                println!(
                    "pause       by {} until {} ({} left): {}",
                    p.by,
                    p.until.to_rfc3339(),
                    format_duration(p.until.since(now)),
                    p.reason
                );
            }
            if let Some(c) = &report.circuit {
                println!("{}", circuit_line(c));
            }
            match &s.record.op {
                None => println!("operation   none yet"),
                Some(op) => {
                    println!(
                        "operation   {} {} · {} · started {}{}",
                        op.id,
                        op.kind.name(),
                        op.phase,
                        op.started.to_rfc3339(),
                        op.outcome
                            .as_ref()
                            .map(|o| format!(" · {o}"))
                            .unwrap_or_default()
                    );
                    for step in &op.steps {
                        println!("            {} {}", step.at, step.text);
                    }
                }
            }
        }
    }
    match fleet {
        None => println!("workers     unknown (EC2 unreachable)"),
        Some(f) => {
            println!("workers     {} managed (pending + running)", f.len());
            for i in f {
                println!(
                    "            {} {:<8} {:<10} {:<11} {:<15} {}",
                    i.id,
                    i.state.as_str(),
                    i.instance_type,
                    i.zone,
                    i.private_ip.as_deref().unwrap_or("-"),
                    i.op_id.as_deref().unwrap_or("")
                );
            }
        }
    }
}

/// `circuit     closed · 1 of 3 launches never joined, 0 of 5 operations failed in the last 1h`.
fn circuit_line(c: &CircuitJson) -> String {
    if !c.enabled {
        return "circuit     off (circuit.enabled = false)".into();
    }
    format!(
        "circuit     {} · {} of {} launches never joined, {} of {} operations failed or aborted in the last {}",
        if c.open { "OPEN" } else { "closed" },
        c.never_joined,
        c.never_joined_limit,
        c.failed_operations,
        c.failed_operations_limit,
        format_duration(std::time::Duration::from_secs(c.window_s))
    )
}
