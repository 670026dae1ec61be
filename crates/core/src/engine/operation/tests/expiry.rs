//! Intents that go stale before they are acted on (docs/architecture.md §3).

use super::*;
use crate::engine::lock::EFFECT_CALL_CEILING;

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
    // Within the bound less the skew margin (the writer's clock and ours
    // may each be off by it): planned as usual.
    let margin = s.lease.skew_margin.as_secs() as i64;
    assert!(matches!(
        next(&s, &launch, &w.view(), 1, at(90 - margin)),
        Next::Write(_)
    ));
    // Past it, though not yet past the bound by this clock: expired.
    let late = written(next(&s, &launch, &w.view(), 1, at(90 - margin + 1)));
    assert_eq!(op(&late).phase, OpPhase::Aborted);
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
    // …but not a scale-down about to terminate: closed, it would leave its
    // node cordoned for good. It stays for the next holder (which checks
    // again, or uncordons when the intent expires).
    let mut terminating = drain.clone();
    if let Some(o) = terminating.op.as_mut() {
        o.phase = OpPhase::TerminateIntended;
    }
    assert!(abandon(&terminating, "the engine is shutting down", 1, at(5)).is_none());
}

#[test]
fn an_expired_launch_waits_for_describe_before_it_is_closed() {
    let s = settings();
    let w = World::new();
    let intent = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 3 },
        "op-1",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    let planned = written(next(&s, &intent, &w.view(), 1, at(0)));
    assert!(matches!(
        next(&s, &planned, &w.view(), 1, at(0)),
        Next::Act(Effect::Launch(_))
    ));
    // Past the bound, with nothing listed: its launch may have been sent
    // just in time and still be invisible to Describe. Neither launch
    // again nor close it.
    let margin = s.lease.skew_margin.as_secs() as i64;
    let ttl = s.intent_ttl().as_secs() as i64;
    let bound = ttl + (EFFECT_CALL_CEILING + DESCRIBE_LAG).as_secs() as i64 + margin;
    for t in [ttl - margin + 1, ttl + 30, bound - 1] {
        match next(&s, &planned, &w.view(), 1, at(t)) {
            Next::Wait(why) => assert!(why.contains("not launching"), "at {t}: {why}"),
            other => panic!("at {t}: expected a wait, got {other:?}"),
        }
    }
    // Listed meanwhile: adopted, counted, verified like any launch.
    let mut seen = World::new();
    seen.instances = vec![instance("i-a"), instance("i-b"), instance("i-c")];
    let adopted = written(next(&s, &planned, &seen.view(), 1, at(ttl + 30)));
    assert_eq!(op(&adopted).phase, OpPhase::Launched);
    // Still unlisted once a launch sent in time would be listed: closed.
    let closed = written(next(&s, &planned, &w.view(), 1, at(bound)));
    assert_eq!(op(&closed).phase, OpPhase::Aborted);
    assert!(
        op(&closed)
            .outcome
            .as_deref()
            .unwrap()
            .contains("intent expired")
    );
}
