//! Timelines from ticks, and their percentiles.

use super::*;
use crate::engine::testkit::*;
use crate::ports::Instance;

fn launched(id: &str, state: InstanceState) -> Instance {
    let mut i = instance(id);
    i.op_id = Some("op-1".into());
    i.launched_at = at(0);
    i.state = state;
    i
}

/// One launch seen at each step: pending, running, registered (created
/// 40 s in), Ready (since 70 s), untainted at 90 s.
#[test]
fn a_launch_seen_tick_by_tick_gets_each_steps_time() {
    let mut memory = BootMemory::default();
    let mut obs = cluster(2, 50.0, at(0));
    let mut step = |obs: &mut Observation, secs: i64, state, node: Option<(bool, bool)>| {
        let now = at(secs);
        obs.fleet = Ok(vec![launched("i-new", state)]);
        view_mut(obs).nodes.retain(|n| n.name != "i-new");
        if let Some((ready, tainted)) = node {
            let mut n = crate::engine::testkit::node("i-new", 40);
            n.created = at(40);
            n.ready = ready;
            n.ready_since = if ready { at(70) } else { at(40) };
            n.startup_taint = tainted;
            view_mut(obs).nodes.push(n);
        }
        memory.observe(obs, now)
    };
    assert!(step(&mut obs, 0, InstanceState::Pending, None).is_empty());
    assert!(step(&mut obs, 15, InstanceState::Running, None).is_empty());
    assert!(step(&mut obs, 45, InstanceState::Running, Some((false, true))).is_empty());
    assert!(step(&mut obs, 75, InstanceState::Running, Some((true, true))).is_empty());
    let done = step(&mut obs, 90, InstanceState::Running, Some((true, false)));
    assert_eq!(done.len(), 1, "verified on this tick");
    let t = &done[0];
    assert_eq!(
        t.durations(),
        vec![
            ("running", Duration::from_secs(15)),
            ("registered", Duration::from_secs(25)),
            ("ready", Duration::from_secs(30)),
            ("verified", Duration::from_secs(20)),
            ("total", Duration::from_secs(90)),
        ]
    );
    assert_eq!(
        t.summary(),
        "1m30s: running 15s · registered 25s · Ready 30s · verified 20s"
    );
    // Finished once: a later tick does not finish it again.
    assert!(step(&mut obs, 105, InstanceState::Running, Some((true, false))).is_empty());
    let stats = memory.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].steps["total"], (90.0, 90.0));
}

#[test]
fn a_launch_that_never_joined_is_no_boot_time_and_an_old_one_is_not_timed() {
    let mut memory = BootMemory::default();
    let mut obs = cluster(2, 50.0, at(0));
    obs.fleet = Ok(vec![launched("i-stray", InstanceState::Running)]);
    memory.observe(&obs, at(30));
    assert_eq!(memory.timelines().len(), 1);
    obs.fleet = Ok(vec![launched("i-stray", InstanceState::Terminated)]);
    memory.observe(&obs, at(700));
    assert!(memory.timelines().is_empty());
    assert!(memory.stats().is_empty());
    // First seen two hours after its launch: its steps were not watched.
    obs.fleet = Ok(vec![launched("i-old", InstanceState::Running)]);
    memory.observe(&obs, at(7200));
    assert!(memory.timelines().is_empty());
}

/// An engine (or a console) that starts 40 minutes after a scale-up sees
/// its instances running, registered, Ready and untainted at once: timed
/// from that sighting, the launch would read a 40-minute `running` step
/// and put it into p95. Not watched from the start, not timed; one still
/// pending is (its steps are all ahead).
#[test]
fn a_launch_first_seen_long_after_it_started_is_not_timed() {
    let mut memory = BootMemory::default();
    let mut obs = cluster(2, 50.0, at(0));
    let mut late = crate::engine::testkit::node("i-late", 40);
    late.created = at(40);
    late.ready = true;
    late.ready_since = at(70);
    late.startup_taint = false;
    view_mut(&mut obs).nodes.push(late);
    obs.fleet = Ok(vec![
        launched("i-late", InstanceState::Running),
        launched("i-slow", InstanceState::Pending),
    ]);
    let finished = memory.observe(&obs, at(2400));
    assert!(finished.is_empty(), "{finished:?}");
    assert!(memory.of("i-late").is_none());
    assert!(memory.stats().is_empty());
    // A launch stuck in pending is watched: running is still ahead.
    assert!(memory.of("i-slow").is_some());
}

#[test]
fn percentiles_are_per_type_and_zone_by_nearest_rank() {
    let timelines: Vec<BootTimeline> = (0..20)
        .map(|k| BootTimeline {
            instance_id: format!("i-{k}"),
            op_id: "op".into(),
            instance_type: "t3.large".into(),
            zone: "eu-west-1a".into(),
            launched: at(0),
            running: Some(at(10)),
            registered: Some(at(30)),
            ready: Some(at(40)),
            verified: Some(at(60 + k)),
        })
        .collect();
    let stats = stats(timelines.iter());
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].count, 20);
    assert_eq!(stats[0].steps["total"], (69.0, 78.0));
    assert_eq!(stats[0].steps["running"], (10.0, 10.0));
}
