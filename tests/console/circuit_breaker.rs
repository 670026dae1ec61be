//! The circuit breaker on the simulated cluster: with every launch
//! failing to join (the simulator's never-join fault at 100 %), `--auto`
//! opens the circuit after three, stops launching, leaves nothing it
//! launched running, and starts again only when the operator resumes.

use k3s_autoscaler::app::App;
use k3s_autoscaler::app::keymap::Keymap;
use k3s_autoscaler::config::Config;
use k3s_autoscaler::harness::demo::{Demo, DemoOptions, Speed, WorldWatch};
use k3s_autoscaler::ports::Pause;
use k3s_autoscaler::runtime::headless::{self, StopAfter};
use k3s_autoscaler::runtime::pause::set_pause;
use k3s_autoscaler::runtime::settings::engine_settings;
use k3s_autoscaler::runtime::{Engine, Mode, Shutdown};
use k3s_autoscaler::sim::ScenarioKind;
use k3s_autoscaler::sim::ports::lock;
use std::collections::BTreeMap;
use std::time::Duration;

/// A flash sale on a cluster whose launches never join.
pub(crate) fn broken_launches(circuit: bool) -> (Config, Demo) {
    let mut config = Config::default();
    config.demo.never_join_probability = 1.0;
    config.circuit.enabled = circuit;
    let options = DemoOptions {
        scenario: ScenarioKind::FlashSale,
        seed: 3,
        speed: Speed::Max,
        workers: None,
        start: None,
    };
    let demo = Demo::new(&config, &options, false);
    (config, demo)
}

pub(crate) async fn run_for(engine: &mut Engine, demo: &Demo, config: &Config, hours: f64) {
    let ticks = (hours * 3600.0 / config.engine.interval.get().as_secs_f64()) as u64;
    headless::run(
        engine,
        demo.ports.clock.clone(),
        config.engine.interval.get(),
        StopAfter {
            ticks: Some(ticks),
            duration: None,
            full_last_interval: true,
        },
        Some(&mut WorldWatch::new(demo.world.clone())),
        &Shutdown::new(),
    )
    .await;
}

fn console(config: &Config, now: k3s_autoscaler::ports::Timestamp) -> App {
    App::new(
        config.cluster.name.clone(),
        true,
        false,
        Keymap::new(false, &BTreeMap::new()).unwrap(),
        engine_settings(config),
        now,
    )
}

/// `k3s-autoscaler resume`, as alice: the pause it lifted.
pub(crate) async fn resume(demo: &Demo, config: &Config) -> Option<k3s_autoscaler::ports::Pause> {
    set_pause(
        demo.ports.state.clone(),
        demo.ports.clock.clone(),
        &engine_settings(config).lease,
        "alice@laptop",
        None,
    )
    .await
    .unwrap()
}

/// Instances launched so far, and how many of them are still live.
fn launched(demo: &Demo) -> (usize, usize) {
    let world = lock(&demo.world);
    let ours: Vec<_> = world
        .fleet
        .instances
        .values()
        .filter(|i| i.op_id.is_some())
        .collect();
    (
        ours.len(),
        ours.iter().filter(|i| i.state.is_live()).count(),
    )
}

#[tokio::test]
async fn launches_that_never_join_open_the_circuit_and_only_the_clean_up_goes_on() {
    let (config, demo) = broken_launches(true);
    let mut engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 5);
    run_for(&mut engine, &demo, &config, 3.0).await;

    let (record, opened, violations) = {
        let world = lock(&demo.world);
        (
            world.table.record.clone(),
            world.accounting.circuit_opened,
            world.invariants.violations.clone(),
        )
    };
    assert_eq!(violations, vec![], "no invariant breached");
    assert_eq!(opened, 1, "opened once, and stays open: {record:?}");
    let pause = record.pause.clone().expect("the circuit's pause");
    assert!(pause.circuit, "{pause:?}");
    assert!(
        pause
            .reason
            .contains("launched instances never joined within 1h"),
        "{}",
        pause.reason
    );
    // Nothing launched after it opened, and nothing launched before is
    // left running (each failed scale-up terminated its own; the clean-up
    // a stray still gets under an open circuit is the engine's unit test
    // `an_open_circuit_lets_only_the_clean_up_run`).
    let after: Vec<String> = lock(&demo.world)
        .fleet
        .instances
        .values()
        .filter(|i| i.op_id.is_some() && i.launched_at > pause.since)
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(
        after,
        Vec::<String>::new(),
        "launched after the circuit opened"
    );
    let (total, live) = launched(&demo);
    assert!(total >= 3, "{total} launched");
    assert_eq!(live, 0, "every launch that never joined was terminated");
    // Every tick says why it holds, and the console's header says the
    // circuit is open, not that someone paused.
    let report = engine.tick(None, &Shutdown::new()).await;
    assert!(report.exec.is_none(), "{:?}", report.exec);
    assert!(
        report
            .decision
            .reasons
            .iter()
            .any(|r| r.concern && r.contains("paused by the circuit breaker")),
        "{:?}",
        report.decision.reasons
    );
    let metrics = engine.metrics().render();
    assert!(
        metrics.contains("k3s_autoscaler_circuit_open 1")
            && metrics.contains("k3s_autoscaler_circuit_opened_total 1"),
        "{metrics}"
    );
    let mut app = console(&config, report.at);
    crate::support::show(&demo, &engine, &mut app, report).await;
    let screen = crate::support::screen(&app, 220, 45);
    assert!(
        screen.contains("CIRCUIT OPEN") && screen.contains("(P resumes)"),
        "{screen}"
    );
    assert!(!screen.contains("CLUSTER PAUSED"), "{screen}");

    // Resumed by the operator: the engine launches again when the load
    // asks for it.
    let previous = resume(&demo, &config).await;
    assert!(previous.is_some_and(|p| p.circuit));
    let resumed_at = demo.ports.clock.now();
    // Long enough for the next sale (every two hours) to want workers.
    run_for(&mut engine, &demo, &config, 2.5).await;
    let relaunched = lock(&demo.world)
        .fleet
        .instances
        .values()
        .filter(|i| i.op_id.is_some() && i.launched_at > resumed_at)
        .count();
    let report = engine.tick(None, &Shutdown::new()).await;
    assert!(
        relaunched >= 1,
        "no launch after resume: {:?}",
        report.decision.reasons
    );
    assert_eq!(lock(&demo.world).invariants.violations, vec![]);
}

/// The control: the same cluster without the circuit breaker keeps
/// launching (backing off) for the whole run.
#[tokio::test]
async fn without_it_the_same_cluster_keeps_launching() {
    let (config, demo) = broken_launches(false);
    let mut engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 5);
    run_for(&mut engine, &demo, &config, 3.0).await;
    let world = lock(&demo.world);
    assert_eq!(world.accounting.circuit_opened, 0);
    assert_eq!(world.table.record.pause, None);
    let last_hour = world
        .fleet
        .instances
        .values()
        .filter(|i| i.op_id.is_some() && world.now.since(i.launched_at) < Duration::from_secs(3600))
        .count();
    assert!(last_hour >= 1, "still launching in the third hour");
}

/// Through the engine loop and the executor, not only `decide`: under the
/// circuit's pause a launch of this tool that never joined is terminated;
/// under a person's pause, the same world keeps it.
#[tokio::test]
async fn under_an_open_circuit_the_clean_up_runs_and_under_a_persons_pause_it_waits() {
    for circuit in [true, false] {
        let (config, demo) = crate::support::demo(ScenarioKind::Steady, 11, false);
        let drift = lock(&demo.world).inject_drift();
        {
            let mut world = lock(&demo.world);
            let now = world.now;
            // The drift's scale-up in flight would wait under either pause
            // (only a clean-up advances under the circuit's): the circuit
            // opens only when an operation ends, so none is in flight.
            world.table.record.op = None;
            world.table.record.rev += 1;
            world.table.record.pause = Some(Pause {
                by: if circuit {
                    k3s_autoscaler::engine::circuit::CIRCUIT_BREAKER.into()
                } else {
                    "alice@laptop".into()
                },
                reason: "held for the test".into(),
                since: now,
                until: now.plus(Duration::from_secs(3600)),
                circuit,
            });
        }
        let mut engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 11);
        let mut started = Vec::new();
        for _ in 0..8 {
            let report = engine.tick(None, &Shutdown::new()).await;
            started.extend(report.exec.and_then(|e| e.started));
            demo.ports.clock.sleep(Duration::from_secs(15)).await;
        }
        let world = lock(&demo.world);
        let live = world.fleet.instances[&drift.never_joined].state.is_live();
        assert_eq!(live, !circuit, "circuit {circuit}: started {started:?}");
        assert_eq!(started.len(), usize::from(circuit), "{started:?}");
        // The stray cordon and the ghost are not clean-ups of launches:
        // left alone under either pause.
        assert!(world.fleet.nodes[&drift.stray_cordon].cordoned);
        assert!(world.fleet.nodes.contains_key(&drift.ghost_node));
        assert_eq!(world.invariants.violations, vec![]);
    }
}
