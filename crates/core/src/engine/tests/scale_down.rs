//! Scale-down: opt-out annotations and each worker's standing (the
//! console's SCALE-DOWN column), on the same rules as the choice.

use super::*;

/// `sustained`, then each worker's standing as the engine loop adds it.
fn sustained_standing(
    mut make: impl FnMut(crate::ports::Timestamp) -> Observation,
    secs: i64,
) -> Decision {
    let mut memory = PolicyMemory::default();
    let mut last = None;
    for t in (0..=secs).step_by(15) {
        let now = at(t);
        let obs = make(now);
        let d = decide(&settings(), &mut memory, &obs, &OpRecord::default(), now);
        last = Some((d, obs, now));
    }
    let (mut d, obs, now) = last.expect("at least one tick");
    d.standing = super::policy::standing(&settings(), &memory, &obs, &OpRecord::default(), now, &d);
    d
}

/// A node annotated with our opt-out, the Cluster Autoscaler's or
/// Karpenter's is never chosen, nor removed at an operator's request; the
/// reason names the annotation. `"false"` opts nothing out.
#[test]
fn opt_out_annotations_keep_a_node_from_any_scale_down() {
    for key in [
        "k3s-autoscaler/scale-down-disabled",
        "cluster-autoscaler.kubernetes.io/scale-down-disabled",
        "karpenter.sh/do-not-disrupt",
    ] {
        let annotated = |value: &str| {
            let value = value.to_string();
            move |now| {
                let mut obs = cluster(5, 20.0, now);
                for n in view_mut(&mut obs).nodes.iter_mut() {
                    if n.name == "w5" {
                        n.annotations.insert(key.into(), value.clone());
                    }
                }
                obs
            }
        };
        let d = sustained(annotated("True"), 600);
        assert_eq!(
            d.action,
            Action::ScaleDown {
                node: "w4".into(),
                instance_id: "w4".into()
            },
            "{key}: the next newest goes instead: {}",
            reasons(&d)
        );
        let obs = annotated("true")(at(600));
        let refused = validate_request(
            &settings(),
            &obs,
            &OpRecord::default(),
            &Request::RemoveNode("w5".into()),
        );
        assert!(
            refused.is_err_and(|r| r.0.contains(&format!("opted out ({key}"))),
            "{key}: an operator's removal is refused too"
        );
        let d = sustained(annotated("false"), 600);
        assert_eq!(
            d.action,
            Action::ScaleDown {
                node: "w5".into(),
                instance_id: "w5".into()
            },
            "{key}: \"false\" opts nothing out"
        );
    }
}

/// Every worker says where it stands: the chosen one is next, the other
/// eligible ones say who goes first or what holds the cluster back, and a
/// node that cannot go names why in the choice's own words.
#[test]
fn each_worker_says_where_it_stands_for_a_scale_down() {
    let with_db = |now| {
        let mut obs = cluster(5, 20.0, now);
        view_mut(&mut obs)
            .pods
            .push(pod("db-0", Some("w3"), 100, Some("StatefulSet")));
        obs
    };
    // Idle for 5 of 10 minutes: eligible, and when (only time holds it).
    let d = sustained_standing(with_db, 300);
    assert_eq!(d.standing.len(), 5, "{:?}", d.standing);
    assert!(
        d.standing["w5"].text.starts_with("removable in 5m · "),
        "{:?}",
        d.standing
    );
    assert_eq!(d.standing["w5"].kind, StandingKind::Eligible);
    assert_eq!(d.standing["w3"].kind, StandingKind::Blocked);
    assert_eq!(
        d.standing["w3"].text,
        "blocked: pod default/db-0 is owned by a StatefulSet (drain.evict_statefulsets = false)"
    );
    // Past the idle window: the newest goes, the rest wait behind it.
    let d = sustained_standing(with_db, 600);
    assert!(
        matches!(&d.action, Action::ScaleDown { node, .. } if node == "w5"),
        "{d:?}"
    );
    assert!(
        d.standing["w5"].text.starts_with("next to go · "),
        "{:?}",
        d.standing
    );
    assert_eq!(d.standing["w5"].kind, StandingKind::NextToGo);
    assert_eq!(d.standing["w4"].kind, StandingKind::Eligible);
    assert!(
        d.standing["w4"].text.starts_with("after w5 · "),
        "{:?}",
        d.standing
    );
    assert!(
        d.standing["w3"]
            .text
            .starts_with("blocked: pod default/db-0")
    );
    // Busy: every eligible worker says the cluster's CPU holds it.
    let d = sustained_standing(|now| cluster(5, 70.0, now), 0);
    assert!(
        d.standing["w1"]
            .text
            .starts_with("not now: CPU 70% ≥ 30% · "),
        "{:?}",
        d.standing
    );
    // Unknown data: nothing is claimed about any worker.
    let mut blind = cluster(5, 20.0, at(600));
    blind.cpu = Reading::unknown("prometheus down");
    assert!(
        once(&blind, &OpRecord::default(), at(600))
            .standing
            .is_empty()
    );
}

/// The choice names only five blocked nodes in its reasons; the column
/// still tells every node's outcome: with six nodes ruled out and the
/// rest packed too full to move, no node shows "eligible".
#[test]
fn past_five_blocked_nodes_every_outcome_is_still_told() {
    let d = sustained_standing(
        |now| {
            let mut obs = cluster(9, 10.0, now);
            let view = view_mut(&mut obs);
            for i in 1..=6 {
                let n = format!("w{i}");
                view.pods
                    .push(pod(&format!("db-{i}"), Some(&n), 100, Some("StatefulSet")));
            }
            for n in ["w7", "w8", "w9"] {
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
    assert!(d.action.is_hold(), "{d:?}");
    assert!(
        reasons(&d).contains("more node(s) not eligible"),
        "{}",
        reasons(&d)
    );
    assert_eq!(d.standing.len(), 9);
    for (node, standing) in &d.standing {
        assert_eq!(standing.kind, StandingKind::Blocked, "{node}: {standing:?}");
        assert!(
            standing.text.starts_with("blocked: "),
            "{node}: {standing:?}"
        );
    }
    for n in ["w7", "w8", "w9"] {
        assert_eq!(
            d.standing[n].text,
            "blocked: its pods would not fit on the remaining workers"
        );
    }
}

/// What holds a scale-down back is a concern the console marks; the
/// readings beside it are not. The flag is set where the reason is made,
/// so a pod named "blocked-job" or a node called "Unknown" marks nothing.
#[test]
fn a_blocked_scale_down_is_a_concern_and_the_readings_are_not() {
    let d = sustained_standing(
        |now| {
            let mut obs = cluster(5, 20.0, now);
            view_mut(&mut obs)
                .pods
                .push(pod("blocked-job", Some("w1"), 100, Some("ReplicaSet")));
            obs
        },
        300,
    );
    assert!(d.action.is_hold(), "{d:?}");
    let concerns: Vec<&str> = d
        .reasons
        .iter()
        .filter(|r| r.concern)
        .map(|r| r.as_str())
        .collect();
    assert_eq!(
        concerns,
        ["scale-down blocked: idle for 5m of 10m"],
        "{d:?}"
    );
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("CPU 20% < ") && !r.concern),
        "{d:?}"
    );
}

/// Past the idle window, inside the cooldown: when it ends. At
/// `min_workers`, no wait helps: no time is promised.
#[test]
fn removable_in_counts_the_cooldown_and_promises_nothing_at_min_workers() {
    let settings = settings();
    let mut memory = PolicyMemory::default();
    let now = at(900);
    let record = OpRecord {
        last_scale_end: Some(at(900 - 240)),
        ..OpRecord::default()
    };
    let mut d = None;
    for t in (0..=900).step_by(15) {
        let obs = cluster(5, 20.0, at(t));
        d = Some((decide(&settings, &mut memory, &obs, &record, at(t)), obs));
    }
    let (d, obs) = d.expect("ticks");
    let standing = super::policy::standing(&settings, &memory, &obs, &record, now, &d);
    assert!(
        standing["w5"].text.starts_with("removable in 6m · "),
        "{standing:?}"
    );
    let mut memory = PolicyMemory::default();
    let mut last = None;
    for t in (0..=300).step_by(15) {
        let obs = cluster(2, 20.0, at(t));
        last = Some((
            decide(&settings, &mut memory, &obs, &OpRecord::default(), at(t)),
            obs,
        ));
    }
    let (d, obs) = last.expect("ticks");
    let standing =
        super::policy::standing(&settings, &memory, &obs, &OpRecord::default(), at(300), &d);
    assert!(
        standing["w2"].text.starts_with("not now: ") && !standing["w2"].text.contains("removable"),
        "{standing:?}"
    );
}
