//! Kubernetes Events on the simulated cluster, through the engine loop,
//! the executor and the event writer: a flash sale's pending pods hear
//! `TriggeredScaleUp` from the scale-up that is for them, a pod no worker
//! can take hears `NotTriggerScaleUp` with why (one event, its count
//! growing), a drained node hears `ScaleDown`; a read-only engine writes
//! none. (The staging stack reads them back through the façade's API.)

use super::circuit_breaker::run_for;
use k3s_autoscaler::config::Config;
use k3s_autoscaler::engine::events::{NOT_TRIGGER_SCALE_UP, SCALE_DOWN, TRIGGERED_SCALE_UP};
use k3s_autoscaler::harness::demo::{Demo, DemoOptions, Speed};
use k3s_autoscaler::ports::{ClusterEvent, Resources};
use k3s_autoscaler::runtime::events::EventRecorder;
use k3s_autoscaler::runtime::{Engine, Mode};
use k3s_autoscaler::sim::ScenarioKind;
use k3s_autoscaler::sim::ports::lock;

fn flash_sale_with_a_huge_job(read_only: bool) -> (Config, Demo) {
    let config = Config::default();
    let options = DemoOptions {
        scenario: ScenarioKind::FlashSale,
        seed: 11,
        speed: Speed::Max,
        workers: None,
        start: None,
    };
    let demo = Demo::new(&config, &options, read_only);
    let mut world = lock(&demo.world);
    // Four pods that take the spare room, so the sale's pods wait for
    // capacity (on CPU alone its scale-ups come before any pod waits)…
    world
        .workload
        .add_job("batch", 4, Resources::new(1_500, 1 << 30));
    // …and one that fits no worker at all.
    world
        .workload
        .add_job("render", 1, Resources::new(64_000, 1 << 30));
    drop(world);
    (config, demo)
}

fn events_with(demo: &Demo, reason: &str) -> Vec<ClusterEvent> {
    lock(&demo.world)
        .events
        .list(None)
        .into_iter()
        .filter(|e| e.reason == reason)
        .cloned()
        .collect()
}

fn with_events(mut engine: Engine, demo: &Demo) -> Engine {
    let owner = engine.owner().unwrap_or("read-only").to_string();
    engine.set_event_recorder(EventRecorder::start(demo.ports.cluster.clone(), &owner));
    engine
}

/// Let the writer task drain what the last ticks queued.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_flash_sale_tells_its_pods_and_nodes_where_kubectl_describe_looks() {
    let (config, demo) = flash_sale_with_a_huge_job(false);
    let engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 5);
    let mut engine = with_events(engine, &demo);
    run_for(&mut engine, &demo, &config, 6.0).await;
    settle().await;

    let (ups, downs, violations) = {
        let w = lock(&demo.world);
        (
            w.accounting.scale_ups,
            w.accounting.scale_downs,
            w.invariants.violations.clone(),
        )
    };
    assert_eq!(violations, vec![], "no invariant breached");
    assert!(
        ups >= 1 && downs >= 1,
        "{ups} scale-ups, {downs} scale-downs"
    );

    let triggered = events_with(&demo, TRIGGERED_SCALE_UP);
    assert!(!triggered.is_empty(), "no TriggeredScaleUp");
    assert!(
        triggered.iter().all(|e| e.regarding.kind == "Pod"
            && e.note.starts_with("pod triggered scale-up: +")
            && !e.regarding.uid.is_empty()),
        "{triggered:?}"
    );
    assert!(
        triggered
            .iter()
            .all(|e| !e.regarding.name.starts_with("render")),
        "the pod no worker can take never triggers one: {triggered:?}"
    );

    // The Job's pod: told why, once per note, its count grown over hours
    // of ticks (bumped, not re-created).
    let huge: Vec<_> = events_with(&demo, NOT_TRIGGER_SCALE_UP)
        .into_iter()
        .filter(|e| e.regarding.name.starts_with("render"))
        .collect();
    assert_eq!(huge.len(), 1, "one event for the pod and its why: {huge:?}");
    assert_eq!(
        huge[0].note,
        "pod didn't trigger scale-up: requests more than a new worker offers"
    );
    assert!(huge[0].count() > 100, "count {}", huge[0].count());

    let scale_downs = events_with(&demo, SCALE_DOWN);
    assert!(!scale_downs.is_empty(), "no ScaleDown event");
    assert!(
        scale_downs
            .iter()
            .all(|e| e.regarding.kind == "Node" && e.namespace() == "default"),
        "{scale_downs:?}"
    );
    assert!(scale_downs.len() as u32 <= downs + 1, "{scale_downs:?}");

    // Aggregated and rate-limited: far fewer writes than occurrences.
    let writes = lock(&demo.world).events.writes;
    let (written, _dropped, failed) = engine_stats(&engine);
    assert_eq!(failed, 0);
    assert_eq!(written, writes, "every write counted");
    assert!(writes < 2_000, "{writes} event writes in 6 h");
    let metrics = engine.metrics().render();
    assert!(
        metrics.contains(&format!("k3s_autoscaler_events_written_total {written}")),
        "{metrics}"
    );
}

fn engine_stats(engine: &Engine) -> (u64, u64, u64) {
    let text = engine.metrics().render();
    let read = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("k3s_autoscaler_events_{name}_total ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(-1.0) as u64
    };
    (read("written"), read("dropped"), read("failed"))
}

#[tokio::test]
async fn a_read_only_engine_writes_no_event_even_when_given_a_writer() {
    let (config, demo) = flash_sale_with_a_huge_job(true);
    let engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::ReadOnly, 5);
    let mut engine = with_events(engine, &demo);
    run_for(&mut engine, &demo, &config, 1.0).await;
    settle().await;
    let w = lock(&demo.world);
    assert!(w.events.is_empty(), "{:?}", w.events.list(None));
    assert_eq!(w.invariants.violations, vec![]);
}

/// RBAC that lets the engine create events but not patch them: each pod
/// and why stays one event (a refused bump keeps its event and waits five
/// minutes), not a new object every other tick.
#[tokio::test]
async fn without_patch_rights_a_waiting_pod_keeps_one_event() {
    let (config, demo) = flash_sale_with_a_huge_job(false);
    lock(&demo.world).events.forbid_patch = true;
    let engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 5);
    let mut engine = with_events(engine, &demo);
    run_for(&mut engine, &demo, &config, 3.0).await;
    settle().await;
    let huge: Vec<_> = events_with(&demo, NOT_TRIGGER_SCALE_UP)
        .into_iter()
        .filter(|e| e.regarding.name.starts_with("render"))
        .collect();
    assert_eq!(huge.len(), 1, "one event for the pod and its why: {huge:?}");
    let (written, _dropped, failed) = engine_stats(&engine);
    let forbidden = lock(&demo.world).events.forbidden;
    assert!(
        written >= 1 && failed >= 1,
        "{written} written, {failed} failed"
    );
    assert_eq!(failed, forbidden, "every refusal counted");
    // A refusal pauses the writer for five minutes: 3 h holds at most 36
    // pauses (and a refused batch stops at its first refusal).
    assert!(forbidden <= 40, "{forbidden} refused patches in 3 h");
}

/// No RBAC for events at all: one refusal, then five minutes of silence,
/// not every pending pod refused at every tick; the engine scales as ever.
#[tokio::test]
async fn without_any_event_rights_the_writer_asks_once_per_pause() {
    let (config, demo) = flash_sale_with_a_huge_job(false);
    lock(&demo.world).events.forbid_create = true;
    let engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 5);
    let mut engine = with_events(engine, &demo);
    run_for(&mut engine, &demo, &config, 3.0).await;
    settle().await;
    let w = lock(&demo.world);
    assert!(w.events.is_empty());
    assert!(w.accounting.scale_ups >= 1, "the engine scales regardless");
    assert_eq!(w.invariants.violations, vec![]);
    let forbidden = w.events.forbidden;
    drop(w);
    let (written, dropped, failed) = engine_stats(&engine);
    assert_eq!(written, 0);
    assert_eq!(failed, forbidden, "every refusal counted");
    assert!(
        (1..=40).contains(&forbidden),
        "{forbidden} refused creates in 3 h"
    );
    assert!(
        dropped > forbidden,
        "the rest are counted as dropped: {dropped}"
    );
}
