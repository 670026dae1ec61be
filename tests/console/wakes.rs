//! When a watch's wake brings the next tick forward (`Engine::until_next_tick`):
//! a pod's wake waits for the rest of its burst and keeps early ticks
//! apart; a node's is decided on at once. On a clock four times faster
//! than the machine's, so the figures are the simulated seconds.

use k3s_autoscaler::adapters::kube_watch::Wakes;
use k3s_autoscaler::config::Config;
use k3s_autoscaler::harness::demo::{Demo, DemoOptions, Speed};
use k3s_autoscaler::runtime::engine_loop::{MIN_EARLY_GAP, WAKE_DEBOUNCE};
use k3s_autoscaler::runtime::settings::engine_settings;
use k3s_autoscaler::runtime::{Engine, Mode};
use k3s_autoscaler::sim::ScenarioKind;
use std::time::Duration;

#[tokio::test]
async fn a_node_wake_skips_the_burst_wait_and_the_gap_a_pod_wake_keeps_them() {
    let config = Config::default();
    let options = DemoOptions {
        scenario: ScenarioKind::Steady,
        seed: 1,
        speed: Speed::Times(4.0),
        workers: None,
        start: None,
    };
    let demo = Demo::new(&config, &options, true);
    let mut engine = Engine::new(
        demo.ports.clone(),
        engine_settings(&config),
        None,
        Mode::ReadOnly,
    );
    let wakes = Wakes::default();
    engine.set_wake(wakes.clone());
    let interval = Duration::from_secs(60);
    let clock = demo.ports.clock.clone();
    let waited = |from: k3s_autoscaler::ports::Timestamp| clock.now().since(from);

    // A pod's wake: the tick comes after the burst's debounce.
    let from = clock.now();
    wakes.soon.notify_one();
    engine.until_next_tick(interval).await;
    let first = waited(from);
    assert!(first >= WAKE_DEBOUNCE && first < interval / 4, "{first:?}");

    // Another at once: early ticks stay MIN_EARLY_GAP apart.
    let from = clock.now();
    wakes.soon.notify_one();
    engine.until_next_tick(interval).await;
    let second = waited(from);
    assert!(
        second >= MIN_EARLY_GAP - Duration::from_millis(100) && second < interval / 4,
        "{second:?}"
    );

    // A node's wake right after: neither the burst's wait nor the gap.
    let from = clock.now();
    wakes.now.notify_one();
    engine.until_next_tick(interval).await;
    let node = waited(from);
    assert!(node < WAKE_DEBOUNCE, "a node's wake waited {node:?}");

    // No wake: the interval.
    let from = clock.now();
    engine.until_next_tick(Duration::from_secs(8)).await;
    assert!(waited(from) >= Duration::from_secs(8) - Duration::from_millis(100));
}
