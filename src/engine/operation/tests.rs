//! Every transition of the two operation state machines (DESIGN §3).

use super::*;
use crate::engine::testkit::*;
use crate::ports::{InstanceState, PodPhase};

fn settings() -> Settings {
    Settings::default()
}

struct World {
    nodes: Vec<Node>,
    instances: Vec<Instance>,
    pods: Vec<Pod>,
    pdbs: Vec<Pdb>,
    tried: BTreeSet<String>,
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
        }
    }

    fn view(&self) -> OpView<'_> {
        OpView {
            nodes: &self.nodes,
            op_instances: &self.instances,
            node_pods: &self.pods,
            pdbs: &self.pdbs,
            tried: &self.tried,
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
    let effect = acted(next(&settings(), &start, &World::new().view(), 1, at(0)));
    written(after(
        &settings(),
        &start,
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

    let effect = acted(next(&s, &rec, &w.view(), 7, at(1)));
    assert_eq!(
        effect,
        Effect::Launch(LaunchRequest {
            op_id: "op-1".into(),
            client_token: "k3sa-op-1".into(),
            count: 2
        })
    );
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
fn launch_errors_retry_or_fail() {
    let s = settings();
    let rec = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 1 },
        "op-1",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    let effect = acted(next(&s, &rec, &World::new().view(), 1, at(0)));
    let throttled = EffectResult::Err(PortError::Throttled("RequestLimitExceeded".into()));
    assert!(matches!(
        after(&s, &rec, &effect, throttled, 1, at(0)),
        Next::Wait(_)
    ));
    let unknown = EffectResult::Err(PortError::OutcomeUnknown("timeout".into()));
    assert!(matches!(
        after(&s, &rec, &effect, unknown, 1, at(0)),
        Next::Wait(_)
    ));
    let capacity = EffectResult::Err(PortError::InsufficientCapacity("all types".into()));
    let failed = written(after(&s, &rec, &effect, capacity, 1, at(0)));
    assert_eq!(op(&failed).phase, OpPhase::Failed);
    assert!(
        op(&failed)
            .outcome
            .as_deref()
            .unwrap()
            .contains("insufficient capacity")
    );
    assert_eq!(
        failed.last_scale_up, None,
        "a failed scale-up starts no scale-up cooldown"
    );
    assert_eq!(failed.last_scale_end, Some(at(0)));
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
