//! Decisions on a view that may be wrong: a selector that matches
//! nothing, a label removed by hand, strays, pods no worker can help, a
//! scale-up that keeps failing, a CPU query that is not a percentage.

use super::*;

/// Four managed workers launched by this tool an hour ago.
fn old_tagged_fleet(obs: &mut Observation, now: crate::ports::Timestamp) {
    if let Ok(fleet) = obs.fleet.as_mut() {
        for i in fleet.iter_mut() {
            i.launched_at = now.minus(Duration::from_secs(3600));
            i.op_id = Some("op-earlier".into());
        }
    }
}

#[test]
fn a_selector_that_matches_nothing_terminates_nothing_and_says_so() {
    let now = at(7200);
    let mut obs = cluster(4, 50.0, now);
    old_tagged_fleet(&mut obs, now);
    // The node list is empty (a typo in the selector, another cluster's
    // context, a removed label): every worker looks like it never joined.
    *view_mut(&mut obs) = ClusterView::default();
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(d.action, Action::Hold, "{d:?}");
    let why = d.sanity_stop.clone().expect("a sanity stop");
    assert!(why.contains("worker_selector"), "{why}");
    assert!(reasons(&d).contains("nothing destructive runs"), "{d:?}");
    // The operator cannot override it either.
    let refused = validate_request(
        &settings(),
        &obs,
        &OpRecord::default(),
        &Request::TerminateStray("w1".into()),
    );
    assert!(
        refused.is_err_and(|r| r.0.contains("sanity stop")),
        "an operator's clean-up is refused on an implausible view"
    );
}

#[test]
fn half_the_fleet_without_nodes_holds_scale_down_and_clean_up() {
    let d = sustained(
        |now| {
            let mut obs = cluster(8, 5.0, now);
            old_tagged_fleet(&mut obs, now);
            view_mut(&mut obs).nodes.truncate(4);
            view_mut(&mut obs).pods.retain(|p| {
                p.node_name
                    .as_deref()
                    .is_none_or(|n| ["w1", "w2", "w3", "w4"].contains(&n))
            });
            obs
        },
        900,
    );
    assert_eq!(d.action, Action::Hold, "{d:?}");
    assert!(
        d.sanity_stop
            .as_deref()
            .is_some_and(|w| w.contains("4 of 8")),
        "{d:?}"
    );
}

#[test]
fn pending_pods_may_still_add_capacity_during_a_sanity_stop() {
    let now = at(7200);
    let mut obs = cluster(8, 50.0, now);
    old_tagged_fleet(&mut obs, now);
    view_mut(&mut obs).nodes.truncate(2);
    view_mut(&mut obs).pods.push(pending_pod(
        "waiting",
        500,
        now.minus(Duration::from_secs(600)),
    ));
    let d = once(&obs, &OpRecord::default(), now);
    assert!(matches!(d.action, Action::ScaleUp { .. }), "{d:?}");
    assert!(d.sanity_stop.is_some(), "{d:?}");
    // With no Ready worker in view at all, nothing is added either.
    view_mut(&mut obs).nodes.clear();
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(d.action, Action::Hold, "{d:?}");
    assert!(reasons(&d).contains("no Ready worker in view"), "{d:?}");
}

#[test]
fn one_never_joined_instance_per_decision_and_only_those_this_tool_launched() {
    let now = at(7200);
    let mut obs = cluster(4, 50.0, now);
    old_tagged_fleet(&mut obs, now);
    let stray = |id: &str, age: u64, op: Option<&str>| {
        let mut i = instance(id);
        i.launched_at = now.minus(Duration::from_secs(age));
        i.op_id = op.map(String::from);
        i
    };
    if let Ok(fleet) = obs.fleet.as_mut() {
        fleet.push(stray("i-young", 1200, Some("op-a")));
        fleet.push(stray("i-old", 2400, Some("op-b")));
        // Untagged: maybe someone's hand-made worker; never automatic.
        fleet.push(stray("i-untagged", 3600, None));
    }
    // 3 of 7 without a node is 43 %: under the 45 % sanity bound.
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(
        d.action,
        Action::TerminateStrays {
            instances: vec!["i-old".into()]
        },
        "{d:?}"
    );
    assert_eq!(d.sanity_stop, None);
}

#[test]
fn pods_no_new_worker_can_help_trigger_nothing_and_block_nothing() {
    let now = at(7200);
    let mut obs = cluster(4, 20.0, now);
    let since = now.minus(Duration::from_secs(900));
    let mut huge = pending_pod("huge", 64_000, since);
    huge.requests.memory_bytes = 1 << 40;
    let mut pinned = pending_pod("pinned", 100, since);
    pinned.node_selector.insert("gpu".into(), "a100".into());
    view_mut(&mut obs).pods.extend([huge, pinned]);
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(d.action, Action::Hold, "{d:?}");
    assert!(
        reasons(&d).contains("2 pending pod(s) no new worker can help"),
        "{d:?}"
    );
    assert!(reasons(&d).contains("0 pending"), "{d:?}");
    // A pod a new worker can take still triggers.
    view_mut(&mut obs)
        .pods
        .push(pending_pod("fits", 500, since));
    assert!(matches!(
        once(&obs, &OpRecord::default(), now).action,
        Action::ScaleUp { .. }
    ));
}

#[test]
fn a_failed_scale_up_backs_off_three_minutes_doubling_to_thirty() {
    let now = at(7200);
    let mut obs = cluster(4, 20.0, now);
    view_mut(&mut obs).pods.push(pending_pod(
        "fits",
        500,
        now.minus(Duration::from_secs(900)),
    ));
    let failed = |failed_before: u32, ended: i64| {
        let mut r = super::operation::start(
            &OpRecord::default(),
            &Intent::ScaleUp { count: 1 },
            "op-f",
            Origin::Engine,
            vec![],
            1,
            at(0),
        );
        if let Some(op) = r.op.as_mut() {
            op.phase = OpPhase::Failed;
            op.updated = at(ended);
            op.failed_before = failed_before;
        }
        r
    };
    let d = once(&obs, &failed(0, 7200 - 120), now);
    assert_eq!(d.action, Action::Hold, "{d:?}");
    assert!(reasons(&d).contains("backing off after 1 failed"), "{d:?}");
    assert!(matches!(
        once(&obs, &failed(0, 7200 - 181), now).action,
        Action::ScaleUp { .. }
    ));
    // The third failure in a row: 12 minutes; the tenth: capped at 30.
    assert!(once(&obs, &failed(2, 7200 - 700), now).action.is_hold());
    assert!(!once(&obs, &failed(2, 7200 - 721), now).action.is_hold());
    assert!(once(&obs, &failed(9, 7200 - 1799), now).action.is_hold());
    assert!(!once(&obs, &failed(9, 7200 - 1801), now).action.is_hold());
    // The next scale-up started after a failure counts it.
    let next = super::operation::start(
        &failed(2, 0),
        &Intent::ScaleUp { count: 1 },
        "op-g",
        Origin::Engine,
        vec![],
        1,
        at(10),
    );
    assert_eq!(next.op.as_ref().map(|o| o.failed_before), Some(3));

    // Another operation in between (a clean-up, an operator's cordon)
    // carries the row and its clock: the back-off still runs from the
    // failure, and the next scale-up still counts it.
    let between = |after: &OpRecord, at_secs: i64| {
        let mut r = super::operation::start(
            after,
            &Intent::DeleteGhost { node: "w9".into() },
            "op-c",
            Origin::Engine,
            vec![],
            1,
            at(at_secs),
        );
        if let Some(op) = r.op.as_mut() {
            op.phase = OpPhase::Done;
            op.updated = at(at_secs + 5);
        }
        r
    };
    let cleaned = between(&failed(2, 7200 - 700), 7200 - 60);
    let d = once(&obs, &cleaned, now);
    assert!(d.action.is_hold(), "{d:?}");
    assert!(reasons(&d).contains("backing off after 3 failed"), "{d:?}");
    assert!(
        !once(&obs, &between(&failed(2, 7200 - 721), 7200 - 60), now)
            .action
            .is_hold()
    );
    let next = super::operation::start(
        &cleaned,
        &Intent::ScaleUp { count: 1 },
        "op-h",
        Origin::Engine,
        vec![],
        1,
        now,
    );
    assert_eq!(next.op.as_ref().map(|o| o.failed_before), Some(3));
    // A scale-up that ends Done ends the row.
    let mut done = next;
    if let Some(op) = done.op.as_mut() {
        op.phase = OpPhase::Done;
    }
    assert!(!once(&obs, &between(&done, 7200 - 60), now).action.is_hold());
    assert_eq!(
        super::operation::failure_streak(done.op.as_ref(), now),
        (0, None)
    );
    // Quiet ends it too: three hours after the last failure the row is
    // forgotten, and the next scale-up starts a new one.
    let last_failure = cleaned.op.as_ref().and_then(|o| o.last_failure);
    let Some(last_failure) = last_failure else {
        panic!("the clean-up carries the row: {cleaned:?}")
    };
    let reset = super::operation::BACKOFF_RESET_AFTER;
    let just_before = last_failure.plus(reset).minus(Duration::from_secs(1));
    assert_eq!(
        super::operation::failure_streak(cleaned.op.as_ref(), just_before).0,
        3
    );
    let later = last_failure.plus(reset);
    assert_eq!(
        super::operation::failure_streak(cleaned.op.as_ref(), later),
        (0, None)
    );
    let fresh = super::operation::start(
        &cleaned,
        &Intent::ScaleUp { count: 1 },
        "op-i",
        Origin::Engine,
        vec![],
        1,
        later,
    );
    assert_eq!(fresh.op.as_ref().map(|o| o.failed_before), Some(0));
}

#[test]
fn a_stray_found_under_other_labels_is_not_chosen_again_and_a_stray_that_stays_never_starves_a_scale_up()
 {
    let now = at(7200);
    let mut obs = cluster(6, 50.0, now);
    old_tagged_fleet(&mut obs, now);
    // w6's worker label was removed by hand: no node in the selected view.
    view_mut(&mut obs).nodes.retain(|n| n.name != "w6");
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(
        d.action,
        Action::TerminateStrays {
            instances: vec!["w6".into()]
        },
        "{d:?}"
    );
    // The clean-up found its node under other labels and kept it.
    let mut record = super::operation::start(
        &OpRecord::default(),
        &Intent::TerminateStrays {
            instances: vec!["w6".into()],
        },
        "op-c",
        Origin::Engine,
        vec![],
        1,
        at(0),
    );
    if let Some(op) = record.op.as_mut() {
        op.phase = OpPhase::Done;
        op.kind = OpKind::TerminateStrays {
            instances: vec!["w6".into()],
            kept: vec!["w6".into()],
        };
    }
    let d = once(&obs, &record, now);
    assert_eq!(d.action, Action::Hold, "not chosen again: {d:?}");
    let findings = super::reconcile::reconcile(&settings(), &obs, &record, now);
    assert!(
        findings
            .iter()
            .any(|f| f.describe().contains("outside kubernetes.worker_selector")),
        "{findings:?}"
    );
    // Pods wait: after a clean-up that removed nothing the scale-up goes
    // first (a stray that is not going away never starves them)…
    view_mut(&mut obs).pods.push(pending_pod(
        "waiting",
        500,
        now.minus(Duration::from_secs(600)),
    ));
    let d = once(&obs, &record, now);
    assert!(matches!(d.action, Action::ScaleUp { .. }), "{d:?}");
    // …and after one of the same stray that failed; otherwise the clean-up
    // goes first (one tick, and the slot it frees under max_workers): after
    // one of the same stray that was aborted (it never tried: its intent
    // expired or its engine stopped, chaos seed 94811), and after another
    // stray's clean-up that failed or was aborted: that says nothing about
    // this one, and an aborted one may have terminated its instance before
    // a crash (chaos seed 5925).
    for phase in [OpPhase::Failed, OpPhase::Aborted] {
        for (target, scale_up_first) in [("w6", phase == OpPhase::Failed), ("w5", false)] {
            if let Some(op) = record.op.as_mut() {
                op.phase = phase;
                op.kind = OpKind::TerminateStrays {
                    instances: vec![target.into()],
                    kept: vec![],
                };
            }
            let d = once(&obs, &record, now);
            if scale_up_first {
                assert!(
                    matches!(d.action, Action::ScaleUp { .. }),
                    "{phase:?} {target}: {d:?}"
                );
            } else {
                assert_eq!(
                    d.action,
                    Action::TerminateStrays {
                        instances: vec!["w6".into()]
                    },
                    "{phase:?} {target}: {d:?}"
                );
            }
        }
    }
    let d = once(&obs, &OpRecord::default(), now);
    assert_eq!(
        d.action,
        Action::TerminateStrays {
            instances: vec!["w6".into()]
        },
        "{d:?}"
    );
    assert!(reasons(&d).contains("scale-up after the clean-up"), "{d:?}");
}

#[test]
fn a_cpu_reading_outside_0_to_100_is_unknown() {
    let now = at(100);
    for bad in [150.0, -3.0, 1e6] {
        let obs = cluster(4, bad, now);
        let d = once(&obs, &OpRecord::default(), now);
        assert_eq!(d.action, Action::Hold, "{bad}: {d:?}");
        assert!(reasons(&d).contains("is not a percentage"), "{d:?}");
    }
    assert!(
        !once(&cluster(4, 100.0, now), &OpRecord::default(), now)
            .action
            .is_hold()
    );
}

/// A worker missing from the per-node CPU: the average
/// of the rest cannot show the fleet idle, so no scale-down rests on it;
/// pending pods still get their scale-up.
#[test]
fn a_partial_cpu_average_blocks_scale_downs_only() {
    let partial = |now| {
        let mut obs = cluster(5, 20.0, now);
        obs.cpu_partial = Some("worker CPU covers 4 of 5 Ready workers (no CPU from w3)".into());
        obs
    };
    let d = sustained(partial, 1200);
    assert!(d.action.is_hold(), "{d:?}");
    assert!(reasons(&d).contains("no CPU from w3"), "{}", reasons(&d));
    let now = at(100);
    let mut obs = partial(now);
    view_mut(&mut obs).pods.push(pending_pod(
        "waiting",
        500,
        now.minus(Duration::from_secs(600)),
    ));
    let d = once(&obs, &OpRecord::default(), now);
    assert!(matches!(d.action, Action::ScaleUp { .. }), "{d:?}");
}
