//! The shape of `status --json`, pinned (`status_json.rs`).
use super::*;
use crate::engine::operation::{Intent, start};
use crate::engine::testkit::{at, instance, node};
use crate::ports::{OpRecord, Pause};
use serde_json::json;

/// Every key of `status --json` and its type: a script that reads one
/// breaks loudly here first.
#[test]
fn the_json_shape_is_pinned() {
    let now = at(1000);
    let mut record = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 2 },
        "op-1",
        Origin::Engine,
        vec!["CPU 91% > 80% for 3m".into()],
        7,
        at(900),
    );
    if let Some(op) = record.op.as_mut() {
        op.deadline = Some(at(1600));
        op.pending_since = Some(at(880));
    }
    record.pause = Some(Pause {
        by: "ops@bastion".into(),
        reason: "migration".into(),
        since: at(990),
        until: at(4590),
        circuit: false,
    });
    let lock = LockRecord {
        in_progress: true,
        owner: "engine@bastion".into(),
        lease_id: "secret-lease".into(),
        fence: 7,
        until: at(1020),
        lease_ms: 20_000,
    };
    let nodes = [node("i-1", 0)];
    let standing: BTreeMap<String, Standing> = [(
        "i-1".to_string(),
        Standing::eligible("eligible · 0 % requested".to_string()),
    )]
    .into();
    let mut worker = instance("i-1");
    worker.op_id = Some("op-0".into());
    let workers = [worker];
    let finding = Finding::StrayCordon { node: "i-1".into() };
    let report = StatusReport {
        cluster: "prod",
        table: "k3s-autoscaler",
        region: "eu-west-1",
        backends: BackendsJson {
            dynamodb: BackendJson::of(Ok(()), 12),
            ec2: BackendJson::of(Err("throttled".into()), 30),
            kubernetes: BackendJson::of(Ok(()), 4),
            prometheus: BackendJson::of(Ok(()), 8),
        },
        worker_cpu_percent: Some(42.5),
        nodes: Some(
            nodes
                .iter()
                .map(|n| NodeJson::of(n, Some(&standing)))
                .collect(),
        ),
        scale_down_unknown: None,
        lock: Some(LockJson::of(Some(&lock), now)),
        operation: Some(OperationJson::of(&record, now)),
        workers: Some(workers.iter().map(InstanceJson::of).collect()),
        findings: Some(vec![FindingJson::of(&finding)]),
        circuit: Some(CircuitJson::of(
            &crate::engine::settings::CircuitRules::default(),
            &record,
            now,
        )),
        boot: Some(BootJson::of(crate::engine::boot::reconstruct(
            &workers, &nodes, &record,
        ))),
        latency: Some(LatencyJson::of(
            &record,
            &crate::engine::boot::reconstruct(&workers, &nodes, &record),
        )),
    };
    let op = record.op.as_ref().expect("started");
    let expected = json!({
        "cluster": "prod",
        "table": "k3s-autoscaler",
        "region": "eu-west-1",
        "backends": {
            "dynamodb": {"ok": true, "latency_ms": 12},
            "ec2": {"ok": false, "error": "throttled", "latency_ms": 30},
            "kubernetes": {"ok": true, "latency_ms": 4},
            "prometheus": {"ok": true, "latency_ms": 8},
        },
        "worker_cpu_percent": 42.5,
        "nodes": [{
            "name": "i-1", "instance_id": "i-1", "ready": true, "cordoned": false,
            "scale_down": "eligible · 0 % requested",
        }],
        "scale_down_unknown": null,
        "lock": {
            "held": true, "in_progress": true, "owner": "engine@bastion", "fence": 7,
            "until": at(1020).to_rfc3339(), "lease_left_ms": 20_000,
        },
        "operation": {
            "rev": record.rev,
            "current": {
                "id": "op-1",
                "kind": "scale-up",
                "detail": serde_json::to_value(&op.kind).expect("serialisable"),
                "phase": op.phase.as_str(),
                "in_flight": true,
                "origin": "engine",
                "started": at(900).to_rfc3339(),
                "deadline": at(1600).to_rfc3339(),
                "deadline_in_ms": 600_000,
                "reasons": ["CPU 91% > 80% for 3m"],
                "steps": op.steps.iter().map(|s| json!({"at": s.at.to_rfc3339(), "text": s.text})).collect::<Vec<_>>(),
                "outcome": null,
            },
            "last_scale_up": null,
            "last_scale_end": null,
            "pause": {
                "by": "ops@bastion", "reason": "migration",
                "since": at(990).to_rfc3339(), "until": at(4590).to_rfc3339(),
                "circuit": false,
            },
        },
        "workers": [{
            "id": "i-1", "state": "running", "type": "t3.large", "zone": "eu-west-1a",
            "private_ip": null, "launched": instance("i-1").launched_at.to_rfc3339(),
            "op_id": "op-0",
        }],
        "findings": [{
            "class": "stray_cordon", "node": "i-1",
            "text": finding.describe(), "fix": finding.fix(),
        }],
        "circuit": {
            "enabled": true, "open": false, "window_s": 3600,
            "never_joined": 0, "never_joined_limit": 3,
            "failed_operations": 0, "failed_operations_limit": 5,
        },
        // Registered and Ready from the node object; not verified:
        // the record's operation is another one (op-1, not op-0).
        "boot": {
            "timelines": [{
                "instance_id": "i-1", "op_id": "op-0", "instance_type": "t3.large",
                "zone": "eu-west-1a", "launched": instance("i-1").launched_at.to_rfc3339(),
                "running": null, "registered": at(0).to_rfc3339(),
                "ready": at(0).to_rfc3339(), "verified": null,
                "steps_s": {"registered": 0.0, "ready": 0.0},
            }],
            "stats": [],
        },
        // Started at 900 for a pod unschedulable since 880; nothing
        // verified to time.
        "latency": {"scale_up_op": "op-1", "scale_up_s": 20.0, "verify_s": {}},
    });
    assert_eq!(
        serde_json::to_value(&report).expect("serialisable"),
        expected
    );
    assert!(!op.steps.is_empty(), "the step list is exercised");
    // A lock never taken, and no lease id anywhere (it is a secret of
    // the holder's).
    assert_eq!(
        serde_json::to_value(LockJson::of(None, now)).expect("serialisable"),
        json!({"held": false, "fence": 0, "owner": null})
    );
    assert!(
        !serde_json::to_string(&report)
            .expect("serialisable")
            .contains("secret-lease")
    );
}
/// A scale-up that ended Done: its latency from the record, and each of
/// its nodes' Ready → verified from the boot timeline (the record's end
/// is when its nodes were verified).
#[test]
fn latency_of_the_last_scale_up_and_its_verified_nodes() {
    let mut record = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 1 },
        "op-7",
        Origin::Engine,
        vec![],
        3,
        at(100),
    );
    if let Some(op) = record.op.as_mut() {
        op.pending_since = Some(at(93));
        op.phase = crate::ports::OpPhase::Done;
        op.updated = at(161);
    }
    let mut ready = node("i-9", 140);
    ready.ready_since = at(160);
    let mut worker = instance("i-9");
    worker.op_id = Some("op-7".into());
    let timelines = crate::engine::boot::reconstruct(&[worker], &[ready], &record);
    assert_eq!(
        serde_json::to_value(LatencyJson::of(&record, &timelines)).expect("serialisable"),
        json!({"scale_up_op": "op-7", "scale_up_s": 7.0, "verify_s": {"i-9": 1.0}})
    );
    // A record whose last operation is not a scale-up says nothing of one.
    let cordon = start(
        &OpRecord::default(),
        &Intent::Cordon {
            node: "i-9".into(),
            cordon: true,
        },
        "op-8",
        Origin::Operator,
        vec![],
        3,
        at(200),
    );
    assert_eq!(
        serde_json::to_value(LatencyJson::of(&cordon, &[])).expect("serialisable"),
        json!({"scale_up_op": null, "scale_up_s": null, "verify_s": {}})
    );
}
