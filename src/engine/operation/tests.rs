//! Every transition of the two operation state machines (DESIGN §3).

use super::*;
use crate::engine::testkit::*;
use crate::ports::{InstanceState, PodPhase};
use std::time::Duration;

fn settings() -> Settings {
    Settings::default()
}

struct World {
    nodes: Vec<Node>,
    instances: Vec<Instance>,
    pods: Vec<Pod>,
    pdbs: Vec<Pdb>,
    tried: BTreeSet<String>,
    master: Option<Instance>,
    fleet: Vec<Instance>,
    joined_anywhere: Vec<String>,
    instance_gone: Option<bool>,
}

fn master() -> Instance {
    let mut m = instance("i-master");
    m.managed = false;
    m.private_ip = Some("10.0.0.5".into());
    m
}

impl World {
    fn new() -> Self {
        World {
            // w4 is the node the scale-down tests drain: cordoned by then.
            nodes: (1..=4)
                .map(|i| {
                    let mut n = node(&format!("w{i}"), 0);
                    n.cordoned = i == 4;
                    n
                })
                .collect(),
            instances: vec![],
            pods: vec![],
            pdbs: vec![web_pdb(1)],
            tried: BTreeSet::new(),
            master: Some(master()),
            fleet: vec![],
            joined_anywhere: vec![],
            instance_gone: None,
        }
    }

    fn view(&self) -> OpView<'_> {
        OpView {
            nodes: &self.nodes,
            op_instances: &self.instances,
            node_pods: &self.pods,
            pdbs: &self.pdbs,
            tried: &self.tried,
            master: self.master.as_ref(),
            fleet: &self.fleet,
            joined_anywhere: &self.joined_anywhere,
            instance_gone: self.instance_gone,
            server_version: Some("v1.33.1+k3s1"),
        }
    }
}

fn written(next: Next) -> OpRecord {
    match next {
        Next::Write(record) => *record,
        other => panic!("expected a write, got {other:?}"),
    }
}

fn acted(next: Next) -> Effect {
    match next {
        Next::Act(effect) => effect,
        other => panic!("expected an effect, got {other:?}"),
    }
}

fn op(record: &OpRecord) -> &Operation {
    record.op.as_ref().expect("record has an operation")
}

fn scale_up_launched(ids: &[&str]) -> OpRecord {
    let start = start(
        &OpRecord::default(),
        &Intent::ScaleUp {
            count: ids.len() as u32,
        },
        "op-1",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    let instances: Vec<Instance> = ids.iter().map(|id| instance(id)).collect();
    let planned = written(next(&settings(), &start, &World::new().view(), 1, at(0)));
    let effect = acted(next(&settings(), &planned, &World::new().view(), 1, at(0)));
    written(after(
        &settings(),
        &planned,
        &effect,
        EffectResult::Launched(instances),
        1,
        at(0),
    ))
}

#[test]
fn scale_up_intent_launch_launched_verifying_done() {
    let s = settings();
    let w = World::new();
    let rec = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 2 },
        "op-1",
        Origin::Engine,
        vec!["CPU 80% > 70%".into()],
        7,
        at(0),
    );
    assert_eq!(rec.rev, 1);
    assert_eq!(op(&rec).phase, OpPhase::LaunchIntended);
    assert_eq!(op(&rec).fence, 7);

    // The plan is recorded before anything is sent.
    let planned = written(next(&s, &rec, &w.view(), 7, at(1)));
    assert_eq!(op(&planned).phase, OpPhase::LaunchIntended);
    assert_eq!(planned.rev, 2);
    let rec = planned;
    let effect = acted(next(&s, &rec, &w.view(), 7, at(1)));
    assert_eq!(
        effect,
        Effect::Launch(LaunchRequest {
            op_id: "op-1".into(),
            client_token: "k3sa-op-1-0".into(),
            count: 2,
            instance_type: "t3.large".into(),
            subnet: None,
            master_address: "10.0.0.5".into(),
            k3s_version: "v1.33.1+k3s1".into(),
        })
    );
    // Asked again (a retry after a lost answer): exactly the same request.
    assert_eq!(acted(next(&s, &rec, &w.view(), 7, at(5))), effect);
    let launched = written(after(
        &s,
        &rec,
        &effect,
        EffectResult::Launched(vec![instance("i-a"), instance("i-b")]),
        7,
        at(2),
    ));
    assert_eq!(op(&launched).phase, OpPhase::Launched);
    // The join deadline counts from the instances' launch (at 0), not from
    // when the launch was recorded (at 2).
    assert_eq!(op(&launched).deadline, Some(at(600)));
    assert!(
        matches!(&op(&launched).kind, OpKind::ScaleUp { instance_ids, .. } if instance_ids == &["i-a", "i-b"])
    );

    let verifying = written(next(&s, &launched, &w.view(), 7, at(3)));
    assert_eq!(op(&verifying).phase, OpPhase::Verifying);

    let mut w = World::new();
    w.instances = vec![instance("i-a"), instance("i-b")];
    w.nodes.push(node("i-a", 60));
    match next(&s, &verifying, &w.view(), 7, at(100)) {
        Next::Wait(why) => assert!(why.contains("1 of 2 node(s) Ready"), "{why}"),
        other => panic!("expected to wait, got {other:?}"),
    }
    let mut not_ready = node("i-b", 90);
    not_ready.ready = false;
    w.nodes.push(not_ready.clone());
    assert!(matches!(
        next(&s, &verifying, &w.view(), 7, at(100)),
        Next::Wait(_)
    ));
    w.nodes.pop();
    w.nodes.push(node("i-b", 90));
    let done = written(next(&s, &verifying, &w.view(), 7, at(120)));
    assert_eq!(op(&done).phase, OpPhase::Done);
    assert_eq!(done.last_scale_up, Some(at(120)));
    assert_eq!(done.last_scale_end, Some(at(120)));
    assert_eq!(done.rev, verifying.rev + 1);
    assert_eq!(next(&s, &done, &w.view(), 7, at(121)), Next::Idle);
}

#[test]
fn launch_errors_retry_the_same_attempt_or_move_along_the_plan() {
    let mut s = settings();
    s.launch.subnets = vec!["subnet-a".into(), "subnet-b".into()];
    s.launch.instance_types = vec!["t3.large".into(), "m5.large".into()];
    let rec = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 1 },
        "op-1",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    let mut w = World::new();
    // subnet-a already runs two workers: the plan starts in subnet-b.
    w.fleet = vec![instance("x1"), instance("x2"), instance("x3")];
    w.fleet[0].subnet = Some("subnet-a".into());
    w.fleet[1].subnet = Some("subnet-a".into());
    w.fleet[2].subnet = Some("subnet-b".into());
    let mut rec = written(next(&s, &rec, &w.view(), 1, at(0)));
    let OpKind::ScaleUp {
        plan: Some(plan), ..
    } = &op(&rec).kind
    else {
        panic!("no plan recorded")
    };
    let order: Vec<String> = plan.targets.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        order,
        [
            "t3.large in subnet-b",
            "t3.large in subnet-a",
            "m5.large in subnet-b",
            "m5.large in subnet-a"
        ]
    );
    let effect = acted(next(&s, &rec, &w.view(), 1, at(0)));
    // Transient: the same attempt, next tick.
    for transient in [
        PortError::Throttled("RequestLimitExceeded".into()),
        PortError::OutcomeUnknown("timeout".into()),
    ] {
        assert!(matches!(
            after(&s, &rec, &effect, EffectResult::Err(transient), 1, at(0)),
            Next::Wait(_)
        ));
    }
    // No capacity: the other subnet first, then the next type, each with
    // its own token, each recorded before it is sent.
    let mut tokens = vec![];
    for expected in [
        "t3.large in subnet-a",
        "m5.large in subnet-b",
        "m5.large in subnet-a",
    ] {
        let Next::Act(Effect::Launch(sent)) = next(&s, &rec, &w.view(), 1, at(1)) else {
            panic!("expected a launch")
        };
        tokens.push(sent.client_token.clone());
        let refused = EffectResult::Err(PortError::InsufficientCapacity(
            "InsufficientInstanceCapacity".into(),
        ));
        rec = written(after(&s, &rec, &Effect::Launch(sent), refused, 1, at(1)));
        assert_eq!(op(&rec).phase, OpPhase::LaunchIntended);
        assert!(
            op(&rec)
                .steps
                .last()
                .unwrap()
                .text
                .ends_with(&format!("next: {expected}")),
            "{:?}",
            op(&rec).steps
        );
    }
    assert_eq!(tokens, ["k3sa-op-1-0", "k3sa-op-1-1", "k3sa-op-1-2"]);
    let Next::Act(last) = next(&s, &rec, &w.view(), 1, at(2)) else {
        panic!("expected the last attempt")
    };
    let capacity = EffectResult::Err(PortError::InsufficientCapacity("VcpuLimitExceeded".into()));
    let failed = written(after(&s, &rec, &last, capacity, 1, at(2)));
    assert_eq!(op(&failed).phase, OpPhase::Failed);
    let outcome = op(&failed).outcome.clone().unwrap();
    assert!(
        outcome.contains("no capacity for any instance type and subnet"),
        "{outcome}"
    );
    assert!(
        outcome.contains("m5.large in subnet-a: VcpuLimitExceeded"),
        "{outcome}"
    );
    assert_eq!(
        failed.last_scale_up, None,
        "a failed scale-up starts no scale-up cooldown"
    );
    assert_eq!(failed.last_scale_end, Some(at(2)));
    // A token EC2 has seen with other parameters: wait, adopt by tag.
    let reused = EffectResult::Err(PortError::TokenReused("IdempotentParameterMismatch".into()));
    match after(&s, &rec, &last, reused, 1, at(2)) {
        Next::Wait(why) => assert!(why.contains("adopting the instances tagged op-1"), "{why}"),
        other => panic!("expected to wait, got {other:?}"),
    }
    // No server to join: failed before anything is sent.
    let fresh = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 1 },
        "op-2",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    w.master = None;
    let failed = written(next(&s, &fresh, &w.view(), 1, at(0)));
    assert_eq!(op(&failed).phase, OpPhase::Failed);
}

#[test]
fn intents_expire_instead_of_running_hours_later() {
    let s = settings();
    let ttl = s.intent_ttl();
    assert_eq!(ttl, Duration::from_secs(90));
    let w = World::new();
    let launch = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 1 },
        "op-1",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    // Within the bound: planned as usual.
    assert!(matches!(
        next(&s, &launch, &w.view(), 1, at(90)),
        Next::Write(_)
    ));
    let aborted = written(next(&s, &launch, &w.view(), 1, at(3 * 3600)));
    assert_eq!(op(&aborted).phase, OpPhase::Aborted);
    assert!(
        op(&aborted)
            .outcome
            .as_deref()
            .unwrap()
            .contains("intent expired")
    );
    // …unless EC2 lists what it launched: then it is adopted.
    let mut seen = World::new();
    seen.instances = vec![instance("i-a")];
    let adopted = written(next(&s, &launch, &seen.view(), 1, at(3 * 3600)));
    assert_eq!(op(&adopted).phase, OpPhase::Launched);
    // A scale-down's cordon intent: uncordoned (it may have gone out), then Aborted.
    let drain = start(
        &OpRecord::default(),
        &Intent::ScaleDown {
            node: "w4".into(),
            instance_id: "w4".into(),
        },
        "op-2",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    match acted(next(&s, &drain, &w.view(), 1, at(600))) {
        Effect::Uncordon {
            node,
            abort: Some(why),
        } => {
            assert_eq!(node, "w4");
            assert!(why.contains("intent expired"), "{why}");
        }
        other => panic!("expected an uncordon, got {other:?}"),
    }
    // The process stops between intent and effect: the intent is closed.
    let closed = written(abandon(&launch, "the engine is shutting down", 1, at(5)).unwrap());
    assert_eq!(op(&closed).phase, OpPhase::Aborted);
    assert!(
        op(&closed)
            .outcome
            .as_deref()
            .unwrap()
            .contains("stopped before acting")
    );
}

#[test]
fn a_refusal_that_retrying_cannot_change_ends_the_step() {
    let s = settings();
    let w = World::new();
    let drain = start(
        &OpRecord::default(),
        &Intent::ScaleDown {
            node: "w4".into(),
            instance_id: "w4".into(),
        },
        "op-2",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    let cordon = acted(next(&s, &drain, &w.view(), 1, at(1)));
    let forbidden = || EffectResult::Err(PortError::Invalid("cordon: 403 forbidden".into()));
    let uncordon = acted(after(&s, &drain, &cordon, forbidden(), 1, at(1)));
    assert!(matches!(&uncordon, Effect::Uncordon { abort: Some(why), .. } if why.contains("403")));
    let aborted = written(after(&s, &drain, &uncordon, forbidden(), 1, at(1)));
    assert_eq!(op(&aborted).phase, OpPhase::Aborted);
    assert!(
        op(&aborted)
            .outcome
            .as_deref()
            .unwrap()
            .contains("left cordoned")
    );
    // 409 and 429 are not permanent: retried.
    let conflict = EffectResult::Err(PortError::PreconditionFailed("409".into()));
    assert!(matches!(
        after(&s, &drain, &cordon, conflict, 1, at(1)),
        Next::Wait(_)
    ));
}

#[test]
fn join_timeout_terminates_the_never_joined_instances_then_fails() {
    let s = settings();
    let launched = scale_up_launched(&["i-a", "i-b"]);
    let mut w = World::new();
    w.instances = vec![instance("i-a"), instance("i-b")];
    w.nodes.push(node("i-a", 60));
    let verifying = written(next(&s, &launched, &w.view(), 1, at(1)));
    // At the deadline exactly: still waiting.
    assert!(matches!(
        next(&s, &verifying, &w.view(), 1, at(600)),
        Next::Wait(_)
    ));
    let effect = acted(next(&s, &verifying, &w.view(), 1, at(601)));
    let Effect::Terminate {
        ids,
        then: AfterTerminate::Fail(why),
    } = &effect
    else {
        panic!("expected a terminate, got {effect:?}");
    };
    assert_eq!(ids, &["i-b"], "only the never-joined instance");
    assert!(
        why.contains("1 of 2 instance(s) never joined within 10m: i-b"),
        "{why}"
    );
    let failed = written(after(&s, &verifying, &effect, EffectResult::Ok, 1, at(602)));
    assert_eq!(op(&failed).phase, OpPhase::Failed);
    // A failed terminate is retried, never recorded as done.
    let err = EffectResult::Err(PortError::Unavailable("5xx".into()));
    assert!(matches!(
        after(&s, &verifying, &effect, err, 1, at(602)),
        Next::Wait(_)
    ));
}

#[test]
fn instance_lost_before_joining_fails_the_scale_up() {
    let s = settings();
    let launched = scale_up_launched(&["i-a"]);
    // Not listed (EC2's Describe lags its writes): still waiting, not lost.
    let w = World::new();
    let verifying = written(next(&s, &launched, &w.view(), 1, at(1)));
    assert!(matches!(
        next(&s, &verifying, &w.view(), 1, at(30)),
        Next::Wait(_)
    ));
    // Terminated from outside: lost, and the scale-up fails.
    let mut w = World::new();
    let mut stopping = instance("i-a");
    stopping.state = InstanceState::ShuttingDown;
    w.instances = vec![stopping];
    let failed = written(next(&s, &verifying, &w.view(), 1, at(30)));
    assert_eq!(op(&failed).phase, OpPhase::Failed);
    assert!(
        op(&failed)
            .outcome
            .as_deref()
            .unwrap()
            .contains("i-a disappeared")
    );
}

fn draining(w: &World) -> OpRecord {
    let s = settings();
    let rec = start(
        &OpRecord::default(),
        &Intent::ScaleDown {
            node: "w4".into(),
            instance_id: "w4".into(),
        },
        "op-2",
        Origin::Engine,
        vec![],
        3,
        at(0),
    );
    assert_eq!(op(&rec).phase, OpPhase::CordonIntended);
    let effect = acted(next(&s, &rec, &w.view(), 3, at(0)));
    assert_eq!(effect, Effect::Cordon { node: "w4".into() });
    let rec = written(after(&s, &rec, &effect, EffectResult::Ok, 3, at(1)));
    assert_eq!(op(&rec).phase, OpPhase::Draining);
    assert_eq!(op(&rec).deadline, Some(at(301)));
    rec
}

#[test]
fn scale_down_cordon_drain_terminate_delete_done() {
    let s = settings();
    let mut w = World::new();
    w.pods = vec![
        pod("ds", Some("w4"), 100, Some("DaemonSet")),
        pod("web-a", Some("w4"), 300, Some("ReplicaSet")),
        pod("web-b", Some("w4"), 300, Some("ReplicaSet")),
    ];
    let rec = draining(&w);
    let effect = acted(next(&s, &rec, &w.view(), 3, at(2)));
    assert_eq!(effect, Effect::Evict(w.pods[1].reference()));
    assert_eq!(
        after(
            &s,
            &rec,
            &effect,
            EffectResult::Evicted(EvictionOutcome::Evicted),
            3,
            at(2)
        ),
        Next::Continue
    );
    w.pods[1].terminating = true;
    // The evicted pod is waited for, the next one evicted.
    assert_eq!(
        acted(next(&s, &rec, &w.view(), 3, at(2))),
        Effect::Evict(w.pods[2].reference())
    );
    w.pods[2].terminating = true;
    match next(&s, &rec, &w.view(), 3, at(3)) {
        Next::Wait(why) => assert!(why.contains("2 pod(s) terminating"), "{why}"),
        other => panic!("expected to wait for terminating pods, got {other:?}"),
    }
    w.pods.truncate(1); // only the DaemonSet pod is left
    let rec = written(next(&s, &rec, &w.view(), 3, at(20)));
    assert_eq!(op(&rec).phase, OpPhase::TerminateIntended);
    let effect = acted(next(&s, &rec, &w.view(), 3, at(21)));
    assert_eq!(
        effect,
        Effect::Terminate {
            ids: vec!["w4".into()],
            then: AfterTerminate::DeleteNode("w4".into())
        }
    );
    let delete = acted(after(&s, &rec, &effect, EffectResult::Ok, 3, at(21)));
    assert_eq!(delete, Effect::DeleteNode { node: "w4".into() });
    let done = written(after(&s, &rec, &delete, EffectResult::Ok, 3, at(22)));
    assert_eq!(op(&done).phase, OpPhase::Done);
    assert_eq!(done.last_scale_end, Some(at(22)));
    assert_eq!(done.last_scale_up, None);
}

#[test]
fn pdb_blocked_drain_retries_then_times_out_uncordons_and_aborts() {
    let s = settings();
    let mut w = World::new();
    w.pods = vec![pod("web-a", Some("w4"), 300, Some("ReplicaSet"))];
    let rec = draining(&w);
    let effect = acted(next(&s, &rec, &w.view(), 3, at(10)));
    let blocked = EffectResult::Evicted(EvictionOutcome::Blocked(
        "would violate PDB default/web".into(),
    ));
    assert_eq!(after(&s, &rec, &effect, blocked, 3, at(10)), Next::Continue);
    w.tried.insert(w.pods[0].uid.clone());
    match next(&s, &rec, &w.view(), 3, at(10)) {
        Next::Wait(why) => assert!(why.contains("1 refused (retry next tick)"), "{why}"),
        other => panic!("expected to wait, got {other:?}"),
    }
    // Next tick: tried again.
    w.tried.clear();
    assert!(matches!(
        next(&s, &rec, &w.view(), 3, at(25)),
        Next::Act(Effect::Evict(_))
    ));
    // Past drain.timeout: uncordon, then Aborted with the reason.
    let effect = acted(next(&s, &rec, &w.view(), 3, at(302)));
    let Effect::Uncordon {
        node,
        abort: Some(why),
    } = &effect
    else {
        panic!("expected uncordon with abort, got {effect:?}");
    };
    assert_eq!(node, "w4");
    assert!(
        why.contains("drain timed out after 5m with 1 pod(s) left (default/web-a)"),
        "{why}"
    );
    let aborted = written(after(&s, &rec, &effect, EffectResult::Ok, 3, at(303)));
    assert_eq!(op(&aborted).phase, OpPhase::Aborted);
    assert!(
        op(&aborted)
            .outcome
            .as_deref()
            .unwrap()
            .ends_with("w4 uncordoned")
    );
    assert_eq!(aborted.last_scale_end, Some(at(303)));
}

#[test]
fn eviction_error_aborts_at_once() {
    let s = settings();
    let mut w = World::new();
    w.pods = vec![pod("web-a", Some("w4"), 300, Some("ReplicaSet"))];
    let rec = draining(&w);
    let effect = acted(next(&s, &rec, &w.view(), 3, at(10)));
    let rejected = EffectResult::Evicted(EvictionOutcome::Rejected(
        "500 Internal Server Error".into(),
    ));
    let uncordon = acted(after(&s, &rec, &effect, rejected, 3, at(10)));
    assert!(matches!(&uncordon, Effect::Uncordon { abort: Some(why), .. } if why.contains("500")));
}

#[test]
fn drain_rechecks_min_workers_before_terminating() {
    let s = settings();
    let mut w = World::new();
    w.nodes.truncate(2); // w1, w2 only... plus the draining node
    let mut w4 = node("w4", 0);
    w4.cordoned = true;
    w.nodes.push(w4);
    w.nodes[1].ready = false; // one other node went NotReady meanwhile
    let rec = draining(&w);
    let effect = acted(next(&s, &rec, &w.view(), 3, at(30)));
    assert!(
        matches!(&effect, Effect::Uncordon { abort: Some(why), .. } if why.contains("below min_workers (2)")),
        "{effect:?}"
    );
}

#[test]
fn a_blocking_pod_found_during_the_drain_aborts_it() {
    let s = settings();
    let mut w = World::new();
    w.pods = vec![pod("bare", Some("w4"), 100, None)];
    let rec = draining(&w);
    let effect = acted(next(&s, &rec, &w.view(), 3, at(10)));
    assert!(
        matches!(&effect, Effect::Uncordon { abort: Some(why), .. } if why.contains("no controller owner"))
    );
}

#[test]
fn finished_and_mirror_pods_do_not_hold_up_a_drain() {
    let s = settings();
    let mut w = World::new();
    let mut done = pod("job-1", Some("w4"), 100, Some("Job"));
    done.phase = PodPhase::Succeeded;
    let mut mirror = pod("static", Some("w4"), 100, Some("Node"));
    mirror
        .annotations
        .insert("kubernetes.io/config.mirror".into(), "x".into());
    w.pods = vec![done, mirror];
    let rec = draining(&w);
    assert_eq!(
        op(&written(next(&s, &rec, &w.view(), 3, at(10)))).phase,
        OpPhase::TerminateIntended
    );
}

#[test]
fn operator_cordon_and_uncordon_are_fenced_operations() {
    let s = settings();
    let w = World::new();
    for cordon in [true, false] {
        let rec = start(
            &OpRecord::default(),
            &Intent::Cordon {
                node: "w1".into(),
                cordon,
            },
            "op-3",
            Origin::Operator,
            vec![],
            2,
            at(0),
        );
        let effect = acted(next(&s, &rec, &w.view(), 2, at(0)));
        let expected = if cordon {
            Effect::Cordon { node: "w1".into() }
        } else {
            Effect::Uncordon {
                node: "w1".into(),
                abort: None,
            }
        };
        assert_eq!(effect, expected);
        let done = written(after(&s, &rec, &effect, EffectResult::Ok, 2, at(1)));
        assert_eq!(op(&done).phase, OpPhase::Done);
        assert_eq!(done.last_scale_end, None, "cordon is not a scale operation");
        let gone = EffectResult::Err(PortError::NotFound("node w1".into()));
        assert_eq!(
            op(&written(after(&s, &rec, &effect, gone, 2, at(1)))).phase,
            OpPhase::Failed
        );
    }
}

#[test]
fn writes_carry_the_writers_fence_and_a_step_log() {
    let s = settings();
    let launched = scale_up_launched(&["i-a"]);
    let verifying = written(next(&s, &launched, &World::new().view(), 9, at(5)));
    assert_eq!(op(&verifying).fence, 9);
    let texts: Vec<&str> = op(&verifying)
        .steps
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "intent: launch 1 worker(s)",
            "plan: 1 × t3.large, 2 fallback target(s); server 10.0.0.5, K3s v1.33.1+k3s1",
            "launched i-a",
            "verifying: waiting for nodes to be Ready"
        ]
    );
}

#[test]
fn verified_nodes_lose_the_startup_taint_before_done() {
    let s = settings();
    let launched = scale_up_launched(&["i-a"]);
    let mut w = World::new();
    w.instances = vec![instance("i-a")];
    let mut joined = node("i-a", 60);
    joined.startup_taint = true;
    w.nodes.push(joined);
    let verifying = written(next(&s, &launched, &w.view(), 1, at(1)));
    let effect = acted(next(&s, &verifying, &w.view(), 1, at(100)));
    assert_eq!(
        effect,
        Effect::Untaint {
            nodes: vec!["i-a".into()]
        }
    );
    assert_eq!(
        after(&s, &verifying, &effect, EffectResult::Ok, 1, at(100)),
        Next::Continue
    );
    w.nodes.last_mut().unwrap().startup_taint = false;
    assert_eq!(
        op(&written(next(&s, &verifying, &w.view(), 1, at(101)))).phase,
        OpPhase::Done
    );
    // A tainted node that is not Ready at the deadline is terminated: it
    // never had a pod.
    let mut w = World::new();
    w.instances = vec![instance("i-a")];
    let mut late = node("i-a", 60);
    late.startup_taint = true;
    late.ready = false;
    w.nodes.push(late);
    assert!(matches!(
        next(&s, &verifying, &w.view(), 1, at(601)),
        Next::Act(Effect::Terminate { .. })
    ));
}

#[test]
fn a_node_uncordoned_mid_drain_ends_the_scale_down() {
    let s = settings();
    let mut w = World::new();
    w.pods = vec![pod("web-a", Some("w4"), 300, Some("ReplicaSet"))];
    let rec = draining(&w);
    w.nodes[3].cordoned = false; // an operator, or an aborted attempt whose record was lost
    let effect = acted(next(&s, &rec, &w.view(), 3, at(10)));
    assert!(
        matches!(&effect, Effect::Uncordon { abort: Some(why), .. } if why.contains("no longer cordoned")),
        "{effect:?}"
    );
    // Nor is an uncordoned node terminated.
    let mut to_terminate = rec.clone();
    if let Some(op) = to_terminate.op.as_mut() {
        op.phase = OpPhase::TerminateIntended;
    }
    assert!(matches!(
        next(&s, &to_terminate, &w.view(), 3, at(11)),
        Next::Act(Effect::Uncordon { abort: Some(_), .. })
    ));
}

#[test]
fn a_partial_scale_up_untaints_the_nodes_that_joined_before_it_fails() {
    let s = settings();
    let launched = scale_up_launched(&["i-a", "i-b"]);
    let mut w = World::new();
    w.instances = vec![instance("i-a"), instance("i-b")];
    let mut joined = node("i-a", 60);
    joined.startup_taint = true;
    w.nodes.push(joined);
    let verifying = written(next(&s, &launched, &w.view(), 1, at(1)));
    // Before the deadline the joined node stays tainted: still verifying.
    assert!(matches!(
        next(&s, &verifying, &w.view(), 1, at(300)),
        Next::Wait(_)
    ));
    // Past it: the joined node is released first…
    assert_eq!(
        acted(next(&s, &verifying, &w.view(), 1, at(601))),
        Effect::Untaint {
            nodes: vec!["i-a".into()]
        }
    );
    // …then the one that never joined is terminated and the op fails.
    w.nodes.last_mut().unwrap().startup_taint = false;
    let effect = acted(next(&s, &verifying, &w.view(), 1, at(602)));
    assert!(
        matches!(&effect, Effect::Terminate { ids, then: AfterTerminate::Fail(_) } if ids == &["i-b"]),
        "{effect:?}"
    );
    // The same when the other instance is lost rather than late.
    w.nodes.last_mut().unwrap().startup_taint = true;
    w.instances[1].state = crate::ports::InstanceState::Terminated;
    assert_eq!(
        acted(next(&s, &verifying, &w.view(), 1, at(100))),
        Effect::Untaint {
            nodes: vec!["i-a".into()]
        }
    );
}

#[test]
fn a_stray_with_a_node_outside_the_selector_is_never_terminated() {
    let s = settings();
    let mut w = World::new();
    let mut a = instance("i-a");
    a.op_id = Some("op-old".into());
    let mut b = instance("i-b");
    b.op_id = Some("op-old".into());
    w.instances = vec![a, b];
    let rec = start(
        &OpRecord::default(),
        &Intent::TerminateStrays {
            instances: vec!["i-a".into(), "i-b".into()],
        },
        "op-2",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    assert_eq!(op(&rec).phase, OpPhase::TerminateIntended);
    // Both look like strays in the selected list: one per operation.
    let effect = acted(next(&s, &rec, &w.view(), 1, at(1)));
    assert!(
        matches!(&effect, Effect::Terminate { ids, .. } if ids.len() == 1),
        "{effect:?}"
    );
    // Both have nodes under other labels: nothing is terminated.
    w.joined_anywhere = vec!["i-a".into(), "i-b".into()];
    let done = written(next(&s, &rec, &w.view(), 1, at(1)));
    assert_eq!(op(&done).phase, OpPhase::Done);
    assert!(
        op(&done)
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("outside the worker selector")),
        "{:?}",
        op(&done).outcome
    );
}

#[test]
fn a_scale_down_whose_terminate_went_out_finishes_instead_of_uncordoning() {
    let s = settings();
    let mut w = World::new();
    let rec = draining(&w);
    // Drained: TerminateIntended recorded; then the engine died right after
    // its terminate call, before recording it.
    w.pods.clear();
    let intended = written(next(&s, &rec, &w.view(), 3, at(10)));
    assert_eq!(op(&intended).phase, OpPhase::TerminateIntended);
    w.instance_gone = Some(true);
    // Long past the intent's bound, and with too few Ready workers left:
    // still the node object is deleted, never the node uncordoned.
    w.nodes.retain(|n| n.name == "w4");
    assert_eq!(
        acted(next(&s, &intended, &w.view(), 3, at(10_000))),
        Effect::DeleteNode { node: "w4".into() }
    );
    // While the instance is live, the expired intent is aborted (uncordon).
    w.instance_gone = Some(false);
    assert!(matches!(
        acted(next(&s, &intended, &w.view(), 3, at(10_000))),
        Effect::Uncordon { abort: Some(_), .. }
    ));
}

#[test]
fn the_k3s_release_is_pinned_in_the_plan() {
    use super::launch::is_k3s_version;
    for good in ["v1.33.1+k3s1", "v1.30.14+k3s12"] {
        assert!(is_k3s_version(good), "{good}");
    }
    for bad in [
        "",
        "1.33.1+k3s1",
        "v1.33.1",
        "v1.33+k3s1",
        "v1.33.1+k3s",
        "v1.33.1+k3s1; reboot",
        "latest",
    ] {
        assert!(!is_k3s_version(bad), "{bad}");
    }
    // The configured release wins over the server's.
    let mut s = settings();
    s.launch.k3s_version = Some("v1.32.5+k3s1".into());
    let rec = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 1 },
        "op-1",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    let w = World::new();
    let planned = written(next(&s, &rec, &w.view(), 1, at(1)));
    let Effect::Launch(request) = acted(next(&s, &planned, &w.view(), 1, at(1))) else {
        panic!("a launch");
    };
    assert_eq!(request.k3s_version, "v1.32.5+k3s1");
    // A server that is not K3s (or reports nothing usable) and no pin: the
    // scale-up fails with the reason, nothing is launched.
    s.launch.k3s_version = None;
    let mut view = w.view();
    view.server_version = Some("v1.33.1-eks-1234");
    let failed = written(next(&s, &rec, &view, 1, at(1)));
    assert_eq!(op(&failed).phase, OpPhase::Failed);
    assert!(
        op(&failed)
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("set ec2.k3s_version")),
        "{:?}",
        op(&failed).outcome
    );
}
