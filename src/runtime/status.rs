//! `status`: one look at every backend, the lock, the operation, the
//! workers and the reconciliation findings; text for people, `--json` for
//! scripts.

use super::backends::Backends;
use super::console_tails::ConsoleTails;
use super::settings::engine_settings;
use crate::config::Config;
use crate::engine::reconcile::{Finding, reconcile};
use crate::engine::{ClusterView, Observation};
use crate::exit::Exit;
use crate::ports::{
    Clock, CloudApi, ClusterApi, Instance, LockRecord, MetricsSource, Node, OpRecord, Ports,
    Reading, Signal, StateSnapshot, StateStore, SystemClock, Timestamp, format_duration,
};
use serde_json::{Value, json};
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
    let report = json!({
        "cluster": config.cluster.name,
        "table": config.dynamodb.table,
        "region": aws.region,
        "backends": {
            "dynamodb": backend(&state.as_ref().map(|_| ()).map_err(|e| e.to_string()), state_ms),
            "ec2": backend(&fleet.as_ref().map(|_| ()).map_err(|e| e.to_string()), fleet_ms),
            "kubernetes": backend(&nodes.as_ref().map(|_| ()).map_err(Clone::clone), nodes_ms),
            "prometheus": backend(&cpu.as_ref().map(|_| ()).map_err(Clone::clone), cpu_ms),
        },
        "worker_cpu_percent": cpu.as_ref().ok(),
        "nodes": nodes.as_ref().ok().map(|ns| ns.iter().map(|n| json!({
            "name": n.name, "instance_id": n.instance_id, "ready": n.ready, "cordoned": n.cordoned,
        })).collect::<Vec<_>>()),
        "lock": state.as_ref().ok().map(|s| lock_json(s.lock.as_ref(), now)),
        "operation": state.as_ref().ok().map(|s| op_json(&s.record, now)),
        "workers": fleet.as_ref().ok().map(|f| f.iter().map(instance_json).collect::<Vec<_>>()),
        "findings": findings.as_ref().map(|fs| fs.iter().map(finding_json).collect::<Vec<_>>()),
    });
    if as_json {
        println!("{report}");
    } else {
        print_text(&report, state.as_ref().ok(), fleet.as_ref().ok(), now);
        match &nodes {
            Ok(ns) => {
                let ready = ns.iter().filter(|n| n.ready).count();
                println!("nodes       {} workers, {ready} Ready", ns.len());
                for n in ns {
                    println!(
                        "            {:<22} {:<8} {}",
                        n.name,
                        if n.ready { "Ready" } else { "NotReady" },
                        if n.cordoned { "cordoned" } else { "" }
                    );
                }
            }
            Err(e) => println!("nodes       unknown ({e})"),
        }
        match &cpu {
            Ok(v) => println!("worker CPU  {v:.1}%"),
            Err(e) => println!("worker CPU  Unknown ({e})"),
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

fn finding_json(f: &Finding) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("text".into(), json!(f.describe()));
        o.insert("fix".into(), json!(f.fix()));
    }
    v
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

fn backend(result: &Result<(), String>, ms: u128) -> Value {
    match result {
        Ok(()) => json!({"ok": true, "latency_ms": ms}),
        Err(e) => json!({"ok": false, "error": e, "latency_ms": ms}),
    }
}

fn lock_json(lock: Option<&LockRecord>, now: Timestamp) -> Value {
    match lock {
        None => json!({"held": false, "fence": 0, "owner": null}),
        Some(l) => json!({
            "held": l.is_held_at(now),
            "in_progress": l.in_progress,
            "owner": l.owner,
            "fence": l.fence,
            "until": l.until.to_rfc3339(),
            "lease_left_ms": if l.is_held_at(now) { l.until.0 - now.0 } else { 0 },
        }),
    }
}

fn op_json(record: &OpRecord, now: Timestamp) -> Value {
    let op = record.op.as_ref().map(|op| {
        json!({
            "id": op.id,
            "kind": op.kind.name(),
            "detail": op.kind,
            "phase": op.phase.as_str(),
            "in_flight": op.is_in_flight(),
            "origin": op.origin,
            "started": op.started.to_rfc3339(),
            "deadline": op.deadline.map(|d| d.to_rfc3339()),
            "deadline_in_ms": op.deadline.filter(|_| op.is_in_flight()).map(|d| d.0 - now.0),
            "reasons": op.reasons,
            "steps": op.steps.iter().map(|s| json!({"at": s.at.to_rfc3339(), "text": s.text})).collect::<Vec<_>>(),
            "outcome": op.outcome,
        })
    });
    json!({
        "rev": record.rev,
        "current": op,
        "last_scale_up": record.last_scale_up.map(|t| t.to_rfc3339()),
        "last_scale_end": record.last_scale_end.map(|t| t.to_rfc3339()),
        "pause": record.paused_at(now).map(|p| json!({
            "by": p.by, "reason": p.reason, "since": p.since.to_rfc3339(), "until": p.until.to_rfc3339(),
        })),
    })
}

fn instance_json(i: &Instance) -> Value {
    json!({
        "id": i.id,
        "state": i.state.as_str(),
        "type": i.instance_type,
        "zone": i.zone,
        "private_ip": i.private_ip,
        "launched": i.launched_at.to_rfc3339(),
        "op_id": i.op_id,
    })
}

fn print_text(
    report: &Value,
    state: Option<&StateSnapshot>,
    fleet: Option<&Vec<Instance>>,
    now: Timestamp,
) {
    println!(
        "cluster {} · table {} · region {}",
        report["cluster"].as_str().unwrap_or(""),
        report["table"].as_str().unwrap_or(""),
        report["region"].as_str().unwrap_or("")
    );
    if let Some(backends) = report["backends"].as_object() {
        for (name, b) in backends {
            match b["ok"].as_bool() {
                Some(true) => println!("  {name:<11} ok ({} ms)", b["latency_ms"]),
                _ => println!(
                    "  {name:<11} unavailable: {}",
                    b["error"].as_str().unwrap_or("?")
                ),
            }
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
