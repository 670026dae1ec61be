//! Every transition of the two operation state machines (docs/architecture.md §3).

use super::*;
use crate::engine::testkit::*;
use crate::ports::{InstanceState, PodPhase};
use std::time::Duration;

mod expiry;

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
    // Still listed right after the removal answered OK (a lagging list):
    // not sent again this tick.
    w.tried.insert(untaint_key("i-a"));
    assert!(matches!(
        next(&s, &verifying, &w.view(), 1, at(100)),
        Next::Wait(why) if why.contains("already sent")
    ));
    w.tried.clear();
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

/// The blast-radius cases: partial joins, strays under other labels, a
/// scale-down resumed after its terminate, the pinned K3s release.
mod blast_radius;
/// Scale-down: cordon, drain through evictions, terminate.
mod scale_down;
