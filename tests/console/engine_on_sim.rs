//! The engine, executor and lock protocol against the simulated world:
//! locks between engines, fencing, crash recovery, a simulated day.

use crate::support::demo;
use k3s_autoscaler::config::Config;
use k3s_autoscaler::engine::operation::{self, Intent};
use k3s_autoscaler::engine::{LeaseRules, Request};
use k3s_autoscaler::harness::demo::{Demo, WorldWatch};
use k3s_autoscaler::ports::{
    AcquireRequest, LaunchRequest, Lease, OpKind, OpPhase, OpRecord, Origin, PortError,
};
use k3s_autoscaler::runtime::executor::{Executor, StartRequest};
use k3s_autoscaler::runtime::headless::{self, StopAfter};
use k3s_autoscaler::runtime::ids::IdSource;
use k3s_autoscaler::runtime::lease::{Acquired, LockClient};
use k3s_autoscaler::runtime::settings::engine_settings;
use k3s_autoscaler::runtime::{Engine, Mode, Shutdown};
use k3s_autoscaler::sim::ScenarioKind;
use k3s_autoscaler::sim::ports::lock;
use std::sync::Arc;
use std::time::Duration;

fn lock_client(demo: &Demo, owner: &str, seed: u64) -> LockClient {
    LockClient::new(
        demo.ports.state.clone(),
        demo.ports.clock.clone(),
        engine_settings(&Config::default()).lease,
        owner.to_string(),
        Arc::new(IdSource::seeded(seed)),
    )
}

fn executor(demo: &Demo, owner: &str, seed: u64) -> Executor {
    Executor::new(
        demo.ports.clone(),
        engine_settings(&Config::default()),
        lock_client(demo, owner, seed),
        Arc::new(IdSource::seeded(seed)),
    )
}

fn rules() -> LeaseRules {
    engine_settings(&Config::default()).lease
}

#[tokio::test]
async fn a_second_engine_cannot_take_a_held_lock_but_takes_an_expired_one() {
    let (_, demo) = demo(ScenarioKind::Steady, 1, false);
    let a = lock_client(&demo, "host-a:1:auto:a", 1);
    let b = lock_client(&demo, "host-b:2:auto:b", 2);
    let Acquired::Held(held_a) = a.acquire().await.unwrap() else {
        panic!("the first engine takes a free lock");
    };
    assert_eq!(held_a.lease.fence, 1);
    match b.acquire().await.unwrap() {
        Acquired::Busy(Some(holder)) => assert_eq!(holder.owner, "host-a:1:auto:a"),
        other => panic!("a held lock must not be taken: {other:?}"),
    }
    // Past the lease but inside the skew margin: still refused.
    demo.clock.advance(Duration::from_secs(63));
    assert!(matches!(b.acquire().await.unwrap(), Acquired::Busy(_)));
    // Past lease + skew margin: taken, with a higher fence.
    demo.clock.advance(Duration::from_secs(3));
    let Acquired::Held(held_b) = b.acquire().await.unwrap() else {
        panic!("an expired lock is taken over");
    };
    assert_eq!(held_b.lease.fence, 2);
    // A released lock is free at once.
    b.release(&held_b).await;
    assert!(matches!(a.acquire().await.unwrap(), Acquired::Held(h) if h.lease.fence == 3));
}

#[tokio::test]
async fn a_stale_holders_writes_are_refused_by_the_fence() {
    let (_, demo) = demo(ScenarioKind::Steady, 1, false);
    let state = demo.ports.state.clone();
    let now = demo.ports.clock.now();
    let request = |owner: &str, lease_id: &str, now| AcquireRequest {
        owner: owner.into(),
        lease_id: lease_id.into(),
        now,
        lease: rules().lease,
        skew_margin: rules().skew_margin,
    };
    let a = state
        .acquire(&request("a", "lease-a", now))
        .await
        .unwrap()
        .unwrap();
    let lease_a = Lease {
        owner: a.owner,
        lease_id: a.lease_id,
        fence: a.fence,
    };
    let record = operation::start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 1 },
        "op-a",
        Origin::Engine,
        vec![],
        1,
        now,
    );
    state
        .write_op(&lease_a, &OpRecord::default(), &record)
        .await
        .unwrap();

    // A pauses past its lease; B takes over.
    demo.clock.advance(Duration::from_secs(120));
    let later = demo.ports.clock.now();
    let b = state
        .acquire(&request("b", "lease-b", later))
        .await
        .unwrap()
        .unwrap();
    assert!(b.fence > lease_a.fence);

    let stale = operation::start(
        &record,
        &Intent::ScaleUp { count: 3 },
        "op-stale",
        Origin::Engine,
        vec![],
        1,
        later,
    );
    let refused = state.write_op(&lease_a, &record, &stale).await.unwrap_err();
    assert!(
        matches!(refused, PortError::PreconditionFailed(_)),
        "{refused}"
    );
    assert!(state.renew(&lease_a, later, rules().lease).await.is_err());
    assert!(state.release(&lease_a).await.is_err());
    // B's own write with the wrong expected revision is refused too.
    let lease_b = Lease {
        owner: b.owner,
        lease_id: b.lease_id,
        fence: b.fence,
    };
    assert!(
        state
            .write_op(&lease_b, &OpRecord::default(), &stale)
            .await
            .is_err()
    );
    assert_eq!(
        state.read().await.unwrap().record,
        record,
        "nothing stale was written"
    );
}

#[tokio::test]
async fn a_crash_after_launch_is_adopted_without_a_second_launch() {
    let (_, demo) = demo(ScenarioKind::Steady, 3, false);
    let state = demo.ports.state.clone();
    let now = demo.ports.clock.now();
    // Engine A: intent written, RunInstances done, then it dies before
    // recording Launched (and never releases the lock).
    let a = state
        .acquire(&AcquireRequest {
            owner: "a".into(),
            lease_id: "la".into(),
            now,
            lease: rules().lease,
            skew_margin: rules().skew_margin,
        })
        .await
        .unwrap()
        .unwrap();
    let lease_a = Lease {
        owner: a.owner,
        lease_id: a.lease_id,
        fence: a.fence,
    };
    let record = operation::start(
        &OpRecord::default(),
        &Intent::ScaleUp { count: 2 },
        "op-crash",
        Origin::Engine,
        vec![],
        a.fence,
        now,
    );
    state
        .write_op(&lease_a, &OpRecord::default(), &record)
        .await
        .unwrap();
    let first = demo
        .ports
        .cloud
        .launch(&LaunchRequest {
            op_id: "op-crash".into(),
            client_token: "k3sa-op-crash".into(),
            count: 2,
            instance_type: "t3.large".into(),
            subnet: None,
            master_address: "10.0.0.5".into(),
            k3s_version: "v1.33.1+k3s1".into(),
        })
        .await
        .unwrap();
    assert_eq!(first.len(), 2);

    // Engine B starts after A's lease expired and adopts the operation.
    demo.clock.advance(Duration::from_secs(70));
    let b = executor(&demo, "b", 9);
    let report = b.run(None, &Shutdown::new()).await;
    assert!(report.lock_taken, "{report:?}");
    let tagged = demo.ports.cloud.instances_for_op("op-crash").await.unwrap();
    assert_eq!(tagged.len(), 2, "no second launch");
    let stored = state.read().await.unwrap().record;
    let op = stored.op.unwrap();
    assert_eq!(op.phase, OpPhase::Verifying, "{:?}", report.steps);
    let OpKind::ScaleUp { instance_ids, .. } = &op.kind else {
        panic!()
    };
    let mut want: Vec<String> = first.iter().map(|i| i.id.clone()).collect();
    want.sort();
    let mut got = instance_ids.clone();
    got.sort();
    assert_eq!(got, want, "B recorded A's instances");
    assert_eq!(lock(&demo.world).invariants.violations, vec![]);

    // And B carries it to Done once the nodes are Ready.
    for _ in 0..12 {
        demo.clock.advance(Duration::from_secs(15));
        b.run(None, &Shutdown::new()).await;
    }
    assert_eq!(
        state.read().await.unwrap().record.phase(),
        Some(OpPhase::Done)
    );
}

#[tokio::test]
async fn an_operator_request_is_revalidated_under_the_lock() {
    let (_, demo) = demo(ScenarioKind::Steady, 4, false);
    let exec = executor(&demo, "op", 4);
    let nodes = demo.ports.cluster.nodes().await.unwrap();
    // Five workers, min 2: removing one is allowed and runs to Done.
    let report = exec
        .run(
            Some(StartRequest::Operator(Request::RemoveNode(
                nodes[4].name.clone(),
            ))),
            &Shutdown::new(),
        )
        .await;
    assert!(report.started.is_some(), "{report:?}");
    for _ in 0..4 {
        demo.clock.advance(Duration::from_secs(15));
        exec.run(None, &Shutdown::new()).await;
    }
    let record = demo.ports.state.read().await.unwrap().record;
    assert_eq!(record.phase(), Some(OpPhase::Done), "{:?}", record.op);
    // An unknown node is refused with the reason, and nothing starts.
    let report = exec
        .run(
            Some(StartRequest::Operator(Request::RemoveNode("nope".into()))),
            &Shutdown::new(),
        )
        .await;
    assert!(report.started.is_none());
    assert!(report.refused.unwrap().contains("not a known worker"));
    assert_eq!(lock(&demo.world).invariants.violations, vec![]);
}

#[tokio::test]
async fn read_only_never_takes_the_lock_or_changes_anything() {
    let (config, demo) = demo(ScenarioKind::FlashSale, 5, true);
    let settings = engine_settings(&config);
    let exec = executor(&demo, "ro", 5);
    let mut engine = Engine::new(demo.ports.clone(), settings, Some(exec), Mode::ReadOnly);
    let outcome = headless::run(
        &mut engine,
        demo.ports.clock.clone(),
        Duration::from_secs(15),
        StopAfter {
            ticks: Some(240),
            duration: None,
            full_last_interval: true,
        },
        Some(&mut WorldWatch::new(demo.world.clone())),
        &Shutdown::new(),
    )
    .await;
    assert_eq!(outcome.ticks, 240);
    let world = lock(&demo.world);
    assert_eq!(world.engines[0].mutating_calls, 0);
    assert!(world.table.lock.is_none(), "the lock was never taken");
    assert!(world.invariants.violations.is_empty());
    // The flash sale did call for a scale-up: read-only only logged it.
    assert!(!outcome.last.unwrap().decision.reasons.is_empty());
}

fn run_day(scenario: ScenarioKind, seed: u64, days: f64) -> k3s_autoscaler::sim::Summary {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (config, demo) = demo(scenario, seed, false);
        let settings = engine_settings(&config);
        let exec = executor(&demo, "auto", seed);
        let mut engine = Engine::new(demo.ports.clone(), settings, Some(exec), Mode::Auto);
        headless::run(
            &mut engine,
            demo.ports.clock.clone(),
            config.engine.interval.get(),
            StopAfter {
                ticks: Some((days * 5760.0) as u64),
                duration: None,
                full_last_interval: true,
            },
            Some(&mut WorldWatch::new(demo.world.clone())),
            &Shutdown::new(),
        )
        .await;
        lock(&demo.world).summary()
    })
}

#[test]
fn a_simulated_diurnal_day_scales_both_ways_within_bounds() {
    let started = std::time::Instant::now();
    for seed in [7, 8, 9] {
        let summary = run_day(ScenarioKind::Diurnal, seed, 1.0);
        assert_eq!(summary.simulated_hours, 24.0);
        assert!(summary.scale_ups >= 1, "seed {seed}: {summary:?}");
        assert!(summary.scale_downs >= 1, "seed {seed}: {summary:?}");
        assert!(summary.peak_workers <= 10, "seed {seed}: {summary:?}");
        assert_eq!(
            summary.invariant_violations, 0,
            "seed {seed}: {:?}",
            summary.violations
        );
        assert_eq!(summary.failed_operations, 0, "seed {seed}: {summary:?}");
    }
    // "finishes in seconds": generous for a debug build on a shared machine.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_flash_sale_is_absorbed_in_large_steps_and_never_exceeds_max() {
    let summary = run_day(ScenarioKind::FlashSale, 11, 0.5);
    assert!(summary.scale_ups >= 1, "{summary:?}");
    assert_eq!(
        summary.peak_workers, 10,
        "the 3x spike needs every allowed worker: {summary:?}"
    );
    assert_eq!(summary.invariant_violations, 0, "{:?}", summary.violations);
}

#[test]
fn the_same_seed_replays_the_same_day() {
    let a = run_day(ScenarioKind::DiurnalFlash, 21, 1.0);
    let b = run_day(ScenarioKind::DiurnalFlash, 21, 1.0);
    assert_eq!(a, b);
    let c = run_day(ScenarioKind::DiurnalFlash, 22, 1.0);
    assert_ne!(
        a.worker_hours, c.worker_hours,
        "a different seed is a different day"
    );
}

/// A cluster-wide pause written by one process (here `set_pause`, what the
/// `pause` command runs) stops another engine: nothing starts, an
/// operation in flight waits; `resume` lets both go on.
#[tokio::test]
async fn a_cluster_pause_stops_another_engine_until_resumed() {
    use k3s_autoscaler::runtime::pause::set_pause;
    let (config, demo) = demo(ScenarioKind::FlashSale, 1, false);
    let mut engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 7);
    let shutdown = Shutdown::new();
    let lease_rules = rules();
    let pause = |d: Option<u64>| {
        set_pause(
            demo.ports.state.clone(),
            demo.ports.clock.clone(),
            &lease_rules,
            "alice@laptop",
            d.map(|m| (Duration::from_secs(m * 60), "migrating the database".into())),
        )
    };
    let record = || lock(&demo.world).table.record.clone();
    pause(Some(120)).await.unwrap();

    // Paused through the flash sale's first 20 minutes: nothing starts.
    let launched_before = lock(&demo.world).fleet.instances.len();
    let mut wanted_to = 0;
    for _ in 0..80 {
        let report = engine.tick(None, &shutdown).await;
        assert!(report.exec.is_none(), "no executor run while paused");
        assert!(
            report
                .decision
                .reasons
                .iter()
                .any(|r| r.contains("cluster paused by alice@laptop") && r.contains("migrating")),
            "{:?}",
            report.decision.reasons
        );
        if report
            .decision
            .reasons
            .iter()
            .any(|r| r.contains("unschedulable"))
        {
            wanted_to += 1;
        }
        demo.ports.clock.sleep(Duration::from_secs(15)).await;
    }
    assert!(record().op.is_none(), "{:?}", record().op);
    assert_eq!(lock(&demo.world).fleet.instances.len(), launched_before);

    // Resumed: the same engine scales up within a few ticks (the control
    // that shows the pause, not the load, held it back).
    let previous = pause(None).await.unwrap();
    assert_eq!(previous.map(|p| p.by), Some("alice@laptop".to_string()));
    let mut started = None;
    for _ in 0..8 {
        let report = engine.tick(None, &shutdown).await;
        if let Some(id) = report.exec.and_then(|e| e.started) {
            started = Some(id);
            break;
        }
        demo.ports.clock.sleep(Duration::from_secs(15)).await;
    }
    let started =
        started.unwrap_or_else(|| panic!("no scale-up after resume ({wanted_to} pending ticks)"));
    let in_flight = record();
    let op = in_flight.op.clone().unwrap();
    assert_eq!(op.id, started);
    assert!(op.is_in_flight(), "{op:?}");

    // Paused mid-operation: it waits where it is, nodes joining or not.
    pause(Some(30)).await.unwrap();
    let paused_rev = record().rev;
    for _ in 0..20 {
        engine.tick(None, &shutdown).await;
        demo.ports.clock.sleep(Duration::from_secs(15)).await;
    }
    let waited = record();
    assert_eq!(waited.rev, paused_rev, "no write while paused");
    assert_eq!(waited.op.as_ref().map(|o| o.phase), Some(op.phase));

    pause(None).await.unwrap();
    for _ in 0..12 {
        engine.tick(None, &shutdown).await;
        demo.ports.clock.sleep(Duration::from_secs(15)).await;
    }
    let done = record().op.unwrap();
    assert_eq!(
        (done.id.as_str(), done.phase),
        (started.as_str(), OpPhase::Done)
    );
    assert_eq!(lock(&demo.world).invariants.violations.len(), 0);
}

/// Half an hour of `--auto` on a steady cluster that also holds twelve
/// large pods Pending; returns the scale-ups and the last reasons.
fn half_hour_with_pending_job(gated: bool) -> (u32, Vec<k3s_autoscaler::engine::Reason>) {
    use k3s_autoscaler::ports::Resources;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (config, demo) = demo(ScenarioKind::Steady, 3, false);
        {
            let mut w = lock(&demo.world);
            w.workload
                .add_gated_job("queued", 12, Resources::new(1_500, 1 << 30));
            if !gated {
                // The control: the same Job with its gate lifted.
                for c in &mut w.workload.controllers {
                    c.scheduling_gates.clear();
                }
            }
        }
        let settings = engine_settings(&config);
        let exec = executor(&demo, "auto", 3);
        let mut engine = Engine::new(demo.ports.clone(), settings, Some(exec), Mode::Auto);
        let outcome = headless::run(
            &mut engine,
            demo.ports.clock.clone(),
            config.engine.interval.get(),
            StopAfter {
                ticks: Some(120),
                duration: None,
                full_last_interval: true,
            },
            Some(&mut WorldWatch::new(demo.world.clone())),
            &Shutdown::new(),
        )
        .await;
        let reasons = outcome.last.map(|t| t.decision.reasons).unwrap_or_default();
        let w = lock(&demo.world);
        let summary = w.summary();
        assert_eq!(summary.invariant_violations, 0, "{:?}", summary.violations);
        if gated {
            // The scheduler left them alone: never placed, never found
            // unschedulable (so the engine's own gate check is not the
            // only thing keeping them out).
            let queued: Vec<_> = w
                .workload
                .pods
                .values()
                .filter(|p| p.controller == "queued")
                .collect();
            assert_eq!(queued.len(), 12);
            assert!(
                queued
                    .iter()
                    .all(|p| p.node.is_none() && p.unschedulable_since.is_none()),
                "{queued:?}"
            );
        }
        (summary.scale_ups, reasons)
    })
}

/// Pods held by a scheduling gate wait for their gate, not for
/// capacity. Twelve of them, each too big for the free room, trigger no
/// scale-up in half an hour; the same Job ungated does.
#[test]
fn gated_pods_trigger_no_scale_up_and_the_same_pods_ungated_do() {
    let (gated_ups, reasons) = half_hour_with_pending_job(true);
    assert_eq!(gated_ups, 0, "gated pods scaled the fleet: {reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("0 pending")),
        "gated pods are not pending pods: {reasons:?}"
    );
    let (ungated_ups, reasons) = half_hour_with_pending_job(false);
    assert!(ungated_ups >= 1, "the control must scale up: {reasons:?}");
}
