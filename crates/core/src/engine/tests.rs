//! Table-driven policy tests with a manual clock: every rule of docs/architecture.md §2.

use super::testkit::*;
use super::*;
use crate::ports::{OpKind, OpPhase, OpRecord, Operation, Origin, Reading};
use std::time::Duration;

/// The rules with the first design's numbers (3 min pending, 30 % down, 3 min
/// scale-up cooldown); three defaults were tuned since (docs/architecture.md
/// §2 has today's).
fn settings() -> Settings {
    let mut s = Settings::default();
    s.policy.pending_for = Duration::from_secs(180);
    s.policy.cpu_down_percent = 30.0;
    s.policy.scale_up_cooldown = Duration::from_secs(180);
    s
}

#[test]
fn the_tuned_defaults() {
    let p = Settings::default().policy;
    assert_eq!(p.pending_for, Duration::from_secs(5));
    assert_eq!(p.cpu_down_percent, 45.0);
    assert_eq!(p.scale_up_cooldown, Duration::from_secs(60));
    assert_eq!(
        (
            p.cpu_up_percent,
            p.cpu_target_percent,
            p.min_workers,
            p.max_workers
        ),
        (70.0, 60.0, 2, 10)
    );
    assert_eq!(
        (p.idle_for, p.scale_down_cooldown, p.max_scale_up_batch),
        (Duration::from_secs(600), Duration::from_secs(600), 3)
    );
}

/// Decide once on a fresh memory.
fn once(obs: &Observation, record: &OpRecord, now: crate::ports::Timestamp) -> Decision {
    decide(&settings(), &mut PolicyMemory::default(), obs, record, now)
}

/// Feed the same world every 15 s for `secs` and return the last decision.
fn sustained(mut make: impl FnMut(crate::ports::Timestamp) -> Observation, secs: i64) -> Decision {
    let mut memory = PolicyMemory::default();
    let mut last = None;
    for t in (0..=secs).step_by(15) {
        let now = at(t);
        last = Some(decide(
            &settings(),
            &mut memory,
            &make(now),
            &OpRecord::default(),
            now,
        ));
    }
    last.expect("at least one tick")
}

fn reasons(d: &Decision) -> String {
    d.reasons.join(" | ")
}

#[test]
fn cpu_above_threshold_scales_up_sized_to_target() {
    // 5 workers at 80 %: ceil(5 * 80 / 60) = 7 → +2.
    let d = once(&cluster(5, 80.0, at(0)), &OpRecord::default(), at(0));
    assert_eq!(d.action, Action::ScaleUp { count: 2 }, "{}", reasons(&d));
    assert!(reasons(&d).contains("CPU 80% > 70%"), "{}", reasons(&d));
    // Exactly at the threshold is not above it.
    let d = once(&cluster(5, 70.0, at(0)), &OpRecord::default(), at(0));
    assert_eq!(d.action, Action::Hold);
}

#[test]
fn scale_up_is_capped_by_batch_and_max() {
    // 5 at 99 %: 9 wanted → +4, capped at the batch of 3.
    let d = once(&cluster(5, 99.0, at(0)), &OpRecord::default(), at(0));
    assert_eq!(d.action, Action::ScaleUp { count: 3 });
    assert!(
        reasons(&d).contains("max_scale_up_batch"),
        "{}",
        reasons(&d)
    );
    // 9 workers: only one more fits under max_workers = 10.
    let d = once(&cluster(9, 99.0, at(0)), &OpRecord::default(), at(0));
    assert_eq!(d.action, Action::ScaleUp { count: 1 });
    assert!(reasons(&d).contains("max_workers"), "{}", reasons(&d));
}

#[test]
fn at_max_workers_holds_and_says_so() {
    let d = once(&cluster(10, 95.0, at(0)), &OpRecord::default(), at(0));
    assert_eq!(d.action, Action::Hold);
    assert!(
        reasons(&d).contains("at max_workers (10)"),
        "{}",
        reasons(&d)
    );
}

#[test]
fn pending_pods_trigger_only_after_pending_for() {
    let world = |age_secs: i64| {
        let now = at(1000);
        let mut obs = cluster(4, 50.0, now);
        view_mut(&mut obs)
            .pods
            .push(pending_pod("web-p1", 300, at(1000 - age_secs)));
        (obs, now)
    };
    let (obs, now) = world(179);
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(d.action, Action::Hold, "2m59s: {}", reasons(&d));
    assert!(
        reasons(&d).contains("1 pending, oldest 2m59s ≤ 3m"),
        "{}",
        reasons(&d)
    );
    let (obs, now) = world(181);
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(
        d.action,
        Action::ScaleUp { count: 1 },
        "3m01s: {}",
        reasons(&d)
    );
    assert!(
        reasons(&d).contains("to fit 1 unschedulable pod"),
        "{}",
        reasons(&d)
    );
}

#[test]
fn pending_pods_size_the_step_by_requests() {
    // Seven 900m pods: two per new worker (1 800m of 1 800m after DaemonSets) → 4 workers, capped at 3.
    let now = at(1000);
    let mut obs = cluster(4, 50.0, now);
    for i in 0..7 {
        view_mut(&mut obs)
            .pods
            .push(pending_pod(&format!("big-{i}"), 900, at(0)));
    }
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(d.action, Action::ScaleUp { count: 3 }, "{}", reasons(&d));
    // A pod bigger than any worker is named, and does not buy a node by itself.
    let mut obs = cluster(4, 50.0, now);
    view_mut(&mut obs)
        .pods
        .push(pending_pod("huge", 4_000, at(0)));
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(d.action, Action::Hold, "{}", reasons(&d));
    assert!(
        reasons(&d).contains("default/huge: requests more than a new worker offers"),
        "{}",
        reasons(&d)
    );
}

#[test]
fn unknown_never_scales() {
    let now = at(0);
    let cases: Vec<(&str, Observation)> = vec![
        (
            "unknown",
            Observation {
                cpu_partial: None,
                cpu: Reading::unknown("connection refused"),
                ..cluster(5, 95.0, now)
            },
        ),
        (
            "nan",
            Observation {
                cpu_partial: None,
                cpu: Reading::Known {
                    value: f64::NAN,
                    at: now,
                },
                ..cluster(5, 95.0, now)
            },
        ),
        (
            "stale",
            Observation {
                cpu_partial: None,
                cpu: Reading::Known {
                    value: 95.0,
                    at: now.minus(Duration::from_secs(121)),
                },
                ..cluster(5, 95.0, now)
            },
        ),
        (
            "kubernetes",
            Observation {
                cpu_partial: None,
                cluster: Err("timeout".into()),
                ..cluster(5, 95.0, now)
            },
        ),
        (
            "ec2",
            Observation {
                cpu_partial: None,
                fleet: Err("throttled".into()),
                ..cluster(5, 5.0, now)
            },
        ),
    ];
    for (name, obs) in cases {
        let d = once(&obs, &OpRecord::default(), now);
        assert_eq!(d.action, Action::Hold, "{name}: {}", reasons(&d));
        assert!(
            reasons(&d).contains("Unknown never scales"),
            "{name}: {}",
            reasons(&d)
        );
        // Every line of a blind hold is one the console marks.
        assert!(
            d.reasons.iter().all(|r| r.concern),
            "{name}: {:?}",
            d.reasons
        );
    }
    // Staleness is measured against the configured limit.
    let fresh = Observation {
        cpu_partial: None,
        cpu: Reading::Known {
            value: 95.0,
            at: now.minus(Duration::from_secs(119)),
        },
        ..cluster(5, 95.0, now)
    };
    assert!(!once(&fresh, &OpRecord::default(), now).action.is_hold());
}

#[test]
fn unknown_resets_the_idle_streak() {
    let s = settings();
    let mut memory = PolicyMemory::default();
    let record = OpRecord::default();
    for t in (0..=540).step_by(15) {
        decide(&s, &mut memory, &cluster(5, 10.0, at(t)), &record, at(t));
    }
    let blind = Observation {
        cpu_partial: None,
        cpu: Reading::unknown("scrape failed"),
        ..cluster(5, 10.0, at(555))
    };
    decide(&s, &mut memory, &blind, &record, at(555));
    let d = decide(
        &s,
        &mut memory,
        &cluster(5, 10.0, at(615)),
        &record,
        at(615),
    );
    assert!(d.action.is_hold());
    assert!(
        reasons(&d).contains("idle for 0s of 10m"),
        "{}",
        reasons(&d)
    );
}

#[test]
fn idle_for_ten_minutes_scales_down_the_newest_least_loaded() {
    let d = sustained(|now| cluster(5, 20.0, now), 599);
    assert!(d.action.is_hold());
    assert!(
        reasons(&d).contains("idle for 9m45s of 10m"),
        "{}",
        reasons(&d)
    );
    let d = sustained(|now| cluster(5, 20.0, now), 600);
    assert_eq!(
        d.action,
        Action::ScaleDown {
            node: "w5".into(),
            instance_id: "w5".into()
        },
        "{}",
        reasons(&d)
    );
}

/// A node whose scale-down did not finish (its drain reached the deadline
/// on a pod that would not go) is passed over for half an hour, even once
/// other operations followed; then it may be chosen again.
#[test]
fn a_node_whose_drain_did_not_finish_is_passed_over_for_half_an_hour() {
    let s = settings();
    let mut aborted = super::operation::start(
        &OpRecord::default(),
        &Intent::ScaleDown {
            node: "w5".into(),
            instance_id: "w5".into(),
        },
        "op-d",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    if let Some(op) = aborted.op.as_mut() {
        op.phase = OpPhase::Aborted;
        op.updated = at(300);
    }
    let mut memory = PolicyMemory::default();
    let mut decide_at = |record: &OpRecord, t: i64| {
        decide(&s, &mut memory, &cluster(5, 20.0, at(t)), record, at(t))
    };
    // Idle for ten minutes, the aborted drain the last operation: the next
    // newest goes.
    for t in (0..=900).step_by(15) {
        decide_at(&aborted, t);
    }
    let d = decide_at(&aborted, 915);
    assert!(
        matches!(&d.action, Action::ScaleDown { node, .. } if node == "w4"),
        "{d:?}"
    );
    // Another operation since (w4's scale-down, done): w5 still waits.
    let mut later = aborted.clone();
    if let Some(op) = later.op.as_mut() {
        op.kind = OpKind::ScaleDown {
            node: "w4".into(),
            instance_id: Some("w4".into()),
        };
        op.phase = OpPhase::Done;
    }
    let d = decide_at(&later, 930);
    assert!(
        matches!(&d.action, Action::ScaleDown { node, .. } if node == "w4"),
        "{d:?}"
    );
    // Half an hour after it ended: chosen again.
    let d = decide_at(&later, 2100);
    assert!(
        matches!(&d.action, Action::ScaleDown { node, .. } if node == "w5"),
        "{d:?}"
    );
}

#[test]
fn pending_pods_block_a_scale_down() {
    let d = sustained(
        |now| {
            let mut obs = cluster(5, 20.0, now);
            view_mut(&mut obs).pods.push(pending_pod("p", 100, now));
            obs
        },
        900,
    );
    assert!(d.action.is_hold());
    assert!(reasons(&d).contains("pods are pending"), "{}", reasons(&d));
}

#[test]
fn at_min_workers_never_scales_down() {
    let d = sustained(|now| cluster(2, 5.0, now), 1200);
    assert!(d.action.is_hold());
    assert!(
        reasons(&d).contains("at min_workers (2)"),
        "{}",
        reasons(&d)
    );
}

#[test]
fn cooldowns_hold_with_time_left() {
    let record = OpRecord {
        last_scale_up: Some(at(-60)),
        last_scale_end: Some(at(-60)),
        ..OpRecord::default()
    };
    let d = once(&cluster(5, 90.0, at(0)), &record, at(0));
    assert!(d.action.is_hold());
    assert!(
        reasons(&d).contains("scale-up blocked: cooldown, 2m left of 3m"),
        "{}",
        reasons(&d)
    );
    let d = once(&cluster(5, 90.0, at(121)), &record, at(121));
    assert!(!d.action.is_hold(), "{}", reasons(&d));

    let mut memory = PolicyMemory::default();
    let record = OpRecord {
        last_scale_end: Some(at(300)),
        ..OpRecord::default()
    };
    let mut d = None;
    for t in (0..=600).step_by(15) {
        d = Some(decide(
            &settings(),
            &mut memory,
            &cluster(5, 10.0, at(t)),
            &record,
            at(t),
        ));
    }
    let d = d.unwrap();
    assert!(d.action.is_hold());
    assert!(
        reasons(&d).contains("scale-down blocked: cooldown, 5m left of 10m"),
        "{}",
        reasons(&d)
    );
}

#[test]
fn cpu_up_for_damps_spikes() {
    let mut s = settings();
    s.policy.cpu_up_for = Duration::from_secs(60);
    let mut memory = PolicyMemory::default();
    let record = OpRecord::default();
    let d = decide(&s, &mut memory, &cluster(5, 90.0, at(0)), &record, at(0));
    assert!(d.action.is_hold());
    assert!(
        reasons(&d).contains("CPU high for 0s of 1m"),
        "{}",
        reasons(&d)
    );
    let d = decide(&s, &mut memory, &cluster(5, 90.0, at(60)), &record, at(60));
    assert!(!d.action.is_hold());
}

#[test]
fn an_operation_in_flight_holds_everything_else() {
    let record = OpRecord {
        rev: 3,
        op: Some(Operation {
            id: "op-1".into(),
            kind: OpKind::ScaleUp {
                count: 1,
                client_token: "t".into(),
                instance_ids: vec![],
                plan: None,
            },
            phase: OpPhase::Verifying,
            origin: Origin::Engine,
            reasons: vec![],
            started: at(0),
            updated: at(0),
            deadline: None,
            steps: vec![],
            outcome: None,
            fence: 1,
            failed_before: 0,
            pending_since: None,
            last_failure: None,
            troubles: Vec::new(),
        }),
        ..OpRecord::default()
    };
    let d = once(&cluster(5, 95.0, at(0)), &record, at(0));
    assert!(d.action.is_hold());
    assert!(
        reasons(&d).contains("scale-up op-1 in flight (Verifying)"),
        "{}",
        reasons(&d)
    );
}

#[test]
fn blocked_scale_down_names_the_pod_and_rule() {
    let d = sustained(
        |now| {
            let mut obs = cluster(3, 10.0, now);
            let view = view_mut(&mut obs);
            for (i, n) in ["w1", "w2", "w3"].iter().enumerate() {
                view.pods
                    .push(pod(&format!("db-{i}"), Some(n), 100, Some("StatefulSet")));
            }
            obs
        },
        700,
    );
    assert!(d.action.is_hold());
    let text = reasons(&d);
    assert!(
        text.contains(
            "w3: pod default/db-2 is owned by a StatefulSet (drain.evict_statefulsets = false)"
        ),
        "{text}"
    );
}

#[test]
fn scale_down_skips_nodes_whose_pods_would_not_fit() {
    // Three nodes packed full: nothing can move.
    let d = sustained(
        |now| {
            let mut obs = cluster(3, 10.0, now);
            let view = view_mut(&mut obs);
            for n in ["w1", "w2", "w3"] {
                view.pods.push(pod(
                    &format!("fill-{n}"),
                    Some(n),
                    1_150,
                    Some("ReplicaSet"),
                ));
            }
            obs
        },
        700,
    );
    assert!(d.action.is_hold());
    assert!(reasons(&d).contains("would not fit"), "{}", reasons(&d));
}

#[test]
fn summary_reads_like_the_design() {
    let d = sustained(|now| cluster(5, 64.0, now), 0);
    assert_eq!(
        d.summary(),
        "hold: CPU 64% within 30–70%; 0 pending; 5 Ready / 5 managed workers"
    );
}

#[test]
fn operator_requests_obey_safety_not_cooldowns() {
    let s = settings();
    let record = OpRecord {
        last_scale_up: Some(at(-10)),
        last_scale_end: Some(at(-10)),
        ..OpRecord::default()
    };
    let obs = cluster(3, 50.0, at(0));
    assert_eq!(
        validate_request(&s, &obs, &record, &Request::AddWorker),
        Ok(Intent::ScaleUp { count: 1 })
    );
    let full = cluster(10, 50.0, at(0));
    let refusal = validate_request(&s, &full, &record, &Request::AddWorker).unwrap_err();
    assert!(refusal.0.contains("max_workers (10)"), "{refusal}");
    let two = cluster(2, 50.0, at(0));
    let refusal =
        validate_request(&s, &two, &record, &Request::RemoveNode("w1".into())).unwrap_err();
    assert!(refusal.0.contains("below min_workers (2)"), "{refusal}");
    assert_eq!(
        validate_request(&s, &obs, &record, &Request::RemoveNode("w2".into())),
        Ok(Intent::ScaleDown {
            node: "w2".into(),
            instance_id: "w2".into()
        })
    );
    let mut blocked = cluster(3, 50.0, at(0));
    view_mut(&mut blocked)
        .pods
        .push(pod("solo", Some("w2"), 100, None));
    let refusal =
        validate_request(&s, &blocked, &record, &Request::RemoveNode("w2".into())).unwrap_err();
    assert!(
        refusal
            .0
            .contains("pod default/solo has no controller owner"),
        "{refusal}"
    );
    let blind = Observation {
        cpu_partial: None,
        fleet: Err("timeout".into()),
        ..cluster(3, 50.0, at(0))
    };
    assert!(validate_request(&s, &blind, &record, &Request::AddWorker).is_err());
    assert_eq!(
        validate_request(&s, &obs, &record, &Request::Cordon("w1".into())),
        Ok(Intent::Cordon {
            node: "w1".into(),
            cordon: true
        })
    );
    assert!(validate_request(&s, &obs, &record, &Request::Uncordon("w1".into())).is_err());
}

/// The sanity stop, the never-joined rules, unhelpable pods, the
/// failure back-off, readings that are not percentages.
mod blast_radius;
mod predictive;
mod scale_down;
