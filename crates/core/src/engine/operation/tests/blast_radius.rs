//! Operation steps when the world is wider than the model: nodes that
//! joined under other labels, partial joins, an effect whose record was
//! lost, the K3s release a launch pins.

use super::scale_down::draining;
use super::*;

#[test]
fn each_joined_node_is_untainted_when_ready_and_before_a_partial_scale_up_fails() {
    let s = settings();
    let launched = scale_up_launched(&["i-a", "i-b"]);
    let mut w = World::new();
    w.instances = vec![instance("i-a"), instance("i-b")];
    let mut joined = node("i-a", 60);
    joined.startup_taint = true;
    w.nodes.push(joined);
    let verifying = written(next(&s, &launched, &w.view(), 1, at(1)));
    // A Ready node is released at once, while the other still boots: it
    // is capacity the pending pods wait for.
    assert_eq!(
        acted(next(&s, &verifying, &w.view(), 1, at(300))),
        Effect::Untaint {
            nodes: vec!["i-a".into()]
        }
    );
    // Released, it leaves the operation verifying the other.
    w.nodes.last_mut().unwrap().startup_taint = false;
    assert!(matches!(
        next(&s, &verifying, &w.view(), 1, at(300)),
        Next::Wait(why) if why.contains("1 of 2")
    ));
    // Past the deadline a joined node still tainted (its removal lost) is
    // released first…
    w.nodes.last_mut().unwrap().startup_taint = true;
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
fn a_node_released_early_that_turns_not_ready_is_never_terminated_as_never_joined() {
    // Found by the chaos harness (seed 83, 600 seeds): released as soon as
    // it was Ready, the node took pods, flapped NotReady, and the deadline
    // terminated it with six pods on it as "never joined".
    let s = settings();
    let launched = scale_up_launched(&["i-a", "i-b"]);
    let mut w = World::new();
    w.instances = vec![instance("i-a"), instance("i-b")];
    let mut released = node("i-a", 60);
    released.ready = false;
    w.nodes.push(released);
    let verifying = written(next(&s, &launched, &w.view(), 1, at(1)));
    assert!(matches!(
        next(&s, &verifying, &w.view(), 1, at(300)),
        Next::Wait(why) if why.contains("0 of 2")
    ));
    // Past the deadline only the one that never joined is terminated…
    let effect = acted(next(&s, &verifying, &w.view(), 1, at(601)));
    assert!(
        matches!(&effect, Effect::Terminate { ids, .. } if ids == &["i-b"]),
        "{effect:?}"
    );
    // …and with that one Ready, the op fails and keeps the other.
    w.nodes.push(node("i-b", 60));
    let ended = written(next(&s, &verifying, &w.view(), 1, at(602)));
    let op = op(&ended);
    let outcome = op.outcome.as_deref().unwrap_or_default();
    assert_eq!(op.phase, OpPhase::Failed);
    assert!(
        outcome.contains("i-a turned NotReady") && outcome.contains("not terminated"),
        "{outcome}"
    );
    // Still tainted, a NotReady node never took a pod: the deadline
    // terminates it as before.
    w.nodes.pop();
    w.nodes.last_mut().unwrap().startup_taint = true;
    let effect = acted(next(&s, &verifying, &w.view(), 1, at(601)));
    assert!(
        matches!(&effect, Effect::Terminate { ids, .. } if ids == &["i-a", "i-b"]),
        "{effect:?}"
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

#[test]
fn a_ghost_is_deleted_only_after_five_minutes_notready_and_never_after_a_flap() {
    let s = settings();
    let now = at(10_000);
    let rec = start(
        &OpRecord::default(),
        &Intent::DeleteGhost { node: "w2".into() },
        "op-g",
        Origin::Engine,
        vec![],
        1,
        now,
    );
    let mut w = World::new();
    let outcome = |next: Next| op(&written(next)).outcome.clone().unwrap_or_default();
    // NotReady for five minutes, no instance behind it: deleted.
    w.nodes[1].ready = false;
    w.nodes[1].ready_since = at(10_000 - 300);
    assert_eq!(
        acted(next(&s, &rec, &w.view(), 1, now)),
        Effect::DeleteNode { node: "w2".into() }
    );
    // Ready again for a moment since it was found (a flap): kept.
    w.nodes[1].ready_since = at(10_000 - 30);
    let kept = outcome(next(&s, &rec, &w.view(), 1, now));
    assert!(
        kept.contains("Ready condition changed since it was found"),
        "{kept}"
    );
    // Ready now: kept.
    w.nodes[1].ready = true;
    let kept = outcome(next(&s, &rec, &w.view(), 1, now));
    assert!(kept.contains("is Ready again"), "{kept}");
    // Its instance listed again (an unfiltered look-up found it): kept.
    w.nodes[1].ready = false;
    w.nodes[1].ready_since = at(0);
    w.instances = vec![instance("w2")];
    let kept = outcome(next(&s, &rec, &w.view(), 1, now));
    assert!(kept.contains("live instance again"), "{kept}");
}

/// A step that rests on the node list, on a view the sanity stop finds
/// implausible: a scale-up's terminate of its never-joined instances waits
/// for `intent_ttl` past the join deadline and is then given up (the
/// operation ends Failed with the instances left for the clean-up, so it
/// does not hold every later operation); a node deletion is never held;
/// an uncordon's 404 is a refusal that says the node may be left cordoned.
#[test]
fn a_step_held_by_the_sanity_stop_ends_instead_of_wedging() {
    let s = settings();
    let launched = scale_up_launched(&["i-a", "i-b"]);
    let mut w = World::new();
    w.instances = vec![instance("i-a"), instance("i-b")];
    let verifying = written(next(&s, &launched, &w.view(), 1, at(1)));
    let effect = acted(next(&s, &verifying, &w.view(), 1, at(601)));
    assert!(matches!(effect, Effect::Terminate { .. }), "{effect:?}");
    let why = "another fleet's nodes";
    assert!(matches!(
        on_implausible_view(&s, &verifying, &effect, why, None, at(601)),
        Some(SanityHold::Wait(text)) if text.contains("another fleet's nodes")
    ));
    let late = at(600 + s.intent_ttl().as_secs() as i64 + 1);
    // Due long ago but held for the first time (other faults used the
    // time up): one wrong read does not give it up.
    assert!(matches!(
        on_implausible_view(&s, &verifying, &effect, why, None, late),
        Some(SanityHold::Wait(_))
    ));
    let Some(SanityHold::Refuse(e)) =
        on_implausible_view(&s, &verifying, &effect, why, Some(at(600)), late)
    else {
        panic!("held past intent_ttl, the terminate is given up");
    };
    let failed = written(after(
        &s,
        &verifying,
        &effect,
        EffectResult::Err(e),
        1,
        late,
    ));
    assert_eq!(op(&failed).phase, OpPhase::Failed);
    let outcome = op(&failed).outcome.clone().unwrap_or_default();
    assert!(outcome.contains("not terminated: sanity stop"), "{outcome}");

    let delete = Effect::DeleteNode { node: "i-a".into() };
    assert!(matches!(
        on_implausible_view(&s, &verifying, &delete, why, None, at(601)),
        Some(SanityHold::Refuse(_))
    ));

    let drain = draining(&World::new());
    let uncordon = Effect::Uncordon {
        node: "w4".into(),
        abort: Some("drain timed out".into()),
    };
    let Some(SanityHold::Refuse(e)) =
        on_implausible_view(&s, &drain, &uncordon, why, None, at(700))
    else {
        panic!("an uncordon's 404 is a refusal on an implausible view");
    };
    let aborted = written(after(
        &s,
        &drain,
        &uncordon,
        EffectResult::Err(e),
        1,
        at(700),
    ));
    assert_eq!(op(&aborted).phase, OpPhase::Aborted);
    let outcome = op(&aborted).outcome.clone().unwrap_or_default();
    assert!(outcome.contains("left cordoned"), "{outcome}");
}
