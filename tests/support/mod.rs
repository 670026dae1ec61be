//! Shared by the integration tests: a console state grown from a seeded
//! simulated cluster on a manual clock, so screens are reproducible.
#![allow(dead_code)]

use k3s_autoscaler::app::keymap::Keymap;
use k3s_autoscaler::app::{App, Msg, Snapshot, update};
use k3s_autoscaler::config::Config;
use k3s_autoscaler::engine::Mode;
use k3s_autoscaler::runtime::Shutdown;
use k3s_autoscaler::runtime::demo::{self, Demo, DemoOptions, Speed};
use k3s_autoscaler::runtime::settings::engine_settings;
use k3s_autoscaler::sim::ScenarioKind;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn demo(scenario: ScenarioKind, seed: u64, read_only: bool) -> (Config, Demo) {
    let config = Config::default();
    let options = DemoOptions {
        scenario,
        seed,
        speed: Speed::Max,
        workers: None,
        start: None,
    };
    let demo = Demo::new(&config, &options, read_only);
    (config, demo)
}

/// Run the supervised (or read-only) engine `ticks` times on the seeded
/// flash sale and feed every snapshot to a fresh console state.
pub async fn seeded_app(read_only: bool, ticks: usize) -> App {
    let mode = if read_only {
        Mode::ReadOnly
    } else {
        Mode::Supervised
    };
    let (config, demo) = demo(ScenarioKind::FlashSale, 1, read_only);
    let mut engine = demo::engine_on(&demo, &config, mode, 1);
    let keymap = Keymap::new(read_only, &BTreeMap::new()).unwrap();
    let mut app = App::new(
        config.cluster.name.clone(),
        true,
        read_only,
        keymap,
        engine_settings(&config),
        demo.ports.clock.now(),
    );
    let shutdown = Shutdown::new();
    for _ in 0..ticks {
        let report = engine.tick(None, &shutdown).await;
        let cpu = demo
            .ports
            .metrics
            .node_cpu()
            .await
            .map_err(|e| e.to_string());
        let snapshot = Snapshot::build(report, cpu, engine.mode, engine.paused, None);
        update(&mut app, Msg::Snapshot(Box::new(snapshot)));
        demo.ports.clock.sleep(Duration::from_secs(15)).await;
    }
    update(&mut app, Msg::Now(demo.ports.clock.now()));
    app
}
