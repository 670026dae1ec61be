//! The circuit breaker's counting, its opening in the write that ends an
//! operation, and what an open circuit still lets the engine do.

use super::super::operation::{Intent, Next, start};
use super::super::policy::{PolicyMemory, Request, decide, validate_request};
use super::super::settings::Settings;
use super::super::testkit::*;
use super::super::{Action, Observation};
use super::*;
use std::time::Duration;

/// A record whose operation `id` (started by `origin`) is in flight, and
/// the write that ends it as `phase` at `ended` (seconds).
fn ending(
    before: &OpRecord,
    id: &str,
    intent: &Intent,
    origin: Origin,
    phase: OpPhase,
    ended: i64,
) -> (OpRecord, Next) {
    let started = start(before, intent, id, origin, vec![], 1, at(ended - 30));
    let mut ended_record = started.clone();
    if let Some(op) = ended_record.op.as_mut() {
        op.phase = phase;
        op.updated = at(ended);
    }
    ended_record.rev += 1;
    (started, Next::Write(Box::new(ended_record)))
}

/// The record after the engine's clean-up of `instance` ended Done at `t`.
fn cleaned(rules: &CircuitRules, before: &OpRecord, instance: &str, t: i64) -> OpRecord {
    cleaned_by(rules, before, instance, Origin::Engine, t)
}

fn cleaned_by(
    rules: &CircuitRules,
    before: &OpRecord,
    instance: &str,
    origin: Origin,
    t: i64,
) -> OpRecord {
    let intent = Intent::TerminateStrays {
        instances: vec![instance.into()],
    };
    let id = format!("op-clean-{instance}");
    let (started, next) = ending(before, &id, &intent, origin, OpPhase::Done, t);
    let terminate = Effect::Terminate {
        ids: vec![instance.into()],
        then: AfterTerminate::Finish("terminated".into()),
    };
    let op = started.op.clone().expect("started");
    let never_joined = never_joined_by(&op, &terminate, true);
    written(settle(rules, &started, next, &never_joined, at(t)))
}

fn failed(rules: &CircuitRules, before: &OpRecord, id: &str, phase: OpPhase, t: i64) -> OpRecord {
    let intent = Intent::ScaleUp { count: 1 };
    let (started, next) = ending(before, id, &intent, Origin::Engine, phase, t);
    written(settle(rules, &started, next, &[], at(t)))
}

fn written(next: Next) -> OpRecord {
    match next {
        Next::Write(record) => *record,
        other => panic!("expected a write, got {other:?}"),
    }
}

#[test]
fn three_launches_that_never_joined_within_the_hour_open_it_in_the_third_clean_ups_write() {
    let rules = CircuitRules::default();
    let one = cleaned(&rules, &OpRecord::default(), "i-1", 600);
    let two = cleaned(&rules, &one, "i-2", 1200);
    assert_eq!(two.pause, None, "two are under the threshold");
    assert_eq!(recent(&rules, &two, at(1200)).len(), 2);
    let three = cleaned(&rules, &two, "i-3", 1800);
    let pause = three.pause.clone().expect("the third opens the circuit");
    assert!(pause.circuit);
    assert_eq!(pause.by, CIRCUIT_BREAKER);
    assert_eq!(pause.until, at(1800).plus(Duration::from_secs(24 * 3600)));
    assert!(
        pause
            .reason
            .contains("3 launched instances never joined within 1h")
            && pause.reason.contains("i-1, i-2, i-3"),
        "{}",
        pause.reason
    );
    let op = three.op.as_ref().expect("the operation");
    assert_eq!(op.phase, OpPhase::Done, "the clean-up itself is unchanged");
    assert!(op.troubles.is_empty(), "a resumed cluster starts afresh");
    assert!(
        op.steps
            .last()
            .is_some_and(|s| s.text.starts_with("circuit breaker opened")),
        "{:?}",
        op.steps
    );
}

#[test]
fn what_left_the_window_operator_choices_and_kept_instances_do_not_count() {
    let rules = CircuitRules::default();
    let one = cleaned(&rules, &OpRecord::default(), "i-1", 0);
    let two = cleaned(&rules, &one, "i-2", 600);
    // An hour and a minute after the first: it no longer counts.
    let three = cleaned(&rules, &two, "i-3", 3660);
    assert_eq!(three.pause, None, "{:?}", three.op);
    assert_eq!(recent(&rules, &three, at(3660)).len(), 2);

    // The operator's terminate of a stray says nothing about launches.
    let by_hand = cleaned_by(&rules, &two, "i-x", Origin::Operator, 900);
    assert_eq!(by_hand.pause, None);
    assert_eq!(recent(&rules, &by_hand, at(900)).len(), 2);

    // A terminate that did not succeed removed nothing.
    let op = by_hand.op.clone().expect("an operation");
    let refused = Effect::Terminate {
        ids: vec!["i-y".into()],
        then: AfterTerminate::Finish("terminated".into()),
    };
    assert!(never_joined_by(&op, &refused, false).is_empty());
}

#[test]
fn a_scale_up_past_its_join_deadline_counts_each_instance_it_terminated() {
    let rules = CircuitRules::default();
    let one = cleaned(&rules, &OpRecord::default(), "i-1", 600);
    let intent = Intent::ScaleUp { count: 2 };
    let (started, next) = ending(
        &one,
        "op-up",
        &intent,
        Origin::Operator,
        OpPhase::Failed,
        1200,
    );
    let terminate = Effect::Terminate {
        ids: vec!["i-2".into(), "i-3".into()],
        then: AfterTerminate::Fail("2 of 2 never joined".into()),
    };
    let op = started.op.clone().expect("started");
    let never_joined = never_joined_by(&op, &terminate, true);
    assert_eq!(never_joined, vec!["i-2".to_string(), "i-3".to_string()]);
    let record = written(settle(&rules, &started, next, &never_joined, at(1200)));
    let pause = record.pause.expect("1 + 2 never joined opens it");
    assert!(pause.reason.contains("i-1, i-2, i-3"), "{}", pause.reason);
}

#[test]
fn five_operations_failed_or_aborted_within_the_hour_open_it() {
    let rules = CircuitRules::default();
    let mut record = OpRecord::default();
    for (n, phase) in [
        OpPhase::Failed,
        OpPhase::Aborted,
        OpPhase::Failed,
        OpPhase::Aborted,
    ]
    .into_iter()
    .enumerate()
    {
        record = failed(
            &rules,
            &record,
            &format!("op-{n}"),
            phase,
            600 * (n as i64 + 1),
        );
        assert_eq!(record.pause, None, "after {}", n + 1);
    }
    // A scale-up that ends Done neither counts nor clears the history.
    let (started, next) = ending(
        &record,
        "op-ok",
        &Intent::ScaleUp { count: 1 },
        Origin::Engine,
        OpPhase::Done,
        3000,
    );
    record = written(settle(&rules, &started, next, &[], at(3000)));
    assert_eq!(recent(&rules, &record, at(3000)).len(), 4);
    let record = failed(&rules, &record, "op-5", OpPhase::Failed, 3300);
    let pause = record.pause.expect("the fifth opens it");
    assert!(
        pause
            .reason
            .contains("5 operations failed or were aborted within 1h"),
        "{}",
        pause.reason
    );
    assert!(pause.reason.contains("and 1 more"), "{}", pause.reason);
}

#[test]
fn disabled_or_already_paused_it_never_opens() {
    let off = CircuitRules {
        enabled: false,
        ..CircuitRules::default()
    };
    let mut record = OpRecord::default();
    for (n, id) in ["i-1", "i-2", "i-3", "i-4"].into_iter().enumerate() {
        record = cleaned(&off, &record, id, 60 * n as i64 + 60);
    }
    assert_eq!(record.pause, None);

    // Under a pause already in force (here the circuit's own, while its
    // clean-ups run) the history does not grow: resuming starts afresh.
    let rules = CircuitRules::default();
    let mut paused = OpRecord {
        pause: Some(Pause {
            by: CIRCUIT_BREAKER.into(),
            reason: "earlier".into(),
            since: at(0),
            until: at(90_000),
            circuit: true,
        }),
        ..OpRecord::default()
    };
    for (n, id) in ["i-5", "i-6", "i-7", "i-8"].into_iter().enumerate() {
        paused = cleaned(&rules, &paused, id, 60 * n as i64 + 60);
    }
    assert_eq!(
        paused.pause.as_ref().map(|p| p.reason.as_str()),
        Some("earlier")
    );
    assert!(recent(&rules, &paused, at(300)).is_empty());
}

/// Four Ready workers, a launch of this tool that never joined (40 min
/// old) and a pod pending for 15 minutes.
fn stray_and_pending(now: Timestamp) -> Observation {
    let mut obs = cluster(4, 85.0, now);
    let mut stray = instance("i-stray");
    stray.launched_at = now.minus(Duration::from_secs(2400));
    stray.op_id = Some("op-bad".into());
    if let Ok(fleet) = obs.fleet.as_mut() {
        fleet.push(stray);
    }
    view_mut(&mut obs).pods.push(pending_pod(
        "waits",
        500,
        now.minus(Duration::from_secs(900)),
    ));
    obs
}

fn circuit_open(now: Timestamp) -> OpRecord {
    OpRecord {
        pause: Some(Pause {
            by: CIRCUIT_BREAKER.into(),
            reason: "3 launched instances never joined within 1h".into(),
            since: now.minus(Duration::from_secs(60)),
            until: now.plus(Duration::from_secs(3600)),
            circuit: true,
        }),
        ..OpRecord::default()
    }
}

#[test]
fn an_open_circuit_lets_only_the_clean_up_run() {
    let settings = Settings::default();
    let now = at(7200);
    let obs = stray_and_pending(now);
    let record = circuit_open(now);
    let d = decide(&settings, &mut PolicyMemory::default(), &obs, &record, now);
    assert_eq!(
        d.action,
        Action::TerminateStrays {
            instances: vec!["i-stray".into()]
        },
        "{d:?}"
    );
    // Without the stray: CPU high and a pod pending, and still no scale-up.
    let mut no_stray = obs.clone();
    if let Ok(fleet) = no_stray.fleet.as_mut() {
        fleet.retain(|i| i.id != "i-stray");
    }
    let d = decide(
        &settings,
        &mut PolicyMemory::default(),
        &no_stray,
        &record,
        now,
    );
    assert_eq!(d.action, Action::Hold, "{d:?}");
    assert!(
        d.reasons
            .iter()
            .any(|r| r.concern && r.contains("cluster paused by the circuit breaker")),
        "{:?}",
        d.reasons
    );
    // The control: the same world with the circuit closed scales up.
    let closed = decide(
        &settings,
        &mut PolicyMemory::default(),
        &no_stray,
        &OpRecord::default(),
        now,
    );
    assert!(
        matches!(closed.action, Action::ScaleUp { .. }),
        "{closed:?}"
    );

    // The operator: a clean-up passes the pause, anything else does not.
    assert!(validate_request(&settings, &obs, &record, &Request::AddWorker).is_err());
    assert!(
        validate_request(
            &settings,
            &obs,
            &record,
            &Request::TerminateStray("i-stray".into())
        )
        .is_ok()
    );
    // A person's pause stops the clean-up too.
    let mut by_hand = record.clone();
    if let Some(p) = by_hand.pause.as_mut() {
        p.circuit = false;
    }
    let d = decide(&settings, &mut PolicyMemory::default(), &obs, &by_hand, now);
    assert_eq!(d.action, Action::Hold, "{d:?}");
    assert!(by_hand.pause_stopping(now, true).is_some());
    assert!(record.pause_stopping(now, true).is_none());
    assert!(record.pause_stopping(now, false).is_some());
}

#[test]
fn a_drain_that_did_not_finish_and_an_instance_terminated_twice_count_nothing_more() {
    let rules = CircuitRules::default();
    // Four scale-downs aborted by a strict budget: routine, not trouble.
    let mut record = OpRecord::default();
    for n in 0..6 {
        let intent = Intent::ScaleDown {
            node: format!("w{n}"),
            instance_id: format!("i-w{n}"),
        };
        let id = format!("op-down-{n}");
        let (started, next) = ending(
            &record,
            &id,
            &intent,
            Origin::Engine,
            OpPhase::Aborted,
            600 * (n + 1),
        );
        record = written(settle(&rules, &started, next, &[], at(600 * (n + 1))));
    }
    assert_eq!(record.pause, None);
    assert!(recent(&rules, &record, at(3600)).is_empty());

    // The same stray terminated three times is one launch that never
    // joined.
    let mut record = OpRecord::default();
    for t in [100, 200, 300] {
        record = cleaned(&rules, &record, "i-same", t);
    }
    assert_eq!(record.pause, None);
    assert_eq!(recent(&rules, &record, at(300)).len(), 1);
}

#[test]
fn the_history_keeps_the_newest_of_each_count() {
    let rules = CircuitRules {
        never_joined: 0,
        ..CircuitRules::default()
    };
    // Forty never-joined instances (never_joined = 0: not a trigger) and
    // four failed operations: the failures are all still counted.
    let mut record = failed(&rules, &OpRecord::default(), "op-f0", OpPhase::Failed, 10);
    let ids: Vec<String> = (0..40).map(|n| format!("i-{n}")).collect();
    let intent = Intent::ScaleUp { count: 40 };
    let (started, next) = ending(
        &record,
        "op-big",
        &intent,
        Origin::Engine,
        OpPhase::Failed,
        100,
    );
    record = written(settle(&rules, &started, next, &ids, at(100)));
    for (n, t) in [(1, 200), (2, 300)] {
        record = failed(&rules, &record, &format!("op-f{n}"), OpPhase::Failed, t);
    }
    let held = recent(&rules, &record, at(300));
    let never = held
        .iter()
        .filter(|t| t.kind == TroubleKind::NeverJoined)
        .count();
    assert_eq!(never, KEPT_PER_COUNT, "the oldest never-joined dropped");
    assert_eq!(held.len() - never, 4, "{held:?}");
    assert!(held.iter().any(|t| t.subject == "i-39") && !held.iter().any(|t| t.subject == "i-0"));
    let record = failed(&rules, &record, "op-f3", OpPhase::Failed, 400);
    assert!(
        record.pause.is_some_and(|p| p.circuit),
        "the fifth failure opens it"
    );
}
