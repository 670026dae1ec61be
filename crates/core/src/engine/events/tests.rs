//! Which events a tick, a write and an effect make.

use super::*;
use crate::engine::operation::{AfterTerminate, start};
use crate::engine::testkit::*;
use crate::engine::{PolicyMemory, ScaleUpHeld, decide};
use crate::ports::{Origin, Pause};
use std::time::Duration;

fn decide_once(obs: &Observation, record: &OpRecord, now: Timestamp) -> Decision {
    decide(
        &Settings::default(),
        &mut PolicyMemory::default(),
        obs,
        record,
        now,
    )
}

fn reasons_of(events: &[Occurrence]) -> Vec<(&'static str, String, String)> {
    events
        .iter()
        .map(|e| (e.reason, e.regarding.to_string(), e.note.clone()))
        .collect()
}

/// Ten busy workers (max_workers), two pods waiting 5 min, one of them
/// too big for any worker.
fn full_cluster_with_pending(now: Timestamp) -> Observation {
    let mut obs = cluster(10, 95.0, now);
    let since = now.minus(Duration::from_secs(300));
    view_mut(&mut obs)
        .pods
        .push(pending_pod("web-new", 500, since));
    view_mut(&mut obs)
        .pods
        .push(pending_pod("huge", 64_000, since));
    obs
}

#[test]
fn at_max_workers_a_waiting_pod_is_told_why_in_words_that_do_not_change() {
    let s = Settings::default();
    let record = OpRecord::default();
    let mut notes = Vec::new();
    for t in [3600, 3615, 3900] {
        let now = at(t);
        let obs = full_cluster_with_pending(now);
        let d = decide_once(&obs, &record, now);
        assert_eq!(d.scale_up_held, Some(ScaleUpHeld::MaxWorkers(10)), "{d:?}");
        let events = of_tick(&s, &obs, &d, TickStart::Nothing, now);
        notes.push(reasons_of(&events));
    }
    let first = &notes[0];
    assert!(
        first.contains(&(
            NOT_TRIGGER_SCALE_UP,
            "pod/default/web-new".into(),
            "pod didn't trigger scale-up: max_workers (10) reached".into()
        )),
        "{first:?}"
    );
    assert!(
        first.contains(&(
            NOT_TRIGGER_SCALE_UP,
            "pod/default/huge".into(),
            "pod didn't trigger scale-up: requests more than a new worker offers".into()
        )),
        "{first:?}"
    );
    assert_eq!(first.len(), 2, "{first:?}");
    // Each tick's repeat reads the same, so it bumps the same event.
    assert!(notes.iter().all(|n| n == first), "{notes:?}");
}

#[test]
fn a_started_scale_up_is_told_to_the_pods_it_is_for_and_not_to_one_it_cannot_help() {
    let s = Settings::default();
    let now = at(3600);
    let mut obs = cluster(3, 50.0, now);
    let since = now.minus(Duration::from_secs(300));
    view_mut(&mut obs)
        .pods
        .push(pending_pod("web-new", 500, since));
    view_mut(&mut obs)
        .pods
        .push(pending_pod("huge", 64_000, since));
    let d = decide_once(&obs, &OpRecord::default(), now);
    assert!(matches!(d.action, Action::ScaleUp { .. }), "{d:?}");
    assert_eq!(d.scale_up_held, None);
    let intent = Intent::ScaleUp { count: 1 };
    let events = reasons_of(&of_tick(
        &s,
        &obs,
        &d,
        TickStart::Started("op-1", &intent),
        now,
    ));
    assert_eq!(
        events,
        vec![
            (
                NOT_TRIGGER_SCALE_UP,
                "pod/default/huge".into(),
                "pod didn't trigger scale-up: requests more than a new worker offers".into()
            ),
            (
                TRIGGERED_SCALE_UP,
                "pod/default/web-new".into(),
                "pod triggered scale-up: +1 worker(s) (op-1)".into()
            ),
        ]
    );
    // Supervised, unconfirmed: the waiting pod hears why nothing starts.
    let waiting = reasons_of(&of_tick(&s, &obs, &d, TickStart::AwaitingConfirmation, now));
    assert!(
        waiting.iter().any(|(r, o, n)| *r == NOT_TRIGGER_SCALE_UP
            && o == "pod/default/web-new"
            && n.contains("supervised mode")),
        "{waiting:?}"
    );
}

#[test]
fn a_cooldown_is_told_only_to_pods_that_waited_past_pending_for_and_without_a_time_left() {
    let s = Settings::default();
    let now = at(3600);
    let mut obs = cluster(3, 50.0, now);
    view_mut(&mut obs)
        .pods
        .push(pending_pod("old", 500, now.minus(Duration::from_secs(300))));
    // Inside the 5 s window.
    view_mut(&mut obs)
        .pods
        .push(pending_pod("fresh", 500, now.minus(Duration::from_secs(2))));
    let record = OpRecord {
        last_scale_up: Some(now.minus(Duration::from_secs(20))),
        ..OpRecord::default()
    };
    let d = decide_once(&obs, &record, now);
    assert_eq!(
        d.scale_up_held,
        Some(ScaleUpHeld::Cooldown(s.policy.scale_up_cooldown))
    );
    let events = reasons_of(&of_tick(&s, &obs, &d, TickStart::Nothing, now));
    assert_eq!(
        events,
        vec![(
            NOT_TRIGGER_SCALE_UP,
            "pod/default/old".into(),
            "pod didn't trigger scale-up: scale_up_cooldown (1m) since the last scale-up".into()
        )]
    );
}

#[test]
fn unknown_data_is_told_to_waiting_pods_and_a_blind_tick_tells_nothing() {
    let s = Settings::default();
    let now = at(3600);
    let mut obs = cluster(3, 50.0, now);
    view_mut(&mut obs)
        .pods
        .push(pending_pod("old", 500, now.minus(Duration::from_secs(300))));
    obs.cpu = crate::ports::Reading::unknown("prometheus: connection refused");
    let d = decide_once(&obs, &OpRecord::default(), now);
    let events = reasons_of(&of_tick(&s, &obs, &d, TickStart::Nothing, now));
    assert_eq!(
        events,
        vec![(
            NOT_TRIGGER_SCALE_UP,
            "pod/default/old".into(),
            "pod didn't trigger scale-up: CPU Unknown: Unknown never scales".into()
        )]
    );
    obs.cluster = Err("the API server did not answer".into());
    let d = decide_once(&obs, &OpRecord::default(), now);
    assert!(of_tick(&s, &obs, &d, TickStart::Nothing, now).is_empty());
}

#[test]
fn a_scale_up_in_flight_holds_nothing_back_and_a_scale_down_in_flight_does() {
    let s = Settings::default();
    let now = at(3600);
    let mut obs = cluster(3, 50.0, now);
    view_mut(&mut obs)
        .pods
        .push(pending_pod("old", 500, now.minus(Duration::from_secs(300))));
    let up = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 1 },
        "op-up",
        Origin::Engine,
        vec![],
        1,
        now,
    );
    let d = decide_once(&obs, &up, now);
    assert!(of_tick(&s, &obs, &d, TickStart::Nothing, now).is_empty());
    let down = start(
        &OpRecord::default(),
        &Intent::ScaleDown {
            node: "w1".into(),
            instance_id: "w1".into(),
        },
        "op-down",
        Origin::Engine,
        vec![],
        1,
        now,
    );
    let d = decide_once(&obs, &down, now);
    let events = reasons_of(&of_tick(&s, &obs, &d, TickStart::Nothing, now));
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].2.ends_with("a scale-down is in flight"),
        "{events:?}"
    );
}

#[test]
fn a_scale_down_tells_its_node_when_it_starts_and_when_its_drain_is_given_up() {
    let now = at(3600);
    let before = OpRecord::default();
    let started = start(
        &before,
        &Intent::ScaleDown {
            node: "w3".into(),
            instance_id: "i-3".into(),
        },
        "op-7",
        Origin::Engine,
        vec!["CPU 12% < 45%".into()],
        1,
        now,
    );
    let events = reasons_of(&of_write(&before, &started));
    assert_eq!(
        events,
        vec![(
            SCALE_DOWN,
            "node/w3".into(),
            "scale-down op-7: cordon, drain and terminate this node: CPU 12% < 45%".into()
        )]
    );
    // A later step of the same operation tells nothing new.
    let mut draining = started.clone();
    if let Some(op) = draining.op.as_mut() {
        op.phase = OpPhase::Draining;
    }
    assert!(of_write(&started, &draining).is_empty());
    let mut aborted = draining.clone();
    if let Some(op) = aborted.op.as_mut() {
        op.phase = OpPhase::Aborted;
        op.outcome = Some("drain timeout (5m); w3 uncordoned".into());
    }
    let events = of_write(&draining, &aborted);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, DRAIN_ABORTED);
    assert_eq!(events[0].event_type, EventType::Warning);
    let mut failed = draining.clone();
    if let Some(op) = failed.op.as_mut() {
        op.phase = OpPhase::Failed;
        op.outcome = Some("terminate refused".into());
    }
    assert_eq!(of_write(&draining, &failed)[0].reason, SCALE_DOWN_FAILED);
}

#[test]
fn the_write_that_opens_the_circuit_tells_the_cluster_once() {
    let now = at(3600);
    let before = OpRecord::default();
    let after = OpRecord {
        pause: Some(Pause {
            by: crate::engine::circuit::CIRCUIT_BREAKER.into(),
            reason: "3 launches never joined within 1h".into(),
            since: now,
            until: now.plus(Duration::from_secs(86_400)),
            circuit: true,
        }),
        ..OpRecord::default()
    };
    let events = of_write(&before, &after);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, CIRCUIT_OPEN);
    assert_eq!(events[0].regarding, EventObject::cluster());
    assert!(events[0].note.contains("3 launches never joined"));
    // The next write under the same pause is no news.
    assert!(of_write(&after, &after).is_empty());
}

#[test]
fn a_terminate_of_launches_past_their_join_deadline_tells_each_node_that_never_joined() {
    let now = at(3600);
    let up = start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 2 },
        "op-9",
        Origin::Engine,
        vec![],
        1,
        now,
    );
    let op = up.op.clone().expect("an operation");
    let terminate = Effect::Terminate {
        ids: vec!["i-1".into(), "i-2".into()],
        then: AfterTerminate::Fail("never joined within 10m".into()),
    };
    let events = of_effect(&op, &terminate, true);
    assert_eq!(
        events
            .iter()
            .map(|e| e.regarding.name.as_str())
            .collect::<Vec<_>>(),
        ["i-1", "i-2"]
    );
    assert!(events.iter().all(|e| e.reason == NEVER_JOINED));
    // A terminate that failed removed nothing.
    assert!(of_effect(&op, &terminate, false).is_empty());
}
