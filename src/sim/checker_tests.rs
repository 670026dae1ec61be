//! The checker's own tests: each invariant check fires on the
//! breach it names and stays quiet on its nearest legal neighbour. The
//! chaos suite's zero-violation figures mean nothing without these.

use super::invariants::Invariants;
use super::lock_table::LockTable;
use super::{SIM_EPOCH, ScenarioKind, World};
use crate::config::Config;
use crate::harness::demo::{DemoOptions, Speed, sim_settings};
use crate::ports::{
    AcquireRequest, Lease, OpKind, OpPhase, OpRecord, Operation, Origin, Timestamp,
};
use std::time::Duration;

fn world() -> World {
    let options = DemoOptions {
        scenario: ScenarioKind::Steady,
        seed: 1,
        speed: Speed::Max,
        workers: Some(5),
        start: None,
    };
    World::new(sim_settings(&Config::default(), &options))
}

fn invariants_fired(inv: &Invariants) -> Vec<u8> {
    inv.violations.iter().map(|v| v.invariant).collect()
}

fn fired(w: &World) -> Vec<u8> {
    invariants_fired(&w.invariants)
}

fn op(id: &str, kind: OpKind, phase: OpPhase, at: Timestamp) -> Operation {
    Operation {
        id: id.into(),
        kind,
        phase,
        origin: Origin::Engine,
        reasons: Vec::new(),
        started: at,
        updated: at,
        deadline: None,
        steps: Vec::new(),
        outcome: None,
        fence: 1,
        failed_before: 0,
        pending_since: None,
        last_failure: None,
        troubles: Vec::new(),
    }
}

fn record(rev: u64, op: Option<Operation>) -> OpRecord {
    OpRecord {
        rev,
        op,
        ..OpRecord::default()
    }
}

fn scale_up(id: &str, count: u32, ids: usize) -> OpKind {
    OpKind::ScaleUp {
        count,
        client_token: id.into(),
        instance_ids: (0..ids).map(|i| format!("i-{i}")).collect(),
        plan: None,
    }
}

fn acquire(owner: &str, now: Timestamp) -> AcquireRequest {
    AcquireRequest {
        owner: owner.into(),
        lease_id: format!("lease-{owner}-{}", now.0),
        now,
        lease: Duration::from_secs(60),
        skew_margin: Duration::from_secs(5),
    }
}

fn lease_of(l: &crate::ports::LockRecord) -> Lease {
    Lease {
        owner: l.owner.clone(),
        lease_id: l.lease_id.clone(),
        fence: l.fence,
    }
}

/// Worker node names, Ready ones first, in a stable order.
fn workers(w: &World) -> Vec<String> {
    let mut names: Vec<(bool, String)> = w
        .fleet
        .nodes
        .values()
        .filter(|n| {
            w.fleet
                .instances
                .get(&n.instance_id)
                .is_some_and(|i| i.managed)
        })
        .map(|n| (!n.ready, n.name.clone()))
        .collect();
    names.sort();
    names.into_iter().map(|(_, n)| n).collect()
}

#[test]
fn fences_must_increase_and_writes_carry_the_highest() {
    let mut inv = Invariants::default();
    inv.on_acquire(SIM_EPOCH, 1);
    inv.on_acquire(SIM_EPOCH, 2);
    assert!(inv.violations.is_empty());
    inv.on_acquire(SIM_EPOCH, 2);
    assert_eq!(inv.violations.len(), 1, "a fence granted twice");
    let (a, b) = (record(1, None), record(2, None));
    inv.on_op_write(SIM_EPOCH, 2, &a, &b);
    assert_eq!(inv.violations.len(), 1, "a legal write");
    inv.on_op_write(SIM_EPOCH, 1, &a, &b);
    assert_eq!(inv.violations.len(), 2, "a write with a stale fence");
    inv.on_op_write(SIM_EPOCH, 2, &b, &a);
    assert_eq!(inv.violations.len(), 3, "a revision that went back");
    assert!(inv.violations.iter().all(|v| v.invariant == 1));
}

#[test]
fn a_second_operation_over_one_in_flight_is_invariant_2() {
    let mut inv = Invariants::default();
    let a = record(
        1,
        Some(op("a", scale_up("a", 1, 0), OpPhase::Launched, SIM_EPOCH)),
    );
    let same = record(
        2,
        Some(op("a", scale_up("a", 1, 1), OpPhase::Verifying, SIM_EPOCH)),
    );
    inv.on_op_write(SIM_EPOCH, 0, &a, &same);
    assert!(inv.violations.is_empty(), "{:?}", inv.violations);
    let other = record(
        3,
        Some(op(
            "b",
            scale_up("b", 1, 0),
            OpPhase::LaunchIntended,
            SIM_EPOCH,
        )),
    );
    inv.on_op_write(SIM_EPOCH, 0, &same, &other);
    assert_eq!(invariants_fired(&inv), [2]);
    // After it ends, a new one may start.
    let mut done = same.clone();
    if let Some(o) = done.op.as_mut() {
        o.phase = OpPhase::Done;
    }
    let mut inv = Invariants::default();
    inv.on_op_write(SIM_EPOCH, 0, &done, &other);
    assert!(inv.violations.is_empty());
}

#[test]
fn more_instances_recorded_than_launched_is_invariant_3() {
    let mut inv = Invariants::default();
    let before = record(1, None);
    inv.on_op_write(
        SIM_EPOCH,
        0,
        &before,
        &record(
            2,
            Some(op("a", scale_up("a", 2, 2), OpPhase::Verifying, SIM_EPOCH)),
        ),
    );
    assert!(inv.violations.is_empty());
    inv.on_op_write(
        SIM_EPOCH,
        0,
        &before,
        &record(
            2,
            Some(op("a", scale_up("a", 2, 3), OpPhase::Verifying, SIM_EPOCH)),
        ),
    );
    assert_eq!(invariants_fired(&inv), [3]);
}

#[test]
fn the_lock_table_is_free_only_when_released_or_expired_past_the_margin() {
    let mut t = LockTable::default();
    let first = t.acquire(&acquire("a", SIM_EPOCH)).expect("free table");
    assert_eq!(first.fence, 1);
    let later = SIM_EPOCH.plus(Duration::from_secs(62));
    assert!(
        t.acquire(&acquire("b", later)).is_none(),
        "expired by 2 s: inside the skew margin"
    );
    let much_later = SIM_EPOCH.plus(Duration::from_secs(66));
    let second = t.acquire(&acquire("b", much_later)).expect("expired");
    assert_eq!(second.fence, 2);
    // The first holder is fenced out of every write.
    let (a, b) = (lease_of(&first), lease_of(&second));
    assert!(t.renew(&a, much_later, Duration::from_secs(60)).is_err());
    assert!(t.write_op(&a, &record(0, None), &record(1, None)).is_err());
    assert!(t.release(&a).is_err());
    // The holder's write needs the revision it read.
    assert!(t.write_op(&b, &record(5, None), &record(6, None)).is_err());
    assert!(t.write_op(&b, &record(0, None), &record(1, None)).is_ok());
    t.release(&b).expect("holder releases");
    assert!(t.acquire(&acquire("c", much_later)).is_some());
}

#[test]
fn a_write_must_carry_the_lease_its_engine_was_granted() {
    let mut w = world();
    let e = w.register_engine(false);
    let forged = Lease {
        owner: "x".into(),
        lease_id: "L".into(),
        fence: 3,
    };
    w.check_lease_sent(e, &forged);
    assert_eq!(fired(&w), [1], "never granted");
    w.engines[e].granted = Some(("L".into(), 3));
    w.check_lease_sent(e, &forged);
    assert_eq!(fired(&w), [1], "the granted lease is fine");
    w.check_lease_sent(
        e,
        &Lease {
            fence: 4,
            ..forged.clone()
        },
    );
    assert_eq!(fired(&w), [1, 1], "a fence above the grant");
}

#[test]
fn side_effects_need_a_lease_and_a_read_write_engine() {
    let mut w = world();
    let rw = w.register_engine(false);
    w.check_side_effect(rw, "launch", super::world::SideEffect::Forward);
    assert_eq!(fired(&w), [6], "no lease granted");
    w.engines[rw].lease_until = Some(w.now.plus(Duration::from_secs(30)));
    w.check_side_effect(rw, "launch", super::world::SideEffect::Forward);
    assert_eq!(fired(&w), [6], "inside the lease");
    let ro = w.register_engine(true);
    w.engines[ro].lease_until = Some(w.now.plus(Duration::from_secs(30)));
    w.check_side_effect(ro, "cordon", super::world::SideEffect::Forward);
    assert_eq!(fired(&w), [6, 8]);
    // An intent acted on past its bound.
    let old = w.now.minus(w.settings.intent_ttl + Duration::from_secs(60));
    w.table.record = record(
        1,
        Some(op("a", scale_up("a", 1, 0), OpPhase::LaunchIntended, old)),
    );
    w.check_side_effect(rw, "launch", super::world::SideEffect::Forward);
    assert_eq!(fired(&w), [6, 8, 6]);
    w.check_side_effect(rw, "uncordon", super::world::SideEffect::Undo);
    assert_eq!(fired(&w), [6, 8, 6], "undo effects are exempt from the age");
}

#[test]
fn a_second_drain_cordon_is_invariant_2_but_an_operators_is_not() {
    let mut w = world();
    let names = workers(&w);
    let (x, y) = (names[0].clone(), names[1].clone());
    let drain_for = |id: &str, node: &str| {
        record(
            1,
            Some(op(
                id,
                OpKind::ScaleDown {
                    node: node.into(),
                    instance_id: Some(node.into()),
                },
                OpPhase::CordonIntended,
                SIM_EPOCH,
            )),
        )
    };
    let drain = |node: &str| drain_for("d", node);
    // An operator's cordon of x, then a scale-down of y: fine.
    w.table.record = record(
        1,
        Some(op(
            "c",
            OpKind::Cordon {
                node: x.clone(),
                cordon: true,
            },
            OpPhase::CordonIntended,
            SIM_EPOCH,
        )),
    );
    w.check_one_node_at_a_time(&x);
    w.set_cordoned(&x, true).expect("node");
    w.table.record = drain(&y);
    w.check_one_node_at_a_time(&y);
    w.set_cordoned(&y, true).expect("node");
    assert!(
        w.invariants.violations.is_empty(),
        "{:?}",
        w.invariants.violations
    );
    // The same scale-down cordons x while y is still cordoned for it.
    w.table.record = drain(&x);
    w.check_one_node_at_a_time(&x);
    assert_eq!(fired(&w), [2]);
    // A later operation's cordon while an earlier one's node is still
    // cordoned: two nodes out of service, whichever operation did it.
    w.invariants.violations.clear();
    w.set_cordoned(&x, false).expect("node");
    w.table.record = drain_for("e", &names[2]);
    w.check_one_node_at_a_time(&names[2]);
    assert_eq!(fired(&w), [2]);
    w.set_cordoned(&names[2], false).expect("node");
    // Unless that operation ended saying the uncordon was refused for good
    // and the node left cordoned: reported, the operator's to fix.
    w.invariants.violations.clear();
    let before = drain_for("d", &y);
    let mut ended = before.clone();
    ended.rev += 1;
    if let Some(o) = ended.op.as_mut() {
        o.phase = OpPhase::Aborted;
        o.outcome = Some(format!(
            "drain timed out; uncordon refused (403): {y} left cordoned"
        ));
    }
    w.invariants.on_op_write(w.now, 1, &before, &ended);
    w.table.record = drain_for("f", &names[2]);
    w.check_one_node_at_a_time(&names[2]);
    assert!(
        w.invariants.violations.is_empty(),
        "{:?}",
        w.invariants.violations
    );
    w.set_cordoned(&names[2], false).expect("node");
    // Once both are uncordoned, the next drain is legal.
    w.set_cordoned(&x, false).expect("node");
    w.set_cordoned(&y, false).expect("node");
    w.invariants.violations.clear();
    w.table.record = drain(&names[2]);
    w.check_one_node_at_a_time(&names[2]);
    assert!(w.invariants.violations.is_empty());
}

#[test]
fn terminating_an_undrained_node_is_5_and_below_the_floor_is_4() {
    let mut w = world();
    let names = workers(&w);
    let busy = names
        .iter()
        .find(|n| !w.pods_on(n).is_empty())
        .expect("a node with pods")
        .clone();
    w.terminate(std::slice::from_ref(&busy)).expect("managed");
    assert_eq!(fired(&w), [5], "not cordoned, pods left");

    let mut w = world();
    w.settings.min_workers = 5;
    let names = workers(&w);
    let victim = names[0].clone();
    w.set_cordoned(&victim, true).expect("node");
    // Drain as the engine does: PDBs allow one disruption at a time.
    for _ in 0..40 {
        for pod in w.pods_on(&victim) {
            if pod.owner_kind.as_deref() != Some("DaemonSet") {
                w.evict(&pod.uid);
            }
        }
        let later = w.now.plus(Duration::from_secs(30));
        w.advance_to(later);
    }
    w.terminate(std::slice::from_ref(&victim)).expect("managed");
    assert_eq!(
        fired(&w),
        [4],
        "drained, but 4 Ready left of min 5: {:?}",
        w.invariants.violations
    );
}

#[test]
fn the_master_is_never_terminated_and_one_op_terminates_one() {
    let mut w = world();
    let master = w.master().expect("a master").id;
    assert!(w.terminate(std::slice::from_ref(&master)).is_err());
    assert_eq!(fired(&w), [5]);

    let mut w = world();
    let names = workers(&w);
    let (a, b) = (names[0].clone(), names[1].clone());
    for n in [&a, &b] {
        w.flap_node(n, Duration::from_secs(600));
    }
    w.advance_to(w.now.plus(Duration::from_secs(10)));
    w.table.record = record(
        1,
        Some(op(
            "d",
            OpKind::ScaleDown {
                node: a.clone(),
                instance_id: Some(a.clone()),
            },
            OpPhase::TerminateIntended,
            w.now,
        )),
    );
    w.terminate(&[a, b]).expect("managed");
    assert_eq!(fired(&w), [10]);
}

#[test]
fn launches_past_the_bound_or_tagged_twice_are_invariant_3_late_joins_7() {
    let mut w = world();
    w.settings.never_join_probability = 1.0;
    let request = crate::ports::LaunchRequest {
        op_id: "op-x".into(),
        client_token: "t1".into(),
        count: 2,
        instance_type: "t3.large".into(),
        subnet: None,
        master_address: "10.0.0.5".into(),
        k3s_version: super::K3S_VERSION.into(),
    };
    w.invariants.op_counts.insert("op-x".into(), 2);
    w.launch(&request).expect("launch");
    w.check_fleet();
    assert!(w.invariants.violations.is_empty());
    w.launch(&crate::ports::LaunchRequest {
        client_token: "t2".into(),
        ..request.clone()
    })
    .expect("launch");
    w.check_fleet();
    assert_eq!(fired(&w), [3], "four instances tagged for a count of two");
    let limit = w.settings.join_timeout + w.settings.tick + Duration::from_secs(2);
    w.advance_to(w.now.plus(limit));
    assert_eq!(fired(&w), [3, 7, 7, 7, 7], "none joined or went away");
    w.launch(&crate::ports::LaunchRequest {
        client_token: "t3".into(),
        count: 4,
        ..request
    })
    .expect("launch");
    assert_eq!(
        fired(&w).last(),
        Some(&3),
        "9 live + 4 is above max_workers 10"
    );
}

#[test]
fn time_lost_to_injected_faults_extends_the_join_deadline_once() {
    let mut inv = Invariants::default();
    let t = |s: i64| SIM_EPOCH.plus(Duration::from_secs(s as u64));
    inv.note_lost(t(100), t(175));
    // A second engine's outage overlapping the first counts once.
    inv.note_lost(t(150), t(200));
    inv.note_lost(t(400), t(415));
    inv.note_lost(t(500), t(500));
    assert_eq!(inv.lost_between(t(0), t(1000)), Duration::from_secs(115));
    assert_eq!(inv.lost_between(t(160), t(410)), Duration::from_secs(50));
    assert_eq!(inv.lost_between(t(200), t(400)), Duration::ZERO);

    let mut w = world();
    w.settings.never_join_probability = 1.0;
    w.invariants.op_counts.insert("op-x".into(), 1);
    w.launch(&crate::ports::LaunchRequest {
        op_id: "op-x".into(),
        client_token: "t1".into(),
        count: 1,
        instance_type: "t3.large".into(),
        subnet: None,
        master_address: "10.0.0.5".into(),
        k3s_version: super::K3S_VERSION.into(),
    })
    .expect("launch");
    let launched = w.now;
    let limit = w.settings.join_timeout + w.settings.tick + Duration::from_secs(1);
    let suspended = Duration::from_secs(75);
    w.invariants.note_lost(
        launched.plus(Duration::from_secs(30)),
        launched.plus(Duration::from_secs(30) + suspended),
    );
    w.advance_to(launched.plus(limit + suspended));
    assert!(
        fired(&w).is_empty(),
        "the suspension is not the engine's time"
    );
    w.advance_to(launched.plus(limit + suspended + Duration::from_secs(1)));
    assert_eq!(
        fired(&w),
        [7],
        "past the deadline with the outage added back"
    );
}
