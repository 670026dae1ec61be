//! Seven simulated days of `diurnal-flash` at 15 s ticks, with the engine
//! (target ≤ 2 s).

use criterion::{Criterion, criterion_group, criterion_main};
use k3s_autoscaler::config::Config;
use k3s_autoscaler::engine::Mode;
use k3s_autoscaler::harness::demo::{Demo, DemoOptions, Speed, WorldWatch, engine_on};
use k3s_autoscaler::runtime::Shutdown;
use k3s_autoscaler::runtime::headless::{self, StopAfter};
use k3s_autoscaler::sim::ScenarioKind;
use std::time::Duration;

fn week() -> k3s_autoscaler::sim::Summary {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = Config::default();
        let options = DemoOptions {
            scenario: ScenarioKind::DiurnalFlash,
            seed: 1,
            speed: Speed::Max,
            workers: None,
            start: None,
        };
        let demo = Demo::new(&config, &options, false);
        let mut engine = engine_on(&demo, &config, Mode::Auto, 1);
        let stop = StopAfter {
            ticks: Some(7 * 5760),
            duration: None,
            full_last_interval: true,
        };
        headless::run(
            &mut engine,
            demo.ports.clock.clone(),
            Duration::from_secs(15),
            stop,
            Some(&mut WorldWatch::new(demo.world.clone())),
            &Shutdown::new(),
        )
        .await;
        k3s_autoscaler::sim::ports::lock(&demo.world).summary()
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulation");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("7 days diurnal-flash, 15 s ticks", |b| b.iter(week));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
