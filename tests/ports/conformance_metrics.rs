//! The `MetricsSource` conformance suite, run against the simulator and
//! against the Prometheus adapter reading Debian's real Prometheus, which
//! scrapes the simulator's façade every second.

use crate::support;

use k3s_autoscaler::adapters::SystemClock;
use k3s_autoscaler::adapters::prometheus::PrometheusMetrics;
use k3s_autoscaler::config::{ConfigDuration, PrometheusConfig};
use k3s_autoscaler::ports::*;
use k3s_autoscaler::sim::ScenarioKind;
use std::sync::Arc;
use std::time::Duration;

/// The port under test, how many Ready workers its world has, and what
/// keeps that world alive.
struct Subject {
    metrics: Arc<dyn MetricsSource>,
    clock: Arc<dyn Clock>,
    workers: usize,
    _keep: Box<dyn std::any::Any + Send>,
}

mod cases {
    use super::*;

    pub async fn worker_cpu_is_a_fresh_percentage(s: Subject) {
        match s.metrics.instant(Signal::WorkerCpu).await {
            Reading::Known { value, at } => {
                assert!((0.0..=100.0).contains(&value), "{value}");
                assert!(s.clock.now().since(at) < Duration::from_secs(60));
            }
            Reading::Unknown { reason } => panic!("unknown: {reason}"),
        }
    }

    pub async fn ready_workers_are_counted(s: Subject) {
        let reading = s.metrics.instant(Signal::ReadyWorkers).await;
        assert_eq!(reading.value(), Some(s.workers as f64), "{reading:?}");
    }

    pub async fn no_unschedulable_pod_is_zero_not_unknown(s: Subject) {
        let reading = s.metrics.instant(Signal::UnschedulablePods).await;
        assert_eq!(reading.value(), Some(0.0), "{reading:?}");
    }

    pub async fn every_worker_has_its_own_cpu(s: Subject) {
        let per_node = s.metrics.node_cpu().await.unwrap();
        assert_eq!(per_node.len(), s.workers, "{per_node:?}");
        assert!(
            per_node.values().all(|v| (0.0..=100.0).contains(v)),
            "{per_node:?}"
        );
    }

    pub async fn ranges_have_samples_for_charts(s: Subject) {
        let now = s.clock.now();
        let samples = s
            .metrics
            .range(
                Signal::WorkerCpu,
                now.minus(Duration::from_secs(120)),
                now,
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert!(!samples.is_empty());
        assert!(samples.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(samples.iter().all(|s| s.value.is_finite()));
    }
}

/// Ready workers as the world has them: each side's expectation comes from
/// its world, not from a number written beside it.
fn ready_workers(world: &std::sync::Mutex<k3s_autoscaler::sim::World>) -> usize {
    let w = k3s_autoscaler::sim::ports::lock(world);
    let ready = w.fleet.nodes.values().filter(|n| n.ready).count();
    assert!(ready >= 2, "the world must have workers to count: {ready}");
    ready
}

/// Both sides serve the same world (four workers, steady): the simulator's
/// metrics port on a manual clock, and Prometheus scraping the façade.
async fn sim() -> Subject {
    let start = SystemClock::new().now();
    let world = support::facade_world(ScenarioKind::Steady, 4, start);
    let clock = Arc::new(k3s_autoscaler::sim::SimClock::manual(start));
    clock.advance(Duration::from_secs(120));
    let ports = k3s_autoscaler::sim::ports::SimPorts::new(world.clone(), clock.clone(), false);
    let workers = ready_workers(&world);
    Subject {
        metrics: Arc::new(ports),
        clock,
        workers,
        _keep: Box::new(world),
    }
}

async fn prometheus() -> Subject {
    let (url, world) = support::facade(ScenarioKind::Steady, 4).await;
    let prom = support::Prometheus::start(&url).await;
    // rate() needs two scrapes; wait for the adapter's own query to answer.
    let config = PrometheusConfig {
        url: prom.url.clone(),
        timeout: ConfigDuration::secs(5),
        ..PrometheusConfig::default()
    };
    prom.wait_for(&config.cpu_query, Duration::from_secs(30))
        .await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let workers = ready_workers(&world);
    Subject {
        metrics: Arc::new(PrometheusMetrics::new(&config, clock.clone()).unwrap()),
        clock,
        workers,
        _keep: Box::new((prom, world)),
    }
}

async fn with_sim(case: impl AsyncFnOnce(Subject), _: ()) {
    case(sim().await).await
}

async fn with_prometheus(case: impl AsyncFnOnce(Subject), _: ()) {
    case(prometheus().await).await
}

conformance! {
    backends { on_simulator => with_sim, on_real_prometheus => with_prometheus }
    cases {
        worker_cpu_is_a_fresh_percentage,
        ready_workers_are_counted,
        no_unschedulable_pod_is_zero_not_unknown,
        every_worker_has_its_own_cpu,
        ranges_have_samples_for_charts,
    }
}
