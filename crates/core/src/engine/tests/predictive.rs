//! Predictive pre-warm through `decide`: a sale every two hours, seen for
//! six hours, is launched for ahead of time only when the forecast is on,
//! never past `max_workers`, and holds a scale-down the sale will undo.

use super::*;
use crate::engine::decision::StandingKind;
use crate::ports::Timestamp;

/// Minute `m` is in a sale (20 minutes every 2 hours).
fn in_sale(m: i64) -> bool {
    m.rem_euclid(120) < 20
}

/// The load: CPU outside and during a sale, and the 300m pods a sale
/// leaves waiting (since it began).
#[derive(Clone, Copy)]
struct Load {
    workers: usize,
    quiet_cpu: f64,
    sale_cpu: f64,
    sale_pods: usize,
}

/// A sale's 18 pods need 3 workers more than the 4 there are (6 of 300m
/// fit a worker offering 1 800m), and its CPU 6 in all (4 at 90 % for a
/// 60 % target).
const SALE: Load = Load {
    workers: 4,
    quiet_cpu: 50.0,
    sale_cpu: 90.0,
    sale_pods: 18,
};

fn world(load: Load, now: Timestamp) -> Observation {
    let Load {
        workers,
        quiet_cpu,
        sale_cpu,
        sale_pods,
    } = load;
    let m = (now.0 - T0.0).div_euclid(60_000);
    let cpu = if in_sale(m) { sale_cpu } else { quiet_cpu };
    let mut obs = cluster(workers, cpu, now);
    if in_sale(m) {
        let began = at((m - m.rem_euclid(120)) * 60);
        for i in 0..sale_pods {
            view_mut(&mut obs)
                .pods
                .push(pending_pod(&format!("sale-{i}"), 300, began));
        }
    }
    obs
}

/// Decide every 15 s from 0 up to `secs`, and return the last decision
/// and the memory.
fn run(settings: &Settings, load: Load, secs: i64) -> (Decision, PolicyMemory) {
    let mut memory = PolicyMemory::default();
    let mut last = None;
    for t in (0..=secs).step_by(15) {
        let now = at(t);
        let obs = world(load, now);
        last = Some(decide(
            settings,
            &mut memory,
            &obs,
            &OpRecord::default(),
            now,
        ));
    }
    (last.expect("a tick"), memory)
}

fn predictive(on: bool) -> Settings {
    let mut s = Settings::default();
    s.policy.predictive = on;
    s
}

fn text(d: &Decision) -> String {
    d.reasons
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Minute `m` and `s` seconds, in seconds.
fn ms(m: i64, s: i64) -> i64 {
    m * 60 + s
}

#[test]
fn a_sale_seen_before_is_launched_for_one_lead_ahead_only_with_the_forecast_on() {
    // The lead is 3 min (no boot timed here) and a tick: a launch at
    // 356:45 joins by 360:00, when the sale begins.
    let (d, _) = run(&predictive(true), SALE, ms(356, 45));
    assert_eq!(d.action, Action::ScaleUp { count: 2 }, "{}", text(&d));
    assert!(
        text(&d).contains("+2 ahead of the forecast: 6 worker(s) needed in 3m15s, 4 there"),
        "{}",
        text(&d)
    );
    assert!(text(&d).contains("period 2h"), "{}", text(&d));
    // Not a tick earlier: the next tick's launch still joins in time.
    let (d, _) = run(&predictive(true), SALE, ms(356, 30));
    assert_eq!(d.action, Action::Hold, "{}", text(&d));
    let (d, _) = run(&predictive(true), SALE, ms(340, 0));
    assert_eq!(d.action, Action::Hold, "{}", text(&d));
    assert!(
        text(&d).contains("forecast: 4 worker(s) needed"),
        "{}",
        text(&d)
    );
    // Off (the default): the same history, nothing ahead, no forecast line.
    let (d, memory) = run(&Settings::default(), SALE, ms(356, 45));
    assert_eq!(d.action, Action::Hold, "{}", text(&d));
    assert!(!text(&d).contains("forecast"), "{}", text(&d));
    assert_eq!(
        memory.demand,
        Default::default(),
        "nothing recorded when off"
    );
}

#[test]
fn a_peak_beyond_one_batch_is_launched_for_a_cycle_earlier() {
    // 45 pods need 9 workers: 2 more than a batch of 3 adds to the 4.
    let big = Load {
        sale_pods: 45,
        sale_cpu: 60.0,
        ..SALE
    };
    let s = predictive(true);
    // 4 + 3 + 3 > 9 needed at 360: the first launch is due one cycle
    // (lead 3m15s, cooldown 1m, a tick: 4m30s) earlier than one batch's.
    let (d, _) = run(&s, big, ms(352, 15));
    assert_eq!(d.action, Action::ScaleUp { count: 3 }, "{}", text(&d));
    assert!(
        text(&d).contains("9 worker(s) needed in 7m45s"),
        "{}",
        text(&d)
    );
    let (d, _) = run(&s, big, ms(352, 0));
    assert_eq!(d.action, Action::Hold, "{}", text(&d));
}

#[test]
fn a_pre_warm_never_goes_past_max_workers() {
    let mut s = predictive(true);
    s.policy.max_workers = 5;
    let (d, _) = run(&s, SALE, ms(356, 45));
    assert_eq!(d.action, Action::ScaleUp { count: 1 }, "{}", text(&d));
    s.policy.max_workers = 4;
    let (d, _) = run(&s, SALE, ms(356, 45));
    assert_eq!(d.action, Action::Hold, "{}", text(&d));
    assert!(
        text(&d).contains("forecast: 6 worker(s) needed"),
        "{}",
        text(&d)
    );
    assert!(!text(&d).contains("ahead of the forecast"), "{}", text(&d));
}

#[test]
fn a_pre_warm_waits_for_the_cooldown_and_a_pause() {
    let s = predictive(true);
    let (_, memory) = run(&s, SALE, ms(356, 30));
    let now = at(ms(356, 45));
    let obs = world(SALE, now);
    let decide_with = |record: &OpRecord| decide(&s, &mut memory.clone(), &obs, record, now);
    assert_eq!(
        decide_with(&OpRecord::default()).action,
        Action::ScaleUp { count: 2 }
    );
    // A scale-up verified 30 s ago: the 1-minute cooldown holds this one.
    let cooled = OpRecord {
        last_scale_up: Some(at(ms(356, 15))),
        ..OpRecord::default()
    };
    let d = decide_with(&cooled);
    assert_eq!(d.action, Action::Hold, "{}", text(&d));
    assert!(text(&d).contains("cooldown"), "{}", text(&d));
    // An operator's pause holds it.
    let paused = OpRecord {
        pause: Some(crate::ports::Pause {
            by: "ops".into(),
            reason: "migration".into(),
            since: at(ms(350, 0)),
            until: at(ms(400, 0)),
            circuit: false,
        }),
        ..OpRecord::default()
    };
    assert_eq!(decide_with(&paused).action, Action::Hold);
}

#[test]
fn a_static_worker_the_selector_matches_counts_as_capacity() {
    // One of the four Ready workers is no managed instance of ours: the
    // sale needs 6, 4 are there, so +2 as before; counted against the
    // managed 3 alone it would be +3, and the extra one taken back by
    // the next scale-down.
    let s = predictive(true);
    let mut memory = PolicyMemory::default();
    let mut last = None;
    for t in (0..=ms(356, 45)).step_by(15) {
        let now = at(t);
        let mut obs = world(SALE, now);
        if let Ok(fleet) = obs.fleet.as_mut() {
            fleet.retain(|i| i.id != "w1");
        }
        last = Some(decide(&s, &mut memory, &obs, &OpRecord::default(), now));
    }
    let d = last.expect("a tick");
    assert_eq!(d.action, Action::ScaleUp { count: 2 }, "{}", text(&d));
    assert!(text(&d).contains("4 there"), "{}", text(&d));
}

#[test]
fn an_implausible_view_is_not_recorded_nor_acted_on() {
    let s = predictive(true);
    let (_, memory) = run(&s, SALE, ms(356, 30));
    let now = at(ms(356, 45));
    // Half the nodes gone from the list in one tick: the sanity stop.
    let mut obs = world(SALE, now);
    view_mut(&mut obs).nodes.truncate(1);
    let mut after = memory.clone();
    after.last_nodes = Some(4);
    let d = decide(&s, &mut after, &obs, &OpRecord::default(), now);
    assert!(d.sanity_stop.is_some(), "{}", text(&d));
    assert!(!text(&d).contains("ahead of the forecast"), "{}", text(&d));
    assert_eq!(after.demand, memory.demand, "not recorded");
}

#[test]
fn a_scale_down_the_coming_sale_would_undo_is_held() {
    // 7 idle workers (CPU 20 % for long past idle_for); the sale's 24
    // pods and its CPU need all 7 again at minute 360.
    let idle = Load {
        workers: 7,
        quiet_cpu: 20.0,
        sale_cpu: 60.0,
        sale_pods: 24,
    };
    let s = predictive(true);
    let (d, memory) = run(&s, idle, ms(356, 45));
    assert_eq!(d.action, Action::Hold, "{}", text(&d));
    assert!(
        text(&d).contains("scale-down held: the forecast needs 7 worker(s) in 3m15s"),
        "{}",
        text(&d)
    );
    // The console's column agrees: no worker is "next to go".
    let now = at(ms(356, 45));
    let standing = policy::standing(
        &s,
        &memory,
        &world(idle, now),
        &OpRecord::default(),
        now,
        &d,
    );
    assert_eq!(standing.len(), 7);
    for (node, st) in &standing {
        assert_ne!(st.kind, StandingKind::NextToGo, "{node}: {}", st.text);
        assert!(
            st.text.contains("the forecast needs 7 worker(s)"),
            "{node}: {}",
            st.text
        );
    }
    // Without the forecast the idle worker goes.
    let (d, _) = run(&Settings::default(), idle, ms(356, 45));
    assert!(matches!(d.action, Action::ScaleDown { .. }), "{}", text(&d));
}

#[test]
fn a_blind_tick_keeps_the_demand_history() {
    let s = predictive(true);
    let (_, mut memory) = run(&s, SALE, ms(200, 0));
    let before = memory.demand.clone();
    assert_ne!(before, Default::default());
    let now = at(ms(200, 15));
    let mut blind = world(SALE, now);
    blind.cpu = Reading::Unknown {
        reason: "connection refused".into(),
    };
    let d = decide(&s, &mut memory, &blind, &OpRecord::default(), now);
    assert_eq!(d.action, Action::Hold);
    assert_eq!(memory.demand, before);
}
