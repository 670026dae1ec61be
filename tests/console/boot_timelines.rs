//! Boot timelines on the simulated cluster, through the engine loop: each
//! launch the engine watched has its steps timed, the percentiles per
//! instance type and zone are in the tick's report, and `/metrics`
//! carries one histogram observation per verified launch and step.

use super::circuit_breaker::run_for;
use k3s_autoscaler::config::Config;
use k3s_autoscaler::harness::demo::{Demo, DemoOptions, Speed};
use k3s_autoscaler::runtime::{Mode, Shutdown};
use k3s_autoscaler::sim::ScenarioKind;
use k3s_autoscaler::sim::ports::lock;

#[tokio::test]
async fn every_verified_launch_is_timed_step_by_step_and_counted_per_type_and_zone() {
    let config = Config::default();
    let options = DemoOptions {
        scenario: ScenarioKind::FlashSale,
        seed: 11,
        speed: Speed::Max,
        workers: None,
        start: None,
    };
    let demo = Demo::new(&config, &options, false);
    let mut engine = k3s_autoscaler::harness::demo::engine_on(&demo, &config, Mode::Auto, 5);
    run_for(&mut engine, &demo, &config, 4.0).await;
    let report = engine.tick(None, &Shutdown::new()).await;

    // Every instance this run launched, whatever became of it.
    let joined: Vec<String> = lock(&demo.world)
        .fleet
        .instances
        .values()
        .filter(|i| i.op_id.is_some())
        .map(|i| i.id.clone())
        .collect();
    assert!(!joined.is_empty(), "the sale launched workers");
    let verified: Vec<_> = report
        .boot
        .iter()
        .filter(|t| t.verified.is_some())
        .collect();
    assert!(!verified.is_empty(), "{:?}", report.boot);
    for t in &verified {
        let steps: Vec<&str> = t.durations().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            steps,
            ["running", "registered", "ready", "verified", "total"],
            "{t:?}"
        );
        let total = t.durations().last().map(|(_, d)| d.as_secs()).unwrap_or(0);
        // The simulator boots in about `demo.boot_delay` (with jitter)
        // and the engine looks every 15 s.
        assert!((30..=900).contains(&total), "{total} s: {t:?}");
    }
    let stats = &report.boot_stats;
    assert!(!stats.is_empty());
    let counted: usize = stats.iter().map(|s| s.count).sum();
    assert!(
        counted >= verified.len() && counted <= joined.len(),
        "every watched, verified launch is counted once: {counted} of {} joined",
        joined.len()
    );
    let metrics = engine.metrics().render();
    let totals: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("k3s_autoscaler_boot_seconds_count{") && l.contains("step=\"total\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(totals as usize, counted, "{metrics}");
    for s in stats {
        let (p50, p95) = s.steps["total"];
        assert!(p50 <= p95 && p50 >= 30.0, "{s:?}");
    }
}
